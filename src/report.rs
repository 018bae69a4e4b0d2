//! `GET /api/v1/incidents/{id}/report`: the post-incident review draft, pure. Built from
//! the incident, its timeline, its SLA clocks (as [`SlaView`] reports them) and the similar
//! past incidents: what happened when (detection → acknowledgement → escalations →
//! resolution → closure, each with its time since opening), the turnaround times against
//! their targets, the evidence, the notes (internal and public) and the reporter's
//! comments, the calls, similar incidents and what resolved them, and the sections a person
//! writes (root cause, what went well, action items). The same content as JSON
//! ([`Review`]) and as Markdown ([`markdown`], for pasting into a document).
//!
//! A restricted incident reaches a reader without clearance only through
//! `Restrictions::view` (the route decides); nothing here redacts.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::incident::{
    Evidence, Incident, REPORTER_COMMENT, SYSTEM, TimelineEntry, describe,
};
use crate::view::{ClockView, SlaView, timestamp};

/// Timeline entries the review lists at most (the first ones: how it started matters most).
pub const TIMELINE_MAX: usize = 500;
/// Notes the review lists at most (the first ones).
pub const NOTES_MAX: usize = 500;
/// Evidence items at most, and how much of each text.
const EVIDENCE_MAX: usize = 50;
const EXCERPT: usize = 300;

/// The timeline entries that make the story: everything but symptom and bookkeeping lines.
const KEY_MOMENTS: [&str; 13] = [
    "opened",
    "acknowledged",
    "escalated",
    "priority_changed",
    "on_hold",
    "resumed",
    "sla_warning",
    "sla_breached",
    "call_scheduled",
    "resolved",
    "verified",
    "reopened",
    "closed",
];

/// The review draft.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Review {
    pub id: String,
    pub title: String,
    pub generated_at: String,
    pub summary: Summary,
    /// The key moments, oldest first.
    pub timeline: Vec<Moment>,
    pub durations: Durations,
    pub tat: Vec<Tat>,
    pub evidence: Vec<String>,
    /// Notes and the reporter's comments, oldest first.
    pub notes: Vec<Note>,
    pub calls: Vec<CallLine>,
    pub similar: Vec<Similar>,
    /// For a person to write.
    pub root_cause: Option<String>,
    pub action_items: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewSummary)]
pub struct Summary {
    pub kind: &'static str,
    pub category: String,
    pub priority: &'static str,
    pub impact: &'static str,
    pub urgency: &'static str,
    pub service: Option<String>,
    /// `rule`, `alert` or `ticket`, and what: ``rule `checkout-down` (probe checkout-api)``.
    pub source: String,
    /// The reporter's name (tickets), without their contact.
    pub reporter: Option<String>,
    pub state: &'static str,
    pub tier: &'static str,
    pub description: String,
    pub resolution: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewMoment)]
pub struct Moment {
    pub at: String,
    /// Seconds since the incident opened (negative for a symptom seen before).
    pub since_opening_seconds: i64,
    pub actor: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// Wall times from opening, in seconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewDurations)]
pub struct Durations {
    /// From the first symptomatic result to opening (rule incidents).
    pub detection_seconds: Option<i64>,
    pub acknowledgement_seconds: Option<i64>,
    pub resolution_seconds: Option<i64>,
    pub closure_seconds: Option<i64>,
}

/// One SLA clock against its target.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewTat)]
pub struct Tat {
    /// `first_response`, `resolution`, `breach_notification`.
    pub sla: &'static str,
    pub target_seconds: f64,
    /// In the clock's calendar (business hours, or wall time for 24x7).
    pub elapsed_seconds: f64,
    /// `running`, `paused`, `met` or `breached`.
    pub state: &'static str,
    pub calendar: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewNote)]
pub struct Note {
    pub at: String,
    pub actor: String,
    /// `note_added` or `reporter_comment`.
    #[serde(rename = "type")]
    pub kind: String,
    pub public: bool,
    pub text: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewCall)]
