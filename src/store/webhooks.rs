//! What webhook delivery keeps beside the outbox: events delivered (kept for replay until
//! the consumer's retention), dead letters (events that ran out of `max_age`), the delivery
//! log (one record per attempt) and each consumer's enabled flag (a `410 Gone` disables).
//! Written only by the engine, in the same group commit as everything else; read by the
//! webhook workers and the API.

use super::kv::{Bytes, Def, RawWrite, Readable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::OutboxEntry;
use super::{OUTBOX, Store, StoreError, decode, encode};

/// Key: (consumer, outbox sequence). Events delivered, kept for replay until retention.
pub(super) const OUTBOX_DONE: Def<(String, u64), Bytes> = Def::new("outbox_done.v1");
/// Key: (consumer, outbox sequence). Events given up after `max_age`.
pub(super) const DEAD_LETTERS: Def<(String, u64), Bytes> = Def::new("dead_letters.v1");
/// Key: (consumer, attempt time in Unix microseconds, outbox sequence). One per attempt.
pub(super) const DELIVERIES: Def<(String, i64, u64), Bytes> = Def::new("deliveries.v1");
/// Key: consumer. Absent means enabled.
pub(super) const CONSUMERS: Def<String, Bytes> = Def::new("consumers.v1");

/// An event given up on: the entry as it was, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub entry: OutboxEntry,
    pub dead_at: DateTime<Utc>,
    pub last_error: String,
}

/// One delivery attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAttempt {
    pub consumer: String,
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    pub incident: u64,
    pub at: DateTime<Utc>,
    /// `success`, `retry` (failed, will retry), `dead` (failed, given up), `gone` (410).
    pub outcome: String,
    /// The HTTP status, when the consumer answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// A consumer's enabled flag as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerState {
    pub enabled: bool,
    pub changed_at: DateTime<Utc>,
    pub reason: String,
}

/// What one consumer looks like in the store now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOverview {
    /// `None`: never disabled.
    pub state: Option<ConsumerState>,
    pub pending: u64,
    pub oldest_pending: Option<DateTime<Utc>>,
    pub dead_letters: u64,
}

impl ConsumerOverview {
    pub fn enabled(&self) -> bool {
        self.state.as_ref().is_none_or(|state| state.enabled)
    }
}

/// Which stored events a replay sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelection {
    Event(String),
    Since(DateTime<Utc>),
    DeadLetters,
}

/// The webhook writes of one group commit.
#[derive(Debug, Default)]
pub(super) struct WebhookWrites {
    delivered: Vec<OutboxEntry>,
    dead: Vec<DeadLetter>,
    dead_replayed: Vec<(String, u64)>,
    attempts: Vec<DeliveryAttempt>,
    consumers: Vec<(String, ConsumerState)>,
    prune: Vec<(String, DateTime<Utc>)>,
}

impl WebhookWrites {
    pub(super) fn is_empty(&self) -> bool {
        self.delivered.is_empty()
            && self.dead.is_empty()
            && self.dead_replayed.is_empty()
            && self.attempts.is_empty()
            && self.consumers.is_empty()
            && self.prune.is_empty()
    }
}

impl super::Batch {
    /// The consumer took the entry: out of the outbox, kept for replay.
    pub fn delivered(&mut self, entry: OutboxEntry) {
        self.delete_outbox(&entry.consumer, entry.seq);
        self.webhooks.delivered.push(entry);
    }

    /// The entry ran out of time: out of the outbox, into the dead letters.
    pub fn dead_letter(&mut self, dead: DeadLetter) {
        self.delete_outbox(&dead.entry.consumer, dead.entry.seq);
        self.webhooks.dead.push(dead);
    }

    /// A dead letter was queued again.
    pub fn forget_dead_letter(&mut self, consumer: &str, seq: u64) {
        self.webhooks.dead_replayed.push((consumer.to_owned(), seq));
    }

