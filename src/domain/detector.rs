//! The detector: turns a rule's stream of symptom/clean verdicts into fire and recover
//! transitions, with `after` consecutive symptomatic results to fire and `recover_after`
//! consecutive clean ones to recover (hysteresis, so one good result does not close an
//! incident and one bad one does not open it).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// ≥ 1.
    pub after: u32,
    /// ≥ 1.
    pub recover_after: u32,
}

/// One rule's state for one subject. Persisted, so a restart neither re-fires nor loses counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detector {
    pub firing: bool,
    /// Consecutive symptomatic results (reset by a clean one), saturating at `after`.
    pub symptomatic_streak: u32,
    /// Consecutive clean results (reset by a symptomatic one), saturating at
    /// `recover_after`.
    pub clean_streak: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Recovered,
}

impl Detector {
    /// Feeds one verdict (`true` = symptom present) and says whether the rule changed state.
    ///
    /// The streaks saturate at their thresholds, so a steady stream of equal verdicts leaves
    /// the detector unchanged and the engine has nothing to write.
    pub fn observe(&mut self, symptom: bool, thresholds: Thresholds) -> Option<Transition> {
        if symptom {
            self.symptomatic_streak = (self.symptomatic_streak + 1).min(thresholds.after);
            self.clean_streak = 0;
            if !self.firing && self.symptomatic_streak >= thresholds.after {
                self.firing = true;
                return Some(Transition::Fired);
            }
        } else {
            self.clean_streak = (self.clean_streak + 1).min(thresholds.recover_after);
            self.symptomatic_streak = 0;
            if self.firing && self.clean_streak >= thresholds.recover_after {
                self.firing = false;
                return Some(Transition::Recovered);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transition::*;

    /// Feeds `verdicts` ('x' symptom, '.' clean) and compares the transitions at each step
    /// ('F' fired, 'R' recovered, '-' nothing).
    #[track_caller]
    fn check(after: u32, recover_after: u32, verdicts: &str, want: &str) {
        let thresholds = Thresholds {
            after,
            recover_after,
        };
        let mut detector = Detector::default();
        let got: String = verdicts
            .chars()
            .map(|c| match detector.observe(c == 'x', thresholds) {
                Some(Fired) => 'F',
                Some(Recovered) => 'R',
                None => '-',
            })
            .collect();
        assert_eq!(
            got, want,
            "after={after} recover_after={recover_after} verdicts={verdicts}"
        );
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
    fn steady_verdicts_reach_a_fixed_point() {
        let thresholds = Thresholds {
            after: 3,
            recover_after: 2,
        };
        for symptom in [true, false] {
            let mut detector = Detector::default();
            for _ in 0..5 {
                detector.observe(symptom, thresholds);
            }
            let settled = detector;
            detector.observe(symptom, thresholds);
            assert_eq!(detector, settled, "symptom={symptom}");
        }
    }
}
