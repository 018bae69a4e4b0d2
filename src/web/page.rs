//! What the public status page shows, built once per snapshot from the engine's read model
//! and the `status_page` settings: the HTML page, `/status.json`, the Atom feeds and the
//! badges all render this one model, so they never disagree, and what the public may see
//! is decided only by [`crate::visibility::visibility`].
//!
//! Daily uptime and maintenances come from elsewhere: [`PageInputs`] takes them as small
//! views ([`UptimeView`], [`MaintenanceView`]); without them the page shows days without
//! data and no maintenance.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Serialize, Serializer};

use crate::config::StatusPageConfig;
use crate::domain::incident::{Incident, State, TimelineEntry};
use crate::domain::priority::Priority;
use crate::engine::Snapshot;
use crate::view::timestamp;
use crate::visibility::{Visibility, services_of, visibility};

/// What the generic notice of restricted incidents says.
pub const RESTRICTED_NOTICE: &str = "We are investigating a security matter";
/// Days of the uptime bar.
pub const UPTIME_DAYS: usize = 90;
/// Resolved incidents stay on the page this long.
pub const RECENT_DAYS: i64 = 14;
/// At most this many incidents on the page (active first); the rest is in the history.
pub const MAX_INCIDENTS: usize = 200;

/// Everything a page is built from.
pub struct PageInputs<'a> {
    pub snapshot: &'a Snapshot,
    pub page: &'a StatusPageConfig,
    /// The services listed when `status_page.services` is empty: the probes' `service`.
    pub probe_services: &'a [String],
    pub uptime: Option<&'a UptimeView>,
    pub maintenances: &'a [MaintenanceView],
    /// When the read model last changed (`Last-Modified`, `updated_at`).
    pub updated_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// Daily uptime per service: the last [`UPTIME_DAYS`] days, oldest first, each the share
/// of successful checks that day (0.0–1.0) or `None` without data.
#[derive(Debug, Clone, Default)]
pub struct UptimeView {
    pub by_service: BTreeMap<String, Vec<Option<f64>>>,
    /// Per service, the share of successful runs over each of [`UPTIME_WINDOWS`] days
    /// (runs weigh alike, not days), `None` without runs.
    pub windows: BTreeMap<String, BTreeMap<u32, Option<f64>>>,
}

/// The windows the badges and `status.json` give uptime over, in days.
pub const UPTIME_WINDOWS: [u32; 3] = [7, 30, 90];

impl UptimeView {
    /// The share of successful runs over the last `days` days: the window's own figure
    /// when it is one of [`UPTIME_WINDOWS`], else the mean of the days with data.
    pub fn ratio(&self, service: &str, days: usize) -> Option<f64> {
        if let Some(ratio) = u32::try_from(days)
            .ok()
            .and_then(|d| self.windows.get(service)?.get(&d))
        {
            return *ratio;
        }
        let bar = self.by_service.get(service)?;
        let known: Vec<f64> = bar.iter().rev().take(days).flatten().copied().collect();
        #[allow(clippy::cast_precision_loss)]
        (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
    }
}

/// A maintenance window as the page shows it.
#[derive(Debug, Clone)]
pub struct MaintenanceView {
    pub id: String,
    pub title: String,
    pub message: String,
    /// Service names (`status_page.services[].name`).
    pub services: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A time: RFC 3339 in JSON and `datetime`, shown in the page's time zone.
/// Ordered by the time (its first field).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub utc: DateTime<Utc>,
    /// RFC 3339, UTC.
    pub iso: String,
    /// "5 Dec 2026, 14:03 WIB".
    pub local: String,
}

impl Stamp {
    pub fn new(utc: DateTime<Utc>, tz: chrono_tz::Tz) -> Stamp {
        Stamp {
            utc,
            iso: timestamp(utc),
            local: utc
                .with_timezone(&tz)
                .format("%-d %b %Y, %H:%M %Z")
                .to_string(),
        }
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.iso)
    }
}

