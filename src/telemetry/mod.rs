//! Logging and tracing set-up shared by both binaries: one place that reads the `OTEL_*`
//! variables, builds the OTLP exporter and installs the `tracing` subscriber.

pub mod config;
mod counting;
pub mod end_at_close;
pub mod http_span;
pub mod propagation;
pub mod sampling;
pub mod stack;

use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::metrics::SpanCounters;
pub use config::{ExporterConfig, Protocol, SamplerChoice, TelemetryConfig};
pub use stack::Layers;

/// How long shutdown may wait for the last spans to leave; an unreachable collector must
/// not keep a terminating pod alive.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("a global tracing subscriber is already installed: {0}")]
    SubscriberAlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the tracer provider alive; flush or shut it down before the process exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    counters: SpanCounters,
}

impl Telemetry {
    /// How many spans were handed over, exported and refused, for the program's metrics.
    pub fn span_counters(&self) -> SpanCounters {
        self.counters.clone()
    }

    /// Exports every finished span now (blocks until the exporter answers or times out).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(err) = provider.force_flush()
        {
            tracing::warn!(error = %err, "flushing spans failed");
        }
    }

    /// Flushes and stops the exporter, giving up after a bounded time.
    pub fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // The SDK's shutdown blocks; a plain thread keeps it off the async runtime.
        std::thread::spawn(move || {
            let _ = done_tx.send(provider.shutdown_with_timeout(SHUTDOWN_BUDGET));
        });
        match done_rx.recv_timeout(SHUTDOWN_BUDGET + Duration::from_secs(1)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("telemetry: shutdown did not complete cleanly: {err}"),
            Err(_) => eprintln!("telemetry: gave up waiting for the span exporter"),
        }
    }
}

/// Installs the global subscriber: log output always, OpenTelemetry export when configured.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut problems = Vec::new();
    let exporter = config.exporter.as_ref().and_then(|exporter| {
        build_exporter(exporter)
            .map_err(|err| {
                problems.push(format!(
                    "cannot build the OTLP exporter for {}: {err}; spans will not be exported",
                    exporter.endpoint
                ))
            })
            .ok()
    });
    let built = stack::build(config, Layers::ALL, exporter, std::io::stdout);
    built.dispatch.try_init()?;
    for warning in built.warnings.iter().chain(&problems) {
        tracing::warn!("{warning}");
    }
    match (&config.exporter, &built.provider) {
        (Some(exporter), Some(_)) => tracing::info!(
            endpoint = %exporter.endpoint,
            protocol = ?exporter.protocol,
            service.name = %config.service_name,
            "exporting spans over OTLP"
        ),
        (_, None) => tracing::info!("OTEL_SDK_DISABLED is set: no spans are recorded"),
        (None, Some(_)) => tracing::info!(
            "no OTEL_EXPORTER_OTLP_ENDPOINT: spans are recorded for trace ids but not exported"
        ),
    }
    Ok(Telemetry {
        provider: built.provider,
        counters: built.counters,
    })
}

/// The OTLP exporter for `config`. `https://` endpoints use rustls with the system's roots,
/// plus the certificate authorities in `OTEL_EXPORTER_OTLP_CERTIFICATE` when it is set.
fn build_exporter(config: &ExporterConfig) -> Result<SpanExporter, String> {
    crate::tls::install_crypto_provider();
    let extra_ca = match &config.certificate {
        Some(path) => Some(crate::tls::read_ca_bundle(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let https = config.endpoint.starts_with("https://");
    let built = match config.protocol {
        Protocol::HttpProtobuf => {
            let builder = SpanExporter::builder()
                .with_http()
                .with_endpoint(config.endpoint.clone());
            match extra_ca {
                // Otherwise the SDK builds its own client (system roots).
                None => builder.build(),
                Some(pem) => builder.with_http_client(http_client_trusting(pem)?).build(),
            }
        }
        Protocol::Grpc => {
            let builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone());
            if https {
                let mut tls = ClientTlsConfig::new().with_native_roots();
                if let Some(pem) = extra_ca {
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                builder.with_tls_config(tls).build()
            } else {
                builder.build()
            }
        }
    };
    built.map_err(|e| e.to_string())
}

/// The blocking client the HTTP exporter sends with, trusting `pem` as well. Built on a
/// thread of its own: reqwest's blocking client must not be created inside the async
/// runtime, and `init` may be called from one.
fn http_client_trusting(pem: Vec<u8>) -> Result<reqwest::blocking::Client, String> {
    let timeout = otlp_timeout();
    std::thread::spawn(move || {
        let mut builder = reqwest::blocking::Client::builder().timeout(timeout);
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)? {
            builder = builder.add_root_certificate(certificate);
        }
        builder.build()
    })
    .join()
    .map_err(|_| "the thread building the OTLP client panicked".to_owned())?
    .map_err(|e| format!("invalid CA bundle or TLS set-up: {e}"))
}

/// `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` in milliseconds (default 10 s), which the SDK
/// applies only to the client it builds itself.
fn otlp_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|key| std::env::var(key).ok()?.trim().parse::<u64>().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Trace id of `span` as 32 hex digits, or `None` when it is not recorded.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
