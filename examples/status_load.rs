//! Status-page load: how long `GET /`, `/status.json`, `/feed.atom` and an uptime badge take
//! on a store of 1,000,000 incidents with 200 services and 90 days of uptime history, in
//! two modes: `steady` (nothing changes between requests: the page built for the snapshot is
//! served) and `changed` (a public note is committed before each request, so every request
//! pays the rebuild of the page from the new snapshot). A measurement, not a test: it prints
//! one table and asserts nothing.
//!
//!   cargo run --release --example status_load            # 300 requests per case
//!   cargo run --release --example status_load -- 1000
//!
//! The store is filled once (about a minute) and kept under
//! `target/bench-fixtures/status-…redb`; each run copies it to a temp dir. Incident `n`
//! opened `n` minutes after 2026-01-01; one in 20,000 is not closed (50, all published
//! tickets of a listed service), one in 50 of the closed ones is published; the app runs on
//! a manual clock a day after the last one opened. The server runs in this process on
//! 127.0.0.1:0 with 200 probes (one per service, every hour, at a port where nothing
//! listens); requests are sequential on one keep-alive connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use incidentd::app::App;
use incidentd::clock::ManualClock;
use incidentd::domain::incident::{Incident, IncidentId, Kind, State, Tier};
use incidentd::domain::priority::Priority;
use incidentd::domain::signal::Signal;
use incidentd::domain::sla::{self, SlaPolicies};
use incidentd::domain::uptime::{DayCount, day_of};
use incidentd::store::Batch;

#[path = "../benches/fixtures/mod.rs"]
#[allow(dead_code)]
mod fixtures;

const INCIDENTS: u64 = 1_000_000;
const SERVICES: usize = 200;
const GROUPS: usize = 10;
const DAYS: i32 = 90;
/// One incident in this many is not closed.
const ACTIVE_EVERY: u64 = 20_000;
/// One closed incident in this many was published.
const PUBLISHED_EVERY: u64 = 50;

fn opened_at(id: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + chrono::Duration::minutes(id as i64)
}

fn now() -> DateTime<Utc> {
    opened_at(INCIDENTS) + chrono::Duration::days(1)
}

fn incident(id: u64, policies: &SlaPolicies) -> Incident {
    let mut ticket = fixtures::ticket(id, Kind::Incident, "availability");
    ticket.service = Some(format!("svc-{:03}", id % SERVICES as u64));
    let active = id.is_multiple_of(ACTIVE_EVERY);
    let priority = Priority::ALL[(id % 5) as usize];
    let signal = Signal::from_ticket(IncidentId(id), ticket, priority, Tier::L1, "desk");
    let opened = opened_at(id);
    let (mut incident, _) = Incident::open(IncidentId(id), &signal, opened);
    sla::start(&mut incident, policies);
    let state = if active { State::Open } else { State::Closed };
    fixtures::walk(&mut incident, id, state, opened, policies, false);
    incident.published = active || id.is_multiple_of(PUBLISHED_EVERY);
    incident
}

/// The filled store, reused when a complete one of this schema exists.
fn fixture() -> PathBuf {
    fixtures::cached_store(&format!("status-{INCIDENTS}"), |store| {
        let policies = SlaPolicies::default();
        fixtures::fill(store, INCIDENTS, |id| incident(id, &policies));
        // 90 days of uptime per probe: every run of the day, a few failed now and then.
        let today = day_of(now());
        let mut batch = Batch::default();
        for probe in 0..SERVICES {
            for day in today - DAYS + 1..=today {
                let runs = 1_440;
                let failed = if (probe as i32 + day) % 17 == 0 {
                    30
                } else {
                    0
                };
                batch.put_uptime(
                    &format!("probe-{probe:03}"),
                    day,
                    DayCount {
                        runs,
                        ok: runs - failed,
                    },
                );
            }
        }
        store.commit(&batch).unwrap();
    })
}

fn config(dir: &Path, store: &Path) -> PathBuf {
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: {}}}\nrule_files: [rules/*.yaml]\nstatus_page:\n  title: Load status\n  services:\n",
        store.display()
    );
    let mut rules = "probes:\n".to_owned();
    for i in 0..SERVICES {
        yaml.push_str(&format!(
            "    - {{name: svc-{i:03}, display: 'Service {i}', group: 'Group {}'}}\n",
            i % GROUPS
        ));
        rules.push_str(&format!(
            "  - {{name: probe-{i:03}, interval: 1h, timeout: 1s, labels: {{service: svc-{i:03}}}, tcp: {{address: '127.0.0.1:65535'}}}}\n"
        ));
    }
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/probes.yaml"), rules).unwrap();
    let path = dir.join("incidentd.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

struct Case {
    path: String,
    mode: &'static str,
    bytes: usize,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .map_or(300, |n| n.parse().expect("requests: a number"));
    let source = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("incidentd.redb");
    std::fs::copy(&source, &store).unwrap();
    let config_path = config(tmp.path(), &store);
    let config = incidentd::config::load(&config_path, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let app = App::build(config, Arc::new(ManualClock::new(now())))
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    eprintln!("serving on {base}, ready after {:.2?}", started.elapsed());

    let note = format!("{base}/api/v1/incidents/INC-{ACTIVE_EVERY}/notes");
    let mut cases = Vec::new();
    for mode in ["steady", "changed"] {
        for path in [
            "/",
            "/status.json",
            "/feed.atom",
            "/badge/svc-007/uptime-90d.svg",
        ] {
            let url = format!("{base}{path}");
            let mut latencies = Vec::with_capacity(requests);
            let mut bytes = 0;
            for i in 0..requests + 10 {
                if mode == "changed" {
                    let body = serde_json::json!({
                        "text": format!("update {i}: still watching"),
                        "public": true,
                    });
                    let answer = client.post(&note).json(&body).send().await.unwrap();
                    assert!(answer.status().is_success(), "note: {}", answer.status());
                }
                let sent = Instant::now();
                let answer = client.get(&url).send().await.unwrap();
                assert!(answer.status().is_success(), "{path}: {}", answer.status());
                let body = answer.bytes().await.unwrap();
                let took = sent.elapsed();
                // The first few warm the connection and the cache.
                if i >= 10 {
                    latencies.push(took);
                }
                bytes = body.len();
            }
            latencies.sort();
            cases.push(Case {
                path: path.to_owned(),
                mode,
                bytes,
                latencies,
            });
        }
    }

    println!(
        "\nstatus page load: {INCIDENTS} stored incidents, {SERVICES} services, {DAYS} days of uptime, {requests} sequential requests per case\n"
    );
    println!(
        "  {:<32} {:<8} {:>10} {:>9} {:>9} {:>9}",
        "path", "mode", "bytes", "p50 ms", "p99 ms", "max ms"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    for case in &cases {
        println!(
            "  {:<32} {:<8} {:>10} {:>9.3} {:>9.3} {:>9.3}",
            case.path,
            case.mode,
            case.bytes,
            ms(percentile(&case.latencies, 0.50)),
            ms(percentile(&case.latencies, 0.99)),
            ms(*case.latencies.last().unwrap()),
        );
    }
    println!(
        "\n  steady: nothing changed between requests; changed: a public note committed before each\n  request (the note's own time is not counted), so each request rebuilds the page."
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
