//! The public JSON shape of an incident (PRODUCT.md "An incident in JSON"), shared by the
//! HTTP API and the webhook events so that both always say the same thing, and the one
//! place that decides how much of a restricted incident (a data breach) a reader sees:
//! [`Restrictions::view`] is what every route and every webhook body goes through.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::incident::{
    Call, Evidence, Incident, REPORTER_COMMENT, Reporter, Source, TimelineEntry,
};
use crate::domain::sla::{Phase, SlaClock, SlaName, SlaPolicies};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Incident)]
pub struct IncidentView<'a> {
    /// `INC-1`, `INC-2`, … stable.
    pub id: String,
    #[schema(value_type = crate::domain::incident::Kind)]
    pub kind: &'static str,
    pub title: &'a str,
    pub description: &'a str,
    #[schema(value_type = crate::domain::incident::State)]
    pub state: &'static str,
    #[schema(value_type = crate::domain::incident::Tier)]
    pub tier: &'static str,
    #[schema(value_type = crate::domain::priority::Priority)]
    pub priority: &'static str,
    #[schema(value_type = crate::domain::priority::Level)]
    pub impact: &'static str,
    #[schema(value_type = crate::domain::priority::Level)]
    pub urgency: &'static str,
    pub category: &'a str,
    pub service: Option<&'a str>,
    /// Published on the status page (tickets; rule and alert incidents show by service).
    pub public: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub source: SourceView<'a>,
    pub fingerprint: &'a str,
    pub reporter: Option<&'a Reporter>,
    pub evidence: Vec<EvidenceView<'a>>,
    pub resolution: Option<&'a str>,
    /// `pending` | `verified` for resolved rule incidents, else null.
    #[schema(value_type = Option<String>, pattern = "^(pending|verified)$")]
    pub verification: Option<&'static str>,
    pub opened_at: String,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    /// Restricted incidents only: when those affected must have been notified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_notification_due_at: Option<String>,
    /// The SLA clocks as they stand now.
    pub sla: SlaView,
    /// Calls scheduled from L2 or L3, oldest first.
    pub calls: Vec<CallView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineView<'a>>>,
    /// Similar past incidents, best first; only in the answer for one incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similar: Option<Vec<SimilarView<'a>>>,
}

/// `sla` of an incident: each clock that started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Sla)]
pub struct SlaView {
    pub first_response: Option<ClockView>,
    pub resolution: Option<ClockView>,
    /// Restricted incidents (data breaches) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_notification: Option<ClockView>,
}

/// One SLA clock at `now`. Elapsed and remaining time are in the policy's calendar
/// (business hours, or wall time for 24x7) and, as `_wall_`, in wall time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SlaClock)]
pub struct ClockView {
    pub target_seconds: f64,
    /// While running: when the target is (or was) reached. Null while paused or stopped.
    pub due_at: Option<String>,
    /// `running`, `paused`, `met` or `breached`.
    #[schema(value_type = String, pattern = "^(running|paused|met|breached)$")]
    pub state: &'static str,
    /// Past the warning share of the target (`sla.warn_at`).
    pub at_risk: bool,
    pub started_at: String,
    pub stopped_at: Option<String>,
    pub elapsed_seconds: f64,
    /// Negative once breached.
    pub remaining_seconds: f64,
    pub elapsed_wall_seconds: f64,
    /// While running: wall time until `due_at` (negative once passed).
    pub remaining_wall_seconds: Option<f64>,
    /// `24x7`, or the business hours.
    pub calendar: String,
}

impl SlaView {
    pub fn new(incident: &Incident, policies: &SlaPolicies, now: DateTime<Utc>) -> Self {
        let clock = |name: SlaName| {
            let clock = incident.sla.get(name)?;
            let calendar = policies.calendar(name, incident.kind, clock.priority);
            Some(ClockView::new(clock, calendar, now))
        };
        SlaView {
            first_response: clock(SlaName::FirstResponse),
            resolution: clock(SlaName::Resolution),
            breach_notification: clock(SlaName::BreachNotification),
        }
    }
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let millis = delta.num_milliseconds() as f64;
    millis / 1000.0
}

