//! The `status_page` section: what the public status page is called, the time zone it shows
//! times in, and the services it lists, each fed by the probes, rule incidents and alerts
//! whose labels match it.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Check;
use super::locate::Segment::{Index, Key};
use crate::domain::calendar::parse_timezone;
use crate::domain::maintenance::ServiceResolver;

/// At most this many services: the page and its badges stay small and fast.
pub const MAX_SERVICES: usize = 500;

/// `status_page`, validated (the defaults when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageConfig {
    pub title: String,
    pub description: Option<String>,
    /// Times on the page are shown in this zone (UTC by default).
    pub timezone: chrono_tz::Tz,
    /// In the order configured. Empty: the page lists the `service` labels of the probes.
    pub services: Vec<StatusService>,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig {
            title: "Status".to_owned(),
            description: None,
            timezone: chrono_tz::UTC,
            services: Vec::new(),
        }
    }
}

/// One service on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusService {
    /// Its id: in URLs (`/badge/{name}/…`), maintenances and subscriptions.
    pub name: String,
    /// What visitors read (the name when not set).
    pub display: String,
    pub description: Option<String>,
    /// Services of a group are shown together, groups in the order first named.
    pub group: Option<String>,
    /// The labels a probe, rule incident or alert must all have to feed this service;
    /// `{service: NAME}` when not set.
    pub matchers: BTreeMap<String, String>,
}

impl StatusPageConfig {
    /// The first of `names` that is not a listed service, if services are listed (with
    /// none listed, any name is taken): what sign-ups and maintenances refuse.
    pub fn unknown_service<'a>(&self, names: &'a [String]) -> Option<&'a str> {
        if self.services.is_empty() {
            return None;
        }
        names
            .iter()
            .find(|name| !self.services.iter().any(|s| &s.name == *name))
            .map(String::as_str)
    }
}

impl StatusService {
    /// Whether something with these labels feeds this service.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|(name, value)| labels.get(name) == Some(value))
    }

    /// Whether an incident feeds this service: by its `service` field when the matchers
    /// are the default `{service: NAME}`, else by its labels.
    pub fn matches_incident(
        &self,
        service: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        if self.is_default_match() {
            // The common case, asked for every recent incident and service on each page
            // built: two string comparisons, no map walk.
            return service == Some(self.name.as_str())
                || labels.get("service").map(String::as_str) == Some(self.name.as_str());
        }
        self.matches(labels)
    }

    fn is_default_match(&self) -> bool {
        self.matchers.len() == 1
            && self
                .matchers
                .first_key_value()
                .is_some_and(|(k, v)| k == "service" && *v == self.name)
    }
}

/// Which services a signal with these labels belongs to, for maintenances: the listed
/// services its labels match, and the value of its own service label (a maintenance may
/// name a service the page does not list).
#[derive(Debug, Clone, Copy)]
pub struct SignalServices<'a> {
    pub page: &'a StatusPageConfig,
    /// The label that names a signal's service (`service`, or `alerts.service_label`).
    pub label: &'a str,
}

impl ServiceResolver for SignalServices<'_> {
    fn services<'a>(&'a self, labels: &'a BTreeMap<String, String>) -> Vec<&'a str> {
        let mut services: Vec<&str> = self
            .page
            .services
            .iter()
            .filter(|s| s.matches(labels))
            .map(|s| s.name.as_str())
            .collect();
        if let Some(own) = labels.get(self.label)
            && !services.contains(&own.as_str())
        {
            services.push(own);
        }
        services
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "status page settings (a mapping with `title`, `description`, `timezone`, `services`)"
)]
struct StatusPageOutline {
    title: Option<Value>,
    description: Option<Value>,
    timezone: Option<Value>,
    services: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a service (a mapping with `name`, `display`, `description`, `group`, `match`)"
)]
struct ServiceOutline {
    name: Option<Value>,
    display: Option<Value>,
    description: Option<Value>,
    group: Option<Value>,
    #[serde(rename = "match")]
    matchers: Option<Value>,
}

/// A service name: what URLs and subscriptions carry.
fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `status_page`, validated; the defaults for what is absent or wrong (wrong has a
/// diagnostic).
pub(super) fn status_page(check: &mut Check<'_>, value: Option<Value>) -> StatusPageConfig {
    let mut page = StatusPageConfig::default();
    let at = [Key("status_page")];
    let Some(value) = value else {
        return page;
    };
    if value.is_null() {
        return page;
    }
    let Some(outline) = check.strict::<StatusPageOutline>(value, &at) else {
        return page;
    };
    if let Some(title) = check.field::<String>(&at, "title", outline.title) {
        if title.trim().is_empty() || title.len() > 200 {
            check.at(
                &[Key("status_page"), Key("title")],
                "status_page.title must be 1 to 200 bytes".to_owned(),
            );
        } else {
            page.title = title;
        }
    }
    page.description = check.field::<String>(&at, "description", outline.description);
    if let Some(text) = check.field::<String>(&at, "timezone", outline.timezone) {
        match parse_timezone(&text) {
            Ok(timezone) => page.timezone = timezone,
            Err(message) => check.at(&[Key("status_page"), Key("timezone")], message),
        }
    }
    let items = outline.services.unwrap_or_default();
    if items.len() > MAX_SERVICES {
        check.at(
            &[Key("status_page"), Key("services")],
            format!(
                "status_page.services lists {} services; at most {MAX_SERVICES}",
                items.len()
            ),
        );
        return page;
    }
    let mut seen = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let path = [Key("status_page"), Key("services"), Index(index)];
        let Some(outline) = check.strict::<ServiceOutline>(item, &path) else {
            continue;
        };
        let Some(name) = check.required::<String>(&path, "name", outline.name) else {
            continue;
        };
        let name_at = [
            Key("status_page"),
            Key("services"),
            Index(index),
            Key("name"),
        ];
        if !is_service_name(&name) {
            check.at(
                &name_at,
                format!("service name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`"),
            );
            continue;
        }
        if !seen.insert(name.clone()) {
            check.at(&name_at, format!("service `{name}` is listed twice"));
            continue;
        }
        let display = check
            .field::<String>(&path, "display", outline.display)
            .unwrap_or_else(|| name.clone());
        let description = check.field::<String>(&path, "description", outline.description);
        let group = check.field::<String>(&path, "group", outline.group);
        let matchers =
            match check.field::<BTreeMap<String, String>>(&path, "match", outline.matchers) {
                Some(matchers) => {
                    let match_at = [
                        Key("status_page"),
                        Key("services"),
                        Index(index),
                        Key("match"),
                    ];
                    if matchers.is_empty() {
                        check.at(
                        &match_at,
                        "match must name at least one label (leave it out for `{service: NAME}`)"
                            .to_owned(),
                    );
                        continue;
                    }
                    if let Some(bad) = matchers.keys().find(|k| !super::document::is_label_name(k))
                    {
                        check.at(&match_at, format!("`{bad}` is not a valid label name"));
                        continue;
                    }
                    matchers
                }
                None => BTreeMap::from([("service".to_owned(), name.clone())]),
            };
        page.services.push(StatusService {
            name,
            display,
            description,
            group,
            matchers,
        });
    }
    page
}
