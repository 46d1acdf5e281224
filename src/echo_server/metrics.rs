//! The echo service's Prometheus metrics: requests by route and status, with the trace of
//! the latest request in each bucket as an exemplar.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;

use crate::metrics::{
    ExemplarHistograms, SpanCounters, exemplar_histograms, observe, registered_with,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// A method HTTP defines, or `_OTHER`: a client cannot grow the series without bound.
    pub method: &'static str,
    /// The matched route template (`/v1/echoes/{namespace}/{name}`), never the raw path.
    pub route: String,
    pub status: String,
}

pub struct EchoMetrics {
    registry: Arc<Registry>,
    requests: ExemplarHistograms<RequestLabels>,
}

impl Default for EchoMetrics {
    fn default() -> Self {
        Self::new(&SpanCounters::default())
    }
}

impl EchoMetrics {
    pub fn new(spans: &SpanCounters) -> Self {
        let mut registry = Registry::with_prefix("echo_server");
        let requests: ExemplarHistograms<RequestLabels> = registered_with(
            &mut registry,
            "request_duration_seconds",
            "Duration of API requests, by route and status; exemplars name their traces",
            exemplar_histograms(),
        );
        spans.register(&mut registry);
        Self {
            registry: Arc::new(registry),
            requests,
        }
    }

    pub fn request(&self, labels: RequestLabels, elapsed: Duration, span: &tracing::Span) {
        observe(&self.requests, &labels, elapsed.as_secs_f64(), span);
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}
