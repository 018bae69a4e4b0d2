//! The engine: the single writer. One task takes [`Command`]s from a channel, decides what
//! each does through the pure domain (the detectors' verdicts become [`Signal`]s, the
//! [`Correlator`] turns signals into incident changes, the incident state machine runs the
//! workflow), and writes everything a batch of commands changed — incidents, timeline
//! entries, detector state, timers and the webhook outbox — in **one** store transaction
//! (group commit). Callers get their answer only after that commit, so a 2xx from the API
//! means the change is on disk, and an event is in the outbox exactly when its change is.
//! After each commit it publishes a [`Snapshot`] for readers.
//!
//! Batching is what makes durable writes fast: while one commit is being synced, new
//! commands queue up and the next commit carries all of them.

mod command;
mod outbox;
mod read_model;
mod reply;
mod rules;
pub mod sessions;
pub mod subscriptions;
mod txn;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use command::{
    AlertOutcome, AlertsOutcome, DeliveryReport, EngineError, EngineHandle, IngestError,
    NewMaintenance, NewSilence, NewTicket, ProbeRun, Reconfigured, Refused, RunVerdict, Subject,
    Verb,
};
pub use read_model::{
    RECENT_DAYS, RECENT_MAX, ReadModel, Recent, RuleStatus, Snapshot, SubjectStatus,
};

use crate::clock::Clock;
use crate::config::{Config, SignalServices, StatusPageConfig, WebhookConfig};
use crate::domain::alert::{Alert, AlertMapping, AlertSource, AlertStatus, Templates};
use crate::domain::correlate::{Change, Correlator, Outcome, Suppressions};
use crate::domain::detector::{Detector, Transition};
use crate::domain::incident::{
    Effect, Incident, IncidentId, Kind, SYSTEM, State as IncidentState, Ticket, TimelineEntry,
};
use crate::domain::maintenance::Maintenance;
use crate::domain::observation::{History, Observation};
use crate::domain::policy::WorkflowConfig;
use crate::domain::priority::Level;
use crate::domain::signal::{Signal, Status, alert_evidence, alert_summary};
use crate::domain::sla;
use crate::domain::suppression::Silence;
use crate::domain::timer::{Timer, TimerKind, Timers};
use crate::domain::uptime::{self, Day, UptimeHistory};
use crate::metrics::Metrics;
use crate::store::{Counters, Store, StoreError};
use crate::view::{Clearance, Restrictions};
use crate::visibility::{Visibility, visibility};

use command::Command;
use outbox::Event;
use rules::{DetectorKey, HistoryKey, Rule, RuleBook};
use txn::{Gauges, Txn};

/// Completes at `deadline`; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How many subjects of each rule fire.
fn firing_counts(detectors: &HashMap<DetectorKey, Detector>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for key in detectors.iter().filter(|(_, d)| d.firing).map(|(k, _)| k) {
        *counts.entry(key.rule.clone()).or_default() += 1;
    }
    counts
}

/// How often due timers are looked for.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How many queued commands one transaction may carry.
const MAX_BATCH: usize = 4096;
/// Commands waiting for the engine before senders wait.
const QUEUE: usize = 16 * 1024;
/// After a failed commit the store is opened again at once, then after this wait, which
/// doubles up to [`RETRY_MAX`] while the store still refuses writes.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Maintenances not yet over (upcoming or active) at most: each is checked against every
/// new symptom, and the status page lists them all.
pub const MAX_PENDING_MAINTENANCES: usize = 1_000;
/// Maintenances over (completed, cancelled) kept in memory and in the read model at most,
/// the latest; older ones, and any over for more than 90 days, are in the store only.
const MAX_PAST_MAINTENANCES: usize = 1_000;

/// The store stopped taking writes (a commit failed): commands are refused with `error`
/// until the store is open again, a write went through and the state is reloaded.
struct Degraded {
    error: Arc<StoreError>,
    retry_at: tokio::time::Instant,
    backoff: Duration,
}

/// Wakes the webhook worker of each consumer after a commit that enqueued for it.
pub type Wakers = Arc<HashMap<String, Arc<Notify>>>;

/// What the engine decides with: rules, workflow policies, webhook consumers. Replaced
/// whole by a reload.
struct Setup {
    rules: Arc<RuleBook>,
    consumers: Vec<WebhookConfig>,
    /// The base of the `url` in event bodies.
    external_url: Option<String>,
    workflow: WorkflowConfig,
    /// Which incidents are restricted: their events reach only `security` consumers in full.
    restrictions: Arc<Restrictions>,
    /// `alerts:`: how alerts map to incidents, and its compiled templates.
    alerts: AlertMapping,
    templates: Templates,
    /// `status_page:`: which services a signal belongs to (maintenances).
    status_page: Arc<StatusPageConfig>,
    /// The names of the configured probes: only their runs count in the uptime history.
    probes: HashSet<String>,
    /// `mail:` is configured: scheduled calls are mailed to tickets' reporters.
    mail: bool,
}

impl Setup {
    fn new(config: &Config) -> Setup {
        let templates = Templates::compile(&config.alerts.title, &config.alerts.description)
            // Checked when the configuration loaded; the defaults compile.
            .or_else(|_| {
                Templates::compile(
                    crate::domain::alert::DEFAULT_TITLE,
                    crate::domain::alert::DEFAULT_DESCRIPTION,
                )
            })
            .expect("the default templates compile");
        Setup {
            alerts: config.alerts.clone(),
            templates,
            rules: Arc::new(RuleBook::new(config)),
            consumers: config.webhooks.clone(),
            external_url: config.external_url.clone(),
            workflow: config.workflow.clone(),
            restrictions: Arc::new(Restrictions::from_workflow(&config.workflow)),
            status_page: Arc::new(config.status_page.clone()),
            probes: config.probes.iter().map(|p| p.name.clone()).collect(),
            mail: config.mail.is_some(),
        }
    }
}

pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    setup: Setup,
    wakers: Wakers,
    state: State,
    /// The read model as of the last commit, and where it is published.
    snapshot: Snapshot,
    published: watch::Sender<Arc<Snapshot>>,
    /// Shared with every [`EngineHandle`]: `/-/ready` reads it.
    writable: Arc<AtomicBool>,
    /// Wakes the subscription worker after a commit that wrote an update or a queue entry.
    subscriptions_wake: Arc<Notify>,
    degraded: Option<Degraded>,
    /// Whether this replica leads ([`EngineHandle::is_leading`]).
    leading: watch::Sender<bool>,
}

/// The in-memory state, rebuilt from the store at start (and after a failed commit).
#[derive(Default)]
struct State {
    /// Every incident that is not closed, with the group indexes of correlation.
    incidents: Correlator,
    /// Armed durable timers, earliest first and by incident.
    timers: Timers,
    detectors: HashMap<DetectorKey, Detector>,
    /// How many subjects of each rule fire (`incidentd_rule_firing` without a scan).
    firing: HashMap<String, usize>,
    /// Recent results per probe subject, as long as the longest window of its rules needs.
    histories: HashMap<HistoryKey, History>,
    /// Silences that have not ended.
    silences: BTreeMap<u64, Silence>,
    /// Maintenances not over, and the recent past ones ([`keep_recent`]).
    maintenances: BTreeMap<u64, Maintenance>,
    counters: Counters,
    /// Each configured probe's runs per UTC day, as stored.
    uptime: UptimeHistory,
    /// The day the stored uptime was last pruned (once a day; `None` after a load).
    uptime_pruned: Option<Day>,
    /// Probes with stored days that are no longer configured: deleted by the next prune.
    uptime_stale: Vec<String>,
    subscriptions: subscriptions::Subscriptions,
    /// The console's sessions.
    sessions: sessions::Sessions,
}

