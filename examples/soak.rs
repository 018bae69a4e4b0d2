//! The soak driver of `tools/soak.sh` (which starts incidentd and the load target, then
//! this): for `--duration` it keeps a running incidentd busy the way a real one is, and
//! every `--report` seconds prints one line of what that costs it; at the end it checks the
//! counts and prints a summary.
//!
//! What it does, all on 127.0.0.1:
//!
//! - serves, on `--listen`, the **flapping targets** (`GET /flap?n=<i>`: `503` for
//!   `--flap-down` seconds of every `--flap-period`, each `n` at its own phase, `200`
//!   otherwise) and a **webhook receiver** (`POST /hook`: counts events by `type`, deduped
//!   by `webhook-id`; every event is delivered at least once, so a redelivery counts once);
//! - pushes a steady **alert stream**: `--rate` alerts a second to `POST /api/v2/alerts`,
//!   one alert a request, round-robin over `--keys` identities, each firing for three
//!   quarters of every `--alert-cycle` and resolved (an `endsAt` in the past) for the last
//!   quarter, each at its own phase — so alert incidents open, refresh, resolve and reopen;
//! - **reads** `--reads` times a second, one request at a time, in turn `GET
//!   /api/v1/incidents`, one incident of that list and `/status.json`, timing each to its
//!   last byte; and **scrapes** `/metrics` every `--scrape` seconds (timed too).
//!
//! Each report line: elapsed time, incidentd's RSS (`VmRSS`) and CPU share over the
//! interval (`/proc/PID/stat`), the machine's load average, the reads' p50 and p99, the
//! slowest `/metrics`, the probe schedule lag (mean, and the bucket bound holding the 99th
//! percentile, from the interval's increase of `incidentd_probe_schedule_lag_seconds`),
//! probe runs a second, alerts sent / answered 2xx / counted by incidentd, incidents opened
//! / resolved / reopened (incidentd's counters), events received and still pending. The
//! same figures go to `--csv`, one row per interval.
//!
//! At the end the load stops, the flapping stops, every alert identity is resolved, and the
//! driver waits (at most `--settle` seconds) for incidentd to go quiet: no rule firing, no
//! webhook event pending. Then it checks: the alerts answered 2xx against
//! `incidentd_alerts_received_total{source="api_v2"}` (per outcome), and the events the
//! store has (every incident's timeline entries of the kinds that are webhook events) against
//! the events received, per type. A difference is printed as `MISMATCH` and the exit status
//! is 1.
//!
//! ```sh
//! cargo run --release --example soak -- --url http://127.0.0.1:9750 --pid 1234 --listen 127.0.0.1:18090 --duration 300
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use clap::Parser;
use tokio::time::{Instant, MissedTickBehavior};

mod support;

#[derive(Parser, Clone)]
#[command(about = "Soak driver for tools/soak.sh")]
struct Args {
    /// incidentd's base URL.
    #[arg(long)]
    url: String,
    /// incidentd's process id (its RSS and CPU are read from /proc).
    #[arg(long)]
    pid: u32,
    /// Where to serve the flapping targets and the webhook receiver.
    #[arg(long)]
    listen: SocketAddr,
    /// How long to drive, in seconds.
    #[arg(long, default_value_t = 1800)]
    duration: u64,
    /// Alerts a second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Alert identities (label sets).
    #[arg(long, default_value_t = 200)]
    keys: u64,
    /// Seconds of one identity's fire-then-resolve cycle.
    #[arg(long, default_value_t = 240)]
    alert_cycle: u64,
    /// API reads a second (0: none).
    #[arg(long, default_value_t = 5.0)]
    reads: f64,
    /// Seconds between scrapes of /metrics.
    #[arg(long, default_value_t = 15)]
    scrape: u64,
    /// Seconds between report lines (a multiple of --scrape).
    #[arg(long, default_value_t = 60)]
    report: u64,
    /// Seconds of a flapping target's cycle.
    #[arg(long, default_value_t = 300)]
    flap_period: u64,
    /// Seconds of each cycle a flapping target answers 503.
    #[arg(long, default_value_t = 60)]
    flap_down: u64,
    /// Probes in all and their interval (seconds): for the expected run rate.
    #[arg(long, default_value_t = 0)]
    probes: u64,
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// How many of the probes point at the flapping targets (for the header only).
    #[arg(long, default_value_t = 0)]
    flapping: u64,
    /// At most this long (seconds) to wait at the end for incidentd to go quiet.
    #[arg(long, default_value_t = 300)]
    settle: u64,
    /// Clock ticks a second (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// The per-interval figures as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// A label on every alert, so two runs against one store do not mix.
    #[arg(long, default_value = "soak")]
    run: String,
}

