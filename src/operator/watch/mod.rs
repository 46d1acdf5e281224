//! The watch and its trace hand-over: turns the raw watch stream into the controller's
//! trigger stream. Every change that needs a reconcile (see [`change_filter`]) gets a
//! `watch event` span, continued from the object's traceparent annotation when it carries
//! one (and linked to the context in KEP-5915's `tracing.k8s.io/traceparent`), and that
//! span's context goes to [`trace_links`] until the reconcile it causes starts.

pub mod change_filter;
mod skipping;
pub mod trace_links;
pub mod watched;

use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::crd::{Echo, K8S_TRACEPARENT_ANNOTATION, TRACEPARENT_ANNOTATION};
use crate::operator::attributes::{LINK_FROM_ANNOTATION, LINK_SOURCE};
use crate::operator::process::metrics::Metrics;
use crate::telemetry::propagation;
use change_filter::{ChangeFilter, Decision};
use trace_links::TraceLinks;

/// `gone` is told the key of every object that no longer exists, so per-object state
/// elsewhere (trace links, backoff) is dropped with it.
pub fn traced_triggers<S>(
    events: S,
    links: Arc<TraceLinks>,
    metrics: Arc<Metrics>,
    gone: impl Fn(&str),
) -> impl Stream<Item = Result<Echo, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<Echo>, watcher::Error>>,
{
    let mut filter = ChangeFilter::default();
    events.flat_map(move |event| {
        let trigger = match event {
            Err(err) => Some(Err(err)),
            Ok(event) => {
                metrics.watch_event(event_name(&event));
                match filter.decide(event) {
                    Decision::Reconcile(event_type, echo) => {
                        record_watch_event(event_type, &echo, &links);
                        Some(Ok(*echo))
                    }
                    Decision::Forget(keys) => {
                        keys.iter().for_each(|key| gone(key));
                        None
                    }
                    Decision::Ignore => None,
                }
            }
        };
        stream::iter(trigger)
    })
}

fn event_name(event: &watcher::Event<Echo>) -> &'static str {
    match event {
        watcher::Event::Apply(_) => "Apply",
        watcher::Event::InitApply(_) => "InitApply",
        watcher::Event::Delete(_) => "Delete",
        watcher::Event::Init => "Init",
        watcher::Event::InitDone => "InitDone",
    }
}

/// Records the span of one watch event and hands its context to the coming reconcile.
fn record_watch_event(event_type: &'static str, echo: &Echo, links: &TraceLinks) {
    let meta = &echo.metadata;
    // An explicit root: whatever span happens to be current while the stream is polled is
    // not this event's cause.
    let span = tracing::info_span!(
        parent: None,
        "watch event",
        otel.name = format!("watch Echo {event_type}"),
        otel.kind = "consumer",
        k8s.object.kind = "Echo",
        k8s.namespace.name = meta.namespace.as_deref().unwrap_or_default(),
        k8s.object.name = meta.name.as_deref().unwrap_or_default(),
        k8s.object.uid = meta.uid.as_deref().unwrap_or_default(),
        k8s.object.resource_version = meta.resource_version.as_deref().unwrap_or_default(),
        k8s.object.generation = meta.generation.unwrap_or_default(),
        k8s.watch.event_type = event_type,
        trace.continued_from_annotation = Empty,
    );
    // Only a generation nobody reconciled yet follows the applier's trace; afterwards the
    // annotations are history, not the cause of new work.
    let invalid = if echo.generation_pending() {
        follow_annotations(&span, echo)
    } else {
        Vec::new()
    };
    span.in_scope(|| {
        for (annotation, value) in invalid {
            // Anyone who can edit the object writes this value: log a short, escaped
            // excerpt so a huge or multi-line value cannot flood or forge log lines.
            tracing::warn!(
                annotation,
                value = %propagation::excerpt(value, propagation::EXCERPT_CHARS),
                "ignoring an invalid traceparent annotation"
            );
        }
        tracing::debug!(event_type, "watch event queued for reconcile");
    });
    let event_context = span.context().span().span_context().clone();
    links.record_watch_event(ObjectRef::from_obj(echo).to_string(), event_context);
}

/// Continues the trace named by our annotation and links the one named by KEP-5915's, before
/// the span starts: tracing-opentelemetry fixes a span's parent and the links its sampler
/// sees when it starts it. Returns the annotations whose values are not traceparents.
fn follow_annotations<'a>(span: &tracing::Span, echo: &'a Echo) -> Vec<(&'static str, &'a str)> {
    let annotations = echo.metadata.annotations.as_ref();
    let mut invalid = Vec::new();
    for key in [TRACEPARENT_ANNOTATION, K8S_TRACEPARENT_ANNOTATION] {
        let Some(value) = annotations.and_then(|a| a.get(key)) else {
            continue;
        };
        match propagation::parse_traceparent(value) {
            Some(remote) if key == TRACEPARENT_ANNOTATION => {
                let _ =
                    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
                span.record("trace.continued_from_annotation", true);
            }
            Some(remote) => span.add_link_with_attributes(
                remote,
                vec![KeyValue::new(LINK_SOURCE, LINK_FROM_ANNOTATION)],
            ),
            None => invalid.push((key, value.as_str())),
        }
    }
    invalid
}