impl Engine {
    /// Loads the state from the store and starts the engine task. The read model is ready
    /// (with the loaded state) when this returns.
    pub fn start(
        store: Store,
        config: &Config,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        wakers: Wakers,
        shutdown: CancellationToken,
        leading: bool,
    ) -> Result<(EngineHandle, ReadModel, tokio::task::JoinHandle<()>), StoreError> {
        let setup = Setup::new(config);
        let snapshot = Snapshot {
            version: 0,
            incidents: imbl::OrdMap::new(),
            public_updates: imbl::OrdMap::new(),
            recent: imbl::OrdMap::new(),
            detectors: imbl::OrdMap::new(),
            silences: Arc::default(),
            maintenances: Arc::default(),
            rules: setup.rules.clone(),
            restrictions: setup.restrictions.clone(),
            status_page: setup.status_page.clone(),
            uptime: UptimeHistory::default(),
            sessions: imbl::HashMap::new(),
            touched: None,
        };
        let (published, read) = watch::channel(Arc::new(snapshot.clone()));
        let mut engine = Engine {
            store,
            clock,
            metrics,
            setup,
            wakers,
            state: State::default(),
            snapshot,
            published,
            writable: Arc::new(AtomicBool::new(true)),
            subscriptions_wake: Arc::new(Notify::new()),
            degraded: None,
            leading: watch::Sender::new(leading),
        };
        engine.load()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writable = engine.writable.clone();
        let subscriptions_wake = engine.subscriptions_wake.clone();
        let leading = engine.leading.subscribe();
        let task = tokio::spawn(engine.run(rx, shutdown));
        Ok((
            EngineHandle {
                tx,
                writable,
                subscriptions_wake,
                leading,
            },
            read,
            task,
        ))
    }

    /// Rebuilds the in-memory state, the gauges and the read model from the store.
    fn load(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now();
        // Expired silences stay stored for the record; only those still to end are read.
        let loaded = self.store.load_at(now)?;
        let active: Vec<IncidentId> = loaded.incidents.iter().map(|i| i.id).collect();
        let public_updates = self.store.public_updates(&active)?;
        let recent = self.load_recent(now)?;
        let subscriptions = subscriptions::Subscriptions::load(self.store.load_subscriptions()?);
        let sessions = sessions::Sessions::load(self.store.load_sessions()?);
        self.metrics.incidents_open.reset();
        self.metrics.reset_sla_open();
        for incident in &loaded.incidents {
            Gauges::of(incident).add_to(&self.metrics);
        }
        let mut uptime = UptimeHistory::default();
        let mut uptime_stale = Vec::new();
        for (probe, days) in loaded.uptime {
            if !self.setup.probes.contains(&probe) {
                uptime_stale.push(probe);
                continue;
            }
            for (day, count) in days {
                uptime.add(&probe, day, count);
            }
        }
        let detectors: HashMap<DetectorKey, Detector> = loaded
            .detectors
            .into_iter()
            .map(|(key, (subject, detector))| (DetectorKey::from_stored(&key, subject), detector))
            .collect();
        self.state = State {
            counters: Counters {
                next_incident_id: loaded.next_incident_id,
                next_timeline_seq: loaded.next_timeline_seq,
                next_outbox_seq: loaded.next_outbox_seq,
                next_silence_id: loaded.next_silence_id,
                next_maintenance_id: loaded.next_maintenance_id,
            },
            silences: loaded
                .silences
                .into_iter()
                .filter(|s| s.ends_at > now)
                .map(|s| (s.id, s))
                .collect(),
            maintenances: keep_recent(
                loaded.maintenances.into_iter().map(|m| (m.id, m)).collect(),
                now,
            ),
            timers: loaded.timers.into_iter().collect(),
            incidents: Correlator::new(loaded.incidents),
            firing: firing_counts(&detectors),
            detectors,
            histories: HashMap::new(),
            uptime,
            uptime_pruned: None,
            uptime_stale,
            subscriptions,
            sessions,
        };
        self.set_subscriber_gauges();
        self.set_rule_gauges();
        self.metrics.webhook_pending.reset();
        self.count_pending(&HashSet::new());
        self.snapshot = Snapshot {
            version: self.snapshot.version + 1,
            incidents: self
                .state
                .incidents
                .iter()
                .map(|i| (i.id.0, Arc::new(i.clone())))
                .collect(),
            public_updates: public_updates
                .into_iter()
                .map(|(id, entries)| (id, Arc::new(entries)))
                .collect(),
            recent,
            detectors: self
                .state
                .detectors
                .iter()
                .map(|(k, d)| (k.clone(), *d))
                .collect(),
            silences: Arc::new(self.state.silences.clone()),
            maintenances: Arc::new(self.state.maintenances.clone()),
            rules: self.setup.rules.clone(),
            restrictions: self.setup.restrictions.clone(),
            status_page: self.setup.status_page.clone(),
            uptime: self.state.uptime.clone(),
            sessions: self.state.sessions.live.clone(),
            touched: None,
        };
        self.published.send_replace(Arc::new(self.snapshot.clone()));
        Ok(())
    }

    /// Rebuilds [`Snapshot::recent`] after a reload changed what the public may see: read
    /// again from the store (bounded as at start), or, if that fails, only narrowed to what
    /// is still shown (incidents made public by the reload then appear at the next load).
    fn reload_recent(&mut self, now: DateTime<Utc>) {
        match self.load_recent(now) {
            Ok(recent) => self.snapshot.recent = recent,
            Err(error) => {
                tracing::warn!(%error, "reading the recent incidents again failed; keeping those still shown");
                let kept: imbl::OrdMap<u64, Recent> = (self.snapshot.recent.iter())
                    .filter(|(_, r)| self.shown_publicly(&r.incident))
                    .map(|(id, r)| (*id, r.clone()))
                    .collect();
                self.snapshot.recent = kept;
            }
        }
    }

    /// Whether the status page shows `incident` at all (in full or as the restricted notice):
    /// only those are kept in [`Snapshot::recent`].
    fn shown_publicly(&self, incident: &Incident) -> bool {
        visibility(incident, &self.setup.restrictions, &self.setup.status_page)
            != Visibility::Hidden
    }

    /// The incidents closed in the last [`RECENT_DAYS`] that the public may see, with their
    /// public notes, from the newest stored incidents (a bounded scan: one closed long after
    /// it opened may be missed, and then shows only in the monthly history).
    fn load_recent(&self, now: DateTime<Utc>) -> Result<imbl::OrdMap<u64, Recent>, StoreError> {
        let since = now - chrono::TimeDelta::days(RECENT_DAYS);
        let (closed, _) = self.store.list_incidents_by_state(
            Some(&[IncidentState::Closed]),
            None,
            RECENT_MAX,
            crate::store::LIST_SCAN_BUDGET,
            |incident| {
                incident.closed_at.is_some_and(|at| at >= since) && self.shown_publicly(incident)
            },
        )?;
        let ids: Vec<IncidentId> = closed.iter().map(|i| i.id).collect();
        let mut updates = self.store.public_updates(&ids)?;
        Ok(closed
            .into_iter()
            .map(|incident| {
                let notes = updates.remove(&incident.id.0).unwrap_or_default();
                (
                    incident.id.0,
                    Recent {
                        incident: Arc::new(incident),
                        updates: Arc::new(notes),
                    },
                )
            })
            .collect())
    }

