//! The source-neutral signal: what a probe rule that fires or recovers (and, later, an
//! alert that fires or resolves) tells the correlator. Everything an incident needs is in
//! it, already rendered (title, evidence, labels), so the correlator and the incident state
//! machine never look at where it came from.
//!
//! A rule's verdict on a probe result becomes a signal here ([`Signal::from_rule`]): its
//! title rendered from the rule's template, its evidence cut to an excerpt, and its
//! fingerprint computed the way Alertmanager computes one. A person's ticket becomes one
//! in [`Signal::from_ticket`]: a group of its own, so that it is never deduplicated.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::alert::{Alert, AlertMapping, AlertStatus, Templates};
use super::fingerprint::fingerprint;
use super::incident::model::{
    AlertEvidence, DATA_BREACH, EVIDENCE_VALUE_EXCERPT, Evidence, IncidentId, Kind, Reporter,
    SYSTEM, Source, Ticket, Tier, describe, format_millis,
};
use super::observation::Observation;
use super::priority::{Level, Priority};

/// Whether the symptom is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Recovered,
}

/// One symptom of one group, from any source.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub source: Source,
    /// The symptom's name within its group — a rule's name: one incident carries each key
    /// once (dedup), and recovers when its last firing key recovers.
    pub key: String,
    /// What symptoms of one thing share (service + subject): one active incident per group.
    pub group: String,
    pub status: Status,
    /// Alertmanager's fingerprint of the symptom's identifying labels.
    pub fingerprint: String,
    /// The incident's labels: what silences match.
    pub labels: BTreeMap<String, String>,
    pub service: Option<String>,
    pub title: String,
    pub description: String,
    /// One line on what was seen (`status 503 in 12ms`): timeline messages quote it.
    pub summary: String,
    pub evidence: Evidence,
    pub category: String,
    pub impact: Level,
    pub urgency: Level,
    /// impact × urgency by the configured matrix.
    pub priority: Priority,
    /// Where an incident of this priority starts (the escalation policy).
    pub start_tier: Tier,
    /// When the symptom began, if before the signal (a rule's first symptomatic result).
    pub detected_at: Option<DateTime<Utc>>,
    /// An incident, or a service request (tickets only).
    pub kind: Kind,
    /// Who reported it (tickets only).
    pub reporter: Option<Reporter>,
    /// The actor of the timeline entry it opens: `system`, or the caller who filed a ticket.
    pub raised_by: String,
}

