//! Alerts from outside — Alertmanager's webhook, Alertmanager-compatible pushes (Prometheus
//! straight to us) and PagerDuty-shaped events — as plain values, and the mapping that turns
//! an alert's labels and annotations into incident fields (`alerts:` in the configuration).
//!
//! The payloads are decoded in `crate::ingest`; [`super::signal::Signal::from_alert`] makes
//! a [`Alert`] a signal for the correlator. Pure: templates render from the alert alone.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::priority::Level;

/// Which route an alert came in through (the `source` of `incidentd_alerts_received_total`
/// and of the incident's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSource {
    /// `POST /api/v1/alertmanager`: Alertmanager's webhook (payload version 4).
    Alertmanager,
    /// `POST /api/v2/alerts`: Alertmanager's push API (Prometheus, vmalert, Grafana).
    ApiV2,
    /// `POST /api/v1/events` and `POST /v2/enqueue`: PagerDuty Events API v2.
    Events,
}

impl AlertSource {
    pub const ALL: [AlertSource; 3] = [
        AlertSource::Alertmanager,
        AlertSource::ApiV2,
        AlertSource::Events,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Alertmanager => "alertmanager",
            AlertSource::ApiV2 => "api_v2",
            AlertSource::Events => "events",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
    /// PagerDuty's `acknowledge`: a responder took it (the incident is acknowledged).
    Acknowledged,
}

/// One alert as received, validated (labels within the API's limits).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub source: AlertSource,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When the alert began (`startsAt`): the incident's `detected_at`.
    pub starts_at: Option<DateTime<Utc>>,
    /// A firing alert not refreshed by then resolves (`endsAt`; none for Alertmanager's
    /// webhook and for events, whose senders say when they resolve).
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<String>,
    /// Alertmanager's `groupKey` (webhook only): the group with `group_by: group_key`.
    pub group_key: Option<String>,
    /// The alert's identity when it is not its label set (PagerDuty's `dedup_key`).
    pub dedup_key: Option<String>,
}

impl Alert {
    /// `alertname`, else the dedup key, else `alert`: the title when nothing better renders.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .or(self.dedup_key.as_ref())
            .map_or("alert", String::as_str)
    }

    /// The alert's identity: Alertmanager's fingerprint of its label set, or of its dedup
    /// key (events).
    pub fn fingerprint(&self) -> String {
        match &self.dedup_key {
            Some(key) => super::fingerprint::fingerprint(&[("dedup_key", key)]),
            None => {
                let labels: Vec<(&str, &str)> = self
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                super::fingerprint::fingerprint(&labels)
            }
        }
    }

    /// The correlation group: one active incident per group. By default the alert itself;
    /// with `group_by: group_key` an Alertmanager group (other sources have none and keep
    /// their own). Events are grouped by their dedup key.
    pub fn group(&self, group_by: GroupBy) -> String {
        if let Some(key) = &self.dedup_key {
            return format!("events/{key}");
        }
        match (&self.group_key, group_by) {
            (Some(key), GroupBy::GroupKey) => {
                format!(
                    "alertgroup/{}",
                    super::fingerprint::fingerprint(&[("groupKey", key)])
                )
            }
            _ => format!("alert/{}", self.fingerprint()),
        }
    }
}

/// `alerts.group_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One incident per alert (its label set).
    #[default]
    Fingerprint,
    /// One incident per Alertmanager group (`groupKey` of the webhook).
    GroupKey,
}

/// Impact and urgency of one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity {
    pub impact: Level,
    pub urgency: Level,
}

/// `alerts:`, validated: how an alert's labels and annotations become incident fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMapping {
    /// An alert pushed without `endsAt` resolves after this without a refresh.
    pub resolve_timeout: Duration,
    pub group_by: GroupBy,
    /// minijinja template with `labels` and `annotations`.
    pub title: String,
    pub description: String,
    /// The label naming the incident's service.
    pub service_label: String,
    /// `severity` label value → impact and urgency.
    pub severity: BTreeMap<String, Severity>,
    /// For a severity the map does not name (or none).
    pub unknown_severity: Severity,
    /// Must be in the category taxonomy.
    pub category: String,
}

pub const DEFAULT_TITLE: &str = "{{ annotations.summary }}";
pub const DEFAULT_DESCRIPTION: &str = "{{ annotations.description }}";

impl Default for AlertMapping {
    fn default() -> Self {
        let level = |impact, urgency| Severity { impact, urgency };
        AlertMapping {
            resolve_timeout: Duration::from_secs(300),
            group_by: GroupBy::Fingerprint,
            title: DEFAULT_TITLE.to_owned(),
            description: DEFAULT_DESCRIPTION.to_owned(),
            service_label: "service".to_owned(),
            severity: BTreeMap::from([
                ("critical".to_owned(), level(Level::High, Level::High)),
                ("warning".to_owned(), level(Level::Medium, Level::Medium)),
                ("info".to_owned(), level(Level::Low, Level::Low)),
            ]),
            unknown_severity: level(Level::Medium, Level::Medium),
            category: "availability".to_owned(),
        }
    }
}

