//! Durability across a crash: the real binary is killed with SIGKILL while a probe is
//! failing and its webhook consumer is down, then started again on the same store; the
//! same for a burst of events to consumers down, rejecting and gone, and for status-page
//! subscribers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// The `incidentd serve` process, with the address it logged at start.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    pub(crate) fn start(dir: &ConfigDir) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("serve")
            .arg("--config")
            .arg(dir.config_path())
            .env(SECRET_ENV, secret_value())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting incidentd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[incidentd] {line}");
                if line.contains("incidentd started")
                    && let Some(addr) = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("listen="))
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(DEADLINE)
            .expect("incidentd logs `incidentd started listen=ADDR`");
        Server { child, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn incidents(&self) -> Vec<Value> {
        let response = reqwest::get(self.url("/api/v1/incidents")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["incidents"].as_array().unwrap().clone()
    }

    /// Sends the process a signal (`HUP`, `TERM` …) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status of the graceful shutdown.
    fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn sigkill_keeps_the_incident_and_undelivered_webhooks() {
    let target = Target::start(503).await;
    let receiver = Receiver::start(500).await; // the consumer is down
    let config = format!(
        "listen: 127.0.0.1:0\n\
         webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n",
        receiver.url()
    );
    let rules = format!(
        "probes:\n  - name: web\n    interval: 100ms\n    timeout: 100ms\n    http: {{url: \"{}\"}}\n\
         rules:\n  - name: web-down\n    probe: web\n    when: '[STATUS] != 200'\n    after: 2\n",
        target.url()
    );
    let dir = ConfigDir::new(&config, &[("web.yaml", &rules)]);

    let first = Server::start(&dir);
    let opened = eventually("an open incident", DEADLINE, async || {
        first.incidents().await.into_iter().next()
    })
    .await;
    assert_eq!(opened["id"], "INC-1");
    // Let the failing probe run a few more times so the crash lands mid-stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    assert!(
        receiver.accepted().is_empty(),
        "nothing was delivered before the crash"
    );

    receiver.set(200); // the consumer is back
    let second = Server::start(&dir);
    let delivered = eventually(
        "incident.opened delivered after the restart",
        DEADLINE,
        async || receiver.accepted().into_iter().next(),
    )
    .await;
    assert_eq!(delivered.event_type(), "incident.opened");
    assert_eq!(delivered.json()["incident"]["id"], "INC-1");
    assert!(delivered.verifies());

    // The probe still fails after the restart: the detector state survived, so the same
    // incident stays open and no second one is opened.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let incidents = second.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0]["id"], "INC-1");
    assert_eq!(incidents[0]["state"], "open");
    assert_eq!(incidents[0]["opened_at"], opened["opened_at"]);
    assert_eq!(
        receiver.accepted().len(),
        1,
        "exactly one event: incident.opened, delivered once"
    );

    let status = second.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

/// SLA timers are durable: armed with the ticket, they fire after a SIGKILL on the next
/// start — each once, also across another crash.
#[tokio::test]
async fn sla_timers_survive_sigkill_and_fire_once() {
    let receiver = Receiver::start(200).await;
    let config = format!(
        "listen: 127.0.0.1:0\n\
         sla:\n  warn_at: 0.5\n  incident: {{default: {{first_response: 3s, resolution: 1h}}}}\n\
         webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n    \
         events: [incident.sla_warning, incident.sla_breached]\n",
        receiver.url()
    );
    let dir = ConfigDir::new(&config, &[]);
    let first = Server::start(&dir);
    let response = reqwest::Client::new()
        .post(first.url("/api/v1/incidents"))
        .json(&serde_json::json!({
            "title": "VPN down",
            "reporter": {"name": "Ana", "contact": "ana@example.com"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let opened: Value = response.json().await.unwrap();
    let due = opened["sla"]["first_response"]["due_at"]
        .as_str()
        .unwrap()
        .to_owned();
    first.kill();

    // Down past the warning (1.5s) and the breach (3s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let second = Server::start(&dir);
    let distinct = || {
        let mut events: Vec<(String, String)> = receiver
            .accepted()
            .iter()
            .map(|d| (d.json()["id"].as_str().unwrap().to_owned(), d.event_type()))
            .collect();
        events.sort();
        events.dedup(); // at-least-once: a redelivery has the same event id
        events
    };
    eventually(
        "the warning and the breach after the restart",
        DEADLINE,
        async || (distinct().len() == 2).then_some(()),
    )
    .await;
    let mut types: Vec<String> = distinct().into_iter().map(|(_, t)| t).collect();
    types.sort();
    assert_eq!(types, ["incident.sla_breached", "incident.sla_warning"]);
    let incidents = second.incidents().await;
    let first_response = &incidents[0]["sla"]["first_response"];
    assert_eq!(first_response["state"], "breached", "{first_response}");
    assert_eq!(first_response["due_at"], due.as_str());
    second.kill();

    let third = Server::start(&dir);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(distinct().len(), 2, "no timer fires twice");
    let status = third.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

/// Webhook delivery across a SIGKILL: events queued for a consumer that is down (nothing
/// listens on its port) are all delivered after the restart, each with its `webhook-id`,
/// in order per incident; a consumer's dead letters and a consumer disabled by `410 Gone`
/// are still so after the restart.
#[tokio::test]
async fn sigkill_loses_no_webhook_event_dead_letters_and_disabled_consumers_stay() {
    const INCIDENTS: usize = 4;
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down); // refused until the test listens there again
    let rejecting = Receiver::start(400).await;
    let gone = Receiver::start(410).await;
    let consumer = |name: &str, url: &str, max_age: &str| {
        format!(
            "  - {{name: {name}, url: '{url}', secret_env: {SECRET_ENV}, retry_schedule: [50ms, 100ms], max_age: {max_age}, timeout: 2s}}\n"
        )
    };
    let config = format!(
        "listen: 127.0.0.1:0\nwebhooks:\n{}{}{}",
        consumer("down", &format!("http://{down_addr}/hook"), "1h"),
        consumer("rejecting", &rejecting.url(), "1s"),
        consumer("gone", &gone.url(), "1h"),
    );
    let dir = ConfigDir::new(&config, &[]);
    let first = Server::start(&dir);
    let client = reqwest::Client::new();
    let post = async |path: String, body: Value| {
        let response = client
            .post(first.url(&path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json::<Value>().await.unwrap()
    };
    for n in 0..INCIDENTS {
        let opened = post(
            "/api/v1/incidents".to_owned(),
            serde_json::json!({
                "title": format!("Printer {n} on fire"),
                "reporter": {"name": "Ana", "contact": "ana@example.com"},
            }),
        )
        .await;
        let id = opened["id"].as_str().unwrap().to_owned();
        post(
            format!("/api/v1/incidents/{id}/acknowledge"),
            serde_json::json!({}),
        )
        .await;
        post(
            format!("/api/v1/incidents/{id}/resolve"),
            serde_json::json!({"resolution": "put out"}),
        )
        .await;
    }
    let events = 3 * INCIDENTS;
    let get = async |server: &Server, path: &str| -> Value {
        reqwest::get(server.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    // The rejecting consumer's events run out of max_age (1s): every one a dead letter,
    // which also tells every event's id.
    let dead = eventually("the dead letters", DEADLINE, async || {
        let body = get(&first, "/api/v1/webhooks/rejecting/deliveries").await;
        let dead = body["dead_letters"].as_array().cloned().unwrap_or_default();
        (dead.len() == events).then_some(dead)
    })
    .await;
    let row = async |server: &Server, name: &str| -> Value {
        let list = get(server, "/api/v1/webhooks").await;
        list["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap()
            .clone()
    };
    eventually("the gone consumer disabled", DEADLINE, async || {
        (row(&first, "gone").await["enabled"] == false).then_some(())
    })
    .await;
    assert_eq!(row(&first, "down").await["pending"], events);
    let attempts = async |server: &Server| {
        let body = get(server, "/api/v1/webhooks/gone/deliveries").await;
        body["deliveries"].as_array().unwrap().len()
    };
    let gone_attempts = attempts(&first).await;
    assert!(gone_attempts >= 1);
    first.kill();

    let receiver = Receiver::start_on(tokio::net::TcpListener::bind(down_addr).await.unwrap(), 200);
    let second = Server::start(&dir);
    let delivered = eventually("every event after the restart", DEADLINE, async || {
        let got = receiver.accepted();
        let mut ids: Vec<String> = got.iter().map(|d| d.id.clone()).collect();
        ids.sort();
        ids.dedup(); // at least once: a redelivery has the same webhook-id
        (ids.len() == events).then_some(got)
    })
    .await;
    // None lost: exactly the events that exist (the rejecting consumer's dead letters
    // have the same ids), each body signed and carrying its own id.
    let mut known: Vec<String> = dead
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    known.sort();
    let mut ids: Vec<String> = delivered.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, known);
    let mut order: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut seen = std::collections::HashSet::new();
    for delivery in &delivered {
        assert!(delivery.verifies());
        let body = delivery.json();
        assert_eq!(body["id"], delivery.id.as_str());
        if seen.insert(delivery.id.clone()) {
            order
                .entry(body["incident"]["id"].as_str().unwrap().to_owned())
                .or_default()
                .push(delivery.event_type());
        }
    }
    assert_eq!(order.len(), INCIDENTS);
    for (incident, types) in &order {
        assert_eq!(
            types,
            &[
                "incident.opened",
                "incident.acknowledged",
                "incident.resolved"
            ],
            "{incident}"
        );
    }
    eventually("nothing pending", DEADLINE, async || {
        (row(&second, "down").await["pending"] == 0).then_some(())
    })
    .await;

    // Dead letters and the disabled consumer survived the crash.
    let body = get(&second, "/api/v1/webhooks/rejecting/deliveries").await;
    assert_eq!(body["dead_letters"].as_array().unwrap().len(), events);
    let gone_row = row(&second, "gone").await;
    assert_eq!(gone_row["enabled"], false, "{gone_row}");
    assert_eq!(gone_row["pending"], events, "{gone_row}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        attempts(&second).await,
        gone_attempts,
        "a disabled consumer is not tried after the restart"
    );
    let status = second.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

/// A maintenance answered 201 is stored: after SIGKILL it is listed again, active, and
/// still holds its service's alerts back; one cancelled before the crash stays cancelled.
#[tokio::test]
async fn sigkill_keeps_scheduled_maintenances() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let plan = |service: &str, starts: i64| {
        serde_json::json!({
            "title": "Database upgrade",
            "message": "Checkout may be slow.",
            "services": [service],
            "starts_at": (now + chrono::Duration::minutes(starts)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::hours(2)).to_rfc3339(),
        })
    };

    let first = Server::start(&dir);
    for (service, starts) in [("checkout", -1), ("web", 60)] {
        let response = client
            .post(first.url("/api/v1/maintenances"))
            .json(&plan(service, starts))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let response = client
        .delete(first.url("/api/v1/maintenances/MNT-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    first.kill();

    let second = Server::start(&dir);
    let list: Value = client
        .get(second.url("/api/v1/maintenances"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<(&str, &str)> = list["maintenances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("MNT-2", "cancelled"), ("MNT-1", "active")]);
    let pushed: Value = client
        .post(second.url("/api/v2/alerts"))
        .json(&serde_json::json!([{"labels": {"alertname": "Down", "service": "checkout"}}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pushed["alerts"][0]["outcome"], "suppressed", "{pushed}");
    assert!(second.incidents().await.is_empty());
    let response = client
        .post(second.url("/api/v1/maintenances"))
        .json(&plan("api", 0))
        .send()
        .await
        .unwrap();
    let made: Value = response.json().await.unwrap();
    assert_eq!(made["id"], "MNT-3", "the id counter survived: {made}");
    second.kill();
}

/// The status page's configuration for the subscription tests: one listed service.
const SUBSCRIPTIONS_CONFIG: &str =
    "listen: 127.0.0.1:0\nstatus_page:\n  services:\n    - {name: checkout}\n";

/// Signs up a webhook subscriber (confirmed at once); its id.
async fn subscribe_webhook(server: &Server, url: &str) -> u64 {
    let response = reqwest::Client::new()
        .post(server.url("/subscriptions"))
        .json(&serde_json::json!({"webhook_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_u64().unwrap()
}

/// The distinct event ids a receiver accepted, with each one's type.
fn accepted_events(receiver: &Receiver) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = receiver
        .accepted()
        .iter()
        .map(|d| (d.id.clone(), d.json()["type"].as_str().unwrap().to_owned()))
        .collect();
    events.sort();
    events.dedup();
    events
}

/// A subscriber's notification survives a SIGKILL: the update is queued and its first
/// delivery failed (the subscriber answers 500) when the process is killed; after the
/// restart on the same store, with the subscriber back, it arrives — with the event id of
/// the failed attempt, since the id is stored with the queue entry.
#[tokio::test]
async fn sigkill_keeps_a_subscriber_notification_that_failed() {
    let receiver = Receiver::start(500).await; // the subscriber is down
    let dir = ConfigDir::new(SUBSCRIPTIONS_CONFIG, &[]);
    let first = Server::start(&dir);
    subscribe_webhook(&first, &receiver.url()).await;
    let response = reqwest::Client::new()
        .post(first.url("/api/v2/alerts"))
        .json(&serde_json::json!([{"labels": {"alertname": "Down", "service": "checkout"}}]))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let failed = eventually("a failed delivery attempt", DEADLINE, async || {
        receiver.requests().into_iter().next()
    })
    .await;
    first.kill();
    assert!(receiver.accepted().is_empty(), "nothing delivered before");

    receiver.set(200);
    let second = Server::start(&dir);
    // The retry is due 4 to 6 s after the failed attempt (the webhooks' schedule).
    eventually("the notification after the restart", DEADLINE, async || {
        receiver.accepted().into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = accepted_events(&receiver);
    assert_eq!(events.len(), 1, "one event, at least once: {events:?}");
    assert_eq!(events[0].1, "status.opened");
    assert_eq!(
        events[0].0, failed,
        "the retry has the failed attempt's event id"
    );
    second.kill();
}

/// An update committed with its incident change but not fanned out yet when the process
/// dies is fanned out after the restart. That window (between the incident's commit and
/// the worker's fan-out commit, a few milliseconds) cannot be hit reliably by timing a
/// kill, so the test writes the state it leaves — a stored status update, no queue
/// entry — into the killed process's store, then starts it again.
#[tokio::test]
async fn sigkill_between_an_update_and_its_fan_out_loses_nothing() {
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(SUBSCRIPTIONS_CONFIG, &[]);
    let first = Server::start(&dir);
    subscribe_webhook(&first, &receiver.url()).await;
    first.kill();

    let store = incidentd::store::Store::open(&dir.path().join("data/incidentd.redb")).unwrap();
    let mut counters = store.load_subscriptions().unwrap().counters;
    assert_eq!(store.notification_count().unwrap(), 0);
    let mut batch = incidentd::store::Batch::default();
    batch.put_status_update(
        counters.next_update_seq,
        incidentd::store::StatusUpdate {
            event: "incident.opened".to_owned(),
            incident: "INC-1".to_owned(),
            title: "Checkout down".to_owned(),
            status: "Investigating".to_owned(),
            services: vec!["checkout".to_owned()],
            note: None,
            at: chrono::Utc::now(),
        },
    );
    counters.next_update_seq += 1;
    batch.set_subscription_counters(counters);
    store.commit(&batch).unwrap();
    drop(store);

    let second = Server::start(&dir);
    let delivered = eventually(
        "the update fanned out after the restart",
        DEADLINE,
        async || receiver.accepted().into_iter().next(),
    )
    .await;
    assert_eq!(delivered.json()["type"], "status.opened");
    assert_eq!(delivered.json()["incident"]["id"], "INC-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(accepted_events(&receiver).len(), 1);
    second.kill();
}
