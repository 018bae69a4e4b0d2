//! Shared test fixtures: the real app on port 0 with a temp store, a fake target whose
//! answer the test controls, and a real webhook receiver that checks signatures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use incidentd::app::App;
use incidentd::clock::ManualClock;
use incidentd::notify::signing;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The webhook secret every test consumer uses (`whsec_` + base64 of 32 bytes).
pub const SECRET_B64: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
pub const SECRET_ENV: &str = "IT_WEBHOOK_SECRET";

pub fn secret_value() -> String {
    format!("whsec_{SECRET_B64}")
}

pub fn secret_key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap()
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback HTTP target answering every request with the status the test sets.
pub struct Target {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
}

impl Target {
    pub async fn start(status: u16) -> Target {
        let shared = Arc::new(AtomicU16::new(status));
        let app = Router::new()
            .fallback(any(|State(s): State<Arc<AtomicU16>>| async move {
                StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Target {
            addr,
            status: shared,
        }
    }

    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// One webhook request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }

    pub fn verifies(&self) -> bool {
        signing::verify(
            &secret_key(),
            &self.id,
            self.timestamp,
            &self.body,
            &self.signature,
        )
    }
}

/// A webhook consumer that records what it gets and answers with the status the test sets.
pub struct Receiver {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Delivery>>>,
}

#[derive(Clone)]
struct ReceiverState {
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let state = ReceiverState {
            status: Arc::new(AtomicU16::new(status)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            status: state.status,
            received: state.received,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() {
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        state.received.lock().unwrap().push(Delivery {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap(),
            signature: header("webhook-signature"),
            body,
        });
    }
    status
}

/// A config directory: `incidentd.yaml` and `rules/*.yaml`.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(config: &str, rules: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("incidentd.yaml"), config).unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for (name, text) in rules {
            std::fs::write(dir.path().join("rules").join(name), text).unwrap();
        }
        ConfigDir { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("incidentd.yaml")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The app running in this process with a manual clock.
pub struct TestApp {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(dir: &ConfigDir, env: HashMap<String, String>) -> TestApp {
        let config = incidentd::config::load(&dir.config_path(), &|name| env.get(name).cloned())
            .unwrap_or_else(|errors| panic!("{errors}"));
        let clock = ManualClock::new(start_time());
        let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            clock,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}
