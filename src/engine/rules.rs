//! The rules as the engine evaluates them, compiled once from the config (and again on each
//! reload), and the typed keys of the state it keeps per rule and subject.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Config, RuleConfig};
use crate::domain::condition::Condition;
use crate::domain::detector::Thresholds;
use crate::domain::incident::{DATA_BREACH, Tier};
use crate::domain::observation::Observation;
use crate::domain::priority::Priority;
use crate::domain::signal::RuleSignal;
use crate::domain::suppression::in_maintenance;

use super::command::Subject;

/// One rule, ready to evaluate: its config (shared with the loaded configuration, not
/// copied) and what the deployment derives from it.
#[derive(Debug)]
pub struct Rule {
    /// The config it was compiled from: a reload keeps the state of unchanged rules.
    pub config: Arc<RuleConfig>,
    pub thresholds: Thresholds,
    pub probe_labels: BTreeMap<String, String>,
    /// impact × urgency by the configured matrix, and where that priority starts.
    pub priority: Priority,
    pub start_tier: Tier,
    /// The probe's `service` label, or the probe's name: what an incident is about.
    pub service: String,
}

impl Rule {
    /// The rule, its probe's labels given (`probe_labels`).
    pub fn from_config(
        rule: &Arc<RuleConfig>,
        probe_labels: BTreeMap<String, String>,
        config: &Config,
    ) -> Rule {
        let priority = config
            .workflow
            .priority_matrix
            .priority(rule.incident.impact, rule.incident.urgency);
        Rule {
            thresholds: Thresholds {
                after: rule.after,
                recover_after: rule.recover_after,
                for_: rule.for_,
                flapping_changes: rule.flapping_changes,
                flapping_window: rule.flapping_window,
            },
            priority,
            start_tier: if rule.incident.category == DATA_BREACH {
                Tier::L3
            } else {
                config.workflow.escalation.policy(priority).start_tier
            },
            service: probe_labels
                .get("service")
                .cloned()
                .unwrap_or_else(|| rule.probe.clone()),
            probe_labels,
            config: rule.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn probe(&self) -> &str {
        &self.config.probe
    }

    /// The symptom's condition.
    pub fn when(&self) -> &Condition {
        &self.config.when
    }

    /// What the rule knows about one result of one subject.
    pub fn signal<'a>(
        &'a self,
        group: &'a str,
        subject: &'a Subject,
        observation: &'a Observation,
    ) -> RuleSignal<'a> {
        RuleSignal {
            group,
            rule: self.name(),
            probe: self.probe(),
            condition: self.when().source(),
            title_template: self.config.incident.title.as_deref(),
            category: &self.config.incident.category,
            impact: self.config.incident.impact,
            urgency: self.config.incident.urgency,
            priority: self.priority,
            start_tier: self.start_tier,
            probe_labels: &self.probe_labels,
            subject,
            observation,
        }
    }

    /// The labels an incident of this rule for `subject` carries (what silences match).
    pub fn labels(&self, subject: &Subject) -> BTreeMap<String, String> {
        let mut labels = self.probe_labels.clone();
        labels.extend(subject.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert("rule".to_owned(), self.config.name.clone());
        labels.insert("probe".to_owned(), self.config.probe.clone());
        labels
    }

    /// The group of this rule's incidents for `subject`: the service, and the subject's
    /// labels when it has any (`checkout{instance="a"}`).
    pub fn group(&self, subject: &Subject) -> String {
        keyed(&self.service, subject)
    }

    pub fn in_maintenance(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.config
            .maintenance
            .iter()
            .any(|w| in_maintenance(w.start, w.duration, &w.weekdays, w.utc_offset_seconds, now))
    }
}

/// Every rule, and the rules of each probe.
#[derive(Debug, Default)]
pub struct RuleBook {
    pub rules: Vec<Arc<Rule>>,
    by_probe: HashMap<String, Vec<Arc<Rule>>>,
    by_name: HashMap<String, Arc<Rule>>,
}

impl RuleBook {
    pub fn new(config: &Config) -> RuleBook {
        // Each rule's probe by name: 100,000 rules must not each search 100,000 probes.
        let probes: HashMap<&str, &BTreeMap<String, String>> = config
            .probes
            .iter()
            .map(|p| (p.name.as_str(), &p.labels))
            .collect();
        let rules: Vec<Arc<Rule>> = config
            .rules
            .iter()
            .map(|r| {
                let labels = probes.get(r.probe.as_str()).copied().cloned();
                Arc::new(Rule::from_config(r, labels.unwrap_or_default(), config))
            })
            .collect();
        let mut by_probe: HashMap<String, Vec<Arc<Rule>>> = HashMap::new();
        for rule in &rules {
            by_probe
                .entry(rule.config.probe.clone())
                .or_default()
                .push(rule.clone());
        }
        let by_name = rules
            .iter()
            .map(|r| (r.config.name.clone(), r.clone()))
            .collect();
        RuleBook {
            rules,
            by_probe,
            by_name,
        }
    }

    pub fn of_probe(&self, probe: &str) -> &[Arc<Rule>] {
        self.by_probe.get(probe).map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Rule>> {
        self.by_name.get(name)
    }
}

/// The key of a rule's detector for one subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DetectorKey {
    pub rule: String,
    pub subject: Subject,
}

impl DetectorKey {
    /// The stored form: `rule`, or `rule{k="v",…}` for a subject with labels.
    pub fn stored(&self) -> String {
        keyed(&self.rule, &self.subject)
    }

    /// Reads a stored key back, knowing its subject (stored beside it): the rule is what
    /// precedes the subject's part, whatever characters the rule's name holds.
    pub fn from_stored(key: &str, subject: Subject) -> DetectorKey {
        let suffix = labels_key(&subject);
        let rule = if suffix.is_empty() {
            key
        } else {
            key.strip_suffix(&format!("{{{suffix}}}")).unwrap_or(key)
        };
        DetectorKey {
            rule: rule.to_owned(),
            subject,
        }
    }
}

/// The key of one probe subject's recent results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryKey {
    pub probe: String,
    pub subject: Subject,
}

/// `k="v",…` — the canonical text of a label set, "" when empty.
fn labels_key(labels: &Subject) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `name` or `name{k="v",…}`.
fn keyed(name: &str, subject: &Subject) -> String {
    if subject.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", labels_key(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_keys_survive_their_stored_form() {
        for (rule, subject) in [
            ("down", Subject::new()),
            (
                "down",
                Subject::from([("instance".to_owned(), "a{b}".to_owned())]),
            ),
            // A rule name with a brace is not cut at it.
            (
                "odd{name",
                Subject::from([("job".to_owned(), "x\"y".to_owned())]),
            ),
        ] {
            let key = DetectorKey {
                rule: rule.to_owned(),
                subject: subject.clone(),
            };
            assert_eq!(DetectorKey::from_stored(&key.stored(), subject), key);
        }
        assert_eq!(
            DetectorKey {
                rule: "down".to_owned(),
                subject: Subject::from([("instance".to_owned(), "a".to_owned())]),
            }
            .stored(),
            r#"down{instance="a"}"#
        );
    }
}
