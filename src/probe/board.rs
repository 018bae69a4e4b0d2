//! The probe board: what each configured probe saw lately, for `GET /api/v1/probes`. The
//! scheduler writes it after every run and the API reads it; it is not the engine's state
//! (probe results reach the engine as commands, and this view must never wait for it), and
//! it is not stored: after a restart it fills again from the next runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{ProbeConfig, ProbeTarget};
use crate::domain::observation::Observation;
use crate::view::timestamp;

/// How many recent runs of each probe the history summary covers.
pub const KEPT_RUNS: usize = 100;

/// One run of a probe, all its subjects folded into one verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub at: DateTime<Utc>,
    /// Every subject succeeded ([`Observation::success`]); true for a query that returned
    /// no series.
    pub success: bool,
    pub connected: bool,
    pub status: Option<u16>,
    /// The wall time of the run.
    pub response_time: Duration,
    /// The first error among the subjects.
    pub error: Option<String>,
    /// The earliest among the subjects.
    pub certificate_expiry: Option<DateTime<Utc>>,
    pub dns_rcode: Option<String>,
    pub subjects: usize,
}

impl RunSummary {
    /// Folds one run's results; `response_time` is the run's wall time.
    pub fn new(
        at: DateTime<Utc>,
        results: &[(super::Subject, Observation)],
        response_time: Duration,
    ) -> RunSummary {
        let observations = || results.iter().map(|(_, observation)| observation);
        let first = observations().next();
        RunSummary {
            at,
            success: observations().all(Observation::success),
            connected: observations().all(|o| o.connected),
            status: first.and_then(|o| o.status),
            response_time,
            error: observations().find_map(|o| o.error.clone()),
            certificate_expiry: observations().filter_map(|o| o.certificate_expiry).min(),
            dns_rcode: first.and_then(|o| o.dns_rcode.clone()),
            subjects: results.len(),
        }
    }
}

/// Shared by the scheduler (writes) and the API (reads); cheap to clone.
#[derive(Clone)]
pub struct ProbeBoard {
    entries: Arc<Mutex<Vec<Entry>>>,
    index: Arc<HashMap<String, usize>>,
}

struct Entry {
    name: String,
    kind: &'static str,
    target: String,
    interval: Duration,
    timeout: Duration,
    last: Option<RunSummary>,
    /// (success, response time in µs) of the last [`KEPT_RUNS`] runs, oldest first; 8
    /// bytes a run, as 10,000 probes keep a million of them.
    recent: VecDeque<(bool, u32)>,
}

impl ProbeBoard {
    /// Every configured probe, in config order, without results yet.
    pub fn new(probes: &[ProbeConfig]) -> ProbeBoard {
        let entries: Vec<Entry> = probes
            .iter()
            .map(|probe| Entry {
                name: probe.name.clone(),
                kind: probe.target.kind(),
                target: target_text(&probe.target),
                interval: probe.interval,
                timeout: probe.timeout,
                last: None,
                recent: VecDeque::with_capacity(KEPT_RUNS),
            })
            .collect();
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.name.clone(), i))
            .collect();
        ProbeBoard {
            entries: Arc::new(Mutex::new(entries)),
            index: Arc::new(index),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, probe: &str, run: RunSummary) {
        let Some(&i) = self.index.get(probe) else {
            return;
        };
        let mut entries = self.lock();
        let entry = &mut entries[i];
        if entry.recent.len() == KEPT_RUNS {
            entry.recent.pop_front();
        }
        let micros = u32::try_from(run.response_time.as_micros()).unwrap_or(u32::MAX);
        entry.recent.push_back((run.success, micros));
        entry.last = Some(run);
    }

    /// The JSON of `GET /api/v1/probes`, in config order.
    pub fn snapshot(&self) -> Vec<ProbeView> {
        self.lock().iter().map(ProbeView::new).collect()
    }
}

/// What a probe watches, for people: the URL (without a password), the address, the query.
fn target_text(target: &ProbeTarget) -> String {
    match target {
        ProbeTarget::Http(http) => redacted(&http.url),
        ProbeTarget::Tcp(tcp) => tcp.address.clone(),
        ProbeTarget::Tls(tls) => tls.address.clone(),
        ProbeTarget::Dns(dns) => format!("{} {} @{}", dns.name, dns.record, dns.server),
        ProbeTarget::Icmp(icmp) => icmp.host.clone(),
        ProbeTarget::Prometheus(prometheus) => {
            format!("{} {}", redacted(&prometheus.url), prometheus.query)
        }
    }
}

fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which these do.
        let _ = url.set_password(Some("xxxxx"));
    }
    url.to_string()
}

#[derive(Debug, Serialize)]
pub struct ProbeView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: String,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    pub last_result: Option<ResultView>,
    pub history: HistoryView,
}

