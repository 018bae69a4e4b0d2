//! Reporter links: the private page a ticket's reporter follows (`/r/{token}`). Only the
//! SHA-256 of a link's token is stored, never the token: `reporter_links.v1` holds each
//! incident's current link (its hash, when it was issued, when it was revoked) and
//! `reporter_link_hashes.v1` maps the hash of every link that works to its incident, so a
//! visit is one lookup and a revoked or replaced link is simply not found. Both are written
//! by the engine's commit, in the transaction of the change (the ticket that issues the
//! first link, the rotation or revocation).

use std::collections::BTreeMap;

use super::kv::{Bytes, Def, RawWrite, Readable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::incident::IncidentId;

use super::{Store, StoreError, decode, encode};

/// Key: incident id; value: [`ReporterLinkV1`], the incident's current (or last) link.
pub(super) const REPORTER_LINKS: Def<u64, Bytes> = Def::new("reporter_links.v1");
/// Key: the SHA-256 of a link's token (32 bytes); value: the incident id. Only links
/// that work are here.
pub(super) const REPORTER_LINK_HASHES: Def<Bytes, u64> = Def::new("reporter_link_hashes.v1");

/// An incident's reporter link as stored: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterLinkV1 {
    /// The SHA-256 of the token, hex.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a batch does to an incident's reporter link (the last one of a batch wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWrite {
    /// A new link (the first, or one replacing the last): the old one stops working.
    Issue { hash: [u8; 32], at: DateTime<Utc> },
    /// The link stops working; none replaces it.
    Revoke { at: DateTime<Utc> },
}

impl super::Batch {
    /// Issues the incident's reporter link (its token's SHA-256); the one before stops
    /// working.
    pub fn issue_reporter_link(&mut self, incident: IncidentId, hash: [u8; 32], at: DateTime<Utc>) {
        self.reporter_links
            .insert(incident.0, LinkWrite::Issue { hash, at });
    }

    /// Revokes the incident's reporter link.
    pub fn revoke_reporter_link(&mut self, incident: IncidentId, at: DateTime<Utc>) {
        self.reporter_links
            .insert(incident.0, LinkWrite::Revoke { at });
    }

    /// What this batch does to the incident's link, if anything: the engine's view of a
    /// link is the store's with this on top.
    pub fn reporter_link_write(&self, incident: IncidentId) -> Option<LinkWrite> {
        self.reporter_links.get(&incident.0).copied()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.len()
        .is_multiple_of(2)
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

pub(super) fn write(
    txn: &dyn RawWrite,
    writes: &BTreeMap<u64, LinkWrite>,
) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut links = txn.open(REPORTER_LINKS)?;
    let mut hashes = txn.open(REPORTER_LINK_HASHES)?;
    for (id, write) in writes {
        let old: Option<ReporterLinkV1> = match links.get(id)? {
            Some(value) => Some(decode("reporter_links.v1", id, &value)?),
            None => None,
        };
        // The link in force stops working whatever replaces it.
        if let Some(old) = old.as_ref().filter(|old| old.revoked_at.is_none())
            && let Some(hash) = unhex(&old.hash)
        {
            hashes.delete(hash.as_slice())?;
        }
        let record = match (*write, old) {
            (LinkWrite::Issue { hash, at }, _) => {
                hashes.put(hash.as_slice(), id)?;
                ReporterLinkV1 {
                    hash: hex(&hash),
                    created_at: at,
                    revoked_at: None,
                }
            }
            (LinkWrite::Revoke { at }, Some(old)) => ReporterLinkV1 {
                revoked_at: old.revoked_at.or(Some(at)),
                ..old
            },
            (LinkWrite::Revoke { .. }, None) => continue,
        };
        links.put(id, encode(&record).as_slice())?;
    }
    Ok(())
}

impl Store {
    /// The incident whose working reporter link has this token hash.
    pub fn reporter_link(&self, hash: &[u8; 32]) -> Result<Option<IncidentId>, StoreError> {
        let txn = self.begin_read()?;
        let hashes = txn.open(REPORTER_LINK_HASHES)?;
        Ok(hashes.get(hash.as_slice())?.map(IncidentId))
    }

    /// The incident's current (or last) reporter link as stored: its hash, when issued,
    /// when revoked.
    pub fn reporter_link_of(
        &self,
        incident: IncidentId,
    ) -> Result<Option<ReporterLinkV1>, StoreError> {
        let txn = self.begin_read()?;
        let links = txn.open(REPORTER_LINKS)?;
        links
            .get(incident.0)?
            .map(|v| decode("reporter_links.v1", incident.0, &v))
            .transpose()
    }
}