    /// `incidentd_webhook_pending` of each consumer not in `known` (counted from the
    /// outbox), and no series for a consumer no longer configured.
    fn count_pending(&self, known: &HashSet<String>) {
        let configured: HashSet<&str> = self
            .setup
            .consumers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for gone in known
            .iter()
            .filter(|name| !configured.contains(name.as_str()))
        {
            let _ = self.metrics.webhook_pending.remove_label_values(&[gone]);
        }
        if configured.iter().all(|name| known.contains(*name)) {
            return;
        }
        let counts = match self.store.outbox_counts() {
            Ok(counts) => counts,
            Err(error) => {
                tracing::error!(%error, "counting the outbox failed");
                return;
            }
        };
        for name in configured.into_iter().filter(|name| !known.contains(*name)) {
            let count = counts.get(name).copied().unwrap_or(0);
            self.metrics
                .webhook_pending
                .with_label_values(&[name])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// `incidentd_rule_firing` of every rule.
    fn set_rule_gauges(&self) {
        for rule in &self.setup.rules.rules {
            self.metrics
                .rule_firing
                .with_label_values(&[&rule.config.name])
                .set(i64::from(self.rule_firing(&rule.config.name)));
        }
    }

    /// Whether any subject of the rule is firing.
    fn rule_firing(&self, rule: &str) -> bool {
        self.state.firing.get(rule).is_some_and(|&n| n > 0)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        // Durable timers are checked against the clock every tick (the clock, not tokio's
        // time, says when they are due: a manual clock drives them in tests).
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let retry_at = self.degraded.as_ref().map(|d| d.retry_at);
            let leading = *self.leading.borrow();
            let first = tokio::select! {
                command = rx.recv() => command,
                // A standby fires no timer: the leader does.
                _ = ticks.tick(), if leading => Some(Command::Tick { reply: None }),
                () = until(retry_at) => {
                    self.recover().await;
                    continue;
                }
                () = shutdown.cancelled() => {
                    // Refuse new commands, then drain what is already queued.
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { break };
            commands.push(first);
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            self.process(&mut commands).await;
        }
        tracing::debug!("engine stopped");
    }

    async fn process(&mut self, commands: &mut Vec<Command>) {
        if !*self.leading.borrow() {
            self.follow(commands);
            return;
        }
        if let Some(degraded) = &self.degraded {
            // Nothing can be stored, and the state may be ahead of the store until it is
            // reloaded: refuse at once rather than keep callers waiting.
            for command in commands.drain(..) {
                command.refuse(&degraded.error);
            }
            return;
        }
        let mut txn = Txn::new(self.clock.now());
        for command in commands.drain(..) {
            txn.now = self.clock.now();
            self.apply(command, &mut txn);
        }
        self.prune_uptime(&mut txn);
        let replies = txn.take_replies();
        let Txn {
            mut batch, pending, ..
        } = txn;
        // Closed incidents leave the state: the read model keeps those the public may see as
        // recent history, so private ones never take the places of public ones.
        let closed: Vec<Arc<Incident>> = batch
            .closed_incidents()
            .filter(|incident| self.shown_publicly(incident))
            .map(|incident| Arc::new(incident.clone()))
            .collect();
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
                self.publish_snapshot(&pending, closed);
                let incidents = &self.state.incidents;
                pending.publish(&self.metrics, &self.wakers, |id| {
                    incidents.get(IncidentId(id))
                });
                replies.send(None);
                if std::mem::take(&mut self.state.subscriptions.counts_changed) {
                    self.set_subscriber_gauges();
                }
                if std::mem::take(&mut self.state.subscriptions.wake) {
                    self.subscriptions_wake.notify_one();
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the batch's commands are refused, the store is opened again and the state reloaded from it");
                let error = Arc::new(error);
                replies.send(Some(&error));
                self.writable.store(false, Ordering::Relaxed);
                self.degraded = Some(Degraded {
                    error,
                    retry_at: tokio::time::Instant::now(),
                    backoff: RETRY_FIRST,
                });
                self.recover().await;
            }
        }
    }

    /// A standby's commands: it reads the store again when the leader committed (once for
    /// however many refreshes are queued), takes the lease when told, follows reloads of
    /// its configuration, and refuses everything else (writes go to the leader).
    fn follow(&mut self, commands: &mut Vec<Command>) {
        let standby = Arc::new(StoreError::Standby);
        let mut refresh = false;
        let mut lead = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Refresh => refresh = true,
                Command::Lead { reply } => lead.push(reply),
                Command::Reconfigure {
                    config,
                    wakers,
                    reply,
                } => {
                    // The leader forgets the detectors of changed rules; this replica
                    // only takes the configuration it will lead with.
                    let setup = Setup::new(&config);
                    let report = rule_changes(&self.setup.rules, &setup.rules);
                    self.setup = setup;
                    self.wakers = wakers;
                    let _ = reply.send(Ok(report));
                    refresh = true;
                }
                command => command.refuse(&standby),
            }
        }
        if lead.is_empty() && !refresh {
            return;
        }
        let loaded = self.load();
        if let Err(error) = &loaded {
            tracing::warn!(%error, "reading the store again failed; the read model stays as it was");
        }
        if lead.is_empty() {
            return;
        }
        let loaded = loaded.map_err(|error| EngineError::Store(Arc::new(error)));
        if loaded.is_ok() {
            self.leading.send_replace(true);
            // What the last leader left undelivered is this one's to send now.
            for waker in self.wakers.values() {
                waker.notify_one();
            }
            self.subscriptions_wake.notify_one();
        }
        for reply in lead {
            let _ = reply.send(loaded.clone());
        }
    }

    /// After a failed commit: opens the store again, proves that a write goes through and
    /// reloads the state from it (memory never runs ahead of disk). Until all of it
    /// succeeds, commands are refused and this is tried again later, waiting longer each
    /// time.
    async fn recover(&mut self) {
        let store = self.store.clone();
        let reopened = match tokio::task::spawn_blocking(move || store.reopen()).await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        match reopened.and_then(|()| self.load()) {
            Ok(()) => {
                self.degraded = None;
                self.writable.store(true, Ordering::Relaxed);
                tracing::info!("the store takes writes again");
            }
            Err(error) => {
                let Some(degraded) = self.degraded.as_mut() else {
                    return;
                };
                tracing::warn!(%error, retry_in_ms = degraded.backoff.as_millis(), "the store still refuses writes; commands are refused until it takes them");
                degraded.error = Arc::new(error);
                degraded.retry_at = tokio::time::Instant::now() + degraded.backoff;
                degraded.backoff = (degraded.backoff * 2).min(RETRY_MAX);
            }
        }
    }

    /// Brings the read model up to date with a durable batch: only what it touched.
    fn publish_snapshot(&mut self, pending: &txn::Pending, closed: Vec<Arc<Incident>>) {
        if pending.touched.is_empty()
            && !pending.detectors_changed
            && !pending.silences_changed
            && !pending.maintenances_changed
            && !pending.uptime_changed
            && !pending.sessions_changed
        {
            return;
        }
        let now = self.clock.now();
        let snapshot = &mut self.snapshot;
        for incident in closed {
            let updates = snapshot
                .public_updates
                .get(&incident.id.0)
                .cloned()
                .unwrap_or_default();
            read_model::remember_closed(&mut snapshot.recent, Recent { incident, updates }, now);
        }
        for &id in pending.touched.keys() {
            match self.state.incidents.get(IncidentId(id)) {
                Some(incident) => {
                    snapshot.incidents.insert(id, Arc::new(incident.clone()));
                }
                None => {
                    snapshot.incidents.remove(&id);
                    snapshot.public_updates.remove(&id);
                }
            }
        }
        if pending.silences_changed {
            snapshot.silences = Arc::new(self.state.silences.clone());
        }
        if pending.maintenances_changed {
            snapshot.maintenances = Arc::new(self.state.maintenances.clone());
        }
        if pending.uptime_changed {
            // A persistent map: a root copied, whatever the number of probes.
            snapshot.uptime = self.state.uptime.clone();
        }
        if pending.sessions_changed {
            snapshot.sessions = self.state.sessions.live.clone();
        }
        snapshot.touched = Some(Arc::new(pending.touched.keys().copied().collect()));
        snapshot.version += 1;
        self.published.send_replace(Arc::new(snapshot.clone()));
    }

    fn apply(&mut self, command: Command, txn: &mut Txn) {
        match command {
            Command::Alerts { alerts, reply } => {
                let outcome = self.alerts(alerts, txn);
                txn.reply(reply, Ok(outcome));
            }
            Command::Run { run, reply } => {
                let verdict = self.probe_run(run, txn);
                if let Some(reply) = reply {
                    txn.reply(reply, Ok(verdict));
                }
            }
            Command::Workflow {
                id,
                actor,
                clearance,
                verb,
                reply,
            } => {
                let outcome = self.workflow(id, &actor, clearance, verb, txn);
                txn.reply(reply, outcome);
            }
            Command::OpenTicket {
                ticket,
                actor,
                reply,
            } => {
                let outcome = self.open_ticket(ticket, &actor, txn);
                txn.reply(reply, outcome);
            }
            Command::ReporterComment { hash, text, reply } => {
                let outcome = self.reporter_comment(hash, &text, txn);
                txn.reply(reply, outcome);
            }
            Command::Deliveries { report, reply } => {
                webhooks::report(report, txn);
                txn.reply(reply, Ok(()));
            }
            Command::Replay {
                consumer,
                entries,
                reply,
            } => {
                let queued = webhooks::replay(&consumer, entries, &mut self.state.counters, txn);
                txn.reply(reply, Ok(queued));
            }
            Command::SetConsumer {
                consumer,
                state,
                reply,
            } => {
                txn.batch.set_consumer_state(&consumer, state);
                txn.reply(reply, Ok(()));
            }
            Command::Silence { silence, reply } => {
                let outcome = self.add_silence(silence, txn);
                txn.reply(reply, outcome);
            }
            Command::Expire { id, reply } => {
                let outcome = self.expire_silence(id, txn);
                txn.reply(reply, outcome);
            }
            Command::Maintain { maintenance, reply } => {
                let outcome = self.add_maintenance(maintenance, txn);
                txn.reply(reply, outcome);
            }
            Command::EndMaintenance { id, reply } => {
                let outcome = self.end_maintenance(id, txn);
                txn.reply(reply, outcome);
            }
            Command::Subscriptions { op, reply } => {
                let answer = self.state.subscriptions.apply(op, txn);
                txn.reply(reply, answer);
            }
            Command::Sessions { op, reply } => {
                let answer = self.state.sessions.apply(op, txn);
                txn.reply(reply, answer);
            }
            Command::Tick { reply } => {
                self.tick(txn);
                if let Some(reply) = reply {
                    txn.reply(reply, Ok(()));
                }
            }
            Command::Reconfigure {
                config,
                wakers,
                reply,
            } => {
                self.wakers = wakers;
                let outcome = self.reconfigure(&config, txn);
                txn.reply(reply, Ok(outcome));
            }
            // A leader is up to date, and leads already.
            Command::Refresh => {}
            Command::Lead { reply } => txn.reply(reply, Ok(())),
        }
    }

