//! Impact × urgency → priority, the ITIL matrix: priority = impact + urgency − 1 with
//! high = 1, medium = 2, low = 3, giving P1 (critical) … P5 (planning).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Impact or urgency.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::High, Level::Medium, Level::Low];

    fn rank(self) -> u8 {
        match self {
            Level::High => 1,
            Level::Medium => 2,
            Level::Low => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Level::High),
            "medium" => Ok(Level::Medium),
            "low" => Ok(Level::Low),
            other => Err(format!(
                "unknown level `{other}`; expected high, medium or low"
            )),
        }
    }
}

/// P1 (most urgent) … P5.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

impl Priority {
    pub const ALL: [Priority; 5] = [
        Priority::P1,
        Priority::P2,
        Priority::P3,
        Priority::P4,
        Priority::P5,
    ];

    /// The default ITIL matrix.
    pub fn from_matrix(impact: Level, urgency: Level) -> Priority {
        Priority::ALL[usize::from(impact.rank() + urgency.rank() - 2)]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::*;
    use Priority::*;

    #[track_caller]
    fn check(impact: Level, urgency: Level, want: Priority) {
        assert_eq!(
            Priority::from_matrix(impact, urgency),
            want,
            "impact={impact} urgency={urgency}"
        );
    }

    #[test]
    fn itil_matrix() {
        check(High, High, P1);
        check(High, Medium, P2);
        check(High, Low, P3);
        check(Medium, High, P2);
        check(Medium, Medium, P3);
        check(Medium, Low, P4);
        check(Low, High, P3);
        check(Low, Medium, P4);
        check(Low, Low, P5);
    }

    #[test]
    fn level_parses_only_known_words() {
        assert_eq!("medium".parse::<Level>(), Ok(Medium));
        assert!("Medium".parse::<Level>().is_err());
        assert!("critical".parse::<Level>().is_err());
    }
}
