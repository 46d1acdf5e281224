//! Resyncs: an object that is Ready and still held by the echo service is checked (one GET)
//! and nothing is written, to the echo service or to the API server; one whose echo was lost
//! (the service keeps state in memory) is stored again, with a status write and an Event.

mod support;

use std::time::Duration;

use support::{EchoServer, Operator, OperatorOptions, Trace, all_exported, echo, eventually, spec};

/// Reads of `name` the operator made to the echo service, as exported CLIENT spans.
fn echo_reads(trace: &Trace, name: &str) -> usize {
    trace
        .echo_calls()
        .into_iter()
        .filter(|s| {
            s.attr("http.request.method") == Some("GET")
                && s.attr("url.full")
                    .is_some_and(|u| u.ends_with(&format!("/default/{name}")))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resync_writes_nothing_and_a_lost_echo_is_stored_again() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.settings.resync = Duration::from_millis(300);
    let operator = Operator::start(options);
    let api = &operator.api;
    operator
        .apply_until_ready(&echo("default", "idle", spec("still here")), "True")
        .await;
    let status_writes = api.requests_to("PATCH", "/echoes/idle/status").len();
    let events = api.requests_to("POST", "/events").len();
    assert_eq!(
        (status_writes, events),
        (1, 1),
        "the create wrote status and an Event"
    );

    eventually("three resyncs, each a read of the echo service")
        .within(Duration::from_secs(20))
        .until(async || echo_reads(&all_exported(), "idle") >= 3)
        .await;
    assert_eq!(
        api.requests_to("PATCH", "/echoes/idle/status").len(),
        status_writes,
        "an idle resync wrote status"
    );
    assert_eq!(
        api.requests_to("POST", "/events").len(),
        events,
        "an idle resync published an Event"
    );

    // The echo service forgets the object, as a restart would: the next resync restores it.
    let forgotten = reqwest::Client::new()
        .delete(format!("{}/v1/echoes/default/idle", server.url()))
        .send()
        .await
        .expect("DELETE");
    assert!(forgotten.status().is_success());
    eventually("the echo stored again")
        .within(Duration::from_secs(20))
        .until(async || server.stores("default", "idle").await)
        .await;
    eventually("a status write and an Event for the repair")
        .until(async || {
            api.requests_to("PATCH", "/echoes/idle/status").len() > status_writes
                && api.requests_to("POST", "/events").len() > events
        })
        .await;
    operator.stop().await;
}
