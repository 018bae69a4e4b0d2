//! The stored shape of each record, version 1. Kept apart from the domain types so that a
//! change to the domain is a deliberate migration here, not a silent change of the file
//! format. Small domain enums (state, tier, priority, level) are stored by their
//! lower-case names, which are part of the contract anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::detector::Detector;
use crate::domain::incident::{
    Call, Evidence, Incident, IncidentId, Kind, Reporter, Source, State, Tier, TimelineEntry,
    Verification,
};
use crate::domain::maintenance::Maintenance;
use crate::domain::observation::Observation;
use crate::domain::priority::{Level, Priority};
use crate::domain::sla::{SlaClock, SlaClocks};
use crate::domain::suppression::{MatchOp, Matcher, Silence};
use crate::domain::uptime::DayCount;

/// The fields of an [`IncidentV1`] that similarity looks at; the rest is skipped.
#[derive(Debug, Deserialize)]
pub struct IncidentTraitsV1 {
    pub state: State,
    pub fingerprint: String,
    pub category: String,
    pub service: Option<String>,
}

/// The fields of an [`IncidentV1`] its index entries follow (`upgrade.rs` reads them to
/// index incidents stored before the indexes existed); the rest is skipped.
#[derive(Debug, Deserialize)]
pub struct IncidentIndexedV1 {
    pub state: State,
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sla: SlaClocksV1,
}

/// The field of an [`IncidentV1`] that `incidents_by_month.v1` follows (`upgrade.rs` reads
/// it to index incidents stored before that index existed); the rest is skipped.
#[derive(Debug, Deserialize)]
pub struct IncidentOpenedV1 {
    pub opened_at: DateTime<Utc>,
}

/// The fields of an [`IncidentV1`] the SLA report reads; the rest is skipped.
#[derive(Debug, Deserialize)]
pub struct IncidentClocksV1 {
    pub kind: Kind,
    pub priority: Priority,
    #[serde(default)]
    pub sla: SlaClocksV1,
}

