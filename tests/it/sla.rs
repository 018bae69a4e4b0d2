//! TAT/SLA clocks through the real server with a manual clock: the incident's `sla` field,
//! warning and breach events delivered once each, the `incidentd_sla_*` metrics and
//! histograms, the report at `GET /api/v1/sla`, and the gauges rebuilt after a restart.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);
const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

fn config(receiver: &Receiver) -> String {
    format!(
        "listen: 127.0.0.1:0
sla:
  warn_at: 0.5
  incident:
    P1: {{first_response: 30m, resolution: 4h}}
  request:
    default: {{first_response: 2h, resolution: 10h}}
  mean_resolution_objective: 3h
webhooks:
  - name: receiver
    url: {}
    secret_env: {SECRET_ENV}
    events: [incident.sla_warning, incident.sla_breached]
",
        receiver.url()
    )
}

fn env() -> HashMap<String, String> {
    HashMap::from([(SECRET_ENV.to_owned(), secret_value())])
}

#[track_caller]
fn expect(got: (StatusCode, Value), status: StatusCode) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    got.1
}

fn ticket(kind: &str, impact: &str, urgency: &str) -> Value {
    json!({
        "title": format!("{kind} {impact}/{urgency}"),
        "description": "from the SLA test",
        "reporter": {"name": "Ana", "contact": "ana@example.com"},
        "kind": kind,
        "category": if kind == "request" { "request" } else { "availability" },
        "impact": impact,
        "urgency": urgency,
    })
}

