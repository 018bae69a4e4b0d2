//! The SLA as configured: which clocks there are, the target each must meet for an
//! incident's kind and priority, the calendar it counts in, where clocks start and when
//! they warn. The clocks themselves are in [`super::clock`].

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::domain::calendar::Calendar;
use crate::domain::incident::model::Kind;
use crate::domain::priority::Priority;

/// Which clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaName {
    FirstResponse,
    Resolution,
    BreachNotification,
}

impl SlaName {
    pub const ALL: [SlaName; 3] = [
        SlaName::FirstResponse,
        SlaName::Resolution,
        SlaName::BreachNotification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SlaName::FirstResponse => "first_response",
            SlaName::Resolution => "resolution",
            SlaName::BreachNotification => "breach_notification",
        }
    }

    /// How timeline messages name the clock.
    pub(super) fn title(self) -> &'static str {
        match self {
            SlaName::FirstResponse => "first response",
            SlaName::Resolution => "resolution",
            SlaName::BreachNotification => "breach notification",
        }
    }
}

/// The targets of one priority of one kind, and the calendar they count in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    pub first_response: TimeDelta,
    pub resolution: TimeDelta,
    pub calendar: Calendar,
}

/// Where clocks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockStart {
    /// When the incident is opened.
    #[default]
    Opened,
    /// Retroactively, when the symptom was first seen (a rule's first symptomatic result,
    /// an alert's `startsAt`), if that is known and earlier.
    Detected,
}

/// `sla` in the configuration, with the contract's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicies {
    /// The share of a target at which a clock warns (0 < warn_at < 1).
    pub warn_at: f64,
    pub start: ClockStart,
    /// Indexed by priority (P1 first).
    pub incident: [SlaPolicy; 5],
    pub request: [SlaPolicy; 5],
    /// The mean resolution time of incidents should stay within this.
    pub mean_resolution_objective: TimeDelta,
    /// How long after opening those affected by a data breach must be notified (wall time).
    pub breach_notification: TimeDelta,
}

const HOUR: i64 = 3600;

/// Every second counts: the calendar of the breach-notification deadline.
static ALWAYS: Calendar = Calendar::Always;

impl Default for SlaPolicies {
    fn default() -> Self {
        let policy = |first_response: i64, resolution: i64| SlaPolicy {
            first_response: TimeDelta::seconds(first_response * HOUR),
            resolution: TimeDelta::seconds(resolution * HOUR),
            calendar: Calendar::Always,
        };
        SlaPolicies {
            warn_at: 0.75,
            start: ClockStart::Opened,
            incident: [
                policy(1, 4),
                policy(1, 8),
                policy(2, 24),
                policy(3, 48),
                policy(3, 72),
            ],
            request: std::array::from_fn(|_| policy(3, 72)),
            mean_resolution_objective: TimeDelta::seconds(24 * HOUR),
            breach_notification: TimeDelta::seconds(72 * HOUR),
        }
    }
}

impl SlaPolicies {
    pub fn policy(&self, kind: Kind, priority: Priority) -> &SlaPolicy {
        let index = priority as usize;
        match kind {
            Kind::Incident => &self.incident[index],
            Kind::Request => &self.request[index],
        }
    }

    pub fn target(&self, sla: SlaName, kind: Kind, priority: Priority) -> TimeDelta {
        match sla {
            SlaName::FirstResponse => self.policy(kind, priority).first_response,
            SlaName::Resolution => self.policy(kind, priority).resolution,
            SlaName::BreachNotification => self.breach_notification,
        }
    }

    pub fn calendar(&self, sla: SlaName, kind: Kind, priority: Priority) -> &Calendar {
        match sla {
            SlaName::BreachNotification => &ALWAYS,
            _ => &self.policy(kind, priority).calendar,
        }
    }

    /// `warn_at` of `target`, to the millisecond.
    pub fn warn_threshold(&self, target: TimeDelta) -> TimeDelta {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let millis = (target.num_milliseconds() as f64 * self.warn_at).round() as i64;
        TimeDelta::milliseconds(millis)
    }

    /// Every configured target in seconds, each once, ascending (histogram buckets).
    pub fn target_seconds(&self) -> Vec<f64> {
        let mut seconds: Vec<i64> = self
            .incident
            .iter()
            .chain(&self.request)
            .flat_map(|p| [p.first_response, p.resolution])
            .chain([self.breach_notification, self.mean_resolution_objective])
            .map(|t| t.num_milliseconds())
            .collect();
        seconds.sort_unstable();
        seconds.dedup();
        seconds
            .into_iter()
            .map(|ms| TimeDelta::milliseconds(ms).as_seconds_f64())
            .collect()
    }
}
