//! The service-desk verbs: tickets (with their reporter's link, which may be rotated and
//! revoked), and every verb on one incident (acknowledge, notes, hold/resume, escalate,
//! `PATCH`, resolve, close, reopen, calls) through one path: [`act`] checks
//! the caller, reads the verb's body ([`VerbBody`]), sends one command to the engine and
//! answers the incident as it is once the change is durable. The engine refuses a
//! restricted incident to a caller without clearance.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::auth::{Caller, Need};
use super::extract::Path;
use super::limits::{self, Text, check, check_some};
use super::schema::{IncidentAnswer, TicketAnswer};
use super::{ApiError, ApiState, parse_id};
use crate::api::error::ErrorBody;
use crate::domain::incident::{Call, Changes, Kind, Reporter, Tier};
use crate::domain::priority::{Level, Priority};
use crate::engine::{NewTicket, Verb};

type Body = Result<Bytes, BytesRejection>;
type Answer = Result<Json<serde_json::Value>, ApiError>;

/// A required JSON body; unknown fields and wrong types are 400.
fn required_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    object(bytes)
}

/// A JSON body that may be absent (verbs without required fields).
fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    object(bytes)
}

/// A verb's body is a JSON object. serde would also build the struct from an array of its
/// fields in order (`[]` as an acknowledgement, `["reason"]` as an escalation), which no
/// client means: refused like any other wrong type.
fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected an object, not an array",
        ));
    }
    serde_json::from_slice(bytes)
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

/// How a verb reads its request.
pub(crate) trait VerbBody {
    fn verb(caller: &Caller, headers: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError>;
}

/// `POST /api/v1/incidents/{id}/<verb>` and `PATCH /api/v1/incidents/{id}`: the one path
/// of every verb on an incident.
async fn act<V: VerbBody>(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let clearance = caller.clearance();
    let incident = perform::<V>(&state, caller, &raw, &headers, &body?).await?;
    let snapshot = state.read.borrow().clone();
    Ok(Json(snapshot.restrictions.view(
        &incident,
        None,
        clearance,
        state.clock.now(),
    )))
}

/// The parameter of every route on one incident.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by `Path<String>`; here for the description
pub(super) struct IncidentPath {
    /// `INC-1`, `INC-2`, …
    id: String,
}

/// The handler of one verb on an incident: a function of its own, so that it carries its own
/// OpenAPI operation; the work is [`act`]'s.
macro_rules! verb_handler {
    (
        $(#[doc = $doc:tt])*
        $name:ident = $method:ident $path:tt ($tag:tt) $verb:ident,
        body: ($($body:tt)+), ok: $ok:tt, conflict: $conflict:tt
    ) => {
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $path, tag = $tag,
            params(IncidentPath), $($body)+,
            responses(
                (status = 200, description = $ok, body = IncidentAnswer),
                (status = 409, description = $conflict, body = ErrorBody),
            ))]
        pub(super) async fn $name(
            caller: Caller,
            state: State<ApiState>,
            id: Path<String>,
            headers: HeaderMap,
            body: Body,
        ) -> Answer {
            act::<$verb>(caller, state, id, headers, body).await
        }
    };
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/acknowledge`: the first response.
    acknowledge = post "/api/v1/incidents/{id}/acknowledge" ("workflow") Acknowledge,
    body: (request_body(content = Option<Acknowledge>)),
    ok: "The incident, acknowledged",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/resolve`: what was done.
    resolve = post "/api/v1/incidents/{id}/resolve" ("workflow") Resolve,
    body: (request_body = Resolve),
    ok: "The incident, resolved",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/notes`: a note, internal or public (the status page).
    note = post "/api/v1/incidents/{id}/notes" ("workflow") Note,
    body: (request_body = Note),
    ok: "The incident",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/hold`: waiting on someone; the resolution clock pauses.
    hold = post "/api/v1/incidents/{id}/hold" ("workflow") Hold,
    body: (request_body = ReasonBody),
    ok: "The incident, on hold",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/resume`: back from hold.
    resume = post "/api/v1/incidents/{id}/resume" ("workflow") Resume,
    body: (request_body(content = Option<Resume>)),
    ok: "The incident, resumed",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/escalate`: to the next tier, or to `tier`.
    escalate = post "/api/v1/incidents/{id}/escalate" ("workflow") Escalate,
    body: (request_body = Escalate),
    ok: "The incident, escalated",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/close`: a resolved incident, closed.
    close = post "/api/v1/incidents/{id}/close" ("workflow") Close,
    body: (request_body(content = Option<Close>)),
    ok: "The incident, closed",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/reopen`: a resolved or closed incident, open again.
    reopen = post "/api/v1/incidents/{id}/reopen" ("workflow") Reopen,
    body: (request_body = ReasonBody),
    ok: "The incident, reopened",
    conflict: "Not possible in the incident's state"
}

