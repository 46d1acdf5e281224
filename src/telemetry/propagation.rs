//! W3C trace context in and out of carriers this project uses: HTTP headers and the
//! `traceparent` annotation.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The remote context carried by `headers`; an absent or malformed `traceparent` yields an
/// empty context, so the caller simply starts a new trace.
pub fn extract_from_headers(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `cx` into `headers` as `traceparent` (and `tracestate` when there is one).
pub fn inject_into_headers(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Parses one `traceparent` value; `None` when it is not a valid W3C traceparent.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let carrier = HashMap::from([("traceparent".to_owned(), value.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_is_parsed() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid traceparent");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
    }

    #[test]
    fn invalid_traceparents_are_rejected() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers_round_trip() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid traceparent");
        let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
        let mut headers = http::HeaderMap::new();
        inject_into_headers(&cx, &mut headers);
        let back = extract_from_headers(&headers);
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
        assert_eq!(back.span().span_context().span_id(), sc.span_id());
    }
}
