//! The probe board: what each configured probe saw lately, for `GET /api/v1/probes`. The
//! scheduler writes it after every run and the API reads it; it is not the engine's state
//! (probe results reach the engine as commands, and this view must never wait for it), and
//! it is not stored: after a restart it fills again from the next runs.

use std::collections::VecDeque;
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
///
/// A list of [`Slot`]s in config order. Each probe's task holds its own slot and records
/// into it without touching the list; the scheduler replaces the list when the probe set
/// changes. A restarted probe gets a new slot, so a run of its old configuration still
/// finishing lands in the old slot, which nothing reads any more.
#[derive(Clone, Default)]
pub struct ProbeBoard {
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
}

/// One probe's entry: its configuration and what its recent runs saw.
pub struct Slot {
    config: Arc<ProbeConfig>,
    runs: Mutex<Runs>,
}

/// What a probe's recent runs saw.
#[derive(Default)]
struct Runs {
    last: Option<RunSummary>,
    recent: Recent,
}

/// The last [`KEPT_RUNS`] runs of a probe, oldest first, each packed in 4 bytes (a failure
/// bit and the response time in µs, up to 35 minutes), with the totals over them kept
/// as they change: 100,000 probes keep ten million runs.
#[derive(Default)]
struct Recent {
    runs: VecDeque<u32>,
    failures: usize,
    micros: u64,
}

/// Marks a failed run in [`Recent`]; the other 31 bits are µs.
const FAILED: u32 = 1 << 31;

impl Recent {
    fn push(&mut self, success: bool, response_time: Duration) {
        if self.runs.capacity() == 0 {
            // Allocated at the first run, once: exactly the window.
            self.runs.reserve_exact(KEPT_RUNS);
        }
        if self.runs.len() == KEPT_RUNS
            && let Some(oldest) = self.runs.pop_front()
        {
            self.forget(oldest);
        }
        let micros = u32::try_from(response_time.as_micros())
            .unwrap_or(u32::MAX)
            .min(FAILED - 1);
        self.failures += usize::from(!success);
        self.micros += u64::from(micros);
        self.runs
            .push_back(if success { micros } else { micros | FAILED });
    }

    fn forget(&mut self, run: u32) {
        self.failures -= usize::from(run & FAILED != 0);
        self.micros -= u64::from(run & !FAILED);
    }
}

impl Slot {
    /// A probe without results yet.
    pub fn new(config: Arc<ProbeConfig>) -> Slot {
        Slot {
            config,
            runs: Mutex::default(),
        }
    }

    pub fn config(&self) -> &Arc<ProbeConfig> {
        &self.config
    }

    pub fn record(&self, run: RunSummary) {
        let mut runs = lock(&self.runs);
        runs.recent.push(run.success, run.response_time);
        runs.last = Some(run);
    }
}

/// A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ProbeBoard {
    /// Every configured probe, in config order, without results yet.
    pub fn new(probes: &[ProbeConfig]) -> ProbeBoard {
        let board = ProbeBoard::default();
        board.replace(
            probes
                .iter()
                .map(|probe| Arc::new(Slot::new(Arc::new(probe.clone()))))
                .collect(),
        );
        board
    }

    /// The probes shown from now on, in this order.
    pub fn replace(&self, slots: Vec<Arc<Slot>>) {
        *lock(&self.slots) = slots;
    }

    /// The probe's slot, if it is on the board.
    pub fn slot(&self, probe: &str) -> Option<Arc<Slot>> {
        lock(&self.slots)
            .iter()
            .find(|slot| slot.config.name == probe)
            .cloned()
    }

    /// The JSON of `GET /api/v1/probes`, in config order.
    pub fn snapshot(&self) -> Vec<ProbeView> {
        // The list is copied (one pointer a probe) so that runs and the scheduler never
        // wait for the views to be built.
        let slots = lock(&self.slots).clone();
        slots.iter().map(|slot| ProbeView::new(slot)).collect()
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Probe)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ProbeResult)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ProbeHistory)]
pub struct HistoryView {
    pub results: usize,
    pub failures: usize,
    /// `null` before the first run.
    pub success_ratio: Option<f64>,
    pub avg_response_time_seconds: Option<f64>,
}

impl ProbeView {
    fn new(slot: &Slot) -> ProbeView {
        let probe = &slot.config;
        let runs = lock(&slot.runs);
        let Recent {
            runs: recent,
            failures,
            micros,
        } = &runs.recent;
        let results = recent.len();
        let total = Duration::from_micros(*micros);
        let ratio = |part: f64| (results > 0).then(|| part / results as f64);
        ProbeView {
            name: probe.name.clone(),
            kind: probe.target.kind(),
            target: target_text(&probe.target),
            interval_seconds: probe.interval.as_secs_f64(),
            timeout_seconds: probe.timeout.as_secs_f64(),
            last_result: runs.last.as_ref().map(|run| ResultView {
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
                failures: *failures,
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
        let slot = board.slot("a").unwrap();
        for i in 0..KEPT_RUNS + 10 {
            // The 10 oldest runs fail and fall out of the window; then 1 in 4 fails.
            slot.record(run(i >= 10 && i % 4 != 0, 100));
        }
        assert!(board.slot("unknown").is_none());
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
