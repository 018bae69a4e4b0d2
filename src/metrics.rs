//! Every metric incidentd exports, in one struct with its own registry. Names and labels are
//! part of the contract (PRODUCT.md "Metrics"); no label ever carries an unbounded value
//! such as an incident id.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Seconds. Every default SLA target (first response 1h/2h/3h; resolution 4h, 8h, 24h, 48h,
/// 72h) is a bucket boundary, so `bucket{le=target} / count` is the compliance ratio.
const TAT_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0, 28800.0, 43200.0, 86400.0,
    172_800.0, 259_200.0, 604_800.0,
];

const PROBE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub incidents_open: IntGaugeVec,
    pub incidents_opened_total: IntCounterVec,
    pub incidents_resolved_total: IntCounterVec,
    pub incidents_reopened_total: IntCounterVec,
    pub escalations_total: IntCounterVec,
    pub first_response_seconds: HistogramVec,
    pub resolution_seconds: HistogramVec,
    pub probe_success: IntGaugeVec,
    pub probe_duration_seconds: HistogramVec,
    pub probe_cert_expiry_timestamp_seconds: IntGaugeVec,
    pub probe_results_dropped_total: IntCounterVec,
    pub rule_firing: IntGaugeVec,
    pub webhook_deliveries_total: IntCounterVec,
    pub webhook_pending: IntGaugeVec,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Registry::new(),
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
                    "Time from opening to acknowledgement.",
                )
                .buckets(TAT_BUCKETS.to_vec()),
                &["priority"],
            )
            .expect("valid metric"),
            resolution_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "incidentd_resolution_seconds",
                    "Time from opening to resolution.",
                )
                .buckets(TAT_BUCKETS.to_vec()),
                &["priority"],
            )
            .expect("valid metric"),
            probe_success: IntGaugeVec::new(
                Opts::new(
                    "incidentd_probe_success",
                    "Whether the last run of the probe succeeded (1) or not (0): connected, no error, HTTP status below 400, DNS NOERROR.",
                ),
                &["probe"],
            )
            .expect("valid metric"),
            probe_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "incidentd_probe_duration_seconds",
                    "Duration of probe runs.",
                )
                .buckets(PROBE_BUCKETS.to_vec()),
                &["probe"],
            )
            .expect("valid metric"),
            probe_cert_expiry_timestamp_seconds: IntGaugeVec::new(
                Opts::new(
                    "incidentd_probe_cert_expiry_timestamp_seconds",
                    "The earliest notAfter of the certificates the probe's target presented, as a Unix timestamp.",
                ),
                &["probe"],
            )
            .expect("valid metric"),
            probe_results_dropped_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_probe_results_dropped_total",
                    "Probe results dropped because the engine's queue was full.",
                ),
                &["probe"],
            )
            .expect("valid metric"),
            rule_firing: IntGaugeVec::new(
                Opts::new(
                    "incidentd_rule_firing",
                    "Whether the rule is firing (1) or not (0).",
                ),
                &["rule"],
            )
            .expect("valid metric"),
            webhook_deliveries_total: IntCounterVec::new(
                Opts::new(
                    "incidentd_webhook_deliveries_total",
                    "Webhook delivery attempts by outcome (success, retry, gone).",
                ),
                &["consumer", "outcome"],
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
            build_info: IntGaugeVec::new(
                Opts::new("incidentd_build_info", "Always 1; the version in a label."),
                &["version"],
            )
            .expect("valid metric"),
        };
        for collector in metrics.collectors() {
            metrics
                .registry
                .register(collector)
                .expect("unique metric names");
        }
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics
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
            Box::new(self.probe_success.clone()),
            Box::new(self.probe_duration_seconds.clone()),
            Box::new(self.probe_cert_expiry_timestamp_seconds.clone()),
            Box::new(self.probe_results_dropped_total.clone()),
            Box::new(self.rule_firing.clone()),
            Box::new(self.webhook_deliveries_total.clone()),
            Box::new(self.webhook_pending.clone()),
            Box::new(self.build_info.clone()),
        ]
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
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

    #[test]
    fn tat_buckets_include_every_default_target() {
        for hours in [1.0, 2.0, 3.0, 4.0, 8.0, 24.0, 48.0, 72.0] {
            assert!(TAT_BUCKETS.contains(&(hours * 3600.0)), "{hours}h");
        }
    }
}
