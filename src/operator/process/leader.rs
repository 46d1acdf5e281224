//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run (rolling
//! updates without a gap, failover when the leader dies) and only one reconciles.
//!
//! Why not a crate: `kube-lease-manager` 0.13 (the one that fits kube 5) keeps reporting
//! leadership while renewals fail with API errors, past the lease's expiry, so a partitioned
//! leader could reconcile while another replica already took over. Here the leader keeps a
//! local deadline: the time it *sent* its last successful renewal plus the lease duration,
//! minus a margin for clock skew. Others may take the lease only once `renewTime +
//! leaseDurationSeconds` has passed by their clock, which is after that deadline, and the
//! leader steps down (and its controller is dropped) at the deadline whether or not the API
//! answers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

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
    /// How much earlier than the lease's expiry the holder gives up: the clock skew between
    /// replicas that is tolerated, and the bound on one API request.
    pub margin: Duration,
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

/// How long a stopping leader may spend releasing the lease; past it a follower takes over
/// once the lease expires.
const RELEASE_BUDGET: Duration = Duration::from_secs(3);

/// This replica's part in the election: a campaign on a task of its own, or none for a
/// single replica that always leads.
pub struct Election {
    roles_tx: watch::Sender<Role>,
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
            campaign: None,
        }
    }

    /// Starts campaigning for the lease in `api`.
    pub fn start(api: Api<Lease>, config: LeaseConfig) -> Self {
        let roles_tx = watch::Sender::new(Role::Follower { leader: None });
        let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(campaign(api, config, roles_tx.clone(), async move {
            let _ = stop.await;
        }));
        Self {
            roles_tx,
            campaign: Some((stop_tx, task)),
        }
    }

    /// Every role change, the current role first.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.roles_tx.subscribe()
    }

    /// Stops campaigning and releases the lease, so a follower takes over at once. Call it
    /// only once no reconcile runs any more.
    pub async fn stop(self) {
        if let Some((stop_tx, task)) = self.campaign {
            let _ = stop_tx.send(());
            let _ = tokio::time::timeout(RELEASE_BUDGET, task).await;
        }
    }
}

/// Campaigns for the lease until `stop` resolves, publishing every role change on `roles`.
/// On stop, a leader releases the lease so a follower takes over at once.
pub async fn campaign(
    api: Api<Lease>,
    config: LeaseConfig,
    roles: watch::Sender<Role>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    // Leader until this instant; None as a follower.
    let mut deadline: Option<Instant> = None;
    // When the current holder's lease runs out, if another replica holds it.
    let mut others_expiry: Option<Instant> = None;
    loop {
        let sent = Instant::now();
        let bound = config.margin.max(Duration::from_millis(100));
        let outcome = match tokio::time::timeout(bound, try_acquire_or_renew(&api, &config)).await {
            Ok(result) => result,
            Err(_) => Err(LeaseError::Timeout(bound)),
        };
        match outcome {
            Ok(Holder::Me) => {
                deadline = Some(sent + config.duration.saturating_sub(config.margin));
                others_expiry = None;
                announce(&roles, Role::Leader, &config);
            }
            Ok(Holder::Other { leader, expires_in }) => {
                deadline = None;
                others_expiry = expires_in.map(|left| Instant::now() + left);
                announce(&roles, Role::Follower { leader }, &config);
            }
            Err(err) => tracing::warn!(error = %err, "lease request failed"),
        }
        // A follower also wakes when the holder's lease runs out, so a dead leader is
        // replaced within one lease duration, not one duration plus a retry period.
        let next = sent + config.retry_period;
        let wake = [deadline, others_expiry]
            .into_iter()
            .flatten()
            .fold(next, Instant::min);
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(wake) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // No renewal got through in time: stop before anyone else may start.
            deadline = None;
            announce(&roles, Role::Follower { leader: None }, &config);
        }
    }
    if deadline.is_some() {
        announce(&roles, Role::Follower { leader: None }, &config);
        if let Err(err) = release(&api, &config).await {
            tracing::warn!(error = %err, "cannot release the lease; a follower takes over once it expires");
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

enum Holder {
    Me,
    Other {
        leader: Option<String>,
        /// Time left on the holder's lease, by our clock.
        expires_in: Option<Duration>,
    },
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
) -> Result<Holder, LeaseError> {
    let now = jiff::Timestamp::now();
    let api_error = |action| api_error(config, action);
    let Some(mut lease) = api.get_opt(&config.name).await.map_err(api_error("read"))? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(config.duration_seconds()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Holder::Me),
            // Another replica created it first.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Holder::Other {
                leader: None,
                expires_in: None,
            }),
            Err(err) => Err(api_error("create")(err)),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(config.identity.as_str());
    if !mine
        && holder.is_some()
        && let Some(left) = time_left(spec, now)
    {
        return Ok(Holder::Other {
            leader: holder,
            expires_in: Some(left),
        });
    }
    if !mine {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.lease_duration_seconds = Some(config.duration_seconds());
    spec.renew_time = Some(MicroTime(now));
    // The resourceVersion read above makes this fail if anyone changed the lease meanwhile.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Holder::Me),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Holder::Other {
            leader: None,
            expires_in: None,
        }),
        Err(err) => Err(api_error("update")(err)),
    }
}

/// The error for a failed request on the lease; `action` completes "cannot ...".
fn api_error(config: &LeaseConfig, action: &'static str) -> impl FnOnce(kube::Error) -> LeaseError {
    let (namespace, name) = (config.namespace.clone(), config.name.clone());
    move |source| LeaseError::Api {
        action,
        namespace,
        name,
        source,
    }
}

/// How long the holder's lease still runs by our clock: `None` once its last renewal is
/// older than its duration (or it never renewed).
fn time_left(spec: &LeaseSpec, now: jiff::Timestamp) -> Option<Duration> {
    let MicroTime(renewed) = spec.renew_time.clone()?;
    let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds?));
    let expires = renewed.checked_add(duration).ok()?;
    let left = now.duration_until(expires);
    (left > jiff::SignedDuration::ZERO).then(|| left.unsigned_abs())
}

/// Gives the lease up: no holder, so a follower acquires it on its next check.
async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaseError> {
    let api_error = |action| api_error(config, action);
    let Some(mut lease) = api.get_opt(&config.name).await.map_err(api_error("read"))? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| tracing::info!(identity = %config.identity, "released the lease"))
        .map_err(api_error("release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_for_its_duration_since_the_last_renewal() {
        let renewed = jiff::Timestamp::from_second(1_000).expect("ts");
        let spec = LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        };
        let at = |s| jiff::Timestamp::from_second(s).expect("ts");
        assert_eq!(time_left(&spec, at(1_010)), Some(Duration::from_secs(5)));
        assert_eq!(time_left(&spec, at(1_015)), None);
        assert_eq!(time_left(&spec, at(1_016)), None);
        assert_eq!(
            time_left(&LeaseSpec::default(), at(0)),
            None,
            "never renewed"
        );
    }
}
