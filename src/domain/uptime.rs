//! Daily uptime per probe: how many runs a probe made each day and how many of them
//! succeeded (a run succeeds when every subject's result is [`Observation::success`], the
//! probe's own verdict, as `incidentd_probe_success` says). The status page's 90-day bar and
//! its 7/30/90-day figures are read from here.
//!
//! **Days are UTC calendar days** (midnight to midnight UTC), whatever the deployment's
//! time zone: a day's counts never move when a zone's offset changes, and every reader
//! agrees on where a day starts. A day is stored as the number of days since 1970-01-01
//! ([`Day`]).
//!
//! Memory is bounded: a probe keeps at most [`KEPT_DAYS`] consecutive days (8 bytes each,
//! 800 bytes a probe, 80 MB for 100,000 probes once they have run for 100 days), and the
//! map is persistent (`imbl`), so the read model publishes it by copying a root and an
//! engine batch copies only the probes it touched.
//!
//! [`Observation::success`]: super::observation::Observation::success

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// A UTC calendar day: days since 1970-01-01.
pub type Day = i32;

/// How many days a probe keeps, today included: the 90-day bar and a margin for a reader
/// whose "today" is a day behind or ahead of the last run.
pub const KEPT_DAYS: i32 = 100;

const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC day of `at`.
pub fn day_of(at: DateTime<Utc>) -> Day {
    // Years ±5,000,000 fit an i32 of days; chrono's range is far narrower.
    at.timestamp().div_euclid(SECONDS_PER_DAY) as Day
}

