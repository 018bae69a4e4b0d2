//! The HTTP edge under abuse: field limits and control characters on every write route, a
//! body declared too large refused before it is read, JSON errors for bad paths, statuses
//! and codes that agree, and the bearer scheme in any case.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

async fn open_app() -> (ConfigDir, TestApp) {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    (dir, app)
}

async fn send(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ticket() -> Value {
    json!({
        "title": "VPN drops",
        "description": "Since 09:00\n\tfor the whole office",
        "reporter": {"name": "Ana", "contact": "ana@example.com"},
        "service": "vpn",
        "labels": {"site": "jakarta"},
    })
}

/// `base` with `pointer` (`/a/b`) set to `value`.
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut body = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    body.pointer_mut(parent).unwrap()[key] = value;
    body
}

fn silence() -> Value {
    json!({
        "matchers": {"service": "vpn"},
        "ends_at": "2026-03-02T10:00:00Z",
        "comment": "planned work",
    })
}

#[track_caller]
fn refused(got: &(StatusCode, Value), message: &str) {
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    assert_eq!(got.1["error"]["code"], "bad_request", "{}", got.1);
    assert_eq!(got.1["error"]["message"], message, "{}", got.1);
}

/// The state every refusal must leave alone: the incidents with their timelines, and the
/// silences.
async fn state(app: &TestApp) -> Value {
    let (_, list) = app.get("/api/v1/incidents").await;
    let (_, one) = app.get("/api/v1/incidents/INC-1").await;
    let (_, silences) = app.get("/api/v1/silences").await;
    json!([list, one["timeline"], silences])
}