/// A service's state, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Operational,
    Maintenance,
    Degraded,
    PartialOutage,
    MajorOutage,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Operational => "operational",
            ServiceStatus::Maintenance => "maintenance",
            ServiceStatus::Degraded => "degraded",
            ServiceStatus::PartialOutage => "partial_outage",
            ServiceStatus::MajorOutage => "major_outage",
        }
    }

    /// What visitors read.
    pub fn label(self) -> &'static str {
        match self {
            ServiceStatus::Operational => "Operational",
            ServiceStatus::Maintenance => "Under maintenance",
            ServiceStatus::Degraded => "Degraded performance",
            ServiceStatus::PartialOutage => "Partial outage",
            ServiceStatus::MajorOutage => "Major outage",
        }
    }

    /// A symbol beside the colour, so the state never rests on colour alone.
    pub fn icon(self) -> &'static str {
        match self {
            ServiceStatus::Operational => "✓",
            ServiceStatus::Maintenance => "◐",
            ServiceStatus::Degraded => "!",
            ServiceStatus::PartialOutage | ServiceStatus::MajorOutage => "✕",
        }
    }

    /// What an incident does to the services it feeds: early symptoms (P3–P5, or a
    /// performance problem) degrade, P2 is a partial outage, P1 a major one.
    pub fn of(incident: &Incident) -> ServiceStatus {
        if incident.category == "performance" {
            return ServiceStatus::Degraded;
        }
        match incident.priority {
            Priority::P1 => ServiceStatus::MajorOutage,
            Priority::P2 => ServiceStatus::PartialOutage,
            _ => ServiceStatus::Degraded,
        }
    }
}

/// The page's banner, as Atlassian Statuspage words it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusOverall)]
pub struct Overall {
    /// `none`, `maintenance`, `minor`, `major`, `critical`.
    pub indicator: &'static str,
    pub description: &'static str,
    #[serde(skip)]
    pub status: ServiceStatus,
}

impl Overall {
    fn of(worst: ServiceStatus) -> Overall {
        let (indicator, description) = match worst {
            ServiceStatus::Operational => ("none", "All systems operational"),
            ServiceStatus::Maintenance => ("maintenance", "Maintenance in progress"),
            ServiceStatus::Degraded => ("minor", "Degraded performance"),
            ServiceStatus::PartialOutage => ("major", "Partial outage"),
            ServiceStatus::MajorOutage => ("critical", "Major outage"),
        };
        Overall {
            indicator,
            description,
            status: worst,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusPageInfo)]
pub struct PageInfo {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Stamp,
}

/// One day of a service's uptime bar. A page has 90 per service, so a day holds no text of
/// its own: its date is shared by every service, its label written only into the HTML.
#[derive(Debug, Clone)]
pub struct Day {
    /// `up`, `partial`, `down` or `none` (no data).
    pub class: &'static str,
    /// "3 Dec 2026".
    pub date: Arc<str>,
    /// The day's uptime in hundredths of a percent, `None` without data.
    pub basis_points: Option<u32>,
}

impl Day {
    /// The text alternative: "3 Dec 2026: 99.50%" or "3 Dec 2026: no data", written
    /// straight into the page (18,000 of them for 200 services: no string each).
    pub fn label(&self) -> DayLabel<'_> {
        DayLabel(self)
    }
}

/// [`Day::label`].
pub struct DayLabel<'a>(&'a Day);

impl std::fmt::Display for DayLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.basis_points {
            Some(bp) => write!(f, "{}: {}.{:02}%", self.0.date, bp / 100, bp % 100),
            None => write!(f, "{}: no data", self.0.date),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusService)]
pub struct ServiceModel {
    pub name: String,
    pub display: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub group: Option<String>,
    pub status: ServiceStatus,
    /// Percent (0–100) over [`UPTIME_DAYS`], when any day has data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_90d: Option<f64>,
    #[serde(skip)]
    pub bar: Vec<Day>,
    /// "99.95% uptime over 90 days" or "no data".
    #[serde(skip)]
    pub uptime_text: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusUpdate)]
pub struct Update {
    #[schema(value_type = String, format = DateTime)]
    pub at: Stamp,
    /// `investigating`, `update`, `resolved`.
    pub status: &'static str,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusIncident)]
pub struct IncidentModel {
    /// `INC-7`, as the API names it.
    pub id: String,
    pub title: String,
    /// `investigating`, `identified`, `monitoring`, `resolved`.
    pub status: &'static str,
    /// `minor`, `major`, `critical`.
    pub impact: &'static str,
    pub services: Vec<String>,
    /// The services as visitors read them (display names, joined).
    #[serde(skip)]
    pub shown_services: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Stamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Stamp>,
    /// Newest first.
    pub updates: Vec<Update>,
}

impl IncidentModel {
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusMaintenance)]
pub struct MaintenanceModel {
    pub id: String,
    pub title: String,
    pub message: String,
    pub services: Vec<String>,
    /// The services as visitors read them (display names, joined).
    #[serde(skip)]
    pub shown_services: String,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Stamp,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Stamp,
    /// `scheduled` or `in_progress`.
    pub status: &'static str,
}

