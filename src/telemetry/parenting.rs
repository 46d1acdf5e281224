//! Chooses the OpenTelemetry parent of spans that other crates create.
//!
//! tracing-opentelemetry fixes a span's OpenTelemetry parent when the span is created: for a
//! contextual span it takes `opentelemetry::Context::current()`, and once the span has been
//! entered its parent can no longer change. kube-runtime creates and enters its
//! `reconciling object` span before our code runs, so the only moment to choose that span's
//! trace is its creation. [`ParentingLayer`] wraps the OpenTelemetry layer and, just for the
//! duration of its `on_new_span`, attaches the context a [`ParentResolver`] picks. The SDK
//! hands that context to the sampler as well, so it may carry values for it (see
//! [`super::sampling::LinkedSampled`]).

use std::any::TypeId;
use std::sync::Arc;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Decides, for a span being created, which OpenTelemetry context becomes its parent.
pub trait ParentResolver: Send + Sync + 'static {
    /// `Some(cx)` makes `cx` the parent (an empty context makes a new root); `None` leaves
    /// the usual rules in place.
    fn parent_for(&self, attrs: &Attributes<'_>) -> Option<opentelemetry::Context>;
}

/// A layer that behaves exactly like `inner`, except that spans the resolver claims get
/// their parent from the resolver.
pub struct ParentingLayer<L> {
    inner: L,
    resolver: Option<Arc<dyn ParentResolver>>,
}

impl<L> ParentingLayer<L> {
    pub fn new(inner: L, resolver: Option<Arc<dyn ParentResolver>>) -> Self {
        Self { inner, resolver }
    }
}

impl<S, L> Layer<S> for ParentingLayer<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
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
        // The guard restores the previous context as soon as the inner layer has read it.
        let _guard = self
            .resolver
            .as_ref()
            .and_then(|resolver| resolver.parent_for(attrs))
            .map(opentelemetry::Context::attach);
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

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // tracing-opentelemetry finds its span data by downcasting the subscriber, so the
    // wrapper must stay transparent to downcasts.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded unchanged to the wrapped layer, which upholds the contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}
