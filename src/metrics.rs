//! Every metric incidentd exports, in one struct with its own registry. Names and labels are
//! part of the contract (PRODUCT.md "Metrics"); no label ever carries an unbounded value
//! such as an incident id.
//!
//! The per-probe gauges and `incidentd_rule_firing` are not `prometheus` vectors but tables
//! ([`ProbeSeries`], [`GaugeTable`]) of a few atomics per probe or rule, written straight
//! into the exposition: with 100,000 probes and rules a vector's series (each with its own
//! copy of the metric's description and label pairs) and the protobuf families it is
//! collected into cost hundreds of megabytes and most of a scrape's time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge as GaugeProto, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::incident::Kind;
use crate::domain::priority::Priority;
use crate::domain::sla::{SlaName, SlaPolicies, SlaSignal};

/// Seconds. Every default SLA target (first response 1h/2h/3h; resolution 4h, 8h, 24h, 48h,
/// 72h) is a bucket boundary, so `bucket{le=target} / count` is the compliance ratio; the
/// configured targets are added to these.
const TAT_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0, 28800.0, 43200.0, 86400.0,
    172_800.0, 259_200.0, 604_800.0,
];

/// The `Content-Type` of [`Metrics::render`]: the text exposition format 0.0.4, which is
/// UTF-8 (label values and help texts may carry any character). `prometheus::TEXT_FORMAT`
/// leaves the charset out, and a client that assumes ISO-8859-1 would garble them.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const PROBE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Seconds a run starts after its planned start: a few milliseconds normally, whole
/// intervals when the process cannot keep up.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How `incidentd_probe_duration_seconds` is labelled: the config's
/// `probe_duration_histogram` (`aggregate`, the default, or `per_probe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProbeDurationHistogram {
    /// One histogram over every probe's runs, without labels: 15 series in all. Each
    /// probe's last duration is `incidentd_probe_last_duration_seconds{probe}`.
    #[default]
    Aggregate,
    /// One histogram per probe, `{probe}`: 15 series a probe (about 1 KB of exposition).
    PerProbe,
}

#[derive(Clone)]
pub struct Metrics {
    /// Every collector: registering checks that their names are unique. [`Metrics::render`]
    /// collects them itself.
    registry: Registry,
    /// The length of the last exposition: the next one's buffer is allocated at about that
    /// size at once.
    last_render_len: Arc<AtomicUsize>,
    /// Collectors only some deployments have ([`Metrics::register`]).
    extra: Arc<std::sync::RwLock<Vec<Box<dyn prometheus::core::Collector>>>>,
    pub incidents_open: IntGaugeVec,
    pub incidents_opened_total: IntCounterVec,
    pub incidents_resolved_total: IntCounterVec,
    pub incidents_reopened_total: IntCounterVec,
    pub escalations_total: IntCounterVec,
    pub first_response_seconds: HistogramVec,
    pub resolution_seconds: HistogramVec,
    pub sla_met_total: IntCounterVec,
    pub sla_breaches_total: IntCounterVec,
    pub sla_warnings_total: IntCounterVec,
    pub sla_open: IntGaugeVec,
    pub sla_target_seconds: GaugeVec,
    pub sla_mean_resolution_objective_seconds: Gauge,
    /// `incidentd_probe_success`, `incidentd_probe_last_duration_seconds` and
    /// `incidentd_probe_cert_expiry_timestamp_seconds`, by probe.
    probes: ProbeSeries,
    probe_duration_histogram: ProbeDurationHistogram,
    /// Labelled by `probe` or by nothing, as `probe_duration_histogram` says.
    probe_duration_seconds: HistogramVec,
    pub probe_schedule_lag_seconds: Histogram,
    pub probe_runs_skipped_total: IntCounter,
    pub probe_results_dropped_total: IntCounter,
    /// `incidentd_rule_firing{rule}`.
    pub rule_firing: GaugeTable,
    pub webhook_deliveries_total: IntCounterVec,
    /// `incidentd_alerts_received_total{source,outcome}`: see [`Metrics::alert_received`].
    pub alerts_received_total: IntCounterVec,
    pub webhook_pending: IntGaugeVec,
    /// `incidentd_status_subscribers{channel,state}`: confirmed or pending subscribers.
    pub status_subscribers: IntGaugeVec,
    /// `incidentd_status_notifications_total{channel,outcome}`: sent or failed (given up).
    pub status_notifications_total: IntCounterVec,
    pub webhook_dead_letters: IntGaugeVec,
    pub webhook_oldest_pending_age_seconds: GaugeVec,
    pub webhook_consumer_enabled: IntGaugeVec,
    pub build_info: IntGaugeVec,
    /// Whether the last configuration reload succeeded (1 at start: the config loaded).
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: Gauge,
}

const KINDS: [Kind; 2] = [Kind::Incident, Kind::Request];

/// The label values of one SLA series: `sla`, `kind`, `priority`.
fn sla_labels(sla: SlaName, kind: Kind, priority: Priority) -> [&'static str; 3] {
    [sla.as_str(), kind.as_str(), priority.as_str()]
}

/// Every `sla`, `kind`, `priority` combination.
fn sla_series() -> impl Iterator<Item = [&'static str; 3]> {
    SlaName::ALL.into_iter().flat_map(|sla| {
        KINDS.into_iter().flat_map(move |kind| {
            Priority::ALL
                .into_iter()
                .map(move |priority| sla_labels(sla, kind, priority))
        })
    })
}

const SLA_STATUSES: [&str; 3] = ["ok", "at_risk", "breached"];

