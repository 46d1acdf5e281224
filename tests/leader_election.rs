//! Leader election over a fake API server that keeps Leases like the real one (create
//! conflicts, resourceVersion checks): one leader at a time whatever the replicas' clocks
//! say, failover within a lease duration and a retry period, a partitioned leader stepping
//! down before anyone else may start, a clean hand-over on shutdown, and a Lease that RBAC
//! forbids reported as a reason not to be ready. The controller's side is in
//! `leader_fencing.rs`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use echo_operator::operator::process::health::Readiness;
use echo_operator::operator::process::leader::{
    Fence, LeaseConfig, Reports, Role, WallClock, campaign,
};
use kube::Api;
use support::{FakeApi, eventually};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(3);

struct Elector {
    roles: watch::Receiver<Role>,
    problems: watch::Receiver<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// Set: this replica's requests to the API server get no answer.
    cut_off: Arc<AtomicBool>,
    /// Set when the test killed the process: it leads nothing any more.
    killed: Arc<AtomicBool>,
    /// What this elector's reconciles would check before each write.
    fence: Fence,
    /// Every change of role as it happened: when, and whether it then led.
    transitions: Arc<std::sync::Mutex<Vec<(Instant, bool)>>>,
}

impl Elector {
    fn start(api: &FakeApi, identity: &str) -> Self {
        Self::with_clock(api, identity, WallClock::default())
    }

    /// An elector whose wall clock is `clock` (skewed, say).
    fn with_clock(api: &FakeApi, identity: &str, clock: WallClock) -> Self {
        let cut_off = Arc::new(AtomicBool::new(false));
        let client = api.partitionable_client(Duration::from_secs(10), cut_off.clone());
        let (roles_tx, roles) = watch::channel(Role::Follower { leader: None });
        let (problems_tx, problems) = watch::channel(None);
        let (stop, stopped) = oneshot::channel::<()>();
        let config = LeaseConfig {
            clock,
            ..LeaseConfig::new(
                "echo-tracing".into(),
                "echo-operator".into(),
                identity.into(),
                LEASE,
            )
        };
        let fence = Fence::closed();
        let reports = Reports {
            roles: roles_tx,
            problems: problems_tx,
            fence: fence.clone(),
        };
        let task = tokio::spawn(campaign(
            Api::namespaced(client, "echo-tracing"),
            config,
            reports,
            async move {
                let _ = stopped.await;
            },
        ));
        let transitions = Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn({
            let (mut roles, transitions) = (roles.clone(), transitions.clone());
            async move {
                while roles.changed().await.is_ok() {
                    let leads = *roles.borrow_and_update() == Role::Leader;
                    transitions
                        .lock()
                        .expect("lock")
                        .push((Instant::now(), leads));
                }
            }
        });
        Self {
            fence,
            transitions,
            roles,
            problems,
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
        self.transitions
            .lock()
            .expect("lock")
            .push((Instant::now(), false));
    }

    /// The intervals in which this elector led; the last one open ends now.
    fn terms(&self) -> Vec<(Instant, Instant)> {
        let mut terms = Vec::new();
        let mut began = None;
        for &(at, leads) in self.transitions.lock().expect("lock").iter() {
            match (leads, began) {
                (true, None) => began = Some(at),
                (false, Some(start)) => {
                    terms.push((start, at));
                    began = None;
                }
                _ => {}
            }
        }
        terms.extend(began.map(|start| (start, Instant::now())));
        terms
    }
}

/// Fails if any term of one elector overlaps any term of another.
fn assert_terms_apart(electors: &[&Elector]) {
    let all: Vec<(usize, (Instant, Instant))> = electors
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.terms().into_iter().map(move |t| (i, t)))
        .collect();
    for (i, (a_start, a_end)) in &all {
        for (j, (b_start, b_end)) in &all {
            assert!(
                i == j || a_end <= b_start || b_end <= a_start,
                "elector {i} led {a_start:?}..{a_end:?} while elector {j} led {b_start:?}..{b_end:?}"
            );
        }
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

/// A follower notices a renewal up to one retry period (a fifth of the lease) late, and
/// times the lease from then: a dead leader is replaced within one lease duration plus one
/// retry period (plus this test's polling).
const FAILOVER_BOUND: Duration = Duration::from_millis(3_000 + 600 + 500);

/// One leader while it lives, whatever the replicas' wall clocks say; a failover within
/// `FAILOVER_BOUND` once it dies.
async fn one_leader_then_failover(a: Elector, b_clock: WallClock, api: &FakeApi) {
    watch_all(&[&a], LEASE, "a first leader", |e| e[0].leads()).await;
    let b = Elector::with_clock(api, "replica-b", b_clock);
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
        failover <= FAILOVER_BOUND,
        "failover took {failover:?}, more than {FAILOVER_BOUND:?}"
    );
    assert_terms_apart(&[&a, &b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_failover_within_the_lease_duration_after_it_dies() {
    let api = FakeApi::default();
    let a = Elector::start(&api, "replica-a");
    one_leader_then_failover(a, WallClock::default(), &api).await;
}

/// The follower's clock 20 s ahead of the leader's: it must not read the leader's renewal
/// as 20 s old and take the lease from a live leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_clock_runs_ahead_does_not_take_a_live_lease() {
    let api = FakeApi::default();
    let behind = WallClock::skewed(jiff::SignedDuration::from_secs(-20));
    let a = Elector::with_clock(&api, "replica-a", behind);
    let ahead = WallClock::skewed(jiff::SignedDuration::from_secs(20));
    one_leader_then_failover(a, ahead, &api).await;
}

/// The follower's clock 20 s behind: it must not wait 40 s more for a dead leader's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_clock_runs_behind_still_takes_over_in_time() {
    let api = FakeApi::default();
    let ahead = WallClock::skewed(jiff::SignedDuration::from_secs(20));
    let a = Elector::with_clock(&api, "replica-a", ahead);
    let behind = WallClock::skewed(jiff::SignedDuration::from_secs(-20));
    one_leader_then_failover(a, behind, &api).await;
}

/// A Lease that RBAC does not allow: the replica cannot lead, and says so instead of
/// reporting ready while nothing reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_lease_makes_the_replica_unready_and_says_why() {
    let api = FakeApi::default();
    api.forbid_lease("echo-operator");
    let a = Elector::start(&api, "replica-a");
    let readiness = Readiness::with_role(false);
    readiness.follow_problems(a.problems.clone());
    assert!(readiness.is_ready(), "a follower starts ready");
    let problem = eventually("the problem reported")
        .within(LEASE * 2)
        .until(async || a.problems.borrow().clone())
        .await;
    assert!(
        problem.contains("403") || problem.contains("orbidden"),
        "{problem}"
    );
    assert!(problem.contains("RBAC"), "says what to check: {problem}");
    assert!(!a.leads());
    eventually("readiness to follow the problem")
        .until(async || !readiness.is_ready())
        .await;
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
    assert!(a.fence.check().is_ok(), "the leader may write");
    let stepped_down = watch_all(&[&a, &b], LEASE * 2, "a stepping down", |e| !e[0].leads()).await;
    assert!(
        a.fence.check().is_err(),
        "a replica that stepped down writes nothing"
    );
    assert!(
        stepped_down - cut < LEASE,
        "a partitioned leader must give up within the lease duration, took {:?}",
        stepped_down - cut
    );
    watch_all(&[&a, &b], LEASE * 3, "b taking over", |e| e[1].leads()).await;
    assert_terms_apart(&[&a, &b]);
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
