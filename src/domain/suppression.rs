//! What keeps a firing rule from opening an incident while it keeps measuring: recurring
//! maintenance windows from the config, silences made through the API, and a parent rule
//! whose incident is open (`depends_on`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// A recurring window: from `start` (local time at `utc_offset_seconds`) for `duration`, on
/// the given weekdays (every day when empty). The weekday is the one the window starts on.
pub fn in_maintenance(
    start: NaiveTime,
    duration: Duration,
    weekdays: &[Weekday],
    utc_offset_seconds: i32,
    now: DateTime<Utc>,
) -> bool {
    let Some(offset) = FixedOffset::east_opt(utc_offset_seconds) else {
        return false;
    };
    let Ok(duration) = chrono::Duration::from_std(duration) else {
        return false;
    };
    let local = now.with_timezone(&offset).naive_local();
    // A window may have started on an earlier day and still be running (overnight, or
    // longer than a day): look back as many days as it lasts.
    let days_back = duration.num_days() + 1;
    (0..=days_back).any(|back| {
        let day = local.date() - chrono::Duration::days(back);
        let opens = day.and_time(start);
        (weekdays.is_empty() || weekdays.contains(&day.weekday()))
            && opens <= local
            && local < opens + duration
    })
}

/// A silence: while active, incidents whose labels match every matcher are not opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: u64,
    /// Label name → exact value.
    pub matchers: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
        self.is_active(now)
            && self
                .matchers
                .iter()
                .all(|(name, value)| labels.get(name) == Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[track_caller]
    fn check(start: &str, hours: u64, days: &[Weekday], offset: i32, now: &str, want: bool) {
        let start = NaiveTime::parse_from_str(start, "%H:%M").unwrap();
        let got = in_maintenance(
            start,
            Duration::from_secs(hours * 3600),
            days,
            offset,
            utc(now),
        );
        assert_eq!(
            got, want,
            "{start} +{hours}h {days:?} offset {offset} at {now}"
        );
    }

    #[test]
    fn maintenance_windows() {
        use Weekday::*;
        // 2026-03-07 is a Saturday.
        check("02:00", 2, &[], 0, "2026-03-07T02:30:00Z", true);
        check("02:00", 2, &[], 0, "2026-03-07T04:00:00Z", false);
        check("02:00", 2, &[], 0, "2026-03-07T01:59:59Z", false);
        check("02:00", 2, &[Sat], 0, "2026-03-07T03:00:00Z", true);
        check("02:00", 2, &[Sun], 0, "2026-03-07T03:00:00Z", false);
        // Overnight: Saturday 23:00 for 3 h still runs on Sunday 01:00.
        check("23:00", 3, &[Sat], 0, "2026-03-08T01:00:00Z", true);
        check("23:00", 3, &[Sat], 0, "2026-03-08T02:00:00Z", false);
        // Local time: 02:00 at +07:00 is 19:00 UTC the day before.
        check("02:00", 1, &[Sat], 7 * 3600, "2026-03-06T19:30:00Z", true);
        check("02:00", 1, &[Sat], 7 * 3600, "2026-03-07T02:30:00Z", false);
    }

    #[test]
    fn silences_match_all_their_labels_while_active() {
        let silence = Silence {
            id: 1,
            matchers: BTreeMap::from([("service".to_owned(), "web".to_owned())]),
            starts_at: utc("2026-03-07T00:00:00Z"),
            ends_at: utc("2026-03-07T01:00:00Z"),
            created_by: "alice".to_owned(),
            comment: "deploy".to_owned(),
        };
        let web = BTreeMap::from([
            ("service".to_owned(), "web".to_owned()),
            ("rule".to_owned(), "down".to_owned()),
        ]);
        let db = BTreeMap::from([("service".to_owned(), "db".to_owned())]);
        assert!(silence.matches(&web, utc("2026-03-07T00:30:00Z")));
        assert!(!silence.matches(&db, utc("2026-03-07T00:30:00Z")));
        assert!(
            !silence.matches(&web, utc("2026-03-07T01:00:00Z")),
            "end is exclusive"
        );
        assert!(!silence.matches(&web, utc("2026-03-06T23:59:59Z")));
    }
}
