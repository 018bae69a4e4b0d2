//! Probes and their scheduler ([`schedule`]: one task per probe, reconfigured at run time
//! by [`ProbeSet::apply`]).
//!
//! Every probe returns a list of (subject, observation): one entry with no labels for a
//! single target, one per series for a Prometheus query. A failing target is a value
//! (`connected: false`, `error`), never an `Err`.

mod board;
mod cert;
mod dns;
mod http;
pub mod icmp;
mod prometheus;
pub mod schedule;
mod tcp;
mod tls;

use std::collections::BTreeMap;

pub use board::{KEPT_RUNS, ProbeBoard, ProbeView, RunSummary, Slot};
pub use http::HttpClients;
pub use schedule::{Applied, ProbeSet, Scheduler};
pub use tls::TlsSetup;

use crate::clock::Clock;
use crate::config::{ProbeConfig, ProbeTarget};
use crate::domain::duration::format_duration;
use crate::domain::observation::{BODY_LIMIT, Observation};

/// A subject's labels: a Prometheus series' labels; empty for single-target probes.
pub type Subject = BTreeMap<String, String>;

/// What probes share: the HTTP clients (at most four) and the TLS setup.
#[derive(Default)]
pub struct Clients {
    pub http: HttpClients,
    pub tls: TlsSetup,
}

/// Runs one probe once: one entry per subject.
pub async fn run_once(
    clients: &Clients,
    probe: &ProbeConfig,
    clock: &dyn Clock,
) -> Vec<(Subject, Observation)> {
    let at = clock.now();
    let timeout = probe.timeout;
    let single = |observation| vec![(Subject::new(), observation)];
    match &probe.target {
        ProbeTarget::Http(target) => single(http::run(&clients.http, target, timeout, at).await),
        ProbeTarget::Tcp(target) => single(tcp::run(target, timeout, at).await),
        ProbeTarget::Tls(target) => single(tls::run(&clients.tls, target, timeout, at).await),
        ProbeTarget::Dns(target) => single(dns::run(target, timeout, at).await),
        ProbeTarget::Icmp(target) => single(icmp::run(target, timeout, at).await),
        ProbeTarget::Prometheus(target) => match clients.http.get(true, false) {
            Ok(client) => prometheus::run(client, target, timeout, at).await,
            Err(error) => single(Observation {
                error: Some(error),
                ..Observation::new(at)
            }),
        },
    }
}

/// The error of a probe that ran out of time, saying how long it waited and for what
/// (`timeout after 2s waiting for the response`).
pub(crate) fn timed_out(timeout: std::time::Duration, waiting: &str) -> String {
    format!("timeout after {} {waiting}", format_duration(timeout))
}

/// Bytes read from a target as text: at most [`BODY_LIMIT`] bytes, invalid UTF-8 replaced,
/// and a character cut at the end dropped rather than replaced.
pub(crate) fn body_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(BODY_LIMIT)];
    let complete = match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        // `error_len() == None`: the input ends inside a character.
        Err(error) if error.error_len().is_none() => &bytes[..error.valid_up_to()],
        Err(_) => bytes,
    };
    let mut text = String::from_utf8_lossy(complete).into_owned();
    // Each replaced byte may grow into a 3-byte U+FFFD: cut back to the limit.
    if text.len() > BODY_LIMIT {
        let mut end = BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_says_how_long_and_for_what() {
        let waited = timed_out(std::time::Duration::from_millis(1500), "connecting");
        assert_eq!(waited, "timeout after 1s500ms connecting");
    }

    #[test]
    fn body_text_keeps_at_most_the_limit() {
        assert_eq!(body_text(b"hello"), "hello");
        assert_eq!(body_text(&vec![b'a'; BODY_LIMIT + 10]).len(), BODY_LIMIT);
        // A character cut by the limit is dropped, not replaced.
        let mut cut = vec![b'a'; BODY_LIMIT - 1];
        cut.extend_from_slice("é".as_bytes());
        assert_eq!(body_text(&cut), "a".repeat(BODY_LIMIT - 1));
        // Invalid bytes are replaced, and the growth is cut back to the limit.
        let invalid = vec![0xff; BODY_LIMIT];
        let text = body_text(&invalid);
        assert!(text.len() <= BODY_LIMIT && text.chars().all(|c| c == '\u{fffd}'));
        assert_eq!(body_text(b"a\xffb"), "a\u{fffd}b");
    }
}
