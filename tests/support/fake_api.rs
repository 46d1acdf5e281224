//! A stand-in Kubernetes API server behind a real `kube::Client`, in the spirit of
//! kube-rs's tower-test pattern: the client stack is real (including the operator's API
//! tracing layer), the transport is a function that keeps objects in memory, applies the
//! patches the operator sends and records every request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echo_operator::crd::Echo;
use echo_operator::operator::api_tracing::ApiTracingLayer;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::{Body, ClientBuilder};
use kube::runtime::watcher;
use serde_json::{Value, json};

/// Where the fake pretends to live; only span attributes see it.
pub const FAKE_CLUSTER_URL: &str = "https://fake-apiserver.test:6443";

/// One request as the API server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub traceparent: Option<String>,
    pub body: Value,
}

/// Where the fake sends the watch events its changes cause, as a real API server would.
pub type WatchSender =
    futures::channel::mpsc::UnboundedSender<Result<watcher::Event<Echo>, watcher::Error>>;

#[derive(Default)]
struct State {
    /// Requests whose method and path suffix match are recorded and never answered.
    hang: Option<(String, String)>,
    objects: HashMap<(String, String), Value>,
    /// coordination.k8s.io Leases, by namespace and name.
    leases: HashMap<(String, String), Value>,
    requests: Vec<Recorded>,
    resource_version: u64,
    watch: Option<WatchSender>,
}

impl State {
    fn notify(&self, event: watcher::Event<Echo>) {
        if let Some(watch) = &self.watch {
            let _ = watch.unbounded_send(Ok(event));
        }
    }
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// Sends every later change to `watch` as a watch event.
    pub fn set_watch(&self, watch: WatchSender) {
        self.state.lock().expect("lock").watch = Some(watch);
    }

    /// Makes every later `method` request to a path ending in `suffix` hang forever, like
    /// an API server whose connection stays open without an answer.
    pub fn hang_on(&self, method: &str, suffix: &str) {
        self.state.lock().expect("lock").hang = Some((method.to_owned(), suffix.to_owned()));
    }

    /// Stores `echo` and announces it, like `kubectl apply`.
    pub fn apply(&self, echo: &Echo) {
        self.insert(echo);
        self.state
            .lock()
            .expect("lock")
            .notify(watcher::Event::Apply(echo.clone()));
    }

    /// Stores `echo` without a watch event.
    pub fn insert(&self, echo: &Echo) {
        let mut state = self.state.lock().expect("lock");
        let key = (
            echo.metadata.namespace.clone().unwrap_or_default(),
            echo.metadata.name.clone().unwrap_or_default(),
        );
        state
            .objects
            .insert(key, serde_json::to_value(echo).expect("echo to json"));
    }

    /// Every stored object, as a relist would return them.
    pub fn objects(&self) -> Vec<Echo> {
        let state = self.state.lock().expect("lock");
        state
            .objects
            .values()
            .map(|v| serde_json::from_value(v.clone()).expect("stored echo"))
            .collect()
    }

    pub fn object(&self, namespace: &str, name: &str) -> Option<Echo> {
        let state = self.state.lock().expect("lock");
        state
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|v| serde_json::from_value(v.clone()).expect("stored echo"))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// Requests whose path ends with `suffix` and whose method is `method`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }

    /// Polls until `done` holds, or panics with the requests seen so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&FakeApi) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                panic!("timed out waiting for {what}; API requests seen: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client whose stack matches the operator's request client: the tracing layer, the
    /// per-request timeout, then the transport.
    pub fn client(&self, timeout: Duration) -> kube::Client {
        self.partitionable_client(timeout, Arc::default())
    }

