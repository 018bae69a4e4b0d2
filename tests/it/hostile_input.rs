//! Hostile input on every write route, as a table: bodies that are not JSON, not UTF-8,
//! the wrong type, nested past any sane depth, over the size limit, with unknown fields or
//! huge label strings; ids that do not exist or try to climb out of their path; query
//! strings out of range. Each case gets its 4xx in the contract's JSON shape with a message,
//! and none of them changes anything.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// One hostile request and the status it must get.
struct Case {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    expect: u16,
}

fn case(method: &'static str, path: &str, body: Option<Vec<u8>>, expect: u16) -> Case {
    Case {
        method,
        path: path.to_owned(),
        body,
        expect,
    }
}

/// Every route that takes a JSON body, with a valid body for it (valid for its shape: on the
/// fixture's state it may still be refused for what it asks, which the cases never rely on).
fn write_routes() -> Vec<(&'static str, &'static str, Value)> {
    let alert = json!({"labels": {"alertname": "Down", "service": "vpn"}});
    vec![
        (
            "POST",
            "/api/v1/incidents",
            json!({"title": "x", "reporter": {"name": "a", "contact": "a@example.com"}}),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"title": "y", "reason": "r"}),
        ),
        ("POST", "/api/v1/incidents/INC-1/acknowledge", json!({})),
        (
            "POST",
            "/api/v1/incidents/INC-1/notes",
            json!({"text": "t"}),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/hold",
            json!({"reason": "r"}),
        ),
        ("POST", "/api/v1/incidents/INC-1/resume", json!({})),
        (
            "POST",
            "/api/v1/incidents/INC-1/escalate",
            json!({"reason": "r"}),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            json!({"resolution": "r"}),
        ),
        ("POST", "/api/v1/incidents/INC-1/close", json!({})),
        (
            "POST",
            "/api/v1/incidents/INC-1/reopen",
            json!({"reason": "r"}),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/calls",
            json!({"url": "https://meet.example.com/x", "at": "2026-03-02T12:00:00Z"}),
        ),
        (
            "POST",
            "/api/v1/silences",
            json!({"matchers": {"service": "vpn"}, "ends_at": "2026-03-02T10:00:00Z", "comment": "c"}),
        ),
        (
            "POST",
            "/api/v1/maintenances",
            json!({"title": "m", "services": ["vpn"], "starts_at": "2026-03-02T10:00:00Z", "ends_at": "2026-03-02T11:00:00Z"}),
        ),
        (
            "POST",
            "/api/v1/alertmanager",
            json!({"version": "4", "status": "firing", "groupKey": "g", "alerts": [alert]}),
        ),
        ("POST", "/api/v2/alerts", json!([alert])),
        (
            "POST",
            "/api/v1/events",
            json!({"routing_key": "r", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "error"}}),
        ),
        (
            "POST",
            "/v2/enqueue",
            json!({"routing_key": "r", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "error"}}),
        ),
        (
            "POST",
            "/api/v1/webhooks/audit/replay",
            json!({"dead_letters": true}),
        ),
    ]
}

/// Routes whose payloads come from other tools, which tolerate fields they do not know
/// (Alertmanager, Prometheus and PagerDuty senders add fields across versions).
fn tolerant(path: &str) -> bool {
    [
        "/api/v1/alertmanager",
        "/api/v2/alerts",
        "/api/v1/events",
        "/v2/enqueue",
    ]
    .contains(&path)
}

fn bytes(text: &str) -> Option<Vec<u8>> {
    Some(text.as_bytes().to_vec())
}

