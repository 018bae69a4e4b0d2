//! Every probe type against real loopback targets: the probe function called directly
//! (`probe::run_once`), asserting the Observation's fields, the running app (scheduler,
//! metrics, `GET /api/v1/probes`, incidents per Prometheus series), and the scheduler
//! reconfigured while it runs (`ProbeSet::apply`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, State};
use incidentd::clock::ManualClock;
use incidentd::config::{
    DnsProbe, HttpProbe, IcmpProbe, ProbeConfig, ProbeTarget, PrometheusProbe, TcpProbe, TlsProbe,
};
use incidentd::domain::observation::{BODY_LIMIT, Observation};
use incidentd::engine::Engine;
use incidentd::metrics::Metrics;
use incidentd::probe::{self, Applied, Clients, ProbeBoard, ProbeSet, Scheduler, Subject};
use incidentd::store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(20);

fn config(target: ProbeTarget, timeout: Duration) -> ProbeConfig {
    ProbeConfig {
        name: "probe".to_owned(),
        interval: Duration::from_secs(10),
        confirm_interval: Duration::from_secs(1),
        timeout,
        labels: BTreeMap::new(),
        target,
    }
}

/// Runs a single-target probe once and returns its one observation.
async fn run(target: ProbeTarget, timeout: Duration) -> Observation {
    let results = run_all(target, timeout).await;
    let [(subject, observation)] = &results[..] else {
        panic!("one result expected: {results:?}")
    };
    assert!(subject.is_empty(), "a single target has no subject labels");
    assert_eq!(observation.at, start_time(), "time comes from the clock");
    observation.clone()
}

async fn run_all(target: ProbeTarget, timeout: Duration) -> Vec<(Subject, Observation)> {
    let clock = ManualClock::new(start_time());
    probe::run_once(&Clients::default(), &config(target, timeout), &clock).await
}

fn http(url: &str) -> HttpProbe {
    HttpProbe {
        url: url.parse().unwrap(),
        method: reqwest::Method::GET,
        headers: BTreeMap::new(),
        body: None,
        tls_verify: true,
        follow_redirects: false,
    }
}

fn header<'a>(observation: &'a Observation, name: &str) -> Option<&'a str> {
    observation
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

const SHORT: Duration = Duration::from_secs(5);

// ----- http -----------------------------------------------------------------------------

#[tokio::test]
async fn http_status_body_headers_and_time() {
    let (addr, _) = http_fixture().await;
    let ok = run(ProbeTarget::Http(http(&format!("http://{addr}/ok"))), SHORT).await;
    assert!(ok.connected && ok.error.is_none(), "{ok:?}");
    assert_eq!(ok.status, Some(200));
    assert_eq!(ok.body.as_deref(), Some("ok"));
    assert!(ok.response_time > Duration::ZERO && ok.response_time < SHORT);
    assert_eq!(ok.certificate_expiry, None, "plain http has no certificate");
    assert!(ok.success());

    let headers = run(
        ProbeTarget::Http(http(&format!("http://{addr}/headers"))),
        SHORT,
    )
    .await;
    assert_eq!(header(&headers, "x-probe-test"), Some("yes"));
    assert_eq!(
        header(&headers, "x-mixed-case"),
        Some("Value"),
        "names are lower-cased"
    );
    assert_eq!(header(&headers, "content-length"), Some("12"));

    let failing = run(
        ProbeTarget::Http(http(&format!("http://{addr}/status/503"))),
        SHORT,
    )
    .await;
    assert!(failing.connected && failing.error.is_none());
    assert_eq!(failing.status, Some(503));
    assert!(!failing.success(), "a 5xx is not a success");
}

#[tokio::test]
async fn http_body_is_capped() {
    let (addr, _) = http_fixture().await;
    let big = run(
        ProbeTarget::Http(http(&format!("http://{addr}/big"))),
        SHORT,
    )
    .await;
    assert_eq!(big.status, Some(200));
    assert!(big.error.is_none(), "{big:?}");
    let body = big.body.unwrap();
    assert_eq!(body.len(), BODY_LIMIT, "200 KiB served, 64 KiB kept");
    assert!(body.bytes().all(|b| b == b'x'));
}

#[tokio::test]
async fn http_redirects_are_followed_only_when_asked() {
    let (addr, _) = http_fixture().await;
    let url = format!("http://{addr}/redirect");
    let shown = run(ProbeTarget::Http(http(&url)), SHORT).await;
    assert_eq!(shown.status, Some(302));
    assert_eq!(header(&shown, "location"), Some("/final"));
    assert_eq!(shown.body.as_deref(), Some("moved"));

    let followed = run(
        ProbeTarget::Http(HttpProbe {
            follow_redirects: true,
            ..http(&url)
        }),
        SHORT,
    )
    .await;
    assert_eq!(followed.status, Some(200));
    assert_eq!(followed.body.as_deref(), Some("final"));
}

