//! The probe scheduler: which probes run, and when.
//!
//! Each probe runs in its own task, start-to-start on its interval (the schedule does not
//! drift with run time), with a random first start within one interval so that many probes
//! do not fire at the same instant. A global semaphore (`probe_concurrency`) bounds how many
//! runs are in flight; a slow target holds only its own permit until its timeout. How late
//! each run starts against its plan is `incidentd_probe_schedule_lag_seconds`, and planned
//! starts missed altogether (a run more than an interval late) are
//! `incidentd_probe_runs_skipped_total`.
//!
//! An idle probe costs a few hundred bytes: its task holds the probe's configuration and
//! board slot (shared, not copied), its metrics handle and its timer; the future of a run,
//! which holds an HTTP request's state, is boxed and lives only while the run does.
//!
//! A probe's results go to the engine with `offer`: a probe never waits for the engine
//! (nor for its commits). If the engine's queue is full the result is dropped and counted in
//! `incidentd_probe_results_dropped_total`; the next run brings a fresh one.
//!
//! [`ProbeSet::apply`] changes the running probes to a new list (a config reload): an
//! unchanged probe keeps its task, its schedule, its board history and its series; a
//! changed one is stopped and started again from nothing; a removed one is stopped and its
//! board entry and series are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::board::{ProbeBoard, RunSummary, Slot};
use super::{Clients, run_once};
use crate::clock::Clock;
use crate::config::{ProbeConfig, ProbeTarget};
use crate::engine::{EngineError, EngineHandle, ProbeRun, Refused, RunVerdict};
use crate::metrics::{Metrics, ProbeMetrics};

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
    /// Starts one task per probe on `tracker`, and puts the probes on the board in this
    /// order. They stop when `stop` is cancelled, or one by one through the returned set.
    pub fn spawn_all(
        self,
        probes: &[Arc<ProbeConfig>],
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> ProbeSet {
        let mut set = ProbeSet {
            shared: Arc::new(Shared {
                clients: Clients::default(),
                permits: Semaphore::new(self.concurrency.max(1)),
                scheduler: self,
            }),
            tracker: tracker.clone(),
            stop,
            running: HashMap::new(),
        };
        set.apply(probes);
        set
    }
}

/// The running probes, by name; [`ProbeSet::apply`] changes them.
pub struct ProbeSet {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    /// The parent of every probe's own token.
    stop: CancellationToken,
    running: HashMap<String, Running>,
}

/// One probe's task, as the set sees it.
struct Running {
    /// Its configuration and its board entry.
    slot: Arc<Slot>,
    /// Stops this probe only; a child of the set's `stop`.
    stop: CancellationToken,
}

/// What [`ProbeSet::apply`] did, by probe name (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// New names.
    pub started: Vec<String>,
    /// Names whose configuration changed: stopped, then started from nothing.
    pub restarted: Vec<String>,
    /// Names no longer configured.
    pub stopped: Vec<String>,
    /// Probes left running as they were (a count: a reload usually leaves most).
    pub unchanged: usize,
}

impl ProbeSet {
    /// Runs exactly `probes` from now on, shown on the board in this order.
    ///
    /// A probe whose configuration is unchanged keeps running on its schedule, with its
    /// board history and its metric series. A changed one is stopped and started anew: a
    /// first run within one interval (jittered, as at start-up), an empty history, series
    /// from nothing. A probe no longer listed is stopped, and its board entry and series
    /// are dropped. A run of a stopped configuration that was in the middle of recording
    /// when it was stopped may still hand the engine that one result.
    ///
    /// Names are unique in a valid configuration; should one repeat, its first entry counts.
    pub fn apply(&mut self, probes: &[Arc<ProbeConfig>]) -> Applied {
        let mut applied = Applied::default();
        let mut next: HashMap<String, Running> = HashMap::with_capacity(probes.len());
        let mut slots = Vec::with_capacity(probes.len());
        for probe in probes {
            if next.contains_key(&probe.name) {
                tracing::warn!(probe = %probe.name, "probe listed twice: the first one runs");
                continue;
            }
            let running = match self.running.remove(&probe.name) {
                Some(running) if running.slot.config() == probe => {
                    applied.unchanged += 1;
                    running
                }
                Some(old) => {
                    old.stop.cancel();
                    applied.restarted.push(probe.name.clone());
                    self.start(probe)
                }
                None => {
                    applied.started.push(probe.name.clone());
                    self.start(probe)
                }
            };
            slots.push(running.slot.clone());
            next.insert(probe.name.clone(), running);
        }
        for (name, old) in self.running.drain() {
            old.stop.cancel();
            self.shared.scheduler.metrics.remove_probe(&name);
            applied.stopped.push(name);
        }
        self.running = next;
        self.shared.scheduler.board.replace(slots);
        applied.started.sort();
        applied.restarted.sort();
        applied.stopped.sort();
        if !(applied.started.is_empty()
            && applied.restarted.is_empty()
            && applied.stopped.is_empty())
        {
            tracing::info!(
                started = applied.started.len(),
                restarted = applied.restarted.len(),
                stopped = applied.stopped.len(),
                unchanged = applied.unchanged,
                "probes changed"
            );
        }
        applied
    }

    /// How many probes run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    fn start(&self, probe: &Arc<ProbeConfig>) -> Running {
        let slot = Arc::new(Slot::new(probe.clone()));
        let task = ProbeTask {
            metrics: self.shared.scheduler.metrics.add_probe(&probe.name),
            slot: slot.clone(),
        };
        let stop = self.stop.child_token();
        let shared = self.shared.clone();
        let stopped = stop.clone();
        // A `select!` rather than `run_until_cancelled_owned`, which holds the future three
        // times over: 100,000 idle probes' tasks took 166 MB with it, 64 MB without.
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                () = stopped.cancelled() => {}
                () = shared.schedule(&task) => {}
            }
        });
        Running { slot, stop }
    }
}

