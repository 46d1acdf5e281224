//! `OTEL_TRACES_SAMPLER=parentbased_linked_traceidratio` at ratio 0: no trace is started on
//! its own, so everything exported here is there because a traced change asked for it. A
//! sampled failing change keeps every retry (each a new root linked to the reconcile before
//! it); an unsampled one leaves nothing; a KEP-5915 link samples the watch event it starts;
//! the resyncs of a traced object are not traced forever after.

mod support;

use std::time::Duration;

use echo_operator::crd::{K8S_TRACEPARENT_ANNOTATION, TRACEPARENT_ANNOTATION};
use echo_operator::operator::process::metrics::Gauges;
use echo_operator::telemetry::SamplerChoice;
use support::otlp::KIND_SERVER;
use support::telemetry::use_sampler;
use support::{
    ECHO, EchoBuilder, EchoServer, OPERATOR, Operator, OperatorOptions, SpanRecord, all_exported,
    echo, eventually, exported, spec, status_trace_id,
};

fn ratio_zero() {
    use_sampler(SamplerChoice::LinkedTraceIdRatio(0.0));
}

/// An operator whose echo calls are never resent: `failFirst: n` fails n reconciles.
fn operator_without_resends(server: &EchoServer) -> Operator {
    Operator::start(OperatorOptions::new(server.url()).max_retries(0))
}

