//! Probes against hostile targets on loopback, one fixture each: a target that accepts and
//! never answers, resets the connection (at accept, mid-response), sends a body that never
//! ends, 1 MiB of headers or a header line that never ends, bytes that are no protocol at
//! all, invalid TLS (self-signed, another host's name, garbage instead of a handshake), a
//! slowloris trickle (one byte every 100 ms, in the head or in the body); a DNS server
//! answering garbage, a message cut in half, another query's id, or truncated and then
//! silent, garbage or trickling over TCP; a Prometheus that answers endlessly, hugely or
//! with garbage. Each probe type that applies ends within its timeout (the call is given
//! the timeout plus a generous margin) with a failing result whose error says what
//! happened. And memory stays flat: the real binary runs every hostile probe hundreds of
//! times while its resident set size and open files are sampled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use incidentd::clock::ManualClock;
use incidentd::config::{
    DnsProbe, HttpProbe, ProbeConfig, ProbeTarget, PrometheusProbe, TcpProbe, TlsProbe,
};
use incidentd::domain::observation::{BODY_LIMIT, Observation};
use incidentd::probe::{self, Clients};

use crate::support::*;

/// What a client sees of a connection reset at accept: ECONNRESET, or EPIPE when its write
/// comes after the reset.
const RESET: &str = "reset by peer|Broken pipe";
/// Every probe here has this timeout ...
const TIMEOUT: Duration = Duration::from_secs(1);
/// ... and must have ended within it plus this (an "eventually", not a timing claim).
const MARGIN: Duration = Duration::from_secs(10);

/// Runs a single-target probe once; it must end within its timeout plus [`MARGIN`].
async fn run(clients: &Clients, target: ProbeTarget) -> Observation {
    let config = ProbeConfig {
        name: "hostile".to_owned(),
        interval: Duration::from_secs(10),
        confirm_interval: Duration::from_secs(1),
        timeout: TIMEOUT,
        labels: BTreeMap::new(),
        target,
    };
    let clock = ManualClock::new(start_time());
    let results = tokio::time::timeout(TIMEOUT + MARGIN, probe::run_once(clients, &config, &clock))
        .await
        .expect("the probe ends within its timeout");
    let [(_, observation)] = &results[..] else {
        panic!("one result expected: {results:?}")
    };
    observation.clone()
}

/// The observation failed, and its error contains `expected` (or one of its
/// `|`-separated alternatives).
#[track_caller]
fn failed(what: &str, observation: &Observation, expected: &str) {
    let error = observation.error.as_deref().unwrap_or_default();
    eprintln!(
        "{what}: connected={} status={:?} error={error:?} in {:?}",
        observation.connected, observation.status, observation.response_time
    );
    assert!(!observation.success(), "{what}: {observation:?}");
    assert!(
        expected.split('|').any(|phrase| error.contains(phrase)),
        "{what}: the error {error:?} does not say {expected:?}"
    );
}

fn http(url: &str) -> ProbeTarget {
    ProbeTarget::Http(HttpProbe {
        url: url.parse().unwrap(),
        method: reqwest::Method::GET,
        headers: BTreeMap::new(),
        body: None,
        tls_verify: true,
        follow_redirects: false,
    })
}

fn tcp(addr: SocketAddr, send: Option<&str>, expect: &str) -> ProbeTarget {
    ProbeTarget::Tcp(TcpProbe {
        address: addr.to_string(),
        send: send.map(str::to_owned),
        expect: Some(expect.to_owned()),
    })
}

fn tls(addr: SocketAddr, server_name: Option<&str>, verify: bool) -> ProbeTarget {
    ProbeTarget::Tls(TlsProbe {
        address: format!("localhost:{}", addr.port()),
        server_name: server_name.map(str::to_owned),
        verify,
    })
}

fn dns(server: SocketAddr, name: &str) -> ProbeTarget {
    ProbeTarget::Dns(DnsProbe {
        name: name.to_owned(),
        server,
        record: "A".to_owned(),
    })
}

fn prometheus(addr: SocketAddr) -> ProbeTarget {
    ProbeTarget::Prometheus(PrometheusProbe {
        url: format!("http://{addr}").parse().unwrap(),
        query: "up".to_owned(),
    })
}