impl Metrics {
    /// Counts `count` alerts received through `source` with `outcome` (`accepted`,
    /// `duplicate`, `suppressed`, `ignored`, `rejected`, `throttled`): bounded labels only.
    pub fn alert_received(&self, source: &'static str, outcome: &'static str, count: usize) {
        self.alerts_received_total
            .with_label_values(&[source, outcome])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Adds a collector that only some deployments have (the cluster's, with PostgreSQL).
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, collector: C) {
        // The registry refuses a name taken twice: a bug.
        self.registry
            .register(Box::new(collector.clone()))
            .expect("each collector is registered once");
        self.extra
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(collector));
    }

    /// With the default SLA policies.
    pub fn new() -> Self {
        Metrics::with_sla(&SlaPolicies::default())
    }

    /// The histogram buckets include every configured target; the targets are exported.
    /// `incidentd_probe_duration_seconds` is one histogram over all probes.
    pub fn with_sla(policies: &SlaPolicies) -> Self {
        Metrics::with_options(policies, ProbeDurationHistogram::default())
    }

    /// As [`Metrics::with_sla`], with `incidentd_probe_duration_seconds` labelled as
    /// `probe_durations` says.
    pub fn with_options(policies: &SlaPolicies, probe_durations: ProbeDurationHistogram) -> Self {
        let duration_labels: &[&str] = match probe_durations {
            ProbeDurationHistogram::Aggregate => &[],
            ProbeDurationHistogram::PerProbe => &["probe"],
        };
        let mut tat_buckets = TAT_BUCKETS.to_vec();
        tat_buckets.extend(policies.target_seconds());
        tat_buckets.sort_by(f64::total_cmp);
        tat_buckets.dedup();
        let metrics = Metrics {
            registry: Registry::new(),
            last_render_len: Arc::new(AtomicUsize::new(0)),
            extra: Arc::default(),
            incidents_open: IntGaugeVec::new(
                Opts::new(
                    "incidentd_incidents_open",
                    "Incidents not yet resolved, by priority, tier, state and category.",
                ),
                &["priority", "tier", "state", "category"],
            )
            .expect("valid metric"),
            incidents_opened_total: IntCounterVec::new(
                Opts::new("incidentd_incidents_opened_total", "Incidents opened."),
                &["priority", "category", "source", "kind"],
            )
            .expect("valid metric"),
            incidents_resolved_total: IntCounterVec::new(
                Opts::new("incidentd_incidents_resolved_total", "Incidents resolved."),
                &["priority", "category"],
            )
            .expect("valid metric"),
            incidents_reopened_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_incidents_reopened_total",
                    "Resolved or closed incidents reopened, by hand or because the symptom returned.",
                ),
                &["priority"],
            )
            .expect("valid metric"),
            escalations_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_escalations_total",
                    "Tier changes, by reason (manual, unacknowledged, unresolved, priority).",
                ),
                &["from", "to", "reason"],
            )
            .expect("valid metric"),
            first_response_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "incidentd_first_response_seconds",
                    "First-response SLA clock time (opening to acknowledgement, in the policy's calendar) of each stopped clock.",
                )
                .buckets(tat_buckets.clone()),
                &["kind", "priority"],
            )
            .expect("valid metric"),
            resolution_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "incidentd_resolution_seconds",
                    "Resolution SLA clock time (opening to resolution, holds excluded, in the policy's calendar) of each stopped clock.",
                )
                .buckets(tat_buckets),
                &["kind", "priority"],
            )
            .expect("valid metric"),
            sla_met_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_sla_met_total",
                    "SLA clocks stopped within their target.",
                ),
                &["sla", "kind", "priority"],
            )
            .expect("valid metric"),
            sla_breaches_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_sla_breaches_total",
                    "SLA clocks that passed their target, counted when it happens.",
                ),
                &["sla", "kind", "priority"],
            )
            .expect("valid metric"),
            sla_warnings_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_sla_warnings_total",
                    "SLA clocks that passed sla.warn_at of their target.",
                ),
                &["sla", "kind", "priority"],
            )
            .expect("valid metric"),
            sla_open: IntGaugeVec::new(
                Opts::new(
                    "incidentd_sla_open",
                    "SLA clocks running or paused now, by status (ok, at_risk, breached).",
                ),
                &["sla", "kind", "priority", "status"],
            )
            .expect("valid metric"),
            sla_target_seconds: GaugeVec::new(
                Opts::new(
                    "incidentd_sla_target_seconds",
                    "The configured SLA target, in the policy's calendar time.",
                ),
                &["sla", "kind", "priority"],
            )
            .expect("valid metric"),
            sla_mean_resolution_objective_seconds: Gauge::with_opts(Opts::new(
                "incidentd_sla_mean_resolution_objective_seconds",
                "The objective for the mean resolution time of incidents.",
            ))
            .expect("valid metric"),
            probes: ProbeSeries::default(),
            probe_duration_histogram: probe_durations,
            probe_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "incidentd_probe_duration_seconds",
                    match probe_durations {
                        ProbeDurationHistogram::Aggregate => "Duration of probe runs, over all probes (probe_duration_histogram: per_probe labels it by probe).",
                        ProbeDurationHistogram::PerProbe => "Duration of probe runs.",
                    },
                )
                .buckets(PROBE_BUCKETS.to_vec()),
                duration_labels,
            )
            .expect("valid metric"),
            probe_schedule_lag_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "incidentd_probe_schedule_lag_seconds",
                    "How late probe runs started after their planned start (the interval's tick), waiting for a free run slot included.",
                )
                .buckets(LAG_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            probe_runs_skipped_total: IntCounter::with_opts(Opts::new(
                "incidentd_probe_runs_skipped_total",
                "Planned probe runs skipped because the previous run of the probe started or ended more than an interval late.",
            ))
            .expect("valid metric"),
            probe_results_dropped_total: IntCounter::with_opts(Opts::new(
                "incidentd_probe_results_dropped_total",
                "Probe results dropped because the engine's queue was full.",
            ))
            .expect("valid metric"),
            rule_firing: GaugeTable::new(
                "incidentd_rule_firing",
                "Whether the rule is firing (1) or not (0).",
                "rule",
            ),
            webhook_deliveries_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_webhook_deliveries_total",
                    "Webhook delivery attempts by outcome (success, retry, dead, gone).",
                ),
                &["consumer", "outcome"],
            )
            .expect("valid metric"),
            alerts_received_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_alerts_received_total",
                    "Alerts received by source (alertmanager, api_v2, events) and outcome (accepted, duplicate, suppressed, ignored, rejected, throttled).",
                ),
                &["source", "outcome"],
            )
            .expect("valid metric"),
            status_subscribers: IntGaugeVec::new(
                Opts::new(
                    "incidentd_status_subscribers",
                    "Status page subscribers by channel (email, webhook) and state (confirmed, pending).",
                ),
                &["channel", "state"],
            )
            .expect("valid metric"),
            status_notifications_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_status_notifications_total",
                    "Status page notifications by channel (email, webhook) and outcome (sent, failed: given up after 24 h of retries).",
                ),
                &["channel", "outcome"],
            )
            .expect("valid metric"),
            webhook_pending: IntGaugeVec::new(
                Opts::new(
                    "incidentd_webhook_pending",
                    "Events in the outbox not yet delivered to the consumer.",
                ),
                &["consumer"],
            )
            .expect("valid metric"),
            webhook_dead_letters: IntGaugeVec::new(
                Opts::new(
                    "incidentd_webhook_dead_letters",
                    "Events given up after max_age, kept for replay.",
                ),
                &["consumer"],
            )
            .expect("valid metric"),
            webhook_oldest_pending_age_seconds: GaugeVec::new(
                Opts::new(
                    "incidentd_webhook_oldest_pending_age_seconds",
                    "Age of the oldest event not yet delivered to the consumer (0 when none).",
                ),
                &["consumer"],
            )
            .expect("valid metric"),
            webhook_consumer_enabled: IntGaugeVec::new(
                Opts::new(
                    "incidentd_webhook_consumer_enabled",
                    "Whether the consumer is enabled (1) or disabled by a 410 Gone (0).",
                ),
                &["consumer"],
            )
            .expect("valid metric"),
            build_info: IntGaugeVec::new(
                Opts::new("incidentd_build_info", "Always 1; the version in a label."),
                &["version"],
            )
            .expect("valid metric"),
            config_last_reload_successful: IntGauge::new(
                "incidentd_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
            )
            .expect("valid metric"),
            config_last_reload_success_timestamp_seconds: Gauge::new(
                "incidentd_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload (or of the start).",
            )
            .expect("valid metric"),
        };
        for collector in metrics.collectors() {
            metrics
                .registry
                .register(collector)
                .expect("unique metric names");
        }
        // Registered so that names stay unique and `registry.gather()` (the tests' reference
        // encoder) sees them; `render` writes them from the table itself.
        metrics
            .registry
            .register(Box::new(metrics.probes.clone()))
            .expect("unique metric names");
        metrics
            .registry
            .register(Box::new(metrics.rule_firing.clone()))
            .expect("unique metric names");
        if probe_durations == ProbeDurationHistogram::Aggregate {
            // Present from the start, as one series.
            metrics
                .probe_duration_seconds
                .with_label_values::<&str>(&[]);
        }
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Every SLA series exists from the start, so rates and ratios have data at once.
        for labels in sla_series() {
            metrics.sla_met_total.with_label_values(&labels);
            metrics.sla_breaches_total.with_label_values(&labels);
            metrics.sla_warnings_total.with_label_values(&labels);
        }
        for sla in [SlaName::FirstResponse, SlaName::Resolution] {
            for kind in KINDS {
                for priority in Priority::ALL {
                    let [_, kind_label, priority_label] = sla_labels(sla, kind, priority);
                    metrics
                        .first_response_seconds
                        .with_label_values(&[kind_label, priority_label]);
                    metrics
                        .resolution_seconds
                        .with_label_values(&[kind_label, priority_label]);
                }
            }
        }
        for sla in SlaName::ALL {
            for kind in KINDS {
                for priority in Priority::ALL {
                    let target = policies.target(sla, kind, priority);
                    metrics
                        .sla_target_seconds
                        .with_label_values(&sla_labels(sla, kind, priority))
                        .set(target.as_seconds_f64());
                }
            }
        }
        metrics
            .sla_mean_resolution_objective_seconds
            .set(policies.mean_resolution_objective.as_seconds_f64());
        metrics.reset_sla_open();
        metrics
    }

    /// Zeroes `incidentd_sla_open`: every series present, at 0.
    pub fn reset_sla_open(&self) {
        self.sla_open.reset();
        for [sla, kind, priority] in sla_series() {
            for status in SLA_STATUSES {
                self.sla_open
                    .with_label_values(&[sla, kind, priority, status])
                    .set(0);
            }
        }
    }

    /// Counts what an SLA clock did.
    pub fn observe_sla(&self, signal: SlaSignal, kind: Kind, priority: Priority) {
        match signal {
            SlaSignal::Warned(sla) => self
                .sla_warnings_total
                .with_label_values(&sla_labels(sla, kind, priority))
                .inc(),
            SlaSignal::Breached(sla) => self
                .sla_breaches_total
                .with_label_values(&sla_labels(sla, kind, priority))
                .inc(),
            SlaSignal::Stopped { sla, met, elapsed } => {
                if met {
                    self.sla_met_total
                        .with_label_values(&sla_labels(sla, kind, priority))
                        .inc();
                }
                let seconds = elapsed.as_seconds_f64().max(0.0);
                let labels = [kind.as_str(), priority.as_str()];
                match sla {
                    SlaName::FirstResponse => self
                        .first_response_seconds
                        .with_label_values(&labels)
                        .observe(seconds),
                    SlaName::Resolution => self
                        .resolution_seconds
                        .with_label_values(&labels)
                        .observe(seconds),
                    SlaName::BreachNotification => {}
                }
            }
        }
    }

    /// A probe's series, new (a probe's earlier series of that name are dropped): the
    /// probe's task records through the handle. The gauges appear with the first run.
    pub fn add_probe(&self, name: &str) -> ProbeMetrics {
        let duration = match self.probe_duration_histogram {
            ProbeDurationHistogram::Aggregate => {
                self.probe_duration_seconds.with_label_values::<&str>(&[])
            }
            ProbeDurationHistogram::PerProbe => {
                // A restarted probe's histogram starts again from 0, like its gauges.
                let _ = self.probe_duration_seconds.remove_label_values(&[name]);
                self.probe_duration_seconds.with_label_values(&[name])
            }
        };
        ProbeMetrics {
            series: self.probes.add(name),
            duration,
            lag: self.probe_schedule_lag_seconds.clone(),
            skipped: self.probe_runs_skipped_total.clone(),
            dropped: self.probe_results_dropped_total.clone(),
        }
    }

    /// Drops every series of the probe; a handle still held records into nothing.
    pub fn remove_probe(&self, name: &str) {
        self.probes.remove(name);
        if self.probe_duration_histogram == ProbeDurationHistogram::PerProbe {
            let _ = self.probe_duration_seconds.remove_label_values(&[name]);
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.incidents_open.clone()),
            Box::new(self.incidents_opened_total.clone()),
            Box::new(self.incidents_resolved_total.clone()),
            Box::new(self.incidents_reopened_total.clone()),
            Box::new(self.escalations_total.clone()),
            Box::new(self.first_response_seconds.clone()),
            Box::new(self.resolution_seconds.clone()),
            Box::new(self.sla_met_total.clone()),
            Box::new(self.sla_breaches_total.clone()),
            Box::new(self.sla_warnings_total.clone()),
            Box::new(self.sla_open.clone()),
            Box::new(self.sla_target_seconds.clone()),
            Box::new(self.sla_mean_resolution_objective_seconds.clone()),
            Box::new(self.probe_duration_seconds.clone()),
            Box::new(self.probe_schedule_lag_seconds.clone()),
            Box::new(self.probe_runs_skipped_total.clone()),
            Box::new(self.probe_results_dropped_total.clone()),
            Box::new(self.webhook_deliveries_total.clone()),
            Box::new(self.alerts_received_total.clone()),
            Box::new(self.webhook_pending.clone()),
            Box::new(self.status_subscribers.clone()),
            Box::new(self.status_notifications_total.clone()),
            Box::new(self.webhook_dead_letters.clone()),
            Box::new(self.webhook_oldest_pending_age_seconds.clone()),
            Box::new(self.webhook_consumer_enabled.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.config_last_reload_successful.clone()),
            Box::new(self.config_last_reload_success_timestamp_seconds.clone()),
        ]
    }

    /// The text exposition format, as `prometheus::TextEncoder` writes it (byte for byte:
    /// a test holds them equal), in less than half its time with 10,000 probes (74 → 34 ms
    /// for 181,000 samples, `cargo bench --bench metrics`): the series of each family are
    /// sorted by reference instead of moved, every line is written straight into one buffer
    /// sized from the previous exposition (no allocation per line, no re-growing a 14 MB
    /// buffer), a series' labels are escaped once for all its lines and the `le` values
    /// once per family, and integral values skip float formatting.
    ///
    /// Nothing is cached: every family is collected afresh on every call, so a scrape
    /// reflects every change made before it began (a committed incident, a probe result).
    /// Caching the text for a moment would save the collection (about half the time) but
    /// could serve a scrape that misses a commit; not worth it while this stays well under
    /// the 50 ms budget.
    ///
    /// The per-probe gauges are written from their table without that detour: 100,000
    /// probes are 200,000 samples or more, and building a protobuf message for each only to
    /// print it would cost more than the printing (and tens of megabytes meanwhile).
    pub fn render(&self) -> String {
        let extra = self
            .extra
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let families: Vec<MetricFamily> = self
            .collectors()
            .iter()
            .chain(extra.iter())
            .flat_map(|collector| collector.collect())
            .filter(|family| !family.get_metric().is_empty())
            .collect();
        drop(extra);
        let mut sections: Vec<Section<'_>> = families
            .iter()
            .map(Section::Collected)
            .chain(ProbeFamily::ALL.into_iter().map(Section::Probes))
            .chain([Section::Table(&self.rule_firing)])
            .collect();
        sections.sort_by(|a, b| a.name().cmp(b.name()));
        let hint = self.last_render_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 16);
        let table = self.probes.lock();
        for section in sections {
            match section {
                Section::Collected(family) => encode_family(family, &mut out),
                Section::Probes(family) => encode_probe_family(family, &table, &mut out),
                Section::Table(gauges) => gauges.encode(&mut out),
            }
        }
        drop(table);
        self.last_render_len.store(out.len(), Ordering::Relaxed);
        out
    }
}