/// Services shown together under one heading (`None`: those without a group, first).
#[derive(Debug, Clone)]
pub struct Group {
    pub name: Option<String>,
    pub services: Vec<ServiceModel>,
}

/// The page: `/status.json` is this, serialized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StatusPage)]
pub struct Model {
    pub page: PageInfo,
    pub status: Overall,
    pub services: Vec<ServiceModel>,
    /// Active incidents (newest first), then those resolved lately (newest first).
    pub incidents: Vec<IncidentModel>,
    pub maintenances: Vec<MaintenanceModel>,
    /// The generic notice while a restricted incident is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'static str>,
    #[serde(skip)]
    pub groups: Vec<Group>,
    #[serde(skip)]
    pub lang: &'static str,
}

impl Model {
    pub fn service(&self, name: &str) -> Option<&ServiceModel> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn incident(&self, id: &str) -> Option<&IncidentModel> {
        self.incidents.iter().find(|i| i.id == id)
    }
}

/// The public wording of an incident's state.
fn public_status(state: State) -> &'static str {
    match state {
        State::Open => "investigating",
        State::Acknowledged => "identified",
        State::OnHold => "monitoring",
        State::Resolved | State::Closed => "resolved",
    }
}

fn impact(incident: &Incident) -> &'static str {
    match ServiceStatus::of(incident) {
        ServiceStatus::MajorOutage => "critical",
        ServiceStatus::PartialOutage => "major",
        _ => "minor",
    }
}

/// One public incident with its public timeline, newest first: when it started, each
/// public note, and its resolution.
pub fn incident_model(
    incident: &Incident,
    notes: &[TimelineEntry],
    page: &StatusPageConfig,
) -> IncidentModel {
    let tz = page.timezone;
    let mut updates = vec![Update {
        at: Stamp::new(incident.opened_at, tz),
        status: "investigating",
        body: "We are investigating this issue.".to_owned(),
    }];
    updates.extend(notes.iter().filter(|e| e.public).map(|e| Update {
        at: Stamp::new(e.at, tz),
        status: "update",
        body: e.message.clone(),
    }));
    let resolved_at = incident.resolved_at.filter(|_| !incident.state.is_active());
    if let Some(at) = resolved_at {
        updates.push(Update {
            at: Stamp::new(at, tz),
            status: "resolved",
            body: "This incident has been resolved.".to_owned(),
        });
    }
    updates.reverse();
    let services: Vec<String> = services_of(incident, page)
        .into_iter()
        .map(str::to_owned)
        .collect();
    IncidentModel {
        id: incident.id.to_string(),
        title: incident.title.clone(),
        status: public_status(incident.state),
        impact: impact(incident),
        shown_services: shown(&services, page),
        services,
        started_at: Stamp::new(incident.opened_at, tz),
        resolved_at: resolved_at.map(|at| Stamp::new(at, tz)),
        updates,
    }
}

/// The services listed: the configured ones, else the probes' services.
fn listed_one(name: &str) -> ServiceModel {
    ServiceModel {
        name: name.to_owned(),
        display: name.to_owned(),
        description: None,
        group: None,
        status: ServiceStatus::Operational,
        uptime_90d: None,
        bar: Vec::new(),
        uptime_text: String::new(),
    }
}

fn listed(inputs: &PageInputs<'_>) -> Vec<ServiceModel> {
    let plain = |name: &String| listed_one(name);
    if inputs.page.services.is_empty() {
        return inputs.probe_services.iter().map(plain).collect();
    }
    inputs
        .page
        .services
        .iter()
        .map(|s| ServiceModel {
            display: s.display.clone(),
            description: s.description.clone(),
            group: s.group.clone(),
            ..plain(&s.name)
        })
        .collect()
}

