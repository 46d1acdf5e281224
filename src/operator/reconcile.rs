//! Reconcile one `Echo`: finalizer, the echo service call, status and Events; cleanup on
//! delete; and the error policy's per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::echo_client::EchoClient;
use super::error::Error;
use super::events::{self, Event, EventRecorder, EventType};
use super::health::Liveness;
use super::metrics::Metrics;
use super::status::{self, Outcome};
use super::trace_links::TraceLinks;
use crate::crd::{Echo, FINALIZER, SKIP_CLEANUP_ANNOTATION};
use crate::telemetry::trace_id_of;

/// Per-object exponential backoff after failed reconciles.
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::default(),
        }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(count.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forgets `key`: after a success, and when the object is gone (a deleted object that
    /// was failing must not stay in the table).
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Objects with failures on record.
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub echo: EchoClient,
    pub recorder: EventRecorder,
    pub links: Arc<TraceLinks>,
    pub backoff: Backoff,
    /// How often a healthy object is reconciled again (the echo service keeps state in memory).
    pub resync: Duration,
    /// Longest a reconcile may run; past it, it fails and is retried with backoff, so one
    /// wedged call cannot hold a reconcile slot forever.
    pub reconcile_timeout: Duration,
    pub liveness: Liveness,
    pub metrics: Arc<Metrics>,
}

impl Context {
    /// Forgets everything kept about an object that no longer exists.
    pub fn forget(&self, object_ref: &str) {
        self.links.forget(object_ref);
        self.backoff.reset(object_ref);
    }
}

/// Entry point kube-runtime calls, inside its `reconciling object` span.
pub async fn reconcile(echo: Arc<Echo>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(echo.as_ref()).to_string();
    let runtime_span = tracing::Span::current();
    for link in ctx.links.take_links(&key) {
        runtime_span.add_link(link);
    }
    let span = tracing::info_span!(
        "reconcile",
        otel.name = "reconcile Echo",
        k8s.namespace.name = echo.namespace().unwrap_or_default(),
        k8s.object.name = echo.name_any(),
        k8s.object.generation = echo.metadata.generation.unwrap_or_default(),
        deleting = echo.metadata.deletion_timestamp.is_some(),
        trace_id = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    );
    let trace_id = trace_id_of(&span);
    if let Some(trace_id) = &trace_id {
        span.record("trace_id", trace_id.as_str());
    }
    ctx.links
        .record_reconcile(key.clone(), span.context().span().span_context().clone());
    let _running = ctx.liveness.reconcile_started();
    let started = std::time::Instant::now();

    let timeout = ctx.reconcile_timeout;
    let work = async {
        let namespace = echo
            .namespace()
            .ok_or(Error::IncompleteObject("namespace"))?;
        let api: Api<Echo> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = match tokio::time::timeout(timeout, async {
            if echo.metadata.deletion_timestamp.is_some() {
                cleanup(&api, &echo, &ctx, &namespace, trace_id.as_deref()).await
            } else {
                apply(&api, &echo, &ctx, &namespace, trace_id.clone()).await
            }
        })
        .await
        {
            Ok(result) => result,
            Err(_) => {
                let err = Error::Timeout(timeout);
                // The status write and the Event have their own per-request timeout.
                report_failure(&api, &echo, &ctx, &err, trace_id.clone()).await;
                Err(err)
            }
        };
        let span = tracing::Span::current();
        match &result {
            Ok(_) => {
                ctx.backoff.reset(&key);
                ctx.metrics
                    .reconciled("Reconciled", true, started.elapsed(), &span);
            }
            Err(err) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", err.reason());
                ctx.metrics
                    .reconciled(err.reason(), false, started.elapsed(), &span);
                tracing::warn!(error = %err, reason = err.reason(), "reconcile failed");
            }
        }
        result
    };
    work.instrument(span).await
}

/// kube-runtime's error policy: retry the object with growing delays, never a hot loop.
pub fn error_policy(echo: Arc<Echo>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx
        .backoff
        .next_delay(&ObjectRef::from_obj(echo.as_ref()).to_string());
    tracing::info!(error = %err, retry_in_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX), "requeueing after failure");
    Action::requeue(delay)
}

async fn apply(
    api: &Api<Echo>,
    echo: &Echo,
    ctx: &Context,
    namespace: &str,
    trace_id: Option<String>,
) -> Result<Action, Error> {
    let name = echo.name_any();
    let outcome = async {
        ensure_finalizer(api, echo).await?;
        ctx.echo.put(namespace, &name, &echo.spec).await
    }
    .await;
    match outcome {
        Ok(reply) => {
            tracing::info!(reply = %reply.reply, "echo service answered");
            let status = status::build(
                echo,
                &Outcome::Ready {
                    reply: &reply.reply,
                },
                trace_id.clone(),
                jiff::Timestamp::now(),
            );
            if let Err(err) = write_status(api, &name, &status).await {
                report_failure(api, echo, ctx, &err, trace_id).await;
                return Err(err);
            }
            let note = events::note(
                &format!("echo service replied {:?}", reply.reply),
                trace_id.as_deref(),
            );
            publish(
                ctx,
                echo,
                EventType::Normal,
                "Reconciled",
                "Reconcile",
                note,
            )
            .await;
            Ok(Action::requeue(ctx.resync))
        }
        Err(err) => {
            report_failure(api, echo, ctx, &err, trace_id).await;
            Err(err)
        }
    }
}

