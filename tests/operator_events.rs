//! The Kubernetes Events the operator publishes: one per reconcile, each naming its own
//! trace, and an identical one counted as a series rather than published again.

mod support;

use std::time::Duration;

use echo_operator::crd::Echo;
use echo_operator::operator::reconcile::events::{Event, EventRecorder, EventType, Reporter};
use kube::Resource;
use support::{
    EchoBuilder, EchoServer, FakeApi, OPERATOR, Operator, OperatorOptions, echo, eventually,
    exported, spec, status_trace_id, unreachable_echo_url,
};

/// The notes of the `Reconciled` Events published so far, oldest first.
fn reconciled_notes(api: &FakeApi) -> Vec<String> {
    api.requests_to("POST", "/events")
        .iter()
        .filter(|r| r.body["reason"] == "Reconciled")
        .map(|r| r.body["note"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// kube-runtime's recorder would fold the second `Reconciled` Event into the first and keep
/// its note, naming the first trace for six minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reconcile_publishes_an_event_naming_its_own_trace() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let ready = operator
        .apply_until_ready(&echo("default", "twice", spec("one")), "True")
        .await;
    let first_trace = status_trace_id(&ready);

    operator.apply(&ready.with_message("two").at_generation(2));
    let second = eventually("the second generation reconciled")
        .until(async || {
            let object = operator.api.object("default", "twice");
            let reconciled = |e: &Echo| e.status.as_ref()?.observed_generation;
            object
                .filter(|e| reconciled(e) == Some(2))
                .ok_or_else(|| operator.api.seen())
        })
        .await;
    let second_trace = status_trace_id(&second);
    assert_ne!(first_trace, second_trace);

    let notes = eventually("two Reconciled Events")
        .until(async || {
            let notes = reconciled_notes(&operator.api);
            if notes.len() == 2 {
                Ok(notes)
            } else {
                Err(operator.api.seen())
            }
        })
        .await;
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

/// Each Event carries the W3C context of the reconcile that published it, in KEP-5915's
/// annotation: a tool reading Events can link to, or continue, that reconcile's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_publishing_reconciles_trace_context() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let ready = operator
        .apply_until_ready(&echo("default", "annotated-event", spec("m")), "True")
        .await;
    let failing = Operator::start(OperatorOptions::new(unreachable_echo_url()).max_retries(0));
    let failed = failing
        .apply_until_ready(&echo("default", "annotated-warning", spec("m")), "False")
        .await;
    for (api, object, reason) in [
        (&operator.api, &ready, "Reconciled"),
        (&failing.api, &failed, "EchoUnreachable"),
    ] {
        let trace_id = status_trace_id(object);
        let trace = eventually("the reconcile span")
            .until(async || exported(&trace_id).when(|t| t.has_named("reconcile Echo")))
            .await;
        let reconcile = trace.one(OPERATOR, "reconcile Echo");
        let events = api.requests_to("POST", "/events");
        let event = events
            .iter()
            .find(|r| {
                r.body["reason"] == reason
                    && r.body["note"]
                        .as_str()
                        .is_some_and(|note| note.contains(&trace_id))
            })
            .unwrap_or_else(|| panic!("a {reason} Event: {events:#?}"));
        assert_eq!(
            event.body["metadata"]["annotations"]["tracing.k8s.io/traceparent"],
            format!("00-{trace_id}-{}-01", reconcile.span_id),
            "{reason}"
        );
    }
    failing.stop().await;
    operator.stop().await;
}

/// An identical note (tracing off, for one) is counted on the existing Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_event_is_counted_as_a_series() {
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
            .publish(&event, &object.object_ref(&()), None)
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