impl ClockView {
    fn new(
        clock: &SlaClock,
        calendar: &crate::domain::calendar::Calendar,
        now: DateTime<Utc>,
    ) -> Self {
        let elapsed = clock.elapsed_at(calendar, now);
        let due = clock.due_at(calendar);
        ClockView {
            target_seconds: seconds(clock.target),
            due_at: due.map(timestamp),
            state: clock.state().as_str(),
            at_risk: clock.warned && clock.phase() != Phase::Stopped && !clock.breached,
            started_at: timestamp(clock.started_at),
            stopped_at: clock.stopped_at.map(timestamp),
            elapsed_seconds: seconds(elapsed),
            remaining_seconds: seconds(clock.target - elapsed),
            elapsed_wall_seconds: seconds(clock.wall_elapsed_at(now)),
            remaining_wall_seconds: due.map(|due| seconds(due - now)),
            calendar: calendar.describe(),
        }
    }
}

/// A scheduled call in the incident's JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Call)]
pub struct CallView<'a> {
    pub at: String,
    pub url: &'a str,
    pub participants: &'a [String],
    pub note: Option<&'a str>,
    pub scheduled_by: &'a str,
    pub scheduled_at: String,
}

impl<'a> CallView<'a> {
    fn new(call: &'a Call) -> Self {
        CallView {
            at: timestamp(call.at),
            url: &call.url,
            participants: &call.participants,
            note: call.note.as_deref(),
            scheduled_by: &call.scheduled_by,
            scheduled_at: timestamp(call.scheduled_at),
        }
    }
}

/// A similar past incident and what resolved it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SimilarIncident)]
pub struct SimilarView<'a> {
    pub id: String,
    pub title: &'a str,
    pub resolution: Option<&'a str>,
}

impl<'a> SimilarView<'a> {
    pub fn new(incident: &'a Incident) -> Self {
        SimilarView {
            id: incident.id.to_string(),
            title: &incident.title,
            resolution: incident.resolution.as_deref(),
        }
    }
}

/// Where the incident came from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Source)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceView<'a> {
    Rule {
        rule: &'a str,
        probe: &'a str,
    },
    Ticket {},
    /// `source`: `alertmanager`, `api_v2` or `events`.
    Alert {
        #[schema(value_type = crate::domain::alert::AlertSource)]
        source: &'static str,
    },
}

/// What was seen: a probe's result, a ticket's text or an alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Evidence)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvidenceView<'a> {
    ProbeResult {
        probe: &'a str,
        rule: &'a str,
        condition: &'a str,
        at: String,
        connected: bool,
        status: Option<u16>,
        response_time_seconds: f64,
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        subject: &'a BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body_excerpt: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        certificate_expiry: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dns_rcode: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
    },
    /// What the reporter of a ticket wrote.
    Ticket { text: &'a str },
    /// An alert: labels, annotations (values over 1024 bytes cut, `truncated: true`),
    /// `starts_at`/`ends_at`, and the links `generator_url` and `runbook_url`.
    Alert(&'a crate::domain::incident::model::AlertEvidence),
}

/// One line of the incident's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TimelineEntry)]
pub struct TimelineView<'a> {
    pub at: String,
    pub actor: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
    pub public: bool,
}

/// RFC 3339, UTC, whole seconds or milliseconds as needed (`2026-01-01T10:00:00Z`).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl<'a> IncidentView<'a> {
    /// With the similar past incidents, as `GET /api/v1/incidents/{id}` shows them.
    pub fn with_similar(mut self, similar: &'a [Incident]) -> Self {
        self.similar = Some(similar.iter().map(SimilarView::new).collect());
        self
    }

    pub fn new(
        incident: &'a Incident,
        timeline: Option<&'a [TimelineEntry]>,
        policies: &SlaPolicies,
        now: DateTime<Utc>,
    ) -> Self {
        IncidentView {
            id: incident.id.to_string(),
            kind: incident.kind.as_str(),
            title: &incident.title,
            description: &incident.description,
            state: incident.state.as_str(),
            tier: incident.tier.as_str(),
            priority: incident.priority.as_str(),
            impact: incident.impact.as_str(),
            urgency: incident.urgency.as_str(),
            category: &incident.category,
            service: incident.service.as_deref(),
            public: incident.published,
            labels: &incident.labels,
            source: match &incident.source {
                Source::Rule { rule, probe } => SourceView::Rule { rule, probe },
                Source::Ticket => SourceView::Ticket {},
                Source::Alert { source } => SourceView::Alert {
                    source: source.as_str(),
                },
            },
            fingerprint: &incident.fingerprint,
            reporter: incident.reporter.as_ref(),
            evidence: incident.evidence.iter().map(EvidenceView::new).collect(),
            resolution: incident.resolution.as_deref(),
            verification: incident.verification.map(|v| v.as_str()),
            opened_at: timestamp(incident.opened_at),
            acknowledged_at: incident.acknowledged_at.map(timestamp),
            resolved_at: incident.resolved_at.map(timestamp),
            closed_at: incident.closed_at.map(timestamp),
            breach_notification_due_at: incident
                .sla
                .breach_notification
                .as_ref()
                .map(|clock| timestamp(clock.started_at + clock.target)),
            sla: SlaView::new(incident, policies, now),
            calls: incident.calls.iter().map(CallView::new).collect(),
            timeline: timeline.map(|entries| entries.iter().map(TimelineView::new).collect()),
            similar: None,
        }
    }
}

