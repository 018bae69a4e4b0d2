//! Shared test fixtures: the real app on port 0 with a temp store, a fake target whose
//! answer the test controls, a real webhook receiver that checks signatures, and real
//! loopback targets for every probe type (HTTP routes, a TCP banner server, a TLS server
//! with a certificate made here, a DNS server, the real `prometheus` and
//! `prometheus-alertmanager` binaries).

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
use incidentd::clock::{Clock, ManualClock, SystemClock};
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

/// Polls `check` until it returns `Ok`, failing the test after `deadline` with the last
/// error, so a timeout says what was still missing.
pub async fn eventually_ok<T, E: std::fmt::Display>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let start = tokio::time::Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(error) => assert!(
                start.elapsed() < deadline,
                "timed out waiting for {what}:\n{error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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
    requests: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ReceiverState {
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<Delivery>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        Receiver::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), status)
    }

    /// On a listener of the test's own (an address the consumer was configured with while
    /// nothing listened there).
    pub fn start_on(listener: TcpListener, status: u16) -> Receiver {
        let state = ReceiverState {
            status: Arc::new(AtomicU16::new(status)),
            received: Arc::new(Mutex::new(Vec::new())),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            status: state.status,
            received: state.received,
            requests: state.requests,
        }
    }

    /// The `webhook-id` of every request received, whatever it was answered.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
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
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok());
    state
        .requests
        .lock()
        .unwrap()
        .push(id.unwrap_or_default().to_owned());
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

/// A config directory: `incidentd.yaml` and `rules/*.yaml`. With
/// `INCIDENTD_TEST_BACKEND=postgres`, also a database of its own, which the apps spawned
/// from it use instead of the redb file (the whole suite runs on either store).
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
    pub database: Option<incidentd::store::kv::postgres::testing::TestDatabase>,
}

/// Whether the in-process apps run on PostgreSQL (`INCIDENTD_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("INCIDENTD_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

