//! coordination.k8s.io Leases as the API server keeps them: create fails if the name
//! exists, and an update whose resourceVersion is not the stored one fails with a conflict.

use std::collections::HashMap;

use http::{Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use super::routes::{json_response, not_supported, status};

type Leases = HashMap<(String, String), Value>;

/// Answers a request to the Leases of `namespace`; `rv` is the resourceVersion a write
/// stores.
pub(super) fn respond(
    leases: &mut Leases,
    method: &str,
    namespace: &str,
    rest: &[&str],
    body: Value,
    rv: String,
) -> Response<Body> {
    match (method, rest) {
        ("GET", [name]) => match leases.get(&(namespace.to_owned(), name.to_string())) {
            Some(lease) => json_response(StatusCode::OK, lease),
            None => not_found(),
        },
        ("POST", []) => create(leases, namespace, body, rv),
        ("PUT", [name]) => update(leases, (namespace.to_owned(), name.to_string()), body, rv),
        _ => not_supported(),
    }
}

fn create(leases: &mut Leases, namespace: &str, mut body: Value, rv: String) -> Response<Body> {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = (namespace.to_owned(), name);
    if leases.contains_key(&key) {
        return status(StatusCode::CONFLICT, "AlreadyExists", "lease exists");
    }
    body["metadata"]["resourceVersion"] = json!(rv);
    leases.insert(key, body.clone());
    json_response(StatusCode::CREATED, &body)
}

fn update(
    leases: &mut Leases,
    key: (String, String),
    mut body: Value,
    rv: String,
) -> Response<Body> {
    let Some(stored) = leases.get(&key) else {
        return not_found();
    };
    if stored["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"] {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified",
        );
    }
    body["metadata"]["resourceVersion"] = json!(rv);
    leases.insert(key, body.clone());
    json_response(StatusCode::OK, &body)
}

fn not_found() -> Response<Body> {
    status(StatusCode::NOT_FOUND, "NotFound", "lease not found")
}
