//! Durations as Prometheus writes them: `800ms`, `30s`, `5m`, `1h30m`, `14d`, `2w`, `1y`.
//! Used by the config files and by the condition language alike.

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 7 * 86_400_000),
    ("y", 365 * 86_400_000),
];

/// Parses a duration such as `1h30m`. Units must come from largest to smallest, each at
/// most once, as in Prometheus. `0` alone is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // Longest unit first so `ms` is not read as `m` followed by garbage.
        let (index, (unit, millis)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(invalid)?;
        let order = index; // UNITS is ordered smallest first
        if last_unit != usize::MAX && order >= last_unit {
            return Err(format!(
                "invalid duration `{text}`: units must go from largest to smallest, each once"
            ));
        }
        last_unit = order;
        rest = &rest[unit.len()..];
        total = value
            .checked_mul(*millis)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`, `800ms`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS.iter().rev() {
        if millis >= *size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(text: &str, millis: u64) {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(millis)),
            "{text}"
        );
    }

    #[track_caller]
    fn err(text: &str) {
        assert!(parse_duration(text).is_err(), "{text} should not parse");
    }

    #[test]
    fn parses_prometheus_durations() {
        ok("0", 0);
        ok("800ms", 800);
        ok("30s", 30_000);
        ok("5m", 300_000);
        ok("1h30m", 5_400_000);
        ok("14d", 14 * 86_400_000);
        ok("2w", 14 * 86_400_000);
        ok("1y", 365 * 86_400_000);
        ok("1m500ms", 60_500);
    }

    #[test]
    fn rejects_malformed_durations() {
        err("");
        err("10");
        err("ms");
        err("1.5s");
        err("5 m");
        err("30m1h");
        err("1s1s");
        err("-1s");
        err("5x");
        err("99999999999999999999y");
    }

    #[test]
    fn formats_round_trip() {
        for text in ["800ms", "30s", "1h30m", "2w", "1m500ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
