//! The HTTP API (axum): incidents and their workflow, silences, scheduled maintenances,
//! the probes' latest results,
//! `/metrics`, and the Prometheus-style lifecycle endpoints. Handlers read from the store directly (redb read transactions never
//! block the writer) and send every change to the engine, answering only once it is
//! durable.

mod auth;
pub mod console;
mod error;
mod extract;
mod guard;
mod ingest;
mod limits;
mod maintenances;
mod matchers;
pub mod openapi;
pub mod rate_limit;
mod reload;
pub(crate) mod review;
mod schema;
pub mod secret;
pub mod signups;
mod webhooks;
pub(crate) mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use auth::Tokens;
pub use auth::{Caller, Need};
pub use error::{ApiError, ErrorBody};
use extract::Path;
pub use guard::Site;
use limits::MAX_BODY;
pub use reload::{ReloadError, ReloadReport, ReloadRequest, Reloads};

use crate::domain::incident::{Incident, IncidentId, State as IncidentState, Tier, TimelineEntry};
use crate::domain::priority::Priority;
use crate::domain::suppression::Silence;
use crate::domain::uptime::UptimeHistory;
use crate::engine::{EngineHandle, NewSilence, ReadModel};
use crate::metrics::Metrics;
use crate::probe::{ProbeBoard, ProbeView};
use crate::store::Store;
use crate::view::{Clearance, IncidentView, Restrictions, timestamp};
use schema::IncidentAnswer;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// What every handler shares, behind one `Arc` ([`ApiState`]): axum clones the state for
/// every request, and cloning these fields one by one (`Metrics` alone is dozens of
/// handles) took 3–5 % of the CPU at 8,000 alert pushes a second.
pub struct Api {
    pub engine: EngineHandle,
    pub store: Store,
    pub metrics: Metrics,
    /// The probes' latest results, written by the scheduler.
    pub probes: ProbeBoard,
    /// The tokens in force (a reload replaces them).
    pub tokens: Arc<std::sync::RwLock<Arc<Tokens>>>,
    /// The engine's read model: active incidents, rules, silences as of the last commit.
    pub read: ReadModel,
    /// Where `POST /-/reload` asks the app to reload.
    pub reloads: Reloads,
    /// The public status page's routes.
    pub status: crate::web::status::StatusPages,
    /// False while starting and once shutting down: `/-/ready` answers 503.
    pub ready: Arc<AtomicBool>,
    /// What "now" is for the SLA clocks the views report.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Where this server is, for the guard's Host and Origin checks.
    pub site: Arc<Site>,
    /// The configured webhook consumers (`GET /api/v1/webhooks`).
    pub consumers: crate::notify::ConsumerNames,
    /// Status-page sign-ups: whether mail is on, the services, the per-IP limit.
    pub signups: signups::Signups,
    /// Comments through each reporter link (by its token's hash), rate limited.
    pub reporter_comments: rate_limit::RateLimit<[u8; 32]>,
    /// The responder console's sign-in limit, event streams and shutdown.
    pub console: console::Console,
    /// This replica in the cluster (PostgreSQL store); `None` with a redb file.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// The handlers' state: a reference-counted [`Api`], so a request's copy is one count.
#[derive(Clone)]
pub struct ApiState(Arc<Api>);

impl ApiState {
    pub fn new(api: Api) -> ApiState {
        ApiState(Arc::new(api))
    }
}

impl std::ops::Deref for ApiState {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.0
    }
}

impl Api {
    /// The tokens in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Which incidents are restricted (data breaches) now; see [`Restrictions::view`].
    pub fn restrictions(&self) -> Arc<Restrictions> {
        self.read.borrow().restrictions.clone()
    }
}

