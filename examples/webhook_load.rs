//! Webhook delivery throughput: a burst of incident events to one healthy consumer on
//! loopback, in-process (the real app on a temporary store, the real worker, a real HTTP
//! receiver). Two runs, each on a fresh store:
//!
//! - **live**: `CALLERS` clients open `EVENTS` incidents through the API as fast as it
//!   answers; the consumer gets each `incident.opened` while the burst goes on. Reports
//!   the API's rate, the delivery rate (events ÷ time from the first event to the last
//!   delivery) and enqueue-to-delivery latency (arrival at the receiver minus the event's
//!   `occurred_at`, the commit that queued it): p50, p99, max.
//! - **backlog**: the consumer answers `410 Gone` while the burst is queued (the worker
//!   stops at once, the events wait in the outbox); then it answers 200 and is enabled
//!   through the API: the rate at which the worker drains the backlog.
//!
//! ```sh
//! cargo run --release --example webhook_load              # 10,000 events, 64 callers
//! cargo run --release --example webhook_load -- 2000 16 live   # EVENTS CALLERS [live|backlog]
//! ```
//!
//! A measurement, not a test: it prints figures and asserts only that every event arrived.
//! Everything stays on 127.0.0.1 and stops by itself (each run gives up after 10 minutes).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use incidentd::app::App;
use incidentd::clock::SystemClock;

const SECRET_ENV: &str = "WEBHOOK_LOAD_SECRET";
const SECRET: &str = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
const GIVE_UP: Duration = Duration::from_secs(600);

/// A request answered 200: when it arrived, its `webhook-id`, its body.
type Arrival = (DateTime<Utc>, String, Bytes);

/// What the receiver saw.
#[derive(Clone)]
struct Receiver {
    status: Arc<AtomicU16>,
    arrived: Arc<Mutex<Vec<Arrival>>>,
    answered_200: Arc<AtomicUsize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        receiver
            .arrived
            .lock()
            .unwrap()
            .push((Utc::now(), id, body));
        receiver.answered_200.fetch_add(1, Ordering::SeqCst);
    }
    status
}

struct Run {
    receiver: Receiver,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    app: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(first_status: u16) -> anyhow::Result<Run> {
    let receiver = Receiver {
        status: Arc::new(AtomicU16::new(first_status)),
        arrived: Arc::default(),
        answered_200: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = listener.local_addr()?;
    let router = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("incidentd.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nstorage: {{path: incidentd.redb}}\nwebhooks:\n  - {{name: load, url: 'http://{hook}/hook', secret_env: {SECRET_ENV}}}\n"
        ),
    )?;
    let config = incidentd::config::load(&config, &|name| {
        (name == SECRET_ENV).then(|| SECRET.to_owned())
    })
    .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Ok(Run {
        receiver,
        base,
        stop,
        app,
        _dir: dir,
    })
}

/// Opens `events` incidents with `callers` concurrent clients; answers how long it took.
async fn burst(base: &str, events: usize, callers: usize) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let client = client.clone();
        let next = next.clone();
        let url = format!("{base}/api/v1/incidents");
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= events {
                    return anyhow::Ok(());
                }
                let response = client
                    .post(&url)
                    .json(&serde_json::json!({
                        "title": format!("Printer {n} on fire"),
                        "reporter": {"name": "Ana", "contact": "ana@example.com"},
                    }))
                    .send()
                    .await?;
                if response.status() != StatusCode::CREATED {
                    bail!("opening an incident: {}", response.status());
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Waits until `events` distinct events arrived; answers (occurred_at, arrival) of each
/// event's first arrival.
async fn arrivals(
    receiver: &Receiver,
    events: usize,
) -> anyhow::Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let started = Instant::now();
    while receiver.answered_200.load(Ordering::SeqCst) < events {
        if started.elapsed() > GIVE_UP {
            bail!(
                "gave up: {} of {events} events arrived",
                receiver.answered_200.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = receiver.arrived.lock().unwrap().clone();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (at, id, body) in arrived {
        if !seen.insert(id) {
            continue; // at least once: a redelivery counts once, at its first arrival
        }
        let event: serde_json::Value = serde_json::from_slice(&body)?;
        let occurred = event["occurred_at"]
            .as_str()
            .context("occurred_at")?
            .parse::<DateTime<Utc>>()?;
        out.push((occurred, at));
    }
    if out.len() != events {
        bail!("{} distinct events of {events}", out.len());
    }
    Ok(out)
}

fn millis(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

async fn stop(run: Run) -> anyhow::Result<()> {
    let _ = run.stop.send(());
    run.app.await??;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().as_deref().unwrap_or("10000").parse()?;
    let callers: usize = args.next().as_deref().unwrap_or("64").parse()?;
    let only = args.next();
    let wanted = |mode: &str| only.as_deref().is_none_or(|only| only == mode);

    if wanted("live") {
        live(events, callers).await?;
    }
    if wanted("backlog") {
        backlog(events, callers).await?;
    }
    Ok(())
}

/// Delivered while the burst is queued.
async fn live(events: usize, callers: usize) -> anyhow::Result<()> {
    let run = start(200).await?;
    let api = burst(&run.base, events, callers).await?;
    let got = arrivals(&run.receiver, events).await?;
    let first = got.iter().map(|(occurred, _)| *occurred).min().unwrap();
    let last = got.iter().map(|(_, at)| *at).max().unwrap();
    let mut latency: Vec<f64> = got.iter().map(|(o, at)| millis(*at - *o)).collect();
    latency.sort_by(f64::total_cmp);
    let pct = |p: f64| latency[((latency.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    let span = (last - first).to_std().unwrap_or_default();
    println!(
        "live:    {events} events, {callers} callers: API {:.0} incidents/s; delivered {:.0} events/s ({:.2} s from the first event to the last delivery); enqueue-to-delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        events as f64 / api.as_secs_f64(),
        events as f64 / span.as_secs_f64(),
        span.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latency.last().unwrap(),
    );
    stop(run).await
}

/// Queued while the consumer is gone, then drained.
async fn backlog(events: usize, callers: usize) -> anyhow::Result<()> {
    let run = start(410).await?;
    burst(&run.base, events, callers).await?;
    run.receiver.status.store(200, Ordering::SeqCst);
    let drain_started = Utc::now();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/load/enable", run.base))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("enabling the consumer: {}", response.status());
    }
    let got = arrivals(&run.receiver, events).await?;
    let last = got.iter().map(|(_, at)| *at).max().unwrap();
    let span = (last - drain_started).to_std().unwrap_or_default();
    println!(
        "backlog: {events} events queued while the consumer was gone, drained at {:.0} events/s ({:.2} s)",
        events as f64 / span.as_secs_f64(),
        span.as_secs_f64(),
    );
    stop(run).await
}
