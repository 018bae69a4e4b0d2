//! Durable timers: what must happen to an incident at a given time if nothing else
//! happened first — escalate when not acknowledged or not resolved in time, close after
//! the quiet period, warn of and mark an SLA clock's breach. Timers are stored with the
//! change that arms them and deleted with the change they cause, so each fires exactly once, also across a restart. A timer that finds
//! its reason gone (the incident was acknowledged meanwhile) does nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::incident::IncidentId;
use super::sla::SlaName;

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
        }
    }

    /// Every kind, for the store's key codec.
    pub const ALL: [TimerKind; 9] = [
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
}

/// One armed timer. Ordered by due time first, so the earliest is the first of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub due: DateTime<Utc>,
    pub incident: IncidentId,
    pub kind: TimerKind,
}

/// Removes and returns the timers due at `now` (earliest first) from an ordered set.
pub fn take_due(timers: &mut std::collections::BTreeSet<Timer>, now: DateTime<Utc>) -> Vec<Timer> {
    let mut due = Vec::new();
    while let Some(first) = timers.first().copied() {
        if first.due > now {
            break;
        }
        timers.pop_first();
        due.push(first);
    }
    due
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
        let mut timers = BTreeSet::from([
            timer(30, 1, TimerKind::Unresolved),
            timer(10, 2, TimerKind::Close),
            timer(20, 1, TimerKind::Unacknowledged),
        ]);
        assert!(take_due(&mut timers, at(9)).is_empty());
        assert_eq!(
            take_due(&mut timers, at(20)),
            [
                timer(10, 2, TimerKind::Close),
                timer(20, 1, TimerKind::Unacknowledged)
            ]
        );
        assert_eq!(timers.len(), 1);
        assert_eq!(take_due(&mut timers, at(100)).len(), 1);
        assert!(timers.is_empty());
    }
}