impl Signal {
    /// Who speaks in timeline messages: ``rule `checkout-down` ``.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Rule { rule, .. } => format!("rule `{rule}`"),
            Source::Ticket => "a ticket".to_owned(),
            Source::Alert { source } => format!("{} alert", source.as_str()),
        }
    }

    /// An alert that fires or resolves, mapped by the `alerts:` configuration: the group is
    /// the alert's identity (its fingerprint, or its Alertmanager group with `group_by:
    /// group_key`), the key its fingerprint; title and description from the templates,
    /// service, impact and urgency from its labels. `priority` and `start_tier` come from
    /// the policies for that impact and urgency (see [`AlertMapping::severity_of`]).
    pub fn from_alert(
        alert: &Alert,
        mapping: &AlertMapping,
        templates: &Templates,
        priority: Priority,
        start_tier: Tier,
    ) -> Signal {
        let severity = mapping.severity_of(alert);
        let fingerprint = alert.fingerprint();
        let status = match alert.status {
            AlertStatus::Resolved => Status::Recovered,
            AlertStatus::Firing | AlertStatus::Acknowledged => Status::Firing,
        };
        Signal {
            source: Source::Alert {
                source: alert.source,
            },
            key: fingerprint.clone(),
            group: alert.group(mapping.group_by),
            status,
            summary: alert_summary(alert),
            evidence: alert_evidence(alert, &fingerprint),
            fingerprint,
            labels: alert.labels.clone(),
            service: alert.labels.get(&mapping.service_label).cloned(),
            title: templates.title(alert),
            description: templates.description(alert),
            category: mapping.category.clone(),
            impact: severity.impact,
            urgency: severity.urgency,
            priority,
            start_tier: if mapping.category == DATA_BREACH {
                Tier::L3
            } else {
                start_tier
            },
            detected_at: alert.starts_at,
            kind: Kind::Incident,
            reporter: None,
            raised_by: SYSTEM.to_owned(),
        }
    }

    /// A rule's verdict on one probe result as a signal.
    pub fn from_rule(
        rule: &RuleSignal<'_>,
        status: Status,
        detected_at: Option<DateTime<Utc>>,
    ) -> Signal {
        let mut labels = rule.probe_labels.clone();
        labels.extend(rule.subject.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert("rule".to_owned(), rule.rule.to_owned());
        labels.insert("probe".to_owned(), rule.probe.to_owned());
        let summary = describe(rule.observation);
        Signal {
            source: Source::Rule {
                rule: rule.rule.to_owned(),
                probe: rule.probe.to_owned(),
            },
            key: rule.rule.to_owned(),
            group: rule.group.to_owned(),
            status,
            fingerprint: signal_fingerprint(rule),
            service: rule.probe_labels.get("service").cloned(),
            title: render_title(rule),
            description: format!(
                "Rule `{}` fired for probe `{}`: {summary}",
                rule.rule, rule.probe
            ),
            evidence: probe_evidence(rule),
            summary,
            labels,
            category: rule.category.to_owned(),
            impact: rule.impact,
            urgency: rule.urgency,
            priority: rule.priority,
            start_tier: rule.start_tier,
            detected_at,
            kind: Kind::Incident,
            reporter: None,
            raised_by: SYSTEM.to_owned(),
        }
    }

    /// A person's ticket, filed by `actor`, as the signal that opens incident `id`: a group
    /// of its own (each report is someone's: never deduplicated, never joined by a rule's
    /// symptom). `priority` comes from the configured matrix and `start_tier` from the
    /// escalation policy; a `data_breach` ticket starts at L3 whatever the policy says.
    pub fn from_ticket(
        id: IncidentId,
        ticket: Ticket,
        priority: Priority,
        start_tier: Tier,
        actor: &str,
    ) -> Signal {
        let id_text = id.to_string();
        let text = if ticket.description.is_empty() {
            ticket.title.clone()
        } else {
            format!("{}\n\n{}", ticket.title, ticket.description)
        };
        Signal {
            source: Source::Ticket,
            key: "ticket".to_owned(),
            group: format!("ticket/{id_text}"),
            status: Status::Firing,
            fingerprint: fingerprint(&[("ticket", &id_text)]),
            labels: ticket.labels,
            service: ticket.service,
            summary: format!(
                "reported by {} <{}>",
                ticket.reporter.name, ticket.reporter.contact
            ),
            title: ticket.title,
            description: ticket.description,
            evidence: Evidence::Ticket { text },
            start_tier: if ticket.category == DATA_BREACH {
                Tier::L3
            } else {
                start_tier
            },
            category: ticket.category,
            impact: ticket.impact,
            urgency: ticket.urgency,
            priority,
            detected_at: None,
            kind: ticket.kind,
            reporter: Some(ticket.reporter),
            raised_by: actor.to_owned(),
        }
    }
}

/// What a firing rule knows when it opens or raises an incident.
#[derive(Debug, Clone)]
pub struct RuleSignal<'a> {
    /// See [`Signal::group`].
    pub group: &'a str,
    pub rule: &'a str,
    pub probe: &'a str,
    pub condition: &'a str,
    pub title_template: Option<&'a str>,
    pub category: &'a str,
    pub impact: Level,
    pub urgency: Level,
    /// impact × urgency by the configured matrix.
    pub priority: Priority,
    /// Where an incident of this priority starts (the escalation policy).
    pub start_tier: Tier,
    pub probe_labels: &'a BTreeMap<String, String>,
    /// The subject's own labels (a Prometheus series); they join the incident's labels.
    pub subject: &'a BTreeMap<String, String>,
    pub observation: &'a Observation,
}

/// How much of a body the evidence keeps.
pub const EVIDENCE_BODY_EXCERPT: usize = 1024;