#[tokio::test]
async fn http_post_with_headers_and_body() {
    let (addr, _) = http_fixture().await;
    let post = run(
        ProbeTarget::Http(HttpProbe {
            method: reqwest::Method::POST,
            headers: BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())]),
            body: Some(r#"{"user":"probe"}"#.to_owned()),
            ..http(&format!("http://{addr}/echo"))
        }),
        SHORT,
    )
    .await;
    assert_eq!(post.status, Some(200));
    assert_eq!(
        post.body.as_deref(),
        Some(r#"POST application/json {"user":"probe"}"#)
    );
}

#[tokio::test]
async fn http_timeout_and_refused_are_values() {
    let silent = silent_server().await;
    let timeout = Duration::from_millis(300);
    let hung = run(
        ProbeTarget::Http(http(&format!("http://{silent}/"))),
        timeout,
    )
    .await;
    assert!(!hung.connected);
    assert_eq!(
        hung.error.as_deref(),
        Some("timeout after 300ms waiting for the response")
    );
    assert_eq!(hung.status, None);
    assert!(
        hung.response_time >= timeout && hung.response_time < timeout * 3,
        "{:?}",
        hung.response_time
    );

    let refused = run(
        ProbeTarget::Http(http(&format!("http://{}/", refused_addr()))),
        SHORT,
    )
    .await;
    assert!(!refused.connected);
    let error = refused.error.unwrap();
    assert!(
        error.starts_with("connection failed") && error.contains("refused"),
        "{error}"
    );
}

#[tokio::test]
async fn https_with_tls_verify_false_reports_the_leaf_expiry() {
    let tls = tls_fixture().await;
    let url = format!("https://localhost:{}/", tls.addr.port());
    let insecure = run(
        ProbeTarget::Http(HttpProbe {
            tls_verify: false,
            ..http(&url)
        }),
        SHORT,
    )
    .await;
    assert!(
        insecure.connected && insecure.error.is_none(),
        "{insecure:?}"
    );
    assert_eq!(insecure.status, Some(200));
    assert_eq!(insecure.body.as_deref(), Some("tls ok"));
    // reqwest shows the leaf only (the tls probe reads the whole chain).
    assert_eq!(insecure.certificate_expiry, Some(tls.leaf_not_after));

    let verified = run(ProbeTarget::Http(http(&url)), SHORT).await;
    assert!(!verified.connected);
    let error = verified.error.unwrap();
    assert!(
        error.starts_with("connection failed") && error.contains("certificate"),
        "{error}"
    );
}

// ----- tcp ------------------------------------------------------------------------------

fn tcp(address: SocketAddr, send: Option<&str>, expect: Option<&str>) -> ProbeTarget {
    ProbeTarget::Tcp(TcpProbe {
        address: address.to_string(),
        send: send.map(str::to_owned),
        expect: expect.map(str::to_owned),
    })
}

#[tokio::test]
async fn tcp_connect_send_and_expect() {
    let server = banner_server().await;
    let connect = run(tcp(server, None, None), SHORT).await;
    assert!(connect.connected && connect.error.is_none(), "{connect:?}");
    assert_eq!(connect.body, None, "nothing is read without `expect`");

    let banner = run(tcp(server, None, Some("ready")), SHORT).await;
    assert!(banner.connected && banner.error.is_none(), "{banner:?}");
    assert_eq!(banner.body.as_deref(), Some("220 fixture ready\r\n"));

    let pong = run(tcp(server, Some("PING\n"), Some("PONG PING")), SHORT).await;
    assert!(pong.connected && pong.error.is_none(), "{pong:?}");
    assert!(pong.body.as_deref().unwrap().contains("PONG PING"));
    assert!(pong.success());

    // The server closes after its answer: the expectation fails, the connection worked.
    let missing = run(tcp(server, Some("PING\n"), Some("NOPE")), SHORT).await;
    assert!(missing.connected);
    assert_eq!(
        missing.error.as_deref(),
        Some("expected `NOPE` not found before the connection closed (30 bytes read)")
    );
    assert_eq!(
        missing.body.as_deref(),
        Some("220 fixture ready\r\nPONG PING\r\n")
    );
    assert!(!missing.success());
}

#[tokio::test]
async fn tcp_refused_and_silent() {
    let refused = run(tcp(refused_addr(), None, None), SHORT).await;
    assert!(!refused.connected);
    let error = refused.error.unwrap();
    assert!(
        error.starts_with("connection failed:") && error.contains("refused"),
        "{error}"
    );

    let timeout = Duration::from_millis(300);
    let silent = run(tcp(silent_server().await, None, Some("hello")), timeout).await;
    assert!(silent.connected);
    assert_eq!(
        silent.error.as_deref(),
        Some("timeout after 300ms waiting for `hello` (0 bytes read)")
    );
    assert_eq!(silent.body.as_deref(), Some(""));
    assert!(silent.response_time >= timeout && silent.response_time < timeout * 3);
}

// ----- tls ------------------------------------------------------------------------------

fn tls_probe(addr: SocketAddr, verify: bool) -> ProbeTarget {
    ProbeTarget::Tls(TlsProbe {
        address: format!("localhost:{}", addr.port()),
        server_name: None,
        verify,
    })
}