/// The API's routes with `pages`, the routes for people that share its state (the status
/// page's sign-ups), behind the same limits and guard.
pub fn router(state: ApiState, pages: Router<ApiState>) -> Router {
    let status = state.status.clone().router();
    let guard_state = state.clone();
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload::reload))
        .route(
            "/api/v1/incidents",
            get(list_incidents).post(workflow::open_ticket),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(get_incident).patch(workflow::update),
        )
        .route(
            "/api/v1/incidents/{id}/acknowledge",
            post(workflow::acknowledge),
        )
        .route("/api/v1/incidents/{id}/resolve", post(workflow::resolve))
        .route("/api/v1/incidents/{id}/notes", post(workflow::note))
        .route("/api/v1/incidents/{id}/hold", post(workflow::hold))
        .route("/api/v1/incidents/{id}/resume", post(workflow::resume))
        .route("/api/v1/incidents/{id}/escalate", post(workflow::escalate))
        .route("/api/v1/incidents/{id}/close", post(workflow::close))
        .route("/api/v1/incidents/{id}/reopen", post(workflow::reopen))
        .route(
            "/api/v1/incidents/{id}/calls",
            post(workflow::schedule_call),
        )
        .route(
            "/api/v1/incidents/{id}/reporter-link",
            post(workflow::rotate_reporter_link).delete(workflow::revoke_reporter_link),
        )
        .route("/api/v1/incidents/{id}/report", get(review::report))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/silences", get(silences).post(create_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .route(
            "/api/v1/maintenances",
            get(maintenances::list).post(maintenances::create),
        )
        .route(
            "/api/v1/maintenances/{id}",
            get(maintenances::get).delete(maintenances::end),
        )
        .route("/api/v1/probes", get(list_probes))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/sla", get(sla_report))
        .route("/api/v1/alertmanager", post(ingest::alertmanager))
        .route("/api/v2/alerts", post(ingest::api_v2))
        .route("/api/v1/events", post(ingest::events))
        .route("/v2/enqueue", post(ingest::enqueue))
        .merge(webhooks::routes())
        .merge(pages)
        .with_state(state)
        .merge(status)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // On a standby, a write goes to the leader (once the guard let it in and its declared
    // size passed).
    let routes = match &guard_state.cluster {
        Some(cluster) => routes.layer(axum::middleware::from_fn_with_state(
            crate::cluster::forward::Forwarder::new(
                cluster.clone(),
                guard_state.engine.clone(),
                MAX_BODY,
            ),
            crate::cluster::forward::forward,
        )),
        None => routes,
    };
    routes
        .layer(axum::middleware::from_fn(limits::refuse_oversized))
        // Outermost: a request from the wrong site or host is refused before anything else.
        .layer(axum::middleware::from_fn_with_state(
            guard_state,
            guard::guard,
        ))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "lifecycle",
    responses((status = 200, description = "Every metric", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    // With thousands of probes this takes tens of milliseconds: on a blocking thread, so the
    // async workers go on running probes, the engine and other requests meanwhile.
    let text = tokio::task::spawn_blocking(move || state.metrics.render())
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// `GET /-/healthy`: the process is up.
#[utoipa::path(get, path = "/-/healthy", tag = "lifecycle",
    responses((status = 200, description = "Always, while the process answers", body = String,
        content_type = "text/plain; charset=utf-8")))]
async fn healthy() -> &'static str {
    "incidentd is healthy.\n"
}

/// 503 while starting, once shutting down, and while the store refuses writes (a full
/// disk): the engine opens it again and answers 200 once a write went through.
/// Prometheus-style: plain text either way (a probe's signal, not an API error).
#[utoipa::path(get, path = "/-/ready", tag = "lifecycle",
    responses(
        (status = 200, description = "Ready to serve", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 503, description = "Starting, stopping, or the store takes no writes", body = String,
            content_type = "text/plain; charset=utf-8"),
    ))]
async fn ready(State(state): State<ApiState>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "incidentd is not ready.\n").into_response()
    } else if !state.engine.store_writable() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "incidentd is not ready: the store does not take writes.\n",
        )
            .into_response()
    } else if state.cluster.is_some() {
        // Both roles serve: a standby answers reads and passes writes to the leader.
        format!(
            "incidentd is ready: {}.\n",
            crate::cluster::role(state.engine.is_leading())
        )
        .into_response()
    } else {
        "incidentd is ready.\n".into_response()
    }
}