/// A family of the exposition: collected from a `prometheus` collector, or written from
/// the probe table or a gauge table.
enum Section<'a> {
    Collected(&'a MetricFamily),
    Probes(ProbeFamily),
    Table(&'a GaugeTable),
}

impl Section<'_> {
    fn name(&self) -> &str {
        match self {
            Section::Collected(family) => family.name(),
            Section::Probes(family) => family.name(),
            Section::Table(gauges) => gauges.name,
        }
    }
}

/// The gauges of one probe, written by its task and read by [`Metrics::render`]; the
/// handle [`Metrics::add_probe`] gives out records into them.
#[derive(Clone)]
pub struct ProbeMetrics {
    series: Arc<ProbeCell>,
    duration: Histogram,
    lag: Histogram,
    skipped: IntCounter,
    dropped: IntCounter,
}

impl ProbeMetrics {
    /// A run began `lag` after its planned start, `skipped` planned starts after the last
    /// one (0 when on time).
    pub fn observe_start(&self, lag: Duration, skipped: u64) {
        self.lag.observe(lag.as_secs_f64());
        if skipped > 0 {
            self.skipped.inc_by(skipped);
        }
    }

    /// A run's outcome. A run without a certificate (a refused connection, a plain-HTTP
    /// target) leaves the last expiry seen.
    pub fn observe_run(
        &self,
        success: bool,
        duration: Duration,
        certificate_expiry: Option<DateTime<Utc>>,
    ) {
        let seconds = duration.as_secs_f64();
        self.duration.observe(seconds);
        let cell = &self.series;
        cell.success.store(i64::from(success), Ordering::Relaxed);
        cell.last_duration
            .store(seconds.to_bits(), Ordering::Relaxed);
        if let Some(expiry) = certificate_expiry {
            cell.cert_expiry
                .store(expiry.timestamp(), Ordering::Relaxed);
        }
    }