#[tokio::test]
async fn tls_reads_the_earliest_expiry_of_the_chain() {
    let tls = tls_fixture().await;
    let insecure = run(tls_probe(tls.addr, false), SHORT).await;
    assert!(
        insecure.connected && insecure.error.is_none(),
        "{insecure:?}"
    );
    // The CA (2030-01-02) expires before the leaf (2031-06-01).
    assert_eq!(insecure.certificate_expiry, Some(tls.ca_not_after));
    assert!(tls.ca_not_after < tls.leaf_not_after);
    assert!(insecure.response_time > Duration::ZERO);
}

#[tokio::test]
async fn tls_verification_failure_is_clear_and_still_reports_the_expiry() {
    let tls = tls_fixture().await;
    let verified = run(tls_probe(tls.addr, true), SHORT).await;
    assert!(
        !verified.connected,
        "TCP worked, TLS did not: not connected"
    );
    assert_eq!(
        verified.error.as_deref(),
        Some("tls: invalid peer certificate: UnknownIssuer")
    );
    assert_eq!(verified.certificate_expiry, Some(tls.ca_not_after));

    let refused = run(tls_probe(refused_addr(), false), SHORT).await;
    assert!(!refused.connected);
    assert!(refused.error.unwrap().starts_with("connection failed:"));
    assert_eq!(refused.certificate_expiry, None);

    // A server that accepts and never speaks TLS: the handshake times out.
    let timeout = Duration::from_millis(300);
    let silent = run(tls_probe(silent_server().await, false), timeout).await;
    assert_eq!(
        (silent.connected, silent.error.as_deref()),
        (false, Some("timeout after 300ms in the TLS handshake"))
    );
}

// ----- dns ------------------------------------------------------------------------------

fn dns(server: SocketAddr, name: &str, record: &str) -> ProbeTarget {
    ProbeTarget::Dns(DnsProbe {
        name: name.to_owned(),
        server,
        record: record.to_owned(),
    })
}