impl AlertMapping {
    /// The impact and urgency of the alert's `severity` label.
    pub fn severity_of(&self, alert: &Alert) -> Severity {
        alert
            .labels
            .get("severity")
            .and_then(|s| self.severity.get(s))
            .copied()
            .unwrap_or(self.unknown_severity)
    }
}

/// The mapping's templates, compiled once (at load to validate, in the engine to render).
#[derive(Debug)]
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Compiles `title` and `description`; the error names which and why.
    pub fn compile(title: &str, description: &str) -> Result<Templates, String> {
        let mut env = minijinja::Environment::new();
        // A missing annotation renders empty (then the title falls back to the alertname),
        // never an error.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_template_owned("title", title.to_owned())
            .map_err(|e| format!("invalid title template: {e}"))?;
        env.add_template_owned("description", description.to_owned())
            .map_err(|e| format!("invalid description template: {e}"))?;
        Ok(Templates { env })
    }

    /// The title: the template rendered, else (a render error, or empty) the alertname.
    pub fn title(&self, alert: &Alert) -> String {
        self.render("title", alert)
            .unwrap_or_else(|| alert.name().to_owned())
    }

    /// The description: the template rendered, else empty.
    pub fn description(&self, alert: &Alert) -> String {
        self.render("description", alert).unwrap_or_default()
    }

    fn render(&self, name: &str, alert: &Alert) -> Option<String> {
        let template = self.env.get_template(name).ok()?;
        let text = template
            .render(minijinja::context! {
                labels => &alert.labels,
                annotations => &alert.annotations,
            })
            .ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Alert {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Alert {
            source: AlertSource::ApiV2,
            status: AlertStatus::Firing,
            labels: map(labels),
            annotations: map(annotations),
            starts_at: None,
            ends_at: None,
            generator_url: None,
            group_key: None,
            dedup_key: None,
        }
    }

    #[track_caller]
    fn check_title(template: &str, alert: &Alert, want: &str) {
        let templates = Templates::compile(template, DEFAULT_DESCRIPTION).unwrap();
        assert_eq!(templates.title(alert), want);
    }

    #[test]
    fn titles_render_and_fall_back_to_the_alertname() {
        let with_summary = alert(&[("alertname", "Down")], &[("summary", "checkout is down")]);
        let without = alert(&[("alertname", "Down")], &[]);
        check_title(DEFAULT_TITLE, &with_summary, "checkout is down");
        check_title(DEFAULT_TITLE, &without, "Down");
        check_title(
            "{{ labels.alertname }} on {{ labels.instance }}",
            &alert(&[("alertname", "Down"), ("instance", "a:1")], &[]),
            "Down on a:1",
        );
        // A render error (a filter failing at run time) falls back too.
        check_title(
            "{{ labels.alertname | int(strict=true) }}",
            &without,
            "Down",
        );
        check_title("{{ nope() }}", &without, "Down");
    }

    #[test]
    fn a_template_that_does_not_compile_is_an_error() {
        let error = Templates::compile("{{ annotations.summary", DEFAULT_DESCRIPTION).unwrap_err();
        assert!(error.starts_with("invalid title template: "), "{error}");
    }

    #[test]
    fn severity_maps_with_a_default_for_unknown() {
        let mapping = AlertMapping::default();
        let of = |s: &str| mapping.severity_of(&alert(&[("severity", s)], &[]));
        assert_eq!(of("critical").impact, Level::High);
        assert_eq!(of("info").urgency, Level::Low);
        assert_eq!(of("page").impact, Level::Medium);
        assert_eq!(mapping.severity_of(&alert(&[], &[])).urgency, Level::Medium);
    }

    #[test]
    fn groups_by_fingerprint_group_key_or_dedup_key() {
        let mut a = alert(&[("alertname", "Down")], &[]);
        assert_eq!(a.group(GroupBy::GroupKey), a.group(GroupBy::Fingerprint));
        a.group_key = Some("{}:{alertname=\"Down\"}".to_owned());
        assert_ne!(a.group(GroupBy::GroupKey), a.group(GroupBy::Fingerprint));
        assert_eq!(
            a.group(GroupBy::Fingerprint),
            format!("alert/{}", a.fingerprint())
        );
        a.dedup_key = Some("k".to_owned());
        assert_eq!(a.group(GroupBy::GroupKey), "events/k");
    }
}
