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

/// The observation failed, and its error contains `expected`.
#[track_caller]
fn failed(what: &str, observation: &Observation, expected: &str) {
    let error = observation.error.as_deref().unwrap_or_default();
    eprintln!(
        "{what}: connected={} status={:?} error={error:?} in {:?}",
        observation.connected, observation.status, observation.response_time
    );
    assert!(!observation.success(), "{what}: {observation:?}");
    assert!(
        error.contains(expected),
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
    failed("silent", &silent, "timeout after 1s waiting for the response");
    assert!(!silent.connected);

    let reset = run(&clients, http(&url(hostile_server(Hostile::ResetAtAccept).await))).await;
    failed("reset at accept", &reset, "reset by peer");

    let mid = run(&clients, http(&url(hostile_server(Hostile::ResetMidResponse).await))).await;
    failed("reset mid-response", &mid, "reading the body failed: Connection reset by peer");
    assert_eq!((mid.connected, mid.status), (true, Some(200)));
    assert_eq!(mid.body.as_deref(), Some("partial"), "what came is kept");

    let huge = run(&clients, http(&url(hostile_server(Hostile::HugeHeaders).await))).await;
    failed("1 MiB of headers", &huge, "the response headers are too large");
    let endless_line =
        run(&clients, http(&url(hostile_server(Hostile::EndlessHeaderLine).await))).await;
    failed("an endless header line", &endless_line, "the response headers are too large");

    let head = run(&clients, http(&url(hostile_server(Hostile::TrickleHead).await))).await;
    failed("a trickled head", &head, "timeout after 1s waiting for the response");
    let body = run(&clients, http(&url(hostile_server(Hostile::TrickleBody).await))).await;
    failed("a trickled body", &body, "timeout after 1s reading the body");
    assert_eq!((body.connected, body.status), (true, Some(200)));

    let garbage = run(&clients, http(&url(hostile_server(Hostile::Garbage).await))).await;
    failed("garbage", &garbage, "invalid HTTP");

    // An endless body is read up to the limit and no further: the probe does not wait for
    // its end (there is none), it ends at once with what it kept.
    let endless = run(&clients, http(&url(hostile_server(Hostile::EndlessBody).await))).await;
    eprintln!("endless body: {:?} {:?}", endless.error, endless.response_time);
    assert!(endless.connected && endless.error.is_none(), "{endless:?}");
    assert_eq!(endless.body.as_ref().map(String::len), Some(BODY_LIMIT));

    // https against a self-signed certificate, and against garbage instead of TLS.
    let self_signed = self_signed_tls_server().await;
    let https = run(&clients, http(&format!("https://localhost:{}/", self_signed.port()))).await;
    failed("https, self-signed", &https, "certificate");
    let garbage = hostile_server(Hostile::Garbage).await;
    let https = run(&clients, http(&format!("https://localhost:{}/", garbage.port()))).await;
    failed("https, garbage", &https, "connection failed");
}

#[tokio::test]
async fn tcp_probes_with_send_and_expect_end_within_their_timeout() {
    let clients = Clients::default();
    let probe = |addr| tcp(addr, Some("PING\r\n"), "PONG");
    let silent = run(&clients, probe(silent_server().await)).await;
    failed("silent", &silent, "timeout after 1s waiting for `PONG`");
    let reset = run(&clients, probe(hostile_server(Hostile::ResetAtAccept).await)).await;
    failed("reset at accept", &reset, "reset by peer");
    let mid = run(&clients, probe(hostile_server(Hostile::ResetMidResponse).await)).await;
    failed("reset mid-response", &mid, "reading failed: Connection reset by peer");
    let endless = run(&clients, probe(hostile_server(Hostile::EndlessBody).await)).await;
    failed("endless", &endless, "expected `PONG` not found in the first 64 KiB");
    assert_eq!(endless.body.as_ref().map(String::len), Some(BODY_LIMIT));
    let huge = run(&clients, probe(hostile_server(Hostile::HugeHeaders).await)).await;
    failed("1 MiB", &huge, "expected `PONG` not found in the first 64 KiB");
    let trickle = run(&clients, probe(hostile_server(Hostile::TrickleHead).await)).await;
    failed("trickle", &trickle, "timeout after 1s waiting for `PONG`");
    assert!(trickle.body.as_deref().is_some_and(|body| body.starts_with("HTTP/1.1")));
}

#[tokio::test]
async fn tls_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let self_signed = self_signed_tls_server().await;
    let untrusted = run(&clients, tls(self_signed, None, true)).await;
    failed("self-signed", &untrusted, "tls: invalid peer certificate");
    let wrong_host = run(&clients, tls(self_signed, Some("wrong.example"), true)).await;
    failed("another host's name", &wrong_host, "tls: invalid peer certificate");
    // Without verification the same server is fine: the failures above are the certificate's.
    let insecure = run(&clients, tls(self_signed, Some("wrong.example"), false)).await;
    assert!(insecure.connected && insecure.error.is_none(), "{insecure:?}");

    let silent = run(&clients, tls(silent_server().await, None, false)).await;
    failed("silent", &silent, "timeout after 1s in the TLS handshake");
    let reset = run(&clients, tls(hostile_server(Hostile::ResetAtAccept).await, None, false)).await;
    failed("reset at accept", &reset, "reset");
    let garbage = run(&clients, tls(hostile_server(Hostile::Garbage).await, None, false)).await;
    failed("garbage", &garbage, "tls: received corrupt message");
    let trickle =
        run(&clients, tls(hostile_server(Hostile::TrickleTlsRecord).await, None, false)).await;
    failed("trickle", &trickle, "timeout after 1s in the TLS handshake");
    let endless =
        run(&clients, tls(hostile_server(Hostile::EndlessTlsHandshake).await, None, false)).await;
    failed("endless handshake", &endless, "tls: received corrupt message of type HandshakePayloadTooLarge");
}

