//! Webhook delivery from the durable outbox. One worker per consumer keeps a queue per
//! incident: it sends the head of each incident's queue (at most [`IN_FLIGHT`] at once),
//! so events of one incident arrive in the order they happened while one incident's stuck
//! event never delays another's, another consumer's, or the engine. Each request is signed
//! per Standard Webhooks with the same `webhook-id` on every attempt. A failed attempt is
//! retried on a schedule ([`retry::next`]: the consumer's `retry_schedule` with jitter,
//! or the consumer's `Retry-After` on 429/503) until the event is `max_age` old, then it
//! is a dead letter (stored, listed, replayable). `410 Gone` disables the consumer until
//! an admin enables it (the event stays pending). What happened is reported to the engine
//! in batches ([`DeliveryReport`]): many deliveries acknowledged in one commit, while the
//! next deliveries are already on their way. An entry leaves the outbox only after a 2xx
//! (or as a dead letter), so a crash at any point means a redelivery, never a loss.

pub mod signing;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::engine::{DeliveryReport, EngineError, EngineHandle, Wakers};
use crate::metrics::Metrics;
use crate::store::{ConsumerState, DeadLetter, DeliveryAttempt, OutboxEntry, Store};

pub mod retry;
pub mod subscribers;

/// Deliveries in flight at once per consumer (each to a different incident).
pub const IN_FLIGHT: usize = 16;
/// Entries a worker holds in memory; it reads more from the outbox as they go.
const HELD: usize = 10_000;
/// How often a worker refreshes its gauges (dead letters, oldest pending, enabled).
const REFRESH: Duration = Duration::from_secs(1);
/// How often a worker asks the engine to prune history older than its retention.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long a worker waits to report again after the engine could not store a report
/// (a full disk): the report is kept and sent again, merged with what came after it.
const REPORT_RETRY: Duration = Duration::from_secs(1);

/// Shared by every worker.
#[derive(Clone)]
pub struct Notifier {
    pub store: Store,
    pub engine: EngineHandle,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub client: reqwest::Client,
}

/// How the workers stop: on `drain` they finish what is pending and exit when their queue
/// is empty; on `stop` they exit at once (the rest stays in the outbox for next time).
#[derive(Clone)]
pub struct Stopping {
    pub drain: CancellationToken,
    pub stop: CancellationToken,
}

/// The names of the configured consumers, in configuration order (shared with the API).
#[derive(Clone, Default)]
pub struct ConsumerNames(Arc<std::sync::RwLock<Arc<Vec<String>>>>);

impl ConsumerNames {
    pub fn get(&self) -> Arc<Vec<String>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, consumers: &[WebhookConfig]) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(consumers.iter().map(|c| c.name.clone()).collect());
    }
}

/// The running webhook workers, one per consumer; [`Workers::apply`] changes them (a
/// reload): an unchanged consumer keeps its worker and its waker; a changed one gets a new
/// worker (what the old one was sending stays in the outbox and is sent again: at least
/// once); a removed one's worker stops, its undelivered entries kept.
pub struct Workers {
    notifier: Notifier,
    /// The configured consumers' names, for the API; follows [`Workers::apply`].
    names: ConsumerNames,
    tracker: TaskTracker,
    stopping: Stopping,
    running: HashMap<String, Worker>,
}

struct Worker {
    consumer: WebhookConfig,
    waker: Arc<Notify>,
    /// Stops this worker only; a child of the set's `stop`.
    stop: CancellationToken,
}

impl Workers {
    /// Starts a worker per consumer, each woken through its entry of `wakers`.
    pub fn start(
        notifier: Notifier,
        consumers: &[WebhookConfig],
        wakers: &Wakers,
        tracker: &TaskTracker,
        stopping: &Stopping,
    ) -> Workers {
        let mut workers = Workers {
            notifier,
            names: ConsumerNames::default(),
            tracker: tracker.clone(),
            stopping: stopping.clone(),
            running: HashMap::new(),
        };
        for consumer in consumers {
            let waker = wakers
                .get(&consumer.name)
                .cloned()
                .unwrap_or_else(|| Arc::new(Notify::new()));
            workers.spawn(consumer, waker);
        }
        workers.names.set(consumers);
        workers
    }

    /// The configured consumers' names as they change.
    pub fn names(&self) -> ConsumerNames {
        self.names.clone()
    }

