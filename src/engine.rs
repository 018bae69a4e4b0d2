//! The engine: the single owner of incident state. One task takes [`Command`]s from a
//! channel, applies each to its in-memory state through the pure domain, and writes
//! everything the commands changed — incidents, timeline entries, detector state and the
//! webhook outbox — in **one** redb transaction per batch (group commit). Callers get their
//! answer only after that commit, so a 2xx from the API means the change is on disk, and an
//! event is in the outbox exactly when its change is.
//!
//! Batching is what makes durable writes fast: while one commit is being synced, new
//! commands queue up and the next commit carries all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, RuleConfig, WebhookConfig};
use crate::domain::condition::Condition;
use crate::domain::detector::{Detector, Thresholds, Transition};
use crate::domain::incident::{
    Effect, Incident, IncidentId, RuleSignal, TransitionError, fingerprint,
};
use crate::domain::observation::{History, Observation};
use crate::domain::priority::Level;
use crate::metrics::Metrics;
use crate::store::{Batch, OutboxEntry, Store, StoreError};
use crate::view::{IncidentView, timestamp};

/// How many queued commands one transaction may carry.
const MAX_BATCH: usize = 4096;
/// Commands waiting for the engine before senders wait.
const QUEUE: usize = 16 * 1024;

#[derive(Debug)]
pub enum Command {
    /// A probe result: evaluate the probe's rules for this subject.
    Observe {
        probe: String,
        /// The series' labels for a Prometheus probe; empty for single-target probes.
        subject: BTreeMap<String, String>,
        observation: Observation,
    },
    Acknowledge {
        id: IncidentId,
        actor: String,
    },
    Resolve {
        id: IncidentId,
        actor: String,
        resolution: Option<String>,
    },
    /// A webhook consumer answered 2xx (or 410): drop the entry from the outbox.
    Delivered {
        consumer: String,
        seq: u64,
    },
}

#[derive(Debug, Clone)]
pub enum Reply {
    Incident(Box<Incident>),
    Done,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("incident {0} not found")]
    NotFound(IncidentId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the change could not be stored: {0}")]
    Store(Arc<StoreError>),
    #[error("incidentd is shutting down")]
    Stopped,
}

struct Request {
    command: Command,
    reply: Option<oneshot::Sender<Result<Reply, EngineError>>>,
}

/// The way in: cheap to clone, one per caller.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
}

