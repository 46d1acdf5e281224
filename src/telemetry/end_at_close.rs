//! The OpenTelemetry layer without its enter and exit hooks.
//!
//! A tokio task enters and exits every span it is instrumented with at each poll, so a
//! reconcile that awaits three API calls and the echo call passes its nested spans' enter and
//! exit hooks dozens of times. With context activation and busy/idle tracking off (see
//! `stack`), tracing-opentelemetry does nothing on enter, and on exit only stamps the span's
//! end time: a registry lookup, a lock and a clock read, plus the per-layer filter's own
//! lookup, at every poll. [`EndAtClose`] skips both hooks, so a span ends when it closes
//! (its last handle dropped), which for an instrumented future is the moment after its last
//! exit. Measured in `docs/performance.md` ("Where a traced reconcile's CPU goes").

use std::any::TypeId;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// `inner`, except that entering and exiting a span never reach it.
pub struct EndAtClose<L> {
    inner: L,
}

impl<L> EndAtClose<L> {
    pub fn new(inner: L) -> Self {
        Self { inner }
    }
}

impl<S, L> Layer<S> for EndAtClose<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        // A per-layer filter inside registers itself with the registry here.
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.inner.on_event(event, ctx);
    }

    fn on_enter(&self, _id: &Id, _ctx: Context<'_, S>) {}

    fn on_exit(&self, _id: &Id, _ctx: Context<'_, S>) {}

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // tracing-opentelemetry finds its span data, and the registry the per-layer filter, by
    // downcasting: the wrapper must stay transparent to downcasts.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded unchanged to the wrapped layer, which upholds the contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Writes down which hooks ran.
    #[derive(Clone, Default)]
    struct Hooks(Arc<Mutex<Vec<&'static str>>>);

    impl Hooks {
        fn push(&self, hook: &'static str) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(hook);
            }
        }

        fn seen(&self) -> Vec<&'static str> {
            self.0.lock().map(|seen| seen.clone()).unwrap_or_default()
        }
    }

    impl<S: Subscriber> Layer<S> for Hooks {
        fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            self.push("new");
        }
        fn on_record(&self, _: &Id, _: &Record<'_>, _: Context<'_, S>) {
            self.push("record");
        }
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            self.push("event");
        }
        fn on_enter(&self, _: &Id, _: Context<'_, S>) {
            self.push("enter");
        }
        fn on_exit(&self, _: &Id, _: Context<'_, S>) {
            self.push("exit");
        }
        fn on_close(&self, _: Id, _: Context<'_, S>) {
            self.push("close");
        }
    }

    #[test]
    fn the_wrapped_layer_sees_everything_but_enter_and_exit() {
        let hooks = Hooks::default();
        let subscriber = tracing_subscriber::registry().with(EndAtClose::new(hooks.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("polled", attempt = tracing::field::Empty);
            for attempt in 0..3i64 {
                span.in_scope(|| tracing::info!("poll"));
                span.record("attempt", attempt);
            }
        });
        assert_eq!(
            hooks.seen(),
            [
                "new", "event", "record", "event", "record", "event", "record", "close"
            ]
        );
    }
}
