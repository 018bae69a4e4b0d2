//! The public status page in a real headless Chromium, driven over WebDriver: what a
//! visitor sees, on a desktop and on a phone, saved as screenshots under
//! `target/tmp/screenshots/` to look at.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// `chromedriver` on a free loopback port with a headless Chromium session; both stopped
/// when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// `None` (with a message) when Chromium or its driver is not installed and interop
    /// is not required.
    pub async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (find_binary("chromedriver"), chromium()) else {
            assert!(
                !interop_required(),
                "INCIDENTD_REQUIRE_INTEROP=1 but chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually_ok(
            "chromedriver to take a session",
            Duration::from_secs(30),
            async || {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
            },
        )
        .await;
        Some(Browser { client, driver })
    }

    /// Saves what the window shows as `NAME.png` under `target/tmp/screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The visible text of the first element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The visible text of the first element `css` finds, or `None` while the page is
    /// loading (the element is missing or was replaced meanwhile).
    pub async fn text_now(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |found| found.len())
    }

    /// Fails when the page is wider than the window (375 px: a phone), saying `what`.
    pub async fn assert_no_horizontal_scroll(&self, what: &str) {
        let overflow = self
            .client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().is_some_and(|o| o <= 0),
            "{what} is wider than the window by {overflow}px"
        );
    }

    /// Types `text` into the first element `css` finds.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Clicks the first element `css` finds.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Debian's `chromium`, or another Chrome on the PATH.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(find_binary)
}

fn config(target: &Target) -> (String, String) {
    let config = "listen: 127.0.0.1:0
status_page:
  title: Example status
  timezone: Asia/Jakarta
  services:
    - {name: checkout, display: Checkout, group: Shop}
    - {name: search, display: Search, group: Shop}
    - {name: login, display: Login}
mail:
  smtp_url_env: IT_SMTP_URL
  from: 'Status <status@example.com>'
"
    .to_owned();
    let rules = format!(
        "probes:\n  - name: checkout-api\n    interval: 2s\n    timeout: 2s\n    labels: {{service: checkout}}\n    http: {{url: \"{}\"}}\n",
        target.url()
    );
    (config, rules)
}

