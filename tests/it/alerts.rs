//! Alerts in, through the real server: Alertmanager's webhook, the v2 push Prometheus
//! uses, and PagerDuty-shaped events; dedup, group_key mode, expiry by `endsAt` (also
//! across a restart, on the engine with a manual clock), auth by `routing_key`, and the
//! error shapes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use incidentd::clock::{Clock, ManualClock};
use incidentd::domain::alert::{Alert, AlertSource, AlertStatus};
use incidentd::domain::incident::{IncidentId, State, Verification};
use incidentd::engine::{AlertOutcome, Engine};
use incidentd::metrics::Metrics;
use incidentd::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn webhook(status: &str, group_key: &str, alerts: Value) -> Value {
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incidentd",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "routeLabels": {"team": "payments"},
        "externalURL": "http://alertmanager.example:9093",
        "notification_reason": "first notification",
        "alerts": alerts,
    })
}

fn am_alert(status: &str, name: &str, severity: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": name, "service": "checkout", "severity": severity, "instance": "a:9100"},
        "annotations": {"summary": format!("{name} on checkout"), "runbook_url": "https://runbooks.example/down"},
        "startsAt": "2026-03-02T08:55:00Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-03-02T09:00:00Z" },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": "0000000000000000",
    })
}

async fn incident(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn incident_count(app: &TestApp) -> usize {
    let (_, body) = app.get("/api/v1/incidents").await;
    body["incidents"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_alertmanager_webhook_opens_dedups_and_resolves_verified() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let firing = webhook(
        "firing",
        "{}:{alertname=\"Down\"}",
        json!([am_alert("firing", "Down", "critical")]),
    );
    let (status, body) = app.post("/api/v1/alertmanager", Some(firing.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["alerts"][0],
        json!({"outcome": "accepted", "incident": "INC-1"})
    );

    let opened = incident(&app, "INC-1").await;
    assert_eq!(opened["title"], "Down on checkout");
    assert_eq!(
        opened["source"],
        json!({"type": "alert", "source": "alertmanager"})
    );
    assert_eq!(opened["service"], "checkout");
    assert_eq!(opened["priority"], "P1");
    assert_eq!(opened["tier"], "L3");
    assert_eq!(opened["category"], "availability");
    assert_eq!(opened["labels"]["instance"], "a:9100");
    let evidence = &opened["evidence"][0];
    assert_eq!(evidence["type"], "alert");
    assert_eq!(evidence["runbook_url"], "https://runbooks.example/down");
    assert_eq!(
        evidence["generator_url"],
        "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0"
    );
    assert_eq!(evidence["annotations"]["summary"], "Down on checkout");

    // Alertmanager sends the group again (group_interval, repeat_interval): one incident.
    let (_, body) = app.post("/api/v1/alertmanager", Some(firing)).await;
    assert_eq!(
        body["alerts"][0],
        json!({"outcome": "duplicate", "incident": "INC-1"})
    );

    let resolved = webhook(
        "resolved",
        "{}:{alertname=\"Down\"}",
        json!([am_alert("resolved", "Down", "critical")]),
    );
    let (status, _) = app
        .post("/api/v1/alertmanager", Some(resolved.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = incident(&app, "INC-1").await;
    assert_eq!(after["state"], "resolved");
    assert_eq!(after["verification"], "verified");
    // The timeline and the resolution speak of the alert, not of a rule.
    assert_eq!(after["resolution"], "recovered: the alert resolved");
    let resolved_entry = after["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "resolved")
        .unwrap_or_else(|| panic!("a resolved entry: {after}"));
    let message = resolved_entry["message"].as_str().unwrap();
    assert!(
        message.contains("the alert resolved") && !message.contains("rule"),
        "{message}"
    );
    // Sent again (Alertmanager retries): nothing more to do.
    let (_, body) = app.post("/api/v1/alertmanager", Some(resolved)).await;
    assert_eq!(body["alerts"][0]["outcome"], "ignored");
    assert_eq!(incident_count(&app).await, 1);

    let metrics = app.metrics().await;
    for line in [
        "incidentd_alerts_received_total{outcome=\"accepted\",source=\"alertmanager\"} 2",
        "incidentd_alerts_received_total{outcome=\"duplicate\",source=\"alertmanager\"} 1",
        "incidentd_alerts_received_total{outcome=\"ignored\",source=\"alertmanager\"} 1",
        "incidentd_incidents_opened_total{category=\"availability\",kind=\"incident\",priority=\"P1\",source=\"alert\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn with_group_by_group_key_an_alertmanager_group_is_one_incident() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\nalerts: {group_by: group_key}\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let key = "{}:{service=\"checkout\"}";
    let both = webhook(
        "firing",
        key,
        json!([
            am_alert("firing", "Down", "warning"),
            am_alert("firing", "Slow", "warning")
        ]),
    );
    let (status, body) = app.post("/api/v1/alertmanager", Some(both)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alerts"][1]["incident"], "INC-1");
    // One of them resolves, in a message that still carries the other firing.
    let mixed = webhook(
        "firing",
        key,
        json!([
            am_alert("resolved", "Down", "warning"),
            am_alert("firing", "Slow", "warning")
        ]),
    );
    app.post("/api/v1/alertmanager", Some(mixed)).await;
    assert_eq!(incident(&app, "INC-1").await["state"], "open");
    let all = webhook(
        "resolved",
        key,
        json!([am_alert("resolved", "Slow", "warning")]),
    );
    app.post("/api/v1/alertmanager", Some(all)).await;
    let after = incident(&app, "INC-1").await;
    assert_eq!(after["state"], "resolved");
    assert_eq!(after["verification"], "verified");
    assert_eq!(incident_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_v2_push_refreshed_keeps_one_incident_and_expires_when_no_longer_sent() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    // As Prometheus sends it: every minute, endsAt = now + 4 × the resend delay.
    let push = |now: DateTime<Utc>| {
        json!([{
            "labels": {"alertname": "HighLatency", "service": "checkout", "severity": "warning"},
            "annotations": {"summary": format!("p95 high at {}", rfc3339(now))},
            "startsAt": rfc3339(start_time()),
            "endsAt": rfc3339(now + chrono::Duration::minutes(4)),
            "generatorURL": "http://prometheus.example:9090/graph",
        }])
    };
    for minute in 0..6 {
        let (status, body) = app
            .post("/api/v2/alerts", Some(push(app.clock.now())))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["alerts"][0]["incident"], "INC-1");
        assert_eq!(
            body["alerts"][0]["outcome"], "accepted",
            "push {minute}: the expiry moved"
        );
        app.clock.advance(Duration::from_secs(60));
    }
    // Six minutes in, the first push's endsAt (4m) is long past: no flapping.
    tokio::time::sleep(Duration::from_millis(600)).await; // a few engine ticks
    let open = incident(&app, "INC-1").await;
    assert_eq!(open["state"], "open");
    // Annotations are the latest push's.
    assert!(
        open["evidence"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("09:05:00Z"),
        "{open}"
    );
    // Prometheus stops sending (the rule was deleted, the server died): after the last
    // endsAt (9:05 + 4m) the alert resolves, by the durable timer.
    app.clock.advance(Duration::from_secs(4 * 60));
    eventually(
        "the expiry resolves the incident",
        Duration::from_secs(10),
        async || {
            let incident = incident(&app, "INC-1").await;
            (incident["state"] == "resolved").then_some(())
        },
    )
    .await;
    let resolved = incident(&app, "INC-1").await;
    assert_eq!(resolved["verification"], "verified");
    assert_eq!(incident_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_malformed_alert_changes_nothing() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let batch = json!([
        {"labels": {"alertname": "A"}},
        {"labels": {"alertname": "B"}},
        {"labels": {"job": "no-alertname"}},
    ]);
    let (status, body) = app.post("/api/v2/alerts", Some(batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`[2].labels.alertname`"),
        "{body}"
    );
    assert_eq!(incident_count(&app).await, 0);
    let (status, body) = app
        .post(
            "/api/v1/alertmanager",
            Some(json!({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`alerts[0].labels.a`"),
        "{body}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains("incidentd_alerts_received_total{outcome=\"rejected\",source=\"api_v2\"} 3"),
        "{metrics}"
    );
    app.stop().await;
}

const TOKENS: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
    - {name: monitoring, token_env: IT_INGEST, role: ingest}
";
const VIEWER: &str = "viewer-token-1234567890";
const INGEST: &str = "ingest-token-1234567890";

fn token_env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        ("IT_INGEST".to_owned(), INGEST.to_owned()),
    ])
}

async fn read(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn send(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn pagerduty_events_trigger_acknowledge_resolve_with_routing_key_auth() {
    let dir = ConfigDir::new(TOKENS, &[]);
    let app = TestApp::spawn(&dir, token_env()).await;
    let trigger = json!({
        "routing_key": INGEST,
        "event_action": "trigger",
        "payload": {"summary": "Disk full on db1", "source": "db1.example", "severity": "critical",
                    "component": "postgres", "custom_details": {"free": "0%"}},
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.example.com",
    });
    // No Authorization header: the routing key is the ingest token.
    let (status, body) = send(&app, "/v2/enqueue", None, trigger.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Event processed");
    let key = body["dedup_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32, "generated: {key}");

    let opened = read(&app, "/api/v1/incidents/INC-1").await;
    assert_eq!(opened["title"], "Disk full on db1");
    assert_eq!(
        opened["source"],
        json!({"type": "alert", "source": "events"})
    );
    assert_eq!(opened["priority"], "P1");

    // The same dedup key again is the same alert.
    let mut again = trigger.clone();
    again["dedup_key"] = json!(key);
    let (status, body) = send(&app, "/api/v1/events", Some(INGEST), again).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["dedup_key"], key.as_str());

    let ack = json!({"routing_key": INGEST, "event_action": "acknowledge", "dedup_key": key});
    assert_eq!(
        send(&app, "/api/v1/events", None, ack).await.0,
        StatusCode::ACCEPTED
    );
    let resolve = json!({"routing_key": INGEST, "event_action": "resolve", "dedup_key": key});
    assert_eq!(
        send(&app, "/api/v1/events", None, resolve).await.0,
        StatusCode::ACCEPTED
    );
    let listed = read(&app, "/api/v1/incidents").await;
    let incidents = listed["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["state"], "resolved");
    assert!(
        incidents[0]["acknowledged_at"].is_string(),
        "{}",
        incidents[0]
    );

    // 400 in PagerDuty's shape, naming the fields.
    let bad = json!({"routing_key": INGEST, "event_action": "trigger", "payload": {"summary": "x", "severity": "fatal"}});
    let (status, body) = send(&app, "/v2/enqueue", None, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["message"], "Event object is invalid");
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("`payload.source`"), "{errors:?}");
    assert!(errors[1].starts_with("`payload.severity`"), "{errors:?}");

    // Auth: a routing key that is no token, and a viewer token, are refused.
    let stranger =
        json!({"routing_key": "not-a-token", "event_action": "resolve", "dedup_key": "k"});
    assert_eq!(
        send(&app, "/v2/enqueue", None, stranger.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "/v2/enqueue", Some(VIEWER), stranger).await.0,
        StatusCode::FORBIDDEN
    );
    let am = webhook(
        "firing",
        "{}",
        json!([am_alert("firing", "Down", "critical")]),
    );
    assert_eq!(
        send(&app, "/api/v1/alertmanager", None, am.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "/api/v1/alertmanager", Some(VIEWER), am.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, "/api/v1/alertmanager", Some(INGEST), am).await.0,
        StatusCode::OK
    );
    app.stop().await;
}

/// An alert pushed without `endsAt` resolves `resolve_timeout` later, by a timer stored
/// with it: the engine is restarted in between, on the same store and manual clock.
#[tokio::test]
async fn the_expiry_timer_survives_a_restart() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\nalerts: {resolve_timeout: 2m}\n", &[]);
    let clock = ManualClock::new(start_time());
    let config = incidentd::config::load(&dir.config_path(), &|_| None).unwrap();
    let start = |store: Store| {
        let stop = CancellationToken::new();
        let (engine, _read, task) = Engine::start(
            store,
            &config,
            Arc::new(clock.clone()),
            Metrics::new(),
            Arc::new(HashMap::new()),
            stop.clone(),
            true,
        )
        .unwrap();
        (engine, stop, task)
    };
    let alert = Alert {
        source: AlertSource::ApiV2,
        status: AlertStatus::Firing,
        labels: BTreeMap::from([("alertname".to_owned(), "Down".to_owned())]),
        annotations: BTreeMap::new(),
        starts_at: Some(clock.now() - chrono::Duration::minutes(3)),
        ends_at: None,
        generator_url: None,
        group_key: None,
        dedup_key: None,
    };
    let store = Store::open(&config.storage_path).unwrap();
    let (engine, stop, task) = start(store.clone());
    let outcome = engine
        .alerts(vec![alert], Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(outcome.alerts, [AlertOutcome::Accepted(IncidentId(1))]);
    let stored = store.get_incident(IncidentId(1)).unwrap().unwrap();
    assert_eq!(
        stored.detected_at,
        Some(start_time() - chrono::Duration::minutes(3))
    );
    stop.cancel();
    task.await.unwrap();
    drop(engine);
    drop(store);

    clock.advance(Duration::from_secs(119));
    let store = Store::open(&config.storage_path).unwrap();
    let (engine, stop, task) = start(store.clone());
    engine.tick().await.unwrap();
    assert_eq!(
        store.get_incident(IncidentId(1)).unwrap().unwrap().state,
        State::Open
    );
    clock.advance(Duration::from_secs(1));
    engine.tick().await.unwrap();
    let resolved = store.get_incident(IncidentId(1)).unwrap().unwrap();
    assert_eq!(resolved.state, State::Resolved);
    assert_eq!(resolved.verification, Some(Verification::Verified));
    assert!(resolved.alert_expiry.is_empty());
    stop.cancel();
    task.await.unwrap();
}

/// Interop: the real Prometheus, alerting to incidentd as to an Alertmanager (`api_version:
/// v2`), opens an incident with its labels, annotations and `generatorURL`.
#[tokio::test]
async fn prometheus_sends_its_alerts_straight_to_incidentd() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let rules = tempfile::tempdir().unwrap();
    let rule_file = rules.path().join("rules.yml");
    std::fs::write(
        &rule_file,
        "groups:
  - name: it
    rules:
      - alert: CheckoutDown
        expr: vector(1)
        # Fires once the notifier has discovered incidentd (discovery updates every 5 s):
        # before, Prometheus drops the alert and sends it again only after the resend
        # delay (1m).
        for: 8s
        labels: {severity: critical, service: checkout}
        annotations:
          summary: 'Checkout is down'
          runbook_url: https://runbooks.example/checkout
",
    )
    .unwrap();
    let incidentd = app.addr;
    let rule_path = rule_file.display().to_string();
    let Some(prometheus) = start_prometheus_with(|_port| {
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{rule_path}']\n\
             alerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [{{targets: ['{incidentd}']}}]\n"
        )
    })
    .await
    else {
        return;
    };
    let opened = eventually_ok(
        "Prometheus's alert opens an incident",
        Duration::from_secs(30),
        async || {
            let (status, body) = app.get("/api/v1/incidents/INC-1").await;
            if status == StatusCode::OK {
                Ok(body)
            } else {
                let metrics = app.metrics().await;
                let received: Vec<&str> = metrics
                    .lines()
                    .filter(|l| l.contains("alerts_received"))
                    .collect();
                Err(format!(
                    "{status}: {body}\n{received:?}\n{}",
                    prometheus.log()
                ))
            }
        },
    )
    .await;
    assert_eq!(opened["title"], "Checkout is down");
    assert_eq!(
        opened["source"],
        json!({"type": "alert", "source": "api_v2"})
    );
    assert_eq!(opened["priority"], "P1");
    assert_eq!(opened["service"], "checkout");
    assert_eq!(opened["labels"]["alertname"], "CheckoutDown");
    let evidence = &opened["evidence"][0];
    assert_eq!(evidence["runbook_url"], "https://runbooks.example/checkout");
    assert!(
        evidence["generator_url"]
            .as_str()
            .unwrap()
            .starts_with("http"),
        "{evidence}"
    );
    app.stop().await;
}
