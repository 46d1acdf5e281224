//! Prometheus metrics shared by both programs: the OpenMetrics endpoint, trace-id exemplars
//! (the bridge from a latency spike to the trace that caused it), and the counters of spans
//! leaving through the OpenTelemetry exporter.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::trace::TraceContextExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Metric, Registry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// OpenMetrics text: the format that carries exemplars (Prometheus asks for it when its
/// exemplar storage is on).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exemplar of an observation: the trace it happened in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// A histogram family whose buckets remember the trace of their latest observation.
pub type ExemplarHistograms<L> =
    Family<L, HistogramWithExemplars<TraceExemplar>, fn() -> HistogramWithExemplars<TraceExemplar>>;

/// Durations from 5 ms to about 40 s, for calls that may wait up to 10 s by design.
pub fn seconds_histogram() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 14,
    ))
}

/// A new family of [`seconds_histogram`]s.
pub fn exemplar_histograms<L>() -> ExemplarHistograms<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(seconds_histogram)
}

/// The exemplar for an observation made inside `span`: only a sampled trace, one that
/// reaches the collector, is worth pointing at.
pub fn exemplar_of(span: &tracing::Span) -> Option<TraceExemplar> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    (span_context.is_valid() && span_context.is_sampled()).then(|| TraceExemplar {
        trace_id: span_context.trace_id().to_string(),
    })
}

/// Observes `seconds` in `histograms` under `labels`, with the current span's trace.
pub fn observe<L>(
    histograms: &ExemplarHistograms<L>,
    labels: &L,
    seconds: f64,
    span: &tracing::Span,
) where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    histograms.get_or_create(labels).observe(
        seconds,
        exemplar_of(span),
        Some(std::time::SystemTime::now()),
    );
}

/// A new metric of type `M`, registered under `name`.
pub fn registered<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: Metric + Clone + Default,
{
    registered_with(registry, name, help, M::default())
}

/// `metric`, registered under `name`; the registry keeps a handle to the same values.
pub fn registered_with<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

/// Spans that left, or failed to leave, through the OTLP exporter. Spans the batch queue
/// dropped when full show as the difference between `ended` and the other two.
#[derive(Clone, Debug, Default)]
pub struct SpanCounters {
    pub ended: Counter,
    pub exported: Counter,
    pub failed: Counter,
}

impl SpanCounters {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "otel_spans_ended",
            "Sampled spans handed to the batch span processor",
            self.ended.clone(),
        );
        registry.register(
            "otel_spans_exported",
            "Spans the OTLP exporter delivered",
            self.exported.clone(),
        );
        registry.register(
            "otel_spans_export_failed",
            "Spans in export batches the collector did not accept (dropped)",
            self.failed.clone(),
        );
    }
}

/// `GET /metrics`.
pub fn render(registry: &Arc<Registry>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {err}"),
        )
            .into_response(),
    }
}
