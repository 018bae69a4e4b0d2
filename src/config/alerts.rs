//! The `alerts` section: how alerts from Alertmanager, pushes and PagerDuty-shaped events
//! become incidents (see [`AlertMapping`] for what each key means and its default).
//!
//! `severity` entries are merged over the built-in ones (critical, warning, info); the
//! templates are compiled here, so a template that does not compile is a config error.

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Check;
use super::locate::Segment::Key;
use crate::domain::alert::{AlertMapping, GroupBy, Severity, Templates};
use crate::domain::policy::Category;
use crate::domain::priority::Level;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "alert settings (a mapping with `resolve_timeout`, `group_by`, `title`, `description`, `service_label`, `severity`, `unknown_severity`, `category`)"
)]
struct AlertsOutline {
    resolve_timeout: Option<Value>,
    group_by: Option<Value>,
    title: Option<Value>,
    description: Option<Value>,
    service_label: Option<Value>,
    severity: Option<Value>,
    unknown_severity: Option<Value>,
    category: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "impact and urgency (a mapping with `impact` and `urgency`)"
)]
struct SeverityOutline {
    impact: Level,
    urgency: Level,
}

/// `alerts`, validated; the defaults for what is absent or wrong (wrong has a diagnostic).
/// `categories` is the taxonomy, when it is known to be valid.
pub(super) fn alerts(
    check: &mut Check<'_>,
    value: Option<Value>,
    categories: Option<&[Category]>,
) -> AlertMapping {
    let mut mapping = AlertMapping::default();
    let at = [Key("alerts")];
    let Some(value) = value else {
        // No `alerts:` section: a taxonomy without the default category gives alerts its
        // first incident category rather than refusing a configuration that never asked.
        if let Some(categories) = categories
            && !categories.iter().any(|c| c.name == mapping.category)
            && let Some(first) = categories
                .iter()
                .find(|c| c.kind == crate::domain::incident::Kind::Incident)
                .or(categories.first())
        {
            mapping.category = first.name.clone();
        }
        return mapping;
    };
    let Some(outline) = check.strict::<AlertsOutline>(value, &at) else {
        return mapping;
    };
    let text: Option<String> = check.field(&at, "resolve_timeout", outline.resolve_timeout);
    let path = [Key("alerts"), Key("resolve_timeout")];
    if let Some(timeout) = check.duration(&path, text.as_deref(), mapping.resolve_timeout) {
        if timeout.is_zero() {
            check.at(
                &path,
                "alerts.resolve_timeout must be more than 0".to_owned(),
            );
        } else {
            mapping.resolve_timeout = timeout;
        }
    }
    match check
        .field::<String>(&at, "group_by", outline.group_by)
        .as_deref()
    {
        None | Some("fingerprint") => {}
        Some("group_key") => mapping.group_by = GroupBy::GroupKey,
        Some(other) => check.at(
            &[Key("alerts"), Key("group_by")],
            format!("alerts.group_by must be `fingerprint` or `group_key`, not `{other}`"),
        ),
    }
    let title: Option<String> = check.field(&at, "title", outline.title);
    let description: Option<String> = check.field(&at, "description", outline.description);
    if let Some(title) = title {
        match Templates::compile(&title, "") {
            Ok(_) => mapping.title = title,
            Err(error) => check.at(&[Key("alerts"), Key("title")], error),
        }
    }
    if let Some(description) = description {
        match Templates::compile("", &description) {
            Ok(_) => mapping.description = description,
            Err(error) => check.at(&[Key("alerts"), Key("description")], error),
        }
    }
    if let Some(label) = check.field::<String>(&at, "service_label", outline.service_label) {
        if super::document::is_label_name(&label) {
            mapping.service_label = label;
        } else {
            check.at(
                &[Key("alerts"), Key("service_label")],
                format!("alerts.service_label `{label}` is not a valid label name"),
            );
        }
    }
    if let Some(entries) =
        check.field::<std::collections::BTreeMap<String, Value>>(&at, "severity", outline.severity)
    {
        for (name, value) in entries {
            let path = [Key("alerts"), Key("severity"), Key(&name)];
            if let Some(level) = check.strict::<SeverityOutline>(value, &path) {
                mapping.severity.insert(
                    name.clone(),
                    Severity {
                        impact: level.impact,
                        urgency: level.urgency,
                    },
                );
            }
        }
    }
    if let Some(value) = outline.unknown_severity {
        let path = [Key("alerts"), Key("unknown_severity")];
        if let Some(level) = check.strict::<SeverityOutline>(value, &path) {
            mapping.unknown_severity = Severity {
                impact: level.impact,
                urgency: level.urgency,
            };
        }
    }
    let written = outline.category.is_some();
    if let Some(category) = check.field::<String>(&at, "category", outline.category) {
        mapping.category = category;
    }
    if let Some(categories) = categories
        && !categories.iter().any(|c| c.name == mapping.category)
    {
        let valid: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
        let path = [Key("alerts"), Key("category")];
        let message = format!(
            "unknown category `{}`{}; valid: {}",
            mapping.category,
            if !written {
                " (the default when `alerts.category` is left out)"
            } else {
                ""
            },
            valid.join(", ")
        );
        check.at(&path, message);
    }
    mapping
}
