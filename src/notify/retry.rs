//! When to try a failed webhook event again, and when to give up on it. Pure: `now` and
//! the jitter are arguments.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What comes after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    After(Duration),
    /// The event is `max_age` old: give up, keep it as a dead letter.
    DeadLetter,
}

/// The shortest wait a consumer's `Retry-After` gets: `0`, or a date already past, asks
/// for none, and honoured literally, a consumer answering so forever is a busy loop (and a
/// delivery-log row per attempt). One second is the header's own resolution.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The wait after the `failures`-th failed attempt of an event created at `created_at`:
/// the consumer's `Retry-After` if it sent one (at least [`MIN_RETRY_AFTER`]), else `schedule[failures - 1]` (the last
/// wait repeats) times a jitter factor between 0.8 and 1.2 (`jitter` in [0, 1)). Never past
/// the event's deadline (`created_at + max_age`): the last attempt is at the deadline, and
/// a failure at or after it makes a dead letter.
pub fn next(
    schedule: &[Duration],
    max_age: Duration,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    failures: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Next {
    let age = (now - created_at).to_std().unwrap_or(Duration::ZERO);
    let Some(left) = max_age.checked_sub(age).filter(|left| !left.is_zero()) else {
        return Next::DeadLetter;
    };
    let wait = retry_after
        .map(|wait| wait.max(MIN_RETRY_AFTER))
        .unwrap_or_else(|| {
            let index = usize::try_from(failures.max(1) - 1).unwrap_or(usize::MAX);
            let base = schedule
                .get(index)
                .or(schedule.last())
                .copied()
                .unwrap_or(Duration::from_secs(5));
            base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
        });
    Next::After(wait.min(left))
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait from
/// `now` (a date in the past is no wait).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_RETRY_SCHEDULE;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    const S: fn(u64) -> Duration = Duration::from_secs;
    const DAY: u64 = 86_400;

    #[track_caller]
    fn check(age: i64, failures: u32, retry_after: Option<u64>, jitter: f64, expected: Next) {
        let got = next(
            &DEFAULT_RETRY_SCHEDULE,
            S(DAY),
            at(0),
            at(age),
            failures,
            retry_after.map(S),
            jitter,
        );
        assert_eq!(got, expected, "age {age}s, failure {failures}");
    }

    #[test]
    fn follows_the_schedule_with_jitter_until_max_age() {
        // The first failure waits 5s (jitter 0.5 = ×1.0), then 5m, 30m, 2h, 5h, 10h, 10h...
        check(0, 1, None, 0.5, Next::After(S(5)));
        check(5, 2, None, 0.5, Next::After(S(300)));
        check(305, 3, None, 0.5, Next::After(S(1800)));
        check(2105, 4, None, 0.5, Next::After(S(7200)));
        check(9305, 5, None, 0.5, Next::After(S(18_000)));
        check(27_305, 6, None, 0.5, Next::After(S(36_000)));
        check(63_305, 7, None, 0.5, Next::After(S(DAY - 63_305)));
        // Jitter spans 0.8 to 1.2 of the wait.
        check(0, 1, None, 0.0, Next::After(S(4)));
        check(0, 1, None, 1.0, Next::After(S(6)));
        // Never past the deadline; at or after it, a dead letter.
        check(DAY as i64 - 2, 1, None, 0.5, Next::After(S(2)));
        check(DAY as i64, 1, None, 0.5, Next::DeadLetter);
        check(DAY as i64 + 1, 9, None, 0.5, Next::DeadLetter);
        // The consumer's Retry-After wins over the schedule, without jitter, within max_age.
        check(0, 1, Some(120), 0.0, Next::After(S(120)));
        check(0, 7, Some(1), 1.0, Next::After(S(1)));
        check(DAY as i64 - 60, 1, Some(3600), 0.5, Next::After(S(60)));
        // No wait asked (`0`, a date already past) is a second, not a busy loop.
        check(0, 3, Some(0), 0.5, Next::After(S(1)));
        check(DAY as i64 - 1, 3, Some(0), 0.5, Next::After(S(1)));
    }

    #[test]
    fn a_short_schedule_repeats_its_last_wait() {
        let schedule = [Duration::from_millis(50), Duration::from_millis(100)];
        let got = |failures| next(&schedule, S(60), at(0), at(1), failures, None, 0.5);
        assert_eq!(got(1), Next::After(Duration::from_millis(50)));
        assert_eq!(got(2), Next::After(Duration::from_millis(100)));
        assert_eq!(got(30), Next::After(Duration::from_millis(100)));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let table: [(&str, Option<Duration>); 7] = [
            ("7", Some(S(7))),
            (" 120 ", Some(S(120))),
            ("Wed, 21 Oct 2015 07:28:30 GMT", Some(S(30))),
            ("Wed, 21 Oct 2015 08:28:00 GMT", Some(S(3600))),
            // A date already past: no wait.
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(S(0))),
            ("-5", None),
            ("soon", None),
        ];
        for (value, expected) in table {
            assert_eq!(retry_after(value, now), expected, "{value:?}");
        }
    }
}
