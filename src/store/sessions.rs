//! The console's sign-in sessions (`sessions.v1`): written only by the engine in its group
//! commit, loaded whole at start (the engine keeps them in memory, at most
//! `engine::sessions::MAX_SESSIONS`). The key is the SHA-256 of the session id the browser
//! holds, never the id itself, so the file does not let anyone sign in; the value names the
//! token it was opened with, never the token.

use std::collections::BTreeMap;

use super::kv::{Bytes, Def, RawWrite, Readable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};

/// Key: SHA-256 of the session id (32 bytes).
pub(super) const SESSIONS: Def<Bytes, Bytes> = Def::new("sessions.v1");

/// The SHA-256 of a session id: how a session is found, in memory and stored.
pub type SessionKey = [u8; 32];

/// A console session as stored (`sessions.v1`, version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The name of the token signed in with (`auth.tokens[].name`); its role and clearance
    /// are read from the tokens in force at each request.
    pub token_name: String,
    /// HMAC-SHA256 of the token, keyed by the session id, hex: the session ends when the
    /// token under that name changes (rotation), and without the id (only the browser has
    /// it) the stored value tells nothing about the token.
    pub token_mac: String,
    /// The session's CSRF token (32 random bytes, base64url), in every form.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    /// Absolute: the session ends then, however active.
    pub expires_at: DateTime<Utc>,
}

/// A batch's session writes: `Some` puts, `None` deletes.
#[derive(Debug, Default)]
pub(super) struct SessionWrites(pub BTreeMap<SessionKey, Option<Session>>);

impl super::Batch {
    pub fn put_session(&mut self, key: SessionKey, session: &Session) {
        self.sessions.0.insert(key, Some(session.clone()));
    }

    pub fn delete_session(&mut self, key: SessionKey) {
        self.sessions.0.insert(key, None);
    }
}

pub(super) fn write(txn: &dyn RawWrite, writes: &SessionWrites) -> Result<(), StoreError> {
    if writes.0.is_empty() {
        return Ok(());
    }
    let mut table = txn.open(SESSIONS)?;
    for (key, session) in &writes.0 {
        match session {
            Some(session) => {
                table.put(key.as_slice(), encode(session).as_slice())?;
            }
            None => {
                table.delete(key.as_slice())?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// Every stored session (the engine drops the expired ones).
    pub fn load_sessions(&self) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open(SESSIONS)?;
        let mut sessions = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let length = key.len();
            let Ok(key) = SessionKey::try_from(key) else {
                return Err(StoreError::Corrupt {
                    table: "sessions.v1",
                    key: format!("{length} bytes"),
                    source: serde::de::Error::custom("a key of 32 bytes"),
                });
            };
            sessions.push((key, decode("sessions.v1", "a session", &value)?));
        }
        Ok(sessions)
    }
}