    fn add_silence(&mut self, new: NewSilence, txn: &mut Txn) -> Result<Silence, EngineError> {
        let now = txn.now;
        let starts_at = new.starts_at.unwrap_or(now);
        crate::domain::suppression::check_matchers(&new.matchers).map_err(EngineError::Invalid)?;
        if new.ends_at <= starts_at || new.ends_at <= now {
            return Err(EngineError::Invalid(
                "ends_at must be after starts_at and in the future".to_owned(),
            ));
        }
        let silence = Silence {
            id: self.state.counters.next_silence_id,
            matchers: new.matchers,
            starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
        };
        self.state.counters.next_silence_id += 1;
        txn.batch.put_silence(&silence);
        self.state.silences.insert(silence.id, silence.clone());
        txn.pending.silences_changed = true;
        Ok(silence)
    }

    fn expire_silence(&mut self, id: u64, txn: &mut Txn) -> Result<Silence, EngineError> {
        let silence = self
            .state
            .silences
            .remove(&id)
            .ok_or(EngineError::SilenceNotFound(id))?;
        let expired = Silence {
            ends_at: txn.now.max(silence.starts_at),
            ..silence
        };
        txn.batch.put_silence(&expired);
        txn.pending.silences_changed = true;
        Ok(expired)
    }

    /// Schedules a maintenance. The API checked its fields; the times are checked again
    /// against the engine's now, and the bound on those not over here, where they are known.
    fn add_maintenance(
        &mut self,
        new: NewMaintenance,
        txn: &mut Txn,
    ) -> Result<Maintenance, EngineError> {
        let now = txn.now;
        if new.ends_at <= new.starts_at {
            return Err(EngineError::Invalid(
                "`ends_at` must be after `starts_at`".to_owned(),
            ));
        }
        if new.ends_at <= now {
            return Err(EngineError::Invalid("`ends_at` is in the past".to_owned()));
        }
        let pending = self
            .state
            .maintenances
            .values()
            .filter(|m| m.state(now).is_pending())
            .count();
        if pending >= MAX_PENDING_MAINTENANCES {
            return Err(EngineError::Invalid(format!(
                "{pending} maintenances are upcoming or active; at most {MAX_PENDING_MAINTENANCES}: cancel one first"
            )));
        }
        let maintenance = Maintenance {
            id: self.state.counters.next_maintenance_id,
            title: new.title,
            message: new.message,
            services: new.services,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            created_at: now,
            cancelled_at: None,
        };
        self.state.counters.next_maintenance_id += 1;
        txn.batch.put_maintenance(&maintenance);
        self.state
            .maintenances
            .insert(maintenance.id, maintenance.clone());
        self.state.maintenances = keep_recent(std::mem::take(&mut self.state.maintenances), now);
        txn.pending.maintenances_changed = true;
        tracing::info!(maintenance = maintenance.id, services = ?maintenance.services, "maintenance scheduled");
        Ok(maintenance)
    }

    /// `DELETE`: cancels an upcoming maintenance, ends an active one now; one that is over
    /// stays as it was (409).
    fn end_maintenance(&mut self, id: u64, txn: &mut Txn) -> Result<Maintenance, EngineError> {
        let now = txn.now;
        let maintenance = match self.state.maintenances.get(&id) {
            Some(maintenance) => maintenance.clone(),
            // Over long ago: in the store only, and over all the same.
            None => self.stored_maintenance(id)?,
        };
        let ended = maintenance
            .end(now)
            .map_err(|over| EngineError::MaintenanceOver { id, state: over.0 })?;
        txn.batch.put_maintenance(&ended);
        self.state.maintenances.insert(id, ended.clone());
        txn.pending.maintenances_changed = true;
        tracing::info!(maintenance = id, state = %ended.state(now), "maintenance ended");
        Ok(ended)
    }

    fn stored_maintenance(&self, id: u64) -> Result<Maintenance, EngineError> {
        self.store
            .get_maintenance(id)
            .map_err(|e| EngineError::Store(Arc::new(e)))?
            .ok_or(EngineError::MaintenanceNotFound(id))
    }

    /// Makes sure the incident is in memory: closed incidents live in the store only.
    fn load_incident(&mut self, id: IncidentId) -> Result<(), EngineError> {
        if !self.state.incidents.contains(id) {
            let stored = self
                .store
                .get_incident(id)
                .map_err(|e| EngineError::Store(Arc::new(e)))?
                .ok_or(EngineError::NotFound(id))?;
            self.state.incidents.insert(stored);
        }
        Ok(())
    }

    /// Runs one workflow verb on an incident and stores what it did.
    fn workflow(
        &mut self,
        id: IncidentId,
        actor: &str,
        clearance: Clearance,
        verb: Verb,
        txn: &mut Txn,
    ) -> Result<Incident, EngineError> {
        let now = txn.now;
        if let Verb::Update {
            changes:
                crate::domain::incident::Changes {
                    category: Some(category),
                    ..
                },
            ..
        } = &verb
        {
            self.check_category(category)?;
        }
        self.load_incident(id)?;
        let matrix = self.setup.workflow.priority_matrix;
        let restrictions = self.setup.restrictions.clone();
        let incident = self.state.incidents.get_mut(id).expect("loaded above");
        if clearance != Clearance::Security && restrictions.is_restricted(incident) {
            self.state.incidents.reindex(id); // drops a closed incident loaded for nothing
            return Err(EngineError::Restricted {
                id,
                actor: actor.to_owned(),
            });
        }
        let before = Gauges::of(incident);
        let link = match &verb {
            Verb::ReporterLink { hash } => Some(*hash),
            _ => None,
        };
        let scheduled = matches!(verb, Verb::ScheduleCall { .. });
        let result = match verb {
            Verb::ScheduleCall { call } => incident.schedule_call(call, now),
            Verb::ReporterLink { hash } => {
                incident.reporter_link_changed(actor, hash.is_some(), now)
            }
            Verb::Acknowledge => incident.acknowledge(actor, now),
            Verb::Resolve { resolution } => incident.resolve(actor, resolution, now),
            Verb::Note { text, public } => incident.add_note(actor, &text, public, now),
            Verb::Hold { reason } => incident.hold(actor, &reason, now),
            Verb::Resume => incident.resume(actor, now),
            Verb::Escalate {
                reason,
                tier,
                may_lower,
            } => incident.escalate(actor, &reason, tier, may_lower, now),
            Verb::Update { changes, reason } => incident.update(
                actor,
                changes,
                &reason,
                |impact, urgency| matrix.priority(impact, urgency),
                now,
            ),
            Verb::Close => incident.close(actor, now),
            Verb::Reopen { reason } => incident.reopen(actor, &reason, now),
        };
        let effects = match result {
            Ok(effects) => effects,
            Err(error) => {
                self.state.incidents.reindex(id);
                return Err(error.into());
            }
        };
        match link {
            Some(Some(hash)) => txn.batch.issue_reporter_link(id, hash, now),
            Some(None) => txn.batch.revoke_reporter_link(id, now),
            None => {}
        }
        txn.pending.touched.entry(id.0).or_insert(before);
        let incident = self.commit_effects(id, actor, effects, txn);
        if scheduled {
            self.mail_call(&incident, txn);
        }
        Ok(incident)
    }

