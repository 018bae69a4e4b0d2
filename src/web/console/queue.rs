//! `GET /console`: the queue. The incidents that are not closed come from the read model
//! (never the store), so a page costs the same whatever the history: filtered (state,
//! tier, priority, kind, source, text, "mine"), sorted (priority, then tier from L3 down,
//! then the oldest first), [`PAGE`] rows a page. A restricted incident that the reader may
//! not see in full matches only what its restricted view shows (id and state) and sorts
//! after the others. `POST /console/bulk` acknowledges or escalates the selected rows.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::filters::{Filters, PAGE, build};
use super::form::{Form, verb_body};
use super::incident::run_verb;
use super::session::{action_viewer, page_viewer};
use super::{html, render, see_other};
use crate::api::ApiState;

pub(super) async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let filters = query.map(|Query(f)| f).unwrap_or_default();
    render_queue(&state, &viewer, &filters, &[], StatusCode::OK)
}

fn render_queue(
    state: &ApiState,
    viewer: &super::model::Viewer,
    filters: &Filters,
    errors: &[(String, String)],
    status: StatusCode,
) -> Response {
    let snapshot = state.read.borrow().clone();
    let now = state.clock.now();
    let queue = build(
        &snapshot.incidents,
        filters,
        &viewer.caller,
        &snapshot.restrictions,
        now,
    );
    html(
        status,
        render::queue(viewer, filters, &queue, errors, snapshot.version),
    )
}

/// `POST /console/bulk`: `ack=<id>` (one row's button) or `action=acknowledge|escalate`
/// with the selected `ids` (at most a page), `reason` and `tier` for escalations. All go
/// to the engine at once (one commit); the queue comes back (POST-redirect-GET), or with
/// each refusal in place.
pub(super) async fn bulk(
    State(state): State<ApiState>,
    headers: HeaderMap,
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
    let filters: Filters = form
        .get("back")
        .and_then(serde_urlencoded_filters)
        .unwrap_or_default();
    let back = match filters.query() {
        query if query.is_empty() => "/console".to_owned(),
        query => format!("/console?{query}"),
    };
    let (verb, ids): (&str, Vec<String>) = match form.get("ack") {
        Some(id) => ("acknowledge", vec![id.to_owned()]),
        None => (
            match form.get("action") {
                Some("escalate") => "escalate",
                _ => "acknowledge",
            },
            form.all("ids").take(PAGE).map(str::to_owned).collect(),
        ),
    };
    if ids.is_empty() {
        return render_queue(
            &state,
            &viewer,
            &filters,
            &[(String::new(), "Select at least one incident.".to_owned())],
            StatusCode::BAD_REQUEST,
        );
    }
    let body = verb_body(verb, &form).expect("a known verb");
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (state, caller, body) = (state.clone(), viewer.caller.clone(), body.clone());
        tasks.spawn(async move {
            let result = run_verb(&state, caller, &id, verb, &body).await;
            (id, result)
        });
    }
    let mut errors = Vec::new();
    let mut status = StatusCode::OK;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((_, Ok(_))) => {}
            Ok((id, Err(error))) => {
                if status == StatusCode::OK {
                    status = error.status;
                }
                errors.push((id, error.message));
            }
            Err(error) => errors.push((String::new(), error.to_string())),
        }
    }
    if errors.is_empty() {
        return see_other(&back);
    }
    errors.sort();
    render_queue(&state, &viewer, &filters, &errors, status)
}

/// The filters of a `back` query string (`state=…&q=…`).
fn serde_urlencoded_filters(query: &str) -> Option<Filters> {
    let form = Form::parse(query.as_bytes());
    let text = |name: &str| form.get(name).unwrap_or("").to_owned();
    Some(Filters {
        state: text("state"),
        tier: text("tier"),
        priority: text("priority"),
        kind: text("kind"),
        source: text("source"),
        q: text("q"),
        mine: text("mine"),
        page: 0,
    })
}