    pub fn log_attempt(&mut self, attempt: DeliveryAttempt) {
        self.webhooks.attempts.push(attempt);
    }

    pub fn set_consumer_state(&mut self, consumer: &str, state: ConsumerState) {
        self.webhooks.consumers.push((consumer.to_owned(), state));
    }

    /// Forgets the consumer's delivery log, delivered events and dead letters older than
    /// `before`.
    pub fn prune_webhooks(&mut self, consumer: &str, before: DateTime<Utc>) {
        self.webhooks.prune.push((consumer.to_owned(), before));
    }
}

/// Most records one prune deletes per table, so a commit stays short; the rest goes next time.
const PRUNE_BUDGET: usize = 10_000;

pub(super) fn write(txn: &dyn RawWrite, writes: &WebhookWrites) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut done = txn.open(OUTBOX_DONE)?;
    for entry in &writes.delivered {
        done.put(
            (entry.consumer.as_str(), entry.seq),
            encode(entry).as_slice(),
        )?;
    }
    let mut dead = txn.open(DEAD_LETTERS)?;
    for letter in &writes.dead {
        dead.put(
            (letter.entry.consumer.as_str(), letter.entry.seq),
            encode(letter).as_slice(),
        )?;
    }
    for (consumer, seq) in &writes.dead_replayed {
        dead.delete((consumer.as_str(), *seq))?;
    }
    let mut deliveries = txn.open(DELIVERIES)?;
    for attempt in &writes.attempts {
        deliveries.put(
            (
                attempt.consumer.as_str(),
                attempt.at.timestamp_micros(),
                attempt.seq,
            ),
            encode(attempt).as_slice(),
        )?;
    }
    let mut consumers = txn.open(CONSUMERS)?;
    for (consumer, state) in &writes.consumers {
        consumers.put(consumer.as_str(), encode(state).as_slice())?;
    }
    for (consumer, before) in &writes.prune {
        let consumer = consumer.as_str();
        let cutoff = before.timestamp_micros();
        let old: Vec<(i64, u64)> = deliveries
            .range((consumer, i64::MIN, 0)..(consumer, cutoff, 0))?
            .take(PRUNE_BUDGET)
            .map(|row| row.map(|(key, _)| (key.1, key.2)))
            .collect::<Result<_, _>>()?;
        for (at, seq) in old {
            deliveries.delete((consumer, at, seq))?;
        }
        // Sequences grow with time (a replay gets a new one), so the old ones come first.
        let mut old = Vec::new();
        for row in done
            .range((consumer, 0)..=(consumer, u64::MAX))?
            .take(PRUNE_BUDGET)
        {
            let (key, value) = row?;
            let entry: OutboxEntry = decode("outbox_done.v1", key.1, &value)?;
            if entry.created_at >= *before {
                break;
            }
            old.push(key.1);
        }
        for seq in old {
            done.delete((consumer, seq))?;
        }
        let mut old = Vec::new();
        for row in dead
            .range((consumer, 0)..=(consumer, u64::MAX))?
            .take(PRUNE_BUDGET)
        {
            let (key, value) = row?;
            let letter: DeadLetter = decode("dead_letters.v1", key.1, &value)?;
            if letter.dead_at < *before {
                old.push(key.1);
            }
        }
        for seq in old {
            dead.delete((consumer, seq))?;
        }
    }
    Ok(())
}

impl Store {
    /// Up to `limit` undelivered entries of one consumer after sequence `after`, oldest first.
    pub fn pending_outbox_after(
        &self,
        consumer: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.begin_read()?;
        let outbox = txn.open(OUTBOX)?;
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut entries = Vec::new();
        for row in outbox
            .range((consumer, start)..=(consumer, u64::MAX))?
            .take(limit)
        {
            let (key, value) = row?;
            entries.push(decode("outbox.v1", key.1, &value)?);
        }
        Ok(entries)
    }

