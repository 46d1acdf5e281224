//! A stopping leader's release of the Lease gets what the shutdown grace left, not a fixed
//! few seconds: a slow API server delays the hand-over instead of cutting the release short
//! (which would leave the follower waiting out a whole Lease).

mod support;

use std::time::{Duration, Instant};

use echo_operator::operator::process::leader::{
    Election, Fence, LeaseConfig, MIN_RELEASE_BUDGET, Role, release_budget,
};
use kube::Api;
use support::{FakeApi, eventually};

const NAMESPACE: &str = "echo-tracing";
const NAME: &str = "echo-operator";
/// Renewals every 3 s (a fifth), so none is in flight when the test stops the leader.
const LEASE: Duration = Duration::from_secs(15);
const GRACE: Duration = Duration::from_secs(10);

#[test]
fn the_budget_is_what_the_grace_left_and_never_below_the_minimum() {
    assert_eq!(release_budget(None, GRACE), GRACE);
    let early = release_budget(Some(Instant::now() - Duration::from_secs(2)), GRACE);
    assert!(
        early <= GRACE - Duration::from_secs(2) && early > GRACE - Duration::from_secs(3),
        "{early:?}"
    );
    let late = release_budget(Some(Instant::now() - Duration::from_secs(30)), GRACE);
    assert_eq!(late, MIN_RELEASE_BUDGET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_slower_than_the_minimum_budget_still_lands_before_stop_returns() {
    let api = FakeApi::default();
    let leases = Api::namespaced(api.client(Duration::from_secs(30)), NAMESPACE);
    let config = LeaseConfig::new(NAMESPACE.into(), NAME.into(), "replica-a".into(), LEASE);
    let election = Election::start(leases, config, Fence::closed());
    let roles = election.roles();
    eventually("replica-a leading")
        .within(Duration::from_secs(10))
        .until(async || (*roles.borrow() == Role::Leader).then_some(()))
        .await;
    assert_eq!(
        api.lease_holder(NAMESPACE, NAME).as_deref(),
        Some("replica-a")
    );

    // SIGTERM now, reconciles drained at once: the release may take most of the grace.
    let slow = MIN_RELEASE_BUDGET + Duration::from_secs(1);
    api.slow_on("PUT", &format!("/leases/{NAME}"), slow);
    let signalled = Instant::now();
    election.stop(release_budget(Some(signalled), GRACE)).await;
    let took = signalled.elapsed();
    assert_eq!(
        api.lease_holder(NAMESPACE, NAME),
        None,
        "stop returned after {took:?} with the lease still held"
    );
    assert!(took >= slow && took < GRACE, "{took:?}");
}
