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
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, MaintenanceWindow, RuleConfig, WebhookConfig};
use crate::domain::condition::Condition;
use crate::domain::detector::{Detector, Thresholds, Transition};
use crate::domain::duration::format_duration;
use crate::domain::incident::{
    Changes, DATA_BREACH, Effect, Incident, IncidentId, Kind, Reporter, RuleSignal, SYSTEM,
    State as IncidentState, Ticket, Tier, TransitionError, Verification,
};
use crate::domain::observation::{History, Observation};
use crate::domain::policy::WorkflowConfig;
use crate::domain::priority::{Level, Priority};
use crate::domain::sla::{self, SlaSignal};
use crate::domain::suppression::{Silence, in_maintenance};
use crate::domain::timer::{Timer, TimerKind, Timers};
use crate::metrics::Metrics;
use crate::store::{Batch, Counters, OutboxEntry, Store, StoreError};
use crate::view::{Clearance, Restrictions, timestamp};

/// How often due timers are looked for.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How many queued commands one transaction may carry.
const MAX_BATCH: usize = 4096;
/// The share of the breach-notification deadline at which the warning fires.
/// Commands waiting for the engine before senders wait.
const QUEUE: usize = 16 * 1024;

#[derive(Debug)]
pub enum Command {
    /// A probe result for one subject (a Prometheus series; empty labels for single-target
    /// probes): evaluate the probe's rules.
    Observe {
        probe: String,
        subject: BTreeMap<String, String>,
        observation: Observation,
    },
    /// After a probe run that lists every subject (a successful Prometheus query): the
    /// subjects not in `present` are gone, which counts as a clean result for each.
    Subjects {
        probe: String,
        present: Vec<BTreeMap<String, String>>,
        at: DateTime<Utc>,
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
    /// A person's ticket: checked against the configured categories and matrix.
    OpenTicket {
        ticket: NewTicket,
        actor: String,
    },
    Note {
        id: IncidentId,
        actor: String,
        text: String,
        public: bool,
    },
    Hold {
        id: IncidentId,
        actor: String,
        reason: String,
    },
    Resume {
        id: IncidentId,
        actor: String,
    },
    /// To `tier`, or the next one. `may_lower`: the caller is an admin.
    Escalate {
        id: IncidentId,
        actor: String,
        reason: String,
        tier: Option<Tier>,
        may_lower: bool,
    },
    /// `PATCH`: audited field changes.
    Update {
        id: IncidentId,
        actor: String,
        changes: Changes,
        reason: String,
    },
    Close {
        id: IncidentId,
        actor: String,
    },
    Reopen {
        id: IncidentId,
        actor: String,
        reason: String,
    },
    /// A webhook consumer answered 2xx (or 410): drop the entry from the outbox.
    Delivered {
        consumer: String,
        seq: u64,
    },
    /// Suppress opening incidents whose labels match, for a while.
    Silence {
        matchers: BTreeMap<String, String>,
        starts_at: Option<DateTime<Utc>>,
        ends_at: DateTime<Utc>,
        created_by: String,
        comment: String,
    },
    /// End a silence now.
    Expire {
        id: u64,
    },
    /// Read: the silences that have not ended.
    Silences,
    /// Read: every rule's state per subject.
    Rules,
    /// Fire the durable timers that are due (sent by the engine's own ticker).
    Tick,
}

/// A ticket as the API received it; the engine settles category, kind and priority.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: String,
    pub description: String,
    pub reporter: Reporter,
    pub kind: Option<Kind>,
    pub category: Option<String>,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Incident(Box<Incident>),
    Silence(Silence),
    Silences(Vec<Silence>),
    Rules(Vec<RuleStatus>),
    Done,
}

