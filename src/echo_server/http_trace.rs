//! The SERVER span of every API request, continuing the caller's trace from `traceparent`.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::{EchoMetrics, RequestLabels};
use crate::telemetry::propagation;

/// Wraps the request in a span that follows the HTTP server semantic conventions. A missing
/// or malformed `traceparent` simply yields a new trace.
pub async fn server_span(
    State(metrics): State<Arc<EchoMetrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = matched.as_ref().map(MatchedPath::as_str);
    let span_name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %span_name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = Empty,
        http.response.status_code = Empty,
        url.path = %request.uri().path(),
        url.scheme = "http",
        network.protocol.version = protocol_version(request.version()),
        server.address = Empty,
        user_agent.original = Empty,
        error.type = Empty,
        trace_id = Empty,
    );
    if let Some(route) = route {
        span.record("http.route", route);
    }
    if let Some(host) = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        span.record("server.address", host.split(':').next().unwrap_or(host));
    }
    if let Some(agent) = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
    {
        span.record("user_agent.original", agent);
    }
    // The parent must be set before the span is first entered; afterwards it is fixed.
    let _ = span.set_parent(propagation::extract_from_headers(request.headers()));
    if let Some(trace_id) = crate::telemetry::trace_id_of(&span) {
        span.record("trace_id", trace_id);
    }

    let response = next.run(request).instrument(span.clone()).await;
    metrics.request(
        RequestLabels {
            method: method.to_string(),
            route: route.unwrap_or("unmatched").to_owned(),
            status: response.status().as_str().to_owned(),
        },
        started.elapsed(),
        &span,
    );

    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    // For a server, only 5xx is an error; 4xx is the client's mistake.
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    span.in_scope(|| tracing::info!(status = i64::from(status.as_u16()), "request answered"));
    response
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