impl ConfigDir {
    pub fn new(config: &str, rules: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("incidentd.yaml"), config).unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for (name, text) in rules {
            std::fs::write(dir.path().join("rules").join(name), text).unwrap();
        }
        // A test that names its store (a redb file it damages, fills, checks) keeps it.
        let database = if on_postgres() && !config.contains("storage:") {
            let database = incidentd::store::kv::postgres::testing::fresh_database();
            assert!(
                database.is_some(),
                "INCIDENTD_TEST_BACKEND=postgres, but no PostgreSQL server answers"
            );
            database
        } else {
            None
        };
        ConfigDir { dir, database }
    }

    /// The store the apps spawned from here use, opened for a test to read.
    pub fn open_store(&self, storage_path: &Path) -> incidentd::store::Store {
        match &self.database {
            Some(database) => {
                incidentd::store::Store::open_postgres_unfenced(&database.config()).unwrap()
            }
            None => incidentd::store::Store::open(storage_path).unwrap(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("incidentd.yaml")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The app running in this process, on a manual clock (`spawn`) or on the real time
/// (`spawn_on_system_clock`, for talking to real servers that stamp alerts with it).
pub struct TestApp<C = ManualClock> {
    pub addr: SocketAddr,
    pub clock: C,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(dir: &ConfigDir, env: HashMap<String, String>) -> TestApp {
        TestApp::spawn_with(dir, env, ManualClock::new(start_time())).await
    }

    /// [`TestApp::spawn`] with the manual clock at `now` (a restart later in time).
    pub async fn spawn_at(
        dir: &ConfigDir,
        env: HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> TestApp {
        TestApp::spawn_with(dir, env, ManualClock::new(now)).await
    }
}

impl TestApp<SystemClock> {
    /// The app on the real time: Prometheus and Alertmanager stamp `startsAt`/`endsAt` with
    /// it, and whether an alert has ended depends on it.
    pub async fn spawn_on_system_clock(
        dir: &ConfigDir,
        env: HashMap<String, String>,
    ) -> TestApp<SystemClock> {
        TestApp::spawn_with(dir, env, SystemClock).await
    }
}

impl<C: Clock + Clone> TestApp<C> {
    async fn spawn_with(dir: &ConfigDir, env: HashMap<String, String>, clock: C) -> TestApp<C> {
        let mut config =
            incidentd::config::load(&dir.config_path(), &|name| env.get(name).cloned())
                .unwrap_or_else(|errors| panic!("{errors}"));
        if let Some(database) = &dir.database
            && config.postgres.is_none()
        {
            config.postgres = Some(incidentd::config::PostgresConfig {
                url: database.url.clone(),
                pool_size: 4,
                statement_timeout: std::time::Duration::from_secs(10),
                lease_ttl: std::time::Duration::from_secs(3),
                write_wait: std::time::Duration::from_secs(15),
                advertise_url: None,
            });
        }
        let postgres = config.postgres.clone();
        let app = App::build(config, Arc::new(clock.clone()))
            .await
            .unwrap()
            .with_loader(Arc::new(move |path| {
                let mut loaded = incidentd::config::load(path, &|name| env.get(name).cloned())?;
                if loaded.postgres.is_none() {
                    loaded.postgres.clone_from(&postgres);
                }
                Ok(loaded)
            }));
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

// ---------------------------------------------------------------------------------------
// Probe targets

/// A loopback address where nothing listens: connecting is refused. Port 1 (tcpmux) is
/// never served here, unlike a freed ephemeral port another test could bind meanwhile.
pub fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1))
}

/// Accepts connections and never answers (nor closes them).
pub async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Requests in flight at `/slow` of [`http_fixture`], and the most seen at once.
#[derive(Clone, Default)]
pub struct InFlight {
    now: Arc<std::sync::atomic::AtomicUsize>,
    pub max: Arc<std::sync::atomic::AtomicUsize>,
    pub total: Arc<std::sync::atomic::AtomicUsize>,
}

struct Leaving(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An HTTP target with one route per thing the http probe reports.
pub async fn http_fixture() -> (SocketAddr, InFlight) {
    use axum::extract::Path;
    use axum::http::Method;
    use axum::routing::get;

    let in_flight = InFlight::default();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/big", get(|| async { "x".repeat(200 * 1024) }))
        .route(
            "/headers",
            get(|| async {
                (
                    [("x-probe-test", "yes"), ("X-Mixed-Case", "Value")],
                    "with headers",
                )
            }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [("location", "/final")], "moved") }),
        )
        .route("/final", get(|| async { "final" }))
        .route(
            "/echo",
            any(
                |method: Method, headers: HeaderMap, body: String| async move {
                    let kind = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    format!("{method} {kind} {body}")
                },
            ),
        )
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap() }),
        )
        .route(
            "/slow",
            get(|State(counts): State<InFlight>| async move {
                let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
                counts.max.fetch_max(now, Ordering::SeqCst);
                counts.total.fetch_add(1, Ordering::SeqCst);
                // Counted out on drop too: hyper drops the handler when the client leaves.
                let _leaving = Leaving(counts.now.clone());
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .with_state(in_flight.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, in_flight)
}

/// A TCP server that greets with `220 fixture ready`, then answers one line `x` with
/// `PONG x` and closes.
pub async fn banner_server() -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                write.write_all(b"220 fixture ready\r\n").await?;
                let mut line = String::new();
                BufReader::new(read).read_line(&mut line).await?;
                write
                    .write_all(format!("PONG {}\r\n", line.trim_end()).as_bytes())
                    .await?;
                write.shutdown().await
            });
        }
    });
    addr
}

/// A TLS server presenting a leaf certificate for `localhost` signed by a CA made here,
/// and the CA certificate too. The CA expires first, so the chain's earliest expiry is the
/// CA's. After the handshake it answers one HTTP/1.1 request with `200 tls ok`.
pub struct TlsFixture {
    pub addr: SocketAddr,
    pub leaf_not_after: DateTime<Utc>,
    pub ca_not_after: DateTime<Utc>,
}