/// A visitor opens the page: an alert of a listed service is open with a public note, a
/// maintenance of another is in progress, the checked service has an uptime bar. The
/// banner, the services, the incident and its update are there, in landmarks, with
/// machine-readable times, and the page fits a phone's width. Then the visitor subscribes
/// by email through the page's form, confirms through the link a real SMTP server on
/// loopback received, gets the next update by mail and unsubscribes through its link.
#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_sees_the_page_subscribes_confirms_and_unsubscribes() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (smtp_port, mails) = crate::subscriptions::smtp_server();
    let target = Target::start(200).await;
    let (config, rules) = config(&target);
    let dir = ConfigDir::new(&config, &[("checkout.yaml", &rules)]);
    let env = HashMap::from([(
        "IT_SMTP_URL".to_owned(),
        format!("smtp://127.0.0.1:{smtp_port}"),
    )]);
    let app = TestApp::spawn(&dir, env).await;
    let (status, _) = app
        .post(
            "/api/v2/alerts",
            Some(json!([{
                "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
                "annotations": {"summary": "Checkout failing for some customers"},
            }])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/v1/incidents").await;
    let id = list["incidents"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            Some(json!({"text": "We found the cause and are rolling back.", "public": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            "/api/v1/maintenances",
            Some(json!({
                "title": "Login provider upgrade",
                "message": "Signing in may take longer for a few minutes.",
                "services": ["login"],
                "starts_at": start_time().to_rfc3339(),
                "ends_at": (start_time() + chrono::Duration::hours(2)).to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Today's uptime of the checkout API's probe is on the bar.
    eventually("today's uptime", Duration::from_secs(30), async || {
        let (_, page) = app.get("/status.json").await;
        let services = page["services"].as_array()?.clone();
        services
            .iter()
            .any(|s| s["name"] == "checkout" && s["uptime_90d"].is_number())
            .then_some(())
    })
    .await;

    browser.client.goto(&app.url("/")).await.unwrap();
    let main = browser.text("main").await;
    for expected in [
        "Checkout",
        "Search",
        "Login",
        "Checkout failing for some customers",
        "We found the cause and are rolling back.",
        "Login provider upgrade",
        "Maintenance",
        "% uptime over 90 days",
    ] {
        assert!(
            main.contains(expected),
            "`{expected}` not on the page:\n{main}"
        );
    }
    let title = browser.client.title().await.unwrap();
    assert!(title.contains("Example status"), "title: {title}");
    let lang = browser
        .client
        .execute("return document.documentElement.lang", vec![])
        .await
        .unwrap();
    assert!(lang.as_str().is_some_and(|l| !l.is_empty()), "no lang");
    assert!(browser.count("header").await >= 1, "no header landmark");
    assert!(browser.count("footer").await >= 1, "no footer landmark");
    assert!(
        browser.count("time[datetime]").await >= 1,
        "no <time datetime>"
    );
    // Today has data on the checkout bar only (a slow run on a busy machine may fail).
    assert_eq!(
        browser.count(".day-up, .day-partial, .day-down").await,
        1,
        "today has no data on the checkout bar"
    );
    assert!(
        browser.count("label[for=subscribe-email]").await == 1,
        "the email field has no label"
    );
    // Tall enough for the whole page in one picture.
    browser.client.set_window_size(1280, 2200).await.unwrap();
    browser.screenshot("status-page-desktop").await;

    // A phone: nothing wider than the screen.
    browser.client.set_window_size(375, 800).await.unwrap();
    browser.client.refresh().await.unwrap();
    browser.assert_no_horizontal_scroll("the page").await;
    browser.screenshot("status-page-phone").await;
    browser.client.set_window_size(1280, 1000).await.unwrap();

    // The incident's own page.
    browser
        .client
        .goto(&app.url(&format!("/incidents/{id}")))
        .await
        .unwrap();
    let main = browser.text("main").await;
    assert!(
        main.contains("We found the cause and are rolling back."),
        "{main}"
    );
    browser.screenshot("status-page-incident").await;

    // Subscribe to Checkout through the form.
    browser.client.goto(&app.url("/")).await.unwrap();
    browser
        .type_into("#subscribe-email", "visitor@example.com")
        .await;
    browser.click("input[name=services][value=checkout]").await;
    browser.click("form.subscribe button[type=submit]").await;
    eventually(
        "the sign-up's answer",
        Duration::from_secs(30),
        async || {
            browser
                .text_now("body")
                .await?
                .to_lowercase()
                .contains("mailbox")
                .then_some(())
        },
    )
    .await;
    let confirmation = eventually(
        "the confirmation mail",
        Duration::from_secs(30),
        async || mails.lock().unwrap().first().cloned(),
    )
    .await;
    assert!(
        confirmation.contains("visitor@example.com"),
        "{confirmation}"
    );
    let confirm = crate::subscriptions::link(&confirmation, "confirm");
    browser.client.goto(&app.url(&confirm)).await.unwrap();
    let answer = browser.text("body").await;
    assert!(
        answer.contains("You will be told of incidents by email"),
        "{answer}"
    );
    browser.screenshot("status-page-subscribed").await;

    // The next public update of Checkout arrives by mail, with its unsubscribe link.
    let (status, _) = app
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            Some(json!({"text": "The rollback is done; we are watching.", "public": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let update = eventually("the update's mail", Duration::from_secs(30), async || {
        mails
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains("The rollback is done"))
            .cloned()
    })
    .await;
    assert!(update.contains("List-Unsubscribe"), "{update}");
    let unsubscribe = crate::subscriptions::link(&update, "unsubscribe");
    browser.client.goto(&app.url(&unsubscribe)).await.unwrap();
    browser.click("form button[type=submit]").await;
    // The click returns once the form is sent; the answer's page loads after.
    eventually(
        "the unsubscribed page",
        Duration::from_secs(30),
        async || {
            browser
                .text_now("body")
                .await?
                .contains("no more mail")
                .then_some(())
        },
    )
    .await;
    browser.screenshot("status-page-unsubscribed").await;

    browser.stop().await;
    app.stop().await;
}

/// A ticket's reporter opens their private link in a real browser: the ticket, its public
/// note and the call scheduled from L2 are there, the internal note is not; they add a
/// comment through the page's form (no JavaScript) and it lands on the timeline as theirs.
/// On a phone nothing is wider than the screen.
#[tokio::test(flavor = "multi_thread")]
async fn a_reporter_sees_the_ticket_and_its_call_and_comments_through_the_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nstatus_page:\n  title: Example desk\n  timezone: Asia/Jakarta\n",
        &[],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let (status, ticket) = app
        .post(
            "/api/v1/incidents",
            Some(
                json!({"title": "VPN drops every few minutes", "service": "vpn",
                        "description": "since this morning, on every network",
                        "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().unwrap().to_owned();
    let link = ticket["reporter_link"].as_str().unwrap().to_owned();
    for (verb, body) in [
        (
            "notes",
            json!({"text": "INTERNAL: the concentrator in DC2 leaks sessions", "public": false}),
        ),
        (
            "notes",
            json!({"text": "We found the cause and are moving you to another gateway.", "public": true}),
        ),
        ("escalate", json!({"reason": "network team"})),
        (
            "calls",
            json!({"url": "https://meet.example/vpn-ana", "at": "2026-03-02T10:00:00Z",
                   "participants": ["Ana", "Budi (network)"],
                   "note": "We will check your client settings together."}),
        ),
    ] {
        let (status, answer) = app
            .post(&format!("/api/v1/incidents/{id}/{verb}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{verb}: {answer}");
    }

    browser.client.goto(&app.url(&link)).await.unwrap();
    let main = browser.text("main").await;
    for expected in [
        "VPN drops every few minutes",
        "Received, waiting for a responder",
        "We found the cause and are moving you to another gateway.",
        "2 Mar 2026, 17:00 WIB",
        "Join the call",
        "Budi (network)",
        "We will check your client settings together.",
    ] {
        assert!(
            main.contains(expected),
            "`{expected}` not on the page:\n{main}"
        );
    }
    assert!(
        !main.contains("INTERNAL"),
        "an internal note on the page:\n{main}"
    );
    assert!(!main.contains("ana@example.com"), "{main}");
    let join = browser
        .client
        .find(Locator::Css(".call a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(join.as_deref(), Some("https://meet.example/vpn-ana"));
    assert_eq!(browser.count("label[for=comment]").await, 1, "no label");
    browser.client.set_window_size(1280, 1400).await.unwrap();
    browser.screenshot("reporter-page-desktop").await;

    // The reporter comments through the form.
    browser
        .type_into("#comment", "It also drops on my phone's hotspot.")
        .await;
    browser.click("form.comment button[type=submit]").await;
    eventually(
        "the page after the comment",
        Duration::from_secs(30),
        async || {
            let main = browser.text_now("main").await?;
            (main.contains("your comment was added")
                && main.contains("It also drops on my phone's hotspot."))
            .then_some(())
        },
    )
    .await;
    browser.screenshot("reporter-page-commented").await;
    let (_, incident) = app.get(&format!("/api/v1/incidents/{id}")).await;
    let last = incident["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "reporter_comment", "{last}");
    assert_eq!(last["actor"], "reporter: Ana");
    assert_eq!(last["message"], "It also drops on my phone's hotspot.");

    // A phone: nothing wider than the screen.
    browser.client.set_window_size(375, 800).await.unwrap();
    browser.client.goto(&app.url(&link)).await.unwrap();
    browser.assert_no_horizontal_scroll("the page").await;
    browser.screenshot("reporter-page-phone").await;

    // Revoked, the link shows nothing of the ticket any more.
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/incidents/{id}/reporter-link")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    browser.client.refresh().await.unwrap();
    let main = browser.text("main").await;
    assert!(main.contains("This link is not valid"), "{main}");
    assert!(!main.contains("VPN drops"), "{main}");

    browser.stop().await;
    app.stop().await;
}
