//! Status-page subscriptions in the engine: the subscribers (in memory, loaded at start, at
//! most [`MAX_SUBSCRIBERS`]), the announcement of public incident changes, the fan-out of an
//! update to the queue and the worker's reports. Every change goes into the batch.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Duration;

use crate::config::StatusPageConfig;
use crate::domain::incident::{Incident, State as IncidentState};
use crate::store::{
    CallMail, Channel, LoadedSubscriptions, Message, Notification, StatusUpdate, Subscriber,
    SubscriptionCounters,
};
use crate::view::Restrictions;
use crate::visibility::{Visibility, services_of, visibility};

use super::EngineError;
use super::txn::Txn;

/// Subscribers kept at most: memory and a fan-out stay bounded.
pub const MAX_SUBSCRIBERS: usize = 100_000;
/// A confirmation mail to the same address at most this often.
const RESEND_AFTER: Duration = Duration::hours(1);

/// The events subscribers hear about: a public incident opening, a public note, resolving
/// and reopening (closing follows resolving: nothing new for the public).
pub const ANNOUNCED: [&str; 3] = ["incident.opened", "incident.resolved", "incident.reopened"];

/// What a visitor asked for.
#[derive(Debug, Clone)]
pub struct NewSubscriber {
    pub channel: Channel,
    pub address: String,
    pub services: Vec<String>,
}

/// What a sign-up did.
#[derive(Debug, Clone)]
pub enum SignUp {
    /// A new subscriber (a webhook's secret is in it, to show once).
    Created(Subscriber),
    /// The address is known: a confirmation was queued again (or not, within the hour).
    Existing { resent: bool },
}

/// One sent or given-up notification, or one to try again.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        seq: u64,
        channel: Channel,
    },
    Failed {
        seq: u64,
        channel: Channel,
    },
    /// The subscriber is gone: the entry is dropped, nothing counted.
    Dropped {
        seq: u64,
    },
    Retry(Box<Notification>),
}

#[derive(Debug, Clone)]
pub enum SubsOp {
    SignUp(NewSubscriber),
    Confirm(String),
    Unsubscribe(String),
    Delete(u64),
    /// Turn every pending update into queue entries.
    FanOut,
    Report(Vec<Outcome>),
}

#[derive(Debug, Clone)]
pub enum SubsAnswer {
    SignUp(SignUp),
    /// Confirm, unsubscribe, delete: whether the token or id named a subscriber.
    Found(bool),
    /// How many entries a fan-out queued.
    Queued(usize),
    Done,
}

/// The subscriptions' state.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    subscribers: BTreeMap<u64, Subscriber>,
    by_address: HashMap<(Channel, String), u64>,
    by_token: HashMap<String, u64>,
    updates: BTreeMap<u64, StatusUpdate>,
    counters: SubscriptionCounters,
    /// Something for the worker was written in this batch.
    pub wake: bool,
    /// The subscriber counts changed in this batch.
    pub counts_changed: bool,
}

fn token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The key of an address: emails compare without case.
fn address_key(channel: Channel, address: &str) -> (Channel, String) {
    match channel {
        Channel::Email => (channel, address.to_ascii_lowercase()),
        Channel::Webhook => (channel, address.to_owned()),
    }
}

/// What visitors read for the state.
fn status_word(state: IncidentState) -> &'static str {
    match state {
        IncidentState::Open => "Investigating",
        IncidentState::Acknowledged | IncidentState::OnHold => "Identified",
        IncidentState::Resolved | IncidentState::Closed => "Resolved",
    }
}

impl Subscriptions {
    pub fn load(loaded: LoadedSubscriptions) -> Subscriptions {
        let mut subs = Subscriptions {
            counters: loaded.counters,
            updates: loaded.updates.into_iter().collect(),
            wake: true,
            counts_changed: true,
            ..Default::default()
        };
        for subscriber in loaded.subscribers {
            subs.index(subscriber);
        }
        subs
    }

