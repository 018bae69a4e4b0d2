//! The SLA calendar: when an SLA clock counts. The default is 24x7; a policy may count only
//! business hours instead — a time zone, working weekdays, daily hours and holidays — the way
//! ServiceNow and Jira Service Management do: opened Friday 21:00 on a Mon–Fri 08:00–17:00
//! schedule, a ticket has 1h30m of business time on Monday at 09:30.
//!
//! Each working day (a weekday in `days`, a date not in `holidays`) has one window
//! [opening, closing) in local wall-clock time, converted to UTC with the IANA database
//! compiled into chrono-tz. Two rules settle DST: a local time skipped by spring-forward
//! means the first instant after the gap, and a local time that happens twice (fall-back)
//! means the earlier one. That conversion never goes backwards, so windows never overlap,
//! and a window that holds a DST change is an hour shorter or longer.
//!
//! Pure: no clock is read, every instant comes in as an argument. Arithmetic is on chrono's
//! integer durations, so [`Calendar::working_time`] and [`Calendar::add_working_time`] are
//! exact inverses, down to the nanosecond.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Days, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Utc,
};
use chrono_tz::{GapInfo, TZ_VARIANTS, Tz};

/// How far ahead `add_working_time`/`working_time` walk day by day before giving up. Ten
/// years: far beyond any SLA target, yet it bounds the walk over a calendar whose working
/// days are all holidays.
pub const MAX_SEARCH_DAYS: i64 = 3_660;

/// Seconds from one local midnight to the next on a day without a DST change; `close` may
/// equal it ("24:00", the next midnight).
const DAY: u32 = 86_400;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When an SLA clock counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Calendar {
    /// Every second counts (the default).
    #[default]
    Always,
    Business(BusinessHours),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    pub timezone: Tz,
    /// Working weekdays, indexed by `Weekday::num_days_from_monday()`.
    pub days: [bool; 7],
    /// Opening and closing, seconds after local midnight: 0 <= open < close <= 86_400
    /// (86_400 = "24:00", the next midnight). Values built by hand outside that range do not
    /// panic: `close` is capped at 86_400 and `open >= close` means no working time.
    pub open: u32,
    pub close: u32,
    /// Local dates with no working time.
    pub holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// Working time between two instants (zero when `to <= from`). A business calendar
    /// counts no further than MAX_SEARCH_DAYS days past `from`'s local date, the horizon
    /// [`Calendar::add_working_time`] searches: the two stay inverses, and a bogus `from`
    /// (year 1) cannot stall the caller.
    pub fn working_time(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        match self {
            Calendar::Always => to - from,
            Calendar::Business(hours) => {
                if !hours.days.contains(&true) {
                    return Duration::zero();
                }
                let last = hours.local_date(to);
                // The sum is at most `to - from`, which a Duration always holds.
                hours
                    .walk(from)
                    .take_while(|date| *date <= last)
                    .filter_map(|date| hours.window(date))
                    .map(|(start, end)| {
                        let (start, end) = (start.max(from), end.min(to));
                        if end > start {
                            end - start
                        } else {
                            Duration::zero()
                        }
                    })
                    .sum()
            }
        }
    }

    /// The earliest instant `t >= from` with `working_time(from, t) == amount` (`from` itself
    /// for a zero or negative amount). When the calendar has no working time left within
    /// MAX_SEARCH_DAYS (or not enough to reach `amount`), returns `None`; also when the
    /// result would be past the end of chrono's range.
    pub fn add_working_time(&self, from: DateTime<Utc>, amount: Duration) -> Option<DateTime<Utc>> {
        if amount <= Duration::zero() {
            return Some(from);
        }
        match self {
            Calendar::Always => from.checked_add_signed(amount),
            Calendar::Business(hours) => {
                if !hours.days.contains(&true) {
                    return None;
                }
                let mut remaining = amount;
                for (start, end) in hours.walk(from).filter_map(|date| hours.window(date)) {
                    let start = start.max(from);
                    if end <= start {
                        continue;
                    }
                    let length = end - start;
                    // `<=`, not `<`: an amount that ends exactly at a closing is due at that
                    // closing, not at the next opening.
                    if remaining <= length {
                        return start.checked_add_signed(remaining);
                    }
                    remaining -= length;
                }
                None
            }
        }
    }

    /// Whether `at` falls in working time.
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        match self {
            Calendar::Always => true,
            Calendar::Business(hours) => hours
                .walk(at)
                .take(2)
                .filter_map(|date| hours.window(date))
                .any(|(start, end)| start <= at && at < end),
        }
    }

    /// "24x7", or e.g. "Asia/Jakarta mon-fri 08:00-17:00 (2 holidays)" — for the API and logs.
    pub fn describe(&self) -> String {
        match self {
            Calendar::Always => "24x7".to_owned(),
            Calendar::Business(hours) => {
                let mut text = format!(
                    "{} {} {}-{}",
                    hours.timezone.name(),
                    describe_days(&hours.days),
                    clock_time(hours.open),
                    clock_time(hours.close),
                );
                match hours.holidays.len() {
                    0 => {}
                    1 => text.push_str(" (1 holiday)"),
                    n => text.push_str(&format!(" ({n} holidays)")),
                }
                text
            }
        }
    }
}

