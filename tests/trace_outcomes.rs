//! The outcome of each reconcile on its `reconcile` span: result, trigger, what it wrote,
//! the echo attempts, the `Ready` reason, the generation; so "reconciles that failed" or
//! "reconciles that wrote nothing" is one query. Each test reconciles objects of its own.

mod support;

use std::time::Duration;

use support::{
    EchoBuilder, EchoServer, OPERATOR, Operator, OperatorOptions, SpanRecord, all_exported, echo,
    eventually, spec, unreachable_echo_url,
};

/// The exported `reconcile` spans of `name` once there are `count`, in the order they ended.
async fn reconciles(name: &str, count: usize) -> Vec<SpanRecord> {
    eventually(format!("{count} reconciles of {name}"))
        .until(async || {
            let all = all_exported();
            let found: Vec<SpanRecord> = all
                .all(OPERATOR, |s| {
                    s.name == "reconcile Echo" && s.attr("k8s.object.name") == Some(name)
                })
                .into_iter()
                .cloned()
                .collect();
            if found.len() >= count {
                Ok(found)
            } else {
                Err(format!("{} so far", found.len()))
            }
        })
        .await
}

/// The outcome attributes of `span`: result, trigger, writes, ready reason.
fn outcome(span: &SpanRecord) -> [Option<&str>; 4] {
    [
        "echo_operator.reconcile.result",
        "echo_operator.reconcile.trigger",
        "echo_operator.reconcile.writes",
        "echo_operator.reconcile.ready_reason",
    ]
    .map(|key| span.attr(key))
}

fn attempts(span: &SpanRecord) -> Option<i64> {
    span.ints
        .get("echo_operator.reconcile.echo_attempts")
        .copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_succeeds_after_resends_says_what_it_wrote() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let created = echo("default", "outcome-new", spec("m").fail_first(2)).at_generation(3);
    operator.apply_until_ready(&created, "True").await;
    let spans = reconciles("outcome-new", 1).await;
    let reconcile = &spans[0];
    assert_eq!(
        outcome(reconcile),
        [
            Some("success"),
            Some("watch_event"),
            Some("finalizer,echo,status,event"),
            Some("Reconciled")
        ]
    );
    assert_eq!(attempts(reconcile), Some(3), "503, 503, 200");
    assert_eq!(reconcile.ints.get("k8s.object.generation"), Some(&3));
    assert!(!reconcile.attributes.contains_key("error.type"));
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_and_its_retry_say_why_they_ran_and_how_they_ended() {
    let operator = Operator::start(OperatorOptions::new(unreachable_echo_url()).max_retries(1));
    operator
        .apply_until_ready(&echo("default", "outcome-down", spec("m")), "False")
        .await;
    let spans = reconciles("outcome-down", 2).await;
    let (first, retry) = (&spans[0], &spans[1]);
    assert_eq!(
        outcome(first),
        [
            Some("error"),
            Some("watch_event"),
            Some("finalizer,status,event"),
            Some("EchoUnreachable")
        ]
    );
    assert_eq!(first.attr("error.type"), Some("EchoUnreachable"));
    assert_eq!(attempts(first), Some(2), "the first send and one resend");
    assert_eq!(
        outcome(retry),
        [
            Some("error"),
            Some("error_retry"),
            Some("status,event"),
            Some("EchoUnreachable")
        ]
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_finalizer_is_a_write_and_leaves_no_ready_reason() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let deleted = echo("default", "outcome-gone", spec("bye"))
        .finalized()
        .being_deleted();
    operator.apply(&deleted);
    eventually("the object gone")
        .until(async || operator.api.gone("default", "outcome-gone"))
        .await;
    let spans = reconciles("outcome-gone", 1).await;
    assert_eq!(
        outcome(&spans[0]),
        [
            Some("success"),
            Some("watch_event"),
            Some("finalizer,echo,event"),
            None
        ]
    );
    assert_eq!(attempts(&spans[0]), Some(1), "one DELETE");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resync_wrote_nothing() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.settings.resync = Duration::from_millis(300);
    let operator = Operator::start(options);
    operator
        .apply_until_ready(&echo("default", "outcome-idle", spec("m")), "True")
        .await;
    let spans = reconciles("outcome-idle", 3).await;
    for resync in &spans[1..] {
        assert_eq!(
            outcome(resync),
            [
                Some("success"),
                Some("resync"),
                Some("none"),
                Some("Reconciled")
            ]
        );
        assert_eq!(attempts(resync), Some(1), "one GET of the echo service");
    }
    operator.stop().await;
}