/// What every probe's task shares.
struct Shared {
    clients: Clients,
    permits: Semaphore,
    scheduler: Scheduler,
}

/// The engine's answer to a run, once the run is durable.
type Verdict = tokio::sync::oneshot::Receiver<Result<RunVerdict, EngineError>>;

/// How a run went, for the schedule.
enum Ran {
    /// The results went to the engine (its verdict to come), or were dropped (none).
    Offered(Option<Verdict>),
    /// The engine has stopped: we are shutting down.
    Stopped,
}

/// What one probe's task holds.
struct ProbeTask {
    slot: Arc<Slot>,
    metrics: ProbeMetrics,
}

impl Shared {
    async fn schedule(&self, task: &ProbeTask) {
        // Only what each wait needs lives across it: 100,000 idle tasks add up.
        let first = Instant::now() + jitter(task.slot.config().interval);
        let mut ticks = tokio::time::interval_at(first, task.slot.config().interval);
        // A run that overruns its interval (waiting for a permit, mostly) skips the missed
        // starts instead of bursting; they are counted.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut expected = first;
        // The engine's verdict on the last run, and the confirmation run it asked for.
        let mut verdict: Option<Verdict> = None;
        let mut confirm_at: Option<Instant> = None;
        let mut started = first;
        loop {
            let (planned, skipped) = tokio::select! {
                biased;
                answer = async { verdict.as_mut().expect("guarded").await }, if verdict.is_some() => {
                    verdict = None;
                    if let Ok(Ok(RunVerdict { confirm: true })) = answer {
                        confirm_at = Some(started + task.slot.config().confirm_interval);
                    }
                    continue;
                }
                () = tokio::time::sleep_until(confirm_at.unwrap_or(expected)), if confirm_at.is_some() => {
                    let planned = confirm_at.take().expect("guarded");
                    // The regular schedule resumes an interval after the confirmation.
                    ticks.reset();
                    expected = Instant::now() + ticks.period();
                    (planned, 0)
                }
                planned = ticks.tick() => {
                    let skipped = skipped_starts(expected, planned, ticks.period());
                    expected = planned + ticks.period();
                    (planned, skipped)
                }
            };
            // A standby probes nothing: the leader does (at once where there is one only).
            self.scheduler.engine.until_leading().await;
            let Ok(_permit) = self.permits.acquire().await else {
                return; // the semaphore is never closed; if it were, stop probing
            };
            task.metrics.observe_start(planned.elapsed(), skipped);
            started = Instant::now();
            // Boxed: a run's future is large (an HTTP request's state) and needed only
            // while it runs, so an idle probe's task stays small.
            match Box::pin(self.run(task)).await {
                Ran::Offered(answer) => verdict = answer,
                Ran::Stopped => return,
            }
        }
    }

    /// One run: results to the engine, the metrics and the board.
    async fn run(&self, task: &ProbeTask) -> Ran {
        let Scheduler { engine, clock, .. } = &self.scheduler;
        let probe = task.slot.config();
        let started = std::time::Instant::now();
        let at = clock.now();
        let results = run_once(&self.clients, probe, clock.as_ref()).await;
        let summary = RunSummary::new(at, &results, started.elapsed());
        let name = probe.name.as_str();
        task.metrics.observe_run(
            summary.success,
            summary.response_time,
            summary.certificate_expiry,
        );
        tracing::debug!(probe = name, success = summary.success, subjects = summary.subjects, error = ?summary.error, "probe result");
        task.slot.record(summary);
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
            Ok(verdict) => Ran::Offered(Some(verdict)),
            Err(Refused::Full) => {
                task.metrics.result_dropped();
                tracing::warn!(probe = name, "engine queue full: probe result dropped");
                Ran::Offered(None)
            }
            Err(Refused::Stopped) => Ran::Stopped,
        }
    }
}

/// Planned starts missed between the one `expected` and the one that came, `planned`:
/// with [`MissedTickBehavior::Skip`] a late tick moves to the next start on the same grid.
fn skipped_starts(expected: Instant, planned: Instant, interval: Duration) -> u64 {
    let late = planned.saturating_duration_since(expected).as_nanos();
    let interval = interval.as_nanos().max(1);
    // Rounded: both lie on the grid, up to the timer's rounding.
    u64::try_from((late + interval / 2) / interval).unwrap_or(u64::MAX)
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
    fn jitter_stays_within_the_interval_on_whole_slots() {
        for _ in 0..100 {
            let first = jitter(Duration::from_secs(10));
            assert!(first < Duration::from_secs(10));
            assert_eq!(first.as_millis() % START_SLOT.as_millis(), 0, "{first:?}");
            assert!(jitter(Duration::from_millis(100)) < Duration::from_millis(100));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn skipped_starts_count_whole_intervals() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        #[track_caller]
        fn check(expected: Instant, planned: Instant, interval: Duration, skipped: u64) {
            assert_eq!(skipped_starts(expected, planned, interval), skipped);
        }
        check(start, start, second, 0);
        check(start, start + second, second, 1);
        check(start, start + 3 * second, second, 3);
        // The timer rounds to milliseconds.
        check(
            start,
            start + 2 * second - Duration::from_millis(1),
            second,
            2,
        );
        check(start + second, start, second, 0);
    }
}