/// "5 Dec 2026" for each of the bar's [`UPTIME_DAYS`] days, oldest first: the same for
/// every service, so written once per page.
fn bar_dates(inputs: &PageInputs<'_>) -> Vec<Arc<str>> {
    // Uptime is counted by UTC day: the bar's days are UTC days.
    let today = inputs.now.date_naive();
    (0..UPTIME_DAYS)
        .map(|i| {
            #[allow(clippy::cast_possible_wrap)]
            let date = today - TimeDelta::days((UPTIME_DAYS - 1 - i) as i64);
            Arc::from(date.format("%-d %b %Y").to_string())
        })
        .collect()
}

/// The uptime bar of a service: [`UPTIME_DAYS`] days ending today (`dates`, from
/// [`bar_dates`]), without data when there is no uptime view.
fn uptime_bar(service: &mut ServiceModel, inputs: &PageInputs<'_>, dates: &[Arc<str>]) {
    let days = inputs.uptime.and_then(|u| u.by_service.get(&service.name));
    service.bar = dates
        .iter()
        .enumerate()
        .map(|(i, date)| {
            let ratio = days.and_then(|d| {
                let offset = d.len().checked_sub(UPTIME_DAYS - i)?;
                d.get(offset).copied().flatten()
            });
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let basis_points = ratio.map(|r| (r.clamp(0.0, 1.0) * 10_000.0).round() as u32);
            Day {
                class: match ratio {
                    None => "none",
                    Some(r) if r >= 0.999 => "up",
                    Some(r) if r >= 0.95 => "partial",
                    Some(_) => "down",
                },
                date: date.clone(),
                basis_points,
            }
        })
        .collect();
    service.uptime_90d = inputs
        .uptime
        .and_then(|u| u.ratio(&service.name, UPTIME_DAYS))
        .map(|r| (r * 10_000.0).round() / 100.0);
    service.uptime_text = match service.uptime_90d {
        Some(percent) => format!("{percent:.2}% uptime over {UPTIME_DAYS} days"),
        None => "no data".to_owned(),
    };
}