pub struct CallLine {
    pub at: String,
    pub url: String,
    pub participants: Vec<String>,
    pub note: Option<String>,
    pub scheduled_by: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReviewSimilar)]
pub struct Similar {
    pub id: String,
    pub title: String,
    pub resolution: Option<String>,
}

fn since(at: DateTime<Utc>, opened: DateTime<Utc>) -> i64 {
    (at - opened).num_seconds()
}

/// At most `max` characters of `text`, then `…`.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn evidence_line(evidence: &Evidence) -> String {
    match evidence {
        Evidence::ProbeResult {
            probe,
            rule,
            condition,
            observation,
            ..
        } => format!(
            "{}: probe `{probe}`, rule `{rule}` (`{condition}`): {}",
            timestamp(observation.at),
            describe(observation)
        ),
        Evidence::Ticket { text } => format!("ticket: {}", excerpt(text, EXCERPT)),
        Evidence::Alert(alert) => {
            let labels: Vec<String> = alert
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let summary = alert
                .annotations
                .get("summary")
                .map(|s| format!(": {}", excerpt(s, EXCERPT)))
                .unwrap_or_default();
            format!(
                "alert {} ({}) {{{}}}{summary}",
                alert.fingerprint,
                alert.status,
                labels.join(", ")
            )
        }
    }
}

fn tat(name: &'static str, clock: Option<&ClockView>) -> Option<Tat> {
    let clock = clock?;
    Some(Tat {
        sla: name,
        target_seconds: clock.target_seconds,
        elapsed_seconds: clock.elapsed_seconds,
        state: clock.state,
        calendar: clock.calendar.clone(),
    })
}

