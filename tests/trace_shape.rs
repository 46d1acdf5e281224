//! The shape of the trace one reconcile leaves, exported over real OTLP by the operator's
//! code in this process and by the real echo-server binary: one trace from the watch event
//! through the reconcile into the echo service, the status write, the finalizer and the
//! Event. Each test reconciles an object of its own name (the trace links are shared by
//! the whole binary) and asserts one part of that shape.

mod support;

use echo_operator::crd::{Echo, FINALIZER};
use support::otlp::{KIND_CLIENT, KIND_CONSUMER, KIND_SERVER, STATUS_ERROR};
use support::{
    ECHO, EchoServer, OPERATOR, Operator, Trace, echo, eventually, exported, spec, status_trace_id,
};

/// One object reconciled against the real echo server, and its whole trace.
struct Reconciled {
    server: EchoServer,
    operator: Operator,
    object: Echo,
    trace_id: String,
    trace: Trace,
}

/// Applies `default/{name}` with the message "hello, traces" and waits for it to be Ready
/// and for its trace to hold the store write and the status write with all their parents.
async fn reconciled(name: &str) -> Reconciled {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let hello = echo("default", name, spec("hello, traces"));
    let object = operator.apply_until_ready(&hello, "True").await;
    let trace_id = status_trace_id(&object);
    let trace = eventually("the echo server's store write")
        .until(async || {
            exported(&trace_id).when(|t| {
                t.has(ECHO, "store write") && t.has_named("write status") && t.parents_arrived()
            })
        })
        .await;
    Reconciled {
        server,
        operator,
        object,
        trace_id,
        trace,
    }
}

impl Reconciled {
    async fn stop(self) {
        self.operator.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_carries_the_reply_the_trace_id_and_the_finalizer() {
    let run = reconciled("hello-status").await;
    let status = run.object.status.clone().expect("status");
    assert_eq!(status.reply.as_deref(), Some("echo: hello, traces"));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        run.object.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_owned()][..])
    );
    run.stop().await;
}

/// watch event -> kube-runtime's reconciling object -> reconcile
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_without_annotation_starts_the_trace_of_the_reconcile() {
    let run = reconciled("hello-watch").await;
    let trace = &run.trace;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.kind, KIND_CONSUMER);
    assert_eq!(
        watch.parent_span_id, None,
        "a watch event without annotation starts the trace"
    );
    assert_eq!(watch.attributes["k8s.object.name"], "hello-watch");
    assert_eq!(watch.attributes["k8s.namespace.name"], "default");
    assert_eq!(watch.ints.get("k8s.object.generation"), Some(&1));
    assert_eq!(watch.attributes["k8s.object.resource_version"], "1");
    assert_eq!(watch.attributes["k8s.watch.event_type"], "Apply");
    assert_eq!(watch.resource["service.name"], OPERATOR);
    let runtime = trace.one(OPERATOR, "reconciling object");
    trace.assert_parent(runtime, watch);
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    trace.assert_parent(reconcile, runtime);
    assert_eq!(reconcile.attributes["trace_id"], run.trace_id);
    run.stop().await;
}

/// reconcile -> HTTP client span, with the semantic conventions' attributes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_call_is_one_client_span_under_the_reconcile() {
    let run = reconciled("hello-client").await;
    let trace = &run.trace;
    let calls = trace.echo_calls();
    assert_eq!(calls.len(), 1, "one call to the echo service");
    let client = calls[0];
    assert_eq!(client.attributes["http.request.method"], "PUT");
    trace.assert_parent(client, trace.one(OPERATOR, "reconcile Echo"));
    assert_eq!(client.name, "PUT /v1/echoes/{namespace}/{name}");
    assert_eq!(
        client.attributes["url.template"],
        "/v1/echoes/{namespace}/{name}"
    );
    // Numeric semantic-convention attributes are OTLP integers, not strings.
    assert_eq!(client.ints.get("http.response.status_code"), Some(&200));
    assert_eq!(
        client.ints.get("server.port").copied(),
        Some(i64::from(run.server.addr.port()))
    );
    assert!(
        !client.attributes.contains_key("http.request.resend_count"),
        "a first attempt is not a resend"
    );
    assert_eq!(
        client.attributes["url.full"],
        format!("{}/v1/echoes/default/hello-client", run.server.url())
    );
    assert_eq!(client.attributes["server.address"], "127.0.0.1");
    run.stop().await;
}

/// HTTP client span -> echo server span -> echo internal span
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_server_continues_the_trace_under_the_echo_call() {
    let run = reconciled("hello-server").await;
    let trace = &run.trace;
    let server_span = trace.one(ECHO, "PUT /v1/echoes/{namespace}/{name}");
    assert_eq!(server_span.kind, KIND_SERVER);
    trace.assert_parent(server_span, trace.echo_calls()[0]);
    assert_eq!(server_span.attributes["http.request.method"], "PUT");
    assert_eq!(
        server_span.attributes["http.route"],
        "/v1/echoes/{namespace}/{name}"
    );
    assert_eq!(
        server_span.ints.get("http.response.status_code"),
        Some(&200)
    );
    assert_eq!(
        server_span.attributes["url.path"],
        "/v1/echoes/default/hello-server"
    );
    assert_eq!(server_span.resource["service.name"], ECHO);
    trace.assert_parent(trace.one(ECHO, "store write"), server_span);
    run.stop().await;
}

