//! Secrets handed to browsers — a reporter's link, a console session's id, a form's CSRF
//! token: 256 random bits, base64url without padding (43 characters). What is stored of one
//! is its SHA-256, never the secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// 32 random bytes from the thread's CSPRNG.
pub fn random_bytes() -> [u8; 32] {
    rand::random()
}

/// A new secret, base64url.
pub fn random() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes())
}

/// The SHA-256 of a secret as written: how it is stored and looked up.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new secret and its [`hash`].
pub fn issue() -> (String, [u8; 32]) {
    let secret = random();
    let hash = hash(&secret);
    (secret, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_base64url_and_stored_as_their_hash() {
        let (secret, stored) = issue();
        assert_eq!(secret.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert_eq!(stored, hash(&secret));
        assert_ne!(secret, issue().0);
    }
}
