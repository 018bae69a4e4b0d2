//! Responder-console load: how long `GET /console` (the queue) takes with 5,000 open
//! incidents, and how long a change takes to reach 200 open consoles over the event stream
//! (`/console/events`), with the memory each open stream costs. A measurement, not a test:
//! it prints one table and asserts nothing.
//!
//!   cargo run --release --example console_load            # 300 requests per case
//!   cargo run --release --example console_load -- 1000 400   # requests, consoles
//!
//! The store is filled once and kept under `target/bench-fixtures/console-…redb`; each run
//! copies it to a temp dir. Incident `n` (of 5,000, all open, acknowledged or on hold, P1
//! to P5, 50 services) opened `n` seconds after 2026-01-01; the app runs in this process on
//! 127.0.0.1:0 on a manual clock a day later, with one admin token. One session signs in;
//! its cookie opens every console. Queue requests are sequential on one keep-alive
//! connection. Fan-out: each round commits a note through the API and times, from just
//! before the request, each console's receipt of the event naming the incident (`event`
//! mode), or the receipt plus a fetch of the queue page as the console's script does
//! (`refetch` mode). Memory: the process's resident set before and after opening the
//! streams, divided by their number — clients included (they run in this process too), so
//! an upper bound of what the server keeps per stream.

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

#[path = "../benches/fixtures/mod.rs"]
#[allow(dead_code)]
mod fixtures;

const INCIDENTS: u64 = 5_000;
const TOKEN: &str = "console-load-admin-token-0123456789";
const ROUNDS: usize = 30;

fn opened_at(id: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + chrono::Duration::seconds(id as i64)
}

fn now() -> DateTime<Utc> {
    opened_at(INCIDENTS) + chrono::Duration::days(1)
}

fn incident(id: u64, policies: &SlaPolicies) -> Incident {
    let ticket = fixtures::ticket(id, Kind::Incident, "availability");
    let priority = Priority::ALL[(id % 5) as usize];
    let signal = Signal::from_ticket(IncidentId(id), ticket, priority, Tier::L1, "desk");
    let opened = opened_at(id);
    let (mut incident, _) = Incident::open(IncidentId(id), &signal, opened);
    sla::start(&mut incident, policies);
    let state = [State::Open, State::Acknowledged, State::OnHold][(id % 3) as usize];
    fixtures::walk(&mut incident, id, state, opened, policies, false);
    incident
}

fn fixture() -> PathBuf {
    fixtures::cached_store(&format!("console-{INCIDENTS}"), |store| {
        let policies = SlaPolicies::default();
        fixtures::fill(store, INCIDENTS, |id| incident(id, &policies));
    })
}