    /// The call just scheduled, mailed to the ticket's reporter when mail is configured
    /// and the contact is an address: a queue entry in this batch, sent by the
    /// subscription worker (never waited for here).
    fn mail_call(&mut self, incident: &Incident, txn: &mut Txn) {
        let (Some(reporter), Some(call)) = (&incident.reporter, incident.calls.last()) else {
            return;
        };
        if !self.setup.mail || reporter.contact.parse::<lettre::Address>().is_err() {
            return;
        }
        let seen = self.setup.restrictions.reporter_call(incident, call);
        let restricted = self.setup.restrictions.is_restricted(incident);
        let mail = crate::store::CallMail {
            to: reporter.contact.clone(),
            incident: incident.id.to_string(),
            title: (!restricted).then(|| incident.title.clone()),
            at: seen.at,
            url: seen.url,
            participants: seen.participants,
            note: seen.note,
        };
        self.state.subscriptions.mail_call(mail, txn);
    }

    /// A comment through a reporter link: the link must work now — as stored, with what
    /// this batch already did to it on top (revoked or replaced earlier in the batch).
    fn reporter_comment(
        &mut self,
        hash: [u8; 32],
        text: &str,
        txn: &mut Txn,
    ) -> Result<IncidentId, EngineError> {
        let id = self
            .store
            .reporter_link(&hash)
            .map_err(|e| EngineError::Store(Arc::new(e)))?
            .ok_or(EngineError::UnknownLink)?;
        match txn.batch.reporter_link_write(id) {
            None => {}
            Some(crate::store::LinkWrite::Issue { hash: issued, .. }) if issued == hash => {}
            Some(_) => return Err(EngineError::UnknownLink),
        }
        self.load_incident(id)?;
        let incident = self.state.incidents.get_mut(id).expect("loaded above");
        let before = Gauges::of(incident);
        let effects = match incident.reporter_comment(text, txn.now) {
            Ok(effects) => effects,
            Err(error) => {
                self.state.incidents.reindex(id);
                return Err(error.into());
            }
        };
        let actor = incident
            .reporter
            .as_ref()
            .map(|r| format!("reporter: {}", r.name))
            .unwrap_or_default();
        txn.pending.touched.entry(id.0).or_insert(before);
        self.commit_effects(id, &actor, effects, txn);
        Ok(id)
    }

    fn check_category(&self, name: &str) -> Result<(), EngineError> {
        let workflow = &self.setup.workflow;
        if workflow.category(name).is_some() {
            return Ok(());
        }
        let valid: Vec<&str> = workflow
            .categories
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        Err(EngineError::Invalid(format!(
            "unknown category `{name}`; valid: {}",
            valid.join(", ")
        )))
    }

    fn next_incident_id(counters: &mut Counters) -> IncidentId {
        let id = IncidentId(counters.next_incident_id);
        counters.next_incident_id += 1;
        id
    }

    /// A person's ticket: never deduplicated (each report is someone's), so it opens an
    /// incident of its own, its category, kind and priority settled by the policies.
    fn open_ticket(
        &mut self,
        ticket: NewTicket,
        actor: &str,
        txn: &mut Txn,
    ) -> Result<Incident, EngineError> {
        let workflow = &self.setup.workflow;
        // Without a category: the first configured one of the ticket's kind.
        let wanted = ticket.kind.unwrap_or(Kind::Incident);
        let category = match ticket.category {
            Some(name) => {
                self.check_category(&name)?;
                workflow.category(&name).expect("checked").clone()
            }
            None => workflow
                .categories
                .iter()
                .find(|c| c.kind == wanted)
                .or(workflow.categories.first())
                .cloned()
                .ok_or_else(|| EngineError::Invalid("no categories are configured".to_owned()))?,
        };
        let kind = ticket.kind.unwrap_or(category.kind);
        let ticket_link = ticket.reporter_link;
        let impact = ticket.impact.unwrap_or(Level::Medium);
        let urgency = ticket.urgency.unwrap_or(Level::Medium);
        let priority = workflow.priority_matrix.priority(impact, urgency);
        let start_tier = workflow.escalation.policy(priority).start_tier;
        let id = Self::next_incident_id(&mut self.state.counters);
        let signal = Signal::from_ticket(
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
        );
        // A person's report is not an alert: silences, maintenance and dependencies do not
        // hold it back.
        let unsuppressed = Suppressions::none();
        let (group, key) = (signal.group.clone(), signal.key.clone());
        let (kind, priority) = (signal.kind, signal.priority);
        let outcome =
            self.state
                .incidents
                .fire(&group, &key, || signal, unsuppressed, || id, txn.now);
        // A fresh id is a fresh group: anything but an opened incident means the stored
        // counters went back (a store restored from an older copy).
        let Outcome::Changed(change) = outcome else {
            tracing::error!(incident = %id, ?outcome, "a new ticket's group is taken: the stored id counter is behind");
            return Err(EngineError::Invalid(format!(
                "incident id {id} is already in use; the store's counters are behind"
            )));
        };
        tracing::info!(incident = %id, kind = kind.as_str(), %priority, "ticket opened");
        if let Some(hash) = ticket_link {
            txn.batch.issue_reporter_link(id, hash, txn.now);
        }
        txn.pending.touch_new(id.0);
        Ok(self.commit_effects(id, actor, change.effects, txn))
    }

