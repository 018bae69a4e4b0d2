//! The alert routes: `POST /api/v1/alertmanager` (Alertmanager's webhook, version 4),
//! `POST /api/v2/alerts` (Alertmanager's push API, so Prometheus can send straight here),
//! and `POST /api/v1/events` = `POST /v2/enqueue` (PagerDuty Events API v2, answered in
//! PagerDuty's shape). Each needs the `ingest` role or higher; the events route also takes
//! an ingest token in `routing_key` when there is no `Authorization` header.
//!
//! A request's alerts decode whole or not at all (a malformed one is a 400 naming its
//! field, and nothing changes), then go to the engine as one command: one transaction,
//! answered once durable. When the engine's queue stays full for [`QUEUE_WAIT`] the
//! answer is 429 with `Retry-After` (memory stays bounded by the queue). Every alert is
//! counted in `incidentd_alerts_received_total{source,outcome}`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{Caller, Need};
use super::error::ErrorBody;
use super::schema::{AlertmanagerWebhook, PagerDutyEvent, PostableAlert};
use super::{ApiError, ApiState};
use crate::domain::alert::{Alert, AlertSource};
use crate::engine::{AlertsOutcome, IngestError};
use crate::ingest;

/// How long a request waits for room in the engine's queue before it is answered 429.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// `Retry-After` of a 429, in seconds.
const RETRY_AFTER: &str = "5";

fn json_body(body: &Bytes) -> Result<Value, String> {
    if body.is_empty() {
        return Err("a JSON body is required".to_owned());
    }
    serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))
}

fn throttled(message: Value) -> Response {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(message)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    response
}

/// Sends the batch and counts each alert's outcome; `Err` is the response to give.
async fn apply(
    state: &ApiState,
    source: AlertSource,
    alerts: Vec<Alert>,
) -> Result<AlertsOutcome, IngestError> {
    let count = alerts.len();
    match state.engine.alerts(alerts, QUEUE_WAIT).await {
        Ok(outcome) => {
            for alert in &outcome.alerts {
                state
                    .metrics
                    .alert_received(source.as_str(), alert.as_str(), 1);
            }
            Ok(outcome)
        }
        Err(error) => {
            let outcome = match error {
                IngestError::Busy => "throttled",
                IngestError::Engine(_) => "failed",
            };
            state
                .metrics
                .alert_received(source.as_str(), outcome, count);
            Err(error)
        }
    }
}

fn api_error(error: IngestError) -> Response {
    match error {
        IngestError::Busy => throttled(json!({"error": {
            "code": "too_many_requests",
            "message": "incidentd is busy; retry later",
        }})),
        IngestError::Engine(error) => ApiError::from(error).into_response(),
    }
}

/// What the Alertmanager-shaped routes answer: each alert's outcome and incident, in
/// the order they came.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AlertOutcomes {
    alerts: Vec<AlertOutcome>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AlertOutcome {
    /// `accepted`, `duplicate`, `suppressed` or `ignored`.
    outcome: &'static str,
    /// The incident it opened or joined; null when none.
    incident: Option<String>,
}

fn outcomes(outcome: &AlertsOutcome) -> AlertOutcomes {
    AlertOutcomes {
        alerts: outcome
            .alerts
            .iter()
            .map(|a| AlertOutcome {
                outcome: a.as_str(),
                incident: a.incident().map(|id| id.to_string()),
            })
            .collect(),
    }
}

/// The number of alerts a refused payload held (1 when it held no list).
fn rejected(state: &ApiState, source: AlertSource, body: Option<&Value>) {
    let count = match body {
        Some(Value::Array(items)) => items.len(),
        Some(Value::Object(map)) => map
            .get("alerts")
            .and_then(Value::as_array)
            .map_or(1, Vec::len),
        _ => 1,
    };
    state
        .metrics
        .alert_received(source.as_str(), "rejected", count.max(1));
}

/// `POST /api/v1/alertmanager` and `POST /api/v2/alerts`.
async fn alertmanager_shaped(
    caller: Caller,
    state: ApiState,
    body: Bytes,
    source: AlertSource,
) -> Response {
    if let Err(error) = caller.require(Need::Ingest) {
        return error.into_response();
    }
    let value = match json_body(&body) {
        Ok(value) => value,
        Err(message) => {
            rejected(&state, source, None);
            return ApiError::bad_request(message).into_response();
        }
    };
    let decoded = match source {
        AlertSource::Alertmanager => ingest::alertmanager(&value),
        _ => ingest::api_v2(&value, state.clock.now()),
    };
    let alerts = match decoded {
        Ok(alerts) => alerts,
        Err(invalid) => {
            rejected(&state, source, Some(&value));
            return ApiError::bad_request(invalid.to_string()).into_response();
        }
    };
    match apply(&state, source, alerts).await {
        Ok(outcome) => (StatusCode::OK, Json(outcomes(&outcome))).into_response(),
        Err(error) => api_error(error),
    }
}

