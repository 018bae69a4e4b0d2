//! Alert payloads on the wire → [`Alert`]s: Alertmanager's webhook (version 4), the
//! Alertmanager v2 push (`POST /api/v2/alerts`) and PagerDuty Events API v2. Decoding is
//! from `serde_json::Value` by hand so that every problem names its field
//! (`alerts[2].labels`), and unknown or newer fields are ignored. A batch decodes whole or
//! not at all: one malformed alert refuses the request.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::domain::alert::{Alert, AlertSource, AlertStatus};

/// Label and annotation limits (as the API's `labels`: see `api::limits`).
pub const LABELS: usize = 64;
pub const LABEL_NAME: usize = 128;
pub const LABEL_VALUE: usize = 1024;
/// An annotation value (a description may be long).
pub const ANNOTATION_VALUE: usize = 16 * 1024;
/// PagerDuty's limits.
pub const DEDUP_KEY: usize = 255;
pub const SUMMARY: usize = 1024;

/// A payload problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, Invalid> {
    value
        .as_object()
        .ok_or_else(|| invalid(field, "must be an object"))
}

fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, Invalid> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(path(at, key), "must be a string")),
    }
}

fn path(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn time(map: &Map<String, Value>, key: &str, at: &str) -> Result<Option<DateTime<Utc>>, Invalid> {
    let Some(text) = opt_str(map, key, at)? else {
        return Ok(None);
    };
    parse_time(text)
        .map(Some)
        .ok_or_else(|| invalid(path(at, key), format!("`{text}` is not an RFC 3339 time")))
}

/// RFC 3339, or ISO 8601 with a `+0000` offset (PagerDuty's example).
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Go's zero time, `0001-01-01T00:00:00Z`: what Alertmanager sends as a firing alert's
/// `endsAt`, and what "not set" is in its API.
fn is_zero(time: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    time.year() <= 1
}

/// A string → string map (labels, annotations) within the limits.
fn string_map(
    map: &Map<String, Value>,
    key: &str,
    at: &str,
    value_limit: usize,
    required: bool,
) -> Result<BTreeMap<String, String>, Invalid> {
    let field = path(at, key);
    let entries = match map.get(key) {
        None | Some(Value::Null) if required => return Err(invalid(field, "is required")),
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(value) => object(value, &field)?,
    };
    if entries.len() > LABELS {
        return Err(invalid(
            field,
            format!("has {} entries; at most {LABELS}", entries.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in entries {
        if name.is_empty()
            || name.chars().count() > LABEL_NAME
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                field,
                format!("names must be 1 to {LABEL_NAME} printable characters"),
            ));
        }
        let Value::String(value) = value else {
            return Err(invalid(format!("{field}.{name}"), "must be a string"));
        };
        if value.chars().count() > value_limit {
            return Err(invalid(
                format!("{field}.{name}"),
                format!("is longer than {value_limit} characters"),
            ));
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// `POST /api/v1/alertmanager`: Alertmanager's webhook, payload version 4. Firing alerts
/// carry no expiry (Alertmanager zeroes their `endsAt` and sends them resolved when they
/// resolve); `groupKey` is kept for `alerts.group_by: group_key`.
pub fn alertmanager(body: &Value) -> Result<Vec<Alert>, Invalid> {
    let message = object(body, "body")?;
    match opt_str(message, "version", "")? {
        None | Some("4") => {}
        Some(other) => {
            return Err(invalid(
                "version",
                format!("payload version `{other}` is not supported; version 4 is"),
            ));
        }
    }
    let group_key = opt_str(message, "groupKey", "")?.map(str::to_owned);
    let Some(Value::Array(alerts)) = message.get("alerts") else {
        return Err(invalid("alerts", "is required (an array)"));
    };
    alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let at = format!("alerts[{i}]");
            let map = object(alert, &at)?;
            let status = match opt_str(map, "status", &at)? {
                Some("firing") => AlertStatus::Firing,
                Some("resolved") => AlertStatus::Resolved,
                Some(other) => {
                    return Err(invalid(
                        path(&at, "status"),
                        format!("must be `firing` or `resolved`, not `{other}`"),
                    ));
                }
                None => return Err(invalid(path(&at, "status"), "is required")),
            };
            let ends_at = time(map, "endsAt", &at)?.filter(|t| !is_zero(*t));
            Ok(Alert {
                source: AlertSource::Alertmanager,
                status,
                labels: string_map(map, "labels", &at, LABEL_VALUE, true)?,
                annotations: string_map(map, "annotations", &at, ANNOTATION_VALUE, false)?,
                starts_at: time(map, "startsAt", &at)?.filter(|t| !is_zero(*t)),
                ends_at: match status {
                    AlertStatus::Firing => None,
                    _ => ends_at,
                },
                generator_url: opt_str(map, "generatorURL", &at)?
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned),
                group_key: group_key.clone(),
                dedup_key: None,
            })
        })
        .collect()
}

/// `POST /api/v2/alerts`: Alertmanager's push API, as Prometheus sends it. Identity is the
/// label set (`alertname` required); a missing `startsAt` is now; an `endsAt` not after
/// now is a resolved alert; a missing one stays `None` here and the engine makes it now
/// plus `alerts.resolve_timeout` (the configuration in force when it applies the alert).
pub fn api_v2(body: &Value, now: DateTime<Utc>) -> Result<Vec<Alert>, Invalid> {
    let Value::Array(alerts) = body else {
        return Err(invalid("body", "must be an array of alerts"));
    };
    alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let at = format!("[{i}]");
            let map = object(alert, &at)?;
            let labels = string_map(map, "labels", &at, LABEL_VALUE, true)?;
            if labels.get("alertname").is_none_or(String::is_empty) {
                return Err(invalid(path(&at, "labels.alertname"), "is required"));
            }
            let starts_at = time(map, "startsAt", &at)?.filter(|t| !is_zero(*t));
            let ends_at = time(map, "endsAt", &at)?.filter(|t| !is_zero(*t));
            let status = if ends_at.is_some_and(|at| at <= now) {
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            };
            Ok(Alert {
                source: AlertSource::ApiV2,
                status,
                labels,
                annotations: string_map(map, "annotations", &at, ANNOTATION_VALUE, false)?,
                starts_at: Some(starts_at.unwrap_or(now)),
                ends_at: ends_at.filter(|_| status == AlertStatus::Firing),
                generator_url: opt_str(map, "generatorURL", &at)?
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned),
                group_key: None,
                dedup_key: None,
            })
        })
        .collect()
}