    /// A result the engine's queue had no room for.
    pub fn result_dropped(&self) {
        self.dropped.inc();
    }
}

/// One probe's gauges, as atomics: about 40 bytes where a `prometheus` series of each
/// would take several hundred.
struct ProbeCell {
    /// 0 or 1; [`NO_VALUE`] before the first run.
    success: AtomicI64,
    /// `f64` bits of seconds; NaN before the first run.
    last_duration: AtomicU64,
    /// Unix seconds; [`NO_VALUE`] until a certificate is seen.
    cert_expiry: AtomicI64,
}

/// "Not measured yet": no sample is exported.
const NO_VALUE: i64 = i64::MIN;

impl ProbeCell {
    fn new() -> ProbeCell {
        ProbeCell {
            success: AtomicI64::new(NO_VALUE),
            last_duration: AtomicU64::new(f64::NAN.to_bits()),
            cert_expiry: AtomicI64::new(NO_VALUE),
        }
    }
}

/// The per-probe gauge families, in the table's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeFamily {
    Success,
    LastDuration,
    CertExpiry,
}

impl ProbeFamily {
    const ALL: [ProbeFamily; 3] = [
        ProbeFamily::Success,
        ProbeFamily::LastDuration,
        ProbeFamily::CertExpiry,
    ];

