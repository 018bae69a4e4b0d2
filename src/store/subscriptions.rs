//! Status-page subscriptions: subscribers (email or webhook), the status updates waiting to
//! be fanned out, and the per-subscriber notification queue. Written only by the engine in
//! its group commit, like the webhook outbox; read by the subscription worker and the API.
//!
//! An update is written in the transaction of the incident change that caused it; the
//! fan-out writes one queue entry per matching subscriber and deletes the update in one
//! transaction; a queue entry leaves the queue only once sent or given up. So a SIGKILL at
//! any point loses nothing (at least once).

use std::collections::BTreeMap;

use super::kv::{Bytes, Def, RawWrite, Readable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{META, Store, StoreError, decode, encode};

/// Key: subscriber id.
pub(super) const SUBSCRIBERS: Def<u64, Bytes> = Def::new("subscribers.v1");
/// Key: update sequence. Status updates not yet fanned out.
pub(super) const STATUS_UPDATES: Def<u64, Bytes> = Def::new("status_updates.v1");
/// Key: notification sequence. One message for one subscriber, until sent or given up.
pub(super) const NOTIFICATIONS: Def<u64, Bytes> = Def::new("notifications.v1");

/// Key: (`next_at` in Unix milliseconds, notification sequence). The queue by when each
/// entry is due, written in the commit that writes the entry, so a worker's round reads
/// only what is due, not the whole queue.
pub(super) const NOTIFICATIONS_DUE: Def<(u64, u64), ()> = Def::new("notifications_due.v1");

const META_NEXT_SUBSCRIBER: &str = "next_subscriber_id";
const META_NEXT_UPDATE: &str = "next_status_update_seq";
const META_NEXT_NOTIFICATION: &str = "next_notification_seq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// A subscriber as stored (`subscribers.v1`, version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    pub id: u64,
    pub channel: Channel,
    /// The email address or the webhook URL. Never on a public surface, in logs or metrics.
    pub address: String,
    /// Service names; empty: every service.
    pub services: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// 32 random bytes, base64url: the confirm and unsubscribe links.
    pub token: String,
    /// The webhook signing secret (`whsec_…`); `None` for email.
    pub secret: Option<String>,
    /// When the last confirmation mail was queued (re-sent at most once an hour).
    pub confirmation_sent_at: Option<DateTime<Utc>>,
}

/// What an announcement says, public fields only (see `visibility`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusUpdate {
    /// `incident.opened`, `incident.note_added`, `incident.resolved`, `incident.reopened`.
    pub event: String,
    pub incident: String,
    pub title: String,
    /// What visitors read: Investigating, Identified, Monitoring, Resolved.
    pub status: String,
    pub services: Vec<String>,
    /// The public note, for `incident.note_added`.
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// What one queue entry sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Message {
    /// The double opt-in mail.
    Confirm,
    Update(StatusUpdate),
    /// A call scheduled on a ticket, mailed to its reporter's contact (the entry's
    /// `subscriber` is 0: the address is in the message).
    Call(CallMail),
}

/// A scheduled call as the reporter's mail tells it: what `Restrictions::reporter_call`
/// lets the reporter see (no title nor note for a restricted incident).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMail {
    /// The reporter's contact. Never in a log or metric.
    pub to: String,
    pub incident: String,
    pub title: Option<String>,
    pub at: DateTime<Utc>,
    pub url: String,
    pub participants: Vec<String>,
    pub note: Option<String>,
}

/// One message for one subscriber (`notifications.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub seq: u64,
    pub subscriber: u64,
    pub message: Message,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    /// The webhook id (`evt_…`), the same on every retry.
    pub event_id: String,
}

/// The sequences of subscriptions, stored with each commit that hands one out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriptionCounters {
    pub next_subscriber_id: u64,
    pub next_update_seq: u64,
    pub next_notification_seq: u64,
}

/// What the subscriptions hold at start: the engine keeps them in memory.
#[derive(Debug, Default)]
pub struct LoadedSubscriptions {
    pub subscribers: Vec<Subscriber>,
    pub updates: Vec<(u64, StatusUpdate)>,
    pub counters: SubscriptionCounters,
}

/// A batch's subscription writes.
#[derive(Debug, Default)]
pub(super) struct SubscriptionWrites {
    pub subscribers: BTreeMap<u64, Option<Subscriber>>,
    pub updates: BTreeMap<u64, Option<StatusUpdate>>,
    pub notifications: BTreeMap<u64, Option<Notification>>,
    pub counters: Option<SubscriptionCounters>,
}

impl SubscriptionWrites {
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
            && self.updates.is_empty()
            && self.notifications.is_empty()
            && self.counters.is_none()
    }
}

impl super::Batch {
    pub fn put_subscriber(&mut self, subscriber: &Subscriber) {
        self.subscriptions
            .subscribers
            .insert(subscriber.id, Some(subscriber.clone()));
    }

    pub fn delete_subscriber(&mut self, id: u64) {
        self.subscriptions.subscribers.insert(id, None);
    }

    pub fn put_status_update(&mut self, seq: u64, update: StatusUpdate) {
        self.subscriptions.updates.insert(seq, Some(update));
    }

    pub fn delete_status_update(&mut self, seq: u64) {
        self.subscriptions.updates.insert(seq, None);
    }

    pub fn put_notification(&mut self, notification: Notification) {
        self.subscriptions
            .notifications
            .insert(notification.seq, Some(notification));
    }

    pub fn delete_notification(&mut self, seq: u64) {
        self.subscriptions.notifications.insert(seq, None);
    }

