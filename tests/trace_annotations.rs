//! The traceparent annotations: whoever applies an Echo may name the trace its reconcile
//! continues (ours), or one it links to (KEP-5915's); a value that is not a traceparent is
//! ignored, and quoted harmlessly; an annotation on a generation already reconciled is history.

mod support;

use echo_operator::crd::{K8S_TRACEPARENT_ANNOTATION, TRACEPARENT_ANNOTATION};
use support::{
    ECHO, EchoBuilder, EchoServer, OPERATOR, Operator, SpanRecord, Trace, echo, eventually,
    exported, spec, status_trace_id,
};

const LINK_SOURCE: &str = "echo_operator.link.source";

/// Applies `echo` and returns the trace of its reconcile once the watch event and the
/// reconcile have arrived.
async fn reconciled_trace(operator: &Operator, echo: &echo_operator::crd::Echo) -> Trace {
    let done = operator.apply_until_ready(echo, "True").await;
    let trace_id = status_trace_id(&done);
    eventually("the watch event and the reconcile")
        .until(async || {
            exported(&trace_id)
                .when(|t| t.has_named("watch Echo Apply") && t.has_named("reconcile Echo"))
        })
        .await
}

/// The link of `span` to the context in KEP-5915's annotation, with its attributes.
fn kep_link(span: &SpanRecord, trace: &str, parent: &str) -> Option<String> {
    let attributes = span.link_to(trace, parent)?;
    attributes.get(LINK_SOURCE).cloned()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kep_annotation_makes_the_watch_event_a_new_root_linked_to_it() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let (kep_trace, kep_span) = ("6b6570356b6570356b6570356b657035", "1112131415161718");
    let annotated = echo("default", "kep-linked", spec("linked")).annotated(
        K8S_TRACEPARENT_ANNOTATION,
        format!("00-{kep_trace}-{kep_span}-01"),
    );
    let trace = reconciled_trace(&operator, &annotated).await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_ne!(watch.trace_id, kep_trace, "a new trace, not the applier's");
    assert_eq!(watch.parent_span_id, None, "a new root");
    assert_eq!(
        kep_link(watch, kep_trace, kep_span).as_deref(),
        Some(K8S_TRACEPARENT_ANNOTATION),
        "linked, naming the annotation: {:?}",
        watch.link_attributes
    );
    trace.assert_parent(trace.one(OPERATOR, "reconciling object"), watch);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_annotations_ours_is_the_parent_and_the_keps_is_linked() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let (ours_trace, ours_span) = ("0123456789abcdef0123456789abcdef", "0a0b0c0d0e0f1011");
    let (kep_trace, kep_span) = ("fedcba9876543210fedcba9876543210", "1112131415161718");
    let annotated = echo("default", "both-annotated", spec("both"))
        .annotated(
            TRACEPARENT_ANNOTATION,
            format!("00-{ours_trace}-{ours_span}-01"),
        )
        .annotated(
            K8S_TRACEPARENT_ANNOTATION,
            format!("00-{kep_trace}-{kep_span}-01"),
        );
    let trace = reconciled_trace(&operator, &annotated).await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.trace_id, ours_trace);
    assert_eq!(watch.parent_span_id.as_deref(), Some(ours_span));
    assert_eq!(
        kep_link(watch, kep_trace, kep_span).as_deref(),
        Some(K8S_TRACEPARENT_ANNOTATION),
        "{:?}",
        watch.links
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_kep_annotation_is_ignored_with_a_warning() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let (ours_trace, ours_span) = ("00112233445566778899aabbccddeeff", "0a0b0c0d0e0f1011");
    let annotated = echo("default", "kep-invalid", spec("half valid"))
        .annotated(
            TRACEPARENT_ANNOTATION,
            format!("00-{ours_trace}-{ours_span}-01"),
        )
        .annotated(K8S_TRACEPARENT_ANNOTATION, "00-short-01\nforged");
    let trace = reconciled_trace(&operator, &annotated).await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.parent_span_id.as_deref(), Some(ours_span));
    assert!(watch.links.is_empty(), "{:?}", watch.links);
    let warning = watch
        .events
        .iter()
        .find(|e| {
            e.name
                .contains("ignoring an invalid traceparent annotation")
        })
        .unwrap_or_else(|| panic!("the warning is on the span: {:?}", watch.events));
    assert_eq!(warning.attributes["annotation"], K8S_TRACEPARENT_ANNOTATION);
    assert!(!warning.attributes["value"].contains('\n'));
    operator.stop().await;
}

/// An operator that starts (or takes over) sees an object already reconciled at its
/// generation: the annotation still on it belongs to a change long done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_on_a_reconciled_generation_are_not_used() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let (old_trace, old_span) = ("01d01d01d01d01d01d01d01d01d01d01", "0a0b0c0d0e0f1011");
    let mut stale = echo("default", "stale", spec("done long ago"))
        .annotated(
            TRACEPARENT_ANNOTATION,
            format!("00-{old_trace}-{old_span}-01"),
        )
        .annotated(
            K8S_TRACEPARENT_ANNOTATION,
            format!("00-{old_trace}-{old_span}-01"),
        );
    stale.status = Some(echo_operator::crd::EchoStatus {
        observed_generation: Some(1),
        trace_id: Some(old_trace.into()),
        ..Default::default()
    });
    assert!(!stale.generation_pending());
    operator.apply(&stale);
    // The echo service lost it (a fresh process), so this reconcile stores it and says so.
    let written = eventually("the status write")
        .until(async || operator.api.received(1, "PATCH", "/echoes/stale/status"))
        .await;
    let trace_id = written[0].body["status"]["traceId"]
        .as_str()
        .expect("traceId")
        .to_owned();
    assert_ne!(trace_id, old_trace);
    let trace = eventually("the watch event")
        .until(async || exported(&trace_id).when(|t| t.has_named("watch Echo Apply")))
        .await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.parent_span_id, None, "not continued");
    assert!(watch.links.is_empty(), "not linked: {:?}", watch.links);
    assert!(
        !watch
            .attributes
            .contains_key("trace.continued_from_annotation")
    );
    operator.stop().await;
}