/// The [`Day`] of a calendar date.
pub fn day_of_date(date: NaiveDate) -> Day {
    day_of(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The calendar date of a [`Day`] (the epoch for one chrono cannot represent, which no
/// run's time gives).
pub fn date_of(day: Day) -> NaiveDate {
    DateTime::from_timestamp(i64::from(day) * SECONDS_PER_DAY, 0)
        .unwrap_or_default()
        .date_naive()
}

/// One probe's runs on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCount {
    pub runs: u32,
    /// Runs that succeeded; never more than `runs`.
    pub ok: u32,
}

impl DayCount {
    fn add(&mut self, other: DayCount) {
        self.runs = self.runs.saturating_add(other.runs);
        self.ok = self.ok.saturating_add(other.ok);
    }
}

/// One day of the bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DayUptime {
    pub day: NaiveDate,
    /// `ok / runs` over the probes asked for; `None` when none of them ran that day (no
    /// data, not an outage).
    pub ratio: Option<f64>,
    pub runs: u32,
}

/// One probe's days: consecutive from `first`, a day without runs counts zero. Dense
/// rather than a map: a probe that runs at all runs every day, and 8 bytes a day is the
/// least a day can cost.
#[derive(Debug, Clone, Default, PartialEq)]
struct ProbeDays {
    first: Day,
    counts: VecDeque<DayCount>,
}

impl ProbeDays {
    fn last(&self) -> Day {
        self.first + self.counts.len() as Day - 1
    }

    fn get(&self, day: Day) -> DayCount {
        usize::try_from(day - self.first)
            .ok()
            .and_then(|i| self.counts.get(i).copied())
            .unwrap_or_default()
    }

    /// The counts of `day`, made room for: later days push the oldest out beyond
    /// [`KEPT_DAYS`]; an earlier day that no longer fits is `None`.
    fn slot(&mut self, day: Day) -> Option<&mut DayCount> {
        if self.counts.is_empty() || day - self.last() >= KEPT_DAYS {
            self.first = day;
            self.counts.clear();
            self.counts.push_back(DayCount::default());
        } else if day > self.last() {
            while self.last() < day {
                self.counts.push_back(DayCount::default());
            }
            while self.counts.len() > KEPT_DAYS as usize {
                self.counts.pop_front();
                self.first += 1;
            }
        } else if day < self.first {
            if self.last() - day >= KEPT_DAYS {
                return None;
            }
            while self.first > day {
                self.counts.push_front(DayCount::default());
                self.first -= 1;
            }
        }
        self.counts.get_mut((day - self.first) as usize)
    }

    /// Drops the days before `before`; true when nothing with runs is left.
    fn prune(&mut self, before: Day) -> bool {
        while self.first < before && !self.counts.is_empty() {
            self.counts.pop_front();
            self.first += 1;
        }
        while self.counts.front().is_some_and(|c| c.runs == 0) {
            self.counts.pop_front();
            self.first += 1;
        }
        self.counts.is_empty()
    }
}

/// Every probe's days. Cloning it is cheap (a persistent map of shared entries).
#[derive(Debug, Clone, Default)]
pub struct UptimeHistory {
    probes: imbl::HashMap<Arc<str>, ProbeDays>,
}

impl UptimeHistory {
    /// Counts one run of `probe` at `at` in its day. Returns the day and its counts now
    /// (what the store must hold), or `None` for a run older than the days kept.
    pub fn record(&mut self, probe: &str, at: DateTime<Utc>, ok: bool) -> Option<(Day, DayCount)> {
        let run = DayCount {
            runs: 1,
            ok: u32::from(ok),
        };
        self.add(probe, day_of(at), run)
    }

    /// Adds `count` to the probe's day (a stored day at start-up). Returns the day and its
    /// counts now, or `None` for a day older than the days kept.
    pub fn add(&mut self, probe: &str, day: Day, count: DayCount) -> Option<(Day, DayCount)> {
        let count = DayCount {
            runs: count.runs,
            ok: count.ok.min(count.runs),
        };
        if !self.probes.contains_key(probe) {
            self.probes.insert(Arc::from(probe), ProbeDays::default());
        }
        let slot = self.probes.get_mut(probe)?.slot(day)?;
        slot.add(count);
        Some((day, *slot))
    }

    /// The probe's counts on `day` (zero without data).
    pub fn day(&self, probe: &str, day: Day) -> DayCount {
        self.probes
            .get(probe)
            .map(|days| days.get(day))
            .unwrap_or_default()
    }

    /// The counts of `probes` together on `day`.
    fn sum(&self, probes: &[&str], day: Day) -> DayCount {
        let mut total = DayCount::default();
        for probe in probes {
            total.add(self.day(probe, day));
        }
        total
    }

    /// The share of successful runs of `probes` (a service fed by several counts them all)
    /// from `since` to `until`, both included; `None` when none of them ran then.
    pub fn ratio(&self, probes: &[&str], since: NaiveDate, until: NaiveDate) -> Option<f64> {
        let (since, until) = (day_of_date(since), day_of_date(until));
        let mut total = DayCount::default();
        for probe in probes {
            let Some(days) = self.probes.get(*probe) else {
                continue;
            };
            // Only the days kept: a range of years costs what 100 days cost.
            for day in since.max(days.first)..=until.min(days.last()) {
                total.add(days.get(day));
            }
        }
        ratio(total)
    }

    /// The `days` days up to `today` (at most [`KEPT_DAYS`]), oldest first, each with the
    /// share of successful runs of `probes` that day.
    pub fn bar(&self, probes: &[&str], today: NaiveDate, days: u32) -> Vec<DayUptime> {
        let today = day_of_date(today);
        let days = days.min(KEPT_DAYS as u32) as Day;
        (today - days + 1..=today)
            .map(|day| {
                let total = self.sum(probes, day);
                DayUptime {
                    day: date_of(day),
                    ratio: ratio(total),
                    runs: total.runs,
                }
            })
            .collect()
    }

    /// Forgets the days before `before`, and the probes left without any.
    pub fn prune(&mut self, before: Day) {
        let emptied: Vec<Arc<str>> = self
            .probes
            .iter_mut()
            .filter_map(|(name, days)| days.prune(before).then(|| name.clone()))
            .collect();
        for name in emptied {
            self.probes.remove(&name);
        }
    }

    /// Forgets the probes `keep` refuses (no longer configured); returns their names.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> Vec<String> {
        let gone: Vec<Arc<str>> = self
            .probes
            .keys()
            .filter(|name| !keep(name))
            .cloned()
            .collect();
        for name in &gone {
            self.probes.remove(name);
        }
        gone.iter().map(|name| name.to_string()).collect()
    }

    /// The probes with days kept.
    pub fn probes(&self) -> impl Iterator<Item = &str> {
        self.probes.keys().map(|name| name.as_ref())
    }

    pub fn len(&self) -> usize {
        self.probes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

fn ratio(total: DayCount) -> Option<f64> {
    (total.runs > 0).then(|| f64::from(total.ok) / f64::from(total.runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 time")
    }

    #[test]
    fn days_are_utc_days() {
        for (time, day) in [
            ("1970-01-01T00:00:00Z", "1970-01-01"),
            ("1969-12-31T23:59:59Z", "1969-12-31"),
            ("2024-03-10T23:59:59.999Z", "2024-03-10"),
            ("2024-03-11T00:00:00Z", "2024-03-11"),
            // 01:30 in Paris is still the previous day in UTC.
            ("2024-03-11T01:30:00+02:00", "2024-03-10"),
        ] {
            assert_eq!(date_of(day_of(at(time))), date(day), "{time}");
            assert_eq!(day_of_date(date(day)), day_of(at(time)), "{time}");
        }
        assert_eq!(day_of(at("1970-01-02T00:00:00Z")), 1);
        assert_eq!(day_of(at("1969-12-31T12:00:00Z")), -1);
    }

    #[test]
    fn record_counts_runs_and_successes_per_day() {
        let mut h = UptimeHistory::default();
        let cases = [
            ("2024-05-01T00:00:00Z", true, 1, 1),
            ("2024-05-01T12:00:00Z", false, 2, 1),
            ("2024-05-01T23:59:59Z", true, 3, 2),
            ("2024-05-02T00:00:00Z", false, 1, 0),
        ];
        for (time, ok, runs, oks) in cases {
            let (day, count) = h.record("web", at(time), ok).expect("kept");
            assert_eq!(day, day_of(at(time)));
            assert_eq!(count, DayCount { runs, ok: oks }, "{time}");
        }
        assert_eq!(
            h.day("web", day_of_date(date("2024-05-01"))),
            DayCount { runs: 3, ok: 2 }
        );
        assert_eq!(h.day("other", 0), DayCount::default());
    }

    #[test]
    fn ratio_over_ranges_and_probes() {
        let mut h = UptimeHistory::default();
        // web: 05-01 4/4, 05-03 1/2; api: 05-03 0/2.
        for _ in 0..4 {
            h.record("web", at("2024-05-01T10:00:00Z"), true);
        }
        h.record("web", at("2024-05-03T10:00:00Z"), true);
        h.record("web", at("2024-05-03T11:00:00Z"), false);
        h.record("api", at("2024-05-03T11:00:00Z"), false);
        h.record("api", at("2024-05-03T12:00:00Z"), false);
        let cases: [(&[&str], &str, &str, Option<f64>); 9] = [
            (&["web"], "2024-05-01", "2024-05-01", Some(1.0)),
            (&["web"], "2024-05-01", "2024-05-03", Some(5.0 / 6.0)),
            (&["web"], "2024-05-02", "2024-05-02", None),
            (&["web"], "2024-05-03", "2024-05-03", Some(0.5)),
            (&["web", "api"], "2024-05-03", "2024-05-03", Some(0.25)),
            (&["web", "api"], "2024-04-01", "2024-06-01", Some(5.0 / 8.0)),
            (&["api"], "2024-05-01", "2024-05-02", None),
            (&["nope"], "2024-05-01", "2024-05-03", None),
            // An empty range.
            (&["web"], "2024-05-03", "2024-05-01", None),
        ];
        for (probes, since, until, want) in cases {
            assert_eq!(
                h.ratio(probes, date(since), date(until)),
                want,
                "{probes:?} {since}..={until}"
            );
        }
        // A range of centuries costs the days kept, and answers the same.
        assert_eq!(
            h.ratio(&["web"], NaiveDate::MIN, NaiveDate::MAX),
            Some(5.0 / 6.0)
        );
    }

    #[test]
    fn bar_shows_days_without_data_as_such() {
        let mut h = UptimeHistory::default();
        h.record("web", at("2024-05-01T10:00:00Z"), true);
        h.record("web", at("2024-05-03T10:00:00Z"), false);
        h.record("web", at("2024-05-03T10:01:00Z"), true);
        h.record("db", at("2024-05-03T10:00:00Z"), true);
        let bar = h.bar(&["web", "db"], date("2024-05-04"), 5);
        let want = [
            ("2024-04-30", None, 0),
            ("2024-05-01", Some(1.0), 1),
            ("2024-05-02", None, 0),
            ("2024-05-03", Some(2.0 / 3.0), 3),
            ("2024-05-04", None, 0),
        ];
        assert_eq!(bar.len(), want.len());
        for (got, (day, ratio, runs)) in bar.iter().zip(want) {
            assert_eq!(
                (got.day, got.ratio, got.runs),
                (date(day), ratio, runs),
                "{day}"
            );
        }
        // Bounded whatever is asked.
        assert_eq!(h.bar(&["web"], date("2024-05-04"), u32::MAX).len(), 100);
        assert!(h.bar(&["web"], date("2024-05-04"), 0).is_empty());
    }

    #[test]
    fn a_probe_keeps_at_most_the_kept_days() {
        let start = at("2024-01-01T12:00:00Z");
        let mut h = UptimeHistory::default();
        for day in 0..250 {
            h.record("web", start + chrono::Duration::days(day), true);
        }
        let days = h.probes.get("web").expect("kept");
        assert_eq!(days.counts.len(), KEPT_DAYS as usize);
        assert_eq!(days.last(), day_of(start) + 249);
        assert_eq!(h.day("web", day_of(start) + 149), DayCount::default());
        assert_eq!(
            h.day("web", day_of(start) + 150),
            DayCount { runs: 1, ok: 1 }
        );
        // Too old to keep: not counted.
        assert_eq!(
            h.record("web", start + chrono::Duration::days(149), true),
            None
        );
        assert_eq!(h.record("web", start, true), None);
        // A jump of years starts over rather than filling the gap.
        let later = start + chrono::Duration::days(5_000);
        assert_eq!(
            h.record("web", later, true),
            Some((day_of(later), DayCount { runs: 1, ok: 1 }))
        );
        assert_eq!(h.probes.get("web").expect("kept").counts.len(), 1);
        // Within the days kept but before the first (a clock set back): room is made in
        // front, and the newest days stay.
        let earlier = later - chrono::Duration::days(99);
        assert!(h.record("web", earlier, false).is_some());
        assert_eq!(h.probes.get("web").expect("kept").counts.len(), 100);
        assert_eq!(h.day("web", day_of(earlier)), DayCount { runs: 1, ok: 0 });
        assert_eq!(
            h.record("web", earlier - chrono::Duration::days(1), true),
            None
        );
    }

    #[test]
    fn add_never_takes_more_successes_than_runs() {
        let mut h = UptimeHistory::default();
        let got = h.add("web", 10, DayCount { runs: 2, ok: 9 });
        assert_eq!(got, Some((10, DayCount { runs: 2, ok: 2 })));
        let got = h.add(
            "web",
            10,
            DayCount {
                runs: u32::MAX,
                ok: 1,
            },
        );
        assert_eq!(
            got,
            Some((
                10,
                DayCount {
                    runs: u32::MAX,
                    ok: 3
                }
            ))
        );
    }

    #[test]
    fn prune_and_retain() {
        let mut h = UptimeHistory::default();
        for (probe, day) in [("a", 10), ("a", 20), ("b", 12), ("c", 30)] {
            h.add(probe, day, DayCount { runs: 1, ok: 1 });
        }
        let cases = [
            (5, vec!["a", "b", "c"], (10, 20)),
            (11, vec!["a", "b", "c"], (20, 20)),
            (21, vec!["c"], (0, 0)),
            (31, vec![], (0, 0)),
        ];
        for (before, left, (first_a, last_a)) in cases {
            h.prune(before);
            let mut names: Vec<&str> = h.probes().collect();
            names.sort_unstable();
            assert_eq!(names, left, "before {before}");
            if let Some(a) = h.probes.get("a") {
                assert_eq!((a.first, a.last()), (first_a, last_a), "before {before}");
            }
        }
        let mut h = UptimeHistory::default();
        for probe in ["a", "b", "c"] {
            h.add(probe, 1, DayCount { runs: 1, ok: 0 });
        }
        let mut gone = h.retain(|name| name != "b");
        gone.sort();
        assert_eq!(gone, ["b"]);
        assert_eq!(h.len(), 2);
        assert_eq!(h.day("b", 1), DayCount::default());
    }

    /// A published copy does not change when the engine goes on counting.
    #[test]
    fn a_clone_is_a_snapshot() {
        let mut h = UptimeHistory::default();
        h.add("web", 1, DayCount { runs: 1, ok: 1 });
        let published = h.clone();
        h.add("web", 1, DayCount { runs: 1, ok: 0 });
        assert_eq!(published.day("web", 1), DayCount { runs: 1, ok: 1 });
        assert_eq!(h.day("web", 1), DayCount { runs: 2, ok: 1 });
    }
}
