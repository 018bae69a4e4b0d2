//! What the console's templates show, built from incidents a reader may see in full
//! ([`Shown::Full`]) or only as restricted ([`Shown::Restricted`]): the one redaction of
//! `view.rs` decides which, here as everywhere. SLA clocks come from `view.rs`'s
//! [`SlaView`] too, so the console and the API report the same times.

use chrono::{DateTime, Utc};

use super::form::Form;
use crate::api::{Caller, Need};
use crate::domain::incident::{Evidence, Incident, State, TimelineEntry};
use crate::domain::sla::SlaPolicies;
use crate::store::SessionKey;
use crate::view::{ClockView, RestrictedView, Shown, SlaView, timestamp};

/// `1d 4h`, `2h 05m`, `4m 09s`: a duration for people (negative: its absolute value).
pub fn duration(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// A time as the console shows it: UTC, to the minute, with its RFC 3339 form.
pub struct Stamp {
    pub iso: String,
    pub text: String,
}

impl Stamp {
    pub fn of(at: DateTime<Utc>) -> Stamp {
        Stamp {
            iso: timestamp(at),
            text: at.format("%a %Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// One SLA clock, ready to show (and, while it runs, to count down in the browser).
pub struct Clock {
    /// `First response`, `Resolution`, `Breach notification`.
    pub label: &'static str,
    /// `ok`, `warn`, `breach`, `paused`, `met`: the colour, always with words beside it.
    pub class: &'static str,
    pub text: String,
    /// While it runs: the wall seconds left (negative: overdue), for the countdown.
    pub seconds: Option<i64>,
}

impl Clock {
    fn of(label: &'static str, clock: &ClockView) -> Clock {
        #[allow(clippy::cast_possible_truncation)]
        let seconds = clock.remaining_wall_seconds.map(|s| s.floor() as i64);
        #[allow(clippy::cast_possible_truncation)]
        let remaining = clock.remaining_seconds.floor() as i64;
        let (class, text) = match clock.state {
            "met" => ("met", "met".to_owned()),
            "paused" => ("paused", format!("paused · {} left", duration(remaining))),
            state => match seconds {
                Some(left) if left >= 0 && state != "breached" => (
                    if clock.at_risk { "warn" } else { "ok" },
                    format!("{} left", duration(left)),
                ),
                Some(left) => ("breach", format!("overdue {}", duration(left))),
                None if state == "breached" => ("breach", "breached".to_owned()),
                None => ("ok", state.to_owned()),
            },
        };
        Clock {
            label,
            class,
            text,
            seconds: (clock.state == "running" || clock.state == "breached")
                .then_some(seconds)
                .flatten(),
        }
    }
}

/// The incident's clocks that started, as [`SlaView`] reports them at `now`.
pub fn clocks(incident: &Incident, policies: &SlaPolicies, now: DateTime<Utc>) -> Vec<Clock> {
    let view = SlaView::new(incident, policies, now);
    [
        ("First response", view.first_response.as_ref()),
        ("Resolution", view.resolution.as_ref()),
        ("Breach notification", view.breach_notification.as_ref()),
    ]
    .into_iter()
    .filter_map(|(label, clock)| clock.map(|clock| Clock::of(label, clock)))
    .collect()
}

/// A state for people.
pub fn state_label(state: State) -> &'static str {
    match state {
        State::Open => "Open",
        State::Acknowledged => "Acknowledged",
        State::OnHold => "On hold",
        State::Resolved => "Resolved",
        State::Closed => "Closed",
    }
}

/// One row of the queue: what everyone who may see the queue sees of it (id, state,
/// age: a [`RestrictedView`]'s fields), and the rest only when shown in full.
pub struct Row<'a> {
    pub id: String,
    pub state: &'static str,
    pub age: String,
    pub opened: Stamp,
    pub full: Option<Box<FullRow<'a>>>,
}

pub struct FullRow<'a> {
    pub incident: &'a Incident,
    pub clocks: Vec<Clock>,
}

impl<'a> Row<'a> {
    pub fn new(shown: Shown<'a>, policies: &SlaPolicies, now: DateTime<Utc>) -> Row<'a> {
        match shown {
            Shown::Full(incident) => Row {
                id: incident.id.to_string(),
                state: state_label(incident.state),
                age: duration((now - incident.opened_at).num_seconds()),
                opened: Stamp::of(incident.opened_at),
                full: Some(Box::new(FullRow {
                    incident,
                    clocks: clocks(incident, policies, now),
                })),
            },
            Shown::Restricted(RestrictedView {
                id,
                state,
                opened_at,
                ..
            }) => {
                let opened_at = DateTime::parse_from_rfc3339(&opened_at)
                    .map_or(now, |at| at.with_timezone(&Utc));
                Row {
                    id,
                    state: State::ALL
                        .into_iter()
                        .find(|s| s.as_str() == state)
                        .map_or("", state_label),
                    age: duration((now - opened_at).num_seconds()),
                    opened: Stamp::of(opened_at),
                    full: None,
                }
            }
        }
    }
}

/// One piece of evidence, for people: what it is, its facts, an excerpt, its links.
pub struct EvidenceItem<'a> {
    pub title: String,
    pub facts: Vec<(&'static str, String)>,
    pub pairs: Vec<(&'a str, &'a str)>,
    pub pairs_title: &'static str,
    pub more_pairs: Vec<(&'a str, &'a str)>,
    pub body: Option<&'a str>,
    /// Only http(s) URLs become links.
    pub links: Vec<(&'static str, &'a str)>,
}

fn link(url: Option<&str>) -> Option<&str> {
    url.filter(|u| {
        let lower = u.to_ascii_lowercase();
        lower.starts_with("https://") || lower.starts_with("http://")
    })
}

impl<'a> EvidenceItem<'a> {
    pub fn of(evidence: &'a Evidence) -> EvidenceItem<'a> {
        match evidence {
            Evidence::ProbeResult {
                probe,
                rule,
                condition,
                subject,
                observation,
            } => EvidenceItem {
                title: format!("Probe `{probe}`, rule `{rule}`"),
                facts: vec![
                    ("When", Stamp::of(observation.at).text),
                    ("Condition", condition.clone()),
                    ("Result", crate::domain::incident::describe(observation)),
                ],
                pairs: subject
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                pairs_title: "Subject",
                more_pairs: Vec::new(),
                body: observation.body.as_deref(),
                links: Vec::new(),
            },
            Evidence::Ticket { text } => EvidenceItem {
                title: "Ticket".to_owned(),
                facts: Vec::new(),
                pairs: Vec::new(),
                pairs_title: "",
                more_pairs: Vec::new(),
                body: Some(text),
                links: Vec::new(),
            },
            Evidence::Alert(alert) => {
                let mut facts = vec![("Status", alert.status.clone())];
                if let Some(at) = alert.starts_at {
                    facts.push(("Since", Stamp::of(at).text));
                }
                if alert.truncated {
                    facts.push(("Note", "some long values are cut".to_owned()));
                }
                let mut links = Vec::new();
                if let Some(url) = link(alert.runbook_url.as_deref()) {
                    links.push(("Runbook", url));
                }
                if let Some(url) = link(alert.generator_url.as_deref()) {
                    links.push(("Generator (the alert's expression)", url));
                }
                EvidenceItem {
                    title: format!("Alert ({})", alert.source.as_str()),
                    facts,
                    pairs: alert
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    pairs_title: "Labels",
                    more_pairs: alert
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    body: None,
                    links,
                }
            }
        }
    }
}

/// One timeline entry, for people.
pub struct Entry<'a> {
    pub at: Stamp,
    pub actor: &'a str,
    pub kind: &'a str,
    pub message: &'a str,
    pub public: bool,
}

impl<'a> Entry<'a> {
    pub fn of(entry: &'a TimelineEntry) -> Entry<'a> {
        Entry {
            at: Stamp::of(entry.at),
            actor: &entry.actor,
            kind: &entry.kind,
            message: &entry.message,
            public: entry.public,
        }
    }
}

/// The person behind a request, as far as the console is concerned.
pub(super) struct Viewer {
    /// Their role and clearance, from the token in force under the session's name.
    pub caller: Caller,
    /// What every form of theirs must carry.
    pub csrf: String,
    /// Their session (`None` in the open mode).
    pub key: Option<SessionKey>,
}

impl Viewer {
    /// Whether they may run the workflow (a viewer may not: no forms).
    pub fn may_respond(&self) -> bool {
        self.caller.may(Need::Respond)
    }
}

/// A form the server refused: which, why, and what was typed.
pub(super) struct Refused {
    pub verb: String,
    pub message: String,
    pub form: Form,
}

/// Which forms the page shows: the reader may respond, and the state allows the verb.
pub(super) struct Actions {
    pub acknowledge: bool,
    pub escalate: bool,
    /// The tiers one may escalate to (above the current one; any for an admin).
    pub tiers: Vec<&'static str>,
    pub note: bool,
    pub hold: bool,
    pub resume: bool,
    pub resolve: bool,
    pub close: bool,
    pub reopen: bool,
    pub edit: bool,
    /// Schedule a call with the reporter: from L2 or L3 (the service desk's L2 duty).
    pub call: bool,
}

impl Actions {
    pub fn of(incident: &Incident, caller: &Caller, may: bool) -> Actions {
        use State::*;
        let state = incident.state;
        let active = matches!(state, Open | Acknowledged | OnHold);
        let tiers = crate::domain::incident::Tier::ALL
            .into_iter()
            .filter(|t| caller.is_admin() || *t > incident.tier)
            .map(|t| t.as_str())
            .collect::<Vec<_>>();
        Actions {
            acknowledge: may && state == Open,
            escalate: may && active && !tiers.is_empty(),
            tiers,
            note: may,
            hold: may && state == Acknowledged,
            resume: may && state == OnHold,
            resolve: may && active,
            close: may && state == Resolved,
            reopen: may && matches!(state, Resolved | Closed),
            edit: may && state != Closed,
            call: may && active && incident.tier != crate::domain::incident::Tier::L1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        for (seconds, text) in [
            (0, "0m 00s"),
            (59, "0m 59s"),
            (3_599, "59m 59s"),
            (3_600, "1h 00m"),
            (7_260, "2h 01m"),
            (90_000, "1d 1h"),
            (-125, "2m 05s"),
        ] {
            assert_eq!(duration(seconds), text, "{seconds}");
        }
    }
}
