//! How this service desk works, as values: the category taxonomy, the priority matrix
//! (impact × urgency → priority), the escalation policies, the closure quiet period and the
//! SLA policies ([`super::sla::SlaPolicies`]). `config/` parses `incidentd.yaml` into a
//! [`WorkflowConfig`]; the engine decides with it. The defaults are the service-desk policy
//! of the contract.

use std::collections::BTreeMap;
use std::time::Duration;

use super::incident::{Kind, Tier};
use super::priority::{Level, Priority};
use super::sla::SlaPolicies;

/// How the service desk works: `categories`, `priority_matrix`, `escalation`, `closure`, `sla`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowConfig {
    /// The taxonomy; an unknown category is refused with the list of these.
    pub categories: Vec<Category>,
    pub priority_matrix: PriorityMatrix,
    pub escalation: EscalationConfig,
    /// A resolved (and verified) incident closes after this long without the symptom.
    pub closure_quiet_period: Duration,
    /// `sla`: turnaround-time targets, calendars, the warning share, the mean resolution
    /// objective and the breach-notification deadline of restricted incidents.
    pub sla: SlaPolicies,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    /// What a ticket in this category is, unless the ticket says otherwise.
    pub kind: Kind,
    /// Details only for admin tokens and tokens with `security: true` (data breaches).
    pub restricted: bool,
}

/// impact × urgency → priority; rows and columns in the order high, medium, low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityMatrix(pub [[Priority; 3]; 3]);

impl PriorityMatrix {
    pub fn priority(&self, impact: Level, urgency: Level) -> Priority {
        let index = |level| match level {
            Level::High => 0,
            Level::Medium => 1,
            Level::Low => 2,
        };
        self.0[index(impact)][index(urgency)]
    }
}

impl Default for PriorityMatrix {
    /// The ITIL matrix: priority = impact + urgency − 1.
    fn default() -> Self {
        let mut matrix = [[Priority::P1; 3]; 3];
        for (i, impact) in Level::ALL.into_iter().enumerate() {
            for (u, urgency) in Level::ALL.into_iter().enumerate() {
                matrix[i][u] = Priority::from_matrix(impact, urgency);
            }
        }
        PriorityMatrix(matrix)
    }
}

/// Per priority; `default` for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationConfig {
    pub per_priority: BTreeMap<Priority, EscalationPolicy>,
    pub default: EscalationPolicy,
}

impl EscalationConfig {
    pub fn policy(&self, priority: Priority) -> &EscalationPolicy {
        self.per_priority.get(&priority).unwrap_or(&self.default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub start_tier: Tier,
    /// Escalate one tier when not acknowledged this long after opening.
    pub unacknowledged_after: Option<Duration>,
    /// Escalate one tier when not resolved this long after opening.
    pub unresolved_after: Option<Duration>,
}

impl Default for EscalationConfig {
    /// P1 starts at L3; the rest at L1, escalating when not acknowledged in 30 min or not
    /// resolved in 8 h.
    fn default() -> Self {
        EscalationConfig {
            per_priority: BTreeMap::from([(
                Priority::P1,
                EscalationPolicy {
                    start_tier: Tier::L3,
                    unacknowledged_after: None,
                    unresolved_after: None,
                },
            )]),
            default: EscalationPolicy {
                start_tier: Tier::L1,
                unacknowledged_after: Some(Duration::from_secs(30 * 60)),
                unresolved_after: Some(Duration::from_secs(8 * 3600)),
            },
        }
    }
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        let category = |name: &str, kind, restricted| Category {
            name: name.to_owned(),
            kind,
            restricted,
        };
        WorkflowConfig {
            categories: vec![
                category("availability", Kind::Incident, false),
                category("performance", Kind::Incident, false),
                category("capacity", Kind::Incident, false),
                category("security", Kind::Incident, false),
                category("data_breach", Kind::Incident, true),
                category("request", Kind::Request, false),
            ],
            priority_matrix: PriorityMatrix::default(),
            escalation: EscalationConfig::default(),
            closure_quiet_period: Duration::from_secs(3600),
            sla: SlaPolicies::default(),
        }
    }
}

impl WorkflowConfig {
    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_matrix_is_itil_and_a_configured_one_is_read_by_impact_then_urgency() {
        let itil = PriorityMatrix::default();
        assert_eq!(itil.priority(Level::High, Level::High), Priority::P1);
        assert_eq!(itil.priority(Level::High, Level::Low), Priority::P3);
        assert_eq!(itil.priority(Level::Low, Level::Medium), Priority::P4);
        assert_eq!(itil.priority(Level::Low, Level::Low), Priority::P5);
        let mut rows = itil.0;
        rows[0][2] = Priority::P2; // high impact, low urgency
        let custom = PriorityMatrix(rows);
        assert_eq!(custom.priority(Level::High, Level::Low), Priority::P2);
        assert_eq!(custom.priority(Level::Low, Level::High), Priority::P3);
    }

    #[test]
    fn a_priority_without_its_own_escalation_policy_follows_the_default() {
        let escalation = EscalationConfig::default();
        assert_eq!(escalation.policy(Priority::P1).start_tier, Tier::L3);
        assert_eq!(escalation.policy(Priority::P1).unacknowledged_after, None);
        for priority in [Priority::P2, Priority::P3, Priority::P4, Priority::P5] {
            assert_eq!(escalation.policy(priority), &escalation.default);
        }
        assert_eq!(escalation.default.start_tier, Tier::L1);
    }

    #[test]
    fn categories_are_found_by_name() {
        let workflow = WorkflowConfig::default();
        let breach = workflow
            .category("data_breach")
            .expect("a default category");
        assert!(breach.restricted && breach.kind == Kind::Incident);
        assert_eq!(
            workflow.category("request").map(|c| c.kind),
            Some(Kind::Request)
        );
        assert_eq!(workflow.category("Availability"), None);
    }
}
