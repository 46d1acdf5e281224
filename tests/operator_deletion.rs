//! Deleting an Echo: the operator tells the echo service and then lets the object go; it
//! forgets a deleted object's state; and with the echo service gone for good, the finalizer
//! holds until the object asks for the remote cleanup to be skipped.

mod support;

use std::time::Duration;

use echo_operator::crd::SKIP_CLEANUP_ANNOTATION;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use support::{
    ECHO, EchoBuilder, EchoServer, OPERATOR, Operator, OperatorOptions, all_exported, echo,
    eventually, exported, spec, unreachable_echo_url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_calls_the_echo_service_and_removes_the_finalizer() {
    let server = EchoServer::start();
    let operator = Operator::calling(&server);
    let ready = operator
        .apply_until_ready(&echo("default", "doomed", spec("short-lived")), "True")
        .await;
    operator.apply(&ready.at_generation(2).being_deleted());
    eventually("the finalizer removal, after which the object is gone")
        .until(async || operator.api.gone("default", "doomed"))
        .await;

    let gone = reqwest::get(format!("{}/v1/echoes/default/doomed", server.url()))
        .await
        .expect("GET");
    assert_eq!(gone.status(), 404, "the echo service forgot the object");

    let delete_client = eventually("a traced DELETE to the echo service")
        .within(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until(async || {
            let calls = all_exported();
            let delete = calls.echo_calls().into_iter().find(|s| {
                s.attr("http.request.method") == Some("DELETE")
                    && s.attributes["url.full"].ends_with("/v1/echoes/default/doomed")
            });
            delete.cloned()
        })
        .await;
    let server_delete = "DELETE /v1/echoes/{namespace}/{name}";
    let trace = eventually("the echo server's DELETE span")
        .until(async || exported(&delete_client.trace_id).when(|t| t.has(ECHO, server_delete)))
        .await;
    let server_span = trace.one(ECHO, server_delete);
    trace.assert_parent(server_span, &delete_client);
    assert_eq!(
        server_span.ints.get("http.response.status_code"),
        Some(&204)
    );
    trace.assert_parent(&delete_client, trace.one(OPERATOR, "reconcile Echo"));
    trace.assert_parent(
        trace.one(OPERATOR, "reconciling object"),
        trace.one(OPERATOR, "watch Echo Apply"),
    );
    assert!(
        trace.has_named("remove finalizer"),
        "finalizer removal is in the trace"
    );
    let removal = operator.api.requests_to("PATCH", "/echoes/doomed");
    assert!(
        removal
            .iter()
            .any(|r| r.content_type == "application/json-patch+json"
                && r.body.to_string().contains("\"remove\"")),
        "a JSON patch removing the finalizer: {removal:#?}"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_while_failing_leaves_no_state_behind() {
    let operator = Operator::start(OperatorOptions::new(unreachable_echo_url()).max_retries(0));
    let failed = operator
        .apply_until_ready(&echo("default", "failing", spec("nobody home")), "False")
        .await;
    // Trace links are shared by every test in this process: ask about this object only.
    let key = ObjectRef::from_obj(&failed).to_string();
    let ctx = &operator.ctx;
    // The error policy records the failure after the reconcile, so after its status write.
    eventually("the failure in the backoff table")
        .until(async || ctx.backoff.len() == 1)
        .await;
    assert!(ctx.links.is_tracking(&key));

    operator.send(watcher::Event::Delete(failed));
    eventually("the deleted object's backoff entry and trace links to go")
        .within(Duration::from_secs(10))
        .until(async || {
            if ctx.backoff.is_empty() && !ctx.links.is_tracking(&key) {
                return Ok(());
            }
            Err(format!(
                "backoff entries {} and trace links {} kept for a deleted object",
                ctx.backoff.len(),
                ctx.links.is_tracking(&key)
            ))
        })
        .await;
    operator.stop().await;
}

/// With the echo service gone for good, deletion waits (the finalizer stays, retried with
/// backoff) until the object is annotated to skip the remote cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_the_echo_service_unless_cleanup_is_skipped() {
    // A retry after a minute: only the annotation's own watch event can end the deletion
    // within this test, so a filter that ignored the annotation would fail it.
    let mut options = OperatorOptions::new(unreachable_echo_url()).max_retries(0);
    options.settings.error_backoff = Duration::from_secs(60);
    options.settings.max_error_backoff = Duration::from_secs(60);
    let operator = Operator::start(options);
    let deleting = echo("default", "orphan", spec("its service is gone"))
        .finalized()
        .being_deleted();
    operator.apply(&deleting);
    eventually("a Warning about the cleanup")
        .until(async || {
            operator.api.when(|api| {
                api.requests_to("POST", "/events").iter().any(|r| {
                    r.body["type"] == "Warning"
                        && r.body["reason"] == "EchoUnreachable"
                        && r.body["action"] == "Cleanup"
                })
            })
        })
        .await;
    assert!(
        operator.api.object("default", "orphan").is_some(),
        "the finalizer holds the object while the echo service cannot be told"
    );

    // An annotation bumps no generation.
    operator.apply(&deleting.annotated(SKIP_CLEANUP_ANNOTATION, "true"));
    eventually("the finalizer removed without the echo service")
        .within(Duration::from_secs(10))
        .until(async || operator.api.gone("default", "orphan"))
        .await;
    let events = operator.api.requests_to("POST", "/events");
    assert!(
        events.iter().any(|r| r.body["reason"] == "Deleted"
            && r.body["note"]
                .as_str()
                .is_some_and(|n| n.contains(SKIP_CLEANUP_ANNOTATION))),
        "the Event says the cleanup was skipped"
    );
    operator.stop().await;
}
