//! SLA clocks driven the way the engine drives them: a transition, then [`reconcile`];
//! timers fired at the instants [`SlaClock::due_at`] and [`SlaClock::warn_due_at`] say.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};

use super::*;
use crate::domain::calendar::{BusinessHours, Calendar};
use crate::domain::incident::{IncidentId, Kind, Reporter, Ticket, Tier};
use crate::domain::priority::{Level, Priority};
use crate::domain::signal::Signal;

fn at(seconds: i64) -> DateTime<Utc> {
    // 2026-01-05, a Monday, 00:00 UTC.
    DateTime::from_timestamp(1_767_571_200 + seconds, 0).unwrap()
}

fn h(hours: i64) -> i64 {
    hours * 3600
}

fn hours(hours: i64) -> TimeDelta {
    TimeDelta::hours(hours)
}

fn open(kind: Kind, priority: Priority, opened: DateTime<Utc>, policies: &SlaPolicies) -> Incident {
    let ticket = Ticket {
        title: "VPN broken".to_owned(),
        description: String::new(),
        reporter: Reporter {
            name: "Ana".to_owned(),
            contact: "ana@example.com".to_owned(),
        },
        kind,
        category: "availability".to_owned(),
        impact: Level::Medium,
        urgency: Level::Medium,
        service: None,
        labels: BTreeMap::new(),
    };
    let (mut incident, _) = Incident::open(
        IncidentId(1),
        &Signal::from_ticket(IncidentId(1), ticket, priority, Tier::L1, "desk"),
        opened,
    );
    start(&mut incident, policies);
    assert!(reconcile(&mut incident, policies, false, opened).is_empty());
    incident
}

/// Runs a transition and reconciles the clocks, as the engine does; the SLA effects.
fn step(
    incident: &mut Incident,
    policies: &SlaPolicies,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut Incident, DateTime<Utc>),
) -> Vec<Effect> {
    change(incident, now);
    reconcile(incident, policies, false, now)
}

fn ack(i: &mut Incident, now: DateTime<Utc>) {
    i.acknowledge("alice", now).unwrap();
}
fn hold(i: &mut Incident, now: DateTime<Utc>) {
    i.hold("alice", "vendor", now).unwrap();
}
fn resume(i: &mut Incident, now: DateTime<Utc>) {
    i.resume("alice", now).unwrap();
}
fn resolve(i: &mut Incident, now: DateTime<Utc>) {
    i.resolve("alice", Some("fixed".to_owned()), now).unwrap();
}
fn reopen(i: &mut Incident, now: DateTime<Utc>) {
    i.reopen("alice", "it is back", now).unwrap();
}

fn signals(effects: &[Effect]) -> Vec<SlaSignal> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Sla(signal) => Some(*signal),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<(&'static str, &'static str)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SlaEvent { event, sla } => Some((*event, *sla)),
            _ => None,
        })
        .collect()
}

fn clock(incident: &Incident, sla: SlaName) -> &SlaClock {
    incident.sla.get(sla).unwrap()
}

/// Business hours in `zone`, Monday to Friday unless `days` says otherwise.
fn business(zone: chrono_tz::Tz, open: u32, close: u32, holidays: &[NaiveDate]) -> Calendar {
    Calendar::Business(BusinessHours {
        timezone: zone,
        days: [true, true, true, true, true, false, false],
        open: open * 3600,
        close: close * 3600,
        holidays: holidays.iter().copied().collect::<BTreeSet<_>>(),
    })
}

fn with_calendar(calendar: Calendar) -> SlaPolicies {
    let mut policies = SlaPolicies::default();
    for policy in policies.incident.iter_mut().chain(&mut policies.request) {
        policy.calendar = calendar.clone();
    }
    policies
}

fn local(zone: chrono_tz::Tz, y: i32, m: u32, d: u32, hh: u32, mm: u32) -> DateTime<Utc> {
    zone.with_ymd_and_hms(y, m, d, hh, mm, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn acknowledgement_stops_the_first_response_clock_within_target() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P1, at(0), &policies);
    let effects = step(&mut incident, &policies, at(1800), ack);
    assert_eq!(
        signals(&effects),
        [SlaSignal::Stopped {
            sla: SlaName::FirstResponse,
            met: true,
            elapsed: TimeDelta::minutes(30)
        }]
    );
    let first = clock(&incident, SlaName::FirstResponse);
    assert_eq!(first.state(), ClockState::Met);
    assert_eq!(first.stopped_at, Some(at(1800)));
    assert_eq!(
        clock(&incident, SlaName::Resolution).state(),
        ClockState::Running
    );
}

