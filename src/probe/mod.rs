//! Probes and their scheduler.
//!
//! Each probe runs in its own task, start-to-start on its interval (the schedule does not
//! drift with run time), with a random first start within one interval so that many probes
//! do not fire at the same instant. A global semaphore (`probe_concurrency`) bounds how many
//! runs are in flight; a slow target holds only its own permit until its timeout.
//!
//! A probe's results go to the engine with `try_send`: a probe never waits for the engine
//! (nor for its commits). If the engine's queue is full the result is dropped and counted in
//! `incidentd_probe_results_dropped_total`; the next run brings a fresh one.
//!
//! Every probe returns a list of (subject, observation): one entry with no labels for a
//! single target, one per series for a Prometheus query. A failing target is a value
//! (`connected: false`, `error`), never an `Err`.

mod board;
mod cert;
mod dns;
mod http;
pub mod icmp;
mod prometheus;
mod tcp;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use board::{KEPT_RUNS, ProbeBoard, ProbeView, RunSummary};
pub use http::HttpClients;
pub use tls::TlsSetup;

use crate::clock::Clock;
use crate::config::{ProbeConfig, ProbeTarget};
use crate::domain::observation::{BODY_LIMIT, Observation};
use crate::engine::{EngineHandle, ProbeRun, Refused};
use crate::metrics::Metrics;

/// A subject's labels: a Prometheus series' labels; empty for single-target probes.
pub type Subject = BTreeMap<String, String>;

/// What probes share: the HTTP clients (at most four) and the TLS setup.
#[derive(Default)]
pub struct Clients {
    pub http: HttpClients,
    pub tls: TlsSetup,
}

/// Runs one probe once: one entry per subject.
pub async fn run_once(
    clients: &Clients,
    probe: &ProbeConfig,
    clock: &dyn Clock,
) -> Vec<(Subject, Observation)> {
    let at = clock.now();
    let timeout = probe.timeout;
    let single = |observation| vec![(Subject::new(), observation)];
    match &probe.target {
        ProbeTarget::Http(target) => single(http::run(&clients.http, target, timeout, at).await),
        ProbeTarget::Tcp(target) => single(tcp::run(target, timeout, at).await),
        ProbeTarget::Tls(target) => single(tls::run(&clients.tls, target, timeout, at).await),
        ProbeTarget::Dns(target) => single(dns::run(target, timeout, at).await),
        ProbeTarget::Icmp(target) => single(icmp::run(target, timeout, at).await),
        ProbeTarget::Prometheus(target) => match clients.http.get(true, false) {
            Ok(client) => prometheus::run(client, target, timeout, at).await,
            Err(error) => single(Observation {
                error: Some(error),
                ..Observation::new(at)
            }),
        },
    }
}

