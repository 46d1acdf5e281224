//! The reconcile: kube-runtime calls [`reconcile`] inside its `reconciling object` span,
//! which first gets the parent the watch's trace hand-over chose. Then the `reconcile` span opens,
//! the steps run (finalizer, echo service, status, Event; or cleanup on delete) bounded by
//! the reconcile timeout, and the result is counted; [`error_policy`] retries failures with
//! per-object backoff.

pub mod backoff;
pub mod error;
pub mod event_series;
pub mod events;
pub mod finalizer;
pub mod outcome;
pub mod status;
pub mod steps;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::crd::Echo;
use crate::operator::attributes::{
    ECHO_ATTEMPTS, LINK_SOURCE, READY_REASON, RESULT, TRIGGER, WRITES,
};
use crate::operator::context::Context;
use crate::operator::watch::trace_links::Started;
use crate::telemetry::propagation;
use error::Error;
use outcome::{Record, Verdict};
use steps::{Reconciliation, TraceNames};

/// Entry point kube-runtime calls, inside its `reconciling object` span.
pub async fn reconcile(echo: Arc<Echo>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(echo.as_ref()).to_string();
    let started = ctx.links.start_reconcile(key.clone());
    adopt(&tracing::Span::current(), &started);
    let span = reconcile_span(&echo);
    span.record(TRIGGER, started.trigger.as_str());
    let span_context = span.context().span().span_context().clone();
    let trace = TraceNames {
        trace_id: span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string()),
        traceparent: propagation::traceparent_of(&span_context),
    };
    if let Some(trace_id) = &trace.trace_id {
        span.record("trace_id", trace_id.as_str());
    }
    ctx.links.record_reconcile(key.clone(), span_context);
    let _running = ctx.liveness.reconcile_started();
    let began = Instant::now();
    let record = Record::default();
    async {
        let result = run_bounded(&echo, &ctx, trace, &record).await;
        record_result(&ctx, &key, &result, began.elapsed(), &record);
        result
    }
    .instrument(span)
    .await
}

/// kube-runtime's error policy: retry the object with growing delays, never a hot loop.
pub fn error_policy(echo: Arc<Echo>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx
        .backoff
        .next_delay(&ObjectRef::from_obj(echo.as_ref()).to_string());
    tracing::info!(error = %err, retry_in_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX), "requeueing after failure");
    Action::requeue(delay)
}

/// Gives kube-runtime's `reconciling object` span (current on the reconcile's first poll) the
/// parent and links the watch's trace hand-over chose. Entering a span does not start it
/// (`telemetry::stack` turns context activation off) and nothing has asked for its context
/// yet, so its parent can still change, and the sampler sees that parent.
fn adopt(runtime_span: &tracing::Span, started: &Started) {
    if let Err(err) = runtime_span.set_parent(started.parent.clone()) {
        // Tracing is off, or a kube-runtime that starts its span early: the reconcile
        // itself goes on either way.
        tracing::debug!(error = %err, "kube-runtime's span keeps its own parent");
    }
    // The links go on once the span has started, out of the sampler's sight: a resync's link
    // to the previous reconcile must not make it follow that one's decision (a retry's
    // decision reaches the sampler in the parent context instead; see telemetry::sampling).
    let _ = runtime_span.context();
    for (link, source) in &started.links {
        let attributes = vec![KeyValue::new(LINK_SOURCE, *source)];
        runtime_span.add_link_with_attributes(link.clone(), attributes);
    }
}

fn reconcile_span(echo: &Echo) -> tracing::Span {
    tracing::info_span!(
        "reconcile",
        otel.name = "reconcile Echo",
        k8s.namespace.name = echo.namespace().unwrap_or_default(),
        k8s.object.name = echo.name_any(),
        k8s.object.generation = echo.metadata.generation.unwrap_or_default(),
        deleting = echo.metadata.deletion_timestamp.is_some(),
        trace_id = Empty,
        otel.status_code = Empty,
        error.type = Empty,
        { TRIGGER } = Empty,
        { RESULT } = Empty,
        { READY_REASON } = Empty,
        { WRITES } = Empty,
        { ECHO_ATTEMPTS } = Empty,
    )
}

/// The steps, failed and reported once the reconcile timeout has passed: one wedged call
/// cannot hold a reconcile slot forever.
async fn run_bounded(
    echo: &Echo,
    ctx: &Context,
    trace: TraceNames,
    record: &Record,
) -> Result<Action, Error> {
    let reconciliation = Reconciliation::new(echo, ctx, trace, record)?;
    let timeout = ctx.reconcile_timeout;
    match tokio::time::timeout(timeout, reconciliation.run()).await {
        Ok(result) => result,
        // The status write and the Event have their own per-request timeout.
        Err(_) => Err(reconciliation.fail(Error::Timeout(timeout)).await),
    }
}

/// Counts the result, and records it on the `reconcile` span (the current span): its outcome
/// attributes, and failed on error.
fn record_result(
    ctx: &Context,
    key: &str,
    result: &Result<Action, Error>,
    elapsed: Duration,
    record: &Record,
) {
    let span = tracing::Span::current();
    let verdict = Verdict::of(result, ctx.resync);
    ctx.links.record_verdict(key, verdict);
    span.record(RESULT, verdict.as_str());
    span.record(WRITES, record.writes());
    span.record(ECHO_ATTEMPTS, i64::from(record.echo_attempts().get()));
    match result {
        Ok(_) => {
            if record.is_ready() {
                span.record(READY_REASON, status::READY_REASON);
            }
            ctx.backoff.reset(key);
            ctx.metrics
                .reconciled(status::READY_REASON, true, elapsed, &span);
        }
        Err(err) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", err.reason());
            span.record(READY_REASON, err.reason());
            ctx.metrics.reconciled(err.reason(), false, elapsed, &span);
            tracing::warn!(error = %err, reason = err.reason(), "reconcile failed");
        }
    }
}