    fn name(self) -> &'static str {
        match self {
            ProbeFamily::Success => "incidentd_probe_success",
            ProbeFamily::LastDuration => "incidentd_probe_last_duration_seconds",
            ProbeFamily::CertExpiry => "incidentd_probe_cert_expiry_timestamp_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            ProbeFamily::Success => {
                "Whether the last run of the probe succeeded (1) or not (0): connected, no error, HTTP status below 400, DNS NOERROR."
            }
            ProbeFamily::LastDuration => "Duration of the last run of the probe.",
            ProbeFamily::CertExpiry => {
                "The earliest notAfter of the certificates the probe's target presented, as a Unix timestamp."
            }
        }
    }

    /// The probe's sample, if it has one yet.
    fn value(self, cell: &ProbeCell) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // 0/1 and Unix seconds: exact
        let integer = |value: &AtomicI64| {
            let value = value.load(Ordering::Relaxed);
            (value != NO_VALUE).then_some(value as f64)
        };
        match self {
            ProbeFamily::Success => integer(&cell.success),
            ProbeFamily::LastDuration => {
                let seconds = f64::from_bits(cell.last_duration.load(Ordering::Relaxed));
                (!seconds.is_nan()).then_some(seconds)
            }
            ProbeFamily::CertExpiry => integer(&cell.cert_expiry),
        }
    }
}

type ProbeTable = BTreeMap<String, Arc<ProbeCell>>;

/// Every probe's [`ProbeCell`] by name: sorted, as the exposition lists series. Probes
/// are added and removed when the probe set changes; runs write their cells without
/// touching the table.
#[derive(Clone)]
struct ProbeSeries {
    table: Arc<Mutex<ProbeTable>>,
    /// For [`Collector::desc`], in [`ProbeFamily::ALL`]'s order.
    descs: Arc<Vec<Desc>>,
}

impl Default for ProbeSeries {
    fn default() -> Self {
        let descs = ProbeFamily::ALL
            .into_iter()
            .map(|family| {
                Desc::new(
                    family.name().to_owned(),
                    family.help().to_owned(),
                    vec!["probe".to_owned()],
                    HashMap::new(),
                )
                .expect("valid metric")
            })
            .collect();
        ProbeSeries {
            table: Arc::default(),
            descs: Arc::new(descs),
        }
    }
}

impl ProbeSeries {
    fn lock(&self) -> MutexGuard<'_, ProbeTable> {
        // Atomics and a map: nothing a panic elsewhere could leave half-written.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(&self, name: &str) -> Arc<ProbeCell> {
        let cell = Arc::new(ProbeCell::new());
        self.lock().insert(name.to_owned(), cell.clone());
        cell
    }

    fn remove(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// The same families as [`encode_probe_family`] writes, for `registry.gather()`.
impl Collector for ProbeSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let table = self.lock();
        ProbeFamily::ALL
            .into_iter()
            .map(|family| {
                let samples = table
                    .iter()
                    .filter_map(|(name, cell)| Some((name.as_str(), family.value(cell)?)));
                gauge_family(family.name(), family.help(), "probe", samples)
            })
            .collect()
    }
}

/// One per-probe gauge family from the table, as [`encode_family`] would write it.
fn encode_probe_family(family: ProbeFamily, table: &ProbeTable, out: &mut String) {
    let samples = table
        .iter()
        .filter_map(|(name, cell)| Some((name.as_str(), family.value(cell)?)));
    encode_gauges(family.name(), family.help(), "probe", samples, out);
}