    /// The consumer's enabled flag, backlog and dead letters, in one snapshot.
    pub fn consumer_overview(&self, consumer: &str) -> Result<ConsumerOverview, StoreError> {
        let txn = self.begin_read()?;
        let mut overview = ConsumerOverview::default();
        let consumers = txn.open(CONSUMERS)?;
        if let Some(value) = consumers.get(consumer)? {
            overview.state = Some(decode("consumers.v1", consumer, &value)?);
        }
        let outbox = txn.open(OUTBOX)?;
        let mut pending = outbox.range((consumer, 0)..=(consumer, u64::MAX))?;
        if let Some(row) = pending.next() {
            let (key, value) = row?;
            let entry: OutboxEntry = decode("outbox.v1", key.1, &value)?;
            overview.oldest_pending = Some(entry.created_at);
            overview.pending = 1 + pending.count() as u64;
        }
        let dead = txn.open(DEAD_LETTERS)?;
        overview.dead_letters = dead.range((consumer, 0)..=(consumer, u64::MAX))?.count() as u64;
        Ok(overview)
    }

    /// The consumer's delivery attempts from `since` on, oldest first, at most `limit`.
    pub fn deliveries(
        &self,
        consumer: &str,
        since: Option<DateTime<Utc>>,
        outcome: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let txn = self.begin_read()?;
        let deliveries = txn.open(DELIVERIES)?;
        let start = since.map_or(i64::MIN, |since| since.timestamp_micros());
        let mut attempts = Vec::new();
        for row in deliveries.range((consumer, start, 0)..=(consumer, i64::MAX, u64::MAX))? {
            let (key, value) = row?;
            let attempt: DeliveryAttempt = decode("deliveries.v1", key.2, &value)?;
            if outcome.is_none_or(|outcome| attempt.outcome == outcome) {
                attempts.push(attempt);
                if attempts.len() == limit {
                    break;
                }
            }
        }
        Ok(attempts)
    }

    /// The consumer's dead letters, oldest first.
    pub fn dead_letters(&self, consumer: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = self.begin_read()?;
        let dead = txn.open(DEAD_LETTERS)?;
        let mut letters = Vec::new();
        for row in dead.range((consumer, 0)..=(consumer, u64::MAX))? {
            let (key, value) = row?;
            letters.push(decode("dead_letters.v1", key.1, &value)?);
        }
        Ok(letters)
    }

    /// The stored events a replay sends again, oldest first, each with whether it is a dead
    /// letter (which the replay removes). Looks through what retention keeps: delivered
    /// events and dead letters (an event still pending is on its way anyway).
    pub fn replay_candidates(
        &self,
        consumer: &str,
        selection: &ReplaySelection,
    ) -> Result<Vec<(OutboxEntry, bool)>, StoreError> {
        let txn = self.begin_read()?;
        let mut found = Vec::new();
        let wanted = |entry: &OutboxEntry| match selection {
            ReplaySelection::Event(id) => &entry.event_id == id,
            ReplaySelection::Since(since) => entry.created_at >= *since,
            ReplaySelection::DeadLetters => false,
        };
        if !matches!(selection, ReplaySelection::DeadLetters) {
            let done = txn.open(OUTBOX_DONE)?;
            for row in done.range((consumer, 0)..=(consumer, u64::MAX))? {
                let (key, value) = row?;
                let entry: OutboxEntry = decode("outbox_done.v1", key.1, &value)?;
                if wanted(&entry) {
                    found.push((entry, false));
                }
            }
        }
        let dead = txn.open(DEAD_LETTERS)?;
        for row in dead.range((consumer, 0)..=(consumer, u64::MAX))? {
            let (key, value) = row?;
            let letter: DeadLetter = decode("dead_letters.v1", key.1, &value)?;
            if matches!(selection, ReplaySelection::DeadLetters) || wanted(&letter.entry) {
                found.push((letter.entry, true));
            }
        }
        found.sort_by_key(|(entry, _)| entry.seq);
        Ok(found)
    }
}
