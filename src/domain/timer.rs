//! Durable timers: what must happen to an incident at a given time if nothing else
//! happened first — escalate when not acknowledged or not resolved in time, close after
//! the quiet period, warn of and mark an SLA clock's breach. Timers are stored with the
//! change that arms them and deleted with the change they cause, so each fires exactly once, also across a restart. A timer that finds
//! its reason gone (the incident was acknowledged meanwhile) does nothing.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::incident::{Incident, IncidentId, Kind, State, Verification};
use super::sla::{SlaName, SlaPolicies};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// Escalate one tier if the incident is still not acknowledged.
    Unacknowledged,
    /// Escalate one tier if the incident is still not resolved.
    Unresolved,
    /// Close the incident if it is still resolved (and verified).
    Close,
    /// The SLA clock reaches `sla.warn_at` of its target.
    SlaWarning(SlaName),
    /// The SLA clock reaches its target.
    SlaBreach(SlaName),
    /// A firing alert of the incident reaches its `endsAt` without a refresh: it resolves.
    AlertExpiry,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Unacknowledged => "unacknowledged",
            TimerKind::Unresolved => "unresolved",
            TimerKind::Close => "close",
            // The breach-notification names predate the other clocks' timers: stored
            // timers keep them.
            TimerKind::SlaWarning(SlaName::BreachNotification) => "breach_warning",
            TimerKind::SlaBreach(SlaName::BreachNotification) => "breach_deadline",
            TimerKind::SlaWarning(SlaName::FirstResponse) => "first_response_warning",
            TimerKind::SlaBreach(SlaName::FirstResponse) => "first_response_breach",
            TimerKind::SlaWarning(SlaName::Resolution) => "resolution_warning",
            TimerKind::SlaBreach(SlaName::Resolution) => "resolution_breach",
            TimerKind::AlertExpiry => "alert_expiry",
        }
    }

    /// Every kind, for the store's key codec.
    pub const ALL: [TimerKind; 10] = [
        TimerKind::AlertExpiry,
        TimerKind::Unacknowledged,
        TimerKind::Unresolved,
        TimerKind::Close,
        TimerKind::SlaWarning(SlaName::FirstResponse),
        TimerKind::SlaBreach(SlaName::FirstResponse),
        TimerKind::SlaWarning(SlaName::Resolution),
        TimerKind::SlaBreach(SlaName::Resolution),
        TimerKind::SlaWarning(SlaName::BreachNotification),
        TimerKind::SlaBreach(SlaName::BreachNotification),
    ];

    pub fn parse(text: &str) -> Option<TimerKind> {
        TimerKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// The clock of an SLA timer.
    pub fn sla(self) -> Option<SlaName> {
        match self {
            TimerKind::SlaWarning(sla) | TimerKind::SlaBreach(sla) => Some(sla),
            _ => None,
        }
    }

    /// Exact timers are re-armed when their instant moves (SLA clocks, alert expiry); the
    /// others are kept once armed and check their reason when they fire.
    pub fn exact(self) -> bool {
        self.sla().is_some() || self == TimerKind::AlertExpiry
    }
}

/// What decides an incident's timers.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Escalate when not acknowledged this long (the incident's priority's policy).
    pub unacknowledged_after: Option<std::time::Duration>,
    /// Escalate when not resolved this long.
    pub unresolved_after: Option<std::time::Duration>,
    /// Close a resolved (and verified) incident after this long.
    pub quiet_period: std::time::Duration,
    pub sla: &'a SlaPolicies,
}

/// The timers the incident wants as it is now: escalation while it is active (an incident,
/// not a request, below the top tier), closure once it is resolved and verified, and each
/// running SLA clock's warning and breach at the instants its calendar says. Escalation and
/// closure are due counted from `now` (the caller keeps one already armed); SLA timers are
/// exact (the caller re-arms them when they move).
pub fn wanted(incident: &Incident, policy: Policy<'_>, now: DateTime<Utc>) -> Vec<Timer> {
    let mut wanted = Vec::new();
    let mut after = |kind, after: std::time::Duration| {
        if let Ok(after) = chrono::Duration::from_std(after)
            && let Some(due) = now.checked_add_signed(after)
        {
            wanted.push(Timer {
                due,
                incident: incident.id,
                kind,
            });
        }
    };
    if incident.kind == Kind::Incident && incident.tier.next().is_some() {
        if incident.state == State::Open
            && let Some(delay) = policy.unacknowledged_after
        {
            after(TimerKind::Unacknowledged, delay);
        }
        if incident.state.is_active()
            && let Some(delay) = policy.unresolved_after
        {
            after(TimerKind::Unresolved, delay);
        }
    }
    if incident.state == State::Resolved && incident.verification != Some(Verification::Pending) {
        after(TimerKind::Close, policy.quiet_period);
    }
    // The earliest firing alert's `endsAt` (a resolved incident waiting for verification
    // still has its alerts' expiries).
    if incident.state != State::Closed
        && let Some(&due) = incident.alert_expiry.values().min()
    {
        wanted.push(Timer {
            due,
            incident: incident.id,
            kind: TimerKind::AlertExpiry,
        });
    }
    for (name, clock) in incident.sla.iter() {
        let calendar = policy.sla.calendar(name, incident.kind, clock.priority);
        if !clock.warned
            && let Some(due) = clock.warn_due_at(calendar, policy.sla)
        {
            wanted.push(Timer {
                due,
                incident: incident.id,
                kind: TimerKind::SlaWarning(name),
            });
        }
        if !clock.breached
            && let Some(due) = clock.due_at(calendar)
        {
            wanted.push(Timer {
                due,
                incident: incident.id,
                kind: TimerKind::SlaBreach(name),
            });
        }
    }
    wanted
}