/// (type, sla) of the SLA events delivered about `id`.
fn sla_events(receiver: &Receiver, id: &str) -> Vec<(String, String)> {
    receiver
        .accepted()
        .iter()
        .map(Delivery::json)
        .filter(|e| e["incident"]["id"] == id)
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["sla"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn clocks_warn_breach_pause_and_report_through_the_api_and_metrics() {
    let receiver = Receiver::start(200).await;
    let dir = ConfigDir::new(&config(&receiver), &[]);
    let app = TestApp::spawn(&dir, env()).await;

    // INC-1: a P1 incident. INC-2: a P5 request.
    let p1 = expect(
        app.post(
            "/api/v1/incidents",
            Some(ticket("incident", "high", "high")),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(p1["priority"], "P1");
    let first = &p1["sla"]["first_response"];
    assert_eq!(first["target_seconds"], 1800.0);
    assert_eq!(first["state"], "running");
    assert_eq!(first["due_at"], "2026-03-02T09:30:00Z");
    assert_eq!(first["calendar"], "24x7");
    assert_eq!(p1["sla"]["resolution"]["due_at"], "2026-03-02T13:00:00Z");
    let request = expect(
        app.post("/api/v1/incidents", Some(ticket("request", "low", "low")))
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(request["sla"]["first_response"]["target_seconds"], 7200.0);
    assert_eq!(request["sla"]["resolution"]["target_seconds"], 36000.0);

    // 15m: half the first-response target of INC-1 — the warning (warn_at 0.5).
    app.clock.advance(Duration::from_secs(15 * MINUTE));
    eventually("the first-response warning", DEADLINE, async || {
        sla_events(&receiver, "INC-1")
            .contains(&(
                "incident.sla_warning".to_owned(),
                "first_response".to_owned(),
            ))
            .then_some(())
    })
    .await;
    let metrics = app.metrics().await;
    let at_risk = r#"incidentd_sla_open{kind="incident",priority="P1",sla="first_response",status="at_risk"}"#;
    assert_eq!(sample(&metrics, at_risk), 1.0);
    let (_, incident) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["sla"]["first_response"]["at_risk"], true);
    assert_eq!(
        incident["sla"]["first_response"]["remaining_seconds"],
        900.0
    );

    // 31m: breached; acknowledged at 40m.
    app.clock.advance(Duration::from_secs(16 * MINUTE));
    eventually("the first-response breach", DEADLINE, async || {
        sla_events(&receiver, "INC-1")
            .contains(&(
                "incident.sla_breached".to_owned(),
                "first_response".to_owned(),
            ))
            .then_some(())
    })
    .await;
    let metrics = app.metrics().await;
    let breached = r#"incidentd_sla_open{kind="incident",priority="P1",sla="first_response",status="breached"}"#;
    assert_eq!(sample(&metrics, breached), 1.0);
    assert_eq!(sample(&metrics, at_risk), 0.0);
    assert_eq!(
        sample(
            &metrics,
            r#"incidentd_sla_breaches_total{kind="incident",priority="P1",sla="first_response"}"#
        ),
        1.0
    );
    app.clock.advance(Duration::from_secs(9 * MINUTE));
    let acked = expect(
        app.post("/api/v1/incidents/INC-1/acknowledge", None).await,
        StatusCode::OK,
    );
    assert_eq!(acked["sla"]["first_response"]["state"], "breached");
    assert_eq!(
        acked["sla"]["first_response"]["stopped_at"],
        "2026-03-02T09:40:00Z"
    );
    assert_eq!(acked["sla"]["first_response"]["elapsed_seconds"], 2400.0);

    // On hold from 1h to 5h: the resolution clock pauses, no breach at 4h.
    app.clock.advance(Duration::from_secs(20 * MINUTE));
    let held = expect(
        app.post(
            "/api/v1/incidents/INC-1/hold",
            Some(json!({"reason": "waiting on the vendor"})),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(held["sla"]["resolution"]["state"], "paused");
    assert!(held["sla"]["resolution"]["due_at"].is_null());
    app.clock.advance(Duration::from_secs(4 * HOUR));
    let resumed = expect(
        app.post("/api/v1/incidents/INC-1/resume", None).await,
        StatusCode::OK,
    );
    assert_eq!(resumed["sla"]["resolution"]["state"], "running");
    assert_eq!(
        resumed["sla"]["resolution"]["due_at"], "2026-03-02T17:00:00Z",
        "the 4h on hold move the due time"
    );
    assert_eq!(resumed["sla"]["resolution"]["elapsed_wall_seconds"], 3600.0);
    // Resolved at 6h: 2h of clock time, within 4h.
    app.clock.advance(Duration::from_secs(HOUR));
    let resolved = expect(
        app.post(
            "/api/v1/incidents/INC-1/resolve",
            Some(json!({"resolution": "vendor fixed it"})),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(resolved["sla"]["resolution"]["state"], "met");
    assert_eq!(resolved["sla"]["resolution"]["elapsed_seconds"], 7200.0);

    // The request (first response 2h, resolution 10h; warnings at half) warned and
    // breached its first response, and warned its resolution, meanwhile: once each.
    eventually("the request's resolution warning", DEADLINE, async || {
        sla_events(&receiver, "INC-2")
            .contains(&("incident.sla_warning".to_owned(), "resolution".to_owned()))
            .then_some(())
    })
    .await;
    let mut request_events = sla_events(&receiver, "INC-2");
    request_events.sort();
    let event = |kind: &str, sla: &str| (format!("incident.{kind}"), sla.to_owned());
    assert_eq!(
        request_events,
        [
            event("sla_breached", "first_response"),
            event("sla_warning", "first_response"),
            event("sla_warning", "resolution"),
        ]
    );
    let mut incident_events = sla_events(&receiver, "INC-1");
    incident_events.sort();
    assert_eq!(
        incident_events,
        [
            (
                "incident.sla_breached".to_owned(),
                "first_response".to_owned()
            ),
            (
                "incident.sla_warning".to_owned(),
                "first_response".to_owned()
            ),
        ],
        "the paused resolution clock never warned"
    );

    let metrics = app.metrics().await;
    for (series, value) in [
        (
            r#"incidentd_first_response_seconds_sum{kind="incident",priority="P1"}"#,
            2400.0,
        ),
        (
            r#"incidentd_first_response_seconds_bucket{kind="incident",priority="P1",le="1800"}"#,
            0.0,
        ),
        (
            r#"incidentd_resolution_seconds_sum{kind="incident",priority="P1"}"#,
            7200.0,
        ),
        (
            r#"incidentd_resolution_seconds_bucket{kind="incident",priority="P1",le="14400"}"#,
            1.0,
        ),
        (
            r#"incidentd_resolution_seconds_bucket{kind="incident",priority="P1",le="10800"}"#,
            1.0,
        ),
        (
            r#"incidentd_sla_met_total{kind="incident",priority="P1",sla="resolution"}"#,
            1.0,
        ),
        (
            r#"incidentd_sla_met_total{kind="incident",priority="P1",sla="first_response"}"#,
            0.0,
        ),
        (
            r#"incidentd_sla_warnings_total{kind="request",priority="P5",sla="resolution"}"#,
            1.0,
        ),
        (
            r#"incidentd_sla_breaches_total{kind="request",priority="P5",sla="resolution"}"#,
            0.0,
        ),
        (
            r#"incidentd_sla_breaches_total{kind="request",priority="P5",sla="first_response"}"#,
            1.0,
        ),
        (
            r#"incidentd_sla_open{kind="request",priority="P5",sla="resolution",status="at_risk"}"#,
            1.0,
        ),
        (
            r#"incidentd_sla_target_seconds{kind="incident",priority="P1",sla="first_response"}"#,
            1800.0,
        ),
        (
            r#"incidentd_sla_target_seconds{kind="request",priority="P3",sla="resolution"}"#,
            36000.0,
        ),
        ("incidentd_sla_mean_resolution_objective_seconds", 10800.0),
    ] {
        assert_eq!(sample(&metrics, series), value, "{series}");
    }

    // The report: INC-1's resolution met in 2h, its first response breached; the
    // request's first response breached and still open, its resolution at risk.
    let report = expect(app.get("/api/v1/sla?window=7d").await, StatusCode::OK);
    let p1 = &report["kinds"]["incident"];
    assert_eq!(p1["resolution"]["P1"]["met"], 1);
    assert_eq!(p1["resolution"]["P1"]["compliance"], 1.0);
    assert_eq!(p1["resolution"]["P1"]["mean_seconds"], 7200.0);
    assert_eq!(p1["first_response"]["P1"]["breached"], 1);
    assert_eq!(p1["first_response"]["P1"]["compliance"], 0.0);
    assert_eq!(p1["first_response"]["P1"]["target_seconds"], 1800.0);
    let requests = &report["kinds"]["request"];
    assert_eq!(requests["first_response"]["all"]["breached"], 1);
    assert_eq!(requests["first_response"]["all"]["open"]["breached"], 1);
    assert_eq!(requests["resolution"]["P5"]["open"]["at_risk"], 1);
    assert_eq!(requests["resolution"]["P5"]["breached"], 0);
    assert_eq!(report["mean_resolution"]["mean_seconds"], 7200.0);
    assert_eq!(report["mean_resolution"]["objective_seconds"], 10800.0);
    assert_eq!(report["mean_resolution"]["holds"], true);
    assert_eq!(report["window_seconds"], 7 * 86400);
    assert_eq!(
        report["kinds"]["incident"]["breach_notification"]["all"]["completed"], 0,
        "no data breach here"
    );
    let only = expect(
        app.get("/api/v1/sla?kind=request&priority=P5").await,
        StatusCode::OK,
    );
    let kinds: Vec<&String> = only["kinds"].as_object().unwrap().keys().collect();
    assert_eq!(kinds, ["request"]);
    let rows: Vec<&String> = only["kinds"]["request"]["resolution"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(rows, ["P5"]);
    for bad in ["kind=ticket", "priority=P0", "window=0s", "colour=red"] {
        let (status, error) = app.get(&format!("/api/v1/sla?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }
    let (status, error) = app.get("/api/v1/sla?window=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid window `soon`"),
        "{error}"
    );
    app.stop().await;

    // A restart rebuilds the gauges from the store, and the armed timers fire there: the
    // request's resolution breaches at 10h. Nothing fires twice.
    let app = TestApp::spawn(&dir, env()).await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"incidentd_sla_open{kind="request",priority="P5",sla="resolution",status="at_risk"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, breached),
        0.0,
        "INC-1's first response stopped"
    );
    // (A new manual clock: set it to where the first one was, then past 10h.)
    app.clock.set(start_time() + chrono::TimeDelta::hours(11));
    eventually("the request's resolution breach", DEADLINE, async || {
        sla_events(&receiver, "INC-2")
            .contains(&event("sla_breached", "resolution"))
            .then_some(())
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"incidentd_sla_open{kind="request",priority="P5",sla="resolution",status="breached"}"#
        ),
        1.0
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sla_events(&receiver, "INC-2").len(), 4);
    assert_eq!(sla_events(&receiver, "INC-1").len(), 2);
    app.stop().await;
}
