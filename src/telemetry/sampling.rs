//! `OTEL_TRACES_SAMPLER=parentbased_linked_traceidratio`: `parentbased_traceidratio`, except
//! that a new root span that comes with span links follows them, as a child follows its
//! parent: sampled when any link is sampled, dropped when none is.
//!
//! Why: the story of one change in this operator is spread over several traces joined by
//! links (a retry or a requeue is a new root linked to the reconcile before it; a
//! `tracing.k8s.io/traceparent` annotation is linked, not continued). With the ratio applied to
//! every root on its own, a sampled change loses its retries 90 % of the time at 0.1, and an
//! unsampled one leaves stray retries behind.
//!
//! Where the links come from: the SDK hands the sampler the links of the span builder. That
//! works for spans this crate creates (`add_link` before the span starts). The links of
//! kube-runtime's `reconciling object` span are added only after it has started, so that a
//! resync's link does not decide its sampling; for a retry or a requeue the operator puts a
//! [`LinkedSampled`] value in the parent context it gives that span (`operator::reconcile`),
//! which the SDK passes to the sampler too.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// The `OTEL_TRACES_SAMPLER` value that selects [`LinkAwareSampler`].
pub const LINKED_TRACEIDRATIO: &str = "parentbased_linked_traceidratio";

/// In the parent context of a root span about to be created: the span will be linked to spans
/// of which at least one is sampled (`true`) or none is (`false`). For spans whose links are
/// added after the SDK has sampled them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkedSampled(pub bool);

/// Wraps `parentbased_traceidratio`: a root with links follows them, any other span is left
/// to the wrapped sampler.
#[derive(Clone, Debug)]
pub struct LinkAwareSampler {
    inner: Sampler,
}

impl LinkAwareSampler {
    pub fn traceidratio(ratio: f64) -> Self {
        Self {
            inner: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
        }
    }

    /// The links' verdict for a root span, `None` when it has no links to follow.
    fn linked(parent: Option<&Context>, links: &[Link]) -> Option<bool> {
        let announced = parent.and_then(|cx| cx.get::<LinkedSampled>()).map(|l| l.0);
        let given = (!links.is_empty()).then(|| links.iter().any(|l| l.span_context.is_sampled()));
        match (announced, given) {
            (None, None) => None,
            (a, g) => Some(a.unwrap_or(false) || g.unwrap_or(false)),
        }
    }
}

impl ShouldSample for LinkAwareSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let root = parent_context.is_none_or(|cx| !cx.has_active_span());
        match Self::linked(parent_context, links).filter(|_| root) {
            Some(sampled) => SamplingResult {
                decision: if sampled {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            },
            None => self.inner.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};
    use proptest::prelude::*;

    fn sc(trace: u128, sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(7),
            flags,
            true,
            TraceState::default(),
        )
    }

    fn decide(sampler: &dyn ShouldSample, cx: &Context, trace: u128, links: &[Link]) -> bool {
        let result = sampler.should_sample(
            Some(cx),
            TraceId::from(trace),
            "s",
            &SpanKind::Internal,
            &[],
            links,
        );
        result.decision == SamplingDecision::RecordAndSample
    }

    fn link(sampled: bool) -> Link {
        Link::with_context(sc(99, sampled))
    }

    proptest! {
        // No regression files in the source tree: a failure prints its minimal input.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// At any ratio: a root follows its links (given or announced), a child its parent,
        /// and a root without links gets exactly what `parentbased_traceidratio` gives it.
        #[test]
        fn links_decide_roots_and_nothing_else(ratio in 0.0f64..=1.0, trace in 1u128.., parent_sampled: bool, linked_sampled: bool) {
            let ours = LinkAwareSampler::traceidratio(ratio);
            let sdk = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)));
            let root = Context::new();
            prop_assert_eq!(decide(&ours, &root, trace, &[]), decide(&sdk, &root, trace, &[]));
            prop_assert_eq!(decide(&ours, &root, trace, &[link(linked_sampled)]), linked_sampled);
            prop_assert!(decide(&ours, &root, trace, &[link(false), link(true)]));
            let announced = root.with_value(LinkedSampled(linked_sampled));
            prop_assert_eq!(decide(&ours, &announced, trace, &[]), linked_sampled);
            let child = Context::new()
                .with_remote_span_context(sc(trace, parent_sampled))
                .with_value(LinkedSampled(linked_sampled));
            prop_assert_eq!(decide(&ours, &child, trace, &[link(linked_sampled)]), parent_sampled);
        }
    }
}