fn cases() -> Vec<Case> {
    let deep_arrays = "[".repeat(100_000) + &"]".repeat(100_000);
    let deep_objects = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);
    // Over 1 MiB of real bytes sent (not only declared): valid JSON up to its size.
    let huge = format!("{{\"text\": \"{}\"}}", "x".repeat(1024 * 1024 + 16));
    let mut cases = Vec::new();
    for (method, path, valid) in write_routes() {
        cases.push(case(method, path, bytes("{\"title\":"), 400));
        cases.push(case(method, path, bytes("hello"), 400));
        cases.push(case(method, path, bytes("null"), 400));
        cases.push(case(method, path, bytes("42"), 400));
        cases.push(case(method, path, bytes("\"a string\""), 400));
        let wrong_container = if valid.is_array() { "{}" } else { "[]" };
        cases.push(case(method, path, bytes(wrong_container), 400));
        // Not UTF-8 inside a string, and a lone surrogate escape.
        cases.push(case(
            method,
            path,
            Some(b"{\"title\": \"\xff\xfe\"}".to_vec()),
            400,
        ));
        cases.push(case(method, path, bytes(r#"{"title": "\ud800"}"#), 400));
        cases.push(case(method, path, bytes(&deep_arrays), 400));
        cases.push(case(method, path, bytes(&deep_objects), 400));
        cases.push(case(method, path, bytes(&huge), 413));
        // Every field of the valid body given the wrong type.
        if let Some(object) = valid.as_object() {
            for key in object.keys() {
                let mut body = valid.clone();
                body[key] = json!({"nested": [1, 2, 3]});
                cases.push(case(method, path, Some(body.to_string().into_bytes()), 400));
            }
            if !tolerant(path) {
                let mut body = valid.clone();
                body["surprise"] = json!(1);
                cases.push(case(method, path, Some(body.to_string().into_bytes()), 400));
            }
        }
    }

    // Huge strings and too many labels, where labels are written.
    let long = "v".repeat(64 * 1024);
    let many: serde_json::Map<String, Value> =
        (0..1_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    let ticket = |labels: Value| {
        json!({"title": "x", "reporter": {"name": "a"}, "labels": labels}).to_string()
    };
    let alerts = |labels: Value| json!([{ "labels": labels }]).to_string();
    let webhook = |labels: Value| {
        json!({"version": "4", "status": "firing", "groupKey": "g", "alerts": [{"status": "firing", "labels": labels}]})
            .to_string()
    };
    for labels in [
        json!({"service": long}),
        json!({ long.clone(): "v" }),
        Value::Object(many.clone()),
        json!({"": "v"}),
        json!({"service": 7}),
    ] {
        cases.push(case(
            "POST",
            "/api/v1/incidents",
            bytes(&ticket(labels.clone())),
            400,
        ));
        cases.push(case(
            "POST",
            "/api/v2/alerts",
            bytes(&alerts(labels.clone())),
            400,
        ));
        cases.push(case(
            "POST",
            "/api/v1/alertmanager",
            bytes(&webhook(labels)),
            400,
        ));
    }
    let event = |dedup_key: &str, summary: &str| {
        json!({"routing_key": "r", "event_action": "trigger", "dedup_key": dedup_key,
               "payload": {"summary": summary, "source": "h", "severity": "error"}})
        .to_string()
    };
    cases.push(case(
        "POST",
        "/api/v1/events",
        bytes(&event(&"k".repeat(256), "s")),
        400,
    ));
    cases.push(case(
        "POST",
        "/api/v1/events",
        bytes(&event("k", &long)),
        400,
    ));
    cases.push(case(
        "POST",
        "/api/v1/silences",
        bytes(&json!({"matchers": {"service": long}, "ends_at": "2026-03-02T10:00:00Z", "comment": "c"}).to_string()),
        400,
    ));

    // Ids that do not exist, do not parse, or try to climb out of their path.
    for id in [
        "INC-0",
        "INC-2",
        "INC-99999999999999999999999",
        "INC--1",
        "inc-1",
        "INC-1%00",
        "INC-1%2F..",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%20",
    ] {
        let one = format!("/api/v1/incidents/{id}");
        let expect = 404;
        cases.push(case("GET", &one, None, expect));
        cases.push(case(
            "PATCH",
            &one,
            bytes(r#"{"title": "y", "reason": "r"}"#),
            expect,
        ));
        cases.push(case(
            "POST",
            &format!("{one}/notes"),
            bytes(r#"{"text": "t"}"#),
            expect,
        ));
        cases.push(case("POST", &format!("{one}/acknowledge"), None, expect));
        cases.push(case(
            "DELETE",
            &format!("{one}/reporter-link"),
            None,
            expect,
        ));
        cases.push(case("GET", &format!("{one}/report"), None, expect));
    }
    let long_id = format!("/api/v1/incidents/INC-{}", "9".repeat(10_000));
    cases.push(case("GET", &long_id, None, 404));
    for path in [
        "/api/v1/silences/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/silences/not-a-silence",
        "/api/v1/maintenances/..%2F..",
        "/api/v1/maintenances/999999",
    ] {
        cases.push(case("DELETE", path, None, 404));
    }
    cases.push(case(
        "GET",
        "/api/v1/webhooks/..%2F..%2Fetc/deliveries",
        None,
        404,
    ));
    cases.push(case(
        "POST",
        "/api/v1/webhooks/nobody/replay",
        bytes(r#"{"dead_letters": true}"#),
        404,
    ));
    cases.push(case("POST", "/api/v1/webhooks/nobody/enable", None, 404));
    for path in [
        "/api/v1/../../etc/passwd",
        "/api/v1/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/incidents/INC-1/../../../etc/passwd",
        "/api/v1/nothing",
    ] {
        cases.push(case("GET", path, None, 404));
    }

    // Query strings out of range, of the wrong type, or unknown.
    for query in [
        "limit=-1",
        "limit=99999999999999999999",
        "limit=0",
        "cursor=%00%ff",
        "cursor=garbage",
        "state=nonsense",
        "priority=P9",
        "tier=L0",
        "kind=%ff",
        "state=open&state=open&state=open",
        "unknown=1",
    ] {
        cases.push(case(
            "GET",
            &format!("/api/v1/incidents?{query}"),
            None,
            400,
        ));
    }
    for query in ["window=-1d", "window=99999999999d", "window=1x", "window="] {
        cases.push(case("GET", &format!("/api/v1/sla?{query}"), None, 400));
    }
    cases.push(case(
        "GET",
        "/api/v1/webhooks/audit/deliveries?since=yesterday",
        None,
        400,
    ));
    cases.push(case(
        "GET",
        "/api/v1/webhooks/audit/deliveries?outcome=%ff",
        None,
        400,
    ));
    cases
}

/// The state no refusal may change: incidents with their timelines, silences, maintenances
/// and the webhook consumers' queues. (The consumer takes only P1 events, which the fixture
/// never makes: its queue and delivery log change only if a refused request queued one.)
async fn state(app: &TestApp) -> Value {
    let mut all = Vec::new();
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/INC-1",
        "/api/v1/silences",
        "/api/v1/maintenances",
        "/api/v1/webhooks",
        "/api/v1/webhooks/audit/deliveries",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        all.push(body);
    }
    Value::Array(all)
}

#[tokio::test]
async fn hostile_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = ConfigDir::new(
        &format!(
            "listen: 127.0.0.1:0\nwebhooks:\n  - {{name: audit, url: 'http://{}/', secret_env: {SECRET_ENV}, min_priority: P1}}\n",
            refused_addr()
        ),
        &[],
    );
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/incidents",
            Some(json!({"title": "VPN drops", "reporter": {"name": "Ana"}, "labels": {"site": "jakarta"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = state(&app).await;

    let cases = cases();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = app.client.request(method, app.url(&case.path));
        if let Some(body) = &case.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        *by_status.entry(status).or_default() += 1;
        let what = format!(
            "{} {} ({} bytes)",
            case.method,
            shorten(&case.path),
            case.body.as_ref().map_or(0, Vec::len)
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        if status != case.expect {
            wrong.push(format!(
                "{what}: {status} (want {}): {}",
                case.expect,
                shorten(&text)
            ));
        } else if content_type != "application/json"
            || body["error"]["code"].as_str().is_none_or(str::is_empty)
            || message.is_empty()
        {
            wrong.push(format!(
                "{what}: {status} not in the error shape: {}",
                shorten(&text)
            ));
        }
    }
    let mut counts: Vec<_> = by_status.into_iter().collect();
    counts.sort();
    eprintln!("HOSTILE INPUT: {} cases, answered {counts:?}", cases.len());
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    assert_eq!(
        state(&app).await,
        before,
        "a refused request changed the state"
    );
    // And the server still works.
    let (status, body) = app
        .post(
            "/api/v1/incidents/INC-1/notes",
            Some(json!({"text": "still here"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

fn shorten(text: &str) -> String {
    if text.len() <= 160 {
        return text.to_owned();
    }
    let cut = (0..=160).rev().find(|&i| text.is_char_boundary(i)).unwrap();
    format!("{}… ({} bytes)", &text[..cut], text.len())
}