#[tokio::test]
async fn http_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let url = |addr: SocketAddr| format!("http://{addr}/health");
    let silent = run(&clients, http(&url(silent_server().await))).await;
    failed(
        "silent",
        &silent,
        "timeout after 1s waiting for the response",
    );
    assert!(!silent.connected);

    let reset = run(
        &clients,
        http(&url(hostile_server(Hostile::ResetAtAccept).await)),
    )
    .await;
    failed("reset at accept", &reset, RESET);

    let mid = run(
        &clients,
        http(&url(hostile_server(Hostile::ResetMidResponse).await)),
    )
    .await;
    failed(
        "reset mid-response",
        &mid,
        "reading the body failed: Connection reset by peer",
    );
    assert_eq!((mid.connected, mid.status), (true, Some(200)));
    assert_eq!(mid.body.as_deref(), Some("partial"), "what came is kept");

    let huge = run(
        &clients,
        http(&url(hostile_server(Hostile::HugeHeaders).await)),
    )
    .await;
    failed(
        "1 MiB of headers",
        &huge,
        "the response headers are too large",
    );
    let endless_line = run(
        &clients,
        http(&url(hostile_server(Hostile::EndlessHeaderLine).await)),
    )
    .await;
    failed(
        "an endless header line",
        &endless_line,
        "the response headers are too large",
    );

    let head = run(
        &clients,
        http(&url(hostile_server(Hostile::TrickleHead).await)),
    )
    .await;
    failed(
        "a trickled head",
        &head,
        "timeout after 1s waiting for the response",
    );
    let body = run(
        &clients,
        http(&url(hostile_server(Hostile::TrickleBody).await)),
    )
    .await;
    failed(
        "a trickled body",
        &body,
        "timeout after 1s reading the body",
    );
    assert_eq!((body.connected, body.status), (true, Some(200)));

    let garbage = run(&clients, http(&url(hostile_server(Hostile::Garbage).await))).await;
    failed("garbage", &garbage, "invalid HTTP");

    // An endless body is read up to the limit and no further: the probe does not wait for
    // its end (there is none), it ends at once with what it kept.
    let endless = run(
        &clients,
        http(&url(hostile_server(Hostile::EndlessBody).await)),
    )
    .await;
    eprintln!(
        "endless body: {:?} {:?}",
        endless.error, endless.response_time
    );
    assert!(endless.connected && endless.error.is_none(), "{endless:?}");
    assert_eq!(endless.body.as_ref().map(String::len), Some(BODY_LIMIT));

    // https against a self-signed certificate, and against garbage instead of TLS.
    let self_signed = self_signed_tls_server().await;
    let https = run(
        &clients,
        http(&format!("https://localhost:{}/", self_signed.port())),
    )
    .await;
    failed("https, self-signed", &https, "certificate");
    let garbage = hostile_server(Hostile::Garbage).await;
    let https = run(
        &clients,
        http(&format!("https://localhost:{}/", garbage.port())),
    )
    .await;
    failed("https, garbage", &https, "connection failed");
}

#[tokio::test]
async fn tcp_probes_with_send_and_expect_end_within_their_timeout() {
    let clients = Clients::default();
    let probe = |addr| tcp(addr, Some("PING\r\n"), "PONG");
    let silent = run(&clients, probe(silent_server().await)).await;
    failed("silent", &silent, "timeout after 1s waiting for `PONG`");
    let reset = run(
        &clients,
        probe(hostile_server(Hostile::ResetAtAccept).await),
    )
    .await;
    failed("reset at accept", &reset, RESET);
    let mid = run(
        &clients,
        probe(hostile_server(Hostile::ResetMidResponse).await),
    )
    .await;
    failed(
        "reset mid-response",
        &mid,
        "reading failed: Connection reset by peer",
    );
    let endless = run(&clients, probe(hostile_server(Hostile::EndlessBody).await)).await;
    failed(
        "endless",
        &endless,
        "expected `PONG` not found in the first 64 KiB",
    );
    assert_eq!(endless.body.as_ref().map(String::len), Some(BODY_LIMIT));
    let huge = run(&clients, probe(hostile_server(Hostile::HugeHeaders).await)).await;
    failed(
        "1 MiB",
        &huge,
        "expected `PONG` not found in the first 64 KiB",
    );
    let trickle = run(&clients, probe(hostile_server(Hostile::TrickleHead).await)).await;
    failed("trickle", &trickle, "timeout after 1s waiting for `PONG`");
    assert!(
        trickle
            .body
            .as_deref()
            .is_some_and(|body| body.starts_with("HTTP/1.1"))
    );
}

