//! Probes and their scheduler. Each probe runs in its own task, start-to-start on its
//! interval (a slow run never shifts the schedule of the others, and the schedule does not
//! drift with run time), with a random first start within one interval so that many probes
//! do not fire at the same instant. Results go to the engine without waiting for its commit.

mod http;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::{ProbeConfig, ProbeTarget};
use crate::domain::observation::Observation;
use crate::engine::{Command, EngineHandle};
use crate::metrics::Metrics;

/// Runs one probe once.
pub async fn run_once(
    client: &reqwest::Client,
    probe: &ProbeConfig,
    clock: &dyn Clock,
) -> Observation {
    let at = clock.now();
    match &probe.target {
        ProbeTarget::Http(target) => http::run(client, target, probe.timeout, at).await,
        // Config loading refuses these until their probes land.
        other => Observation {
            error: Some(format!("{} probes are not supported yet", other.kind())),
            ..Observation::new(at)
        },
    }
}

/// The HTTP client shared by every HTTP probe (one connection pool).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("incidentd/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client builds with static settings")
}

/// Starts one task per probe on `tracker`; they stop when `stop` is cancelled.
pub fn spawn_all(
    probes: &[ProbeConfig],
    engine: EngineHandle,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    let client = http_client();
    for probe in probes {
        let probe = probe.clone();
        let engine = engine.clone();
        let clock = clock.clone();
        let metrics = metrics.clone();
        let client = client.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = schedule(&probe, &client, &engine, clock.as_ref(), &metrics) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn schedule(
    probe: &ProbeConfig,
    client: &reqwest::Client,
    engine: &EngineHandle,
    clock: &dyn Clock,
    metrics: &Metrics,
) {
    let first = Instant::now() + jitter(probe.interval);
    let mut ticks = tokio::time::interval_at(first, probe.interval);
    // A run that overruns its interval skips the missed starts instead of bursting.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let observation = run_once(client, probe, clock).await;
        metrics
            .probe_success
            .with_label_values(&[&probe.name])
            .set(i64::from(observation.success()));
        metrics
            .probe_duration_seconds
            .with_label_values(&[&probe.name])
            .observe(observation.response_time.as_secs_f64());
        tracing::debug!(probe = %probe.name, connected = observation.connected, status = ?observation.status, "probe result");
        let command = Command::Observe {
            probe: probe.name.clone(),
            subject: std::collections::BTreeMap::new(),
            observation,
        };
        if engine.send(command).await.is_err() {
            return; // the engine stopped: we are shutting down
        }
    }
}

/// A random delay in `[0, interval)` for the first run.
fn jitter(interval: Duration) -> Duration {
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random_range(0..millis))
}
