//! What a span costs, layer by layer: the span work of one echo request (2 spans) and of one
//! reconcile (9 spans), run through the subscriber the binaries install
//! (`telemetry::stack::build`, with an exporter that discards), and through the same stack
//! with one layer removed at a time. The difference between two rows is what that layer
//! costs. `cargo bench --bench span_cost`; `make bench-spans` prints the table.
//!
//! The exporter that discards leaves out what opentelemetry-otlp does with each batch on its
//! own thread: a second group times that work (copy, conversion to protobuf messages,
//! encoding) on batches of the spans the same functions make.

use std::hint::black_box;
use std::sync::{Arc, Mutex, PoisonError};

use criterion::{Criterion, criterion_group, criterion_main};
use echo_operator::operator::watch::trace_links::TraceLinks;
use echo_operator::telemetry::http_span::{self, ClientRequest, ServerRequest, Side};
use echo_operator::telemetry::stack::{self, Layers};
use echo_operator::telemetry::{TelemetryConfig, propagation};
use http::{Method, StatusCode, Version};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Spans leave through the batch processor as in production, and go nowhere.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// Keeps every span the batch processor hands over, and the resource the provider sets.
#[derive(Debug, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl SpanExporter for Capture {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        lock(&self.spans).extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *lock(&self.resource) = Some(resource.clone());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The echo-server's span work for one PUT: the SERVER span continued from `traceparent`,
/// the store's span, the access-log event.
fn echo_request(headers: &http::HeaderMap) {
    let span = http_span::server_span(&ServerRequest {
        method: &Method::PUT,
        route: Some(echo_operator::echo_api::ROUTE),
        path: "/v1/echoes/default/bench",
        version: Version::HTTP_11,
        server_address: Some("echo-server"),
        user_agent: Some("echo-operator/0.1.0 (bench)"),
    });
    let _ = span.set_parent(propagation::extract_from_headers(headers));
    span.in_scope(|| {
        let _store = tracing::info_span!("store write", echo.namespace = "default").entered();
    });
    http_span::record_status(&span, Side::Server, StatusCode::OK);
    span.in_scope(|| tracing::info!(status = 200i64, "request answered"));
}

/// One CLIENT call inside a step span, as the operator makes them.
fn call(step: &'static str, method: &Method, template: &str) {
    let step = match step {
        "add finalizer" => tracing::info_span!("add finalizer"),
        "write status" => tracing::info_span!("write status"),
        _ => tracing::info_span!("publish event", event.reason = "Reconciled"),
    };
    step.in_scope(|| {
        let client = http_span::client_span(&ClientRequest {
            method,
            url_full: "https://10.96.0.1:443/apis/tracing.example.com/v1alpha1/namespaces/default/echoes/bench",
            template: Some(template),
            server_address: "10.96.0.1",
            server_port: Some(443),
            resend_count: 0,
        });
        http_span::record_status(&client, Side::Client, StatusCode::OK);
    });
}

const OBJECT_REF: &str = "Echo.v1alpha1.tracing.example.com/bench.default";

/// The operator's span work for one create: kube-runtime's span given its parent by the
/// trace hand-over, the reconcile, the finalizer patch, the echo call, the status write and
/// the Event, with their CLIENT spans.
fn reconcile(links: &TraceLinks) {
    let runtime = tracing::info_span!(
        parent: None,
        "reconciling object",
        object.ref = OBJECT_REF,
        object.reason = "object updated",
    );
    runtime.in_scope(|| {
        let _ = runtime.set_parent(links.start_reconcile(OBJECT_REF.into()).parent);
        let span = tracing::info_span!(
            "reconcile",
            otel.name = "reconcile Echo",
            k8s.namespace.name = "default",
            k8s.object.name = "bench",
            k8s.object.generation = 1i64,
            deleting = false,
        );
        span.in_scope(|| {
            let echo_template = "/v1/echoes/{namespace}/{name}";
            call(
                "add finalizer",
                &Method::PATCH,
                "/apis/{group}/echoes/{name}",
            );
            let echo = http_span::client_span(&ClientRequest {
                method: &Method::PUT,
                url_full: "http://echo-server:8080/v1/echoes/default/bench",
                template: Some(echo_template),
                server_address: "echo-server",
                server_port: Some(8080),
                resend_count: 0,
            });
            http_span::record_status(&echo, Side::Client, StatusCode::OK);
            drop(echo);
            tracing::info!(reply = "echo: hello", "echo service answered");
            call(
                "write status",
                &Method::PATCH,
                "/apis/{group}/echoes/{name}/status",
            );
            call(
                "publish event",
                &Method::POST,
                "/apis/events.k8s.io/v1/events",
            );
        });
    });
}

fn config(json_logs: bool) -> TelemetryConfig {
    TelemetryConfig {
        json_logs,
        ..TelemetryConfig::from_lookup("span-cost", |key| {
            (key == "RUST_LOG").then(|| "info".to_owned())
        })
    }
}

/// The least this stack can do and still give spans trace ids: the registry and
/// tracing-opentelemetry's layer with the SDK behind it, no log, no counters.
const FLOOR: Layers = Layers {
    log: false,
    otel: true,
    end_at_close: true,
    counting: false,
};