impl EngineHandle {
    /// Sends a command and waits until its effects are durable.
    pub async fn call(&self, command: Command) -> Result<Reply, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                command,
                reply: Some(reply),
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Queues a command without waiting for its commit (probe results: a probe never
    /// waits for the store).
    pub async fn send(&self, command: Command) -> Result<(), EngineError> {
        self.tx
            .send(Request {
                command,
                reply: None,
            })
            .await
            .map_err(|_| EngineError::Stopped)
    }

    /// Queues a command if there is room, never waiting: when the queue is full the command
    /// is dropped and `Full` says so (probe results are counted, not held up).
    pub fn try_send(&self, command: Command) -> Result<(), TrySendError<()>> {
        self.tx
            .try_send(Request {
                command,
                reply: None,
            })
            .map_err(|error| match error {
                TrySendError::Full(_) => TrySendError::Full(()),
                TrySendError::Closed(_) => TrySendError::Closed(()),
            })
    }
}

/// The key of one rule's (or probe's) state for one subject: the name alone for an empty
/// subject (as stored before subjects existed), else `name{k="v",…}`.
fn subject_key(name: &str, subject: &BTreeMap<String, String>) -> String {
    if subject.is_empty() {
        return name.to_owned();
    }
    let labels: Vec<String> = subject.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// A rule as the engine evaluates it.
struct Rule {
    name: String,
    probe: String,
    when: Condition,
    thresholds: Thresholds,
    title: Option<String>,
    category: String,
    impact: Level,
    urgency: Level,
    probe_labels: BTreeMap<String, String>,
}

impl Rule {
    /// The same labels as [`Incident::open_from_rule`] hashes: probe, rule, subject.
    fn fingerprint(&self, subject: &BTreeMap<String, String>) -> String {
        let mut labels = vec![("probe", self.probe.as_str()), ("rule", self.name.as_str())];
        labels.extend(subject.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        fingerprint(&labels)
    }

    fn from_config(rule: &RuleConfig, config: &Config) -> Rule {
        let probe_labels = config
            .probes
            .iter()
            .find(|p| p.name == rule.probe)
            .map(|p| p.labels.clone())
            .unwrap_or_default();
        Rule {
            name: rule.name.clone(),
            probe: rule.probe.clone(),
            when: rule.when.clone(),
            thresholds: Thresholds {
                after: rule.after,
                recover_after: rule.recover_after,
            },
            title: rule.incident.title.clone(),
            category: rule.incident.category.clone(),
            impact: rule.incident.impact,
            urgency: rule.incident.urgency,
            probe_labels,
        }
    }
}

/// Wakes the webhook worker of each consumer after a commit that enqueued for it.
pub type Wakers = Arc<HashMap<String, Arc<Notify>>>;

pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    rules: Vec<Rule>,
    rules_by_probe: HashMap<String, Vec<usize>>,
    consumers: Vec<WebhookConfig>,
    wakers: Wakers,
    state: State,
}

/// The in-memory state, rebuilt from the store at start (and after a failed commit).
#[derive(Default)]
struct State {
    /// Every incident that is not closed.
    incidents: HashMap<u64, Incident>,
    /// Fingerprint → the active incident carrying it (dedup).
    active_by_fingerprint: HashMap<String, IncidentId>,
    detectors: HashMap<String, Detector>,
    /// Recent results per probe, as long as the longest window of its rules needs.
    histories: HashMap<String, History>,
    next_incident_id: u64,
    next_timeline_seq: u64,
    next_outbox_seq: u64,
}

/// Labels of `incidentd_incidents_open` for one incident, if it counts as open.
type OpenKey = Option<[String; 4]>;

fn open_key(incident: &Incident) -> OpenKey {
    incident.state.is_active().then(|| {
        [
            incident.priority.as_str().to_owned(),
            incident.tier.as_str().to_owned(),
            incident.state.as_str().to_owned(),
            incident.category.clone(),
        ]
    })
}

/// What one batch did that the metrics must learn once it is durable.
#[derive(Default)]
struct Pending {
    /// Incidents touched, with their open-gauge labels before the batch.
    touched: HashMap<u64, OpenKey>,
    opened: Vec<[String; 4]>,
    first_responses: Vec<(&'static str, f64)>,
    resolutions: Vec<(&'static str, String, f64)>,
    rules: BTreeMap<String, bool>,
    outbox: BTreeMap<String, i64>,
}

impl Engine {
    /// Loads the state from the store and starts the engine task.
    pub fn start(
        store: Store,
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        wakers: Wakers,
        shutdown: CancellationToken,
    ) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), StoreError> {
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .map(|r| Rule::from_config(r, config))
            .collect();
        let mut rules_by_probe: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, rule) in rules.iter().enumerate() {
            rules_by_probe
                .entry(rule.probe.clone())
                .or_default()
                .push(index);
        }
        let mut engine = Engine {
            store,
            clock,
            metrics,
            rules,
            rules_by_probe,
            consumers: config.webhooks.clone(),
            wakers,
            state: State::default(),
        };
        engine.reload()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(engine.run(rx, shutdown));
        Ok((EngineHandle { tx }, task))
    }

    /// Rebuilds the in-memory state and the gauges that describe it from the store.
    fn reload(&mut self) -> Result<(), StoreError> {
        let loaded = self.store.load()?;
        let mut state = State {
            next_incident_id: loaded.next_incident_id,
            next_timeline_seq: loaded.next_timeline_seq,
            next_outbox_seq: loaded.next_outbox_seq,
            detectors: loaded.detectors.into_iter().collect(),
            ..State::default()
        };
        self.metrics.incidents_open.reset();
        for incident in loaded.incidents {
            if let Some(labels) = open_key(&incident) {
                self.metrics.incidents_open.with_label_values(&labels).inc();
                state
                    .active_by_fingerprint
                    .insert(incident.fingerprint.clone(), incident.id);
            }
            state.incidents.insert(incident.id.0, incident);
        }
        for rule in &self.rules {
            let firing = state.detectors.get(&rule.name).is_some_and(|d| d.firing);
            self.metrics
                .rule_firing
                .with_label_values(&[&rule.name])
                .set(i64::from(firing));
        }
        self.metrics.webhook_pending.reset();
        let counts = self.store.outbox_counts()?;
        for consumer in &self.consumers {
            let count = counts.get(&consumer.name).copied().unwrap_or(0);
            self.metrics
                .webhook_pending
                .with_label_values(&[&consumer.name])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.state = state;
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let mut batch_requests = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                request = rx.recv() => request,
                () = shutdown.cancelled() => {
                    // Refuse new commands, then drain what is already queued.
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { break };
            batch_requests.push(first);
            while batch_requests.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(request) => batch_requests.push(request),
                    Err(_) => break,
                }
            }
            self.process(&mut batch_requests).await;
        }
        tracing::debug!("engine stopped");
    }

    async fn process(&mut self, requests: &mut Vec<Request>) {
        let mut batch = Batch::default();
        let mut pending = Pending::default();
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests.drain(..) {
            let now = self.clock.now();
            let outcome = self.apply(request.command, now, &mut batch, &mut pending);
            replies.push((request.reply, outcome));
        }
        let committed = if batch.is_empty() {
            Ok(())
        } else {
            batch.set_counters(
                self.state.next_incident_id,
                self.state.next_timeline_seq,
                self.state.next_outbox_seq,
            );
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.commit(&batch)).await {
                Ok(result) => result,
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        };
        match committed {
            Ok(()) => {
                self.publish(pending);
                for (reply, outcome) in replies {
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the batch's commands are refused and the state is reloaded from the store");
                let error = Arc::new(error);
                for (reply, _) in replies {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(EngineError::Store(error.clone())));
                    }
                }
                if let Err(error) = self.reload() {
                    tracing::error!(%error, "reloading the state failed");
                }
            }
        }
    }

