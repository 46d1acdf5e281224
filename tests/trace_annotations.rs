//! The traceparent annotation: whoever applies an Echo may name the trace its reconcile
//! continues; a value that is not a traceparent is ignored, and quoted harmlessly.

mod support;

use echo_operator::crd::TRACEPARENT_ANNOTATION;
use support::{
    ECHO, EchoBuilder, EchoServer, OPERATOR, Operator, echo, eventually, exported, spec,
    status_trace_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_annotation_continues_the_appliers_trace() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let chosen_trace = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed";
    let chosen_span = "0a0b0c0d0e0f1011";
    let traceparent = format!("00-{chosen_trace}-{chosen_span}-01");
    let annotated = echo("default", "annotated", spec("from my trace"))
        .annotated(TRACEPARENT_ANNOTATION, traceparent);
    let done = operator.apply_until_ready(&annotated, "True").await;
    assert_eq!(status_trace_id(&done), chosen_trace);
    // Its parent is the applier's span, never sent here: wait for the watch span by name.
    let trace = eventually("the echo server span")
        .until(async || {
            exported(chosen_trace)
                .when(|t| t.0.iter().any(|s| s.service == ECHO) && t.has_named("watch Echo Apply"))
        })
        .await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.parent_span_id.as_deref(), Some(chosen_span));
    assert_eq!(watch.attributes["trace.continued_from_annotation"], "true");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traceparent_annotation_is_ignored() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    // Multi-line and 256 KiB: logged whole, it would forge log lines and flood the log.
    let hostile = format!(
        "00-not-a-trace-01\n2026-01-01T00:00:00Z  INFO forged: all good\n{}",
        "x".repeat(256 * 1024)
    );
    let annotated = echo("default", "badly-annotated", spec("no trace for you"))
        .annotated(TRACEPARENT_ANNOTATION, hostile);
    let done = operator.apply_until_ready(&annotated, "True").await;
    let trace_id = status_trace_id(&done);
    let trace = eventually("the watch event")
        .until(async || exported(&trace_id).when(|t| t.has_named("watch Echo Apply")))
        .await;
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
