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
    - {name: root, token_env: IT_ADMIN, role: admin}
";

const VIEWER: &str = "viewer-token-1234567890";
const RESPONDER: &str = "responder-token-1234567890";
const INGEST: &str = "ingest-token-1234567890";
const ADMIN: &str = "admin-token-1234567890";

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
        ("IT_INGEST".to_owned(), INGEST.to_owned()),
        ("IT_ADMIN".to_owned(), ADMIN.to_owned()),
    ])
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    // Redirects are answers here (the console's pages redirect to its sign-in page).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Who a route lets in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    /// Anyone, with or without a token (Prometheus-style endpoints).
    Open,
    /// viewer, responder, admin.
    Read,
    /// ingest, responder, admin (the alert routes).
    Ingest,
    /// responder, admin.
    Respond,
    /// admin.
    Admin,
    /// A console session, which no bearer token opens: every caller here has none, so
    /// pages answer a redirect to the sign-in page (303) and forms and the event stream
    /// 401, whatever the token (the roles with a session: `console.rs`).
    Session,
}

/// Every route of the router: (method, path, who may, what a caller who may gets). No
/// body is sent and INC-1, silence 1 and MNT-1 do not exist, so a caller who passed auth gets
/// 404 (no such incident) or 400 (a required body is missing) — anything but 401/403.
/// What `GET /api/v1/cluster` answers a caller who may read: [`cluster_status`].
const CLUSTER: u16 = 0;

fn cluster_status() -> u16 {
    if crate::support::on_postgres() {
        200
    } else {
        404
    }
}

const ROUTES: &[(&str, &str, Access, u16)] = &[
    ("GET", "/metrics", Access::Open, 200),
    ("GET", "/", Access::Open, 200),
    ("GET", "/status.json", Access::Open, 200),
    ("GET", "/static/{file}", Access::Open, 404),
    ("GET", "/incidents/INC-1", Access::Open, 404),
    ("GET", "/history", Access::Open, 200),
    ("GET", "/feed.atom", Access::Open, 200),
    ("GET", "/feed/{file}", Access::Open, 404),
    ("GET", "/badge/{service}/{file}", Access::Open, 404),
    ("GET", "/-/healthy", Access::Open, 200),
    ("GET", "/-/ready", Access::Open, 200),
    // The configuration is valid, so a reload succeeds (and changes nothing).
    ("POST", "/-/reload", Access::Admin, 200),
    ("GET", "/api/v1/incidents", Access::Read, 200),
    ("POST", "/api/v1/incidents", Access::Respond, 400),
    ("GET", "/api/v1/incidents/INC-1", Access::Read, 404),
    ("PATCH", "/api/v1/incidents/INC-1", Access::Respond, 400),
    (
        "POST",
        "/api/v1/incidents/INC-1/acknowledge",
        Access::Respond,
        404,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/resolve",
        Access::Respond,
        400,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/notes",
        Access::Respond,
        400,
    ),
    ("POST", "/api/v1/incidents/INC-1/hold", Access::Respond, 400),
    (
        "POST",
        "/api/v1/incidents/INC-1/resume",
        Access::Respond,
        404,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/escalate",
        Access::Respond,
        400,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/close",
        Access::Respond,
        404,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/reopen",
        Access::Respond,
        400,
    ),
    // A call needs its body; the link routes and the report find no INC-1.
    (
        "POST",
        "/api/v1/incidents/INC-1/calls",
        Access::Respond,
        400,
    ),
    (
        "POST",
        "/api/v1/incidents/INC-1/reporter-link",
        Access::Respond,
        404,
    ),
    (
        "DELETE",
        "/api/v1/incidents/INC-1/reporter-link",
        Access::Respond,
        404,
    ),
    ("GET", "/api/v1/incidents/INC-1/report", Access::Read, 404),
    // The reporter's page: the link is the credential; `x` is not one.
    ("GET", "/r/x", Access::Open, 404),
    ("POST", "/r/x", Access::Open, 404),
    ("GET", "/api/v1/rules", Access::Read, 200),
    ("GET", "/api/v1/sla", Access::Read, 200),
    ("GET", "/api/v1/silences", Access::Read, 200),
    ("POST", "/api/v1/silences", Access::Respond, 400),
    ("DELETE", "/api/v1/silences/1", Access::Respond, 404),
    ("GET", "/api/v1/maintenances", Access::Read, 200),
    ("POST", "/api/v1/maintenances", Access::Respond, 400),
    ("GET", "/api/v1/maintenances/MNT-1", Access::Read, 404),
    ("DELETE", "/api/v1/maintenances/MNT-1", Access::Respond, 404),
    ("GET", "/api/v1/probes", Access::Read, 200),
    ("GET", "/api/v1/openapi.json", Access::Read, 200),
    // 200 with PostgreSQL (replicas and leader); 404 with a redb file, which has no cluster.
    ("GET", "/api/v1/cluster", Access::Read, CLUSTER),
    // No consumer `hook` is configured: 404, or 400 for a replay without its body.
    ("GET", "/api/v1/webhooks", Access::Read, 200),
    ("GET", "/api/v1/webhooks/hook/deliveries", Access::Read, 404),
    ("POST", "/api/v1/webhooks/hook/replay", Access::Admin, 400),
    ("POST", "/api/v1/webhooks/hook/enable", Access::Admin, 404),
    ("POST", "/api/v1/alertmanager", Access::Ingest, 400),
    ("POST", "/api/v2/alerts", Access::Ingest, 400),
    ("POST", "/api/v1/events", Access::Ingest, 400),
    ("POST", "/v2/enqueue", Access::Ingest, 400),
    ("POST", "/subscriptions", Access::Open, 400),
    ("GET", "/subscriptions/confirm/x", Access::Open, 404),
    ("GET", "/subscriptions/unsubscribe/x", Access::Open, 404),
    ("GET", "/api/v1/subscribers", Access::Admin, 200),
    ("DELETE", "/api/v1/subscribers/1", Access::Admin, 404),
    ("GET", "/console", Access::Session, 303),
    ("GET", "/console/incidents/INC-1", Access::Session, 303),
    (
        "GET",
        "/console/incidents/INC-1/report",
        Access::Session,
        303,
    ),
    (
        "POST",
        "/console/incidents/INC-1/acknowledge",
        Access::Session,
        401,
    ),
    ("POST", "/console/bulk", Access::Session, 401),
    ("POST", "/console/sign-out", Access::Session, 401),
    ("GET", "/console/events", Access::Session, 401),
    ("GET", "/console/sign-in", Access::Open, 200),
    // No token in the form: refused, and nobody gets a session.
    ("POST", "/console/sign-in", Access::Open, 401),
    ("GET", "/console/static/{file}", Access::Open, 404),
];