    /// Delivers to exactly `consumers` from now on; returns their wakers, for the engine.
    pub fn apply(&mut self, consumers: &[WebhookConfig]) -> Wakers {
        let mut old = std::mem::take(&mut self.running);
        for consumer in consumers {
            match old.remove(&consumer.name) {
                Some(worker) if worker.consumer == *consumer => {
                    self.running.insert(consumer.name.clone(), worker);
                }
                Some(worker) => {
                    worker.stop.cancel();
                    self.spawn(consumer, worker.waker);
                }
                None => self.spawn(consumer, Arc::new(Notify::new())),
            }
        }
        for worker in old.into_values() {
            worker.stop.cancel();
        }
        self.names.set(consumers);
        self.wakers()
    }

    pub fn wakers(&self) -> Wakers {
        Arc::new(
            self.running
                .iter()
                .map(|(name, worker)| (name.clone(), worker.waker.clone()))
                .collect(),
        )
    }

    fn spawn(&mut self, consumer: &WebhookConfig, waker: Arc<Notify>) {
        let stop = self.stopping.stop.child_token();
        let stopping = Stopping {
            drain: self.stopping.drain.clone(),
            stop: stop.clone(),
        };
        let worker = self.notifier.clone();
        let config = consumer.clone();
        let wake = waker.clone();
        self.tracker
            .spawn(async move { worker.run(config, wake, stopping).await });
        // A new worker looks at the outbox at once: entries may wait from before.
        waker.notify_one();
        self.running.insert(
            consumer.name.clone(),
            Worker {
                consumer: consumer.clone(),
                waker,
                stop,
            },
        );
    }
}

