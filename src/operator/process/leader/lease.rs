//! The requests on the Lease (read it, take or renew it, release it), and how a follower
//! times the holder's lease without trusting anyone's wall clock.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::{LeaseConfig, LeaseError};

/// Who holds the lease after one request.
pub(super) enum Holder {
    Me,
    Other {
        leader: Option<String>,
        /// Time left on the holder's lease, by this replica's monotonic clock.
        expires_in: Option<Duration>,
    },
}

/// The holder's record as this replica first saw it, by its own monotonic clock: the
/// record's `resourceVersion` (every renewal changes it) and when the read that showed it
/// was sent. The holder's lease runs a full duration from then. The holder's `renewTime` is
/// never compared with this replica's wall clock, so clocks may disagree by any amount.
#[derive(Default)]
pub(super) struct Observed(Option<(String, Instant)>);

impl Observed {
    /// Notes the record `resource_version`, read by a request sent at `sent`; returns when
    /// this replica first saw it.
    fn seen(&mut self, resource_version: &str, sent: Instant) -> Instant {
        match &self.0 {
            Some((seen, since)) if seen == resource_version => *since,
            _ => {
                self.0 = Some((resource_version.to_owned(), sent));
                sent
            }
        }
    }
}

/// Takes the lease if it is free or expired, renews it if it is ours; `sent` is when this
/// attempt started.
pub(super) async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Observed,
    sent: Instant,
) -> Result<Holder, LeaseError> {
    // Wall-clock time only stamps the record, for people and other tools to read.
    let now = config.clock.now();
    let api_error = |action| api_error(config, action);
    let Some(mut lease) = api.get_opt(&config.name).await.map_err(api_error("read"))? else {
        return create(api, config, now).await;
    };
    let resource_version = lease.metadata.resource_version.clone().unwrap_or_default();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(config.identity.as_str());
    if !mine && holder.is_some() {
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(config.duration, Duration::from_secs);
        let expires = observed.seen(&resource_version, sent) + duration;
        let left = expires.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            return Ok(Holder::Other {
                leader: holder,
                expires_in: Some(left),
            });
        }
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

async fn create(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: jiff::Timestamp,
) -> Result<Holder, LeaseError> {
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
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(Holder::Me),
        // Another replica created it first.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Holder::Other {
            leader: None,
            expires_in: None,
        }),
        Err(err) => Err(api_error(config, "create")(err)),
    }
}

/// Gives the lease up: no holder, so a follower acquires it on its next check.
pub(super) async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaseError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_record_is_timed_from_when_it_was_first_seen() {
        let mut observed = Observed::default();
        let t0 = Instant::now();
        assert_eq!(observed.seen("1", t0), t0);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(observed.seen("1", Instant::now()), t0, "the same record");
        let t1 = Instant::now();
        assert_eq!(
            observed.seen("2", t1),
            t1,
            "a renewal starts the count again"
        );
    }
}