/// A gauge family with one label, its samples in the order of their label values, as
/// [`encode_family`] would write it; nothing when there is no sample.
fn encode_gauges<'a>(
    name: &str,
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'a str, f64)>,
    out: &mut String,
) {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return;
    }
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    push_escaped(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(" gauge\n");
    for (value_of_label, value) in samples {
        out.push_str(name);
        out.push('{');
        out.push_str(label);
        out.push_str("=\"");
        push_escaped(out, value_of_label, true);
        out.push_str("\"} ");
        push_value(out, value);
        out.push('\n');
    }
}

/// A protobuf gauge family with one label, for `registry.gather()`.
fn gauge_family<'a>(
    name: &str,
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'a str, f64)>,
) -> MetricFamily {
    let metrics = samples
        .map(|(value_of_label, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(label.to_owned());
            pair.set_value(value_of_label.to_owned());
            let mut gauge = GaugeProto::default();
            gauge.set_value(value);
            let mut metric = Metric::default();
            metric.set_label(vec![pair]);
            metric.set_gauge(gauge);
            metric
        })
        .collect();
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::GAUGE);
    family.set_metric(metrics);
    family
}

/// An integer gauge with one label, as a sorted map of atomics: a series costs its label
/// value and a few words, where a `prometheus` vector's costs several hundred bytes.
///
/// Its methods have the shape of `IntGaugeVec`'s (`with_label_values(&[v]).set(x)`), so
/// code written for one works with the other.
#[derive(Clone)]
pub struct GaugeTable {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    desc: Arc<Desc>,
    series: Arc<Mutex<GaugeSeries>>,
}

type GaugeSeries = BTreeMap<String, Arc<AtomicI64>>;

impl GaugeTable {
    fn new(name: &'static str, help: &'static str, label: &'static str) -> GaugeTable {
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            vec![label.to_owned()],
            HashMap::new(),
        )
        .expect("valid metric");
        GaugeTable {
            name,
            help,
            label,
            desc: Arc::new(desc),
            series: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GaugeSeries> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The series of this label value (the one of `values`), created at 0.
    ///
    /// # Panics
    ///
    /// Unless `values` holds exactly one value, as `IntGaugeVec` would.
    pub fn with_label_values<V: AsRef<str>>(&self, values: &[V]) -> TableGauge {
        let [value] = values else {
            panic!("{} takes one label value, got {}", self.name, values.len());
        };
        let value = value.as_ref();
        let mut series = self.lock();
        let cell = match series.get(value) {
            Some(cell) => cell.clone(),
            None => series.entry(value.to_owned()).or_default().clone(),
        };
        TableGauge(cell)
    }

    /// Drops the series of this label value.
    pub fn remove_label_values<V: AsRef<str>>(&self, values: &[V]) {
        if let [value] = values {
            self.lock().remove(value.as_ref());
        }
    }

    fn samples(series: &GaugeSeries) -> impl Iterator<Item = (&str, f64)> {
        #[allow(clippy::cast_precision_loss)] // 0/1 gauges
        series
            .iter()
            .map(|(value, cell)| (value.as_str(), cell.load(Ordering::Relaxed) as f64))
    }

    fn encode(&self, out: &mut String) {
        let series = self.lock();
        encode_gauges(
            self.name,
            self.help,
            self.label,
            GaugeTable::samples(&series),
            out,
        );
    }
}

/// One series of a [`GaugeTable`].
pub struct TableGauge(Arc<AtomicI64>);

impl TableGauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The same family as [`GaugeTable::encode`] writes, for `registry.gather()`.
impl Collector for GaugeTable {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = self.lock();
        vec![gauge_family(
            self.name,
            self.help,
            self.label,
            GaugeTable::samples(&series),
        )]
    }
}

/// One family in the text format 0.0.4, its series in the order of their label values.
fn encode_family(family: &MetricFamily, out: &mut String) {
    let name = family.name();
    let kind = family.get_field_type();
    let type_name = match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        // Not used here; should one appear, the library's encoder writes it.
        _ => {
            TextEncoder::new()
                .encode_utf8(std::slice::from_ref(family), out)
                .expect("the text encoder accepts what the registry accepted");
            return;
        }
    };
    if !family.help().is_empty() {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        push_escaped(out, family.help(), false);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');

    let mut series: Vec<&Metric> = family.get_metric().iter().collect();
    series.sort_unstable_by(|a, b| compare_labels(a, b));
    // `le` of each bucket, formatted once: every series of a family has the same buckets.
    let mut bounds: Vec<(f64, String)> = Vec::new();
    let mut labels = String::new();
    for metric in series {
        labels.clear();
        for (i, pair) in metric.get_label().iter().enumerate() {
            labels.push(if i == 0 { '{' } else { ',' });
            labels.push_str(pair.name());
            labels.push_str("=\"");
            push_escaped(&mut labels, pair.value(), true);
            labels.push('"');
        }
        let timestamp = metric.timestamp_ms();
        match kind {
            MetricType::COUNTER => {
                let value = metric.get_counter().get_value();
                push_sample(out, name, "", &labels, None, value, timestamp);
            }
            MetricType::GAUGE => {
                let value = metric.get_gauge().get_value();
                push_sample(out, name, "", &labels, None, value, timestamp);
            }
            _ => {
                let histogram = metric.get_histogram();
                let mut inf_seen = false;
                for (i, bucket) in histogram.get_bucket().iter().enumerate() {
                    let bound = bucket.upper_bound();
                    if bounds
                        .get(i)
                        .is_none_or(|(cached, _)| cached.to_bits() != bound.to_bits())
                    {
                        bounds.truncate(i);
                        bounds.push((bound, bound.to_string()));
                    }
                    #[allow(clippy::cast_precision_loss)]
                    let count = bucket.cumulative_count() as f64;
                    let le = Some(bounds[i].1.as_str());
                    push_sample(out, name, "_bucket", &labels, le, count, timestamp);
                    inf_seen |= bound == f64::INFINITY;
                }
                #[allow(clippy::cast_precision_loss)]
                let count = histogram.get_sample_count() as f64;
                if !inf_seen {
                    push_sample(
                        out,
                        name,
                        "_bucket",
                        &labels,
                        Some("+Inf"),
                        count,
                        timestamp,
                    );
                }
                let sum = histogram.get_sample_sum();
                push_sample(out, name, "_sum", &labels, None, sum, timestamp);
                push_sample(out, name, "_count", &labels, None, count, timestamp);
            }
        }
    }
}

