//! The console's sign-in sessions in the engine: kept in memory (loaded at start, at most
//! [`MAX_SESSIONS`], at most [`MAX_PER_TOKEN`] per token name), published in the read model
//! so that each request finds its session without a store read, and written to
//! `sessions.v1` in the batch of the command that changed them. Expired sessions are
//! refused by the console as soon as they expire and purged from memory and the store at
//! most a minute later.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::{Session, SessionKey};

use super::EngineError;
use super::txn::Txn;

/// Sessions kept at most: a sign-in beyond it ends the oldest.
pub const MAX_SESSIONS: usize = 10_000;
/// Sessions of one token name at most: a sign-in beyond it ends that name's oldest.
pub const MAX_PER_TOKEN: usize = 100;
/// How often expired sessions are purged.
const PURGE_EVERY: TimeDelta = TimeDelta::minutes(1);

/// A change to the sessions.
#[derive(Debug, Clone)]
pub enum SessionOp {
    /// A sign-in: `session` under `key`, a fresh id. The session the browser held before
    /// (`replaces`), if any, ends: an id is never carried across a sign-in.
    Open {
        key: SessionKey,
        session: Session,
        replaces: Option<SessionKey>,
    },
    /// A sign-out: the session ends (nothing happens for an unknown key).
    Close { key: SessionKey },
}

/// The sessions as the engine keeps them.
#[derive(Default)]
pub(super) struct Sessions {
    pub live: imbl::HashMap<SessionKey, Arc<Session>>,
    purged_at: Option<DateTime<Utc>>,
}

impl Sessions {
    pub fn load(stored: Vec<(SessionKey, Session)>) -> Sessions {
        Sessions {
            live: stored
                .into_iter()
                .map(|(key, session)| (key, Arc::new(session)))
                .collect(),
            // Purged at the first tick: a restart after a long stop leaves no expired one.
            purged_at: None,
        }
    }

    pub fn apply(&mut self, op: SessionOp, txn: &mut Txn) -> Result<(), EngineError> {
        match op {
            SessionOp::Open {
                key,
                session,
                replaces,
            } => {
                if let Some(old) = replaces {
                    self.end(old, txn);
                }
                self.make_room(&session.token_name, txn);
                txn.batch.put_session(key, &session);
                self.live.insert(key, Arc::new(session));
            }
            SessionOp::Close { key } => self.end(key, txn),
        }
        txn.pending.sessions_changed = true;
        Ok(())
    }

    fn end(&mut self, key: SessionKey, txn: &mut Txn) {
        if self.live.remove(&key).is_some() {
            txn.batch.delete_session(key);
        }
    }

    /// Room for one more session of `name`: the expired go first, then the oldest of the
    /// name beyond [`MAX_PER_TOKEN`], then the oldest of all beyond [`MAX_SESSIONS`].
    fn make_room(&mut self, name: &str, txn: &mut Txn) {
        let of_name = self.live.values().filter(|s| s.token_name == name).count();
        if of_name < MAX_PER_TOKEN && self.live.len() < MAX_SESSIONS {
            return;
        }
        self.purge(txn);
        let oldest = |sessions: &imbl::HashMap<SessionKey, Arc<Session>>, name: Option<&str>| {
            sessions
                .iter()
                .filter(|(_, s)| name.is_none_or(|name| s.token_name == name))
                .min_by_key(|(_, s)| s.created_at)
                .map(|(key, _)| *key)
        };
        while self.live.values().filter(|s| s.token_name == name).count() >= MAX_PER_TOKEN {
            let Some(key) = oldest(&self.live, Some(name)) else {
                break;
            };
            self.end(key, txn);
        }
        while self.live.len() >= MAX_SESSIONS {
            let Some(key) = oldest(&self.live, None) else {
                break;
            };
            self.end(key, txn);
        }
    }

    /// Ends the expired sessions, at most once per [`PURGE_EVERY`] (from the engine's tick).
    pub fn purge_due(&mut self, txn: &mut Txn) {
        if self.purged_at.is_some_and(|at| txn.now - at < PURGE_EVERY) {
            return;
        }
        self.purge(txn);
    }

    fn purge(&mut self, txn: &mut Txn) {
        let now = txn.now;
        self.purged_at = Some(now);
        let expired: Vec<SessionKey> = self
            .live
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(key, _)| *key)
            .collect();
        if expired.is_empty() {
            return;
        }
        for key in expired {
            self.end(key, txn);
        }
        txn.pending.sessions_changed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, created: i64, hours: i64) -> Session {
        let created_at = DateTime::from_timestamp(created, 0).unwrap();
        Session {
            token_name: name.to_owned(),
            token_mac: String::new(),
            csrf: String::new(),
            created_at,
            expires_at: created_at + TimeDelta::hours(hours),
        }
    }

    fn open(sessions: &mut Sessions, key: u8, session: Session, now: i64) -> Txn {
        let mut txn = Txn::new(DateTime::from_timestamp(now, 0).unwrap());
        sessions
            .apply(
                SessionOp::Open {
                    key: [key; 32],
                    session,
                    replaces: None,
                },
                &mut txn,
            )
            .unwrap();
        txn
    }

    #[test]
    fn a_token_name_keeps_at_most_its_share_the_oldest_goes() {
        let mut sessions = Sessions::default();
        for i in 0..MAX_PER_TOKEN {
            let key = u8::try_from(i).unwrap();
            open(&mut sessions, key, session("ana", i64::from(key), 12), 0);
        }
        assert_eq!(sessions.live.len(), MAX_PER_TOKEN);
        open(&mut sessions, 200, session("ana", 1_000, 12), 1_000);
        assert_eq!(sessions.live.len(), MAX_PER_TOKEN);
        assert!(!sessions.live.contains_key(&[0; 32]), "the oldest ended");
        assert!(sessions.live.contains_key(&[200; 32]));
        open(&mut sessions, 201, session("bob", 1_000, 12), 1_000);
        assert_eq!(sessions.live.len(), MAX_PER_TOKEN + 1);
    }

    #[test]
    fn a_sign_in_ends_the_session_it_replaces_and_expired_ones_are_purged() {
        let mut sessions = Sessions::default();
        open(&mut sessions, 1, session("ana", 0, 1), 0);
        let mut txn = Txn::new(DateTime::from_timestamp(10, 0).unwrap());
        sessions
            .apply(
                SessionOp::Open {
                    key: [2; 32],
                    session: session("ana", 10, 1),
                    replaces: Some([1; 32]),
                },
                &mut txn,
            )
            .unwrap();
        assert_eq!(sessions.live.keys().copied().collect::<Vec<_>>(), [[2; 32]]);
        // Past its expiry: purged at the next due purge, not before a minute since the last.
        let mut txn = Txn::new(DateTime::from_timestamp(4_000, 0).unwrap());
        sessions.purge_due(&mut txn);
        assert!(sessions.live.is_empty());
        assert!(txn.pending.sessions_changed);
    }
}
