//! The webhook delivery log, dead letters and replay:
//!
//! - `GET /api/v1/webhooks` (viewer): every configured consumer, enabled or not, its
//!   backlog, dead letters and the age of its oldest pending event;
//! - `GET /api/v1/webhooks/{consumer}/deliveries?outcome=&since=&limit=` (viewer): the
//!   attempts (time, event id, status, latency, error), oldest first, and the dead letters;
//! - `POST /api/v1/webhooks/{consumer}/replay` (admin): `{"event_id": "evt_…"}`,
//!   `{"since": "<RFC 3339>"}` or `{"dead_letters": true}` queues those events again with
//!   their `webhook-id` unchanged;
//! - `POST /api/v1/webhooks/{consumer}/enable` (admin): after a `410 Gone` disabled it.
//!
//! Reads come from the store; changes go through the engine like every write.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Need};
use super::extract::Path;
use super::{ApiError, ApiState};
use crate::store::{ConsumerState, ReplaySelection};
use crate::view::timestamp;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
const OUTCOMES: [&str; 4] = ["success", "retry", "dead", "gone"];

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/webhooks", get(list))
        .route("/api/v1/webhooks/{consumer}/deliveries", get(deliveries))
        .route("/api/v1/webhooks/{consumer}/replay", post(replay))
        .route("/api/v1/webhooks/{consumer}/enable", post(enable))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn known(state: &ApiState, consumer: &str) -> Result<(), ApiError> {
    if state.consumers.get().iter().any(|name| name == consumer) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no webhook consumer `{consumer}` is configured"
        )))
    }
}

async fn list(caller: Caller, State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    caller.require(Need::Read)?;
    let names = state.consumers.get();
    let store = state.store.clone();
    let overviews = blocking(move || {
        names
            .iter()
            .map(|name| Ok((name.clone(), store.consumer_overview(name)?)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let now = state.clock.now();
    let consumers: Vec<Value> = overviews
        .into_iter()
        .map(|(name, overview)| {
            json!({
                "name": name,
                "enabled": overview.enabled(),
                "disabled_reason": overview.state.as_ref().filter(|s| !s.enabled).map(|s| &s.reason),
                "disabled_at": overview.state.as_ref().filter(|s| !s.enabled).map(|s| timestamp(s.changed_at)),
                "pending": overview.pending,
                "dead_letters": overview.dead_letters,
                "oldest_pending_age_seconds": overview.oldest_pending.map(|oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0),
            })
        })
        .collect();
    Ok(Json(json!({ "webhooks": consumers })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    outcome: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

async fn deliveries(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Need::Read)?;
    let Query(query) = query?;
    known(&state, &consumer)?;
    if let Some(outcome) = &query.outcome
        && !OUTCOMES.contains(&outcome.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "unknown outcome `{outcome}`; expected one of {}",
            OUTCOMES.join(", ")
        )));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let store = state.store.clone();
    let name = consumer.clone();
    let (attempts, dead) = blocking(move || {
        let attempts = store.deliveries(&name, query.since, query.outcome.as_deref(), limit)?;
        Ok((attempts, store.dead_letters(&name)?))
    })
    .await?;
    let attempts: Vec<Value> = attempts
        .into_iter()
        .map(|a| {
            json!({
                "at": timestamp(a.at),
                "event_id": a.event_id,
                "type": a.event_type,
                "incident": format!("INC-{}", a.incident),
                "outcome": a.outcome,
                "status": a.status,
                "latency_ms": a.latency_ms,
                "error": a.error,
            })
        })
        .collect();
    let dead: Vec<Value> = dead
        .into_iter()
        .map(|d| {
            json!({
                "event_id": d.entry.event_id,
                "type": d.entry.event_type,
                "incident": format!("INC-{}", d.entry.incident),
                "occurred_at": timestamp(d.entry.created_at),
                "dead_at": timestamp(d.dead_at),
                "last_error": d.last_error,
            })
        })
        .collect();
    Ok(Json(
        json!({ "consumer": consumer, "deliveries": attempts, "dead_letters": dead }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    event_id: Option<String>,
    since: Option<DateTime<Utc>>,
    #[serde(default)]
    dead_letters: bool,
}

async fn replay(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Need::Admin)?;
    let Json(body) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("a JSON body is required")
        }
        other => other.into(),
    })?;
    let selection = match (body.event_id, body.since, body.dead_letters) {
        (Some(id), None, false) => ReplaySelection::Event(id),
        (None, Some(since), false) => ReplaySelection::Since(since),
        (None, None, true) => ReplaySelection::DeadLetters,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `event_id`, `since` or `dead_letters: true`",
            ));
        }
    };
    known(&state, &consumer)?;
    let store = state.store.clone();
    let name = consumer.clone();
    let wanted = selection.clone();
    let entries = blocking(move || store.replay_candidates(&name, &wanted)).await?;
    if let ReplaySelection::Event(id) = &selection
        && entries.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "event {id} is neither delivered (within retention) nor a dead letter of `{consumer}`"
        )));
    }
    let queued = state.engine.replay(consumer.clone(), entries).await?;
    Ok(Json(json!({ "consumer": consumer, "queued": queued })))
}

async fn enable(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Need::Admin)?;
    known(&state, &consumer)?;
    state
        .engine
        .set_consumer(
            consumer.clone(),
            ConsumerState {
                enabled: true,
                changed_at: state.clock.now(),
                reason: format!("enabled by {}", caller.name),
            },
        )
        .await?;
    Ok(Json(json!({ "consumer": consumer, "enabled": true })))
}