impl BusinessHours {
    fn is_working_day(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&date)
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        let offset = self
            .timezone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix();
        // Not `with_timezone(..).date_naive()`, which panics when the local time is past the
        // ends of chrono's range; there the UTC date, a day off at most, is as good.
        at.naive_utc()
            .checked_add_offset(offset)
            .map_or(at.date_naive(), |local| local.date())
    }

    /// The local dates whose windows can hold `at` or come after it, in order: from the day
    /// before `at`'s local date to MAX_SEARCH_DAYS after it. A date's window lies between its
    /// own local midnight and the next, so earlier dates cannot reach `at`; the day before is
    /// cheap insurance for zones that turn their clocks back at midnight.
    fn walk(&self, at: DateTime<Utc>) -> impl Iterator<Item = NaiveDate> {
        let date = self.local_date(at);
        let last = date
            .checked_add_days(Days::new(MAX_SEARCH_DAYS.unsigned_abs()))
            .unwrap_or(NaiveDate::MAX);
        date.pred_opt()
            .unwrap_or(date)
            .iter_days()
            .take_while(move |day| *day <= last)
    }

    /// The working window of a local date as UTC instants [start, end); `None` on a day off,
    /// when the hours are empty (e.g. 02:15–02:45 on a spring-forward day in Europe), or at
    /// the edge of chrono's range.
    fn window(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(date) {
            return None;
        }
        let close = self.close.min(DAY);
        if self.open >= close {
            return None;
        }
        let start = instant(self.timezone, local_time(date, self.open)?)?;
        let end = instant(self.timezone, local_time(date, close)?)?;
        (start < end).then_some((start, end))
    }
}

/// `seconds` after the local midnight of `date`; 86_400 is the next midnight.
fn local_time(date: NaiveDate, seconds: u32) -> Option<NaiveDateTime> {
    if seconds >= DAY {
        return Some(date.succ_opt()?.and_time(NaiveTime::MIN));
    }
    Some(date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)?))
}

/// The instant a local wall-clock time stands for: the earlier of two when the clock falls
/// back, the first instant after the gap when the clock springs forward over it (so an
/// opening at 02:30 on a spring-forward day opens at 03:00, when the clock jumps).
fn instant(timezone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match timezone.from_local_datetime(&local) {
        // An ambiguous pair comes earliest first.
        MappedLocalTime::Single(at) | MappedLocalTime::Ambiguous(at, _) => {
            Some(at.with_timezone(&Utc))
        }
        MappedLocalTime::None => GapInfo::new(&local, &timezone)?
            .end
            .map(|at| at.with_timezone(&Utc)),
    }
}

/// "mon-fri", "sun-thu", "fri-mon", "mon,wed,fri": runs of consecutive days, starting on
/// Monday unless a run wraps around the week's end.
fn describe_days(days: &[bool; 7]) -> String {
    let first = if days[0] && days[6] {
        // Right after the last day off, so "fri-mon" stays one run; Monday when every day works.
        days.iter()
            .rposition(|working| !working)
            .map_or(0, |off| off + 1)
    } else {
        0
    };
    let mut runs = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    // The eighth step only closes the run still open at the end of the week.
    for step in 0..=7 {
        let day = (first + step) % 7;
        if days[day] && step < 7 {
            run = Some((run.map_or(day, |(start, _)| start), day));
        } else if let Some((start, end)) = run.take() {
            runs.push(if start == end {
                DAY_NAMES[start].to_owned()
            } else {
                format!("{}-{}", DAY_NAMES[start], DAY_NAMES[end])
            });
        }
    }
    if runs.is_empty() {
        "no days".to_owned()
    } else {
        runs.join(",")
    }
}

/// "08:00", "24:00", or "08:00:30" for hours built by hand with seconds.
fn clock_time(seconds: u32) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if seconds == 0 {
        format!("{hours:02}:{minutes:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    }
}

/// `days`: a list of items each "mon".."sun" or a range "mon-fri" (ranges may wrap:
/// "fri-mon"); case-insensitive; duplicates are fine; the result has at least one day.
pub fn parse_days(items: &[String]) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in items {
        let item = item.trim();
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (day_index(first, item)?, day_index(last, item)?),
            None => {
                let day = day_index(item, item)?;
                (day, day)
            }
        };
        // Walks forward through the week, so "fri-mon" is fri, sat, sun, mon.
        let mut day = first;
        loop {
            days[day] = true;
            if day == last {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    if !days.contains(&true) {
        return Err("no working days: list at least one day, e.g. [mon-fri]".to_owned());
    }
    Ok(days)
}

fn day_index(name: &str, item: &str) -> Result<usize, String> {
    let name = name.trim();
    DAY_NAMES
        .iter()
        .position(|day| day.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "invalid day `{item}`: expected mon, tue, wed, thu, fri, sat or sun, or a range such as mon-fri"
            )
        })
}

/// "08:00-17:00" → (28_800, 61_200); "HH:MM" each, 00:00..=24:00, open < close;
/// "00:00-24:00" is the whole day.
pub fn parse_hours(text: &str) -> Result<(u32, u32), String> {
    const FORM: &str = "(HH:MM-HH:MM, 00:00-24:00)";
    let Some((open, close)) = text.split_once('-') else {
        return Err(format!(
            "invalid hours `{text}`: expected an opening and a closing time {FORM}"
        ));
    };
    let time = |part: &str| {
        let part = part.trim();
        seconds_after_midnight(part)
            .ok_or_else(|| format!("invalid hours `{text}`: `{part}` is not a time of day {FORM}"))
    };
    let (open, close) = (time(open)?, time(close)?);
    if open >= close {
        return Err(format!(
            "invalid hours `{text}`: the opening must be before the closing {FORM}"
        ));
    }
    Ok((open, close))
}

/// "HH:MM" with two digits each, from 00:00 to 24:00.
fn seconds_after_midnight(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes > 0) {
        return None;
    }
    Some(hours * 3600 + minutes * 60)
}

