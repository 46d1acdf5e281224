//! The operator's Prometheus metrics. Reconcile and echo-call durations carry the trace id
//! as an exemplar, so a slow bucket in a dashboard leads straight to a trace.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{
    ExemplarHistograms, SpanCounters, exemplar_histograms, observe, registered, registered_with,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: &'static str,
    /// The `Ready` condition's reason: `Reconciled`, `EchoUnreachable`, ...
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EchoCallLabels {
    pub method: &'static str,
    /// The final HTTP status, or `error` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchEventLabels {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `trace_links` (pending events, links, last reconcile) or `backoff` (failure counts).
    pub state: &'static str,
}

/// What the gauges show, read from the operator's state at each scrape.
pub struct Gauges {
    pub pending_trace_links: usize,
    /// Objects with trace-link state kept for them.
    pub trace_link_objects: usize,
    /// Objects with a failure count kept for their backoff.
    pub backoff_objects: usize,
    pub running: usize,
    pub leading: bool,
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_seconds: ExemplarHistograms<ResultLabels>,
    echo_call_seconds: ExemplarHistograms<EchoCallLabels>,
    watch_events: Family<WatchEventLabels, Counter>,
    pending_trace_links: Gauge,
    tracked_objects: Family<StateLabels, Gauge>,
    reconciles_running: Gauge,
    leader: Gauge,
}

impl Metrics {
    /// Registers every metric, the exporter's span counters included.
    pub fn new(spans: &SpanCounters) -> Self {
        let mut registry = Registry::with_prefix("echo_operator");
        let r = &mut registry;
        let reconciles = registered(r, "reconciles", "Reconciles finished, by result and reason");
        let reconcile_seconds = registered_with(
            r,
            "reconcile_duration_seconds",
            "Duration of one reconcile; exemplars name its trace",
            exemplar_histograms(),
        );
        let echo_call_seconds = registered_with(
            r,
            "echo_request_duration_seconds",
            "Duration of one call to the echo service, retries included; exemplars name its trace",
            exemplar_histograms(),
        );
        let watch_events = registered(r, "watch_events", "Watch events received, by type");
        let pending_trace_links = registered(
            r,
            "pending_trace_links",
            "Objects with watch events waiting to hand their trace to a reconcile",
        );
        let tracked_objects = registered(
            r,
            "tracked_objects",
            "Objects the operator keeps per-object state for, by kind of state; deleted objects leave none",
        );
        let reconciles_running = registered(r, "reconciles_running", "Reconciles running now");
        let leader = registered(
            r,
            "leader",
            "1 while this replica holds the lease and reconciles, 0 while it follows",
        );
        spans.register(r);
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_seconds,
            echo_call_seconds,
            watch_events,
            pending_trace_links,
            tracked_objects,
            reconciles_running,
            leader,
        }
    }

    /// A reconcile ended after `elapsed` with `reason`, inside `span`.
    pub fn reconciled(
        &self,
        reason: &'static str,
        success: bool,
        elapsed: Duration,
        span: &tracing::Span,
    ) {
        let labels = ResultLabels {
            result: if success { "success" } else { "error" },
            reason,
        };
        self.reconciles.get_or_create(&labels).inc();
        observe(
            &self.reconcile_seconds,
            &labels,
            elapsed.as_secs_f64(),
            span,
        );
    }

    pub fn echo_call(
        &self,
        method: &'static str,
        status: String,
        elapsed: Duration,
        span: &tracing::Span,
    ) {
        observe(
            &self.echo_call_seconds,
            &EchoCallLabels { method, status },
            elapsed.as_secs_f64(),
            span,
        );
    }

    pub fn watch_event(&self, event_type: &'static str) {
        self.watch_events
            .get_or_create(&WatchEventLabels { r#type: event_type })
            .inc();
    }

    /// The registry, with the gauges set to `now`.
    pub fn snapshot(&self, now: &Gauges) -> Arc<Registry> {
        self.leader.set(i64::from(now.leading));
        self.pending_trace_links
            .set(gauge_value(now.pending_trace_links));
        for (state, n) in [
            ("trace_links", now.trace_link_objects),
            ("backoff", now.backoff_objects),
        ] {
            self.tracked_objects
                .get_or_create(&StateLabels { state })
                .set(gauge_value(n));
        }
        self.reconciles_running.set(gauge_value(now.running));
        self.registry.clone()
    }
}