    fn apply(
        &mut self,
        command: Command,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) -> Result<Reply, EngineError> {
        match command {
            Command::Observe {
                probe,
                subject,
                observation,
            } => {
                self.observe(&probe, &subject, &observation, now, batch, pending);
                Ok(Reply::Done)
            }
            Command::Acknowledge { id, actor } => {
                let incident = self.incident_mut(id)?;
                let before = open_key(incident);
                let effects = incident.acknowledge(&actor, now)?;
                let first_response = (now - incident.opened_at).as_seconds_f64();
                pending
                    .first_responses
                    .push((incident.priority.as_str(), first_response.max(0.0)));
                pending.touched.entry(id.0).or_insert(before);
                Ok(Reply::Incident(Box::new(
                    self.commit_effects(id, &actor, effects, now, batch, pending),
                )))
            }
            Command::Resolve {
                id,
                actor,
                resolution,
            } => {
                let incident = self.incident_mut(id)?;
                let before = open_key(incident);
                let effects = incident.resolve(&actor, resolution, now)?;
                pending.touched.entry(id.0).or_insert(before);
                self.note_resolution(id, now, pending);
                Ok(Reply::Incident(Box::new(
                    self.commit_effects(id, &actor, effects, now, batch, pending),
                )))
            }
            Command::Delivered { consumer, seq } => {
                batch.delete_outbox(&consumer, seq);
                *pending.outbox.entry(consumer).or_insert(0) -= 1;
                Ok(Reply::Done)
            }
        }
    }

