//! Assertions on exported traces: the spans of one trace, the look-ups the tests need, and
//! the probes that tell `eventually` whether a trace has arrived whole.

use super::otlp::{self, KIND_CLIENT, SpanRecord};
use super::telemetry::{flush_operator_spans, receiver};

/// `service.name` of the operator's spans (this process stands in for it).
pub const OPERATOR: &str = "echo-operator";
/// `service.name` of the echo-server binary's spans.
pub const ECHO: &str = "echo-server";

/// Spans of one trace, with the look-ups the assertions need.
pub struct Trace(pub Vec<SpanRecord>);

/// The spans of `trace_id` the receiver holds, after a flush of the operator's.
pub fn exported(trace_id: &str) -> Trace {
    flush_operator_spans();
    Trace(receiver().spans_of_trace(trace_id))
}

/// Every span the receiver holds, of any trace, after a flush of the operator's.
pub fn all_exported() -> Trace {
    flush_operator_spans();
    Trace(receiver().all_spans())
}

impl Trace {
    /// For `eventually`: this trace once `done` holds, else the spans so far.
    pub fn when(self, done: impl FnOnce(&Trace) -> bool) -> Result<Trace, String> {
        if done(&self) {
            Ok(self)
        } else {
            Err(otlp::describe(&self.0))
        }
    }

    /// Whether `service` sent a span called `name`.
    pub fn has(&self, service: &str, name: &str) -> bool {
        self.0
            .iter()
            .any(|s| s.service == service && s.name == name)
    }

    /// Whether any process sent a span called `name`.
    pub fn has_named(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }

    /// Whether the parent of every span has arrived too. A parent ends after its children
    /// and may reach the receiver a batch later, so a trace that starts in the test (no
    /// remote parent) is complete only when this holds.
    pub fn parents_arrived(&self) -> bool {
        self.0.iter().all(|span| {
            span.parent_span_id
                .as_deref()
                .is_none_or(|parent| self.0.iter().any(|s| s.span_id == parent))
        })
    }

    pub fn one(&self, service: &str, name: &str) -> &SpanRecord {
        let found = self.all(service, |s| s.name == name);
        assert_eq!(
            found.len(),
            1,
            "expected one {service} span {name:?}:\n{}",
            otlp::describe(&self.0)
        );
        found[0]
    }

    pub fn all(&self, service: &str, pred: impl Fn(&SpanRecord) -> bool) -> Vec<&SpanRecord> {
        self.0
            .iter()
            .filter(|s| s.service == service && pred(s))
            .collect()
    }

    /// The operator's CLIENT spans that called the echo service (not the API server).
    pub fn echo_calls(&self) -> Vec<&SpanRecord> {
        self.all(OPERATOR, |s| {
            s.kind == KIND_CLIENT
                && s.attr("url.full")
                    .is_some_and(|url| url.contains("/v1/echoes/") && !url.contains("/apis/"))
        })
    }

    pub fn children_of<'a>(&'a self, parent: &SpanRecord) -> Vec<&'a SpanRecord> {
        self.0
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(parent.span_id.as_str()))
            .collect()
    }

    pub fn assert_parent(&self, child: &SpanRecord, parent: &SpanRecord) {
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(parent.span_id.as_str()),
            "{} ({}) should be a child of {} ({}):\n{}",
            child.name,
            child.service,
            parent.name,
            parent.service,
            otlp::describe(&self.0)
        );
    }
}