#[tokio::test]
async fn dns_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let garbage = run(&clients, dns(hostile_dns(HostileDns::Garbage).await, "app.test")).await;
    failed("garbage", &garbage, "timeout after 1s waiting for the answer; ");
    failed("garbage", &garbage, "the last not a DNS answer");
    let cut = run(&clients, dns(hostile_dns(HostileDns::Cut).await, "app.test")).await;
    failed("cut", &cut, "the last not a DNS answer");
    let wrong_id = run(&clients, dns(hostile_dns(HostileDns::WrongId).await, "app.test")).await;
    failed("another id", &wrong_id, "the last an answer to another query");
    let silent_tcp = run(
        &clients,
        dns(hostile_dns(HostileDns::TruncatedThenSilentTcp).await, "tc.test"),
    )
    .await;
    failed("truncated, then silent over TCP", &silent_tcp, "timeout after 1s waiting for the answer over TCP");
    let garbage_tcp = run(
        &clients,
        dns(hostile_dns(HostileDns::TruncatedThenGarbageTcp).await, "tc.test"),
    )
    .await;
    failed("truncated, then garbage over TCP", &garbage_tcp, "dns: invalid answer");
    let trickle_tcp = run(
        &clients,
        dns(hostile_dns(HostileDns::TruncatedThenTrickleTcp).await, "tc.test"),
    )
    .await;
    failed("truncated, then a trickle over TCP", &trickle_tcp, "timeout after 1s waiting for the answer over TCP");
}

#[tokio::test]
async fn prometheus_probes_end_within_their_timeout_saying_what_happened() {
    let clients = Clients::default();
    let endless = run(&clients, prometheus(hostile_server(Hostile::EndlessBody).await)).await;
    failed("endless", &endless, "larger than 16 MiB");
    let garbage = run(&clients, prometheus(hostile_server(Hostile::ResetMidResponse).await)).await;
    failed("reset", &garbage, "reading the body failed: Connection reset by peer");
    let trickle = run(&clients, prometheus(hostile_server(Hostile::TrickleBody).await)).await;
    failed("trickle", &trickle, "prometheus: timeout after 1s reading the answer");
    let huge = run(&clients, prometheus(hostile_server(Hostile::HugeHeaders).await)).await;
    failed("1 MiB of headers", &huge, "the response headers are too large");
    let silent = run(&clients, prometheus(silent_server().await)).await;
    failed("silent", &silent, "prometheus: timeout after 1s waiting for the answer");
    let (fixture, _) = http_fixture().await;
    let not_json = run(&clients, prometheus(fixture)).await;
    failed("not an answer", &not_json, "prometheus: HTTP 404");
}
