//! The fake's transport: records each request, then routes it by path.

use std::sync::Mutex;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

use super::{Hold, Recorded, State, echoes, leases};

pub(super) async fn handle(state: &Mutex<State>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = parts.uri.path().to_owned();
    match record(state, &parts, &path, &content_type, &body) {
        Some(Hold::Forever) => return std::future::pending().await,
        Some(Hold::For(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    respond(state, parts.method.as_str(), &path, &content_type, body)
}

/// Records the request; how to hold it when it is one the test singled out.
fn record(
    state: &Mutex<State>,
    parts: &http::request::Parts,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Option<Hold> {
    let mut state = state.lock().expect("lock");
    state.requests.push(Recorded {
        method: parts.method.to_string(),
        path: path.to_owned(),
        content_type: content_type.to_owned(),
        traceparent: parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.clone(),
    });
    state
        .hold
        .as_ref()
        .filter(|(method, suffix, _)| parts.method == method.as_str() && path.ends_with(suffix))
        .map(|(_, _, hold)| *hold)
}

/// Routes by path to the resource the fake keeps: Echoes, Events (accepted, not kept) and
/// Leases.
fn respond(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> Response<Body> {
    let mut state = state.lock().expect("lock");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [
            "apis",
            "tracing.example.com",
            "v1alpha1",
            "namespaces",
            ns,
            "echoes",
            name,
            rest @ ..,
        ] => echoes::respond(&mut state, method, (*ns, *name), rest, content_type, body),
        ["apis", "events.k8s.io", "v1", "namespaces", _, "events", ..] => {
            json_response(StatusCode::CREATED, &body)
        }
        [
            "apis",
            "coordination.k8s.io",
            "v1",
            "namespaces",
            ns,
            "leases",
            rest @ ..,
        ] => {
            let name = rest.first().copied().or(body["metadata"]["name"].as_str());
            if name.is_some_and(|n| state.forbidden_leases.iter().any(|f| f == n)) {
                return status(StatusCode::FORBIDDEN, "Forbidden", "leases is forbidden");
            }
            let rv = state.next_resource_version();
            leases::respond(&mut state.leases, method, ns, rest, body, rv)
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no such path in the fake",
        ),
    }
}

pub(super) fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// A `Status` object, as the API server explains a failure.
pub(super) fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

/// The answer to a method the fake does not implement for a resource.
pub(super) fn not_supported() -> Response<Body> {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "not supported by the fake",
    )
}
