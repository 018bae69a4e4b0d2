//! The walking skeleton end to end: a target starts failing → after `after` failures an
//! incident is open → the webhook receiver gets `incident.opened`, signed → acknowledge via
//! the API → the target recovers → the incident is resolved → every event arrived once,
//! in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

fn config(receiver: &Receiver) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         storage: {{path: data/incidentd.redb}}\n\
         webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n",
        receiver.url()
    )
}

fn rules(target: &Target) -> String {
    format!(
        r#"probes:
  - name: web
    interval: 100ms
    timeout: 100ms
    labels: {{service: web, team: shop}}
    http: {{url: "{}"}}
rules:
  - name: web-down
    probe: web
    when: '[STATUS] != 200'
    after: 3
    recover_after: 2
    incident:
      title: 'Web down ({{{{ status }}}})'
      category: availability
      impact: high
      urgency: medium
"#,
        target.url()
    )
}

fn env() -> HashMap<String, String> {
    HashMap::from([(SECRET_ENV.to_owned(), secret_value())])
}

async fn incidents(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/incidents").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["incidents"].as_array().unwrap().clone()
}

#[tokio::test]
async fn failing_target_opens_incident_webhooks_follow_the_workflow() {
    let target = Target::start(200).await;
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&receiver), &[("web.yaml", &rules(&target))]);
    let app = TestApp::spawn(&dir, env()).await;

    // Healthy first: the probe runs, nothing opens.
    eventually("a successful probe", DEADLINE, async || {
        app.metrics()
            .await
            .contains("incidentd_probe_success{probe=\"web\"} 1")
            .then_some(())
    })
    .await;
    assert!(incidents(&app).await.is_empty());

    target.set(503);
    let incident = eventually("an open incident", DEADLINE, async || {
        incidents(&app).await.into_iter().next()
    })
    .await;
    assert_eq!(incident["id"], "INC-1");
    assert_eq!(incident["state"], "open");
    assert_eq!(incident["title"], "Web down (503)");
    assert_eq!(incident["priority"], "P2");
    assert_eq!(incident["tier"], "L1");
    assert_eq!(incident["service"], "web");
    assert_eq!(incident["labels"]["team"], "shop");
    assert_eq!(
        incident["source"],
        json!({"type": "rule", "rule": "web-down", "probe": "web"})
    );
    assert_eq!(incident["evidence"][0]["status"], 503);
    assert_eq!(
        incident["opened_at"], "2026-03-02T09:00:00Z",
        "time comes from the clock"
    );

    let opened = eventually("incident.opened delivered", DEADLINE, async || {
        receiver.accepted().into_iter().next()
    })
    .await;
    assert_eq!(opened.event_type(), "incident.opened");
    assert!(opened.id.starts_with("evt_"), "{}", opened.id);
    assert_eq!(opened.json()["id"], opened.id.as_str());
    assert_eq!(opened.json()["incident"]["id"], "INC-1");
    assert!(
        opened.verifies(),
        "the signature verifies with the consumer's secret"
    );

    app.clock.advance(Duration::from_secs(600));
    let (status, acked) = app.post("/api/v1/incidents/INC-1/acknowledge", None).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_at"], "2026-03-02T09:10:00Z");

    let (status, again) = app.post("/api/v1/incidents/INC-1/acknowledge", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["error"]["code"], "conflict");
    assert_eq!(
        again["error"]["message"],
        "incident INC-1 is acknowledged; cannot acknowledge it"
    );

    app.clock.advance(Duration::from_secs(3000));
    target.set(200);
    let resolved = eventually("the incident resolved", DEADLINE, async || {
        let (_, incident) = app.get("/api/v1/incidents/INC-1").await;
        (incident["state"] == "resolved").then_some(incident)
    })
    .await;
    assert_eq!(resolved["resolved_at"], "2026-03-02T10:00:00Z");
    let kinds: Vec<&str> = resolved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "acknowledged", "resolved"]);
    assert_eq!(resolved["timeline"][1]["actor"], "anonymous");
    assert_eq!(resolved["timeline"][2]["actor"], "system");

    let deliveries = eventually("three deliveries", DEADLINE, async || {
        let got = receiver.accepted();
        (got.len() >= 3).then_some(got)
    })
    .await;
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deliveries_after = receiver.accepted();
    assert_eq!(deliveries_after.len(), deliveries.len(), "no event twice");
    let types: Vec<String> = deliveries.iter().map(Delivery::event_type).collect();
    assert_eq!(
        types,
        [
            "incident.opened",
            "incident.acknowledged",
            "incident.resolved"
        ]
    );
    let ids: HashSet<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each event has its own webhook-id");
    assert!(deliveries.iter().all(Delivery::verifies));
    assert_eq!(deliveries[2].json()["incident"]["state"], "resolved");

    let metrics = app.metrics().await;
    for line in [
        "incidentd_incidents_opened_total{category=\"availability\",kind=\"incident\",priority=\"P2\",source=\"rule\"} 1",
        "incidentd_incidents_resolved_total{category=\"availability\",priority=\"P2\"} 1",
        "incidentd_incidents_open{category=\"availability\",priority=\"P2\",state=\"open\",tier=\"L1\"} 0",
        "incidentd_first_response_seconds_sum{kind=\"incident\",priority=\"P2\"} 600",
        "incidentd_resolution_seconds_sum{kind=\"incident\",priority=\"P2\"} 3600",
        "incidentd_sla_met_total{kind=\"incident\",priority=\"P2\",sla=\"first_response\"} 1",
        "incidentd_sla_met_total{kind=\"incident\",priority=\"P2\",sla=\"resolution\"} 1",
        "incidentd_sla_open{kind=\"incident\",priority=\"P2\",sla=\"resolution\",status=\"ok\"} 0",
        "incidentd_rule_firing{rule=\"web-down\"} 0",
        "incidentd_webhook_pending{consumer=\"receiver\"} 0",
        "incidentd_webhook_deliveries_total{consumer=\"receiver\",outcome=\"success\"} 3",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn api_errors_are_json_with_the_right_status() {
    let target = Target::start(200).await;
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&receiver), &[("web.yaml", &rules(&target))]);
    let app = TestApp::spawn(&dir, env()).await;

    let (status, body) = app.get("/api/v1/incidents/INC-99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "incident INC-99 not found");

    let (status, body) = app.get("/api/v1/incidents?state=opn").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "unknown state `opn`; valid: open, acknowledged, on_hold, resolved, closed"
    );

    let (status, body) = app.get("/api/v1/incidents?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, body) = app
        .post(
            "/api/v1/incidents/INC-1/resolve",
            Some(json!({"resolution": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = app.post("/api/v1/incidents/INC-1/resolve", None).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"]["message"].is_string());

    let big = "x".repeat(2 * 1024 * 1024);
    let response = app
        .client
        .post(app.url("/api/v1/incidents/INC-1/acknowledge"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let (status, body) = app.get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let response = app.client.get(app.url("/-/ready")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.client.get(app.url("/-/healthy")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn consumer_errors_are_retried_and_410_disables_the_consumer() {
    let target = Target::start(503).await;
    let receiver = Receiver::start(503).await;
    let dir = ConfigDir::new(&config(&receiver), &[("web.yaml", &rules(&target))]);
    let app = TestApp::spawn(&dir, env()).await;

    // The consumer fails: the event waits in the outbox and is retried.
    eventually("a failed delivery attempt", DEADLINE, async || {
        app.metrics()
            .await
            .contains("incidentd_webhook_deliveries_total{consumer=\"receiver\",outcome=\"retry\"}")
            .then_some(())
    })
    .await;
    assert!(
        app.metrics()
            .await
            .contains("incidentd_webhook_pending{consumer=\"receiver\"} 1")
    );
    receiver.set(200);
    let delivered = eventually(
        "delivery after the consumer recovered",
        DEADLINE,
        async || receiver.accepted().into_iter().next(),
    )
    .await;
    assert_eq!(delivered.event_type(), "incident.opened");

    // 410 Gone: the consumer is disabled (persisted, visible) and the event waits in the
    // outbox, not retried, until an admin enables the consumer again.
    receiver.set(410);
    let (status, _) = app.post("/api/v1/incidents/INC-1/acknowledge", None).await;
    assert_eq!(status, StatusCode::OK);
    eventually(
        "the 410 counted and the consumer disabled",
        DEADLINE,
        async || {
            let metrics = app.metrics().await;
            (metrics.contains(
                "incidentd_webhook_deliveries_total{consumer=\"receiver\",outcome=\"gone\"} 1",
            ) && metrics.contains("incidentd_webhook_pending{consumer=\"receiver\"} 1")
                && metrics.contains("incidentd_webhook_consumer_enabled{consumer=\"receiver\"} 0"))
            .then_some(())
        },
    )
    .await;
    let list = eventually("the API shows it disabled", DEADLINE, async || {
        let (_, list) = app.get("/api/v1/webhooks").await;
        (list["webhooks"][0]["enabled"] == false).then_some(list)
    })
    .await;
    assert_eq!(list["webhooks"][0]["pending"], 1, "{list}");
    assert_eq!(
        list["webhooks"][0]["disabled_reason"],
        "the consumer answered 410 Gone"
    );
    receiver.set(200);
    let (status, body) = app.post("/api/v1/webhooks/receiver/enable", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let acknowledged = eventually("delivery after enable", DEADLINE, async || {
        receiver.accepted().into_iter().nth(1)
    })
    .await;
    assert_eq!(acknowledged.event_type(), "incident.acknowledged");
    eventually(
        "the outbox empty, the consumer enabled",
        DEADLINE,
        async || {
            let metrics = app.metrics().await;
            (metrics.contains("incidentd_webhook_pending{consumer=\"receiver\"} 0")
                && metrics.contains("incidentd_webhook_consumer_enabled{consumer=\"receiver\"} 1"))
            .then_some(())
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn silences_and_rules_over_http() {
    let target = Target::start(503).await;
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&receiver), &[("web.yaml", &rules(&target))]);
    let app = TestApp::spawn(&dir, env()).await;

    let (status, silence) = app
        .post(
            "/api/v1/silences",
            Some(json!({
                "matchers": {"service": "web"},
                "ends_at": "2026-03-02T10:00:00Z",
                "comment": "deploying"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{silence}");
    assert_eq!(silence["created_by"], "anonymous");
    assert_eq!(silence["starts_at"], "2026-03-02T09:00:00Z");

    let rules = eventually("the rule firing but silenced", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/rules").await;
        (body["rules"][0]["firing"] == true).then_some(body)
    })
    .await;
    assert_eq!(rules["rules"][0]["name"], "web-down");
    assert_eq!(rules["rules"][0]["subjects"][0]["suppressed"], "silenced");
    assert!(incidents(&app).await.is_empty(), "silenced: nothing opens");

    let (status, list) = app.get("/api/v1/silences").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
    // Made in the map form, shown in Alertmanager's list form.
    assert_eq!(
        list["silences"][0]["matchers"],
        json!([{"name": "service", "value": "web", "isRegex": false, "isEqual": true}])
    );

    // Expire it: the still-failing target opens its incident.
    let id = silence["id"].as_str().unwrap();
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let incident = eventually("an incident after the silence", DEADLINE, async || {
        incidents(&app).await.into_iter().next()
    })
    .await;
    assert_eq!(incident["state"], "open");

    let (status, body) = app
        .post(
            "/api/v1/silences",
            Some(json!({"matchers": {}, "ends_at": "2026-03-02T10:00:00Z", "comment": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "a silence needs at least one matcher"
    );
    let response = app
        .client
        .delete(app.url("/api/v1/silences/99"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
