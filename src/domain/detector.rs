//! The detector: turns a rule's stream of symptom/clean verdicts for one subject into fire
//! and recover transitions.
//!
//! - `after` consecutive symptomatic results **and**, when set, `for` elapsed since the
//!   first of them are needed to fire (Prometheus' `for:`);
//! - `recover_after` consecutive clean results are needed to recover (hysteresis, so one
//!   good result does not close an incident and one bad one does not open it);
//! - **flapping**: when the verdict changed `flapping_changes` times or more within the
//!   last `flapping_window` results, the subject is flapping and a firing rule is held
//!   firing — one incident stays open instead of opening and closing repeatedly — until the
//!   verdicts settle.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this many recent verdicts are remembered for flap detection.
pub const MAX_FLAPPING_WINDOW: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// ≥ 1.
    pub after: u32,
    /// ≥ 1.
    pub recover_after: u32,
    /// The symptom must have lasted this long (measured from the first symptomatic result
    /// of the streak) before firing.
    pub for_: Option<Duration>,
    /// ≥ 1; 0 disables flap detection.
    pub flapping_changes: u32,
    /// 2 ..= [`MAX_FLAPPING_WINDOW`].
    pub flapping_window: u32,
}

impl Thresholds {
    pub fn new(after: u32, recover_after: u32) -> Thresholds {
        Thresholds {
            after,
            recover_after,
            for_: None,
            flapping_changes: 4,
            flapping_window: 20,
        }
    }
}

/// One rule's state for one subject. Persisted, so a restart neither re-fires nor loses
/// counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detector {
    pub firing: bool,
    /// Consecutive symptomatic results (reset by a clean one), saturating at `after`.
    pub symptomatic_streak: u32,
    /// Consecutive clean results (reset by a symptomatic one), saturating at
    /// `recover_after`.
    pub clean_streak: u32,
    /// When the current symptomatic streak began.
    pub symptom_since: Option<DateTime<Utc>>,
    /// The last verdicts, newest in bit 0 (1 = symptom).
    pub verdicts: u64,
    /// How many verdicts `verdicts` holds (saturating at the window).
    pub seen: u32,
    pub flapping: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Recovered,
}

impl Detector {
    /// Whether `other` differs in anything but the verdict history (`verdicts`, `seen`):
    /// the engine stores a detector only then, so a new probe does not write on each of its
    /// first results while the flap window fills. The history is stored with the next real
    /// change; after a restart flap detection may start from a shorter history.
    pub fn differs_beyond_history(&self, other: &Detector) -> bool {
        Detector {
            verdicts: other.verdicts,
            seen: other.seen,
            ..*self
        } != *other
    }

    /// Feeds one verdict (`true` = symptom present) seen at `at` and says whether the rule
    /// changed state.
    ///
    /// The streaks saturate at their thresholds and the verdict history is bounded, so a
    /// steady stream of equal verdicts reaches a fixed point and the engine has nothing to
    /// write.
    pub fn observe(
        &mut self,
        symptom: bool,
        at: DateTime<Utc>,
        thresholds: Thresholds,
    ) -> Option<Transition> {
        self.remember(symptom, thresholds);
        if symptom {
            if self.symptomatic_streak == 0 {
                self.symptom_since = Some(at);
            }
            self.symptomatic_streak = (self.symptomatic_streak + 1).min(thresholds.after);
            self.clean_streak = 0;
            let lasted = thresholds.for_.is_none_or(|for_| {
                self.symptom_since.is_some_and(|since| {
                    chrono::Duration::from_std(for_).is_ok_and(|for_| at - since >= for_)
                })
            });
            if !self.firing && self.symptomatic_streak >= thresholds.after && lasted {
                self.firing = true;
                return Some(Transition::Fired);
            }
        } else {
            self.clean_streak = (self.clean_streak + 1).min(thresholds.recover_after);
            self.symptomatic_streak = 0;
            self.symptom_since = None;
            if self.firing && self.clean_streak >= thresholds.recover_after && !self.flapping {
                self.firing = false;
                return Some(Transition::Recovered);
            }
        }
        None
    }

    fn remember(&mut self, symptom: bool, thresholds: Thresholds) {
        let window = thresholds.flapping_window.clamp(2, MAX_FLAPPING_WINDOW);
        self.verdicts = (self.verdicts << 1) | u64::from(symptom);
        if window < 64 {
            self.verdicts &= (1u64 << window) - 1;
        }
        self.seen = (self.seen + 1).min(window);
        self.flapping =
            thresholds.flapping_changes > 0 && self.changes(window) >= thresholds.flapping_changes;
    }

