//! `GET /status.json` and `GET /`: the public status page, without auth. The page itself
//! is built in `crate::status`; here it is read from the store.

use axum::Json;
use axum::extract::State;
use axum::response::Html;

use super::{ApiError, ApiState};
use crate::domain::incident::State as IncidentState;
use crate::status::{StatusPage, build, render_html};

/// Active incidents read per page of the store's list.
const PAGE: usize = 500;

async fn load(state: &ApiState) -> Result<StatusPage, ApiError> {
    let store = state.store.clone();
    let restrictions = state.restrictions.clone();
    let services = state.services.clone();
    tokio::task::spawn_blocking(move || {
        // Passed to the store, which then reads only its index of incidents not closed.
        let states: Vec<_> = (IncidentState::ALL.into_iter())
            .filter(|s| s.is_active())
            .collect();
        let mut active = Vec::new();
        let mut before = None;
        loop {
            let (page, next) =
                store.list_incidents_by_state(Some(&states), before, PAGE, |_| true)?;
            for incident in page {
                if let Some(found) = store.get_incident_with_timeline(incident.id)? {
                    active.push(found);
                }
            }
            match next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        Ok(build(&services, &active, &restrictions))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e: crate::store::StoreError| ApiError::internal(e))
}

pub(super) async fn json(State(state): State<ApiState>) -> Result<Json<StatusPage>, ApiError> {
    Ok(Json(load(&state).await?))
}

pub(super) async fn page(State(state): State<ApiState>) -> Result<Html<String>, ApiError> {
    Ok(Html(render_html(&load(&state).await?)))
}
