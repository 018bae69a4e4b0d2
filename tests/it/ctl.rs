//! `incidentd ctl`: the real binary against the real server (list, show, ack, resolve,
//! `-o json`, paging, errors in the server's words, tokens, an unreachable URL), and against
//! a recorder that checks the request of every verb (method, path, JSON body, token) —
//! including the verbs whose routes the server does not have yet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// What one `incidentd ctl …` run printed, and its exit code.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// Runs `incidentd ctl ARGS` with only the environment given here (none of the caller's
/// INCIDENTD_* variables), off the runtime so the in-process server keeps answering.
async fn ctl(args: &[&str]) -> Run {
    ctl_env(args, &[]).await
}

/// [`ctl`] with these environment variables.
async fn ctl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("ctl")
            .args(&args)
            .env_remove("INCIDENTD_URL")
            .env_remove("INCIDENTD_TOKEN")
            .env_remove("RUST_LOG")
            .envs(env)
            .output()
            .expect("running incidentd ctl");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// A probe per service, all pointed at `target`, each with a rule that opens an incident
/// on the first non-200 answer.
fn rules(target: &Target, services: &[&str]) -> String {
    let mut probes = String::from("probes:\n");
    let mut rules = String::from("rules:\n");
    for service in services {
        probes.push_str(&format!(
            "  - name: {service}\n    interval: 300ms\n    timeout: 300ms\n    \
             labels: {{service: {service}}}\n    http: {{url: \"{}\"}}\n",
            target.url()
        ));
        rules.push_str(&format!(
            "  - name: {service}-down\n    probe: {service}\n    when: '[STATUS] != 200'\n    \
             incident: {{title: '{service} down ({{{{ status }}}})', category: availability, \
             impact: high, urgency: medium}}\n"
        ));
    }
    probes + &rules
}

async fn wait_for_incidents(app: &TestApp, count: usize) -> Vec<Value> {
    eventually("the incidents to open", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/incidents").await;
        let incidents = body["incidents"].as_array()?.clone();
        (incidents.len() >= count).then_some(incidents)
    })
    .await
}

