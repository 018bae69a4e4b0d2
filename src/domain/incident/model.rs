//! The plain values an incident is made of: its id, state, tier, kind, source, reporter,
//! verification, evidence and timeline entries, and the words a probe result is told in.
//! The state machine, the signals, the SLA clocks and the rest of the crate share them;
//! this file uses nothing else of the incident, so any of them may use it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::alert::AlertSource;
use crate::domain::observation::Observation;
use crate::domain::priority::Level;

/// The category whose incidents are restricted and always start at L3.
pub const DATA_BREACH: &str = "data_breach";

/// `INC-<n>`, assigned in order, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentId(pub u64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

impl std::str::FromStr for IncidentId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let n = s.strip_prefix("INC-").ok_or(())?;
        if n.starts_with('+') || n.starts_with('0') {
            return Err(());
        }
        n.parse().map(IncidentId).map_err(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Open,
    Acknowledged,
    OnHold,
    Resolved,
    Closed,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Open,
        State::Acknowledged,
        State::OnHold,
        State::Resolved,
        State::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::OnHold => "on_hold",
            State::Resolved => "resolved",
            State::Closed => "closed",
        }
    }

    /// Open for work: counted in `incidentd_incidents_open`.
    pub fn is_active(self) -> bool {
        matches!(self, State::Open | State::Acknowledged | State::OnHold)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Tier {
    L1,
    L2,
    L3,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::L1, Tier::L2, Tier::L3];

    /// The tier above, if any.
    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::L1 => Some(Tier::L2),
            Tier::L2 => Some(Tier::L3),
            Tier::L3 => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "L1",
            Tier::L2 => "L2",
            Tier::L3 => "L3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Request,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Request => "request",
        }
    }
}

/// Where an incident came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Rule {
        rule: String,
        probe: String,
    },
    /// A person's ticket (`POST /api/v1/incidents`).
    Ticket,
    /// An alert from Alertmanager, a push (Prometheus) or a PagerDuty-shaped event.
    Alert {
        source: AlertSource,
    },
}

impl Source {
    pub fn type_str(&self) -> &'static str {
        match self {
            Source::Rule { .. } => "rule",
            Source::Ticket => "ticket",
            Source::Alert { .. } => "alert",
        }
    }

    /// Whether the incident's symptoms recover on their own (a rule, an alert): a
    /// resolution is verified by that recovery.
    pub fn recovers(&self) -> bool {
        !matches!(self, Source::Ticket)
    }

    /// One of this source's symptoms, by its key, as timeline messages name it: ``rule
    /// `checkout-down` `` or ``alert `507a62d79ee76c9a` `` (an alert's key is its
    /// fingerprint).
    pub fn symptom(&self, key: &str) -> String {
        match self {
            Source::Rule { .. } => format!("rule `{key}`"),
            Source::Alert { .. } => format!("alert `{key}`"),
            Source::Ticket => "the ticket".to_owned(),
        }
    }

    /// How an automatic resolution reads on the timeline, and the resolution it records:
    /// the probe's clean results ended the symptom, or the alert resolved.
    pub fn recovery_words(&self) -> (&'static str, &'static str) {
        match self {
            Source::Alert { .. } => ("the alert resolved", "recovered: the alert resolved"),
            _ => (
                "the rule recovered",
                "recovered: the probe confirms the symptom is gone",
            ),
        }
    }
}

/// Who reported a ticket and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reporter {
    pub name: String,
    pub contact: String,
}

/// A call with the reporter or the people working on the incident (the service desk's L2
/// duty): a bridge or meeting URL, when, who, and a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// When the call takes place.
    pub at: DateTime<Utc>,
    /// The bridge or meeting (http or https).
    pub url: String,
    pub participants: Vec<String>,
    pub note: Option<String>,
    /// The token that scheduled it.
    pub scheduled_by: String,
    pub scheduled_at: DateTime<Utc>,
}

/// At most this many calls per incident: the incident is in every event body.
pub const MAX_CALLS: usize = 20;

/// The timeline type of a comment the reporter wrote through their link.
pub const REPORTER_COMMENT: &str = "reporter_comment";

/// A person's ticket, its category, kind and impact/urgency already settled.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub title: String,
    pub description: String,
    pub reporter: Reporter,
    pub kind: Kind,
    pub category: String,
    pub impact: Level,
    pub urgency: Level,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Whether the probe confirmed that a resolved rule incident is really over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Resolved by hand while its rules still fire: not closable until they recover.
    Pending,
    Verified,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Pending => "pending",
            Verification::Verified => "verified",
        }
    }
}

/// What was seen: the symptom that opened (or moved) the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Nearly all evidence is probe results: boxing them would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    ProbeResult {
        probe: String,
        rule: String,
        condition: String,
        /// The subject's labels (a Prometheus probe's series); empty for single-target probes.
        subject: BTreeMap<String, String>,
        /// The result, its body cut to an excerpt and without headers.
        observation: Observation,
    },
    /// What the reporter of a ticket wrote.
    Ticket { text: String },
    /// An alert as received: its labels and annotations (long values cut), its links.
    Alert(AlertEvidence),
}

/// How long an alert's label or annotation value may be in the evidence; longer ones are
/// cut and the evidence says so (`truncated`).
pub const EVIDENCE_VALUE_EXCERPT: usize = 1024;

/// An alert's evidence. `generator_url` (the expression in Prometheus) and `runbook_url`
/// (the `runbook_url` annotation) are the incident's links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertEvidence {
    pub source: AlertSource,
    /// `firing`, `resolved` or `acknowledged`: what this push said.
    pub status: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// Some value was longer than [`EVIDENCE_VALUE_EXCERPT`] and is cut.
    #[serde(default)]
    pub truncated: bool,
}

/// One line of the append-only timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// A token's name, or `system`.
    pub actor: String,
    /// The event type without the `incident.` prefix (`opened`, `acknowledged`, …).
    pub kind: String,
    pub message: String,
    /// A public note: shown on the status page (notes only; false for everything else).
    pub public: bool,
}

/// The actor of what nobody did by hand: detection, recovery, timers.
pub const SYSTEM: &str = "system";

/// A one-line human description of a probe result.
pub fn describe(observation: &Observation) -> String {
    let time = format_millis(observation.response_time);
    match (&observation.error, observation.status) {
        (Some(error), _) => format!("not connected after {time}: {error}"),
        (None, Some(status)) => format!("status {status} in {time}"),
        (None, None) => format!("connected in {time}"),
    }
}

/// `12ms`: response times as descriptions and rule titles write them.
pub(crate) fn format_millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_round_trip() {
        assert_eq!("INC-42".parse::<IncidentId>(), Ok(IncidentId(42)));
        assert_eq!(IncidentId(42).to_string(), "INC-42");
        for bad in ["42", "INC-", "INC-x", "INC-042", "INC-+1", "inc-1"] {
            assert!(bad.parse::<IncidentId>().is_err(), "{bad}");
        }
    }
}
