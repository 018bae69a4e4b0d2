//! Replicas on PostgreSQL as real `incidentd serve` processes: leaders SIGKILLed again and
//! again under a workload sent to every replica (nothing answered 2xx is lost, an alert sent
//! to every replica opens one incident, every stored event is delivered, every escalation
//! timer fires once), a leader cut from the database by a TCP proxy, packets dropped or
//! connections reset (it stops, a standby leads, and nothing the cut leader was asked after
//! the cut is committed), and a standby left with no leader at all (503, `Retry-After`).
//!
//! They need a PostgreSQL server (`INCIDENTD_TEST_POSTGRES`, 127.0.0.1:5432 by default) and
//! skip without one, unless `INCIDENTD_REQUIRE_INTEROP=1`; they skip in the suite's second
//! pass (`INCIDENTD_TEST_BACKEND=postgres`), having run in the first. They run one at a
//! time: each starts several processes whose leases are timed, on a machine of two cores.
//! `INCIDENTD_HA_ROUNDS` sets the number of leaders killed (10); `INCIDENTD_HA_LOG_DIR`
//! keeps every line the processes logged, one file per replica. Each prints a line starting
//! `HA SUMMARY` (run with `--nocapture` to see it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use incidentd::store::kv::postgres::testing::{TestDatabase, fresh_database};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;

/// The variable each replica's `storage.postgres.url_env` names.
pub(crate) const URL_ENV: &str = "IT_HA_DATABASE_URL";

/// One HA test at a time (see the module's doc).
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a process may take to start and answer `/-/ready` (a debug build, on a loaded
/// machine).
pub(crate) const START: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Replicas: real processes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Leader,
    Standby,
}

/// One replica: its config (a port of its own) and the process running it, if any. Every
/// line the processes logged is kept, tagged with the replica and the incarnation; the
/// process is SIGKILLed when this is dropped, and a failing test prints the logs' tails.
pub(crate) struct Replica {
    pub(crate) name: String,
    dir: ConfigDir,
    port: u16,
    database_url: String,
    child: Option<Child>,
    incarnation: u32,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// `config` makes `incidentd.yaml` for the replica's port.
    pub(crate) fn new(name: &str, database_url: &str, config: impl Fn(u16) -> String) -> Replica {
        let port = replica_port();
        Replica {
            name: name.to_owned(),
            dir: ConfigDir::new(&config(port), &[]),
            port,
            database_url: database_url.to_owned(),
            child: None,
            incarnation: 0,
            log: Arc::default(),
        }
    }

    /// Starts a fresh process (a new replica id) on the same config and port.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.incarnation += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("serve")
            .arg("--config")
            .arg(self.dir.config_path())
            .env(URL_ENV, &self.database_url)
            .env(SECRET_ENV, secret_value())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting incidentd");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let tag = self.tag();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(format!("{tag} {line}"));
            }
        });
        self.child = Some(child);
    }

    fn tag(&self) -> String {
        format!("[{}#{}]", self.name, self.incarnation)
    }

    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown code runs, the kernel closes its sockets.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The exit status once the process stopped by itself (it is then no longer running).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// Whether the current incarnation logged a line containing `needle`.
    pub(crate) fn logged(&self, needle: &str) -> bool {
        let tag = self.tag();
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.starts_with(&tag) && line.contains(needle))
    }

    fn tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- the last lines {} logged:\n{}",
                self.name,
                self.tail(60)
            );
        }
        // Every line, for a closer look at a run that passed too.
        if let Some(dir) = std::env::var_os("INCIDENTD_HA_LOG_DIR") {
            let path = std::path::Path::new(&dir).join(format!("{}.log", self.name));
            let _ = std::fs::write(path, self.log.lock().unwrap().join("\n"));
        }
    }
}