pub async fn tls_fixture() -> TlsFixture {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.not_after = rcgen::date_time_ymd(2030, 1, 2);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.not_after = rcgen::date_time_ymd(2031, 6, 1);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca.as_ref().der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to do.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return, // a TLS probe closes after the handshake
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let response =
                    "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls ok";
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    TlsFixture {
        addr,
        leaf_not_after: at("2031-06-01T00:00:00Z"),
        ca_not_after: at("2030-01-02T00:00:00Z"),
    }
}

/// A DNS server on UDP and TCP (same port): `app.test. A` → 10.1.2.3 and 10.1.2.4;
/// `fail.test.` → SERVFAIL; `tc.test.` → truncated over UDP, 10.9.9.9 over TCP; anything
/// else → NXDOMAIN.
pub async fn dns_fixture() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (udp, tcp, addr) = udp_and_tcp().await;
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, from)) = udp.recv_from(&mut buffer).await {
            if let Some(answer) = dns_answer(&buffer[..len], false) {
                let _ = udp.send_to(&answer, from).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let len = stream.read_u16().await?;
                let mut query = vec![0u8; usize::from(len)];
                stream.read_exact(&mut query).await?;
                if let Some(answer) = dns_answer(&query, true) {
                    let mut framed = u16::try_from(answer.len()).unwrap().to_be_bytes().to_vec();
                    framed.extend_from_slice(&answer);
                    stream.write_all(&framed).await?;
                }
                std::io::Result::Ok(())
            });
        }
    });
    addr
}

fn dns_answer(query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};

    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.add_query(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    let a = |ip: [u8; 4]| {
        Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    };
    match (name.as_str(), question.query_type()) {
        ("app.test.", RecordType::A) => {
            answer.add_answer(a([10, 1, 2, 3]));
            answer.add_answer(a([10, 1, 2, 4]));
        }
        ("app.test.", _) => {}
        ("fail.test.", _) => answer.metadata.response_code = ResponseCode::ServFail,
        ("tc.test.", _) if !over_tcp => answer.metadata.truncation = true,
        ("tc.test.", _) => {
            answer.add_answer(a([10, 9, 9, 9]));
        }
        _ => answer.metadata.response_code = ResponseCode::NXDomain,
    }
    answer.to_vec().ok()
}

