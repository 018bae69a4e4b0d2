//! Secrets never leave the process: the real binary at `RUST_LOG=debug`, with API tokens,
//! a webhook signing secret and an SMTP password, is used right and wrong (good and bad
//! tokens, a console sign-in, a consumer that fails, a mail server that is down); then no
//! secret is in its log, its metrics, any answer it gave or any webhook it sent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

const ADMIN: &str = "adm1n-t0ken-4f9c2b7e1d3a";
const INGEST: &str = "1ngest-t0ken-8e2d4c6a0b1f";
/// A token nobody has, but close to a real one: a log of refused tokens would show it.
const WRONG: &str = "adm1n-t0ken-4f9c2b7e1d3b";
const SMTP_PASSWORD: &str = "smtp-pa55word-c0ffee";
/// The credential in a chat tool's incoming-webhook URL (Slack's and Teams' are such).
const HOOK_PATH_SECRET: &str = "hook-path-s3cret-9d8e7f";

struct Binary {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Binary {
    fn start(dir: &ConfigDir, env: &[(&str, String)]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .args(["serve", "--config"])
            .arg(dir.config_path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting incidentd");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("incidentd started")
                        && let Some(addr) = line
                            .split_whitespace()
                            .find_map(|word| word.strip_prefix("listen="))
                    {
                        let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("incidentd logs `incidentd started listen=ADDR`");
        Binary { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn no_secret_leaves_the_process() {
    let consumer = Receiver::start(500).await;
    let smtp_port = free_port(); // nobody listens: every mail fails
    let dir = ConfigDir::new(
        &format!(
            "listen: 127.0.0.1:0
auth:
  tokens:
    - {{name: admin, token_env: IT_ADMIN, role: admin}}
    - {{name: prometheus, token_env: IT_INGEST, role: ingest}}
webhooks:
  - {{name: audit, url: '{}', secret_env: {SECRET_ENV}, retry_schedule: [1s]}}
  - {{name: chat, url: 'http://{}/services/T0/B0/{HOOK_PATH_SECRET}', secret_env: {SECRET_ENV}, retry_schedule: [1s]}}
status_page:
  title: Acme
  services:
    - {{name: checkout}}
mail:
  smtp_url_env: IT_SMTP_URL
  from: 'Status <status@example.com>'
",
            consumer.url(),
            refused_addr()
        ),
        &[],
    );
    let smtp_url = format!("smtp://status%40example.com:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}");
    let server = Binary::start(
        &dir,
        &[
            ("IT_ADMIN", ADMIN.to_owned()),
            ("IT_INGEST", INGEST.to_owned()),
            (SECRET_ENV, secret_value()),
            ("IT_SMTP_URL", smtp_url.clone()),
        ],
    );
    let client = reqwest::Client::new();
    let answers = std::cell::RefCell::new(String::new());
    let call =
        async |method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = client.request(method, server.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            answers
                .borrow_mut()
                .push_str(&format!("{:?}\n", response.headers()));
            let text = response.text().await.unwrap();
            answers.borrow_mut().push_str(&text);
            status
        };

    // Right and wrong: a ticket, an ack, an alert; a wrong token, a token in the wrong place,
    // a role that may not, a token as the Basic password.
    let ticket = json!({"title": "VPN drops", "reporter": {"name": "Ana"}, "service": "checkout"});
    assert_eq!(
        call(
            "POST",
            "/api/v1/incidents",
            Some(ADMIN),
            Some(ticket.clone())
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        call(
            "POST",
            "/api/v1/incidents/INC-1/acknowledge",
            Some(ADMIN),
            None
        )
        .await,
        StatusCode::OK
    );
    let alert =
        json!([{"labels": {"alertname": "Down", "service": "checkout", "severity": "critical"}}]);
    assert_eq!(
        call("POST", "/api/v2/alerts", Some(INGEST), Some(alert)).await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            "POST",
            "/api/v1/incidents",
            Some(WRONG),
            Some(ticket.clone())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("POST", "/-/reload", Some(INGEST), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            "GET",
            &format!("/api/v1/incidents?token={ADMIN}"),
            None,
            None
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let basic = client
        .get(server.url("/api/v1/incidents"))
        .basic_auth("admin", Some(WRONG))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let text = basic.text().await.unwrap();
    answers.borrow_mut().push_str(&text);
    let events = json!({"routing_key": WRONG, "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "error"}});
    assert_eq!(
        call("POST", "/api/v1/events", None, Some(events)).await,
        StatusCode::UNAUTHORIZED
    );

    // The console: a sign-in with a wrong token and with the right one.
    for token in [WRONG, ADMIN] {
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(server.url("/console/sign-in"))
            .header("origin", server.url(""))
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Fconsole"))
            .send()
            .await
            .unwrap();
        answers
            .borrow_mut()
            .push_str(&format!("{:?}\n", response.headers()));
        let text = response.text().await.unwrap();
        answers.borrow_mut().push_str(&text);
    }

    // A subscriber whose confirmation mail cannot be sent.
    let response = client
        .post(server.url("/subscriptions"))
        .json(&json!({"email": "ana@example.com", "services": ["checkout"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // Wait until the consumer was answered 500 a few times and the mail failed, so the
    // failures' log lines are there.
    eventually(
        "the failing consumer retried",
        Duration::from_secs(30),
        async || (consumer.requests().len() >= 3).then_some(()),
    )
    .await;
    eventually(
        "the mail failure in the log",
        Duration::from_secs(30),
        async || {
            let log = server.log.lock().unwrap();
            log.lines()
                .any(|line| line.contains("WARN") && line.to_lowercase().contains("mail"))
                .then_some(())
        },
    )
    .await;
    eventually(
        "failed attempts to the chat consumer",
        Duration::from_secs(30),
        async || {
            let response = client
                .get(server.url("/api/v1/webhooks/chat/deliveries"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            let attempts = body["deliveries"].as_array().map_or(0, Vec::len);
            (attempts >= 2).then_some(())
        },
    )
    .await;
    call("GET", "/api/v1/webhooks/chat/deliveries", Some(ADMIN), None).await;
    call(
        "GET",
        "/api/v1/webhooks/audit/deliveries",
        Some(ADMIN),
        None,
    )
    .await;
    call("GET", "/api/v1/webhooks", Some(ADMIN), None).await;
    call("GET", "/api/v1/incidents/INC-1", Some(ADMIN), None).await;
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Now the consumer takes them: what it receives is checked too.
    consumer.set(200);
    let accepted = eventually("deliveries accepted", Duration::from_secs(30), async || {
        let accepted = consumer.accepted();
        (accepted.len() >= 3).then_some(accepted)
    })
    .await;
    let deliveries: String = accepted
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d.id,
                d.signature,
                String::from_utf8_lossy(&d.body)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let log = server.log.lock().unwrap().clone();
    let answers = answers.into_inner();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    let secrets = [
        ("the admin token", ADMIN.to_owned()),
        ("the ingest token", INGEST.to_owned()),
        ("a refused token", WRONG.to_owned()),
        ("the webhook secret", SECRET_B64.to_owned()),
        ("the SMTP password", SMTP_PASSWORD.to_owned()),
        ("the SMTP URL", smtp_url),
        ("the chat webhook's credential", HOOK_PATH_SECRET.to_owned()),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for (place, text) in [
            ("the log", &log),
            ("/metrics", &metrics),
            ("an answer", &answers),
            ("a webhook", &deliveries),
        ] {
            if text.contains(secret.as_str()) {
                let line = text.lines().find(|l| l.contains(secret.as_str())).unwrap();
                leaks.push(format!("{what} is in {place}: {line}"));
            }
        }
    }
    eprintln!(
        "SECRETS: {} log lines, {} bytes of answers, {} webhook requests, {} bytes of metrics checked",
        log.lines().count(),
        answers.len(),
        consumer.requests().len(),
        metrics.len()
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
