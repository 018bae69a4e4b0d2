//! The one error type of the HTTP API: `{"error": {"code": "...", "message": "..."}}` with
//! the matching status.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::incident::TransitionError;
use crate::engine::EngineError;

/// Every error the API answers, whatever the route: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code` to branch on and a sentence for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, … (one per status).
    #[schema(value_type = String, example = "not_found")]
    pub code: &'static str,
    #[schema(example = "incident INC-7 not found")]
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::NotFound(_)
            | EngineError::UnknownLink
            | EngineError::SilenceNotFound(_)
            | EngineError::MaintenanceNotFound(_) => ApiError::not_found(error.to_string()),
            EngineError::MaintenanceOver { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            EngineError::Invalid(_) => ApiError::bad_request(error.to_string()),
            EngineError::Restricted { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
            }
            EngineError::Transition(TransitionError::NotPermitted(message)) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message.clone())
            }
            EngineError::Transition(TransitionError::Invalid(message)) => {
                ApiError::bad_request(message.clone())
            }
            EngineError::Transition(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            EngineError::Store(_) => {
                tracing::error!(%error, "command failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the change could not be stored; nothing was changed; retry later",
                )
            }
            EngineError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::from_status(rejection.status(), rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::from_status(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::from_status(rejection.status(), rejection.body_text())
    }
}

impl ApiError {
    /// An extractor's refusal with its status and the code that goes with it. A body or
    /// parameter that is malformed or does not fit is 400 `bad_request`, however it is
    /// wrong: axum's 422 for well-formed JSON of the wrong shape is 400 too, so a client
    /// branches on one status for "fix the request".
    pub fn from_status(status: StatusCode, message: String) -> ApiError {
        let status = match status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::new(status, code_for(status), message)
    }
}

/// The code of each status the API answers with; `ApiError`s built from a status use it,
/// so the two never disagree. (`/-/reload` answers a more precise `invalid_config` 400.)
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_are_bad_requests() {
        let error = ApiError::from_status(StatusCode::UNPROCESSABLE_ENTITY, "missing".into());
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        let error = ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE, "big".into());
        assert_eq!(error.code, "payload_too_large");
    }
}
