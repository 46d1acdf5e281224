//! The one place HTTP spans are made and closed, for the three kinds of call this project
//! traces: the operator's calls to the echo service and to the Kubernetes API (CLIENT), and
//! the echo service's requests (SERVER).
//!
//! They follow the HTTP semantic conventions: named `{method} {route or template}`, numeric
//! attributes recorded as `i64` (tracing-opentelemetry 0.33 exports unsigned integers as
//! strings, and backends that query by type would find nothing), and the error rule of each
//! side: a client fails on every 4xx and 5xx, a server only on 5xx (a 4xx is the caller's
//! mistake).

use http::{Method, StatusCode, Version};
use tracing::Span;
use tracing::field::Empty;

/// Which side of the call a span stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// What a CLIENT span says about the request it covers.
pub struct ClientRequest<'a> {
    pub method: &'a Method,
    pub url_full: &'a str,
    /// The route with placeholders (`url.template`), which also names the span.
    pub template: Option<&'a str>,
    pub server_address: &'a str,
    pub server_port: Option<u16>,
    /// Attempts sent before this one (`http.request.resend_count`, absent on the first).
    pub resend_count: i64,
}

/// What a SERVER span says about the request it covers.
pub struct ServerRequest<'a> {
    pub method: &'a Method,
    /// The matched route (`http.route`), which also names the span.
    pub route: Option<&'a str>,
    pub path: &'a str,
    pub version: Version,
    /// The `Host` header without its port.
    pub server_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The method as the conventions name it: one of the methods HTTP defines, or `_OTHER`. A
/// server must not let every invented method become a new span name or metric series.
pub fn known_method(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("_OTHER", |known| known.as_str())
}

/// `{method} {route}`, or the method alone when no route is known (a raw path would give
/// every object its own span name); `HTTP` stands for a method HTTP does not define.
fn span_name(method: &Method, route: Option<&str>) -> String {
    let method = match known_method(method) {
        "_OTHER" => "HTTP",
        known => known,
    };
    match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    }
}

/// A CLIENT span for one request; close it with [`record_status`] or [`record_failure`].
pub fn client_span(request: &ClientRequest<'_>) -> Span {
    let span = tracing::info_span!(
        "HTTP client request",
        otel.name = span_name(request.method, request.template),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %request.method,
        http.request.resend_count = Empty,
        http.response.status_code = Empty,
        url.full = request.url_full,
        url.template = request.template,
        server.address = request.server_address,
        server.port = request.server_port.map(i64::from),
        error.type = Empty,
    );
    if request.resend_count > 0 {
        span.record("http.request.resend_count", request.resend_count);
    }
    span
}

/// A SERVER span for one request; close it with [`record_status`]. `trace_id` is left for
/// the caller to fill once the parent is set.
pub fn server_span(request: &ServerRequest<'_>) -> Span {
    let method = known_method(request.method);
    // The original only where it is not one of the known methods, as the conventions say.
    let method_original = (method == "_OTHER").then(|| request.method.as_str());
    tracing::info_span!(
        "HTTP request",
        otel.name = span_name(request.method, request.route),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.request.method_original = method_original,
        http.route = request.route,
        http.response.status_code = Empty,
        url.path = request.path,
        url.scheme = "http",
        network.protocol.version = protocol_version(request.version),
        server.address = request.server_address,
        user_agent.original = request.user_agent,
        error.type = Empty,
        trace_id = Empty,
    )
}

/// Records the answer's status on a span of `side`, and marks the span failed where that
/// side's rule says the status is an error.
pub fn record_status(span: &Span, side: Side, status: StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    let failed = match side {
        Side::Client => status.is_client_error() || status.is_server_error(),
        Side::Server => status.is_server_error(),
    };
    if failed {
        record_failure(span, status.as_str());
    }
}

/// Marks the span failed; `error_type` is low-cardinality (a status code, `timeout`, ...).
pub fn record_failure(span: &Span, error_type: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type);
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_use_the_route_never_the_raw_path() {
        assert_eq!(
            span_name(&Method::PUT, Some("/v1/echoes/{namespace}/{name}")),
            "PUT /v1/echoes/{namespace}/{name}"
        );
        assert_eq!(span_name(&Method::GET, None), "GET");
    }

    #[test]
    fn invented_methods_are_other() {
        let invented = Method::from_bytes(b"BREW").expect("a token is a valid method");
        assert_eq!(known_method(&invented), "_OTHER");
        assert_eq!(known_method(&Method::PATCH), "PATCH");
        assert_eq!(span_name(&invented, Some("/x")), "HTTP /x");
    }
}
