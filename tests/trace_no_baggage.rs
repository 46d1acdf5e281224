//! Only the trace context goes to the Kubernetes API server: `traceparent` (and
//! `tracestate`), never W3C baggage, whatever the context of the caller or the annotations of
//! the object carry. Baggage is arbitrary key-value data of whoever started the trace; the API
//! server (and its audit log) is the last place it should land. Proved from the headers the
//! fake API server received.

mod support;

use echo_operator::crd::{Echo, K8S_TRACEPARENT_ANNOTATION, TRACEPARENT_ANNOTATION};
use kube::Api;
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt;
use support::fake_api::Recorded;
use support::{
    EchoBuilder, EchoServer, FakeApi, Operator, all_exported, echo, receiver, spec, status_trace_id,
};
use tracing::Instrument;

const SECRET: &str = "s3cr3t-b4gg4ge";

/// Asserts the request carried a trace context and nothing of the baggage.
fn assert_no_baggage(request: &Recorded) {
    let what = format!("{} {}: {:?}", request.method, request.path, request.headers);
    assert!(request.header("traceparent").is_some(), "{what}");
    assert!(request.header("baggage").is_none(), "{what}");
    assert!(
        request.headers.iter().all(|(_, v)| !v.contains(SECRET)),
        "{what}"
    );
}

/// A caller whose context carries baggage: the API request's span inherits that context,
/// the header does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_in_the_callers_context_is_not_sent() {
    let _ = receiver(); // the operator's telemetry, so spans have contexts to propagate
    let api = FakeApi::default();
    api.insert(&echo("default", "carrier", spec("m")));
    let echoes: Api<Echo> =
        Api::namespaced(api.client(std::time::Duration::from_secs(5)), "default");
    let span = {
        let with_baggage = opentelemetry::Context::current_with_baggage([
            KeyValue::new("user.id", SECRET),
            KeyValue::new("tenant", "acme"),
        ]);
        let _attached = with_baggage.attach();
        tracing::info_span!("caller")
    };
    echoes
        .get("carrier")
        .instrument(span)
        .await
        .expect("the fake holds it");
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_no_baggage(&requests[0]);
}

/// An object whose annotations carry baggage next to its traceparents: every request of its
/// reconcile carries the trace context only, and no exported span (nor its events, the log
/// lines inside it) repeats the baggage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_in_annotations_reaches_neither_the_api_server_nor_the_spans() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let traceparent = "00-ba66a6eba66a6eba66a6eba66a6eba66-0a0b0c0d0e0f1011-01";
    let annotated = echo("default", "baggage", spec("m"))
        .annotated(TRACEPARENT_ANNOTATION, traceparent)
        .annotated(K8S_TRACEPARENT_ANNOTATION, traceparent)
        .annotated("baggage", format!("user.id={SECRET}"))
        .annotated("tracing.k8s.io/baggage", format!("user.id={SECRET}"))
        .annotated("tracing.example.com/tracestate", format!("vendor={SECRET}"));
    let done = operator.apply_until_ready(&annotated, "True").await;
    let writes: Vec<Recorded> = operator
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.len() >= 3, "finalizer, status, Event: {writes:#?}");
    writes.iter().for_each(assert_no_baggage);
    let trace_id = status_trace_id(&done);
    let spans = all_exported();
    let leaked: Vec<_> = spans
        .0
        .iter()
        .filter(|s| s.trace_id == trace_id || s.attr("k8s.object.name") == Some("baggage"))
        .filter(|s| {
            let events = s.events.iter().flat_map(|e| e.attributes.values());
            s.attributes
                .values()
                .chain(events)
                .any(|v| v.contains(SECRET))
        })
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
    operator.stop().await;
}
