//! SLA clocks: how long an incident has taken against its turnaround-time targets.
//!
//! Every incident carries up to three clocks. `first_response` runs from opening until a
//! responder acknowledges (or resolves) it; `resolution` runs from opening until it is
//! resolved, paused while it is `on_hold`, and resumes — not restarts — when it is
//! reopened; `breach_notification` (restricted incidents only: data breaches) runs from
//! opening until closure against the notification deadline, in wall time.
//!
//! A clock counts time only inside its policy's [`Calendar`](super::calendar::Calendar)
//! (24x7 by default, or business hours). It keeps what it counted so far and when its
//! current run started, so elapsed and remaining time are computed for any `now`; a breach
//! is decided on durations, never on a rounded percentage. Warning and breach are one-shot
//! flags set by durable timers (the engine arms them at [`SlaClock::warn_due_at`] and
//! [`SlaClock::due_at`]); a clock that stops past its target without the timer having
//! fired is breached then.
//!
//! The clocks follow the incident's state: [`reconcile`] is called after every change and
//! moves each clock to the phase the state asks for, so no transition has to remember it.
//!
//! The clocks' data and arithmetic are in [`clock`], the configured targets and calendars
//! in [`policy`]; this file holds what drives them from the incident.

pub mod clock;
pub mod policy;

use chrono::{DateTime, TimeDelta, Utc};

use super::duration::format_duration;
use super::incident::{Effect, Incident, SYSTEM, State, TimelineEntry};

pub use clock::{ClockState, Phase, SlaClock, SlaClocks, SlaSignal};
pub use policy::{ClockStart, SlaName, SlaPolicies, SlaPolicy};

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
        match (clock.phase(), wanted(sla, state)) {
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

/// The phase the incident's state asks of a clock.
fn wanted(sla: SlaName, state: State) -> Phase {
    match (sla, state) {
        (SlaName::FirstResponse, State::Open) => Phase::Running,
        (SlaName::FirstResponse, _) => Phase::Stopped,
        (SlaName::Resolution, State::Open | State::Acknowledged) => Phase::Running,
        (SlaName::Resolution, State::OnHold) => Phase::Paused,
        (SlaName::Resolution, State::Resolved | State::Closed) => Phase::Stopped,
        (SlaName::BreachNotification, State::Closed) => Phase::Stopped,
        (SlaName::BreachNotification, _) => Phase::Running,
    }
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
