//! Scheduled maintenances over HTTP on a manual clock: what a caller may schedule (every
//! refusal naming its field), the list by state, cancelling and ending early, and the
//! alerts of a service in maintenance that open no incident until it ends.

use std::collections::HashMap;
use std::time::Duration;

use incidentd::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A time `minutes` after the test's start (09:00), in RFC 3339.
fn at(minutes: i64) -> String {
    (start_time() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn plan(services: Value, starts: i64, ends: i64) -> Value {
    json!({
        "title": "Database upgrade",
        "message": "Checkout may be slow for a few minutes.",
        "services": services,
        "starts_at": at(starts),
        "ends_at": at(ends),
    })
}

async fn delete(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.client.delete(app.url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<&str> {
    list["maintenances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn maintenances_are_scheduled_listed_cancelled_and_ended() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    let (status, first) = app
        .post(
            "/api/v1/maintenances",
            Some(plan(json!(["checkout", "db", "checkout"]), 60, 120)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first,
        json!({
            "id": "MNT-1",
            "title": "Database upgrade",
            "message": "Checkout may be slow for a few minutes.",
            "services": ["checkout", "db"],
            "starts_at": "2026-03-02T10:00:00Z",
            "ends_at": "2026-03-02T11:00:00Z",
            "state": "upcoming",
            "created_by": "anonymous",
            "created_at": "2026-03-02T09:00:00Z",
            "cancelled_at": null,
        })
    );
    let (_, second) = app
        .post("/api/v1/maintenances", Some(plan(json!(["web"]), 0, 30)))
        .await;
    assert_eq!(second["state"], "active", "{second}");
    let (_, third) = app
        .post("/api/v1/maintenances", Some(plan(json!(["api"]), 90, 100)))
        .await;
    assert_eq!(third["id"], "MNT-3");

    let (status, all) = app.get("/api/v1/maintenances").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all), ["MNT-3", "MNT-1", "MNT-2"], "latest start first");
    let (_, upcoming) = app.get("/api/v1/maintenances?state=upcoming").await;
    assert_eq!(ids(&upcoming), ["MNT-3", "MNT-1"]);
    let (_, active) = app.get("/api/v1/maintenances?state=active").await;
    assert_eq!(ids(&active), ["MNT-2"]);
    let (status, bad) = app.get("/api/v1/maintenances?state=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad["error"]["message"],
        "unknown state `done`; valid: upcoming, active, completed, cancelled"
    );

    // DELETE of an upcoming one cancels it; of an active one ends it now.
    app.clock.advance(Duration::from_secs(10 * 60));
    let (status, cancelled) = delete(&app, "/api/v1/maintenances/MNT-3").await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancelled_at"], "2026-03-02T09:10:00Z");
    assert_eq!(cancelled["ends_at"], at(100).replace("+00:00", "Z"));
    let (status, ended) = delete(&app, "/api/v1/maintenances/MNT-2").await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["state"], "completed");
    assert_eq!(ended["ends_at"], "2026-03-02T09:10:00Z");
    assert_eq!(ended["cancelled_at"], Value::Null);
    // Both are over: a second DELETE is a conflict, and the history stays.
    for id in ["MNT-2", "MNT-3"] {
        let (status, body) = delete(&app, &format!("/api/v1/maintenances/{id}")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
    }
    let (_, body) = delete(&app, "/api/v1/maintenances/MNT-2").await;
    assert_eq!(
        body["error"]["message"],
        "maintenance MNT-2 is completed already"
    );
    let (_, completed) = app
        .get("/api/v1/maintenances?state=completed,cancelled")
        .await;
    assert_eq!(ids(&completed), ["MNT-3", "MNT-2"]);

    let (status, one) = app.get("/api/v1/maintenances/MNT-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["services"], json!(["checkout", "db"]));
    app.clock.advance(Duration::from_secs(60 * 60));
    let (_, one) = app.get("/api/v1/maintenances/MNT-1").await;
    assert_eq!(one["state"], "active", "the state follows the clock");

    for missing in ["MNT-9", "9", "MNT-01", "INC-1"] {
        let path = format!("/api/v1/maintenances/{missing}");
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {missing}: {body}");
        let (status, body) = delete(&app, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "DELETE {missing}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_maintenances_are_refused_naming_the_field() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    #[track_caller]
    fn refused(got: (StatusCode, Value), message: &str) {
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
        assert_eq!(got.1["error"]["code"], "bad_request", "{}", got.1);
        assert_eq!(got.1["error"]["message"], message, "{}", got.1);
    }
    let post = async |body: Value| app.post("/api/v1/maintenances", Some(body)).await;
    let with = |field: &str, value: Value| {
        let mut body = plan(json!(["web"]), 60, 120);
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = plan(json!(["web"]), 60, 120);
        body.as_object_mut().unwrap().remove(field);
        body
    };
    refused(
        post(without("services")).await,
        "`services` is required: at least one service",
    );
    refused(
        post(with("services", json!([]))).await,
        "`services` is required: at least one service",
    );
    refused(
        post(with("services", json!(["web", " "]))).await,
        "`services[1]` is empty",
    );
    refused(
        post(with(
            "services",
            json!((0..33).map(|i| format!("s{i}")).collect::<Vec<_>>()),
        ))
        .await,
        "`services` has 33 entries; at most 32",
    );
    refused(
        post(with("services", json!(["web\nx"]))).await,
        "`services[0]` contains the control character U+000A; it must be one line of text",
    );
    refused(post(without("title")).await, "`title` is required");
    refused(
        post(with("title", json!("t".repeat(201)))).await,
        "`title` is 201 characters long; at most 200",
    );
    refused(
        post(with("message", json!("é".repeat(2049)))).await,
        "`message` is 4098 bytes long; at most 4096",
    );
    refused(post(without("starts_at")).await, "`starts_at` is required");
    refused(
        post(with("ends_at", json!("tomorrow"))).await,
        "`ends_at` is not an RFC 3339 time such as 2026-03-01T22:00:00Z",
    );
    refused(
        post(with("ends_at", json!(at(60)))).await,
        "`ends_at` must be after `starts_at`",
    );
    refused(
        post(plan(json!(["web"]), -120, -60)).await,
        "`ends_at` is in the past",
    );
    let (status, unknown) = post(with("colour", json!("red"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{unknown}"
    );
    let (status, wrong) = post(with("services", json!("web"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        wrong["error"]["message"]
            .as_str()
            .unwrap()
            .contains("services"),
        "{wrong}"
    );
    // A message of exactly 4096 bytes and 32 services are taken.
    let mut edge = with("message", json!("m".repeat(4096)));
    edge["services"] = json!((0..32).map(|i| format!("s{i}")).collect::<Vec<_>>());
    let (status, made) = post(edge).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (_, list) = app.get("/api/v1/maintenances").await;
    assert_eq!(ids(&list), ["MNT-1"], "nothing refused was made");
    app.stop().await;
}

#[tokio::test]
async fn no_more_than_a_thousand_maintenances_wait_or_run() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    for i in 0..1000 {
        let (status, body) = app
            .post(
                "/api/v1/maintenances",
                Some(plan(json!(["web"]), 60, 61 + i)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {body}");
    }
    let (status, body) = app
        .post("/api/v1/maintenances", Some(plan(json!(["web"]), 60, 120)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"],
        "1000 maintenances are upcoming or active; at most 1000: cancel one first"
    );
    // One cancelled makes room; completed ones do not count.
    let (status, _) = delete(&app, "/api/v1/maintenances/MNT-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post("/api/v1/maintenances", Some(plan(json!(["web"]), 60, 120)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.clock.advance(Duration::from_secs(62 * 60));
    let (status, body) = app
        .post("/api/v1/maintenances", Some(plan(json!(["web"]), 62, 120)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn alerts_of_a_service_in_maintenance_open_no_incident_until_it_ends() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let push = |service: &str| json!([{"labels": {"alertname": "Down", "service": service, "severity": "critical"}}]);
    let (status, _) = app
        .post(
            "/api/v1/maintenances",
            Some(plan(json!(["checkout"]), 10, 40)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Before it starts, an alert of another service opens an incident.
    let (_, body) = app.post("/api/v2/alerts", Some(push("web"))).await;
    assert_eq!(body["alerts"][0]["outcome"], "accepted", "{body}");

    app.clock.advance(Duration::from_secs(10 * 60)); // 09:10, active
    let (status, body) = app.post("/api/v2/alerts", Some(push("checkout"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alerts"][0]["outcome"], "suppressed", "{body}");
    let (_, body) = app.post("/api/v2/alerts", Some(push("search"))).await;
    assert_eq!(body["alerts"][0]["outcome"], "accepted", "{body}");
    let (_, list) = app.get("/api/v1/incidents").await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 2, "{list}");

    app.clock.advance(Duration::from_secs(30 * 60)); // 09:40, its end: over
    let (_, body) = app.post("/api/v2/alerts", Some(push("checkout"))).await;
    assert_eq!(body["alerts"][0]["outcome"], "accepted", "{body}");
    let incident = body["alerts"][0]["incident"].as_str().unwrap().to_owned();
    let (_, opened) = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(opened["labels"]["service"], "checkout", "{opened}");
    app.stop().await;
}

#[tokio::test]
async fn ending_a_maintenance_early_lets_incidents_open_at_once() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let push = json!([{"labels": {"alertname": "Down", "service": "checkout"}}]);
    let (_, made) = app
        .post(
            "/api/v1/maintenances",
            Some(plan(json!(["checkout"]), 0, 60)),
        )
        .await;
    assert_eq!(made["state"], "active", "{made}");
    let (_, body) = app.post("/api/v2/alerts", Some(push.clone())).await;
    assert_eq!(body["alerts"][0]["outcome"], "suppressed", "{body}");
    app.clock.advance(Duration::from_secs(60));
    let (status, _) = delete(&app, "/api/v1/maintenances/MNT-1").await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = app.post("/api/v2/alerts", Some(push)).await;
    assert_eq!(body["alerts"][0]["outcome"], "accepted", "{body}");
    assert_eq!(app.clock.now(), start_time() + chrono::Duration::minutes(1));
    app.stop().await;
}

/// A listed service fed by other labels than `service` (`status_page.services[].match`): a
/// maintenance of it covers the alerts those labels carry.
#[tokio::test]
async fn a_maintenance_covers_what_the_status_page_service_matches() {
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0
status_page:
  services:
    - {name: payments, match: {team: payments}}
",
        &[],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let (status, _) = app
        .post(
            "/api/v1/maintenances",
            Some(plan(json!(["payments"]), 0, 60)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A service the page does not list is refused, by name.
    let (status, body) = app
        .post(
            "/api/v1/maintenances",
            Some(plan(json!(["payments", "paymnets"]), 0, 60)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`paymnets`"),
        "{body}"
    );
    let push = |team: &str| json!([{"labels": {"alertname": "Down", "team": team}}]);
    let (_, body) = app.post("/api/v2/alerts", Some(push("payments"))).await;
    assert_eq!(body["alerts"][0]["outcome"], "suppressed", "{body}");
    let (_, body) = app.post("/api/v2/alerts", Some(push("search"))).await;
    assert_eq!(body["alerts"][0]["outcome"], "accepted", "{body}");
    app.stop().await;
}
