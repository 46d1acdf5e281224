//! The CLIENT span of every attempt to call the echo service, as the HTTP client semantic
//! conventions describe it: named `{method} {url.template}`, numeric attributes as integers,
//! and `http.request.resend_count` on retries.
//!
//! reqwest-tracing's own backends record the status code and port through `Display` or as
//! `u16`, which tracing-opentelemetry 0.33 exports as strings; backends that query by type
//! (`span.http.response.status_code >= 500`) would find nothing.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_tracing::ReqwestOtelSpanBackend;
use tracing::Span;
use tracing::field::Empty;

/// The route of a request, set by the caller as a request extension: `url.template`.
#[derive(Clone, Debug)]
pub struct UrlTemplate(pub String);

/// Attempts already sent with these extensions. The retry middleware hands the same
/// extensions to every attempt, so this counts resends.
#[derive(Clone, Copy, Debug, Default)]
struct Attempts(i64);

pub struct EchoSpanBackend;

impl ReqwestOtelSpanBackend for EchoSpanBackend {
    fn on_request_start(request: &Request, extensions: &mut Extensions) -> Span {
        let url = request.url();
        let method = request.method();
        let template = extensions.get::<UrlTemplate>().map(|t| t.0.clone());
        let name = match &template {
            Some(template) => format!("{method} {template}"),
            None => method.to_string(),
        };
        let sent_before = extensions.get::<Attempts>().copied().unwrap_or_default().0;
        extensions.insert(Attempts(sent_before + 1));
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = name,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %method,
            http.request.resend_count = Empty,
            http.response.status_code = Empty,
            url.full = %url,
            url.template = Empty,
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default().map(i64::from),
            error.type = Empty,
        );
        if let Some(template) = template {
            span.record("url.template", template);
        }
        if sent_before > 0 {
            span.record("http.request.resend_count", sent_before);
        }
        span
    }

    fn on_request_end(
        span: &Span,
        outcome: &reqwest_middleware::Result<Response>,
        _: &mut Extensions,
    ) {
        match outcome {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", i64::from(status.as_u16()));
                // For a client every 4xx and 5xx is an error.
                if status.is_client_error() || status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", status.as_str());
                }
            }
            Err(err) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error_type(err));
            }
        }
    }
}

/// A low-cardinality name for a failure without a response.
fn error_type(err: &reqwest_middleware::Error) -> &'static str {
    match err {
        reqwest_middleware::Error::Reqwest(err) if err.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(err) if err.is_connect() => "connection_failed",
        reqwest_middleware::Error::Reqwest(_) => "request_failed",
        reqwest_middleware::Error::Middleware(_) => "middleware_failed",
    }
}
