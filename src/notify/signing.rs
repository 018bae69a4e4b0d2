//! Standard Webhooks signatures (spec 1.0.0, symmetric `v1`): HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, base64, one `v1,<sig>` per secret,
//! space-separated, so consumers can rotate secrets without downtime.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header value for a message.
pub fn signature_header(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|key| format!("v1,{}", sign(key, id, timestamp, body)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    STANDARD.encode(mac(key, id, timestamp, body).finalize().into_bytes())
}

/// The MAC over the signed content `{id}.{timestamp}.{body}`.
fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a `webhook-signature` header the way a consumer does (constant-time compare of
/// every `v1` signature against the key). Used by our tests and useful to consumers
/// written in Rust.
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|part| {
        let Some(encoded) = part.strip_prefix("v1,") else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(encoded) else {
            return false;
        };
        mac(key, id, timestamp, body)
            .verify_slice(&signature)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/*/ tests).
    #[test]
    fn matches_the_reference_vector() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature_header(std::slice::from_ref(&key), id, timestamp, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            &key,
            id,
            timestamp,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!verify(
            &key,
            id,
            timestamp + 1,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn one_signature_per_secret_for_rotation() {
        let old = b"old-secret-old-secret-old".to_vec();
        let new = b"new-secret-new-secret-new".to_vec();
        let header = signature_header(&[old.clone(), new.clone()], "evt_1", 10, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "evt_1", 10, b"{}", &header));
        assert!(verify(&new, "evt_1", 10, b"{}", &header));
        assert!(!verify(
            b"other-secret-other-secret",
            "evt_1",
            10,
            b"{}",
            &header
        ));
    }
}
