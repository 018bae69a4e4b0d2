//! What the fuzz targets share: the fixed inputs they evaluate against and the checks every
//! decoder's answer must pass, whatever the bytes were.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use incidentd::config::{ConfigErrors, IcmpUnavailable};
use incidentd::domain::alert::{Alert, AlertMapping, GroupBy, Templates};
use incidentd::domain::incident::Tier;
use incidentd::domain::observation::{BODY_LIMIT, History, Observation};
use incidentd::domain::priority::Priority;
use incidentd::domain::signal::Signal;

/// The fixed "now" of every target.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

/// The history a `when` condition is evaluated against: five results ten seconds apart, of
/// every kind of value a placeholder reads, the newest one last with `body` (or a JSON
/// document when none is given).
pub fn history(body: Option<&[u8]>) -> History {
    let start = now() - TimeDelta::seconds(40);
    let mut history = History::new();
    for i in 0..5u16 {
        let mut obs = Observation::new(start + TimeDelta::seconds(i64::from(i) * 10));
        obs.connected = i != 1;
        obs.status = (i != 1).then_some(if i == 3 { 503 } else { 200 });
        obs.response_time = Duration::from_millis(u64::from(i) * 250 + 3);
        obs.error = (i == 1).then(|| "connection refused".to_owned());
        obs.body = Some(
            r#"{"status":"ok","items":[{"name":"a","n":1.5},null,[true]],"json":{"x":""}}"#
                .to_owned(),
        );
        obs.headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-version".to_owned(), format!("1.{i}")),
        ];
        obs.certificate_expiry = (i != 2).then(|| obs.at + TimeDelta::days(20 - i64::from(i)));
        obs.dns_rcode = Some(if i == 4 { "NXDOMAIN" } else { "NOERROR" }.to_owned());
        obs.value = match i {
            0 => None,
            2 => Some(f64::NAN),
            _ => Some(f64::from(i) * 1e3 - 7.25),
        };
        history.push_back(obs);
    }
    if let (Some(body), Some(newest)) = (body, history.back_mut()) {
        let body = &body[..body.len().min(BODY_LIMIT)];
        newest.body = Some(String::from_utf8_lossy(body).into_owned());
    }
    history
}

/// What the engine does with decoded alerts before it decides anything: each one's
/// identity and its signal through the default `alerts:` mapping, both group modes.
pub fn signals(alerts: &[Alert]) {
    let mapping = AlertMapping::default();
    let templates =
        Templates::compile(&mapping.title, &mapping.description).expect("the default templates");
    for alert in alerts {
        assert!(!alert.name().is_empty());
        let fingerprint = alert.fingerprint();
        assert_eq!(fingerprint.len(), 16, "{fingerprint}");
        assert_eq!(alert.fingerprint(), fingerprint, "a fingerprint is stable");
        let _ = alert.group(GroupBy::GroupKey);
        let signal = Signal::from_alert(alert, &mapping, &templates, Priority::P3, Tier::L1);
        assert!(!signal.title.is_empty());
    }
}

/// A secret every environment variable holds: valid as a token and as a webhook signing key.
pub const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub fn env(_name: &str) -> Option<String> {
    Some(SECRET.to_owned())
}

pub fn icmp_allowed() -> Result<(), IcmpUnavailable> {
    Ok(())
}

/// A refused file: at least one diagnostic, each at a place inside `text` when it is about
/// `file`, never quoting a secret the text does not hold, each message bounded.
pub fn check_errors(file: &Path, text: &str, errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error without a diagnostic");
    // libyaml's line breaks: \n, \r (alone or before \n), NEL, LS, PS.
    let lines = 1 + text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    let chars = text.chars().count();
    for diagnostic in &errors.0 {
        assert!(
            diagnostic.line >= 1 && diagnostic.column >= 1,
            "{diagnostic}"
        );
        if diagnostic.file == file {
            assert!(
                diagnostic.line <= lines,
                "{diagnostic}: past the last line ({lines})"
            );
            assert!(
                diagnostic.column <= chars + 2,
                "{diagnostic}: past the text"
            );
        }
        assert!(
            diagnostic.message.chars().count() <= 1001,
            "a message of {} characters",
            diagnostic.message.chars().count()
        );
        if !text.contains(SECRET) {
            assert!(!diagnostic.message.contains(SECRET), "{diagnostic}");
        }
    }
}

/// Whether every `rule_files` glob of a config text stays inside the config's directory (or
/// there is none): relative, without `..`. A value that is not a list, or an item that is
/// not a string, is refused by the loader before any glob runs.
pub fn globs_stay_inside(text: &str) -> bool {
    use serde_yaml::Value;
    fn untagged(value: &Value) -> &Value {
        match value {
            Value::Tagged(tagged) => untagged(&tagged.value),
            other => other,
        }
    }
    let Ok(document) = serde_yaml::from_str::<Value>(text) else {
        return true;
    };
    let Value::Mapping(settings) = untagged(&document) else {
        return true;
    };
    settings.iter().all(|(key, value)| {
        if untagged(key).as_str() != Some("rule_files") {
            return true;
        }
        let Value::Sequence(globs) = untagged(value) else {
            return true;
        };
        globs.iter().all(|glob| match glob {
            Value::String(glob) => !glob.starts_with('/') && !glob.contains(".."),
            Value::Tagged(_) => false,
            _ => true,
        })
    })
}
