//! Faults under a steady load, on redb. Several connections push alerts (Alertmanager's
//! webhook and v2 push, PagerDuty events), open tickets and run the workflow on the
//! incidents they know, each answer counted in a ledger, while:
//!
//! 1. the real binary is SIGKILLed at random points, at least 20 times, and started again
//!    on the same store: afterwards every request answered 2xx is in the store, no alert
//!    identity has two incidents, every escalation and SLA timer fired exactly once, no
//!    alert's expiry was lost, and every event the store holds reached the consumer;
//! 2. the disk fills and frees again and again: every request answered 2xx is kept (read
//!    after a restart), every refusal is a 503 with a JSON message, never a 500 nor a
//!    connection cut nor a panic, `/-/ready` says 503 while full and 200 after, and writes
//!    are taken again without a restart.
//!
//! They always run on the redb file their configuration names, so they skip in the suite's
//! second pass (`INCIDENTD_TEST_BACKEND=postgres`), having run in the first.
//! `INCIDENTD_FAULTS_SEED` replays a run (the seed is printed) and `INCIDENTD_FAULTS_KILLS`
//! sets the number of kills (20); `INCIDENTD_FAULTS_LOG_DIR` keeps every line the server
//! logged. Each prints a line starting `FAULTS SUMMARY` (run with
//! `--nocapture` to see it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::store::SmallDisk;
use crate::support::*;

/// How long a debug build on a loaded machine may take to start.
const START: Duration = Duration::from_secs(30);

/// Time between two requests of one connection.
const PACE: Duration = Duration::from_millis(20);

/// Connections sending the load.
const CONNECTIONS: usize = 4;

// ---------------------------------------------------------------------------------------
// The process

/// `incidentd serve` on a port of its own that stays the same across restarts (the load
/// keeps its address), with every line it logged kept, tagged with the incarnation.
struct Process {
    config: std::path::PathBuf,
    port: u16,
    child: Option<Child>,
    incarnation: u32,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn new(dir: &ConfigDir, port: u16) -> Process {
        Process {
            config: dir.config_path(),
            port,
            child: None,
            incarnation: 0,
            log: Arc::default(),
        }
    }

    /// Starts a process and waits until it listens.
    fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.incarnation += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env(SECRET_ENV, secret_value())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting incidentd");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let tag = format!("[#{}]", self.incarnation);
        let (started, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("incidentd started") {
                    let _ = started.send(());
                }
                log.lock().unwrap().push(format!("{tag} {line}"));
            }
        });
        self.child = Some(child);
        if listening.recv_timeout(START).is_err() {
            panic!(
                "incidentd did not log `incidentd started` within {START:?}:\n{}",
                self.tail(40)
            );
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and the exit status of the graceful shutdown.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Lines of any incarnation that tell of a panic.
    fn panics(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("panicked"))
            .cloned()
            .collect()
    }

    /// How many lines of any incarnation contain `needle`.
    fn logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    fn tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- the last lines incidentd logged:\n{}", self.tail(60));
        }
        // Every line, for a closer look at a run that passed too.
        if let Some(dir) = std::env::var_os("INCIDENTD_FAULTS_LOG_DIR") {
            let name = format!("incidentd-{}.log", self.port);
            let _ = std::fs::write(
                Path::new(&dir).join(name),
                self.log.lock().unwrap().join("\n"),
            );
        }
    }
}

/// A loopback port below the ephemeral range (32768 and up), so that no test binding port
/// 0 takes it while the process is down, and apart from the HA tests' range (20000 to
/// 32000). Each is handed out once per test binary.
fn fixed_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = std::process::id() as usize * 7;
    loop {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000;
        let port = u16::try_from(10_000 + offset).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether the test is skipped: it runs on redb, in the suite's first pass.
fn second_pass() -> bool {
    if on_postgres() {
        eprintln!(
            "skipped: the fault tests run on redb and ran in the first pass (INCIDENTD_TEST_BACKEND only moves in-process apps)"
        );
    }
    on_postgres()
}

fn seed() -> u64 {
    std::env::var("INCIDENTD_FAULTS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random)
}

// ---------------------------------------------------------------------------------------
// The load

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Answered with this status (and the whole body read).
    Answered(u16),
    /// Not sent: nothing listened (the process was down).
    Refused,
    /// Sent, and the connection ended without a whole answer: it may or may not have
    /// been carried out.
    Cut,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Answered(status) => write!(f, "{status}"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::Cut => f.write_str("cut"),
        }
    }
}

