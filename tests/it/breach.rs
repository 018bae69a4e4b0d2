//! Data-breach handling: a restricted incident never leaks to readers without clearance
//! (list, get, verbs, status page, webhooks), its notification deadline warns and fires
//! once each, and the status page shows public notes only.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);
const VIEWER: &str = "viewer-token-1234567890";
const RESPONDER: &str = "responder-token-1234567890";
const SECURITY: &str = "security-token-1234567890";
const ADMIN: &str = "admin-token-1234567890";
/// The breach's title: it must appear nowhere a reader without clearance can look.
const TITLE: &str = "Customer list XYZZY on a paste site";
const BREACH: &str = "/api/v1/incidents/INC-1";

fn config(public: &Receiver, security: &Receiver) -> String {
    format!(
        "listen: 127.0.0.1:0
auth:
  tokens:
    - {{name: grafana, token_env: IT_VIEWER, role: viewer}}
    - {{name: oncall-bot, token_env: IT_RESPONDER, role: responder}}
    - {{name: csirt, token_env: IT_SECURITY, role: responder, security: true}}
    - {{name: root, token_env: IT_ADMIN, role: admin}}
webhooks:
  - name: chatops
    url: {}
    secret_env: {SECRET_ENV}
  - name: csirt
    url: {}
    secret_env: {SECRET_ENV}
    security: true
",
        public.url(),
        security.url()
    )
}

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
        ("IT_SECURITY".to_owned(), SECURITY.to_owned()),
        ("IT_ADMIN".to_owned(), ADMIN.to_owned()),
        (SECRET_ENV.to_owned(), secret_value()),
    ])
}

/// A request with an optional token; the status and the body as text.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[track_caller]
fn expect(got: (StatusCode, String), status: StatusCode) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    serde_json::from_str(&got.1).unwrap_or(Value::Null)
}

/// Deliveries of `event_type` about `id` the receiver accepted (SLA events: of the
/// breach-notification clock only; the other clocks speak too).
fn delivered(receiver: &Receiver, event_type: &str, id: &str) -> Vec<Value> {
    receiver
        .accepted()
        .iter()
        .map(Delivery::json)
        .filter(|e| e["type"] == event_type && e["incident"]["id"] == id)
        .filter(|e| e.get("sla").is_none_or(|sla| sla == "breach_notification"))
        .collect()
}

async fn wait_for(receiver: &Receiver, event_type: &str, id: &str) -> Value {
    eventually(&format!("{event_type} of {id}"), DEADLINE, async || {
        delivered(receiver, event_type, id).pop()
    })
    .await
}

