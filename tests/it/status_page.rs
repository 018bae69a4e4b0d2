//! The public status page on a real server: what it shows of a published ticket and its
//! public notes, that an unpublished ticket and a restricted incident never show (page,
//! incident page, JSON, feed, badges), the feed and badges as XML, conditional requests,
//! and the monthly history.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde_json::{Value, json};

use crate::support::*;

const RESPONDER: &str = "responder-token-1234567890";
const ADMIN: &str = "admin-token-1234567890";
const TITLE: &str = "Checkout <b>slow</b> PLUGH";
const SECRET: &str = "Leaked table XYZZY";

const CONFIG: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: oncall-bot, token_env: IT_RESPONDER, role: responder}
    - {name: root, token_env: IT_ADMIN, role: admin}
status_page:
  title: Example status
  timezone: Asia/Jakarta
  services:
    - {name: checkout, display: Checkout, group: Shop}
    - {name: search}
    - {name: vault}
";

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
        ("IT_ADMIN".to_owned(), ADMIN.to_owned()),
    ])
}

async fn send(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let response = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .unwrap_or_else(|| panic!("no <{name}> in <{}>", node.tag_name().name()))
}

async fn text(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Every public surface, concatenated.
async fn everything(app: &TestApp) -> String {
    let mut all = String::new();
    for path in [
        "/",
        "/status.json",
        "/feed.atom",
        "/feed/checkout.atom",
        "/feed/vault.atom",
        "/incidents/INC-1",
        "/incidents/INC-2",
        "/badge/checkout/status.svg",
        "/badge/vault/status.svg",
        "/history",
    ] {
        all.push_str(&text(app, path).await.1);
    }
    all
}

async fn ticket(app: &TestApp, title: &str, category: &str, service: &str) -> String {
    let body = send(
        app,
        "POST",
        "/api/v1/incidents",
        json!({
            "title": title,
            "reporter": {"name": "Ana", "contact": "ana@example.com"},
            "category": category,
            "impact": "high",
            "urgency": "high",
            "service": service,
        }),
    )
    .await;
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_ticket_shows_once_published_and_a_breach_only_as_the_notice() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;

    let (status, html) = text(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("<main"), "{html}");
    assert!(
        html.contains("<header") && html.contains("<footer"),
        "{html}"
    );
    assert!(html.contains("All systems operational"), "{html}");
    assert!(
        html.contains("http-equiv=\"refresh\" content=\"60\""),
        "{html}"
    );
    assert!(html.contains("application/atom+xml"), "{html}");
    assert!(html.contains("<time datetime=\""), "{html}");
    assert!(html.contains("WIB"), "times in the page's zone: {html}");
    assert!(html.contains("no data"), "{html}");
    assert!(!html.contains("<script"), "{html}");

    let id = ticket(&app, TITLE, "availability", "checkout").await;
    assert_eq!(id, "INC-1");
    send(
        &app,
        "POST",
        "/api/v1/incidents/INC-1/notes",
        json!({"text": "Payments fail for some cards", "public": true}),
    )
    .await;
    send(
        &app,
        "POST",
        "/api/v1/incidents/INC-1/notes",
        json!({"text": "internal: db failover", "public": false}),
    )
    .await;
    let breach = ticket(&app, SECRET, "data_breach", "vault").await;
    assert_eq!(breach, "INC-2");
    send(
        &app,
        "PATCH",
        "/api/v1/incidents/INC-2",
        json!({"public": true, "reason": "tries to publish a breach"}),
    )
    .await;

    // Unpublished: nowhere.
    let all = everything(&app).await;
    assert!(!all.contains("PLUGH"), "{all}");
    assert!(!all.contains("Payments fail"), "{all}");
    assert!(!all.contains("INC-1"), "{all}");
    let (status, _) = text(&app, "/incidents/INC-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = app.get("/status.json").await;
    assert_eq!(page["status"]["indicator"], "none", "{page}");

    // Published: on every surface, escaped, with its public note only.
    let published = send(
        &app,
        "PATCH",
        "/api/v1/incidents/INC-1",
        json!({"public": true, "reason": "customers notice"}),
    )
    .await;
    assert_eq!(published["public"], true, "{published}");
    let (_, page) = app.get("/status.json").await;
    assert_eq!(page["page"]["title"], "Example status");
    assert_eq!(page["status"]["indicator"], "critical", "P1: {page}");
    assert_eq!(page["status"]["description"], "Major outage");
    let services = page["services"].as_array().unwrap();
    assert_eq!(services[0]["name"], "checkout");
    assert_eq!(services[0]["group"], "Shop");
    assert_eq!(services[0]["status"], "major_outage");
    assert_eq!(services[2]["name"], "vault");
    assert_eq!(
        services[2]["status"], "operational",
        "the breach colours nothing"
    );
    let incidents = page["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{page}");
    assert_eq!(incidents[0]["id"], "INC-1");
    assert_eq!(incidents[0]["title"], TITLE);
    assert_eq!(incidents[0]["services"], json!(["checkout"]));
    assert_eq!(
        incidents[0]["updates"][0]["body"],
        "Payments fail for some cards"
    );
    assert_eq!(page["notice"], "We are investigating a security matter");

    let (_, html) = text(&app, "/").await;
    assert!(
        html.contains("Checkout &#60;b&#62;slow") || html.contains("Checkout &lt;b&gt;slow"),
        "{html}"
    );
    assert!(!html.contains("<b>slow</b>"), "escaped: {html}");
    assert!(html.contains("Payments fail for some cards"), "{html}");
    assert!(html.contains("Major outage"), "{html}");
    assert!(
        html.contains("We are investigating a security matter"),
        "{html}"
    );
    let (status, page) = text(&app, "/incidents/INC-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Payments fail for some cards"), "{page}");
    assert!(!page.contains("db failover"), "{page}");

    let (_, feed) = text(&app, "/feed.atom").await;
    assert!(feed.contains("Payments fail for some cards"), "{feed}");
    let (_, svg) = text(&app, "/badge/checkout/status.svg").await;
    assert!(svg.contains("major outage"), "{svg}");

    // The breach: no id, title, service or note anywhere public.
    let all = everything(&app).await;
    assert!(!all.contains("XYZZY"), "{all}");
    assert!(!all.contains("INC-2"), "{all}");
    let (status, _) = text(&app, "/incidents/INC-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, svg) = text(&app, "/badge/vault/status.svg").await;
    assert!(svg.contains(">operational<"), "{svg}");
    let (_, json_text) = text(&app, "/status.json").await;
    assert!(!json_text.contains("\"vault\"]"), "{json_text}");
    app.stop().await;
}

#[tokio::test]
async fn feed_and_badges_are_valid_xml_and_answers_are_cacheable() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    ticket(&app, "Search & <results> slow", "performance", "search").await;
    send(
        &app,
        "PATCH",
        "/api/v1/incidents/INC-1",
        json!({"public": true, "reason": "visible"}),
    )
    .await;

    let response = app.client.get(app.url("/feed.atom")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/atom+xml");
    let feed = response.text().await.unwrap();
    let doc = roxmltree::Document::parse(&feed).unwrap_or_else(|e| panic!("{e}: {feed}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "feed");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2005/Atom")
    );
    for name in ["id", "title", "updated"] {
        child(root, name);
    }
    let rels: Vec<&str> = root
        .children()
        .filter(|n| n.has_tag_name("link"))
        .filter_map(|n| n.attribute("rel"))
        .collect();
    assert_eq!(rels, ["self", "alternate"]);
    let entries: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .collect();
    assert_eq!(entries.len(), 1, "one update so far: {feed}");
    let entry = entries[0];
    assert!(child(entry, "id").text().unwrap().starts_with("tag:"));
    assert_eq!(
        child(entry, "title").text().unwrap(),
        "Search & <results> slow: investigating"
    );
    let content = child(entry, "content");
    assert_eq!(content.attribute("type"), Some("html"));
    assert!(
        child(entry, "link")
            .attribute("href")
            .unwrap()
            .ends_with("/incidents/INC-1")
    );
    let (_, other) = text(&app, "/feed/checkout.atom").await;
    let other = roxmltree::Document::parse(&other).unwrap();
    assert_eq!(
        other
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("entry"))
            .count(),
        0
    );

    // Badges.
    let response = app
        .client
        .get(app.url("/badge/search/status.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(response.headers().contains_key(ETAG));
    let svg = response.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(texts, ["search", "degraded"], "performance degrades");
    let (_, svg) = text(&app, "/badge/checkout/uptime-30d.svg").await;
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(texts, ["uptime 30d", "no data"]);
    for path in ["/badge/nope/status.svg", "/badge/search/uptime-1d.svg"] {
        let (status, _) = text(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    // ETag and Last-Modified, and 304 to either.
    for path in [
        "/",
        "/status.json",
        "/feed.atom",
        "/badge/search/status.svg",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let etag = response.headers()[ETAG].clone();
        let modified = response.headers()[LAST_MODIFIED].clone();
        assert!(etag.to_str().unwrap().starts_with('"'), "{path}: strong");
        let again = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        let again = app
            .client
            .get(app.url(path))
            .header(IF_MODIFIED_SINCE, modified)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        let stale = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, "\"stale\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=10");

    // The stylesheet under its hashed name.
    let html = text(&app, "/").await.1;
    let start = html.find("/static/status.").unwrap();
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let response = app.client.get(app.url(href)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    app.stop().await;
}

#[tokio::test]
async fn resolved_incidents_stay_on_the_page_and_in_the_monthly_history() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    ticket(&app, "Old checkout outage", "availability", "checkout").await;
    send(
        &app,
        "PATCH",
        "/api/v1/incidents/INC-1",
        json!({"public": true, "reason": "visible"}),
    )
    .await;
    send(
        &app,
        "POST",
        "/api/v1/incidents/INC-1/resolve",
        json!({"resolution": "restarted"}),
    )
    .await;
    send(&app, "POST", "/api/v1/incidents/INC-1/close", json!({})).await;

    let (_, page) = app.get("/status.json").await;
    let incidents = page["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "closed, kept as recent: {page}");
    assert_eq!(incidents[0]["updates"][0]["status"], "resolved");
    assert!(incidents[0]["resolved_at"].is_string());
    assert_eq!(page["status"]["indicator"], "none");
    let (status, html) = text(&app, "/incidents/INC-1").await;
    assert_eq!(status, StatusCode::OK, "{html}");

    // The month it was resolved in (start_time is March 2026), with its neighbours.
    let (status, html) = text(&app, "/history?month=2026-03").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Old checkout outage"), "{html}");
    assert!(
        !html.contains("month=2026-02") && !html.contains("month=2026-04"),
        "nothing stored before, no month after this one: {html}"
    );
    let (_, html) = text(&app, "/history?month=2026-02").await;
    assert!(!html.contains("Old checkout outage"), "{html}");
    assert!(html.contains("href=\"/history?month=2026-03\""), "{html}");
    for bad in ["/history?month=2026-13", "/history?month=2099-01"] {
        let (status, _) = text(&app, bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }

    // Forty days later it has left the page, not the history.
    app.clock
        .advance(std::time::Duration::from_secs(40 * 86_400));
    let (_, page) = app.get("/status.json").await;
    assert_eq!(page["incidents"], json!([]), "{page}");
    let (_, html) = text(&app, "/history?month=2026-03").await;
    assert!(html.contains("Old checkout outage"), "{html}");
    app.stop().await;
}

/// The page's uptime comes from the probes that feed each listed service, and a
/// maintenance in progress shows on its services, on `/`, `/status.json` and the badges.
#[tokio::test]
async fn uptime_and_maintenance_show_on_the_page_and_the_badges() {
    let target = Target::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0
status_page:
  services:
    - {name: shop, display: Shop, match: {team: shop}}
    - {name: search, display: Search}
",
        &[(
            "web.yaml",
            &format!(
                "probes:\n  - name: web\n    interval: 2s\n    timeout: 2s\n    labels: {{team: shop}}\n    http: {{url: \"{}\"}}\n",
                target.url()
            ),
        )],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    // The probe's runs become the shop's uptime; search has no probe: no data.
    let page = eventually(
        "uptime on status.json",
        std::time::Duration::from_secs(30),
        async || {
            let (_, page) = app.get("/status.json").await;
            let shop = page["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "shop")?
                .clone();
            shop["uptime_90d"].as_f64().map(|_| page)
        },
    )
    .await;
    let search = page["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "search")
        .unwrap();
    assert!(search["uptime_90d"].is_null(), "{page}");
    // A slow run on a busy machine may fail: the figure is a percentage, whichever.
    let percent = page["services"][0]["uptime_90d"].as_f64().unwrap();
    let (status, badge) = text(&app, "/badge/shop/uptime-7d.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(badge.contains(&format!("{percent:.2}%")), "{badge}");
    let (_, badge) = text(&app, "/badge/search/uptime-30d.svg").await;
    assert!(badge.contains("no data"), "{badge}");
    let (_, html) = text(&app, "/").await;
    assert!(
        html.contains(&format!("{percent:.2}% uptime over 90 days")),
        "no uptime text:\n{html}"
    );

    // A maintenance of the shop, in progress: the shop shows it, search does not.
    let starts = start_time().to_rfc3339();
    let ends = (start_time() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, made) = app
        .post(
            "/api/v1/maintenances",
            Some(
                json!({"title": "Database upgrade", "message": "Orders may queue for a minute.",
                        "services": ["shop"], "starts_at": starts, "ends_at": ends}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let page = eventually(
        "the maintenance on status.json",
        std::time::Duration::from_secs(30),
        async || {
            let (_, page) = app.get("/status.json").await;
            (!page["maintenances"].as_array()?.is_empty()).then_some(page)
        },
    )
    .await;
    let status_of = |name: &str| {
        page["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("shop"), "maintenance", "{page}");
    assert_eq!(status_of("search"), "operational", "{page}");
    let (_, html) = text(&app, "/").await;
    assert!(html.contains("Database upgrade"), "{html}");
    assert!(html.contains("Orders may queue for a minute."), "{html}");
    let (_, badge) = text(&app, "/badge/shop/status.svg").await;
    assert!(badge.contains("maintenance"), "{badge}");
    app.stop().await;
}

async fn publish(app: &TestApp, id: &str) {
    send(
        app,
        "PATCH",
        &format!("/api/v1/incidents/{id}"),
        json!({"public": true, "reason": "customers notice"}),
    )
    .await;
}

#[tokio::test]
async fn the_history_lists_each_months_public_incidents_by_their_opening_in_the_pages_zone() {
    let dir = ConfigDir::new(CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    // March 2 (UTC and Asia/Jakarta alike).
    assert_eq!(
        ticket(&app, "March outage", "availability", "checkout").await,
        "INC-1"
    );
    publish(&app, "INC-1").await;
    // March 31, 18:00 UTC is April 1, 01:00 in Jakarta: April on this page.
    let april_first = chrono::DateTime::parse_from_rfc3339("2026-03-31T18:00:00Z").unwrap();
    app.clock.set(april_first.with_timezone(&chrono::Utc));
    assert_eq!(
        ticket(&app, "April outage", "availability", "search").await,
        "INC-2"
    );
    publish(&app, "INC-2").await;
    ticket(&app, "Private QUUX", "availability", "search").await;
    assert_eq!(ticket(&app, SECRET, "data_breach", "vault").await, "INC-4");
    publish(&app, "INC-4").await;

    let (status, april) = text(&app, "/history").await;
    assert_eq!(status, StatusCode::OK);
    assert!(april.contains("April 2026"), "{april}");
    assert!(april.contains("April outage"), "{april}");
    assert!(!april.contains("March outage"), "{april}");
    assert!(!april.contains("QUUX"), "unpublished: {april}");
    assert!(!april.contains("XYZZY"), "restricted: {april}");
    assert!(
        april.contains(incidentd::web::status::HISTORY_NOTICE),
        "{april}"
    );
    assert!(april.contains("href=\"/history?month=2026-03\""), "{april}");
    assert!(!april.contains("month=2026-05"), "{april}");

    let (_, march) = text(&app, "/history?month=2026-03").await;
    assert!(march.contains("March outage"), "{march}");
    assert!(!march.contains("April outage"), "{march}");
    assert!(
        !march.contains(incidentd::web::status::HISTORY_NOTICE),
        "{march}"
    );
    assert!(march.contains("href=\"/history?month=2026-04\""), "{march}");
    assert!(!march.contains("month=2026-02"), "nothing before: {march}");

    // An empty month before anything stored: no link further back.
    let (status, february) = text(&app, "/history?month=2026-02").await;
    assert_eq!(status, StatusCode::OK);
    assert!(february.contains("No incidents this month"), "{february}");
    assert!(!february.contains("month=2026-01"), "{february}");
    app.stop().await;
}
