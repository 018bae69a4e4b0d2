//! `/metrics` at scale: 10,000 and 100,000 probes (each with `incidentd_probe_success`,
//! `incidentd_probe_last_duration_seconds` and `incidentd_probe_cert_expiry_timestamp_seconds`,
//! and runs observed in `incidentd_probe_duration_seconds`), as many rules, every SLA and
//! incident series the engine makes, a few webhook consumers, and a store of 100,000
//! incidents carrying SLA clocks. Four cases:
//!
//! - (a) `Metrics::render` alone: 10,000 probes and rules, the same with the opt-in
//!   per-probe duration histograms, and 100,000 probes and rules. Targets: < 50 ms at
//!   10,000; < 150 ms and < 25 MB at 100,000.
//! - (b) `GET /metrics` from the running app (`App::build` + `run_until_stopped`, port 0)
//!   on that store, with 10,000 probes and rules configured, over loopback HTTP.
//! - (c) start-up: `App::build` on that store (open the store, rebuild the engine's state
//!   and the gauges that describe it, bind). Target: < 2 s.
//! - (d) `GET /api/v1/sla`'s work: `Store::incident_clocks` + `sla_report::report` over
//!   the 100,000 incidents. Target: < 300 ms.
//!
//! The incidents are written through `Store::commit` in batches of 1,000, as in
//! `benches/store.rs` (one in twenty active and P1–P2, three in twenty active P3–P5, the
//! rest resolved or closed), plus: one in ten is a request, one in 97 a data breach (with
//! a breach-notification clock), and every incident's SLA clocks are started and moved
//! through its workflow, some running clocks at risk or breached. No durable timers are
//! armed: the engine would fire them all at start.
//!
//! The probes in (b) point at a loopback port where nothing listens, every hour, so each
//! runs about once an hour at a random moment; once they are scheduled, their series are
//! filled through the app's `Metrics` handle, as a run of each would.
//!
//! Run: `cargo bench --bench metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

mod fixtures;
use incidentd::app::App;
use incidentd::clock::ManualClock;
use incidentd::config::Config;
use incidentd::domain::incident::{Incident, IncidentId, Kind, State, Tier};
use incidentd::domain::priority::Priority;
use incidentd::domain::signal::Signal;
use incidentd::domain::sla::{self, SlaName, SlaPolicies, SlaSignal};
use incidentd::metrics::{Metrics, ProbeDurationHistogram};
use incidentd::store::Store;

/// Probes and rules of the running app, and of the first render case.
const PROBES: usize = 10_000;
/// Probes and rules of the large render case.
const MANY_PROBES: usize = 100_000;
const INCIDENTS: u64 = 100_000;
const CONSUMERS: [&str; 3] = ["chatops", "servicenow", "pager"];
const CATEGORIES: [&str; 4] = ["availability", "performance", "capacity", "security"];
const SECRET_ENV: &str = "BENCH_WEBHOOK_SECRET";

fn opened_at(id: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::minutes(id as i64)
}

/// "Now" for the app and the SLA report: a day after the last incident opened.
fn now() -> DateTime<Utc> {
    opened_at(INCIDENTS) + Duration::days(1)
}

fn probe_name(i: usize) -> String {
    format!("svc-{:03}-probe-{i:05}", i % 500)
}

fn rule_name(i: usize) -> String {
    format!("svc-{:03}-down-{i:05}", i % 500)
}

/// A probe run's duration in seconds: 2 ms to about 1.5 s, spread over the buckets.
fn duration_of(i: usize, run: usize) -> f64 {
    ((i * 7_919 + run * 104_729) % 1_500) as f64 / 1_000.0 + 0.002
}

/// What three runs of each of `probes` probes and a few webhook consumers leave in the
/// metrics.
fn fill_probes_and_webhooks(metrics: &Metrics, probes: usize) {
    for i in 0..probes {
        let probe = metrics.add_probe(&probe_name(i));
        for run in 0..3 {
            let expiry = DateTime::from_timestamp(1_790_000_000 + (i as i64) * 3_600, 0);
            probe.observe_start(StdDuration::from_micros((i * 37 % 5_000) as u64), 0);
            probe.observe_run(
                !i.is_multiple_of(50),
                StdDuration::from_secs_f64(duration_of(i, run)),
                expiry,
            );
        }
        if i.is_multiple_of(1_000) {
            probe.result_dropped();
        }
    }
    for (n, consumer) in CONSUMERS.into_iter().enumerate() {
        for (outcome, count) in [("success", 5_000), ("retry", 40), ("gone", 1)] {
            metrics
                .webhook_deliveries_total
                .with_label_values(&[consumer, outcome])
                .inc_by(count);
        }
        metrics
            .webhook_pending
            .with_label_values(&[consumer])
            .set(n as i64);
    }
}

