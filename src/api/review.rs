//! `GET /api/v1/incidents/{id}/report?format=json|md`: the post-incident review draft
//! ([`crate::report`]), from the stored incident, its timeline and similar past incidents.
//! A restricted incident is answered to a caller without clearance only as its redacted
//! view says (`Restrictions::view`), and similar incidents that are restricted only to
//! callers with clearance.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Caller, Need};
use super::extract::Path;
use super::{ApiError, ApiState, parse_id};
use crate::domain::incident::Incident;
use crate::view::{Clearance, SlaView};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    /// `json` (the default) or `md`.
    #[param(pattern = "^(json|md|markdown)$")]
    format: Option<String>,
}

/// `GET /api/v1/incidents/{id}/report`: the review draft, JSON or Markdown.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/report", tag = "incidents",
    params(super::workflow::IncidentPath, ReportQuery),
    responses(
        (status = 200, description = "The draft (only that the incident exists, when restricted and the caller has no clearance)",
            content(
                (crate::api::schema::ReviewAnswer = "application/json"),
                (String = "text/markdown; charset=utf-8"),
            )),
        (status = 404, description = "No such incident", body = crate::api::ErrorBody),
    ))]
pub(super) async fn report(
    caller: Caller,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Need::Read)?;
    let Query(query) = query?;
    let markdown = match query.format.as_deref() {
        None | Some("json") => false,
        Some("md" | "markdown") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid format `{}`; expected json or md",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let id = parse_id(&raw)?;
    draft(&state, &caller, id, markdown).await
}

/// The review draft of incident `id` as `caller` may see it: JSON, or Markdown
/// (`text/markdown`). The API's route and the console's link both answer this.
pub(crate) async fn draft(
    state: &ApiState,
    caller: &Caller,
    id: crate::domain::incident::IncidentId,
    markdown: bool,
) -> Result<Response, ApiError> {
    let (incident, timeline, similar) = super::incident_in_full(state, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))?;
    let clearance = caller.clearance();
    let restrictions = state.restrictions();
    let now = state.clock.now();
    if clearance == Clearance::None && restrictions.is_restricted(&incident) {
        let redacted = restrictions.view(&incident, None, clearance, now);
        return Ok(if markdown {
            markdown_answer(crate::report::restricted_markdown(&redacted))
        } else {
            Json(redacted).into_response()
        });
    }
    let similar: Vec<Incident> = similar
        .into_iter()
        .filter(|other| clearance == Clearance::Security || !restrictions.is_restricted(other))
        .collect();
    let sla = SlaView::new(&incident, restrictions.sla(), now);
    let review = crate::report::review(&incident, &timeline, &sla, &similar, now);
    Ok(if markdown {
        markdown_answer(crate::report::markdown(&review))
    } else {
        Json(review).into_response()
    })
}

fn markdown_answer(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
        .into_response()
}