/// Each row: a name, the configuration, the layers, and whether spans are exported.
fn stacks() -> Vec<(&'static str, TelemetryConfig, Layers, bool)> {
    let without = |change: fn(&mut Layers)| {
        let mut layers = Layers::ALL;
        change(&mut layers);
        layers
    };
    vec![
        ("full stack", config(false), Layers::ALL, true),
        ("full stack, JSON logs", config(true), Layers::ALL, true),
        ("recorded, not exported", config(false), Layers::ALL, false),
        (
            "without span counters",
            config(false),
            without(|l| l.counting = false),
            true,
        ),
        (
            "without EndAtClose",
            config(false),
            without(|l| l.end_at_close = false),
            true,
        ),
        (
            "without the log layer",
            config(false),
            without(|l| l.log = false),
            true,
        ),
        (
            "without OpenTelemetry (logs only)",
            config(false),
            without(|l| l.otel = false),
            true,
        ),
        // Minus the registry-only row: the floor of what recording costs (mode R).
        (
            "floor: OpenTelemetry alone, recorded",
            config(false),
            FLOOR,
            false,
        ),
        // The same handing every span to the batch processor and an exporter that discards:
        // the floor of exporting (mode C) before any encoding.
        (
            "floor: OpenTelemetry alone, exported",
            config(false),
            FLOOR,
            true,
        ),
        (
            "no layer (registry only)",
            config(false),
            without(|l| {
                l.otel = false;
                l.log = false;
            }),
            true,
        ),
    ]
}

fn span_cost(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_static(TRACEPARENT));
    for (name, config, layers, exporting) in stacks() {
        let links = TraceLinks::default();
        let exporter = exporting.then_some(Discard);
        let built = stack::build(&config, layers, exporter, std::io::sink);
        tracing::dispatcher::with_default(&built.dispatch, || {
            let mut group = c.benchmark_group(name);
            group.bench_function("echo request (2 spans)", |b| {
                b.iter(|| echo_request(black_box(&headers)))
            });
            group.bench_function("reconcile (9 spans)", |b| b.iter(|| reconcile(&links)));
            group.finish();
        });
        if let Some(provider) = built.provider {
            let _ = provider.shutdown();
        }
        let ended = built.counters.ended.get();
        let exported = built.counters.exported.get();
        if ended > exported {
            eprintln!(
                "{name}: {} of {ended} spans dropped by the full batch queue",
                ended - exported
            );
        }
    }
}

/// The spans one run of `work` exports through the binaries' full stack, and the resource
/// they are exported with.
fn captured(work: impl Fn()) -> (Vec<SpanData>, Resource) {
    let capture = Capture::default();
    let (spans, resource) = (capture.spans.clone(), capture.resource.clone());
    let built = stack::build(&config(false), Layers::ALL, Some(capture), std::io::sink);
    tracing::dispatcher::with_default(&built.dispatch, work);
    if let Some(provider) = built.provider {
        let _ = provider.shutdown();
    }
    let spans = std::mem::take(&mut *lock(&spans));
    let resource = lock(&resource)
        .take()
        .unwrap_or_else(|| Resource::builder().build());
    (spans, resource)
}

/// What opentelemetry-otlp's exporter does with one batch before its transport (gRPC framing,
/// HTTP/2, the socket) sends it: `TonicTracesClient::export` copies the batch and groups it
/// into protobuf messages (`group_spans_by_resource_and_scope`), which tonic then encodes.
/// Batches the size each binary exports: the SDK's 512 spans for the echo-server, 256 for the
/// operator (deploy/30-operator.yaml); divide by the units in a batch for the cost per
/// request or per reconcile.
fn otlp_work(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_static(TRACEPARENT));
    let links = TraceLinks::default();
    let mut group = c.benchmark_group("opentelemetry-otlp, per batch");
    otlp_batch(&mut group, "echo requests", 256, || echo_request(&headers));
    otlp_batch(&mut group, "reconciles", 28, || reconcile(&links));
    group.finish();
}

/// Times the exporter's work on a batch of `count` runs of `work`'s spans.
fn otlp_batch(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    unit: &str,
    count: usize,
    work: impl Fn(),
) {
    let (spans, resource) = captured(work);
    let resource = ResourceAttributesWithSchema::from(&resource);
    let batch: Vec<SpanData> = (0..count).flat_map(|_| spans.iter().cloned()).collect();
    let name = format!("{count} {unit} ({} spans)", batch.len());
    group.bench_function(format!("copy and convert: {name}"), |b| {
        b.iter(|| group_spans_by_resource_and_scope(batch.clone(), &resource))
    });
    group.bench_function(format!("copy, convert and encode: {name}"), |b| {
        b.iter(|| {
            let resource_spans = group_spans_by_resource_and_scope(batch.clone(), &resource);
            ExportTraceServiceRequest { resource_spans }.encode_to_vec()
        })
    });
}

criterion_group!(benches, span_cost, otlp_work);
criterion_main!(benches);
