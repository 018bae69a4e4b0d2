//! The `sla` section: turnaround-time targets per kind and priority, their calendars, the
//! warning share, the mean resolution objective and the breach-notification deadline.
//!
//! Merging, from the most specific: a priority's own entry (`incident.P1`), then that kind's
//! `default` entry, then the built-in target of that priority. A calendar comes from the
//! entry, else the kind's `default`, else the section's `calendar`, else 24x7.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeDelta;
use serde::Deserialize;
use serde_yaml::Value;

use super::document::Check;
use super::locate::{Segment, Segment::Index, Segment::Key};
use crate::domain::calendar::{
    BusinessHours, Calendar, parse_days, parse_holiday, parse_hours, parse_timezone,
};
use crate::domain::incident::Kind;
use crate::domain::priority::Priority;
use crate::domain::sla::{ClockStart, SlaPolicies, SlaPolicy};

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "SLA settings (a mapping with `warn_at`, `start`, `calendar`, `incident`, `request`, `mean_resolution_objective`, `breach_notification`)"
)]
struct SlaOutline {
    warn_at: Option<Value>,
    start: Option<Value>,
    calendar: Option<Value>,
    incident: Option<Value>,
    request: Option<Value>,
    mean_resolution_objective: Option<Value>,
    breach_notification: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "SLA policies (a mapping of P1 to P5 and `default` to a policy)"
)]
struct PoliciesOutline {
    #[serde(rename = "P1")]
    p1: Option<Value>,
    #[serde(rename = "P2")]
    p2: Option<Value>,
    #[serde(rename = "P3")]
    p3: Option<Value>,
    #[serde(rename = "P4")]
    p4: Option<Value>,
    #[serde(rename = "P5")]
    p5: Option<Value>,
    default: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an SLA policy (a mapping with `first_response`, `resolution` and `calendar`)"
)]
struct PolicyOutline {
    first_response: Option<Value>,
    resolution: Option<Value>,
    calendar: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a calendar: `24x7` or a mapping with `timezone`, `days`, `hours` and `holidays`"
)]
struct CalendarOutline {
    timezone: Option<Value>,
    days: Option<Value>,
    hours: Option<Value>,
    holidays: Option<Value>,
}

/// What an entry sets; `None` = take it from the next level.
#[derive(Default, Clone)]
struct Partial {
    first_response: Option<TimeDelta>,
    resolution: Option<TimeDelta>,
    calendar: Option<Calendar>,
}

pub(super) fn sla(check: &mut Check<'_>, value: Option<Value>) -> SlaPolicies {
    let mut policies = SlaPolicies::default();
    let at = [Key("sla")];
    let Some(outline) = value.and_then(|value| check.strict::<SlaOutline>(value, &at)) else {
        return policies;
    };
    if let Some(warn_at) = check.field::<f64>(&at, "warn_at", outline.warn_at) {
        if warn_at > 0.0 && warn_at < 1.0 {
            policies.warn_at = warn_at;
        } else {
            check.at(
                &[Key("sla"), Key("warn_at")],
                format!("warn_at must be a share of the target between 0 and 1 (exclusive), e.g. 0.75; got {warn_at}"),
            );
        }
    }
    if let Some(start) = check.field::<String>(&at, "start", outline.start) {
        match start.as_str() {
            "opened" => policies.start = ClockStart::Opened,
            "detected" => policies.start = ClockStart::Detected,
            other => check.at(
                &[Key("sla"), Key("start")],
                format!("invalid start `{other}`; expected `opened` or `detected`"),
            ),
        }
    }
    let calendar = outline
        .calendar
        .and_then(|value| calendar(check, &[Key("sla"), Key("calendar")], value))
        .unwrap_or(Calendar::Always);
    for (kind, value) in [
        (Kind::Incident, outline.incident),
        (Kind::Request, outline.request),
    ] {
        let builtin = match kind {
            Kind::Incident => &policies.incident,
            Kind::Request => &policies.request,
        };
        let merged = kind_policies(check, kind, value, builtin, &calendar);
        match kind {
            Kind::Incident => policies.incident = merged,
            Kind::Request => policies.request = merged,
        }
    }
    if let Some(objective) = target(
        check,
        &[Key("sla"), Key("mean_resolution_objective")],
        outline.mean_resolution_objective,
    ) {
        policies.mean_resolution_objective = objective;
    }
    if let Some(deadline) = target(
        check,
        &[Key("sla"), Key("breach_notification")],
        outline.breach_notification,
    ) {
        policies.breach_notification = deadline;
    }
    policies
}

