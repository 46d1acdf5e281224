//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run (rolling
//! updates without a gap, failover when the leader dies) and only one reconciles.
//!
//! Tolerant to clock skew, as client-go's leader election is: no replica compares another's
//! `renewTime` with its own wall clock. The leader keeps a deadline on its monotonic clock,
//! the time it *sent* its last successful renewal plus the lease duration minus a margin,
//! and steps down (its controller is dropped) at that deadline whether or not the API
//! answers. A follower times the holder's lease from when it sent the read that first showed
//! the current record, on its own monotonic clock, and takes over only a full duration
//! later. That read was sent at most one request bound (the margin) before the renewal it
//! shows was sent, so the follower starts after the leader stopped, whatever the wall
//! clocks say. The price: a follower notices a renewal up to one retry period late, so a
//! dead leader is replaced within one lease duration plus one retry period.
//!
//! Why not a crate: `kube-lease-manager` 0.13 (the one that fits kube 5) keeps reporting
//! leadership while renewals fail with API errors, past the lease's expiry, and compares
//! wall clocks.

mod fence;
mod lease;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::Instant;

pub use fence::{Fence, TermOver};
use lease::{Holder, Observed, release, try_acquire_or_renew};

/// Where the wall-clock time stamped on the Lease comes from; tests set it skewed.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl WallClock {
    pub fn new(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// This process's clock, off by `skew` (ahead when positive).
    pub fn skewed(skew: jiff::SignedDuration) -> Self {
        Self::new(move || {
            let now = jiff::Timestamp::now();
            now.checked_add(skew).unwrap_or(now)
        })
    }

    pub fn now(&self) -> jiff::Timestamp {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new(jiff::Timestamp::now)
    }
}

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WallClock({})", self.now())
    }
}

/// Settings of one elector.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: the pod name where there is one.
    pub identity: String,
    /// How long a renewal holds the lease (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the holder renews and a follower checks.
    pub retry_period: Duration,
    /// How much earlier than the lease's expiry the holder gives up, and the bound on one
    /// request on the lease.
    pub margin: Duration,
    /// Only stamps `acquireTime` and `renewTime`; no decision reads it.
    pub clock: WallClock,
}

impl LeaseConfig {
    pub fn new(namespace: String, name: String, identity: String, duration: Duration) -> Self {
        Self {
            namespace,
            name,
            identity,
            retry_period: duration / 5,
            margin: duration / 5,
            duration,
            clock: WallClock::default(),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// What this process is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Follower { leader: Option<String> },
    Leader,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot {action} lease {namespace}/{name}: {source}")]
    Api {
        action: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lease request did not finish within {0:?}")]
    Timeout(Duration),
}

impl LeaseError {
    /// What a person can do about it, when the API server refused on principle.
    fn hint(&self) -> &'static str {
        match self {
            Self::Api {
                source: kube::Error::Api(status),
                ..
            } if status.code == 403 => {
                "RBAC does not allow this: check LEASE_NAME, POD_NAMESPACE and the operator's Role"
            }
            Self::Api { .. } => "the API server refused or failed the request",
            Self::Timeout(_) => "the API server did not answer in time",
        }
    }
}

/// The least a stopping leader may spend releasing the lease, even when the reconciles used
/// up the whole shutdown grace; past its budget a follower takes over once the lease expires.
pub const MIN_RELEASE_BUDGET: Duration = Duration::from_secs(3);

/// How long a leader that received its shutdown signal at `signalled` may spend releasing
/// the lease: what the reconciles left of the shutdown `grace`, and never less than
/// [`MIN_RELEASE_BUDGET`]. A slow API server then delays a hand-over instead of cutting it
/// short (which would leave a follower waiting out a whole lease), and the process stays
/// within `grace` + the minimum + its span flush (the pod's termination grace covers that).
pub fn release_budget(signalled: Option<std::time::Instant>, grace: Duration) -> Duration {
    let used = signalled.map_or(Duration::ZERO, |at| at.elapsed());
    grace.saturating_sub(used).max(MIN_RELEASE_BUDGET)
}

/// This replica's part in the election: a campaign on a task of its own, or none for a
/// single replica that always leads.
pub struct Election {
    roles_tx: watch::Sender<Role>,
    problems_tx: watch::Sender<Option<String>>,
    campaign: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Election {
    /// No election: this replica leads from the start.
    pub fn always_lead() -> Self {
        Self {
            roles_tx: watch::Sender::new(Role::Leader),
            problems_tx: watch::Sender::new(None),
            campaign: None,
        }
    }

    /// Starts campaigning for the lease in `api`, keeping `fence` at this replica's deadline.
    pub fn start(api: Api<Lease>, config: LeaseConfig, fence: Fence) -> Self {
        let roles_tx = watch::Sender::new(Role::Follower { leader: None });
        let problems_tx = watch::Sender::new(None);
        let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
        let reports = Reports {
            roles: roles_tx.clone(),
            problems: problems_tx.clone(),
            fence,
        };
        let task = tokio::spawn(campaign(api, config, reports, async move {
            let _ = stop.await;
        }));
        Self {
            roles_tx,
            problems_tx,
            campaign: Some((stop_tx, task)),
        }
    }

    /// Every role change, the current role first.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.roles_tx.subscribe()
    }

    /// Why this replica cannot take part in the election (no request on the lease has
    /// succeeded for a lease duration), or `None` while it can.
    pub fn problems(&self) -> watch::Receiver<Option<String>> {
        self.problems_tx.subscribe()
    }

    /// Stops campaigning and releases the lease within `budget` (see [`release_budget`]), so
    /// a follower takes over at once. Call it only once no reconcile runs any more.
    pub async fn stop(self, budget: Duration) {
        if let Some((stop_tx, task)) = self.campaign {
            let _ = stop_tx.send(());
            if tokio::time::timeout(budget, task).await.is_err() {
                tracing::warn!(
                    budget_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX),
                    "the lease was not released in time; a follower takes over once it expires"
                );
            }
        }
    }
}

/// Where a campaign publishes what it learns.
pub struct Reports {
    /// Every role change.
    pub roles: watch::Sender<Role>,
    /// Set while no request on the lease has succeeded for a lease duration.
    pub problems: watch::Sender<Option<String>>,
    /// Open until this replica's deadline while it leads.
    pub fence: Fence,
}

/// Campaigns for the lease until `stop` resolves, publishing every role change and problem
/// on `reports`. On stop, a leader releases the lease so a follower takes over at once.
pub async fn campaign(
    api: Api<Lease>,
    config: LeaseConfig,
    reports: Reports,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut state = CampaignState::new();
    loop {
        let sent = Instant::now();
        let bound = config.margin.max(Duration::from_millis(100));
        let attempt = try_acquire_or_renew(&api, &config, &mut state.observed, sent);
        let outcome = match tokio::time::timeout(bound, attempt).await {
            Ok(result) => result,
            Err(_) => Err(LeaseError::Timeout(bound)),
        };
        state.record(outcome, sent, &config, &reports);
        // A follower also wakes when the holder's lease runs out, so a dead leader is
        // replaced as soon as it may be.
        let next = sent + config.retry_period;
        let wake = [state.deadline, state.others_expiry]
            .into_iter()
            .flatten()
            .fold(next, Instant::min);
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(wake) => {}
        }
        if state.deadline.is_some_and(|d| Instant::now() >= d) {
            // No renewal got through in time: stop before anyone else may start.
            state.deadline = None;
            reports.fence.close();
            announce(&reports.roles, Role::Follower { leader: None }, &config);
        }
    }
    reports.fence.close();
    if state.deadline.is_some() {
        announce(&reports.roles, Role::Follower { leader: None }, &config);
        if let Err(err) = release(&api, &config).await {
            tracing::warn!(error = %err, "cannot release the lease; a follower takes over once it expires");
        }
    }
}

