//! What keeps a firing rule from opening an incident while it keeps measuring: recurring
//! maintenance windows from the config, silences made through the API, and a parent rule
//! whose incident is open (`depends_on`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Utc, Weekday};
use regex::Regex;

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

/// How a [`Matcher`] compares a label's value, as Alertmanager's `=`, `!=`, `=~`, `!~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    /// The operator from Alertmanager API v2's `isRegex` and `isEqual`.
    pub fn from_flags(is_regex: bool, is_equal: bool) -> MatchOp {
        match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    pub fn is_equal(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition of a silence on one label, as Alertmanager's: a label the incident does not
/// carry has the value `""`, so `team!="db"` matches an incident without `team` and
/// `team=""` matches exactly those. A regular expression is anchored at both ends
/// (`^(?:value)$`) and compiled once, when the matcher is made.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    value: String,
    op: MatchOp,
    /// The anchored pattern of `=~` and `!~`.
    pattern: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        // The pattern follows from the value and the operator.
        (&self.name, &self.value, self.op) == (&other.name, &other.value, other.op)
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Fails only for `=~` and `!~` whose value is not a regular expression; the message
    /// says why in one line (`not a valid regular expression: unclosed group`).
    pub fn new(
        name: impl Into<String>,
        value: impl Into<String>,
        op: MatchOp,
    ) -> Result<Matcher, String> {
        let value = value.into();
        let pattern = if op.is_regex() {
            let pattern = super::compile_regex(&format!("^(?:{value})$"))
                .map_err(|reason| format!("not a valid regular expression: {reason}"))?;
            Some(pattern)
        } else {
            None
        };
        Ok(Matcher {
            name: name.into(),
            value,
            op,
            pattern,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            value: value.into(),
            op: MatchOp::Equal,
            pattern: None,
        }
    }

    /// Reads amtool's form: a label name, an operator (`=`, `!=`, `=~`, `!~`) and a value,
    /// bare or double-quoted with JSON's escapes (`service=~"web|api"`, `env!=prod`).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let at = text
            .find(['=', '!'])
            .ok_or_else(|| format!("{text:?} has no operator (=, !=, =~ or !~)"))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value)))
        .ok_or_else(|| format!("{text:?} has no operator (=, !=, =~ or !~)"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{text:?} has no label name"));
        }
        let value = value.trim();
        let value = if value.starts_with('"') {
            serde_json::from_str::<String>(value)
                .map_err(|_| format!("{text:?} has a badly quoted value"))?
        } else {
            value.to_owned()
        };
        Matcher::new(name, value, op).map_err(|error| format!("{text:?} is {error}"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// Whether a label with this value (`""` when absent) meets the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (&self.pattern, self.op) {
            (Some(pattern), op) => pattern.is_match(value) == op.is_equal(),
            (None, op) => (value == self.value) == op.is_equal(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }
}

impl fmt::Display for Matcher {
    /// amtool's form, which [`Matcher::parse`] reads back: `service=~"web|api"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = serde_json::Value::from(self.value.as_str());
        write!(f, "{}{}{quoted}", self.name, self.op.as_str())
    }
}

/// What a silence's matchers must be, as Alertmanager requires: at least one, and at least
/// one that does not match the empty string. A silence of only `team!="db"` or `env=~".*"`
/// would also match every incident without those labels — nearly everything.
pub fn check_matchers(matchers: &[Matcher]) -> Result<(), String> {
    if matchers.is_empty() {
        return Err("a silence needs at least one matcher".to_owned());
    }
    if matchers.iter().all(|m| m.matches_value("")) {
        return Err(
            "a silence needs at least one matcher that does not match the empty string \
             (a missing label); these would silence nearly everything"
                .to_owned(),
        );
    }
    Ok(())
}

/// A silence: while active, incidents whose labels match every matcher are not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: u64,
    pub matchers: Vec<Matcher>,
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
        self.is_active(now) && self.matchers.iter().all(|m| m.matches(labels))
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
            matchers: vec![Matcher::equal("service", "web")],
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

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matchers_as_alertmanager() {
        #[track_caller]
        fn check(matcher: &str, pairs: &[(&str, &str)], want: bool) {
            let parsed = Matcher::parse(matcher).unwrap();
            assert_eq!(
                parsed.matches(&labels(pairs)),
                want,
                "{matcher} on {pairs:?}"
            );
        }
        let web = &[("service", "web")][..];
        let absent = &[("team", "db")][..];
        check("service=web", web, true);
        check(r#"service="web""#, web, true);
        check("service=api", web, false);
        check("service!=api", web, true);
        check("service!=web", web, false);
        check(r#"service=~"web|api""#, web, true);
        check(r#"service=~"api|db""#, web, false);
        check(r#"service!~"web|api""#, web, false);
        check(r#"service!~"api|db""#, web, true);
        // Anchored at both ends: a regex matches the whole value, not a part of it.
        check("service=~we", web, false);
        check("service=~eb", web, false);
        check("service=~w.*", web, true);
        check("service=~web|x", web, true);
        check("service!~we", web, true);
        // A missing label has the value "".
        check("service!=web", absent, true);
        check(r#"service="""#, absent, true);
        check(r#"service="""#, web, false);
        check("service=web", absent, false);
        check("service=~.*", absent, true);
        check("service=~.+", absent, false);
        check("service!~.+", absent, true);
        // Quoted values keep operator characters and escapes.
        check(r#"path="a=b\"c""#, &[("path", "a=b\"c")], true);
    }

    #[test]
    fn a_silence_matches_when_every_matcher_does() {
        let silence = Silence {
            id: 1,
            matchers: vec![
                Matcher::parse(r#"service=~"web|api""#).unwrap(),
                Matcher::parse("env!=staging").unwrap(),
            ],
            starts_at: utc("2026-03-07T00:00:00Z"),
            ends_at: utc("2026-03-07T01:00:00Z"),
            created_by: "alice".to_owned(),
            comment: String::new(),
        };
        let now = utc("2026-03-07T00:30:00Z");
        assert!(silence.matches(&labels(&[("service", "api"), ("env", "prod")]), now));
        assert!(silence.matches(&labels(&[("service", "web")]), now));
        assert!(!silence.matches(&labels(&[("service", "api"), ("env", "staging")]), now));
        assert!(!silence.matches(&labels(&[("service", "db"), ("env", "prod")]), now));
    }

    #[test]
    fn parsing_and_showing_matchers() {
        for text in [
            r#"service="web""#,
            r#"service!="web""#,
            r#"service=~"web|api""#,
            r#"service!~"w\\.b""#,
            r#"team="""#,
        ] {
            assert_eq!(Matcher::parse(text).unwrap().to_string(), text);
        }
        let m = Matcher::parse(" env != prod ").unwrap();
        assert_eq!(
            (m.name(), m.value(), m.op()),
            ("env", "prod", MatchOp::NotEqual)
        );
        assert_eq!(
            Matcher::parse("service").unwrap_err(),
            r#""service" has no operator (=, !=, =~ or !~)"#
        );
        assert_eq!(
            Matcher::parse("=web").unwrap_err(),
            r#""=web" has no label name"#
        );
        assert_eq!(
            Matcher::parse("service=~web(").unwrap_err(),
            r#""service=~web(" is not a valid regular expression: unclosed group"#
        );
        // A silence's matchers come from the API: a short value must not cost seconds of
        // compiling, nor each alert's labels seconds of matching.
        assert_eq!(
            Matcher::new("service", r"[\p{L}\p{N}]{200}", MatchOp::Regex).unwrap_err(),
            r"not a valid regular expression: too large once compiled (over 1 MiB); repeat less, or use ASCII classes such as (?-u:\w) instead of \w"
        );
        assert!(Matcher::new("service", r"(?-u:\w){200}|web|api", MatchOp::Regex).is_ok());
        assert_eq!(MatchOp::from_flags(true, false), MatchOp::NotRegex);
        for op in [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ] {
            assert_eq!(MatchOp::from_flags(op.is_regex(), op.is_equal()), op);
        }
    }

    #[test]
    fn a_silence_needs_a_matcher_that_does_not_match_empty() {
        #[track_caller]
        fn check(matchers: &[&str], ok: bool) {
            let matchers: Vec<Matcher> = matchers
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect();
            assert_eq!(check_matchers(&matchers).is_ok(), ok, "{matchers:?}");
        }
        check(&[], false);
        check(&["service=web"], true);
        check(&["service!=web"], false);
        check(&[r#"service="""#], false);
        check(&["service=~.*"], false);
        check(&["service!~web"], false);
        check(&["service=~.+"], true);
        check(&["service!=web", "team=db"], true);
    }
}