/// Deletes the remote echo, then lets Kubernetes delete the object.
async fn cleanup(
    api: &Api<Echo>,
    echo: &Echo,
    ctx: &Context,
    namespace: &str,
    trace_id: Option<&str>,
) -> Result<Action, Error> {
    if !echo.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = echo.name_any();
    // While the echo service is down, deletion waits (retried with backoff) so nothing is
    // left behind in it; the annotation is the way out when it will never come back.
    let skip = echo
        .annotations()
        .get(SKIP_CLEANUP_ANNOTATION)
        .is_some_and(|v| v == "true");
    let note = if skip {
        tracing::warn!(
            annotation = SKIP_CLEANUP_ANNOTATION,
            "not calling the echo service: cleanup skipped on request"
        );
        events::note(
            &format!("cleanup of the echo service skipped by {SKIP_CLEANUP_ANNOTATION}"),
            trace_id,
        )
    } else {
        if let Err(err) = ctx.echo.delete(namespace, &name).await {
            report_failure(api, echo, ctx, &err, trace_id.map(str::to_owned)).await;
            return Err(err);
        }
        events::note("echo service forgot the message", trace_id)
    };
    // Published before the finalizer goes: afterwards the object may be gone.
    publish(ctx, echo, EventType::Normal, "Deleted", "Cleanup", note).await;
    remove_finalizer(api, echo).await?;
    tracing::info!("finalizer removed");
    Ok(Action::await_change())
}

/// Best effort: the reconcile already failed, a failing status write must not hide why.
async fn report_failure(
    api: &Api<Echo>,
    echo: &Echo,
    ctx: &Context,
    err: &Error,
    trace_id: Option<String>,
) {
    let message = err.to_string();
    let outcome = Outcome::NotReady {
        reason: err.reason(),
        message: &message,
    };
    let status = status::build(echo, &outcome, trace_id.clone(), jiff::Timestamp::now());
    if let Err(status_err) = write_status(api, &echo.name_any(), &status).await {
        tracing::warn!(error = %status_err, "cannot record the failure in status");
    }
    let note = events::note(&message, trace_id.as_deref());
    let action = if echo.metadata.deletion_timestamp.is_some() {
        "Cleanup"
    } else {
        "Reconcile"
    };
    publish(ctx, echo, EventType::Warning, err.reason(), action, note).await;
}

async fn write_status(
    api: &Api<Echo>,
    name: &str,
    status: &crate::crd::EchoStatus,
) -> Result<(), Error> {
    let params = PatchParams::apply(status::FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(status::apply_patch(status)))
        .instrument(tracing::info_span!("write status"))
        .await
        .map(|_| ())
        .map_err(Error::kube("write the status"))
}

async fn ensure_finalizer(api: &Api<Echo>, echo: &Echo) -> Result<(), Error> {
    let finalizers = echo.finalizers();
    if finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    // The test operation makes the patch fail instead of overwriting a concurrent change.
    let patch = if finalizers.is_empty() {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ])
    } else {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": finalizers },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ])
    };
    let span = tracing::info_span!("add finalizer");
    patch_finalizers(api, echo, patch, span, "add the finalizer").await
}

async fn remove_finalizer(api: &Api<Echo>, echo: &Echo) -> Result<(), Error> {
    let Some(index) = echo.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = serde_json::json!([
        { "op": "test", "path": path, "value": FINALIZER },
        { "op": "remove", "path": path },
    ]);
    let span = tracing::info_span!("remove finalizer");
    patch_finalizers(api, echo, patch, span, "remove the finalizer").await
}

/// Sends a JSON patch of the finalizer list inside `span`; `action` completes the error
/// message ("cannot ...").
async fn patch_finalizers(
    api: &Api<Echo>,
    echo: &Echo,
    patch: serde_json::Value,
    span: tracing::Span,
    action: &'static str,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(Error::FinalizerPatch)?;
    api.patch(
        &echo.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .instrument(span)
    .await
    .map(|_| ())
    .map_err(Error::kube(action))
}

/// Events are for people; failing to publish one never fails the reconcile.
async fn publish(
    ctx: &Context,
    echo: &Echo,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    let result = ctx
        .recorder
        .publish(&event, &echo.object_ref(&()))
        .instrument(tracing::info_span!("publish event", event.reason = reason))
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, reason, "cannot publish the Kubernetes Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay("a").as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        assert_eq!(
            backoff.next_delay("b").as_secs(),
            1,
            "objects back off independently"
        );
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a").as_secs(), 1);
    }
}