/// What a campaign keeps between two requests.
struct CampaignState {
    /// Leader until this instant; `None` as a follower.
    deadline: Option<Instant>,
    /// When the current holder's lease runs out, if another replica holds it.
    others_expiry: Option<Instant>,
    observed: Observed,
    /// When a request on the lease last succeeded (or the campaign started).
    last_success: Instant,
}

impl CampaignState {
    fn new() -> Self {
        Self {
            deadline: None,
            others_expiry: None,
            observed: Observed::default(),
            last_success: Instant::now(),
        }
    }

    fn record(
        &mut self,
        outcome: Result<Holder, LeaseError>,
        sent: Instant,
        config: &LeaseConfig,
        reports: &Reports,
    ) {
        match outcome {
            Ok(Holder::Me) => {
                let deadline = sent + config.duration.saturating_sub(config.margin);
                self.deadline = Some(deadline);
                reports.fence.open_until(deadline);
                self.others_expiry = None;
                announce(&reports.roles, Role::Leader, config);
            }
            Ok(Holder::Other { leader, expires_in }) => {
                self.deadline = None;
                reports.fence.close();
                self.others_expiry = expires_in.map(|left| Instant::now() + left);
                announce(&reports.roles, Role::Follower { leader }, config);
            }
            Err(err) => {
                tracing::warn!(error = %err, hint = err.hint(), "lease request failed");
                if Instant::now().saturating_duration_since(self.last_success) >= config.duration {
                    let problem = format!("{err} ({})", err.hint());
                    if reports.problems.borrow().as_ref() != Some(&problem) {
                        tracing::error!(
                            problem = %problem,
                            "no request on the lease has succeeded for a lease duration: this replica cannot lead"
                        );
                        reports.problems.send_replace(Some(problem));
                    }
                }
                return;
            }
        }
        self.last_success = Instant::now();
        if reports.problems.borrow().is_some() {
            tracing::info!("requests on the lease succeed again");
            reports.problems.send_replace(None);
        }
    }
}

/// Publishes a role change with a log line and a root span of its own, so leadership
/// changes are visible in the logs and in Jaeger.
fn announce(roles: &watch::Sender<Role>, role: Role, config: &LeaseConfig) {
    if *roles.borrow() == role {
        return;
    }
    let span = tracing::info_span!(
        parent: None,
        "leader election",
        otel.name = match role {
            Role::Leader => "leadership acquired",
            Role::Follower { .. } => "leadership lost or held elsewhere",
        },
        k8s.lease.name = %config.name,
        k8s.namespace.name = %config.namespace,
        leader.identity = %config.identity,
    );
    span.in_scope(|| match &role {
        Role::Leader => tracing::info!(identity = %config.identity, "became the leader"),
        Role::Follower { leader } => tracing::info!(
            identity = %config.identity,
            leader = leader.as_deref().unwrap_or("<none>"),
            "following"
        ),
    });
    roles.send_replace(role);
}
