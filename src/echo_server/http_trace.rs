//! The SERVER span of every API request, continuing the caller's trace from `traceparent`.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::{EchoMetrics, RequestLabels};
use crate::telemetry::http_span::{self, ServerRequest, Side};
use crate::telemetry::propagation;

/// Wraps the request in a SERVER span. A missing or malformed `traceparent` simply yields a
/// new trace.
pub async fn server_span(
    State(metrics): State<Arc<EchoMetrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = matched.as_ref().map(MatchedPath::as_str);
    // A block, so no borrow of the request (whose body is not `Sync`) lives across an await.
    let span = {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|h: &http::HeaderValue| h.to_str().ok())
        };
        http_span::server_span(&ServerRequest {
            method: &method,
            route,
            path: request.uri().path(),
            version: request.version(),
            server_address: header(http::header::HOST).and_then(|host| host.split(':').next()),
            user_agent: header(http::header::USER_AGENT),
        })
    };
    // The parent must be set before anything reads the span's context, which starts it;
    // afterwards it is fixed.
    let _ = span.set_parent(propagation::extract_from_headers(request.headers()));
    if let Some(trace_id) = crate::telemetry::trace_id_of(&span) {
        span.record("trace_id", trace_id);
    }

    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    metrics.request(
        RequestLabels {
            method: http_span::known_method(&method),
            route: route.unwrap_or("unmatched").to_owned(),
            status: status.as_str().to_owned(),
        },
        started.elapsed(),
        &span,
    );
    http_span::record_status(&span, Side::Server, status);
    span.in_scope(|| tracing::info!(status = i64::from(status.as_u16()), "request answered"));
    response
}
