//! The service-desk verbs: tickets, notes, hold/resume, escalate, `PATCH`, close and
//! reopen. Each handler checks the caller and the body, then sends one command to the
//! engine and answers the incident as it is once the change is durable.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::auth::{Caller, Need};
use super::{ApiError, ApiState, Empty, check_clearance, incident_reply, optional_body, parse_id};
use crate::domain::incident::{Changes, IncidentId, Kind, Reporter, Tier};
use crate::domain::priority::{Level, Priority};
use crate::engine::{Command, NewTicket, Reply};

type Body = Result<Bytes, BytesRejection>;
type Answer = Result<Json<serde_json::Value>, ApiError>;

/// A required JSON body; unknown fields and wrong types are 400.
fn required_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = body?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn non_empty(field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "`{field}` must not be empty"
        )));
    }
    Ok(())
}

/// Sends a verb on `id` to the engine once the caller may act on that incident.
async fn run(state: &ApiState, caller: &Caller, id: IncidentId, command: Command) -> Answer {
    check_clearance(state, caller, id).await?;
    incident_reply(state, state.engine.call(command).await?, caller.clearance())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TicketBody {
    title: String,
    #[serde(default)]
    description: String,
    reporter: ReporterBody,
    kind: Option<Kind>,
    category: Option<String>,
    impact: Option<Level>,
    urgency: Option<Level>,
    service: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReporterBody {
    name: String,
    #[serde(default)]
    contact: String,
}

/// `POST /api/v1/incidents`: a ticket from a person → 201 with the incident.
pub(super) async fn open_ticket(
    caller: Caller,
    State(state): State<ApiState>,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(Need::Respond)?;
    let body: TicketBody = required_body(body)?;
    non_empty("title", &body.title)?;
    non_empty("reporter.name", &body.reporter.name)?;
    let ticket = NewTicket {
        title: body.title,
        description: body.description,
        reporter: Reporter {
            name: body.reporter.name,
            contact: body.reporter.contact,
        },
        kind: body.kind,
        category: body.category,
        impact: body.impact,
        urgency: body.urgency,
        service: body.service,
        labels: body.labels,
    };
    let clearance = caller.clearance();
    let command = Command::OpenTicket {
        ticket,
        actor: caller.name.clone(),
    };
    match state.engine.call(command).await? {
        Reply::Incident(incident) => Ok((
            StatusCode::CREATED,
            Json(
                state
                    .restrictions
                    .view(&incident, None, clearance, state.clock.now()),
            ),
        )),
        _ => Err(ApiError::internal(
            "the engine answered without an incident",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteBody {
    text: String,
    #[serde(default)]
    public: bool,
}

pub(super) async fn note(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let body: NoteBody = required_body(body)?;
    non_empty("text", &body.text)?;
    let command = Command::Note {
        id,
        actor: caller.name.clone(),
        text: body.text,
        public: body.public,
    };
    run(&state, &caller, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    reason: String,
}

pub(super) async fn hold(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let ReasonBody { reason } = required_body(body)?;
    non_empty("reason", &reason)?;
    let command = Command::Hold {
        id,
        actor: caller.name.clone(),
        reason,
    };
    run(&state, &caller, id, command).await
}

pub(super) async fn resume(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let Empty {} = optional_body(&body?)?;
    let command = Command::Resume {
        id,
        actor: caller.name.clone(),
    };
    run(&state, &caller, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EscalateBody {
    reason: String,
    tier: Option<Tier>,
}

pub(super) async fn escalate(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let body: EscalateBody = required_body(body)?;
    non_empty("reason", &body.reason)?;
    let command = Command::Escalate {
        id,
        may_lower: caller.is_admin(),
        actor: caller.name.clone(),
        reason: body.reason,
        tier: body.tier,
    };
    run(&state, &caller, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    title: Option<String>,
    category: Option<String>,
    impact: Option<Level>,
    urgency: Option<Level>,
    priority: Option<Priority>,
    service: Option<String>,
    reason: String,
}

/// `PATCH /api/v1/incidents/{id}`: audited changes, each with the reason.
pub(super) async fn update(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let body: UpdateBody = required_body(body)?;
    non_empty("reason", &body.reason)?;
    let changes = Changes {
        title: body.title,
        category: body.category,
        impact: body.impact,
        urgency: body.urgency,
        priority: body.priority,
        service: body.service,
    };
    if changes == Changes::default() {
        return Err(ApiError::bad_request(
            "nothing to change: give at least one of title, category, impact, urgency, priority, service",
        ));
    }
    let command = Command::Update {
        id,
        actor: caller.name.clone(),
        changes,
        reason: body.reason,
    };
    run(&state, &caller, id, command).await
}

pub(super) async fn close(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let Empty {} = optional_body(&body?)?;
    let command = Command::Close {
        id,
        actor: caller.name.clone(),
    };
    run(&state, &caller, id, command).await
}

pub(super) async fn reopen(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Body,
) -> Answer {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let ReasonBody { reason } = required_body(body)?;
    non_empty("reason", &reason)?;
    let command = Command::Reopen {
        id,
        actor: caller.name.clone(),
        reason,
    };
    run(&state, &caller, id, command).await
}