#[test]
fn hold_pauses_the_resolution_clock_and_moves_its_due_time() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P1, at(0), &policies);
    assert_eq!(
        clock(&incident, SlaName::Resolution).due_at(&Calendar::Always),
        Some(at(h(4)))
    );
    step(&mut incident, &policies, at(h(1)), ack);
    step(&mut incident, &policies, at(h(2)), hold);
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.state(), ClockState::Paused);
    assert_eq!(
        resolution.due_at(&Calendar::Always),
        None,
        "no due time while paused"
    );
    assert_eq!(resolution.elapsed_at(&Calendar::Always, at(h(5))), hours(2));
    step(&mut incident, &policies, at(h(5)), resume);
    assert_eq!(
        clock(&incident, SlaName::Resolution).due_at(&Calendar::Always),
        Some(at(h(7))),
        "the 3h on hold move the due time"
    );
    let effects = step(&mut incident, &policies, at(h(6)), resolve);
    assert_eq!(
        signals(&effects),
        [SlaSignal::Stopped {
            sla: SlaName::Resolution,
            met: true,
            elapsed: hours(3)
        }]
    );
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.wall_elapsed, hours(3));
    assert_eq!(resolution.state(), ClockState::Met);
}

#[test]
fn a_clock_stopped_exactly_at_its_target_is_met_and_a_millisecond_later_breached() {
    let policies = SlaPolicies::default();
    let mut met = open(Kind::Incident, Priority::P1, at(0), &policies);
    let effects = step(&mut met, &policies, at(h(1)), ack);
    assert!(matches!(
        signals(&effects)[..],
        [SlaSignal::Stopped { met: true, .. }]
    ));
    let mut late = open(Kind::Incident, Priority::P1, at(0), &policies);
    let effects = step(
        &mut late,
        &policies,
        at(h(1)) + TimeDelta::milliseconds(1),
        ack,
    );
    assert_eq!(
        signals(&effects),
        [
            SlaSignal::Breached(SlaName::FirstResponse),
            SlaSignal::Stopped {
                sla: SlaName::FirstResponse,
                met: false,
                elapsed: hours(1) + TimeDelta::milliseconds(1)
            }
        ],
        "a breach the timer did not see yet is counted when the clock stops"
    );
    assert_eq!(
        events(&effects),
        [("incident.sla_breached", "first_response")]
    );
}

#[test]
fn warning_and_breach_timers_fire_once_and_only_when_due() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P1, at(0), &policies);
    let resolution = clock(&incident, SlaName::Resolution);
    let warn_due = resolution
        .warn_due_at(&Calendar::Always, &policies)
        .unwrap();
    assert_eq!(warn_due, at(h(3)), "75% of 4h");
    let early = warn_due - TimeDelta::seconds(1);
    assert!(timer_fired(&mut incident, SlaName::Resolution, true, &policies, early).is_empty());
    let effects = timer_fired(
        &mut incident,
        SlaName::Resolution,
        true,
        &policies,
        warn_due,
    );
    assert_eq!(signals(&effects), [SlaSignal::Warned(SlaName::Resolution)]);
    assert_eq!(events(&effects), [("incident.sla_warning", "resolution")]);
    assert_eq!(
        clock(&incident, SlaName::Resolution).open_status(),
        Some("at_risk")
    );
    assert!(
        timer_fired(
            &mut incident,
            SlaName::Resolution,
            true,
            &policies,
            at(h(3) + 5)
        )
        .is_empty(),
        "a warning fires once"
    );
    let effects = timer_fired(
        &mut incident,
        SlaName::Resolution,
        false,
        &policies,
        at(h(4)),
    );
    assert_eq!(
        signals(&effects),
        [SlaSignal::Breached(SlaName::Resolution)]
    );
    assert_eq!(
        clock(&incident, SlaName::Resolution).state(),
        ClockState::Breached
    );
    assert_eq!(
        clock(&incident, SlaName::Resolution).open_status(),
        Some("breached")
    );
    // Stopping later counts the completion, not a second breach.
    step(&mut incident, &policies, at(h(5)), ack);
    let effects = step(&mut incident, &policies, at(h(6)), resolve);
    assert_eq!(
        signals(&effects),
        [SlaSignal::Stopped {
            sla: SlaName::Resolution,
            met: false,
            elapsed: hours(6)
        }]
    );
    assert_eq!(clock(&incident, SlaName::Resolution).open_status(), None);
}

