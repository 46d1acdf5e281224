//! A stand-in Kubernetes API server behind a real `kube::Client`, in the spirit of
//! kube-rs's tower-test pattern: the client stack is real (including the operator's API
//! tracing layer), the transport is a function that keeps objects in memory, applies the
//! patches the operator sends and records every request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echo_operator::crd::Echo;
use echo_operator::operator::calls::api_tracing::ApiTracingLayer;
use echo_operator::operator::calls::bounded::BoundUnlessWatchLayer;
use http::Request;
use kube::client::{Body, ClientBuilder};
use kube::runtime::watcher;
use serde_json::Value;

mod echoes;
mod leases;
mod routes;

/// Where the fake pretends to live; only span attributes see it.
pub const FAKE_CLUSTER_URL: &str = "https://fake-apiserver.test:6443";

/// One request as the API server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub traceparent: Option<String>,
    /// Every header, names in lowercase, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    /// The value of the header `name` (lowercase), if the request had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where the fake sends the watch events its changes cause, as a real API server would.
pub type WatchSender =
    futures::channel::mpsc::UnboundedSender<Result<watcher::Event<Echo>, watcher::Error>>;

/// How a request the test singled out is held before the fake answers it.
#[derive(Clone, Copy, Debug)]
enum Hold {
    Forever,
    For(Duration),
}

#[derive(Default)]
struct State {
    /// Requests whose method and path suffix match are recorded, then held as it says.
    hold: Option<(String, String, Hold)>,
    objects: HashMap<(String, String), Value>,
    /// coordination.k8s.io Leases, by namespace and name.
    leases: HashMap<(String, String), Value>,
    /// Lease names RBAC would not allow: every request on them gets 403.
    forbidden_leases: Vec<String>,
    requests: Vec<Recorded>,
    resource_version: u64,
    watch: Option<WatchSender>,
}

impl State {
    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

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

    /// Answers 403 to every request on the lease `name`, as the API server does when the
    /// operator's Role does not name it.
    pub fn forbid_lease(&self, name: &str) {
        self.state
            .lock()
            .expect("lock")
            .forbidden_leases
            .push(name.to_owned());
    }

    /// Makes every later `method` request to a path ending in `suffix` hang forever, like
    /// an API server whose connection stays open without an answer.
    pub fn hang_on(&self, method: &str, suffix: &str) {
        self.hold_on(method, suffix, Hold::Forever);
    }

    /// Makes every later `method` request to a path ending in `suffix` wait `delay` before
    /// it is carried out and answered, like a slow API server.
    pub fn slow_on(&self, method: &str, suffix: &str, delay: Duration) {
        self.hold_on(method, suffix, Hold::For(delay));
    }

    fn hold_on(&self, method: &str, suffix: &str, hold: Hold) {
        self.state.lock().expect("lock").hold = Some((method.to_owned(), suffix.to_owned(), hold));
    }

    /// Who holds the Lease `namespace/name` now, if anyone.
    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        let state = self.state.lock().expect("lock");
        let lease = state.leases.get(&(namespace.to_owned(), name.to_owned()))?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
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

    /// The requests so far, one line each: what a failed wait shows.
    pub fn seen(&self) -> String {
        let seen: Vec<String> = self
            .requests()
            .iter()
            .map(|r| format!("  {} {}", r.method, r.path))
            .collect();
        format!("API requests:\n{}", seen.join("\n"))
    }

    /// For `eventually`: `Ok` once `done` holds, else the requests so far.
    pub fn when(&self, done: impl FnOnce(&FakeApi) -> bool) -> Result<(), String> {
        if done(self) { Ok(()) } else { Err(self.seen()) }
    }

    /// For `eventually`: `Ok` once the object is gone (its last finalizer removed).
    pub fn gone(&self, namespace: &str, name: &str) -> Result<(), String> {
        self.when(|api| api.object(namespace, name).is_none())
    }

    /// For `eventually`: the `method` requests to paths ending in `suffix`, once there are
    /// at least `count` of them.
    pub fn received(
        &self,
        count: usize,
        method: &str,
        suffix: &str,
    ) -> Result<Vec<Recorded>, String> {
        let requests = self.requests_to(method, suffix);
        if requests.len() >= count {
            Ok(requests)
        } else {
            Err(self.seen())
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
        let layer = ApiTracingLayer::new(http::Uri::from_static(FAKE_CLUSTER_URL));
        ClientBuilder::new(service(self.state.clone(), cut_off), "default")
            .with_layer(&tower::timeout::TimeoutLayer::new(timeout))
            .with_layer(&layer)
            .build()
    }

    /// A client wired as the operator's watch client: no bound on watches, `list_timeout`
    /// on every other request.
    pub fn watch_client(&self, list_timeout: Duration) -> kube::Client {
        let layer = ApiTracingLayer::new(http::Uri::from_static(FAKE_CLUSTER_URL));
        ClientBuilder::new(service(self.state.clone(), Arc::default()), "default")
            .with_layer(&BoundUnlessWatchLayer::new(list_timeout))
            .with_layer(&layer)
            .build()
    }
}

/// The fake as a tower service; it answers nothing while `cut_off` is set.
fn service(
    state: Arc<Mutex<State>>,
    cut_off: Arc<std::sync::atomic::AtomicBool>,
) -> impl tower::Service<
    Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Send + use<>,
> + Clone
+ Send
+ use<> {
    tower::service_fn(move |request: Request<Body>| {
        let state = state.clone();
        let cut_off = cut_off.clone();
        async move {
            if cut_off.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(routes::handle(&state, request).await)
        }
    })
}
