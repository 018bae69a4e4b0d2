//! `GET /api/v1/openapi.json` against the router it describes: every route the router
//! registers is described or named in `LEFT_OUT`, every described (method, path) reaches a
//! handler, and every method the description leaves out of a described path is refused as
//! the router refuses an unknown method. Plus the shapes: errors reference the one `Error`
//! schema, and what the API serves has the fields its schemas say.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::routes_in_the_router;
use crate::support::*;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn description(app: &TestApp) -> Value {
    let (status, description) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{description}");
    description
}

/// The description's operations: path → methods (lowercase).
fn operations(description: &Value) -> BTreeMap<String, BTreeSet<String>> {
    description["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (*m).to_owned())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a template: each `{parameter}` some value (no such resource).
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        out.push_str("nothing-here");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_description_is_the_router() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, Default::default()).await;
    let description = description(&app).await;
    assert_eq!(description["openapi"], "3.1.0");
    let described = operations(&description);

    // Every route of the router is described or left out on purpose, and nothing else is.
    let left_out: BTreeSet<String> = incidentd::api::openapi::LEFT_OUT
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    let routed: BTreeSet<String> = routes_in_the_router().into_iter().collect();
    let described_paths: BTreeSet<String> = described.keys().cloned().collect();
    assert_eq!(
        described_paths.intersection(&left_out).count(),
        0,
        "a route is both described and left out"
    );
    let covered: BTreeSet<String> = described_paths.union(&left_out).cloned().collect();
    assert_eq!(
        covered.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "described or left out, but not in the router"
    );
    assert_eq!(
        routed.difference(&covered).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the router, but neither described nor in LEFT_OUT"
    );

    // Method by method: a described operation reaches its handler (anything but the
    // router's own "no such route" and "method not allowed"), and a method the
    // description does not give a described path is one the router does not serve.
    let client = reqwest::Client::new();
    for (path, methods) in &described {
        for method in METHODS {
            let url = app.url(&concrete(path));
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client.request(verb, &url).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let fallback = status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route");
            if methods.contains(method) {
                assert!(
                    !fallback,
                    "{method} {path} is described, not routed: {status} {body}"
                );
            } else {
                assert_eq!(
                    (status, &body["error"]["code"]),
                    (StatusCode::METHOD_NOT_ALLOWED, &json!("method_not_allowed")),
                    "{method} {path} is routed but not described"
                );
            }
        }
    }
    app.stop().await;
}

/// Resolves a `$ref` to `#/components/...`.
fn resolve<'a>(description: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            description.pointer(pointer).expect(reference)
        }
        None => node,
    }
}

#[tokio::test]
async fn every_error_answer_is_the_error_schema() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, Default::default()).await;
    let description = description(&app).await;
    let error = &description["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]), "{error}");
    let detail = resolve(&description, &error["properties"]["error"]);
    assert_eq!(detail["required"], json!(["code", "message"]), "{detail}");

    // The answers in another shape on purpose: PagerDuty's for its clients, and
    // Prometheus-style plain text for readiness.
    let exceptions = [
        ("/api/v1/events", "post", "400"),
        ("/api/v1/events", "post", "429"),
        ("/v2/enqueue", "post", "400"),
        ("/v2/enqueue", "post", "429"),
        ("/-/ready", "get", "503"),
    ];
    let mut errors = 0;
    for (path, item) in description["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for (status, answer) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                if exceptions.contains(&(path.as_str(), method, status.as_str())) {
                    continue;
                }
                let answer = resolve(&description, answer);
                let schema = &answer["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{method} {path} {status}: {answer}"
                );
                errors += 1;
            }
        }
    }
    // 401/403 on every route but the open ones, and more: not a handful.
    assert!(errors > 200, "only {errors} error answers described");
    app.stop().await;
}

/// The JSON object's keys against its schema's: every required one there, none unknown.
#[track_caller]
fn fits(description: &Value, schema_name: &str, value: &Value) {
    let schema = &description["components"]["schemas"][schema_name];
    let properties = schema["properties"].as_object().expect(schema_name);
    let keys: BTreeSet<&String> = value.as_object().expect("an object").keys().collect();
    for required in schema["required"].as_array().into_iter().flatten() {
        assert!(
            keys.contains(&required.as_str().unwrap().to_owned()),
            "{schema_name}: `{required}` missing in {value}"
        );
    }
    for key in keys {
        assert!(
            properties.contains_key(key),
            "{schema_name}: `{key}` is served but not described"
        );
    }
}

#[tokio::test]
async fn what_is_served_has_the_described_fields() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, Default::default()).await;
    let description = description(&app).await;
    let (status, ticket) = app
        .post(
            "/api/v1/incidents",
            Some(json!({
                "title": "Printer on fire",
                "description": "third floor",
                "reporter": {"name": "Ana", "contact": "ana@example.com"},
                "labels": {"floor": "3"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let (status, incident) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    fits(&description, "Incident", &incident);
    assert!(incident["timeline"].is_array() && incident["similar"].is_array());
    fits(&description, "TimelineEntry", &incident["timeline"][0]);
    fits(&description, "Sla", &incident["sla"]);
    let (_, page) = app.get("/api/v1/incidents").await;
    fits(&description, "IncidentPage", &page);
    fits(&description, "Incident", &page["incidents"][0]);
    let (_, status_page) = app.get("/status.json").await;
    fits(&description, "StatusPage", &status_page);
    let (_, error) = app.get("/api/v1/incidents/INC-7").await;
    fits(&description, "Error", &error);
    fits(&description, "ErrorDetail", &error["error"]);
    app.stop().await;
}

#[tokio::test]
async fn servers_follow_external_url() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, Default::default()).await;
    let description = description(&app).await;
    assert!(
        description.get("servers").is_none(),
        "relative without external_url"
    );
    app.stop().await;

    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nexternal_url: https://desk.example/incidents\n",
        &[],
    );
    let app = TestApp::spawn(&dir, Default::default()).await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let description: Value = response.json().await.unwrap();
    assert_eq!(
        description["servers"],
        json!([{"url": "https://desk.example/incidents"}])
    );
    app.stop().await;
}

// Regressions that `tools/schemathesis.sh` found.

/// `GET /api/v1/sla?window=100000000d` reached back before chrono's first date: the
/// subtraction panicked and the answer was a 500; a window that starts before 1970 (where
/// `from` was a negative year, not an RFC 3339 time) is refused like any invalid one.
#[tokio::test]
async fn an_sla_window_reaching_before_1970_is_a_bad_request() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, Default::default()).await;
    for window in ["100000000d", "06266223y294m", "1000000d", "57y"] {
        let (status, body) = app.get(&format!("/api/v1/sla?window={window}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{window}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("invalid window `{window}`")),
            "{body}"
        );
    }
    // The manual clock is in 2026: 56 years reach back to 1970.
    let (status, body) = app.get("/api/v1/sla?window=56y").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["from"].as_str().unwrap().starts_with("19"), "{body}");
    app.stop().await;
}
