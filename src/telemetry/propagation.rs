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
    let well_formed = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_well_formed);
    if !well_formed {
        return opentelemetry::Context::new();
    }
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The W3C shape `vv-<32 hex>-<16 hex>-ff` in lowercase, which the propagator alone checks
/// too leniently (it accepts short ids).
fn is_well_formed(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    match parts.as_slice() {
        [version, trace_id, parent_id, flags, ..] => {
            hex(version, 2)
                && *version != "ff"
                && (*version != "00" || parts.len() == 4)
                && hex(trace_id, 32)
                && hex(parent_id, 16)
                && hex(flags, 2)
        }
        _ => false,
    }
}

/// Writes `cx` into `headers` as `traceparent` (and `tracestate` when there is one).
pub fn inject_into_headers(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Parses one `traceparent` value; `None` when it is not a valid W3C traceparent.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    if !is_well_formed(value) {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), value.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// `span_context` as a W3C `traceparent` value (version 00, as the propagator writes it);
/// `None` when it is not valid. One allocation, where the propagator needs a carrier map.
pub fn traceparent_of(span_context: &SpanContext) -> Option<String> {
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// How much of an untrusted value a log line quotes.
pub const EXCERPT_CHARS: usize = 64;

/// The first `max_chars` characters of `value`, with control characters and quotes escaped,
/// and the full length when it was cut: safe to put in one log line.
pub fn excerpt(value: &str, max_chars: usize) -> String {
    let escaped: String = value
        .chars()
        .take(max_chars)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(max_chars).is_some() {
        format!("{escaped}… ({} bytes)", value.len())
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        let hostile = format!(
            "00-x\n2026-01-01 INFO forged line\n{}",
            "a".repeat(256 * 1024)
        );
        let cut = excerpt(&hostile, EXCERPT_CHARS);
        assert!(!cut.contains('\n'), "{cut}");
        assert!(cut.chars().count() < EXCERPT_CHARS * 2 + 20, "{cut}");
        assert!(
            cut.ends_with(&format!("({} bytes)", hostile.len())),
            "{cut}"
        );
        assert_eq!(excerpt("short", EXCERPT_CHARS), "short");
    }

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
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // what an annotation can hold: 64 KiB after a valid prefix
            &format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01{}",
                "0".repeat(64 * 1024)
            ),
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn malformed_header_gives_an_empty_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-abc-def-01"),
        );
        assert!(
            !extract_from_headers(&headers)
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn a_span_context_becomes_the_traceparent_it_was_parsed_from() {
        for value in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ] {
            let sc = parse_traceparent(value).expect("valid traceparent");
            assert_eq!(traceparent_of(&sc).as_deref(), Some(value));
        }
        assert_eq!(traceparent_of(&SpanContext::empty_context()), None);
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
