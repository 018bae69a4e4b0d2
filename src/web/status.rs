//! The public status page's routes, without auth: `/` (HTML), `/status.json`,
//! `/incidents/{id}`, `/history?month=YYYY-MM`, `/feed.atom`, `/feed/{service}.atom`,
//! `/badge/{service}/status.svg`, `/badge/{service}/uptime-{7d,30d,90d}.svg` and the
//! stylesheet. What the public sees is decided by [`crate::visibility::visibility`] only: a
//! restricted incident (a data breach) shows as one generic notice — no id, no title, and
//! it does not colour any service.
//!
//! Built from the engine's read model, never from the store (except the monthly history
//! and incidents older than the page, read with a bounded query): the page of a snapshot
//! is built once and served from memory until the next commit changes it, so a request
//! costs the same with a million stored incidents as with ten. Every answer has a strong
//! `ETag` and a `Last-Modified` and answers `304` to a matching conditional request.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::page::{self, IncidentModel, MaintenanceView, Model, PageInputs, UptimeView};
use super::render;
use crate::clock::Clock;
use crate::config::StatusPageConfig;
use crate::domain::incident::{Incident, IncidentId};
use crate::domain::maintenance::MaintenanceState;
use crate::engine::{ReadModel, Snapshot};
use crate::store::{LIST_SCAN_BUDGET, Store};
use crate::visibility::{Visibility, visibility};

pub use super::page::RESTRICTED_NOTICE;

/// Cache lifetime of pages, feeds and JSON: short, so a proxy absorbs bursts.
const PUBLIC_CACHE: &str = "public, max-age=10";
/// Badges are embedded elsewhere (READMEs, dashboards): always revalidated.
const BADGE_CACHE: &str = "no-cache";
/// The stylesheet's name carries its hash.
const CSS_CACHE: &str = "public, max-age=31536000, immutable";
/// A page is built again after this long even without a commit: what is "recent" and
/// which maintenance is in progress depend on the time.
const REBUILD_AFTER: TimeDelta = TimeDelta::seconds(60);
/// When only uptime (probe results) changed since the page was built, it is built again
/// after this long: incidents, their updates and maintenances show at once, uptime figures
/// within these seconds (wall time: how often the server works, not what the page says).
const UPTIME_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the two snapshots hold the same incidents, public updates, recent incidents and
/// maintenances (shared, unchanged maps: a pointer comparison each).
fn same_public_content(built: &Snapshot, now: &Snapshot) -> bool {
    built.incidents.ptr_eq(&now.incidents)
        && built.public_updates.ptr_eq(&now.public_updates)
        && built.recent.ptr_eq(&now.recent)
        && Arc::ptr_eq(&built.maintenances, &now.maintenances)
        && Arc::ptr_eq(&built.restrictions, &now.restrictions)
}
/// What a month of the history says when a restricted incident opened in it: that much,
/// and nothing of the incident.
pub const HISTORY_NOTICE: &str = "A security matter was handled this month";
/// At most this many incidents on a month of the history; the page says how many more.
const HISTORY_MAX: usize = 500;
/// At most this many incidents of a month are read for one request (the newest): a month
/// of more says that its oldest were not searched, rather than let one anonymous request
/// decode an unbounded month.
const HISTORY_BUDGET: usize = LIST_SCAN_BUDGET;

/// What the page is built from besides the read model; replaced by a reload.
#[derive(Debug, Clone, Default)]
pub struct PageSettings {
    pub page: StatusPageConfig,
    /// Listed when `status_page.services` is empty.
    pub probe_services: Vec<String>,
    /// The probes feeding each service: its uptime.
    pub service_probes: BTreeMap<String, Vec<String>>,
    /// `external_url` (without a trailing `/`), else `http://` and the bound address:
    /// the absolute links of the feeds.
    pub base_url: String,
}

/// The status page's routes and what they read. Cheap to clone.
#[derive(Clone)]
pub struct StatusPages {
    read: ReadModel,
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Arc<RwLock<Arc<PageSettings>>>,
    /// The last page built, and what it was built from.
    cache: Arc<Mutex<Option<Arc<Built>>>>,
}

/// A body ready to send, with its validator.
#[derive(Clone)]
struct Body {
    bytes: Bytes,
    etag: HeaderValue,
}

impl Body {
    fn new(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        let hash = Sha256::digest(&bytes);
        let etag = format!("\"{}\"", &render::hex(&hash)[..32]);
        Body {
            bytes,
            etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        }
    }
}

/// One snapshot's page in every form.
struct Built {
    version: u64,
    settings: Arc<PageSettings>,
    built_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    model: Model,
    /// Each form is rendered when first asked for, once per snapshot: a change followed
    /// by a request for the JSON does not pay for the HTML too.
    index: OnceLock<Body>,
    json: OnceLock<Body>,
    feed: OnceLock<Body>,
    not_found: Bytes,
    /// Each service's daily uptime (the badges').
    uptime: UptimeView,
    /// What it was built from, and when (wall time).
    snapshot: Arc<Snapshot>,
    built: std::time::Instant,
}