#[derive(Debug, Serialize)]
pub struct ResultView {
    pub at: String,
    pub success: bool,
    pub connected: bool,
    pub status: Option<u16>,
    pub response_time_seconds: f64,
    pub error: Option<String>,
    pub certificate_expiry: Option<String>,
    pub dns_rcode: Option<String>,
    pub subjects: usize,
}

/// Over the last [`KEPT_RUNS`] runs (or fewer, since the start).
#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub results: usize,
    pub failures: usize,
    /// `null` before the first run.
    pub success_ratio: Option<f64>,
    pub avg_response_time_seconds: Option<f64>,
}

impl ProbeView {
    fn new(entry: &Entry) -> ProbeView {
        let results = entry.recent.len();
        let failures = entry.recent.iter().filter(|(success, _)| !success).count();
        let total: Duration = entry
            .recent
            .iter()
            .map(|(_, micros)| Duration::from_micros(u64::from(*micros)))
            .sum();
        let ratio = |part: f64| (results > 0).then(|| part / results as f64);
        ProbeView {
            name: entry.name.clone(),
            kind: entry.kind,
            target: entry.target.clone(),
            interval_seconds: entry.interval.as_secs_f64(),
            timeout_seconds: entry.timeout.as_secs_f64(),
            last_result: entry.last.as_ref().map(|run| ResultView {
                at: timestamp(run.at),
                success: run.success,
                connected: run.connected,
                status: run.status,
                response_time_seconds: run.response_time.as_secs_f64(),
                error: run.error.clone(),
                certificate_expiry: run.certificate_expiry.map(timestamp),
                dns_rcode: run.dns_rcode.clone(),
                subjects: run.subjects,
            }),
            history: HistoryView {
                results,
                failures,
                success_ratio: ratio((results - failures) as f64),
                avg_response_time_seconds: ratio(total.as_secs_f64()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::IcmpProbe;

    fn probe(name: &str) -> ProbeConfig {
        ProbeConfig {
            name: name.to_owned(),
            interval: Duration::from_secs(10),
            confirm_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            labels: BTreeMap::new(),
            target: ProbeTarget::Icmp(IcmpProbe {
                host: "127.0.0.1".to_owned(),
            }),
        }
    }

    fn run(success: bool, millis: u64) -> RunSummary {
        RunSummary {
            at: DateTime::UNIX_EPOCH,
            success,
            connected: success,
            status: None,
            response_time: Duration::from_millis(millis),
            error: (!success).then(|| "timeout".to_owned()),
            certificate_expiry: None,
            dns_rcode: None,
            subjects: 1,
        }
    }

    #[test]
    fn keeps_the_last_runs_and_summarizes_them() {
        let board = ProbeBoard::new(&[probe("a"), probe("b")]);
        let [a, b] = &board.snapshot()[..] else {
            panic!()
        };
        assert!(a.last_result.is_none() && b.last_result.is_none());
        assert_eq!(a.history.success_ratio, None);
        for i in 0..KEPT_RUNS + 10 {
            // The 10 oldest runs fail and fall out of the window; then 1 in 4 fails.
            board.record("a", run(i >= 10 && i % 4 != 0, 100));
        }
        board.record("unknown", run(false, 1));
        let a = &board.snapshot()[0];
        assert_eq!(a.history.results, KEPT_RUNS);
        assert_eq!(a.history.failures, 25);
        assert_eq!(a.history.success_ratio, Some(0.75));
        assert_eq!(a.history.avg_response_time_seconds, Some(0.1));
        let last = a.last_result.as_ref().unwrap();
        assert_eq!((last.success, last.response_time_seconds), (true, 0.1));
        assert_eq!(a.target, "127.0.0.1");
    }

    #[test]
    fn a_url_password_is_not_shown() {
        let url = reqwest::Url::parse("https://user:hunter2@example.com/health").unwrap();
        assert_eq!(redacted(&url), "https://user:xxxxx@example.com/health");
    }

    #[test]
    fn a_run_with_several_subjects_is_one_summary() {
        let ok = Observation {
            connected: true,
            status: Some(200),
            value: Some(1.0),
            ..Observation::new(DateTime::UNIX_EPOCH)
        };
        let failed = Observation {
            error: Some("boom".to_owned()),
            ..ok.clone()
        };
        let results = vec![(BTreeMap::new(), ok.clone()), (BTreeMap::new(), failed)];
        let summary = RunSummary::new(DateTime::UNIX_EPOCH, &results, Duration::from_millis(5));
        assert!(!summary.success && summary.connected);
        assert_eq!(summary.error.as_deref(), Some("boom"));
        assert_eq!(summary.subjects, 2);
        let none = RunSummary::new(DateTime::UNIX_EPOCH, &[], Duration::ZERO);
        assert!(none.success && none.subjects == 0);
    }
}
