//! Daily uptime from probe history: a real probe against a loopback target counts its runs
//! per UTC day, `GET /api/v1/probes` shows the 7/30/90-day figures, and the days survive a
//! restart (graceful on a manual clock across days, and SIGKILL of the real binary).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::restart::Server;
use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);

fn rules(interval: &str, target: &Target) -> String {
    // No rules: a probe counts in the uptime history whether or not a rule reads it.
    format!(
        "probes:\n  - name: web\n    interval: {interval}\n    timeout: 100ms\n    http: {{url: \"{}\"}}\n",
        target.url()
    )
}

/// The probe's entry in `GET /api/v1/probes`.
async fn probe(app: &TestApp, name: &str) -> Value {
    let (status, body) = app.get("/api/v1/probes").await;
    assert_eq!(status, 200, "{body}");
    body["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no probe {name} in {body}"))
}

/// Waits until the probe's last result on the board has `success`, and returns it.
async fn last_success(app: &TestApp, success: bool) -> Value {
    eventually("a probe result", DEADLINE, async || {
        let web = probe(app, "web").await;
        (web["last_result"]["success"] == success).then_some(web)
    })
    .await
}

/// Waits until the committed history gives `window` a ratio that `accept` takes.
async fn uptime_until(app: &TestApp, window: &str, accept: impl Fn(f64) -> bool) -> Value {
    eventually(&format!("uptime {window}"), DEADLINE, async || {
        let uptime = probe(app, "web").await["uptime"].clone();
        uptime[window]
            .as_f64()
            .filter(|r| accept(*r))
            .map(|_| uptime)
    })
    .await
}

fn days(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap() * 86_400)
}

#[tokio::test]
async fn days_are_counted_shown_and_kept_across_a_restart() {
    let target = Target::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &rules("100ms", &target))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    // Day 1: every run succeeds.
    let fresh = probe(&app, "web").await;
    assert!(fresh["uptime"].is_object(), "{fresh}");
    let day1 = uptime_until(&app, "7d", |r| r == 1.0).await;
    assert_eq!(day1["30d"], 1.0);
    assert_eq!(day1["90d"], 1.0);

    // Day 2: the target fails for a while (runs started before the switch may still pass).
    app.clock.advance(days(1));
    target.set(503);
    last_success(&app, false).await;
    let failing = uptime_until(&app, "7d", |r| r < 1.0).await;
    assert!(
        failing["7d"].as_f64().unwrap() > 0.0,
        "day 1 still counts: {failing}"
    );
    // Back up: once a run saw it, every later run does.
    target.set(200);
    last_success(&app, true).await;

    // Day 10: day 2 left the 7-day window, not the 30-day one; day 3 to 9 have no data.
    app.clock.advance(days(8));
    let day10 = uptime_until(&app, "7d", |r| r == 1.0).await;
    let month = day10["30d"].as_f64().unwrap();
    assert!(month > 0.0 && month < 1.0, "{day10}");
    assert_eq!(day10["90d"], day10["30d"]);

    // Restart on the same store, the probe slowed down to no run during the test: the
    // figures are exactly what was committed before the shutdown.
    app.stop().await;
    std::fs::write(
        dir.path().join("rules").join("web.yaml"),
        rules("1h", &target),
    )
    .unwrap();
    let now: DateTime<Utc> = start_time() + chrono::Duration::days(9);
    let stopped = {
        // The last committed figures: read from the store the restart loads.
        let app = TestApp::spawn_at(&dir, HashMap::new(), now).await;
        let web = probe(&app, "web").await;
        assert!(web["last_result"].is_null(), "no run yet: {web}");
        let uptime = web["uptime"].clone();
        app.stop().await;
        uptime
    };
    assert_eq!(stopped["7d"], 1.0, "{stopped}");
    let stopped_month = stopped["30d"].as_f64().unwrap();
    assert!(stopped_month > 0.0 && stopped_month < 1.0, "{stopped}");
    // Not a run of day 2 was lost: the month is no better than before the restart (later
    // runs of day 10 only succeed, so it can only have risen until the shutdown).
    assert!(stopped_month >= month, "{stopped} after {day10}");

    // 95 days later day 2 is out of every window: nothing but no data is left.
    let later = TestApp::spawn_at(&dir, HashMap::new(), now + chrono::Duration::days(95)).await;
    let web = probe(&later, "web").await;
    for window in ["7d", "30d", "90d"] {
        assert!(web["uptime"][window].is_null(), "{window}: {web}");
    }
    later.stop().await;
}

#[tokio::test]
async fn sigkill_keeps_the_days_counted() {
    let target = Target::start(503).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &rules("100ms", &target))],
    );
    let uptime = async |server: &Server| -> Value {
        let body: Value = reqwest::get(server.url("/api/v1/probes"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["probes"][0]["uptime"]["7d"].clone()
    };

    // Every run fails, and is committed, before the crash.
    let first = Server::start(&dir);
    eventually("failed runs counted", DEADLINE, async || {
        (uptime(&first).await == 0.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.kill();

    // After the restart every run succeeds: had the failures been lost, the ratio would
    // be 1.
    target.set(200);
    let second = Server::start(&dir);
    let ratio = eventually("successful runs counted", DEADLINE, async || {
        uptime(&second).await.as_f64().filter(|r| *r > 0.0)
    })
    .await;
    assert!(
        ratio < 1.0,
        "the failures before the crash were lost: {ratio}"
    );
}