    fn incident_mut(&mut self, id: IncidentId) -> Result<&mut Incident, EngineError> {
        if !self.state.incidents.contains_key(&id.0) {
            // Closed incidents are not kept in memory.
            let stored = self
                .store
                .get_incident(id)
                .map_err(|e| EngineError::Store(Arc::new(e)))?
                .ok_or(EngineError::NotFound(id))?;
            self.state.incidents.insert(id.0, stored);
        }
        Ok(self.state.incidents.get_mut(&id.0).expect("inserted above"))
    }

    fn note_resolution(&mut self, id: IncidentId, now: DateTime<Utc>, pending: &mut Pending) {
        let incident = &self.state.incidents[&id.0];
        self.state
            .active_by_fingerprint
            .retain(|_, active| *active != id);
        pending.resolutions.push((
            incident.priority.as_str(),
            incident.category.clone(),
            (now - incident.opened_at).as_seconds_f64().max(0.0),
        ));
    }

    fn observe(
        &mut self,
        probe: &str,
        subject: &BTreeMap<String, String>,
        observation: &Observation,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let Some(rule_indexes) = self.rules_by_probe.get(probe) else {
            return;
        };
        let history = self
            .state
            .histories
            .entry(subject_key(probe, subject))
            .or_default();
        history.push_back(observation.clone());
        let keep = rule_indexes
            .iter()
            .filter_map(|&i| self.rules[i].when.window())
            .max()
            .and_then(|window| chrono::Duration::from_std(window).ok());
        while history.len() > 1
            && history
                .front()
                .is_some_and(|oldest| keep.is_none_or(|keep| oldest.at < observation.at - keep))
        {
            history.pop_front();
        }
        let history = history.clone();
        for &index in &rule_indexes.clone() {
            let rule = &self.rules[index];
            let symptom = rule.when.eval(&history);
            let key = subject_key(&rule.name, subject);
            let detector = self.state.detectors.entry(key.clone()).or_default();
            let before = *detector;
            let transition = detector.observe(symptom, rule.thresholds);
            if *detector != before {
                batch.put_detector(&key, *detector);
            }
            match transition {
                None => {}
                Some(Transition::Fired) => {
                    pending.rules.insert(rule.name.clone(), true);
                    self.open_for_rule(index, subject, observation, now, batch, pending);
                }
                Some(Transition::Recovered) => {
                    pending.rules.insert(rule.name.clone(), false);
                    self.recover_for_rule(index, subject, observation, now, batch, pending);
                }
            }
        }
    }

    fn open_for_rule(
        &mut self,
        index: usize,
        subject: &BTreeMap<String, String>,
        observation: &Observation,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let rule = &self.rules[index];
        let fingerprint = rule.fingerprint(subject);
        if self.state.active_by_fingerprint.contains_key(&fingerprint) {
            return; // dedup: the symptom is already an open incident
        }
        let id = IncidentId(self.state.next_incident_id);
        self.state.next_incident_id += 1;
        let signal = RuleSignal {
            rule: &rule.name,
            probe: &rule.probe,
            condition: rule.when.source(),
            title_template: rule.title.as_deref(),
            category: &rule.category,
            impact: rule.impact,
            urgency: rule.urgency,
            probe_labels: &rule.probe_labels,
            subject,
            observation,
        };
        let (incident, effects) = Incident::open_from_rule(id, &signal, now);
        tracing::info!(incident = %id, rule = %rule.name, priority = %incident.priority, "incident opened");
        pending.opened.push([
            incident.priority.as_str().to_owned(),
            incident.category.clone(),
            incident.source.type_str().to_owned(),
            incident.kind.as_str().to_owned(),
        ]);
        pending.touched.entry(id.0).or_insert(None);
        self.state.active_by_fingerprint.insert(fingerprint, id);
        self.state.incidents.insert(id.0, incident);
        self.commit_effects(id, "system", effects, now, batch, pending);
    }

