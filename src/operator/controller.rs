//! kube-runtime's `Controller` over the traced trigger stream, run only while this replica
//! leads, and stopped within the shutdown grace period.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::context::Context;
use super::process::health::Readiness;
use super::process::leader::Role;
use super::{reconcile, watch};
use crate::crd::Echo;
use crate::shutdown::Stop;

/// Knobs of the controller loop that tests shorten.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// How long kube-runtime waits for more events on an object before reconciling it;
    /// events that arrive meanwhile are merged into one reconcile (and become span links).
    pub debounce: Duration,
    /// Upper bound on reconciles running at once.
    pub concurrency: u16,
    /// After the shutdown signal no reconcile starts; those running get this long to
    /// finish before they are abandoned (their spans end and are flushed with the rest).
    pub shutdown_grace: Duration,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(200),
            concurrency: 8,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Runs the controller whenever `roles` says this replica leads, over a new watch from
/// `watch` each time, until `stop`. Losing the lease drops the controller at once, running
/// reconciles included, so no other replica can overlap with it.
pub async fn run_while_leading<S>(
    mut roles: tokio::sync::watch::Receiver<Role>,
    mut watch: impl FnMut() -> S,
    ctx: Arc<Context>,
    config: LoopConfig,
    ready: Readiness,
    stop: Stop,
) where
    S: Stream<Item = Result<watcher::Event<Echo>, watcher::Error>> + Send + 'static,
{
    loop {
        tokio::select! {
            () = stop.wait() => return,
            changed = roles.wait_for(|role| *role == Role::Leader) => if changed.is_err() { return },
        }
        ready.set_leading(true);
        let controller = run_controller(
            watch(),
            ctx.clone(),
            config.clone(),
            ready.clone(),
            stop.wait(),
        );
        let mut lost = roles.clone();
        tokio::select! {
            () = controller => return,
            _ = lost.wait_for(|role| *role != Role::Leader) => {
                tracing::warn!("lost the lease: reconciling stopped");
                ready.set_leading(false);
                ctx.forget_all();
            }
        }
    }
}

/// Runs the controller over `events` until `shutdown` resolves. Production passes the
/// watcher's stream ([`watch::watched::watch`], whose objects come without `managedFields`,
/// so the cache holds none); tests pass events of their own.
pub async fn run_controller<S>(
    events: S,
    ctx: Arc<Context>,
    config: LoopConfig,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) where
    S: Stream<Item = Result<watcher::Event<Echo>, watcher::Error>> + Send + 'static,
{
    let (reader, writer) = reflector::store();
    // Ready once the initial list is complete. Taken from the stream rather than from
    // `Store::wait_until_ready`: that future wakes only one of several concurrent waiters,
    // and the controller itself is already waiting on it.
    let events = events.inspect(move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            ready.set_ready();
        }
    });
    let gone = {
        let ctx = ctx.clone();
        move |object_ref: &str| ctx.forget(object_ref)
    };
    let triggers = watch::traced_triggers(
        events.reflect(writer),
        ctx.links.clone(),
        ctx.metrics.clone(),
        gone,
    );
    let (shutdown, grace) = crate::shutdown::with_grace(shutdown, config.shutdown_grace);
    let controller = Controller::for_stream(triggers, reader)
        .with_config(
            controller::Config::default()
                .debounce(config.debounce)
                .concurrency(config.concurrency),
        )
        // kube-runtime's graceful shutdown waits for every running reconcile; the grace
        // bound below keeps the whole shutdown within the pod's termination grace period.
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _action)) => tracing::debug!(object = %object, "reconciled"),
                // The reconcile already logged and reported its own failure.
                Err(controller::Error::ReconcilerFailed(_, object)) => {
                    tracing::debug!(object = %object, "reconcile failed")
                }
                Err(err) => tracing::warn!(error = %err, "controller error"),
            }
        });
    grace.bound("reconciles", controller).await;
}