impl StatusPages {
    pub fn new(
        read: ReadModel,
        store: Store,
        clock: Arc<dyn Clock>,
        settings: PageSettings,
    ) -> StatusPages {
        StatusPages {
            read,
            store,
            clock,
            settings: Arc::new(RwLock::new(Arc::new(settings))),
            cache: Arc::default(),
        }
    }

    /// The settings in force from now on (a reload).
    pub fn set_settings(&self, settings: PageSettings) {
        *self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(settings);
    }

    /// The public routes (no token).
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/status.json", get(json))
            .route("/static/{file}", get(stylesheet))
            .route("/incidents/{id}", get(incident))
            .route("/history", get(history))
            .route("/feed.atom", get(feed))
            .route("/feed/{file}", get(service_feed))
            .route("/badge/{service}/{file}", get(badge))
            .with_state(self)
    }

    /// The page of the current snapshot and settings, built once per snapshot.
    fn get(&self) -> Arc<Built> {
        let snapshot = self.read.borrow().clone();
        let settings = self
            .settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let now = self.clock.now();
        let mut cached = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut updated_at = now;
        if let Some(c) = cached.as_ref()
            && Arc::ptr_eq(&c.settings, &settings)
        {
            if c.version == snapshot.version {
                updated_at = c.updated_at;
                if now - c.built_at < REBUILD_AFTER {
                    return c.clone();
                }
            } else if same_public_content(&c.snapshot, &snapshot)
                && c.built.elapsed() < UPTIME_REFRESH
            {
                // Only probe results changed (uptime, detectors): every probe run changes
                // the snapshot, and rebuilding for each would make every reader pay for it.
                return c.clone();
            }
        }
        let uptime = uptime_view(&snapshot, &settings, now);
        let maintenances = maintenance_views(&snapshot, now);
        let mut model = page::build(&PageInputs {
            snapshot: &snapshot,
            page: &settings.page,
            probe_services: &settings.probe_services,
            uptime: Some(&uptime),
            maintenances: &maintenances,
            updated_at,
            now,
        });
        model.page.url = Some(format!("{}/", settings.base_url));
        let built = Arc::new(Built {
            version: snapshot.version,
            index: OnceLock::new(),
            json: OnceLock::new(),
            feed: OnceLock::new(),
            not_found: render::not_found(&model).into(),
            settings,
            built_at: now,
            updated_at,
            model,
            uptime,
            snapshot,
            built: std::time::Instant::now(),
        });
        *cached = Some(built.clone());
        built
    }
}

/// Each service's daily uptime over [`page::UPTIME_DAYS`] UTC days ending today, and its
/// share of successful runs over 7, 30 and 90 days, from the probes that feed it.
fn uptime_view(snapshot: &Snapshot, settings: &PageSettings, now: DateTime<Utc>) -> UptimeView {
    let today = now.date_naive();
    let mut view = UptimeView::default();
    for (service, probes) in &settings.service_probes {
        let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
        #[allow(clippy::cast_possible_truncation)]
        let bar = snapshot
            .uptime
            .bar(&probes, today, page::UPTIME_DAYS as u32);
        view.by_service
            .insert(service.clone(), bar.iter().map(|d| d.ratio).collect());
        let windows = page::UPTIME_WINDOWS.map(|days| {
            let since = today - chrono::TimeDelta::days(i64::from(days) - 1);
            (days, snapshot.uptime.ratio(&probes, since, today))
        });
        view.windows
            .insert(service.clone(), windows.into_iter().collect());
    }
    view
}

/// The maintenances the page shows: those not over (upcoming and in progress).
fn maintenance_views(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<MaintenanceView> {
    snapshot
        .maintenances
        .values()
        .filter(|m| {
            matches!(
                m.state(now),
                MaintenanceState::Upcoming | MaintenanceState::Active
            )
        })
        .map(|m| MaintenanceView {
            id: format!("MNT-{}", m.id),
            title: m.title.clone(),
            message: m.message.clone(),
            services: m.services.clone(),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
        })
        .collect()
}

/// `Last-Modified`'s format (RFC 9110 IMF-fixdate).
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether the client's copy is current: `If-None-Match` decides when present, else
/// `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue, modified: DateTime<Utc>) -> bool {
    if let Some(tags) = headers.get(IF_NONE_MATCH) {
        let Ok(tags) = tags.to_str() else {
            return false;
        };
        let ours = etag.to_str().unwrap_or_default();
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .is_some_and(|since| modified.timestamp() <= since.timestamp())
}

/// A cacheable answer: `304` when the client's copy is current.
fn respond(
    headers: &HeaderMap,
    body: &Body,
    content_type: &'static str,
    modified: DateTime<Utc>,
    cache: &'static str,
) -> Response {
    let last_modified =
        HeaderValue::from_str(&http_date(modified)).expect("a date is a valid header value");
    let common = [
        (ETAG, body.etag.clone()),
        (LAST_MODIFIED, last_modified),
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    if not_modified(headers, &body.etag, modified) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.bytes.clone(),
    )
        .into_response()
}

const HTML: &str = "text/html; charset=utf-8";
const ATOM: &str = "application/atom+xml";
const SVG: &str = "image/svg+xml";

fn not_found(built: &Built) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, HTML)],
        built.not_found.clone(),
    )
        .into_response()
}