    fn recover_for_rule(
        &mut self,
        index: usize,
        subject: &BTreeMap<String, String>,
        observation: &Observation,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let fingerprint = self.rules[index].fingerprint(subject);
        let Some(&id) = self.state.active_by_fingerprint.get(&fingerprint) else {
            return; // resolved by hand already
        };
        let incident = self
            .state
            .incidents
            .get_mut(&id.0)
            .expect("active incidents are in memory");
        let before = open_key(incident);
        let effects = incident.recover(observation, now);
        if effects.is_empty() {
            return;
        }
        tracing::info!(incident = %id, rule = %self.rules[index].name, "incident resolved: rule recovered");
        pending.touched.entry(id.0).or_insert(before);
        self.note_resolution(id, now, pending);
        self.commit_effects(id, "system", effects, now, batch, pending);
    }

    /// Writes the incident, its timeline entries and its events (one outbox entry per
    /// subscribed consumer) into the batch; returns the incident as it now is.
    fn commit_effects(
        &mut self,
        id: IncidentId,
        actor: &str,
        effects: Vec<Effect>,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) -> Incident {
        let incident = self.state.incidents[&id.0].clone();
        batch.put_incident(&incident);
        for effect in effects {
            match effect {
                Effect::Timeline(entry) => {
                    batch.append_timeline(id, self.state.next_timeline_seq, entry);
                    self.state.next_timeline_seq += 1;
                }
                Effect::Event(event_type) => {
                    self.enqueue_event(event_type, actor, &incident, now, batch, pending);
                }
            }
        }
        incident
    }

    fn enqueue_event(
        &mut self,
        event_type: &'static str,
        actor: &str,
        incident: &Incident,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let subscribers: Vec<&WebhookConfig> = self
            .consumers
            .iter()
            .filter(|c| c.wants(event_type))
            .collect();
        if subscribers.is_empty() {
            return;
        }
        let event_id = format!("evt_{:032x}", rand::random::<u128>());
        let body = serde_json::to_string(&EventBody {
            id: &event_id,
            kind: event_type,
            occurred_at: timestamp(now),
            actor,
            incident: IncidentView::new(incident, None),
        })
        .expect("events serialize to JSON");
        for consumer in subscribers {
            batch.enqueue(OutboxEntry {
                consumer: consumer.name.clone(),
                seq: self.state.next_outbox_seq,
                event_id: event_id.clone(),
                event_type: event_type.to_owned(),
                incident: incident.id.0,
                created_at: now,
                body: body.clone(),
            });
            self.state.next_outbox_seq += 1;
            *pending.outbox.entry(consumer.name.clone()).or_insert(0) += 1;
        }
    }

    /// After a durable commit: update the metrics and wake the webhook workers.
    fn publish(&self, pending: Pending) {
        let m = &self.metrics;
        for (id, before) in pending.touched {
            let after = self.state.incidents.get(&id).and_then(open_key);
            if before != after {
                if let Some(labels) = before {
                    m.incidents_open.with_label_values(&labels).dec();
                }
                if let Some(labels) = after {
                    m.incidents_open.with_label_values(&labels).inc();
                }
            }
        }
        for labels in pending.opened {
            m.incidents_opened_total.with_label_values(&labels).inc();
        }
        for (priority, seconds) in pending.first_responses {
            m.first_response_seconds
                .with_label_values(&[priority])
                .observe(seconds);
        }
        for (priority, category, seconds) in pending.resolutions {
            m.incidents_resolved_total
                .with_label_values(&[priority, &category])
                .inc();
            m.resolution_seconds
                .with_label_values(&[priority])
                .observe(seconds);
        }
        for (rule, firing) in pending.rules {
            m.rule_firing
                .with_label_values(&[&rule])
                .set(i64::from(firing));
        }
        for (consumer, delta) in pending.outbox {
            m.webhook_pending.with_label_values(&[&consumer]).add(delta);
            if delta > 0
                && let Some(waker) = self.wakers.get(&consumer)
            {
                waker.notify_one();
            }
        }
    }
}

/// The webhook body: `{"id", "type", "occurred_at", "actor", "incident"}`.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    occurred_at: String,
    actor: &'a str,
    incident: IncidentView<'a>,
}
