//! Span links where one trace cannot hold the story: a requeued reconcile starts a new
//! trace linked to the failed one, and watch events merged into one reconcile become links
//! of it.

mod support;

use std::time::Duration;

use kube::runtime::watcher;
use support::otlp::STATUS_ERROR;
use support::{
    EchoBuilder, EchoServer, OPERATOR, Operator, OperatorOptions, all_exported, echo, eventually,
    exported, spec, status_trace_id, unreachable_echo_url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_echo_service_reports_not_ready_and_retries_with_backoff() {
    let operator = Operator::start(OperatorOptions::new(unreachable_echo_url()).max_retries(1));
    let failed = operator
        .apply_until_ready(&echo("default", "lonely", spec("anyone there?")), "False")
        .await;
    let ready = failed.ready_condition().expect("Ready").clone();
    assert_eq!(ready.reason, "EchoUnreachable");
    assert!(ready.message.contains("unreachable"), "{}", ready.message);
    let first_trace = status_trace_id(&failed);

    // The error policy requeues: a second reconcile, with no watch event behind it, starts
    // a new trace that links to the first one.
    eventually("a second failed status write")
        .until(async || operator.api.received(2, "PATCH", "/echoes/lonely/status"))
        .await;
    let retried = operator.api.object("default", "lonely").expect("object");
    assert_eq!(
        retried.ready_condition().map(|c| c.reason.as_str()),
        Some("EchoUnreachable")
    );
    let second_trace = status_trace_id(&retried);
    assert_ne!(first_trace, second_trace, "a requeue starts a new trace");
    let first = eventually("the first reconcile")
        .until(async || exported(&first_trace).when(|t| t.has_named("reconcile Echo")))
        .await;
    let failed_reconcile = first.one(OPERATOR, "reconcile Echo");
    assert_eq!(
        failed_reconcile.status_code, STATUS_ERROR,
        "a failed reconcile is an error span"
    );
    assert_eq!(failed_reconcile.attributes["error.type"], "EchoUnreachable");
    let second = eventually("the requeued reconcile")
        .until(async || exported(&second_trace).when(|t| t.has_named("reconciling object")))
        .await;
    let root = second.one(OPERATOR, "reconciling object");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(
        root.attributes["object.reason"],
        "error policy requested retry"
    );
    let previous = (first_trace.clone(), failed_reconcile.span_id.clone());
    assert!(
        root.links.contains(&previous),
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
async fn coalesced_watch_events_become_links() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let first = echo("default", "busy", spec("one"));
    let second = echo("default", "busy", spec("two"))
        .at_generation(2)
        .at_resource_version("2");
    // Both arrive within the debounce window, so kube-runtime runs one reconcile.
    operator.api.insert(&second);
    operator.send(watcher::Event::Apply(first));
    operator.send(watcher::Event::Apply(second));

    let done = operator.wait_ready("default", "busy", "True").await;
    let trace_id = status_trace_id(&done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trace = eventually("the reconcile")
        .until(async || {
            exported(&trace_id).when(|t| t.has_named("reconciling object") && t.parents_arrived())
        })
        .await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(
        watch.attributes["k8s.object.generation"], "2",
        "the newest event is the parent"
    );
    let runtime = trace.one(OPERATOR, "reconciling object");
    trace.assert_parent(runtime, watch);
    let everything = all_exported();
    let earlier = everything.all(OPERATOR, |s| {
        s.name == "watch Echo Apply"
            && s.attributes["k8s.object.name"] == "busy"
            && s.attributes["k8s.object.generation"] == "1"
    });
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
