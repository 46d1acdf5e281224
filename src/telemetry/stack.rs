//! The subscriber both binaries install, as a value: a log layer, and the OpenTelemetry
//! layer feeding a batch processor and an exporter. [`build`]
//! makes it without installing it, so the span-cost benchmark can stack the same layers
//! with one removed at a time and measure what each costs per span.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanExporter};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, Layer, filter, layer::SubscriberExt};

use super::counting::{CountingExporter, CountingProcessor};
use super::end_at_close::EndAtClose;
use super::{SamplerChoice, TelemetryConfig, sampling};
use crate::metrics::SpanCounters;

/// Which layers the subscriber stacks: the binaries use all of them.
#[derive(Clone, Copy, Debug)]
pub struct Layers {
    /// The fmt log layer (text or JSON, per the configuration).
    pub log: bool,
    /// The OpenTelemetry layer and the tracer provider behind it.
    pub otel: bool,
    /// [`EndAtClose`] around the OpenTelemetry layer: no enter and exit hooks.
    pub end_at_close: bool,
    /// The span counters around the batch processor and the exporter.
    pub counting: bool,
}

impl Layers {
    pub const ALL: Self = Self {
        log: true,
        otel: true,
        end_at_close: true,
        counting: true,
    };
}

/// A subscriber ready to install, and what keeps its exporter alive.
pub struct Built {
    pub dispatch: tracing::Dispatch,
    pub provider: Option<SdkTracerProvider>,
    pub counters: SpanCounters,
    /// Problems met while building, to log once the subscriber is installed.
    pub warnings: Vec<String>,
}

/// Builds the subscriber for `config` with `layers`, exporting through `exporter` (none: spans
/// are recorded for their trace ids but go nowhere) and logging to `writer`.
pub fn build<E, W>(
    config: &TelemetryConfig,
    layers: Layers,
    exporter: Option<E>,
    writer: W,
) -> Built
where
    E: SpanExporter + 'static,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut warnings = config.warnings.clone();
    let log_filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|err| {
        warnings.push(format!(
            "RUST_LOG={:?} is invalid ({err}); using info",
            config.log_filter
        ));
        EnvFilter::new("info")
    });
    let log_layer = layers.log.then(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(config.ansi);
        if config.json_logs {
            layer.json().with_filter(log_filter).boxed()
        } else {
            layer.with_filter(log_filter).boxed()
        }
    });
    let counters = SpanCounters::default();
    let provider = (layers.otel && !config.sdk_disabled)
        .then(|| provider(config, &counters, exporter, layers.counting));
    let otel_layer = provider.as_ref().map(|provider| {
        let tracer = provider.tracer(config.service_name.clone());
        // Off: the source location, thread and busy/idle-time attributes the layer adds to
        // every span by default. Span names and attributes already say where the work is; a
        // thread means little on a work-stealing runtime; busy/idle time is no convention.
        // Measured by hand, side by side (echo-server exporting, under wrk): 15-20 % more
        // requests per second.
        //
        // Context activation off: entering a span no longer attaches its OpenTelemetry
        // context to the thread, which cost about 25 µs per reconcile (a tokio task enters
        // its spans at every poll; docs/performance.md). Nothing here reads
        // `opentelemetry::Context::current()`: parents come from the current tracing span,
        // and reqwest-tracing injects `Span::current().context()`. It also leaves a span
        // unstarted until something asks for its context, which is what lets the operator
        // choose the parent of kube-runtime's `reconciling object` span after kube-runtime
        // has created and entered it (`operator::reconcile`).
        let layer = tracing_opentelemetry::layer()
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_tracer(tracer)
            .with_filter(filter::filter_fn(exported));
        if layers.end_at_close {
            EndAtClose::new(layer).boxed()
        } else {
            layer.boxed()
        }
    });
    let subscriber = tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer);
    Built {
        dispatch: tracing::Dispatch::new(subscriber),
        provider,
        counters,
        warnings,
    }
}

/// Which spans and events reach OpenTelemetry: everything at info and above, never the
/// exporter's own transport, which would trace itself. kube-client's debug-level `HTTP`
/// span stays out: `operator::api_tracing` records each API request as one CLIENT span with
/// current semantic conventions, and a second CLIENT span per request would be a duplicate.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    const TRANSPORT: [&str; 5] = ["opentelemetry", "h2", "hyper", "tonic", "tower"];
    *meta.level() <= Level::INFO && !TRANSPORT.iter().any(|t| meta.target().starts_with(t))
}

fn provider<E: SpanExporter + 'static>(
    config: &TelemetryConfig,
    counters: &SpanCounters,
    exporter: Option<E>,
    counting: bool,
) -> SdkTracerProvider {
    let resource = Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_service_name(config.service_name.clone())
        .build();
    // The builder's default configuration reads OTEL_TRACES_SAMPLER and _ARG itself
    // (parentbased_always_on when unset); only our own value is set here.
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let SamplerChoice::LinkedTraceIdRatio(ratio) = config.sampler {
        builder = builder.with_sampler(sampling::LinkAwareSampler::traceidratio(ratio));
    }
    // The batch processor exports from its own thread and drops spans when its queue is
    // full, so a slow or absent collector never blocks the caller.
    match (exporter, counting) {
        (None, _) => {}
        (Some(exporter), true) => {
            let exporter = CountingExporter::new(exporter, counters.clone());
            let batch = BatchSpanProcessor::builder(exporter).build();
            builder = builder.with_span_processor(CountingProcessor::new(batch, counters.clone()));
        }
        (Some(exporter), false) => {
            builder = builder.with_span_processor(BatchSpanProcessor::builder(exporter).build());
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("a poisoned sink"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_that_is_no_terminal_gets_no_colour_escapes() {
        let config = TelemetryConfig::from_lookup("stack-test", |_| None);
        let sink = Captured::default();
        let writer = sink.clone();
        let built =
            build::<opentelemetry_otlp::SpanExporter, _>(&config, Layers::ALL, None, move || {
                writer.clone()
            });
        tracing::dispatcher::with_default(&built.dispatch, || {
            let span = tracing::info_span!("reconcile", k8s.object.name = "demo");
            span.in_scope(|| tracing::warn!(attempt = 2, "echo service answered 503"));
        });
        let log = String::from_utf8_lossy(&sink.0.lock().expect("the sink")).into_owned();
        assert!(log.contains("echo service answered 503"), "{log}");
        assert!(
            log.contains("k8s.object.name"),
            "the span's fields are in the line: {log}"
        );
        assert!(
            !log.contains('\u{1b}'),
            "colour escapes in a log file: {log:?}"
        );
    }
}