async fn index(State(pages): State<StatusPages>, headers: HeaderMap) -> Response {
    let built = pages.get();
    let index = built
        .index
        .get_or_init(|| Body::new(render::index(&built.model)));
    respond(&headers, index, HTML, built.updated_at, PUBLIC_CACHE)
}

/// `GET /status.json`: the public status page's content (no token).
#[utoipa::path(get, path = "/status.json", tag = "status page",
    responses(
        (status = 200, description = "Services, open public incidents, maintenances", body = super::page::Model),
        (status = 304, description = "Not modified since `If-None-Match` / `If-Modified-Since`"),
    ))]
pub(crate) async fn json(State(pages): State<StatusPages>, headers: HeaderMap) -> Response {
    let built = pages.get();
    let json = built.json.get_or_init(|| {
        Body::new(serde_json::to_vec(&built.model).expect("the page serializes to JSON"))
    });
    respond(
        &headers,
        json,
        "application/json",
        built.updated_at,
        PUBLIC_CACHE,
    )
}

async fn stylesheet(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if render::CSS_PATH.strip_prefix("/static/") != Some(file.as_str()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    static BODY: std::sync::LazyLock<Body> =
        std::sync::LazyLock::new(|| Body::new(render::CSS.as_bytes()));
    respond(
        &headers,
        &BODY,
        "text/css; charset=utf-8",
        DateTime::UNIX_EPOCH,
        CSS_CACHE,
    )
}

/// `GET /incidents/INC-7`: from the page when it is on it, else from the store; the same
/// 404 for an unknown, hidden or restricted incident.
async fn incident(
    State(pages): State<StatusPages>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let built = pages.get();
    let Ok(parsed) = id.parse::<IncidentId>() else {
        return not_found(&built);
    };
    let model = match built.model.incident(&id) {
        Some(found) => Some(found.clone()),
        None => {
            let store = pages.store.clone();
            let snapshot = pages.read.borrow().clone();
            let page = built.settings.page.clone();
            tokio::task::spawn_blocking(move || {
                let (incident, timeline) = store.get_incident_with_timeline(parsed).ok()??;
                (visibility(&incident, &snapshot.restrictions, &page) == Visibility::Public)
                    .then(|| page::incident_model(&incident, &timeline, &page))
            })
            .await
            .ok()
            .flatten()
        }
    };
    let Some(model) = model else {
        return not_found(&built);
    };
    let body = Body::new(render::incident(&built.model, &model));
    respond(&headers, &body, HTML, built.updated_at, PUBLIC_CACHE)
}

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

/// The first day of `YYYY-MM`.
fn parse_month(text: &str) -> Option<NaiveDate> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

fn month_start(date: NaiveDate, offset: i32) -> Option<NaiveDate> {
    let index = date.year() * 12 + date.month0().cast_signed() + offset;
    NaiveDate::from_ymd_opt(
        index.div_euclid(12),
        index.rem_euclid(12).cast_unsigned() + 1,
        1,
    )
}

/// `GET /history?month=2026-11`: the public incidents opened that month (in the page's
/// time zone), newest first, read from the store through `incidents_by_month.v1` off the
/// async threads; a restricted one only as the generic notice. The month an incident opened
/// in never changes (a reopened one does not move), so its place in the history is stable.
/// Links to the month before when an older incident is stored, and to the month after
/// unless this is the current one.
async fn history(
    State(pages): State<StatusPages>,
    Query(query): Query<MonthQuery>,
    headers: HeaderMap,
) -> Response {
    let built = pages.get();
    let tz = built.settings.page.timezone;
    let today = pages.clock.now().with_timezone(&tz).date_naive();
    let this_month = month_start(today, 0).expect("this month exists");
    let month = match query.month.as_deref() {
        None => this_month,
        Some(text) => match parse_month(text).filter(|m| *m <= this_month) {
            Some(month) => month,
            None => return not_found(&built),
        },
    };
    let (Some(previous), Some(next)) = (month_start(month, -1), month_start(month, 1)) else {
        return not_found(&built);
    };
    let bound = |date: NaiveDate| {
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    };
    let (Some(from), Some(until)) = (bound(month), bound(next)) else {
        return not_found(&built);
    };
    let store = pages.store.clone();
    let snapshot = pages.read.borrow().clone();
    let page_config = built.settings.page.clone();
    let found = tokio::task::spawn_blocking(move || {
        let restricted = Cell::new(false);
        let public = |incident: &Incident| match visibility(
            incident,
            &snapshot.restrictions,
            &page_config,
        ) {
            Visibility::Public => true,
            Visibility::Notice => {
                restricted.set(true);
                false
            }
            Visibility::Hidden => false,
        };
        let month = store.incidents_in_month(from..until, HISTORY_MAX, HISTORY_BUDGET, public)?;
        let earlier = store.opened_before(from)?;
        let models: Vec<IncidentModel> = month
            .incidents
            .iter()
            .map(|i| page::incident_model(i, &[], &page_config))
            .collect();
        let found = MonthFound {
            incidents: models,
            more: month.more,
            unread: month.unread,
            notice: restricted.get().then_some(HISTORY_NOTICE),
            earlier,
        };
        Ok::<_, crate::store::StoreError>(found)
    })
    .await;
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            tracing::error!(%error, "reading the incident history failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let label = |m: NaiveDate| m.format("%Y-%m").to_string();
    let body = Body::new(render::history(
        &built.model,
        &render::HistoryMonth {
            month_name: month.format("%B %Y").to_string(),
            incidents: &found.incidents,
            more: found.more,
            unread: found.unread,
            notice: found.notice,
            previous: found.earlier.then(|| label(previous)),
            next: (next <= this_month).then(|| label(next)),
        },
    ));
    respond(&headers, &body, HTML, built.updated_at, PUBLIC_CACHE)
}

/// What the history read of one month.
struct MonthFound {
    incidents: Vec<IncidentModel>,
    more: usize,
    unread: bool,
    notice: Option<&'static str>,
    earlier: bool,
}

async fn feed(State(pages): State<StatusPages>, headers: HeaderMap) -> Response {
    let built = pages.get();
    let feed = built
        .feed
        .get_or_init(|| Body::new(render::feed(&built.model, &built.settings.base_url, None)));
    respond(&headers, feed, ATOM, built.updated_at, PUBLIC_CACHE)
}

async fn service_feed(
    State(pages): State<StatusPages>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let built = pages.get();
    let Some(service) = file
        .strip_suffix(".atom")
        .filter(|s| built.model.service(s).is_some())
    else {
        return not_found(&built);
    };
    let body = Body::new(render::feed(
        &built.model,
        &built.settings.base_url,
        Some(service),
    ));
    respond(&headers, &body, ATOM, built.updated_at, PUBLIC_CACHE)
}

/// `GET /badge/{service}/status.svg` and `/badge/{service}/uptime-{7d,30d,90d}.svg`.
async fn badge(
    State(pages): State<StatusPages>,
    Path((service, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let built = pages.get();
    let Some(entry) = built.model.service(&service) else {
        return not_found(&built);
    };
    let svg = match file.as_str() {
        "status.svg" => render::badge(
            &entry.name,
            &entry.status.as_str().replace('_', " "),
            render::status_colour(entry.status),
        ),
        "uptime-7d.svg" | "uptime-30d.svg" | "uptime-90d.svg" => {
            let days: usize = file
                .trim_start_matches("uptime-")
                .trim_end_matches("d.svg")
                .parse()
                .unwrap_or(90);
            let percent = built.uptime.ratio(&entry.name, days).map(|r| r * 100.0);
            let value = percent.map_or_else(|| "no data".to_owned(), |p| format!("{p:.2}%"));
            render::badge(
                &format!("uptime {days}d"),
                &value,
                render::uptime_colour(percent),
            )
        }
        _ => return not_found(&built),
    };
    respond(
        &headers,
        &Body::new(svg),
        SVG,
        built.updated_at,
        BADGE_CACHE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_step_across_years() {
        let jan = parse_month("2026-01").unwrap();
        assert_eq!(month_start(jan, -1), NaiveDate::from_ymd_opt(2025, 12, 1));
        assert_eq!(month_start(jan, 1), NaiveDate::from_ymd_opt(2026, 2, 1));
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("26-1"), None);
    }

    #[test]
    fn conditional_requests() {
        let body = Body::new("x");
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &body.etag, at));
        headers.insert(IF_MODIFIED_SINCE, http_date(at).parse().unwrap());
        assert!(not_modified(&headers, &body.etag, at));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&headers, &body.etag, at));
        headers.insert(IF_NONE_MATCH, body.etag.clone());
        assert!(not_modified(&headers, &body.etag, at));
    }
}