/// A free loopback UDP port where nothing listens (the kernel answers port unreachable).
pub fn closed_udp_addr() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A free loopback TCP port (bound, read and released: a small race no test here loses).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A real Prometheus or Alertmanager process on a loopback port, with its config, data and
/// log in a temp dir; stopped (killed) when dropped.
pub struct RealServer {
    pub url: String,
    name: &'static str,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

pub type PrometheusServer = RealServer;
pub type AlertmanagerServer = RealServer;

impl RealServer {
    /// What the server logged so far, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether interop tests must run (CI sets `INCIDENTD_REQUIRE_INTEROP=1`): then a missing
/// binary fails the test instead of skipping it.
pub fn interop_required() -> bool {
    std::env::var("INCIDENTD_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// `name` on the PATH, if it is there.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Starts `prometheus` on a free loopback port, scraping itself (job `self`) and a port
/// where nothing listens (job `dead`) every second; waits until it is ready. `None` (with
/// a message) when the binary is missing and interop is not required.
pub async fn start_prometheus() -> Option<PrometheusServer> {
    // The `dead` job scrapes where nothing listens: it is down for sure.
    let dead = refused_addr().to_string();
    start_prometheus_with(|port| {
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             \x20 - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             \x20 - job_name: dead\n    static_configs: [{{targets: ['{dead}']}}]\n"
        )
    })
    .await
}

/// Starts `prometheus` on a free loopback port, scraping each `(job, address)` of `targets`
/// every second and evaluating `rule_files` every second; waits until it is ready. `None`
/// (with a message) when the binary is missing and interop is not required.
pub async fn start_prometheus_scraping(
    targets: &[(&str, SocketAddr)],
    rule_files: &[&Path],
) -> Option<PrometheusServer> {
    // YAML single-quoted scalars: a quote is written twice.
    let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let mut config =
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files:\n".to_owned();
    for file in rule_files {
        let file = std::path::absolute(file).unwrap();
        config.push_str(&format!("  - {}\n", quoted(&file.display().to_string())));
    }
    config.push_str("scrape_configs:\n");
    for (job, addr) in targets {
        config.push_str(&format!(
            "  - job_name: {}\n    static_configs: [{{targets: [{}]}}]\n",
            quoted(job),
            quoted(&addr.to_string())
        ));
    }
    start_prometheus_with(|_port| config.clone()).await
}

/// Starts `prometheus` with the configuration `config(port)` makes for the port it listens
/// on; `None` when the binary is missing and interop is not required.
pub async fn start_prometheus_with(config: impl Fn(u16) -> String) -> Option<PrometheusServer> {
    start_real_server(&PROMETHEUS, &config).await
}

/// Starts `prometheus-alertmanager` with `config` (its YAML) on a free loopback port, its
/// data in a temp `--storage.path` and clustering off (`--cluster.listen-address=`, as for
/// a single instance); waits until it is ready. `None` (with a message) when the binary is
/// missing and interop is not required.
pub async fn start_alertmanager(config: &str) -> Option<AlertmanagerServer> {
    start_real_server(&ALERTMANAGER, &|_port| config.to_owned()).await
}

/// How to start one of the real servers.
struct Launch {
    /// The binary, and the name of its log and config files.
    name: &'static str,
    /// The Debian package that ships it.
    package: &'static str,
    /// Its command line for a port, its config file and a data directory.
    args: fn(u16, &Path, &Path) -> Vec<String>,
}

const PROMETHEUS: Launch = Launch {
    name: "prometheus",
    package: "prometheus",
    args: |port, config, data| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]
    },
};

const ALERTMANAGER: Launch = Launch {
    name: "prometheus-alertmanager",
    package: "prometheus-alertmanager",
    args: |port, config, data| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // Empty: no gossip, so no peer to wait for and no second port to collide on.
            "--cluster.listen-address=".to_owned(),
        ]
    },
};

async fn start_real_server(launch: &Launch, config: &dyn Fn(u16) -> String) -> Option<RealServer> {
    let (name, package) = (launch.name, launch.package);
    let Some(binary) = find_binary(name) else {
        assert!(
            !interop_required(),
            "INCIDENTD_REQUIRE_INTEROP=1 but `{name}` is not on the PATH (apt-get install {package})"
        );
        eprintln!(
            "SKIPPED: `{name}` is not on the PATH; install it (apt-get install {package}) to run this interop test"
        );
        return None;
    };
    // The free port may be taken by another test before the server binds it: start again
    // on another one when it exits early.
    for attempt in 1.. {
        let server = spawn_real_server(launch, &binary, config);
        match wait_ready(server).await {
            Ok(server) => return Some(server),
            Err(log) if attempt < 5 && log.contains("address already in use") => continue,
            Err(log) => panic!("{name} did not start:\n{log}"),
        }
    }
    unreachable!("the loop returns or panics")
}

fn spawn_real_server(launch: &Launch, binary: &Path, config: &dyn Fn(u16) -> String) -> RealServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = dir.path().join(format!("{}.yml", launch.name));
    std::fs::write(&config_path, config(port)).unwrap();
    let log = std::fs::File::create(dir.path().join(format!("{}.log", launch.name))).unwrap();
    let child = std::process::Command::new(binary)
        .args((launch.args)(port, &config_path, &dir.path().join("data")))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    RealServer {
        url: format!("http://127.0.0.1:{port}"),
        name: launch.name,
        child,
        dir,
    }
}