/// A PagerDuty Events API v2 event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub routing_key: String,
    /// Given, or generated for a trigger without one.
    pub dedup_key: String,
    pub alert: Alert,
}

/// `POST /api/v1/events`, `POST /v2/enqueue`: PagerDuty Events API v2. Every problem is
/// listed (PagerDuty answers them all in `errors`). `new_key` makes a dedup key for a
/// trigger without one.
pub fn event(body: &Value, new_key: impl FnOnce() -> String) -> Result<Event, Vec<Invalid>> {
    let mut errors = Vec::new();
    let Some(map) = body.as_object() else {
        return Err(vec![invalid("body", "must be an object")]);
    };
    let string = |key: &str, at: &str, map: &Map<String, Value>, errors: &mut Vec<Invalid>| {
        opt_str(map, key, at)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten()
            .map(str::to_owned)
    };
    let routing_key = string("routing_key", "", map, &mut errors);
    if routing_key.as_deref().is_none_or(str::is_empty) {
        errors.push(invalid("routing_key", "is required"));
    }
    let action = string("event_action", "", map, &mut errors);
    let status = match action.as_deref() {
        Some("trigger") => Some(AlertStatus::Firing),
        Some("acknowledge") => Some(AlertStatus::Acknowledged),
        Some("resolve") => Some(AlertStatus::Resolved),
        Some(other) => {
            errors.push(invalid(
                "event_action",
                format!("must be `trigger`, `acknowledge` or `resolve`, not `{other}`"),
            ));
            None
        }
        None => {
            errors.push(invalid("event_action", "is required"));
            None
        }
    };
    let dedup_key = string("dedup_key", "", map, &mut errors);
    if let Some(key) = &dedup_key
        && (key.is_empty() || key.chars().count() > DEDUP_KEY)
    {
        errors.push(invalid(
            "dedup_key",
            format!("must be 1 to {DEDUP_KEY} characters"),
        ));
    }
    if dedup_key.is_none()
        && matches!(
            status,
            Some(AlertStatus::Acknowledged | AlertStatus::Resolved)
        )
    {
        errors.push(invalid(
            "dedup_key",
            "is required to acknowledge or resolve",
        ));
    }
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut starts_at = None;
    if status == Some(AlertStatus::Firing) {
        match map.get("payload") {
            Some(Value::Object(payload)) => {
                let at = "payload";
                match string("summary", at, payload, &mut errors) {
                    Some(summary) if summary.chars().count() > SUMMARY => errors.push(invalid(
                        "payload.summary",
                        format!("is longer than {SUMMARY} characters"),
                    )),
                    Some(summary) if !summary.trim().is_empty() => {
                        annotations.insert("summary".to_owned(), summary);
                    }
                    _ => errors.push(invalid("payload.summary", "is required")),
                }
                match string("source", at, payload, &mut errors) {
                    Some(source) if !source.is_empty() => {
                        labels.insert("source".to_owned(), source);
                    }
                    _ => errors.push(invalid("payload.source", "is required")),
                }
                match string("severity", at, payload, &mut errors).as_deref() {
                    Some(s @ ("critical" | "error" | "warning" | "info")) => {
                        labels.insert("severity".to_owned(), s.to_owned());
                    }
                    Some(other) => errors.push(invalid(
                        "payload.severity",
                        format!("must be `critical`, `error`, `warning` or `info`, not `{other}`"),
                    )),
                    None => errors.push(invalid("payload.severity", "is required")),
                }
                for key in ["component", "group", "class"] {
                    if let Some(value) = string(key, at, payload, &mut errors) {
                        if value.chars().count() > LABEL_VALUE {
                            errors.push(invalid(
                                format!("payload.{key}"),
                                format!("is longer than {LABEL_VALUE} characters"),
                            ));
                        }
                        labels.insert(key.to_owned(), value);
                    }
                }
                match time(payload, "timestamp", at) {
                    Ok(time) => starts_at = time,
                    Err(e) => errors.push(e),
                }
                if let Some(details) = payload.get("custom_details").filter(|v| !v.is_null()) {
                    annotations.insert("custom_details".to_owned(), details.to_string());
                }
            }
            Some(_) => errors.push(invalid("payload", "must be an object")),
            None => errors.push(invalid("payload", "is required to trigger")),
        }
    }
    let client_url = string("client_url", "", map, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let dedup_key = dedup_key.unwrap_or_else(new_key);
    if let Some(class) = labels.get("class").cloned() {
        labels.insert("alertname".to_owned(), class);
    }
    Ok(Event {
        routing_key: routing_key.unwrap_or_default(),
        alert: Alert {
            source: AlertSource::Events,
            status: status.expect("no errors"),
            labels,
            annotations,
            starts_at,
            ends_at: None,
            generator_url: client_url,
            group_key: None,
            dedup_key: Some(dedup_key.clone()),
        },
        dedup_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    #[test]
    fn decodes_the_alertmanager_sample_and_tolerates_newer_fields() {
        let body = json!({
            "version": "4",
            "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "incidentd",
            "groupLabels": {"alertname": "ProbeFailure"},
            "commonLabels": {"alertname": "ProbeFailure"},
            "commonAnnotations": {},
            "routeLabels": {},
            "externalURL": "http://alertmanager.example.org:9093",
            "notification_reason": "first notification",
            "something_newer": [1, 2],
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "ProbeFailure", "instance": "https://server.example.org", "job": "http_checks", "severity": "critical"},
                "annotations": {"summary": "BlackBox Probe Failure"},
                "startsAt": "2023-02-06T13:08:45.828Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0",
                "fingerprint": "1a30ba71cca2921f"
            }]
        });
        let alerts = alertmanager(&body).unwrap();
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(
            alert.ends_at, None,
            "a firing alert's zero endsAt is no expiry"
        );
        assert_eq!(
            alert.starts_at,
            Some(parse_time("2023-02-06T13:08:45.828Z").unwrap())
        );
        assert!(alert.group_key.as_deref().unwrap().contains("ProbeFailure"));
        // The fingerprint is Alertmanager's own: prometheus/common's test vector
        // (`TestLabelSetToFingerprint`, 5799056148416392346).
        let mut labelled = alert.clone();
        labelled.labels = BTreeMap::from([
            ("name".to_owned(), "garland, briggs".to_owned()),
            ("fear".to_owned(), "love is not enough".to_owned()),
        ]);
        assert_eq!(labelled.fingerprint(), "507a62d79ee76c9a");
    }

    #[test]
    fn alertmanager_errors_name_the_field() {
        let check = |body: Value, field: &str| {
            assert_eq!(alertmanager(&body).unwrap_err().field, field, "{body}");
        };
        check(json!({"version": "4"}), "alerts");
        check(json!({"version": "5", "alerts": []}), "version");
        check(
            json!({"alerts": [{"status": "firing", "labels": {}}, {"status": "pending", "labels": {}}]}),
            "alerts[1].status",
        );
        check(
            json!({"alerts": [{"status": "firing"}]}),
            "alerts[0].labels",
        );
        check(
            json!({"alerts": [{"status": "firing", "labels": {"a": 1}}]}),
            "alerts[0].labels.a",
        );
        check(
            json!({"alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]}),
            "alerts[0].startsAt",
        );
    }

    #[test]
    fn api_v2_defaults_and_resolution() {
        let body = json!([
            {"labels": {"alertname": "A"}},
            {"labels": {"alertname": "B"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:04:00Z"},
            {"labels": {"alertname": "C"}, "endsAt": "2025-12-31T23:00:00Z", "newer": true},
        ]);
        let alerts = api_v2(&body, at(0)).unwrap();
        assert_eq!(alerts[0].starts_at, Some(at(0)));
        assert_eq!(alerts[0].ends_at, None, "the engine adds resolve_timeout");
        assert_eq!(alerts[1].ends_at, Some(at(240)));
        assert_eq!(alerts[2].status, AlertStatus::Resolved);
        let err = api_v2(&json!([{"labels": {"x": "y"}}]), at(0)).unwrap_err();
        assert_eq!(err.field, "[0].labels.alertname");
        let err = api_v2(&json!({"labels": {}}), at(0)).unwrap_err();
        assert_eq!(err.field, "body");
    }

    #[test]
    fn events_trigger_ack_resolve_and_errors() {
        let trigger = json!({
            "routing_key": "r", "event_action": "trigger",
            "payload": {"summary": "disk full", "source": "db1", "severity": "error",
                        "timestamp": "2015-07-17T08:42:58.315+0000", "component": "postgres",
                        "custom_details": {"free": "0%"}}
        });
        let event = event(&trigger, || "generated".to_owned()).unwrap();
        assert_eq!(event.dedup_key, "generated");
        assert_eq!(event.alert.annotations["summary"], "disk full");
        assert_eq!(event.alert.labels["component"], "postgres");
        assert!(event.alert.starts_at.is_some());
        let resolve = json!({"routing_key": "r", "event_action": "resolve", "dedup_key": "k"});
        assert_eq!(
            super::event(&resolve, || unreachable!())
                .unwrap()
                .alert
                .status,
            AlertStatus::Resolved
        );
        let bad = json!({"event_action": "trigger", "dedup_key": "x".repeat(256),
                         "payload": {"summary": "s".repeat(1025), "severity": "fatal"}});
        let fields: Vec<String> = super::event(&bad, String::new)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "routing_key",
                "dedup_key",
                "payload.summary",
                "payload.source",
                "payload.severity"
            ]
        );
        let ack = json!({"routing_key": "r", "event_action": "acknowledge"});
        assert_eq!(
            super::event(&ack, String::new).unwrap_err()[0].field,
            "dedup_key"
        );
    }
}
