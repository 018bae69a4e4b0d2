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
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Need};
use super::error::ErrorBody;
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

/// The parameter of the routes on one consumer.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by `Path<String>`; here for the description
pub(super) struct ConsumerPath {
    /// A consumer's `name` in `webhooks:`.
    consumer: String,
}

/// `GET /api/v1/webhooks`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Consumers {
    webhooks: Vec<ConsumerView>,
}

/// A configured consumer and its backlog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookConsumer)]
pub(super) struct ConsumerView {
    name: String,
    enabled: bool,
    /// Why it was disabled (a `410 Gone`); null while enabled.
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
    pending: u64,
    dead_letters: u64,
    oldest_pending_age_seconds: Option<f64>,
}

/// `GET /api/v1/webhooks`: every configured consumer, enabled or not, and its backlog.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "The consumers", body = Consumers)))]
pub(super) async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Consumers>, ApiError> {
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
    let consumers = overviews
        .into_iter()
        .map(|(name, overview)| {
            let disabled = overview.state.as_ref().filter(|s| !s.enabled);
            ConsumerView {
                name,
                enabled: overview.enabled(),
                disabled_reason: disabled.map(|s| s.reason.clone()),
                disabled_at: disabled.map(|s| timestamp(s.changed_at)),
                pending: overview.pending,
                dead_letters: overview.dead_letters,
                #[allow(clippy::cast_precision_loss)]
                oldest_pending_age_seconds: overview
                    .oldest_pending
                    .map(|oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0),
            }
        })
        .collect();
    Ok(Json(Consumers {
        webhooks: consumers,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveriesQuery {
    /// `success`, `retry`, `dead` or `gone`.
    outcome: Option<String>,
    /// Attempts from this time on (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many attempts (1 to 1000; 100 by default).
    limit: Option<usize>,
}

/// `GET /api/v1/webhooks/{consumer}/deliveries`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Deliveries {
    consumer: String,
    /// The attempts, oldest first.
    deliveries: Vec<Attempt>,
    dead_letters: Vec<DeadLetter>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeliveryAttempt)]
pub(super) struct Attempt {
    at: String,
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    incident: String,
    /// `success`, `retry`, `dead` or `gone`.
    outcome: String,
    /// The consumer's HTTP status; null when it did not answer.
    status: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
}

/// An event the consumer never took.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DeadLetter {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    incident: String,
    occurred_at: String,
    dead_at: String,
    last_error: String,
}

/// `GET /api/v1/webhooks/{consumer}/deliveries?outcome=&since=&limit=`: the attempts and
/// the dead letters.
#[utoipa::path(get, path = "/api/v1/webhooks/{consumer}/deliveries", tag = "webhooks",
    params(ConsumerPath, DeliveriesQuery),
    responses(
        (status = 200, description = "The attempts and the dead letters", body = Deliveries),
        (status = 404, description = "No such consumer", body = ErrorBody),
    ))]
pub(super) async fn deliveries(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Deliveries>, ApiError> {
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
    let attempts = attempts
        .into_iter()
        .map(|a| Attempt {
            at: timestamp(a.at),
            event_id: a.event_id,
            event_type: a.event_type,
            incident: format!("INC-{}", a.incident),
            outcome: a.outcome,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
        })
        .collect();
    let dead = dead
        .into_iter()
        .map(|d| DeadLetter {
            event_id: d.entry.event_id,
            event_type: d.entry.event_type,
            incident: format!("INC-{}", d.entry.incident),
            occurred_at: timestamp(d.entry.created_at),
            dead_at: timestamp(d.dead_at),
            last_error: d.last_error,
        })
        .collect();
    Ok(Json(Deliveries {
        consumer,
        deliveries: attempts,
        dead_letters: dead,
    }))
}

/// Exactly one of `event_id`, `since` or `dead_letters: true`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = Replay)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    event_id: Option<String>,
    since: Option<DateTime<Utc>>,
    #[serde(default)]
    dead_letters: bool,
}

/// What a replay queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Replayed {
    consumer: String,
    /// The ids of the events queued again (their `webhook-id`, unchanged).
    queued: Vec<String>,
}

/// `POST /api/v1/webhooks/{consumer}/replay`: queues events again.
#[utoipa::path(post, path = "/api/v1/webhooks/{consumer}/replay", tag = "webhooks",
    params(ConsumerPath), request_body = ReplayBody,
    responses(
        (status = 200, description = "What was queued", body = Replayed),
        (status = 404, description = "No such consumer, or no such event", body = ErrorBody),
    ))]
pub(super) async fn replay(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Result<Json<Replayed>, ApiError> {
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
    Ok(Json(Replayed { consumer, queued }))
}

/// A consumer enabled.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Enabled {
    consumer: String,
    enabled: bool,
}

/// `POST /api/v1/webhooks/{consumer}/enable`: after a `410 Gone` disabled it.
#[utoipa::path(post, path = "/api/v1/webhooks/{consumer}/enable", tag = "webhooks",
    params(ConsumerPath),
    responses(
        (status = 200, description = "The consumer, enabled", body = Enabled),
        (status = 404, description = "No such consumer", body = ErrorBody),
    ))]
pub(super) async fn enable(
    caller: Caller,
    State(state): State<ApiState>,
    Path(consumer): Path<String>,
) -> Result<Json<Enabled>, ApiError> {
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
    Ok(Json(Enabled {
        consumer,
        enabled: true,
    }))
}