/// What the engine makes of a busy desk: every `incidents_open` combination, the counters
/// of opening, resolving, reopening and escalating, and the SLA signals (on top of the
/// series `Metrics::with_sla` creates).
fn fill_desk(metrics: &Metrics, rules: usize) {
    for i in 0..rules {
        metrics
            .rule_firing
            .with_label_values(&[&rule_name(i)])
            .set(i64::from(i.is_multiple_of(100)));
    }
    let mut n = 0u64;
    for priority in Priority::ALL {
        let p = priority.as_str();
        for category in CATEGORIES.into_iter().chain(["data_breach", "request"]) {
            for tier in Tier::ALL {
                for state in [State::Open, State::Acknowledged, State::OnHold] {
                    metrics
                        .incidents_open
                        .with_label_values(&[p, tier.as_str(), state.as_str(), category])
                        .set((n % 17) as i64);
                    n += 1;
                }
            }
            for source in ["rule", "ticket"] {
                for kind in [Kind::Incident, Kind::Request] {
                    metrics
                        .incidents_opened_total
                        .with_label_values(&[p, category, source, kind.as_str()])
                        .inc_by(n % 300);
                }
            }
            metrics
                .incidents_resolved_total
                .with_label_values(&[p, category])
                .inc_by(n % 250);
        }
        metrics
            .incidents_reopened_total
            .with_label_values(&[p])
            .inc_by(3);
        for kind in [Kind::Incident, Kind::Request] {
            for (k, sla) in SlaName::ALL.into_iter().enumerate() {
                let minutes = 30 * (k as i64 + 1) * (priority as i64 + 1);
                for _ in 0..20 {
                    metrics.observe_sla(
                        SlaSignal::Stopped {
                            sla,
                            met: minutes < 240,
                            elapsed: TimeDelta::minutes(minutes),
                        },
                        kind,
                        priority,
                    );
                }
                metrics.observe_sla(SlaSignal::Warned(sla), kind, priority);
                metrics.observe_sla(SlaSignal::Breached(sla), kind, priority);
                for status in ["ok", "at_risk", "breached"] {
                    metrics
                        .sla_open
                        .with_label_values(&[sla.as_str(), kind.as_str(), p, status])
                        .set(7);
                }
            }
        }
    }
    for (from, to) in [("L1", "L2"), ("L2", "L3"), ("L1", "L3"), ("L3", "L2")] {
        for reason in ["manual", "unacknowledged", "unresolved", "priority"] {
            metrics
                .escalations_total
                .with_label_values(&[from, to, reason])
                .inc_by(11);
        }
    }
}

/// Number of samples and bytes of an exposition.
fn size(text: &str) -> (usize, usize) {
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    (samples, text.len())
}

/// Incident `id` as it stands `now`, with its SLA clocks started and moved through its
/// workflow.
fn incident(id: u64, policies: &SlaPolicies) -> Incident {
    let opened = opened_at(id);
    let (kind, category) = match id {
        _ if id.is_multiple_of(97) => (Kind::Incident, "data_breach"),
        _ if id % 10 == 9 => (Kind::Request, "request"),
        _ => (Kind::Incident, CATEGORIES[(id % 4) as usize]),
    };
    let restricted = category == "data_breach";
    let ticket = fixtures::ticket(id, kind, category);
    let signal = Signal::from_ticket(IncidentId(id), ticket, Priority::P3, Tier::L1, "desk");
    let (mut incident, _) = Incident::open(IncidentId(id), &signal, opened);
    let (state, priority) = fixtures::state_and_priority(id);
    incident.priority = priority;
    incident.tier = Tier::ALL[(id % 3) as usize];
    sla::start(&mut incident, policies);
    sla::reconcile(&mut incident, policies, restricted, opened);
    fixtures::walk(&mut incident, id, state, opened, policies, restricted);
    // What the durable timers would have done to clocks still running.
    for name in SlaName::ALL {
        if let Some(clock) = incident.sla.get_mut(name)
            && clock.stopped_at.is_none()
        {
            clock.warned = id.is_multiple_of(7) || id.is_multiple_of(11);
            clock.breached = id.is_multiple_of(11);
        }
    }
    incident
}

/// Writes the incidents, four timeline entries each.
fn fill_store(store: &Store, policies: &SlaPolicies) {
    fixtures::fill(store, INCIDENTS, |id| incident(id, policies));
}