#[tokio::test]
async fn tls_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let self_signed = self_signed_tls_server().await;
    let untrusted = run(&clients, tls(self_signed, None, true)).await;
    failed("self-signed", &untrusted, "tls: invalid peer certificate");
    let wrong_host = run(&clients, tls(self_signed, Some("wrong.example"), true)).await;
    failed(
        "another host's name",
        &wrong_host,
        "tls: invalid peer certificate",
    );
    // Without verification the same server is fine: the failures above are the certificate's.
    let insecure = run(&clients, tls(self_signed, Some("wrong.example"), false)).await;
    assert!(
        insecure.connected && insecure.error.is_none(),
        "{insecure:?}"
    );

    let silent = run(&clients, tls(silent_server().await, None, false)).await;
    failed("silent", &silent, "timeout after 1s in the TLS handshake");
    let reset = run(
        &clients,
        tls(hostile_server(Hostile::ResetAtAccept).await, None, false),
    )
    .await;
    failed("reset at accept", &reset, RESET);
    let garbage = run(
        &clients,
        tls(hostile_server(Hostile::Garbage).await, None, false),
    )
    .await;
    failed("garbage", &garbage, "tls: received corrupt message");
    let trickle = run(
        &clients,
        tls(hostile_server(Hostile::TrickleTlsRecord).await, None, false),
    )
    .await;
    failed("trickle", &trickle, "timeout after 1s in the TLS handshake");
    let endless = run(
        &clients,
        tls(
            hostile_server(Hostile::EndlessTlsHandshake).await,
            None,
            false,
        ),
    )
    .await;
    failed(
        "endless handshake",
        &endless,
        "tls: received corrupt message of type HandshakePayloadTooLarge",
    );
}

#[tokio::test]
async fn dns_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let garbage = run(
        &clients,
        dns(hostile_dns(HostileDns::Garbage).await, "app.test"),
    )
    .await;
    failed(
        "garbage",
        &garbage,
        "timeout after 1s waiting for the answer; ",
    );
    failed("garbage", &garbage, "the last not a DNS answer");
    let cut = run(
        &clients,
        dns(hostile_dns(HostileDns::Cut).await, "app.test"),
    )
    .await;
    failed("cut", &cut, "the last not a DNS answer");
    let wrong_id = run(
        &clients,
        dns(hostile_dns(HostileDns::WrongId).await, "app.test"),
    )
    .await;
    failed(
        "another id",
        &wrong_id,
        "the last an answer to another query",
    );
    let silent_tcp = run(
        &clients,
        dns(
            hostile_dns(HostileDns::TruncatedThenSilentTcp).await,
            "tc.test",
        ),
    )
    .await;
    failed(
        "truncated, then silent over TCP",
        &silent_tcp,
        "timeout after 1s waiting for the answer over TCP",
    );
    let garbage_tcp = run(
        &clients,
        dns(
            hostile_dns(HostileDns::TruncatedThenGarbageTcp).await,
            "tc.test",
        ),
    )
    .await;
    failed(
        "truncated, then garbage over TCP",
        &garbage_tcp,
        "dns: invalid answer",
    );
    let trickle_tcp = run(
        &clients,
        dns(
            hostile_dns(HostileDns::TruncatedThenTrickleTcp).await,
            "tc.test",
        ),
    )
    .await;
    failed(
        "truncated, then a trickle over TCP",
        &trickle_tcp,
        "timeout after 1s waiting for the answer over TCP",
    );
}

