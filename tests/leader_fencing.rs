//! The controller's side of leadership: a replica that loses the lease stops reconciling at
//! once and forgets the term's per-object state, and one past its deadline writes nothing
//! even before it hears that it lost the lease, not even the next attempt of an echo call
//! it began in time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use echo_operator::crd::Echo;
use echo_operator::operator::process::health::Readiness;
use echo_operator::operator::process::leader::{Fence, Role};
use echo_operator::operator::reconcile::error::Error;
use echo_operator::operator::{self, LoopConfig};
use echo_operator::shutdown::Stop;
use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use support::{EchoServer, FakeApi, Operator, OperatorOptions, echo, eventually, spec};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// The controller side: a replica that loses the lease drops its running reconciles at
/// once instead of letting them finish (another replica may already be reconciling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling_at_once() {
    let server = EchoServer::start();
    let api = FakeApi::default();
    let options = OperatorOptions::new(server.url());
    let ctx = Operator::context(&api, &options);
    let state = ctx.clone();
    let (role_tx, roles) = watch::channel(Role::Leader);
    // Each leadership term opens a new watch; the fake API server feeds the current one.
    let terms = {
        let api = api.clone();
        move || {
            let (tx, rx) = mpsc::unbounded();
            api.set_watch(tx.clone());
            let _ = tx.unbounded_send(Ok(watcher::Event::Init));
            for object in api.objects() {
                let _ = tx.unbounded_send(Ok(watcher::Event::InitApply(object)));
            }
            let _ = tx.unbounded_send(Ok(watcher::Event::InitDone));
            rx
        }
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let readiness = Readiness::with_role(false);
    let controller = tokio::spawn(operator::run_while_leading(
        roles,
        terms,
        ctx,
        LoopConfig {
            debounce: Duration::from_millis(50),
            concurrency: 2,
            shutdown_grace: Duration::from_secs(30),
        },
        readiness.clone(),
        Stop::on(async move {
            let _ = stop_rx.await;
        }),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.apply(&echo("default", "slow", spec("m").delay_ms(3_000)));
    // The echo service holds the write for 3 s; lose the lease meanwhile.
    eventually("the PUT")
        .within(Duration::from_secs(10))
        .every(Duration::from_millis(20))
        .until(async || server.stores("default", "slow").await)
        .await;
    role_tx.send_replace(Role::Follower {
        leader: Some("replica-b".into()),
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        api.requests_to("PATCH", "/echoes/slow/status").is_empty(),
        "a reconcile went on writing after the lease was lost"
    );
    assert!(readiness.is_ready() && !readiness.is_leading());
    let slow = ObjectRef::<Echo>::new("slow").within("default").to_string();
    assert!(
        !state.links.is_tracking(&slow),
        "a term's trace context must not outlive it"
    );

    // Leading again: a new watch, and the object is reconciled to the end.
    role_tx.send_replace(Role::Leader);
    eventually("the status write of the new term")
        .until(async || api.received(1, "PATCH", "/echoes/slow/status"))
        .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}

/// A leader paused past its deadline may run its reconciles a little longer before it hears
/// that it lost the lease: the fence, checked right before each write, stops them. Here the
/// fence is closed while the controller still believes it leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_deadline_a_leader_writes_nothing_even_before_it_hears() {
    let server = EchoServer::start();
    let mut options = OperatorOptions::new(server.url());
    options.fence = Fence::closed();
    let fence = options.fence.clone();
    let operator = Operator::start(options);
    operator.apply(&echo("default", "fenced", spec("m")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !server.stores("default", "fenced").await,
        "an echo call past the deadline"
    );
    let writes: Vec<_> = operator
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "writes past the deadline: {writes:#?}");

    // A new term: the retry goes through.
    fence.open_until(Instant::now() + Duration::from_secs(3600));
    operator.wait_ready("default", "fenced", "True").await;
    operator.stop().await;
}

/// The echo client's side: a term that ends while the client waits to retry (a leader
/// paused in the retry middleware's sleep) stops the retries; the attempt begun in time
/// was the last to leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_deadline_a_leader_sends_no_further_echo_attempt() {
    let fence = Fence::closed();
    fence.open_until(Instant::now() + Duration::from_secs(3600));
    let attempts = Arc::new(AtomicUsize::new(0));
    // Each PUT fails (the retry middleware would try four times) and ends the term.
    let app = axum::Router::new().route(
        "/v1/echoes/{namespace}/{name}",
        axum::routing::put({
            let (fence, attempts) = (fence.clone(), attempts.clone());
            move || {
                attempts.fetch_add(1, Ordering::SeqCst);
                fence.close();
                async { (http::StatusCode::SERVICE_UNAVAILABLE, "{}") }
            }
        }),
    );
    let client = support::echo_stub::client_of(app, fence).await;

    let err = client
        .put("default", "fenced", &spec("m"), &Default::default())
        .await
        .expect_err("the term ended");
    assert!(matches!(err, Error::TermOver(_)), "{err}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "attempts sent after the term ended"
    );
}