/// By label values, in label order (as the registry sorts them).
fn compare_labels(a: &Metric, b: &Metric) -> std::cmp::Ordering {
    let (a, b) = (a.get_label(), b.get_label());
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .map(LabelPair::value)
            .cmp(b.iter().map(LabelPair::value))
    })
}

/// `name{labels,le="…"} value[ timestamp]`; `labels` is `{k="v",…` without the closing
/// brace, or empty.
fn push_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    le: Option<&str>,
    value: f64,
    timestamp: i64,
) {
    out.push_str(name);
    out.push_str(suffix);
    match (labels.is_empty(), le) {
        (true, None) => {}
        (true, Some(le)) => {
            out.push_str("{le=\"");
            out.push_str(le);
            out.push_str("\"}");
        }
        (false, None) => {
            out.push_str(labels);
            out.push('}');
        }
        (false, Some(le)) => {
            out.push_str(labels);
            out.push_str(",le=\"");
            out.push_str(le);
            out.push_str("\"}");
        }
    }
    out.push(' ');
    push_value(out, value);
    if timestamp != 0 {
        out.push(' ');
        push_integer(out, timestamp);
    }
    out.push('\n');
}

/// As `f64::to_string` writes it (Prometheus parses it back exactly), without the
/// allocation, and integers without float formatting.
fn push_value(out: &mut String, value: f64) {
    // Below 2^53 every integer is exact, and `to_string` writes it without a point.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() < EXACT && !(value == 0.0 && value.is_sign_negative()) {
        #[allow(clippy::cast_possible_truncation)]
        push_integer(out, value as i64);
    } else {
        use std::fmt::Write as _;
        write!(out, "{value}").expect("writing to a String cannot fail");
    }
}