/// `sla.incident` or `sla.request`: five merged policies.
fn kind_policies(
    check: &mut Check<'_>,
    kind: Kind,
    value: Option<Value>,
    builtin: &[SlaPolicy; 5],
    calendar: &Calendar,
) -> [SlaPolicy; 5] {
    let key = kind.as_str();
    let at = [Key("sla"), Key(key)];
    let outline = value.and_then(|value| check.strict::<PoliciesOutline>(value, &at));
    let (listed, default) = match outline {
        Some(o) => (
            [o.p1, o.p2, o.p3, o.p4, o.p5],
            o.default
                .and_then(|value| partial(check, key, "default", value))
                .unwrap_or_default(),
        ),
        None => (Default::default(), Partial::default()),
    };
    let mut merged = builtin.clone();
    for ((priority, value), policy) in Priority::ALL.into_iter().zip(listed).zip(&mut merged) {
        let own = value
            .and_then(|value| partial(check, key, priority.as_str(), value))
            .unwrap_or_default();
        if let Some(target) = own.first_response.or(default.first_response) {
            policy.first_response = target;
        }
        if let Some(target) = own.resolution.or(default.resolution) {
            policy.resolution = target;
        }
        policy.calendar = own
            .calendar
            .or_else(|| default.calendar.clone())
            .unwrap_or_else(|| calendar.clone());
    }
    merged
}

/// One entry, `sla.<kind>.<key>`.
fn partial(check: &mut Check<'_>, kind: &str, key: &str, value: Value) -> Option<Partial> {
    let at = [Key("sla"), Key(kind), Key(key)];
    let outline = check.strict::<PolicyOutline>(value, &at)?;
    Some(Partial {
        first_response: target(
            check,
            &[Key("sla"), Key(kind), Key(key), Key("first_response")],
            outline.first_response,
        ),
        resolution: target(
            check,
            &[Key("sla"), Key(kind), Key(key), Key("resolution")],
            outline.resolution,
        ),
        calendar: outline.calendar.and_then(|value| {
            calendar(
                check,
                &[Key("sla"), Key(kind), Key(key), Key("calendar")],
                value,
            )
        }),
    })
}

/// A target duration (> 0).
fn target(check: &mut Check<'_>, path: &[Segment<'_>], value: Option<Value>) -> Option<TimeDelta> {
    let text: String = check.strict(value?, path)?;
    let duration = check.duration(path, Some(&text), Duration::ZERO)?;
    if duration.is_zero() {
        check.at(path, "an SLA target must be greater than 0".to_owned());
        return None;
    }
    match TimeDelta::from_std(duration) {
        Ok(delta) => Some(delta),
        Err(_) => {
            check.at(path, format!("duration `{text}` is too large"));
            None
        }
    }
}

/// `24x7`, or business hours.
fn calendar(check: &mut Check<'_>, path: &[Segment<'_>], value: Value) -> Option<Calendar> {
    if let Value::String(text) = &value {
        if text == "24x7" {
            return Some(Calendar::Always);
        }
        check.at(
            path,
            format!("invalid calendar `{text}`; expected `24x7` or a mapping with `timezone`, `days`, `hours` and `holidays`"),
        );
        return None;
    }
    let outline = check.strict::<CalendarOutline>(value, path)?;
    let before = check.count();
    let field = |key: &'static str| [path, &[Key(key)]].concat();
    let timezone = match check.field::<String>(path, "timezone", outline.timezone) {
        Some(text) => parse_timezone(&text)
            .map_err(|message| check.at(&field("timezone"), message))
            .ok(),
        None => Some(chrono_tz::UTC),
    };
    let days = match check.field::<Vec<String>>(path, "days", outline.days) {
        Some(items) => parse_days(&items)
            .map_err(|message| check.at(&field("days"), message))
            .ok(),
        // Monday to Friday.
        None => Some([true, true, true, true, true, false, false]),
    };
    let hours = match check.field::<String>(path, "hours", outline.hours) {
        Some(text) => parse_hours(&text)
            .map_err(|message| check.at(&field("hours"), message))
            .ok(),
        None => Some((9 * 3600, 17 * 3600)),
    };
    let mut holidays = BTreeSet::new();
    let items: Vec<String> = check
        .field(path, "holidays", outline.holidays)
        .unwrap_or_default();
    for (index, item) in items.iter().enumerate() {
        match parse_holiday(item) {
            Ok(date) => {
                holidays.insert(date);
            }
            Err(message) => {
                let at = [path, &[Key("holidays"), Index(index)]].concat();
                check.at(&at, message);
            }
        }
    }
    if check.count() != before {
        return None;
    }
    let (timezone, days, (open, close)) = (timezone?, days?, hours?);
    Some(Calendar::Business(BusinessHours {
        timezone,
        days,
        open,
        close,
        holidays,
    }))
}
