//! Every error the echo service answers with: a status code and a JSON body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    UnreadableBody(String),
    #[error("echo {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("injected failure: write {attempt} of the first {fail_first} is rejected")]
    InjectedFailure { attempt: u32, fail_first: u32 },
    #[error("{0}; delete some first")]
    StoreFull(super::store::Exceeded),
}

/// The JSON every error response carries.
#[derive(Serialize)]
pub struct ErrorBody {
    /// Stable, machine-readable kind of error.
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidBody(_) | Self::InvalidPath(_) | Self::UnreadableBody(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound { .. } | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InjectedFailure { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::StoreFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidPath(_) => "invalid_path",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::NotFound { .. } => "not_found",
            Self::NoRoute(_) => "no_route",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InjectedFailure { .. } => "injected_failure",
            Self::StoreFull(_) => "store_full",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind(),
            message: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}