/// What a reader without clearance sees of a restricted incident: that it exists, and
/// nothing that could tell what it is about.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RestrictedIncident)]
pub struct RestrictedView {
    pub id: String,
    /// Always true: tells the reader why the rest is missing.
    pub restricted: bool,
    #[schema(value_type = crate::domain::incident::State)]
    pub state: &'static str,
    pub opened_at: String,
}

impl RestrictedView {
    pub fn new(incident: &Incident) -> Self {
        RestrictedView {
            id: incident.id.to_string(),
            restricted: true,
            state: incident.state.as_str(),
            opened_at: timestamp(incident.opened_at),
        }
    }
}

/// What a reader may see of an incident ([`Restrictions::shown`]).
#[derive(Debug)]
pub enum Shown<'a> {
    /// Everything.
    Full(&'a Incident),
    /// A restricted incident, to a reader without clearance: that it exists, no more.
    Restricted(RestrictedView),
}

/// Whether a reader may see the details of restricted incidents: admin tokens, tokens and
/// webhook consumers with `security: true` (and the open mode, where everyone is admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clearance {
    Security,
    None,
}

/// The categories whose incidents are restricted (`categories[].restricted`), and the SLA
/// policies the views report clocks against.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    categories: BTreeSet<String>,
    sla: std::sync::Arc<SlaPolicies>,
}

impl Restrictions {
    pub fn from_workflow(workflow: &crate::domain::policy::WorkflowConfig) -> Self {
        Restrictions {
            categories: workflow
                .categories
                .iter()
                .filter(|c| c.restricted)
                .map(|c| c.name.clone())
                .collect(),
            sla: std::sync::Arc::new(workflow.sla.clone()),
        }
    }

    pub fn sla(&self) -> &SlaPolicies {
        &self.sla
    }

    pub fn is_restricted(&self, incident: &Incident) -> bool {
        self.categories.contains(&incident.category)
    }

    /// How much of the incident `clearance` may see: the one decision every surface
    /// (the JSON views, webhook bodies, the console's pages) goes through.
    pub fn shown<'a>(&self, incident: &'a Incident, clearance: Clearance) -> Shown<'a> {
        if clearance == Clearance::None && self.is_restricted(incident) {
            Shown::Restricted(RestrictedView::new(incident))
        } else {
            Shown::Full(incident)
        }
    }

    /// The incident as `clearance` may see it at `now`: in full, or as a [`RestrictedView`].
    pub fn view(
        &self,
        incident: &Incident,
        timeline: Option<&[TimelineEntry]>,
        clearance: Clearance,
        now: DateTime<Utc>,
    ) -> serde_json::Value {
        let json = match self.shown(incident, clearance) {
            Shown::Restricted(restricted) => serde_json::to_value(restricted),
            Shown::Full(incident) => {
                serde_json::to_value(IncidentView::new(incident, timeline, &self.sla, now))
            }
        };
        json.expect("views serialize to JSON")
    }
}

/// What a ticket's reporter sees through their private link (`/r/{token}`): never
/// internal notes, evidence, labels, reporter contact or the timeline's other entries; of a
/// restricted incident only what [`RestrictedView`] shows, and when and where its calls are.
#[derive(Debug, Clone, Serialize)]
pub struct ReporterView {
    pub id: String,
    pub restricted: bool,
    /// `None` when restricted (likewise every field below that is optional).
    pub title: Option<String>,
    pub state: &'static str,
    pub priority: Option<&'static str>,
    pub service: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub first_response: Option<Expected>,
    pub resolution: Option<Expected>,
    /// Public notes and the reporter's own comments, oldest first.
    pub updates: Vec<ReporterUpdate>,
    pub calls: Vec<ReporterCall>,
    /// The reporter may still comment (the ticket is not closed).
    pub open_for_comments: bool,
}