/// An IANA zone name ("Asia/Jakarta", "UTC"). Names are case-sensitive, as in the tz
/// database; the error suggests the right spelling for a wrong case, a near miss
/// ("Europe/Berln") or a bare city ("Berlin").
pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    if let Ok(timezone) = text.parse::<Tz>() {
        return Ok(timezone);
    }
    if let Some(timezone) = TZ_VARIANTS
        .iter()
        .find(|timezone| timezone.name().eq_ignore_ascii_case(text))
    {
        return Err(format!(
            "unknown time zone `{text}`; did you mean `{}`? (names are case-sensitive)",
            timezone.name()
        ));
    }
    let wanted = text.trim().to_ascii_lowercase().replace(' ', "_");
    // A quarter of the length, at most two edits: "PST" must not suggest "EST".
    let tolerance = (wanted.len() / 4).min(2);
    let mut near: Vec<(usize, &str)> = TZ_VARIANTS
        .iter()
        // Never suggested: `Etc/GMT+7` is UTC-7 (POSIX signs), the opposite of what someone
        // typing "GMT+7" means, and `GMT+0` is not what they mean either.
        .filter(|timezone| {
            let city = timezone.name().rsplit('/').next().unwrap_or_default();
            !(city.starts_with("GMT") && city.len() > 3)
        })
        .filter_map(|timezone| {
            let name = timezone.name().to_ascii_lowercase();
            let city = name.rsplit('/').next().unwrap_or(&name);
            let distance =
                strsim::levenshtein(&name, &wanted).min(strsim::levenshtein(city, &wanted));
            (distance <= tolerance).then_some((distance, timezone.name()))
        })
        .collect();
    near.sort_unstable();
    let names: Vec<String> = near
        .iter()
        .take(3)
        .map(|(_, name)| format!("`{name}`"))
        .collect();
    Err(match names.as_slice() {
        [] => format!("unknown time zone `{text}`; use an IANA name such as Europe/Berlin"),
        [one] => format!("unknown time zone `{text}`; did you mean {one}?"),
        [first @ .., last] => format!(
            "unknown time zone `{text}`; did you mean {} or {last}?",
            first.join(", ")
        ),
    })
}

/// "2026-12-25" → NaiveDate; exactly YYYY-MM-DD.
pub fn parse_holiday(text: &str) -> Result<NaiveDate, String> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!(
            "invalid holiday `{text}`: expected a date as YYYY-MM-DD, e.g. 2026-12-25"
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("invalid holiday `{text}`: no such date (YYYY-MM-DD)"))
}

#[cfg(test)]
mod tests {
    use chrono::{Timelike, Weekday};
    use chrono_tz::{America::New_York, Asia::Jakarta, Europe::Berlin};
    use proptest::prelude::*;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    /// A business calendar built through the parsers, as the config loader builds one.
    #[track_caller]
    fn business(zone: &str, days: &[&str], hours: &str, holidays: &[&str]) -> Calendar {
        let (open, close) = parse_hours(hours).unwrap();
        Calendar::Business(BusinessHours {
            timezone: parse_timezone(zone).unwrap(),
            days: parse_days(&strings(days)).unwrap(),
            open,
            close,
            holidays: holidays
                .iter()
                .map(|date| parse_holiday(date).unwrap())
                .collect(),
        })
    }

    /// Mon–Fri 08:00–17:00 in Jakarta (UTC+7 all year).
    fn office() -> Calendar {
        business("Asia/Jakarta", &["mon-fri"], "08:00-17:00", &[])
    }