/// The draft of `incident` at `now`.
pub fn review(
    incident: &Incident,
    timeline: &[TimelineEntry],
    sla: &SlaView,
    similar: &[Incident],
    now: DateTime<Utc>,
) -> Review {
    let opened = incident.opened_at;
    let mut moments = Vec::new();
    if let Some(detected) = incident.detected_at {
        moments.push(Moment {
            at: timestamp(detected),
            since_opening_seconds: since(detected, opened),
            actor: SYSTEM.to_owned(),
            kind: "detected".to_owned(),
            message: "first symptomatic result".to_owned(),
        });
    }
    moments.extend(
        timeline
            .iter()
            .filter(|e| KEY_MOMENTS.contains(&e.kind.as_str()))
            .take(TIMELINE_MAX)
            .map(|e| Moment {
                at: timestamp(e.at),
                since_opening_seconds: since(e.at, opened),
                actor: e.actor.clone(),
                kind: e.kind.clone(),
                message: e.message.clone(),
            }),
    );
    let notes = timeline
        .iter()
        .filter(|e| e.kind == "note_added" || e.kind == REPORTER_COMMENT)
        .take(NOTES_MAX)
        .map(|e| Note {
            at: timestamp(e.at),
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            public: e.public,
            text: e.message.clone(),
        })
        .collect();
    let source = match &incident.source {
        crate::domain::incident::Source::Rule { rule, probe } => {
            format!("rule `{rule}` (probe `{probe}`)")
        }
        crate::domain::incident::Source::Alert { source } => format!("alert ({})", source.as_str()),
        crate::domain::incident::Source::Ticket => "ticket".to_owned(),
    };
    Review {
        id: incident.id.to_string(),
        title: incident.title.clone(),
        generated_at: timestamp(now),
        summary: Summary {
            kind: incident.kind.as_str(),
            category: incident.category.clone(),
            priority: incident.priority.as_str(),
            impact: incident.impact.as_str(),
            urgency: incident.urgency.as_str(),
            service: incident.service.clone(),
            source,
            reporter: incident.reporter.as_ref().map(|r| r.name.clone()),
            state: incident.state.as_str(),
            tier: incident.tier.as_str(),
            description: incident.description.clone(),
            resolution: incident.resolution.clone(),
        },
        timeline: moments,
        durations: Durations {
            detection_seconds: incident.detected_at.map(|d| since(opened, d)),
            acknowledgement_seconds: incident.acknowledged_at.map(|a| since(a, opened)),
            resolution_seconds: incident.resolved_at.map(|r| since(r, opened)),
            closure_seconds: incident.closed_at.map(|c| since(c, opened)),
        },
        tat: [
            tat("first_response", sla.first_response.as_ref()),
            tat("resolution", sla.resolution.as_ref()),
            tat("breach_notification", sla.breach_notification.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect(),
        evidence: incident
            .evidence
            .iter()
            .take(EVIDENCE_MAX)
            .map(evidence_line)
            .collect(),
        notes,
        calls: incident
            .calls
            .iter()
            .map(|c| CallLine {
                at: timestamp(c.at),
                url: c.url.clone(),
                participants: c.participants.clone(),
                note: c.note.clone(),
                scheduled_by: c.scheduled_by.clone(),
            })
            .collect(),
        similar: similar
            .iter()
            .map(|s| Similar {
                id: s.id.to_string(),
                title: s.title.clone(),
                resolution: s.resolution.clone(),
            })
            .collect(),
        root_cause: None,
        action_items: Vec::new(),
    }
}

/// `1h 5m`, `2d 3h`, `45s`, `0s`; a minus sign before negative spans.
pub fn human(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", human(seconds.saturating_neg()));
    }
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Text fit for one cell of a Markdown table: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Text fit for one list item: later lines indented under it.
fn item(text: &str) -> String {
    text.replace('\n', "\n  ")
}

fn words(name: &str) -> String {
    let mut words = name.replace('_', " ");
    if let Some(first) = words.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    words
}

#[allow(clippy::cast_possible_truncation)]
fn whole(seconds: f64) -> i64 {
    seconds.round() as i64
}

const TO_WRITE: &str = "_To be written._";

/// The draft as Markdown: the same sections as the JSON.
pub fn markdown(review: &Review) -> String {
    let mut out = String::new();
    let s = &review.summary;
    let _ = writeln!(
        out,
        "# Post-incident review: {} — {}\n",
        review.id,
        cell(&review.title)
    );
    let _ = writeln!(
        out,
        "*Draft generated by incidentd at {} from the incident's timeline. Complete the sections marked {TO_WRITE}*\n",
        review.generated_at
    );
    out.push_str("## Summary\n\n| | |\n| --- | --- |\n");
    let mut row = |name: &str, value: &str| {
        let _ = writeln!(out, "| {name} | {} |", cell(value));
    };
    row("Incident", &review.id);
    row("Title", &review.title);
    row("Kind", s.kind);
    row("Category", &s.category);
    row(
        "Priority",
        &format!(
            "{} (impact {}, urgency {})",
            s.priority, s.impact, s.urgency
        ),
    );
    row("Service", s.service.as_deref().unwrap_or("—"));
    let source = match &s.reporter {
        Some(name) => format!("{}, reported by {name}", s.source),
        None => s.source.clone(),
    };
    row("Source", &source);
    row("State", &format!("{}, tier {}", s.state, s.tier));
    if let Some(resolution) = &s.resolution {
        row("Resolution", resolution);
    }
    if !s.description.is_empty() {
        let _ = writeln!(out, "\n{}", s.description);
    }

    out.push_str("\n## Timeline\n\n");
    if review.timeline.is_empty() {
        out.push_str("Nothing recorded.\n");
    } else {
        out.push_str("| When (UTC) | Since opening | Who | What |\n| --- | --- | --- | --- |\n");
        for m in &review.timeline {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}: {} |",
                m.at,
                human(m.since_opening_seconds),
                cell(&m.actor),
                words(&m.kind),
                cell(&m.message)
            );
        }
    }
    let d = &review.durations;
    let spans: Vec<String> = [
        ("detection", d.detection_seconds),
        ("acknowledgement", d.acknowledgement_seconds),
        ("resolution", d.resolution_seconds),
        ("closure", d.closure_seconds),
    ]
    .into_iter()
    .filter_map(|(name, secs)| Some(format!("{name} {}", human(secs?))))
    .collect();
    if !spans.is_empty() {
        let _ = writeln!(out, "\nFrom opening: {}.", spans.join(", "));
    }

    out.push_str("\n## Turnaround times against targets\n\n");
    if review.tat.is_empty() {
        out.push_str("No SLA clocks.\n");
    } else {
        out.push_str(
            "| Clock | Target | Took | Result | Calendar |\n| --- | --- | --- | --- | --- |\n",
        );
        for t in &review.tat {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                words(t.sla),
                human(whole(t.target_seconds)),
                human(whole(t.elapsed_seconds)),
                t.state,
                cell(&t.calendar)
            );
        }
    }

    let list = |out: &mut String, title: &str, lines: Vec<String>, empty: &str| {
        let _ = writeln!(out, "\n## {title}\n");
        if lines.is_empty() {
            let _ = writeln!(out, "{empty}");
        }
        for line in lines {
            let _ = writeln!(out, "- {}", item(&line));
        }
    };
    list(
        &mut out,
        "Evidence",
        review.evidence.clone(),
        "None recorded.",
    );
    list(
        &mut out,
        "Notes",
        review
            .notes
            .iter()
            .map(|n| {
                let kind = if n.kind == REPORTER_COMMENT {
                    "reporter"
                } else if n.public {
                    "public"
                } else {
                    "internal"
                };
                format!("{} {} ({kind}): {}", n.at, n.actor, n.text)
            })
            .collect(),
        "None.",
    );
    list(
        &mut out,
        "Calls",
        review
            .calls
            .iter()
            .map(|c| {
                let mut line = format!("{} on {}", c.at, c.url);
                if !c.participants.is_empty() {
                    let _ = write!(line, " with {}", c.participants.join(", "));
                }
                let _ = write!(line, " (scheduled by {})", c.scheduled_by);
                if let Some(note) = &c.note {
                    let _ = write!(line, ": {note}");
                }
                line
            })
            .collect(),
        "None.",
    );
    list(
        &mut out,
        "Similar incidents",
        review
            .similar
            .iter()
            .map(|s| match &s.resolution {
                Some(resolution) => format!("{} {} — resolved: {resolution}", s.id, s.title),
                None => format!("{} {}", s.id, s.title),
            })
            .collect(),
        "None found.",
    );
    let _ = writeln!(out, "\n## Root cause\n\n{TO_WRITE}");
    let _ = writeln!(out, "\n## What went well, what did not\n\n{TO_WRITE}");
    let _ = writeln!(out, "\n## Action items\n\n- [ ] {TO_WRITE}");
    out
}

