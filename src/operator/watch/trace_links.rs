//! Carries trace context from watch events to the reconciles they trigger.
//!
//! kube-runtime decouples the two: events go into a scheduler that may merge several of them
//! into one reconcile, and requeues and retries reconcile with no event at all. This registry
//! remembers, per object, the span contexts of watch events that have not been reconciled
//! yet, and the context and result of the last reconcile. When a reconcile starts,
//! [`TraceLinks::start_reconcile`] makes the newest pending event the parent of kube-runtime's
//! `reconciling object` span (the newest sampled one, if the newest is not), and the rest its
//! links. With no pending event the reconcile starts a new trace that links to the previous
//! reconcile; a retry or a requeue also tells the sampler whether that one was sampled
//! ([`LinkedSampled`]), so that a sampled failure keeps its retries.

use std::collections::HashMap;
use std::sync::Mutex;

use opentelemetry::trace::{SpanContext, TraceContextExt};

use crate::lock::lock;
use crate::operator::attributes::{LINK_FROM_PREVIOUS_RECONCILE, LINK_FROM_WATCH_EVENT};
use crate::operator::reconcile::outcome::{Trigger, Verdict};
use crate::telemetry::sampling::LinkedSampled;

/// Watch events kept per object between two reconciles; older ones are dropped first.
const MAX_PENDING: usize = 16;

/// Span contexts waiting for, or handed to, a reconcile; keyed by the object's
/// `ObjectRef` as kube-runtime prints it.
#[derive(Default)]
pub struct TraceLinks {
    objects: Mutex<HashMap<String, ObjectTrace>>,
}

/// What the reconcile that starts now takes: its parent, its links, each with where it came
/// from (a `LINK_FROM_*` value), and what caused it.
#[derive(Debug)]
pub struct Started {
    /// An empty context (with perhaps a [`LinkedSampled`]) makes the reconcile a new root.
    pub parent: opentelemetry::Context,
    pub links: Vec<(SpanContext, &'static str)>,
    pub trigger: Trigger,
}

/// What is kept for one object.
#[derive(Default)]
struct ObjectTrace {
    /// Watch events not reconciled yet, oldest first.
    pending: Vec<SpanContext>,
    /// The latest reconcile, for the next reconcile that no event triggers.
    last_reconcile: Option<SpanContext>,
    /// How the latest reconcile ended.
    last_verdict: Option<Verdict>,
}

impl ObjectTrace {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.last_reconcile.is_none() && self.last_verdict.is_none()
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

    /// Remembers the reconcile so the next event-less reconcile can link to it.
    pub fn record_reconcile(&self, object_ref: String, reconcile: SpanContext) {
        if reconcile.is_valid() {
            self.lock().entry(object_ref).or_default().last_reconcile = Some(reconcile);
        }
    }