/// One rule as `GET /api/v1/rules` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStatus {
    pub name: String,
    pub probe: String,
    pub when: String,
    pub after: u32,
    pub recover_after: u32,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    pub depends_on: Vec<String>,
    pub firing: bool,
    pub subjects: Vec<SubjectStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectStatus {
    pub labels: BTreeMap<String, String>,
    pub firing: bool,
    pub flapping: bool,
    pub symptomatic_streak: u32,
    pub clean_streak: u32,
    pub symptom_since: Option<String>,
    /// Why a firing subject has no incident: `maintenance`, `silenced`, `depends_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("incident {0} not found")]
    NotFound(IncidentId),
    #[error("silence {0} not found")]
    SilenceNotFound(u64),
    #[error("{0}")]
    Invalid(String),
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

    /// Queues a command if there is room, never waiting: when the queue is full the command
    /// is dropped and `Full` says so (probe results are counted, not held up).
    pub fn try_send(&self, command: Command) -> Result<(), mpsc::error::TrySendError<()>> {
        use mpsc::error::TrySendError;
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
    /// impact × urgency by the configured matrix, and where that priority starts.
    priority: Priority,
    start_tier: Tier,
    /// The probe's `service` label, or the probe's name: what an incident is about.
    group: String,
    depends_on: Vec<String>,
    maintenance: Vec<MaintenanceWindow>,
    auto_resolve: bool,
}

impl Rule {
    fn from_config(rule: &RuleConfig, config: &Config) -> Rule {
        let priority = config
            .workflow
            .priority_matrix
            .priority(rule.incident.impact, rule.incident.urgency);
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
                for_: rule.for_,
                flapping_changes: rule.flapping_changes,
                flapping_window: rule.flapping_window,
            },
            priority,
            start_tier: if rule.incident.category == DATA_BREACH {
                Tier::L3
            } else {
                config.workflow.escalation.policy(priority).start_tier
            },
            title: rule.incident.title.clone(),
            category: rule.incident.category.clone(),
            impact: rule.incident.impact,
            urgency: rule.incident.urgency,
            group: probe_labels
                .get("service")
                .cloned()
                .unwrap_or_else(|| rule.probe.clone()),
            probe_labels,
            depends_on: rule.depends_on.clone(),
            maintenance: rule.maintenance.clone(),
            auto_resolve: rule.auto_resolve,
        }
    }

    fn signal<'a>(
        &'a self,
        group: &'a str,
        subject: &'a BTreeMap<String, String>,
        observation: &'a Observation,
    ) -> RuleSignal<'a> {
        RuleSignal {
            group,
            rule: &self.name,
            probe: &self.probe,
            condition: self.when.source(),
            title_template: self.title.as_deref(),
            category: &self.category,
            impact: self.impact,
            urgency: self.urgency,
            priority: self.priority,
            start_tier: self.start_tier,
            probe_labels: &self.probe_labels,
            subject,
            observation,
        }
    }

    /// The labels an incident of this rule for `subject` carries (what silences match).
    fn labels(&self, subject: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels = self.probe_labels.clone();
        labels.extend(subject.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert("rule".to_owned(), self.name.clone());
        labels.insert("probe".to_owned(), self.probe.clone());
        labels
    }
}

/// How a result counts for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Evaluate each rule's condition.
    Evaluate,
    /// No symptom, whatever the conditions say (a series that disappeared).
    Clean,
}

/// `k="v",…` — the canonical text of a label set, "" when empty.
fn labels_key(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `name` or `name{k="v",…}`.
fn keyed(name: &str, subject_key: &str) -> String {
    if subject_key.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{subject_key}}}")
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
    workflow: WorkflowConfig,
    /// Which incidents are restricted: their events reach only `security` consumers in full.
    restrictions: Restrictions,
    wakers: Wakers,
    state: State,
}

/// The in-memory state, rebuilt from the store at start (and after a failed commit).
#[derive(Default)]
struct State {
    /// Every incident that is not closed.
    incidents: HashMap<u64, Incident>,
    /// Group (service and subject) → the active incident about it (dedup and raise).
    active_by_group: HashMap<String, IncidentId>,
    /// Group → its most recent incident that is resolved but not closed: a rule that
    /// fires again for the group reopens it instead of opening a new one.
    resolved_by_group: HashMap<String, IncidentId>,
    /// Armed durable timers, earliest first and by incident.
    timers: Timers,
    /// Key: rule, or `rule{subject labels}`.
    detectors: HashMap<String, Detector>,
    /// Subject labels of each detector key (for the rules API).
    subjects: HashMap<String, BTreeMap<String, String>>,
    /// Recent results per probe subject, as long as the longest window of its rules needs.
    histories: HashMap<String, History>,
    silences: BTreeMap<u64, Silence>,
    counters: Counters,
}

