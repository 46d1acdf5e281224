//! What every reconcile shares ([`Context`]), and the one place it is built from the
//! operator's [`Settings`]: the binary fills them from its flags, the tests from their
//! scenario, and both get the same wiring.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::calls::echo_client::{EchoClient, RetryConfig};
use super::process::health::{self, Readiness};
use super::process::leader::Fence;
use super::process::liveness::Liveness;
use super::process::metrics::{Gauges, Metrics};
use super::reconcile::backoff::Backoff;
use super::reconcile::events::{EventRecorder, Reporter};
use super::watch::trace_links::TraceLinks;

/// The name the operator reports as: Events' reporting controller, the status field manager.
pub const CONTROLLER_NAME: &str = "echo-operator";

/// How the operator reconciles.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL of the echo service.
    pub echo_url: Url,
    /// PEM bundle trusted for an `https://` echo URL besides the system's roots.
    pub echo_ca: Option<Vec<u8>>,
    pub echo_retry: RetryConfig,
    /// This replica's name, in the User-Agent of its echo calls and on its Events.
    pub identity: Option<String>,
    /// How often a healthy object is reconciled again (the echo service keeps state in memory).
    pub resync: Duration,
    /// First delay after a failed reconcile, doubled on each further failure up to the max.
    pub error_backoff: Duration,
    pub max_error_backoff: Duration,
    /// Longest a reconcile may run; past it, it fails and is retried with backoff.
    pub reconcile_timeout: Duration,
    /// Longest one Kubernetes API request of a reconcile may take.
    pub api_timeout: Duration,
}

impl Settings {
    /// The operator's defaults, calling the echo service at `echo_url`.
    pub fn new(echo_url: Url) -> Self {
        Self {
            echo_url,
            echo_ca: None,
            echo_retry: RetryConfig::default(),
            identity: None,
            resync: Duration::from_secs(300),
            error_backoff: Duration::from_secs(5),
            max_error_backoff: Duration::from_secs(300),
            reconcile_timeout: Duration::from_secs(60),
            api_timeout: Duration::from_secs(15),
        }
    }

    /// The longest one reconcile can take: its timeout, then the failure report's status
    /// write and Event, each bounded by the API timeout.
    pub fn longest_reconcile(&self) -> Duration {
        self.reconcile_timeout + self.api_timeout * 2
    }

    /// How long reconciles may run with none finishing before the process counts as wedged:
    /// twice the longest a single reconcile can take, so a slow API server alone never makes
    /// the kubelet restart a healthy pod.
    pub fn stall_after(&self) -> Duration {
        self.longest_reconcile() * 2
    }

    /// Wires the context over `client` (bounded per request), recording in `metrics`, with
    /// trace hand-over of its own. `fence` says whether this replica may still write (see
    /// `Fence`).
    pub fn context(
        &self,
        client: kube::Client,
        metrics: Arc<Metrics>,
        fence: Fence,
    ) -> Result<Context, reqwest::Error> {
        let mut echo = EchoClient::new(
            self.echo_url.clone(),
            &self.echo_retry,
            self.echo_ca.as_deref(),
            fence.clone(),
        )?
        .with_metrics(metrics.clone());
        if let Some(identity) = &self.identity {
            echo = echo.with_identity(identity);
        }
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: self.identity.clone(),
        };
        Ok(Context {
            echo,
            recorder: EventRecorder::new(client.clone(), reporter),
            client,
            links: Arc::new(TraceLinks::default()),
            backoff: Backoff::new(self.error_backoff, self.max_error_backoff),
            resync: self.resync,
            reconcile_timeout: self.reconcile_timeout,
            liveness: Liveness::new(self.stall_after()),
            metrics,
            fence,
        })
    }
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub echo: EchoClient,
    pub recorder: EventRecorder,
    pub links: Arc<TraceLinks>,
    pub backoff: Backoff,
    pub resync: Duration,
    pub reconcile_timeout: Duration,
    pub liveness: Liveness,
    pub metrics: Arc<Metrics>,
    /// Checked before every write: a replica whose term ended writes nothing more.
    pub fence: Fence,
}

impl Context {
    /// The health port's routes, with gauges read from this context at each scrape.
    pub fn health_router(self: &Arc<Self>, readiness: Readiness) -> axum::Router {
        let ctx = self.clone();
        health::router(readiness, self.liveness.clone(), move |leading| {
            ctx.metrics.snapshot(&Gauges {
                pending_trace_links: ctx.links.pending_objects(),
                trace_link_objects: ctx.links.tracked_objects(),
                backoff_objects: ctx.backoff.len(),
                running: ctx.liveness.running(),
                leading,
            })
        })
    }

    /// Forgets everything kept about an object that no longer exists.
    pub fn forget(&self, object_ref: &str) {
        self.links.forget(object_ref);
        self.backoff.reset(object_ref);
    }

    /// Forgets everything kept about every object: at the end of a leadership term, whose
    /// watch is gone. The next term lists every object afresh; state kept from this one would
    /// outlive objects deleted meanwhile and hand stale trace context to its reconciles.
    pub fn forget_all(&self) {
        self.links.forget_all();
        self.backoff.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_liveness_window_covers_the_failure_reports_api_calls() {
        let settings = Settings {
            reconcile_timeout: Duration::from_secs(5),
            api_timeout: Duration::from_secs(60),
            ..Settings::new(Url::parse("http://echo").expect("url"))
        };
        // Timed out after 5 s, then a status write and an Event of up to 60 s each.
        assert!(settings.stall_after() > Duration::from_secs(5 + 60 + 60));
    }
}