#[tokio::test]
async fn a_data_breach_is_seen_only_with_clearance_and_its_deadline_fires_once() {
    let public = Receiver::start(200).await;
    let csirt = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&public, &csirt), &[]);
    let app = TestApp::spawn(&dir, env()).await;

    let breach = expect(
        call(
            &app,
            "POST",
            "/api/v1/incidents",
            Some(ADMIN),
            Some(json!({
                "title": TITLE,
                "description": "found by a customer",
                "reporter": {"name": "Sec", "contact": "sec@example.com"},
                "category": "data_breach",
                "impact": "high",
                "urgency": "medium",
                "service": "crm",
            })),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(breach["title"], TITLE);
    assert_eq!(breach["tier"], "L3");
    assert_eq!(
        breach["breach_notification_due_at"], "2026-03-05T09:00:00Z",
        "72h after opening"
    );

    // A normal incident with a public and an internal note.
    let vpn = expect(
        call(
            &app,
            "POST",
            "/api/v1/incidents",
            Some(RESPONDER),
            Some(json!({
                "title": "VPN drops every 5 minutes",
                "reporter": {"name": "Ana", "contact": "ana@example.com"},
                "category": "availability",
                "impact": "medium",
                "urgency": "medium",
                "service": "vpn",
            })),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(vpn["id"], "INC-2");
    assert!(
        vpn.get("breach_notification_due_at").is_none(),
        "only restricted incidents carry the deadline"
    );
    for (text, public) in [
        ("We are looking into VPN drops", true),
        ("suspect the firewall ruleset", false),
    ] {
        expect(
            call(
                &app,
                "POST",
                "/api/v1/incidents/INC-2/notes",
                Some(RESPONDER),
                Some(json!({"text": text, "public": public})),
            )
            .await,
            StatusCode::OK,
        );
    }

    // Without clearance: the list and the incident are the redacted shape, nothing more.
    let redacted = json!({
        "id": "INC-1",
        "restricted": true,
        "state": "open",
        "opened_at": "2026-03-02T09:00:00Z",
    });
    for token in [VIEWER, RESPONDER] {
        let (status, text) = call(&app, "GET", "/api/v1/incidents", Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains(TITLE), "{text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["incidents"][1], redacted);
        assert_eq!(list["incidents"][0]["title"], "VPN drops every 5 minutes");

        let (status, text) = call(&app, "GET", BREACH, Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains(TITLE), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), redacted);
    }
    // With clearance: everything.
    for token in [SECURITY, ADMIN] {
        let (_, text) = call(&app, "GET", "/api/v1/incidents", Some(token), None).await;
        assert!(text.contains(TITLE), "{text}");
        let incident = expect(
            call(&app, "GET", BREACH, Some(token), None).await,
            StatusCode::OK,
        );
        assert_eq!(incident["title"], TITLE);
        assert_eq!(incident["reporter"]["name"], "Sec");
    }

    // Verbs: 403 for a plain responder, allowed with clearance.
    for (method, verb, body) in [
        ("POST", "/acknowledge", None),
        ("POST", "/notes", Some(json!({"text": "hm"}))),
        ("POST", "/escalate", Some(json!({"reason": "x"}))),
        ("POST", "/hold", Some(json!({"reason": "x"}))),
        ("POST", "/resolve", Some(json!({"resolution": "x"}))),
        (
            "PATCH",
            "",
            Some(json!({"category": "security", "reason": "x"})),
        ),
    ] {
        let path = format!("{BREACH}{verb}");
        let (status, text) = call(&app, method, &path, Some(RESPONDER), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {text}");
        assert!(!text.contains(TITLE), "{text}");
    }
    let acknowledged = expect(
        call(
            &app,
            "POST",
            &format!("{BREACH}/acknowledge"),
            Some(SECURITY),
            None,
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(acknowledged["state"], "acknowledged");
    assert_eq!(acknowledged["title"], TITLE);

    // The status page: the normal incident (a ticket, once published) with its public note
    // only, the breach as a generic notice.
    expect(
        call(
            &app,
            "PATCH",
            "/api/v1/incidents/INC-2",
            Some(RESPONDER),
            Some(json!({"public": true, "reason": "customers ask"})),
        )
        .await,
        StatusCode::OK,
    );
    let (status, text) = call(&app, "GET", "/status.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!text.contains(TITLE), "{text}");
    assert!(!text.contains("INC-1"), "{text}");
    assert!(!text.contains("crm"), "{text}");
    assert!(!text.contains("suspect the firewall"), "{text}");
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["services"][0]["name"], "vpn", "{text}");
    assert_eq!(page["services"][0]["status"], "degraded", "{text}");
    assert_eq!(page["services"].as_array().unwrap().len(), 1, "{text}");
    let incidents = page["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{text}");
    assert_eq!(incidents[0]["id"], "INC-2");
    assert_eq!(incidents[0]["impact"], "minor");
    assert_eq!(incidents[0]["status"], "investigating");
    let updates = incidents[0]["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{text}");
    assert_eq!(updates[0]["body"], "We are looking into VPN drops");
    assert_eq!(page["notice"], "We are investigating a security matter");

    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(!html.contains(TITLE), "{html}");
    assert!(!html.contains("suspect the firewall"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("We are looking into VPN drops"), "{html}");
    assert!(
        html.contains("We are investigating a security matter"),
        "{html}"
    );

    // Webhooks: the security consumer gets the details, the other one the redacted shape.
    let full = wait_for(&csirt, "incident.opened", "INC-1").await;
    assert_eq!(full["incident"]["title"], TITLE);
    let bare = wait_for(&public, "incident.opened", "INC-1").await;
    assert_eq!(bare["incident"], redacted);
    wait_for(&public, "incident.acknowledged", "INC-1").await;

    // The notification deadline: warning at 75% (54h), breach at 72h, once each.
    app.clock.advance(Duration::from_secs(54 * 3600));
    let warning = wait_for(&csirt, "incident.sla_warning", "INC-1").await;
    assert_eq!(warning["sla"], "breach_notification");
    assert_eq!(warning["incident"]["title"], TITLE);
    let warning = wait_for(&public, "incident.sla_warning", "INC-1").await;
    assert_eq!(warning["sla"], "breach_notification");
    assert_eq!(warning["incident"]["restricted"], true);
    app.clock.advance(Duration::from_secs(18 * 3600));
    let breached = wait_for(&csirt, "incident.sla_breached", "INC-1").await;
    assert_eq!(breached["sla"], "breach_notification");
    wait_for(&public, "incident.sla_breached", "INC-1").await;
    // A fired timer is deleted with what it caused: a later clock finds nothing to fire.
    app.clock.advance(Duration::from_secs(3600));
    let incident = eventually("both consumers caught up", DEADLINE, async || {
        let incident = expect(
            call(&app, "GET", BREACH, Some(ADMIN), None).await,
            StatusCode::OK,
        );
        (csirt.accepted().len() == public.accepted().len()).then_some(incident)
    })
    .await;
    let kinds: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let deadline_entries = |kind: &str| {
        incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("breach notification")
            })
            .count()
    };
    assert!(kinds.contains(&"sla_warning"), "{kinds:?}");
    assert_eq!(deadline_entries("sla_warning"), 1);
    assert_eq!(deadline_entries("sla_breached"), 1);
    assert_eq!(delivered(&csirt, "incident.sla_warning", "INC-1").len(), 1);
    assert_eq!(delivered(&csirt, "incident.sla_breached", "INC-1").len(), 1);

    for delivery in public.accepted() {
        let body = String::from_utf8_lossy(&delivery.body).into_owned();
        assert!(!body.contains(TITLE), "{body}");
    }
    app.stop().await;
}

/// A resolved data breach is "similar" to a later one: a security token sees it listed with
/// its resolution; readers without clearance see neither its title nor its resolution.
#[tokio::test]
async fn similar_breaches_are_listed_only_with_clearance() {
    let public = Receiver::start(200).await;
    let security = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&public, &security), &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let ticket = |title: &str| {
        json!({
            "title": title,
            "description": "see title",
            "reporter": {"name": "Dana", "contact": "dana@example.com"},
            "category": "data_breach",
            "service": "crm",
        })
    };
    expect(
        call(
            &app,
            "POST",
            "/api/v1/incidents",
            Some(ADMIN),
            Some(ticket(TITLE)),
        )
        .await,
        StatusCode::CREATED,
    );
    expect(
        call(
            &app,
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            Some(ADMIN),
            Some(json!({"resolution": "credentials rotated"})),
        )
        .await,
        StatusCode::OK,
    );
    expect(
        call(
            &app,
            "POST",
            "/api/v1/incidents",
            Some(ADMIN),
            Some(ticket("Second leak")),
        )
        .await,
        StatusCode::CREATED,
    );
    let cleared = expect(
        call(&app, "GET", "/api/v1/incidents/INC-2", Some(SECURITY), None).await,
        StatusCode::OK,
    );
    assert_eq!(cleared["similar"][0]["id"], "INC-1", "{cleared:#}");
    for token in [VIEWER, RESPONDER] {
        let (status, body) = call(&app, "GET", "/api/v1/incidents/INC-2", Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.contains(TITLE), "{token}: {body}");
        assert!(!body.contains("credentials rotated"), "{token}: {body}");
    }
    app.stop().await;
}
