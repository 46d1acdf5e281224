//! Counts spans on their way out, for the `otel_spans_*` metrics: a processor in front of the
//! batch processor counts what is handed over, an exporter wrapper counts what the collector
//! took or refused. Counting is a few atomic adds; it never blocks or fails the span.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::metrics::SpanCounters;

#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    counters: SpanCounters,
}

impl<E> CountingExporter<E> {
    pub fn new(inner: E, counters: SpanCounters) -> Self {
        Self { inner, counters }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.counters.exported.inc_by(spans),
            Err(_) => self.counters.failed.inc_by(spans),
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
pub struct CountingProcessor<P> {
    inner: P,
    counters: SpanCounters,
}

impl<P> CountingProcessor<P> {
    pub fn new(inner: P, counters: SpanCounters) -> Self {
        Self { inner, counters }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.counters.ended.inc();
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