    /// A batch of alerts, each through the correlator as a [`Signal`]: firing ones open,
    /// join, reopen or refresh (their expiry moves, their evidence is the latest push's),
    /// resolved ones recover their incident (an alert's resolution is verified recovery),
    /// acknowledged ones (PagerDuty's `acknowledge`) acknowledge an open incident.
    fn alerts(&mut self, alerts: Vec<Alert>, txn: &mut Txn) -> AlertsOutcome {
        let mut outcomes = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            outcomes.push(self.alert(alert, txn));
        }
        AlertsOutcome { alerts: outcomes }
    }

    fn alert(&mut self, alert: &Alert, txn: &mut Txn) -> AlertOutcome {
        let now = txn.now;
        let workflow = &self.setup.workflow;
        let mapping = &self.setup.alerts;
        let severity = mapping.severity_of(alert);
        let priority = workflow
            .priority_matrix
            .priority(severity.impact, severity.urgency);
        let start_tier = workflow.escalation.policy(priority).start_tier;
        // The alert's identity first: the whole signal (templates rendered) is built only
        // when the correlator needs it, not for a refresh of an alert it holds.
        let (group, key) = (alert.group(mapping.group_by), alert.fingerprint());
        let templates = &self.setup.templates;
        let signal = || Signal::from_alert(alert, mapping, templates, priority, start_tier);
        if let Some(incident) = self.state.incidents.of_group(&group) {
            txn.pending.touch(incident);
        }
        match alert.status {
            AlertStatus::Firing => {
                let suppressions = Suppressions {
                    maintenance: false,
                    maintenances: &self.state.maintenances,
                    services: &SignalServices {
                        page: &self.setup.status_page,
                        label: &mapping.service_label,
                    },
                    silences: &self.state.silences,
                    depends_on: &[],
                };
                let counters = &mut self.state.counters;
                let evidence = alert_evidence(alert, &key);
                let outcome = self.state.incidents.fire(
                    &group,
                    &key,
                    signal,
                    suppressions,
                    || Self::next_incident_id(counters),
                    now,
                );
                let (id, change) = match outcome {
                    Outcome::Changed(change) => {
                        if change.kind == crate::domain::correlate::ChangeKind::Opened {
                            txn.pending.touch_new(change.id.0);
                        }
                        (change.id, Some(change))
                    }
                    Outcome::Duplicate(id) => (id, None),
                    Outcome::Suppressed(_) => return AlertOutcome::Suppressed,
                    Outcome::Nothing => return AlertOutcome::Ignored,
                };
                // A push without `endsAt` resolves after `resolve_timeout` unless refreshed.
                let ends_at = match (alert.ends_at, alert.source) {
                    (None, AlertSource::ApiV2) => {
                        chrono::Duration::from_std(self.setup.alerts.resolve_timeout)
                            .ok()
                            .and_then(|timeout| now.checked_add_signed(timeout))
                    }
                    (ends_at, _) => ends_at,
                };
                let incident = self.state.incidents.get_mut(id).expect("correlated");
                let refreshed = incident.alert_seen(&key, ends_at, &evidence);
                match change {
                    Some(change) => {
                        self.correlated(change, "alert", txn);
                        AlertOutcome::Accepted(id)
                    }
                    None if refreshed => {
                        self.commit_effects(id, SYSTEM, Vec::new(), txn);
                        AlertOutcome::Accepted(id)
                    }
                    None => AlertOutcome::Duplicate(id),
                }
            }
            AlertStatus::Resolved => {
                match self
                    .state
                    .incidents
                    .recover(&group, &key, &alert_summary(alert), true, now)
                {
                    Outcome::Changed(change) => {
                        let id = change.id;
                        self.correlated(change, "alert", txn);
                        AlertOutcome::Accepted(id)
                    }
                    _ => AlertOutcome::Ignored,
                }
            }
            AlertStatus::Acknowledged => {
                let Some(id) = self.state.incidents.active_in(&group).map(|i| i.id) else {
                    return AlertOutcome::Ignored;
                };
                let incident = self.state.incidents.get_mut(id).expect("active");
                let actor = format!("{} alert", alert.source.as_str());
                match incident.acknowledge(&actor, now) {
                    Ok(effects) => {
                        self.commit_effects(id, &actor, effects, txn);
                        AlertOutcome::Accepted(id)
                    }
                    // Acknowledged already (or on hold): nothing to do.
                    Err(_) => AlertOutcome::Duplicate(id),
                }
            }
        }
    }

    /// The alert-expiry timer of an incident fired: each of its alerts whose `endsAt`
    /// passed without a refresh resolves (the last one resolves the incident, verified).
    fn expire_alerts(&mut self, id: IncidentId, txn: &mut Txn) {
        let now = txn.now;
        let Some(incident) = self.state.incidents.get(id) else {
            return;
        };
        let group = incident.group.clone();
        let before = Gauges::of(incident);
        let due: Vec<String> = incident
            .alert_expiry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let mut changed = false;
        for key in due {
            let outcome = self.state.incidents.recover(
                &group,
                &key,
                "its endsAt passed without a refresh",
                true,
                now,
            );
            if let Outcome::Changed(change) = outcome {
                tracing::info!(incident = %id, alert = key, "alert expired");
                txn.pending.touched.entry(id.0).or_insert(before.clone());
                self.correlated(change, "alert", txn);
                changed = true;
            }
        }
        if !changed && let Some(incident) = self.state.incidents.get(id) {
            // Stale (refreshed meanwhile, or gone): arm the right one.
            let incident = incident.clone();
            self.schedule(&incident, txn);
            self.state.incidents.reindex(id);
        }
    }

    /// A probe run: each subject's result through the probe's rules, then the subjects a
    /// complete run no longer lists as clean results.
    fn probe_run(&mut self, run: ProbeRun, txn: &mut Txn) -> RunVerdict {
        self.count_uptime(&run, txn);
        let rules = self.setup.rules.clone();
        let rules = rules.of_probe(&run.probe);
        if rules.is_empty() {
            return RunVerdict::default();
        }
        let mut confirm = false;
        let present: Option<HashSet<Subject>> = run
            .complete
            .then(|| run.results.iter().map(|(s, _)| s.clone()).collect());
        for (subject, observation) in run.results {
            confirm |= self.observe(rules, &run.probe, subject, observation, true, txn);
        }
        if let Some(present) = present {
            self.vanished(rules, &run.probe, &present, run.at, txn);
        }
        RunVerdict { confirm }
    }

    /// Counts the run in its probe's day (with or without rules: a service's uptime is its
    /// probes'), and puts the day's counts into the batch. A run of a probe no longer
    /// configured (one that was under way during a reload) is not counted.
    fn count_uptime(&mut self, run: &ProbeRun, txn: &mut Txn) {
        if !self.setup.probes.contains(&run.probe) {
            return;
        }
        // The probe's own verdict, as the board and `incidentd_probe_success` have it.
        let ok = run.results.iter().all(|(_, o)| o.success());
        if let Some((day, count)) = self.state.uptime.record(&run.probe, run.at, ok) {
            txn.batch.put_uptime(&run.probe, day, count);
            txn.pending.uptime_changed = true;
        }
    }

    /// Once a UTC day (and at the first batch after a load): forgets the days older than
    /// [`uptime::KEPT_DAYS`], in memory and in the store, and the stored days of probes no
    /// longer configured. A seek per probe, in this batch's transaction.
    fn prune_uptime(&mut self, txn: &mut Txn) {
        let today = uptime::day_of(txn.now);
        if self.state.uptime_pruned == Some(today) {
            return;
        }
        let before = today - uptime::KEPT_DAYS + 1;
        for probe in self.state.uptime.probes() {
            txn.batch.forget_uptime(probe, before);
        }
        for probe in self.state.uptime_stale.drain(..) {
            txn.batch.forget_uptime(&probe, Day::MAX);
        }
        self.state.uptime.prune(before);
        self.state.uptime_pruned = Some(today);
        txn.pending.uptime_changed = true;
    }

    /// Evaluates the probe's rules on a new result of one subject (or takes it as clean:
    /// `evaluate` false) and correlates what the detectors say. True when a rule of the
    /// subject is confirming (between its first verdict and its threshold).
    fn observe(
        &mut self,
        rules: &[Arc<Rule>],
        probe: &str,
        subject: Subject,
        observation: Observation,
        evaluate: bool,
        txn: &mut Txn,
    ) -> bool {
        let keep = rules
            .iter()
            .filter_map(|rule| rule.when().window())
            .max()
            .and_then(|window| chrono::Duration::from_std(window).ok());
        let history_key = HistoryKey {
            probe: probe.to_owned(),
            subject,
        };
        let mut history = self
            .state
            .histories
            .remove(&history_key)
            .unwrap_or_default();
        let newest = observation.at;
        history.push_back(observation);
        while history.len() > 1
            && history
                .front()
                .is_some_and(|oldest| keep.is_none_or(|keep| oldest.at < newest - keep))
        {
            history.pop_front();
        }
        let subject = &history_key.subject;
        // The newest result is the last of the history (moved there, not copied).
        let observation = history.back().expect("just pushed");
        let mut confirming = false;
        for rule in rules {
            let symptom = evaluate && rule.when().eval(&history);
            let key = DetectorKey {
                rule: rule.config.name.clone(),
                subject: subject.clone(),
            };
            let detector = match self.state.detectors.get_mut(&key) {
                Some(detector) => detector,
                None => self.state.detectors.entry(key.clone()).or_default(),
            };
            let before = *detector;
            let transition = detector.observe(symptom, observation.at, rule.thresholds);
            let detector = *detector;
            // Between the first verdict of a change and its threshold: confirm it soon.
            let thresholds = rule.thresholds;
            confirming |= (!detector.firing
                && (1..thresholds.after).contains(&detector.symptomatic_streak))
                || (detector.firing
                    && (1..thresholds.recover_after).contains(&detector.clean_streak));
            if detector.differs_beyond_history(&before) {
                txn.batch.put_detector(&key.stored(), subject, detector);
                self.snapshot.detectors.insert(Arc::new(key), detector);
                txn.pending.detectors_changed = true;
            }
            if let Some(transition) = transition {
                let count = self
                    .state
                    .firing
                    .entry(rule.config.name.clone())
                    .or_default();
                match transition {
                    Transition::Fired => *count += 1,
                    Transition::Recovered => *count = count.saturating_sub(1),
                }
                let firing = self.rule_firing(&rule.config.name);
                txn.pending.rules.insert(rule.config.name.clone(), firing);
            }
            let recovered = transition == Some(Transition::Recovered);
            if !detector.firing && !recovered {
                continue; // nothing for correlation: the common case of a healthy probe
            }
            let group = rule.group(subject);
            // The gauges of the incident correlation may change, as they are before it
            // (a symptom it already carries changes nothing: the steady case stays cheap).
            if let Some(incident) = self.state.incidents.of_group(&group)
                && !(detector.firing && incident.firing_rules.contains(&rule.config.name))
            {
                txn.pending.touch(incident);
            }
            let outcome = if detector.firing {
                let silences = &self.state.silences;
                let suppressions = Suppressions {
                    maintenance: rule.in_maintenance(txn.now),
                    maintenances: &self.state.maintenances,
                    services: &SignalServices {
                        page: &self.setup.status_page,
                        label: "service",
                    },
                    silences,
                    depends_on: &rule.config.depends_on,
                };
                let counters = &mut self.state.counters;
                self.state.incidents.fire(
                    &group,
                    &rule.config.name,
                    || {
                        let signal = rule.signal(&group, subject, observation);
                        Signal::from_rule(&signal, Status::Firing, detector.symptom_since)
                    },
                    suppressions,
                    || Self::next_incident_id(counters),
                    txn.now,
                )
            } else {
                self.state.incidents.recover(
                    &group,
                    &rule.config.name,
                    &crate::domain::incident::describe(observation),
                    rule.config.auto_resolve,
                    txn.now,
                )
            };
            if let Outcome::Changed(change) = outcome {
                self.correlated(change, &rule.config.name, txn);
            }
        }
        // Only window functions read past results, and only their numbers: a probe whose
        // rules have no window keeps no history, and a kept one drops bodies and headers
        // (with 100,000 probes that is a hundred megabytes).
        if keep.is_some() {
            if let Some(newest) = history.back_mut() {
                *newest = newest.summary();
            }
            self.state.histories.insert(history_key, history);
        }
        confirming
    }

    /// Stores what correlation changed.
    fn correlated(&mut self, change: Change, rule: &str, txn: &mut Txn) {
        use crate::domain::correlate::ChangeKind;
        let id = change.id;
        let incident = self.state.incidents.get(id);
        match change.kind {
            ChangeKind::Opened => {
                txn.pending.touch_new(id.0);
                tracing::info!(incident = %id, rule, priority = ?incident.map(|i| i.priority), "incident opened");
            }
            ChangeKind::Raised => tracing::info!(incident = %id, rule, "symptom added to incident"),
            ChangeKind::Reopened => {
                tracing::info!(incident = %id, rule, "incident reopened: the symptom returned")
            }
            ChangeKind::Recovered => {
                if incident.is_some_and(|i| i.state == IncidentState::Resolved) {
                    tracing::info!(incident = %id, rule, "incident resolved: rule recovered");
                }
            }
        }
        self.commit_effects(id, SYSTEM, change.effects, txn);
    }

    /// Subjects of the probe's rules that a complete run did not return: feed each a
    /// clean result so that its detector recovers (and its incident resolves) as for any
    /// other clean result, then forget its history, and its detectors once they are at rest.
    fn vanished(
        &mut self,
        rules: &[Arc<Rule>],
        probe: &str,
        present: &HashSet<Subject>,
        at: DateTime<Utc>,
        txn: &mut Txn,
    ) {
        // The snapshot's detectors are ordered by rule: each rule's are one range. Every
        // detector that ever saw a result is there (a first result always changes it).
        let mut gone: Vec<Subject> = Vec::new();
        for rule in rules {
            let from = DetectorKey {
                rule: rule.config.name.clone(),
                subject: Subject::new(),
            };
            for (key, detector) in self
                .snapshot
                .detectors
                .range(from..)
                .take_while(|(key, _)| key.rule == rule.config.name)
            {
                if key.subject.is_empty() || *detector == Detector::default() {
                    continue;
                }
                if !present.contains(&key.subject) && !gone.contains(&key.subject) {
                    gone.push(key.subject.clone());
                }
            }
        }
        for subject in gone {
            let clean = Observation {
                connected: true,
                error: None,
                ..Observation::new(at)
            };
            let history_key = HistoryKey {
                probe: probe.to_owned(),
                subject,
            };
            // An empty history: a vanished series has no window to read.
            self.state.histories.remove(&history_key);
            self.observe(rules, probe, history_key.subject.clone(), clean, false, txn);
            self.state.histories.remove(&history_key);
            // Once at rest (recovered, no symptom counting), a vanished series is forgotten:
            // series come and go (pods, instances) and their detectors must not pile up.
            // One that comes back starts afresh, as a new series does.
            for rule in rules {
                let key = DetectorKey {
                    rule: rule.config.name.clone(),
                    subject: history_key.subject.clone(),
                };
                let at_rest = self
                    .state
                    .detectors
                    .get(&key)
                    .is_some_and(|d| !d.firing && d.symptomatic_streak == 0);
                if at_rest {
                    self.state.detectors.remove(&key);
                    self.snapshot.detectors.remove(&key);
                    txn.batch.delete_detector(&key.stored());
                    txn.pending.detectors_changed = true;
                }
            }
        }
    }

    /// Writes the incident, its timeline entries and its events (one outbox entry per
    /// subscribed consumer) into the batch, and arms the timers it now needs; returns the
    /// incident as it now is. The SLA clocks follow the change first (started at opening,
    /// then reconciled with the state), so what they did is part of the same transaction.
    fn commit_effects(
        &mut self,
        id: IncidentId,
        actor: &str,
        mut effects: Vec<Effect>,
        txn: &mut Txn,
    ) -> Incident {
        let now = txn.now;
        let incident = self
            .state
            .incidents
            .get_mut(id)
            .expect("changed incidents are in memory");
        let policies = &self.setup.workflow.sla;
        if effects.contains(&Effect::Event("incident.opened")) {
            sla::start(incident, policies);
        }
        let restricted = self.setup.restrictions.is_restricted(incident);
        effects.extend(sla::reconcile(incident, policies, restricted, now));
        let incident = incident.clone();
        txn.batch.put_incident(&incident);
        for effect in effects {
            match effect {
                Effect::Timeline(entry) => {
                    if entry.public {
                        self.add_public_update(id, &entry);
                        self.state.subscriptions.announce(
                            "incident.note_added",
                            Some(&entry.message),
                            &incident,
                            &self.setup.restrictions,
                            &self.setup.status_page,
                            txn,
                        );
                    }
                    txn.batch
                        .append_timeline(id, self.state.counters.next_timeline_seq, entry);
                    self.state.counters.next_timeline_seq += 1;
                }
                Effect::Event(kind) => {
                    txn.pending.count(kind, &incident);
                    self.state.subscriptions.announce(
                        kind,
                        None,
                        &incident,
                        &self.setup.restrictions,
                        &self.setup.status_page,
                        txn,
                    );
                    self.enqueue(kind, None, actor, &incident, txn);
                }
                Effect::SlaEvent { event, sla } => {
                    self.enqueue(event, Some(sla), actor, &incident, txn);
                }
                Effect::Sla(signal) => {
                    txn.pending
                        .sla
                        .push((signal, incident.kind, incident.priority));
                }
                Effect::Escalated { from, to, reason } => {
                    txn.pending.escalations.push((from, to, reason));
                }
            }
        }
        self.schedule(&incident, txn);
        self.state.incidents.reindex(id);
        incident
    }

    fn set_subscriber_gauges(&self) {
        for ((channel, state), count) in self.state.subscriptions.counts() {
            self.metrics
                .status_subscribers
                .with_label_values(&[channel, state])
                .set(count);
        }
    }

    fn add_public_update(&mut self, id: IncidentId, entry: &TimelineEntry) {
        let mut updates = self
            .snapshot
            .public_updates
            .get(&id.0)
            .map(|u| u.as_ref().clone())
            .unwrap_or_default();
        updates.push(entry.clone());
        self.snapshot.public_updates.insert(id.0, Arc::new(updates));
    }

    fn enqueue(
        &mut self,
        kind: &'static str,
        sla: Option<&'static str>,
        actor: &str,
        incident: &Incident,
        txn: &mut Txn,
    ) {
        outbox::enqueue(
            Event {
                kind,
                sla,
                actor,
                incident,
            },
            &self.setup.consumers,
            self.setup.external_url.as_deref(),
            &self.setup.restrictions,
            &mut self.state.counters,
            txn,
        );
    }

    /// Arms the durable timers the incident needs now and disarms the SLA timers it no
    /// longer needs. Timers already armed are kept; one whose reason is gone does nothing
    /// when it fires.
    fn schedule(&mut self, incident: &Incident, txn: &mut Txn) {
        let workflow = &self.setup.workflow;
        let policy = workflow.escalation.policy(incident.priority);
        let wanted = crate::domain::timer::wanted(
            incident,
            crate::domain::timer::Policy {
                unacknowledged_after: policy.unacknowledged_after,
                unresolved_after: policy.unresolved_after,
                quiet_period: workflow.closure_quiet_period,
                sla: &workflow.sla,
            },
            txn.now,
        );
        let armed: Vec<Timer> = self.state.timers.of(incident.id).to_vec();
        // SLA timers are exact: an armed one not wanted any more is disarmed. The others
        // are kept once armed (their firing checks whether their reason still holds).
        for timer in armed
            .iter()
            .filter(|t| t.kind.exact() && !wanted.contains(t))
        {
            txn.batch.disarm_timer(*timer);
            self.state.timers.remove(timer);
        }
        for timer in wanted {
            let same_kind_armed = armed.iter().any(|t| {
                if timer.kind.exact() {
                    *t == timer
                } else {
                    t.kind == timer.kind
                }
            });
            if !same_kind_armed {
                txn.batch.arm_timer(timer);
                self.state.timers.insert(timer);
            }
        }
    }

    /// Fires the timers that are due: each is deleted in the same transaction as what it
    /// caused, so it fires exactly once, also across a restart.
    fn tick(&mut self, txn: &mut Txn) {
        let now = txn.now;
        self.state.sessions.purge_due(txn);
        let quiet = chrono::Duration::from_std(self.setup.workflow.closure_quiet_period)
            .unwrap_or(chrono::Duration::MAX);
        for timer in self.state.timers.take_due(now) {
            txn.batch.disarm_timer(timer);
            let id = timer.incident;
            if self.load_incident(id).is_err() {
                continue; // gone (closed and not found): nothing to do
            }
            if timer.kind == TimerKind::AlertExpiry {
                self.expire_alerts(id, txn);
                continue;
            }
            let policies = &self.setup.workflow.sla;
            let incident = self.state.incidents.get_mut(id).expect("loaded above");
            let before = Gauges::of(incident);
            let effects = match timer.kind {
                TimerKind::Unacknowledged => incident.escalate_by_timer("unacknowledged", now),
                TimerKind::Unresolved => incident.escalate_by_timer("unresolved", now),
                TimerKind::SlaWarning(name) => {
                    sla::timer_fired(incident, name, true, policies, now)
                }
                TimerKind::SlaBreach(name) => {
                    sla::timer_fired(incident, name, false, policies, now)
                }
                TimerKind::AlertExpiry => unreachable!("handled above"),
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
                    self.schedule(&incident, txn);
                }
                self.state.incidents.reindex(id);
                continue;
            }
            tracing::info!(incident = %id, timer = timer.kind.as_str(), "timer fired");
            txn.pending.touched.entry(id.0).or_insert(before);
            self.commit_effects(id, SYSTEM, effects, txn);
        }
    }

    /// Probes removed by a reload lose their days (in memory and stored); a probe that
    /// keeps its name keeps them, also when its target changed. A probe configured again
    /// before its stale days were pruned starts over, as a new one.
    fn reconfigure_uptime(&mut self, txn: &mut Txn) {
        let configured = &self.setup.probes;
        let removed = self.state.uptime.retain(|name| configured.contains(name));
        let (back, stale): (Vec<String>, Vec<String>) =
            std::mem::take(&mut self.state.uptime_stale)
                .into_iter()
                .partition(|name| configured.contains(name));
        self.state.uptime_stale = stale;
        for probe in removed.iter().chain(&back) {
            txn.batch.forget_uptime(probe, Day::MAX);
        }
        if !removed.is_empty() {
            txn.pending.uptime_changed = true;
        }
    }

    /// A reloaded configuration. Rules: unchanged ones keep their detectors; changed ones
    /// start over; removed ones leave their incidents open, each with a timeline entry
    /// saying the rule is gone. Workflow policies and consumers apply to new decisions.
    fn reconfigure(&mut self, config: &Config, txn: &mut Txn) -> Reconfigured {
        let old = self.setup.rules.clone();
        let old_consumers: HashSet<String> = self
            .setup
            .consumers
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let old_page = self.setup.status_page.clone();
        let old_restricted = restricted_categories(&self.setup.workflow);
        self.setup = Setup::new(config);
        if *old_page != *self.setup.status_page
            || old_restricted != restricted_categories(&self.setup.workflow)
        {
            self.reload_recent(txn.now);
        }
        self.count_pending(&old_consumers);
        self.reconfigure_uptime(txn);
        let new = self.setup.rules.clone();
        let report = rule_changes(&old, &new);
        // Detectors of changed and removed rules start over (deleted with this batch).
        let reset: HashSet<&str> = report
            .rules_changed
            .iter()
            .chain(&report.rules_removed)
            .map(String::as_str)
            .collect();
        let stale: Vec<DetectorKey> = self
            .state
            .detectors
            .keys()
            .filter(|key| reset.contains(key.rule.as_str()))
            .cloned()
            .collect();
        for key in stale {
            if self.state.detectors.remove(&key).is_some_and(|d| d.firing)
                && let Some(count) = self.state.firing.get_mut(&key.rule)
            {
                *count = count.saturating_sub(1);
            }
            self.snapshot.detectors.remove(&key);
            txn.batch.delete_detector(&key.stored());
            txn.pending.detectors_changed = true;
        }
        // A probe whose rules changed starts its window history over (its windows may
        // have changed); the others keep theirs.
        let probes_touched: HashSet<String> = report
            .rules_added
            .iter()
            .chain(&report.rules_changed)
            .chain(&report.rules_removed)
            .flat_map(|name| [old.get(name), new.get(name)])
            .flatten()
            .map(|rule| rule.config.probe.clone())
            .collect();
        self.state
            .histories
            .retain(|key, _| !probes_touched.contains(&key.probe));
        // Incidents whose firing rule is gone: say so; they stay open for a person.
        let orphaned: Vec<(IncidentId, Vec<String>)> = self
            .state
            .incidents
            .iter()
            .filter_map(|incident| {
                let gone: Vec<String> = incident
                    .firing_rules
                    .iter()
                    .filter(|rule| report.rules_removed.contains(rule))
                    .cloned()
                    .collect();
                (!gone.is_empty()).then_some((incident.id, gone))
            })
            .collect();
        for (id, gone) in orphaned {
            let incident = self.state.incidents.get_mut(id).expect("iterated above");
            txn.pending.touch(incident);
            let effects = incident.rules_removed(&gone, txn.now);
            self.commit_effects(id, SYSTEM, effects, txn);
        }
        // Rules that stopped firing leave the gauge; new ones appear at 0.
        for rule in &report.rules_removed {
            self.metrics.rule_firing.remove_label_values(&[rule]);
        }
        self.set_rule_gauges();
        self.snapshot.rules = self.setup.rules.clone();
        self.snapshot.restrictions = self.setup.restrictions.clone();
        self.snapshot.status_page = self.setup.status_page.clone();
        txn.pending.detectors_changed = true;
        tracing::info!(added = ?report.rules_added, changed = ?report.rules_changed, removed = ?report.rules_removed, "rules reloaded");
        report
    }
}

