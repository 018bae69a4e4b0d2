//! The responder console in a real headless Chromium over WebDriver: sign in, the queue
//! with its ticking countdowns, acknowledge and escalate by clicking and by keyboard, a
//! change made through the API appearing without a reload (Server-Sent Events), a viewer
//! who cannot act, sign-out after which the cookie opens nothing. Screenshots under
//! `target/tmp/screenshots/console-*.png`.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::console::{ADMIN, RESPONDER, RESPONDER2, VIEWER, browserless, env, incident, ticket};
use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// Presses `keys` one after another, as a person on the keyboard (trusted key events to
/// whatever has the focus).
async fn press(browser: &Browser, keys: &str) {
    let mut actions = KeyActions::new("keyboard".to_owned());
    for key in keys.chars() {
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    browser.client.perform_actions(actions).await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap();
}

async fn type_into(browser: &Browser, css: &str, text: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until the text of `css` contains `want`.
async fn until_text(browser: &Browser, css: &str, want: &str) -> String {
    eventually(&format!("`{want}` in `{css}`"), DEADLINE, async || {
        let text = browser.text_now(css).await?;
        text.contains(want).then_some(text)
    })
    .await
}

/// Marks the page: a reload would lose the mark.
async fn mark(browser: &Browser) {
    browser
        .client
        .execute("window.__notReloaded = true; return true", vec![])
        .await
        .unwrap();
}

async fn still_marked(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.__notReloaded === true", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
}

async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.client.goto(&app.url("/console")).await.unwrap();
    // Not signed in: the sign-in page, which comes back to the queue.
    eventually("the sign-in page", DEADLINE, async || {
        let url = browser.client.current_url().await.ok()?;
        url.path().ends_with("/console/sign-in").then_some(())
    })
    .await;
    type_into(browser, "#token", token).await;
    click(browser, "form.sign-in button[type=submit]").await;
    until_text(browser, "h1", "Queue").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_responder_works_the_queue_live_and_a_viewer_cannot_act() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = ConfigDir::new(crate::console::CONFIG, &[]);
    let app = TestApp::spawn(&dir, env()).await;
    // P2 (high × medium) and P3 (medium × medium, the default): the P2 is the first row.
    let first = ticket(
        &app,
        RESPONDER,
        "Checkout errors for card payments",
        "availability",
    )
    .await;
    let response = app
        .client
        .post(app.url("/api/v1/incidents"))
        .bearer_auth(RESPONDER)
        .json(&json!({"title": "Search results stale", "reporter": {"name": "Eli"}, "service": "search"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let second = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    sign_in(&browser, &app, RESPONDER).await;
    let queue = browser.text("#queue").await;
    assert!(
        queue.contains("Checkout errors for card payments"),
        "{queue}"
    );
    assert!(queue.contains("Search results stale"), "{queue}");
    // The countdown is on the page and ticks (the script counts down from the server's
    // figure; the manual clock of the server does not move meanwhile).
    let row = format!("tr[data-id='{first}'] .clock[data-seconds] .clock-text");
    let before = browser.text(&row).await;
    assert!(before.ends_with("left"), "{before}");
    eventually("the countdown to tick", DEADLINE, async || {
        let now = browser.text_now(&row).await?;
        (now != before && now.ends_with("left")).then_some(())
    })
    .await;
    // The session cookie is not readable by scripts (HttpOnly).
    let cookies = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(!cookies.as_str().unwrap_or("").contains("incidentd_session"));
    browser.client.set_window_size(1280, 900).await.unwrap();
    browser.screenshot("console-queue").await;

    // Acknowledge the first by clicking its button.
    mark(&browser).await;
    click(&browser, &format!("button.ack[value='{first}']")).await;
    until_text(
        &browser,
        &format!("tr[data-id='{first}'] .state"),
        "Acknowledged",
    )
    .await;
    assert_eq!(incident(&app, &first).await["state"], "acknowledged");

    // Acknowledge the second by keyboard: j, j selects the second row, a acknowledges.
    press(&browser, "jj").await;
    let selected = browser.text("#queue-rows tr.selected").await;
    assert!(selected.contains("Search results stale"), "{selected}");
    press(&browser, "a").await;
    until_text(
        &browser,
        &format!("tr[data-id='{second}'] .state"),
        "Acknowledged",
    )
    .await;
    assert_eq!(incident(&app, &second).await["state"], "acknowledged");

    // Escalate the first by clicking, on its page.
    click(
        &browser,
        &format!("a.open[href='/console/incidents/{first}']"),
    )
    .await;
    until_text(&browser, "h1", "Checkout errors for card payments").await;
    type_into(&browser, "#escalate-reason", "card provider down").await;
    click(&browser, "#form-escalate button[type=submit]").await;
    until_text(&browser, ".tier", "L2").await;
    until_text(&browser, "#timeline", "card provider down").await;
    browser.screenshot("console-incident").await;

    // Escalate the second by keyboard: e to the reason, type, Enter.
    browser
        .client
        .goto(&app.url(&format!("/console/incidents/{second}")))
        .await
        .unwrap();
    until_text(&browser, "h1", "Search results stale").await;
    press(&browser, "e").await;
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("escalate-reason")
    );
    focused.send_keys("index lagging\u{e007}").await.unwrap(); // U+E007: Enter
    until_text(&browser, ".tier", "L2").await;
    assert_eq!(incident(&app, &second).await["tier"], "L2");

    // A change elsewhere (the API, another responder) shows on this open page by itself.
    mark(&browser).await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/incidents/{second}/notes")))
        .bearer_auth(RESPONDER2)
        .json(&json!({"text": "bob: reindexing now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    until_text(&browser, "#timeline", "bob: reindexing now").await;
    assert!(still_marked(&browser).await, "the page was reloaded");
    // And on the queue: a new incident and a change to a row.
    browser.client.goto(&app.url("/console")).await.unwrap();
    until_text(&browser, "h1", "Queue").await;
    mark(&browser).await;
    let third = ticket(
        &app,
        RESPONDER2,
        "Login failing for SSO users",
        "availability",
    )
    .await;
    until_text(&browser, "#queue", "Login failing for SSO users").await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/incidents/{third}/escalate")))
        .bearer_auth(RESPONDER2)
        .json(&json!({"reason": "all SSO users", "tier": "L3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    until_text(&browser, &format!("tr[data-id='{third}']"), "L3").await;
    assert!(still_marked(&browser).await, "the queue was reloaded");
    browser.screenshot("console-queue-live").await;

    // On a phone: nothing wider than the screen.
    browser.client.set_window_size(375, 800).await.unwrap();
    browser.client.refresh().await.unwrap();
    until_text(&browser, "h1", "Queue").await;
    browser.assert_no_horizontal_scroll("the console").await;
    browser.screenshot("console-phone").await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // Sign out: the cookie the browser had opens nothing any more.
    let cookie = browser
        .client
        .get_named_cookie("incidentd_session")
        .await
        .unwrap();
    let pair = format!("incidentd_session={}", cookie.value());
    click(&browser, "form.sign-out button[type=submit]").await;
    until_text(&browser, "h1", "Sign in").await;
    let response = browserless()
        .get(app.url("/console"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // A viewer: the queue and the incident without a button or form to act.
    sign_in(&browser, &app, VIEWER).await;
    assert_eq!(browser.count("button.ack").await, 0);
    assert_eq!(browser.count("input[name=ids]").await, 0);
    browser
        .client
        .goto(&app.url(&format!("/console/incidents/{first}")))
        .await
        .unwrap();
    until_text(&browser, "h1", "Checkout errors").await;
    assert_eq!(browser.count("form.verb").await, 0);
    assert!(
        browser
            .text("main")
            .await
            .contains("may read incidents, not act on them")
    );
    press(&browser, "a").await; // nothing to press
    browser.screenshot("console-viewer").await;
    assert_eq!(incident(&app, &first).await["tier"], "L2");
    let _ = ADMIN;

    browser.stop().await;
    app.stop().await;
}
