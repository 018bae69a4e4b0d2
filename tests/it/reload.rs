//! Live reload: `POST /-/reload` and `SIGHUP` re-read the configuration and every rule
//! file. Invalid: nothing changes, every problem reported with its position. Valid: new
//! probes and rules run, removed rules leave their incidents open with a note, tokens
//! rotate, keys that need a restart are reported.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::restart::Server;
use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);

fn probe(name: &str, target: &Target) -> String {
    format!(
        "probes:\n  - name: {name}\n    interval: 300ms\n    timeout: 300ms\n    \
         labels: {{service: {name}}}\n    http: {{url: \"{}\"}}\n\
         rules:\n  - name: {name}-down\n    probe: {name}\n    when: '[STATUS] != 200'\n    \
         incident: {{title: '{name} down', category: availability, impact: high, urgency: high}}\n",
        target.url()
    )
}

fn write(dir: &ConfigDir, file: &str, text: &str) {
    std::fs::write(dir.path().join(file), text).unwrap();
}

async fn rule_names(app: &TestApp) -> Vec<String> {
    let (_, body) = app.get("/api/v1/rules").await;
    body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_reload_adds_a_probe_and_a_rule_and_they_run() {
    let healthy = Target::start(200).await;
    let failing = Target::start(503).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &probe("web", &healthy))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    assert_eq!(rule_names(&app).await, ["web-down"]);

    write(&dir, "rules/api.yaml", &probe("api", &failing));
    let (status, report) = app.post("/-/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rules_added"], json!(["api-down"]));
    assert_eq!(report["probes_started"], json!(["api"]));
    assert_eq!(report["probes_unchanged"], 1);
    assert_eq!(report["restart_required"], json!([]));
    assert_eq!(
        rule_names(&app).await,
        ["api-down", "web-down"],
        "in file order"
    );

    let incident = eventually("the new rule's incident", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/incidents").await;
        body["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["source"]["rule"] == "api-down")
            .cloned()
    })
    .await;
    assert_eq!(incident["title"], "api down");
    assert_eq!(incident["source"]["rule"], "api-down");
    let (_, probes) = app.get("/api/v1/probes").await;
    assert_eq!(probes["probes"].as_array().unwrap().len(), 2);
    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "incidentd_config_last_reload_successful"),
        Some(1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_broken_rule_file_changes_nothing_and_every_problem_is_named() {
    let healthy = Target::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &probe("web", &healthy))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let before = app.metrics().await;
    let reloaded_at = metric(
        &before,
        "incidentd_config_last_reload_success_timestamp_seconds",
    );
    assert!(reloaded_at.is_some(), "{before}");

    // Two problems in two files: both are reported; the good new rule is not applied.
    write(
        &dir,
        "rules/bad.yaml",
        "probes:\n  - name: db\n    interval: soon\n    tcp: {address: \"127.0.0.1:9\"}\n\
         rules:\n  - {name: db-down, probe: nosuch, when: '[CONNECTED] == false'}\n",
    );
    write(&dir, "rules/good.yaml", &probe("api", &healthy));
    let (status, body) = app.post("/-/reload", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_config");
    let message = body["error"]["message"].as_str().unwrap();
    let bad = dir.path().join("rules/bad.yaml");
    assert!(
        message.contains(&format!("{}:3:15: ", bad.display())),
        "the interval's position: {message}"
    );
    assert!(
        message.contains(&format!("{}:6:", bad.display())) && message.contains("nosuch"),
        "the unknown probe: {message}"
    );
    assert_eq!(rule_names(&app).await, ["web-down"], "nothing changed");
    let (_, probes) = app.get("/api/v1/probes").await;
    assert_eq!(probes["probes"].as_array().unwrap().len(), 1);
    let after = app.metrics().await;
    assert_eq!(
        metric(&after, "incidentd_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &after,
            "incidentd_config_last_reload_success_timestamp_seconds"
        ),
        reloaded_at,
        "the last success is still the start"
    );

    // Fixed: the next reload applies everything.
    std::fs::remove_file(&bad).unwrap();
    let (status, _) = app.post("/-/reload", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        rule_names(&app).await,
        ["api-down", "web-down"],
        "in file order"
    );
    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "incidentd_config_last_reload_successful"),
        Some(1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_removed_rule_leaves_its_incident_open_with_a_note() {
    let failing = Target::start(503).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("api.yaml", &probe("api", &failing))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    eventually("the incident", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/incidents").await;
        body["incidents"].as_array()?.first().cloned()
    })
    .await;

    std::fs::remove_file(dir.path().join("rules/api.yaml")).unwrap();
    let (status, report) = app.post("/-/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rules_removed"], json!(["api-down"]));
    assert_eq!(report["probes_stopped"], json!(["api"]));
    let (_, incident) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["state"], "open", "left for a person to resolve");
    let last = incident["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "rule_removed", "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("`api-down` was removed"),
        "{last}"
    );
    assert!(rule_names(&app).await.is_empty());
    // Its rule is gone: the gauge says nothing about it any more.
    let text = app.metrics().await;
    assert!(!text.contains("rule=\"api-down\""), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_token_is_taken_and_the_old_one_refused() {
    let config = |variable: &str| {
        format!(
            "listen: 127.0.0.1:0\nauth:\n  tokens:\n    - {{name: root, token_env: {variable}, role: admin}}\n"
        )
    };
    let dir = ConfigDir::new(&config("IT_OLD_TOKEN"), &[]);
    let env = HashMap::from([
        ("IT_OLD_TOKEN".to_owned(), "old-token-1234567890".to_owned()),
        ("IT_NEW_TOKEN".to_owned(), "new-token-1234567890".to_owned()),
    ]);
    let app = TestApp::spawn(&dir, env).await;
    let call = async |method: reqwest::Method, path: &str, token: &str| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/api/v1/incidents",
            "new-token-1234567890"
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    write(&dir, "incidentd.yaml", &config("IT_NEW_TOKEN"));
    // Reloading needs the admin token in force until the reload is done.
    assert_eq!(
        call(reqwest::Method::POST, "/-/reload", "new-token-1234567890").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(reqwest::Method::POST, "/-/reload", "old-token-1234567890").await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/api/v1/incidents",
            "new-token-1234567890"
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/api/v1/incidents",
            "old-token-1234567890"
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn keys_that_need_a_restart_are_reported_and_ignored() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    write(
        &dir,
        "incidentd.yaml",
        "listen: 127.0.0.1:1\nstorage: {path: elsewhere.redb}\n",
    );
    let (status, report) = app.post("/-/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["restart_required"], json!(["listen", "storage"]));
    // Still serving where it was.
    let (status, _) = app.get("/-/healthy").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let healthy = Target::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &probe("web", &healthy))],
    );
    let server = Server::start(&dir);
    let rules = async || -> Option<Vec<Value>> {
        let body: Value = reqwest::get(server.url("/api/v1/rules"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["rules"].as_array().cloned()
    };
    assert_eq!(rules().await.unwrap().len(), 1);
    write(&dir, "rules/api.yaml", &probe("api", &healthy));
    server.signal("HUP");
    let reloaded = eventually("the new rule after SIGHUP", DEADLINE, async || {
        rules().await.filter(|rules| rules.len() == 2)
    })
    .await;
    assert_eq!(
        reloaded[0]["name"], "api-down",
        "rules/api.yaml comes first"
    );
    // A broken file on SIGHUP: logged, nothing changes, the server keeps running.
    write(&dir, "rules/bad.yaml", "probes: [{name: x}]\n");
    server.signal("HUP");
    let text = eventually("the failed reload in the metrics", DEADLINE, async || {
        let text = reqwest::get(server.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metric(&text, "incidentd_config_last_reload_successful") == Some(0.0)).then_some(text)
    })
    .await;
    assert!(text.contains("incidentd_build_info"));
    assert_eq!(rules().await.unwrap().len(), 2);
}
