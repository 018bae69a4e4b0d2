//! One incident's SLA clocks as data, and the arithmetic over them: elapsed calendar and
//! wall time at any `now`, and when a running clock reaches its warning or its target.
//! What moves a clock (the incident's state, a fired timer) is decided in [`super`].

use chrono::{DateTime, TimeDelta, Utc};

use super::policy::{SlaName, SlaPolicies};
use crate::domain::calendar::Calendar;
use crate::domain::priority::Priority;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Paused,
    Stopped,
}

/// One clock of one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaClock {
    /// The priority whose policy the clock follows (its target and calendar).
    pub priority: Priority,
    pub target: TimeDelta,
    pub started_at: DateTime<Utc>,
    /// Calendar time counted before `running_since` (or in total, when not running).
    pub elapsed: TimeDelta,
    /// Wall time counted the same way (pauses excluded).
    pub wall_elapsed: TimeDelta,
    /// When the current run began; `None` while paused or stopped.
    pub running_since: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// The warning fired (it fires once).
    pub warned: bool,
    /// The target passed (it is counted once, when it happens).
    pub breached: bool,
}

/// What a clock says now, for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    Running,
    Paused,
    Met,
    Breached,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Met => "met",
            ClockState::Breached => "breached",
        }
    }
}

impl SlaClock {
    pub fn start(priority: Priority, target: TimeDelta, at: DateTime<Utc>) -> SlaClock {
        SlaClock {
            priority,
            target,
            started_at: at,
            elapsed: TimeDelta::zero(),
            wall_elapsed: TimeDelta::zero(),
            running_since: Some(at),
            stopped_at: None,
            warned: false,
            breached: false,
        }
    }

    pub fn phase(&self) -> Phase {
        if self.stopped_at.is_some() {
            Phase::Stopped
        } else if self.running_since.is_some() {
            Phase::Running
        } else {
            Phase::Paused
        }
    }

    /// Calendar time counted up to `now`.
    pub fn elapsed_at(&self, calendar: &Calendar, now: DateTime<Utc>) -> TimeDelta {
        match self.running_since {
            Some(since) => self.elapsed + calendar.working_time(since, now),
            None => self.elapsed,
        }
    }

    /// Wall time counted up to `now` (pauses excluded).
    pub fn wall_elapsed_at(&self, now: DateTime<Utc>) -> TimeDelta {
        match self.running_since {
            Some(since) => self.wall_elapsed + (now - since).max(TimeDelta::zero()),
            None => self.wall_elapsed,
        }
    }

    /// While running: when the counted time reaches `threshold` (now or in the past when it
    /// already has). `None` while paused or stopped, or when the calendar has no working
    /// time left.
    fn reaches(&self, calendar: &Calendar, threshold: TimeDelta) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        let left = threshold - self.elapsed;
        if left <= TimeDelta::zero() {
            return Some(since);
        }
        calendar.add_working_time(since, left)
    }

    /// When the target is reached, while the clock runs.
    pub fn due_at(&self, calendar: &Calendar) -> Option<DateTime<Utc>> {
        self.reaches(calendar, self.target)
    }

    /// When the warning is due, while the clock runs.
    pub fn warn_due_at(
        &self,
        calendar: &Calendar,
        policies: &SlaPolicies,
    ) -> Option<DateTime<Utc>> {
        self.reaches(calendar, policies.warn_threshold(self.target))
    }

    /// Folds the current run into `elapsed`; the run goes on from `now`.
    pub(super) fn checkpoint(&mut self, calendar: &Calendar, now: DateTime<Utc>) {
        if let Some(since) = self.running_since {
            let now = now.max(since);
            self.elapsed += calendar.working_time(since, now);
            self.wall_elapsed += now - since;
            self.running_since = Some(now);
        }
    }

    pub fn state(&self) -> ClockState {
        match self.phase() {
            _ if self.breached => ClockState::Breached,
            Phase::Running => ClockState::Running,
            Phase::Paused => ClockState::Paused,
            Phase::Stopped => ClockState::Met,
        }
    }

    /// The status `incidentd_sla_open` counts a clock under, while it is not stopped.
    pub fn open_status(&self) -> Option<&'static str> {
        match self.phase() {
            Phase::Stopped => None,
            _ if self.breached => Some("breached"),
            _ if self.warned => Some("at_risk"),
            _ => Some("ok"),
        }
    }
}

/// The clocks of one incident; each is `None` until it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaClocks {
    pub first_response: Option<SlaClock>,
    pub resolution: Option<SlaClock>,
    pub breach_notification: Option<SlaClock>,
}

impl SlaClocks {
    pub fn get(&self, sla: SlaName) -> Option<&SlaClock> {
        match sla {
            SlaName::FirstResponse => self.first_response.as_ref(),
            SlaName::Resolution => self.resolution.as_ref(),
            SlaName::BreachNotification => self.breach_notification.as_ref(),
        }
    }

    pub fn get_mut(&mut self, sla: SlaName) -> Option<&mut SlaClock> {
        match sla {
            SlaName::FirstResponse => self.first_response.as_mut(),
            SlaName::Resolution => self.resolution.as_mut(),
            SlaName::BreachNotification => self.breach_notification.as_mut(),
        }
    }

    /// The clocks that exist, in [`SlaName::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (SlaName, &SlaClock)> {
        SlaName::ALL
            .into_iter()
            .filter_map(|name| self.get(name).map(|clock| (name, clock)))
    }
}

/// What the metrics learn from a clock (beside the timeline and the webhook events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaSignal {
    Warned(SlaName),
    Breached(SlaName),
    /// The clock stopped: within its target or not, after this much calendar time.
    Stopped {
        sla: SlaName,
        met: bool,
        elapsed: TimeDelta,
    },
}