/// `incidentd.yaml` on the store, three webhook consumers where nothing listens, and
/// `rules/probes.yaml` with 10,000 hourly probes and a rule on each.
fn write_config(dir: &Path, store: &Path) -> Config {
    let mut config = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: \"{}\"}}\nwebhooks:\n",
        store.display()
    );
    for consumer in CONSUMERS {
        writeln!(
            config,
            "  - {{name: {consumer}, url: \"http://127.0.0.1:1/hook\", secret_env: {SECRET_ENV}}}"
        )
        .unwrap();
    }
    std::fs::write(dir.join("incidentd.yaml"), config).unwrap();
    let mut rules = String::from("probes:\n");
    for i in 0..PROBES {
        writeln!(
            rules,
            "  - {{name: {}, interval: 1h, http: {{url: \"http://127.0.0.1:1/health\"}}}}",
            probe_name(i)
        )
        .unwrap();
    }
    rules.push_str("rules:\n");
    for i in 0..PROBES {
        writeln!(
            rules,
            "  - {{name: {}, probe: {}, when: '[STATUS] != 200', after: 3}}",
            rule_name(i),
            probe_name(i)
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/probes.yaml"), rules).unwrap();
    let secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=".to_owned();
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret)]);
    let started = Instant::now();
    let config =
        incidentd::config::load(&dir.join("incidentd.yaml"), &|name| env.get(name).cloned())
            .unwrap_or_else(|errors| panic!("{errors}"));
    eprintln!(
        "loaded the config ({} probes, {} rules) in {:.1?}",
        config.probes.len(),
        config.rules.len(),
        started.elapsed()
    );
    config
}

fn bench(c: &mut Criterion) {
    // (a) The exposition alone.
    for (probes, durations, name) in [
        (
            PROBES,
            ProbeDurationHistogram::Aggregate,
            "render (10,000 probes and rules)",
        ),
        (
            PROBES,
            ProbeDurationHistogram::PerProbe,
            "render (10,000 probes and rules, per-probe duration histograms)",
        ),
        (
            MANY_PROBES,
            ProbeDurationHistogram::Aggregate,
            "render (100,000 probes and rules)",
        ),
    ] {
        let metrics = Metrics::with_options(&SlaPolicies::default(), durations);
        fill_probes_and_webhooks(&metrics, probes);
        fill_desk(&metrics, probes);
        let (samples, bytes) = size(&metrics.render());
        eprintln!("{name}: {samples} samples, {bytes} bytes");
        let mut group = c.benchmark_group("render");
        group.sample_size(if probes > PROBES { 20 } else { 100 });
        group.bench_function(name, |b| {
            b.iter(|| metrics.render());
        });
        group.finish();
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/incidentd.redb");
    let policies = SlaPolicies::default();
    let store = Store::open(&path).unwrap();
    let started = Instant::now();
    fill_store(&store, &policies);
    eprintln!(
        "wrote {INCIDENTS} incidents with SLA clocks in {:.1?}",
        started.elapsed()
    );

    // (d) What `GET /api/v1/sla` does.
    let mut group = c.benchmark_group("sla report");
    group.sample_size(10);
    group.bench_function("incident_clocks + report, 30 days (100k incidents)", |b| {
        b.iter(|| {
            let clocks = store.incident_clocks().unwrap();
            let report = incidentd::sla_report::report(
                clocks.iter().map(incidentd::sla_report::Clocks::from),
                &policies,
                TimeDelta::days(30),
                now(),
            );
            assert!(report.mean_resolution.resolved > 0);
        });
    });
    group.finish();
    drop(store);

    let config = write_config(dir.path(), &path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new(now());

    // (c) Start-up: each build is timed, then the app is started and stopped at once so
    // the next build can open the store.
    let mut group = c.benchmark_group("start-up");
    group.sample_size(10);
    group.bench_function(
        "App::build (100k incidents, 10,000 probes and rules)",
        |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (config, clock) = (config.clone(), clock.clone());
                async move {
                    let mut total = StdDuration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        let app = App::build(config.clone(), Arc::new(clock.clone()))
                            .await
                            .unwrap();
                        total += started.elapsed();
                        app.run_until_stopped(async {}).await.unwrap();
                    }
                    total
                }
            });
        },
    );
    group.finish();

    // (b) `GET /metrics` from the running app.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, task, metrics) = runtime.block_on(async {
        let app = App::build(config.clone(), Arc::new(clock.clone()))
            .await
            .unwrap();
        let metrics = app.metrics().clone();
        let addr = app.local_addr();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        (addr, task, metrics)
    });
    let client = reqwest::Client::new();
    // Once every probe is scheduled (on the board), its series are filled as runs would.
    let probes_url = format!("http://{addr}/api/v1/probes");
    runtime.block_on(async {
        let deadline = Instant::now() + StdDuration::from_secs(60);
        loop {
            let listed: serde_json::Value = client
                .get(&probes_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if listed["probes"].as_array().map(Vec::len) == Some(PROBES) {
                break;
            }
            assert!(Instant::now() < deadline, "the probes were not scheduled");
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    });
    fill_probes_and_webhooks(&metrics, PROBES);
    let url = format!("http://{addr}/metrics");
    let get = || async {
        let response = client.get(&url).send().await.unwrap();
        assert!(response.status().is_success());
        response.text().await.unwrap()
    };
    let (samples, bytes) = size(&runtime.block_on(get()));
    eprintln!("GET /metrics: {samples} samples, {bytes} bytes");
    c.bench_function(
        "GET /metrics (100k incidents, 10,000 probes and rules)",
        |b| {
            b.to_async(&runtime).iter(get);
        },
    );
    runtime.block_on(async {
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
