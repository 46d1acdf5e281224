//! Leader election over a fake API server that keeps Leases like the real one (create
//! conflicts, resourceVersion checks): one leader at a time, failover within the lease
//! duration, a partitioned leader stepping down before anyone else may start, a clean
//! hand-over on shutdown, and a controller that stops reconciling the moment its replica
//! loses the lease.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echo_operator::operator::process::health::Readiness;
use echo_operator::operator::process::leader::{LeaseConfig, Role, campaign};
use echo_operator::operator::{self, LoopConfig};
use echo_operator::shutdown::Stop;
use futures::channel::mpsc;
use kube::Api;
use kube::runtime::watcher;
use support::{EchoServer, FakeApi, Operator, OperatorOptions, echo, eventually, spec};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(3);

struct Elector {
    roles: watch::Receiver<Role>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// Set: this replica's requests to the API server get no answer.
    cut_off: Arc<AtomicBool>,
    /// Set when the test killed the process: it leads nothing any more.
    killed: Arc<AtomicBool>,
}

impl Elector {
    fn start(api: &FakeApi, identity: &str) -> Self {
        let cut_off = Arc::new(AtomicBool::new(false));
        let client = api.partitionable_client(Duration::from_secs(10), cut_off.clone());
        let (tx, roles) = watch::channel(Role::Follower { leader: None });
        let (stop, stopped) = oneshot::channel::<()>();
        let config = LeaseConfig::new(
            "echo-tracing".into(),
            "echo-operator".into(),
            identity.into(),
            LEASE,
        );
        let task = tokio::spawn(campaign(
            Api::namespaced(client, "echo-tracing"),
            config,
            tx,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            roles,
            stop: Some(stop),
            task,
            cut_off,
            killed: Arc::default(),
        }
    }

    fn leads(&self) -> bool {
        !self.killed.load(Ordering::SeqCst) && *self.roles.borrow() == Role::Leader
    }

    /// Like SIGKILL: no release, the lease just stops being renewed.
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// Polls the electors every 10 ms until `done` or `within`; panics if two ever lead at
/// once. Returns when `done` first held.
async fn watch_all(
    electors: &[&Elector],
    within: Duration,
    what: &str,
    done: impl Fn(&[&Elector]) -> bool,
) -> Instant {
    eventually(what)
        .within(within)
        .every(Duration::from_millis(10))
        .until(async || {
            let leaders = electors.iter().filter(|e| e.leads()).count();
            assert!(leaders <= 1, "{leaders} leaders at once");
            done(electors).then(Instant::now)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_failover_within_the_lease_duration_after_it_dies() {
    let api = FakeApi::default();
    let a = Elector::start(&api, "replica-a");
    watch_all(&[&a], LEASE, "a first leader", |e| e[0].leads()).await;
    let b = Elector::start(&api, "replica-b");
    // b keeps following while a renews: several lease durations without a change.
    let quiet_until = Instant::now() + LEASE * 2;
    watch_all(&[&a, &b], LEASE * 3, "two quiet lease durations", |e| {
        assert!(
            e[0].leads() && !e[1].leads(),
            "the leader changed while it was alive"
        );
        Instant::now() >= quiet_until
    })
    .await;
    assert_eq!(
        *b.roles.borrow(),
        Role::Follower {
            leader: Some("replica-a".into())
        }
    );

    a.kill();
    let died = Instant::now();
    let took_over = watch_all(&[&a, &b], LEASE * 3, "b taking over", |e| e[1].leads()).await;
    let failover = took_over - died;
    assert!(
        failover <= LEASE + Duration::from_millis(500),
        "failover took {failover:?}, more than one lease duration ({LEASE:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_steps_down_before_another_can_lead() {
    let api = FakeApi::default();
    let a = Elector::start(&api, "replica-a");
    watch_all(&[&a], LEASE, "a first leader", |e| e[0].leads()).await;
    let b = Elector::start(&api, "replica-b");
    tokio::time::sleep(LEASE / 2).await;

    a.cut_off.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let stepped_down = watch_all(&[&a, &b], LEASE * 2, "a stepping down", |e| !e[0].leads()).await;
    assert!(
        stepped_down - cut < LEASE,
        "a partitioned leader must give up within the lease duration, took {:?}",
        stepped_down - cut
    );
    let took_over = watch_all(&[&a, &b], LEASE * 3, "b taking over", |e| e[1].leads()).await;
    assert!(took_over > stepped_down, "b led before a stepped down");
    // Reconnected, a sees b's lease and follows.
    a.cut_off.store(false, Ordering::SeqCst);
    watch_all(&[&a, &b], LEASE * 2, "a following b", |e| {
        *e[0].roles.borrow()
            == Role::Follower {
                leader: Some("replica-b".into()),
            }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_hands_the_lease_over_at_once() {
    let api = FakeApi::default();
    let mut a = Elector::start(&api, "replica-a");
    watch_all(&[&a], LEASE, "a first leader", |e| e[0].leads()).await;
    let b = Elector::start(&api, "replica-b");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = a.stop.take().expect("running").send(());
    let stopped = Instant::now();
    let took_over = watch_all(&[&a, &b], LEASE * 2, "b taking over", |e| e[1].leads()).await;
    assert!(
        took_over - stopped < LEASE / 2,
        "a released lease is taken within one retry period, took {:?}",
        took_over - stopped
    );
}

/// The controller side: a replica that loses the lease drops its running reconciles at
/// once instead of letting them finish (another replica may already be reconciling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling_at_once() {
    let server = EchoServer::start();
    let api = FakeApi::default();
    let options = OperatorOptions::new(server.url());
    let ctx = Operator::context(&api, &options);
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

    // Leading again: a new watch, and the object is reconciled to the end.
    role_tx.send_replace(Role::Leader);
    eventually("the status write of the new term")
        .until(async || api.received(1, "PATCH", "/echoes/slow/status"))
        .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