verb_handler! {
    /// `POST /api/v1/incidents/{id}/calls`: a call with the reporter (L2 and L3).
    schedule_call = post "/api/v1/incidents/{id}/calls" ("workflow") ScheduleCall,
    body: (request_body = ScheduleCall),
    ok: "The incident with the call",
    conflict: "Not possible in the incident's state or tier"
}

verb_handler! {
    /// `PATCH /api/v1/incidents/{id}`: audited changes, each with the reason.
    update = patch "/api/v1/incidents/{id}" ("incidents") Update,
    body: (request_body = Update),
    ok: "The incident, changed",
    conflict: "Not possible in the incident's state"
}

/// One verb on one incident, for the API and the console alike: the caller's role, the
/// verb's body (JSON: the console turns its forms into the same bodies), one command to the
/// engine; the incident as it is once the change is durable.
pub(crate) async fn perform<V: VerbBody>(
    state: &ApiState,
    caller: Caller,
    raw_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::domain::incident::Incident, ApiError> {
    caller.require(Need::Respond)?;
    let id = parse_id(raw_id)?;
    let verb = V::verb(&caller, headers, body)?;
    let clearance = caller.clearance();
    Ok(state
        .engine
        .workflow(id, caller.name, clearance, verb)
        .await?)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = AcknowledgeBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Acknowledge {}

impl VerbBody for Acknowledge {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let Acknowledge {} = optional_body(body)?;
        Ok(Verb::Acknowledge)
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ResumeBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resume {}

impl VerbBody for Resume {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let Resume {} = optional_body(body)?;
        Ok(Verb::Resume)
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = CloseBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Close {}

impl VerbBody for Close {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let Close {} = optional_body(body)?;
        Ok(Verb::Close)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ResolveBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolve {
    resolution: String,
}

impl VerbBody for Resolve {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        // Like every verb with a required field: 400 without a body (a body that is not
        // declared JSON never gets here: 415 at the edge, `api::guard`).
        let Resolve { resolution } = required_body(body)?;
        if resolution.trim().is_empty() {
            return Err(ApiError::bad_request("`resolution` must say what was done"));
        }
        check("resolution", &resolution, limits::TEXT, Text::Lines)?;
        Ok(Verb::Resolve {
            resolution: Some(resolution),
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewTicket)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicketBody {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewReporter)]
#[serde(deny_unknown_fields)]
struct ReporterBody {
    name: String,
    #[serde(default)]
    contact: String,
}

impl TicketBody {
    /// Every field within [`limits`].
    fn check(&self) -> Result<(), ApiError> {
        check("title", &self.title, limits::TITLE, Text::Line)?;
        check(
            "description",
            &self.description,
            limits::DESCRIPTION,
            Text::Lines,
        )?;
        check(
            "reporter.name",
            &self.reporter.name,
            limits::NAME,
            Text::Line,
        )?;
        check(
            "reporter.contact",
            &self.reporter.contact,
            limits::CONTACT,
            Text::Line,
        )?;
        check_some(
            "category",
            self.category.as_deref(),
            limits::NAME,
            Text::Line,
        )?;
        check_some("service", self.service.as_deref(), limits::NAME, Text::Line)?;
        limits::check_labels("labels", &self.labels)
    }
}

/// `POST /api/v1/incidents`: a ticket from a person → 201 with the incident.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    request_body = TicketBody,
    responses(
        (status = 201, description = "The ticket, with its reporter's link (answered this once)", body = TicketAnswer),
    ))]
pub(super) async fn open_ticket(
    caller: Caller,
    State(state): State<ApiState>,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(Need::Respond)?;
    let body: TicketBody = required_body(&body?)?;
    non_empty("title", &body.title)?;
    non_empty("reporter.name", &body.reporter.name)?;
    body.check()?;
    let (token, hash) = super::secret::issue();
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
        reporter_link: Some(hash),
    };
    let clearance = caller.clearance();
    let incident = state.engine.open_ticket(ticket, caller.name).await?;
    let snapshot = state.read.borrow().clone();
    let mut answer = snapshot
        .restrictions
        .view(&incident, None, clearance, state.clock.now());
    // The reporter's link, answered this once (only its hash is stored): also to a caller
    // without clearance for a restricted ticket, whose page shows no more than they see.
    answer["reporter_link"] =
        serde_json::Value::String(reporter_link(state.site.external_url().as_deref(), &token));
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The link to give a ticket's reporter (`/r/{token}`, `web::reporter`'s page): absolute
/// under `external_url` when it is set, else the path.
fn reporter_link(external_url: Option<&str>, token: &str) -> String {
    format!(
        "{}/r/{token}",
        external_url.unwrap_or("").trim_end_matches('/')
    )
}

/// `POST /api/v1/incidents/{id}/reporter-link`: a new link for the ticket's reporter, the
/// old one revoked in the same commit (for a link that leaked, or a ticket opened by a tool
/// that could not read the first). 201 `{"incident", "reporter_link"}`, the link answered
/// this once.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/reporter-link", tag = "workflow",
    params(IncidentPath),
    responses(
        (status = 201, description = "The new link (answered this once)", body = ReporterLinkAnswer),
        (status = 409, description = "Not a ticket, or closed", body = ErrorBody),
    ))]
pub(super) async fn rotate_reporter_link(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<ReporterLinkAnswer>), ApiError> {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let (token, hash) = super::secret::issue();
    let clearance = caller.clearance();
    state
        .engine
        .workflow(
            id,
            caller.name,
            clearance,
            Verb::ReporterLink { hash: Some(hash) },
        )
        .await?;
    let link = reporter_link(state.site.external_url().as_deref(), &token);
    Ok((
        StatusCode::CREATED,
        Json(ReporterLinkAnswer {
            incident: id.to_string(),
            reporter_link: link,
        }),
    ))
}

/// A ticket's new reporter link.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ReporterLinkAnswer {
    /// `INC-1`, …
    incident: String,
    /// `/r/{token}`, absolute under `external_url` when it is set.
    reporter_link: String,
}