impl SlaClocksV1 {
    pub fn into_clocks(self) -> SlaClocks {
        SlaClocks {
            first_response: self.first_response.map(SlaClock::from),
            resolution: self.resolution.map(SlaClock::from),
            breach_notification: self.breach_notification.map(SlaClock::from),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentV1 {
    pub id: u64,
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub state: State,
    pub tier: Tier,
    pub priority: Priority,
    pub impact: Level,
    pub urgency: Level,
    pub category: String,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub source: SourceV1,
    pub fingerprint: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub firing_rules: BTreeSet<String>,
    /// Alert incidents: firing alert → its `endsAt`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alert_expiry: BTreeMap<String, DateTime<Utc>>,
    /// Tickets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<ReporterV1>,
    /// Resolved rule incidents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    pub evidence: Vec<EvidenceV1>,
    pub resolution: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sla: SlaClocksV1,
    /// Written before the SLA clocks existed (now `sla.breach_notification`); read only.
    #[serde(default, skip_serializing)]
    pub breach_notification_due_at: Option<DateTime<Utc>>,
    /// Tickets published on the status page (absent in older records: not published).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published: bool,
    /// Calls scheduled from L2 or L3 (absent in older records and when there is none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallV1>,
}

/// A scheduled call ([`crate::domain::incident::Call`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallV1 {
    pub at: DateTime<Utc>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub scheduled_by: String,
    pub scheduled_at: DateTime<Utc>,
}

impl From<&Call> for CallV1 {
    fn from(c: &Call) -> Self {
        CallV1 {
            at: c.at,
            url: c.url.clone(),
            participants: c.participants.clone(),
            note: c.note.clone(),
            scheduled_by: c.scheduled_by.clone(),
            scheduled_at: c.scheduled_at,
        }
    }
}

impl From<CallV1> for Call {
    fn from(c: CallV1) -> Self {
        Call {
            at: c.at,
            url: c.url,
            participants: c.participants,
            note: c.note,
            scheduled_by: c.scheduled_by,
            scheduled_at: c.scheduled_at,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaClocksV1 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response: Option<SlaClockV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<SlaClockV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_notification: Option<SlaClockV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaClockV1 {
    pub priority: Priority,
    pub target_ms: i64,
    pub started_at: DateTime<Utc>,
    pub elapsed_ms: i64,
    pub wall_elapsed_ms: i64,
    pub running_since: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub warned: bool,
    pub breached: bool,
}

impl From<&SlaClock> for SlaClockV1 {
    fn from(c: &SlaClock) -> Self {
        SlaClockV1 {
            priority: c.priority,
            target_ms: c.target.num_milliseconds(),
            started_at: c.started_at,
            elapsed_ms: c.elapsed.num_milliseconds(),
            wall_elapsed_ms: c.wall_elapsed.num_milliseconds(),
            running_since: c.running_since,
            stopped_at: c.stopped_at,
            warned: c.warned,
            breached: c.breached,
        }
    }
}

impl From<SlaClockV1> for SlaClock {
    fn from(c: SlaClockV1) -> Self {
        SlaClock {
            priority: c.priority,
            target: TimeDelta::milliseconds(c.target_ms),
            started_at: c.started_at,
            elapsed: TimeDelta::milliseconds(c.elapsed_ms),
            wall_elapsed: TimeDelta::milliseconds(c.wall_elapsed_ms),
            running_since: c.running_since,
            stopped_at: c.stopped_at,
            warned: c.warned,
            breached: c.breached,
        }
    }
}

/// The breach-notification clock of a record written before the SLA clocks existed: it
/// ran from opening to its deadline, stopped at closure; its timers are still armed.
fn legacy_breach_clock(r: &IncidentV1, due: DateTime<Utc>) -> SlaClock {
    let mut clock = SlaClock::start(r.priority, due - r.opened_at, r.opened_at);
    if let Some(closed) = r.closed_at {
        clock.elapsed = closed - r.opened_at;
        clock.wall_elapsed = clock.elapsed;
        clock.running_since = None;
        clock.stopped_at = Some(closed);
        clock.breached = closed > due;
    }
    clock
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceV1 {
    Rule {
        rule: String,
        probe: String,
    },
    Ticket,
    Alert {
        source: crate::domain::alert::AlertSource,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterV1 {
    pub name: String,
    pub contact: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvidenceV1 {
    ProbeResult {
        probe: String,
        rule: String,
        condition: String,
        at: DateTime<Utc>,
        connected: bool,
        status: Option<u16>,
        response_time_ms: u64,
        error: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        subject: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate_expiry: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_rcode: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
    },
    Ticket {
        text: String,
    },
    /// The domain's plain value as is: labels, annotations, times and links.
    Alert(crate::domain::incident::model::AlertEvidence),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntryV1 {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorV1 {
    /// The subject's labels (a Prometheus series); empty for single-target probes.
    #[serde(default)]
    pub subject: BTreeMap<String, String>,
    pub firing: bool,
    pub symptomatic_streak: u32,
    pub clean_streak: u32,
    #[serde(default)]
    pub symptom_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub verdicts: u64,
    #[serde(default)]
    pub seen: u32,
    #[serde(default)]
    pub flapping: bool,
}

/// One webhook delivery waiting in the outbox: an event for one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxEntry {
    /// Key part: the consumer's name.
    pub consumer: String,
    /// Key part: position in the outbox, increasing in commit order.
    pub seq: u64,
    /// `evt_…`, the Standard Webhooks `webhook-id`: the same on every retry.
    pub event_id: String,
    pub event_type: String,
    pub incident: u64,
    pub created_at: DateTime<Utc>,
    /// The exact JSON body to send (and sign).
    pub body: String,
}

impl From<&Incident> for IncidentV1 {
    fn from(i: &Incident) -> Self {
        IncidentV1 {
            id: i.id.0,
            kind: i.kind,
            title: i.title.clone(),
            description: i.description.clone(),
            state: i.state,
            tier: i.tier,
            priority: i.priority,
            impact: i.impact,
            urgency: i.urgency,
            category: i.category.clone(),
            service: i.service.clone(),
            labels: i.labels.clone(),
            source: match &i.source {
                Source::Rule { rule, probe } => SourceV1::Rule {
                    rule: rule.clone(),
                    probe: probe.clone(),
                },
                Source::Ticket => SourceV1::Ticket,
                Source::Alert { source } => SourceV1::Alert { source: *source },
            },
            fingerprint: i.fingerprint.clone(),
            reporter: i.reporter.as_ref().map(|r| ReporterV1 {
                name: r.name.clone(),
                contact: r.contact.clone(),
            }),
            verification: i.verification,
            group: i.group.clone(),
            firing_rules: i.firing_rules.clone(),
            alert_expiry: i.alert_expiry.clone(),
            evidence: i.evidence.iter().map(EvidenceV1::from).collect(),
            resolution: i.resolution.clone(),
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            acknowledged_by: i.acknowledged_by.clone(),
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            detected_at: i.detected_at,
            sla: SlaClocksV1 {
                first_response: i.sla.first_response.as_ref().map(SlaClockV1::from),
                resolution: i.sla.resolution.as_ref().map(SlaClockV1::from),
                breach_notification: i.sla.breach_notification.as_ref().map(SlaClockV1::from),
            },
            breach_notification_due_at: None,
            published: i.published,
            calls: i.calls.iter().map(CallV1::from).collect(),
        }
    }
}

impl From<IncidentV1> for Incident {
    fn from(r: IncidentV1) -> Self {
        let breach_notification = match (
            r.sla.breach_notification.clone(),
            r.breach_notification_due_at,
        ) {
            (Some(clock), _) => Some(SlaClock::from(clock)),
            (None, Some(due)) => Some(legacy_breach_clock(&r, due)),
            (None, None) => None,
        };
        Incident {
            id: IncidentId(r.id),
            kind: r.kind,
            title: r.title,
            description: r.description,
            state: r.state,
            tier: r.tier,
            priority: r.priority,
            impact: r.impact,
            urgency: r.urgency,
            category: r.category,
            service: r.service,
            labels: r.labels,
            source: match r.source {
                SourceV1::Rule { rule, probe } => Source::Rule { rule, probe },
                SourceV1::Ticket => Source::Ticket,
                SourceV1::Alert { source } => Source::Alert { source },
            },
            fingerprint: r.fingerprint,
            reporter: r.reporter.map(|r| Reporter {
                name: r.name,
                contact: r.contact,
            }),
            verification: r.verification,
            group: r.group,
            firing_rules: r.firing_rules,
            alert_expiry: r.alert_expiry,
            evidence: r.evidence.into_iter().map(Evidence::from).collect(),
            resolution: r.resolution,
            opened_at: r.opened_at,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            resolved_at: r.resolved_at,
            closed_at: r.closed_at,
            detected_at: r.detected_at,
            sla: SlaClocks {
                first_response: r.sla.first_response.map(SlaClock::from),
                resolution: r.sla.resolution.map(SlaClock::from),
                breach_notification,
            },
            published: r.published,
            calls: r.calls.into_iter().map(Call::from).collect(),
        }
    }
}

impl From<&Evidence> for EvidenceV1 {
    fn from(e: &Evidence) -> Self {
        match e {
            Evidence::ProbeResult {
                probe,
                rule,
                condition,
                subject,
                observation,
            } => EvidenceV1::ProbeResult {
                probe: probe.clone(),
                rule: rule.clone(),
                condition: condition.clone(),
                at: observation.at,
                connected: observation.connected,
                status: observation.status,
                response_time_ms: u64::try_from(observation.response_time.as_millis())
                    .unwrap_or(u64::MAX),
                error: observation.error.clone(),
                subject: subject.clone(),
                body: observation.body.clone(),
                certificate_expiry: observation.certificate_expiry,
                dns_rcode: observation.dns_rcode.clone(),
                value: observation.value,
            },
            Evidence::Ticket { text } => EvidenceV1::Ticket { text: text.clone() },
            Evidence::Alert(alert) => EvidenceV1::Alert(alert.clone()),
        }
    }
}

impl From<EvidenceV1> for Evidence {
    fn from(e: EvidenceV1) -> Self {
        match e {
            EvidenceV1::ProbeResult {
                probe,
                rule,
                condition,
                at,
                connected,
                status,
                response_time_ms,
                error,
                subject,
                body,
                certificate_expiry,
                dns_rcode,
                value,
            } => Evidence::ProbeResult {
                probe,
                rule,
                condition,
                subject,
                observation: Observation {
                    connected,
                    status,
                    response_time: Duration::from_millis(response_time_ms),
                    error,
                    body,
                    certificate_expiry,
                    dns_rcode,
                    value,
                    ..Observation::new(at)
                },
            },
            EvidenceV1::Ticket { text } => Evidence::Ticket { text },
            EvidenceV1::Alert(alert) => Evidence::Alert(alert),
        }
    }
}

impl From<&TimelineEntry> for TimelineEntryV1 {
    fn from(t: &TimelineEntry) -> Self {
        TimelineEntryV1 {
            at: t.at,
            actor: t.actor.clone(),
            kind: t.kind.clone(),
            message: t.message.clone(),
            public: t.public,
        }
    }
}

impl From<TimelineEntryV1> for TimelineEntry {
    fn from(t: TimelineEntryV1) -> Self {
        TimelineEntry {
            at: t.at,
            actor: t.actor,
            kind: t.kind,
            message: t.message,
            public: t.public,
        }
    }
}

impl DetectorV1 {
    pub fn new(subject: &BTreeMap<String, String>, d: Detector) -> Self {
        DetectorV1 {
            subject: subject.clone(),
            firing: d.firing,
            symptomatic_streak: d.symptomatic_streak,
            clean_streak: d.clean_streak,
            symptom_since: d.symptom_since,
            verdicts: d.verdicts,
            seen: d.seen,
            flapping: d.flapping,
        }
    }
}

impl From<DetectorV1> for Detector {
    fn from(d: DetectorV1) -> Self {
        Detector {
            firing: d.firing,
            symptomatic_streak: d.symptomatic_streak,
            clean_streak: d.clean_streak,
            symptom_since: d.symptom_since,
            verdicts: d.verdicts,
            seen: d.seen,
            flapping: d.flapping,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceV1 {
    pub id: u64,
    pub matchers: MatchersV1,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence's matchers. Before operators (issue 12) a silence stored a map of label name
/// → value, every one an equality; that form is still read, and still written when it can
/// say the same, so that a previous incidentd reads every silence of equalities only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchersV1 {
    Equal(BTreeMap<String, String>),
    List(Vec<MatcherV1>),
}

/// One matcher, as Alertmanager API v2 spells it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatcherV1 {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

impl From<&Silence> for SilenceV1 {
    fn from(s: &Silence) -> Self {
        let equal: BTreeMap<String, String> = s
            .matchers
            .iter()
            .filter(|m| m.op() == MatchOp::Equal)
            .map(|m| (m.name().to_owned(), m.value().to_owned()))
            .collect();
        // The map says the same only when every matcher is an equality on its own label.
        let matchers = if equal.len() == s.matchers.len() {
            MatchersV1::Equal(equal)
        } else {
            MatchersV1::List(
                s.matchers
                    .iter()
                    .map(|m| MatcherV1 {
                        name: m.name().to_owned(),
                        value: m.value().to_owned(),
                        is_regex: m.op().is_regex(),
                        is_equal: m.op().is_equal(),
                    })
                    .collect(),
            )
        };
        SilenceV1 {
            id: s.id,
            matchers,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
        }
    }
}

impl TryFrom<SilenceV1> for Silence {
    /// A stored regular expression that no longer compiles (it was checked when made).
    type Error = String;

    fn try_from(s: SilenceV1) -> Result<Self, Self::Error> {
        let matchers = match s.matchers {
            MatchersV1::Equal(map) => map
                .into_iter()
                .map(|(name, value)| Matcher::equal(name, value))
                .collect(),
            MatchersV1::List(list) => list
                .into_iter()
                .map(|m| Matcher::new(m.name, m.value, MatchOp::from_flags(m.is_regex, m.is_equal)))
                .collect::<Result<_, _>>()?,
        };
        Ok(Silence {
            id: s.id,
            matchers,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by,
            comment: s.comment,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceV1 {
    pub id: u64,
    pub title: String,
    pub message: String,
    pub services: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<&Maintenance> for MaintenanceV1 {
    fn from(m: &Maintenance) -> Self {
        MaintenanceV1 {
            id: m.id,
            title: m.title.clone(),
            message: m.message.clone(),
            services: m.services.clone(),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            created_by: m.created_by.clone(),
            created_at: m.created_at,
            cancelled_at: m.cancelled_at,
        }
    }
}

impl From<MaintenanceV1> for Maintenance {
    fn from(m: MaintenanceV1) -> Self {
        Maintenance {
            id: m.id,
            title: m.title,
            message: m.message,
            services: m.services,
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            created_by: m.created_by,
            created_at: m.created_at,
            cancelled_at: m.cancelled_at,
        }
    }
}

/// One probe's day in `uptime_daily.v1`: (runs, successful runs). Two fixed-width integers
/// rather than JSON: start-up reads every row (9,000,000 at 100,000 probes over 90 days),
/// and a pair of numbers has no other shape to migrate to.
pub type UptimeDayV1 = (u32, u32);

impl From<DayCount> for UptimeDayV1 {
    fn from(count: DayCount) -> Self {
        (count.runs, count.ok)
    }
}

impl From<UptimeDayV1> for DayCount {
    fn from((runs, ok): UptimeDayV1) -> Self {
        DayCount { runs, ok }
    }
}
