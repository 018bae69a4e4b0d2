//! Scheduled maintenances: `POST /api/v1/maintenances` announces one for some services,
//! `GET` lists them (from the read model: upcoming, active and the recent past) or shows
//! one, `DELETE` cancels an upcoming one or ends an active one now. While one is active the
//! engine opens no incident for its services' symptoms.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Need};
use super::error::ErrorBody;
use super::extract::Path;
use super::{ApiError, ApiState, limits, parse_filter};
use crate::domain::maintenance::{Maintenance, MaintenanceState};
use crate::engine::NewMaintenance;
use crate::view::timestamp;

/// A maintenance's `title`, in characters.
pub const TITLE: usize = 200;
/// A maintenance's `message`, in bytes (what the status page shows under it).
pub const MESSAGE_BYTES: usize = 4096;
/// Services one maintenance names at most.
pub const SERVICES: usize = 32;

/// A maintenance as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Maintenance)]
pub struct MaintenanceView {
    /// `MNT-1`, `MNT-2`, …
    id: String,
    title: String,
    message: String,
    services: Vec<String>,
    starts_at: String,
    ends_at: String,
    /// `upcoming`, `active`, `completed` or `cancelled`.
    #[schema(value_type = String, pattern = "^(upcoming|active|completed|cancelled)$")]
    state: &'static str,
    created_by: String,
    created_at: String,
    cancelled_at: Option<String>,
}

impl MaintenanceView {
    pub fn new(maintenance: &Maintenance, now: DateTime<Utc>) -> MaintenanceView {
        MaintenanceView {
            id: format!("MNT-{}", maintenance.id),
            title: maintenance.title.clone(),
            message: maintenance.message.clone(),
            services: maintenance.services.clone(),
            starts_at: timestamp(maintenance.starts_at),
            ends_at: timestamp(maintenance.ends_at),
            state: maintenance.state(now).as_str(),
            created_by: maintenance.created_by.clone(),
            created_at: timestamp(maintenance.created_at),
            cancelled_at: maintenance.cancelled_at.map(timestamp),
        }
    }
}

/// `GET /api/v1/maintenances`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Maintenances {
    maintenances: Vec<MaintenanceView>,
}

/// The parameter of the routes on one maintenance.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by `Path<String>`; here for the description
pub struct MaintenancePath {
    /// `MNT-1`, `MNT-2`, …
    id: String,
}

/// `MNT-7` → 7; anything else names no maintenance.
fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.strip_prefix("MNT-")
        .filter(|n| !n.starts_with(['+', '0']))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError::not_found(format!("maintenance {raw} not found")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states: `upcoming`, `active`, `completed`, `cancelled`.
    state: Option<String>,
}

/// `GET /api/v1/maintenances[?state=…]`: the latest start first.
#[utoipa::path(get, path = "/api/v1/maintenances", tag = "maintenances", params(ListQuery),
    responses((status = 200, description = "Upcoming, active and recent maintenances", body = Maintenances)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Maintenances>, ApiError> {
    caller.require(Need::Read)?;
    let Query(query) = query?;
    let states = parse_filter(
        "state",
        query.state.as_deref(),
        &MaintenanceState::ALL,
        MaintenanceState::as_str,
    )?;
    let now = state.clock.now();
    let snapshot = state.read.borrow().clone();
    let maintenances = snapshot
        .maintenances_at(states.as_deref(), now)
        .into_iter()
        .map(|m| MaintenanceView::new(m, now))
        .collect();
    Ok(Json(Maintenances { maintenances }))
}

/// `GET /api/v1/maintenances/{id}`: from the read model, or the store for one over long ago.
#[utoipa::path(get, path = "/api/v1/maintenances/{id}", tag = "maintenances", params(MaintenancePath),
    responses(
        (status = 200, description = "The maintenance", body = MaintenanceView),
        (status = 404, description = "No such maintenance", body = ErrorBody),
    ))]
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<MaintenanceView>, ApiError> {
    caller.require(Need::Read)?;
    let id = parse_id(&raw)?;
    let now = state.clock.now();
    let known = state.read.borrow().maintenances.get(&id).cloned();
    let found = match known {
        Some(maintenance) => Some(maintenance),
        None => {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || store.get_maintenance(id))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
        }
    };
    let maintenance =
        found.ok_or_else(|| ApiError::not_found(format!("maintenance {raw} not found")))?;
    Ok(Json(MaintenanceView::new(&maintenance, now)))
}

