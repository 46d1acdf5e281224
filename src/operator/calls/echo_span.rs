//! reqwest-tracing's span hooks for the echo client: one CLIENT span per attempt, made by
//! [`http_span`](crate::telemetry::http_span), with `http.request.resend_count` on retries.
//!
//! reqwest-tracing's own backends record the status code and port through `Display` or as
//! `u16`, which tracing-opentelemetry 0.33 exports as strings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_tracing::ReqwestOtelSpanBackend;
use tracing::Span;

use crate::telemetry::http_span::{self, ClientRequest, Side};

/// The route of a request, set by the caller as a request extension: `url.template`.
#[derive(Clone, Debug)]
pub struct UrlTemplate(pub String);

/// Counts the attempts of the calls it is handed to, resends included: the retry middleware
/// hands a request's extensions to each attempt, and [`EchoSpanBackend`] counts it here.
#[derive(Clone, Debug, Default)]
pub struct AttemptCounter(Arc<AtomicU32>);

impl AttemptCounter {
    pub(crate) fn count_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Attempts already sent with these extensions. The retry middleware hands the same
/// extensions to every attempt, so this counts resends.
#[derive(Clone, Copy, Debug, Default)]
struct Attempts(i64);

pub struct EchoSpanBackend;

impl ReqwestOtelSpanBackend for EchoSpanBackend {
    fn on_request_start(request: &Request, extensions: &mut Extensions) -> Span {
        let url = request.url();
        let sent_before = extensions.get::<Attempts>().copied().unwrap_or_default().0;
        extensions.insert(Attempts(sent_before + 1));
        if let Some(counter) = extensions.get::<AttemptCounter>() {
            counter.count_one();
        }
        http_span::client_span(&ClientRequest {
            method: request.method(),
            url_full: url.as_str(),
            template: extensions.get::<UrlTemplate>().map(|t| t.0.as_str()),
            server_address: url.host_str().unwrap_or_default(),
            server_port: url.port_or_known_default(),
            resend_count: sent_before,
        })
    }

    fn on_request_end(
        span: &Span,
        outcome: &reqwest_middleware::Result<Response>,
        _: &mut Extensions,
    ) {
        match outcome {
            Ok(response) => http_span::record_status(span, Side::Client, response.status()),
            Err(err) => http_span::record_failure(span, error_type(err)),
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