/// Bytes read from a target as text: at most [`BODY_LIMIT`] bytes, invalid UTF-8 replaced,
/// and a character cut at the end dropped rather than replaced.
pub(crate) fn body_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(BODY_LIMIT)];
    let complete = match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        // `error_len() == None`: the input ends inside a character.
        Err(error) if error.error_len().is_none() => &bytes[..error.valid_up_to()],
        Err(_) => bytes,
    };
    let mut text = String::from_utf8_lossy(complete).into_owned();
    // Each replaced byte may grow into a 3-byte U+FFFD: cut back to the limit.
    if text.len() > BODY_LIMIT {
        let mut end = BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// What the scheduler needs besides the probes.
pub struct Scheduler {
    pub engine: EngineHandle,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub board: ProbeBoard,
    /// Runs in flight at once, over all probes (≥ 1).
    pub concurrency: usize,
}

impl Scheduler {
    /// Starts one task per probe on `tracker`; they stop when `stop` is cancelled.
    pub fn spawn_all(self, probes: &[ProbeConfig], tracker: &TaskTracker, stop: CancellationToken) {
        let shared = Arc::new(Shared {
            clients: Clients::default(),
            permits: Semaphore::new(self.concurrency.max(1)),
            scheduler: self,
        });
        for probe in probes {
            // Present at 0 from the start: `rate()` and `increase()` see the first drop.
            shared
                .scheduler
                .metrics
                .probe_results_dropped_total
                .with_label_values(&[&probe.name]);
            let probe = probe.clone();
            let shared = shared.clone();
            let stop = stop.clone();
            tracker.spawn(async move {
                tokio::select! {
                    () = shared.schedule(&probe) => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    }
}

struct Shared {
    clients: Clients,
    permits: Semaphore,
    scheduler: Scheduler,
}

impl Shared {
    async fn schedule(&self, probe: &ProbeConfig) {
        let first = Instant::now() + jitter(probe.interval);
        let mut ticks = tokio::time::interval_at(first, probe.interval);
        // A run that overruns its interval (waiting for a permit, mostly) skips the missed
        // starts instead of bursting.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let Ok(_permit) = self.permits.acquire().await else {
                return; // the semaphore is never closed; if it were, stop probing
            };
            if !self.run(probe).await {
                return;
            }
        }
    }

    /// One run: results to the engine, the metrics and the board. False once the engine
    /// has stopped (we are shutting down).
    async fn run(&self, probe: &ProbeConfig) -> bool {
        let Scheduler {
            engine,
            clock,
            metrics,
            board,
            ..
        } = &self.scheduler;
        let started = std::time::Instant::now();
        let at = clock.now();
        let results = run_once(&self.clients, probe, clock.as_ref()).await;
        let summary = RunSummary::new(at, &results, started.elapsed());
        let name = probe.name.as_str();
        metrics
            .probe_success
            .with_label_values(&[name])
            .set(i64::from(summary.success));
        metrics
            .probe_duration_seconds
            .with_label_values(&[name])
            .observe(summary.response_time.as_secs_f64());
        if let Some(expiry) = summary.certificate_expiry {
            metrics
                .probe_cert_expiry_timestamp_seconds
                .with_label_values(&[name])
                .set(expiry.timestamp());
        }
        tracing::debug!(probe = name, success = summary.success, subjects = summary.subjects, error = ?summary.error, "probe result");
        board.record(name, summary);
        // A successful Prometheus query lists every series there is: the ones it no longer
        // returns have recovered (as an alert resolves when its series disappears).
        let complete = matches!(probe.target, ProbeTarget::Prometheus(_))
            && results
                .iter()
                .all(|(_, o)| o.connected && o.error.is_none());
        let run = ProbeRun {
            probe: probe.name.clone(),
            at,
            complete,
            results,
        };
        match engine.offer(run) {
            Ok(_verdict) => {}
            Err(Refused::Full) => {
                metrics
                    .probe_results_dropped_total
                    .with_label_values(&[name])
                    .inc();
                tracing::warn!(probe = name, "engine queue full: probe result dropped");
            }
            Err(Refused::Stopped) => return false,
        }
        true
    }
}

/// A random delay in `[0, interval)` for the first run.
///
/// Starts fall on whole [`START_SLOT`]s: with thousands of probes, each starting at its own
/// millisecond keeps the runtime's threads waking about a thousand times a second; a few
/// dozen probes starting together in a slot cost half the CPU (measured with
/// `tools/probe-load.sh`: about 115 → 60 µs per probe at 10,000 probes).
fn jitter(interval: Duration) -> Duration {
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let slot = u64::try_from(START_SLOT.as_millis()).unwrap_or(1);
    let at = rand::random_range(0..millis);
    Duration::from_millis(at - at % slot)
}

/// The granularity of first starts (and so of every start, which stays on its interval).
const START_SLOT: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_text_keeps_at_most_the_limit() {
        assert_eq!(body_text(b"hello"), "hello");
        assert_eq!(body_text(&vec![b'a'; BODY_LIMIT + 10]).len(), BODY_LIMIT);
        // A character cut by the limit is dropped, not replaced.
        let mut cut = vec![b'a'; BODY_LIMIT - 1];
        cut.extend_from_slice("é".as_bytes());
        assert_eq!(body_text(&cut), "a".repeat(BODY_LIMIT - 1));
        // Invalid bytes are replaced, and the growth is cut back to the limit.
        let invalid = vec![0xff; BODY_LIMIT];
        let text = body_text(&invalid);
        assert!(text.len() <= BODY_LIMIT && text.chars().all(|c| c == '\u{fffd}'));
        assert_eq!(body_text(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn jitter_stays_within_the_interval_on_whole_slots() {
        for _ in 0..100 {
            let first = jitter(Duration::from_secs(10));
            assert!(first < Duration::from_secs(10));
            assert_eq!(first.as_millis() % START_SLOT.as_millis(), 0, "{first:?}");
            assert!(jitter(Duration::from_millis(100)) < Duration::from_millis(100));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
