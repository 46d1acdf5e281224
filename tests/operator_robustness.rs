//! What the operator does when things around it misbehave: an API server that stops
//! answering, a shutdown during a long reconcile, a reconcile past its timeout, oversized
//! answers, and TLS to the echo service.

mod support;

use std::time::{Duration, Instant};

use echo_operator::operator::process::leader::Fence;
use echo_operator::operator::reconcile::error::Error;
use support::{
    EchoServer, FakeApi, Operator, OperatorOptions, all_exported, echo, eventually, exported, otlp,
    spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_api_request_fails_the_reconcile_in_bounded_time_and_others_proceed() {
    let server = EchoServer::start();
    let api = FakeApi::default();
    api.hang_on("PATCH", "/echoes/stuck/status");
    let mut options = OperatorOptions::new(server.url());
    options.settings.api_timeout = Duration::from_millis(500);
    options.settings.reconcile_timeout = Duration::from_secs(3);
    let operator = Operator::start_on(api, options);
    operator.apply(&echo("default", "stuck", spec("never written")));
    operator.apply(&echo("default", "fine", spec("written")));

    operator.wait_ready("default", "fine", "True").await;
    let warning = eventually("a Warning Event for the stuck status write")
        .until(async || {
            let events = operator.api.requests_to("POST", "/events");
            let warning = events
                .into_iter()
                .find(|r| r.body["type"] == "Warning" && r.body["regarding"]["name"] == "stuck");
            warning.ok_or_else(|| operator.api.seen())
        })
        .await;
    assert_eq!(
        warning.body["reason"], "KubernetesApiError",
        "{:#?}",
        warning.body
    );
    // The failed reconcile gave its slot back and is retried with backoff.
    eventually("a retry of the stuck object")
        .until(async || operator.api.received(3, "PATCH", "/echoes/stuck/status"))
        .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_long_reconcile_after_the_grace_period_and_its_spans_arrive() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.shutdown_grace = Duration::from_millis(500);
    let operator = Operator::start(options);
    operator.apply(&echo(
        "default",
        "slow",
        spec("take your time").delay_ms(10_000),
    ));
    // The echo service stores the write before it waits out the delay.
    eventually("the PUT")
        .until(async || server.stores("default", "slow").await)
        .await;

    let took = operator
        .stop_within(Duration::from_secs(8))
        .await
        .expect("the controller returned despite a reconcile waiting 10 s");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?} with a 0.5 s grace period"
    );
    let reconcile = eventually("the abandoned reconcile's span")
        .every(Duration::from_millis(100))
        .until(async || {
            let spans = all_exported().0.into_iter();
            spans
                .filter(|s| s.name == "reconcile Echo")
                .find(|s| s.attr("k8s.object.name") == Some("slow"))
        })
        .await;
    let trace = exported(&reconcile.trace_id);
    assert!(
        trace
            .echo_calls()
            .iter()
            .any(|call| call.parent_span_id.as_deref() == Some(reconcile.span_id.as_str())),
        "the interrupted echo call is in the trace: {}",
        otlp::describe(&trace.0)
    );
}

#[tokio::test]
async fn an_oversized_echo_answer_is_refused_not_buffered() {
    let huge = "x".repeat(echo_operator::echo_api::MAX_REPLY_BYTES + 1);
    let app = axum::Router::new().route(
        "/v1/echoes/{namespace}/{name}",
        axum::routing::put(move || {
            let huge = huge.clone();
            async move { huge }
        }),
    );
    let client = support::echo_stub::client_of(app, Fence::always_open()).await;
    let err = client
        .put("default", "big", &spec("m"), &Default::default())
        .await
        .expect_err("an answer over the limit");
    assert!(
        matches!(&err, Error::EchoBadReply { detail, .. } if detail.contains("larger than")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_service_over_https_with_a_trusted_test_ca() {
    let server = EchoServer::start();
    let pki = support::tls::TestPki::new();
    let https = pki.terminate_in_front_of(server.addr);
    let url = format!("https://localhost:{}", https.port());

    let mut options = OperatorOptions::new(url.clone());
    options.settings.echo_ca = Some(pki.ca_pem.clone().into_bytes());
    let operator = Operator::start(options);
    let done = operator
        .apply_until_ready(&echo("default", "secure", spec("over TLS")), "True")
        .await;
    assert_eq!(
        done.status.and_then(|s| s.reply).as_deref(),
        Some("echo: over TLS")
    );
    operator.stop().await;

    // Without the CA the same URL fails verification: the test CA is what made it work.
    let operator = Operator::start(OperatorOptions::new(url).max_retries(0));
    let failed = operator
        .apply_until_ready(&echo("default", "insecure", spec("over TLS")), "False")
        .await;
    assert_eq!(
        failed.ready_condition().map(|c| c.reason.as_str()),
        Some("EchoUnreachable")
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_longer_than_its_timeout_fails_and_says_so() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.settings.reconcile_timeout = Duration::from_secs(1);
    let operator = Operator::start(options);
    let started = Instant::now();
    let failed = operator
        .apply_until_ready(
            &echo("default", "too-slow", spec("m").delay_ms(10_000)),
            "False",
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed after {:?}, not bounded by the 1 s reconcile timeout",
        started.elapsed()
    );
    assert_eq!(
        failed.ready_condition().map(|c| c.reason.as_str()),
        Some("ReconcileTimeout")
    );
    operator.stop().await;
}
