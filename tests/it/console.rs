//! The responder console over HTTP, as a browser speaks to it (forms, cookies, redirects,
//! the event stream): sessions and their cookie, CSRF, session fixation, roles, restricted
//! incidents, the queue and the verbs, expiry, a token removed by a reload, the open mode.
//! The same in a real Chromium: `console_browser.rs`.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::*;

pub const CONFIG: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
    - {name: ana, token_env: IT_RESPONDER, role: responder}
    - {name: bob, token_env: IT_RESPONDER2, role: responder}
    - {name: root, token_env: IT_ADMIN, role: admin}
";

pub const VIEWER: &str = "viewer-token-1234567890";
pub const RESPONDER: &str = "responder-token-1234567890";
pub const RESPONDER2: &str = "responder2-token-1234567890";
pub const ADMIN: &str = "admin-token-1234567890";

pub fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
        ("IT_RESPONDER2".to_owned(), RESPONDER2.to_owned()),
        ("IT_ADMIN".to_owned(), ADMIN.to_owned()),
    ])
}

/// `application/x-www-form-urlencoded`, as a browser posts a form.
pub trait FormBody {
    fn form_fields<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_fields<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        let encode = |text: &str| {
            text.bytes()
                .map(|b| match b {
                    b' ' => "+".to_owned(),
                    b if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) => {
                        char::from(b).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
            .collect::<Vec<_>>()
            .join("&");
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// A client that never follows redirects: what the server answers is what the test sees.
pub fn browserless() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One signed-in browser, as far as HTTP goes: its cookie and its forms' CSRF token.
pub struct Session {
    pub client: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

/// The `incidentd_session=…` pair of a `Set-Cookie`, and the whole header.
fn set_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    let header = response
        .headers()
        .get(SET_COOKIE)?
        .to_str()
        .ok()?
        .to_owned();
    let pair = header.split(';').next()?.trim().to_owned();
    Some((pair, header))
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token on the page:\n{html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Signs in with `token`, presenting `cookie` (a planted one, say) if given; answers the
/// sign-in's response.
pub async fn sign_in_raw(app: &TestApp, token: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browserless()
        .post(app.url("/console/sign-in"))
        .header("origin", app.url(""))
        .header("sec-fetch-site", "same-origin")
        .form_fields(&[("token", token), ("next", "/console")]);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

impl Session {
    pub async fn sign_in(app: &TestApp, token: &str) -> Session {
        let response = sign_in_raw(app, token, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (cookie, _) = set_cookie(&response).expect("a session cookie");
        let mut session = Session {
            client: browserless(),
            base: app.url(""),
            cookie,
            csrf: String::new(),
        };
        let (status, html) = session.get("/console").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        session.csrf = csrf_of(&html);
        session
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Posts a form from the console's own pages (same origin), the CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        self.client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form_fields(&form)
            .send()
            .await
            .unwrap()
    }
}

/// A ticket through the API, as `token`; answers its id.
pub async fn ticket(app: &TestApp, token: &str, title: &str, category: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/incidents"))
        .bearer_auth(token)
        .json(&json!({
            "title": title,
            "reporter": {"name": "Dana"},
            "category": category,
            "impact": "high",
            "urgency": "medium",
            "service": "checkout",
            "labels": {"team": "payments"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

pub async fn incident(app: &TestApp, id: &str) -> Value {
    app.client
        .get(app.url(&format!("/api/v1/incidents/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn spawn() -> (ConfigDir, TestApp) {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    (dir, app)
}

#[tokio::test]
async fn sign_in_sets_a_hardened_session_cookie_and_sign_out_ends_it() {
    let (_dir, app) = spawn().await;
    // Without a session: pages redirect to the sign-in page, forms and the stream get 401.
    let client = browserless();
    let response = client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console/sign-in");
    let response = client
        .get(app.url("/console/incidents/INC-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[LOCATION],
        "/console/sign-in?next=%2Fconsole%2Fincidents%2FINC-1"
    );
    // A link followed from another site comes without the SameSite=Strict cookie: the page
    // loads itself again from here (same-site), which sends it.
    let response = client
        .get(app.url("/console/incidents/INC-1"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"0;url=/console/incidents/INC-1\">"),
        "{page}"
    );
    let (status, page) = {
        let r = client
            .get(app.url("/console/sign-in"))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<label for=\"token\">"), "{page}");

    let response = sign_in_raw(&app, RESPONDER, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console");
    let (pair, header) = set_cookie(&response).unwrap();
    assert!(pair.starts_with("incidentd_session="), "{header}");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(header.contains(attribute), "{attribute} missing: {header}");
    }
    assert!(!header.contains("Secure"), "no https here: {header}");
    assert!(
        !header.contains(RESPONDER),
        "the token is never in the cookie"
    );

    let session = Session::sign_in(&app, RESPONDER).await;
    let (status, page) = session.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("ana") && page.contains("(responder)"),
        "{page}"
    );
    assert!(!page.contains(RESPONDER), "the token is never on a page");

    // Signing out without the CSRF token does nothing.
    let response = session
        .client
        .post(app.url("/console/sign-out"))
        .header(COOKIE, &session.cookie)
        .form_fields(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(session.get("/console").await.0, StatusCode::OK);

    let response = session.post("/console/sign-out", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console/sign-in");
    let (_, cleared) = set_cookie(&response).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie opens nothing any more: not a page, not a form, not the stream.
    assert_eq!(session.get("/console").await.0, StatusCode::SEE_OTHER);
    let id = ticket(&app, RESPONDER, "Checkout slow", "performance").await;
    let response = session
        .post(&format!("/console/incidents/{id}/acknowledge"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        session.get("/console/events").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(incident(&app, &id).await["state"], "open");
    app.stop().await;
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_external_url_is_https() {
    let dir = ConfigDir::new(
        &format!("{CONFIG}external_url: https://incidents.example\n"),
        &[],
    );
    let app = TestApp::spawn(&dir, env()).await;
    let response = sign_in_raw(&app, RESPONDER, None).await;
    let (_, header) = set_cookie(&response).unwrap();
    assert!(header.contains("; Secure"), "{header}");
    app.stop().await;
}

#[tokio::test]
async fn a_session_id_set_before_sign_in_is_never_adopted() {
    let (_dir, app) = spawn().await;
    // An attacker plants a session id of their choosing in the victim's browser.
    let planted = "incidentd_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = sign_in_raw(&app, RESPONDER, Some(planted)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (issued, _) = set_cookie(&response).unwrap();
    assert_ne!(issued, planted, "sign-in issues a fresh id");
    let planted_client = browserless();
    let response = planted_client
        .get(app.url("/console"))
        .header(COOKIE, planted)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the planted id opens nothing"
    );

    // Signing in again with a live session: a new id, and the old one ends.
    let first = Session::sign_in(&app, RESPONDER).await;
    let response = sign_in_raw(&app, RESPONDER, Some(&first.cookie)).await;
    let (second, _) = set_cookie(&response).unwrap();
    assert_ne!(second, first.cookie);
    assert_eq!(first.get("/console").await.0, StatusCode::SEE_OTHER);
    let response = browserless()
        .get(app.url("/console"))
        .header(COOKIE, &second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let (_dir, app) = spawn().await;
    let session = Session::sign_in(&app, RESPONDER).await;
    let id = ticket(&app, RESPONDER, "Checkout slow", "performance").await;
    let path = format!("/console/incidents/{id}/acknowledge");
    let post = |origin: &'static str, site: &'static str, csrf: String| {
        session
            .client
            .post(app.url(&path))
            .header(COOKIE, &session.cookie)
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .form_fields(&[("csrf", csrf)])
            .send()
    };
    // A form on another site, posting with the victim's cookie (were it sent) and even
    // with the right CSRF token: refused by the Origin and Sec-Fetch-Site checks.
    let response = post("https://evil.example", "cross-site", session.csrf.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let response = post("null", "cross-site", session.csrf.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Same origin without the session's CSRF token (an older browser without Origin or
    // Sec-Fetch-Site would be here): refused too.
    let own = Box::leak(app.url("").into_boxed_str());
    for csrf in [String::new(), "x".repeat(43)] {
        let response = post(own, "same-origin", csrf).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("did not come from your console session")
        );
    }
    // Another session's token is not this one's.
    let other = Session::sign_in(&app, RESPONDER2).await;
    let response = post(own, "same-origin", other.csrf.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(incident(&app, &id).await["state"], "open");
    // Only a form from the console's own page with its token acts.
    let response = post(own, "same-origin", session.csrf.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(incident(&app, &id).await["state"], "acknowledged");
    // Not form-encoded: the API's rule (JSON only) holds.
    let response = session
        .client
        .post(app.url(&path))
        .header(COOKIE, &session.cookie)
        .header("content-type", "text/plain")
        .body(format!("csrf={}", session.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.stop().await;
}

#[tokio::test]
async fn the_queue_shows_countdowns_and_its_forms_run_the_workflow() {
    let (_dir, app) = spawn().await;
    let id = ticket(
        &app,
        RESPONDER,
        "Checkout errors for card payments",
        "availability",
    )
    .await;
    let other = ticket(&app, RESPONDER, "Search is slow", "performance").await;
    let session = Session::sign_in(&app, RESPONDER).await;
    let (status, page) = session.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Checkout errors for card payments"), "{page}");
    // P2 (high impact, medium urgency): first response in 1 h, resolution in 8 h.
    assert!(
        page.contains("First response:</span> <span class=\"clock-text\">1h 00m left"),
        "{page}"
    );
    assert!(page.contains("data-seconds=\"3600\""), "{page}");
    assert!(
        page.contains("Resolution:</span> <span class=\"clock-text\">8h 00m left"),
        "{page}"
    );
    // 50 minutes later the first response is at risk (75 %: the engine's warning).
    app.clock.advance(Duration::from_secs(50 * 60));
    eventually("the warning", Duration::from_secs(10), async || {
        let (_, page) = session.get("/console").await;
        page.contains("clock clock-warn").then_some(())
    })
    .await;

    // Search and filters.
    let (_, page) = session.get("/console?q=search").await;
    assert!(
        page.contains("Search is slow") && !page.contains("Checkout errors"),
        "{page}"
    );
    let (_, page) = session
        .get("/console?q=team%3Dpayments&source=ticket")
        .await;
    assert!(page.contains("Search is slow") && page.contains("Checkout errors"));
    let (_, page) = session.get("/console?source=alert").await;
    assert!(page.contains("Nothing in the queue matches"));

    // Acknowledge by the row's button (the bulk form), then escalate with a reason.
    let response = session
        .post("/console/bulk", &[("ack", &id), ("back", "q=checkout")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console?q=checkout");
    let now = incident(&app, &id).await;
    assert_eq!(now["state"], "acknowledged");
    let acknowledged = now["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["type"] == "acknowledged")
        .unwrap();
    assert_eq!(acknowledged["actor"], "ana");
    let (_, page) = session.get("/console?mine=1").await;
    assert!(page.contains(&id) && !page.contains(&other), "mine: {page}");
    let response = session
        .post(
            &format!("/console/incidents/{id}/escalate"),
            &[("reason", "card provider down"), ("tier", "L3")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(incident(&app, &id).await["tier"], "L3");
    let (_, page) = session.get(&format!("/console/incidents/{id}")).await;
    assert!(page.contains("card provider down"), "the timeline: {page}");
    assert!(page.contains(&format!("/console/incidents/{id}/report")));

    // A stale form (loaded before someone acknowledged): refused with the server's message,
    // at the top of the page since the incident's state no longer offers that form.
    let response = session
        .post(&format!("/console/incidents/{id}/acknowledge"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!(
            "role=\"alert\" id=\"error\">incident {id} is acknowledged; cannot acknowledge it"
        )),
        "{page}"
    );
    // A missing field: the API's own check, and what was typed stays.
    let response = session
        .post(
            &format!("/console/incidents/{id}/edit"),
            &[("title", "Card payments failing"), ("reason", "")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("`reason` must not be empty"), "{page}");
    assert!(page.contains("value=\"Card payments failing\""), "{page}");
    // Notes, hold, resume, resolve, reopen, close: the same verbs as the API.
    for (verb, fields) in [
        ("notes", vec![("text", "rolling back"), ("public", "on")]),
        ("hold", vec![("reason", "waiting for the provider")]),
        ("resume", vec![]),
        (
            "edit",
            vec![("priority", "P1"), ("reason", "customers affected")],
        ),
        ("resolve", vec![("resolution", "rolled back the release")]),
        ("reopen", vec![("reason", "errors again")]),
        ("resolve", vec![("resolution", "provider fixed it")]),
        ("close", vec![]),
    ] {
        let response = session
            .post(&format!("/console/incidents/{id}/{verb}"), &fields)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{verb}: {}",
            response.text().await.unwrap()
        );
    }
    let done = incident(&app, &id).await;
    assert_eq!(done["state"], "closed");
    assert_eq!(done["priority"], "P1");
    assert_eq!(done["resolution"], "provider fixed it");

    // Bulk: escalate both selected; one is closed now, refused in place, the other done.
    let response = session
        .post(
            "/console/bulk",
            &[
                ("action", "escalate"),
                ("ids", &id),
                ("ids", &other),
                ("reason", "all hands"),
                ("tier", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!("<strong>{id}</strong>: incident {id} is closed")),
        "{page}"
    );
    // L1 → L2 by the unacknowledged timer (30 min) earlier, → L3 now.
    assert_eq!(incident(&app, &other).await["tier"], "L3");
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_forms_and_may_not_act() {
    let (_dir, app) = spawn().await;
    let id = ticket(&app, RESPONDER, "Checkout slow", "performance").await;
    let viewer = Session::sign_in(&app, VIEWER).await;
    let (_, page) = viewer.get("/console").await;
    assert!(page.contains("Checkout slow"));
    assert!(
        !page.contains("name=\"ids\"") && !page.contains("class=\"ack\""),
        "{page}"
    );
    assert!(!page.contains("Escalate selected"));
    let (_, page) = viewer.get(&format!("/console/incidents/{id}")).await;
    assert!(
        !page.contains("action=\"/console/incidents/"),
        "no verb forms: {page}"
    );
    assert!(page.contains("may read incidents, not act on them"));
    let response = viewer
        .post(&format!("/console/incidents/{id}/acknowledge"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("token `grafana` may not do this")
    );
    let response = viewer.post("/console/bulk", &[("ack", &id)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(incident(&app, &id).await["state"], "open");
    app.stop().await;
}

#[tokio::test]
async fn restricted_incidents_show_only_with_clearance() {
    let (_dir, app) = spawn().await;
    let id = ticket(&app, ADMIN, "Customer records exfiltrated", "data_breach").await;
    let responder = Session::sign_in(&app, RESPONDER).await;
    for path in [
        "/console",
        "/console?state=all",
        &format!("/console/incidents/{id}"),
    ] {
        let (status, page) = responder.get(path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&id), "{path}: {page}");
        assert!(
            page.contains("Restricted incident") || page.contains("restricted incident"),
            "{path}"
        );
        for secret in ["exfiltrated", "data_breach", "checkout", "payments", "Dana"] {
            assert!(!page.contains(secret), "{path} shows `{secret}`: {page}");
        }
    }
    // Searching for what it is about does not find it; filters on what is hidden neither.
    let (_, page) = responder.get("/console?q=exfiltrated").await;
    assert!(!page.contains(&id), "{page}");
    let (_, page) = responder.get("/console?priority=P2").await;
    assert!(!page.contains(&id), "{page}");
    let response = responder
        .post(&format!("/console/incidents/{id}/acknowledge"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let admin = Session::sign_in(&app, ADMIN).await;
    let (_, page) = admin.get(&format!("/console/incidents/{id}")).await;
    assert!(page.contains("Customer records exfiltrated"), "{page}");
    let (_, page) = admin.get("/console?q=exfiltrated").await;
    assert!(page.contains(&id));
    app.stop().await;
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let (_dir, app) = spawn().await;
    for _ in 0..incidentd::web::console::SIGN_INS_PER_MINUTE {
        let response = sign_in_raw(&app, "wrong-token", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&response).is_none());
    }
    // Even the right token waits now.
    let response = sign_in_raw(&app, RESPONDER, None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert!(set_cookie(&response).is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_12_hours_and_when_its_token_is_removed() {
    let (dir, app) = spawn().await;
    let ana = Session::sign_in(&app, RESPONDER).await;
    let bob = Session::sign_in(&app, RESPONDER2).await;
    app.clock.advance(Duration::from_secs(11 * 3600));
    assert_eq!(ana.get("/console").await.0, StatusCode::OK);
    // A reload without bob's token ends bob's session at once.
    std::fs::write(
        dir.config_path(),
        CONFIG.replace(
            "    - {name: bob, token_env: IT_RESPONDER2, role: responder}\n",
            "",
        ),
    )
    .unwrap();
    let response = app
        .client
        .post(app.url("/-/reload"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bob.get("/console").await.0, StatusCode::SEE_OTHER);
    assert_eq!(ana.get("/console").await.0, StatusCode::OK);
    // Twelve hours after sign-in, however active.
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(ana.get("/console").await.0, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_token_ends_the_sessions_opened_with_the_old_one() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let mut env = env();
    let app = TestApp::spawn(&dir, env.clone()).await;
    let ana = Session::sign_in(&app, RESPONDER).await;
    app.stop().await;
    // The same name with a new secret (a restart reads the environment again).
    env.insert(
        "IT_RESPONDER".to_owned(),
        "rotated-token-1234567890".to_owned(),
    );
    let app = TestApp::spawn_at(&dir, env, start_time()).await;
    let ana_again = Session {
        base: app.url(""),
        ..ana
    };
    assert_eq!(ana_again.get("/console").await.0, StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    let ana = Session::sign_in(&app, RESPONDER).await;
    app.stop().await;
    let app = TestApp::spawn(&dir, env()).await;
    let ana = Session {
        base: app.url(""),
        ..ana
    };
    assert_eq!(ana.get("/console").await.0, StatusCode::OK);
    app.stop().await;
}

/// Reads the event stream until `want` is in it.
async fn read_until(response: &mut reqwest::Response, want: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(want) {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "`{want}` not in the stream: {seen}");
    seen
}

#[tokio::test]
async fn the_event_stream_names_each_change_and_ends_with_the_session() {
    let (_dir, app) = spawn().await;
    let id = ticket(&app, RESPONDER, "Checkout slow", "performance").await;
    let session = Session::sign_in(&app, RESPONDER).await;
    let mut stream = session
        .client
        .get(app.url("/console/events"))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // A change through the API, elsewhere.
    let response = app
        .client
        .post(app.url(&format!("/api/v1/incidents/{id}/acknowledge")))
        .bearer_auth(RESPONDER2)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    read_until(&mut stream, &format!("event: incidents\ndata: {id}\n")).await;
    let other = ticket(&app, RESPONDER, "Search slow", "performance").await;
    read_until(&mut stream, &format!("data: {other}\n")).await;
    // An internal note changes none of the incident's fields, only its timeline.
    let response = app
        .client
        .post(app.url(&format!("/api/v1/incidents/{id}/notes")))
        .bearer_auth(RESPONDER2)
        .json(&json!({"text": "looking"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = read_until(&mut stream, &format!("data: {id}\n")).await;
    assert_eq!(seen.matches(&format!("data: {id}\n")).count(), 1, "{seen}");
    // Signing out elsewhere (another tab) ends the stream.
    session.post("/console/sign-out", &[]).await;
    read_until(&mut stream, "event: signed-out").await;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await;
    assert!(matches!(end, Ok(Ok(None))), "the stream ends: {end:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_open_mode_needs_no_sign_in_but_keeps_csrf() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let id = ticket(&app, "unused", "Checkout slow", "performance").await;
    let client = browserless();
    let page = client
        .get(app.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Checkout slow"), "{page}");
    assert!(!page.contains("Sign out"));
    let csrf = csrf_of(&page);
    let post = |csrf: String| {
        client
            .post(app.url(&format!("/console/incidents/{id}/acknowledge")))
            .header("origin", app.url(""))
            .form_fields(&[("csrf", csrf)])
            .send()
    };
    assert_eq!(
        post("nope".to_owned()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(post(csrf).await.unwrap().status(), StatusCode::SEE_OTHER);
    assert_eq!(
        incident(&app, &id).await["acknowledged_at"],
        "2026-03-02T09:00:00Z"
    );
    let response = client
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn a_call_is_scheduled_from_l2_and_the_review_draft_opens_from_the_console() {
    let (_dir, app) = spawn().await;
    let id = ticket(&app, RESPONDER, "VPN drops", "performance").await;
    let responder = Session::sign_in(&app, RESPONDER).await;
    let path = format!("/console/incidents/{id}");

    // At L1 there is no call form, and a forged one gets the API's 409, shown in place.
    let (_, page) = responder.get(&path).await;
    assert!(!page.contains("id=\"form-call\""), "{page}");
    let call = [
        ("url", "https://meet.example/vpn"),
        ("at", "2030-03-02T10:00"),
        ("participants", "Dana, Budi (network)"),
        ("note", "Have the client log ready."),
    ];
    let response = responder.post(&format!("{path}/call"), &call).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let refused = response.text().await.unwrap();
    assert!(refused.contains("escalate it first"), "{refused}");
    assert!(
        incident(&app, &id).await["calls"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // From L2 the form is there and schedules the call (its time read as UTC).
    let response = responder
        .post(
            &format!("{path}/escalate"),
            &[("reason", "needs network"), ("tier", "L2")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, page) = responder.get(&path).await;
    assert!(page.contains("id=\"form-call\""), "{page}");
    let response = responder.post(&format!("{path}/call"), &call).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let calls = incident(&app, &id).await["calls"].clone();
    assert_eq!(calls[0]["at"], "2030-03-02T10:00:00Z", "{calls}");
    assert_eq!(calls[0]["url"], "https://meet.example/vpn");
    assert_eq!(calls[0]["participants"], json!(["Dana", "Budi (network)"]));
    let (_, page) = responder.get(&path).await;
    assert!(page.contains("Calls with the reporter"), "{page}");
    assert!(page.contains("with Dana, Budi (network)"), "{page}");

    // A bad link is the API's 400, shown beside the form with what was typed.
    let response = responder
        .post(
            &format!("{path}/call"),
            &[("url", "ftp://files.example"), ("at", "2030-03-02T11:00")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused = response.text().await.unwrap();
    assert!(refused.contains("id=\"error-call\""), "{refused}");
    assert!(
        refused.contains("value=\"ftp://files.example\""),
        "{refused}"
    );
    assert_eq!(
        incident(&app, &id).await["calls"].as_array().unwrap().len(),
        1
    );

    // The review draft opens from the page with the session (no bearer token), as text.
    assert!(page.contains(&format!("href=\"/console/incidents/{id}/report\"")));
    let response = responder
        .client
        .get(app.url(&format!("/console/incidents/{id}/report")))
        .header(COOKIE, &responder.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let draft = response.text().await.unwrap();
    assert!(
        draft.contains(id.as_str()) && draft.contains("VPN drops"),
        "{draft}"
    );
    assert!(
        draft.contains("meet.example/vpn"),
        "the call is in the draft: {draft}"
    );
    let (status, _) = responder.get("/console/incidents/INC-999/report").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A viewer reads the draft but gets no call form and may not schedule one.
    let viewer = Session::sign_in(&app, VIEWER).await;
    let (status, _) = viewer.get(&format!("/console/incidents/{id}/report")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = viewer.get(&path).await;
    assert!(!page.contains("id=\"form-call\""));
    let response = viewer.post(&format!("{path}/call"), &call).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        incident(&app, &id).await["calls"].as_array().unwrap().len(),
        1
    );
    app.stop().await;
}
