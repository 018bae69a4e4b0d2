//! `GET /api/v1/sla`: how the service desk met its turnaround times over a window.
//!
//! For each kind (incidents, requests), clock (first response, resolution, and the breach
//! notification deadline of restricted incidents) and priority:
//! clocks met and breached, compliance (met / (met + breached), from counts, never from
//! rounded percentages), and the mean, p50 and p90 of the time the completed clocks took
//! (in their calendars). A clock counts in the window it stopped in; a clock still running
//! counts as breached once it is, and under `open` with its status. Plus the mean
//! resolution time of incidents against `sla.mean_resolution_objective`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::domain::incident::Kind;
use crate::domain::priority::Priority;
use crate::domain::sla::{Phase, SlaClocks, SlaName, SlaPolicies};

/// What the report reads of one incident.
pub struct Clocks<'a> {
    pub kind: Kind,
    pub priority: Priority,
    pub sla: &'a SlaClocks,
}

/// An incident's clocks as the store reads them (`Store::incident_clocks_since`).
impl<'a> From<&'a (Kind, Priority, SlaClocks)> for Clocks<'a> {
    fn from((kind, priority, sla): &'a (Kind, Priority, SlaClocks)) -> Clocks<'a> {
        Clocks {
            kind: *kind,
            priority: *priority,
            sla,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq)]
#[schema(as = SlaReport)]
pub struct Report {
    pub window_seconds: i64,
    pub from: String,
    pub to: String,
    /// `incident` and `request`, each with `first_response`, `resolution` and
    /// `breach_notification`, each by priority and `all`.
    pub kinds: BTreeMap<&'static str, BTreeMap<&'static str, BTreeMap<&'static str, Figures>>>,
    pub mean_resolution: MeanResolution,
}

#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq, Default)]
#[schema(as = SlaFigures)]
pub struct Figures {
    pub target_seconds: Option<f64>,
    pub met: u64,
    pub breached: u64,
    /// met / (met + breached); null without either.
    pub compliance: Option<f64>,
    /// Of the clocks that stopped in the window.
    pub completed: u64,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    /// Clocks not stopped now, by status.
    pub open: Open,
}

#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq, Default)]
#[schema(as = SlaOpenClocks)]
pub struct Open {
    pub ok: u64,
    pub at_risk: u64,
    pub breached: u64,
    pub paused: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema, PartialEq)]
#[schema(as = SlaMeanResolution)]
pub struct MeanResolution {
    pub objective_seconds: f64,
    /// Of the incidents (not requests) resolved in the window.
    pub resolved: u64,
    pub mean_seconds: Option<f64>,
    /// Whether the mean stays within the objective; null when nothing was resolved.
    pub holds: Option<bool>,
}

const CLOCKS: [SlaName; 3] = SlaName::ALL;
const KINDS: [Kind; 2] = [Kind::Incident, Kind::Request];

#[derive(Default)]
struct Tally {
    met: u64,
    breached: u64,
    durations: Vec<TimeDelta>,
    open: Open,
}

impl Tally {
    fn figures(mut self, target: Option<TimeDelta>) -> Figures {
        self.durations.sort_unstable();
        let decided = self.met + self.breached;
        #[allow(clippy::cast_precision_loss)]
        Figures {
            target_seconds: target.map(|t| t.as_seconds_f64()),
            met: self.met,
            breached: self.breached,
            compliance: (decided > 0).then(|| self.met as f64 / decided as f64),
            completed: self.durations.len() as u64,
            mean_seconds: mean(&self.durations),
            p50_seconds: quantile(&self.durations, 0.5),
            p90_seconds: quantile(&self.durations, 0.9),
            open: self.open,
        }
    }
}

fn mean(sorted: &[TimeDelta]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let total: i128 = sorted
        .iter()
        .map(|d| i128::from(d.num_milliseconds()))
        .sum();
    #[allow(clippy::cast_precision_loss)]
    Some(total as f64 / sorted.len() as f64 / 1000.0)
}

/// Nearest rank: the smallest value with at least `q` of the values at or below it.
fn quantile(sorted: &[TimeDelta], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_seconds_f64())
}