fn config(dir: &Path, store: &Path) -> PathBuf {
    let yaml = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: {}}}\nrule_files: []\nhttp: {{max_connections: 4096}}\nauth:\n  tokens:\n    - {{name: load, token_env: LOAD_TOKEN, role: admin}}\n",
        store.display()
    );
    let path = dir.join("incidentd.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map_or(300, |n| n.parse().expect("requests"));
    let consoles: usize = args.next().map_or(200, |n| n.parse().expect("consoles"));
    let source = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("incidentd.redb");
    std::fs::copy(&source, &store).unwrap();
    let config_path = config(tmp.path(), &store);
    let config = incidentd::config::load(&config_path, &|name| {
        (name == "LOAD_TOKEN").then(|| TOKEN.to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let app = App::build(config, Arc::new(ManualClock::new(now())))
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Sign in once.
    let answer = plain
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &base)
        .body(format!("token={TOKEN}&next=%2Fconsole"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "sign-in");
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The queue.
    let mut rows = Vec::new();
    for path in [
        "/console",
        "/console?q=region+3",
        "/console?priority=P1&tier=L1",
        "/console?state=all&page=49",
    ] {
        let url = format!("{base}{path}");
        let mut latencies = Vec::with_capacity(requests);
        let mut bytes = 0;
        for i in 0..requests + 10 {
            let sent = Instant::now();
            let answer = plain
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{path}");
            let body = answer.bytes().await.unwrap();
            if i >= 10 {
                latencies.push(sent.elapsed());
            }
            bytes = body.len();
        }
        latencies.sort();
        rows.push((path, bytes, latencies));
    }

    // The consoles: one event stream each, on its own connection.
    let rss_before = rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let refetch = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut streams = Vec::new();
    // One client: each open stream holds a connection of its pool of its own.
    let client = reqwest::Client::new();
    for n in 0..consoles {
        let client = client.clone();
        let mut response = client
            .get(format!("{base}/console/events"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "stream {n}");
        let (tx, cookie, base, refetch) =
            (tx.clone(), cookie.clone(), base.clone(), refetch.clone());
        streams.push(tokio::spawn(async move {
            while let Ok(Some(chunk)) = response.chunk().await {
                if !String::from_utf8_lossy(&chunk).contains("event: incidents") {
                    continue;
                }
                if refetch.load(std::sync::atomic::Ordering::Relaxed) {
                    let page = client
                        .get(format!("{base}/console"))
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .unwrap();
                    let _ = page.bytes().await;
                }
                let _ = tx.send((n, Instant::now()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();

    let api = reqwest::Client::new();
    let mut fanouts = Vec::new();
    for mode in ["event", "refetch"] {
        refetch.store(mode == "refetch", std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        let mut each = Vec::new();
        for round in 0..ROUNDS {
            while rx.try_recv().is_ok() {}
            let sent = Instant::now();
            let answer = api
                .post(format!("{base}/api/v1/incidents/INC-{}/notes", round + 1))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"text": format!("round {round}")}))
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "note: {}", answer.status());
            let mut last = Duration::ZERO;
            for _ in 0..consoles {
                let (_, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .expect("every console hears of the change")
                    .unwrap();
                let took = at - sent;
                each.push(took);
                last = last.max(took);
            }
            all.push(last);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        all.sort();
        each.sort();
        fanouts.push((mode, all, each));
    }

    println!(
        "\nconsole load: {INCIDENTS} open incidents, {requests} sequential requests per queue case\n"
    );
    println!(
        "  {:<36} {:>9} {:>9} {:>9} {:>9}",
        "queue", "bytes", "p50 ms", "p99 ms", "max ms"
    );
    for (path, bytes, latencies) in &rows {
        println!(
            "  {:<36} {:>9} {:>9.3} {:>9.3} {:>9.3}",
            path,
            bytes,
            ms(percentile(latencies, 0.50)),
            ms(percentile(latencies, 0.99)),
            ms(*latencies.last().unwrap()),
        );
    }
    println!(
        "\n  fan-out to {consoles} consoles, {ROUNDS} changes (a note through the API) per mode\n"
    );
    println!(
        "  {:<10} {:>16} {:>16} {:>16} {:>16}",
        "mode", "each p50 ms", "each p99 ms", "all p50 ms", "all max ms"
    );
    for (mode, all, each) in &fanouts {
        println!(
            "  {:<10} {:>16.1} {:>16.1} {:>16.1} {:>16.1}",
            mode,
            ms(percentile(each, 0.50)),
            ms(percentile(each, 0.99)),
            ms(percentile(all, 0.50)),
            ms(*all.last().unwrap()),
        );
    }
    println!(
        "\n  memory: {rss_before} KiB resident before the streams, {rss_after} KiB with {consoles} open: {:.1} KiB per stream (clients included)",
        (rss_after.saturating_sub(rss_before)) as f64 / consoles as f64
    );
    println!(
        "  each: from just before the note's request to one console's receipt; all: to the last of them.\n  event: the event only; refetch: the event and the console's fetch of its queue page."
    );
    for stream in streams {
        stream.abort();
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