    /// Like `client`, but while `cut_off` is set none of its requests get an answer: this
    /// one client is partitioned from the API server, the others are not.
    pub fn partitionable_client(
        &self,
        timeout: Duration,
        cut_off: Arc<std::sync::atomic::AtomicBool>,
    ) -> kube::Client {
        let state = self.state.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let state = state.clone();
            let cut_off = cut_off.clone();
            async move {
                if cut_off.load(std::sync::atomic::Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(handle(&state, request).await)
            }
        });
        let layer = ApiTracingLayer::new(http::Uri::from_static(FAKE_CLUSTER_URL));
        ClientBuilder::new(service, "default")
            .with_layer(&tower::timeout::TimeoutLayer::new(timeout))
            .with_layer(&layer)
            .build()
    }
}

async fn handle(state: &Mutex<State>, request: Request<Body>) -> Response<Body> {
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
    if record(state, &parts, &path, &content_type, &body) {
        return std::future::pending().await;
    }
    respond(state, &parts, &path, &content_type, body)
}

/// Records the request; true when it is one the test wants left unanswered.
fn record(
    state: &Mutex<State>,
    parts: &http::request::Parts,
    path: &str,
    content_type: &str,
    body: &Value,
) -> bool {
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
        body: body.clone(),
    });
    state
        .hang
        .as_ref()
        .is_some_and(|(method, suffix)| parts.method == method.as_str() && path.ends_with(suffix))
}

fn respond(
    state: &Mutex<State>,
    parts: &http::request::Parts,
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
        ] => {
            let key = (ns.to_string(), name.to_string());
            state.resource_version += 1;
            let rv = state.resource_version.to_string();
            let Some(object) = state.objects.get_mut(&key) else {
                return status(StatusCode::NOT_FOUND, "NotFound", "echo not found");
            };
            match (parts.method.as_str(), rest, content_type) {
                ("GET", [], _) => {}
                ("PATCH", ["status"], "application/apply-patch+yaml") => {
                    object["status"] = body["status"].clone();
                }
                ("PATCH", [], "application/json-patch+json") => {
                    let patch: json_patch::Patch = match serde_json::from_value(body) {
                        Ok(patch) => patch,
                        Err(err) => {
                            return status(StatusCode::BAD_REQUEST, "BadRequest", &err.to_string());
                        }
                    };
                    // The API server treats an absent list as null for `test`.
                    if object["metadata"].get("finalizers").is_none() {
                        object["metadata"]["finalizers"] = Value::Null;
                    }
                    if let Err(err) = json_patch::patch(object, &patch) {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            &err.to_string(),
                        );
                    }
                }
                _ => {
                    return status(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "MethodNotAllowed",
                        "not supported by the fake",
                    );
                }
            }
            object["metadata"]["resourceVersion"] = json!(rv);
            let response = json_response(StatusCode::OK, object);
            let echo: Echo = match serde_json::from_value(object.clone()) {
                Ok(echo) => echo,
                Err(err) => {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        &err.to_string(),
                    );
                }
            };
            // An object marked for deletion goes away once its last finalizer does.
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
            response
        }
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
            state.resource_version += 1;
            let rv = state.resource_version.to_string();
            lease(&mut state.leases, parts.method.as_str(), ns, rest, body, rv)
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "no such path in the fake",
        ),
    }
}

/// Leases as the API server keeps them: create fails if the name exists, and an update
/// whose resourceVersion is not the stored one fails with a conflict.
fn lease(
    leases: &mut HashMap<(String, String), Value>,
    method: &str,
    namespace: &str,
    rest: &[&str],
    mut body: Value,
    rv: String,
) -> Response<Body> {
    match (method, rest) {
        ("GET", [name]) => match leases.get(&(namespace.to_owned(), name.to_string())) {
            Some(lease) => json_response(StatusCode::OK, lease),
            None => status(StatusCode::NOT_FOUND, "NotFound", "lease not found"),
        },
        ("POST", []) => {
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
        ("PUT", [name]) => {
            let key = (namespace.to_owned(), name.to_string());
            let Some(stored) = leases.get(&key) else {
                return status(StatusCode::NOT_FOUND, "NotFound", "lease not found");
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
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the fake",
        ),
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}
