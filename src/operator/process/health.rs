//! The operator's health port: `/healthz` (liveness) and `/readyz` for the kubelet's probes,
//! `/metrics` for Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use prometheus_client::registry::Registry;

use tokio::sync::watch;

use super::liveness::Liveness;
use crate::lock::lock;

/// Ready as a follower (it only waits to take over, and must not block a rolling update),
/// or as the leader once its watch has listed every object once.
#[derive(Clone)]
pub struct Readiness {
    leading: Arc<AtomicBool>,
    synced: Arc<AtomicBool>,
    /// Why this replica cannot take part in leader election, if it cannot.
    problem: Arc<Mutex<Option<String>>>,
    /// When this replica last became the leader.
    leading_since: Arc<Mutex<Instant>>,
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
            problem: Arc::default(),
            leading_since: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Keeps the election's problem (see `Election::problems`) up to date here, on a task
    /// of its own: a replica that cannot read or write its Lease is not ready, and says why.
    pub fn follow_problems(&self, mut problems: watch::Receiver<Option<String>>) {
        let problem = self.problem.clone();
        tokio::spawn(async move {
            loop {
                *lock(&problem) = problems.borrow_and_update().clone();
                if problems.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Why this replica cannot take part in leader election, if it cannot.
    pub fn problem(&self) -> Option<String> {
        lock(&self.problem).clone()
    }

    /// The initial list of a (new) watch is complete.
    pub fn set_ready(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Leadership changed: a new leader is ready once its own watch has synced.
    pub fn set_leading(&self, leading: bool) {
        self.synced.store(false, Ordering::Relaxed);
        if leading {
            *lock(&self.leading_since) = Instant::now();
        }
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// A leader whose watch has not listed every object within `limit` of taking the lease:
    /// it holds the lease and reconciles nothing, which only a restart (and so another
    /// replica) fixes.
    pub fn sync_overdue(&self, now: Instant, limit: Duration) -> bool {
        self.is_leading()
            && !self.synced.load(Ordering::Relaxed)
            && now.saturating_duration_since(*lock(&self.leading_since)) > limit
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    pub fn is_ready(&self) -> bool {
        self.problem().is_none() && (!self.is_leading() || self.synced.load(Ordering::Relaxed))
    }
}

/// Serves `router` on `addr` on a task of its own, for the life of the process, with the
/// same connection bounds as the echo service.
pub async fn serve(addr: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(crate::serve::serve(
        listener,
        router,
        crate::serve::Limits::default(),
        std::future::pending(),
        std::time::Duration::ZERO,
    ));
    Ok(())
}

/// `/healthz`, `/readyz`, and `/metrics` from `scrape`, which is told whether this replica
/// leads and returns the registry with its gauges up to date.
pub fn router<F>(readiness: Readiness, liveness: Liveness, scrape: F) -> Router
where
    F: Fn(bool) -> Arc<Registry> + Clone + Send + Sync + 'static,
{
    let leading = readiness.clone();
    let alive = readiness.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = scrape(leading.is_leading());
                async move { crate::metrics::render(&registry) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let now = Instant::now();
                let stalled = !liveness.is_live_at(now);
                let unsynced = alive.sync_overdue(now, liveness.stall_after());
                async move {
                    match (stalled, unsynced) {
                        (false, false) => (StatusCode::OK, "ok"),
                        (true, _) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "reconciles are running and none has finished lately",
                        ),
                        (false, true) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "leading, and the watch has not listed every object for too long",
                        ),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let (ready, leading) = (readiness.is_ready(), readiness.is_leading());
                let problem = readiness.problem();
                async move {
                    match (problem, ready, leading) {
                        (Some(problem), _, _) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot take part in leader election: {problem}"),
                        ),
                        (None, true, true) => (StatusCode::OK, "ready: leading".to_owned()),
                        (None, true, false) => (
                            StatusCode::OK,
                            "ready: following, waiting to take over".to_owned(),
                        ),
                        (None, false, _) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "leading, watch not synced yet".to_owned(),
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
    fn a_leader_that_cannot_list_fails_its_liveness_in_time() {
        let limit = Duration::from_secs(60);
        let readiness = Readiness::with_role(false);
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(
            !readiness.sync_overdue(later, limit),
            "a follower lists nothing"
        );
        readiness.set_leading(true);
        assert!(!readiness.sync_overdue(Instant::now(), limit));
        assert!(
            readiness.sync_overdue(later, limit),
            "an hour without a list"
        );
        readiness.set_ready();
        assert!(!readiness.sync_overdue(later, limit), "synced");
    }
}