/// `title`, `services`, `starts_at` and `ends_at` are required (refused one by one, by name).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewMaintenance)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    title: Option<String>,
    message: Option<String>,
    services: Option<Vec<String>>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
}

/// `POST /api/v1/maintenances` → 201 with the maintenance.
#[utoipa::path(post, path = "/api/v1/maintenances", tag = "maintenances", request_body = MaintenanceBody,
    responses((status = 201, description = "The maintenance", body = MaintenanceView)))]
pub async fn create(
    caller: Caller,
    State(state): State<ApiState>,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<MaintenanceView>), ApiError> {
    caller.require(Need::Respond)?;
    let Json(body) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("a JSON body is required")
        }
        other => other.into(),
    })?;
    let now = state.clock.now();
    let new = check(body, now, caller.name)?;
    // The services listed now (a reload may have changed them).
    let page = state.read.borrow().status_page.clone();
    if let Some(unknown) = page.unknown_service(&new.services) {
        return Err(ApiError::bad_request(format!(
            "`services`: `{unknown}` is not a service of the status page (status_page.services)"
        )));
    }
    let maintenance = state.engine.maintain(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(MaintenanceView::new(&maintenance, state.clock.now())),
    ))
}

/// `DELETE /api/v1/maintenances/{id}`: cancels an upcoming one, ends an active one now;
/// 409 for one already over.
#[utoipa::path(delete, path = "/api/v1/maintenances/{id}", tag = "maintenances", params(MaintenancePath),
    responses(
        (status = 200, description = "The maintenance, cancelled or ended", body = MaintenanceView),
        (status = 404, description = "No such maintenance", body = ErrorBody),
        (status = 409, description = "The maintenance is over", body = ErrorBody),
    ))]
pub async fn end(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<MaintenanceView>, ApiError> {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let maintenance = state.engine.end_maintenance(id).await?;
    Ok(Json(MaintenanceView::new(&maintenance, state.clock.now())))
}

/// The body's fields, each refused with its name before anything reaches the engine.
fn check(
    body: MaintenanceBody,
    now: DateTime<Utc>,
    created_by: String,
) -> Result<NewMaintenance, ApiError> {
    let title = body.title.unwrap_or_default();
    if title.trim().is_empty() {
        return Err(ApiError::bad_request("`title` is required"));
    }
    limits::check("title", &title, TITLE, limits::Text::Line)?;
    let message = body.message.unwrap_or_default();
    if message.len() > MESSAGE_BYTES {
        return Err(ApiError::bad_request(format!(
            "`message` is {} bytes long; at most {MESSAGE_BYTES}",
            message.len()
        )));
    }
    limits::check("message", &message, MESSAGE_BYTES, limits::Text::Lines)?;
    let services = check_services(body.services.unwrap_or_default())?;
    let starts_at = time("starts_at", body.starts_at.as_deref())?;
    let ends_at = time("ends_at", body.ends_at.as_deref())?;
    if ends_at <= starts_at {
        return Err(ApiError::bad_request("`ends_at` must be after `starts_at`"));
    }
    if ends_at <= now {
        return Err(ApiError::bad_request("`ends_at` is in the past"));
    }
    Ok(NewMaintenance {
        title,
        message,
        services,
        starts_at,
        ends_at,
        created_by,
    })
}

/// At least one and at most [`SERVICES`] names, each one line; a name given twice counts
/// once.
fn check_services(given: Vec<String>) -> Result<Vec<String>, ApiError> {
    if given.is_empty() {
        return Err(ApiError::bad_request(
            "`services` is required: at least one service",
        ));
    }
    if given.len() > SERVICES {
        return Err(ApiError::bad_request(format!(
            "`services` has {} entries; at most {SERVICES}",
            given.len()
        )));
    }
    let mut services: Vec<String> = Vec::with_capacity(given.len());
    for (index, service) in given.into_iter().enumerate() {
        let field = format!("services[{index}]");
        if service.trim().is_empty() {
            return Err(ApiError::bad_request(format!("`{field}` is empty")));
        }
        limits::check(&field, &service, limits::NAME, limits::Text::Line)?;
        if !services.contains(&service) {
            services.push(service);
        }
    }
    Ok(services)
}

/// A required RFC 3339 time.
fn time(field: &str, text: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let text = text.ok_or_else(|| ApiError::bad_request(format!("`{field}` is required")))?;
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "`{field}` is not an RFC 3339 time such as 2026-03-01T22:00:00Z"
            ))
        })
}