/// `POST /api/v1/alertmanager`: Alertmanager's webhook receiver (payload version 4).
#[utoipa::path(post, path = "/api/v1/alertmanager", tag = "alerts",
    request_body = AlertmanagerWebhook,
    responses(
        (status = 200, description = "Each alert's outcome", body = AlertOutcomes),
        (status = 429, description = "Busy: retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub(super) async fn alertmanager(
    caller: Caller,
    State(state): State<ApiState>,
    body: Bytes,
) -> Response {
    alertmanager_shaped(caller, state, body, AlertSource::Alertmanager).await
}

/// `POST /api/v2/alerts`: Alertmanager's push API, as Prometheus sends alerts.
#[utoipa::path(post, path = "/api/v2/alerts", tag = "alerts",
    request_body = Vec<PostableAlert>,
    responses(
        (status = 200, description = "Each alert's outcome", body = AlertOutcomes),
        (status = 429, description = "Busy: retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub(super) async fn api_v2(caller: Caller, State(state): State<ApiState>, body: Bytes) -> Response {
    alertmanager_shaped(caller, state, body, AlertSource::ApiV2).await
}

/// What the events routes answer, in PagerDuty's shape (its clients read these fields); a
/// refusal also carries the API's own `error` object, which every other client reads.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EventAnswer {
    /// `success`, `invalid event` or `throttle event`.
    status: &'static str,
    message: &'static str,
    /// The event's (given or generated) key, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    dedup_key: Option<String>,
    /// Every problem of an invalid event.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<String>>,
    /// On a refusal: the API's error, as on every other route.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<super::error::ErrorDetail>,
}

fn invalid_event(errors: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(EventAnswer {
            status: "invalid event",
            message: "Event object is invalid",
            dedup_key: None,
            error: Some(super::error::ErrorDetail {
                code: "bad_request",
                message: errors.join("; "),
            }),
            errors: Some(errors),
        }),
    )
        .into_response()
}

/// A dedup key for a trigger without one: 32 hex digits, as PagerDuty makes them.
fn new_dedup_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `POST /api/v1/events`: PagerDuty Events API v2 (`routing_key` may carry an ingest token).
#[utoipa::path(post, path = "/api/v1/events", tag = "alerts",
    request_body = PagerDutyEvent,
    responses(
        (status = 202, description = "Processed", body = EventAnswer),
        (status = 400, description = "Invalid event, every problem listed (PagerDuty's shape)", body = EventAnswer),
        (status = 429, description = "Busy: retry after `Retry-After` seconds (PagerDuty's shape)", body = EventAnswer),
    ))]
pub(super) async fn events(state: State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    receive_event(state, headers, body).await
}

/// `POST /v2/enqueue`: the same, at PagerDuty's own path.
#[utoipa::path(post, path = "/v2/enqueue", tag = "alerts",
    request_body = PagerDutyEvent,
    responses(
        (status = 202, description = "Processed", body = EventAnswer),
        (status = 400, description = "Invalid event, every problem listed (PagerDuty's shape)", body = EventAnswer),
        (status = 429, description = "Busy: retry after `Retry-After` seconds (PagerDuty's shape)", body = EventAnswer),
    ))]
pub(super) async fn enqueue(state: State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    receive_event(state, headers, body).await
}

/// `POST /api/v1/events` and `POST /v2/enqueue`: PagerDuty Events API v2.
async fn receive_event(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let source = AlertSource::Events;
    let value = json_body(&body);
    let routing_key = value
        .as_ref()
        .ok()
        .and_then(|v| v.get("routing_key"))
        .and_then(Value::as_str);
    let caller = match Caller::from_headers(&headers, &state, routing_key) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = caller.require(Need::Ingest) {
        return error.into_response();
    }
    let value = match value {
        Ok(value) => value,
        Err(message) => {
            rejected(&state, source, None);
            return invalid_event(vec![message]);
        }
    };
    let event = match ingest::event(&value, new_dedup_key) {
        Ok(event) => event,
        Err(errors) => {
            rejected(&state, source, None);
            return invalid_event(errors.iter().map(ToString::to_string).collect());
        }
    };
    match apply(&state, source, vec![event.alert]).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(EventAnswer {
                status: "success",
                message: "Event processed",
                dedup_key: Some(event.dedup_key),
                errors: None,
                error: None,
            }),
        )
            .into_response(),
        Err(IngestError::Busy) => throttled(json!(EventAnswer {
            status: "throttle event",
            message: "incidentd is busy; retry later",
            dedup_key: None,
            errors: None,
            error: Some(super::error::ErrorDetail {
                code: "too_many_requests",
                message: "incidentd is busy; retry later".to_owned(),
            }),
        })),
        Err(error) => api_error(error),
    }
}
