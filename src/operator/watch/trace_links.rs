//! Carries trace context from watch events to the reconciles they trigger.
//!
//! kube-runtime decouples the two: events go into a scheduler that may merge several of them
//! into one reconcile, and requeues and retries reconcile with no event at all. This registry
//! remembers, per object, the span contexts of watch events that have not been reconciled
//! yet, and the context of the last reconcile. When kube-runtime creates its
//! `reconciling object` span, [`TraceLinks`] (as a [`ParentResolver`]) makes the newest
//! pending event its parent, and keeps the rest as links for the reconcile to add. With no
//! pending event the reconcile starts a new trace that links to the previous reconcile.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::field::{Field, Visit};
use tracing::span::Attributes;

use crate::lock::lock;
use crate::telemetry::ParentResolver;

/// The span kube-runtime wraps every reconcile in, and the field naming its object.
const RECONCILE_SPAN: &str = "reconciling object";
const OBJECT_REF_FIELD: &str = "object.ref";
/// Watch events kept per object between two reconciles; older ones are dropped first.
const MAX_PENDING: usize = 16;

/// Span contexts waiting for, or handed to, a reconcile; keyed by the object's
/// `ObjectRef` as kube-runtime prints it.
#[derive(Default)]
pub struct TraceLinks {
    objects: Mutex<HashMap<String, ObjectTrace>>,
}

/// What is kept for one object.
#[derive(Default)]
struct ObjectTrace {
    /// Watch events not reconciled yet, oldest first.
    pending: Vec<SpanContext>,
    /// Links the reconcile that just started takes, once.
    links_for_started: Vec<SpanContext>,
    /// The latest reconcile, for the next reconcile that no event triggers.
    last_reconcile: Option<SpanContext>,
}

impl ObjectTrace {
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
            && self.links_for_started.is_empty()
            && self.last_reconcile.is_none()
    }
}

impl TraceLinks {
    /// Remembers a watch event's span until the object's next reconcile starts.
    pub fn record_watch_event(&self, object_ref: String, event: SpanContext) {
        if !event.is_valid() {
            return; // tracing is off: nothing to carry
        }
        let mut objects = self.lock();
        let pending = &mut objects.entry(object_ref).or_default().pending;
        if pending.len() == MAX_PENDING {
            pending.remove(0);
        }
        pending.push(event);
    }

    /// Links the reconcile that just started must add: coalesced watch events, or the
    /// previous reconcile when no event triggered this one.
    pub fn take_links(&self, object_ref: &str) -> Vec<SpanContext> {
        self.lock()
            .get_mut(object_ref)
            .map(|object| std::mem::take(&mut object.links_for_started))
            .unwrap_or_default()
    }

    /// Remembers the reconcile so the next event-less reconcile can link to it.
    pub fn record_reconcile(&self, object_ref: String, reconcile: SpanContext) {
        if reconcile.is_valid() {
            self.lock().entry(object_ref).or_default().last_reconcile = Some(reconcile);
        }
    }

    /// Objects with anything kept for them: pending events, links or a last reconcile.
    pub fn tracked_objects(&self) -> usize {
        self.lock().values().filter(|o| !o.is_empty()).count()
    }

    /// Objects whose watch events wait for a reconcile.
    pub fn pending_objects(&self) -> usize {
        self.lock()
            .values()
            .filter(|o| !o.pending.is_empty())
            .count()
    }

    /// Whether anything is kept for `object_ref`.
    pub fn is_tracking(&self, object_ref: &str) -> bool {
        self.lock().get(object_ref).is_some_and(|o| !o.is_empty())
    }

    /// Drops everything about an object that no longer exists.
    pub fn forget(&self, object_ref: &str) {
        self.lock().remove(object_ref);
    }

    /// Drops everything about every object.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    /// Decides the parent of a reconcile that starts now: the newest pending event, the
    /// others as links; with none, a new root linked to the previous reconcile.
    fn start_reconcile(&self, object_ref: String) -> opentelemetry::Context {
        let mut objects = self.lock();
        let object = objects.entry(object_ref).or_default();
        let mut events = std::mem::take(&mut object.pending);
        let (parent, links) = match events.pop() {
            Some(newest) => (
                opentelemetry::Context::new().with_remote_span_context(newest),
                events,
            ),
            None => (
                opentelemetry::Context::new(),
                object.last_reconcile.clone().into_iter().collect(),
            ),
        };
        object.links_for_started = links;
        parent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ObjectTrace>> {
        lock(&self.objects)
    }
}

impl ParentResolver for TraceLinks {
    fn parent_for(&self, attrs: &Attributes<'_>) -> Option<opentelemetry::Context> {
        let meta = attrs.metadata();
        if meta.name() != RECONCILE_SPAN || !meta.target().starts_with("kube_runtime") {
            return None;
        }
        let mut visitor = ObjectRefVisitor(None);
        attrs.record(&mut visitor);
        visitor.0.map(|object_ref| self.start_reconcile(object_ref))
    }
}

struct ObjectRefVisitor(Option<String>);

impl Visit for ObjectRefVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == OBJECT_REF_FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == OBJECT_REF_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn sc(trace: u128, span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn newest_event_is_parent_and_older_ones_become_links() {
        let links = TraceLinks::default();
        links.record_watch_event("a".into(), sc(1, 1));
        links.record_watch_event("a".into(), sc(2, 2));
        let parent = links.start_reconcile("a".into());
        assert_eq!(
            parent.span().span_context().trace_id(),
            TraceId::from(2u128)
        );
        assert_eq!(links.take_links("a"), vec![sc(1, 1)]);
        assert!(
            links.take_links("a").is_empty(),
            "links are handed out once"
        );
    }

    #[test]
    fn reconcile_without_event_is_a_new_root_linked_to_the_previous_one() {
        let links = TraceLinks::default();
        links.record_reconcile("a".into(), sc(7, 7));
        let parent = links.start_reconcile("a".into());
        assert!(
            !parent.span().span_context().is_valid(),
            "must start a new trace"
        );
        assert_eq!(links.take_links("a"), vec![sc(7, 7)]);
    }

    #[test]
    fn pending_events_are_bounded_and_forgotten() {
        let links = TraceLinks::default();
        for i in 1..=(MAX_PENDING as u64 + 5) {
            links.record_watch_event("a".into(), sc(i.into(), i));
        }
        let parent = links.start_reconcile("a".into());
        assert_eq!(
            parent.span().span_context().span_id(),
            SpanId::from(MAX_PENDING as u64 + 5)
        );
        assert_eq!(links.take_links("a").len(), MAX_PENDING - 1);

        links.record_watch_event("b".into(), sc(1, 1));
        links.record_reconcile("b".into(), sc(2, 2));
        links.forget("b");
        assert!(
            !links
                .start_reconcile("b".into())
                .span()
                .span_context()
                .is_valid()
        );
        assert!(links.take_links("b").is_empty());
    }

    #[test]
    fn invalid_contexts_are_not_recorded() {
        let links = TraceLinks::default();
        links.record_watch_event("a".into(), SpanContext::empty_context());
        assert!(
            !links
                .start_reconcile("a".into())
                .span()
                .span_context()
                .is_valid()
        );
    }
}