/// The Markdown of a restricted incident for a reader without clearance: what its redacted
/// JSON (`Restrictions::view`) says, and nothing more.
pub fn restricted_markdown(redacted: &serde_json::Value) -> String {
    let text = |key: &str| redacted[key].as_str().unwrap_or("?").to_owned();
    format!(
        "# Post-incident review: {}\n\nThis incident is restricted: its review is for admin and security tokens only.\n\n| | |\n| --- | --- |\n| State | {} |\n| Opened | {} |\n",
        text("id"),
        text("state"),
        text("opened_at")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::incident::{
        Call, IncidentId, Kind, Reporter, State, Ticket, Tier, starting_tier,
    };
    use crate::domain::priority::{Level, Priority};
    use crate::domain::signal::Signal;
    use crate::domain::sla::SlaPolicies;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_442_000 + minutes * 60, 0).unwrap()
    }

    fn entry(minutes: i64, actor: &str, kind: &str, message: &str, public: bool) -> TimelineEntry {
        TimelineEntry {
            at: at(minutes),
            actor: actor.to_owned(),
            kind: kind.to_owned(),
            message: message.to_owned(),
            public,
        }
    }

    /// A ticket worked from opening to closure, with the clocks the default policies give.
    fn worked_ticket() -> (Incident, Vec<TimelineEntry>) {
        let ticket = Ticket {
            title: "VPN broken".to_owned(),
            description: "cannot connect since 9:00".to_owned(),
            reporter: Reporter {
                name: "Ana".to_owned(),
                contact: "ana@example.com".to_owned(),
            },
            kind: Kind::Incident,
            category: "availability".to_owned(),
            impact: Level::Medium,
            urgency: Level::Medium,
            service: Some("vpn".to_owned()),
            labels: BTreeMap::new(),
        };
        let priority = Priority::P3;
        let signal = Signal::from_ticket(
            IncidentId(7),
            ticket,
            priority,
            starting_tier(priority),
            "desk",
        );
        let (mut incident, _) = Incident::open(IncidentId(7), &signal, at(0));
        let policies = SlaPolicies::default();
        crate::domain::sla::start(&mut incident, &policies);
        let step = |incident: &mut Incident, minutes: i64| {
            crate::domain::sla::reconcile(incident, &policies, false, at(minutes));
        };
        incident.acknowledge("alice", at(20)).unwrap();
        step(&mut incident, 20);
        incident
            .escalate("alice", "needs the network team", None, false, at(30))
            .unwrap();
        let mut call = Call {
            at: at(60),
            url: "https://meet.example/inc-7".to_owned(),
            participants: vec!["Ana".to_owned(), "Budi".to_owned()],
            note: Some("bring the client log".to_owned()),
            scheduled_by: "alice".to_owned(),
            scheduled_at: at(35),
        };
        call.scheduled_at = at(35);
        incident.schedule_call(call, at(35)).unwrap();
        incident
            .resolve(
                "budi",
                Some("restarted the VPN concentrator".to_owned()),
                at(90),
            )
            .unwrap();
        step(&mut incident, 90);
        incident.close(SYSTEM, at(150)).unwrap();
        let timeline = vec![
            entry(
                0,
                "desk",
                "opened",
                "opened as incident P3 at L1 (availability) from a ticket by Ana <ana@example.com>",
                false,
            ),
            entry(
                20,
                "alice",
                "acknowledged",
                "state open → acknowledged",
                false,
            ),
            entry(
                25,
                "alice",
                "note_added",
                "looking at the | concentrator",
                false,
            ),
            entry(
                26,
                "reporter: Ana",
                REPORTER_COMMENT,
                "it fails on wifi too",
                false,
            ),
            entry(
                30,
                "alice",
                "escalated",
                "tier L1 → L2 (reason: needs the network team)",
                false,
            ),
            entry(
                35,
                "alice",
                "call_scheduled",
                "call at 2026-03-02T10:00:00Z on https://meet.example/inc-7 with Ana, Budi: bring the client log",
                false,
            ),
            entry(
                40,
                "alice",
                "note_added",
                "We are restarting the VPN.",
                true,
            ),
            entry(
                90,
                "budi",
                "resolved",
                "state acknowledged → resolved: restarted the VPN concentrator",
                false,
            ),
            entry(150, SYSTEM, "closed", "state resolved → closed", false),
        ];
        (incident, timeline)
    }

    #[test]
    fn the_markdown_of_a_worked_ticket() {
        let (incident, timeline) = worked_ticket();
        assert_eq!(incident.state, State::Closed);
        assert_eq!(incident.tier, Tier::L2);
        let similar = {
            let (mut past, _) = worked_ticket();
            past.id = IncidentId(3);
            past.title = "VPN slow".to_owned();
            past.resolution = Some("rebooted the firewall".to_owned());
            vec![past]
        };
        let sla = SlaView::new(&incident, &SlaPolicies::default(), at(200));
        let review = review(&incident, &timeline, &sla, &similar, at(200));
        let expected = "\
# Post-incident review: INC-7 — VPN broken

*Draft generated by incidentd at 2026-03-02T12:20:00Z from the incident's timeline. Complete the sections marked _To be written._*

## Summary

| | |
| --- | --- |
| Incident | INC-7 |
| Title | VPN broken |
| Kind | incident |
| Category | availability |
| Priority | P3 (impact medium, urgency medium) |
| Service | vpn |
| Source | ticket, reported by Ana |
| State | closed, tier L2 |
| Resolution | restarted the VPN concentrator |

cannot connect since 9:00

## Timeline

| When (UTC) | Since opening | Who | What |
| --- | --- | --- | --- |
| 2026-03-02T09:00:00Z | 0s | desk | Opened: opened as incident P3 at L1 (availability) from a ticket by Ana <ana@example.com> |
| 2026-03-02T09:20:00Z | 20m | alice | Acknowledged: state open → acknowledged |
| 2026-03-02T09:30:00Z | 30m | alice | Escalated: tier L1 → L2 (reason: needs the network team) |
| 2026-03-02T09:35:00Z | 35m | alice | Call scheduled: call at 2026-03-02T10:00:00Z on https://meet.example/inc-7 with Ana, Budi: bring the client log |
| 2026-03-02T10:30:00Z | 1h 30m | budi | Resolved: state acknowledged → resolved: restarted the VPN concentrator |
| 2026-03-02T11:30:00Z | 2h 30m | system | Closed: state resolved → closed |

From opening: acknowledgement 20m, resolution 1h 30m, closure 2h 30m.

## Turnaround times against targets

| Clock | Target | Took | Result | Calendar |
| --- | --- | --- | --- | --- |
| First response | 2h | 20m | met | 24x7 |
| Resolution | 1d | 1h 30m | met | 24x7 |

## Evidence

- ticket: VPN broken
  
  cannot connect since 9:00

## Notes

- 2026-03-02T09:25:00Z alice (internal): looking at the | concentrator
- 2026-03-02T09:26:00Z reporter: Ana (reporter): it fails on wifi too
- 2026-03-02T09:40:00Z alice (public): We are restarting the VPN.

## Calls

- 2026-03-02T10:00:00Z on https://meet.example/inc-7 with Ana, Budi (scheduled by alice): bring the client log

## Similar incidents

- INC-3 VPN slow — resolved: rebooted the firewall

## Root cause

_To be written._

## What went well, what did not

_To be written._

## Action items

- [ ] _To be written._
";
        let got = markdown(&review);
        assert_eq!(got, expected, "got:\n{got}");
        // The JSON holds the same sections.
        let json = serde_json::to_value(&review).unwrap();
        assert_eq!(json["durations"]["acknowledgement_seconds"], 1200);
        assert_eq!(json["tat"][0]["state"], "met");
        assert_eq!(json["notes"].as_array().unwrap().len(), 3);
        assert_eq!(json["summary"]["reporter"], "Ana");
        assert!(
            !json.to_string().contains("ana@example.com\""),
            "the reporter's contact is not a field of the review"
        );
    }

    #[test]
    fn human_spans() {
        for (seconds, text) in [
            (0, "0s"),
            (45, "45s"),
            (3900, "1h 5m"),
            (183_600, "2d 3h"),
            (-120, "-2m"),
        ] {
            assert_eq!(human(seconds), text);
        }
    }

    #[test]
    fn a_restricted_review_says_only_what_the_redaction_does() {
        let redacted = serde_json::json!({"id": "INC-9", "restricted": true, "state": "open", "opened_at": "2026-03-02T09:00:00Z"});
        assert_eq!(
            restricted_markdown(&redacted),
            "# Post-incident review: INC-9\n\nThis incident is restricted: its review is for admin and security tokens only.\n\n| | |\n| --- | --- |\n| State | open |\n| Opened | 2026-03-02T09:00:00Z |\n"
        );
    }
}