/// The gauge series one incident counts in: `incidentd_incidents_open` (if it is open) and
/// `incidentd_sla_open` (one per clock not stopped).
#[derive(Debug, Default, PartialEq, Eq)]
struct Gauges {
    open: Option<[String; 4]>,
    sla: Vec<[&'static str; 4]>,
}

fn gauges(incident: &Incident) -> Gauges {
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

/// What one batch did that the metrics must learn once it is durable.
#[derive(Default)]
struct Pending {
    /// Incidents touched, with their open-gauge labels before the batch.
    touched: HashMap<u64, Gauges>,
    opened: Vec<[String; 4]>,
    /// (priority, category) of each resolution.
    resolutions: Vec<(&'static str, String)>,
    /// What the SLA clocks did, with the incident's kind and priority.
    sla: Vec<(SlaSignal, Kind, Priority)>,
    rules: BTreeMap<String, bool>,
    outbox: BTreeMap<String, i64>,
    /// (from, to, reason) of each tier change.
    escalations: Vec<(Tier, Tier, &'static str)>,
    /// Priorities of reopened incidents.
    reopened: Vec<&'static str>,
}

impl Pending {
    /// Counts an event in the counter it feeds, if any: what is counted is exactly what
    /// was announced.
    fn count(&mut self, event_type: &str, incident: &Incident) {
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
            workflow: config.workflow.clone(),
            restrictions: Restrictions::from_workflow(&config.workflow),
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
        let now = self.clock.now();
        let mut state = State {
            counters: Counters {
                next_incident_id: loaded.next_incident_id,
                next_timeline_seq: loaded.next_timeline_seq,
                next_outbox_seq: loaded.next_outbox_seq,
                next_silence_id: loaded.next_silence_id,
            },
            silences: loaded
                .silences
                .into_iter()
                .filter(|s| s.ends_at > now)
                .map(|s| (s.id, s))
                .collect(),
            timers: loaded.timers.into_iter().collect(),
            ..State::default()
        };
        for (key, (subject, detector)) in loaded.detectors {
            state.subjects.insert(key.clone(), subject);
            state.detectors.insert(key, detector);
        }
        self.metrics.incidents_open.reset();
        self.metrics.reset_sla_open();
        for incident in loaded.incidents {
            let Gauges { open, sla } = gauges(&incident);
            for labels in sla {
                self.metrics.sla_open.with_label_values(&labels).inc();
            }
            if let Some(labels) = open {
                self.metrics.incidents_open.with_label_values(&labels).inc();
                state
                    .active_by_group
                    .insert(incident.group.clone(), incident.id);
            }
            if incident.state == IncidentState::Resolved {
                let latest = state
                    .resolved_by_group
                    .entry(incident.group.clone())
                    .or_insert(incident.id);
                *latest = (*latest).max(incident.id);
            }
            state.incidents.insert(incident.id.0, incident);
        }
        self.state = state;
        for rule in &self.rules {
            let firing = self.rule_firing(&rule.name);
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
        Ok(())
    }

    /// Whether any subject of the rule is firing.
    fn rule_firing(&self, rule: &str) -> bool {
        self.state
            .detectors
            .iter()
            .any(|(key, detector)| detector.firing && key.split('{').next() == Some(rule))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let mut batch_requests = Vec::with_capacity(MAX_BATCH);
        // Durable timers are checked against the clock every tick (the clock, not tokio's
        // time, says when they are due: a manual clock drives them in tests).
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let first = tokio::select! {
                request = rx.recv() => request,
                _ = ticks.tick() => Some(Request { command: Command::Tick, reply: None }),
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
            batch.set_counters(self.state.counters);
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
                let verdict = Verdict::Evaluate;
                self.observe(&probe, &subject, observation, verdict, now, batch, pending);
                Ok(Reply::Done)
            }
            Command::Subjects { probe, present, at } => {
                self.vanished(&probe, &present, at, now, batch, pending);
                Ok(Reply::Done)
            }
            Command::Acknowledge { id, actor } => {
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.acknowledge(&actor, now)
                })
            }
            Command::Resolve {
                id,
                actor,
                resolution,
            } => self.transition(id, &actor, now, batch, pending, |incident| {
                incident.resolve(&actor, resolution, now)
            }),
            Command::OpenTicket { ticket, actor } => {
                self.open_ticket(ticket, &actor, now, batch, pending)
            }
            Command::Note {
                id,
                actor,
                text,
                public,
            } => self.transition(id, &actor, now, batch, pending, |incident| {
                incident.add_note(&actor, &text, public, now)
            }),
            Command::Hold { id, actor, reason } => {
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.hold(&actor, &reason, now)
                })
            }
            Command::Resume { id, actor } => {
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.resume(&actor, now)
                })
            }
            Command::Escalate {
                id,
                actor,
                reason,
                tier,
                may_lower,
            } => self.transition(id, &actor, now, batch, pending, |incident| {
                incident.escalate(&actor, &reason, tier, may_lower, now)
            }),
            Command::Update {
                id,
                actor,
                changes,
                reason,
            } => {
                if let Some(category) = &changes.category {
                    self.check_category(category)?;
                }
                let matrix = self.workflow.priority_matrix;
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.update(
                        &actor,
                        changes,
                        &reason,
                        |impact, urgency| matrix.priority(impact, urgency),
                        now,
                    )
                })
            }
            Command::Close { id, actor } => {
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.close(&actor, now)
                })
            }
            Command::Reopen { id, actor, reason } => {
                self.transition(id, &actor, now, batch, pending, |incident| {
                    incident.reopen(&actor, &reason, now)
                })
            }
            Command::Delivered { consumer, seq } => {
                batch.delete_outbox(&consumer, seq);
                *pending.outbox.entry(consumer).or_insert(0) -= 1;
                Ok(Reply::Done)
            }
            Command::Silence {
                matchers,
                starts_at,
                ends_at,
                created_by,
                comment,
            } => {
                let starts_at = starts_at.unwrap_or(now);
                if matchers.is_empty() {
                    return Err(EngineError::Invalid(
                        "a silence needs at least one matcher".to_owned(),
                    ));
                }
                if ends_at <= starts_at || ends_at <= now {
                    return Err(EngineError::Invalid(
                        "ends_at must be after starts_at and in the future".to_owned(),
                    ));
                }
                let silence = Silence {
                    id: self.state.counters.next_silence_id,
                    matchers,
                    starts_at,
                    ends_at,
                    created_by,
                    comment,
                };
                self.state.counters.next_silence_id += 1;
                batch.put_silence(&silence);
                self.state.silences.insert(silence.id, silence.clone());
                Ok(Reply::Silence(silence))
            }
            Command::Expire { id } => {
                let silence = self
                    .state
                    .silences
                    .remove(&id)
                    .ok_or(EngineError::SilenceNotFound(id))?;
                let expired = Silence {
                    ends_at: now.max(silence.starts_at),
                    ..silence
                };
                batch.put_silence(&expired);
                Ok(Reply::Silence(expired))
            }
            Command::Silences => {
                self.state.silences.retain(|_, s| s.ends_at > now);
                Ok(Reply::Silences(
                    self.state.silences.values().cloned().collect(),
                ))
            }
            Command::Rules => Ok(Reply::Rules(self.rule_statuses(now))),
            Command::Tick => {
                self.tick(now, batch, pending);
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

    /// Runs one workflow transition on an incident and stores what it did.
    fn transition(
        &mut self,
        id: IncidentId,
        actor: &str,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
        change: impl FnOnce(&mut Incident) -> Result<Vec<Effect>, TransitionError>,
    ) -> Result<Reply, EngineError> {
        let incident = self.incident_mut(id)?;
        let before = gauges(incident);
        let result = change(incident);
        let effects = match result {
            Ok(effects) => effects,
            Err(error) => {
                self.reindex(id); // drops a closed incident loaded for nothing
                return Err(error.into());
            }
        };
        pending.touched.entry(id.0).or_insert(before);
        let incident = self.commit_effects(id, actor, effects, now, batch, pending);
        self.reindex(id);
        Ok(Reply::Incident(Box::new(incident)))
    }

    /// Keeps the group maps in step with the incident's state after a transition, and
    /// drops closed incidents from memory (they live in the store only).
    fn reindex(&mut self, id: IncidentId) {
        let Some(incident) = self.state.incidents.get(&id.0) else {
            return;
        };
        let group = incident.group.clone();
        let state = incident.state;
        let drop_if_is = |map: &mut HashMap<String, IncidentId>| {
            if map.get(&group) == Some(&id) {
                map.remove(&group);
            }
        };
        match state {
            IncidentState::Open | IncidentState::Acknowledged | IncidentState::OnHold => {
                drop_if_is(&mut self.state.resolved_by_group);
                // A reopened incident takes its group back unless another one is active.
                self.state.active_by_group.entry(group).or_insert(id);
            }
            IncidentState::Resolved => {
                drop_if_is(&mut self.state.active_by_group);
                let latest = self.state.resolved_by_group.entry(group).or_insert(id);
                *latest = (*latest).max(id);
            }
            IncidentState::Closed => {
                drop_if_is(&mut self.state.active_by_group);
                drop_if_is(&mut self.state.resolved_by_group);
                self.state.incidents.remove(&id.0);
            }
        }
    }

    fn check_category(&self, name: &str) -> Result<(), EngineError> {
        if self.workflow.category(name).is_some() {
            return Ok(());
        }
        let valid: Vec<&str> = self
            .workflow
            .categories
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        Err(EngineError::Invalid(format!(
            "unknown category `{name}`; valid: {}",
            valid.join(", ")
        )))
    }

    fn open_ticket(
        &mut self,
        ticket: NewTicket,
        actor: &str,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) -> Result<Reply, EngineError> {
        // Without a category: the first configured one of the ticket's kind.
        let wanted = ticket.kind.unwrap_or(Kind::Incident);
        let category = match ticket.category {
            Some(name) => {
                self.check_category(&name)?;
                self.workflow.category(&name).expect("checked").clone()
            }
            None => self
                .workflow
                .categories
                .iter()
                .find(|c| c.kind == wanted)
                .or(self.workflow.categories.first())
                .cloned()
                .ok_or_else(|| EngineError::Invalid("no categories are configured".to_owned()))?,
        };
        let kind = ticket.kind.unwrap_or(category.kind);
        let impact = ticket.impact.unwrap_or(Level::Medium);
        let urgency = ticket.urgency.unwrap_or(Level::Medium);
        let priority = self.workflow.priority_matrix.priority(impact, urgency);
        let start_tier = self.workflow.escalation.policy(priority).start_tier;
        let id = IncidentId(self.state.counters.next_incident_id);
        self.state.counters.next_incident_id += 1;
        let (incident, effects) = Incident::open_ticket(
            id,
            Ticket {
                title: ticket.title,
                description: ticket.description,
                reporter: ticket.reporter,
                kind,
                category: category.name,
                impact,
                urgency,
                service: ticket.service,
                labels: ticket.labels,
            },
            priority,
            start_tier,
            actor,
            now,
        );
        tracing::info!(incident = %id, kind = incident.kind.as_str(), priority = %incident.priority, "ticket opened");
        pending.touched.entry(id.0).or_default();
        self.state
            .active_by_group
            .insert(incident.group.clone(), id);
        self.state.incidents.insert(id.0, incident);
        Ok(Reply::Incident(Box::new(
            self.commit_effects(id, actor, effects, now, batch, pending),
        )))
    }

    /// Evaluates the probe's rules on a new result of one subject (or takes it as clean)
    /// and reconciles incidents with what the detectors say.
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        probe: &str,
        subject: &BTreeMap<String, String>,
        observation: Observation,
        verdict: Verdict,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let Some(rule_indexes) = self.rules_by_probe.get(probe).cloned() else {
            return;
        };
        let subject_key = labels_key(subject);
        let keep = rule_indexes
            .iter()
            .filter_map(|&i| self.rules[i].when.window())
            .max()
            .and_then(|window| chrono::Duration::from_std(window).ok());
        let mut history = self
            .state
            .histories
            .remove(&keyed(probe, &subject_key))
            .unwrap_or_default();
        // Keep bodies only for the newest result: windows read numbers.
        if let Some(previous) = history.back_mut() {
            *previous = previous.summary();
        }
        let newest = observation.at;
        history.push_back(observation);
        while history.len() > 1
            && history
                .front()
                .is_some_and(|oldest| keep.is_none_or(|keep| oldest.at < newest - keep))
        {
            history.pop_front();
        }
        // The newest result is the last of the history (moved there, not copied).
        let observation = history.back().expect("just pushed");
        for index in rule_indexes {
            let rule = &self.rules[index];
            let symptom = verdict == Verdict::Evaluate && rule.when.eval(&history);
            let key = keyed(&rule.name, &subject_key);
            let detector = self.state.detectors.entry(key.clone()).or_default();
            let before = *detector;
            let transition = detector.observe(symptom, observation.at, rule.thresholds);
            let detector = *detector;
            if detector.differs_beyond_history(&before) {
                batch.put_detector(&key, subject, detector);
                self.state.subjects.insert(key, subject.clone());
            }
            if transition.is_some() {
                let firing = self.rule_firing(&self.rules[index].name);
                pending.rules.insert(self.rules[index].name.clone(), firing);
            }
            if detector.firing {
                self.ensure_open(
                    index,
                    subject,
                    &subject_key,
                    observation,
                    now,
                    batch,
                    pending,
                );
            } else if transition == Some(Transition::Recovered) {
                self.recover_for_rule(index, &subject_key, observation, now, batch, pending);
            }
        }
        self.state
            .histories
            .insert(keyed(probe, &subject_key), history);
    }

    /// Subjects of the probe's rules that the last run did not return: feed each a clean
    /// result so that its detector recovers (and its incident resolves) as for any other
    /// clean result, then forget its history.
    fn vanished(
        &mut self,
        probe: &str,
        present: &[BTreeMap<String, String>],
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let Some(rule_indexes) = self.rules_by_probe.get(probe) else {
            return;
        };
        let present: std::collections::HashSet<String> = present.iter().map(labels_key).collect();
        let mut gone: Vec<BTreeMap<String, String>> = Vec::new();
        for &index in rule_indexes {
            let prefix = format!("{}{{", self.rules[index].name);
            for (key, detector) in &self.state.detectors {
                if !key.starts_with(&prefix) || *detector == Detector::default() {
                    continue;
                }
                let subject = self.state.subjects.get(key).cloned().unwrap_or_default();
                if !present.contains(&labels_key(&subject)) && !gone.contains(&subject) {
                    gone.push(subject);
                }
            }
        }
        for subject in gone {
            let clean = Observation {
                connected: true,
                error: None,
                ..Observation::new(at)
            };
            // An empty history: a vanished series has no window to read.
            self.state
                .histories
                .remove(&keyed(probe, &labels_key(&subject)));
            self.observe(probe, &subject, clean, Verdict::Clean, now, batch, pending);
            self.state
                .histories
                .remove(&keyed(probe, &labels_key(&subject)));
        }
    }

    /// Why a firing rule must not open an incident now, if it must not.
    fn suppressed(
        &self,
        rule: &Rule,
        subject: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Option<&'static str> {
        if rule
            .maintenance
            .iter()
            .any(|w| in_maintenance(w.start, w.duration, &w.weekdays, w.utc_offset_seconds, now))
        {
            return Some("maintenance");
        }
        let labels = rule.labels(subject);
        if self
            .state
            .silences
            .values()
            .any(|s| s.matches(&labels, now))
        {
            return Some("silenced");
        }
        let parent_open = rule.depends_on.iter().any(|parent| {
            self.state
                .active_by_group
                .values()
                .any(|id| self.state.incidents[&id.0].firing_rules.contains(parent))
        });
        parent_open.then_some("depends_on")
    }

    /// The rule fires for this subject: make sure an incident says so — open one, or add
    /// the symptom to the group's active incident (raising its priority if worse) — unless
    /// opening is suppressed.
    #[allow(clippy::too_many_arguments)]
    fn ensure_open(
        &mut self,
        index: usize,
        subject: &BTreeMap<String, String>,
        subject_key: &str,
        observation: &Observation,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let rule = &self.rules[index];
        let group = keyed(&rule.group, subject_key);
        if let Some(&id) = self.state.active_by_group.get(&group) {
            let incident = self
                .state
                .incidents
                .get_mut(&id.0)
                .expect("active incidents are in memory");
            if incident.firing_rules.contains(&rule.name) {
                return; // dedup: this symptom is already on the incident
            }
            let before = gauges(incident);
            let effects = incident.raise(&rule.signal(&group, subject, observation), now);
            tracing::info!(incident = %id, rule = %rule.name, priority = %incident.priority, "symptom added to incident");
            pending.touched.entry(id.0).or_insert(before);
            self.commit_effects(id, SYSTEM, effects, now, batch, pending);
            return;
        }
        if self.suppressed(rule, subject, now).is_some() {
            return;
        }
        if let Some(&id) = self.state.resolved_by_group.get(&group) {
            let incident = self
                .state
                .incidents
                .get_mut(&id.0)
                .expect("resolved incidents are in memory until closed");
            if incident.firing_rules.contains(&rule.name) {
                return; // still the symptom its resolution waits on (verification pending)
            }
            let before = gauges(incident);
            if let Some(effects) =
                incident.symptom_returned(&rule.signal(&group, subject, observation), now)
            {
                tracing::info!(incident = %id, rule = %rule.name, "incident reopened: the symptom returned");
                pending.touched.entry(id.0).or_insert(before);
                self.commit_effects(id, SYSTEM, effects, now, batch, pending);
                self.reindex(id);
                return;
            }
        }
        let id = IncidentId(self.state.counters.next_incident_id);
        self.state.counters.next_incident_id += 1;
        let (mut incident, effects) =
            Incident::open_from_rule(id, &rule.signal(&group, subject, observation), now);
        // When the symptom began: clocks may start then (`sla.start: detected`).
        incident.detected_at = self
            .state
            .detectors
            .get(&keyed(&rule.name, subject_key))
            .and_then(|detector| detector.symptom_since)
            .filter(|since| *since < now);
        tracing::info!(incident = %id, rule = %rule.name, priority = %incident.priority, "incident opened");
        pending.touched.entry(id.0).or_default();
        self.state.active_by_group.insert(group, id);
        self.state.incidents.insert(id.0, incident);
        self.commit_effects(id, SYSTEM, effects, now, batch, pending);
    }

    fn recover_for_rule(
        &mut self,
        index: usize,
        subject_key: &str,
        observation: &Observation,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) {
        let rule = &self.rules[index];
        let group = keyed(&rule.group, subject_key);
        let Some(&id) = self
            .state
            .active_by_group
            .get(&group)
            .or_else(|| self.state.resolved_by_group.get(&group))
        else {
            return; // closed already, or never opened (suppressed)
        };
        let auto_resolve = rule.auto_resolve;
        let name = rule.name.clone();
        let incident = self
            .state
            .incidents
            .get_mut(&id.0)
            .expect("active incidents are in memory");
        let before = gauges(incident);
        let was_active = incident.state.is_active();
        let effects = incident.rule_recovered(&name, observation, auto_resolve, now);
        if effects.is_empty() {
            // Still firing for another rule: store the smaller set of firing rules.
            batch.put_incident(incident);
            return;
        }
        if was_active && !incident.state.is_active() {
            tracing::info!(incident = %id, rule = %name, "incident resolved: rule recovered");
        }
        pending.touched.entry(id.0).or_insert(before);
        self.commit_effects(id, SYSTEM, effects, now, batch, pending);
        self.reindex(id);
    }

    fn rule_statuses(&self, now: DateTime<Utc>) -> Vec<RuleStatus> {
        self.rules
            .iter()
            .map(|rule| {
                let mut subjects: Vec<SubjectStatus> = self
                    .state
                    .detectors
                    .iter()
                    .filter(|(key, _)| key.split('{').next() == Some(rule.name.as_str()))
                    .map(|(key, detector)| {
                        let labels = self.state.subjects.get(key).cloned().unwrap_or_default();
                        let group = keyed(&rule.group, &labels_key(&labels));
                        let incident = self
                            .state
                            .active_by_group
                            .get(&group)
                            .filter(|id| {
                                self.state.incidents[&id.0]
                                    .firing_rules
                                    .contains(&rule.name)
                            })
                            .map(ToString::to_string);
                        SubjectStatus {
                            suppressed: (detector.firing && incident.is_none())
                                .then(|| self.suppressed(rule, &labels, now))
                                .flatten(),
                            labels,
                            firing: detector.firing,
                            flapping: detector.flapping,
                            symptomatic_streak: detector.symptomatic_streak,
                            clean_streak: detector.clean_streak,
                            symptom_since: detector.symptom_since.map(timestamp),
                            incident,
                        }
                    })
                    .collect();
                subjects.sort_by(|a, b| a.labels.cmp(&b.labels));
                RuleStatus {
                    name: rule.name.clone(),
                    probe: rule.probe.clone(),
                    when: rule.when.source().to_owned(),
                    after: rule.thresholds.after,
                    recover_after: rule.thresholds.recover_after,
                    for_: rule.thresholds.for_.map(format_duration),
                    depends_on: rule.depends_on.clone(),
                    firing: subjects.iter().any(|s| s.firing),
                    subjects,
                }
            })
            .collect()
    }

    /// Writes the incident, its timeline entries and its events (one outbox entry per
    /// subscribed consumer) into the batch; returns the incident as it now is. The SLA
    /// clocks follow the change first (started at opening, then reconciled with the state),
    /// so what they did is part of the same transaction.
    fn commit_effects(
        &mut self,
        id: IncidentId,
        actor: &str,
        mut effects: Vec<Effect>,
        now: DateTime<Utc>,
        batch: &mut Batch,
        pending: &mut Pending,
    ) -> Incident {
        let incident = self
            .state
            .incidents
            .get_mut(&id.0)
            .expect("touched incidents are in memory");
        if effects.contains(&Effect::Event("incident.opened")) {
            sla::start(incident, &self.workflow.sla);
        }
        let restricted = self.restrictions.is_restricted(incident);
        effects.extend(sla::reconcile(
            incident,
            &self.workflow.sla,
            restricted,
            now,
        ));
        let incident = incident.clone();
        batch.put_incident(&incident);
        for effect in effects {
            match effect {
                Effect::Timeline(entry) => {
                    batch.append_timeline(id, self.state.counters.next_timeline_seq, entry);
                    self.state.counters.next_timeline_seq += 1;
                }
                Effect::Event(event_type) => {
                    pending.count(event_type, &incident);
                    self.enqueue_event(event_type, None, actor, &incident, now, batch, pending);
                }
                Effect::SlaEvent { event, sla } => {
                    self.enqueue_event(event, Some(sla), actor, &incident, now, batch, pending);
                }
                Effect::Sla(signal) => {
                    pending.sla.push((signal, incident.kind, incident.priority));
                }
                Effect::Escalated { from, to, reason } => {
                    pending.escalations.push((from, to, reason));
                }
            }
        }
        self.schedule(&incident, now, batch);
        incident
    }

    /// Arms the durable timers the incident needs now: escalation while it is active (an
    /// incident, not a request), closure once it is resolved and verified. Timers already
    /// armed are kept; one whose reason is gone does nothing when it fires.
    fn schedule(&mut self, incident: &Incident, now: DateTime<Utc>, batch: &mut Batch) {
        let armed = |kind| {
            self.state
                .timers
                .of(incident.id)
                .iter()
                .any(|t| t.kind == kind)
        };
        let mut wanted = Vec::new();
        let policy = self.workflow.escalation.policy(incident.priority);
        if incident.kind == Kind::Incident && incident.tier.next().is_some() {
            if incident.state == IncidentState::Open
                && let Some(after) = policy.unacknowledged_after
                && !armed(TimerKind::Unacknowledged)
            {
                wanted.push((TimerKind::Unacknowledged, after));
            }
            if incident.state.is_active()
                && let Some(after) = policy.unresolved_after
                && !armed(TimerKind::Unresolved)
            {
                wanted.push((TimerKind::Unresolved, after));
            }
        }
        if incident.state == IncidentState::Resolved
            && incident.verification != Some(Verification::Pending)
            && !armed(TimerKind::Close)
        {
            wanted.push((TimerKind::Close, self.workflow.closure_quiet_period));
        }
        for (kind, after) in wanted {
            let Ok(after) = chrono::Duration::from_std(after) else {
                continue;
            };
            let timer = Timer {
                due: now + after,
                incident: incident.id,
                kind,
            };
            self.arm(timer, batch);
        }
        self.sync_sla_timers(incident, batch);
    }

    /// Arms each running clock's warning and breach timers at the instants its calendar
    /// says, and disarms the ones no longer wanted (a clock paused, stopped, or moved by a
    /// priority change).
    fn sync_sla_timers(&mut self, incident: &Incident, batch: &mut Batch) {
        let policies = &self.workflow.sla;
        let mut wanted = Vec::new();
        for (name, clock) in incident.sla.iter() {
            let calendar = policies.calendar(name, incident.kind, clock.priority);
            if !clock.warned
                && let Some(due) = clock.warn_due_at(calendar, policies)
            {
                wanted.push(Timer {
                    due,
                    incident: incident.id,
                    kind: TimerKind::SlaWarning(name),
                });
            }
            if !clock.breached
                && let Some(due) = clock.due_at(calendar)
            {
                wanted.push(Timer {
                    due,
                    incident: incident.id,
                    kind: TimerKind::SlaBreach(name),
                });
            }
        }
        let armed: Vec<Timer> = self
            .state
            .timers
            .of(incident.id)
            .iter()
            .filter(|t| t.kind.sla().is_some())
            .copied()
            .collect();
        for timer in armed.iter().filter(|t| !wanted.contains(t)) {
            batch.disarm_timer(*timer);
            self.state.timers.remove(timer);
        }
        for timer in wanted.into_iter().filter(|t| !armed.contains(t)) {
            self.arm(timer, batch);
        }
    }

    /// Arms a durable timer: stored with the change, kept in memory for the tick.
    fn arm(&mut self, timer: Timer, batch: &mut Batch) {
        batch.arm_timer(timer);
        self.state.timers.insert(timer);
    }

    /// Fires the timers that are due: each is deleted in the same transaction as what it
    /// caused, so it fires exactly once, also across a restart.
    fn tick(&mut self, now: DateTime<Utc>, batch: &mut Batch, pending: &mut Pending) {
        let quiet = chrono::Duration::from_std(self.workflow.closure_quiet_period)
            .unwrap_or(chrono::Duration::MAX);
        for timer in self.state.timers.take_due(now) {
            batch.disarm_timer(timer);
            let id = timer.incident;
            if self.incident_mut(id).is_err() {
                continue; // gone (closed and not found): nothing to do
            }
            let incident = self.state.incidents.get_mut(&id.0).expect("loaded above");
            let before = gauges(incident);
            let effects = match timer.kind {
                TimerKind::Unacknowledged => incident.escalate_by_timer("unacknowledged", now),
                TimerKind::Unresolved => incident.escalate_by_timer("unresolved", now),
                TimerKind::SlaWarning(name) => {
                    sla::timer_fired(incident, name, true, &self.workflow.sla, now)
                }
                TimerKind::SlaBreach(name) => {
                    sla::timer_fired(incident, name, false, &self.workflow.sla, now)
                }
                TimerKind::Close => {
                    let quiet_since = incident.resolved_at.is_some_and(|at| at + quiet <= now);
                    if quiet_since {
                        incident.close(SYSTEM, now).unwrap_or_default()
                    } else {
                        Vec::new()
                    }
                }
            };
            if effects.is_empty() {
                if timer.kind.sla().is_some() {
                    // A stale SLA timer: arm the right ones.
                    let incident = incident.clone();
                    self.sync_sla_timers(&incident, batch);
                }
                self.reindex(id);
                continue;
            }
            tracing::info!(incident = %id, timer = timer.kind.as_str(), "timer fired");
            pending.touched.entry(id.0).or_insert(before);
            self.commit_effects(id, SYSTEM, effects, now, batch, pending);
            self.reindex(id);
        }
    }

    /// One outbox entry per subscribed consumer. The body of a restricted incident's event
    /// is built twice at most: in full for `security` consumers, redacted for the others.
    #[allow(clippy::too_many_arguments)]
    fn enqueue_event(
        &mut self,
        event_type: &'static str,
        sla: Option<&'static str>,
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
        let occurred_at = timestamp(now);
        let body_for = |clearance| {
            serde_json::to_string(&EventBody {
                id: &event_id,
                kind: event_type,
                occurred_at: occurred_at.clone(),
                actor,
                sla,
                incident: self.restrictions.view(incident, None, clearance, now),
            })
            .expect("events serialize to JSON")
        };
        let full = body_for(Clearance::Security);
        let redacted = self
            .restrictions
            .is_restricted(incident)
            .then(|| body_for(Clearance::None));
        for consumer in subscribers {
            let body = match &redacted {
                Some(redacted) if !consumer.security => redacted,
                _ => &full,
            };
            batch.enqueue(OutboxEntry {
                consumer: consumer.name.clone(),
                seq: self.state.counters.next_outbox_seq,
                event_id: event_id.clone(),
                event_type: event_type.to_owned(),
                incident: incident.id.0,
                created_at: now,
                body: body.clone(),
            });
            self.state.counters.next_outbox_seq += 1;
            *pending.outbox.entry(consumer.name.clone()).or_insert(0) += 1;
        }
    }

    /// After a durable commit: update the metrics and wake the webhook workers.
    fn publish(&self, pending: Pending) {
        let m = &self.metrics;
        for (id, before) in pending.touched {
            let after = match self.state.incidents.get(&id) {
                Some(incident) => gauges(incident),
                // Closed: counted in no gauge.
                None => Gauges::default(),
            };
            if before.open != after.open {
                if let Some(labels) = before.open {
                    m.incidents_open.with_label_values(&labels).dec();
                }
                if let Some(labels) = after.open {
                    m.incidents_open.with_label_values(&labels).inc();
                }
            }
            if before.sla != after.sla {
                for labels in &before.sla {
                    m.sla_open.with_label_values(labels).dec();
                }
                for labels in &after.sla {
                    m.sla_open.with_label_values(labels).inc();
                }
            }
        }
        for labels in pending.opened {
            m.incidents_opened_total.with_label_values(&labels).inc();
        }
        for (priority, category) in pending.resolutions {
            m.incidents_resolved_total
                .with_label_values(&[priority, &category])
                .inc();
        }
        for (signal, kind, priority) in pending.sla {
            m.observe_sla(signal, kind, priority);
        }
        for (from, to, reason) in pending.escalations {
            m.escalations_total
                .with_label_values(&[from.as_str(), to.as_str(), reason])
                .inc();
        }
        for priority in pending.reopened {
            m.incidents_reopened_total
                .with_label_values(&[priority])
                .inc();
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

/// The webhook body: `{"id", "type", "occurred_at", "actor", "incident"}`, plus `sla`
/// (which clock) on SLA events.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    occurred_at: String,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sla: Option<&'static str>,
    incident: serde_json::Value,
}
