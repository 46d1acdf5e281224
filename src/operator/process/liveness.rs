//! Whether the controller still makes progress, for the kubelet's liveness probe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock::lock;

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

    /// How long reconciles may run with none finishing.
    pub fn stall_after(&self) -> Duration {
        self.inner.stall_after
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
        lock(&self.last_progress)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        *self.0.last_progress() = Instant::now();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
