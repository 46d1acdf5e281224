//! What the operator tells its platform: /readyz only once the initial list is in, and
//! /metrics whose histograms point at the trace of a reconcile.

mod support;

use std::time::Duration;

use kube::runtime::watcher;
use support::metrics::{assert_exemplar, scrape};
use support::{EchoServer, Operator, OperatorOptions, echo, eventually, spec, status_trace_id};

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
    eventually("/readyz ready after the watch's InitDone")
        .within(Duration::from_secs(10))
        .every(Duration::from_millis(20))
        .until(async || operator.readiness.is_ready())
        .await;
    operator.stop().await;
}

/// The bridge from a metric to a trace: the reconcile and echo-call histograms carry the
/// trace id of the reconcile as an exemplar, in the OpenMetrics format Prometheus scrapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_reconciles_trace_as_an_exemplar() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let done = operator
        .apply_until_ready(&echo("default", "measured", spec("count me")), "True")
        .await;
    let trace_id = status_trace_id(&done);

    let router = operator.ctx.health_router(operator.readiness.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let text = scrape(&format!("http://{addr}/metrics")).await;
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for (bucket, labels) in [
        (
            "echo_operator_reconcile_duration_seconds_bucket{",
            "result=\"success\",reason=\"Reconciled\"}",
        ),
        (
            "echo_operator_echo_request_duration_seconds_bucket{",
            "method=\"PUT\",status=\"200\"}",
        ),
    ] {
        assert_exemplar(&text, bucket, labels, &trace_id);
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