#[tokio::test]
async fn every_written_field_has_a_size_limit() {
    let (_dir, app) = open_app().await;
    let (status, opened) = app.post("/api/v1/incidents", Some(ticket())).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let before = state(&app).await;

    let huge = "x".repeat(900 * 1024);
    let labels: serde_json::Map<String, Value> =
        (0..30_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    let base = ticket();
    let cases: Vec<(&str, &str, Value, String)> = vec![
        // The attack as reported: a 900 KiB title, 30,000 labels.
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/title", json!(huge)),
            "`title` is 921600 characters long; at most 256".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/labels", Value::Object(labels)),
            "`labels` has 30000 entries; at most 64".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/description", json!("d".repeat(65_537))),
            "`description` is 65537 characters long; at most 65536".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/reporter/name", json!("n".repeat(201))),
            "`reporter.name` is 201 characters long; at most 200".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/reporter/contact", json!("c".repeat(257))),
            "`reporter.contact` is 257 characters long; at most 256".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/service", json!("s".repeat(201))),
            "`service` is 201 characters long; at most 200".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/category", json!("c".repeat(201))),
            "`category` is 201 characters long; at most 200".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/labels", json!({"k".repeat(129): "v"})),
            "a name in `labels` is 129 characters long; at most 128".into(),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/labels", json!({"team": "v".repeat(1025)})),
            "`labels.team` is 1025 characters long; at most 1024".into(),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"title": "t".repeat(257), "reason": "typo"}),
            "`title` is 257 characters long; at most 256".into(),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"service": "s".repeat(201), "reason": "moved"}),
            "`service` is 201 characters long; at most 200".into(),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"category": "c".repeat(201), "reason": "r"}),
            "`category` is 201 characters long; at most 200".into(),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"title": "ok", "reason": "r".repeat(1025)}),
            "`reason` is 1025 characters long; at most 1024".into(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/escalate",
            json!({"reason": "r".repeat(1025)}),
            "`reason` is 1025 characters long; at most 1024".into(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/notes",
            json!({"text": "t".repeat(16_385)}),
            "`text` is 16385 characters long; at most 16384".into(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/hold",
            json!({"reason": "r".repeat(1025)}),
            "`reason` is 1025 characters long; at most 1024".into(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            json!({"resolution": "r".repeat(16_385)}),
            "`resolution` is 16385 characters long; at most 16384".into(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/reopen",
            json!({"reason": "r".repeat(1025)}),
            "`reason` is 1025 characters long; at most 1024".into(),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(&silence(), "/comment", json!("c".repeat(4097))),
            "`comment` is 4097 characters long; at most 4096".into(),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(
                &silence(),
                "/matchers",
                Value::Object((0..65).map(|i| (format!("m{i}"), json!("v"))).collect()),
            ),
            "`matchers` has 65 entries; at most 64".into(),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(&silence(), "/matchers", json!({"m".repeat(129): "v"})),
            "a name in `matchers` is 129 characters long; at most 128".into(),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(
                &silence(),
                "/matchers",
                json!({"service": "v".repeat(1025)}),
            ),
            "`matchers.service` is 1025 characters long; at most 1024".into(),
        ),
    ];
    for (method, path, body, message) in cases {
        let got = send(&app, method, path, Some(body)).await;
        refused(&got, &message);
    }
    assert_eq!(
        state(&app).await,
        before,
        "a refused request changed something"
    );

    // At the limits, everything is accepted.
    let full: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("{i:0>128}"), json!("v".repeat(1024))))
        .collect();
    let at_limits = json!({
        "title": "t".repeat(256),
        "description": "d".repeat(65_536),
        "reporter": {"name": "n".repeat(200), "contact": "c".repeat(256)},
        "service": "s".repeat(200),
        "labels": full,
    });
    let (status, body) = app.post("/api/v1/incidents", Some(at_limits)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn control_characters_are_refused() {
    let (_dir, app) = open_app().await;
    let (status, opened) = app.post("/api/v1/incidents", Some(ticket())).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let before = state(&app).await;
    let one_line = "it must be one line of text";
    let lines = "only line feeds and tabs are allowed";
    let base = ticket();
    let cases: Vec<(&str, &str, Value, String)> = vec![
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/title", json!("web\u{1b}[2J down")),
            format!("`title` contains the control character U+001B; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/title", json!("web\r\nFAKE: line")),
            format!("`title` contains the control character U+000D; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/description", json!("a\u{0}b")),
            format!("`description` contains the control character U+0000; {lines}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/reporter/name", json!("Ana\nBudi")),
            format!("`reporter.name` contains the control character U+000A; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/reporter/contact", json!("a\u{7}")),
            format!("`reporter.contact` contains the control character U+0007; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/service", json!("vpn\t")),
            format!("`service` contains the control character U+0009; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/labels", json!({"a\nb": "v"})),
            format!("a name in `labels` contains the control character U+000A; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents",
            with(&base, "/labels", json!({"site": "a\u{1b}b"})),
            format!("`labels.site` contains the control character U+001B; {one_line}"),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"title": "a\nb", "reason": "typo"}),
            format!("`title` contains the control character U+000A; {one_line}"),
        ),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"title": "ab", "reason": "ty\u{1b}po"}),
            format!("`reason` contains the control character U+001B; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/escalate",
            json!({"reason": "a\nb"}),
            format!("`reason` contains the control character U+000A; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/notes",
            json!({"text": "a\u{1b}]0;x\u{7}"}),
            format!("`text` contains the control character U+001B; {lines}"),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/hold",
            json!({"reason": "a\rb"}),
            format!("`reason` contains the control character U+000D; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            json!({"resolution": "done\u{8}\u{8}"}),
            format!("`resolution` contains the control character U+0008; {lines}"),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/reopen",
            json!({"reason": "\u{0}"}),
            format!("`reason` contains the control character U+0000; {one_line}"),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(&silence(), "/comment", json!("a\u{1b}b")),
            format!("`comment` contains the control character U+001B; {lines}"),
        ),
        (
            "POST",
            "/api/v1/silences",
            with(&silence(), "/matchers", json!({"service": "a\nb"})),
            format!("`matchers.service` contains the control character U+000A; {one_line}"),
        ),
    ];
    for (method, path, body, message) in cases {
        let got = send(&app, method, path, Some(body)).await;
        refused(&got, &message);
    }
    assert_eq!(
        state(&app).await,
        before,
        "a refused request changed something"
    );
    // Multi-line text keeps its line feeds and tabs.
    let (status, noted) = app
        .post(
            "/api/v1/incidents/INC-1/notes",
            Some(json!({"text": "first\n\tsecond"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{noted}");
}

/// Reads an HTTP/1.1 response head and as much body as `Content-Length` says.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        assert!(n > 0, "connection closed before a whole response: {text:?}");
    }
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_is_read() {
    let (_dir, app) = open_app().await;
    for path in [
        "/api/v1/incidents",
        "/api/v1/silences",
        "/api/v1/incidents/INC-1/notes",
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 10000000000\r\n\r\n{{\"title\":",
            app.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // The write side stays open: the server must not wait for the rest.
        let response = tokio::time::timeout(Duration::from_secs(3), read_response(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within 3 s"));
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 413 "), "{path}: {head}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        assert_eq!(
            body["error"]["message"],
            "the body is over the limit of 1048576 bytes"
        );
    }
    // A body under the cap that says so is read as usual.
    let (status, _) = app.post("/api/v1/incidents", Some(ticket())).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_bad_path_segment_answers_the_json_error() {
    let (_dir, app) = open_app().await;
    for (method, path) in [
        ("GET", "/api/v1/incidents/%ff%fe"),
        ("PATCH", "/api/v1/incidents/%ff%fe"),
        ("POST", "/api/v1/incidents/%ff%fe/acknowledge"),
        ("DELETE", "/api/v1/silences/%ff"),
    ] {
        let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method_, app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path}"
        );
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/json", "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "bad_request",
            "{method} {path}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("UTF-8"),
            "{body}"
        );
    }
    // Query strings too.
    let (status, body) = app.get("/api/v1/incidents?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let (status, body) = app.get("/api/v1/sla?window=%ff").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}

/// The one code of each status.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        other => panic!("unexpected status {other}"),
    }
}

#[tokio::test]
async fn statuses_and_codes_agree() {
    let (_dir, app) = open_app().await;
    let (status, _) = app.post("/api/v1/incidents", Some(ticket())).await;
    assert_eq!(status, StatusCode::CREATED);
    let raw = |method: &str, path: &str, content_type: Option<&str>, body: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = app
            .client
            .request(method, app.url(path))
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
    };
    const JSON: Option<&str> = Some("application/json");
    let cases = [
        // Bodies: not JSON, wrong shape, wrong type, unknown field, a bad time, missing fields.
        (raw("POST", "/api/v1/silences", JSON, "{not json"), 400),
        (
            raw(
                "POST",
                "/api/v1/silences",
                JSON,
                r#"{"matchers": {}, "ends_at": "tomorrow", "comment": "x"}"#,
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/silences",
                JSON,
                r#"{"matchers": [], "ends_at": "2026-03-02T10:00:00Z", "comment": "x"}"#,
            ),
            400,
        ),
        (
            raw("POST", "/api/v1/silences", JSON, r#"{"comment": "x"}"#),
            400,
        ),
        (raw("POST", "/api/v1/silences", None, "{}"), 415),
        (
            raw("POST", "/api/v1/incidents/INC-1/resolve", JSON, "{}"),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/incidents/INC-1/resolve",
                JSON,
                r#"{"resolution": 3}"#,
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/incidents/INC-1/resolve",
                None,
                r#"{"resolution": "x"}"#,
            ),
            415,
        ),
        (
            raw("POST", "/api/v1/incidents", JSON, r#"{"title": "x"}"#),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/incidents",
                JSON,
                r#"{"title": "x", "reporter": {"name": "a"}, "extra": 1}"#,
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/incidents/INC-1/escalate",
                JSON,
                r#"{"reason": "x", "tier": "L9"}"#,
            ),
            400,
        ),
        (
            raw(
                "PATCH",
                "/api/v1/incidents/INC-1",
                JSON,
                r#"{"reason": "x"}"#,
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/api/v1/incidents/INC-1/notes",
                JSON,
                &format!("{{\"text\": \"{}\"}}", "x".repeat(1024 * 1024)),
            ),
            413,
        ),
        (raw("GET", "/api/v1/incidents/%ff", None, ""), 400),
        (raw("GET", "/api/v1/incidents?nope=1", None, ""), 400),
        (raw("GET", "/api/v1/sla?window=0s", None, ""), 400),
        (raw("GET", "/api/v1/incidents/INC-9", None, ""), 404),
        (raw("GET", "/nowhere", None, ""), 404),
        (raw("PUT", "/api/v1/incidents", JSON, "{}"), 405),
        (raw("POST", "/api/v1/incidents/INC-1/close", None, ""), 409),
    ];
    for (request, expected) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let response = app.client.execute(request).await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status.as_u16(), expected, "{what}: {body}");
        assert_eq!(body["error"]["code"], code_of(status), "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
",
        &[],
    );
    let token = "viewer-token-1234567890";
    let app = TestApp::spawn(
        &dir,
        HashMap::from([("IT_VIEWER".to_owned(), token.to_owned())]),
    )
    .await;
    let get = async |authorization: &str| {
        app.client
            .get(app.url("/api/v1/incidents"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
            .status()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(
            get(&format!("{scheme} {token}")).await,
            StatusCode::OK,
            "{scheme}"
        );
    }
    for refused in [
        format!("Basic {token}"),
        format!("Bearer{token}"),
        "bearer wrong".to_owned(),
    ] {
        assert_eq!(get(&refused).await, StatusCode::UNAUTHORIZED, "{refused}");
    }
}
