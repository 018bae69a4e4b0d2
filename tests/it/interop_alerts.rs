//! Alert ingest against the real senders: `prometheus-alertmanager` notifying incidentd's
//! webhook receiver, and `prometheus` pushing its alerts straight to incidentd's
//! Alertmanager-compatible `POST /api/v2/alerts`. Both senders authenticate with an
//! `ingest` token, as a deployment would have them do. incidentd runs on the real time here:
//! the senders stamp `startsAt`/`endsAt` with it. Deadlines are generous (the machine may
//! be busy); nothing asserts how fast.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{SecondsFormat, Utc};
use incidentd::clock::SystemClock;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{
    ConfigDir, RealServer, TestApp, eventually_ok, start_alertmanager, start_prometheus_with,
};

const INGEST: &str = "ingest-token-1234567890";
const VIEWER: &str = "viewer-token-1234567890";
const DEADLINE: Duration = Duration::from_secs(60);

const CONFIG: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: alertmanager, token_env: IT_INGEST, role: ingest}
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
";

async fn spawn_app() -> (ConfigDir, TestApp<SystemClock>) {
    let dir = ConfigDir::new(CONFIG, &[]);
    let env = HashMap::from([
        ("IT_INGEST".to_owned(), INGEST.to_owned()),
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
    ]);
    let app = TestApp::spawn_on_system_clock(&dir, env).await;
    (dir, app)
}