/// The route paths the API's router and the status page's register (`.route("…"`), with
/// `{id}` as written.
pub(crate) fn routes_in_the_router() -> Vec<String> {
    let source = [
        include_str!("../../src/api/mod.rs"),
        include_str!("../../src/api/webhooks.rs"),
        include_str!("../../src/api/openapi.rs"),
        include_str!("../../src/web/status.rs"),
        include_str!("../../src/web/subscribe.rs"),
        include_str!("../../src/web/reporter.rs"),
        include_str!("../../src/web/console/mod.rs"),
    ]
    .concat();
    source
        .split(".route(")
        .skip(1)
        .map(|rest| {
            let rest = rest.trim_start().strip_prefix('"').unwrap();
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn the_matrix_covers_every_route_of_the_router() {
    let mut tested: Vec<String> = ROUTES
        .iter()
        .map(|(_, path, _, _)| {
            path.replace("INC-1", "{id}")
                .replace(
                    "/console/incidents/{id}/acknowledge",
                    "/console/incidents/{id}/{verb}",
                )
                .replace("/silences/1", "/silences/{id}")
                .replace("MNT-1", "{id}")
                .replace("/webhooks/hook/", "/webhooks/{consumer}/")
                .replace("/confirm/x", "/confirm/{token}")
                .replace("/unsubscribe/x", "/unsubscribe/{token}")
                .replace("/subscribers/1", "/subscribers/{id}")
                .replace("/r/x", "/r/{token}")
        })
        .collect();
    tested.sort();
    tested.dedup();
    let mut routed = routes_in_the_router();
    routed.sort();
    assert_eq!(tested, routed, "add the new route to ROUTES");
}

#[tokio::test]
async fn every_route_checks_the_token_and_its_role() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let roles = [
        ("none", None),
        ("wrong token", Some("nope")),
        ("viewer", Some(VIEWER)),
        ("ingest", Some(INGEST)),
        ("responder", Some(RESPONDER)),
        ("admin", Some(ADMIN)),
    ];
    for &(method, path, access, allowed) in ROUTES {
        for (role, token) in roles {
            let may = match (access, role) {
                (Access::Open | Access::Session, _) => true,
                (_, "none" | "wrong token") => false,
                // Every role may read, ingest included (tools that push alerts may read what they caused).
                (Access::Read, _) => true,
                (Access::Ingest, role) => role != "viewer",
                (Access::Respond, role) => role == "responder" || role == "admin",
                (Access::Admin, role) => role == "admin",
            };
            let want = match (may, role) {
                (true, _) if allowed == CLUSTER => cluster_status(),
                (true, _) => allowed,
                (false, "none" | "wrong token") => 401,
                (false, _) => 403,
            };
            let (status, body) = call(&app, method, path, token).await;
            assert_eq!(status.as_u16(), want, "{method} {path} as {role}: {body}");
            if path.starts_with("/console") {
                continue; // pages for people: HTML, not the API's JSON errors
            }
            match want {
                401 => assert_eq!(body["error"]["code"], "unauthorized", "{body}"),
                403 => assert_eq!(body["error"]["code"], "forbidden", "{body}"),
                _ => {}
            }
        }
    }
    let (_, body) = call(
        &app,
        "POST",
        "/api/v1/incidents/INC-1/acknowledge",
        Some(VIEWER),
    )
    .await;
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