#[tokio::test]
async fn list_show_ack_resolve_against_the_real_server() {
    let target = Target::start(200).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &rules(&target, &["web"]))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let url = url(app.addr);
    let url = url.as_str();

    assert_eq!(ctl(&["--url", url, "list"]).await.ok(), "no incidents\n");
    assert_eq!(
        ctl(&["--url", url, "-o", "json", "list"]).await.ok(),
        "{\n  \"incidents\": [],\n  \"next_cursor\": null\n}\n"
    );

    target.set(503);
    wait_for_incidents(&app, 1).await;
    assert_eq!(
        ctl(&["--url", url, "list"]).await.ok(),
        "\
ID     STATE  PRI  TIER  CATEGORY      OPENED                    TITLE
INC-1  open   P2   L1    availability  Mon 2026-03-02 09:00 UTC  web down (503)
"
    );
    // Flags after the verb work too; filters reach the server.
    assert_eq!(
        ctl(&["list", "--state", "resolved", "--url", url])
            .await
            .ok(),
        "no incidents\n"
    );
    let bad = ctl(&["--url", url, "list", "--state", "sleeping"]).await;
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert_eq!(
        bad.stderr,
        "error: unknown state `sleeping`; valid: open, acknowledged, on_hold, resolved, closed (400 bad_request)\n"
    );

    let (_, incident) = app.get("/api/v1/incidents/INC-1").await;
    let show = ctl(&["--url", url, "show", "INC-1"]).await;
    let lines: Vec<&str> = show.ok().lines().collect();
    assert_eq!(
        lines[..10],
        [
            "INC-1  web down (503)",
            "state:        open",
            "kind:         incident",
            "priority:     P2 (impact high, urgency medium)",
            "tier:         L1",
            "category:     availability",
            "service:      web",
            "labels:       probe=web, rule=web-down, service=web",
            "source:       rule web-down (probe web)",
            "opened:       Mon 2026-03-02 09:00:00 UTC",
        ],
        "{}",
        show.stdout
    );
    // A P2 incident: first response due in 1h, resolution in 8h.
    assert_eq!(
        lines[10],
        "sla:          first_response running (due Mon 2026-03-02 10:00 UTC); resolution running (due Mon 2026-03-02 17:00 UTC)"
    );
    assert!(
        lines[11]
            .starts_with("description:  Rule `web-down` fired for probe `web`: status 503 in "),
        "{}",
        lines[11]
    );
    assert_eq!(lines[12..14], ["", "evidence:"]);
    assert!(
        lines[14].starts_with("  2026-03-02T09:00:00Z probe web: status 503, ")
            && lines[14].ends_with(" (rule web-down: [STATUS] != 200)"),
        "{}",
        lines[14]
    );
    let opened = &incident["timeline"][0];
    assert_eq!(
        lines[15..],
        [
            "",
            "timeline:",
            &format!(
                "  2026-03-02T09:00:00Z system opened: {}",
                opened["message"].as_str().unwrap()
            ),
        ]
    );

    // `-o json` is the server's answer as is (same text, re-indented).
    let json_show = ctl(&["--url", url, "-o", "json", "show", "INC-1"]).await;
    assert_eq!(json_show.json(), incident);
    let raw = app
        .client
        .get(app.url("/api/v1/incidents/INC-1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(json_show.stdout, incidentd::ctl::pretty(&raw));
    assert!(
        json_show.stdout.starts_with("{\n  \""),
        "{}",
        json_show.stdout
    );

    app.clock.advance(Duration::from_secs(600));
    assert_eq!(
        ctl(&["--url", url, "ack", "INC-1"]).await.ok(),
        "acknowledged INC-1 (acknowledged, P2, L1): web down (503)\n"
    );
    let (_, acked) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_at"], "2026-03-02T09:10:00Z");

    let resolved = ctl(&[
        "--url",
        url,
        "-o",
        "json",
        "resolve",
        "INC-1",
        "--resolution",
        "restarted the pod",
    ])
    .await
    .json();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolution"], "restarted the pod");
    let (_, stored) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(stored["resolution"], "restarted the pod");

    let refused = ctl(&["--url", url, "ack", "INC-1"]).await;
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert_eq!(refused.stdout, "");
    assert_eq!(
        refused.stderr,
        "error: incident INC-1 is resolved; cannot acknowledge it (409 conflict)\n"
    );

    let missing = ctl(&["--url", url, "show", "INC-99"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert_eq!(
        missing.stderr,
        "error: incident INC-99 not found (404 not_found)\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn list_pages_and_all_follows_next_cursor() {
    let target = Target::start(503).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[("web.yaml", &rules(&target, &["alpha", "beta", "gamma"]))],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let url = url(app.addr);
    let url = url.as_str();
    let incidents = wait_for_incidents(&app, 3).await;
    let ids: Vec<&str> = incidents
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["INC-3", "INC-2", "INC-1"]);

    let page = ctl(&["--url", url, "list", "--limit", "2"]).await;
    assert_eq!(page.code, Some(0), "{page:#?}");
    assert_eq!(page.stdout.lines().count(), 3, "{}", page.stdout);
    assert_eq!(
        page.stderr, "more incidents: add --all, or --cursor 2\n",
        "{page:#?}"
    );

    let all = ctl(&["--url", url, "list", "--limit", "2", "--all"]).await;
    let rows: Vec<&str> = all
        .ok()
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(rows, ["INC-3", "INC-2", "INC-1"], "{}", all.stdout);

    let one_by_one = ctl(&["--url", url, "-o", "json", "list", "--limit", "1", "--all"])
        .await
        .json();
    assert_eq!(
        one_by_one,
        json!({"incidents": incidents, "next_cursor": null})
    );
    app.stop().await;
}

const AUTH_CONFIG: &str = "listen: 127.0.0.1:0
auth:
  tokens:
    - {name: grafana, token_env: IT_VIEWER, role: viewer}
    - {name: oncall-bot, token_env: IT_RESPONDER, role: responder}
";
const VIEWER: &str = "viewer-token-1234567890";
const RESPONDER: &str = "responder-token-1234567890";
const HINT: &str =
    "hint: pass the API token with --token or the INCIDENTD_TOKEN environment variable\n";

#[tokio::test]
async fn tokens_come_from_the_flag_or_the_environment() {
    let dir = ConfigDir::new(AUTH_CONFIG, &[]);
    let env = HashMap::from([
        ("IT_VIEWER".to_owned(), VIEWER.to_owned()),
        ("IT_RESPONDER".to_owned(), RESPONDER.to_owned()),
    ]);
    let app = TestApp::spawn(&dir, env).await;
    let url = url(app.addr);
    let url = url.as_str();

    let missing = ctl(&["--url", url, "list"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert_eq!(
        missing.stderr,
        format!("error: missing `Authorization: Bearer <token>` (401 unauthorized)\n{HINT}")
    );
    let wrong = ctl(&["--url", url, "--token", "nope", "list"]).await;
    assert_eq!(wrong.code, Some(1), "{wrong:#?}");
    assert_eq!(
        wrong.stderr,
        format!("error: invalid token (401 unauthorized)\n{HINT}")
    );
    let wrong_env = ctl_env(&["--url", url, "list"], &[("INCIDENTD_TOKEN", "nope")]).await;
    assert_eq!(wrong_env.code, Some(1), "{wrong_env:#?}");

    assert_eq!(
        ctl(&["--url", url, "--token", VIEWER, "list"]).await.ok(),
        "no incidents\n"
    );
    assert_eq!(
        ctl_env(&["--url", url, "list"], &[("INCIDENTD_TOKEN", VIEWER)])
            .await
            .ok(),
        "no incidents\n"
    );
    // The flag wins over the environment.
    assert_eq!(
        ctl_env(
            &["--url", url, "--token", VIEWER, "list"],
            &[("INCIDENTD_TOKEN", "nope")]
        )
        .await
        .ok(),
        "no incidents\n"
    );
    // The URL from the environment too.
    assert_eq!(
        ctl_env(
            &["list"],
            &[("INCIDENTD_URL", url), ("INCIDENTD_TOKEN", VIEWER)]
        )
        .await
        .ok(),
        "no incidents\n"
    );

    let forbidden = ctl(&["--url", url, "--token", VIEWER, "ack", "INC-1"]).await;
    assert_eq!(forbidden.code, Some(1), "{forbidden:#?}");
    assert_eq!(
        forbidden.stderr,
        "error: token `grafana` may not do this (403 forbidden)\n"
    );
    let allowed = ctl_env(
        &["--url", url, "ack", "INC-1"],
        &[("INCIDENTD_TOKEN", RESPONDER)],
    )
    .await;
    assert_eq!(
        allowed.stderr, "error: incident INC-1 not found (404 not_found)\n",
        "the responder gets past auth"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let addr = refused_addr();
    let run = ctl(&["--url", &url(addr), "list"]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "");
    let prefix = format!("error: could not reach incidentd at http://{addr}: ");
    assert!(run.stderr.starts_with(&prefix), "{run:#?}");
    assert!(
        run.stderr.to_lowercase().contains("refused"),
        "says why: {run:#?}"
    );

    let from_env = ctl_env(&["show", "INC-1"], &[("INCIDENTD_URL", url(addr).as_str())]).await;
    assert_eq!(from_env.code, Some(1), "{from_env:#?}");
    assert!(from_env.stderr.starts_with(&prefix), "{from_env:#?}");
}

#[tokio::test]
async fn usage_mistakes_exit_2_without_a_request() {
    let recorder = Recorder::start(StatusCode::OK).await;
    let url = url(recorder.addr);
    for args in [
        vec![
            "--url",
            &url,
            "update",
            "INC-1",
            "--reason",
            "nothing to change",
        ],
        vec!["--url", &url, "escalate", "INC-1"],
        vec![
            "--url", &url, "escalate", "INC-1", "--reason", "r", "--tier", "L4",
        ],
        vec!["--url", &url, "-o", "yaml", "list"],
        vec!["--url", "not a url", "list"],
        vec!["--url", &url, "frobnicate"],
    ] {
        let run = ctl(&args).await;
        assert_eq!(run.code, Some(2), "{args:?}: {run:#?}");
        assert!(run.stderr.starts_with("error: "), "{args:?}: {run:#?}");
    }
    assert!(recorder.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// The recorder: what ctl sends, for every verb

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// Answers every request with `status` and an incident (201 for a new ticket), and keeps
/// each request.
struct Recorder {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    async fn start(status: StatusCode) -> Recorder {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(
                move |State(requests): State<Arc<Mutex<Vec<Recorded>>>>,
                      method: Method,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    let header =
                        |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                    let path = uri.path().to_owned();
                    requests.lock().unwrap().push(Recorded {
                        method: method.clone(),
                        path: path.clone(),
                        query: uri.query().map(str::to_owned),
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        body,
                    });
                    if !status.is_success() {
                        return (status, "<html>upstream went away</html>".to_owned());
                    }
                    let (status, id) = if method == Method::POST && path == "/api/v1/incidents" {
                        (StatusCode::CREATED, "INC-9".to_owned())
                    } else {
                        (status, path.split('/').nth(4).unwrap_or("?").to_owned())
                    };
                    // Not in alphabetical order, to see that ctl keeps the server's order.
                    let incident = format!(
                        r#"{{"id":"{id}","title":"Recorded","state":"on_hold","priority":"P3","tier":"L2"}}"#
                    );
                    (status, incident)
                },
            )
            .with_state(requests.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { addr, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn every_verb_sends_its_request() {
    let recorder = Recorder::start(StatusCode::OK).await;
    let url = url(recorder.addr);
    // (args, method, path, JSON body, what ctl prints)
    type Case<'a> = (Vec<&'a str>, Method, &'a str, Option<Value>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["ack", "INC-7"],
            Method::POST,
            "/api/v1/incidents/INC-7/acknowledge",
            None,
            "acknowledged INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec![
                "escalate",
                "INC-7",
                "--reason",
                "needs the DB team",
                "--tier",
                "L2",
            ],
            Method::POST,
            "/api/v1/incidents/INC-7/escalate",
            Some(json!({"reason": "needs the DB team", "tier": "L2"})),
            "escalated INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["escalate", "INC-7", "--reason", "stuck"],
            Method::POST,
            "/api/v1/incidents/INC-7/escalate",
            Some(json!({"reason": "stuck"})),
            "escalated INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["note", "INC-7", "rolled back to v1.2"],
            Method::POST,
            "/api/v1/incidents/INC-7/notes",
            Some(json!({"text": "rolled back to v1.2", "public": false})),
            "note added to INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["note", "INC-7", "We are on it", "--public"],
            Method::POST,
            "/api/v1/incidents/INC-7/notes",
            Some(json!({"text": "We are on it", "public": true})),
            "public note added to INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["hold", "INC-7", "--reason", "waiting for the vendor"],
            Method::POST,
            "/api/v1/incidents/INC-7/hold",
            Some(json!({"reason": "waiting for the vendor"})),
            "put on hold INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["resume", "INC-7"],
            Method::POST,
            "/api/v1/incidents/INC-7/resume",
            None,
            "resumed INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["resolve", "INC-7", "--resolution", "disk cleaned"],
            Method::POST,
            "/api/v1/incidents/INC-7/resolve",
            Some(json!({"resolution": "disk cleaned"})),
            "resolved INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["close", "INC-7"],
            Method::POST,
            "/api/v1/incidents/INC-7/close",
            None,
            "closed INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["reopen", "INC-7", "--reason", "it is back"],
            Method::POST,
            "/api/v1/incidents/INC-7/reopen",
            Some(json!({"reason": "it is back"})),
            "reopened INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec![
                "open",
                "--title",
                "Printer on fire",
                "--description",
                "3rd floor, smoke",
                "--reporter",
                "Ada",
                "--contact",
                "ada@example.com",
                "--category",
                "availability",
                "--kind",
                "incident",
                "--impact",
                "high",
                "--urgency",
                "low",
                "--service",
                "printing",
                "--label",
                "floor=3",
            ],
            Method::POST,
            "/api/v1/incidents",
            Some(json!({
                "title": "Printer on fire",
                "description": "3rd floor, smoke",
                "reporter": {"name": "Ada", "contact": "ada@example.com"},
                "kind": "incident",
                "category": "availability",
                "impact": "high",
                "urgency": "low",
                "service": "printing",
                "labels": {"floor": "3"}
            })),
            "opened INC-9 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec![
                "open",
                "--title",
                "VPN account",
                "--description",
                "new hire",
                "--reporter",
                "Bob",
            ],
            Method::POST,
            "/api/v1/incidents",
            Some(
                json!({"title": "VPN account", "description": "new hire", "reporter": {"name": "Bob"}}),
            ),
            "opened INC-9 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec![
                "update",
                "INC-7",
                "--title",
                "Checkout slow",
                "--category",
                "performance",
                "--impact",
                "medium",
                "--urgency",
                "high",
                "--priority",
                "P2",
                "--service",
                "checkout",
                "--reason",
                "customer impact confirmed",
            ],
            Method::PATCH,
            "/api/v1/incidents/INC-7",
            Some(json!({
                "title": "Checkout slow",
                "category": "performance",
                "impact": "medium",
                "urgency": "high",
                "priority": "P2",
                "service": "checkout",
                "reason": "customer impact confirmed"
            })),
            "updated INC-7 (on_hold, P3, L2): Recorded\n",
        ),
        (
            vec!["update", "INC-7", "--priority", "P1", "--reason", "VIP"],
            Method::PATCH,
            "/api/v1/incidents/INC-7",
            Some(json!({"priority": "P1", "reason": "VIP"})),
            "updated INC-7 (on_hold, P3, L2): Recorded\n",
        ),
    ];
    for (args, method, path, body, printed) in cases {
        let before = recorder.requests().len();
        let mut full = vec!["--url", url.as_str(), "--token", "s3cret"];
        full.extend(&args);
        let run = ctl(&full).await;
        assert_eq!(run.ok(), printed, "{args:?}");
        let requests = recorder.requests();
        assert_eq!(requests.len(), before + 1, "one request for {args:?}");
        let got = requests.last().unwrap();
        assert_eq!(got.method, method, "{args:?}");
        assert_eq!(got.path, path, "{args:?}");
        assert_eq!(got.query, None, "{args:?}");
        assert_eq!(
            got.authorization.as_deref(),
            Some("Bearer s3cret"),
            "{args:?}"
        );
        match body {
            None => assert!(got.body.is_empty(), "{args:?}: {:?}", got.body),
            Some(want) => {
                assert_eq!(
                    got.content_type.as_deref(),
                    Some("application/json"),
                    "{args:?}"
                );
                let sent: Value = serde_json::from_slice(&got.body).unwrap();
                assert_eq!(sent, want, "{args:?}");
            }
        }
    }
}

#[tokio::test]
async fn the_token_from_the_environment_and_json_output_reach_the_recorder() {
    let recorder = Recorder::start(StatusCode::OK).await;
    let url = url(recorder.addr);
    let run = ctl_env(
        &["-o", "json", "hold", "INC-3", "--reason", "vendor"],
        &[
            ("INCIDENTD_URL", url.as_str()),
            ("INCIDENTD_TOKEN", "from-env"),
        ],
    )
    .await;
    // The answer as the server sent it (its field order), pretty-printed.
    assert_eq!(
        run.ok(),
        "{\n  \"id\": \"INC-3\",\n  \"title\": \"Recorded\",\n  \"state\": \"on_hold\",\n  \"priority\": \"P3\",\n  \"tier\": \"L2\"\n}\n"
    );
    let list = ctl_env(
        &[
            "list",
            "--state",
            "open,on_hold",
            "--priority",
            "P1",
            "--tier",
            "L3",
        ],
        &[("INCIDENTD_URL", url.as_str())],
    )
    .await;
    assert_eq!(list.code, Some(0), "{list:#?}");
    let requests = recorder.requests();
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer from-env")
    );
    assert_eq!(requests[1].authorization, None, "no token, no header");
    assert_eq!(requests[1].path, "/api/v1/incidents");
    assert_eq!(
        requests[1].query.as_deref(),
        Some("state=open%2Con_hold&priority=P1&tier=L3")
    );
}

#[tokio::test]
async fn an_answer_that_is_not_incidentds_json_is_reported() {
    let recorder = Recorder::start(StatusCode::BAD_GATEWAY).await;
    let url = url(recorder.addr);
    let run = ctl(&["--url", &url, "show", "INC-1"]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: {url}/api/v1/incidents/INC-1 answered HTTP 502 without incidentd's JSON (is --url right?): <html>upstream went away</html>\n"
        )
    );
}

/// Every workflow verb, end to end against the real server: a ticket from `open` to
/// `close`, and back with `reopen`.
#[tokio::test]
async fn the_whole_workflow_through_ctl_against_the_real_server() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let base = url(app.addr);
    let run = async |args: &[&str]| {
        let mut all = vec!["--url", base.as_str(), "-o", "json"];
        all.extend_from_slice(args);
        ctl(&all).await.json()
    };
    let opened = run(&[
        "open",
        "--title",
        "VPN down for the Jakarta office",
        "--description",
        "nobody can connect since 9:00",
        "--reporter",
        "Dana",
        "--contact",
        "dana@example.com",
        "--impact",
        "high",
        "--urgency",
        "medium",
    ])
    .await;
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["priority"], "P2");
    assert_eq!(opened["reporter"]["name"], "Dana");
    assert_eq!(run(&["ack", &id]).await["state"], "acknowledged");
    run(&["note", &id, "rebooting the concentrator", "--public"]).await;
    assert_eq!(
        run(&["escalate", &id, "--reason", "needs network team"]).await["tier"],
        "L2"
    );
    assert_eq!(
        run(&["hold", &id, "--reason", "waiting for ISP"]).await["state"],
        "on_hold"
    );
    assert_eq!(run(&["resume", &id]).await["state"], "acknowledged");
    let updated = run(&[
        "update",
        &id,
        "--urgency",
        "high",
        "--reason",
        "CEO affected",
    ])
    .await;
    assert_eq!(updated["priority"], "P1");
    assert_eq!(
        run(&["resolve", &id, "--resolution", "ISP fixed the line"]).await["state"],
        "resolved"
    );
    assert_eq!(run(&["close", &id]).await["state"], "closed");
    assert_eq!(
        run(&["reopen", &id, "--reason", "down again"]).await["state"],
        "acknowledged"
    );
    let shown = run(&["show", &id]).await;
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "acknowledged",
            "note_added",
            "escalated",
            "on_hold",
            "resumed",
            "updated",
            "priority_changed",
            "resolved",
            "closed",
            "reopened"
        ]
    );
    app.stop().await;
}
