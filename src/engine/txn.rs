//! One batch's transaction context: the writes for the store, what the metrics must learn
//! once the batch is durable, and the replies that wait for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::incident::{Incident, Kind, Tier};
use crate::domain::priority::Priority;
use crate::domain::sla::SlaSignal;
use crate::metrics::Metrics;
use crate::store::{Batch, StoreError};

use super::Wakers;
use super::reply::{EngineError, Reply};

/// Everything one command does to a batch, and when.
pub(super) struct Txn {
    pub now: DateTime<Utc>,
    pub batch: Batch,
    pub pending: Pending,
    /// Answers to send once the batch is durable (or failed).
    replies: Replies,
}

/// One answer waiting for the commit: given the store's error if it failed.
type Answer = Box<dyn FnOnce(Option<&Arc<StoreError>>) + Send>;

/// The answers of a batch.
#[derive(Default)]
pub(super) struct Replies(Vec<Answer>);

impl Replies {
    /// Sends every answer: the outcomes if the commit succeeded, the error if not.
    pub fn send(self, failed: Option<&Arc<StoreError>>) {
        for reply in self.0 {
            reply(failed);
        }
    }
}

impl Txn {
    pub fn new(now: DateTime<Utc>) -> Txn {
        Txn {
            now,
            batch: Batch::default(),
            pending: Pending::default(),
            replies: Replies::default(),
        }
    }

    /// Answers `reply` with `outcome` once the batch is durable, or with the store's error
    /// if it is not.
    pub fn reply<T: Send + 'static>(&mut self, reply: Reply<T>, outcome: Result<T, EngineError>) {
        self.replies.0.push(Box::new(move |failed| {
            let outcome = match failed {
                None => outcome,
                Some(error) => Err(EngineError::Store(error.clone())),
            };
            let _ = reply.send(outcome);
        }));
    }

    pub fn take_replies(&mut self) -> Replies {
        std::mem::take(&mut self.replies)
    }
}

/// The gauge series one incident counts in: `incidentd_incidents_open` (if it is open) and
/// `incidentd_sla_open` (one per clock not stopped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Gauges {
    open: Option<[String; 4]>,
    sla: Vec<[&'static str; 4]>,
}

impl Gauges {
    pub fn of(incident: &Incident) -> Gauges {
        let open = incident.state.is_active().then(|| {
            [
                incident.priority.as_str().to_owned(),
                incident.tier.as_str().to_owned(),
                incident.state.as_str().to_owned(),
                incident.category.clone(),
            ]
        });
        let sla = incident
            .sla
            .iter()
            .filter_map(|(name, clock)| {
                let status = clock.open_status()?;
                Some([
                    name.as_str(),
                    incident.kind.as_str(),
                    incident.priority.as_str(),
                    status,
                ])
            })
            .collect();
        Gauges { open, sla }
    }

    /// Counts the incident in its series (at start-up).
    pub fn add_to(&self, metrics: &Metrics) {
        for labels in &self.sla {
            metrics.sla_open.with_label_values(labels).inc();
        }
        if let Some(labels) = &self.open {
            metrics.incidents_open.with_label_values(labels).inc();
        }
    }

    /// Moves the incident's count from `self`'s series to `after`'s.
    fn move_to(self, after: &Gauges, metrics: &Metrics) {
        if self.open != after.open {
            if let Some(labels) = &self.open {
                metrics.incidents_open.with_label_values(labels).dec();
            }
            if let Some(labels) = &after.open {
                metrics.incidents_open.with_label_values(labels).inc();
            }
        }
        if self.sla != after.sla {
            for labels in &self.sla {
                metrics.sla_open.with_label_values(labels).dec();
            }
            for labels in &after.sla {
                metrics.sla_open.with_label_values(labels).inc();
            }
        }
    }
}