/// Every answer the load got, and what the 2xx ones said.
#[derive(Default)]
struct Ledger {
    /// Tickets answered 201: (id, title).
    tickets: Vec<(String, String)>,
    /// Incidents whose acknowledgement was answered 2xx.
    acknowledged: BTreeSet<String>,
    /// Notes answered 2xx: (incident, text).
    notes: Vec<(String, String)>,
    /// Incidents escalated by hand (answered 2xx).
    escalated: BTreeSet<String>,
    /// Alert identities (source and label set) → the incidents the 2xx answers named.
    alerts: BTreeMap<String, BTreeSet<String>>,
    /// Per operation, per outcome: how many.
    outcomes: BTreeMap<&'static str, BTreeMap<Outcome, u64>>,
    /// Answers the test does not accept: operation, status, body.
    unexpected: Vec<(&'static str, u16, String)>,
}

impl Ledger {
    fn total(&self, wanted: impl Fn(Outcome) -> bool) -> u64 {
        self.outcomes
            .values()
            .flat_map(|outcomes| outcomes.iter())
            .filter(|(outcome, _)| wanted(**outcome))
            .map(|(_, n)| n)
            .sum()
    }

    /// `op: 2xx/other/...` for the summary.
    fn table(&self) -> String {
        self.outcomes
            .iter()
            .map(|(op, outcomes)| {
                let each: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o}×{n}")).collect();
                format!("{op}[{}]", each.join(" "))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A steady mix of requests from [`CONNECTIONS`] connections to one address, until stopped.
struct Load {
    base: String,
    seed: u64,
    /// Statuses besides 2xx that a refusal may have (`409` for a transition the state does
    /// not allow is always fine); anything else is unexpected.
    refusals: &'static [u16],
    /// The size of a ticket's description (a bigger store fills a disk sooner).
    description: usize,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

/// What one connection knows of the incidents.
#[derive(Default)]
struct Known {
    /// Tickets it opened.
    tickets: Vec<String>,
    /// Tickets to acknowledge (every third; the others stay open and escalate).
    to_acknowledge: Vec<String>,
    /// Incidents that alerts named.
    alerted: Vec<String>,
}

impl Load {
    fn new(base: String, seed: u64, refusals: &'static [u16], description: usize) -> Load {
        Load {
            base,
            seed,
            refusals,
            description,
            stop: AtomicBool::new(false),
            ledger: Mutex::default(),
        }
    }

    fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..CONNECTIONS)
            .map(|n| tokio::spawn(self.clone().connection(n)))
            .collect()
    }

    async fn finish(&self, tasks: Vec<tokio::task::JoinHandle<()>>) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }

    /// Sends one POST; what came of it, and the body of an answer.
    async fn send(
        &self,
        client: &reqwest::Client,
        op: &'static str,
        path: &str,
        body: Value,
    ) -> (Outcome, Value) {
        let sent = client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await;
        let (outcome, body) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => (
                        Outcome::Answered(status),
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    ),
                    Err(_) => (Outcome::Cut, Value::Null),
                }
            }
            Err(error) if error.is_connect() => (Outcome::Refused, Value::Null),
            Err(_) => (Outcome::Cut, Value::Null),
        };
        if outcome == Outcome::Refused {
            // The process is down: no point in knocking every few milliseconds.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ledger = self.ledger.lock().unwrap();
        *ledger
            .outcomes
            .entry(op)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
        if let Outcome::Answered(status) = outcome {
            let error_message = body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty());
            let fine = (200..300).contains(&status)
                || (status == 409 && error_message)
                || (self.refusals.contains(&status) && error_message);
            if !fine {
                ledger.unexpected.push((op, status, body.to_string()));
            }
        }
        (outcome, body)
    }

    fn ok(outcome: Outcome) -> bool {
        matches!(outcome, Outcome::Answered(200..=299))
    }

    /// Records the incident an alert's 2xx answer named for its identity.
    fn alerted(&self, identity: String, answer: &Value, known: &mut Known) {
        let Some(id) = answer["alerts"][0]["incident"].as_str() else {
            return;
        };
        if !known.alerted.iter().any(|k| k == id) {
            known.alerted.push(id.to_owned());
        }
        self.ledger
            .lock()
            .unwrap()
            .alerts
            .entry(identity)
            .or_default()
            .insert(id.to_owned());
    }

    async fn connection(self: Arc<Self>, n: usize) {
        // A client of its own: its own connection.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let mut rng = StdRng::seed_from_u64(self.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9));
        let mut known = Known::default();
        let mut step = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            step += 1;
            match rng.random_range(0..14) {
                0..=2 => {
                    let title = format!("ticket c{n}-{step}");
                    let body = json!({
                        "title": title,
                        "description": "d".repeat(self.description),
                        "reporter": {"name": "Ana", "contact": "ana@example.com"},
                    });
                    let (outcome, answer) = self
                        .send(&client, "ticket", "/api/v1/incidents", body)
                        .await;
                    if Self::ok(outcome) {
                        let id = answer["id"].as_str().unwrap().to_owned();
                        if known.tickets.len().is_multiple_of(3) {
                            known.to_acknowledge.push(id.clone());
                        }
                        known.tickets.push(id.clone());
                        self.ledger.lock().unwrap().tickets.push((id, title));
                    }
                }
                3 | 4 => {
                    // A bounded set of label sets: pushes again hit their incidents. One
                    // in three carries its own `endsAt`, the others expire after
                    // `alerts.resolve_timeout`.
                    let labels = json!({
                        "alertname": "FaultsPush",
                        "instance": format!("i{}", rng.random_range(0..10)),
                        "severity": "warning",
                    });
                    let mut alert = json!({
                        "labels": labels,
                        "annotations": {"summary": "pushed"},
                    });
                    if rng.random_range(0..3) == 0 {
                        let ends = chrono::Utc::now()
                            + chrono::Duration::milliseconds(rng.random_range(1500..4000));
                        alert["endsAt"] = json!(ends.to_rfc3339());
                    }
                    let (outcome, answer) = self
                        .send(&client, "alert_v2", "/api/v2/alerts", json!([alert]))
                        .await;
                    if Self::ok(outcome) {
                        self.alerted(format!("api_v2 {labels}"), &answer, &mut known);
                    }
                }
                5 | 6 => {
                    let labels = json!({
                        "alertname": "FaultsWebhook",
                        "instance": format!("a{}", rng.random_range(0..6)),
                        "severity": "warning",
                    });
                    let status = if rng.random_range(0..3) == 0 {
                        "resolved"
                    } else {
                        "firing"
                    };
                    let now = chrono::Utc::now().to_rfc3339();
                    let body = json!({
                        "version": "4",
                        "groupKey": "{}:{alertname=\"FaultsWebhook\"}",
                        "status": status,
                        "receiver": "incidentd",
                        "groupLabels": {"alertname": "FaultsWebhook"},
                        "commonLabels": {},
                        "commonAnnotations": {},
                        "externalURL": "http://alertmanager.example",
                        "alerts": [{
                            "status": status,
                            "labels": labels,
                            "annotations": {"summary": "from the webhook"},
                            "startsAt": now,
                            "endsAt": if status == "resolved" { now.clone() } else { "0001-01-01T00:00:00Z".to_owned() },
                            "generatorURL": "",
                            "fingerprint": "",
                        }],
                    });
                    let (outcome, answer) = self
                        .send(&client, "alert_webhook", "/api/v1/alertmanager", body)
                        .await;
                    if Self::ok(outcome) {
                        self.alerted(format!("alertmanager {labels}"), &answer, &mut known);
                    }
                }
                7 => {
                    let action =
                        ["trigger", "trigger", "acknowledge", "resolve"][rng.random_range(0..4)];
                    let body = json!({
                        "routing_key": "faults",
                        "event_action": action,
                        "dedup_key": format!("pd-{}", rng.random_range(0..5)),
                        "payload": {"summary": "PagerDuty says", "source": "faults", "severity": "warning"},
                    });
                    self.send(&client, "event", "/api/v1/events", body).await;
                }
                8 => {
                    let id = known.to_acknowledge.pop().or_else(|| {
                        (!known.alerted.is_empty()).then(|| {
                            known.alerted[rng.random_range(0..known.alerted.len())].clone()
                        })
                    });
                    if let Some(id) = id {
                        let path = format!("/api/v1/incidents/{id}/acknowledge");
                        let (outcome, _) =
                            self.send(&client, "acknowledge", &path, json!({})).await;
                        if Self::ok(outcome) {
                            self.ledger.lock().unwrap().acknowledged.insert(id);
                        }
                    }
                }
                9 | 10 => {
                    let pool: Vec<&String> =
                        known.tickets.iter().chain(known.alerted.iter()).collect();
                    if !pool.is_empty() {
                        let id = pool[rng.random_range(0..pool.len())].clone();
                        let text = format!("note c{n}-{step}");
                        let path = format!("/api/v1/incidents/{id}/notes");
                        let (outcome, _) = self
                            .send(&client, "note", &path, json!({"text": text}))
                            .await;
                        if Self::ok(outcome) {
                            self.ledger.lock().unwrap().notes.push((id, text));
                        }
                    }
                }
                11 => {
                    // By hand, on an alert's incident: tickets escalate by their timers.
                    if !known.alerted.is_empty() {
                        let id = known.alerted[rng.random_range(0..known.alerted.len())].clone();
                        let path = format!("/api/v1/incidents/{id}/escalate");
                        let (outcome, _) = self
                            .send(&client, "escalate", &path, json!({"reason": "by hand"}))
                            .await;
                        if Self::ok(outcome) {
                            self.ledger.lock().unwrap().escalated.insert(id);
                        }
                    }
                }
                _ => {
                    if !known.alerted.is_empty() {
                        let id = known.alerted[rng.random_range(0..known.alerted.len())].clone();
                        let path = format!("/api/v1/incidents/{id}/resolve");
                        self.send(&client, "resolve", &path, json!({"resolution": "fixed"}))
                            .await;
                    }
                }
            }
            tokio::time::sleep(PACE).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the outcome

/// Every incident the server lists (all pages), by id, each read whole (timeline included).
async fn all_incidents(client: &reqwest::Client, base: &str) -> BTreeMap<String, Value> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/incidents?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        for incident in page["incidents"].as_array().unwrap() {
            ids.push(text(&incident["id"]));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut incidents = BTreeMap::new();
    for id in ids {
        let response = client
            .get(format!("{base}/api/v1/incidents/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{id}");
        let incident: Value = response.json().await.unwrap();
        assert!(
            incidents.insert(id.clone(), incident).is_none(),
            "{id} listed twice"
        );
    }
    incidents
}

/// The summaries of every incident the server lists (no timelines: cheap to poll).
async fn summaries(client: &reqwest::Client, base: &str) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/incidents?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        all.extend(page["incidents"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn timeline(incident: &Value) -> &[Value] {
    incident["timeline"].as_array().map_or(&[], Vec::as_slice)
}

/// The messages of an incident's timeline entries of type `kind`.
fn entries<'a>(incident: &'a Value, kind: &str) -> Vec<&'a str> {
    timeline(incident)
        .iter()
        .filter(|entry| entry["type"] == kind)
        .map(|entry| entry["message"].as_str().unwrap_or_default())
        .collect()
}

/// Whether the incident came from an alert pushed to `/api/v2/alerts`.
fn pushed(incident: &Value) -> bool {
    incident["source"]["type"] == "alert" && incident["source"]["source"] == "api_v2"
}

/// Checks what the ledger says against the incidents: every ticket answered 201 is stored
/// under its title (and no title twice), every acknowledgement and note answered 2xx is on
/// its incident, every alert identity's answers named one incident, which is stored, and no
/// two incidents not closed share an alert identity.
fn check_ledger(ledger: &Ledger, incidents: &BTreeMap<String, Value>) {
    assert!(
        ledger.unexpected.is_empty(),
        "answers the test does not accept: {:#?}",
        &ledger.unexpected[..ledger.unexpected.len().min(20)]
    );
    for (id, title) in &ledger.tickets {
        let incident = incidents
            .get(id)
            .unwrap_or_else(|| panic!("ticket {id} ({title}) was answered 201 and is lost"));
        assert_eq!(incident["title"], title.as_str(), "{id}");
    }
    let mut titles = BTreeMap::new();
    for (id, incident) in incidents {
        if incident["source"]["type"] == "ticket"
            && let Some(other) = titles.insert(text(&incident["title"]), id)
        {
            panic!("{other} and {id} are the same ticket");
        }
    }
    for id in &ledger.acknowledged {
        let incident = &incidents[id];
        assert!(
            !incident["acknowledged_at"].is_null() && !entries(incident, "acknowledged").is_empty(),
            "the acknowledgement of {id} was answered 2xx and is lost: {incident}"
        );
    }
    for (id, note) in &ledger.notes {
        assert!(
            entries(&incidents[id], "note_added").contains(&note.as_str()),
            "the note `{note}` on {id} was answered 2xx and is lost"
        );
    }
    for (identity, ids) in &ledger.alerts {
        assert_eq!(
            ids.len(),
            1,
            "{identity} was answered with incidents {ids:?}"
        );
        for id in ids {
            assert!(
                incidents.contains_key(id),
                "{identity} was answered with {id}, which is lost"
            );
        }
    }
    let mut by_fingerprint: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (id, incident) in incidents {
        if incident["source"]["type"] == "alert" && incident["state"] != "closed" {
            by_fingerprint
                .entry(text(&incident["fingerprint"]))
                .or_default()
                .push(id);
        }
    }
    let twice: Vec<_> = by_fingerprint
        .values()
        .filter(|ids| ids.len() > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "alert identities with several incidents not closed: {twice:?}"
    );
}

/// The timeline entries that are events, as the event types they are sent as.
const EVENT_ENTRIES: [(&str, &str); 9] = [
    ("opened", "incident.opened"),
    ("acknowledged", "incident.acknowledged"),
    ("escalated", "incident.escalated"),
    ("note_added", "incident.note_added"),
    ("resolved", "incident.resolved"),
    ("reopened", "incident.reopened"),
    ("sla_warning", "incident.sla_warning"),
    ("sla_breached", "incident.sla_breached"),
    ("closed", "incident.closed"),
];

/// Waits until the consumer has nothing pending.
async fn drained(client: &reqwest::Client, base: &str) {
    eventually_ok(
        "nothing pending for the consumer",
        Duration::from_secs(60),
        async || {
            let overview: Value = client
                .get(format!("{base}/api/v1/webhooks"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let consumer = &overview["webhooks"][0];
            if consumer["pending"] == 0 {
                Ok(())
            } else {
                Err(consumer.to_string())
            }
        },
    )
    .await;
}

/// What the consumer got: events stored, deliveries, redeliveries.
struct Webhooks {
    events: usize,
    deliveries: usize,
    redeliveries: usize,
}

/// Webhooks, at least once and in order per incident: every event the store at `path`
/// holds (delivered or still queued; none dead) reached the consumer, and it got nothing
/// else; and the events are the timeline's: per incident, as many of each type as the
/// timeline has entries. The server must be stopped (redb locks the file).
fn check_deliveries(
    path: &Path,
    receiver: &Receiver,
    incidents: &BTreeMap<String, Value>,
) -> Webhooks {
    let store = incidentd::store::Store::open(path).unwrap();
    let mut stored: Vec<incidentd::store::OutboxEntry> = store
        .replay_candidates(
            "receiver",
            &incidentd::store::ReplaySelection::Since(chrono::DateTime::UNIX_EPOCH),
        )
        .unwrap()
        .into_iter()
        .map(|(entry, dead)| {
            assert!(!dead, "a dead letter: {}", entry.event_id);
            entry
        })
        .collect();
    stored.extend(
        store
            .pending_outbox_after("receiver", None, usize::MAX)
            .unwrap(),
    );
    drop(store);
    let deliveries = receiver.accepted();
    let delivered: BTreeSet<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let stored_ids: BTreeSet<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(stored_ids.len(), stored.len(), "an event id stored twice");
    let lost: Vec<&&str> = stored_ids.difference(&delivered).collect();
    assert!(
        lost.is_empty(),
        "{} stored events never delivered: {lost:?}",
        lost.len()
    );
    let unknown: Vec<&&str> = delivered.difference(&stored_ids).collect();
    assert!(
        unknown.is_empty(),
        "delivered events the store does not have: {unknown:?}"
    );
    for delivery in &deliveries {
        assert!(
            delivery.verifies(),
            "{}: the signature does not verify",
            delivery.id
        );
    }
    // In order per incident: the first arrival of each event follows the outbox's order.
    let position: BTreeMap<&str, (u64, u64)> = stored
        .iter()
        .map(|e| (e.event_id.as_str(), (e.incident, e.seq)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for delivery in &deliveries {
        if !seen.insert(delivery.id.as_str()) {
            continue;
        }
        let (incident, seq) = position[delivery.id.as_str()];
        if let Some(before) = last.insert(incident, seq) {
            assert!(
                before < seq,
                "INC-{incident}: event {} (outbox {seq}) arrived first after outbox {before}",
                delivery.id
            );
        }
    }
    let mut events: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    for entry in &stored {
        *events
            .entry((entry.incident, entry.event_type.as_str()))
            .or_default() += 1;
    }
    for (id, incident) in incidents {
        let number: u64 = id.trim_start_matches("INC-").parse().unwrap();
        for (entry, event) in EVENT_ENTRIES {
            assert_eq!(
                events.get(&(number, event)).copied().unwrap_or(0),
                entries(incident, entry).len(),
                "{id}: `{entry}` entries and `{event}` events differ; timeline: {:#?}; events: {:#?}",
                timeline(incident)
                    .iter()
                    .map(|e| format!("{} {} {}", e["at"], e["type"], e["message"]))
                    .collect::<Vec<_>>(),
                stored
                    .iter()
                    .filter(|e| e.incident == number)
                    .map(|e| format!("{} {} {}", e.seq, e.created_at, e.event_type))
                    .collect::<Vec<_>>(),
            );
        }
    }

    Webhooks {
        events: stored.len(),
        deliveries: deliveries.len(),
        redeliveries: deliveries.len() - delivered.len(),
    }
}

// ---------------------------------------------------------------------------------------
// 1. SIGKILL under load

/// Waits until every timer due fired: each incident still open (never acknowledged) climbed
/// to L3 and breached its first response, and every pushed alert's incident resolved.
async fn timers_fired(client: &reqwest::Client, base: &str) {
    eventually_ok(
        "every timer due fired",
        Duration::from_secs(60),
        async || {
            let all = summaries(client, base).await?;
            let behind: Vec<String> = all
                .iter()
                .filter(|incident| {
                    (incident["state"] == "open"
                        && (incident["tier"] != "L3"
                            || incident["sla"]["first_response"]["state"] != "breached"))
                        || (pushed(incident)
                            && (!matches!(incident["state"].as_str(), Some("resolved" | "closed"))
                                || incident["verification"] == "pending"))
                })
                .map(|incident| {
                    format!(
                        "{} {} {}",
                        incident["id"], incident["state"], incident["tier"]
                    )
                })
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("{} behind: {behind:?}", behind.len()))
            }
        },
    )
    .await;
}

/// What the timers did: automatic escalations, SLA warnings and breaches, pushed alerts'
/// incidents resolved by expiry.
struct Timers {
    escalations: usize,
    sla_events: usize,
    expired: usize,
}

/// Timers, each exactly once and none lost (after [`timers_fired`]).
fn check_timers(ledger: &Ledger, incidents: &BTreeMap<String, Value>) -> Timers {
    // Timers, each exactly once: an automatic escalation step never twice on an incident,
    // an SLA warning or breach never twice; an incident never acknowledged went L1 → L2 →
    // L3 by its timers (unless escalated by hand) and its first response breached once.
    let mut automatic = 0;
    let mut sla_events = 0;
    for (id, incident) in incidents {
        let steps: Vec<&str> = entries(incident, "escalated")
            .into_iter()
            .filter(|m| m.contains("(reason: unacknowledged)"))
            .collect();
        let distinct: BTreeSet<&&str> = steps.iter().collect();
        assert_eq!(
            distinct.len(),
            steps.len(),
            "{id}: a timer escalated twice: {steps:?}"
        );
        automatic += steps.len();
        for kind in ["sla_warning", "sla_breached"] {
            let fired = entries(incident, kind);
            assert!(
                fired
                    .iter()
                    .filter(|m| m.starts_with("First response"))
                    .count()
                    <= 1,
                "{id}: {kind} more than once: {fired:?}"
            );
            sla_events += fired.len();
        }
        if incident["state"] == "open" {
            if !ledger.escalated.contains(id) && incident["source"]["type"] == "ticket" {
                assert_eq!(
                    steps,
                    [
                        "tier L1 → L2 (reason: unacknowledged)",
                        "tier L2 → L3 (reason: unacknowledged)"
                    ],
                    "{id}"
                );
            }
            assert_eq!(entries(incident, "sla_breached").len(), 1, "{id}");
        }
    }

    // No expiry lost: every alert pushed to /api/v2/alerts has expired by now (a few
    // seconds after the last push), so its incident is resolved, and verified: none of its
    // alerts still fires. (An alert's evidence is its last push as received.)
    let mut expired = 0;
    for (id, incident) in incidents {
        if !pushed(incident) {
            continue;
        }
        expired += 1;
        assert!(
            matches!(incident["state"].as_str(), Some("resolved" | "closed")),
            "{id}: its alerts' endsAt passed, it is {}",
            incident["state"]
        );
        // Resolved by hand while an alert still fired would be `pending` until it expires.
        assert_ne!(
            incident["verification"], "pending",
            "{id}: an alert still fires"
        );
    }

    Timers {
        escalations: automatic,
        sla_events,
        expired,
    }
}

/// The configuration of both tests: the store at `store`, escalation of an unacknowledged
/// incident after 2 s (L1 → L2, then L2 → L3 two seconds later), a first-response SLA of
/// 3 s (warning at half), pushed alerts expiring after 3 s, and a webhook consumer.
fn config(port: u16, store: &str, receiver: &Receiver) -> String {
    format!(
        "listen: 127.0.0.1:{port}\n\
         storage: {{path: {store}}}\n\
         escalation:\n  default: {{start_tier: L1, unacknowledged_after: 2s}}\n\
         sla:\n  warn_at: 0.5\n  incident: {{default: {{first_response: 3s, resolution: 1h}}}}\n\
         alerts:\n  resolve_timeout: 3s\n\
         webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n    \
         retry_schedule: [200ms, 1s]\n",
        receiver.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing() {
    if second_pass() {
        return;
    }
    let kills: usize = std::env::var("INCIDENTD_FAULTS_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let seed = seed();
    eprintln!("FAULTS seed={seed} (INCIDENTD_FAULTS_SEED={seed} replays the kill points)");
    let started = Instant::now();
    let receiver = Receiver::start(200).await;
    let port = fixed_port();
    let dir = ConfigDir::new(&config(port, "data/incidentd.redb", &receiver), &[]);
    let mut server = Process::new(&dir, port);
    server.start();
    let client = reqwest::Client::new();

    let load = Arc::new(Load::new(server.base(), seed, &[], 200));
    let tasks = load.start();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut restarts = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        server.kill();
        // Down for a while now and then: sends meanwhile are refused.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        let restart = Instant::now();
        server.start();
        restarts.push(restart.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = load.finish(tasks).await;
    let load_time = started.elapsed();

    // A last crash, then the restart that must make good on everything.
    server.kill();
    server.start();
    let base = server.base();

    timers_fired(&client, &base).await;
    drained(&client, &base).await;
    let incidents = all_incidents(&client, &base).await;
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    assert_eq!(server.panics(), Vec::<String>::new(), "no panic");

    check_ledger(&ledger, &incidents);

    let timers = check_timers(&ledger, &incidents);
    let webhooks = check_deliveries(
        &dir.path().join("data/incidentd.redb"),
        &receiver,
        &incidents,
    );

    let mut sorted = restarts.clone();
    sorted.sort();
    eprintln!(
        "FAULTS SUMMARY (sigkill): seed={seed} kills={} (+1 final) restart_ms p50={} max={} | \
         requests={} 2xx={} refused={} cut={} | {} | tickets={} acks={} notes={} alert identities={} \
         | incidents={} escalations(timer)={} sla_events={} pushed_expired={} \
         | events={} deliveries={} redeliveries={} | load {:.1}s, test {:.1}s",
        kills,
        sorted[sorted.len() / 2].as_millis(),
        sorted.last().unwrap().as_millis(),
        ledger.total(|_| true),
        ledger.total(Load::ok),
        ledger.total(|o| o == Outcome::Refused),
        ledger.total(|o| o == Outcome::Cut),
        ledger.table(),
        ledger.tickets.len(),
        ledger.acknowledged.len(),
        ledger.notes.len(),
        ledger.alerts.len(),
        incidents.len(),
        timers.escalations,
        timers.sla_events,
        timers.expired,
        webhooks.events,
        webhooks.deliveries,
        webhooks.redeliveries,
        load_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(ledger.total(Load::ok) > 0);
}

// ---------------------------------------------------------------------------------------
// 2. The disk fills and frees under load

/// `/-/ready`'s status, `None` when it did not answer.
async fn ready(client: &reqwest::Client, base: &str) -> Option<StatusCode> {
    let response = client.get(format!("{base}/-/ready")).send().await.ok()?;
    Some(response.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_and_freeing_under_load_keeps_every_2xx() {
    const CYCLES: usize = 3;
    if second_pass() {
        return;
    }
    let Some(disk) = SmallDisk::mount("16m").map(Arc::new) else {
        return;
    };
    let seed = seed();
    eprintln!("FAULTS seed={seed} (INCIDENTD_FAULTS_SEED={seed} replays the load)");
    let started = Instant::now();
    let receiver = Receiver::start(200).await;
    let port = fixed_port();
    let store_path = disk.path().join("incidentd.redb");
    let dir = ConfigDir::new(
        &config(port, &store_path.display().to_string(), &receiver),
        &[],
    );
    let mut server = Process::new(&dir, port);
    server.start();
    let base = server.base();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Bigger tickets: the store outgrows the room left soon after the disk fills.
    let load = Arc::new(Load::new(base.clone(), seed, &[503], 1500));
    let tasks = load.start();
    let mut full_for = Vec::new();
    let mut recovered_in = Vec::new();
    for cycle in 0..CYCLES {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let filling = disk.clone();
        let filler = tokio::task::spawn_blocking(move || filling.fill())
            .await
            .unwrap();
        let filled = Instant::now();
        // Under the load the store soon needs room it cannot get: not ready.
        eventually(
            &format!("/-/ready 503 while the disk is full (cycle {cycle})"),
            Duration::from_secs(30),
            async || {
                (ready(&client, &base).await == Some(StatusCode::SERVICE_UNAVAILABLE)).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        full_for.push(filled.elapsed());
        std::fs::remove_file(&filler).unwrap();
        let freed = Instant::now();
        // Without a restart: ready again, and a write is taken.
        eventually(
            &format!("/-/ready 200 once space is back (cycle {cycle})"),
            Duration::from_secs(30),
            async || (ready(&client, &base).await == Some(StatusCode::OK)).then_some(()),
        )
        .await;
        let ticket = json!({
            "title": format!("after the disk freed {cycle}"),
            "reporter": {"name": "Ana", "contact": "ana@example.com"},
        });
        let id = eventually(
            &format!("a ticket taken once space is back (cycle {cycle})"),
            Duration::from_secs(30),
            async || {
                let response = client
                    .post(format!("{base}/api/v1/incidents"))
                    .json(&ticket)
                    .send()
                    .await
                    .ok()?;
                if response.status() != StatusCode::CREATED {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                Some(text(&body["id"]))
            },
        )
        .await;
        recovered_in.push(freed.elapsed());
        load.ledger
            .lock()
            .unwrap()
            .tickets
            .push((id, text(&ticket["title"])));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ledger = load.finish(tasks).await;
    let failed_commits = server.logged("commit failed");
    assert_eq!(server.panics(), Vec::<String>::new(), "no panic");
    // Never down, never cut off: every request was answered.
    assert_eq!(
        ledger.total(|o| matches!(o, Outcome::Refused | Outcome::Cut)),
        0,
        "requests not answered: {}",
        ledger.table()
    );
    let refused = ledger.total(|o| o == Outcome::Answered(503));
    assert!(
        refused > 0,
        "the full disk refused nothing: {}",
        ledger.table()
    );
    assert!(failed_commits >= CYCLES, "{failed_commits} failed commits");

    // Webhook delivery went on too, without a restart: the acknowledgements refused while
    // the disk was full did not stop it.
    drained(&client, &base).await;

    // After a crash and a restart, everything answered 2xx is there, and every stored
    // event was delivered.
    server.kill();
    server.start();
    timers_fired(&client, &base).await;
    drained(&client, &base).await;
    let incidents = all_incidents(&client, &base).await;
    check_ledger(&ledger, &incidents);
    let timers = check_timers(&ledger, &incidents);
    assert_eq!(ready(&client, &base).await, Some(StatusCode::OK));
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    assert_eq!(server.panics(), Vec::<String>::new(), "no panic");
    let webhooks = check_deliveries(&store_path, &receiver, &incidents);

    let ms = |all: &[Duration]| all.iter().map(Duration::as_millis).collect::<Vec<_>>();
    eprintln!(
        "FAULTS SUMMARY (disk): seed={seed} cycles={CYCLES} full_ms={:?} recovered_ms={:?} \
         failed_commits={failed_commits} | requests={} 2xx={} 503={refused} | {} | tickets={} \
         acks={} notes={} alert identities={} | incidents={} escalations(timer)={} \
         sla_events={} pushed_expired={} | events={} deliveries={} redeliveries={} | test {:.1}s",
        ms(&full_for),
        ms(&recovered_in),
        ledger.total(|_| true),
        ledger.total(Load::ok),
        ledger.table(),
        ledger.tickets.len(),
        ledger.acknowledged.len(),
        ledger.notes.len(),
        ledger.alerts.len(),
        incidents.len(),
        timers.escalations,
        timers.sla_events,
        timers.expired,
        webhooks.events,
        webhooks.deliveries,
        webhooks.redeliveries,
        started.elapsed().as_secs_f64(),
    );
}