#[test]
fn a_timer_for_a_paused_clock_does_nothing() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P1, at(0), &policies);
    step(&mut incident, &policies, at(60), ack);
    step(&mut incident, &policies, at(h(1)), hold);
    assert!(
        timer_fired(
            &mut incident,
            SlaName::Resolution,
            false,
            &policies,
            at(h(9))
        )
        .is_empty()
    );
    assert!(!clock(&incident, SlaName::Resolution).breached);
}

#[test]
fn reopening_resumes_the_resolution_clock_without_a_fresh_start() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P1, at(0), &policies);
    step(&mut incident, &policies, at(600), ack);
    let effects = step(&mut incident, &policies, at(h(3)), resolve);
    assert!(matches!(
        signals(&effects)[..],
        [SlaSignal::Stopped { met: true, .. }]
    ));
    let effects = step(&mut incident, &policies, at(h(10)), reopen);
    assert!(signals(&effects).is_empty());
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.state(), ClockState::Running);
    assert_eq!(
        resolution.due_at(&Calendar::Always),
        Some(at(h(11))),
        "3h were used before the resolution: 1h is left"
    );
    assert_eq!(
        clock(&incident, SlaName::FirstResponse).state(),
        ClockState::Met,
        "the first response stays answered"
    );
    let effects = step(&mut incident, &policies, at(h(11) + 1800), resolve);
    assert_eq!(
        signals(&effects),
        [
            SlaSignal::Breached(SlaName::Resolution),
            SlaSignal::Stopped {
                sla: SlaName::Resolution,
                met: false,
                elapsed: hours(4) + TimeDelta::minutes(30)
            }
        ]
    );
}

#[test]
fn resolving_an_unacknowledged_incident_answers_the_first_response_too() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P3, at(0), &policies);
    let effects = step(&mut incident, &policies, at(h(1)), resolve);
    assert_eq!(
        signals(&effects),
        [
            SlaSignal::Stopped {
                sla: SlaName::FirstResponse,
                met: true,
                elapsed: hours(1)
            },
            SlaSignal::Stopped {
                sla: SlaName::Resolution,
                met: true,
                elapsed: hours(1)
            }
        ]
    );
}

#[test]
fn a_priority_change_applies_the_new_target_to_the_whole_clock() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P3, at(0), &policies);
    assert_eq!(clock(&incident, SlaName::Resolution).target, hours(24));
    incident.priority = Priority::P1;
    reconcile(&mut incident, &policies, false, at(h(1)));
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.target, hours(4));
    assert_eq!(resolution.priority, Priority::P1);
    assert_eq!(resolution.due_at(&Calendar::Always), Some(at(h(4))));
    assert_eq!(clock(&incident, SlaName::FirstResponse).target, hours(1));
}

#[test]
fn requests_follow_their_own_policy() {
    let policies = SlaPolicies::default();
    let incident = open(Kind::Request, Priority::P1, at(0), &policies);
    assert_eq!(clock(&incident, SlaName::FirstResponse).target, hours(3));
    assert_eq!(clock(&incident, SlaName::Resolution).target, hours(72));
}

#[test]
fn clocks_start_at_detection_when_configured() {
    let policies = SlaPolicies {
        start: ClockStart::Detected,
        ..SlaPolicies::default()
    };
    let ticket_like = |detected| {
        let mut incident = open(
            Kind::Incident,
            Priority::P1,
            at(600),
            &SlaPolicies::default(),
        );
        incident.sla = SlaClocks::default();
        incident.detected_at = detected;
        start(&mut incident, &policies);
        incident
    };
    let detected = ticket_like(Some(at(0)));
    assert_eq!(clock(&detected, SlaName::FirstResponse).started_at, at(0));
    assert_eq!(
        clock(&detected, SlaName::FirstResponse).due_at(&Calendar::Always),
        Some(at(h(1)))
    );
    let unknown = ticket_like(None);
    assert_eq!(clock(&unknown, SlaName::Resolution).started_at, at(600));
}