#[tokio::test]
async fn dns_answers_rcodes_and_truncation() {
    let server = dns_fixture().await;
    let found = run(dns(server, "app.test", "A"), SHORT).await;
    assert!(found.connected && found.error.is_none(), "{found:?}");
    assert_eq!(found.dns_rcode.as_deref(), Some("NOERROR"));
    assert_eq!(found.body.as_deref(), Some("10.1.2.3\n10.1.2.4"));
    assert!(found.success());

    let missing = run(dns(server, "nope.test", "A"), SHORT).await;
    assert!(missing.connected && missing.error.is_none());
    assert_eq!(missing.dns_rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(missing.body.as_deref(), Some(""));
    assert!(!missing.success(), "NXDOMAIN is not a success");

    let failing = run(dns(server, "fail.test", "A"), SHORT).await;
    assert_eq!(failing.dns_rcode.as_deref(), Some("SERVFAIL"));

    let no_aaaa = run(dns(server, "app.test", "AAAA"), SHORT).await;
    assert_eq!(
        (no_aaaa.dns_rcode.as_deref(), no_aaaa.body.as_deref()),
        (Some("NOERROR"), Some(""))
    );

    // Truncated over UDP: asked again over TCP.
    let truncated = run(dns(server, "tc.test", "A"), SHORT).await;
    assert_eq!(truncated.body.as_deref(), Some("10.9.9.9"), "{truncated:?}");
}

#[tokio::test]
async fn dns_server_down() {
    let down = run(
        dns(closed_udp_addr(), "app.test", "A"),
        Duration::from_millis(500),
    )
    .await;
    assert!(!down.connected);
    assert_eq!(down.dns_rcode, None);
    let error = down.error.unwrap();
    // Loopback answers "port unreachable", which the connected socket reports.
    assert!(
        error.contains("refused") || error.starts_with("timeout after "),
        "{error}"
    );
}

// ----- icmp -----------------------------------------------------------------------------

#[tokio::test]
async fn icmp_pings_loopback_or_check_says_why_not() {
    let rules = "probes:\n  - {name: ping, interval: 1s, icmp: {host: 127.0.0.1}}\n";
    let dir = ConfigDir::new("", &[("ping.yaml", rules)]);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir.path())
        .args(["check", "--config", "incidentd.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    match probe::icmp::check_access() {
        Ok(()) => {
            assert!(check.status.success(), "{stderr}");
            let target = ProbeTarget::Icmp(IcmpProbe {
                host: "127.0.0.1".to_owned(),
            });
            let ping = run(target, SHORT).await;
            assert!(ping.connected && ping.error.is_none(), "{ping:?}");
            assert!(ping.response_time > Duration::ZERO && ping.response_time < SHORT);
            assert!(ping.success());
            let name = ProbeTarget::Icmp(IcmpProbe {
                host: "localhost".to_owned(),
            });
            assert!(run(name, SHORT).await.connected, "a host name is resolved");
        }
        Err(denied) => {
            eprintln!("this host does not allow ICMP; checking the check-time error instead");
            assert_eq!(check.status.code(), Some(1));
            assert_eq!(
                stderr.trim_end(),
                format!(
                    "rules/ping.yaml:2:33: icmp probes need unprivileged ICMP sockets: set sysctl net.ipv4.ping_group_range to include group {} (e.g. `sysctl -w net.ipv4.ping_group_range='0 2147483647'`)",
                    denied.gid
                )
            );
        }
    }
}

// ----- prometheus -----------------------------------------------------------------------

fn prometheus(url: &str, query: &str) -> ProbeTarget {
    ProbeTarget::Prometheus(PrometheusProbe {
        url: url.parse().unwrap(),
        query: query.to_owned(),
    })
}

/// Waits until both scrape jobs have reported `up`.
async fn scraped(server: &PrometheusServer) -> Vec<(Subject, Observation)> {
    eventually("both targets scraped", DEADLINE, async || {
        let results = run_all(prometheus(&server.url, "up"), SHORT).await;
        (results.len() == 2).then_some(results)
    })
    .await
}

#[tokio::test]
async fn prometheus_series_are_subjects() {
    let Some(server) = start_prometheus().await else {
        return;
    };
    let mut results = scraped(&server).await;
    results.sort_by(|a, b| a.0.get("job").cmp(&b.0.get("job")));
    let jobs: Vec<(&str, Option<f64>)> = results
        .iter()
        .map(|(subject, observation)| {
            assert!(observation.connected && observation.error.is_none());
            assert_eq!(observation.status, Some(200));
            assert!(!subject.contains_key("__name__"));
            assert!(subject.contains_key("instance"));
            (subject["job"].as_str(), observation.value)
        })
        .collect();
    assert_eq!(jobs, [("dead", Some(0.0)), ("self", Some(1.0))]);

    // A scalar is one subject without labels.
    let scalar = run_all(prometheus(&server.url, "scalar(sum(up))"), SHORT).await;
    assert_eq!(scalar.len(), 1);
    assert!(scalar[0].0.is_empty());
    assert_eq!(scalar[0].1.value, Some(1.0));

    // Labels of a real metric, minus its name.
    let info = run_all(prometheus(&server.url, "prometheus_build_info"), SHORT).await;
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].0.contains_key("version") && info[0].0["job"] == "self");

    // An empty vector: no subjects, no error.
    let none = run_all(prometheus(&server.url, "up{job=\"nothing\"}"), SHORT).await;
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn prometheus_errors_are_one_result() {
    let Some(server) = start_prometheus().await else {
        return;
    };
    let bad = run(prometheus(&server.url, "up{"), SHORT).await;
    assert!(bad.connected, "Prometheus answered");
    assert_eq!(bad.status, Some(400));
    let error = bad.error.unwrap();
    assert!(error.starts_with("prometheus: bad_data: "), "{error}");

    let not_prometheus = {
        let (addr, _) = http_fixture().await;
        run(prometheus(&format!("http://{addr}/"), "up"), SHORT).await
    };
    assert_eq!(not_prometheus.status, Some(404));
    assert!(
        not_prometheus
            .error
            .unwrap()
            .starts_with("prometheus: HTTP 404")
    );

    let down = run(
        prometheus(&format!("http://{}", refused_addr()), "up"),
        SHORT,
    )
    .await;
    assert!(!down.connected);
    assert!(
        down.error
            .unwrap()
            .starts_with("prometheus: connection failed")
    );
}

// ----- through the running app ----------------------------------------------------------

async fn probes(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/probes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["probes"].as_array().unwrap().clone()
}

/// The app's view of one probe once it has a result.
async fn last_result(app: &TestApp, name: &str) -> Value {
    eventually(&format!("a result of {name}"), DEADLINE, async || {
        probes(app)
            .await
            .into_iter()
            .find(|p| p["name"] == name && !p["last_result"].is_null())
    })
    .await
}

