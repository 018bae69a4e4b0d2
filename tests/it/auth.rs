//! Bearer tokens and roles, and the open mode that is allowed only on loopback.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const CONFIG: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
    - {name: oncall-bot, token_env: IT_RESPONDER, role: responder}
    - {name: alertmanager, token_env: IT_INGEST, role: ingest}
";

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_VIEWER".to_owned(), "viewer-token-1234567890".to_owned()),
        (
            "IT_RESPONDER".to_owned(),
            "responder-token-1234567890".to_owned(),
        ),
        ("IT_INGEST".to_owned(), "ingest-token-1234567890".to_owned()),
    ])
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app.client.post(app.url(path)),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_checks_the_token_and_its_role() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let viewer = Some("viewer-token-1234567890");
    let responder = Some("responder-token-1234567890");
    let ingest = Some("ingest-token-1234567890");
    let wrong = Some("nope");
    // (method, path, token, expected status). INC-1 does not exist: a caller who may act on
    // it gets 404, one who may not gets 401/403 first.
    let cases = [
        ("GET", "/api/v1/incidents", None, 401),
        ("GET", "/api/v1/incidents", wrong, 401),
        ("GET", "/api/v1/incidents", viewer, 200),
        ("GET", "/api/v1/incidents", responder, 200),
        ("GET", "/api/v1/incidents", ingest, 403),
        ("GET", "/api/v1/incidents/INC-1", None, 401),
        ("GET", "/api/v1/incidents/INC-1", viewer, 404),
        ("GET", "/api/v1/incidents/INC-1", ingest, 403),
        ("POST", "/api/v1/incidents/INC-1/acknowledge", None, 401),
        ("POST", "/api/v1/incidents/INC-1/acknowledge", viewer, 403),
        ("POST", "/api/v1/incidents/INC-1/acknowledge", ingest, 403),
        (
            "POST",
            "/api/v1/incidents/INC-1/acknowledge",
            responder,
            404,
        ),
        ("POST", "/api/v1/incidents/INC-1/resolve", viewer, 403),
        ("GET", "/api/v1/rules", None, 401),
        ("GET", "/api/v1/rules", viewer, 200),
        ("GET", "/api/v1/rules", ingest, 403),
        ("GET", "/api/v1/silences", viewer, 200),
        ("POST", "/api/v1/silences", viewer, 403),
        ("POST", "/api/v1/silences", ingest, 403),
        ("POST", "/api/v1/silences", responder, 415), // allowed; no JSON body
        ("GET", "/api/v1/probes", None, 401),
        ("GET", "/api/v1/probes", viewer, 200),
        ("GET", "/api/v1/probes", responder, 200),
        ("GET", "/api/v1/probes", ingest, 403),
        ("GET", "/metrics", None, 200),
        ("GET", "/-/healthy", None, 200),
        ("GET", "/-/ready", None, 200),
    ];
    for (method, path, token, want) in cases {
        let (status, body) = call(&app, method, path, token).await;
        assert_eq!(
            status.as_u16(),
            want,
            "{method} {path} with {token:?}: {body}"
        );
        if want == 401 || want == 403 {
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    }
    let (_, body) = call(&app, "POST", "/api/v1/incidents/INC-1/acknowledge", viewer).await;
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["message"], "token `grafana` may not do this");
    app.stop().await;
}

#[tokio::test]
async fn open_mode_is_refused_off_loopback() {
    let dir = ConfigDir::new("listen: 0.0.0.0:0\n", &[]);
    let config = incidentd::config::load(&dir.config_path(), &|_| None).unwrap();
    let clock = incidentd::clock::ManualClock::new(start_time());
    let error = incidentd::app::App::build(config, Arc::new(clock))
        .await
        .err()
        .expect("no tokens on 0.0.0.0 is refused");
    assert_eq!(
        error.to_string(),
        "refusing to listen on 0.0.0.0:0 without auth tokens: configure `auth.tokens`, or listen on a loopback address"
    );
}