/// A loopback port for a replica, below the ephemeral range (32768 and up): a replica
/// started again binds the same port, which a test binding port 0 meanwhile cannot have
/// taken. Each is handed out once per test binary.
fn replica_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = std::process::id() as usize * 20;
    loop {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        let port = u16::try_from(20_000 + offset).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A database of the test's own; `None` (skipped) without a server, and in the suite's
/// second pass (`INCIDENTD_TEST_BACKEND=postgres`): these tests always run on PostgreSQL,
/// the first pass ran them already.
pub(crate) fn database() -> Option<TestDatabase> {
    if on_postgres() {
        eprintln!(
            "skipped: the HA tests ran in the first pass (INCIDENTD_TEST_BACKEND only moves in-process apps)"
        );
        return None;
    }
    fresh_database()
}

/// What `/-/ready` says of the replica at `base`; `None` when it does not answer or is not
/// ready.
pub(crate) async fn role(client: &reqwest::Client, base: &str) -> Option<Role> {
    let response = client
        .get(format!("{base}/-/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    if text.contains("leader") {
        Some(Role::Leader)
    } else if text.contains("standby") {
        Some(Role::Standby)
    } else {
        None
    }
}

/// Waits until `base` answers `/-/ready` with `want`.
pub(crate) async fn wait_role(
    client: &reqwest::Client,
    base: &str,
    want: Role,
    deadline: Duration,
) {
    eventually(&format!("{base} ready as {want:?}"), deadline, async || {
        (role(client, base).await == Some(want)).then_some(())
    })
    .await;
}

/// Waits until exactly one of `bases` says it leads and every other one that answers says
/// it is a standby; its index.
pub(crate) async fn one_leader(
    client: &reqwest::Client,
    bases: &[String],
    deadline: Duration,
) -> usize {
    eventually("exactly one leader", deadline, async || {
        let mut leaders = Vec::new();
        for (index, base) in bases.iter().enumerate() {
            if role(client, base).await == Some(Role::Leader) {
                leaders.push(index);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

/// The lease row: `(epoch, commit_seq, holder)`.
pub(crate) async fn lease_row(url: &str) -> (i64, i64, Option<String>) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT epoch, commit_seq, holder FROM incidentd_lease WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    (row.get(0), row.get(1), row.get(2))
}

/// Every incident the replica at `base` lists (all pages), newest first.
pub(crate) async fn list_incidents(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut incidents = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/incidents?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        incidents.extend(page["incidents"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return incidents,
        }
    }
}

/// `GET /api/v1/incidents/{id}`: the status and the incident.
async fn get_incident(client: &reqwest::Client, base: &str, id: &str) -> (StatusCode, Value) {
    let response = client
        .get(format!("{base}/api/v1/incidents/{id}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn timeline(incident: &Value) -> &[Value] {
    incident["timeline"].as_array().map_or(&[], Vec::as_slice)
}

/// The messages of an incident's `escalated` timeline entries, in order.
fn escalations(incident: &Value) -> Vec<String> {
    timeline(incident)
        .iter()
        .filter(|entry| entry["type"] == "escalated")
        .map(|entry| entry["message"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------
// The workload

/// Every answer the workload got, and what the 2xx ones said.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Tickets answered 201: (id, title).
    tickets: Vec<(String, String)>,
    /// Incidents whose acknowledgement was answered 2xx.
    acknowledged: Vec<String>,
    /// Notes answered 2xx: (incident, text).
    notes: Vec<(String, String)>,
    /// Alert label sets (as JSON) → the incidents the 2xx answers named.
    alerts: BTreeMap<String, BTreeSet<String>>,
    /// The label sets sent to every replica at once.
    shared: BTreeSet<String>,
    /// Per operation, per status: how many answers.
    answers: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    /// Per operation: requests with no answer (the replica died or was down).
    pub(crate) unanswered: BTreeMap<&'static str, u64>,
}

impl Ledger {
    pub(crate) fn count(&self, wanted: impl Fn(u16) -> bool) -> u64 {
        self.answers
            .values()
            .flat_map(|statuses| statuses.iter())
            .filter(|(status, _)| wanted(**status))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Requests to every replica, round-robin, until stopped.
pub(crate) struct Workload {
    bases: Vec<String>,
    client: reqwest::Client,
    next: AtomicUsize,
    pub(crate) stop: AtomicBool,
    pub(crate) ledger: Mutex<Ledger>,
}

/// Time between two requests of one worker.
const PACE: Duration = Duration::from_millis(40);

impl Workload {
    pub(crate) fn new(bases: Vec<String>) -> Workload {
        Workload {
            bases,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ledger: Mutex::default(),
        }
    }

    fn next_base(&self) -> &str {
        &self.bases[self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }

    /// Sends one request to `base`, counts its answer; the status and body if answered.
    async fn send(
        &self,
        op: &'static str,
        base: &str,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut request = self.client.request(Method::POST, format!("{base}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response
                    .bytes()
                    .await
                    .ok()
                    .map(|bytes| (status, serde_json::from_slice(&bytes).unwrap_or_default()))
            }
            Err(_) => None,
        };
        let mut ledger = self.ledger.lock().unwrap();
        match &answer {
            Some((status, _)) => {
                *ledger
                    .answers
                    .entry(op)
                    .or_default()
                    .entry(status.as_u16())
                    .or_default() += 1;
            }
            None => *ledger.unanswered.entry(op).or_default() += 1,
        }
        answer
    }

    /// Tickets, alerts of distinct label sets, acknowledgements (of every third ticket:
    /// the others stay open and escalate) and notes.
    pub(crate) async fn worker(self: Arc<Self>, worker: usize) {
        let mut created: Vec<String> = Vec::new();
        let mut to_acknowledge: Vec<String> = Vec::new();
        let mut step = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let base = self.next_base().to_owned();
            match step % 5 {
                0 | 3 => {
                    let title = format!("ticket w{worker}-{step}");
                    let body = json!({
                        "title": title,
                        "reporter": {"name": "Ana", "contact": "ana@example.com"},
                    });
                    if let Some((status, answer)) = self
                        .send("ticket", &base, "/api/v1/incidents", Some(body))
                        .await
                        && status.is_success()
                    {
                        let id = text(&answer["id"]);
                        assert!(!id.is_empty(), "{answer}");
                        if created.len().is_multiple_of(3) {
                            to_acknowledge.push(id.clone());
                        }
                        created.push(id.clone());
                        self.ledger.lock().unwrap().tickets.push((id, title));
                    }
                }
                1 => {
                    let labels = json!({
                        "alertname": "HaDistinct",
                        "worker": worker.to_string(),
                        "step": step.to_string(),
                    });
                    self.alert(&base, labels).await;
                }
                2 => {
                    if let Some(id) = to_acknowledge.pop() {
                        let path = format!("/api/v1/incidents/{id}/acknowledge");
                        if let Some((status, _)) =
                            self.send("acknowledge", &base, &path, None).await
                            && status.is_success()
                        {
                            self.ledger.lock().unwrap().acknowledged.push(id);
                        }
                    }
                }
                _ => {
                    if let Some(id) = created.last() {
                        let note = format!("note w{worker}-{step}");
                        let path = format!("/api/v1/incidents/{id}/notes");
                        let body = json!({"text": note});
                        if let Some((status, _)) = self.send("note", &base, &path, Some(body)).await
                            && status.is_success()
                        {
                            self.ledger.lock().unwrap().notes.push((id.clone(), note));
                        }
                    }
                }
            }
            step += 1;
            tokio::time::sleep(PACE).await;
        }
    }

    /// One alert (no `endsAt`: it stays firing for `alerts.resolve_timeout`) to `base`.
    async fn alert(&self, base: &str, labels: Value) {
        let key = labels.to_string();
        let body = json!([{"labels": labels, "annotations": {"summary": format!("HA {key}")}}]);
        if let Some((status, answer)) = self.send("alert", base, "/api/v2/alerts", Some(body)).await
            && status.is_success()
        {
            let incident = text(&answer["alerts"][0]["incident"]);
            assert!(!incident.is_empty(), "{answer}");
            self.ledger
                .lock()
                .unwrap()
                .alerts
                .entry(key)
                .or_default()
                .insert(incident);
        }
    }

    /// The same label set to every replica at once, a new one each time: one incident each.
    pub(crate) async fn shared_alerts(self: Arc<Self>) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let labels = json!({"alertname": "HaShared", "n": n.to_string()});
            self.ledger
                .lock()
                .unwrap()
                .shared
                .insert(labels.to_string());
            let sends = self
                .bases
                .iter()
                .map(|base| self.alert(base, labels.clone()));
            futures_util::future::join_all(sends).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// From now until the first write answered 2xx: a note on `canary` every 50 ms, each sent
/// to the next of `bases` without waiting for the ones before. The time, and how many
/// writes got another answer or none.
pub(crate) async fn first_write(
    client: &reqwest::Client,
    bases: &[String],
    canary: &str,
    round: usize,
    since: Instant,
) -> (Duration, u64) {
    let mut attempts = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0usize;
    let mut failed = 0u64;
    loop {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no write answered 2xx within 60 s of killing the leader (round {round})"
        );
        tokio::select! {
            _ = tick.tick() => {
                let request = client
                    .post(format!("{}/api/v1/incidents/{canary}/notes", bases[sent % bases.len()]))
                    .json(&json!({"text": format!("failover round {round} write {sent}")}));
                attempts.spawn(async move {
                    request.send().await.map(|response| response.status().is_success())
                });
                sent += 1;
            }
            Some(done) = attempts.join_next() => match done.unwrap() {
                Ok(true) => {
                    let took = since.elapsed();
                    attempts.abort_all();
                    return (took, failed);
                }
                Ok(false) | Err(_) => failed += 1,
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------
// 1. Leaders killed under load

/// Three replicas, a workload sent to all of them, and `INCIDENTD_HA_ROUNDS` (10) rounds
/// of: SIGKILL the leader, measure until a write is answered 2xx again, start the killed
/// replica again (it rejoins as a standby). Then nothing answered 2xx is missing, no alert
/// identity has two incidents, every stored event reached the consumer, and each
/// escalation timer fired once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_leader_kills_with_nothing_lost() {
    let _serial = SERIAL.lock().await;
    let Some(database) = database() else {
        return;
    };
    let rounds: usize = std::env::var("INCIDENTD_HA_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let started = Instant::now();
    let receiver = Receiver::start(200).await;
    let config = |port: u16| {
        format!(
            "listen: 127.0.0.1:{port}\n\
             storage:\n  postgres:\n    url_env: {URL_ENV}\n    lease_ttl: 2s\n    \
             write_wait: 10s\n    pool_size: 4\n    statement_timeout: 5s\n\
             escalation:\n  default: {{start_tier: L1, unacknowledged_after: 2s}}\n\
             webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n    \
             retry_schedule: [200ms, 1s]\n",
            receiver.url()
        )
    };
    let mut replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::new(&format!("r{n}"), &database.url, config))
        .collect();
    let bases: Vec<String> = replicas.iter().map(Replica::base).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for replica in &mut replicas {
        replica.start();
    }
    for base in &bases {
        eventually("every replica ready", START, async || {
            role(&client, base).await
        })
        .await;
    }
    let mut leader = one_leader(&client, &bases, START).await;

    // The failover probe writes notes on this ticket (acknowledged: it does not escalate).
    let response = client
        .post(format!("{}/api/v1/incidents", bases[leader]))
        .json(
            &json!({"title": "canary", "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let canary = text(&response.json::<Value>().await.unwrap()["id"]);
    let response = client
        .post(format!(
            "{}/api/v1/incidents/{canary}/acknowledge",
            bases[leader]
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let workload = Arc::new(Workload::new(bases.clone()));
    let mut tasks: Vec<_> = (0..3)
        .map(|worker| tokio::spawn(workload.clone().worker(worker)))
        .collect();
    tasks.push(tokio::spawn(workload.clone().shared_alerts()));

    let mut failovers = Vec::new();
    let mut probe_failures = 0;
    let mut unplanned_exits = 0;
    for round in 0..rounds {
        // Some work under a settled cluster first.
        tokio::time::sleep(Duration::from_millis(600)).await;
        // A replica that stopped by itself (a lease it could not renew in time on a loaded
        // machine) is started again, as its supervisor would.
        for replica in &mut replicas {
            if let Some(status) = replica.exited() {
                eprintln!(
                    "{} stopped by itself ({status}); starting it again",
                    replica.name
                );
                unplanned_exits += 1;
                replica.start();
                wait_role(&client, &replica.base(), Role::Standby, START).await;
            }
        }
        leader = one_leader(&client, &bases, Duration::from_secs(20)).await;
        let killed_at = Instant::now();
        replicas[leader].kill();
        let survivors: Vec<String> = (0..bases.len())
            .filter(|&n| n != leader)
            .map(|n| bases[n].clone())
            .collect();
        let (took, failed) = first_write(&client, &survivors, &canary, round, killed_at).await;
        failovers.push(took);
        probe_failures += failed;
        let new_leader = one_leader(&client, &survivors, Duration::from_secs(20)).await;
        let new_leader = bases
            .iter()
            .position(|base| *base == survivors[new_leader])
            .unwrap();
        // `/api/v1/cluster` agrees.
        let status: Value = client
            .get(format!("{}/api/v1/cluster", bases[new_leader]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["role"], "leader", "{status}");
        assert_eq!(status["leader"]["replica"], status["replica"], "{status}");
        assert_eq!(
            status["leader"]["url"],
            bases[new_leader].as_str(),
            "{status}"
        );
        // The killed replica comes back as a fresh process, a standby.
        replicas[leader].start();
        wait_role(&client, &bases[leader], Role::Standby, START).await;
    }

    workload.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let workload_done = Instant::now();
    let leader = one_leader(&client, &bases, Duration::from_secs(20)).await;
    let base = &bases[leader];
    let ledger = std::mem::take(&mut *workload.ledger.lock().unwrap());

    let counts = check_counts(&client, &bases, base, &ledger, &receiver).await;

    let mut sorted = failovers.clone();
    sorted.sort();
    let ms = |d: &Duration| d.as_millis();
    eprintln!(
        "HA SUMMARY: rounds={rounds} failover_ms p50={} max={} all={:?} | {} | \
         failover_probe_misses={probe_failures} unplanned_exits={unplanned_exits} | workload \
         {:.1}s, test {:.1}s",
        ms(&percentile(&sorted, 0.5)),
        ms(sorted.last().unwrap()),
        failovers.iter().map(ms).collect::<Vec<_>>(),
        counts.summary(&ledger),
        (workload_done - started).as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    drop(replicas);
}

/// What [`check_counts`] counted.
pub(crate) struct Counts {
    pub incidents: usize,
    pub escalated: usize,
    /// Distinct webhook events received, and deliveries (an event sent again counts twice).
    pub events: usize,
    pub deliveries: usize,
    /// Label sets sent to every replica at once that were answered 2xx.
    pub shared_answered: usize,
}

impl Counts {
    /// The workload's answers and these counts, for a summary line.
    pub fn summary(&self, ledger: &Ledger) -> String {
        let answered = |op: &str| -> u64 {
            ledger.answers.get(op).map_or(0, |statuses| {
                statuses
                    .iter()
                    .filter(|(s, _)| (200..300).contains(*s))
                    .map(|(_, n)| n)
                    .sum()
            })
        };
        format!(
            "2xx tickets={} alerts={} (label sets={}, shared sets answered={}) acks={} notes={} \
             | 503={} 502={} unanswered={} | incidents={} escalations={} | webhooks events={} \
             deliveries={} redelivered={}",
            answered("ticket"),
            answered("alert"),
            ledger.alerts.len(),
            self.shared_answered,
            answered("acknowledge"),
            answered("note"),
            ledger.count(|s| s == 503),
            ledger.count(|s| s == 502),
            ledger.unanswered.values().sum::<u64>(),
            self.incidents,
            self.escalated,
            self.events,
            self.deliveries,
            self.deliveries - self.events,
        )
    }
}

/// The counts every test of faults under the [`Workload`] ends with, on the store as the
/// leader at `base` has it once the workload stopped: only 2xx, 502 and 503 were answered;
/// every ticket answered 201 is stored under its title, every acknowledgement and note
/// answered 2xx is on its incident's timeline; one incident per alert identity (and every
/// answer for a label set named it); each open incident escalated L1 → L2 → L3 once per
/// step (each escalation timer fired once); the consumer has nothing pending and received
/// every incident's `incident.opened` and each escalation's event, a `webhook-id` sent
/// more than once being the same event each time; one replica says it leads on
/// `/metrics`.
pub(crate) async fn check_counts(
    client: &reqwest::Client,
    bases: &[String],
    base: &str,
    ledger: &Ledger,
    receiver: &Receiver,
) -> Counts {
    // Only failover answers besides 2xx: 503 (no leader yet) and 502 (the leader died
    // while carrying the write out).
    let refused: Vec<_> = ledger
        .answers
        .iter()
        .flat_map(|(op, statuses)| statuses.iter().map(move |(status, n)| (op, status, n)))
        .filter(|(_, status, _)| {
            !(200..300).contains(*status) && **status != 502 && **status != 503
        })
        .collect();
    assert!(
        refused.is_empty(),
        "answers other than 2xx, 502 and 503: {refused:?}"
    );

    // Every incident, with its timeline, as the final leader has it.
    let listed = list_incidents(client, base).await;
    let mut incidents: BTreeMap<String, Value> = BTreeMap::new();
    for summary in &listed {
        let id = text(&summary["id"]);
        let (status, incident) = get_incident(client, base, &id).await;
        assert_eq!(status, StatusCode::OK, "{incident}");
        assert!(
            incidents.insert(id.clone(), incident).is_none(),
            "{id} listed twice"
        );
    }

    // Every ticket answered 201 is stored, under its title; every acknowledgement and
    // note answered 2xx is on its incident's timeline.
    for (id, title) in &ledger.tickets {
        let incident = incidents
            .get(id)
            .unwrap_or_else(|| panic!("ticket {id} ({title}) was answered 201 and is lost"));
        assert_eq!(incident["title"], title.as_str(), "{id}");
    }
    for id in &ledger.acknowledged {
        let incident = &incidents[id];
        assert!(
            timeline(incident)
                .iter()
                .any(|e| e["type"] == "acknowledged"),
            "the acknowledgement of {id} was answered 2xx and is lost: {incident}"
        );
    }
    for (id, note) in &ledger.notes {
        assert!(
            timeline(&incidents[id])
                .iter()
                .any(|e| e["type"] == "note_added" && e["message"] == note.as_str()),
            "the note `{note}` on {id} was answered 2xx and is lost"
        );
    }

    // One incident per alert identity: every answer for a label set named the same one,
    // and the store has one incident per fingerprint.
    let mut by_fingerprint: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, incident) in &incidents {
        if incident["source"]["type"] == "alert" {
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
        "alert identities with several incidents: {twice:?}"
    );
    let mut shared_answered = 0;
    for (labels, ids) in &ledger.alerts {
        assert_eq!(
            ids.len(),
            1,
            "the label set {labels} was answered with incidents {ids:?}"
        );
        let id = ids.first().unwrap();
        let incident = incidents
            .get(id)
            .unwrap_or_else(|| panic!("the alert {labels} was answered with {id}, which is lost"));
        assert_eq!(incident["labels"].to_string(), *labels, "{id}");
        if ledger.shared.contains(labels) {
            shared_answered += 1;
        }
    }

    // Escalation timers, on the real clock: an incident nobody acknowledged goes L1 → L2
    // two seconds after it opened and L2 → L3 two seconds later, each once, whichever
    // leader was in charge then; an acknowledged one escalated at most once per step.
    let mut escalated = 0;
    eventually_ok(
        "every open incident escalated to L3",
        Duration::from_secs(30),
        async || {
            let mut behind = Vec::new();
            for (id, incident) in incidents.iter_mut() {
                if incident["state"] == "open" && incident["tier"] != "L3" {
                    let (_, now) = get_incident(client, base, id).await;
                    *incident = now;
                    if incident["state"] == "open" && incident["tier"] != "L3" {
                        behind.push(id.clone());
                    }
                }
            }
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("still below L3: {behind:?}"))
            }
        },
    )
    .await;
    for (id, incident) in &incidents {
        let steps = escalations(incident);
        let distinct: BTreeSet<&String> = steps.iter().collect();
        assert_eq!(
            distinct.len(),
            steps.len(),
            "{id} escalated twice by one timer: {steps:?}"
        );
        if incident["state"] == "open" {
            assert_eq!(
                steps,
                [
                    "tier L1 → L2 (reason: unacknowledged)",
                    "tier L2 → L3 (reason: unacknowledged)"
                ],
                "{id}"
            );
        }
        escalated += steps.len();
    }

    // Webhooks, at least once: the consumer has nothing pending, every incident's
    // `incident.opened` and each of its escalations arrived (grouped by `webhook-id`), and a
    // `webhook-id` received more than once is the same event each time.
    eventually_ok(
        "nothing pending for the consumer",
        Duration::from_secs(30),
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
            if consumer["pending"] == 0 && consumer["dead_letters"] == 0 {
                Ok(())
            } else {
                Err(consumer.to_string())
            }
        },
    )
    .await;
    let deliveries = receiver.accepted();
    let mut events: BTreeMap<String, (String, String)> = BTreeMap::new();
    for delivery in &deliveries {
        assert!(
            delivery.verifies(),
            "a delivery's signature does not verify"
        );
        let body = delivery.json();
        let event = (text(&body["type"]), text(&body["incident"]["id"]));
        assert_eq!(text(&body["id"]), delivery.id);
        if let Some(earlier) = events.insert(delivery.id.clone(), event.clone()) {
            assert_eq!(earlier, event, "{} delivered as two events", delivery.id);
        }
    }
    let mut of_incident: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (kind, incident) in events.values() {
        *of_incident.entry((kind, incident)).or_default() += 1;
    }
    for (id, incident) in &incidents {
        assert_eq!(
            of_incident.get(&("incident.opened", id.as_str())).copied(),
            Some(1),
            "incident.opened of {id}: one event, delivered"
        );
        assert_eq!(
            of_incident
                .get(&("incident.escalated", id.as_str()))
                .copied()
                .unwrap_or(0),
            escalations(incident).len(),
            "incident.escalated of {id}: one event per escalation, each delivered"
        );
    }

    // One replica reports itself the leader on /metrics too.
    let mut gauges = Vec::new();
    for base in bases {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        gauges.push(metrics.lines().any(|line| line == "incidentd_leader 1"));
    }
    assert_eq!(gauges.iter().filter(|&&g| g).count(), 1, "{gauges:?}");
    Counts {
        incidents: incidents.len(),
        escalated,
        events: events.len(),
        deliveries: deliveries.len(),
        shared_answered,
    }
}

// ---------------------------------------------------------------------------------------
// 2. A leader cut from the database

/// What the proxy does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Copied both ways.
    Open,
    /// Connections stay open and nothing goes through, either way (new ones are accepted
    /// and held): the cut-off side sees timeouts.
    Blackhole,
    /// Every connection is reset, new ones too.
    Reset,
}

/// A TCP proxy to the database, with a switch.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    link: watch::Sender<Link>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let link = watch::Sender::new(Link::Open);
        let switch = link.subscribe();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = *switch.borrow();
                match now {
                    Link::Open => {
                        tokio::spawn(pipe(client, upstream, switch.clone()));
                    }
                    Link::Blackhole => {
                        tokio::spawn(async move {
                            let _held = client;
                            std::future::pending::<()>().await;
                        });
                    }
                    Link::Reset => {
                        let _ = client.set_zero_linger();
                    }
                }
            }
        });
        Proxy {
            addr,
            link,
            accepting,
        }
    }

    pub(crate) fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One connection through the proxy: copied both ways while the link is open; then held
/// silent (blackhole) or reset.
async fn pipe(mut client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = link.wait_for(|link| *link != Link::Open) => {}
    }
    let now = *link.borrow();
    match now {
        Link::Blackhole => {
            let _held = (client, server);
            std::future::pending::<()>().await;
        }
        Link::Reset | Link::Open => {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}

/// `url` with its host and port replaced by `addr`.
pub(crate) fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"));
    format!("{scheme}://{}{addr}{path}", user.unwrap_or_default())
}

/// The database server's address in `url`.
pub(crate) fn server_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    format!("{host}:{port}").parse().unwrap()
}

/// One ticket request and what came of it.
struct Sent {
    title: String,
    sent_at: Instant,
    /// `None`: no answer (the process died, or the client gave up).
    status: Option<StatusCode>,
    id: Option<String>,
}

/// Tickets to `base` every 50 ms until `stop`, each request on its own (a hanging one does
/// not hold the next back), titled `{prefix}-{n}`.
async fn ticket_stream(
    client: reqwest::Client,
    base: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let mut requests = tokio::task::JoinSet::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let title = format!("{prefix}-{n}");
        let request = client.post(format!("{base}/api/v1/incidents")).json(
            &json!({"title": title, "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
        );
        requests.spawn(async move {
            let sent_at = Instant::now();
            let (status, id) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or_default();
                    (Some(status), body["id"].as_str().map(str::to_owned))
                }
                Err(_) => (None, None),
            };
            Sent {
                title,
                sent_at,
                status,
                id,
            }
        });
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    requests.join_all().await
}

/// Replica A reaches the database through the proxy, B directly. A leads; the proxy cuts
/// A off (`link`). A must stop leading within `lease_ttl` and stop its process, B must
/// lead, and nothing A was asked after the cut may be committed.
async fn cut_leader(link: Link) {
    const TTL: Duration = Duration::from_secs(2);
    let _serial = SERIAL.lock().await;
    let Some(database) = database() else {
        return;
    };
    let proxy = Proxy::start(server_addr(&database.url)).await;
    let config = |port: u16| {
        format!(
            "listen: 127.0.0.1:{port}\n\
             storage:\n  postgres:\n    url_env: {URL_ENV}\n    lease_ttl: 2s\n    \
             write_wait: 5s\n    pool_size: 4\n    statement_timeout: 2s\n"
        )
    };
    let mut a = Replica::new("a", &through(&database.url, proxy.addr), config);
    let mut b = Replica::new("b", &database.url, config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    a.start();
    wait_role(&client, &a.base(), Role::Leader, START).await;
    b.start();
    wait_role(&client, &b.base(), Role::Standby, START).await;
    let (epoch_a, _, holder_a) = lease_row(&database.url).await;

    // Tickets to A, and to B which passes them to A, before and across the cut.
    let stop = Arc::new(AtomicBool::new(false));
    let to_a = tokio::spawn(ticket_stream(
        client.clone(),
        a.base(),
        "via-a",
        stop.clone(),
    ));
    let to_b = tokio::spawn(ticket_stream(
        client.clone(),
        b.base(),
        "via-b",
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let cut_at = Instant::now();
    let cut_wall = Utc::now();
    proxy.set(link);

    let lost = eventually(
        "A logs that it lost the leader's lease",
        TTL * 3,
        async || a.logged("lost the leader's lease").then(Instant::now),
    )
    .await;
    let stepped_down = lost - cut_at;
    assert!(
        stepped_down <= TTL,
        "A stepped down {stepped_down:?} after the cut, later than lease_ttl ({TTL:?})"
    );
    wait_role(&client, &b.base(), Role::Leader, TTL * 5).await;
    let took_over = cut_at.elapsed();
    let (epoch_b, seq_b, holder_b) = lease_row(&database.url).await;
    assert!(epoch_b > epoch_a, "epochs {epoch_a} then {epoch_b}");
    assert_ne!(holder_a, holder_b);
    let cluster: Value = client
        .get(format!("{}/api/v1/cluster", b.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cluster["leader"]["replica"], cluster["replica"],
        "{cluster}"
    );
    assert_eq!(holder_b.as_deref(), cluster["replica"].as_str());

    // The link comes back while A is still stopping: what it still tries to commit must
    // be refused. B takes writes.
    proxy.set(Link::Open);
    let mut after = Vec::new();
    for n in 0..5 {
        let title = format!("after-{n}");
        let response = client
            .post(format!("{}/api/v1/incidents", b.base()))
            .json(
                &json!({"title": title, "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        after.push((text(&response.json::<Value>().await.unwrap()["id"]), title));
    }
    let exit = eventually("A's process stops", Duration::from_secs(30), async || {
        a.exited()
    })
    .await;
    let exited_after = cut_at.elapsed();
    assert!(!exit.success(), "A stopped with {exit}, expected a failure");
    stop.store(true, Ordering::Relaxed);
    let mut sent = to_a.await.unwrap();
    sent.extend(to_b.await.unwrap());

    let (epoch_end, seq_end, holder_end) = lease_row(&database.url).await;
    assert_eq!(
        (epoch_end, &holder_end),
        (epoch_b, &holder_b),
        "nobody took over from B"
    );
    assert!(
        seq_end >= seq_b + after.len() as i64,
        "{seq_b} then {seq_end}"
    );

    // The store: every ticket answered 201 is there under its id and title, nothing is
    // stored twice, and whatever was stored through A was opened before the cut.
    let incidents = list_incidents(&client, &b.base()).await;
    let stored: BTreeMap<String, (String, DateTime<Utc>)> = incidents
        .iter()
        .map(|incident| {
            let opened = text(&incident["opened_at"]).parse().unwrap();
            (text(&incident["id"]), (text(&incident["title"]), opened))
        })
        .collect();
    assert_eq!(stored.len(), incidents.len(), "an id listed twice");
    let titles: BTreeSet<&String> = stored.values().map(|(title, _)| title).collect();
    assert_eq!(
        titles.len(),
        stored.len(),
        "a title stored twice: {stored:?}"
    );
    let answered: Vec<(&String, &String)> = sent
        .iter()
        .filter(|s| s.status.is_some_and(|s| s.is_success()))
        .map(|s| (s.id.as_ref().unwrap(), &s.title))
        .chain(after.iter().map(|(id, title)| (id, title)))
        .collect();
    for (id, title) in &answered {
        assert_eq!(
            stored.get(*id).map(|(t, _)| t),
            Some(*title),
            "{id} ({title}) was answered 201"
        );
    }
    for (id, (title, opened)) in &stored {
        // B carries out what reaches it once it leads, but A commits nothing once cut off.
        if title.starts_with("via-a-") {
            assert!(
                *opened <= cut_wall,
                "{id} ({title}) was opened at {opened}, after the cut at {cut_wall}: \
                 committed by the leader cut off"
            );
        }
    }
    let late = sent
        .iter()
        .filter(|s| s.sent_at > cut_at)
        .collect::<Vec<_>>();
    let late_ok = late
        .iter()
        .filter(|s| s.status.is_some_and(|s| s.is_success()))
        .count();
    let mut late_answers: BTreeMap<String, usize> = BTreeMap::new();
    for s in &late {
        let to = if s.title.starts_with("via-a-") {
            "A"
        } else {
            "B"
        };
        let status = s
            .status
            .map_or("none".to_owned(), |s| s.as_u16().to_string());
        *late_answers.entry(format!("{to} {status}")).or_default() += 1;
    }
    eprintln!(
        "HA SUMMARY ({link:?}): A logged the lost lease {stepped_down:?} after the cut and \
         exited ({exit}) after {exited_after:?}; B led after {took_over:?}; epochs {epoch_a} → \
         {epoch_b}; tickets sent {} ({} answered 201 before the cut), after the cut {} \
         answered {late_answers:?} ({late_ok} 2xx, all stored); incidents stored {}",
        sent.len(),
        answered.len() - late_ok - after.len(),
        late.len(),
        stored.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_from_the_database_steps_down_and_never_commits_after() {
    cut_leader(Link::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_database_connections_reset_steps_down_and_never_commits_after() {
    cut_leader(Link::Reset).await;
}

// ---------------------------------------------------------------------------------------
// 3. No leader at all

/// The leader killed and the only other replica cut from the database: no replica can
/// lead. That standby still answers: `/-/ready` (standby) and the status page from its
/// last read model; a write waits `write_wait` for a leader, then gets 503 with
/// `Retry-After`, and the standby goes on running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_answers_503_with_retry_after_when_no_leader() {
    const WRITE_WAIT: Duration = Duration::from_secs(2);
    let _serial = SERIAL.lock().await;
    let Some(database) = database() else {
        return;
    };
    let proxy = Proxy::start(server_addr(&database.url)).await;
    let config = |port: u16| {
        format!(
            "listen: 127.0.0.1:{port}\n\
             storage:\n  postgres:\n    url_env: {URL_ENV}\n    lease_ttl: 2s\n    \
             write_wait: 2s\n    pool_size: 4\n    statement_timeout: 2s\n"
        )
    };
    let mut leader = Replica::new("leader", &database.url, config);
    let mut standby = Replica::new("standby", &through(&database.url, proxy.addr), config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    leader.start();
    wait_role(&client, &leader.base(), Role::Leader, START).await;
    standby.start();
    wait_role(&client, &standby.base(), Role::Standby, START).await;
    let ticket =
        json!({"title": "before", "reporter": {"name": "Ana", "contact": "ana@example.com"}});
    let response = client
        .post(format!("{}/api/v1/incidents", standby.base()))
        .json(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "passed to the leader"
    );
    proxy.set(Link::Blackhole);
    leader.kill();

    for attempt in 0..2 {
        let sent = Instant::now();
        let response = client
            .post(format!("{}/api/v1/incidents", standby.base()))
            .json(&json!({"title": format!("no leader {attempt}"), "reporter": {"name": "Ana", "contact": "ana@example.com"}}))
            .send()
            .await
            .unwrap();
        let waited = sent.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(retry_after, WRITE_WAIT.as_secs().to_string());
        let body: Value = response.json().await.unwrap();
        assert!(text(&body["error"]).contains("no replica leads"), "{body}");
        assert!(
            waited >= WRITE_WAIT && waited < WRITE_WAIT + Duration::from_secs(3),
            "answered after {waited:?}, write_wait is {WRITE_WAIT:?}"
        );
        eprintln!(
            "HA SUMMARY (no leader): a write to the standby was answered 503, Retry-After: {retry_after}, after {waited:?}"
        );
    }
    assert_eq!(role(&client, &standby.base()).await, Some(Role::Standby));
    let response = client
        .get(format!("{}/status.json", standby.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "reads go on from the read model"
    );
    assert!(
        standby.exited().is_none(),
        "a standby cut off keeps running"
    );
}
