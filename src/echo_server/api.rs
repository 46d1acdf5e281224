//! The REST API: `PUT`, `GET` and `DELETE` on `/v1/echoes/{namespace}/{name}`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::store::{EchoKey, Store, WriteOutcome};
use crate::echo_api::{EchoRequest, MAX_REQUEST_BYTES};

/// Reads and checks a `PUT` body against the contract's limits.
fn parse_request(body: &[u8]) -> Result<EchoRequest, ApiError> {
    let request: EchoRequest =
        serde_json::from_slice(body).map_err(|err| ApiError::InvalidBody(err.to_string()))?;
    request.validate().map_err(ApiError::InvalidBody)?;
    Ok(request)
}

/// Namespace and name as Kubernetes allows them (DNS-1123 labels and subdomains).
fn echo_key(path: Result<Path<(String, String)>, PathRejection>) -> Result<EchoKey, ApiError> {
    let Path((namespace, name)) = path.map_err(|err| ApiError::InvalidPath(err.body_text()))?;
    for (what, value, max) in [("namespace", &namespace, 63), ("name", &name, 253)] {
        let valid = !value.is_empty()
            && value.len() <= max
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(ApiError::InvalidPath(format!(
                "{what} {value:?} is not a valid Kubernetes name"
            )));
        }
    }
    Ok(EchoKey { namespace, name })
}

pub async fn put_echo(
    State(store): State<Arc<Store>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = echo_key(path)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge {
            limit: MAX_REQUEST_BYTES,
        },
        _ => ApiError::UnreadableBody(rejection.body_text()),
    })?;
    let request = parse_request(&body)?;
    let delay_ms = request.delay_ms.unwrap_or(0);
    let trace_id = crate::telemetry::trace_id_of(&tracing::Span::current());
    // The write is decided before the delay: a rejected attempt answers at once instead of
    // holding one of the caller's workers for `delayMs` only to fail.
    match store.write(
        key,
        request.message,
        delay_ms,
        request.fail_first.unwrap_or(0),
        trace_id,
    ) {
        WriteOutcome::Stored(echo) => {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms.into())).await;
            }
            Ok(Json(echo).into_response())
        }
        WriteOutcome::Rejected {
            attempt,
            fail_first,
        } => Err(ApiError::InjectedFailure {
            attempt,
            fail_first,
        }),
        WriteOutcome::Full(exceeded) => Err(ApiError::StoreFull(exceeded)),
    }
}

pub async fn get_echo(
    State(store): State<Arc<Store>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = echo_key(path)?;
    match store.get(&key) {
        Some(echo) => Ok(Json(echo).into_response()),
        None => Err(ApiError::NotFound {
            namespace: key.namespace,
            name: key.name,
        }),
    }
}

/// Deleting an absent echo succeeds too: the caller's goal, "it is gone", holds.
pub async fn delete_echo(
    State(store): State<Arc<Store>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let key = echo_key(path)?;
    let existed = store.remove(&key);
    tracing::info!(existed, "echo deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