#[tokio::test]
async fn the_app_runs_every_probe_type_and_reports_them() {
    let (http_addr, _) = http_fixture().await;
    let banner = banner_server().await;
    let tls = tls_fixture().await;
    let dns_server = dns_fixture().await;
    let refused = refused_addr();
    let rules = format!(
        r#"probes:
  - {{name: web, interval: 200ms, timeout: 200ms, http: {{url: "http://{http_addr}/ok"}}}}
  - {{name: smtp, interval: 200ms, timeout: 200ms, tcp: {{address: "{banner}", expect: "220"}}}}
  - {{name: cert, interval: 200ms, timeout: 200ms, tls: {{address: "localhost:{tls_port}", verify: false}}}}
  - {{name: resolver, interval: 200ms, timeout: 200ms, dns: {{name: app.test, server: "{dns_server}"}}}}
  - {{name: down, interval: 200ms, timeout: 200ms, tcp: {{address: "{refused}"}}}}
  - {{name: never-yet, interval: 1h, http: {{url: "http://user:secret@{http_addr}/ok"}}}}
"#,
        tls_port = tls.addr.port()
    );
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nprobe_concurrency: 4\n",
        &[("probes.yaml", &rules)],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    let web = last_result(&app, "web").await;
    assert_eq!(web["type"], "http");
    assert_eq!(web["target"], format!("http://{http_addr}/ok"));
    assert_eq!(web["interval_seconds"], 0.2);
    assert_eq!(web["last_result"]["success"], true);
    assert_eq!(web["last_result"]["status"], 200);
    assert_eq!(web["last_result"]["subjects"], 1);
    assert!(
        web["last_result"]["response_time_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(web["last_result"]["at"], "2026-03-02T09:00:00Z");

    let smtp = last_result(&app, "smtp").await;
    assert_eq!(
        (
            smtp["type"].as_str(),
            smtp["last_result"]["success"].as_bool()
        ),
        (Some("tcp"), Some(true))
    );

    let cert = last_result(&app, "cert").await;
    assert_eq!(
        cert["last_result"]["certificate_expiry"],
        "2030-01-02T00:00:00Z"
    );

    let resolver = last_result(&app, "resolver").await;
    assert_eq!(resolver["last_result"]["dns_rcode"], "NOERROR");
    assert_eq!(resolver["target"], format!("app.test A @{dns_server}"));

    let down = last_result(&app, "down").await;
    assert_eq!(down["last_result"]["success"], false);
    assert_eq!(down["last_result"]["connected"], false);
    assert!(
        down["last_result"]["error"]
            .as_str()
            .unwrap()
            .starts_with("connection failed")
    );

    // History: runs accumulate, and the failing probe's ratio is 0.
    let down = eventually("a few runs of `down`", DEADLINE, async || {
        let all = probes(&app).await;
        let down = all.into_iter().find(|p| p["name"] == "down")?;
        (down["history"]["results"].as_u64()? >= 3).then_some(down)
    })
    .await;
    assert_eq!(down["history"]["failures"], down["history"]["results"]);
    assert_eq!(down["history"]["success_ratio"], 0.0);

    let all = probes(&app).await;
    let never = all.iter().find(|p| p["name"] == "never-yet").unwrap();
    assert_eq!(never["target"], format!("http://user:xxxxx@{http_addr}/ok"));
    assert_eq!(never["history"]["results"], 0);
    assert!(never["history"]["success_ratio"].is_null());
    let names: Vec<&str> = all.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["web", "smtp", "cert", "resolver", "down", "never-yet"],
        "config order"
    );

    let metrics = app.metrics().await;
    for line in [
        "incidentd_probe_success{probe=\"web\"} 1",
        "incidentd_probe_success{probe=\"down\"} 0",
        // 2030-01-02T00:00:00Z
        "incidentd_probe_cert_expiry_timestamp_seconds{probe=\"cert\"} 1893542400",
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
    assert!(metrics.contains("incidentd_probe_last_duration_seconds{probe=\"resolver\"} "));
    // By default one duration histogram over every probe, and the schedule's lag.
    assert!(!metrics.contains("incidentd_probe_duration_seconds_count{"));
    for family in [
        "incidentd_probe_duration_seconds_count ",
        "incidentd_probe_schedule_lag_seconds_count ",
        "incidentd_probe_runs_skipped_total ",
        "incidentd_probe_results_dropped_total 0",
    ] {
        assert!(metrics.contains(family), "{family} missing in:\n{metrics}");
    }
    assert!(!metrics.contains("incidentd_probe_cert_expiry_timestamp_seconds{probe=\"web\"}"));
    app.stop().await;
}

#[tokio::test]
async fn probe_concurrency_bounds_runs_in_flight() {
    let (addr, in_flight) = http_fixture().await;
    let mut rules = String::from("probes:\n");
    for i in 0..6 {
        rules.push_str(&format!(
            "  - {{name: slow-{i}, interval: 1s, timeout: 1s, http: {{url: \"http://{addr}/slow\"}}}}\n"
        ));
    }
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nprobe_concurrency: 2\n",
        &[("slow.yaml", &rules)],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    eventually("a dozen slow runs", DEADLINE, async || {
        (in_flight.total.load(Ordering::SeqCst) >= 12).then_some(())
    })
    .await;
    let max = in_flight.max.load(Ordering::SeqCst);
    assert!(max <= 2, "{max} runs in flight with probe_concurrency 2");
    assert_eq!(max, 2, "the limit is used");
    app.stop().await;
}

#[tokio::test]
async fn each_prometheus_series_opens_its_own_incident() {
    let Some(server) = start_prometheus().await else {
        return;
    };
    scraped(&server).await;
    // `[CONNECTED]` holds for every series: one incident per subject, with its labels.
    let rules = format!(
        r#"probes:
  - {{name: up, interval: 500ms, timeout: 500ms, labels: {{service: monitoring}}, prometheus: {{url: "{}", query: up}}}}
rules:
  - {{name: seen, probe: up, when: '[CONNECTED]', incident: {{impact: low, urgency: low}}}}
"#,
        server.url
    );
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[("prom.yaml", &rules)]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let incidents = eventually("two incidents", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/incidents").await;
        let incidents = body["incidents"].as_array()?.clone();
        (incidents.len() >= 2).then_some(incidents)
    })
    .await;
    let mut jobs: Vec<&str> = incidents
        .iter()
        .map(|i| i["labels"]["job"].as_str().unwrap())
        .collect();
    jobs.sort_unstable();
    assert_eq!(jobs, ["dead", "self"]);
    assert_ne!(incidents[0]["fingerprint"], incidents[1]["fingerprint"]);
    for incident in &incidents {
        assert_eq!(incident["labels"]["service"], "monitoring");
        assert_eq!(incident["labels"]["rule"], "seen");
    }
    // Steady: more runs, still one incident per series (dedup per subject).
    let up = last_result(&app, "up").await;
    assert_eq!(up["last_result"]["subjects"], 2);
    eventually("more runs", DEADLINE, async || {
        let all = probes(&app).await;
        (all[0]["history"]["results"].as_u64()? >= 4).then_some(())
    })
    .await;
    let (_, body) = app.get("/api/v1/incidents").await;
    assert_eq!(body["incidents"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// Rules read what the probes measure: a certificate close to expiry (an early symptom), a
/// DNS name that stopped resolving, and a Prometheus series whose value says it is down.
#[tokio::test]
async fn rules_read_certificate_expiry_dns_rcode_and_prometheus_values() {
    let tls = tls_fixture().await;
    let dns = dns_fixture().await;
    let prometheus = start_prometheus().await;
    let mut rules = format!(
        r#"probes:
  - {{name: cert, interval: 200ms, timeout: 200ms, labels: {{service: edge}}, tls: {{address: "{tls}", server_name: localhost, verify: false}}}}
  - {{name: name, interval: 200ms, timeout: 200ms, labels: {{service: dns}}, dns: {{name: missing.test, server: "{dns}", record: A}}}}
rules:
  # The test clock says 2026-03-02; the chain's CA expires 2030-01-02, in ~1402 days.
  - name: cert-expiring
    probe: cert
    when: '[CERTIFICATE_EXPIRATION] < 1500d'
    incident: {{title: 'Certificate expires soon', category: security, impact: medium, urgency: low}}
  - name: name-gone
    probe: name
    when: '[DNS_RCODE] == "NXDOMAIN"'
"#,
        tls = tls.addr,
    );
    if let Some(server) = &prometheus {
        scraped(server).await;
        rules.push_str("  - {name: target-down, probe: up, when: '[VALUE] == 0'}\n");
        rules = rules.replacen(
            "rules:\n",
            &format!(
                "  - {{name: up, interval: 500ms, timeout: 500ms, prometheus: {{url: \"{}\", query: up}}}}\nrules:\n",
                server.url
            ),
            1,
        );
    }
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[("rules.yaml", &rules)]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let want = if prometheus.is_some() { 3 } else { 2 };
    let incidents = eventually("an incident per rule", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/incidents").await;
        let incidents = body["incidents"].as_array()?.clone();
        (incidents.len() >= want).then_some(incidents)
    })
    .await;
    let by_rule = |rule: &str| {
        incidents
            .iter()
            .find(|i| i["labels"]["rule"] == rule)
            .unwrap_or_else(|| panic!("no incident for {rule}: {incidents:#?}"))
            .clone()
    };
    let cert = by_rule("cert-expiring");
    assert_eq!(cert["priority"], "P4");
    assert_eq!(cert["category"], "security");
    assert_eq!(
        cert["evidence"][0]["certificate_expiry"],
        "2030-01-02T00:00:00Z"
    );
    assert_eq!(by_rule("name-gone")["evidence"][0]["dns_rcode"], "NXDOMAIN");
    if prometheus.is_some() {
        // Only the series whose value is 0 (the scrape target that does not exist).
        let down = by_rule("target-down");
        assert_eq!(down["labels"]["job"], "dead");
        assert_eq!(down["evidence"][0]["value"], 0.0);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (_, body) = app.get("/api/v1/incidents").await;
        assert_eq!(
            body["incidents"].as_array().unwrap().len(),
            3,
            "no incident for job=self"
        );
    }
    app.stop().await;
}

// ----- reconfigured at run time -----------------------------------------------------------

/// A loopback HTTP target that answers 200 and counts the requests to each path.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    async fn serve(&self) -> SocketAddr {
        let app = Router::new()
            .fallback(
                |State(hits): State<Hits>, OriginalUri(uri): OriginalUri| async move {
                    *hits
                        .0
                        .lock()
                        .unwrap()
                        .entry(uri.path().to_owned())
                        .or_default() += 1;
                    "ok"
                },
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn of(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn http_probe(name: &str, addr: SocketAddr, path: &str, interval: Duration) -> Arc<ProbeConfig> {
    Arc::new(ProbeConfig {
        name: name.to_owned(),
        interval,
        confirm_interval: interval.min(Duration::from_secs(1)),
        timeout: Duration::from_secs(1),
        labels: BTreeMap::new(),
        target: ProbeTarget::Http(http(&format!("http://{addr}{path}"))),
    })
}

/// The scheduler on a real engine (temp store, no rules), as the app starts it.
struct Running {
    probes: ProbeSet,
    board: ProbeBoard,
    metrics: Metrics,
    read: incidentd::engine::ReadModel,
    tracker: TaskTracker,
    stop: CancellationToken,
    engine_stop: CancellationToken,
    engine_task: tokio::task::JoinHandle<()>,
    _dir: ConfigDir,
}

impl Running {
    async fn start(probes: &[Arc<ProbeConfig>]) -> Running {
        let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
        Running::start_in(dir, Arc::new(ManualClock::new(start_time())), Some(probes))
    }

    /// The engine of the configuration in `dir` (its rules, on a store in `dir`) and the
    /// scheduler running `probes`, or the configuration's own.
    fn start_in(
        dir: ConfigDir,
        clock: Arc<dyn incidentd::clock::Clock>,
        probes: Option<&[Arc<ProbeConfig>]>,
    ) -> Running {
        let config = incidentd::config::load(&dir.config_path(), &|_| None)
            .unwrap_or_else(|errors| panic!("{errors}"));
        let store = Store::open(&dir.path().join("data/incidentd.redb")).unwrap();
        let metrics = Metrics::new();
        let engine_stop = CancellationToken::new();
        let (engine, read, engine_task) = Engine::start(
            store,
            &config,
            clock.clone(),
            metrics.clone(),
            Arc::default(),
            engine_stop.clone(),
            true,
        )
        .unwrap();
        let board = ProbeBoard::default();
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let scheduler = Scheduler {
            engine,
            clock,
            metrics: metrics.clone(),
            board: board.clone(),
            concurrency: 8,
        };
        let probes = scheduler.spawn_all(probes.unwrap_or(&config.probes), &tracker, stop.clone());
        Running {
            probes,
            board,
            metrics,
            read,
            tracker,
            stop,
            engine_stop,
            engine_task,
            _dir: dir,
        }
    }

    /// The board's entry of `name`, if it is on the board.
    fn entry(&self, name: &str) -> Option<Value> {
        let views = serde_json::to_value(self.board.snapshot()).unwrap();
        views
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    fn results(&self, name: &str) -> u64 {
        self.entry(name)
            .and_then(|p| p["history"]["results"].as_u64())
            .unwrap_or(0)
    }

    fn names(&self) -> Vec<String> {
        self.board
            .snapshot()
            .into_iter()
            .map(|view| view.name)
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(DEADLINE, self.tracker.wait())
            .await
            .expect("the probes stop");
        drop(self.probes);
        self.engine_stop.cancel();
        self.engine_task.await.unwrap();
    }
}

#[tokio::test]
async fn reconfiguring_keeps_unchanged_probes_restarts_changed_ones_and_stops_removed_ones() {
    let hits = Hits::default();
    let addr = hits.serve().await;
    let fast = Duration::from_millis(50);
    let mut running = Running::start(&[
        http_probe("keep", addr, "/keep", fast),
        http_probe("change", addr, "/change-old", fast),
        http_probe("remove", addr, "/remove", fast),
    ])
    .await;
    assert_eq!(running.probes.len(), 3);
    eventually("a few runs of each probe", DEADLINE, async || {
        ["keep", "change", "remove"]
            .iter()
            .all(|name| running.results(name) >= 5)
            .then_some(())
    })
    .await;
    let text = running.metrics.render();
    assert!(
        text.contains("incidentd_probe_success{probe=\"remove\"} 1"),
        "{text}"
    );

    let kept_before = running.results("keep");
    let applied = running.probes.apply(&[
        http_probe("new", addr, "/new", fast),
        // Another URL, and an interval long enough that it runs at most once in this test.
        http_probe("change", addr, "/change-new", Duration::from_secs(3600)),
        http_probe("keep", addr, "/keep", fast),
    ]);
    let (removed_hits, old_hits) = (hits.of("/remove"), hits.of("/change-old"));
    assert_eq!(
        applied,
        Applied {
            started: vec!["new".to_owned()],
            restarted: vec!["change".to_owned()],
            stopped: vec!["remove".to_owned()],
            unchanged: 1,
        }
    );
    assert_eq!(running.names(), ["new", "change", "keep"], "the new order");

    // The unchanged probe kept its history; the changed one starts from nothing; the
    // removed one is gone from the board and from /metrics.
    assert!(running.results("keep") >= kept_before);
    let change = running.entry("change").unwrap();
    assert_eq!(change["target"], format!("http://{addr}/change-new"));
    assert_eq!(change["interval_seconds"], 3600.0);
    assert!(
        change["history"]["results"].as_u64().unwrap() <= 1,
        "{change}"
    );
    assert!(running.entry("remove").is_none());
    let text = running.metrics.render();
    assert!(!text.contains("probe=\"remove\""), "{text}");

    // The kept and new probes go on; the removed and the old configuration do not (a run
    // in flight when they stopped may still have reached the target).
    eventually("more runs of keep and new", DEADLINE, async || {
        (running.results("keep") >= kept_before + 5 && running.results("new") >= 5).then_some(())
    })
    .await;
    assert!(
        hits.of("/remove") <= removed_hits + 1,
        "the removed probe still runs"
    );
    assert!(
        hits.of("/change-old") <= old_hits + 1,
        "the old configuration still runs"
    );
    assert!(hits.of("/new") >= 5);
    assert!(running.results("change") <= 1);

    // The same list again changes nothing; an empty one stops everything.
    let same = running.probes.apply(&[
        http_probe("new", addr, "/new", fast),
        http_probe("change", addr, "/change-new", Duration::from_secs(3600)),
        http_probe("keep", addr, "/keep", fast),
    ]);
    assert_eq!(
        same,
        Applied {
            unchanged: 3,
            ..Applied::default()
        }
    );
    let none = running.probes.apply(&[]);
    assert_eq!(none.stopped, ["change", "keep", "new"]);
    assert!(running.probes.is_empty());
    assert_eq!(running.names(), Vec::<String>::new());
    let text = running.metrics.render();
    assert!(!text.contains("incidentd_probe_success{"), "{text}");
    running.stop().await;
}

/// Fast confirmation: between a rule's first symptomatic result and `after`, the probe runs
/// again after `confirm_interval` instead of `interval`. With `interval: 30s` and `after: 3`
/// the incident opens about 200 ms after the first failing run; at the plain interval it
/// would take a minute more.
#[tokio::test]
async fn a_symptom_is_confirmed_at_the_confirm_interval() {
    let target = Target::start(503).await;
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[(
            "web.yaml",
            &format!(
                "probes:\n  - name: web\n    interval: 30s\n    confirm_interval: 100ms\n    \
                 timeout: 1s\n    http: {{url: \"{}\"}}\n\
                 rules:\n  - {{name: web-down, probe: web, when: '[STATUS] != 200', after: 3}}\n",
                target.url()
            ),
        )],
    );
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    // The first run comes within one interval (jittered); without confirmation the third
    // failing run would come a minute after it, far past the deadline below.
    eventually("the first run", Duration::from_secs(40), async || {
        let (_, body) = app.get("/api/v1/probes").await;
        body["probes"][0]["last_result"].as_object().cloned()
    })
    .await;
    let incident = eventually(
        "the incident, confirmed well before the next regular run",
        Duration::from_secs(15),
        async || {
            let (_, body) = app.get("/api/v1/incidents").await;
            body["incidents"].as_array()?.first().cloned()
        },
    )
    .await;
    assert_eq!(incident["source"]["rule"], "web-down");
    let (_, probes) = app.get("/api/v1/probes").await;
    let failures = probes["probes"][0]["history"]["failures"].as_u64().unwrap();
    assert!(failures >= 3, "after: 3 took three runs: {probes}");
    app.stop().await;
}

/// Wall time that follows tokio's clock, so that a test on paused time (tokio's manual
/// clock: it moves only when every task waits) stamps results and commits in that time.
struct TokioClock {
    base: chrono::DateTime<chrono::Utc>,
    start: tokio::time::Instant,
}

impl incidentd::clock::Clock for TokioClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.base + self.start.elapsed()
    }
}

/// Fast confirmation on a manual clock: with `interval: 1h`, `confirm_interval: 200ms` and
/// `after: 3`, the second and third failing runs come 200 ms apart after the first, so the
/// incident opens 400 ms (in the test's own time) after its first symptom; at the plain
/// interval it would take two hours. Time is tokio's paused clock, not sleeps: the check is
/// exact and does not depend on the machine's load.
#[tokio::test(start_paused = true)]
async fn confirmation_runs_come_at_the_confirm_interval_on_a_manual_clock() {
    // A port nothing listens on: each run fails at once (connection refused).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\n",
        &[(
            "db.yaml",
            &format!(
                "probes:\n  - name: db\n    interval: 1h\n    confirm_interval: 200ms\n    \
                 timeout: 50ms\n    tcp: {{address: \"{address}\"}}\n\
                 rules:\n  - {{name: db-down, probe: db, when: '[CONNECTED] == false', after: 3}}\n"
            ),
        )],
    );
    let clock = Arc::new(TokioClock {
        base: start_time(),
        start: tokio::time::Instant::now(),
    });
    let running = Running::start_in(dir, clock, None);

    // The first run comes within one interval (jittered); then two confirmation runs.
    let mut incident = None;
    for _ in 0..(2 * 3600 * 10) {
        incident = running.read.borrow().incidents.values().next().cloned();
        if incident.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let incident = incident.expect("an incident within two hours of the test's time");
    let first_symptom = incident.detected_at.expect("the first symptomatic result");
    let confirmed_after = incident.opened_at - first_symptom;
    assert_eq!(
        confirmed_after,
        chrono::TimeDelta::milliseconds(400),
        "two confirmation runs 200 ms apart, then the incident"
    );

    running.stop().await;
}
