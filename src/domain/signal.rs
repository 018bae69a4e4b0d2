//! The source-neutral signal: what a probe rule that fires or recovers (and, later, an
//! alert that fires or resolves) tells the correlator. Everything an incident needs is in
//! it, already rendered (title, evidence, labels), so the correlator and the incident state
//! machine never look at where it came from.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::incident::{
    Evidence, RuleSignal, Source, Tier, describe, render_title, signal_fingerprint,
};
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
}

impl Signal {
    /// Who speaks in timeline messages: ``rule `checkout-down` ``.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Rule { rule, .. } => format!("rule `{rule}`"),
            Source::Ticket => "a ticket".to_owned(),
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
            evidence: Evidence::probe_result(rule),
            summary,
            labels,
            category: rule.category.to_owned(),
            impact: rule.impact,
            urgency: rule.urgency,
            priority: rule.priority,
            start_tier: rule.start_tier,
            detected_at,
        }
    }
}