/// `GET /api/v1/cluster`: the replicas and which one leads (PostgreSQL store only).
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "The replicas and the leader", body = crate::cluster::ClusterStatus),
        (status = 404, description = "This incidentd runs on one redb file: no cluster", body = ErrorBody),
        (status = 503, description = "The cluster's state cannot be read", body = ErrorBody),
    ))]
async fn cluster(caller: Caller, State(state): State<ApiState>) -> Result<Response, ApiError> {
    caller.require(Need::Read)?;
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::not_found(
            "this incidentd runs on one redb file: it has no cluster",
        ));
    };
    let status = cluster
        .status(state.engine.is_leading())
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the cluster's state cannot be read: {error}"),
            )
        })?;
    Ok(Json(status).into_response())
}

/// The filters of `GET /api/v1/incidents`: each a comma-separated list of values.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `open`, `acknowledged`, `on_hold`, `resolved`, `closed`.
    #[param(example = "open,acknowledged")]
    state: Option<String>,
    /// `P1` … `P5`.
    #[param(example = "P1,P2")]
    priority: Option<String>,
    /// `L1`, `L2`, `L3`.
    tier: Option<String>,
    category: Option<String>,
    /// `incident` or `request`.
    kind: Option<String>,
    /// At most this many (1 to 500; 50 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of incidents, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct IncidentPage {
    #[schema(value_type = Vec<IncidentAnswer>)]
    incidents: Vec<serde_json::Value>,
    /// Where the next page starts; null on the last page.
    next_cursor: Option<String>,
}

