//! Turns the raw watch stream into the controller's trigger stream, recording a
//! `watch event` span for every change that needs a reconcile.
//!
//! Only changes of `metadata.generation` (spec edits, and deletion, which bumps it) and of
//! the deletion mark trigger a reconcile: the operator's own status and finalizer writes
//! would otherwise wake it again and fill Jaeger with empty traces.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::Metrics;
use super::trace_links::TraceLinks;
use crate::crd::{Echo, SKIP_CLEANUP_ANNOTATION, TRACEPARENT_ANNOTATION};
use crate::telemetry::propagation;
use kube::ResourceExt;

/// What a trigger was decided on: the object's uid (a deleted and recreated object with the
/// same name and generation is new work), its generation, whether deletion has begun, and
/// whether its remote cleanup is to be skipped (an annotation, which bumps no generation).
type Seen = (Option<String>, Option<i64>, bool, bool);

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
        let triggers: Vec<Result<Echo, watcher::Error>> = match event {
            Err(err) => vec![Err(err)],
            Ok(event) => filter
                .admit(event, &metrics, &gone)
                .into_iter()
                .map(|(event_type, echo)| {
                    record_watch_event(event_type, &echo, &links);
                    Ok(echo)
                })
                .collect(),
        };
        stream::iter(triggers)
    })
}

/// Remembers what each object looked like when it last triggered a reconcile.
#[derive(Default)]
struct ChangeFilter {
    seen: HashMap<String, Seen>,
    /// Objects listed since the last `Init`, to forget those that vanished meanwhile.
    relisted: Option<HashSet<String>>,
}