/// When the service desk should answer (a clock that runs) or answered.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    /// `running`, `paused`, `met` or `breached`.
    pub state: &'static str,
    /// While running: when the target is reached.
    pub due_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One entry of the reporter's page.
#[derive(Debug, Clone, Serialize)]
pub struct ReporterUpdate {
    pub at: DateTime<Utc>,
    /// The reporter wrote it (else: a public note of the service desk).
    pub from_reporter: bool,
    pub text: String,
}

/// A scheduled call as the reporter sees it (page and mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReporterCall {
    pub at: DateTime<Utc>,
    pub url: String,
    /// Empty when restricted.
    pub participants: Vec<String>,
    /// `None` when restricted.
    pub note: Option<String>,
}

/// At most this many updates on the reporter's page: the latest.
pub const REPORTER_UPDATES: usize = 200;

impl Restrictions {
    /// A scheduled call as the incident's reporter may see it: when and where always
    /// (the service desk arranged it with them), who and why only when not restricted.
    pub fn reporter_call(&self, incident: &Incident, call: &Call) -> ReporterCall {
        let restricted = self.is_restricted(incident);
        ReporterCall {
            at: call.at,
            url: call.url.clone(),
            participants: if restricted {
                Vec::new()
            } else {
                call.participants.clone()
            },
            note: call.note.clone().filter(|_| !restricted),
        }
    }

    /// The reporter's page of `incident`, from its timeline: a reporter never has
    /// clearance, so a restricted incident shows as [`RestrictedView`] does, plus its calls.
    pub fn reporter_view(&self, incident: &Incident, timeline: &[TimelineEntry]) -> ReporterView {
        let restricted = self.is_restricted(incident);
        let calls = incident
            .calls
            .iter()
            .map(|call| self.reporter_call(incident, call))
            .collect();
        let mut view = ReporterView {
            id: incident.id.to_string(),
            restricted,
            title: None,
            state: incident.state.as_str(),
            priority: None,
            service: None,
            opened_at: incident.opened_at,
            first_response: None,
            resolution: None,
            updates: Vec::new(),
            calls,
            open_for_comments: incident.state != crate::domain::incident::State::Closed,
        };
        if restricted {
            return view;
        }
        let expected = |name: SlaName| {
            let clock = incident.sla.get(name)?;
            let calendar = self.sla.calendar(name, incident.kind, clock.priority);
            Some(Expected {
                state: clock.state().as_str(),
                due_at: clock.due_at(calendar),
                stopped_at: clock.stopped_at,
            })
        };
        view.title = Some(incident.title.clone());
        view.priority = Some(incident.priority.as_str());
        view.service = incident.service.clone();
        view.first_response = expected(SlaName::FirstResponse);
        view.resolution = expected(SlaName::Resolution);
        let shown: Vec<ReporterUpdate> = timeline
            .iter()
            .filter_map(|entry| {
                let from_reporter = entry.kind == REPORTER_COMMENT;
                (from_reporter || (entry.public && entry.kind == "note_added")).then(|| {
                    ReporterUpdate {
                        at: entry.at,
                        from_reporter,
                        text: entry.message.clone(),
                    }
                })
            })
            .collect();
        let skip = shown.len().saturating_sub(REPORTER_UPDATES);
        view.updates = shown.into_iter().skip(skip).collect();
        view
    }
}

impl<'a> EvidenceView<'a> {
    fn new(evidence: &'a Evidence) -> Self {
        match evidence {
            Evidence::ProbeResult {
                probe,
                rule,
                condition,
                subject,
                observation,
            } => EvidenceView::ProbeResult {
                probe,
                rule,
                condition,
                at: timestamp(observation.at),
                connected: observation.connected,
                status: observation.status,
                response_time_seconds: observation.response_time.as_secs_f64(),
                error: observation.error.as_deref(),
                subject,
                body_excerpt: observation.body.as_deref(),
                certificate_expiry: observation.certificate_expiry.map(timestamp),
                dns_rcode: observation.dns_rcode.as_deref(),
                value: observation.value,
            },
            Evidence::Ticket { text } => EvidenceView::Ticket { text },
            Evidence::Alert(alert) => EvidenceView::Alert(alert),
        }
    }
}

impl<'a> TimelineView<'a> {
    fn new(entry: &'a TimelineEntry) -> Self {
        TimelineView {
            at: timestamp(entry.at),
            actor: &entry.actor,
            kind: &entry.kind,
            message: &entry.message,
            public: entry.public,
        }
    }
}
