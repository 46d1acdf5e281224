//! Span attributes of the operator's own namespace, `echo_operator.`, for what no semantic
//! convention names. Where one does (`error.type`, `k8s.namespace.name`, ...), spans use it.
//! docs/trace-design.md lists them with their values.

/// On a span link: where the linked context came from, one of the `LINK_FROM_*` values.
pub const LINK_SOURCE: &str = "echo_operator.link.source";
/// The link names the context in the object's KEP-5915 annotation.
pub const LINK_FROM_ANNOTATION: &str = crate::crd::K8S_TRACEPARENT_ANNOTATION;
/// A watch event merged into this reconcile; the newest is the parent, not a link.
pub const LINK_FROM_WATCH_EVENT: &str = "watch_event";
/// The object's previous reconcile, linked by a reconcile no watch event caused.
pub const LINK_FROM_PREVIOUS_RECONCILE: &str = "previous_reconcile";

/// On the `reconcile` span, set when it ends: `success`, `error` or `requeue`.
pub const RESULT: &str = "echo_operator.reconcile.result";
/// What caused the reconcile: `watch_event`, `error_retry`, `requeue` or `resync`.
pub const TRIGGER: &str = "echo_operator.reconcile.trigger";
/// What the reconcile wrote, in this order, comma-separated: `finalizer` (added or removed),
/// `echo` (stored or deleted in the echo service), `status`, `event`; or `none`.
pub const WRITES: &str = "echo_operator.reconcile.writes";
/// Requests sent to the echo service, every attempt counted (integer).
pub const ECHO_ATTEMPTS: &str = "echo_operator.reconcile.echo_attempts";
/// The reason of the `Ready` condition the reconcile arrived at (absent after a cleanup).
pub const READY_REASON: &str = "echo_operator.reconcile.ready_reason";
