//! `/metrics` as Prometheus reads it: one incident driven through the whole workflow over
//! the HTTP API, a webhook consumer that refuses connections, an HTTP and a TLS probe and a
//! rule, so every metric family has samples; then the exposition must pass the real
//! `promtool check metrics` without a word, carry the text-format content type, and never
//! carry an incident id in a label. And the gauges that describe stored state (open
//! incidents, open SLA clocks, pending webhooks) come back the same after a restart.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// The content type of the text exposition format 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every family the exposition must have.
const FAMILIES: &[&str] = &[
    "incidentd_build_info",
    "incidentd_escalations_total",
    "incidentd_first_response_seconds",
    "incidentd_incidents_open",
    "incidentd_incidents_opened_total",
    "incidentd_incidents_reopened_total",
    "incidentd_incidents_resolved_total",
    "incidentd_probe_cert_expiry_timestamp_seconds",
    "incidentd_probe_duration_seconds",
    "incidentd_probe_last_duration_seconds",
    "incidentd_probe_results_dropped_total",
    "incidentd_probe_runs_skipped_total",
    "incidentd_probe_schedule_lag_seconds",
    "incidentd_probe_success",
    "incidentd_resolution_seconds",
    "incidentd_rule_firing",
    "incidentd_sla_breaches_total",
    "incidentd_sla_mean_resolution_objective_seconds",
    "incidentd_sla_met_total",
    "incidentd_sla_open",
    "incidentd_sla_target_seconds",
    "incidentd_sla_warnings_total",
    "incidentd_webhook_deliveries_total",
    "incidentd_webhook_pending",
];

fn config() -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         storage: {{path: data/incidentd.redb}}\n\
         webhooks:\n  - name: refused\n    url: http://{}/hook\n    secret_env: {SECRET_ENV}\n",
        refused_addr()
    )
}

fn rules(target: &Target, tls: &TlsFixture) -> String {
    format!(
        r#"probes:
  - name: web
    interval: 100ms
    timeout: 100ms
    http: {{url: "{}"}}
  - name: cert
    interval: 200ms
    timeout: 200ms
    tls: {{address: "{}", server_name: localhost, verify: false}}
rules:
  - name: web-down
    probe: web
    when: '[STATUS] != 200'
    after: 3
    recover_after: 2
    incident:
      title: 'Web down'
      category: availability
      impact: high
      urgency: medium
"#,
        target.url(),
        tls.addr
    )
}

/// POSTs `body` to `path` and returns the answer, which must have `status`.
async fn post(app: &TestApp, path: &str, body: Option<Value>, status: StatusCode) -> Value {
    let (got, answer) = app.post(path, body).await;
    assert_eq!(got, status, "POST {path}: {answer}");
    answer
}

/// `promtool check metrics` on `text`: its exit status and everything it printed. `None`
/// (with a message) when promtool is missing and interop is not required.
fn promtool_check(text: &str) -> Option<(std::process::ExitStatus, String)> {
    let Some(promtool) = find_binary("promtool") else {
        assert!(
            !interop_required(),
            "INCIDENTD_REQUIRE_INTEROP=1 but `promtool` is not on the PATH (apt-get install prometheus)"
        );
        eprintln!(
            "SKIPPED: `promtool` is not on the PATH; install it (apt-get install prometheus) to run this interop test"
        );
        return None;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status, printed))
}

/// Opens a ticket and takes it through acknowledge, escalate, hold, resume, resolve and
/// reopen, over the HTTP API.
async fn drive_one_incident(app: &TestApp) {
    let opened = post(
        app,
        "/api/v1/incidents",
        Some(json!({
            "title": "VPN drops every 5 minutes",
            "description": "Since 09:00, for the whole office",
            "reporter": {"name": "Ana", "contact": "ana@example.com"},
            "impact": "medium",
            "urgency": "medium",
        })),
        StatusCode::CREATED,
    )
    .await;
    let id = opened["id"].as_str().unwrap().to_owned();
    let verb = |verb: &str| format!("/api/v1/incidents/{id}/{verb}");
    let ok = StatusCode::OK;
    post(app, &verb("acknowledge"), None, ok).await;
    let reason = json!({"reason": "needs the network team"});
    post(app, &verb("escalate"), Some(reason), ok).await;
    let reason = json!({"reason": "waiting for the ISP"});
    post(app, &verb("hold"), Some(reason), ok).await;
    post(app, &verb("resume"), None, ok).await;
    let resolution = json!({"resolution": "replaced the router"});
    post(app, &verb("resolve"), Some(resolution), ok).await;
    let reason = json!({"reason": "it dropped again"});
    let reopened = post(app, &verb("reopen"), Some(reason), ok).await;
    assert_ne!(reopened["state"], "resolved", "{reopened}");
}

#[tokio::test]
async fn metrics_pass_promtool_with_every_family_present() {
    let target = Target::start(200).await;
    let tls = tls_fixture().await;
    let dir = ConfigDir::new(&config(), &[("probes.yaml", &rules(&target, &tls))]);
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret_value())]);
    let app = TestApp::spawn(&dir, env).await;

    drive_one_incident(&app).await;

    // The probes have run and the webhook worker has failed at least once.
    eventually("probe and webhook samples", DEADLINE, async || {
        let text = app.metrics().await;
        [
            "incidentd_probe_success{probe=\"web\"} 1",
            "incidentd_probe_cert_expiry_timestamp_seconds{probe=\"cert\"}",
            "incidentd_webhook_deliveries_total{consumer=\"refused\",outcome=\"retry\"}",
        ]
        .iter()
        .all(|sample| text.contains(sample))
        .then_some(())
    })
    .await;

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, TEXT_FORMAT);
    let text = response.text().await.unwrap();

    for family in FAMILIES {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.starts_with(family))
            .count();
        assert!(samples > 0, "no sample of {family}:\n{text}");
    }
    assert!(
        !text.contains("INC-"),
        "a label carries an incident id:\n{text}"
    );

    if let Some((status, printed)) = promtool_check(&text) {
        assert!(
            status.success() && printed.is_empty(),
            "promtool check metrics ({status}):\n{printed}\non:\n{text}"
        );
    }
}

/// The samples of the gauges that describe stored state, but those at 0: the running app
/// keeps at 0 the `incidentd_incidents_open` series an incident has left, a restarted one
/// has only those with incidents.
fn stored_state_gauges(text: &str) -> Vec<String> {
    let gauges = [
        "incidentd_incidents_open{",
        "incidentd_sla_open{",
        "incidentd_webhook_pending{",
    ];
    text.lines()
        .filter(|line| gauges.iter().any(|gauge| line.starts_with(gauge)))
        .filter(|line| !line.ends_with(" 0"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn gauges_of_stored_state_are_rebuilt_at_start() {
    let dir = ConfigDir::new(&config(), &[]);
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret_value())]);
    let app = TestApp::spawn(&dir, env.clone()).await;
    drive_one_incident(&app).await;
    let before = stored_state_gauges(&app.metrics().await);
    // One open incident, its running resolution clock, its undelivered events.
    for gauge in [
        "incidentd_incidents_open{",
        "incidentd_sla_open{",
        "incidentd_webhook_pending{",
    ] {
        assert_eq!(
            before.iter().filter(|line| line.starts_with(gauge)).count(),
            1,
            "{gauge}: {before:#?}"
        );
    }
    app.stop().await;

    let app = TestApp::spawn(&dir, env).await;
    assert_eq!(stored_state_gauges(&app.metrics().await), before);
}