/// The status write belongs to the same trace, down to the API request it makes, and the
/// API server is handed that request span as its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_write_hands_its_api_request_span_to_the_api_server() {
    let run = reconciled("hello-write").await;
    let trace = &run.trace;
    let write = trace.one(OPERATOR, "write status");
    trace.assert_parent(write, trace.one(OPERATOR, "reconcile Echo"));
    let api_calls = trace.children_of(write);
    assert_eq!(api_calls.len(), 1, "one API request under write status");
    let api_call = api_calls[0];
    assert_eq!(api_call.kind, KIND_CLIENT);
    assert_eq!(api_call.attributes["http.request.method"], "PATCH");
    assert_eq!(
        api_call.name,
        "PATCH /apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}/status"
    );
    let url_full = &api_call.attributes["url.full"];
    let expected_prefix = format!(
        "{}/apis/tracing.example.com/v1alpha1/namespaces/default/echoes/hello-write/status?",
        support::fake_api::FAKE_CLUSTER_URL
    );
    assert!(
        url_full.starts_with(&expected_prefix),
        "url.full {url_full:?}"
    );
    assert_eq!(api_call.attributes["server.address"], "fake-apiserver.test");
    assert_eq!(api_call.ints.get("server.port"), Some(&6443));
    assert_eq!(api_call.ints.get("http.response.status_code"), Some(&200));
    let patches = run
        .operator
        .api
        .requests_to("PATCH", "/echoes/hello-write/status");
    let traceparent = patches.last().and_then(|r| r.traceparent.clone());
    assert_eq!(
        traceparent.expect("traceparent sent to the API server"),
        format!("00-{}-{}-01", run.trace_id, api_call.span_id)
    );
    run.stop().await;
}

/// The finalizer patch and the Event, each with its API request under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_patch_and_the_event_each_make_one_traced_api_request() {
    let run = reconciled("hello-steps").await;
    let trace = &run.trace;
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    for (step, method, path_end) in [
        ("add finalizer", "PATCH", "/echoes/{name}"),
        ("publish event", "POST", "/events"),
    ] {
        let span = trace.one(OPERATOR, step);
        trace.assert_parent(span, reconcile);
        let requests = trace.children_of(span);
        assert_eq!(requests.len(), 1, "one API request under {step}");
        assert_eq!(requests[0].kind, KIND_CLIENT, "{step}");
        assert_eq!(requests[0].attributes["http.request.method"], method);
        assert!(
            requests[0].name.ends_with(path_end),
            "{step}: {}",
            requests[0].name
        );
    }
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciled_event_names_the_trace() {
    let run = reconciled("hello-event").await;
    let events = run.operator.api.requests_to("POST", "/events");
    let note = events.iter().find_map(|r| {
        r.body["note"]
            .as_str()
            .filter(|n| n.contains(&run.trace_id))
    });
    assert!(
        note.is_some(),
        "an Event carrying the trace id: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|r| r.body["reason"] == "Reconciled" && r.body["type"] == "Normal")
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_retries_stay_inside_one_trace() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let done = operator
        .apply_until_ready(
            &echo("default", "flaky", spec("try again").fail_first(2)),
            "True",
        )
        .await;
    let trace_id = status_trace_id(&done);
    let trace = eventually("three echo server spans")
        .until(async || {
            exported(&trace_id)
                .when(|t| t.all(ECHO, |s| s.kind == KIND_SERVER).len() == 3 && t.parents_arrived())
        })
        .await;
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    let mut attempts = trace.echo_calls();
    let resends = |s: &&support::SpanRecord| s.ints.get("http.request.resend_count").copied();
    attempts.sort_by_key(|s| resends(s).unwrap_or(0));
    let codes: Vec<(Option<i64>, Option<i64>)> = attempts
        .iter()
        .map(|s| (resends(s), s.ints.get("http.response.status_code").copied()))
        .collect();
    assert_eq!(
        codes,
        [
            (None, Some(503)),
            (Some(1), Some(503)),
            (Some(2), Some(200))
        ],
        "two failed attempts, then the second resend succeeds"
    );
    for failed in &attempts[..2] {
        assert_eq!(failed.status_code, STATUS_ERROR);
        assert_eq!(failed.attributes["error.type"], "503");
    }
    for attempt in &attempts {
        assert!(attempt.attributes["url.full"].ends_with("/v1/echoes/default/flaky"));
        trace.assert_parent(attempt, reconcile);
        let served = trace.children_of(attempt);
        assert_eq!(
            served.len(),
            1,
            "each attempt reached the echo server in this trace"
        );
        assert_eq!(
            served[0].ints.get("http.response.status_code"),
            attempt.ints.get("http.response.status_code")
        );
    }
    operator.stop().await;
}