/// The incidents whose `alertname` label is `alertname`, oldest first.
async fn incidents_of(app: &TestApp<SystemClock>, alertname: &str) -> Vec<Value> {
    let response = app
        .client
        .get(app.url("/api/v1/incidents?limit=100"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    let mut found: Vec<Value> = body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["labels"]["alertname"] == alertname)
        .cloned()
        .collect();
    found.reverse();
    found
}

/// The states of `alertname`'s incidents by their `instance` label, when every instance of
/// `want` has one incident in the wanted state and no other incident exists; else what
/// there is, for the timeout message.
async fn states_are(
    app: &TestApp<SystemClock>,
    alertname: &str,
    want: &[(&str, &str)],
    sender: &RealServer,
) -> Result<Vec<Value>, String> {
    let incidents = incidents_of(app, alertname).await;
    let got: Vec<(String, String)> = incidents
        .iter()
        .map(|i| {
            (
                i["labels"]["instance"].as_str().unwrap_or("?").to_owned(),
                i["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let mut wanted: Vec<(String, String)> = want
        .iter()
        .map(|(i, s)| ((*i).to_owned(), (*s).to_owned()))
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    wanted.sort();
    if sorted == wanted {
        Ok(incidents)
    } else {
        let log = sender.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        Err(format!(
            "wanted {wanted:?}, incidentd has {got:?}; the sender's log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's webhook, `send_resolved: true`, one group holding two alerts: each alert
/// is its own incident (`alerts.group_by: fingerprint`, the default), each resolves when
/// Alertmanager says that alert resolved, and Alertmanager's repeated notifications of the
/// group open nothing twice.
#[tokio::test]
async fn alertmanager_notifies_the_webhook_and_each_alert_is_an_incident_until_resolved() {
    let (_dir, app) = spawn_app().await;
    let config = format!(
        "global: {{resolve_timeout: 5m}}
route:
  receiver: incidentd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: incidentd
    webhook_configs:
      - url: http://{}/api/v1/alertmanager
        send_resolved: true
        http_config: {{authorization: {{credentials: {INGEST}}}}}
",
        app.addr
    );
    let Some(alertmanager) = start_alertmanager(&config).await else {
        return;
    };
    let client = reqwest::Client::new();
    let push = async |alerts: Value| {
        let response = client
            .post(format!("{}/api/v2/alerts", alertmanager.url))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "alertmanager refused the alerts: {}",
            response.text().await.unwrap()
        );
    };
    let started = Utc::now() - chrono::Duration::seconds(5);
    let alert = |instance: &str, ends_at: Option<String>| {
        let mut alert = json!({
            "labels": {"alertname": "InteropWebhook", "instance": instance, "severity": "critical"},
            "annotations": {"summary": format!("{instance} is down")},
            "startsAt": rfc3339(started),
            "generatorURL": "http://prometheus.invalid/graph",
        });
        if let Some(at) = ends_at {
            alert["endsAt"] = json!(at);
        }
        alert
    };

    // Two alerts of one group (group_by: [alertname]): one notification carries both.
    push(json!([alert("a", None), alert("b", None)])).await;
    let opened = eventually_ok("two incidents, open", DEADLINE, async || {
        states_are(
            &app,
            "InteropWebhook",
            &[("a", "open"), ("b", "open")],
            &alertmanager,
        )
        .await
    })
    .await;
    // Alertmanager's own fingerprint of each alert is the incident's: the same identity.
    let held: Vec<Value> = client
        .get(format!("{}/api/v2/alerts", alertmanager.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for incident in &opened {
        assert_eq!(incident["source"]["type"], "alert", "{incident:#}");
        let instance = incident["labels"]["instance"].as_str().unwrap();
        assert_eq!(
            incident["title"],
            format!("{instance} is down"),
            "{incident:#}"
        );
        let fingerprint = held
            .iter()
            .find(|a| a["labels"]["instance"] == instance)
            .map(|a| a["fingerprint"].clone());
        assert_eq!(
            Some(incident["fingerprint"].clone()),
            fingerprint,
            "{incident:#}"
        );
    }

    // The same alerts again (as Prometheus re-sends them): nothing new.
    push(json!([alert("a", None), alert("b", None)])).await;

    // `a` ends (endsAt in the past): Alertmanager notifies its resolution, `a`'s incident
    // resolves and `b`'s stays open.
    push(json!([alert(
        "a",
        Some(rfc3339(Utc::now() - chrono::Duration::seconds(1)))
    )]))
    .await;
    eventually_ok("a resolved, b open", DEADLINE, async || {
        states_are(
            &app,
            "InteropWebhook",
            &[("a", "resolved"), ("b", "open")],
            &alertmanager,
        )
        .await
    })
    .await;

    push(json!([alert(
        "b",
        Some(rfc3339(Utc::now() - chrono::Duration::seconds(1)))
    )]))
    .await;
    let resolved = eventually_ok("both resolved", DEADLINE, async || {
        states_are(
            &app,
            "InteropWebhook",
            &[("a", "resolved"), ("b", "resolved")],
            &alertmanager,
        )
        .await
    })
    .await;
    for incident in &resolved {
        assert_eq!(incident["verification"], "verified", "{incident:#}");
    }
}

/// A Prometheus exporter serving one gauge, `interop_queue_depth`, whose value the test sets.
async fn gauge_exporter(value: Arc<AtomicU64>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(value): State<Arc<AtomicU64>>| async move {
                format!(
                    "# TYPE interop_queue_depth gauge\ninterop_queue_depth {}\n",
                    value.load(Ordering::SeqCst)
                )
            }),
        )
        .with_state(value);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Prometheus with incidentd as its Alertmanager (`api_version: v2`): an alerting rule on a
/// gauge the test sets fires, Prometheus pushes the alert, the incident opens; the gauge
/// goes back, Prometheus sends the alert with its `endsAt`, the incident resolves.
#[tokio::test]
async fn prometheus_pushes_alerts_to_incidentd_as_its_alertmanager() {
    let (dir, app) = spawn_app().await;
    let depth = Arc::new(AtomicU64::new(0));
    let exporter = gauge_exporter(depth.clone()).await;
    let rules = dir.path().join("prometheus-rules.yml");
    std::fs::write(
        &rules,
        "groups:
  - name: interop
    rules:
      - alert: InteropQueueStuck
        expr: interop_queue_depth > 100
        for: 0s
        labels: {severity: critical, instance: queue}
        annotations: {summary: 'queue depth {{ $value }}'}
",
    )
    .unwrap();
    let incidentd = app.addr;
    let Some(prometheus) = start_prometheus_with(|_port| {
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{rules}']
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{credentials: {INGEST}}}
      static_configs: [{{targets: ['{incidentd}']}}]
scrape_configs:
  - job_name: exporter
    static_configs: [{{targets: ['{exporter}']}}]
",
            rules = rules.display()
        )
    })
    .await
    else {
        return;
    };

    // Prometheus scrapes the gauge at 0 first: nothing fires.
    depth.store(250, Ordering::SeqCst);
    let opened = eventually_ok("the incident, open", DEADLINE, async || {
        states_are(&app, "InteropQueueStuck", &[("queue", "open")], &prometheus).await
    })
    .await;
    let incident = &opened[0];
    assert_eq!(incident["source"]["type"], "alert", "{incident:#}");
    assert_eq!(incident["title"], "queue depth 250", "{incident:#}");
    assert_eq!(incident["labels"]["job"], "exporter", "{incident:#}");
    assert_eq!(incident["labels"]["severity"], "critical", "{incident:#}");

    depth.store(0, Ordering::SeqCst);
    let resolved = eventually_ok("the incident, resolved", DEADLINE, async || {
        states_are(
            &app,
            "InteropQueueStuck",
            &[("queue", "resolved")],
            &prometheus,
        )
        .await
    })
    .await;
    assert_eq!(resolved[0]["id"], incident["id"], "{:#}", resolved[0]);
}