    /// Remembers how the latest reconcile ended: the next one no event causes is its retry,
    /// its requeue or a resync.
    pub fn record_verdict(&self, object_ref: &str, verdict: Verdict) {
        if let Some(object) = self.lock().get_mut(object_ref) {
            object.last_verdict = Some(verdict);
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

    /// Decides the parent of a reconcile that starts now: a pending event, the others as
    /// links; with none, a new root linked to the previous reconcile.
    pub fn start_reconcile(&self, object_ref: String) -> Started {
        let mut objects = self.lock();
        let object = objects.entry(object_ref).or_default();
        let mut events = std::mem::take(&mut object.pending);
        // The newest event, unless only an older one is sampled: a change someone traces
        // keeps its reconcile when an untraced change is merged in after it.
        let chosen = events
            .iter()
            .rposition(SpanContext::is_sampled)
            .or(events.len().checked_sub(1));
        match chosen {
            Some(index) => {
                let event = events.remove(index);
                let links = events.into_iter().map(|e| (e, LINK_FROM_WATCH_EVENT));
                Started {
                    parent: opentelemetry::Context::new().with_remote_span_context(event),
                    links: links.collect(),
                    trigger: Trigger::WatchEvent,
                }
            }
            None => {
                let trigger = Trigger::after(object.last_verdict);
                let previous = object.last_reconcile.clone();
                let mut parent = opentelemetry::Context::new();
                if let Some(previous) = previous.as_ref().filter(|_| trigger.continues_previous()) {
                    parent = parent.with_value(LinkedSampled(previous.is_sampled()));
                }
                let links = previous.map(|p| (p, LINK_FROM_PREVIOUS_RECONCILE));
                Started {
                    parent,
                    links: links.into_iter().collect(),
                    trigger,
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ObjectTrace>> {
        lock(&self.objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn sc(trace: u128, span: u64) -> SpanContext {
        with_flags(trace, span, TraceFlags::SAMPLED)
    }

    fn with_flags(trace: u128, span: u64, flags: TraceFlags) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            false,
            TraceState::default(),
        )
    }

    fn parent_span(started: &Started) -> SpanContext {
        started.parent.span().span_context().clone()
    }

    #[test]
    fn newest_event_is_parent_and_older_ones_become_links() {
        let links = TraceLinks::default();
        links.record_watch_event("a".into(), sc(1, 1));
        links.record_watch_event("a".into(), sc(2, 2));
        let started = links.start_reconcile("a".into());
        assert_eq!(parent_span(&started).trace_id(), TraceId::from(2u128));
        assert_eq!(started.links, [(sc(1, 1), LINK_FROM_WATCH_EVENT)]);
        assert_eq!(started.trigger, Trigger::WatchEvent);
        let again = links.start_reconcile("a".into());
        assert!(
            !parent_span(&again).is_valid() && again.links.is_empty(),
            "events are handed out once"
        );
    }

    #[test]
    fn a_sampled_event_is_parent_over_a_newer_unsampled_one() {
        let links = TraceLinks::default();
        links.record_watch_event("a".into(), sc(1, 1));
        links.record_watch_event("a".into(), with_flags(2, 2, TraceFlags::default()));
        let started = links.start_reconcile("a".into());
        assert_eq!(parent_span(&started).span_id(), SpanId::from(1));
        let unsampled = with_flags(2, 2, TraceFlags::default());
        assert_eq!(started.links, [(unsampled, LINK_FROM_WATCH_EVENT)]);
    }

    #[test]
    fn reconcile_without_event_is_a_new_root_linked_to_the_previous_one() {
        let links = TraceLinks::default();
        links.record_reconcile("a".into(), sc(7, 7));
        let started = links.start_reconcile("a".into());
        assert!(!parent_span(&started).is_valid(), "must start a new trace");
        assert_eq!(started.links, [(sc(7, 7), LINK_FROM_PREVIOUS_RECONCILE)]);
        assert_eq!(started.trigger, Trigger::Resync);
        assert_eq!(
            started.parent.get::<LinkedSampled>(),
            None,
            "a resync is sampled on its own"
        );
    }

    #[test]
    fn a_retry_tells_the_sampler_whether_the_failed_reconcile_was_sampled() {
        let links = TraceLinks::default();
        for (object, flags) in [("a", TraceFlags::SAMPLED), ("b", TraceFlags::default())] {
            links.record_reconcile(object.into(), with_flags(7, 7, flags));
            links.record_verdict(object, Verdict::Error);
            let started = links.start_reconcile(object.into());
            assert_eq!(
                started.parent.get::<LinkedSampled>(),
                Some(&LinkedSampled(flags.is_sampled()))
            );
            assert_eq!(started.trigger, Trigger::ErrorRetry);
        }
        links.record_verdict("a", Verdict::Requeue);
        assert_eq!(links.start_reconcile("a".into()).trigger, Trigger::Requeue);
    }

    #[test]
    fn pending_events_are_bounded_and_forgotten() {
        let links = TraceLinks::default();
        for i in 1..=(MAX_PENDING as u64 + 5) {
            links.record_watch_event("a".into(), sc(i.into(), i));
        }
        let started = links.start_reconcile("a".into());
        assert_eq!(
            parent_span(&started).span_id(),
            SpanId::from(MAX_PENDING as u64 + 5)
        );
        assert_eq!(started.links.len(), MAX_PENDING - 1);

        links.record_watch_event("b".into(), sc(1, 1));
        links.record_reconcile("b".into(), sc(2, 2));
        links.forget("b");
        let after = links.start_reconcile("b".into());
        assert!(!parent_span(&after).is_valid());
        assert!(after.links.is_empty());
    }

    #[test]
    fn invalid_contexts_are_not_recorded() {
        let links = TraceLinks::default();
        links.record_watch_event("a".into(), SpanContext::empty_context());
        assert!(!parent_span(&links.start_reconcile("a".into())).is_valid());
    }
}