    /// Verdict changes between neighbours among the remembered results.
    fn changes(&self, window: u32) -> u32 {
        let pairs = self.seen.min(window).saturating_sub(1);
        if pairs == 0 {
            return 0;
        }
        let differences = self.verdicts ^ (self.verdicts >> 1);
        let mask = if pairs >= 64 {
            u64::MAX
        } else {
            (1u64 << pairs) - 1
        };
        (differences & mask).count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transition::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    /// Feeds `verdicts` ('x' symptom, '.' clean), one every 10 s, and compares the
    /// transitions at each step ('F' fired, 'R' recovered, '-' nothing).
    #[track_caller]
    fn check_with(thresholds: Thresholds, verdicts: &str, want: &str) {
        let mut detector = Detector::default();
        let got: String = verdicts
            .chars()
            .enumerate()
            .map(
                |(i, c)| match detector.observe(c == 'x', at(10 * i as i64), thresholds) {
                    Some(Fired) => 'F',
                    Some(Recovered) => 'R',
                    None => '-',
                },
            )
            .collect();
        assert_eq!(got, want, "{thresholds:?} verdicts={verdicts}");
    }

    #[track_caller]
    fn check(after: u32, recover_after: u32, verdicts: &str, want: &str) {
        let thresholds = Thresholds {
            flapping_changes: 0,
            ..Thresholds::new(after, recover_after)
        };
        check_with(thresholds, verdicts, want);
    }

    #[test]
    fn fires_after_consecutive_symptoms() {
        check(1, 1, "x", "F");
        check(3, 2, "xx.xxx", "-----F");
        check(3, 2, "xxxxxx", "--F---");
        check(2, 1, ".x.x.x", "------");
    }

    #[test]
    fn recovers_after_consecutive_clean_results() {
        check(1, 2, "x.x..", "F---R");
        check(1, 1, "x.x.", "FRFR");
        check(2, 3, "xx..x...", "-F-----R");
    }

    #[test]
    fn clean_results_while_not_firing_change_nothing() {
        check(1, 2, "....", "----");
    }

    #[test]
    fn for_needs_the_symptom_to_last() {
        let for_30s = Thresholds {
            for_: Some(Duration::from_secs(30)),
            flapping_changes: 0,
            ..Thresholds::new(1, 1)
        };
        // One result every 10 s: the streak starting at t=0 has lasted 30 s at the 4th.
        check_with(for_30s, "xxxxx", "---F-");
        // A clean result restarts the clock.
        check_with(for_30s, "xxx.xxxx", "-------F");
        // `after` and `for` must both hold.
        let both = Thresholds {
            after: 5,
            ..for_30s
        };
        check_with(both, "xxxxxx", "----F-");
    }

    #[test]
    fn flapping_holds_the_rule_firing_until_it_settles() {
        let thresholds = Thresholds::new(1, 1);
        // Without flap detection every change opens and closes.
        check(1, 1, "x.x.x.", "FRFRFR");
        // With it (4 changes in 20): the 4th change (step 5) makes it flapping; it then
        // stays firing until fewer than 4 changes remain among the last 20 results.
        check_with(
            thresholds,
            "x.x.x.......................",
            "FRFRF----------------R------",
        );
    }

    #[test]
    fn flapping_is_reported_and_ends() {
        let thresholds = Thresholds::new(1, 1);
        let mut detector = Detector::default();
        for (i, c) in "x.x.x".chars().enumerate() {
            detector.observe(c == 'x', at(i as i64), thresholds);
        }
        assert!(detector.flapping);
        for i in 5..30 {
            detector.observe(false, at(i), thresholds);
        }
        assert!(!detector.flapping);
        assert!(!detector.firing);
    }

    #[test]
    fn only_more_than_the_verdict_history_counts_as_a_change() {
        let thresholds = Thresholds::new(3, 2);
        let mut detector = Detector::default();
        detector.observe(false, at(0), thresholds);
        detector.observe(false, at(5), thresholds); // the clean streak is full
        let before = detector;
        detector.observe(false, at(8), thresholds);
        assert_ne!(detector, before, "the verdict history moved");
        assert!(
            !detector.differs_beyond_history(&before),
            "nothing else did"
        );
        let before = detector;
        detector.observe(true, at(10), thresholds);
        assert!(
            detector.differs_beyond_history(&before),
            "a symptom starts a streak"
        );
    }

    #[test]
    fn steady_verdicts_reach_a_fixed_point() {
        let thresholds = Thresholds::new(3, 2);
        for symptom in [true, false] {
            let mut detector = Detector::default();
            for i in 0..30 {
                detector.observe(symptom, at(i), thresholds);
            }
            let settled = detector;
            detector.observe(symptom, at(31), thresholds);
            assert_eq!(detector, settled, "symptom={symptom}");
        }
    }
}