/// The webhook event types, as the timeline entry kinds that emit them are named
/// (`incident.<kind>`); a reporter's comment is a `note_added` event.
const EVENT_KINDS: [&str; 13] = [
    "opened",
    "acknowledged",
    "escalated",
    "priority_changed",
    "note_added",
    "on_hold",
    "resumed",
    "resolved",
    "reopened",
    "closed",
    "sla_warning",
    "sla_breached",
    "call_scheduled",
];

fn event_of_timeline(kind: &str) -> Option<String> {
    if kind == "reporter_comment" {
        return Some("incident.note_added".to_owned());
    }
    EVENT_KINDS
        .contains(&kind)
        .then(|| format!("incident.{kind}"))
}

// ---------------------------------------------------------------------------------------
// The driver's own server: flapping targets and the webhook receiver.

#[derive(Default)]
struct Received {
    /// Event type of each distinct `webhook-id`.
    ids: HashMap<String, String>,
    /// Requests answered, redeliveries included.
    deliveries: u64,
}

#[derive(Clone)]
struct Served {
    flapping: Arc<AtomicBool>,
    period: u64,
    down: u64,
    received: Arc<Mutex<Received>>,
}

#[derive(serde::Deserialize)]
struct FlapQuery {
    n: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Target `n` is down for `down` seconds of every `period`, from its own phase on (a prime
/// stride spreads the phases over the period).
fn flap_is_down(n: u64, now: u64, period: u64, down: u64) -> bool {
    (now + n.wrapping_mul(7919)) % period < down
}

async fn flap(State(served): State<Served>, Query(query): Query<FlapQuery>) -> StatusCode {
    if served.flapping.load(Ordering::Relaxed)
        && flap_is_down(query.n, unix_now(), served.period, served.down)
    {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

#[derive(serde::Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    kind: String,
}

async fn hook(State(served): State<Served>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(event) = serde_json::from_slice::<EventHead>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = served.received.lock().unwrap();
    received.deliveries += 1;
    received.ids.entry(id.to_owned()).or_insert(event.kind);
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------
// The alert stream.

#[derive(Default)]
struct AlertCounts {
    sent: AtomicU64,
    /// Alerts in requests answered 2xx, by the outcome incidentd gave each.
    outcomes: Mutex<BTreeMap<String, u64>>,
    ok: AtomicU64,
    /// Alerts in requests answered otherwise (or not at all), by status.
    refused: Mutex<BTreeMap<String, u64>>,
}

/// One alert of identity `key`: firing (an `endsAt` 5 minutes ahead, as Prometheus sends
/// it) or resolved (an `endsAt` a second ago).
fn alert_json(run: &str, key: u64, firing: bool) -> String {
    let ends_at = if firing {
        chrono::Utc::now() + chrono::Duration::minutes(5)
    } else {
        chrono::Utc::now() - chrono::Duration::seconds(1)
    };
    format!(
        r#"{{"labels":{{"alertname":"SoakAlert","severity":"warning","job":"soak","run":"{run}","key":"{key}"}},"annotations":{{"summary":"soak alert {key}"}},"endsAt":"{}","generatorURL":"http://127.0.0.1/graph"}}"#,
        ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// Identity `key` fires for the first three quarters of its cycle, from its own phase.
fn alert_fires(key: u64, keys: u64, cycle: u64, elapsed: u64) -> bool {
    let phase = key * cycle / keys.max(1);
    (elapsed + phase) % cycle < cycle * 3 / 4
}

async fn push_alerts(
    client: &reqwest::Client,
    url: &str,
    body: String,
    alerts: u64,
    counts: &AlertCounts,
) {
    counts.sent.fetch_add(alerts, Ordering::Relaxed);
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let refused = match answer {
        Ok(response) if response.status().is_success() => {
            match response.json::<serde_json::Value>().await {
                Ok(answer) => {
                    let mut outcomes = counts.outcomes.lock().unwrap();
                    for alert in answer["alerts"].as_array().into_iter().flatten() {
                        let outcome = alert["outcome"].as_str().unwrap_or("?").to_owned();
                        *outcomes.entry(outcome).or_default() += 1;
                    }
                    counts.ok.fetch_add(alerts, Ordering::Relaxed);
                    return;
                }
                Err(_) => "2xx, unreadable answer".to_owned(),
            }
        }
        Ok(response) => response.status().as_u16().to_string(),
        Err(error) if error.is_timeout() => "timeout".to_owned(),
        Err(_) => "connection error".to_owned(),
    };
    *counts.refused.lock().unwrap().entry(refused).or_default() += alerts;
}

async fn alert_stream(args: Args, counts: Arc<AlertCounts>, stop: Arc<AtomicBool>) {
    if args.rate <= 0.0 {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let url = format!("{}/api/v2/alerts", args.url);
    // At most this many requests in flight: when incidentd is slower than the rate, the
    // stream slows down (and the report shows fewer alerts sent) rather than piling up.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let key = seq % args.keys;
        seq += 1;
        let firing = alert_fires(
            key,
            args.keys,
            args.alert_cycle,
            started.elapsed().as_secs(),
        );
        let body = format!("[{}]", alert_json(&args.run, key, firing));
        let permit = in_flight.clone().acquire_owned().await.expect("open");
        let (client, url, counts) = (client.clone(), url.clone(), counts.clone());
        tokio::spawn(async move {
            push_alerts(&client, &url, body, 1, &counts).await;
            drop(permit);
        });
    }
    // Every request sent is answered (or timed out) before the counts are compared.
    let _all = in_flight.acquire_many(32).await;
}

// ---------------------------------------------------------------------------------------
// API reads.

/// Latencies in microseconds, of reads answered 2xx.
#[derive(Default, Clone)]
struct Latencies {
    by_route: BTreeMap<&'static str, Vec<u32>>,
    errors: u64,
}

impl Latencies {
    fn add(&mut self, route: &'static str, took: Duration) {
        self.by_route
            .entry(route)
            .or_default()
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    fn merged(&self, skip: &str) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .by_route
            .iter()
            .filter(|(route, _)| **route != skip)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }
}

fn ms(sorted: &[u32], q: f64) -> Option<f64> {
    support::quantile(sorted, q).map(|us| f64::from(us) / 1000.0)
}

fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// GET `url` to its last byte: the body and how long it took, or what went wrong.
async fn timed_get(client: &reqwest::Client, url: &str) -> Result<(Bytes, Duration), String> {
    let sent = Instant::now();
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}"));
    }
    Ok((body, sent.elapsed()))
}

async fn reads(args: Args, window: Arc<Mutex<Latencies>>, stop: Arc<AtomicBool>) {
    if args.reads <= 0.0 {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.reads));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ids: Vec<String> = Vec::new();
    let mut turn: usize = 0;
    let mut errors_shown = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        turn += 1;
        let (route, url) = match turn % 3 {
            0 => ("list", format!("{}/api/v1/incidents", args.url)),
            1 if !ids.is_empty() => (
                "incident",
                format!(
                    "{}/api/v1/incidents/{}",
                    args.url,
                    ids[turn / 3 % ids.len()]
                ),
            ),
            _ => ("status.json", format!("{}/status.json", args.url)),
        };
        match timed_get(&client, &url).await {
            Ok((body, took)) => {
                window.lock().unwrap().add(route, took);
                if route == "list"
                    && let Ok(list) = serde_json::from_slice::<serde_json::Value>(&body)
                {
                    ids = list["incidents"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["id"].as_str().map(str::to_owned))
                        .collect();
                }
            }
            Err(error) => {
                window.lock().unwrap().errors += 1;
                if errors_shown < 5 {
                    errors_shown += 1;
                    eprintln!("soak: GET {url}: {error}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// /metrics, reduced to what the report needs.

#[derive(Default, Clone)]
struct Metrics {
    probe_runs: f64,
    skipped: f64,
    /// `incidentd_probe_schedule_lag_seconds`: (le, cumulative count), in exposition order.
    lag_buckets: Vec<(String, f64)>,
    lag_sum: f64,
    lag_count: f64,
    /// `incidentd_alerts_received_total{source="api_v2"}` by outcome.
    alerts: BTreeMap<String, f64>,
    opened: f64,
    resolved: f64,
    reopened: f64,
    active: f64,
    pending: f64,
    firing: f64,
    failing_probes: f64,
}

/// The value of label `key` in `labels` (the text between the braces).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim_start_matches(',');
        let value_start = eq + 2;
        let end = rest[value_start..].find('"')? + value_start;
        if name == key {
            return Some(&rest[value_start..end]);
        }
        rest = &rest[end + 1..];
    }
    None
}

fn parse_metrics(text: &str) -> Metrics {
    let mut m = Metrics::default();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "incidentd_probe_duration_seconds_count" => m.probe_runs += value,
            "incidentd_probe_runs_skipped_total" => m.skipped += value,
            "incidentd_probe_schedule_lag_seconds_bucket" => {
                if let Some(le) = label(labels, "le") {
                    m.lag_buckets.push((le.to_owned(), value));
                }
            }
            "incidentd_probe_schedule_lag_seconds_sum" => m.lag_sum = value,
            "incidentd_probe_schedule_lag_seconds_count" => m.lag_count = value,
            "incidentd_alerts_received_total" if label(labels, "source") == Some("api_v2") => {
                let outcome = label(labels, "outcome").unwrap_or("?").to_owned();
                *m.alerts.entry(outcome).or_default() += value;
            }
            "incidentd_incidents_opened_total" => m.opened += value,
            "incidentd_incidents_resolved_total" => m.resolved += value,
            "incidentd_incidents_reopened_total" => m.reopened += value,
            "incidentd_incidents_open" => m.active += value,
            "incidentd_webhook_pending" => m.pending += value,
            "incidentd_rule_firing" => m.firing += value,
            "incidentd_probe_success" if value == 0.0 => m.failing_probes += 1.0,
            _ => {}
        }
    }
    m
}

/// How late runs started between two scrapes: (mean ms, bound of the bucket holding the
/// 99th percentile, in ms or `>max`), `None` without runs.
fn lag(before: &Metrics, after: &Metrics) -> Option<(f64, String)> {
    let count = after.lag_count - before.lag_count;
    if count <= 0.0 {
        return None;
    }
    let mean = 1000.0 * (after.lag_sum - before.lag_sum) / count;
    let earlier: HashMap<&str, f64> = before
        .lag_buckets
        .iter()
        .map(|(le, v)| (le.as_str(), *v))
        .collect();
    let p99 = after
        .lag_buckets
        .iter()
        .find(|(le, v)| v - earlier.get(le.as_str()).copied().unwrap_or(0.0) >= 0.99 * count)
        .map_or_else(
            || "-".to_owned(),
            |(le, _)| match le.parse::<f64>() {
                Ok(bound) if bound.is_finite() => format!("{}", 1000.0 * bound),
                _ => ">max".to_owned(),
            },
        );
    Some((mean, p99))
}

async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<(Metrics, Duration)> {
    let (body, took) = timed_get(client, url)
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let metrics = tokio::task::spawn_blocking(move || {
        parse_metrics(std::str::from_utf8(&body).unwrap_or_default())
    })
    .await?;
    Ok((metrics, took))
}

// ---------------------------------------------------------------------------------------
// The process.

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One report line's figures.
struct Row {
    elapsed_s: f64,
    /// incidentd's VmRSS sampled every second over the interval: mean, min, max.
    rss_mb: f64,
    rss_min: f64,
    rss_max: f64,
    cpu_pct: f64,
    load1: f64,
    reads: usize,
    read_errors: u64,
    api_p50: Option<f64>,
    api_p99: Option<f64>,
    metrics_max: Option<f64>,
    lag_mean: Option<f64>,
    lag_p99: String,
    runs_per_s: f64,
    skipped: f64,
    alerts_sent: u64,
    alerts_ok: u64,
    alerts_counted: f64,
    opened: f64,
    resolved: f64,
    reopened: f64,
    active: f64,
    events: usize,
    pending: f64,
}

const HEADER: &str = "     t  RSS MB mean/min/max  CPU %  load  reads  err  p50 ms  p99 ms  /metrics ms  lag mean/p99 ms  runs/s  alerts sent/2xx/counted  opened/resolved/reopened  active  events  pending";
const CSV_HEADER: &str = "elapsed_s,rss_mean_mb,rss_min_mb,rss_max_mb,cpu_pct,load1,reads,read_errors,api_p50_ms,api_p99_ms,metrics_max_ms,lag_mean_ms,lag_p99_ms,probe_runs_per_s,runs_skipped,alerts_sent,alerts_2xx,alerts_counted,incidents_opened,incidents_resolved,incidents_reopened,incidents_active,events_received,webhook_pending";

impl Row {
    fn line(&self) -> String {
        format!(
            "{:>6} {:>20} {:>6.1} {:>5.2} {:>6} {:>4} {:>7} {:>7} {:>12} {:>16} {:>7.0} {:>24} {:>25} {:>7.0} {:>7} {:>8.0}",
            clock(self.elapsed_s),
            format!("{:.0}/{:.0}/{:.0}", self.rss_mb, self.rss_min, self.rss_max),
            self.cpu_pct,
            self.load1,
            self.reads,
            self.read_errors,
            fmt_ms(self.api_p50),
            fmt_ms(self.api_p99),
            fmt_ms(self.metrics_max),
            format!("{}/{}", fmt_ms(self.lag_mean), self.lag_p99),
            self.runs_per_s,
            format!(
                "{}/{}/{}",
                self.alerts_sent, self.alerts_ok, self.alerts_counted
            ),
            format!("{}/{}/{}", self.opened, self.resolved, self.reopened),
            self.active,
            self.events,
            self.pending,
        )
    }

    fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
        format!(
            "{:.0},{:.1},{:.1},{:.1},{:.1},{:.2},{},{},{},{},{},{},{},{:.1},{},{},{},{},{},{},{},{},{},{}",
            self.elapsed_s,
            self.rss_mb,
            self.rss_min,
            self.rss_max,
            self.cpu_pct,
            self.load1,
            self.reads,
            self.read_errors,
            opt(self.api_p50),
            opt(self.api_p99),
            opt(self.metrics_max),
            opt(self.lag_mean),
            self.lag_p99,
            self.runs_per_s,
            self.skipped,
            self.alerts_sent,
            self.alerts_ok,
            self.alerts_counted,
            self.opened,
            self.resolved,
            self.reopened,
            self.active,
            self.events,
            self.pending,
        )
    }
}

/// `m:ss`.
fn clock(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Least-squares slope of `points` (x, y), `None` with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------------------------------
// The end: the store's events against those received.

/// Every incident's timeline entries that are webhook events, by event type; and how many
/// incidents there are.
async fn store_events(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(BTreeMap<String, u64>, usize)> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/incidents?limit=500");
        if let Some(cursor) = &cursor {
            write!(url, "&cursor={cursor}").expect("writing to a String cannot fail");
        }
        let page: serde_json::Value = client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for incident in page["incidents"].as_array().into_iter().flatten() {
            ids.push(
                incident["id"]
                    .as_str()
                    .context("an incident id")?
                    .to_owned(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    for id in &ids {
        let incident: serde_json::Value = client
            .get(format!("{base}/api/v1/incidents/{id}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for entry in incident["timeline"].as_array().into_iter().flatten() {
            if let Some(event) = entry["type"].as_str().and_then(event_of_timeline) {
                *events.entry(event).or_default() += 1;
            }
        }
    }
    Ok((events, ids.len()))
}

fn received_by_type(received: &Mutex<Received>) -> (BTreeMap<String, u64>, u64) {
    let received = received.lock().unwrap();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for kind in received.ids.values() {
        *by_type.entry(kind.clone()).or_default() += 1;
    }
    (by_type, received.deliveries)
}

/// `a 1, b 2`, or `-` when empty.
fn list(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "-".to_owned();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k x/y` for every key of either, `(!)` where they differ.
fn table(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> String {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .map(|k| {
            let (x, y) = (
                a.get(*k).copied().unwrap_or(0),
                b.get(*k).copied().unwrap_or(0),
            );
            format!("{k} {x}/{y}{}", if x == y { "" } else { " (!)" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
#[allow(clippy::too_many_lines)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.report == 0 || args.scrape == 0 || !args.report.is_multiple_of(args.scrape) {
        bail!("--report must be a positive multiple of --scrape");
    }
    if args.flap_period == 0 || args.flap_down >= args.flap_period {
        bail!("--flap-down must be shorter than --flap-period");
    }
    if args.keys == 0 || args.alert_cycle < 4 || !args.rate.is_finite() || !args.reads.is_finite() {
        bail!("--keys must be positive, --alert-cycle at least 4, rates finite");
    }
    if !args
        .run
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("--run must be letters, digits and dashes (it goes into JSON as is)");
    }

    // The driver's server.
    let served = Served {
        flapping: Arc::new(AtomicBool::new(true)),
        period: args.flap_period,
        down: args.flap_down,
        received: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let router = Router::new()
        .route("/flap", get(flap))
        .route("/hook", post(hook))
        .with_state(served.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut csv = match &args.csv {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{CSV_HEADER}")?;
            Some(file)
        }
        None => None,
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let metrics_url = format!("{}/metrics", args.url);
    let (mut last, _) = scrape(&client, &metrics_url).await?;
    let first = last.clone();
    let started = Instant::now();
    let mut last_at = started;
    let mut last_ticks = support::cpu_ticks(&args.pid.to_string()).context("incidentd's /proc")?;

    // The load.
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(AlertCounts::default());
    let window = Arc::new(Mutex::new(Latencies::default()));
    let alerts_task = tokio::spawn(alert_stream(args.clone(), counts.clone(), stop.clone()));
    let reads_task = tokio::spawn(reads(args.clone(), window.clone(), stop.clone()));

    // incidentd's RSS once a second: an instant's reading swings with the allocator's
    // transient peaks, so each interval reports the mean, the floor and the peak.
    let rss_window: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sampler = {
        let (rss_window, pid) = (rss_window.clone(), args.pid);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(mb) = rss_mb(pid) {
                    rss_window.lock().unwrap().push(mb);
                }
            }
        })
    };

    println!("{HEADER}");
    let mut rows: Vec<Row> = Vec::new();
    let mut all = Latencies::default();
    let mut scrape_ms: Vec<u32> = Vec::new();
    let mut window_scrape_max: Option<f64> = None;
    let mut tick = tokio::time::interval_at(
        started + Duration::from_secs(args.scrape),
        Duration::from_secs(args.scrape),
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut scrapes: u64 = 0;
    let end = started + Duration::from_secs(args.duration);
    while Instant::now() < end {
        tick.tick().await;
        if !alive(args.pid) {
            bail!("incidentd (pid {}) exited during the run", args.pid);
        }
        let (metrics, took) = match scrape(&client, &metrics_url).await {
            Ok(scraped) => scraped,
            Err(error) => {
                eprintln!("soak: {error}");
                continue;
            }
        };
        scrapes += 1;
        let took_us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        scrape_ms.push(took_us);
        let took_ms = f64::from(took_us) / 1000.0;
        window_scrape_max = Some(window_scrape_max.map_or(took_ms, |m: f64| m.max(took_ms)));
        if !scrapes.is_multiple_of(args.report / args.scrape) && Instant::now() < end {
            continue;
        }

        let now = Instant::now();
        let wall = (now - last_at).as_secs_f64();
        let ticks = support::cpu_ticks(&args.pid.to_string()).unwrap_or(last_ticks);
        #[allow(clippy::cast_precision_loss)]
        let cpu_pct = 100.0 * (ticks - last_ticks) as f64 / args.clk_tck as f64 / wall;
        let reads = std::mem::take(&mut *window.lock().unwrap());
        let sorted = reads.merged("");
        for (route, latencies) in &reads.by_route {
            all.by_route
                .entry(route)
                .or_default()
                .extend(latencies.iter().copied());
        }
        all.errors += reads.errors;
        let lagged = lag(&last, &metrics);
        let rss = std::mem::take(&mut *rss_window.lock().unwrap());
        #[allow(clippy::cast_precision_loss)]
        let rss_mean = rss.iter().sum::<f64>() / rss.len() as f64;
        let row = Row {
            elapsed_s: (now - started).as_secs_f64(),
            rss_mb: rss_mean,
            rss_min: rss.iter().copied().fold(f64::NAN, f64::min),
            rss_max: rss.iter().copied().fold(f64::NAN, f64::max),
            cpu_pct,
            load1: load_average(),
            reads: sorted.len(),
            read_errors: reads.errors,
            api_p50: ms(&sorted, 0.50),
            api_p99: ms(&sorted, 0.99),
            metrics_max: window_scrape_max.take(),
            lag_mean: lagged.as_ref().map(|l| l.0),
            lag_p99: lagged.map_or_else(|| "-".to_owned(), |l| l.1),
            runs_per_s: (metrics.probe_runs - last.probe_runs) / wall,
            skipped: metrics.skipped - last.skipped,
            alerts_sent: counts.sent.load(Ordering::Relaxed),
            alerts_ok: counts.ok.load(Ordering::Relaxed),
            alerts_counted: metrics.alerts.values().sum(),
            opened: metrics.opened,
            resolved: metrics.resolved,
            reopened: metrics.reopened,
            active: metrics.active,
            events: served.received.lock().unwrap().ids.len(),
            pending: metrics.pending,
        };
        println!("{}", row.line());
        if let Some(file) = &mut csv {
            writeln!(file, "{}", row.csv())?;
        }
        rows.push(row);
        last = metrics;
        last_at = now;
        last_ticks = ticks;
    }

    // The end: stop the load, stop the flapping, resolve every alert identity, and wait for
    // incidentd to go quiet before counting.
    stop.store(true, Ordering::Relaxed);
    sampler.abort();
    alerts_task.await?;
    reads_task.await?;
    served.flapping.store(false, Ordering::Relaxed);
    let alerts_url = format!("{}/api/v2/alerts", args.url);
    let keys: Vec<u64> = (0..args.keys).collect();
    for chunk in keys.chunks(100) {
        let body: Vec<String> = chunk
            .iter()
            .map(|&key| alert_json(&args.run, key, false))
            .collect();
        push_alerts(
            &client,
            &alerts_url,
            format!("[{}]", body.join(",")),
            chunk.len() as u64,
            &counts,
        )
        .await;
    }
    println!(
        "  load stopped at {}; flapping off, every alert identity resolved; waiting up to {}s for no rule firing and no event pending",
        clock(started.elapsed().as_secs_f64()),
        args.settle
    );
    let settle_end = Instant::now() + Duration::from_secs(args.settle);
    let mut quiet = false;
    let mut final_metrics = last.clone();
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Ok((metrics, _)) = scrape(&client, &metrics_url).await {
            let done = metrics.firing == 0.0 && metrics.pending == 0.0;
            final_metrics = metrics;
            if done {
                quiet = true;
                break;
            }
        }
    }
    if quiet {
        println!(
            "  quiet {:.0}s after the load stopped",
            args.settle as f64 - (settle_end - Instant::now()).as_secs_f64()
        );
    } else {
        println!(
            "  not quiet after {}s: {} rule(s) firing, {} event(s) pending",
            args.settle, final_metrics.firing, final_metrics.pending
        );
    }
    // Events committed just before the last scrape may still be on the wire: count again a
    // few times before calling a difference a mismatch.
    let mut events_ok = false;
    let mut store = (BTreeMap::new(), 0);
    let mut got = (BTreeMap::new(), 0);
    for attempt in 0..6 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        store = store_events(&client, &args.url).await?;
        got = received_by_type(&served.received);
        if store.0 == got.0 {
            events_ok = true;
            break;
        }
    }
    let (final_metrics, _) = scrape(&client, &metrics_url)
        .await
        .unwrap_or((final_metrics, Duration::ZERO));

    // Summary.
    let outcomes = counts.outcomes.lock().unwrap().clone();
    let refused = counts.refused.lock().unwrap().clone();
    let counted: BTreeMap<String, u64> = final_metrics
        .alerts
        .iter()
        .map(|(k, v)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (k.clone(), *v as u64)
        })
        .collect();
    // incidentd counts a refused request's alerts as rejected, throttled or failed; the
    // rest it answered 2xx, with each alert's outcome in the answer.
    let counted_2xx: BTreeMap<String, u64> = counted
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "rejected" | "throttled" | "failed"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let alerts_ok = outcomes == counted_2xx;

    println!();
    println!(
        "soak summary: {} probes every {}s ({} flapping: 503 for {}s of every {}s), {} alerts/s over {} identities (cycle {}s), {} reads/s, /metrics every {}s, {} of load",
        args.probes,
        args.interval,
        args.flapping,
        args.flap_down,
        args.flap_period,
        args.rate,
        args.keys,
        args.alert_cycle,
        args.reads,
        args.scrape,
        clock(args.duration as f64),
    );
    if let (Some(first_row), Some(last_row)) = (rows.first(), rows.last()) {
        let peak = rows.iter().map(|r| r.rss_max).fold(f64::NAN, f64::max);
        let hours = (last_row.elapsed_s - first_row.elapsed_s) / 3600.0;
        let first_last = (hours > 0.0).then(|| (last_row.rss_mb - first_row.rss_mb) / hours);
        // The first interval is the warm-up (every probe's first runs, detectors filling).
        let fit = |value: fn(&Row) -> f64| {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .skip(1)
                .map(|r| (r.elapsed_s / 3600.0, value(r)))
                .collect();
            slope(&points)
        };
        let fmt_slope =
            |s: Option<f64>| s.map_or_else(|| "n/a".to_owned(), |s| format!("{s:+.0} MB/h"));
        println!(
            "  RSS (mean of the interval's once-a-second samples): {:.1} MB in the first interval, {:.1} MB in the last, peak {peak:.1} MB; slope {} first to last; least squares over intervals 2–{}: mean {}, floor (the interval's minimum) {}",
            first_row.rss_mb,
            last_row.rss_mb,
            fmt_slope(first_last),
            rows.len(),
            fmt_slope(fit(|r| r.rss_mb)),
            fmt_slope(fit(|r| r.rss_min)),
        );
        #[allow(clippy::cast_precision_loss)]
        let mean_cpu = rows.iter().map(|r| r.cpu_pct).sum::<f64>() / rows.len() as f64;
        let max_cpu = rows.iter().map(|r| r.cpu_pct).fold(f64::NAN, f64::max);
        #[allow(clippy::cast_precision_loss)]
        let mean_load = rows.iter().map(|r| r.load1).sum::<f64>() / rows.len() as f64;
        println!(
            "  CPU: {mean_cpu:.1} % of one core on average (busiest interval {max_cpu:.1} %); machine load average {mean_load:.2} on average ({} CPUs)",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
    }
    let mut latency = String::new();
    for (route, latencies) in &all.by_route {
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        write!(
            latency,
            "; {route} {} reads, p50 {} ms, p99 {} ms",
            sorted.len(),
            fmt_ms(ms(&sorted, 0.5)),
            fmt_ms(ms(&sorted, 0.99))
        )?;
    }
    let reads_sorted = all.merged("");
    scrape_ms.sort_unstable();
    println!(
        "  API reads: p50 {} ms, p99 {} ms over {} reads, {} errors{latency}; /metrics: p50 {} ms, p99 {} ms, max {} ms over {} scrapes",
        fmt_ms(ms(&reads_sorted, 0.5)),
        fmt_ms(ms(&reads_sorted, 0.99)),
        reads_sorted.len(),
        all.errors,
        fmt_ms(ms(&scrape_ms, 0.5)),
        fmt_ms(ms(&scrape_ms, 0.99)),
        fmt_ms(ms(&scrape_ms, 1.0)),
        scrape_ms.len(),
    );
    let whole = lag(&first, &last);
    let (first_lag, last_lag) = (
        rows.first().and_then(|r| r.lag_mean),
        rows.last().and_then(|r| r.lag_mean),
    );
    let run_s = rows.last().map_or(0.0, |r| r.elapsed_s);
    #[allow(clippy::cast_precision_loss)]
    let expected = if args.interval > 0 {
        args.probes as f64 / args.interval as f64
    } else {
        0.0
    };
    println!(
        "  probe schedule: {:.0} runs/s (expected {expected:.0}); lag mean {} ms, 99 % within {} ms over the run (first interval mean {} ms, last {} ms); {} runs skipped",
        if run_s > 0.0 {
            (last.probe_runs - first.probe_runs) / run_s
        } else {
            0.0
        },
        fmt_ms(whole.as_ref().map(|l| l.0)),
        whole.map_or_else(|| "-".to_owned(), |l| l.1),
        fmt_ms(first_lag),
        fmt_ms(last_lag),
        last.skipped - first.skipped,
    );
    println!(
        "  alerts: {} sent, {} answered 2xx (outcomes: {}), {} not ({}); incidentd counted {} (incidentd_alerts_received_total{{source=\"api_v2\"}}: {}) → {}",
        counts.sent.load(Ordering::Relaxed),
        counts.ok.load(Ordering::Relaxed),
        list(&outcomes),
        refused.values().sum::<u64>(),
        list(&refused),
        counted.values().sum::<u64>(),
        list(&counted),
        if alerts_ok {
            "OK: every alert answered 2xx is counted with its outcome".to_owned()
        } else {
            format!(
                "MISMATCH: answered 2xx/counted per outcome: {}",
                table(&outcomes, &counted_2xx)
            )
        },
    );
    println!(
        "  incidents: {} in the store; opened {}, resolved {}, reopened {} (incidentd's counters); {} active, {} rule(s) firing, {} probe(s) failing at the end",
        store.1,
        final_metrics.opened,
        final_metrics.resolved,
        final_metrics.reopened,
        final_metrics.active,
        final_metrics.firing,
        final_metrics.failing_probes,
    );
    let store_total: u64 = store.0.values().sum();
    let got_total: u64 = got.0.values().sum();
    println!(
        "  events: {store_total} in the store (timeline entries that are webhook events), {got_total} received (distinct webhook-id; {} deliveries) → {}",
        got.1,
        if events_ok {
            format!("OK ({})", table(&store.0, &got.0))
        } else {
            format!(
                "MISMATCH: store/received per type: {}",
                table(&store.0, &got.0)
            )
        },
    );
    if let Some(path) = &args.csv {
        println!("  per-interval figures: {}", path.display());
    }
    if !(alerts_ok && events_ok) {
        println!("  *** MISMATCH: see above ***");
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_lag() {
        assert_eq!(
            label(r#"source="api_v2",outcome="accepted""#, "outcome"),
            Some("accepted")
        );
        assert_eq!(label(r#"le="0.005""#, "le"), Some("0.005"));
        assert_eq!(label(r#"a="x,y",b="z""#, "b"), Some("z"));
        let text = "incidentd_probe_schedule_lag_seconds_bucket{le=\"0.005\"} 90\nincidentd_probe_schedule_lag_seconds_bucket{le=\"0.05\"} 100\nincidentd_probe_schedule_lag_seconds_bucket{le=\"+Inf\"} 100\nincidentd_probe_schedule_lag_seconds_sum 0.2\nincidentd_probe_schedule_lag_seconds_count 100\n";
        let (mean, p99) = lag(&Metrics::default(), &parse_metrics(text)).unwrap();
        assert!((mean - 2.0).abs() < 1e-9);
        assert_eq!(p99, "50");
    }
}
