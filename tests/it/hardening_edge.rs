//! The HTTP edge against a hostile web page and hostile connections: in open mode (no
//! tokens, loopback only) a page in the operator's browser must not be able to change
//! anything (content type, cross-site requests, DNS rebinding); silent connections must
//! not lock the service out (header-read and idle timeouts, the connection limit).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const OPEN: &str = "listen: 127.0.0.1:0\n";

/// One request written by hand (headers forged as a browser or an attacker would send
/// them), `Connection: close`: the status and the JSON body of the answer.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn ticket() -> String {
    json!({"title": "Printer on fire", "reporter": {"name": "Ana", "contact": "ana@example.com"}})
        .to_string()
}

async fn incident_count(app: &TestApp) -> usize {
    let (_, list) = app.get("/api/v1/incidents").await;
    list["incidents"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_page_cannot_open_a_ticket_with_a_simple_cross_site_post() {
    let dir = ConfigDir::new(OPEN, &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let host = format!("Host: {}", app.addr);

    // What a form or `fetch(…, {mode: "no-cors"})` sends: a "simple" request, no preflight.
    let (status, body) = raw(
        app.addr,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\n{host}\r\nContent-Type: text/plain\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site"
        ),
        &ticket(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cross-site request refused"),
        "{body}"
    );
    // The same body, same-origin but not said to be JSON.
    let (status, body) = raw(
        app.addr,
        &format!("POST /api/v1/incidents HTTP/1.1\r\n{host}\r\nContent-Type: text/plain"),
        &ticket(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    assert_eq!(incident_count(&app).await, 0);

    // The service's own page (same origin) and curl (no Origin) still can.
    let (status, body) = raw(
        app.addr,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nOrigin: http://{}\r\nSec-Fetch-Site: same-origin",
            app.addr
        ),
        &ticket(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = raw(
        app.addr,
        &format!("POST /api/v1/incidents HTTP/1.1\r\n{host}\r\nContent-Type: application/json"),
        &ticket(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(incident_count(&app).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_page_cannot_acknowledge_with_a_bodyless_post() {
    let dir = ConfigDir::new(OPEN, &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let (status, _) = app
        .post(
            "/api/v1/incidents",
            Some(serde_json::from_str(&ticket()).unwrap()),
        )
        .await;
    assert_eq!(status, 201);
    let host = format!("Host: {}", app.addr);
    let acknowledge = format!("POST /api/v1/incidents/INC-1/acknowledge HTTP/1.1\r\n{host}");
    for forged in [
        "Origin: http://evil.example",
        "Origin: null",
        // Another port of localhost is another origin (same site, though).
        "Origin: http://localhost:1",
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Site: same-site",
        "Origin: http://evil.example\r\nSec-Fetch-Site: cross-site",
    ] {
        let (status, body) = raw(app.addr, &format!("{acknowledge}\r\n{forged}"), "").await;
        assert_eq!(status, 403, "{forged}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{forged}: {body}");
    }
    let (_, incident) = app.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["state"], "open", "{incident}");

    // A body that is not JSON is refused even without Origin; an empty one needs no type.
    let (status, body) = raw(
        app.addr,
        &format!("{acknowledge}\r\nContent-Type: application/x-www-form-urlencoded"),
        "a=b",
    )
    .await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = raw(
        app.addr,
        &format!(
            "{acknowledge}\r\nOrigin: http://{}\r\nSec-Fetch-Site: same-origin",
            app.addr
        ),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "acknowledged", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn every_json_route_wants_a_json_content_type() {
    let dir = ConfigDir::new(OPEN, &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let host = format!("Host: {}", app.addr);
    let routes = [
        ("POST", "/api/v1/incidents", ticket()),
        (
            "PATCH",
            "/api/v1/incidents/INC-1",
            r#"{"title":"t","reason":"r"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/acknowledge",
            "{}".to_owned(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/notes",
            r#"{"text":"t"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/hold",
            r#"{"reason":"r"}"#.to_owned(),
        ),
        ("POST", "/api/v1/incidents/INC-1/resume", "{}".to_owned()),
        (
            "POST",
            "/api/v1/incidents/INC-1/escalate",
            r#"{"reason":"r"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            r#"{"resolution":"r"}"#.to_owned(),
        ),
        ("POST", "/api/v1/incidents/INC-1/close", "{}".to_owned()),
        (
            "POST",
            "/api/v1/incidents/INC-1/reopen",
            r#"{"reason":"r"}"#.to_owned(),
        ),
        (
            "POST",
            "/api/v1/silences",
            r#"{"matchers":{},"ends_at":"2030-01-01T00:00:00Z","comment":"c"}"#.to_owned(),
        ),
        ("POST", "/-/reload", "{}".to_owned()),
        ("DELETE", "/api/v1/silences/1", "{}".to_owned()),
    ];
    for (method, path, body) in &routes {
        for content_type in [
            "",
            "Content-Type: text/plain\r\n",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "Content-Type: multipart/form-data; boundary=x\r\n",
            "Content-Type: application/jsonx\r\n",
        ] {
            let head = format!("{method} {path} HTTP/1.1\r\n{content_type}{host}");
            let (status, answer) = raw(app.addr, &head, body).await;
            assert_eq!(status, 415, "{method} {path} {content_type:?}: {answer}");
            assert_eq!(
                answer["error"]["code"], "unsupported_media_type",
                "{answer}"
            );
        }
    }
    assert_eq!(incident_count(&app).await, 0);
    // JSON under each of its names gets through to the route.
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        let head =
            format!("POST /api/v1/incidents HTTP/1.1\r\nContent-Type: {content_type}\r\n{host}");
        let (status, answer) = raw(app.addr, &head, &ticket()).await;
        assert_eq!(status, 201, "{content_type}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_in_open_mode() {
    let dir = ConfigDir::new(OPEN, &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let port = app.addr.port();
    // DNS rebinding: the page's own name, now resolving to 127.0.0.1. Same origin for the
    // browser, so only the Host tells.
    for path in ["/api/v1/incidents", "/", "/metrics", "/-/healthy"] {
        let (status, body) = raw(
            app.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: evil.example:{port}"),
            "",
        )
        .await;
        assert_eq!(status, 421, "{path}: {body}");
        assert_eq!(body["error"]["code"], "misdirected_request", "{body}");
    }
    let (status, body) = raw(
        app.addr,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json"
        ),
        &ticket(),
    )
    .await;
    assert_eq!(status, 421, "{body}");
    assert_eq!(incident_count(&app).await, 0);

    // Its own names: the status page, /metrics and the lifecycle endpoints as before.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        for path in [
            "/",
            "/metrics",
            "/-/healthy",
            "/status.json",
            "/api/v1/incidents",
        ] {
            let (status, body) = raw(
                app.addr,
                &format!("GET {path} HTTP/1.1\r\nHost: {host}"),
                "",
            )
            .await;
            assert_eq!(status, 200, "{host}{path}: {body}");
        }
    }
    // As a client without Origin sends them (curl, Prometheus).
    assert_eq!(app.get("/-/healthy").await.0, 200);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn external_url_names_the_server_too() {
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nexternal_url: https://incidents.example/\n",
        &[],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    // Behind a TLS proxy that keeps the Host: the browser's origin is external_url's.
    let (status, body) = raw(
        app.addr,
        "POST /api/v1/incidents HTTP/1.1\r\nHost: incidents.example\r\nOrigin: https://incidents.example\r\nContent-Type: application/json",
        &ticket(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = raw(
        app.addr,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: {}\r\nOrigin: https://incidents.example\r\nContent-Type: application/json",
            app.addr
        ),
        &ticket(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = raw(
        app.addr,
        "GET /-/healthy HTTP/1.1\r\nHost: incidents.example.evil.example",
        "",
    )
    .await;
    assert_eq!(status, 421);
    app.stop().await;
}

#[tokio::test]
async fn a_bearer_token_is_not_a_browser_credential() {
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nauth:\n  tokens:\n    - {name: bot, token_env: IT_BOT, role: responder}\n",
        &[],
    );
    let env = HashMap::from([("IT_BOT".to_owned(), "bot-token-1234567890".to_owned())]);
    let app = TestApp::spawn(&dir, env).await;
    let post = "POST /api/v1/incidents HTTP/1.1\r\nContent-Type: application/json\r\nOrigin: http://evil.example";
    // With tokens the Host is not checked: the token protects.
    let head =
        format!("{post}\r\nHost: evil.example\r\nAuthorization: Bearer bot-token-1234567890");
    let (status, body) = raw(app.addr, &head, &ticket()).await;
    assert_eq!(status, 201, "{body}");
    // Without one (or with a wrong one) a cross-site request is refused as such.
    for auth in ["", "\r\nAuthorization: Bearer nope"] {
        let head = format!("{post}\r\nHost: {}{auth}", app.addr);
        let (status, body) = raw(app.addr, &head, &ticket()).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (status, _) = raw(
        app.addr,
        "GET /-/healthy HTTP/1.1\r\nHost: evil.example",
        "",
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Silent and idle connections

const DEADLINE: Duration = Duration::from_secs(60);

fn limited(max_connections: usize, header_read_timeout: &str, idle_timeout: &str) -> ConfigDir {
    ConfigDir::new(
        &format!(
            "listen: 127.0.0.1:0\nhttp: {{max_connections: {max_connections}, header_read_timeout: {header_read_timeout}, idle_timeout: {idle_timeout}}}\n"
        ),
        &[],
    )
}

/// Waits until the server closes `stream` (EOF or reset), whatever it wrote before.
async fn closed_by_server(mut stream: TcpStream, what: &str) {
    let mut sink = Vec::new();
    match tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink)).await {
        Ok(_) => {}
        Err(_) => panic!("the server never closed {what}"),
    }
}

async fn healthy(app_addr: SocketAddr, timeout: Duration) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let response = client
        .get(format!("http://{app_addr}/-/healthy"))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let dir = limited(64, "1s", "1h");
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let silent = TcpStream::connect(app.addr).await.unwrap();
    // A slow client: a head that never ends.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(format!("GET /-/healthy HTTP/1.1\r\nHost: {}\r\n", app.addr).as_bytes())
        .await
        .unwrap();
    // A kept-alive connection waiting for its next request.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(format!("GET /-/healthy HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr).as_bytes())
        .await
        .unwrap();
    let mut answer = [0; 12];
    kept.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    closed_by_server(silent, "a silent connection").await;
    closed_by_server(slow, "a connection with an unfinished head").await;
    closed_by_server(kept, "an idle kept-alive connection").await;
    assert_eq!(healthy(app.addr, DEADLINE).await.unwrap(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_the_idle_timeout() {
    let dir = limited(64, "1h", "1s");
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let mut stalled = TcpStream::connect(app.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /api/v1/incidents HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\"",
                app.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    closed_by_server(stalled, "a connection whose body stalled").await;
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_one() {
    let dir = limited(4, "1h", "1h");
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The fifth waits in the listen backlog: no answer while the four hold their places.
    assert!(
        healthy(app.addr, Duration::from_secs(1)).await.is_err(),
        "a fifth connection was served beside four silent ones with max_connections: 4"
    );
    // One leaves: the server serves the next one waiting.
    drop(silent.pop());
    assert_eq!(healthy(app.addr, DEADLINE).await.unwrap(), 200);
    drop(silent);
    app.stop().await;
}

/// The real binary at `ulimit -n 200`, with the default `max_connections` (1,024): more
/// silent connections than it has file descriptors do not lock `/-/healthy` out, and the
/// log says the limit was hit.
#[tokio::test]
async fn silent_connections_beyond_the_open_files_limit_do_not_lock_the_service_out() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nhttp: {header_read_timeout: 1s}\nrule_files: []\n",
        &[],
    );
    let mut child = Killed(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 200 && exec \"$0\" serve --config \"$1\"")
            .arg(env!("CARGO_BIN_EXE_incidentd"))
            .arg(dir.config_path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting incidentd"),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push_str(&line);
            lines.lock().unwrap().push('\n');
            if line.contains("incidentd started")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("listen="))
            {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx.recv_timeout(DEADLINE).expect("incidentd started");

    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
        {
            silent.push(stream);
        }
    }
    eventually_ok("/-/healthy to answer", DEADLINE, async || {
        healthy(addr, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    drop(silent);
    drop(child);
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("connection limit reached"),
        "the log says the limit was hit:\n{log}"
    );
    assert!(
        !log.contains("Too many open files"),
        "the server ran out of file descriptors:\n{log}"
    );
}

/// A child process killed when the test ends, passed or failed.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