    /// A local wall-clock time that happens exactly once in `zone`.
    #[track_caller]
    fn local(zone: Tz, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        zone.from_local_datetime(&naive)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[track_caller]
    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn hm(hours: i64, minutes: i64) -> Duration {
        Duration::hours(hours) + Duration::minutes(minutes)
    }

    const NS: Duration = Duration::nanoseconds(1);

    /// `amount` of working time from `from` is due at `due`, and counting back agrees.
    #[track_caller]
    fn check_due(calendar: &Calendar, from: DateTime<Utc>, amount: Duration, due: DateTime<Utc>) {
        assert_eq!(
            calendar.add_working_time(from, amount),
            Some(due),
            "{from} + {amount} on {}",
            calendar.describe()
        );
        assert_eq!(
            calendar.working_time(from, due),
            amount,
            "{from} .. {due} on {}",
            calendar.describe()
        );
    }

    /// Working time from one local midnight to the next.
    #[track_caller]
    fn day_of_work(calendar: &Calendar, zone: Tz, date: &str) -> Duration {
        let date = parse_holiday(date).unwrap();
        let midnight = |date: NaiveDate| local(zone, &format!("{date} 00:00"));
        calendar.working_time(midnight(date), midnight(date.succ_opt().unwrap()))
    }

    #[test]
    fn servicenow_example_counts_only_business_hours() {
        let opened = local(Jakarta, "2026-01-09 21:00"); // Friday, after closing
        let now = local(Jakarta, "2026-01-12 09:30"); // Monday
        assert_eq!(office().working_time(opened, now), hm(1, 30));
        assert_eq!(Calendar::Always.working_time(opened, now), hm(60, 30));
    }

    #[test]
    fn target_across_a_weekend_is_due_monday() {
        check_due(
            &office(),
            local(Jakarta, "2026-01-09 15:00"), // Friday
            hm(8, 0),
            local(Jakarta, "2026-01-12 14:00"), // Monday
        );
    }

    #[test]
    fn holiday_inside_the_span_is_skipped() {
        let calendar = business("Asia/Jakarta", &["mon-fri"], "08:00-17:00", &["2026-01-14"]);
        let tuesday = local(Jakarta, "2026-01-13 08:00");
        let thursday_closing = local(Jakarta, "2026-01-15 17:00");
        assert_eq!(office().working_time(tuesday, thursday_closing), hm(27, 0));
        assert_eq!(calendar.working_time(tuesday, thursday_closing), hm(18, 0));
        check_due(
            &calendar,
            local(Jakarta, "2026-01-13 16:00"),
            hm(2, 0),
            local(Jakarta, "2026-01-15 09:00"),
        );
        assert!(!calendar.is_working(local(Jakarta, "2026-01-14 10:00")));
    }

    #[test]
    fn holiday_on_a_saturday_changes_nothing() {
        let calendar = business("Asia/Jakarta", &["mon-fri"], "08:00-17:00", &["2026-01-10"]);
        let friday = local(Jakarta, "2026-01-09 00:00");
        let tuesday = local(Jakarta, "2026-01-13 00:00");
        assert_eq!(calendar.working_time(friday, tuesday), hm(18, 0));
        check_due(
            &calendar,
            local(Jakarta, "2026-01-09 15:00"),
            hm(8, 0),
            local(Jakarta, "2026-01-12 14:00"),
        );
    }

    #[test]
    fn counting_starts_at_the_next_opening() {
        let calendar = office();
        for (from, due) in [
            ("2026-01-12 06:00", "2026-01-12 09:00"), // Monday before opening
            ("2026-01-12 18:00", "2026-01-13 09:00"), // Monday after closing
            ("2026-01-11 12:00", "2026-01-12 09:00"), // Sunday
        ] {
            check_due(
                &calendar,
                local(Jakarta, from),
                hm(1, 0),
                local(Jakarta, due),
            );
        }
        let saturday = local(Jakarta, "2026-01-10 12:00");
        let monday_opening = local(Jakarta, "2026-01-12 08:00");
        assert_eq!(
            calendar.working_time(saturday, monday_opening),
            Duration::zero()
        );
    }

    #[test]
    fn amount_that_fills_the_day_is_due_at_closing_not_at_the_next_opening() {
        check_due(
            &office(),
            local(Jakarta, "2026-01-11 12:00"),
            hm(9, 0),
            local(Jakarta, "2026-01-12 17:00"),
        );
        check_due(
            &office(),
            local(Jakarta, "2026-01-09 15:00"),
            hm(2, 0),
            local(Jakarta, "2026-01-09 17:00"),
        );
    }

    #[test]
    fn zero_negative_and_backward_spans() {
        let at = local(Jakarta, "2026-01-11 12:00");
        let later = local(Jakarta, "2026-01-13 12:00");
        for calendar in [Calendar::Always, office()] {
            assert_eq!(calendar.add_working_time(at, Duration::zero()), Some(at));
            assert_eq!(calendar.add_working_time(at, -hm(1, 0)), Some(at));
            assert_eq!(calendar.working_time(at, at), Duration::zero());
            assert_eq!(calendar.working_time(later, at), Duration::zero());
        }
    }

    #[test]
    fn always_counts_every_second() {
        let calendar = Calendar::default();
        assert_eq!(calendar, Calendar::Always);
        let sunday = local(Jakarta, "2026-01-11 03:00");
        check_due(&calendar, sunday, hm(50, 0) + NS, sunday + hm(50, 0) + NS);
        assert!(calendar.is_working(sunday));
        assert_eq!(
            calendar.add_working_time(DateTime::<Utc>::MAX_UTC, NS),
            None
        );
    }

    #[test]
    fn jakarta_is_utc_plus_seven_all_year() {
        let calendar = office();
        // Monday 08:00–17:00 WIB is 01:00–10:00 UTC, in January and in July alike.
        for date in ["2026-01-12", "2026-07-13"] {
            let at = |time: &str| utc(&format!("{date}T{time}Z"));
            assert!(!calendar.is_working(at("00:59:59")));
            assert!(calendar.is_working(at("01:00:00")));
            assert!(calendar.is_working(at("09:59:59")));
            assert!(!calendar.is_working(at("10:00:00")));
            check_due(&calendar, at("00:00:00"), hm(1, 0), at("02:00:00"));
        }
        // Friday 09:00–23:00 UTC is Friday 16:00 to Saturday 06:00 in Jakarta: one hour.
        assert_eq!(
            calendar.working_time(utc("2026-01-09T09:00:00Z"), utc("2026-01-09T23:00:00Z")),
            hm(1, 0)
        );
        // Sunday 20:00 UTC is already Monday 03:00 in Jakarta, still before opening.
        check_due(
            &calendar,
            utc("2026-01-11T20:00:00Z"),
            hm(0, 30),
            utc("2026-01-12T01:30:00Z"),
        );
    }

    #[test]
    fn is_working_includes_the_opening_and_excludes_the_closing() {
        let calendar = office();
        let opening = local(Jakarta, "2026-01-12 08:00");
        let closing = local(Jakarta, "2026-01-12 17:00");
        assert!(!calendar.is_working(opening - NS));
        assert!(calendar.is_working(opening));
        assert!(calendar.is_working(closing - NS));
        assert!(!calendar.is_working(closing));
        assert!(!calendar.is_working(local(Jakarta, "2026-01-11 12:00"))); // Sunday

        // A whole-day calendar ends at the next local midnight.
        let mondays = business("Asia/Jakarta", &["mon"], "00:00-24:00", &[]);
        let midnight = local(Jakarta, "2026-01-13 00:00");
        assert!(mondays.is_working(local(Jakarta, "2026-01-12 00:00")));
        assert!(mondays.is_working(midnight - NS));
        assert!(!mondays.is_working(midnight));
        assert!(!mondays.is_working(local(Jakarta, "2026-01-12 00:00") - NS));
    }

    #[test]
    fn whole_days_across_dst_last_23_and_25_hours() {
        let every_day = |zone| business(zone, &["mon-sun"], "00:00-24:00", &[]);
        let berlin = every_day("Europe/Berlin");
        assert_eq!(day_of_work(&berlin, Berlin, "2026-03-28"), hm(24, 0));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-03-29"), hm(23, 0));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-10-25"), hm(25, 0));
        check_due(
            &berlin,
            local(Berlin, "2026-03-29 00:00"),
            hm(24, 0),
            local(Berlin, "2026-03-30 01:00"),
        );
        check_due(
            &berlin,
            local(Berlin, "2026-10-25 00:00"),
            hm(24, 0),
            local(Berlin, "2026-10-25 23:00"),
        );

