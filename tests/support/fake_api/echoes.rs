//! Echo objects as the API server keeps them: GET, the status apply patch, JSON patches of
//! the object (the finalizer), and the watch events each change causes.

use echo_operator::crd::Echo;
use http::{Response, StatusCode};
use kube::client::Body;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::State;
use super::routes::{json_response, not_supported, status};

/// The API server's answer to a change it refuses.
type Refused = Box<Response<Body>>;

/// Answers a request to the Echo `name` in `ns`; `rest` is the subresource path, if any.
pub(super) fn respond(
    state: &mut State,
    method: &str,
    (ns, name): (&str, &str),
    rest: &[&str],
    content_type: &str,
    body: Value,
) -> Response<Body> {
    let key = (ns.to_owned(), name.to_owned());
    let rv = state.next_resource_version();
    let Some(object) = state.objects.get_mut(&key) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "echo not found");
    };
    if let Err(refused) = change(object, method, rest, content_type, body) {
        return *refused;
    }
    object["metadata"]["resourceVersion"] = json!(rv);
    let response = json_response(StatusCode::OK, object);
    let echo: Echo = match serde_json::from_value(object.clone()) {
        Ok(echo) => echo,
        Err(err) => return invalid(&err.to_string()),
    };
    announce(state, key, echo);
    response
}

/// Makes the change the request asks of `object`; `Err` is the API server's refusal.
fn change(
    object: &mut Value,
    method: &str,
    rest: &[&str],
    content_type: &str,
    body: Value,
) -> Result<(), Refused> {
    match (method, rest, content_type) {
        ("GET", [], _) => Ok(()),
        ("PATCH", ["status"], "application/apply-patch+yaml") => {
            object["status"] = body["status"].clone();
            Ok(())
        }
        ("PATCH", [], "application/json-patch+json") => json_patch(object, body),
        _ => Err(Box::new(not_supported())),
    }
}

fn json_patch(object: &mut Value, body: Value) -> Result<(), Refused> {
    let patch: json_patch::Patch = serde_json::from_value(body)
        .map_err(|err| status(StatusCode::BAD_REQUEST, "BadRequest", &err.to_string()))
        .map_err(Box::new)?;
    // The API server treats an absent list as null for `test`.
    if object["metadata"].get("finalizers").is_none() {
        object["metadata"]["finalizers"] = Value::Null;
    }
    json_patch::patch(object, &patch).map_err(|err| Box::new(invalid(&err.to_string())))
}

/// Sends the watch event of a change. An object marked for deletion goes away once its
/// last finalizer does.
fn announce(state: &mut State, key: (String, String), echo: Echo) {
    let finalized = echo.metadata.deletion_timestamp.is_some()
        && echo
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(|f| f.is_empty());
    if finalized {
        state.objects.remove(&key);
        state.notify(watcher::Event::Delete(echo));
    } else {
        state.notify(watcher::Event::Apply(echo));
    }
}

fn invalid(message: &str) -> Response<Body> {
    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
}