fn push_integer(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Escapes `\\` and a line break, and `"` in label values (`quote`), as the text format
/// requires.
fn push_escaped(out: &mut String, text: &str, quote: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contract_names_and_build_info() {
        let metrics = Metrics::new();
        metrics
            .incidents_opened_total
            .with_label_values(&["P1", "availability", "rule", "incident"])
            .inc();
        let text = metrics.render();
        assert!(text.contains(&format!(
            "incidentd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains(
            "incidentd_incidents_opened_total{category=\"availability\",kind=\"incident\",priority=\"P1\",source=\"rule\"} 1"
        ));
    }

    /// What `prometheus::TextEncoder` writes for the registry.
    fn library_render(metrics: &Metrics) -> String {
        TextEncoder::new()
            .encode_to_string(&metrics.registry.gather())
            .unwrap()
    }

    #[test]
    fn render_is_what_the_library_encoder_writes() {
        for mode in [
            ProbeDurationHistogram::Aggregate,
            ProbeDurationHistogram::PerProbe,
        ] {
            check_render(mode);
        }
    }

    #[track_caller]
    fn check_render(mode: ProbeDurationHistogram) {
        let metrics = Metrics::with_options(&SlaPolicies::default(), mode);
        assert_eq!(metrics.render(), library_render(&metrics));
        // Added, never run: no sample yet.
        metrics.add_probe("never-run");
        assert_eq!(metrics.render(), library_render(&metrics));

        for (i, name) in ["web", "a\"quoted\" \\ back\nslash", "", "zeta", "äpfel"]
            .into_iter()
            .enumerate()
        {
            let probe = metrics.add_probe(name);
            for seconds in [0.001, 0.2, 7.5, 120.0] {
                let expiry = DateTime::from_timestamp(1_790_000_000 - i as i64 * 4_000_000_000, 0);
                probe.observe_run(
                    i != 1,
                    Duration::from_secs_f64(seconds * (i + 1) as f64),
                    expiry,
                );
                probe.observe_start(Duration::from_secs_f64(seconds / 100.0), i as u64);
            }
            metrics.rule_firing.with_label_values(&[name]).set(0);
        }
        metrics.add_probe("dropping").result_dropped();
        for (i, value) in [
            0.5,
            -0.0,
            1e-7,
            1e21,
            -3.0,
            9_007_199_254_740_993.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("odd-{i}");
            metrics
                .sla_target_seconds
                .with_label_values(&[&name, "incident", "P1"])
                .set(value);
        }
        metrics
            .webhook_deliveries_total
            .with_label_values(&["chatops", "success"])
            .inc_by(u64::MAX / 2);
        metrics.sla_mean_resolution_objective_seconds.set(86_400.25);
        metrics.observe_sla(
            SlaSignal::Stopped {
                sla: SlaName::Resolution,
                met: true,
                elapsed: chrono::TimeDelta::milliseconds(3_600_123),
            },
            Kind::Request,
            Priority::P4,
        );
        let text = metrics.render();
        assert_eq!(text, library_render(&metrics));
        // Again, with the buffer sized from the first.
        assert_eq!(metrics.render(), text);
        // Removed probes leave no series behind.
        for name in [
            "web",
            "a\"quoted\" \\ back\nslash",
            "",
            "zeta",
            "äpfel",
            "never-run",
            "dropping",
        ] {
            metrics.remove_probe(name);
        }
        let text = metrics.render();
        assert_eq!(text, library_render(&metrics));
        assert!(!text.contains("probe=\""), "{text}");
    }

    /// The series of a probe, one per line, without HELP and TYPE.
    fn probe_lines(metrics: &Metrics, probe: &str) -> Vec<String> {
        let label = format!("probe=\"{probe}\"");
        metrics
            .render()
            .lines()
            .filter(|line| line.contains(&label))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_probe_has_its_gauges_and_by_default_shares_one_duration_histogram() {
        let metrics = Metrics::new();
        let web = metrics.add_probe("web");
        assert_eq!(
            probe_lines(&metrics, "web"),
            Vec::<String>::new(),
            "before a run"
        );
        let expiry = DateTime::from_timestamp(1_893_542_400, 0);
        web.observe_run(true, Duration::from_millis(250), expiry);
        web.observe_run(false, Duration::from_millis(1500), None);
        web.observe_start(Duration::from_millis(3), 0);
        web.observe_start(Duration::from_secs(12), 2);
        web.result_dropped();
        assert_eq!(
            probe_lines(&metrics, "web"),
            [
                r#"incidentd_probe_cert_expiry_timestamp_seconds{probe="web"} 1893542400"#,
                r#"incidentd_probe_last_duration_seconds{probe="web"} 1.5"#,
                r#"incidentd_probe_success{probe="web"} 0"#,
            ]
        );
        let text = metrics.render();
        for line in [
            "incidentd_probe_duration_seconds_count 2",
            r#"incidentd_probe_duration_seconds_bucket{le="0.25"} 1"#,
            "incidentd_probe_schedule_lag_seconds_count 2",
            r#"incidentd_probe_schedule_lag_seconds_bucket{le="0.005"} 1"#,
            "incidentd_probe_runs_skipped_total 2",
            "incidentd_probe_results_dropped_total 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }

        // Restarted: new series from nothing; the old handle records into nothing.
        let again = metrics.add_probe("web");
        web.observe_run(true, Duration::from_millis(1), None);
        assert_eq!(probe_lines(&metrics, "web"), Vec::<String>::new());
        again.observe_run(true, Duration::from_millis(2), None);
        assert_eq!(
            probe_lines(&metrics, "web"),
            [
                r#"incidentd_probe_last_duration_seconds{probe="web"} 0.002"#,
                r#"incidentd_probe_success{probe="web"} 1"#,
            ]
        );
        metrics.remove_probe("web");
        assert_eq!(probe_lines(&metrics, "web"), Vec::<String>::new());
    }

    #[test]
    fn rule_firing_is_a_table_with_the_shape_of_a_gauge_vector() {
        let metrics = Metrics::new();
        let name = String::from("web-down");
        metrics.rule_firing.with_label_values(&[&name]).set(1);
        metrics.rule_firing.with_label_values(&["db-down"]).set(0);
        assert_eq!(
            metrics.rule_firing.with_label_values(&["web-down"]).get(),
            1
        );
        let text = metrics.render();
        assert!(
            text.contains(
                "# TYPE incidentd_rule_firing gauge\nincidentd_rule_firing{rule=\"db-down\"} 0\nincidentd_rule_firing{rule=\"web-down\"} 1\n"
            ),
            "{text}"
        );
        metrics.rule_firing.remove_label_values(&["web-down"]);
        assert!(!metrics.render().contains("web-down"));
    }

    #[test]
    fn per_probe_duration_histograms_are_opt_in() {
        let metrics =
            Metrics::with_options(&SlaPolicies::default(), ProbeDurationHistogram::PerProbe);
        let web = metrics.add_probe("web");
        web.observe_run(true, Duration::from_millis(40), None);
        let lines = probe_lines(&metrics, "web");
        assert!(
            lines.contains(
                &r#"incidentd_probe_duration_seconds_bucket{probe="web",le="0.05"} 1"#.to_owned()
            ),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&r#"incidentd_probe_duration_seconds_count{probe="web"} 1"#.to_owned())
        );
        assert!(
            !metrics
                .render()
                .contains("incidentd_probe_duration_seconds_count ")
        );
        metrics.remove_probe("web");
        assert_eq!(probe_lines(&metrics, "web"), Vec::<String>::new());
    }

    #[test]
    fn configured_targets_are_bucket_boundaries_and_exported() {
        let mut policies = SlaPolicies::default();
        policies.incident[0].resolution = chrono::TimeDelta::minutes(90);
        policies.request[4].first_response = chrono::TimeDelta::seconds(45);
        let metrics = Metrics::with_sla(&policies);
        metrics.observe_sla(
            SlaSignal::Stopped {
                sla: SlaName::Resolution,
                met: true,
                elapsed: chrono::TimeDelta::minutes(90),
            },
            Kind::Incident,
            Priority::P1,
        );
        let text = metrics.render();
        for line in [
            r#"incidentd_resolution_seconds_bucket{kind="incident",priority="P1",le="5400"} 1"#,
            r#"incidentd_resolution_seconds_bucket{kind="incident",priority="P1",le="3600"} 0"#,
            r#"incidentd_first_response_seconds_bucket{kind="request",priority="P5",le="45"} 0"#,
            r#"incidentd_sla_met_total{kind="incident",priority="P1",sla="resolution"} 1"#,
            r#"incidentd_sla_target_seconds{kind="incident",priority="P1",sla="resolution"} 5400"#,
            r#"incidentd_sla_open{kind="request",priority="P3",sla="first_response",status="at_risk"} 0"#,
            "incidentd_sla_mean_resolution_objective_seconds 86400",
        ] {
            assert!(text.contains(line), "missing `{line}`");
        }
    }

    #[test]
    fn tat_buckets_include_every_default_target() {
        for hours in [1.0, 2.0, 3.0, 4.0, 8.0, 24.0, 48.0, 72.0] {
            assert!(TAT_BUCKETS.contains(&(hours * 3600.0)), "{hours}h");
        }
    }
}