/// Service names as visitors read them: each listed service's display name, joined.
fn shown(names: &[String], page: &StatusPageConfig) -> String {
    names
        .iter()
        .map(|name| {
            page.services
                .iter()
                .find(|s| &s.name == name)
                .map_or(name.as_str(), |s| s.display.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the page.
pub fn build(inputs: &PageInputs<'_>) -> Model {
    let snapshot = inputs.snapshot;
    let page = inputs.page;
    let tz = page.timezone;
    let mut services = listed(inputs);
    if page.services.is_empty() {
        // Without a list, a service named by an active public incident shows too.
        let mut named: Vec<String> = snapshot
            .active()
            .filter(|i| visibility(i, &snapshot.restrictions, page) == Visibility::Public)
            .filter_map(|i| i.service.clone())
            .filter(|s| !inputs.probe_services.contains(s))
            .collect();
        named.sort();
        named.dedup();
        services.extend(named.iter().map(|name| ServiceModel {
            display: name.clone(),
            ..listed_one(name)
        }));
        services.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut notice = None;
    let mut active = Vec::new();
    let mut shown_resolved: Vec<(DateTime<Utc>, &Incident, &[TimelineEntry])> = Vec::new();
    let since = inputs.now - TimeDelta::days(RECENT_DAYS);
    let none = Vec::new();
    let notes = |id: u64| {
        snapshot
            .public_updates
            .get(&id)
            .map_or(none.as_slice(), |u| u.as_slice())
    };
    for incident in snapshot.incidents.values().rev() {
        match visibility(incident, &snapshot.restrictions, page) {
            Visibility::Hidden => continue,
            Visibility::Notice => {
                if incident.state.is_active() {
                    notice = Some(RESTRICTED_NOTICE);
                }
                continue;
            }
            Visibility::Public => {}
        }
        if incident.state.is_active() {
            let fed = services_of(incident, page);
            let status = ServiceStatus::of(incident);
            for service in services
                .iter_mut()
                .filter(|s| fed.contains(&s.name.as_str()))
            {
                service.status = service.status.max(status);
            }
            if active.len() < MAX_INCIDENTS {
                active.push(incident_model(incident, notes(incident.id.0), page));
            }
        } else if let Some(at) = incident.resolved_at.filter(|at| *at >= since) {
            shown_resolved.push((at, incident, notes(incident.id.0)));
        }
    }
    for recent in snapshot.recent.values().rev() {
        let incident = recent.incident.as_ref();
        if let Some(at) = incident.resolved_at.filter(|at| *at >= since)
            && visibility(incident, &snapshot.restrictions, page) == Visibility::Public
        {
            shown_resolved.push((at, incident, recent.updates.as_slice()));
        }
    }
    // Only those shown become models: the recent list may hold a thousand.
    shown_resolved.sort_by_key(|(at, _, _)| std::cmp::Reverse(*at));
    shown_resolved.truncate(MAX_INCIDENTS.saturating_sub(active.len()));
    let resolved: Vec<IncidentModel> = shown_resolved
        .into_iter()
        .map(|(_, incident, updates)| incident_model(incident, updates, page))
        .collect();

    let mut maintenances: Vec<MaintenanceModel> = inputs
        .maintenances
        .iter()
        .filter(|m| m.ends_at > inputs.now)
        .map(|m| MaintenanceModel {
            id: m.id.clone(),
            title: m.title.clone(),
            message: m.message.clone(),
            services: m.services.clone(),
            shown_services: shown(&m.services, inputs.page),
            starts_at: Stamp::new(m.starts_at, tz),
            ends_at: Stamp::new(m.ends_at, tz),
            status: if m.starts_at <= inputs.now {
                "in_progress"
            } else {
                "scheduled"
            },
        })
        .collect();
    maintenances.sort_by_key(|m| m.starts_at.utc);
    for m in maintenances.iter().filter(|m| m.status == "in_progress") {
        for service in services.iter_mut().filter(|s| m.services.contains(&s.name)) {
            service.status = service.status.max(ServiceStatus::Maintenance);
        }
    }
    let dates = bar_dates(inputs);
    for service in &mut services {
        uptime_bar(service, inputs, &dates);
    }
    let worst = services
        .iter()
        .map(|s| s.status)
        .max()
        .unwrap_or(ServiceStatus::Operational);
    // With no service listed, an active public incident still shows in the banner.
    let worst = active
        .iter()
        .map(|_| ServiceStatus::Degraded)
        .chain([worst])
        .max()
        .unwrap_or(worst);
    let mut incidents = active;
    incidents.extend(resolved);
    Model {
        page: PageInfo {
            title: page.title.clone(),
            description: page.description.clone(),
            url: None,
            updated_at: Stamp::new(inputs.updated_at, tz),
        },
        status: Overall::of(worst),
        groups: groups(&services),
        services,
        incidents,
        maintenances,
        notice,
        lang: "en",
    }
}

/// Services by group: those without one first, then each group in the order first named.
fn groups(services: &[ServiceModel]) -> Vec<Group> {
    let mut groups: Vec<Group> = vec![Group {
        name: None,
        services: Vec::new(),
    }];
    for service in services {
        match groups.iter_mut().find(|g| g.name == service.group) {
            Some(group) => group.services.push(service.clone()),
            None => groups.push(Group {
                name: service.group.clone(),
                services: vec![service.clone()],
            }),
        }
    }
    groups.retain(|g| !g.services.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_state_wins_and_names_the_banner() {
        assert!(ServiceStatus::MajorOutage > ServiceStatus::PartialOutage);
        assert!(ServiceStatus::Degraded > ServiceStatus::Maintenance);
        assert_eq!(
            Overall::of(ServiceStatus::Operational).description,
            "All systems operational"
        );
        assert_eq!(
            Overall::of(ServiceStatus::PartialOutage).description,
            "Partial outage"
        );
    }

    #[test]
    fn times_show_in_the_page_zone() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T07:03:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let stamp = Stamp::new(at, chrono_tz::Asia::Jakarta);
        assert_eq!(stamp.local, "5 Dec 2026, 14:03 WIB");
        assert_eq!(stamp.iso, timestamp(at));
    }

    #[test]
    fn uptime_is_the_mean_of_days_with_data() {
        let mut uptime = UptimeView::default();
        uptime
            .by_service
            .insert("a".to_owned(), vec![None, Some(1.0), Some(0.5)]);
        assert_eq!(uptime.ratio("a", 90), Some(0.75));
        assert_eq!(uptime.ratio("a", 1), Some(0.5));
        assert_eq!(uptime.ratio("b", 90), None);
    }
}
