//! The operator's reconcile path against a fake API server and the real echo-server binary,
//! both exporting over real OTLP to a receiver in this process. Assertions are on the
//! exported spans: one trace from the watch event into the echo service.

mod support;

use std::time::Duration;

use echo_operator::crd::{EchoSpec, FINALIZER, TRACEPARENT_ANNOTATION};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher;
use support::otlp::{KIND_CLIENT, KIND_CONSUMER, KIND_SERVER};
use support::{EchoServer, Operator, OperatorOptions, Trace, closed_port, echo, receiver, spec};

const OPERATOR: &str = "echo-operator";
const ECHO: &str = "echo-server";

fn status_trace_id(echo: &echo_operator::crd::Echo) -> String {
    let trace_id = echo
        .status
        .as_ref()
        .and_then(|s| s.trace_id.clone())
        .expect("status.traceId");
    assert_eq!(trace_id.len(), 32, "trace id {trace_id:?}");
    trace_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_watch_event_to_the_echo_service() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    operator.apply(&echo("default", "hello", spec("hello, traces")));

    let done = operator.wait_ready("default", "hello", "True").await;
    let trace_id = status_trace_id(&done);
    let status = done.status.clone().expect("status");
    assert_eq!(status.reply.as_deref(), Some("echo: hello, traces"));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        done.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_owned()][..])
    );

    let spans = receiver()
        .wait_for_trace(&trace_id, "the echo server's store write", |spans| {
            spans
                .iter()
                .any(|s| s.service == ECHO && s.name == "store write")
                && spans.iter().any(|s| s.name == "write status")
                && support::parents_arrived(spans)
        })
        .await;
    let trace = Trace(spans);

    // watch event -> kube-runtime's reconciling object -> reconcile
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.kind, KIND_CONSUMER);
    assert_eq!(
        watch.parent_span_id, None,
        "a watch event without annotation starts the trace"
    );
    assert_eq!(watch.attributes["k8s.object.name"], "hello");
    assert_eq!(watch.attributes["k8s.namespace.name"], "default");
    assert_eq!(watch.ints.get("k8s.object.generation"), Some(&1));
    assert_eq!(watch.attributes["k8s.object.resource_version"], "1");
    assert_eq!(watch.attributes["k8s.watch.event_type"], "Apply");
    let runtime = trace.one(OPERATOR, "reconciling object");
    trace.assert_parent(runtime, watch);
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    trace.assert_parent(reconcile, runtime);
    assert_eq!(reconcile.attributes["trace_id"], trace_id);

    // reconcile -> HTTP client span -> echo server span -> echo internal span
    let clients = trace.all(OPERATOR, |s| {
        s.kind == KIND_CLIENT
            && s.attributes.get("http.request.method").map(String::as_str) == Some("PUT")
            && s.attributes.contains_key("url.full")
            && !s.attributes["url.full"].contains("/apis/")
    });
    assert_eq!(clients.len(), 1, "one PUT to the echo service");
    let client = clients[0];
    trace.assert_parent(client, reconcile);
    assert_eq!(client.name, "PUT /v1/echoes/{namespace}/{name}");
    assert_eq!(
        client.attributes["url.template"],
        "/v1/echoes/{namespace}/{name}"
    );
    // Numeric semantic-convention attributes are OTLP integers, not strings.
    assert_eq!(client.ints.get("http.response.status_code"), Some(&200));
    assert_eq!(
        client.ints.get("server.port").copied(),
        Some(i64::from(server.addr.port()))
    );
    assert!(
        !client.attributes.contains_key("http.request.resend_count"),
        "a first attempt is not a resend"
    );
    assert_eq!(
        client.attributes["url.full"],
        format!("{}/v1/echoes/default/hello", server.url())
    );
    assert_eq!(client.attributes["server.address"], "127.0.0.1");
    let server_span = trace.one(ECHO, "PUT /v1/echoes/{namespace}/{name}");
    assert_eq!(server_span.kind, KIND_SERVER);
    trace.assert_parent(server_span, client);
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
        "/v1/echoes/default/hello"
    );
    let store = trace.one(ECHO, "store write");
    trace.assert_parent(store, server_span);

    // The status write belongs to the same trace, down to the API request it makes...
    let write = trace.one(OPERATOR, "write status");
    trace.assert_parent(write, reconcile);
    let api_calls = trace.children_of(write);
    assert_eq!(api_calls.len(), 1, "one API request under write status");
    assert_eq!(api_calls[0].kind, KIND_CLIENT);
    assert_eq!(api_calls[0].attributes["http.request.method"], "PATCH");
    assert_eq!(
        api_calls[0].name,
        "PATCH /apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}/status"
    );
    let url_full = &api_calls[0].attributes["url.full"];
    let expected_prefix = format!(
        "{}/apis/tracing.example.com/v1alpha1/namespaces/default/echoes/hello/status?",
        support::fake_api::FAKE_CLUSTER_URL
    );
    assert!(
        url_full.starts_with(&expected_prefix),
        "url.full {url_full:?}"
    );
    assert_eq!(
        api_calls[0].attributes["server.address"],
        "fake-apiserver.test"
    );
    assert_eq!(api_calls[0].ints.get("server.port"), Some(&6443));
    assert_eq!(
        api_calls[0].ints.get("http.response.status_code"),
        Some(&200)
    );
    // ...and the API server is handed that request span as its parent.
    let patches = operator.api.requests_to("PATCH", "/echoes/hello/status");
    let traceparent = patches
        .last()
        .and_then(|r| r.traceparent.clone())
        .expect("traceparent sent to the API server");
    assert_eq!(
        traceparent,
        format!("00-{trace_id}-{}-01", api_calls[0].span_id)
    );

    // The finalizer patch and the Event, each with its API request under it.
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

    // Resource attributes of both processes.
    assert_eq!(watch.resource["service.name"], OPERATOR);
    assert_eq!(server_span.resource["service.name"], ECHO);

    // The Event names the trace.
    let events = operator.api.requests_to("POST", "/events");
    let note = events
        .iter()
        .find_map(|r| r.body["note"].as_str().filter(|n| n.contains(&trace_id)));
    assert!(
        note.is_some(),
        "an Event carrying the trace id: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|r| r.body["reason"] == "Reconciled" && r.body["type"] == "Normal")
    );

    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_retries_stay_inside_one_trace() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    operator.apply(&echo(
        "default",
        "flaky",
        EchoSpec {
            message: "try again".into(),
            delay_ms: None,
            fail_first: Some(2),
        },
    ));

    let done = operator.wait_ready("default", "flaky", "True").await;
    let trace_id = status_trace_id(&done);
    let spans = receiver()
        .wait_for_trace(&trace_id, "three echo server spans", |spans| {
            spans
                .iter()
                .filter(|s| s.service == ECHO && s.kind == KIND_SERVER)
                .count()
                == 3
                && support::parents_arrived(spans)
        })
        .await;
    let trace = Trace(spans);
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    let mut attempts = trace.all(OPERATOR, |s| {
        s.kind == KIND_CLIENT
            && s.attributes
                .get("url.full")
                .is_some_and(|u| u.contains("/v1/echoes/default/flaky"))
    });
    attempts.sort_by_key(|s| {
        s.ints
            .get("http.request.resend_count")
            .copied()
            .unwrap_or(0)
    });
    let codes: Vec<(Option<i64>, Option<i64>)> = attempts
        .iter()
        .map(|s| {
            (
                s.ints.get("http.request.resend_count").copied(),
                s.ints.get("http.response.status_code").copied(),
            )
        })
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
        assert_eq!(failed.status_code, support::otlp::STATUS_ERROR);
        assert_eq!(failed.attributes["error.type"], "503");
    }
    for attempt in &attempts {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_echo_service_reports_not_ready_and_retries_with_backoff() {
    let mut options = OperatorOptions::new(format!("http://127.0.0.1:{}", closed_port()));
    options.retry.max_retries = 1;
    let operator = Operator::start(options);
    operator.apply(&echo("default", "lonely", spec("anyone there?")));

    let failed = operator.wait_ready("default", "lonely", "False").await;
    let ready = failed.ready_condition().expect("Ready").clone();
    assert_eq!(ready.reason, "EchoUnreachable");
    assert!(ready.message.contains("unreachable"), "{}", ready.message);
    let first_trace = status_trace_id(&failed);

    // The error policy requeues: a second reconcile, with no watch event behind it, starts
    // a new trace that links to the first one.
    operator
        .api
        .wait_until("a second failed status write", |api| {
            api.requests_to("PATCH", "/echoes/lonely/status").len() >= 2
        })
        .await;
    let retried = operator.api.object("default", "lonely").expect("object");
    assert_eq!(
        retried.ready_condition().map(|c| c.reason.as_str()),
        Some("EchoUnreachable")
    );
    let second_trace = status_trace_id(&retried);
    assert_ne!(first_trace, second_trace, "a requeue starts a new trace");
    let first = receiver()
        .wait_for_trace(&first_trace, "the first reconcile", |s| {
            s.iter().any(|s| s.name == "reconcile Echo")
        })
        .await;
    let first = Trace(first);
    let failed_reconcile = first.one(OPERATOR, "reconcile Echo");
    assert_eq!(
        failed_reconcile.status_code,
        support::otlp::STATUS_ERROR,
        "a failed reconcile is an error span"
    );
    assert_eq!(failed_reconcile.attributes["error.type"], "EchoUnreachable");
    let first_reconcile = failed_reconcile.span_id.clone();
    let second = receiver()
        .wait_for_trace(&second_trace, "the requeued reconcile", |s| {
            s.iter().any(|s| s.name == "reconciling object")
        })
        .await;
    let second = Trace(second);
    let root = second.one(OPERATOR, "reconciling object");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(
        root.attributes["object.reason"],
        "error policy requested retry"
    );
    assert!(
        root.links.contains(&(first_trace.clone(), first_reconcile)),
        "requeue links to the previous reconcile: {:?}",
        root.links
    );

    let warnings = operator.api.requests_to("POST", "/events");
    assert!(
        warnings
            .iter()
            .any(|r| r.body["type"] == "Warning" && r.body["reason"] == "EchoUnreachable")
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_calls_the_echo_service_and_removes_the_finalizer() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    let created = echo("default", "doomed", spec("short-lived"));
    operator.apply(&created);
    let ready = operator.wait_ready("default", "doomed", "True").await;

    let mut deleting = ready.clone();
    deleting.metadata.generation = Some(2);
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    operator.apply(&deleting);
    operator
        .api
        .wait_until(
            "the finalizer removal, after which the object is gone",
            |api| api.object("default", "doomed").is_none(),
        )
        .await;

    let gone = reqwest::get(format!("{}/v1/echoes/default/doomed", server.url()))
        .await
        .expect("GET");
    assert_eq!(gone.status(), 404, "the echo service forgot the object");

    let is_delete_client = |s: &support::SpanRecord| {
        s.service == OPERATOR
            && s.kind == KIND_CLIENT
            && s.attributes.get("http.request.method").map(String::as_str) == Some("DELETE")
            && s.attributes
                .get("url.full")
                .is_some_and(|u| u.ends_with("/v1/echoes/default/doomed"))
    };
    let mut delete_client = None;
    for _ in 0..100 {
        support::flush_operator_spans();
        delete_client = receiver().all_spans().into_iter().find(is_delete_client);
        if delete_client.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delete_client = delete_client.expect("a traced DELETE to the echo service");
    let trace = Trace(
        receiver()
            .wait_for_trace(
                &delete_client.trace_id,
                "the echo server's DELETE span",
                |s| {
                    s.iter().any(|s| {
                        s.service == ECHO && s.name == "DELETE /v1/echoes/{namespace}/{name}"
                    })
                },
            )
            .await,
    );
    let server_span = trace.one(ECHO, "DELETE /v1/echoes/{namespace}/{name}");
    trace.assert_parent(server_span, &delete_client);
    assert_eq!(
        server_span.ints.get("http.response.status_code"),
        Some(&204)
    );
    let reconcile = trace.one(OPERATOR, "reconcile Echo");
    trace.assert_parent(&delete_client, reconcile);
    assert_eq!(
        trace
            .one(OPERATOR, "reconciling object")
            .parent_span_id
            .as_deref(),
        Some(trace.one(OPERATOR, "watch Echo Apply").span_id.as_str())
    );
    assert!(
        trace.0.iter().any(|s| s.name == "remove finalizer"),
        "finalizer removal is in the trace"
    );
    let removal = operator.api.requests_to("PATCH", "/echoes/doomed");
    assert!(
        removal
            .iter()
            .any(|r| r.content_type == "application/json-patch+json"
                && r.body.to_string().contains("\"remove\"")),
        "a JSON patch removing the finalizer: {removal:#?}"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_annotation_continues_the_appliers_trace() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    let chosen_trace = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed";
    let chosen_span = "0a0b0c0d0e0f1011";
    let mut annotated = echo("default", "annotated", spec("from my trace"));
    annotated.metadata.annotations = Some(
        [(
            TRACEPARENT_ANNOTATION.to_owned(),
            format!("00-{chosen_trace}-{chosen_span}-01"),
        )]
        .into(),
    );
    operator.apply(&annotated);

    let done = operator.wait_ready("default", "annotated", "True").await;
    assert_eq!(status_trace_id(&done), chosen_trace);
    let trace = Trace(
        receiver()
            .wait_for_trace(chosen_trace, "the echo server span", |s| {
                // Its parent is the applier's span, never sent here: wait for the watch
                // span by name.
                s.iter().any(|s| s.service == ECHO)
                    && s.iter().any(|s| s.name == "watch Echo Apply")
            })
            .await,
    );
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.parent_span_id.as_deref(), Some(chosen_span));
    assert_eq!(watch.attributes["trace.continued_from_annotation"], "true");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traceparent_annotation_is_ignored() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    let mut annotated = echo("default", "badly-annotated", spec("no trace for you"));
    // Multi-line and 256 KiB: logged whole, it would forge log lines and flood the log.
    let hostile = format!(
        "00-not-a-trace-01\n2026-01-01T00:00:00Z  INFO forged: all good\n{}",
        "x".repeat(256 * 1024)
    );
    annotated.metadata.annotations = Some([(TRACEPARENT_ANNOTATION.to_owned(), hostile)].into());
    operator.apply(&annotated);

    let done = operator
        .wait_ready("default", "badly-annotated", "True")
        .await;
    let trace_id = status_trace_id(&done);
    let trace = Trace(
        receiver()
            .wait_for_trace(&trace_id, "the watch event", |s| {
                s.iter().any(|s| s.name == "watch Echo Apply")
            })
            .await,
    );
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(
        watch.parent_span_id, None,
        "an invalid annotation starts a fresh trace"
    );
    let warning = watch
        .events
        .iter()
        .find(|e| {
            e.name
                .contains("ignoring an invalid traceparent annotation")
        })
        .unwrap_or_else(|| panic!("the warning is on the span: {:?}", watch.events));
    let quoted = &warning.attributes["value"];
    assert!(
        quoted.starts_with("00-not-a-trace-01\\n"),
        "an escaped excerpt: {quoted:?}"
    );
    assert!(!quoted.contains('\n'), "one log line: {quoted:?}");
    assert!(quoted.len() < 200, "bounded: {} bytes", quoted.len());
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_watch_events_become_links() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    let first = echo("default", "busy", spec("one"));
    let mut second = echo("default", "busy", spec("two"));
    second.metadata.generation = Some(2);
    second.metadata.resource_version = Some("2".into());
    // Both arrive within the debounce window, so kube-runtime runs one reconcile.
    operator.api.insert(&second);
    operator.send(watcher::Event::Apply(first));
    operator.send(watcher::Event::Apply(second));

    let done = operator.wait_ready("default", "busy", "True").await;
    let trace_id = status_trace_id(&done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trace = Trace(
        receiver()
            .wait_for_trace(&trace_id, "the reconcile", |s| {
                s.iter().any(|s| s.name == "reconciling object") && support::parents_arrived(s)
            })
            .await,
    );
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(
        watch.attributes["k8s.object.generation"], "2",
        "the newest event is the parent"
    );
    let runtime = trace.one(OPERATOR, "reconciling object");
    trace.assert_parent(runtime, watch);
    let earlier: Vec<_> = receiver()
        .all_spans()
        .into_iter()
        .filter(|s| {
            s.name == "watch Echo Apply"
                && s.attributes["k8s.object.name"] == "busy"
                && s.attributes["k8s.object.generation"] == "1"
        })
        .collect();
    assert_eq!(earlier.len(), 1, "the first event has its own span");
    assert!(
        runtime
            .links
            .contains(&(earlier[0].trace_id.clone(), earlier[0].span_id.clone())),
        "the merged event is a link: {:?}",
        runtime.links
    );
    assert_eq!(
        operator
            .api
            .requests_to("PATCH", "/echoes/busy/status")
            .len(),
        1,
        "one reconcile for two events, and the status write does not trigger another"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_becomes_ready_once_the_initial_list_is_in() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.hold_init_done = true;
    let operator = Operator::start(options);
    let listed = echo("default", "listed", spec("m"));
    operator.api.insert(&listed);
    operator.send(watcher::Event::InitApply(listed));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !operator.readiness.is_ready(),
        "/readyz must not be ready before the initial list is complete"
    );
    operator.send(watcher::Event::InitDone);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !operator.readiness.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still not ready 10 s after the watch's InitDone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    operator.stop().await;
}

/// The bridge from a metric to a trace: the reconcile and echo-call histograms carry the
/// trace id of the reconcile as an exemplar, in the OpenMetrics format Prometheus scrapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_reconciles_trace_as_an_exemplar() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    operator.apply(&echo("default", "measured", spec("count me")));
    let done = operator.wait_ready("default", "measured", "True").await;
    let trace_id = status_trace_id(&done);

    let router =
        echo_operator::operator::health::router(operator.readiness.clone(), operator.ctx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(
        response.headers()["content-type"],
        echo_operator::metrics::CONTENT_TYPE
    );
    let text = response.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let exemplar = format!("# {{trace_id=\"{trace_id}\"}}");
    for (metric, labels) in [
        (
            "echo_operator_reconcile_duration_seconds_bucket{",
            "result=\"success\",reason=\"Reconciled\"}",
        ),
        (
            "echo_operator_echo_request_duration_seconds_bucket{",
            "method=\"PUT\",status=\"200\"}",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(metric) && l.contains(labels) && l.contains(&exemplar)),
            "a {metric}{labels} bucket with the exemplar {exemplar}:\n{text}"
        );
    }
    for line in [
        "echo_operator_reconciles_total{result=\"success\",reason=\"Reconciled\"} 1",
        "echo_operator_watch_events_total{type=\"Apply\"}",
        "echo_operator_pending_trace_links ",
        // The tests share one TraceLinks: other tests' objects count too.
        "echo_operator_tracked_objects{state=\"trace_links\"} ",
        "echo_operator_tracked_objects{state=\"backoff\"} 0",
        "echo_operator_reconciles_running 0",
        "echo_operator_otel_spans_exported_total ",
        "echo_operator_otel_spans_export_failed_total ",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    operator.stop().await;
}