#[test]
fn the_breach_notification_clock_runs_in_wall_time_from_opening_until_closure() {
    let policies = with_calendar(business(chrono_tz::UTC, 9, 17, &[]));
    let mut incident = open(Kind::Incident, Priority::P2, at(0), &policies);
    assert!(incident.sla.breach_notification.is_none());
    // Recategorized as a data breach an hour later: the deadline still counts from opening.
    assert!(reconcile(&mut incident, &policies, true, at(h(1))).is_empty());
    let deadline = clock(&incident, SlaName::BreachNotification);
    assert_eq!(deadline.started_at, at(0));
    assert_eq!(deadline.due_at(&Calendar::Always), Some(at(h(72))));
    step(&mut incident, &policies, at(h(2)), ack);
    incident.hold("alice", "legal", at(h(3))).unwrap();
    reconcile(&mut incident, &policies, true, at(h(3)));
    assert_eq!(
        clock(&incident, SlaName::BreachNotification).state(),
        ClockState::Running,
        "a hold does not pause the legal deadline"
    );
    let effects = timer_fired(
        &mut incident,
        SlaName::BreachNotification,
        false,
        &policies,
        at(h(72)),
    );
    assert_eq!(
        events(&effects),
        [("incident.sla_breached", "breach_notification")]
    );
    incident.resume("alice", at(h(80))).unwrap();
    incident.resolve("alice", None, at(h(80))).unwrap();
    reconcile(&mut incident, &policies, true, at(h(80)));
    assert_eq!(
        clock(&incident, SlaName::BreachNotification).phase(),
        Phase::Running,
        "resolved is not closed"
    );
    incident.close("alice", at(h(81))).unwrap();
    let effects = reconcile(&mut incident, &policies, true, at(h(81)));
    assert_eq!(
        signals(&effects),
        [SlaSignal::Stopped {
            sla: SlaName::BreachNotification,
            met: false,
            elapsed: hours(81)
        }]
    );
}

#[test]
fn business_hours_across_a_weekend() {
    let jakarta = chrono_tz::Asia::Jakarta;
    let mut policies = with_calendar(business(jakarta, 8, 17, &[]));
    policies.incident[2].resolution = hours(8);
    // Friday 2026-01-09 15:00 in Jakarta (08:00 UTC).
    let opened = local(jakarta, 2026, 1, 9, 15, 0);
    let incident = open(Kind::Incident, Priority::P3, opened, &policies);
    let resolution = clock(&incident, SlaName::Resolution);
    let calendar = &policies.incident[2].calendar;
    assert_eq!(
        resolution.due_at(calendar),
        Some(local(jakarta, 2026, 1, 12, 14, 0)),
        "2h on Friday, 6h on Monday"
    );
    // Monday 09:00: 3h of business time, 66h of wall time.
    let monday = local(jakarta, 2026, 1, 12, 9, 0);
    assert_eq!(resolution.elapsed_at(calendar, monday), hours(3));
    assert_eq!(resolution.wall_elapsed_at(monday), hours(66));
    // The first response (P3: 2h) is due at Friday's closing.
    assert_eq!(
        clock(&incident, SlaName::FirstResponse).due_at(calendar),
        Some(local(jakarta, 2026, 1, 9, 17, 0))
    );
}

#[test]
fn a_holiday_is_skipped() {
    let jakarta = chrono_tz::Asia::Jakarta;
    let monday = NaiveDate::from_ymd_opt(2026, 1, 12).unwrap();
    let mut policies = with_calendar(business(jakarta, 8, 17, &[monday]));
    policies.incident[2].resolution = hours(8);
    let opened = local(jakarta, 2026, 1, 9, 15, 0);
    let incident = open(Kind::Incident, Priority::P3, opened, &policies);
    assert_eq!(
        clock(&incident, SlaName::Resolution).due_at(&policies.incident[2].calendar),
        Some(local(jakarta, 2026, 1, 13, 14, 0))
    );
}

