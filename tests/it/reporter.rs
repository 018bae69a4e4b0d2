//! The reporter's view and the L2 call, end to end: the link answered once with the ticket,
//! the page (what it shows and never shows), comments through its form, rotation and
//! revocation, calls from L2/L3 with their event and their mail to the reporter over a real
//! SMTP server, and the post-incident review draft.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const RESPONDER: &str = "responder-token-1234567890";
const ADMIN: &str = "admin-token-1234567890";
const VIEWER: &str = "viewer-token-1234567890";

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
        ("IT_ADMIN".to_owned(), ADMIN.to_owned()),
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        (SECRET_ENV.to_owned(), secret_value()),
    ])
}

fn config(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
auth:
  tokens:
    - {{name: desk, token_env: IT_RESPONDER, role: responder}}
    - {{name: root, token_env: IT_ADMIN, role: admin}}
    - {{name: grafana, token_env: IT_VIEWER, role: viewer}}
status_page:
  title: Acme status
  timezone: Asia/Jakarta
{extra}"
    )
}

/// A request with a token and a JSON body: the status and the answer (JSON, or the text).
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn ticket(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let (status, answer) = send(app, "POST", "/api/v1/incidents", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let link = answer["reporter_link"].as_str().unwrap().to_owned();
    (id, link)
}

/// A client that does not follow redirects, as a form post is checked.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The reporter posts the page's form.
async fn comment(app: &TestApp, link: &str, text: &str) -> reqwest::Response {
    let body = format!("comment={}", form_encode(text));
    no_redirects()
        .post(app.url(link))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

async fn page(app: &TestApp, link: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = app.client.get(app.url(link)).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn timeline(app: &TestApp, id: &str) -> Vec<Value> {
    let (_, incident) = send(app, "GET", &format!("/api/v1/incidents/{id}"), ADMIN, None).await;
    incident["timeline"].as_array().unwrap().clone()
}

/// The whole life of a reporter link: answered once, the page shows the ticket, its public
/// note and the call and never an internal note, evidence, labels, the contact or another
/// ticket; a comment through the form lands on the timeline as from the reporter; the link
/// never appears in the incident JSON, events or metrics; a rotation kills the old link, a
/// revocation the new one, and a dead link takes no comment.
#[tokio::test]
async fn the_reporter_link_shows_the_ticket_takes_comments_and_dies_when_revoked() {
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(
        &config(&format!(
            "webhooks:\n  - name: chat\n    url: {}\n    secret_env: {SECRET_ENV}\n",
            receiver.url()
        )),
        &[],
    );
    let app = TestApp::spawn(&dir, env()).await;
    let (id, link) = ticket(
        &app,
        RESPONDER,
        json!({"title": "VPN broken", "description": "cannot connect since 9:00 EVIDENCE-TEXT",
               "reporter": {"name": "Ana", "contact": "ana@example.com"},
               "service": "vpn", "labels": {"vip": "LABEL-SECRET"}}),
    )
    .await;
    let token = link
        .strip_prefix("/r/")
        .expect("a path without external_url");
    assert_eq!(token.len(), 43, "{link}");
    let (_, other_link) = ticket(
        &app,
        RESPONDER,
        json!({"title": "Printer on fire", "reporter": {"name": "Budi"}}),
    )
    .await;
    assert_ne!(other_link, link);

    // Internal and public notes; the call is refused at L1, taken at L2.
    for (text, public) in [
        ("INTERNAL-SECRET-42: the concentrator leaks memory", false),
        ("We are restarting the VPN.", true),
    ] {
        let (status, _) = send(
            &app,
            "POST",
            &format!("/api/v1/incidents/{id}/notes"),
            RESPONDER,
            Some(json!({"text": text, "public": public})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let call = json!({"url": "https://meet.example/vpn-7", "at": "2026-03-02T10:00:00Z",
                      "participants": ["Ana", "Budi (network)"], "note": "Have the client log ready."});
    let calls = format!("/api/v1/incidents/{id}/calls");
    let (status, answer) = send(&app, "POST", &calls, RESPONDER, Some(call.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        format!(
            "incident {id} is open; it is at L1; calls are scheduled from L2 or L3: escalate it first"
        )
    );
    let (status, _) = send(
        &app,
        "POST",
        &format!("/api/v1/incidents/{id}/escalate"),
        RESPONDER,
        Some(json!({"reason": "needs the network team"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for (bad, field) in [
        (
            json!({"url": "javascript:alert(1)", "at": "2026-03-02T10:00:00Z"}),
            "`url`",
        ),
        (
            json!({"url": "https://meet.example/x", "at": "tomorrow"}),
            "`at`",
        ),
        (
            json!({"url": "https://meet.example/x", "at": "2026-03-01T10:00:00Z"}),
            "`at`",
        ),
        (
            json!({"url": "https://meet.example/x", "at": "2026-03-02T10:00:00Z", "participants": vec!["a"; 21]}),
            "`participants`",
        ),
        (json!({"at": "2026-03-02T10:00:00Z"}), "url"),
    ] {
        let (status, answer) = send(&app, "POST", &calls, RESPONDER, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
    }
    let (status, incident) = send(&app, "POST", &calls, RESPONDER, Some(call)).await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    assert_eq!(incident["calls"][0]["url"], "https://meet.example/vpn-7");
    assert_eq!(incident["calls"][0]["at"], "2026-03-02T10:00:00Z");
    assert_eq!(incident["calls"][0]["scheduled_by"], "desk");

    // The page.
    let (status, headers, html) = page(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "same-origin");
    for expected in [
        "VPN broken",
        "Received, waiting for a responder",
        "<dd>P3</dd>",
        "<dd>vpn</dd>",
        "We are restarting the VPN.",
        "https://meet.example/vpn-7",
        "2 Mar 2026, 17:00 WIB",
        "Budi (network)",
        "Have the client log ready.",
        // The P3 clocks: first response within 2h, resolution within 24h of 16:00 WIB.
        "by 2 Mar 2026, 18:00 WIB",
        "by 3 Mar 2026, 16:00 WIB",
    ] {
        assert!(html.contains(expected), "`{expected}` missing:\n{html}");
    }
    for never in [
        "INTERNAL-SECRET-42",
        "EVIDENCE-TEXT",
        "LABEL-SECRET",
        "ana@example.com",
        "needs the network team",
        "Printer on fire",
    ] {
        assert!(!html.contains(never), "`{never}` on the reporter's page");
    }
    let (_, _, other) = page(&app, &other_link).await;
    assert!(other.contains("Printer on fire") && !other.contains("VPN broken"));

    // A comment through the form: back to the page, on the timeline as from the reporter.
    let response = comment(&app, &link, "It fails on wifi too.\r\nAnd on cable.").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], format!("{link}?added"));
    let (_, _, html) = page(&app, &format!("{link}?added")).await;
    assert!(html.contains("your comment was added"), "{html}");
    assert!(
        html.contains("It fails on wifi too.\nAnd on cable."),
        "{html}"
    );
    let entries = timeline(&app, &id).await;
    let last = entries.last().unwrap();
    assert_eq!(last["type"], "reporter_comment");
    assert_eq!(last["actor"], "reporter: Ana");
    assert_eq!(last["public"], false);
    assert_eq!(last["message"], "It fails on wifi too.\nAnd on cable.");
    // Empty and oversized comments change nothing.
    assert_eq!(
        comment(&app, &link, "   ").await.status(),
        StatusCode::BAD_REQUEST
    );
    let long = comment(&app, &link, &"x".repeat(4097)).await;
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    assert!(long.text().await.unwrap().contains("at most 4096"));
    assert_eq!(timeline(&app, &id).await.len(), entries.len());
    // From another site's page: refused by the guard, before anything reads the form.
    let cross = no_redirects()
        .post(app.url(&link))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body("comment=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    // The events: the call and the comment, never the link.
    let deliveries = eventually("the call's event", Duration::from_secs(20), async || {
        let accepted = receiver.accepted();
        accepted
            .iter()
            .any(|d| d.json()["actor"] == "reporter: Ana")
            .then_some(accepted)
    })
    .await;
    let call_event = deliveries
        .iter()
        .find(|d| d.event_type() == "incident.call_scheduled")
        .expect("incident.call_scheduled delivered");
    assert!(call_event.verifies());
    assert_eq!(
        call_event.json()["incident"]["calls"][0]["url"],
        "https://meet.example/vpn-7"
    );
    let comment_event = deliveries
        .iter()
        .find(|d| d.json()["actor"] == "reporter: Ana")
        .unwrap();
    assert_eq!(comment_event.event_type(), "incident.note_added");
    for delivery in &deliveries {
        let body = String::from_utf8_lossy(&delivery.body);
        assert!(!body.contains(token), "the link in an event: {body}");
    }
    let (_, incident) = send(&app, "GET", &format!("/api/v1/incidents/{id}"), ADMIN, None).await;
    assert!(incident.get("reporter_link").is_none());
    assert!(!incident.to_string().contains(token));
    assert!(!app.metrics().await.contains(token));

    // Rotation: a new link; the old one is dead (page and form).
    let rotate = format!("/api/v1/incidents/{id}/reporter-link");
    let before = timeline(&app, &id).await.len();
    let (status, rotated) = send(&app, "POST", &rotate, RESPONDER, None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["incident"], id.as_str());
    let new_link = rotated["reporter_link"].as_str().unwrap().to_owned();
    assert_ne!(new_link, link);
    let (status, _, html) = page(&app, &link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("This link is not valid") && !html.contains("VPN broken"));
    assert_eq!(
        comment(&app, &link, "stolen").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(page(&app, &new_link).await.0, StatusCode::OK);
    // Revocation: the new link is dead too; the timeline says both, never the links.
    let (status, _) = send(&app, "DELETE", &rotate, RESPONDER, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(page(&app, &new_link).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        comment(&app, &new_link, "stolen").await.status(),
        StatusCode::NOT_FOUND
    );
    let entries = timeline(&app, &id).await;
    let kinds: Vec<&str> = entries[before..]
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["reporter_link", "reporter_link"],
        "no comment landed"
    );
    assert!(!Value::Array(entries).to_string().contains("/r/"));
    // A rule or alert incident has no reporter, so no link: 409; an unknown one 404.
    let (status, _) = send(
        &app,
        "POST",
        "/api/v2/alerts",
        ADMIN,
        Some(json!([{"labels": {"alertname": "VpnDown", "service": "vpn"}}])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = send(
        &app,
        "POST",
        "/api/v1/incidents/INC-3/reporter-link",
        RESPONDER,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no reporter")
    );
    let (status, _) = send(
        &app,
        "POST",
        "/api/v1/incidents/INC-99/reporter-link",
        RESPONDER,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// A data breach reported by a person: the responder without clearance gets the link with
/// the redacted ticket; the reporter's page shows the state and the calls' time and place,
/// never the title, notes, comments, a call's note or participants; comments are still
/// taken. A closed ticket takes none; a link adds at most 5 comments in 10 minutes.
#[tokio::test]
async fn a_restricted_ticket_shows_only_its_redaction_and_comments_are_bounded() {
    let dir = ConfigDir::new(&config(""), &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let (status, answer) = send(
        &app,
        "POST",
        "/api/v1/incidents",
        RESPONDER,
        Some(
            json!({"title": "Customer DB dump on a forum", "category": "data_breach",
                    "reporter": {"name": "Citra", "contact": "citra@example.com"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(answer["restricted"], true, "{answer}");
    assert!(answer.get("title").is_none());
    let id = answer["id"].as_str().unwrap().to_owned();
    let link = answer["reporter_link"].as_str().unwrap().to_owned();
    // Only a cleared token acts on it (it starts at L3).
    let calls = format!("/api/v1/incidents/{id}/calls");
    let call = json!({"url": "https://meet.example/sec-1", "at": "2026-03-02T11:00:00Z",
                      "participants": ["CISO Dewi"], "note": "NOTE-SECRET about the dump"});
    let (status, _) = send(&app, "POST", &calls, RESPONDER, Some(call.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, "POST", &calls, ADMIN, Some(call)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &app,
        "POST",
        &format!("/api/v1/incidents/{id}/notes"),
        ADMIN,
        Some(json!({"text": "PUBLIC-BUT-RESTRICTED", "public": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = comment(&app, &link, "COMMENT-SECRET: I saw it at 9:00").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let (status, _, html) = page(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&id) && html.contains("security matter"),
        "{html}"
    );
    assert!(html.contains("https://meet.example/sec-1"), "{html}");
    for never in [
        "Customer DB dump",
        "NOTE-SECRET",
        "CISO Dewi",
        "PUBLIC-BUT-RESTRICTED",
        "COMMENT-SECRET",
        "citra@example.com",
        "Priority",
    ] {
        assert!(
            !html.contains(never),
            "`{never}` on the restricted page:\n{html}"
        );
    }
    let entries = timeline(&app, &id).await;
    assert_eq!(entries.last().unwrap()["actor"], "reporter: Citra");

    // The review: redacted without clearance, in full with it.
    let report = format!("/api/v1/incidents/{id}/report");
    let (status, redacted) = send(&app, "GET", &report, VIEWER, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(redacted["restricted"], true);
    assert!(!redacted.to_string().contains("Customer DB"));
    let (_, md) = send(&app, "GET", &format!("{report}?format=md"), VIEWER, None).await;
    let md = md.as_str().unwrap();
    assert!(
        md.contains("restricted") && !md.contains("Customer DB"),
        "{md}"
    );
    let (_, full) = send(&app, "GET", &report, ADMIN, None).await;
    assert_eq!(full["title"], "Customer DB dump on a forum");

    // Rate limit: 5 comments per link per 10 minutes (one is used above).
    for n in 0..4 {
        let response = comment(&app, &link, &format!("more {n}")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "comment {n}");
    }
    let limited = comment(&app, &link, "one too many").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));

    // A closed ticket takes no comment (a fresh link: the limit is per link).
    let (id, link) = ticket(
        &app,
        RESPONDER,
        json!({"title": "Mouse broken", "reporter": {"name": "Eko"}}),
    )
    .await;
    for (verb, body) in [
        ("resolve", json!({"resolution": "new mouse"})),
        ("close", json!({})),
    ] {
        let (status, answer) = send(
            &app,
            "POST",
            &format!("/api/v1/incidents/{id}/{verb}"),
            RESPONDER,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let refused = comment(&app, &link, "still broken").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let (status, _, html) = page(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("takes no more comments") && !html.contains("<textarea"));
    app.stop().await;
}

/// `mail:` configured: a call on a ticket is mailed to the reporter's contact (over a real
/// SMTP server on loopback), without the link; a contact that is not an address gets none.
/// With the relay down, the call is answered at once and its mail waits durably in the
/// queue, written by the call's own commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_is_mailed_to_the_reporter_durably_without_blocking() {
    let (port, mails) = crate::subscriptions::smtp_server();
    let dir = ConfigDir::new(&config(mail_section()), &[]);
    let mut with_smtp = env();
    with_smtp.insert("IT_SMTP_URL".to_owned(), format!("smtp://127.0.0.1:{port}"));
    let app = TestApp::spawn(&dir, with_smtp).await;
    let call = json!({"url": "https://meet.example/vpn-7", "at": "2026-03-02T10:00:00Z",
                      "participants": ["Ana"], "note": "Have the client log ready."});
    let mut links = Vec::new();
    for contact in ["ana@example.com", "+62 812 0000 0000"] {
        let (id, link) = ticket(
            &app,
            RESPONDER,
            json!({"title": "VPN broken", "reporter": {"name": "Ana", "contact": contact}}),
        )
        .await;
        links.push(link);
        let (status, _) = send(
            &app,
            "POST",
            &format!("/api/v1/incidents/{id}/escalate"),
            RESPONDER,
            Some(json!({"reason": "network", "tier": "L2"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = send(
            &app,
            "POST",
            &format!("/api/v1/incidents/{id}/calls"),
            RESPONDER,
            Some(call.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let mail = eventually("the call's mail", Duration::from_secs(20), async || {
        mails.lock().unwrap().first().cloned()
    })
    .await;
    assert!(mail.contains("To: ana@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: [Acme status] Call scheduled about your report INC-1"),
        "{mail}"
    );
    let text = mail.replace("=\r\n", "");
    for expected in [
        "When: 2026-03-02T10:00:00Z",
        "Join: https://meet.example/vpn-7",
        "Have the client log ready.",
    ] {
        assert!(text.contains(expected), "`{expected}` missing: {mail}");
    }
    for link in &links {
        assert!(!text.contains(link.trim_start_matches("/r/")), "{mail}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails.lock().unwrap().len(), 1, "no mail to a phone number");
    app.stop().await;

    // The relay is down: the call is answered at once, its mail stays queued.
    let dir = ConfigDir::new(&config(mail_section()), &[]);
    let mut down = env();
    down.insert(
        "IT_SMTP_URL".to_owned(),
        format!("smtp://{}", refused_addr()),
    );
    let app = TestApp::spawn(&dir, down).await;
    let (id, _) = ticket(
        &app,
        RESPONDER,
        json!({"title": "VPN broken", "category": "data_breach",
               "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, _) = send(
        &app,
        "POST",
        &format!("/api/v1/incidents/{id}/calls"),
        ADMIN,
        Some(call),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the call waited"
    );
    app.stop().await;
    let mut down = env();
    down.insert(
        "IT_SMTP_URL".to_owned(),
        format!("smtp://{}", refused_addr()),
    );
    let loaded =
        incidentd::config::load(&dir.config_path(), &|name| down.get(name).cloned()).unwrap();
    let store = dir.open_store(&loaded.storage_path);
    let (queued, _) = store
        .due_notifications(start_time() + chrono::Duration::days(2), 10)
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let incidentd::store::Message::Call(call) = &queued[0].message else {
        panic!("{queued:?}");
    };
    assert_eq!(call.to, "ana@example.com");
    assert_eq!(call.url, "https://meet.example/vpn-7");
    // A restricted ticket's mail names no title, note or participant.
    assert_eq!(
        (
            call.title.as_deref(),
            call.note.as_deref(),
            call.participants.len()
        ),
        (None, None, 0)
    );
}

fn mail_section() -> &'static str {
    "mail:\n  smtp_url_env: IT_SMTP_URL\n  from: 'Desk <desk@example.com>'\n"
}

/// The review draft of a worked ticket, as JSON and Markdown, for a viewer.
#[tokio::test]
async fn the_post_incident_review_draft_follows_the_timeline() {
    let dir = ConfigDir::new(&config(""), &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let (id, _) = ticket(
        &app,
        RESPONDER,
        json!({"title": "VPN broken", "service": "vpn",
               "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
    )
    .await;
    let path = |verb: &str| format!("/api/v1/incidents/{id}/{verb}");
    app.clock.advance(Duration::from_secs(20 * 60));
    for (verb, body) in [
        ("acknowledge", None),
        ("escalate", Some(json!({"reason": "network team"}))),
        (
            "calls",
            Some(json!({"url": "https://meet.example/7", "at": "2026-03-02T10:00:00Z"})),
        ),
        ("notes", Some(json!({"text": "internal finding"}))),
    ] {
        let (status, answer) = send(&app, "POST", &path(verb), RESPONDER, body).await;
        assert_eq!(status, StatusCode::OK, "{verb}: {answer}");
    }
    app.clock.advance(Duration::from_secs(70 * 60));
    let (status, _) = send(
        &app,
        "POST",
        &path("resolve"),
        RESPONDER,
        Some(json!({"resolution": "restarted the concentrator"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, review) = send(&app, "GET", &path("report"), VIEWER, None).await;
    assert_eq!(status, StatusCode::OK, "{review}");
    let kinds: Vec<&str> = review["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "acknowledged",
            "escalated",
            "call_scheduled",
            "resolved"
        ]
    );
    assert_eq!(review["durations"]["acknowledgement_seconds"], 1200);
    assert_eq!(review["durations"]["resolution_seconds"], 5400);
    assert_eq!(review["tat"][0]["sla"], "first_response");
    assert_eq!(review["tat"][0]["state"], "met");
    assert_eq!(review["tat"][1]["state"], "met");
    assert_eq!(review["notes"][0]["text"], "internal finding");
    assert_eq!(review["calls"][0]["url"], "https://meet.example/7");
    assert_eq!(
        review["summary"]["resolution"],
        "restarted the concentrator"
    );

    let response = app
        .client
        .get(app.url(&format!("{}?format=md", path("report"))))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    let md = response.text().await.unwrap();
    assert!(
        md.starts_with(&format!("# Post-incident review: {id} — VPN broken\n")),
        "{md}"
    );
    for expected in [
        "| First response | 2h | 20m | met | 24x7 |",
        "| Resolution | 1d | 1h 30m | met | 24x7 |",
        "From opening: acknowledgement 20m, resolution 1h 30m.",
        "(internal): internal finding",
        "## Action items",
    ] {
        assert!(md.contains(expected), "`{expected}` missing:\n{md}");
    }
    let (status, answer) = send(
        &app,
        "GET",
        &format!("{}?format=pdf", path("report")),
        VIEWER,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"]["message"],
        "invalid format `pdf`; expected json or md"
    );
    app.stop().await;
}