    fn index(&mut self, subscriber: Subscriber) {
        self.by_address.insert(
            address_key(subscriber.channel, &subscriber.address),
            subscriber.id,
        );
        self.by_token
            .insert(subscriber.token.clone(), subscriber.id);
        self.subscribers.insert(subscriber.id, subscriber);
    }

    fn remove(&mut self, id: u64, txn: &mut Txn) -> bool {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return false;
        };
        self.by_address
            .remove(&address_key(subscriber.channel, &subscriber.address));
        self.by_token.remove(&subscriber.token);
        txn.batch.delete_subscriber(id);
        self.counts_changed = true;
        true
    }

    /// (channel, state) → subscribers, for the gauge.
    pub fn counts(&self) -> BTreeMap<(&'static str, &'static str), i64> {
        let mut counts = BTreeMap::new();
        for channel in [Channel::Email, Channel::Webhook] {
            for state in ["confirmed", "pending"] {
                counts.insert((channel.as_str(), state), 0);
            }
        }
        for s in self.subscribers.values() {
            let state = if s.confirmed_at.is_some() {
                "confirmed"
            } else {
                "pending"
            };
            *counts.entry((s.channel.as_str(), state)).or_default() += 1;
        }
        counts
    }

    pub fn apply(&mut self, op: SubsOp, txn: &mut Txn) -> Result<SubsAnswer, EngineError> {
        let answer = match op {
            SubsOp::SignUp(new) => SubsAnswer::SignUp(self.sign_up(new, txn)?),
            SubsOp::Confirm(token) => SubsAnswer::Found(self.confirm(&token, txn)),
            SubsOp::Unsubscribe(token) => {
                let id = self.by_token.get(&token).copied();
                SubsAnswer::Found(id.is_some_and(|id| self.remove(id, txn)))
            }
            SubsOp::Delete(id) => SubsAnswer::Found(self.remove(id, txn)),
            SubsOp::FanOut => SubsAnswer::Queued(self.fan_out(txn)),
            SubsOp::Report(outcomes) => {
                self.report(outcomes, txn);
                SubsAnswer::Done
            }
        };
        txn.batch.set_subscription_counters(self.counters);
        Ok(answer)
    }

    fn sign_up(&mut self, new: NewSubscriber, txn: &mut Txn) -> Result<SignUp, EngineError> {
        let now = txn.now;
        if let Some(&id) = self.by_address.get(&address_key(new.channel, &new.address)) {
            let subscriber = self.subscribers.get_mut(&id).expect("indexed");
            let due = subscriber.confirmed_at.is_none()
                && subscriber
                    .confirmation_sent_at
                    .is_none_or(|at| now - at >= RESEND_AFTER);
            if due {
                subscriber.confirmation_sent_at = Some(now);
                let subscriber = subscriber.clone();
                txn.batch.put_subscriber(&subscriber);
                self.queue(subscriber.id, Message::Confirm, txn);
            }
            return Ok(SignUp::Existing { resent: due });
        }
        if self.subscribers.len() >= MAX_SUBSCRIBERS {
            return Err(EngineError::Invalid(format!(
                "the status page takes at most {MAX_SUBSCRIBERS} subscribers"
            )));
        }
        let webhook = new.channel == Channel::Webhook;
        let subscriber = Subscriber {
            id: self.counters.next_subscriber_id,
            channel: new.channel,
            address: new.address,
            services: new.services,
            created_at: now,
            // A webhook needs no opt-in: whoever gives the URL gets the secret.
            confirmed_at: webhook.then_some(now),
            token: token(),
            secret: webhook
                .then(|| format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()))),
            confirmation_sent_at: (!webhook).then_some(now),
        };
        self.counters.next_subscriber_id += 1;
        txn.batch.put_subscriber(&subscriber);
        if !webhook {
            self.queue(subscriber.id, Message::Confirm, txn);
        }
        self.index(subscriber.clone());
        self.counts_changed = true;
        Ok(SignUp::Created(subscriber))
    }

    fn confirm(&mut self, token: &str, txn: &mut Txn) -> bool {
        let Some(subscriber) = self
            .by_token
            .get(token)
            .and_then(|id| self.subscribers.get_mut(id))
        else {
            return false;
        };
        if subscriber.confirmed_at.is_none() {
            subscriber.confirmed_at = Some(txn.now);
            txn.batch.put_subscriber(subscriber);
            self.counts_changed = true;
        }
        true
    }

    fn queue(&mut self, subscriber: u64, message: Message, txn: &mut Txn) {
        let seq = self.counters.next_notification_seq;
        self.counters.next_notification_seq += 1;
        txn.batch.put_notification(Notification {
            seq,
            subscriber,
            message,
            created_at: txn.now,
            attempts: 0,
            next_at: txn.now,
            event_id: format!("evt_{:032x}", rand::random::<u128>()),
        });
        self.wake = true;
    }

    /// Queues a scheduled call's mail to a ticket's reporter, in the call's own batch: sent
    /// by the subscription worker at least once, like subscribers' mail.
    pub fn mail_call(&mut self, mail: CallMail, txn: &mut Txn) {
        self.queue(0, Message::Call(mail), txn);
        txn.batch.set_subscription_counters(self.counters);
    }

    /// Writes an update for a public incident's change the public hears about (see
    /// [`ANNOUNCED`]; `note` for a public note). A restricted or hidden incident: nothing.
    pub fn announce(
        &mut self,
        event: &str,
        note: Option<&str>,
        incident: &Incident,
        restrictions: &Restrictions,
        page: &StatusPageConfig,
        txn: &mut Txn,
    ) {
        if note.is_none() && !ANNOUNCED.contains(&event) {
            return;
        }
        if visibility(incident, restrictions, page) != Visibility::Public {
            return;
        }
        let update = StatusUpdate {
            event: event.to_owned(),
            incident: incident.id.to_string(),
            title: incident.title.clone(),
            status: status_word(incident.state).to_owned(),
            services: services_of(incident, page)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            note: note.map(str::to_owned),
            at: txn.now,
        };
        let seq = self.counters.next_update_seq;
        self.counters.next_update_seq += 1;
        txn.batch.put_status_update(seq, update.clone());
        txn.batch.set_subscription_counters(self.counters);
        self.updates.insert(seq, update);
        self.wake = true;
    }

    /// Every pending update into one queue entry per confirmed subscriber whose services
    /// it touches (or who chose all), the update deleted in the same batch.
    fn fan_out(&mut self, txn: &mut Txn) -> usize {
        let updates = std::mem::take(&mut self.updates);
        let mut queued = 0;
        for (seq, update) in updates {
            let wanted: Vec<u64> = self
                .subscribers
                .values()
                .filter(|s| s.confirmed_at.is_some())
                .filter(|s| {
                    s.services.is_empty() || s.services.iter().any(|n| update.services.contains(n))
                })
                .map(|s| s.id)
                .collect();
            for id in wanted {
                self.queue(id, Message::Update(update.clone()), txn);
                queued += 1;
            }
            txn.batch.delete_status_update(seq);
        }
        queued
    }

    fn report(&mut self, outcomes: Vec<Outcome>, txn: &mut Txn) {
        for outcome in outcomes {
            match outcome {
                Outcome::Sent { seq, channel } => {
                    txn.batch.delete_notification(seq);
                    txn.pending.notifications.push((channel, "sent"));
                }
                Outcome::Failed { seq, channel } => {
                    txn.batch.delete_notification(seq);
                    txn.pending.notifications.push((channel, "failed"));
                }
                Outcome::Dropped { seq } => txn.batch.delete_notification(seq),
                Outcome::Retry(entry) => txn.batch.put_notification(*entry),
            }
        }
    }
}
