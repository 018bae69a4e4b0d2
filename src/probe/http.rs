//! The HTTP probe: one request; its status, headers, body (up to
//! [`BODY_LIMIT`](crate::domain::observation::BODY_LIMIT)), total time and, over https, the
//! leaf certificate's expiry. A target that cannot be reached is an [`Observation`] with
//! `connected: false` and the reason, never an error.
//!
//! Per-phase times (DNS, connect, TLS, first byte) are not measured: reqwest does not expose
//! them, and measuring them would mean driving hyper's connection setup ourselves.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{body_text, cert};
use crate::config::HttpProbe;
use crate::domain::observation::{BODY_LIMIT, Observation};

/// At most this many redirects are followed when `follow_redirects` is on (curl's and
/// reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// The HTTP clients every probe shares: one per (`tls_verify`, `follow_redirects`), built on
/// first use, so at most four whatever the number of probes.
#[derive(Default)]
pub struct HttpClients {
    clients: [OnceLock<Result<reqwest::Client, String>>; 4],
}

impl HttpClients {
    pub fn get(
        &self,
        tls_verify: bool,
        follow_redirects: bool,
    ) -> Result<&reqwest::Client, String> {
        let slot = usize::from(tls_verify) * 2 + usize::from(follow_redirects);
        self.clients[slot]
            .get_or_init(|| build_client(tls_verify, follow_redirects))
            .as_ref()
            .map_err(Clone::clone)
    }
}

fn build_client(tls_verify: bool, follow_redirects: bool) -> Result<reqwest::Client, String> {
    let redirect = if follow_redirects {
        reqwest::redirect::Policy::limited(MAX_REDIRECTS)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .user_agent(concat!("incidentd/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect)
        .tls_danger_accept_invalid_certs(!tls_verify)
        .tls_info(true)
        // A fresh connection per probe, as blackbox_exporter does: a pooled one would hide
        // connect and TLS failures, and the certificate, behind a connection made earlier.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("building the HTTP client failed: {e}"))
}

pub async fn run(
    clients: &HttpClients,
    probe: &HttpProbe,
    timeout: Duration,
    at: DateTime<Utc>,
) -> Observation {
    let started = Instant::now();
    let mut observation = Observation::new(at);
    let exchange = async {
        let client = clients
            .get(probe.tls_verify, probe.follow_redirects)
            .map_err(Failed::Error)?;
        exchange(client, probe, timeout, &mut observation).await
    };
    // reqwest's own timeout covers the body too; this one also bounds what it does not
    // (it is the probe's contract that a run ends within its timeout).
    let outcome = tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(Failed::Timeout));
    observation.error = outcome.err().map(|failed| match failed {
        // A response arrived (`connected`): the time ran out in its body.
        Failed::Timeout if observation.connected => super::timed_out(timeout, "reading the body"),
        Failed::Timeout => super::timed_out(timeout, "waiting for the response"),
        Failed::Error(error) => error,
    });
    observation.response_time = started.elapsed();
    observation
}

/// Why an exchange failed: the time ran out (said with what it was waiting for, which the
/// caller knows), or the reason.
pub(super) enum Failed {
    Timeout,
    Error(String),
}

impl From<&reqwest::Error> for Failed {
    fn from(error: &reqwest::Error) -> Failed {
        if error.is_timeout() {
            Failed::Timeout
        } else {
            Failed::Error(describe(error))
        }
    }
}

/// Sends the request and fills in what the response says; `Err` with the reason when the
/// request failed (before a response: `connected` stays false) or reading the body did.
async fn exchange(
    client: &reqwest::Client,
    probe: &HttpProbe,
    timeout: Duration,
    observation: &mut Observation,
) -> Result<(), Failed> {
    let mut request = client
        .request(probe.method.clone(), probe.url.clone())
        .timeout(timeout);
    for (name, value) in &probe.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &probe.body {
        request = request.body(body.clone());
    }
    let mut response = request.send().await.map_err(|e| Failed::from(&e))?;
    observation.connected = true;
    observation.status = Some(response.status().as_u16());
    observation.headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            // Names are lower case in `http`; values may be any bytes.
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    observation.certificate_expiry = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .and_then(cert::not_after);
    let mut body = Vec::new();
    let outcome = loop {
        if body.len() >= BODY_LIMIT {
            // The rest is never read: dropping the response closes the connection.
            break Ok(());
        }
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(Failed::from(&error)),
        }
    };
    observation.body = Some(body_text(&body));
    outcome
}

/// The reason a request failed, short and without the URL (the probe is named elsewhere).
pub(super) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_redirect() {
        "too many redirects"
    } else if error.is_body() || error.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    // The innermost cause is the useful part ("Connection refused (os error 111)").
    let mut source: &dyn std::error::Error = error;
    let mut head_too_large = false;
    while let Some(next) = source.source() {
        source = next;
        head_too_large |= source
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large);
    }
    if head_too_large {
        // hyper stops reading a head at its buffer's size (about 400 KiB) or at 100 header
        // lines: a target sending more is broken or hostile, and says nothing useful.
        return format!("{kind}: the response headers are too large");
    }
    let cause = source.to_string();
    if cause == error.to_string() || error.is_timeout() || error.is_redirect() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