/// The categories whose incidents are restricted: with the status page's settings, what
/// decides which closed incidents the read model keeps.
/// Which rules a reload added, changed and removed.
fn rule_changes(old: &RuleBook, new: &RuleBook) -> Reconfigured {
    let mut report = Reconfigured::default();
    for rule in &new.rules {
        match old.get(&rule.config.name) {
            None => report.rules_added.push(rule.config.name.clone()),
            Some(was) if was.config != rule.config => {
                report.rules_changed.push(rule.config.name.clone())
            }
            Some(_) => {}
        }
    }
    for rule in &old.rules {
        if new.get(&rule.config.name).is_none() {
            report.rules_removed.push(rule.config.name.clone());
        }
    }
    report
}

fn restricted_categories(workflow: &WorkflowConfig) -> Vec<String> {
    (workflow.categories.iter())
        .filter(|c| c.restricted)
        .map(|c| c.name.clone())
        .collect()
}

/// The maintenances worth keeping in memory at `now`: every one not over, and of those
/// over (completed or cancelled) the latest [`MAX_PAST_MAINTENANCES`] that are recent
/// ([`Maintenance::is_recent`]). The rest stays in the store.
fn keep_recent(
    mut maintenances: BTreeMap<u64, Maintenance>,
    now: DateTime<Utc>,
) -> BTreeMap<u64, Maintenance> {
    maintenances.retain(|_, m| m.is_recent(now));
    let mut past: Vec<(DateTime<Utc>, u64)> = maintenances
        .values()
        .filter(|m| !m.state(now).is_pending())
        .map(|m| (m.over_at(), m.id))
        .collect();
    if past.len() > MAX_PAST_MAINTENANCES {
        past.sort_unstable();
        for (_, id) in &past[..past.len() - MAX_PAST_MAINTENANCES] {
            maintenances.remove(id);
        }
    }
    maintenances
}

#[cfg(test)]
mod tests;
