//! An OTLP/HTTP receiver inside the test process: it decodes every export it receives and
//! keeps the spans, so tests assert on what really crossed the wire.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One exported span, flattened for assertions.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Every attribute as text, whatever its OTLP type.
    pub attributes: HashMap<String, String>,
    /// The attributes that arrived as OTLP integers, to assert types, not just values.
    pub ints: HashMap<String, i64>,
    pub resource: HashMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// The attributes of each link, in the order of `links`.
    pub link_attributes: Vec<HashMap<String, String>>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Span events (a `tracing` event's message is its name) with their attributes.
    pub events: Vec<EventRecord>,
}

impl SpanRecord {
    /// An attribute as text, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The attributes of the link to `(trace id, span id)`, if the span has that link.
    pub fn link_to(&self, trace_id: &str, span_id: &str) -> Option<&HashMap<String, String>> {
        let index = self
            .links
            .iter()
            .position(|(t, s)| t == trace_id && s == span_id)?;
        self.link_attributes.get(index)
    }
}

#[derive(Clone, Debug)]
pub struct EventRecord {
    pub name: String,
    pub attributes: HashMap<String, String>,
}

pub const KIND_SERVER: i32 = 2;
pub const KIND_CLIENT: i32 = 3;
pub const KIND_CONSUMER: i32 = 5;
pub const STATUS_ERROR: i32 = 2;

#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    addr: Option<SocketAddr>,
}

impl Receiver {
    /// Starts on 127.0.0.1 with a free port, on a runtime of its own that lives as long as
    /// the test process, so it outlives every test's runtime.
    pub fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let state = spans.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind receiver");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = axum::Router::new()
                    .route("/v1/traces", post(export))
                    .with_state(state);
                axum::serve(listener, app).await.expect("receiver serve");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver started");
        Self {
            spans,
            addr: Some(addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    /// Base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr.expect("started"))
    }

    pub fn spans_of_trace(&self, trace_id: &str) -> Vec<SpanRecord> {
        let spans = self.spans.lock().expect("spans lock");
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    pub fn all_spans(&self) -> Vec<SpanRecord> {
        self.spans.lock().expect("spans lock").clone()
    }
}

pub fn describe(spans: &[SpanRecord]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "  {} {:<28} kind={} id={} parent={:?} attrs={:?}",
                s.service, s.name, s.kind, s.span_id, s.parent_span_id, s.attributes
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn export(State(spans): State<Arc<Mutex<Vec<SpanRecord>>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource: HashMap<String, String> = resource_spans
            .resource
            .map(|r| {
                r.attributes
                    .into_iter()
                    .map(|kv| (kv.key, value_string(kv.value)))
                    .collect()
            })
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(SpanRecord {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    kind: span.kind,
                    status_code: span.status.as_ref().map_or(0, |s| s.code),
                    ints: span
                        .attributes
                        .iter()
                        .filter_map(
                            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(Value::IntValue(i)) => Some((kv.key.clone(), *i)),
                                _ => None,
                            },
                        )
                        .collect(),
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, value_string(kv.value)))
                        .collect(),
                    resource: resource.clone(),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    link_attributes: span
                        .links
                        .into_iter()
                        .map(|l| {
                            l.attributes
                                .into_iter()
                                .map(|kv| (kv.key, value_string(kv.value)))
                                .collect()
                        })
                        .collect(),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| EventRecord {
                            name: e.name,
                            attributes: e
                                .attributes
                                .into_iter()
                                .map(|kv| (kv.key, value_string(kv.value)))
                                .collect(),
                        })
                        .collect(),
                });
            }
        }
    }
    spans.lock().expect("spans lock").extend(out);
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_string(value: Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value) {
        Some(Value::StringValue(s)) => s,
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}
