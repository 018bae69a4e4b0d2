//! What a command's caller gets back: its typed answer, sent once the batch holding its
//! effects is durable, or why there is none.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::domain::incident::{IncidentId, TransitionError};
use crate::domain::maintenance::MaintenanceState;
use crate::store::StoreError;

/// Where an answer goes once the batch is durable.
pub(super) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("incident {0} not found")]
    NotFound(IncidentId),
    #[error("silence {0} not found")]
    SilenceNotFound(u64),
    #[error("maintenance MNT-{0} not found")]
    MaintenanceNotFound(u64),
    #[error("maintenance MNT-{id} is {state} already")]
    MaintenanceOver { id: u64, state: MaintenanceState },
    /// A reporter link that is not (or no longer) valid.
    #[error("this link is not valid (it may have been revoked)")]
    UnknownLink,
    #[error("incident {id} is restricted; token `{actor}` may not act on it")]
    Restricted { id: IncidentId, actor: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the change could not be stored: {0}")]
    Store(Arc<StoreError>),
    #[error("incidentd is shutting down")]
    Stopped,
}
