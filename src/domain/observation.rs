//! One probe result as the rules see it. A failing target is a value here, never an error.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this much of a body is kept (and matched by `[BODY]`).
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// When the probe started.
    pub at: DateTime<Utc>,
    /// The target answered at the transport level (TCP connected, TLS handshake done, an
    /// HTTP response arrived, a DNS answer or ICMP echo reply came back, Prometheus answered).
    pub connected: bool,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Total time from the start of the probe to the end of the response (or the failure).
    pub response_time: Duration,
    /// Why the target could not be reached or the answer was unusable (refused, timeout,
    /// DNS, TLS, a Prometheus error), kept as evidence.
    pub error: Option<String>,
    /// HTTP body, bytes a TCP probe read, or DNS answers one per line; at most
    /// [`BODY_LIMIT`] bytes (lossy UTF-8).
    pub body: Option<String>,
    /// HTTP response headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The earliest `notAfter` in the certificate chain the server presented (https, tls).
    pub certificate_expiry: Option<DateTime<Utc>>,
    /// DNS response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …).
    pub dns_rcode: Option<String>,
    /// The sample value of a Prometheus probe's series.
    pub value: Option<f64>,
}

impl Observation {
    /// A result with nothing measured yet; probes fill in what they saw.
    pub fn new(at: DateTime<Utc>) -> Observation {
        Observation {
            at,
            connected: false,
            status: None,
            response_time: Duration::ZERO,
            error: None,
            body: None,
            headers: Vec::new(),
            certificate_expiry: None,
            dns_rcode: None,
            value: None,
        }
    }

    /// What `incidentd_probe_success` reports: the target answered, an HTTP answer was not
    /// an error status (< 400), a DNS answer was `NOERROR`, and nothing went wrong. Rules
    /// decide what is a symptom; this is the probe's own verdict, as in blackbox_exporter's
    /// `probe_success`. `failure_ratio()` counts results where this is false.
    pub fn success(&self) -> bool {
        self.connected
            && self.error.is_none()
            && self.status.is_none_or(|status| status < 400)
            && self
                .dns_rcode
                .as_deref()
                .is_none_or(|rcode| rcode == "NOERROR")
    }

    /// The same result without the bulky parts (body, headers), as kept in a window.
    pub fn summary(&self) -> Observation {
        Observation {
            body: None,
            headers: Vec::new(),
            error: self.error.clone(),
            dns_rcode: self.dns_rcode.clone(),
            ..*self
        }
    }
}

/// Recent results of one subject, oldest first; the last one is the result being
/// evaluated. Window functions (`avg([RESPONSE_TIME], 5m)`) read it.
pub type History = VecDeque<Observation>;