        let new_york = every_day("America/New_York");
        assert_eq!(day_of_work(&new_york, New_York, "2026-03-08"), hm(23, 0));
        assert_eq!(day_of_work(&new_york, New_York, "2026-11-01"), hm(25, 0));
        check_due(
            &new_york,
            local(New_York, "2026-03-08 00:00"),
            hm(24, 0),
            local(New_York, "2026-03-09 01:00"),
        );
        check_due(
            &new_york,
            local(New_York, "2026-11-01 00:00"),
            hm(24, 0),
            local(New_York, "2026-11-01 23:00"),
        );
    }

    #[test]
    fn office_hours_keep_nine_hours_on_dst_days_and_move_in_utc() {
        let berlin = business("Europe/Berlin", &["mon-sun"], "08:00-17:00", &[]);
        assert_eq!(day_of_work(&berlin, Berlin, "2026-03-29"), hm(9, 0));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-10-25"), hm(9, 0));
        // 08:00 is 07:00 UTC in winter (CET) and 06:00 UTC in summer (CEST).
        assert!(berlin.is_working(utc("2026-03-28T07:00:00Z")));
        assert!(!berlin.is_working(utc("2026-03-29T05:59:59Z")));
        assert!(berlin.is_working(utc("2026-03-29T06:00:00Z")));
        assert!(!berlin.is_working(utc("2026-10-25T06:59:59Z")));
        assert!(berlin.is_working(utc("2026-10-25T07:00:00Z")));
        check_due(
            &berlin,
            local(Berlin, "2026-03-28 16:30"),
            hm(1, 0),
            utc("2026-03-29T06:30:00Z"),
        );
        check_due(
            &berlin,
            local(Berlin, "2026-10-24 16:30"),
            hm(1, 0),
            utc("2026-10-25T07:30:00Z"),
        );
    }

    #[test]
    fn hours_holding_the_change_lose_or_gain_an_hour() {
        // Berlin: 02:00 CET jumps to 03:00 CEST in March; 03:00 CEST falls back to 02:00 CET
        // in October.
        let berlin = business("Europe/Berlin", &["sun"], "01:00-04:00", &[]);
        assert_eq!(day_of_work(&berlin, Berlin, "2026-03-29"), hm(2, 0));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-10-25"), hm(4, 0));
        check_due(
            &berlin,
            local(Berlin, "2026-03-29 01:30"),
            hm(1, 0),
            local(Berlin, "2026-03-29 03:30"),
        );
        check_due(
            &berlin,
            local(Berlin, "2026-10-25 01:00"),
            hm(3, 0),
            local(Berlin, "2026-10-25 03:00"),
        );

        // New York: 01:00 opens at the first 01:00 (EDT, 05:00 UTC) on the fall-back day.
        let new_york = business("America/New_York", &["sun"], "01:00-03:00", &[]);
        assert_eq!(day_of_work(&new_york, New_York, "2026-03-08"), hm(1, 0));
        assert_eq!(day_of_work(&new_york, New_York, "2026-11-01"), hm(3, 0));
        assert!(!new_york.is_working(utc("2026-11-01T04:59:59Z")));
        assert!(new_york.is_working(utc("2026-11-01T05:00:00Z")));
        assert!(new_york.is_working(utc("2026-11-01T07:59:59Z")));
        assert!(!new_york.is_working(utc("2026-11-01T08:00:00Z")));
        check_due(
            &new_york,
            utc("2026-11-01T04:00:00Z"),
            hm(2, 30),
            utc("2026-11-01T07:30:00Z"),
        );
        check_due(
            &new_york,
            local(New_York, "2026-03-07 12:00"),
            hm(1, 0),
            local(New_York, "2026-03-08 03:00"),
        );
    }

    #[test]
    fn opening_skipped_by_spring_forward_opens_when_the_clock_jumps() {
        // 02:30 does not exist in Berlin on 2026-03-29: the window opens at 03:00 CEST
        // (01:00 UTC). On 2026-10-25 it exists twice: the window opens at the first.
        let berlin = business("Europe/Berlin", &["sun"], "02:30-05:00", &[]);
        assert!(!berlin.is_working(utc("2026-03-29T00:59:59Z")));
        assert!(berlin.is_working(utc("2026-03-29T01:00:00Z")));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-03-29"), hm(2, 0));
        check_due(
            &berlin,
            local(Berlin, "2026-03-29 00:00"),
            hm(1, 0),
            local(Berlin, "2026-03-29 04:00"),
        );
        assert!(!berlin.is_working(utc("2026-10-25T00:29:59Z")));
        assert!(berlin.is_working(utc("2026-10-25T00:30:00Z")));
        assert_eq!(day_of_work(&berlin, Berlin, "2026-10-25"), hm(3, 30));
        check_due(
            &berlin,
            local(Berlin, "2026-10-25 00:00"),
            hm(3, 30),
            local(Berlin, "2026-10-25 05:00"),
        );

        // Hours wholly inside the gap have no working time that day, the next Sunday does.
        let gap = business("Europe/Berlin", &["sun"], "02:15-02:45", &[]);
        assert_eq!(day_of_work(&gap, Berlin, "2026-03-29"), Duration::zero());
        assert!(!gap.is_working(utc("2026-03-29T01:00:00Z")));
        check_due(
            &gap,
            local(Berlin, "2026-03-28 00:00"),
            hm(0, 30),
            local(Berlin, "2026-04-05 02:45"),
        );
        // ... and in the fold they run from the first 02:15 to the first 02:45.
        assert_eq!(day_of_work(&gap, Berlin, "2026-10-25"), hm(0, 30));
        assert!(gap.is_working(utc("2026-10-25T00:15:00Z")));
        assert!(!gap.is_working(utc("2026-10-25T01:15:00Z")));
    }

    #[test]
    fn calendar_without_working_time_gives_up_without_looping() {
        let from = utc("2026-01-01T00:00:00Z");
        let never = Calendar::Business(BusinessHours {
            timezone: Tz::UTC,
            days: [false; 7],
            open: 0,
            close: DAY,
            holidays: BTreeSet::new(),
        });
        assert_eq!(never.add_working_time(from, NS), None);
        assert_eq!(
            never.working_time(from, from + Duration::days(50 * 365)),
            Duration::zero()
        );
        assert!(!never.is_working(from));

        // Mondays only, and every Monday for eleven years is a holiday: the search stops
        // after MAX_SEARCH_DAYS, before the first working Monday.
        let first_monday = parse_holiday("2026-01-05").unwrap();
        let holidays_only = Calendar::Business(BusinessHours {
            timezone: Tz::UTC,
            days: [true, false, false, false, false, false, false],
            open: 0,
            close: DAY,
            holidays: first_monday.iter_weeks().take(11 * 53).collect(),
        });
        assert_eq!(holidays_only.add_working_time(from, NS), None);
        let twelve_years = from + Duration::days(12 * 366);
        assert_eq!(
            holidays_only.working_time(from, twelve_years),
            Duration::zero()
        );
    }

    #[test]
    fn working_time_and_add_working_time_share_the_search_horizon() {
        // From 2026-01-01 00:00 UTC the walk covers that date and MAX_SEARCH_DAYS more.
        let from = utc("2026-01-01T00:00:00Z");
        let whole_days = business("UTC", &["mon-sun"], "00:00-24:00", &[]);
        let horizon = Duration::days(MAX_SEARCH_DAYS + 1);
        check_due(&whole_days, from, horizon, from + horizon);
        assert_eq!(whole_days.add_working_time(from, horizon + NS), None);
        let twenty_years = from + Duration::days(20 * 365);
        assert_eq!(whole_days.working_time(from, twenty_years), horizon);
    }

    #[test]
    fn ends_of_chronos_range_neither_panic_nor_stall() {
        // Past the ends of chrono's range local times do not exist; a bogus instant from a
        // corrupt record must still come back, at once.
        let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let month = Duration::days(30);
        for calendar in [
            office(),
            business("America/New_York", &["mon-sun"], "00:00-24:00", &[]),
            business("UTC", &["mon-sun"], "00:00-24:00", &[]),
        ] {
            assert!(calendar.working_time(first, last) <= Duration::days(MAX_SEARCH_DAYS + 1));
            for (from, to) in [(first, first + month), (last - month, last)] {
                assert!(calendar.working_time(from, to) <= month);
                // Returning at all is the point.
                let _ = (calendar.is_working(from), calendar.is_working(to));
            }
            assert_eq!(
                calendar.add_working_time(last - NS, Duration::days(2)),
                None
            );
            assert!(
                calendar
                    .add_working_time(first, Duration::hours(1))
                    .is_some()
            );
        }
    }

    #[test]
    fn hand_built_hours_out_of_range_do_not_panic() {
        let from = utc("2026-01-01T00:00:00Z");
        let hours = |open, close| {
            Calendar::Business(BusinessHours {
                timezone: Tz::UTC,
                days: [true; 7],
                open,
                close,
                holidays: BTreeSet::new(),
            })
        };
        let backwards = hours(61_200, 28_800);
        assert_eq!(backwards.add_working_time(from, NS), None);
        assert_eq!(
            backwards.working_time(from, from + Duration::days(7)),
            Duration::zero()
        );
        // A closing past 24:00 is read as 24:00.
        let late = hours(0, 100_000);
        assert_eq!(
            late.working_time(from, from + Duration::days(7)),
            Duration::days(7)
        );
    }

    #[test]
    fn two_years_are_counted_exactly() {
        let first = parse_holiday("2026-01-01").unwrap();
        let end = parse_holiday("2028-01-01").unwrap();
        let weekdays = first
            .iter_days()
            .take_while(|date| *date < end)
            .filter(|date| date.weekday().num_days_from_monday() < 5)
            .count();
        let weekdays = i64::try_from(weekdays).unwrap();
        assert_eq!(weekdays, 522);
        let (from, to) = (
            local(Jakarta, "2026-01-01 00:00"),
            local(Jakarta, "2028-01-01 00:00"),
        );
        assert_eq!(office().working_time(from, to), hm(9 * weekdays, 0));
        check_due(
            &office(),
            from,
            hm(9 * weekdays, 0),
            local(Jakarta, "2027-12-31 17:00"),
        );
    }

    #[test]
    fn agrees_with_an_hour_by_hour_count_over_a_year() {
        // An oracle that knows nothing of windows: count the UTC hours whose local hour is
        // working. Exact for whole-hour offsets and hours on the hour outside DST gaps.
        let holidays = ["2026-04-03", "2026-04-06", "2026-12-25", "2026-03-29"];
        for (zone, name, open, close) in [
            (Berlin, "Europe/Berlin", 8, 17),
            (Berlin, "Europe/Berlin", 0, 24),
            (New_York, "America/New_York", 9, 18),
            (Jakarta, "Asia/Jakarta", 8, 17),
        ] {
            let hours = format!("{open:02}:00-{close:02}:00");
            let calendar = business(name, &["mon-fri", "sun"], &hours, &holidays);
            let start = utc("2026-01-01T00:00:00Z");
            let mut expected = 0;
            for hour in 0..365 * 24 {
                let at = (start + Duration::hours(hour)).with_timezone(&zone);
                let date = at.date_naive().to_string();
                let working = at.weekday() != Weekday::Sat
                    && (open..close).contains(&at.hour())
                    && !holidays.contains(&date.as_str());
                expected += i64::from(working);
                assert_eq!(
                    calendar.is_working(start + Duration::hours(hour)),
                    working,
                    "{at} on {}",
                    calendar.describe()
                );
            }
            let end = start + Duration::hours(365 * 24);
            assert_eq!(
                calendar.working_time(start, end),
                Duration::hours(expected),
                "{}",
                calendar.describe()
            );
        }
    }

    #[test]
    fn parses_days() {
        let days = |items: &[&str]| parse_days(&strings(items));
        let (t, f) = (true, false);
        assert_eq!(days(&["mon-fri"]), Ok([t, t, t, t, t, f, f]));
        assert_eq!(days(&["Sun", "WED", "sun"]), Ok([f, f, t, f, f, f, t]));
        assert_eq!(days(&["fri-mon"]), Ok([t, f, f, f, t, t, t]));
        assert_eq!(days(&["mon-mon", "tue - wed"]), Ok([t, t, t, f, f, f, f]));
        assert_eq!(days(&["mon-sun", "sat"]), Ok([t; 7]));
    }

    #[test]
    fn rejects_bad_days_with_exact_messages() {
        let error = |items: &[&str]| parse_days(&strings(items)).unwrap_err();
        assert_eq!(
            error(&[]),
            "no working days: list at least one day, e.g. [mon-fri]"
        );
        for item in ["monday", "mon-", "mon-fri-sat", "", "lun"] {
            assert_eq!(
                error(&["tue", item]),
                format!(
                    "invalid day `{item}`: expected mon, tue, wed, thu, fri, sat or sun, or a range such as mon-fri"
                )
            );
        }
    }

    #[test]
    fn parses_hours() {
        assert_eq!(parse_hours("08:00-17:00"), Ok((28_800, 61_200)));
        assert_eq!(parse_hours("00:00-24:00"), Ok((0, 86_400)));
        assert_eq!(parse_hours("09:30-12:45"), Ok((34_200, 45_900)));
        assert_eq!(parse_hours("08:00 - 17:00"), Ok((28_800, 61_200)));
    }

    #[test]
    fn rejects_bad_hours_with_exact_messages() {
        #[track_caller]
        fn check(text: &str, reason: &str) {
            assert_eq!(
                parse_hours(text),
                Err(format!(
                    "invalid hours `{text}`: {reason} (HH:MM-HH:MM, 00:00-24:00)"
                ))
            );
        }
        let order = "the opening must be before the closing";
        check("17:00-08:00", order);
        check("08:00-08:00", order);
        check("24:00-24:00", order);
        check("08:00", "expected an opening and a closing time");
        check("", "expected an opening and a closing time");
        check("8:00-17:00", "`8:00` is not a time of day");
        check("08:00-24:30", "`24:30` is not a time of day");
        check("08:60-17:00", "`08:60` is not a time of day");
        check("25:00-26:00", "`25:00` is not a time of day");
        check("8am-5pm", "`8am` is not a time of day");
        check("08:00-+1:00", "`+1:00` is not a time of day");
    }

    #[test]
    fn parses_time_zones_and_suggests_names() {
        assert_eq!(parse_timezone("Asia/Jakarta"), Ok(Jakarta));
        assert_eq!(parse_timezone("UTC"), Ok(Tz::UTC));
        assert_eq!(parse_timezone("America/New_York"), Ok(New_York));
        let error = |text| parse_timezone(text).unwrap_err();
        assert_eq!(
            error("asia/jakarta"),
            "unknown time zone `asia/jakarta`; did you mean `Asia/Jakarta`? (names are case-sensitive)"
        );
        assert_eq!(
            error("Europe/Berln"),
            "unknown time zone `Europe/Berln`; did you mean `Europe/Berlin`?"
        );
        assert_eq!(
            error("Berlin"),
            "unknown time zone `Berlin`; did you mean `Europe/Berlin`?"
        );
        assert_eq!(
            error("New York"),
            "unknown time zone `New York`; did you mean `America/New_York`?"
        );
        assert_eq!(
            error("Indianapolis"),
            "unknown time zone `Indianapolis`; did you mean `America/Indiana/Indianapolis` or `America/Indianapolis`?"
        );
        for text in ["Mars/Olympus_Mons", "PST", "GMT+7", ""] {
            assert_eq!(
                error(text),
                format!("unknown time zone `{text}`; use an IANA name such as Europe/Berlin")
            );
        }
    }

    #[test]
    fn parses_holidays() {
        assert_eq!(
            parse_holiday("2026-12-25"),
            Ok(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap())
        );
        assert_eq!(
            parse_holiday("2028-02-29"),
            Ok(NaiveDate::from_ymd_opt(2028, 2, 29).unwrap())
        );
        assert_eq!(
            parse_holiday("2026-02-29"),
            Err("invalid holiday `2026-02-29`: no such date (YYYY-MM-DD)".to_owned())
        );
        for text in ["25.12.2026", "2026-1-5", "", "2026-12-25 ", "+2026-12-2"] {
            assert_eq!(
                parse_holiday(text),
                Err(format!(
                    "invalid holiday `{text}`: expected a date as YYYY-MM-DD, e.g. 2026-12-25"
                ))
            );
        }
    }

    #[test]
    fn describes_calendars() {
        assert_eq!(Calendar::Always.describe(), "24x7");
        let check = |calendar: Calendar, expected: &str| assert_eq!(calendar.describe(), expected);
        check(
            business(
                "Asia/Jakarta",
                &["mon-fri"],
                "08:00-17:00",
                &["2026-12-25", "2027-01-01"],
            ),
            "Asia/Jakarta mon-fri 08:00-17:00 (2 holidays)",
        );
        check(
            business("Europe/Berlin", &["mon-sun"], "00:00-24:00", &[]),
            "Europe/Berlin mon-sun 00:00-24:00",
        );
        check(
            business(
                "Asia/Jerusalem",
                &["sun-thu"],
                "08:00-17:00",
                &["2026-09-21"],
            ),
            "Asia/Jerusalem sun-thu 08:00-17:00 (1 holiday)",
        );
        check(
            business("UTC", &["mon", "wed", "fri"], "09:30-12:00", &[]),
            "UTC mon,wed,fri 09:30-12:00",
        );
        check(
            business("UTC", &["wed", "fri-mon"], "09:30-12:00", &[]),
            "UTC fri-mon,wed 09:30-12:00",
        );
        check(
            Calendar::Business(BusinessHours {
                timezone: Tz::UTC,
                days: [false; 7],
                open: 28_830,
                close: 61_200,
                holidays: BTreeSet::new(),
            }),
            "UTC no days 08:00:30-17:00",
        );
    }

    /// Calendars for the properties: 24x7, an office, whole days across DST with holidays
    /// next to the changes, and hours that start inside the spring gap and the autumn fold.
    fn calendars() -> [Calendar; 5] {
        [
            Calendar::Always,
            office(),
            business(
                "Europe/Berlin",
                &["mon-sun"],
                "00:00-24:00",
                &["2026-03-28", "2026-10-26", "2026-12-25"],
            ),
            business("Europe/Berlin", &["sat-sun"], "02:30-05:00", &[]),
            business(
                "America/New_York",
                &["sun-thu"],
                "01:00-03:00",
                &["2026-11-02"],
            ),
        ]
    }

    /// Instants from 2025 to 2027, often within three days of a DST change, sometimes on
    /// a quarter hour exactly so that openings and closings are hit.
    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        const DST_CHANGES: [i64; 4] = [1_774_746_000, 1_792_890_000, 1_772_953_200, 1_793_512_800];
        let near_dst = (0..DST_CHANGES.len(), -3 * 86_400..3 * 86_400i64)
            .prop_map(|(change, offset)| DST_CHANGES[change] + offset);
        let anywhere = 1_735_689_600..1_830_297_600i64;
        let seconds = prop_oneof![near_dst, anywhere];
        prop_oneof![
            (seconds.clone(), 0..1_000_000_000u32),
            seconds.prop_map(|seconds| (seconds - seconds % 900, 0)),
        ]
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
    }

    /// Up to 400 hours: whole hours (to end exactly at closings) or any nanosecond count.
    fn amounts() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (1..400i64).prop_map(Duration::hours),
            (1..400 * 3_600 * 1_000_000_000i64).prop_map(Duration::nanoseconds),
        ]
    }

    proptest! {
        #[test]
        fn add_working_time_is_the_exact_inverse_of_working_time(
            calendar in 0..5usize,
            from in instants(),
            amount in amounts(),
        ) {
            let calendar = &calendars()[calendar];
            let due = calendar.add_working_time(from, amount);
            prop_assert!(due.is_some(), "no due time for {} + {}", from, amount);
            let due = due.unwrap_or(from);
            prop_assert!(due > from);
            prop_assert_eq!(calendar.working_time(from, due), amount);
            // The earliest such instant: a nanosecond less is not enough, so the last
            // nanosecond was working time and `due` is not in a gap after a window.
            prop_assert!(calendar.working_time(from, due - NS) < amount);
            prop_assert!(calendar.is_working(due - NS));
        }

        #[test]
        fn working_time_adds_up_over_any_split(
            calendar in 0..5usize,
            a in instants(),
            b in instants(),
            c in instants(),
        ) {
            let calendar = &calendars()[calendar];
            let mut points = [a, b, c];
            points.sort();
            let [a, b, c] = points;
            let whole = calendar.working_time(a, c);
            prop_assert_eq!(whole, calendar.working_time(a, b) + calendar.working_time(b, c));
            prop_assert!(whole <= c - a);
        }

        #[test]
        fn is_working_agrees_with_working_time(calendar in 0..5usize, at in instants()) {
            let calendar = &calendars()[calendar];
            prop_assert_eq!(calendar.is_working(at), calendar.working_time(at, at + NS) == NS);
        }
    }
}