/// One armed timer. Ordered by due time first, so the earliest is the first of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub due: DateTime<Utc>,
    pub incident: IncidentId,
    pub kind: TimerKind,
}

/// The armed timers, earliest first, also found by incident: arming and re-arming an
/// incident's timers on each of its changes looks at its own few, not at every timer.
#[derive(Debug, Default)]
pub struct Timers {
    by_due: BTreeSet<Timer>,
    by_incident: HashMap<IncidentId, Vec<Timer>>,
}

impl Timers {
    /// False when it was armed already.
    pub fn insert(&mut self, timer: Timer) -> bool {
        if !self.by_due.insert(timer) {
            return false;
        }
        self.by_incident
            .entry(timer.incident)
            .or_default()
            .push(timer);
        true
    }

    /// False when it was not armed.
    pub fn remove(&mut self, timer: &Timer) -> bool {
        if !self.by_due.remove(timer) {
            return false;
        }
        if let Some(armed) = self.by_incident.get_mut(&timer.incident) {
            armed.retain(|t| t != timer);
            if armed.is_empty() {
                self.by_incident.remove(&timer.incident);
            }
        }
        true
    }

    /// The incident's armed timers.
    pub fn of(&self, incident: IncidentId) -> &[Timer] {
        self.by_incident.get(&incident).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.by_due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_due.is_empty()
    }

    /// Removes and returns the timers due at `now`, earliest first.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some(first) = self.by_due.first().copied() {
            if first.due > now {
                break;
            }
            self.remove(&first);
            due.push(first);
        }
        due
    }
}

impl FromIterator<Timer> for Timers {
    fn from_iter<I: IntoIterator<Item = Timer>>(timers: I) -> Self {
        let mut all = Timers::default();
        for timer in timers {
            all.insert(timer);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    #[test]
    fn takes_exactly_the_due_timers_in_order() {
        let timer = |s, id, kind| Timer {
            due: at(s),
            incident: IncidentId(id),
            kind,
        };
        let mut timers: Timers = [
            timer(30, 1, TimerKind::Unresolved),
            timer(10, 2, TimerKind::Close),
            timer(20, 1, TimerKind::Unacknowledged),
        ]
        .into_iter()
        .collect();
        assert!(timers.take_due(at(9)).is_empty());
        assert_eq!(
            timers.take_due(at(20)),
            [
                timer(10, 2, TimerKind::Close),
                timer(20, 1, TimerKind::Unacknowledged)
            ]
        );
        assert_eq!(timers.len(), 1);
        assert_eq!(
            timers.of(IncidentId(1)),
            [timer(30, 1, TimerKind::Unresolved)]
        );
        assert!(
            timers.of(IncidentId(2)).is_empty(),
            "taken timers leave the index"
        );
        assert_eq!(timers.take_due(at(100)).len(), 1);
        assert!(timers.is_empty());
    }

    #[test]
    fn the_incident_index_follows_inserts_and_removals() {
        let timer = |s, id, kind| Timer {
            due: at(s),
            incident: IncidentId(id),
            kind,
        };
        let mut timers = Timers::default();
        assert!(timers.insert(timer(10, 1, TimerKind::Close)));
        assert!(!timers.insert(timer(10, 1, TimerKind::Close)), "armed once");
        assert!(timers.insert(timer(20, 1, TimerKind::Unresolved)));
        assert_eq!(timers.of(IncidentId(1)).len(), 2);
        assert!(timers.remove(&timer(10, 1, TimerKind::Close)));
        assert!(!timers.remove(&timer(10, 1, TimerKind::Close)));
        assert_eq!(
            timers.of(IncidentId(1)),
            [timer(20, 1, TimerKind::Unresolved)]
        );
    }
}
