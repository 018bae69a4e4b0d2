//! `POST /-/reload` (admin): re-read the configuration and every rule file, as Prometheus
//! does. The app carries the reload out (it owns the probes and webhook workers); this
//! route asks it through a channel and answers what changed, or 400 with every problem
//! (`FILE:LINE:COL: message`) when anything is invalid — then nothing changed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::auth::{Caller, Need};
use super::{ApiError, ApiState};
use crate::config::ConfigErrors;

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    /// Changed keys that take effect only after a restart (`listen`, `storage`); their
    /// new values are ignored until then.
    pub restart_required: Vec<String>,
    pub rules_added: Vec<String>,
    pub rules_changed: Vec<String>,
    pub rules_removed: Vec<String>,
    pub probes_started: Vec<String>,
    pub probes_restarted: Vec<String>,
    pub probes_stopped: Vec<String>,
    pub probes_unchanged: usize,
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The new configuration is invalid: every problem.
    Invalid(ConfigErrors),
    /// incidentd is stopping, or the engine failed to take the change.
    Unavailable(String),
}

/// One reload asked for; the answer comes back on the sender.
pub type ReloadRequest = oneshot::Sender<Result<ReloadReport, ReloadError>>;

/// Where reloads are asked for.
pub type Reloads = mpsc::Sender<ReloadRequest>;

/// `POST /-/reload`: the configuration and rules read again; all of it or nothing.
#[utoipa::path(post, path = "/-/reload", tag = "lifecycle",
    responses(
        (status = 200, description = "What changed", body = ReloadReport),
        (status = 400, description = "The configuration is invalid (`invalid_config`): every problem; nothing changed",
            body = super::error::ErrorBody),
        (status = 503, description = "Shutting down, or the engine did not take the change", body = super::error::ErrorBody),
    ))]
pub(super) async fn reload(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<ReloadReport>, ApiError> {
    caller.require(Need::Admin)?;
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "incidentd is shutting down",
        )
    };
    state.reloads.send(reply).await.map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(report) => Ok(Json(report)),
        Err(ReloadError::Invalid(errors)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            errors.to_string(),
        )),
        Err(ReloadError::Unavailable(message)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            message,
        )),
    }
}