/// The report over `[now - window, now]`.
pub fn report<'a>(
    incidents: impl IntoIterator<Item = Clocks<'a>>,
    policies: &SlaPolicies,
    window: TimeDelta,
    now: DateTime<Utc>,
) -> Report {
    let from = now - window;
    // (kind, clock, priority) → tally; `None` priority is the kind's total.
    let mut tallies: BTreeMap<(usize, usize, Option<Priority>), Tally> = BTreeMap::new();
    let mut resolutions: Vec<TimeDelta> = Vec::new();
    for incident in incidents {
        let k = KINDS.iter().position(|k| *k == incident.kind).unwrap_or(0);
        for (c, name) in CLOCKS.into_iter().enumerate() {
            let Some(clock) = incident.sla.get(name) else {
                continue;
            };
            let stopped_in_window = clock.stopped_at.is_some_and(|at| at > from && at <= now);
            for key in [Some(clock.priority), None] {
                let tally = tallies.entry((k, c, key)).or_default();
                match clock.phase() {
                    Phase::Stopped if stopped_in_window => {
                        if clock.breached {
                            tally.breached += 1;
                        } else {
                            tally.met += 1;
                        }
                        tally.durations.push(clock.elapsed);
                    }
                    Phase::Stopped => {}
                    phase => {
                        if clock.breached {
                            tally.breached += 1;
                            tally.open.breached += 1;
                        } else if phase == Phase::Paused {
                            tally.open.paused += 1;
                        } else if clock.warned {
                            tally.open.at_risk += 1;
                        } else {
                            tally.open.ok += 1;
                        }
                    }
                }
            }
            if incident.kind == Kind::Incident && name == SlaName::Resolution && stopped_in_window {
                resolutions.push(clock.elapsed);
            }
        }
    }
    let mut kinds = BTreeMap::new();
    for (k, kind) in KINDS.into_iter().enumerate() {
        let mut clocks = BTreeMap::new();
        for (c, name) in CLOCKS.into_iter().enumerate() {
            let mut rows = BTreeMap::new();
            for priority in Priority::ALL {
                let tally = tallies.remove(&(k, c, Some(priority))).unwrap_or_default();
                let target = policies.target(name, kind, priority);
                rows.insert(priority.as_str(), tally.figures(Some(target)));
            }
            let all = tallies.remove(&(k, c, None)).unwrap_or_default();
            rows.insert("all", all.figures(None));
            clocks.insert(name.as_str(), rows);
        }
        kinds.insert(kind.as_str(), clocks);
    }
    let mean_seconds = mean(&resolutions);
    let objective = policies.mean_resolution_objective.as_seconds_f64();
    Report {
        window_seconds: window.num_seconds(),
        from: crate::view::timestamp(from),
        to: crate::view::timestamp(now),
        kinds,
        mean_resolution: MeanResolution {
            objective_seconds: objective,
            resolved: resolutions.len() as u64,
            mean_seconds,
            holds: mean_seconds.map(|mean| mean <= objective),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sla::SlaClock;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_571_200 + seconds, 0).unwrap()
    }

    fn stopped(priority: Priority, target_h: i64, took_h: i64, stopped: i64) -> SlaClock {
        let mut clock = SlaClock::start(priority, TimeDelta::hours(target_h), at(0));
        clock.running_since = None;
        clock.elapsed = TimeDelta::hours(took_h);
        clock.stopped_at = Some(at(stopped));
        clock.breached = took_h > target_h;
        clock
    }

    #[test]
    fn counts_compliance_and_quantiles_per_priority_and_kind() {
        let policies = SlaPolicies::default();
        let day = 86_400;
        let incidents: Vec<SlaClocks> = vec![
            // P1 resolutions (target 4h): 2h and 3h met, 6h breached.
            SlaClocks {
                resolution: Some(stopped(Priority::P1, 4, 2, day)),
                ..SlaClocks::default()
            },
            SlaClocks {
                resolution: Some(stopped(Priority::P1, 4, 3, day)),
                ..SlaClocks::default()
            },
            SlaClocks {
                resolution: Some(stopped(Priority::P1, 4, 6, day)),
                ..SlaClocks::default()
            },
            // Outside the 7-day window: not counted.
            SlaClocks {
                resolution: Some(stopped(Priority::P1, 4, 9, -day)),
                ..SlaClocks::default()
            },
            // Still running and breached: counted as a breach and as open.
            SlaClocks {
                resolution: Some({
                    let mut clock = SlaClock::start(Priority::P1, TimeDelta::hours(4), at(0));
                    clock.breached = true;
                    clock
                }),
                ..SlaClocks::default()
            },
        ];
        let now = at(7 * day - 1);
        let report = report(
            incidents.iter().map(|sla| Clocks {
                kind: Kind::Incident,
                priority: Priority::P1,
                sla,
            }),
            &policies,
            TimeDelta::days(7),
            now,
        );
        let p1 = &report.kinds["incident"]["resolution"]["P1"];
        assert_eq!((p1.met, p1.breached, p1.completed), (2, 2, 3));
        assert_eq!(p1.compliance, Some(0.5));
        assert_eq!(p1.target_seconds, Some(4.0 * 3600.0));
        assert_eq!(p1.mean_seconds, Some(11.0 / 3.0 * 3600.0));
        assert_eq!(p1.p50_seconds, Some(3.0 * 3600.0));
        assert_eq!(p1.p90_seconds, Some(6.0 * 3600.0));
        assert_eq!(p1.open.breached, 1);
        assert_eq!(report.kinds["incident"]["resolution"]["all"].met, 2);
        let p2 = &report.kinds["incident"]["resolution"]["P2"];
        assert_eq!((p2.met, p2.compliance, p2.mean_seconds), (0, None, None));
        assert_eq!(report.kinds["request"]["resolution"]["all"].completed, 0);
        assert_eq!(report.mean_resolution.resolved, 3);
        assert_eq!(
            report.mean_resolution.holds,
            Some(true),
            "mean 3h40m within 24h"
        );
    }

    #[test]
    fn the_mean_resolution_objective_can_fail_while_most_clocks_are_met() {
        let policies = SlaPolicies::default();
        // P5 (72h target): 60h and 50h are met, yet their mean is above 24h.
        let clocks = [
            SlaClocks {
                resolution: Some(stopped(Priority::P5, 72, 60, 100)),
                ..SlaClocks::default()
            },
            SlaClocks {
                resolution: Some(stopped(Priority::P5, 72, 50, 100)),
                ..SlaClocks::default()
            },
        ];
        let report = report(
            clocks.iter().map(|sla| Clocks {
                kind: Kind::Incident,
                priority: Priority::P5,
                sla,
            }),
            &policies,
            TimeDelta::days(30),
            at(200),
        );
        assert_eq!(
            report.kinds["incident"]["resolution"]["P5"].compliance,
            Some(1.0)
        );
        assert_eq!(report.mean_resolution.mean_seconds, Some(55.0 * 3600.0));
        assert_eq!(report.mean_resolution.holds, Some(false));
    }
}
