//! SLA clocks: how long an incident has taken against its turnaround-time targets.
//!
//! Every incident carries up to three clocks. `first_response` runs from opening until a
//! responder acknowledges (or resolves) it; `resolution` runs from opening until it is
//! resolved, paused while it is `on_hold`, and resumes — not restarts — when it is
//! reopened; `breach_notification` (restricted incidents only: data breaches) runs from
//! opening until closure against the notification deadline, in wall time.
//!
//! A clock counts time only inside its policy's [`Calendar`] (24x7 by default, or business
//! hours). It keeps what it counted so far and when its current run started, so elapsed and
//! remaining time are computed for any `now`; a breach is decided on durations, never on a
//! rounded percentage. Warning and breach are one-shot flags set by durable timers (the
//! engine arms them at [`SlaClock::warn_due_at`] and [`SlaClock::due_at`]); a clock that
//! stops past its target without the timer having fired is breached then.
//!
//! The clocks follow the incident's state: [`reconcile`] is called after every change and
//! moves each clock to the phase the state asks for, so no transition has to remember it.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::duration::format_duration;
use super::incident::{Effect, Incident, Kind, SYSTEM, State, TimelineEntry};
use super::priority::Priority;

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

    fn title(self) -> &'static str {
        match self {
            SlaName::FirstResponse => "first response",
            SlaName::Resolution => "resolution",
            SlaName::BreachNotification => "breach notification",
        }
    }

    /// The phase the incident's state asks of this clock.
    fn wanted(self, state: State) -> Phase {
        match (self, state) {
            (SlaName::FirstResponse, State::Open) => Phase::Running,
            (SlaName::FirstResponse, _) => Phase::Stopped,
            (SlaName::Resolution, State::Open | State::Acknowledged) => Phase::Running,
            (SlaName::Resolution, State::OnHold) => Phase::Paused,
            (SlaName::Resolution, State::Resolved | State::Closed) => Phase::Stopped,
            (SlaName::BreachNotification, State::Closed) => Phase::Stopped,
            (SlaName::BreachNotification, _) => Phase::Running,
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
    fn checkpoint(&mut self, calendar: &Calendar, now: DateTime<Utc>) {
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

/// Starts the first-response and resolution clocks of a newly opened incident (at its
/// opening, or retroactively at its detection when configured).
pub fn start(incident: &mut Incident, policies: &SlaPolicies) {
    let at = match (policies.start, incident.detected_at) {
        (ClockStart::Detected, Some(detected)) => detected.min(incident.opened_at),
        _ => incident.opened_at,
    };
    let (kind, priority) = (incident.kind, incident.priority);
    for sla in [SlaName::FirstResponse, SlaName::Resolution] {
        let clock = SlaClock::start(priority, policies.target(sla, kind, priority), at);
        match sla {
            SlaName::FirstResponse => incident.sla.first_response = Some(clock),
            _ => incident.sla.resolution = Some(clock),
        }
    }
}

/// Brings every clock in line with the incident as it is now: starts the breach
/// notification clock of a restricted incident, follows a priority change (the new
/// policy's target applies to the whole of a clock still counting, as when it was opened
/// so), and pauses, resumes or stops each clock as the state asks. A clock that stops past its target
/// without its timer having fired is breached now.
pub fn reconcile(
    incident: &mut Incident,
    policies: &SlaPolicies,
    restricted: bool,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    if restricted && incident.sla.breach_notification.is_none() && incident.state != State::Closed {
        // The deadline counts from opening, also for an incident recategorized later.
        incident.sla.breach_notification = Some(SlaClock::start(
            incident.priority,
            policies.breach_notification,
            incident.opened_at,
        ));
    }
    let (kind, priority, state) = (incident.kind, incident.priority, incident.state);
    let mut effects = Vec::new();
    for sla in SlaName::ALL {
        let Some(clock) = incident.sla.get_mut(sla) else {
            continue;
        };
        // The clock's own policy until it takes the new priority's (below).
        let calendar = policies.calendar(sla, kind, clock.priority);
        match (clock.phase(), sla.wanted(state)) {
            (Phase::Running, Phase::Paused) => {
                clock.checkpoint(calendar, now);
                clock.running_since = None;
            }
            (Phase::Running | Phase::Paused, Phase::Stopped) => {
                clock.checkpoint(calendar, now);
                clock.running_since = None;
                clock.stopped_at = Some(now);
                let met = !clock.breached && clock.elapsed <= clock.target;
                if !met && !clock.breached {
                    clock.breached = true;
                    effects.extend(announce(sla, clock, false, None, now));
                }
                effects.push(Effect::Sla(SlaSignal::Stopped {
                    sla,
                    met,
                    elapsed: clock.elapsed,
                }));
            }
            (Phase::Paused | Phase::Stopped, Phase::Running) => {
                // Resumed after a hold, or reopened: the clock goes on where it stopped.
                clock.stopped_at = None;
                clock.running_since = Some(now);
            }
            (Phase::Stopped, Phase::Paused) => clock.stopped_at = None,
            _ => {}
        }
        // A new priority applies to a clock still counting; a stopped clock's outcome is
        // final.
        if sla != SlaName::BreachNotification
            && clock.priority != priority
            && clock.phase() != Phase::Stopped
        {
            clock.checkpoint(calendar, now);
            clock.priority = priority;
            clock.target = policies.target(sla, kind, priority);
        }
    }
    effects
}

/// A warning (`warning`) or breach timer of the clock fired. Nothing when the clock is not
/// running, already said so, or has not in fact reached the point (a stale timer).
pub fn timer_fired(
    incident: &mut Incident,
    sla: SlaName,
    warning: bool,
    policies: &SlaPolicies,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    let kind = incident.kind;
    let Some(clock) = incident.sla.get_mut(sla) else {
        return Vec::new();
    };
    let calendar = policies.calendar(sla, kind, clock.priority);
    if clock.phase() != Phase::Running
        || (if warning {
            clock.warned
        } else {
            clock.breached
        })
    {
        return Vec::new();
    }
    let threshold = if warning {
        policies.warn_threshold(clock.target)
    } else {
        clock.target
    };
    if clock.elapsed_at(calendar, now) < threshold {
        return Vec::new();
    }
    if warning {
        clock.warned = true;
    } else {
        clock.breached = true;
        // A breach that comes first says the warning too, so neither fires later.
        clock.warned = true;
    }
    let due = clock.due_at(calendar);
    announce(sla, clock, warning, due, now)
}

/// The timeline entry, the event and the signal of a warning (with the due time, when
/// known) or a breach.
fn announce(
    sla: SlaName,
    clock: &SlaClock,
    warning: bool,
    due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    let target = format_delta(clock.target);
    let (kind, event, signal, message) = if warning {
        let due = due.map_or_else(String::new, |at| {
            format!(
                "; due {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        });
        (
            "sla_warning",
            "incident.sla_warning",
            SlaSignal::Warned(sla),
            format!("{} SLA at risk: target {target}{due}", sla.title()),
        )
    } else {
        (
            "sla_breached",
            "incident.sla_breached",
            SlaSignal::Breached(sla),
            format!("{} SLA breached: target {target} passed", sla.title()),
        )
    };
    vec![
        Effect::Timeline(TimelineEntry {
            at: now,
            actor: SYSTEM.to_owned(),
            kind: kind.to_owned(),
            message,
            public: false,
        }),
        Effect::SlaEvent {
            event,
            sla: sla.as_str(),
        },
        Effect::Sla(signal),
    ]
}

/// `1h30m`, or `0s`.
pub fn format_delta(delta: TimeDelta) -> String {
    delta
        .to_std()
        .map_or_else(|_| "0s".to_owned(), format_duration)
}

#[cfg(test)]
mod tests;