/// Waits until the server is ready; its log if it exited first.
async fn wait_ready(mut server: RealServer) -> Result<RealServer, String> {
    let client = reqwest::Client::new();
    let ready = format!("{}/-/ready", server.url);
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "{} exited with {status}:\n{}",
                server.name,
                server.log()
            ));
        }
        if let Ok(response) = client.get(&ready).send().await
            && response.status().is_success()
        {
            return Ok(server);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} did not become ready:\n{}",
            server.name,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Hostile peers: targets that misbehave on purpose, one behaviour each.

/// How a [`hostile_server`] treats every connection. Each one first takes what the client
/// sends at once (a request, a `send:` line), then misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Resets the connection (SO_LINGER 0 close) as soon as it is accepted.
    ResetAtAccept,
    /// Sends a response head promising 100,000 bytes and a few of them, then resets.
    ResetMidResponse,
    /// `200 OK` with a body that never ends, as fast as the client reads it.
    EndlessBody,
    /// 1 MiB of header lines before the body.
    HugeHeaders,
    /// One header line that never ends.
    EndlessHeaderLine,
    /// The response head one byte every 100 ms, forever (slowloris).
    TrickleHead,
    /// A complete head, then the body one byte every 100 ms, forever (slowloris).
    TrickleBody,
    /// Bytes that are neither HTTP nor TLS, then the connection held open.
    Garbage,
    /// A TLS record header announcing 16 KiB, then its bytes one every 100 ms.
    TrickleTlsRecord,
    /// TLS handshake records that never end (a certificate message of 16 MiB).
    EndlessTlsHandshake,
}

/// Closes `stream` with a reset: SO_LINGER 0, so the peer reads ECONNRESET, not an EOF.
pub fn reset(stream: tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A loopback TCP server that treats every connection as `behaviour` says.
pub async fn hostile_server(behaviour: Hostile) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(misbehave(stream, behaviour));
        }
    });
    addr
}

async fn misbehave(mut stream: tokio::net::TcpStream, behaviour: Hostile) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    if behaviour == Hostile::ResetAtAccept {
        reset(stream);
        return;
    }
    // What the client sends first (a request, a TLS hello), if it sends anything soon.
    let mut buffer = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer)).await;
    // Every write below fails once the client has gone: that ends the connection.
    let trickle = async |stream: &mut tokio::net::TcpStream, bytes: &[u8]| {
        for byte in bytes.iter().cycle() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    };
    let endless = async |stream: &mut tokio::net::TcpStream, chunk: &[u8]| {
        while stream.write_all(chunk).await.is_ok() {}
    };
    match behaviour {
        Hostile::ResetAtAccept => unreachable!("handled above"),
        Hostile::ResetMidResponse => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial")
                .await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(stream);
        }
        Hostile::EndlessBody => {
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
                .await
                .is_ok()
            {
                endless(&mut stream, &[b'x'; 16 * 1024]).await;
            }
        }
        Hostile::HugeHeaders => {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            let value = "v".repeat(1000);
            for n in 0..1024 {
                head.extend_from_slice(format!("x-fill-{n}: {value}\r\n").as_bytes());
            }
            head.extend_from_slice(b"content-length: 2\r\n\r\nok");
            let _ = stream.write_all(&head).await;
            hold(stream).await;
        }
        Hostile::EndlessHeaderLine => {
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\nx-endless: ")
                .await
                .is_ok()
            {
                endless(&mut stream, &[b'a'; 16 * 1024]).await;
            }
        }
        Hostile::TrickleHead => {
            trickle(&mut stream, b"HTTP/1.1 200 OK\r\nx-slow: a\r\n").await;
        }
        Hostile::TrickleBody => {
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                .await
                .is_ok()
            {
                trickle(&mut stream, b"slow").await;
            }
        }
        Hostile::Garbage => {
            let _ = stream
                .write_all(b"SSH-2.0-NotWhatYouAskedFor\r\n\x00\xff\xfe garbage \x01\x02\r\n\r\n")
                .await;
            hold(stream).await;
        }
        Hostile::TrickleTlsRecord => {
            // A handshake record of 16 KiB whose body never quite arrives.
            if stream
                .write_all(&[0x16, 0x03, 0x03, 0x40, 0x00])
                .await
                .is_ok()
            {
                trickle(&mut stream, &[0x02]).await;
            }
        }
        Hostile::EndlessTlsHandshake => {
            // A Certificate message of 16 MiB - 1, sent as one 16 KiB record after another.
            let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
            record.extend_from_slice(&[0x0b, 0xff, 0xff, 0xff]);
            record.resize(5 + 0x4000, 0);
            if stream.write_all(&record).await.is_ok() {
                let mut next = vec![0x16, 0x03, 0x03, 0x40, 0x00];
                next.resize(5 + 0x4000, 0);
                endless(&mut stream, &next).await;
            }
        }
    }
}

