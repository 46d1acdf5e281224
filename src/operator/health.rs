//! Liveness and readiness endpoints for the kubelet's probes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use super::metrics::Gauges;
use super::reconcile::Context;

/// Ready as a follower (it only waits to take over, and must not block a rolling update),
/// or as the leader once its watch has listed every object once.
#[derive(Clone)]
pub struct Readiness {
    leading: Arc<AtomicBool>,
    synced: Arc<AtomicBool>,
}

impl Default for Readiness {
    /// A process that does not take part in leader election: always the leader.
    fn default() -> Self {
        Self::with_role(true)
    }
}

impl Readiness {
    pub fn with_role(leading: bool) -> Self {
        Self {
            leading: Arc::new(AtomicBool::new(leading)),
            synced: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The initial list of a (new) watch is complete.
    pub fn set_ready(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Leadership changed: a new leader is ready once its own watch has synced.
    pub fn set_leading(&self, leading: bool) {
        self.synced.store(false, Ordering::Relaxed);
        self.leading.store(leading, Ordering::Relaxed);
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    pub fn is_ready(&self) -> bool {
        !self.is_leading() || self.synced.load(Ordering::Relaxed)
    }
}

/// Live while the controller makes progress or has nothing to do: it is dead when
/// reconciles are running and none has finished for `stall_after`. Reconciles are bounded
/// by their own timeout, so that only happens when the controller itself is wedged, which a
/// restart fixes.
#[derive(Clone)]
pub struct Liveness {
    inner: Arc<LivenessState>,
}

struct LivenessState {
    stall_after: Duration,
    running: AtomicUsize,
    last_progress: Mutex<Instant>,
}

/// Marks one reconcile as running until dropped (dropped also when the reconcile is
/// cancelled).
pub struct Running(Arc<LivenessState>);

impl Liveness {
    pub fn new(stall_after: Duration) -> Self {
        Self {
            inner: Arc::new(LivenessState {
                stall_after,
                running: AtomicUsize::new(0),
                last_progress: Mutex::new(Instant::now()),
            }),
        }
    }

    pub fn reconcile_started(&self) -> Running {
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        Running(self.inner.clone())
    }

    /// Reconciles running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    pub fn is_live_at(&self, now: Instant) -> bool {
        self.running() == 0
            || now.saturating_duration_since(*self.inner.last_progress()) < self.inner.stall_after
    }
}

impl LivenessState {
    fn last_progress(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        *self.0.last_progress() = Instant::now();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(readiness: Readiness, ctx: Arc<Context>) -> Router {
    let liveness = ctx.liveness.clone();
    let leading = readiness.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = ctx.metrics.snapshot(&Gauges {
                    pending_trace_links: ctx.links.pending_objects(),
                    trace_link_objects: ctx.links.tracked_objects(),
                    backoff_objects: ctx.backoff.len(),
                    running: ctx.liveness.running(),
                    leading: leading.is_leading(),
                });
                async move { crate::metrics::render(&registry) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let live = liveness.is_live_at(Instant::now());
                async move {
                    if live {
                        (StatusCode::OK, "ok")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "reconciles are running and none has finished lately",
                        )
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let (ready, leading) = (readiness.is_ready(), readiness.is_leading());
                async move {
                    match (ready, leading) {
                        (true, true) => (StatusCode::OK, "ready: leading"),
                        (true, false) => (StatusCode::OK, "ready: following, waiting to take over"),
                        (false, _) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "leading, watch not synced yet",
                        ),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_is_ready_and_a_new_leader_only_once_synced() {
        let readiness = Readiness::with_role(false);
        assert!(readiness.is_ready(), "a follower waits, ready");
        readiness.set_leading(true);
        assert!(!readiness.is_ready(), "a leader without a synced watch");
        readiness.set_ready();
        assert!(readiness.is_ready());
        readiness.set_leading(false);
        readiness.set_leading(true);
        assert!(!readiness.is_ready(), "each leadership starts a new watch");
    }

    #[test]
    fn live_when_idle_or_progressing_dead_when_stalled() {
        let liveness = Liveness::new(Duration::from_secs(60));
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(liveness.is_live_at(later), "idle for an hour is fine");

        let running = liveness.reconcile_started();
        assert!(liveness.is_live_at(Instant::now()));
        assert!(
            !liveness.is_live_at(later),
            "a reconcile running with no progress for an hour is a wedge"
        );
        drop(running);
        assert_eq!(liveness.running(), 0);
        assert!(liveness.is_live_at(later));

        let _first = liveness.reconcile_started();
        let second = liveness.reconcile_started();
        drop(second);
        assert!(
            liveness.is_live_at(Instant::now() + Duration::from_secs(30)),
            "a finished reconcile counts as progress"
        );
    }
}