/// Every exported span about the object `name`, the echo server's included.
fn spans_about(name: &str) -> Vec<SpanRecord> {
    let path = format!("/default/{name}");
    all_exported()
        .0
        .into_iter()
        .filter(|s| {
            s.attr("k8s.object.name") == Some(name)
                || s.attr("url.path").is_some_and(|p| p.ends_with(&path))
                || s.attr("url.full").is_some_and(|u| u.ends_with(&path))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_failing_change_keeps_every_retry() {
    ratio_zero();
    let server = EchoServer::start();
    let operator = operator_without_resends(&server);
    let chosen = "5a3b1ed05a3b1ed05a3b1ed05a3b1ed0";
    let flaky = echo("default", "kept", spec("m").fail_first(2)).annotated(
        TRACEPARENT_ANNOTATION,
        format!("00-{chosen}-0a0b0c0d0e0f1011-01"),
    );
    let done = operator.apply_until_ready(&flaky, "True").await;
    let last_trace = status_trace_id(&done);
    let reconciles: Vec<SpanRecord> = eventually("three reconciles, each with its server span")
        .until(async || {
            let spans = spans_about("kept");
            let reconciles: Vec<SpanRecord> = spans
                .iter()
                .filter(|s| s.name == "reconcile Echo")
                .cloned()
                .collect();
            let served = spans.iter().filter(|s| s.kind == KIND_SERVER).count();
            (reconciles.len() == 3 && served == 3).then_some(reconciles)
        })
        .await;
    let said =
        |key: &str| -> Vec<Option<&str>> { reconciles.iter().map(|r| r.attr(key)).collect() };
    let trigger = said("echo_operator.reconcile.trigger");
    assert_eq!(
        trigger,
        [
            Some("watch_event"),
            Some("error_retry"),
            Some("error_retry")
        ]
    );
    let result = said("echo_operator.reconcile.result");
    assert_eq!(result, [Some("error"), Some("error"), Some("success")]);
    assert_eq!(reconciles[0].trace_id, chosen);
    assert_eq!(reconciles[2].trace_id, last_trace);
    for pair in reconciles.windows(2) {
        let (previous, retry) = (&pair[0], &pair[1]);
        assert_ne!(retry.trace_id, previous.trace_id, "a retry is a new trace");
        let trace = eventually("the retry's root")
            .until(async || exported(&retry.trace_id).when(|t| t.has_named("reconciling object")))
            .await;
        let root = trace.one(OPERATOR, "reconciling object");
        assert_eq!(root.parent_span_id, None);
        let link = root.link_to(&previous.trace_id, &previous.span_id);
        assert_eq!(
            link.and_then(|a| a.get("echo_operator.link.source"))
                .map(String::as_str),
            Some("previous_reconcile"),
            "{:?}",
            root.links
        );
        assert!(
            trace.has(ECHO, "PUT /v1/echoes/{namespace}/{name}"),
            "the echo server's span too"
        );
    }
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_failing_change_leaves_nothing() {
    ratio_zero();
    let server = EchoServer::start();
    let operator = operator_without_resends(&server);
    let chosen = "d20bbed0d20bbed0d20bbed0d20bbed0";
    let flaky = echo("default", "dropped", spec("m").fail_first(2)).annotated(
        TRACEPARENT_ANNOTATION,
        format!("00-{chosen}-0a0b0c0d0e0f1011-00"),
    );
    operator.apply_until_ready(&flaky, "True").await;
    assert_eq!(
        operator
            .api
            .requests_to("PATCH", "/echoes/dropped/status")
            .len(),
        3,
        "two failures and the success, each a reconcile"
    );
    // The echo server exports every 100 ms; give a stray span time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        exported(chosen).0.is_empty(),
        "nothing in the unsampled trace"
    );
    let stray = spans_about("dropped");
    assert!(stray.is_empty(), "no retry traced on its own: {stray:#?}");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_kep_link_samples_the_new_root_and_nothing_else_is() {
    ratio_zero();
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let (kep_trace, kep_span) = ("11aa11aa11aa11aa11aa11aa11aa11aa", "1112131415161718");
    let linked = echo("default", "kep-sampled", spec("m")).annotated(
        K8S_TRACEPARENT_ANNOTATION,
        format!("00-{kep_trace}-{kep_span}-01"),
    );
    let done = operator.apply_until_ready(&linked, "True").await;
    let plain = echo("default", "not-sampled", spec("m"));
    operator.apply_until_ready(&plain, "True").await;
    let trace_id = status_trace_id(&done);
    let trace = eventually("the linked root's trace")
        .until(async || {
            exported(&trace_id).when(|t| {
                t.has_named("watch Echo Apply") && t.has(ECHO, "store write") && t.parents_arrived()
            })
        })
        .await;
    let watch = trace.one(OPERATOR, "watch Echo Apply");
    assert_eq!(watch.parent_span_id, None);
    assert!(
        watch.link_to(kep_trace, kep_span).is_some(),
        "{:?}",
        watch.links
    );
    assert!(trace.has_named("reconcile Echo"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stray = spans_about("not-sampled");
    assert!(
        stray.is_empty(),
        "ratio 0 samples no root on its own: {stray:#?}"
    );
    operator.stop().await;
}

/// Successful reconciles the operator counted.
fn successes(operator: &Operator) -> u64 {
    let gauges = Gauges {
        pending_trace_links: 0,
        trace_link_objects: 0,
        backoff_objects: 0,
        running: 0,
        leading: true,
    };
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &operator.ctx.metrics.snapshot(&gauges))
        .expect("OpenMetrics text");
    text.lines()
        .filter(|l| l.starts_with("echo_operator_reconciles_total{") && l.contains("success"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resyncs_of_a_traced_change_are_sampled_on_their_own() {
    ratio_zero();
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.settings.resync = Duration::from_millis(200);
    let operator = Operator::start(options);
    let traced = echo("default", "traced-once", spec("m")).annotated(
        TRACEPARENT_ANNOTATION,
        "00-7ace07ace07ace07ace07ace07ace07a-0a0b0c0d0e0f1011-01",
    );
    operator.apply_until_ready(&traced, "True").await;
    eventually("three resyncs after the create")
        .until(async || successes(&operator) >= 4)
        .await;
    let reconciles: Vec<SpanRecord> = spans_about("traced-once")
        .into_iter()
        .filter(|s| s.name == "reconcile Echo")
        .collect();
    assert_eq!(
        reconciles.len(),
        1,
        "only the traced change: {reconciles:#?}"
    );
    assert_eq!(
        reconciles[0].attr("echo_operator.reconcile.trigger"),
        Some("watch_event")
    );
    operator.stop().await;
}