/// Keeps the connection open, reading and dropping what comes, until the client leaves.
async fn hold(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            return;
        }
    }
}

/// A TLS server whose certificate is self-signed for `localhost` (the chain a verifying
/// client cannot trust); it completes handshakes and closes.
pub async fn self_signed_tls_server() -> SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let (tcp, _) = tls.into_inner();
                    hold(tcp).await;
                }
            });
        }
    });
    addr
}

/// How a [`hostile_dns`] server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileDns {
    /// Bytes that are no DNS message, to every query.
    Garbage,
    /// A valid answer cut in half.
    Cut,
    /// A valid answer to another query id, then nothing.
    WrongId,
    /// Truncated over UDP; over TCP, accepts and never answers.
    TruncatedThenSilentTcp,
    /// Truncated over UDP; over TCP, a 64 KiB frame of garbage.
    TruncatedThenGarbageTcp,
    /// Truncated over UDP; over TCP, the frame's bytes one every 100 ms.
    TruncatedThenTrickleTcp,
}

/// A DNS server on UDP and TCP (same port) answering as `behaviour` says. Query
/// `app.test.` (for the truncated modes, `tc.test.`).
pub async fn hostile_dns(behaviour: HostileDns) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (udp, tcp, addr) = udp_and_tcp().await;
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, from)) = udp.recv_from(&mut buffer).await {
            let query = &buffer[..len];
            let answer = match behaviour {
                HostileDns::Garbage => b"\x00\x01garbage, not a DNS message".to_vec(),
                HostileDns::Cut => {
                    let Some(answer) = dns_answer(query, true) else {
                        continue;
                    };
                    answer[..answer.len() / 2].to_vec()
                }
                HostileDns::WrongId => {
                    let Some(mut answer) = dns_answer(query, true) else {
                        continue;
                    };
                    answer[0] ^= 0xff;
                    answer
                }
                _ => {
                    let Some(answer) = dns_answer(query, false) else {
                        continue;
                    };
                    answer
                }
            };
            let _ = udp.send_to(&answer, from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                match behaviour {
                    HostileDns::TruncatedThenGarbageTcp => {
                        let mut frame = vec![0xff, 0xff];
                        frame.resize(2 + 0xffff, 0xab);
                        let _ = stream.write_all(&frame).await;
                        hold(stream).await;
                    }
                    HostileDns::TruncatedThenTrickleTcp => {
                        let _ = stream.write_all(&[0xff, 0xff]).await;
                        loop {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if stream.write_all(&[0]).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => hold(stream).await,
                }
            });
        }
    });
    addr
}

/// The resident set size of process `pid` (`VmRSS` in `/proc/PID/status`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A UDP socket and a TCP listener on the same loopback port (a DNS server's two sides): the
/// port the UDP socket got may be taken for TCP, so another is tried until both bind.
async fn udp_and_tcp() -> (tokio::net::UdpSocket, TcpListener, SocketAddr) {
    let mut attempt = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(error) => {
                attempt += 1;
                assert!(attempt < 50, "no port free for both UDP and TCP: {error}");
            }
        }
    }
}