impl Notifier {
    async fn run(self, consumer: WebhookConfig, waker: Arc<Notify>, stopping: Stopping) {
        let consumer = Arc::new(consumer);
        let name = consumer.name.clone();
        let mut queues = Queues::default();
        let mut in_flight: JoinSet<Attempted> = JoinSet::new();
        let mut report = DeliveryReport {
            consumer: name.clone(),
            ..DeliveryReport::default()
        };
        // The report being stored, and a copy to send again if it is refused.
        let mut acking: Option<tokio::task::JoinHandle<Result<(), EngineError>>> = None;
        let mut unacked: Option<DeliveryReport> = None;
        let mut report_at: Option<tokio::time::Instant> = None;
        let mut enabled = true;
        // When this worker saw a 410 (the disable may not be committed yet).
        let mut disabled_at = None;
        let mut read_wanted = true;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A standby sends nothing: the leader does. A leader that loses its lease stops
        // its process, so this waits only for the lease, once.
        tokio::select! {
            () = self.engine.until_leading() => {}
            () = stopping.drain.cancelled() => return,
            () = stopping.stop.cancelled() => return,
        }
        let mut next_prune = tokio::time::Instant::now();
        // A consumer disabled before a restart stays disabled: read before the first send.
        if let Some(Some(state)) = self.refresh_gauges(&consumer).await {
            enabled = state.enabled;
        }
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                let retention =
                    chrono::Duration::from_std(consumer.retention).unwrap_or(chrono::Duration::MAX);
                report.prune_before = self.clock.now().checked_sub_signed(retention);
            }
            if stopping.stop.is_cancelled() {
                return self.stopped(acking, report).await;
            }
            if read_wanted && queues.held < HELD / 2 {
                read_wanted = false;
                // A store that does not answer (a database cut off) may hold a read for
                // many seconds: a stop does not wait for it.
                let read = tokio::select! {
                    read = self.read(&name, queues.read_upto, HELD - queues.held) => read,
                    () = stopping.stop.cancelled() => continue,
                };
                match read {
                    Ok(page) => {
                        if page.len() == HELD - queues.held {
                            read_wanted = true; // more waiting
                        }
                        queues.add(page);
                    }
                    Err(error) => {
                        tracing::error!(consumer = %name, %error, "reading the outbox failed");
                        read_wanted = true;
                    }
                }
            }
            if enabled {
                let now = tokio::time::Instant::now();
                while in_flight.len() < IN_FLIGHT {
                    let Some(entry) = queues.next_ready(now) else {
                        break;
                    };
                    let worker = self.clone();
                    let consumer = consumer.clone();
                    in_flight.spawn(async move { worker.attempt(&consumer, entry).await });
                }
            }
            let may_report = report_at.is_none_or(|at| tokio::time::Instant::now() >= at);
            if acking.is_none() && !report.is_empty() && may_report {
                report_at = None;
                let engine = self.engine.clone();
                let batch = std::mem::replace(
                    &mut report,
                    DeliveryReport {
                        consumer: name.clone(),
                        ..DeliveryReport::default()
                    },
                );
                unacked = Some(batch.clone());
                acking = Some(tokio::spawn(async move {
                    engine.report_deliveries(batch).await
                }));
            }
            let idle =
                queues.held == 0 && in_flight.is_empty() && acking.is_none() && report.is_empty();
            // With every slot taken, a head that is ready waits for a slot (join_next), not
            // for its time, which has passed: waiting for it would spin.
            let wake_at = queues
                .earliest_retry()
                .filter(|_| enabled && in_flight.len() < IN_FLIGHT);
            tokio::select! {
                Some(done) = in_flight.join_next() => {
                    let done = match done {
                        Ok(done) => done,
                        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                        Err(_) => continue,
                    };
                    self.settle(&consumer, done, &mut queues, &mut report, &mut enabled);
                    if !enabled && disabled_at.is_none() {
                        disabled_at = report.disable.as_ref().map(|state| state.changed_at);
                    }
                }
                acked = async { acking.as_mut().expect("guarded").await }, if acking.is_some() => {
                    acking = None;
                    let refused = unacked.take().expect("kept while acking");
                    match acked {
                        Ok(Ok(())) => {}
                        // The engine stopped: what was not acknowledged is sent again
                        // after the restart.
                        Ok(Err(EngineError::Stopped)) | Err(_) => return,
                        // Refused (the store takes no writes, say): the entries are still
                        // in the outbox; report them again, later, with what came since.
                        Ok(Err(error)) => {
                            tracing::warn!(consumer = %name, %error, "storing the delivery report failed; it is sent again");
                            report.put_back(refused);
                            report_at = Some(tokio::time::Instant::now() + REPORT_RETRY);
                        }
                    }
                }
                () = waker.notified() => read_wanted = true,
                () = sleep_until(wake_at), if wake_at.is_some() => {}
                () = sleep_until(report_at), if report_at.is_some() && acking.is_none() => {}
                _ = refresh.tick() => {
                    let stored = tokio::select! {
                        stored = self.refresh_gauges(&consumer) => stored,
                        () = stopping.stop.cancelled() => continue,
                    };
                    if let Some(stored) = stored {
                        // A disable not yet committed must not be undone by the stored
                        // state it has not reached: only an enable after it counts.
                        let now_enabled = match (&stored, disabled_at) {
                            (Some(state), Some(at)) => state.enabled && state.changed_at >= at,
                            (None, Some(_)) => false,
                            (state, None) => state.as_ref().is_none_or(|s| s.enabled),
                        };
                        if now_enabled && !enabled {
                            tracing::info!(consumer = %name, "webhook consumer enabled again");
                            queues.retry_now();
                            disabled_at = None;
                        }
                        enabled = now_enabled;
                        self.metrics
                            .webhook_consumer_enabled
                            .with_label_values(&[&name])
                            .set(i64::from(enabled));
                    }
                }
                () = stopping.drain.cancelled(), if idle || !enabled => return,
                () = stopping.stop.cancelled() => return self.stopped(acking, report).await,
            }
        }
    }

    /// Stopped at once: what was learned is reported (the engine answers without waiting
    /// for the store when it cannot write); the rest stays in the outbox.
    async fn stopped(
        &self,
        acking: Option<tokio::task::JoinHandle<Result<(), EngineError>>>,
        report: DeliveryReport,
    ) {
        if let Some(acking) = acking {
            let _ = acking.await;
        }
        if !report.is_empty() {
            let _ = self.engine.report_deliveries(report).await;
        }
    }

    async fn read(
        &self,
        consumer: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, crate::store::StoreError> {
        let store = self.store.clone();
        let consumer = consumer.to_owned();
        match tokio::task::spawn_blocking(move || {
            store.pending_outbox_after(&consumer, after, limit)
        })
        .await
        {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// One attempt at the entry.
    async fn attempt(&self, consumer: &WebhookConfig, entry: OutboxEntry) -> Attempted {
        let at = self.clock.now();
        let timestamp = at.timestamp();
        let signature = signing::signature_header(
            &consumer.secrets,
            &entry.event_id,
            timestamp,
            entry.body.as_bytes(),
        );
        let started = std::time::Instant::now();
        let result = self
            .client
            .post(consumer.url.clone())
            .timeout(consumer.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &entry.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(entry.body.clone())
            .send()
            .await;
        let latency = started.elapsed();
        let (status, retry_after, error) = match result {
            Ok(response) => {
                let status = response.status();
                let retry_after = matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                )
                .then(|| {
                    response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| retry::retry_after(value, self.clock.now()))
                })
                .flatten();
                (Some(status), retry_after, None)
            }
            // Without the URL: a consumer's URL may hold its credential (Slack's and Teams'
            // incoming webhooks do), and this text goes to the log and the delivery log.
            Err(error) => (None, None, Some(error_chain(&error.without_url()))),
        };
        Attempted {
            entry,
            at,
            status,
            retry_after,
            latency,
            error,
        }
    }

    /// What an attempt means for the entry's incident queue and the report.
    fn settle(
        &self,
        consumer: &WebhookConfig,
        done: Attempted,
        queues: &mut Queues,
        report: &mut DeliveryReport,
        enabled: &mut bool,
    ) {
        let Attempted {
            entry,
            at,
            status,
            retry_after,
            latency,
            error,
        } = done;
        let incident = entry.incident;
        let log = |outcome: &str, error: Option<String>| DeliveryAttempt {
            consumer: consumer.name.clone(),
            seq: entry.seq,
            event_id: entry.event_id.clone(),
            event_type: entry.event_type.clone(),
            incident,
            at,
            outcome: outcome.to_owned(),
            status: status.map(|s| s.as_u16()),
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            error,
        };
        if status.is_some_and(|s| s.is_success()) {
            self.count(consumer, "success");
            report.attempts.push(log("success", None));
            queues.delivered(incident);
            report.delivered.push(entry);
            return;
        }
        if status == Some(StatusCode::GONE) {
            self.count(consumer, "gone");
            tracing::warn!(consumer = %consumer.name, event = %entry.event_id, "consumer answered 410 Gone; disabled until an admin enables it");
            report.attempts.push(log("gone", None));
            report.disable = Some(ConsumerState {
                enabled: false,
                changed_at: at,
                reason: "the consumer answered 410 Gone".to_owned(),
            });
            *enabled = false;
            self.metrics
                .webhook_consumer_enabled
                .with_label_values(&[&consumer.name])
                .set(0);
            queues.failed(incident, Duration::ZERO);
            return;
        }
        let error = error.unwrap_or_else(|| format!("HTTP {}", status.map_or(0, |s| s.as_u16())));
        let failures = queues.failures(incident) + 1;
        match retry::next(
            &consumer.retry_schedule,
            consumer.max_age,
            entry.created_at,
            self.clock.now(),
            failures,
            retry_after,
            rand::random::<f64>(),
        ) {
            retry::Next::After(wait) => {
                self.count(consumer, "retry");
                tracing::warn!(consumer = %consumer.name, event = %entry.event_id, %error, failures, wait = ?wait, "webhook delivery failed; will retry");
                report.attempts.push(log("retry", Some(error)));
                queues.failed(incident, wait);
            }
            retry::Next::DeadLetter => {
                self.count(consumer, "dead");
                tracing::warn!(consumer = %consumer.name, event = %entry.event_id, %error, failures, "webhook event older than max_age; dead-lettered");
                report.attempts.push(log("dead", Some(error.clone())));
                queues.delivered(incident);
                report.dead.push(DeadLetter {
                    entry,
                    dead_at: at,
                    last_error: error,
                });
            }
        }
    }

    /// Sets the consumer's gauges from the store (but `enabled`, which the worker decides);
    /// answers the stored enabled flag (`Some(None)`: never disabled), `None` if unread.
    async fn refresh_gauges(&self, consumer: &WebhookConfig) -> Option<Option<ConsumerState>> {
        let store = self.store.clone();
        let name = consumer.name.clone();
        let overview = match tokio::task::spawn_blocking(move || store.consumer_overview(&name))
            .await
        {
            Ok(Ok(overview)) => overview,
            Ok(Err(error)) => {
                tracing::warn!(consumer = %consumer.name, %error, "reading the consumer's state failed");
                return None;
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        let labels = [consumer.name.as_str()];
        let m = &self.metrics;
        m.webhook_dead_letters
            .with_label_values(&labels)
            .set(i64::try_from(overview.dead_letters).unwrap_or(i64::MAX));
        let age = overview.oldest_pending.map_or(0.0, |oldest| {
            (self.clock.now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
        });
        m.webhook_oldest_pending_age_seconds
            .with_label_values(&labels)
            .set(age);
        Some(overview.state)
    }

    fn count(&self, consumer: &WebhookConfig, outcome: &str) {
        self.metrics
            .webhook_deliveries_total
            .with_label_values(&[&consumer.name, outcome])
            .inc();
    }
}

/// One attempt's result.
struct Attempted {
    entry: OutboxEntry,
    at: chrono::DateTime<chrono::Utc>,
    status: Option<StatusCode>,
    retry_after: Option<Duration>,
    latency: Duration,
    error: Option<String>,
}

/// A worker's entries in memory: a queue per incident, the head of each the only one sent.
#[derive(Default)]
struct Queues {
    by_incident: HashMap<u64, IncidentQueue>,
    /// Entries held, in flight included.
    held: usize,
    /// The last outbox sequence read: the next read starts after it.
    read_upto: Option<u64>,
}

struct IncidentQueue {
    entries: VecDeque<OutboxEntry>,
    /// Failed attempts at the head.
    failures: u32,
    /// When the head may be tried (again).
    ready_at: tokio::time::Instant,
    in_flight: bool,
}

impl Queues {
    fn add(&mut self, page: Vec<OutboxEntry>) {
        let now = tokio::time::Instant::now();
        for entry in page {
            self.read_upto = Some(entry.seq);
            self.held += 1;
            self.by_incident
                .entry(entry.incident)
                .or_insert_with(|| IncidentQueue {
                    entries: VecDeque::new(),
                    failures: 0,
                    ready_at: now,
                    in_flight: false,
                })
                .entries
                .push_back(entry);
        }
    }

    /// The head of an incident's queue that may be sent now, marked in flight.
    fn next_ready(&mut self, now: tokio::time::Instant) -> Option<OutboxEntry> {
        let queue = self
            .by_incident
            .values_mut()
            .find(|q| !q.in_flight && q.ready_at <= now)?;
        queue.in_flight = true;
        queue.entries.front().cloned()
    }

    fn earliest_retry(&self) -> Option<tokio::time::Instant> {
        self.by_incident
            .values()
            .filter(|q| !q.in_flight)
            .map(|q| q.ready_at)
            .min()
    }

    fn failures(&self, incident: u64) -> u32 {
        self.by_incident.get(&incident).map_or(0, |q| q.failures)
    }

    /// The head is done with (delivered or dead): the next one may go at once.
    fn delivered(&mut self, incident: u64) {
        if let Some(queue) = self.by_incident.get_mut(&incident) {
            queue.entries.pop_front();
            self.held -= 1;
            if queue.entries.is_empty() {
                self.by_incident.remove(&incident);
            } else {
                queue.failures = 0;
                queue.in_flight = false;
                queue.ready_at = tokio::time::Instant::now();
            }
        }
    }

    fn failed(&mut self, incident: u64, wait: Duration) {
        if let Some(queue) = self.by_incident.get_mut(&incident) {
            queue.failures = queue.failures.saturating_add(1);
            queue.in_flight = false;
            queue.ready_at = tokio::time::Instant::now() + wait;
        }
    }

    /// The consumer was enabled again: every head may go now.
    fn retry_now(&mut self) {
        let now = tokio::time::Instant::now();
        for queue in self.by_incident.values_mut() {
            queue.ready_at = now;
        }
    }
}

impl DeliveryReport {
    /// Puts a refused report back in front of this one (which came after it).
    fn put_back(&mut self, earlier: DeliveryReport) {
        let later = std::mem::replace(self, earlier);
        self.delivered.extend(later.delivered);
        self.dead.extend(later.dead);
        self.attempts.extend(later.attempts);
        self.disable = self.disable.take().or(later.disable);
        self.prune_before = self.prune_before.max(later.prune_before);
    }

    fn is_empty(&self) -> bool {
        self.delivered.is_empty()
            && self.dead.is_empty()
            && self.attempts.is_empty()
            && self.disable.is_none()
            && self.prune_before.is_none()
    }
}

/// The client of every request incidentd sends on its own behalf (webhooks, subscribers,
/// a standby's writes passed to the leader): its user agent, and redirects not followed
/// (Standard Webhooks: a redirect is a failure; the leader answers, it does not redirect).
pub fn outbound_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("incidentd/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client builds with static settings")
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The error and its causes, as one line (reqwest's own message says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
