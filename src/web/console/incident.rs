//! `GET /console/incidents/{id}`: one incident — evidence, labels, timeline, SLA clocks,
//! similar incidents with their resolutions — and a form for every verb the reader's role
//! allows in its state. `POST /console/incidents/{id}/{verb}` runs the verb through the
//! API's own path and answers a redirect to the page (POST-redirect-GET), or the page
//! again with the server's refusal beside the form (a 409 when the incident moved on since
//! the page was loaded), what was typed kept.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use super::form::{Form, VERBS, verb_body};
use super::model::{Actions, Refused, Viewer};
use super::session::{action_viewer, page_viewer};
use super::{html, render, see_other};
use crate::api::workflow::{
    Acknowledge, Close, Escalate, Hold, Note, Reopen, Resolve, Resume, ScheduleCall, Update,
    perform,
};
use crate::api::{ApiError, ApiState, Caller};
use crate::domain::incident::{Incident, IncidentId};
use crate::view::Shown;

/// Runs `verb` (a form's name for it) with the API body `body` as `caller`.
pub(super) async fn run_verb(
    state: &ApiState,
    caller: Caller,
    id: &str,
    verb: &str,
    body: &Value,
) -> Result<Incident, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    let headers = HeaderMap::new();
    let (s, h, b) = (state, &headers, bytes.as_slice());
    match verb {
        "acknowledge" => perform::<Acknowledge>(s, caller, id, h, b).await,
        "escalate" => perform::<Escalate>(s, caller, id, h, b).await,
        "notes" => perform::<Note>(s, caller, id, h, b).await,
        "hold" => perform::<Hold>(s, caller, id, h, b).await,
        "resume" => perform::<Resume>(s, caller, id, h, b).await,
        "resolve" => perform::<Resolve>(s, caller, id, h, b).await,
        "close" => perform::<Close>(s, caller, id, h, b).await,
        "reopen" => perform::<Reopen>(s, caller, id, h, b).await,
        "edit" => perform::<Update>(s, caller, id, h, b).await,
        "call" => perform::<ScheduleCall>(s, caller, id, h, b).await,
        _ => Err(ApiError::not_found(format!("no verb `{verb}`"))),
    }
}

pub(super) async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    Path(raw): Path<String>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    render_incident(&state, &viewer, &raw, None, StatusCode::OK).await
}

pub(super) async fn act(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((raw, verb)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let viewer = match action_viewer(&state, &headers) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let form = Form::parse(&body);
    if let Err(response) = viewer.check_csrf(&form) {
        return response;
    }
    let Some(body) = VERBS
        .contains(&verb.as_str())
        .then(|| verb_body(&verb, &form))
        .flatten()
    else {
        return render::message(StatusCode::NOT_FOUND, "Not found", "No such form.");
    };
    match run_verb(&state, viewer.caller.clone(), &raw, &verb, &body).await {
        Ok(incident) => see_other(&format!("/console/incidents/{}", incident.id)),
        Err(error) => {
            let refused = Refused {
                verb,
                message: error.message,
                form,
            };
            render_incident(&state, &viewer, &raw, Some(refused), error.status).await
        }
    }
}

/// `GET /console/incidents/{id}/report`: the post-incident review draft as Markdown, the
/// API's own (`api::review::draft`, the same redaction), as plain text a browser shows and
/// one can copy into a document.
pub(super) async fn report(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    Path(raw): Path<String>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Ok(id) = raw.parse::<IncidentId>() else {
        return render::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such incident.",
        );
    };
    match crate::api::review::draft(&state, &viewer.caller, id, true).await {
        Ok(mut response) => {
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(error) if error.status == StatusCode::NOT_FOUND => render::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such incident.",
        ),
        Err(error) => render::failed(&error),
    }
}

async fn render_incident(
    state: &ApiState,
    viewer: &Viewer,
    raw: &str,
    refused: Option<Refused>,
    status: StatusCode,
) -> Response {
    let not_found = || {
        render::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such incident.",
        )
    };
    let Ok(id) = raw.parse::<IncidentId>() else {
        return not_found();
    };
    let (incident, timeline, similar) = match crate::api::incident_in_full(state, id).await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return not_found(),
        Err(error) => return render::failed(&error),
    };
    let restrictions = state.restrictions();
    let clearance = viewer.caller.clearance();
    let now = state.clock.now();
    match restrictions.shown(&incident, clearance) {
        Shown::Restricted(view) => html(status, render::restricted(viewer, &view)),
        Shown::Full(incident) => {
            let similar: Vec<&Incident> = similar
                .iter()
                .filter_map(|other| match restrictions.shown(other, clearance) {
                    Shown::Full(other) => Some(other),
                    Shown::Restricted(_) => None,
                })
                .collect();
            let actions = Actions::of(incident, &viewer.caller, viewer.may_respond());
            html(
                status,
                render::incident(&render::IncidentInputs {
                    viewer,
                    incident,
                    timeline: &timeline,
                    similar: &similar,
                    clocks: super::model::clocks(incident, restrictions.sla(), now),
                    actions,
                    refused: refused.as_ref(),
                    now,
                }),
            )
        }
    }
}