    pub fn set_subscription_counters(&mut self, counters: SubscriptionCounters) {
        self.subscriptions.counters = Some(counters);
    }
}

pub(super) fn write(txn: &dyn RawWrite, writes: &SubscriptionWrites) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut subscribers = txn.open(SUBSCRIBERS)?;
    for (id, subscriber) in &writes.subscribers {
        match subscriber {
            Some(subscriber) => {
                subscribers.put(id, encode(subscriber).as_slice())?;
            }
            None => {
                subscribers.delete(id)?;
            }
        }
    }
    let mut updates = txn.open(STATUS_UPDATES)?;
    for (seq, update) in &writes.updates {
        match update {
            Some(update) => {
                updates.put(seq, encode(update).as_slice())?;
            }
            None => {
                updates.delete(seq)?;
            }
        }
    }
    let mut notifications = txn.open(NOTIFICATIONS)?;
    let mut due = txn.open(NOTIFICATIONS_DUE)?;
    for (seq, notification) in &writes.notifications {
        // The entry it replaces (a retry) or deletes leaves the due index too.
        let old = match notification {
            Some(notification) => notifications
                .insert(seq, encode(notification).as_slice())?
                .map(|old| old.to_vec()),
            None => notifications.remove(seq)?.map(|old| old.to_vec()),
        };
        if let Some(old) = old {
            let old: Notification = decode("notifications.v1", *seq, &old)?;
            due.delete((due_millis(old.next_at), *seq))?;
        }
        if let Some(notification) = notification {
            due.put((due_millis(notification.next_at), *seq), ())?;
        }
    }
    if let Some(counters) = writes.counters {
        let mut meta = txn.open(META)?;
        meta.put(META_NEXT_SUBSCRIBER, counters.next_subscriber_id)?;
        meta.put(META_NEXT_UPDATE, counters.next_update_seq)?;
        meta.put(META_NEXT_NOTIFICATION, counters.next_notification_seq)?;
    }
    Ok(())
}

/// The due index's time: Unix milliseconds (0 before 1970).
fn due_millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Indexes the queue by due time when the index does not cover it (a store from before the
/// index), when the store is opened.
pub(super) fn init_tables(txn: &dyn RawWrite) -> Result<(), StoreError> {
    let notifications = txn.open(NOTIFICATIONS)?;
    let mut due = txn.open(NOTIFICATIONS_DUE)?;
    if due.len()? != notifications.len()? {
        due.clear()?;
        for row in notifications.iter()? {
            let (key, value) = row?;
            let entry: Notification = decode("notifications.v1", key, &value)?;
            due.put((due_millis(entry.next_at), key), ())?;
        }
    }
    Ok(())
}

impl Store {
    /// Every subscriber, the updates not fanned out yet and the sequences.
    pub fn load_subscriptions(&self) -> Result<LoadedSubscriptions, StoreError> {
        let txn = self.begin_read()?;
        let mut loaded = LoadedSubscriptions::default();
        let table = txn.open(SUBSCRIBERS)?;
        for row in table.iter()? {
            let (key, value) = row?;
            loaded
                .subscribers
                .push(decode("subscribers.v1", key, &value)?);
        }
        let table = txn.open(STATUS_UPDATES)?;
        for row in table.iter()? {
            let (key, value) = row?;
            let update = decode("status_updates.v1", key, &value)?;
            loaded.updates.push((key, update));
        }
        let meta = txn.open(META)?;
        let read = |key: &str| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(0, |v| v)) };
        let last_notification = txn
            .open(NOTIFICATIONS)?
            .last()?
            .map_or(0, |(key, _)| key + 1);
        loaded.counters = SubscriptionCounters {
            next_subscriber_id: read(META_NEXT_SUBSCRIBER)?.max(1),
            next_update_seq: read(META_NEXT_UPDATE)?,
            next_notification_seq: read(META_NEXT_NOTIFICATION)?.max(last_notification),
        };
        Ok(loaded)
    }

    pub fn subscriber(&self, id: u64) -> Result<Option<Subscriber>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open(SUBSCRIBERS)?;
        table
            .get(id)?
            .map(|value| decode("subscribers.v1", id, &value))
            .transpose()
    }

    /// Up to `limit` queued notifications due by `now`, earliest due first, and the
    /// earliest `next_at` of those not due (when to look again). Reads the due index: a
    /// round costs what it takes, not the queue.
    pub fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<Notification>, Option<DateTime<Utc>>), StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open(NOTIFICATIONS)?;
        let index = txn.open(NOTIFICATIONS_DUE)?;
        let mut due = Vec::new();
        let mut later = None;
        for row in index.range(..=(due_millis(now), u64::MAX))? {
            let (key, _) = row?;
            let seq = key.1;
            let Some(value) = table.get(seq)? else {
                continue;
            };
            let entry: Notification = decode("notifications.v1", seq, &value)?;
            if entry.next_at > now {
                // Due later within this millisecond.
                later = Some(later.map_or(entry.next_at, |l: DateTime<Utc>| l.min(entry.next_at)));
            } else if due.len() < limit {
                due.push(entry);
            } else {
                break;
            }
        }
        if later.is_none()
            && let Some(row) = index.range((due_millis(now) + 1, 0)..)?.next()
        {
            let (key, _) = row?;
            later = DateTime::from_timestamp_millis(i64::try_from(key.0).unwrap_or(i64::MAX));
        }
        Ok((due, later))
    }

    /// How many notifications are queued.
    pub fn notification_count(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open(NOTIFICATIONS)?;
        table.len()
    }
}
