//! One probe result as the rules see it. A failing target is a value here, never an error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// When the probe started.
    pub at: DateTime<Utc>,
    /// The target answered at the transport level (TCP connected, TLS handshake done, an
    /// HTTP response arrived).
    pub connected: bool,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Total time from the start of the probe to the end of the response (or the failure).
    pub response_time: Duration,
    /// Why the target could not be reached (refused, timeout, DNS, TLS), kept as evidence.
    pub error: Option<String>,
}

impl Observation {
    /// What `incidentd_probe_success` reports: the target answered, and an HTTP answer was
    /// not an error status (< 400). Rules decide what is a symptom; this is the probe's own
    /// verdict, as in blackbox_exporter's `probe_success`.
    pub fn success(&self) -> bool {
        self.connected && self.status.is_none_or(|status| status < 400)
    }
}