impl ChangeFilter {
    fn admit(
        &mut self,
        event: watcher::Event<Echo>,
        metrics: &Metrics,
        gone: &dyn Fn(&str),
    ) -> Option<(&'static str, Echo)> {
        metrics.watch_event(event_name(&event));
        let (event_type, echo) = match event {
            watcher::Event::Apply(echo) => ("Apply", echo),
            watcher::Event::InitApply(echo) => ("InitApply", echo),
            watcher::Event::Delete(echo) => {
                let key = ObjectRef::from_obj(&echo).to_string();
                self.seen.remove(&key);
                gone(&key);
                return None;
            }
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                return None;
            }
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    let vanished: Vec<String> = self
                        .seen
                        .keys()
                        .filter(|k| !relisted.contains(*k))
                        .cloned()
                        .collect();
                    for key in vanished {
                        self.seen.remove(&key);
                        gone(&key);
                    }
                }
                return None;
            }
        };
        let key = ObjectRef::from_obj(&echo).to_string();
        if let Some(relisted) = &mut self.relisted {
            relisted.insert(key.clone());
        }
        let now: Seen = (
            echo.metadata.uid.clone(),
            echo.metadata.generation,
            echo.metadata.deletion_timestamp.is_some(),
            echo.annotations()
                .get(SKIP_CLEANUP_ANNOTATION)
                .is_some_and(|v| v == "true"),
        );
        if now.1.is_some() && self.seen.get(&key) == Some(&now) {
            return None;
        }
        self.seen.insert(key, now);
        Some((event_type, echo))
    }
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
    let annotation = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRACEPARENT_ANNOTATION));
    match annotation {
        // Only a generation nobody reconciled yet continues the applier's trace; afterwards
        // the annotation is history, not the cause of new work.
        Some(value) if echo.generation_pending() => match propagation::parse_traceparent(value) {
            Some(remote) => {
                let _ =
                    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
                span.record("trace.continued_from_annotation", true);
            }
            None => span.in_scope(|| {
                // Anyone who can edit the object writes this value: log a short, escaped
                // excerpt so a huge or multi-line value cannot flood or forge log lines.
                tracing::warn!(
                    annotation = TRACEPARENT_ANNOTATION,
                    value = %propagation::excerpt(value, propagation::EXCERPT_CHARS),
                    "ignoring an invalid traceparent annotation; starting a new trace"
                );
            }),
        },
        _ => {}
    }
    span.in_scope(|| tracing::debug!(event_type, "watch event queued for reconcile"));
    let event_context = span.context().span().span_context().clone();
    links.record_watch_event(ObjectRef::from_obj(echo).to_string(), event_context);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EchoSpec;

    fn metrics() -> Metrics {
        Metrics::new(&crate::metrics::SpanCounters::default())
    }

    fn echo(name: &str, generation: i64, deleting: bool) -> Echo {
        echo_with_uid(name, "uid-1", generation, deleting)
    }

    fn echo_with_uid(name: &str, uid: &str, generation: i64, deleting: bool) -> Echo {
        let mut echo = Echo::new(
            name,
            EchoSpec {
                message: "hi".into(),
                delay_ms: None,
                fail_first: None,
            },
        );
        echo.metadata.namespace = Some("default".into());
        echo.metadata.uid = Some(uid.into());
        echo.metadata.generation = Some(generation);
        if deleting {
            echo.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
        }
        echo
    }

    #[test]
    fn only_generation_and_deletion_changes_trigger() {
        let mut filter = ChangeFilter::default();
        let admitted = |f: &mut ChangeFilter, e| f.admit(e, &metrics(), &|_| {}).is_some();
        assert!(admitted(
            &mut filter,
            watcher::Event::Apply(echo("a", 1, false))
        ));
        assert!(
            !admitted(&mut filter, watcher::Event::Apply(echo("a", 1, false))),
            "status-only change"
        );
        assert!(
            admitted(&mut filter, watcher::Event::Apply(echo("a", 2, false))),
            "spec change"
        );
        assert!(
            admitted(&mut filter, watcher::Event::Apply(echo("a", 2, true))),
            "deletion started"
        );
        assert!(!admitted(
            &mut filter,
            watcher::Event::Delete(echo("a", 2, true))
        ));
        assert!(
            admitted(&mut filter, watcher::Event::Apply(echo("a", 2, false))),
            "recreated after delete"
        );
    }

    #[test]
    fn asking_to_skip_the_cleanup_triggers() {
        let mut filter = ChangeFilter::default();
        let admitted = |f: &mut ChangeFilter, e| f.admit(e, &metrics(), &|_| {}).is_some();
        let deleting = echo("a", 2, true);
        assert!(admitted(
            &mut filter,
            watcher::Event::Apply(deleting.clone())
        ));
        let mut skipping = deleting;
        skipping.metadata.annotations =
            Some([(SKIP_CLEANUP_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert!(
            admitted(&mut filter, watcher::Event::Apply(skipping)),
            "the annotation bumps no generation but is new work"
        );
    }

    #[test]
    fn an_object_recreated_during_a_watch_gap_triggers() {
        let mut filter = ChangeFilter::default();
        let old = echo_with_uid("a", "uid-old", 1, false);
        assert!(
            filter
                .admit(watcher::Event::Apply(old), &metrics(), &|_| {})
                .is_some()
        );
        // The Delete event was lost in a watch gap; the new object has the same name and
        // generation but another uid.
        let new = echo_with_uid("a", "uid-new", 1, false);
        assert!(
            filter
                .admit(watcher::Event::Apply(new), &metrics(), &|_| {})
                .is_some(),
            "a new uid is a new object"
        );
    }

    #[test]
    fn relist_forgets_objects_that_vanished() {
        let forgotten = std::cell::RefCell::new(Vec::new());
        let gone = |key: &str| forgotten.borrow_mut().push(key.to_owned());
        let mut filter = ChangeFilter::default();
        filter.admit(
            watcher::Event::Apply(echo("a", 1, false)),
            &metrics(),
            &gone,
        );
        filter.admit(
            watcher::Event::Apply(echo("b", 1, false)),
            &metrics(),
            &gone,
        );
        filter.admit(watcher::Event::Init, &metrics(), &gone);
        assert!(
            filter
                .admit(
                    watcher::Event::InitApply(echo("a", 1, false)),
                    &metrics(),
                    &gone
                )
                .is_none()
        );
        filter.admit(watcher::Event::InitDone, &metrics(), &gone);
        assert_eq!(
            filter.seen.len(),
            1,
            "b was deleted while the watch was down"
        );
        assert_eq!(
            *forgotten.borrow(),
            [ObjectRef::from_obj(&echo("b", 1, false)).to_string()]
        );
    }
}