/// What one batch did that the metrics and the read model must learn once it is durable.
#[derive(Default)]
pub(super) struct Pending {
    /// Incidents touched, with their gauge series before the batch.
    pub touched: HashMap<u64, Gauges>,
    opened: Vec<[String; 4]>,
    /// (priority, category) of each resolution.
    resolutions: Vec<(&'static str, String)>,
    /// What the SLA clocks did, with the incident's kind and priority.
    pub sla: Vec<(SlaSignal, Kind, Priority)>,
    pub rules: BTreeMap<String, bool>,
    /// How each consumer's outbox grew (entries queued) or shrank (delivered, dead).
    outbox: BTreeMap<String, i64>,
    /// Consumers that got entries in this batch: their workers are woken after the commit,
    /// whatever the net change (one delivered and one queued in the same batch is a new
    /// entry all the same).
    queued: BTreeSet<String>,
    /// (from, to, reason) of each tier change.
    pub escalations: Vec<(Tier, Tier, &'static str)>,
    /// Priorities of reopened incidents.
    reopened: Vec<&'static str>,
    /// Detectors whose shown state changed (firing, streaks, flapping).
    pub detectors_changed: bool,
    /// Silences added or ended.
    pub silences_changed: bool,
    /// Maintenances added, cancelled or ended.
    pub maintenances_changed: bool,
    /// A probe's day counted a run, or days were forgotten.
    pub uptime_changed: bool,
    /// Console sessions opened, ended or purged.
    pub sessions_changed: bool,
    /// (channel, outcome) of each subscriber notification sent or given up.
    pub notifications: Vec<(crate::store::Channel, &'static str)>,
}

impl Pending {
    /// Remembers the incident's gauge series before its first change in the batch.
    pub fn touch(&mut self, incident: &Incident) {
        self.touched
            .entry(incident.id.0)
            .or_insert_with(|| Gauges::of(incident));
    }

    /// A new incident: counted in no gauge before.
    pub fn touch_new(&mut self, id: u64) {
        self.touched.entry(id).or_default();
    }

    /// `n` entries were queued for the consumer.
    pub fn queued(&mut self, consumer: &str, n: usize) {
        if n == 0 {
            return;
        }
        *self.outbox.entry(consumer.to_owned()).or_insert(0) += n as i64;
        self.queued.insert(consumer.to_owned());
    }

    /// `n` of the consumer's entries left the outbox (delivered or dead-lettered).
    pub fn settled(&mut self, consumer: &str, n: usize) {
        *self.outbox.entry(consumer.to_owned()).or_insert(0) -= n as i64;
    }

    /// Counts an event in the counter it feeds, if any: what is counted is exactly what
    /// was announced.
    pub fn count(&mut self, event_type: &str, incident: &Incident) {
        let priority = incident.priority.as_str();
        match event_type {
            "incident.opened" => self.opened.push([
                priority.to_owned(),
                incident.category.clone(),
                incident.source.type_str().to_owned(),
                incident.kind.as_str().to_owned(),
            ]),
            "incident.resolved" => self.resolutions.push((priority, incident.category.clone())),
            "incident.reopened" => self.reopened.push(priority),
            _ => {}
        }
    }

    /// After a durable commit: update the metrics and wake the webhook workers. `current`
    /// finds an incident as it is now (None once closed).
    pub fn publish<'a>(
        self,
        metrics: &Metrics,
        wakers: &Wakers,
        current: impl Fn(u64) -> Option<&'a Incident>,
    ) {
        let m = metrics;
        for (id, before) in self.touched {
            let after = current(id).map(Gauges::of).unwrap_or_default();
            before.move_to(&after, m);
        }
        for labels in self.opened {
            m.incidents_opened_total.with_label_values(&labels).inc();
        }
        for (priority, category) in self.resolutions {
            m.incidents_resolved_total
                .with_label_values(&[priority, &category])
                .inc();
        }
        for (signal, kind, priority) in self.sla {
            m.observe_sla(signal, kind, priority);
        }
        for (from, to, reason) in self.escalations {
            m.escalations_total
                .with_label_values(&[from.as_str(), to.as_str(), reason])
                .inc();
        }
        for priority in self.reopened {
            m.incidents_reopened_total
                .with_label_values(&[priority])
                .inc();
        }
        for (rule, firing) in self.rules {
            m.rule_firing
                .with_label_values(&[&rule])
                .set(i64::from(firing));
        }
        for (channel, outcome) in self.notifications {
            m.status_notifications_total
                .with_label_values(&[channel.as_str(), outcome])
                .inc();
        }
        for (consumer, delta) in self.outbox {
            m.webhook_pending.with_label_values(&[&consumer]).add(delta);
        }
        for consumer in self.queued {
            if let Some(waker) = wakers.get(&consumer) {
                waker.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::*;

    /// A batch that acknowledges one of the consumer's entries and queues another leaves
    /// its outbox the same size, yet its worker must look: the new entry is there.
    #[tokio::test]
    async fn a_batch_that_queues_wakes_the_worker_whatever_the_net_change() {
        let waker = Arc::new(Notify::new());
        let wakers: Wakers = Arc::new(HashMap::from([("hook".to_owned(), waker.clone())]));
        let metrics = Metrics::new();
        let mut pending = Pending::default();
        pending.settled("hook", 1);
        pending.queued("hook", 1);
        pending.publish(&metrics, &wakers, |_| None);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), waker.notified());
        assert!(woken.await.is_ok(), "the worker was not woken");
        assert_eq!(
            metrics.webhook_pending.with_label_values(&["hook"]).get(),
            0
        );

        // Only acknowledgements: nothing new to read, no wake.
        let mut pending = Pending::default();
        pending.settled("hook", 1);
        pending.publish(&metrics, &wakers, |_| None);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(50), waker.notified());
        assert!(woken.await.is_err(), "woken for nothing");
    }
}