#[test]
fn business_hours_follow_a_dst_change() {
    let berlin = chrono_tz::Europe::Berlin;
    // Every day 08:00-17:00 local; summer time starts on Sunday 2026-03-29.
    let mut calendar = business(berlin, 8, 17, &[]);
    if let Calendar::Business(hours) = &mut calendar {
        hours.days = [true; 7];
    }
    let mut policies = with_calendar(calendar.clone());
    policies.incident[0].first_response = hours(2);
    let opened = local(berlin, 2026, 3, 28, 16, 0); // Saturday 16:00 CET = 15:00 UTC
    let mut incident = open(Kind::Incident, Priority::P1, opened, &policies);
    let due = clock(&incident, SlaName::FirstResponse)
        .due_at(&calendar)
        .unwrap();
    assert_eq!(
        due,
        local(berlin, 2026, 3, 29, 9, 0),
        "1h on Saturday, 1h on Sunday"
    );
    assert_eq!(
        due,
        Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap(),
        "09:00 CEST"
    );
    // Acknowledged at Sunday 08:30 CEST: 1h30m of business time.
    let effects = step(
        &mut incident,
        &policies,
        local(berlin, 2026, 3, 29, 8, 30),
        ack,
    );
    assert_eq!(
        signals(&effects),
        [SlaSignal::Stopped {
            sla: SlaName::FirstResponse,
            met: true,
            elapsed: TimeDelta::minutes(90)
        }]
    );
}

#[test]
fn hold_and_resume_in_business_hours_count_only_working_time() {
    let utc = chrono_tz::UTC;
    let policies = with_calendar(business(utc, 9, 17, &[]));
    let calendar = policies.incident[0].calendar.clone();
    // Monday 2026-01-05 10:00 UTC.
    let mut incident = open(Kind::Incident, Priority::P1, at(h(10)), &policies);
    step(&mut incident, &policies, at(h(11)), ack);
    step(&mut incident, &policies, at(h(12)), hold);
    // Resumed Tuesday 10:00: the night and the hold do not count.
    step(&mut incident, &policies, at(h(24 + 10)), resume);
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.elapsed_at(&calendar, at(h(24 + 10))), hours(2));
    assert_eq!(resolution.due_at(&calendar), Some(at(h(24 + 12))));
}

#[test]
fn a_stopped_clock_keeps_its_target_when_the_priority_changes_later() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P3, at(0), &policies);
    // First response after 90m: met against P3's 2h.
    step(&mut incident, &policies, at(5400), ack);
    incident.priority = Priority::P1;
    assert!(reconcile(&mut incident, &policies, false, at(h(2))).is_empty());
    let first = clock(&incident, SlaName::FirstResponse);
    assert_eq!((first.priority, first.target), (Priority::P3, hours(2)));
    assert_eq!(first.state(), ClockState::Met, "the outcome is final");
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(
        (resolution.priority, resolution.target),
        (Priority::P1, hours(4))
    );
    assert_eq!(resolution.elapsed, hours(2), "counted up to the change");
}

#[test]
fn a_reopened_clock_takes_the_priority_it_was_raised_to() {
    let policies = SlaPolicies::default();
    let mut incident = open(Kind::Incident, Priority::P4, at(0), &policies);
    step(&mut incident, &policies, at(h(1)), ack);
    step(&mut incident, &policies, at(h(2)), resolve);
    incident
        .reopen("system", "the outage came back", at(h(3)))
        .unwrap();
    incident.priority = Priority::P1;
    reconcile(&mut incident, &policies, false, at(h(3)));
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(resolution.state(), ClockState::Running);
    assert_eq!(
        (resolution.priority, resolution.target),
        (Priority::P1, hours(4))
    );
    assert_eq!(
        resolution.due_at(&Calendar::Always),
        Some(at(h(5))),
        "2h used before the reopen, 2h left"
    );
}

#[test]
fn reopening_in_business_hours_resumes_at_the_next_opening() {
    let utc = chrono_tz::UTC;
    let policies = with_calendar(business(utc, 9, 17, &[]));
    let calendar = policies.incident[0].calendar.clone();
    // Friday 2026-01-09 15:00 UTC: resolved at 16:00 (1h used of P1's 4h).
    let friday = |hh: i64| at(h(4 * 24 + hh));
    let mut incident = open(Kind::Incident, Priority::P1, friday(15), &policies);
    step(
        &mut incident,
        &policies,
        friday(15) + TimeDelta::minutes(10),
        ack,
    );
    step(&mut incident, &policies, friday(16), resolve);
    // Reopened Friday 20:00, after hours: the clock runs again but counts from Monday 09:00.
    step(&mut incident, &policies, friday(20), reopen);
    let resolution = clock(&incident, SlaName::Resolution);
    assert_eq!(
        resolution.elapsed_at(&calendar, friday(24 + 24 + 9)),
        hours(1)
    );
    assert_eq!(
        resolution.due_at(&calendar),
        Some(at(h(7 * 24 + 12))),
        "Monday 12:00: 3h left from the 09:00 opening"
    );
}
