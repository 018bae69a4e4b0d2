//! Status-page subscriptions end to end, mail read off a real SMTP server on loopback
//! (mailin-embedded): subscribe, confirm through the mailed link, an incident's mail with
//! `List-Unsubscribe`, unsubscribe, no more mail; restricted incidents never mailed nor
//! posted, even published with a public note.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{ConfigDir, TestApp, eventually};

/// Every mail the server received, as its raw text.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<String>>>, Vec<u8>);

impl Handler for Inbox {
    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> Response {
        self.1.clear();
        OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.1.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&self.1).into_owned();
        self.0.lock().unwrap().push(text);
        OK
    }
}

pub(crate) fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Inbox::default();
    let mails = inbox.0.clone();
    let mut server = Server::new(inbox);
    server.with_name("localhost").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, mails)
}

/// The first `{base}/subscriptions/{kind}/{token}` link in the mail (quoted-printable soft
/// breaks undone).
pub(crate) fn link(mail: &str, kind: &str) -> String {
    let mail = mail.replace("=\r\n", "");
    let start = mail
        .find(&format!("/subscriptions/{kind}/"))
        .expect("a link");
    let rest = &mail[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>')
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn email_double_opt_in_update_and_unsubscribe_over_real_smtp() {
    let (port, mails) = smtp_server();
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nauth:\n  tokens:\n    - {name: admin, token_env: T_ADMIN, role: admin}\nstatus_page:\n  title: Acme\n  services:\n    - {name: checkout}\nmail:\n  smtp_url_env: SMTP_URL\n  from: 'Status <status@example.com>'\n",
        &[],
    );
    let env: HashMap<String, String> = [
        ("SMTP_URL".to_owned(), format!("smtp://127.0.0.1:{port}")),
        ("T_ADMIN".to_owned(), "admin-token".to_owned()),
    ]
    .into();
    let app = TestApp::spawn(&dir, env).await;

    // Unknown service, and a bad address: 400 naming the field.
    let (status, body) = app
        .post(
            "/subscriptions",
            Some(json!({"email": "ana@example.com", "services": ["nope"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("services")
    );
    // Sign up with the page's form.
    let response = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ana%40example.com&services=checkout")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let html = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
    assert!(html, "a person who posted the form reads a page");
    let body = response.text().await.unwrap();
    assert!(body.contains("Check your mailbox"), "{body}");
    assert!(
        !body.contains("ana@"),
        "the address is never echoed: {body}"
    );

    let confirmation = eventually(
        "the confirmation mail",
        Duration::from_secs(20),
        async || {
            let mails = mails.lock().unwrap();
            mails.first().cloned()
        },
    )
    .await;
    assert!(
        confirmation.contains("Subject: [Acme] Confirm your subscription"),
        "{confirmation}"
    );
    assert!(confirmation.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let confirm = link(&confirmation, "confirm");
    let page = app.client.get(app.url(&confirm)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("confirmed"));

    // An alert on the listed service: public, so mailed.
    let alert = app
        .client
        .post(app.url("/api/v2/alerts"))
        .bearer_auth("admin-token")
        .json(
            &json!([{"labels": {"alertname": "CheckoutDown", "service": "checkout"},
                        "annotations": {"summary": "Checkout API down"}}]),
        )
        .send()
        .await
        .unwrap();
    assert!(
        alert.status().is_success(),
        "{}",
        alert.text().await.unwrap()
    );
    let update = eventually("the incident's mail", Duration::from_secs(20), async || {
        let mails = mails.lock().unwrap();
        mails.iter().find(|m| m.contains("Investigating")).cloned()
    })
    .await;
    assert!(
        update.contains("Subject: [Acme] Investigating:"),
        "{update}"
    );
    assert!(update.contains("/incidents/INC-"), "{update}");
    assert!(update.contains("List-Unsubscribe: <http"), "{update}");

    // One-click unsubscribe, as a mail client does it.
    let unsubscribe = link(&update, "unsubscribe");
    let response = app
        .client
        .post(app.url(&unsubscribe))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let count = mails.lock().unwrap().len();
    // Another public incident: no mail now.
    let alert = app
        .client
        .post(app.url("/api/v2/alerts"))
        .bearer_auth("admin-token")
        .json(&json!([{"labels": {"alertname": "Other", "service": "checkout", "instance": "b"}}]))
        .send()
        .await
        .unwrap();
    assert!(alert.status().is_success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        mails.lock().unwrap().len(),
        count,
        "no mail after unsubscribing"
    );

    // Admin export and delete; the export is admin only.
    let (status, _) = app.get("/api/v1/subscribers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let export: serde_json::Value = app
        .client
        .get(app.url("/api/v1/subscribers"))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        export["subscribers"].as_array().unwrap().len(),
        0,
        "{export}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_subscriber_gets_a_signed_event_and_sign_ups_are_rate_limited() {
    let receiver = crate::support::Receiver::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nstatus_page:\n  services:\n    - {name: checkout}\n",
        &[],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    // Email is off without `mail:`: JSON for an API client, a page for the form.
    let (status, body) = app
        .post("/subscriptions", Some(json!({"email": "ana@example.com"})))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "mail_unavailable", "{body}");
    let response = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=ana%40example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("cannot send email"), "{page}");
    assert!(!page.contains("ana@"), "{page}");
    let (status, body) = app
        .post(
            "/subscriptions",
            Some(json!({"webhook_url": receiver.url()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (status, _) = app
        .post(
            "/api/v2/alerts",
            Some(json!([{"labels": {"alertname": "Down", "service": "checkout"}}])),
        )
        .await;
    assert!(status.is_success());
    let delivery = eventually("the signed event", Duration::from_secs(20), async || {
        receiver.accepted().into_iter().next()
    })
    .await;
    assert_eq!(delivery.json()["type"], "status.opened");
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        secret.trim_start_matches("whsec_"),
    )
    .unwrap();
    assert!(incidentd::notify::signing::verify(
        &key,
        &delivery.id,
        delivery.timestamp,
        &delivery.body,
        &delivery.signature
    ));
    assert!(delivery.json()["incident"]["title"].is_string());
    // 5 a minute per IP: the sixth sign-up is refused with Retry-After.
    let mut last = StatusCode::OK;
    for n in 0..6 {
        let (status, _) = app
            .post(
                "/subscriptions",
                Some(json!({"webhook_url": format!("http://127.0.0.1:9/{n}")})),
            )
            .await;
        last = status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("incidentd_status_subscribers{channel=\"webhook\",state=\"confirmed\"}"),
        "{metrics}"
    );
    app.stop().await;
}

/// A restricted incident is never announced, whatever is done to make it public: a
/// `data_breach` ticket on a listed service, published with `PATCH {public: true}` and given
/// a public note, reaches neither email nor webhook subscribers; a normal ticket handled the
/// same way reaches both.
#[tokio::test(flavor = "multi_thread")]
async fn a_restricted_incident_is_never_sent_to_subscribers() {
    const BREACH: &str = "Customer list XYZZY on a paste site";
    let (port, mails) = smtp_server();
    let receiver = crate::support::Receiver::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nauth:\n  tokens:\n    - {name: admin, token_env: T_ADMIN, role: admin}\nstatus_page:\n  title: Acme\n  services:\n    - {name: crm}\n    - {name: vpn}\nmail:\n  smtp_url_env: SMTP_URL\n  from: 'Status <status@example.com>'\n",
        &[],
    );
    let env: HashMap<String, String> = [
        ("SMTP_URL".to_owned(), format!("smtp://127.0.0.1:{port}")),
        ("T_ADMIN".to_owned(), "admin-token".to_owned()),
    ]
    .into();
    let app = TestApp::spawn(&dir, env).await;
    let admin = async |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let response = app
            .client
            .request(method, app.url(path))
            .bearer_auth("admin-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()
    };

    // An email subscriber (confirmed through its mail) and a webhook subscriber, all services.
    let (status, _) = app
        .post("/subscriptions", Some(json!({"email": "ana@example.com"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let confirmation = eventually(
        "the confirmation mail",
        Duration::from_secs(20),
        async || mails.lock().unwrap().first().cloned(),
    )
    .await;
    let page = app
        .client
        .get(app.url(&link(&confirmation, "confirm")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let (status, body) = app
        .post(
            "/subscriptions",
            Some(json!({"webhook_url": receiver.url()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The breach first, then the normal incident, each opened, published and noted.
    for (title, category, service) in [
        (BREACH, "data_breach", "crm"),
        ("VPN drops every 5 minutes", "availability", "vpn"),
    ] {
        let opened = admin(
            reqwest::Method::POST,
            "/api/v1/incidents",
            json!({"title": title, "reporter": {"name": "Sec", "contact": "sec@example.com"},
                   "category": category, "impact": "high", "urgency": "medium",
                   "service": service}),
        )
        .await;
        let id = opened["id"].as_str().unwrap().to_owned();
        admin(
            reqwest::Method::PATCH,
            &format!("/api/v1/incidents/{id}"),
            json!({"public": true, "reason": "customers ask"}),
        )
        .await;
        admin(
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{id}/notes"),
            json!({"text": format!("We are looking into it ({service})"), "public": true}),
        )
        .await;
    }

    // The normal incident's note arrives on both channels …
    eventually(
        "the normal incident's mail",
        Duration::from_secs(20),
        async || {
            let mails = mails.lock().unwrap();
            mails.iter().any(|m| m.contains("VPN drops")).then_some(())
        },
    )
    .await;
    eventually(
        "the normal incident's webhook",
        Duration::from_secs(20),
        async || {
            receiver
                .accepted()
                .iter()
                .any(|d| d.json()["incident"]["id"] == "INC-2")
                .then_some(())
        },
    )
    .await;
    // … and the breach's, queued before it, never does.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for mail in mails.lock().unwrap().iter() {
        let mail = mail.replace("=\r\n", "");
        assert!(!mail.contains("XYZZY"), "{mail}");
        assert!(!mail.contains("INC-1"), "{mail}");
        assert!(!mail.contains("(crm)"), "{mail}");
    }
    for delivery in receiver.accepted() {
        let body = String::from_utf8_lossy(&delivery.body).into_owned();
        assert!(!body.contains("XYZZY"), "{body}");
        assert!(!body.contains("INC-1"), "{body}");
        assert!(!body.contains("crm"), "{body}");
    }
    assert!(
        !receiver.accepted().is_empty() && mails.lock().unwrap().len() >= 2,
        "the normal incident was sent"
    );
    app.stop().await;
}

/// An admin deletes a subscriber: the export shows it before and not after, its link
/// (the token of both confirm and unsubscribe) names nobody any more, and deleting it again
/// is 404.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_deletes_a_subscriber() {
    let (port, mails) = smtp_server();
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nauth:\n  tokens:\n    - {name: admin, token_env: T_ADMIN, role: admin}\nmail:\n  smtp_url_env: SMTP_URL\n  from: 'Status <status@example.com>'\n",
        &[],
    );
    let env: HashMap<String, String> = [
        ("SMTP_URL".to_owned(), format!("smtp://127.0.0.1:{port}")),
        ("T_ADMIN".to_owned(), "admin-token".to_owned()),
    ]
    .into();
    let app = TestApp::spawn(&dir, env).await;
    let export = async || -> serde_json::Value {
        let response = app
            .client
            .get(app.url("/api/v1/subscribers"))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    };
    let (status, _) = app
        .post("/subscriptions", Some(json!({"email": "ana@example.com"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let confirmation = eventually(
        "the confirmation mail",
        Duration::from_secs(20),
        async || mails.lock().unwrap().first().cloned(),
    )
    .await;
    let confirm = link(&confirmation, "confirm");
    let token = confirm.rsplit('/').next().unwrap().to_owned();
    let page = app.client.get(app.url(&confirm)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    let before = export().await;
    let listed = before["subscribers"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{before}");
    assert_eq!(listed[0]["address"], "ana@example.com");
    assert!(listed[0]["confirmed_at"].is_string(), "{before}");
    let id = listed[0]["id"].as_u64().unwrap();

    let delete = async || {
        app.client
            .delete(app.url(&format!("/api/v1/subscribers/{id}")))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(delete().await, StatusCode::NO_CONTENT);
    let after = export().await;
    assert_eq!(after["subscribers"], json!([]), "{after}");
    // The token names nobody: the confirm link (same token as unsubscribe) is unknown.
    let page = app
        .client
        .get(app.url(&format!("/subscriptions/confirm/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(delete().await, StatusCode::NOT_FOUND);
    app.stop().await;
}
