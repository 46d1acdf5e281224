//! What the operator does when things around it misbehave: repeated reconciles and their
//! Events, an API server that stops answering, a shutdown during a long reconcile, objects
//! deleted while failing, oversized answers, and TLS to the echo service.

mod support;

use std::time::Duration;

use echo_operator::crd::EchoSpec;
use echo_operator::operator::echo_client::{EchoClient, RetryConfig};
use echo_operator::operator::error::Error;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use support::{EchoServer, FakeApi, Operator, OperatorOptions, closed_port, echo, receiver, spec};

fn trace_id_of(echo: &echo_operator::crd::Echo) -> String {
    echo.status
        .as_ref()
        .and_then(|s| s.trace_id.clone())
        .expect("status.traceId")
}

/// kube-runtime's recorder would fold the second `Reconciled` Event into the first and keep
/// its note, naming the first trace for six minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reconcile_publishes_an_event_naming_its_own_trace() {
    let server = EchoServer::start();
    let operator = Operator::start(OperatorOptions::new(server.url()));
    let first = echo("default", "twice", spec("one"));
    operator.apply(&first);
    let ready = operator.wait_ready("default", "twice", "True").await;
    let first_trace = trace_id_of(&ready);

    let mut second = ready.clone();
    second.spec.message = "two".into();
    second.metadata.generation = Some(2);
    operator.apply(&second);
    operator
        .api
        .wait_until("the second generation reconciled", |api| {
            api.object("default", "twice")
                .and_then(|e| e.status)
                .is_some_and(|s| s.observed_generation == Some(2))
        })
        .await;
    let second_trace = trace_id_of(&operator.api.object("default", "twice").expect("object"));
    assert_ne!(first_trace, second_trace);

    operator
        .api
        .wait_until("two Reconciled Events", |api| {
            api.requests_to("POST", "/events")
                .iter()
                .filter(|r| r.body["reason"] == "Reconciled")
                .count()
                == 2
        })
        .await;
    let notes: Vec<String> = operator
        .api
        .requests_to("POST", "/events")
        .iter()
        .filter(|r| r.body["reason"] == "Reconciled")
        .map(|r| r.body["note"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(notes[0].contains(&first_trace), "{notes:?}");
    assert!(
        notes[1].contains(&second_trace),
        "the newest Event names the newest trace: {notes:?}"
    );
    assert!(
        operator.api.requests_to("PATCH", "/events").is_empty()
            && operator
                .api
                .requests()
                .iter()
                .all(|r| !(r.method == "PATCH" && r.path.contains("/events/"))),
        "no series update keeps an old note"
    );
    operator.stop().await;
}

/// An identical note (tracing off, for one) is counted on the existing Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_event_is_counted_as_a_series() {
    use echo_operator::operator::events::{Event, EventRecorder, EventType, Reporter};
    use kube::Resource;
    let api = FakeApi::default();
    let recorder = EventRecorder::new(
        api.client(Duration::from_secs(5)),
        Reporter {
            controller: "echo-operator".into(),
            instance: None,
        },
    );
    let object = echo("default", "same", spec("m"));
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("echo service replied (trace none)".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    for _ in 0..3 {
        recorder
            .publish(&event, &object.object_ref(&()))
            .await
            .expect("publish");
    }
    let events: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/events"))
        .collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0].method, "POST");
    assert_eq!(events[1].method, "PATCH");
    assert_eq!(events[1].body["series"]["count"], 2);
    assert_eq!(events[2].body["series"]["count"], 3);
    assert_eq!(recorder.remembered(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_api_request_fails_the_reconcile_in_bounded_time_and_others_proceed() {
    let server = EchoServer::start();
    let api = FakeApi::default();
    api.hang_on("PATCH", "/echoes/stuck/status");
    let mut options = OperatorOptions::new(server.url());
    options.api_timeout = Duration::from_millis(500);
    options.reconcile_timeout = Duration::from_secs(3);
    let operator = Operator::start_on(api, options);
    operator.apply(&echo("default", "stuck", spec("never written")));
    operator.apply(&echo("default", "fine", spec("written")));

    operator.wait_ready("default", "fine", "True").await;
    operator
        .api
        .wait_until("a Warning Event for the stuck status write", |api| {
            api.requests_to("POST", "/events")
                .iter()
                .any(|r| r.body["type"] == "Warning" && r.body["regarding"]["name"] == "stuck")
        })
        .await;
    let warning = operator
        .api
        .requests_to("POST", "/events")
        .into_iter()
        .find(|r| r.body["type"] == "Warning" && r.body["regarding"]["name"] == "stuck")
        .expect("warning");
    assert_eq!(
        warning.body["reason"], "KubernetesApiError",
        "{:#?}",
        warning.body
    );
    // The failed reconcile gave its slot back and is retried with backoff.
    operator
        .api
        .wait_until("a retry of the stuck object", |api| {
            api.requests_to("PATCH", "/echoes/stuck/status").len() >= 3
        })
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
        EchoSpec {
            message: "take your time".into(),
            delay_ms: Some(10_000),
            fail_first: None,
        },
    ));
    // The echo service stores the write before it waits out the delay.
    let url = format!("{}/v1/echoes/default/slow", server.url());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !reqwest::get(&url)
        .await
        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the PUT never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let took = operator
        .stop_within(Duration::from_secs(8))
        .await
        .expect("the controller returned despite a reconcile waiting 10 s");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?} with a 0.5 s grace period"
    );
    let reconcile = loop {
        support::flush_operator_spans();
        let found = receiver().all_spans().into_iter().find(|s| {
            s.name == "reconcile Echo"
                && s.attributes.get("k8s.object.name").map(String::as_str) == Some("slow")
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned reconcile's span never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let spans = receiver().spans_of_trace(&reconcile.trace_id);
    assert!(
        spans.iter().any(|s| s.kind == support::otlp::KIND_CLIENT
            && s.parent_span_id.as_deref() == Some(reconcile.span_id.as_str())),
        "the interrupted echo call is in the trace: {}",
        support::otlp::describe(&spans)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_while_failing_leaves_no_state_behind() {
    let mut options = OperatorOptions::new(format!("http://127.0.0.1:{}", closed_port()));
    options.retry.max_retries = 0;
    let operator = Operator::start(options);
    let doomed = echo("default", "failing", spec("nobody home"));
    operator.apply(&doomed);
    let failed = operator.wait_ready("default", "failing", "False").await;
    // Trace links are shared by every test in this process: ask about this object only.
    let key = ObjectRef::from_obj(&failed).to_string();
    assert_eq!(
        operator.ctx.backoff.len(),
        1,
        "the failure is in the backoff table"
    );
    assert!(operator.ctx.links.is_tracking(&key));

    operator.send(watcher::Event::Delete(failed));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !operator.ctx.backoff.is_empty() || operator.ctx.links.is_tracking(&key) {
        assert!(
            std::time::Instant::now() < deadline,
            "backoff entries {} and trace links {} kept for a deleted object",
            operator.ctx.backoff.len(),
            operator.ctx.links.is_tracking(&key)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator.stop().await;
}

#[tokio::test]
async fn an_oversized_echo_answer_is_refused_not_buffered() {
    echo_operator::tls::install_crypto_provider();
    let huge = "x".repeat(echo_operator::operator::echo_client::MAX_REPLY_BYTES + 1);
    let app = axum::Router::new().route(
        "/v1/echoes/{namespace}/{name}",
        axum::routing::put(move || {
            let huge = huge.clone();
            async move { huge }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = EchoClient::new(
        format!("http://{addr}").parse().expect("url"),
        &RetryConfig::default(),
        None,
    )
    .expect("client");
    let err = client
        .put("default", "big", &spec("m"))
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
    options.echo_ca = Some(pki.ca_pem.clone().into_bytes());
    let operator = Operator::start(options);
    operator.apply(&echo("default", "secure", spec("over TLS")));
    let done = operator.wait_ready("default", "secure", "True").await;
    assert_eq!(
        done.status.and_then(|s| s.reply).as_deref(),
        Some("echo: over TLS")
    );
    operator.stop().await;

    // Without the CA the same URL fails verification: the test CA is what made it work.
    let mut untrusting = OperatorOptions::new(url);
    untrusting.retry.max_retries = 0;
    let operator = Operator::start(untrusting);
    operator.apply(&echo("default", "insecure", spec("over TLS")));
    let failed = operator.wait_ready("default", "insecure", "False").await;
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
    options.reconcile_timeout = Duration::from_secs(1);
    let operator = Operator::start(options);
    let started = std::time::Instant::now();
    operator.apply(&echo(
        "default",
        "too-slow",
        EchoSpec {
            message: "m".into(),
            delay_ms: Some(10_000),
            fail_first: None,
        },
    ));
    let failed = operator.wait_ready("default", "too-slow", "False").await;
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

/// With the echo service gone for good, deletion waits (the finalizer stays, retried with
/// backoff) until the object is annotated to skip the remote cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_the_echo_service_unless_cleanup_is_skipped() {
    use echo_operator::crd::{FINALIZER, SKIP_CLEANUP_ANNOTATION};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut options = OperatorOptions::new(format!("http://127.0.0.1:{}", closed_port()));
    options.retry.max_retries = 0;
    let operator = Operator::start(options);
    let mut deleting = echo("default", "orphan", spec("its service is gone"));
    deleting.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    operator.apply(&deleting);
    operator
        .api
        .wait_until("a Warning about the cleanup", |api| {
            api.requests_to("POST", "/events").iter().any(|r| {
                r.body["type"] == "Warning"
                    && r.body["reason"] == "EchoUnreachable"
                    && r.body["action"] == "Cleanup"
            })
        })
        .await;
    assert!(
        operator.api.object("default", "orphan").is_some(),
        "the finalizer holds the object while the echo service cannot be told"
    );

    deleting.metadata.generation = Some(2);
    deleting.metadata.annotations =
        Some([(SKIP_CLEANUP_ANNOTATION.to_owned(), "true".to_owned())].into());
    operator.apply(&deleting);
    operator
        .api
        .wait_until("the finalizer removed without the echo service", |api| {
            api.object("default", "orphan").is_none()
        })
        .await;
    assert!(
        operator
            .api
            .requests_to("POST", "/events")
            .iter()
            .any(|r| r.body["reason"] == "Deleted"
                && r.body["note"]
                    .as_str()
                    .is_some_and(|n| n.contains(SKIP_CLEANUP_ANNOTATION))),
        "the Event says the cleanup was skipped"
    );
    operator.stop().await;
}