/// `DELETE /api/v1/incidents/{id}/reporter-link`: the reporter's link stops working (404,
/// and its comment form is refused); 204.
#[utoipa::path(delete, path = "/api/v1/incidents/{id}/reporter-link", tag = "workflow",
    params(IncidentPath),
    responses(
        (status = 204, description = "The link no longer works"),
        (status = 409, description = "Not a ticket", body = ErrorBody),
    ))]
pub(super) async fn revoke_reporter_link(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Need::Respond)?;
    let id = parse_id(&raw)?;
    let clearance = caller.clearance();
    state
        .engine
        .workflow(
            id,
            caller.name,
            clearance,
            Verb::ReporterLink { hash: None },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/incidents/{id}/calls`: `{"url", "at", "participants"?, "note"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewCall)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleCall {
    url: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    at: String,
    #[serde(default)]
    participants: Vec<String>,
    note: Option<String>,
}

/// A call's bridge or meeting URL at most.
pub(super) const CALL_URL: usize = 2048;
/// A call's participants at most.
const CALL_PARTICIPANTS: usize = 20;

impl VerbBody for ScheduleCall {
    fn verb(caller: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let body: ScheduleCall = required_body(body)?;
        check("url", &body.url, CALL_URL, Text::Line)?;
        let lower = body.url.to_ascii_lowercase();
        let has_host = body
            .url
            .parse::<axum::http::Uri>()
            .is_ok_and(|uri| uri.host().is_some_and(|h| !h.is_empty()));
        if !(lower.starts_with("http://") || lower.starts_with("https://")) || !has_host {
            return Err(ApiError::bad_request(
                "`url` must be an http or https URL (the bridge or meeting)",
            ));
        }
        let at = chrono::DateTime::parse_from_rfc3339(body.at.trim())
            .map_err(|_| {
                ApiError::bad_request("`at` must be an RFC 3339 time, such as 2026-03-02T10:00:00Z")
            })?
            .with_timezone(&chrono::Utc);
        if body.participants.len() > CALL_PARTICIPANTS {
            return Err(ApiError::bad_request(format!(
                "`participants` has {} entries; at most {CALL_PARTICIPANTS}",
                body.participants.len()
            )));
        }
        for participant in &body.participants {
            non_empty("participants[]", participant)?;
            check("participants[]", participant, limits::NAME, Text::Line)?;
        }
        check_some("note", body.note.as_deref(), limits::COMMENT, Text::Lines)?;
        Ok(Verb::ScheduleCall {
            call: Call {
                at,
                url: body.url,
                participants: body.participants,
                note: body.note.filter(|n| !n.trim().is_empty()),
                scheduled_by: caller.name.clone(),
                // Set by the state machine to the engine's now.
                scheduled_at: at,
            },
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NoteBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Note {
    text: String,
    #[serde(default)]
    public: bool,
}

impl VerbBody for Note {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let Note { text, public } = required_body(body)?;
        non_empty("text", &text)?;
        check("text", &text, limits::TEXT, Text::Lines)?;
        Ok(Verb::Note { text, public })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

fn reason(body: &[u8]) -> Result<String, ApiError> {
    let ReasonBody { reason } = required_body(body)?;
    non_empty("reason", &reason)?;
    check("reason", &reason, limits::REASON, Text::Line)?;
    Ok(reason)
}

pub(crate) struct Hold;

impl VerbBody for Hold {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        Ok(Verb::Hold {
            reason: reason(body)?,
        })
    }
}

pub(crate) struct Reopen;

impl VerbBody for Reopen {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        Ok(Verb::Reopen {
            reason: reason(body)?,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EscalateBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Escalate {
    reason: String,
    tier: Option<Tier>,
}

impl VerbBody for Escalate {
    fn verb(caller: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let Escalate { reason, tier } = required_body(body)?;
        non_empty("reason", &reason)?;
        check("reason", &reason, limits::REASON, Text::Line)?;
        Ok(Verb::Escalate {
            reason,
            tier,
            may_lower: caller.is_admin(),
        })
    }
}

/// `PATCH /api/v1/incidents/{id}`: audited changes, each with the reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = IncidentChanges)]
#[serde(deny_unknown_fields)]
pub(crate) struct Update {
    title: Option<String>,
    category: Option<String>,
    impact: Option<Level>,
    urgency: Option<Level>,
    priority: Option<Priority>,
    service: Option<String>,
    /// Publishes the incident on the status page (or takes it off).
    public: Option<bool>,
    reason: String,
}

impl VerbBody for Update {
    fn verb(_: &Caller, _: &HeaderMap, body: &[u8]) -> Result<Verb, ApiError> {
        let body: Update = required_body(body)?;
        non_empty("reason", &body.reason)?;
        check("reason", &body.reason, limits::REASON, Text::Line)?;
        check_some("title", body.title.as_deref(), limits::TITLE, Text::Line)?;
        check_some(
            "category",
            body.category.as_deref(),
            limits::NAME,
            Text::Line,
        )?;
        check_some("service", body.service.as_deref(), limits::NAME, Text::Line)?;
        let changes = Changes {
            title: body.title,
            category: body.category,
            impact: body.impact,
            urgency: body.urgency,
            priority: body.priority,
            service: body.service,
            published: body.public,
        };
        if changes == Changes::default() {
            return Err(ApiError::bad_request(
                "nothing to change: give at least one of title, category, impact, urgency, priority, service, public",
            ));
        }
        Ok(Verb::Update {
            changes,
            reason: body.reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::reporter_link;

    #[test]
    fn the_reporter_link_is_absolute_under_the_external_url() {
        assert_eq!(
            reporter_link(Some("https://desk.example/"), "abc"),
            "https://desk.example/r/abc"
        );
        assert_eq!(reporter_link(None, "abc"), "/r/abc");
    }
}