/// Parses a comma-separated filter (`state=open,acknowledged`) against the known values.
fn parse_filter<T: Copy>(
    name: &str,
    raw: Option<&str>,
    known: &[T],
    label: impl Fn(T) -> &'static str,
) -> Result<Option<Vec<T>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    raw.split(',')
        .map(|word| {
            known
                .iter()
                .copied()
                .find(|k| label(*k) == word)
                .ok_or_else(|| {
                    let valid: Vec<_> = known.iter().map(|k| label(*k)).collect();
                    ApiError::bad_request(format!(
                        "unknown {name} `{word}`; valid: {}",
                        valid.join(", ")
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `GET /api/v1/incidents`: newest first, paginated.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListQuery),
    responses((status = 200, description = "A page of incidents", body = IncidentPage)))]
async fn list_incidents(
    caller: Caller,
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<IncidentPage>, ApiError> {
    caller.require(Need::Read)?;
    let Query(query) = query?;
    let states = parse_filter("state", query.state.as_deref(), &IncidentState::ALL, |s| {
        s.as_str()
    })?;
    let priorities = parse_filter("priority", query.priority.as_deref(), &Priority::ALL, |p| {
        p.as_str()
    })?;
    let tiers = parse_filter(
        "tier",
        query.tier.as_deref(),
        &[Tier::L1, Tier::L2, Tier::L3],
        |t| t.as_str(),
    )?;
    let kinds = parse_filter(
        "kind",
        query.kind.as_deref(),
        &[
            crate::domain::incident::Kind::Incident,
            crate::domain::incident::Kind::Request,
        ],
        |k| k.as_str(),
    )?;
    let categories: Option<Vec<String>> = query
        .category
        .map(|c| c.split(',').map(str::to_owned).collect());
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(
            cursor
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid cursor `{cursor}`")))?,
        ),
    };
    // The store reads only its index of active incidents when no closed ones are wanted.
    let wanted_states = states.clone();
    let filter = move |incident: &Incident| {
        states.as_ref().is_none_or(|s| s.contains(&incident.state))
            && priorities
                .as_ref()
                .is_none_or(|p| p.contains(&incident.priority))
            && tiers.as_ref().is_none_or(|t| t.contains(&incident.tier))
            && kinds.as_ref().is_none_or(|k| k.contains(&incident.kind))
            && categories
                .as_ref()
                .is_none_or(|c| c.contains(&incident.category))
    };
    let store = state.store.clone();
    let (page, next) = tokio::task::spawn_blocking(move || {
        store.list_incidents_by_state(
            wanted_states.as_deref(),
            before,
            limit,
            crate::store::LIST_SCAN_BUDGET,
            filter,
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let clearance = caller.clearance();
    let now = state.clock.now();
    let restrictions = state.restrictions();
    let incidents: Vec<_> = page
        .iter()
        .map(|i| restrictions.view(i, None, clearance, now))
        .collect();
    Ok(Json(IncidentPage {
        incidents,
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// Every configured probe with its last result, a summary of its recent ones and its
/// uptime over the last 7, 30 and 90 UTC days (from the read model, never the store).
#[utoipa::path(get, path = "/api/v1/probes", tag = "probes",
    responses((status = 200, description = "Every configured probe", body = Probes)))]
async fn list_probes(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Probes>, ApiError> {
    caller.require(Need::Read)?;
    let today = state.clock.now().date_naive();
    let snapshot = state.read.borrow().clone();
    let probes: Vec<ProbeWithUptime> = state
        .probes
        .snapshot()
        .into_iter()
        .map(|probe| ProbeWithUptime {
            uptime: uptime_windows(&snapshot.uptime, &probe.name, today),
            probe,
        })
        .collect();
    Ok(Json(Probes {
        probes,
        history_window: crate::probe::KEPT_RUNS,
    }))
}

/// `GET /api/v1/probes`.
#[derive(Serialize, utoipa::ToSchema)]
struct Probes {
    probes: Vec<ProbeWithUptime>,
    /// How many recent runs each probe's `history` covers at most.
    history_window: usize,
}

/// A probe as `GET /api/v1/probes` shows it: the board's view and its uptime.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ProbeWithUptime)]
struct ProbeWithUptime {
    #[serde(flatten)]
    probe: ProbeView,
    /// The share of runs that succeeded over `7d`, `30d` and `90d`; null without runs.
    #[schema(value_type = BTreeMap<String, Option<f64>>)]
    uptime: BTreeMap<&'static str, Option<f64>>,
}

/// The windows of a probe's `uptime`, in days, today (UTC) included.
const UPTIME_WINDOWS: [(&str, i64); 3] = [("7d", 7), ("30d", 30), ("90d", 90)];

/// The share of the probe's runs that succeeded in each of [`UPTIME_WINDOWS`]; `null`
/// for a window without runs.
fn uptime_windows(
    history: &UptimeHistory,
    probe: &str,
    today: chrono::NaiveDate,
) -> BTreeMap<&'static str, Option<f64>> {
    UPTIME_WINDOWS
        .iter()
        .map(|&(name, days)| {
            let since = today - chrono::Duration::days(days - 1);
            (name, history.ratio(&[probe], since, today))
        })
        .collect()
}

/// A multi-line text a caller wrote, within `max` characters and without control
/// characters but line feeds and tabs (the API's limits, for the pages' forms).
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    limits::check(field, text, max, limits::Text::Lines)
}

fn parse_id(raw: &str) -> Result<IncidentId, ApiError> {
    raw.parse()
        .map_err(|()| ApiError::not_found(format!("incident {raw} not found")))
}

/// One incident, its timeline and the past incidents most like it (newest first).
pub(crate) type InFull = (Incident, Vec<TimelineEntry>, Vec<Incident>);

/// [`InFull`] of incident `id` from the store, read in one snapshot off the async threads:
/// what the incident's JSON, its review draft and the console's page are made of.
pub(crate) async fn incident_in_full(
    state: &Api,
    id: IncidentId,
) -> Result<Option<InFull>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let Some((incident, timeline)) = store.get_incident_with_timeline(id)? else {
            return Ok(None);
        };
        let similar = store.similar_incidents(&incident)?;
        Ok::<_, crate::store::StoreError>(Some((incident, timeline, similar)))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// `GET /api/v1/incidents/{id}`: one incident with its timeline and similar past ones.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(workflow::IncidentPath),
    responses(
        (status = 200, description = "The incident (only that it exists, when restricted and the caller has no clearance)", body = IncidentAnswer),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn get_incident(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Need::Read)?;
    let id = parse_id(&raw)?;
    let (incident, timeline, similar) = incident_in_full(&state, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))?;
    let clearance = caller.clearance();
    let restrictions = state.restrictions();
    if clearance == Clearance::None && restrictions.is_restricted(&incident) {
        return Ok(Json(restrictions.view(
            &incident,
            Some(&timeline),
            clearance,
            state.clock.now(),
        )));
    }
    // A similar incident that is restricted is shown only to callers with clearance.
    let similar: Vec<Incident> = similar
        .into_iter()
        .filter(|other| clearance == Clearance::Security || !restrictions.is_restricted(other))
        .collect();
    Ok(Json(json!(
        IncidentView::new(
            &incident,
            Some(&timeline),
            restrictions.sla(),
            state.clock.now()
        )
        .with_similar(&similar)
    )))
}

/// `GET /api/v1/rules`.
#[derive(Serialize, utoipa::ToSchema)]
struct Rules {
    rules: Vec<crate::engine::RuleStatus>,
}

/// `GET /api/v1/rules`: every rule and the state of its subjects.
#[utoipa::path(get, path = "/api/v1/rules", tag = "probes",
    responses((status = 200, description = "Every rule", body = Rules)))]
async fn rules(caller: Caller, State(state): State<ApiState>) -> Result<Json<Rules>, ApiError> {
    caller.require(Need::Read)?;
    let snapshot = state.read.borrow().clone();
    Ok(Json(Rules {
        rules: snapshot.rules_at(state.clock.now()),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SlaQuery {
    /// A Prometheus-style duration, largest unit first (`ms`, `s`, `m`, `h`, `d`, `w`,
    /// `y`); 30d by default.
    #[param(example = "30d", pattern = "^([0-9]+(ms|s|m|h|d|w|y))+$")]
    window: Option<String>,
    /// Only this kind (`incident` or `request`).
    kind: Option<String>,
    /// Only these priorities, comma-separated (`P1,P2`).
    priority: Option<String>,
}

/// `GET /api/v1/sla?window=30d`: TAT compliance over the window ([`crate::sla_report`]).
#[utoipa::path(get, path = "/api/v1/sla", tag = "sla", params(SlaQuery),
    responses((status = 200, description = "Met and breached clocks per kind, clock and priority", body = crate::sla_report::Report)))]
async fn sla_report(
    caller: Caller,
    State(state): State<ApiState>,
    query: Result<Query<SlaQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Need::Read)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = state.clock.now();
    let window = match query.window.as_deref() {
        None => chrono::TimeDelta::days(30),
        Some(text) => crate::domain::duration::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .and_then(|d| chrono::TimeDelta::from_std(d).ok())
            // A window from before 1970 holds nothing more, and one from before chrono's
            // first date cannot be computed at all.
            .filter(|window| {
                now.checked_sub_signed(*window)
                    .is_some_and(|from| from >= chrono::DateTime::UNIX_EPOCH)
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid window `{text}`; expected a duration greater than 0 such as 7d or 30d, starting in 1970 or later"
                ))
            })?,
    };
    let store = state.store.clone();
    // Only incidents with a clock counting or stopped in the window are read.
    let clocks = tokio::task::spawn_blocking(move || store.incident_clocks_since(now - window))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let report = crate::sla_report::report(
        clocks.iter().map(crate::sla_report::Clocks::from),
        state.restrictions().sla(),
        window,
        now,
    );
    let mut report = json!(report);
    if let Some(kind) = query.kind.as_deref() {
        if !matches!(kind, "incident" | "request") {
            return Err(ApiError::bad_request(format!(
                "invalid kind `{kind}`; expected incident or request"
            )));
        }
        if let Some(kinds) = report["kinds"].as_object_mut() {
            kinds.retain(|name, _| name == kind);
        }
    }
    if let Some(wanted) = query.priority.as_deref() {
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        if let Some(bad) = wanted
            .iter()
            .find(|p| !matches!(**p, "P1" | "P2" | "P3" | "P4" | "P5"))
        {
            return Err(ApiError::bad_request(format!(
                "invalid priority `{bad}`; expected P1 to P5"
            )));
        }
        for clocks in report["kinds"]
            .as_object_mut()
            .into_iter()
            .flat_map(|k| k.values_mut())
        {
            for rows in clocks
                .as_object_mut()
                .into_iter()
                .flat_map(|c| c.values_mut())
            {
                if let Some(rows) = rows.as_object_mut() {
                    rows.retain(|priority, _| wanted.contains(&priority.as_str()));
                }
            }
        }
    }
    Ok(Json(report))
}

/// A silence as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Silence)]
struct SilenceView {
    id: String,
    /// An incident is silenced when it meets them all.
    matchers: Vec<matchers::MatcherView>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

impl SilenceView {
    fn new(silence: &Silence) -> SilenceView {
        SilenceView {
            id: silence.id.to_string(),
            matchers: matchers::view(&silence.matchers),
            starts_at: timestamp(silence.starts_at),
            ends_at: timestamp(silence.ends_at),
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
        }
    }
}

/// `GET /api/v1/silences`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Silences {
    silences: Vec<SilenceView>,
}

/// `GET /api/v1/silences`: the silences in force or to come.
#[utoipa::path(get, path = "/api/v1/silences", tag = "silences",
    responses((status = 200, description = "The silences", body = Silences)))]
async fn silences(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Silences>, ApiError> {
    caller.require(Need::Read)?;
    let snapshot = state.read.borrow().clone();
    let silences = snapshot.silences_at(state.clock.now());
    Ok(Json(Silences {
        silences: silences.iter().map(SilenceView::new).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewSilence)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    /// An incident is silenced when it meets them all; the forms [`matchers::read`] reads.
    #[schema(schema_with = matchers::body_schema)]
    matchers: serde_json::Value,
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    ends_at: chrono::DateTime<chrono::Utc>,
    comment: String,
}

/// `POST /api/v1/silences` → 201 with the silence.
#[utoipa::path(post, path = "/api/v1/silences", tag = "silences", request_body = SilenceBody,
    responses((status = 201, description = "The silence", body = SilenceView)))]
async fn create_silence(
    caller: Caller,
    State(state): State<ApiState>,
    body: Result<Json<SilenceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    caller.require(Need::Respond)?;
    // A body not declared JSON is refused at the edge (415, `guard`): what is left without
    // the content type is no body at all, answered as every route with a required body.
    let Json(body) = body.map_err(|rejection| match rejection {
        axum::extract::rejection::JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("a JSON body is required")
        }
        other => other.into(),
    })?;
    let matchers = matchers::read(body.matchers)?;
    limits::check(
        "comment",
        &body.comment,
        limits::COMMENT,
        limits::Text::Lines,
    )?;
    let silence = state
        .engine
        .silence(NewSilence {
            matchers,
            starts_at: body.starts_at,
            ends_at: body.ends_at,
            created_by: caller.name,
            comment: body.comment,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(SilenceView::new(&silence))))
}

/// `DELETE /api/v1/silences/{id}`: the silence ends now.
#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "silences",
    params(("id" = String, Path, description = "The silence's id")),
    responses(
        (status = 200, description = "The silence, expired", body = SilenceView),
        (status = 404, description = "No such silence", body = ErrorBody),
    ))]
async fn expire_silence(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<SilenceView>, ApiError> {
    caller.require(Need::Respond)?;
    let id = raw
        .parse()
        .map_err(|_| ApiError::not_found(format!("silence {raw} not found")))?;
    let silence = state.engine.expire(id).await?;
    Ok(Json(SilenceView::new(&silence)))
}