#[tokio::test]
async fn prometheus_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let endless = run(
        &clients,
        prometheus(hostile_server(Hostile::EndlessBody).await),
    )
    .await;
    failed("endless", &endless, "larger than 16 MiB");
    let garbage = run(
        &clients,
        prometheus(hostile_server(Hostile::ResetMidResponse).await),
    )
    .await;
    failed(
        "reset",
        &garbage,
        "reading the body failed: Connection reset by peer",
    );
    let trickle = run(
        &clients,
        prometheus(hostile_server(Hostile::TrickleBody).await),
    )
    .await;
    failed(
        "trickle",
        &trickle,
        "prometheus: timeout after 1s reading the answer",
    );
    let huge = run(
        &clients,
        prometheus(hostile_server(Hostile::HugeHeaders).await),
    )
    .await;
    failed(
        "1 MiB of headers",
        &huge,
        "the response headers are too large",
    );
    let silent = run(&clients, prometheus(silent_server().await)).await;
    failed(
        "silent",
        &silent,
        "prometheus: timeout after 1s waiting for the answer",
    );
    let (fixture, _) = http_fixture().await;
    let not_json = run(&clients, prometheus(fixture)).await;
    failed("not an answer", &not_json, "prometheus: HTTP 404");
}

/// `incidentd serve` as a child process, its stderr drained (its log is not needed here).
struct Serve {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(dir: &ConfigDir) -> Serve {
        use std::io::BufRead;

        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .arg("serve")
            .arg("--config")
            .arg(dir.config_path())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting incidentd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("incidentd started")
                    && let Some(addr) = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("listen="))
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("incidentd logs `incidentd started listen=ADDR`");
        Serve { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs per probe so far, from `incidentd_probe_duration_seconds_count{probe=…}`.
    async fn runs(&self) -> BTreeMap<String, u64> {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("incidentd_probe_duration_seconds_count{probe=\"")?;
                let (probe, count) = rest.split_once("\"} ")?;
                Some((probe.to_owned(), count.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory stays flat: the real binary probes every hostile target every 250 ms (each run
/// ending at its 250 ms timeout or sooner) until each probe ran hundreds of times. Its
/// resident set size and open files at the end of a warm-up (every probe run 40 times)
/// and at the end (every probe run 240 times) differ by less than a generous bound: 20 MiB
/// over some 5,000 runs, so a leak of about 4 KiB per run (a buffer, a connection, a task
/// left behind) fails it, and a leaked connection shows in the open files.
#[tokio::test]
async fn memory_stays_flat_over_hundreds_of_hostile_runs() {
    const WARM_UP: u64 = 40;
    const RUNS: u64 = 240;
    let http = |name: &str, url: String| {
        format!("  - {{name: {name}, interval: 250ms, timeout: 250ms, http: {{url: \"{url}\"}}}}\n")
    };
    let plain = |addr: SocketAddr| format!("http://{addr}/health");
    let mut probes = String::from("probes:\n");
    probes += &http("http-silent", plain(silent_server().await));
    for (name, behaviour) in [
        ("http-reset", Hostile::ResetAtAccept),
        ("http-reset-mid", Hostile::ResetMidResponse),
        ("http-endless-body", Hostile::EndlessBody),
        ("http-huge-headers", Hostile::HugeHeaders),
        ("http-endless-header", Hostile::EndlessHeaderLine),
        ("http-trickle-head", Hostile::TrickleHead),
        ("http-trickle-body", Hostile::TrickleBody),
        ("http-garbage", Hostile::Garbage),
    ] {
        probes += &http(name, plain(hostile_server(behaviour).await));
    }
    let self_signed = self_signed_tls_server().await;
    probes += &http(
        "https-self-signed",
        format!("https://localhost:{}/", self_signed.port()),
    );
    for (name, behaviour) in [
        ("tcp-endless", Hostile::EndlessBody),
        ("tcp-trickle", Hostile::TrickleHead),
        ("tcp-reset-mid", Hostile::ResetMidResponse),
    ] {
        let addr = hostile_server(behaviour).await;
        probes += &format!(
            "  - {{name: {name}, interval: 250ms, timeout: 250ms, tcp: {{address: \"{addr}\", send: \"PING\\r\\n\", expect: PONG}}}}\n"
        );
    }
    let tls = |name: &str, port: u16, verify: bool| {
        format!(
            "  - {{name: {name}, interval: 250ms, timeout: 250ms, tls: {{address: \"localhost:{port}\", verify: {verify}}}}}\n"
        )
    };
    probes += &tls("tls-self-signed", self_signed.port(), true);
    for (name, behaviour) in [
        ("tls-garbage", Hostile::Garbage),
        ("tls-trickle", Hostile::TrickleTlsRecord),
        ("tls-endless", Hostile::EndlessTlsHandshake),
    ] {
        probes += &tls(name, hostile_server(behaviour).await.port(), false);
    }
    for (name, behaviour, query) in [
        ("dns-garbage", HostileDns::Garbage, "app.test"),
        ("dns-cut", HostileDns::Cut, "app.test"),
        (
            "dns-tcp-silent",
            HostileDns::TruncatedThenSilentTcp,
            "tc.test",
        ),
        (
            "dns-tcp-garbage",
            HostileDns::TruncatedThenGarbageTcp,
            "tc.test",
        ),
    ] {
        let server = hostile_dns(behaviour).await;
        probes += &format!(
            "  - {{name: {name}, interval: 250ms, timeout: 250ms, dns: {{name: {query}, server: \"{server}\"}}}}\n"
        );
    }
    for (name, behaviour) in [
        ("prometheus-endless", Hostile::EndlessBody),
        ("prometheus-trickle", Hostile::TrickleBody),
    ] {
        let addr = hostile_server(behaviour).await;
        probes += &format!(
            "  - {{name: {name}, interval: 250ms, timeout: 250ms, prometheus: {{url: \"http://{addr}\", query: up}}}}\n"
        );
    }
    let probe_count = probes.lines().count() - 1;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nstorage: {path: data/incidentd.redb}\nprobe_duration_histogram: per_probe\n",
        &[("hostile.yaml", &probes)],
    );
    let server = Serve::start(&dir);
    let every_probe_ran = async |times: u64| {
        eventually_ok(
            &format!("every probe run {times} times"),
            Duration::from_secs(300),
            async || {
                let runs = server.runs().await;
                let behind: Vec<_> = runs.iter().filter(|(_, n)| **n < times).collect();
                if runs.len() == probe_count && behind.is_empty() {
                    Ok(runs)
                } else {
                    Err(format!("{} probes, behind: {behind:?}", runs.len()))
                }
            },
        )
        .await
    };
    every_probe_ran(WARM_UP).await;
    let pid = server.pid();
    let runs_warm: u64 = server.runs().await.values().sum();
    let fds_warm = open_fds(pid).unwrap();
    // RSS once a second from the end of the warm-up to the end. A run may hold a large
    // buffer for a moment (a Prometheus answer of up to 16 MiB), so single samples jump:
    // compare the lowest of the first five with the lowest of the last five, which a leak
    // raises and a moment's buffer does not.
    let mut samples = Vec::new();
    let runs = loop {
        samples.push(rss_bytes(pid).unwrap());
        let runs = server.runs().await;
        if samples.len() >= 10 && runs.len() == probe_count && runs.values().all(|n| *n >= RUNS) {
            break runs;
        }
        assert!(
            samples.len() < 300,
            "the probes did not run {RUNS} times in 300 s: {runs:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let fds_end = open_fds(pid).unwrap();
    let runs_end: u64 = runs.values().sum();
    let low = |samples: &[u64]| *samples.iter().min().unwrap();
    let (rss_warm, rss_end) = (low(&samples[..5]), low(&samples[samples.len() - 5..]));
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{probe_count} hostile probes; after the warm-up ({runs_warm} runs): RSS {:.1} MiB, {fds_warm} open files; \
         at the end ({runs_end} runs): RSS {:.1} MiB, {fds_end} open files; growth {:+.1} MiB over {} runs",
        mib(rss_warm),
        mib(rss_end),
        mib(rss_end) - mib(rss_warm),
        runs_end - runs_warm,
    );
    let series: Vec<String> = samples.iter().map(|s| format!("{:.0}", mib(*s))).collect();
    eprintln!("RSS each second, MiB: {}", series.join(" "));
    eprintln!("runs per probe: {runs:?}");
    assert!(
        rss_end < rss_warm + 20 * 1024 * 1024,
        "RSS grew from {:.1} MiB to {:.1} MiB",
        mib(rss_warm),
        mib(rss_end)
    );
    // Every connection a run opened was closed with it (a few may be open at the sample).
    assert!(
        fds_end < fds_warm + 2 * probe_count,
        "open files grew from {fds_warm} to {fds_end}"
    );
}