/// The evidence of a rule's verdict: the result, with the body cut to an excerpt.
fn probe_evidence(signal: &RuleSignal<'_>) -> Evidence {
    let mut observation = signal.observation.summary();
    observation.body = signal.observation.body.as_deref().map(|body| {
        let mut end = body.len().min(EVIDENCE_BODY_EXCERPT);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body[..end].to_owned()
    });
    Evidence::ProbeResult {
        probe: signal.probe.to_owned(),
        rule: signal.rule.to_owned(),
        condition: signal.condition.to_owned(),
        subject: signal.subject.clone(),
        observation,
    }
}

/// The evidence of an alert: labels and annotations with each value cut to
/// [`EVIDENCE_VALUE_EXCERPT`] bytes (`truncated` says so), and its links.
/// One line on an alert for timeline messages: ``alert `Down` firing``.
pub fn alert_summary(alert: &Alert) -> String {
    let status = match alert.status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
        AlertStatus::Acknowledged => "acknowledged",
    };
    format!("alert `{}` {status}", alert.name())
}

pub fn alert_evidence(alert: &Alert, fingerprint: &str) -> Evidence {
    let mut truncated = false;
    let mut cut = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        map.iter()
            .map(|(k, v)| {
                if v.len() <= EVIDENCE_VALUE_EXCERPT {
                    return (k.clone(), v.clone());
                }
                truncated = true;
                let mut end = EVIDENCE_VALUE_EXCERPT;
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                (k.clone(), format!("{}…", &v[..end]))
            })
            .collect()
    };
    let labels = cut(&alert.labels);
    let annotations = cut(&alert.annotations);
    Evidence::Alert(AlertEvidence {
        source: alert.source,
        status: match alert.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
            AlertStatus::Acknowledged => "acknowledged",
        }
        .to_owned(),
        fingerprint: fingerprint.to_owned(),
        labels,
        annotations,
        starts_at: alert.starts_at,
        ends_at: alert.ends_at,
        generator_url: alert.generator_url.clone(),
        runbook_url: alert.annotations.get("runbook_url").cloned(),
        truncated,
    })
}

/// Renders `{{ status }}`, `{{ probe }}`, `{{ rule }}`, `{{ response_time }}` and
/// `{{ error }}` in a title template; unknown names are left as written.
fn render_title(signal: &RuleSignal<'_>) -> String {
    let Some(template) = signal.title_template else {
        return format!("{} on {}", signal.rule, signal.probe);
    };
    let observation = signal.observation;
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match name {
            "status" => match observation.status {
                Some(status) => out.push_str(&status.to_string()),
                None => out.push_str("no response"),
            },
            "probe" => out.push_str(signal.probe),
            "rule" => out.push_str(signal.rule),
            "response_time" => out.push_str(&format_millis(observation.response_time)),
            "error" => out.push_str(observation.error.as_deref().unwrap_or("none")),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The fingerprint of a rule's symptom: rule, probe and the subject's labels.
fn signal_fingerprint(signal: &RuleSignal<'_>) -> String {
    let mut labels: Vec<(&str, &str)> = signal
        .subject
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    labels.push(("probe", signal.probe));
    labels.push(("rule", signal.rule));
    fingerprint(&labels)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn title_template_keeps_unknown_names_and_unclosed_braces() {
        let labels = BTreeMap::new();
        let observation = Observation {
            connected: true,
            status: Some(503),
            response_time: Duration::from_millis(12),
            ..Observation::new(DateTime::from_timestamp(1_767_225_600, 0).unwrap())
        };
        let rule = RuleSignal {
            group: "checkout",
            rule: "checkout-down",
            probe: "checkout-api",
            condition: "[STATUS] != 200",
            title_template: Some("{{ nope }} {{ probe }} {{ rule"),
            category: "availability",
            impact: Level::Low,
            urgency: Level::Low,
            priority: Priority::from_matrix(Level::Low, Level::Low),
            start_tier: Tier::L1,
            probe_labels: &labels,
            subject: &labels,
            observation: &observation,
        };
        let signal = Signal::from_rule(&rule, Status::Firing, None);
        assert_eq!(signal.title, "{{ nope }} checkout-api {{ rule");
    }
}
