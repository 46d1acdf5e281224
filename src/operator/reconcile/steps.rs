//! The steps of one reconcile, as methods on the value that carries what they all need: the
//! object, its namespace's API, the shared context, the trace that status and Events name,
//! and the record of what the reconcile did. Each side effect is one call here, in the order
//! the trace shows them.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::error::Error;
use super::events::{self, Event, EventType};
use super::finalizer;
use super::outcome::{Record, Write};
use super::status::{self, Outcome};
use crate::crd::{Echo, SKIP_CLEANUP_ANNOTATION};
use crate::echo_api::EchoReply;
use crate::operator::calls::written::Written;
use crate::operator::context::Context;
use crate::telemetry::propagation;

/// The reconcile's trace as status and Events name it; `None`s when tracing is off.
#[derive(Debug, Default)]
pub struct TraceNames {
    /// In status and in Events' notes.
    pub trace_id: Option<String>,
    /// The `reconcile` span's W3C context, in Events' `tracing.k8s.io/traceparent`.
    pub traceparent: Option<String>,
}

/// One reconcile of one object.
pub struct Reconciliation<'a> {
    echo: &'a Echo,
    ctx: &'a Context,
    /// Writes to the object, which do not parse the object the API server sends back.
    api: Api<Written<Echo>>,
    namespace: String,
    trace: TraceNames,
    record: &'a Record,
}

impl<'a> Reconciliation<'a> {
    pub fn new(
        echo: &'a Echo,
        ctx: &'a Context,
        trace: TraceNames,
        record: &'a Record,
    ) -> Result<Self, Error> {
        let namespace = echo
            .namespace()
            .ok_or(Error::IncompleteObject("namespace"))?;
        Ok(Self {
            api: Api::namespaced(ctx.client.clone(), &namespace),
            echo,
            ctx,
            namespace,
            trace,
            record,
        })
    }

    /// Cleans up an object being deleted; otherwise brings the echo service in line with it.
    pub async fn run(&self) -> Result<Action, Error> {
        if self.echo.metadata.deletion_timestamp.is_some() {
            self.cleanup().await
        } else {
            self.apply().await
        }
    }

    /// Finalizer, echo service, status, Event; or, when nothing changed, nothing at all.
    async fn apply(&self) -> Result<Action, Error> {
        let stored = async {
            self.ctx.fence.check()?;
            if finalizer::ensure(&self.api, self.echo).await? {
                self.record.wrote(Write::Finalizer);
            }
            self.store().await
        }
        .await;
        let reply = match stored {
            Ok(Some(reply)) => reply.reply,
            Ok(None) => {
                tracing::info!("the echo service already holds this generation: nothing to write");
                self.record.ready();
                return Ok(Action::requeue(self.ctx.resync));
            }
            Err(err) => return Err(self.fail(err).await),
        };
        // The reply comes from elsewhere: escaped and cut, it cannot forge or flood log lines.
        let logged = propagation::excerpt(&reply, propagation::EXCERPT_CHARS);
        tracing::info!(reply = %logged, "echo service answered");
        if let Err(err) = self.write_status(&Outcome::Ready { reply: &reply }).await {
            return Err(self.fail(err).await);
        }
        self.record.ready();
        let note = format!("echo service replied {reply:?}");
        self.publish(EventType::Normal, status::READY_REASON, &note)
            .await;
        Ok(Action::requeue(self.ctx.resync))
    }

    /// Stores the spec in the echo service, unless this is a resync of an object that is
    /// Ready at its generation and the service still holds exactly that (`None` then): a
    /// resync that changes nothing writes nothing, to the service or to the API server. One
    /// that finds the service lost it (a restart: it keeps state in memory) stores it again.
    async fn store(&self) -> Result<Option<EchoReply>, Error> {
        let name = self.echo.name_any();
        let spec = &self.echo.spec;
        let settled = !self.echo.generation_pending()
            && self
                .echo
                .ready_condition()
                .is_some_and(|c| c.status == "True");
        let attempts = self.record.echo_attempts();
        if settled
            && let Some(held) = self.ctx.echo.get(&self.namespace, &name, attempts).await?
            && held.message == spec.message
            && held.delay_ms == spec.delay_ms.unwrap_or(0)
            && held.fail_first == spec.fail_first.unwrap_or(0)
        {
            return Ok(None);
        }
        let reply = self
            .ctx
            .echo
            .put(&self.namespace, &name, spec, attempts)
            .await?;
        self.record.wrote(Write::Echo);
        Ok(Some(reply))
    }

    /// Deletes the remote echo, then lets Kubernetes delete the object.
    async fn cleanup(&self) -> Result<Action, Error> {
        if !finalizer::has_finalizer(self.echo) {
            return Ok(Action::await_change());
        }
        // While the echo service is down, deletion waits (retried with backoff) so nothing is
        // left behind in it; the annotation is the way out when it will never come back.
        let skip = self
            .echo
            .annotations()
            .get(SKIP_CLEANUP_ANNOTATION)
            .is_some_and(|v| v == "true");
        let note = if skip {
            tracing::warn!(
                annotation = SKIP_CLEANUP_ANNOTATION,
                "not calling the echo service: cleanup skipped on request"
            );
            format!("cleanup of the echo service skipped by {SKIP_CLEANUP_ANNOTATION}")
        } else {
            let name = self.echo.name_any();
            let attempts = self.record.echo_attempts();
            if let Err(err) = self.ctx.echo.delete(&self.namespace, &name, attempts).await {
                return Err(self.fail(err).await);
            }
            self.record.wrote(Write::Echo);
            "echo service forgot the message".to_owned()
        };
        // Published before the finalizer goes: afterwards the object may be gone.
        self.publish(EventType::Normal, "Deleted", &note).await;
        self.ctx.fence.check()?;
        if finalizer::remove(&self.api, self.echo).await? {
            self.record.wrote(Write::Finalizer);
        }
        tracing::info!("finalizer removed");
        Ok(Action::await_change())
    }

    /// Reports `err` in status and in a Warning Event, and hands it back for the error policy.
    /// Best effort: the reconcile already failed, a failing status write must not hide why.
    pub async fn fail(&self, err: Error) -> Error {
        if matches!(err, Error::TermOver(_)) {
            // Another replica may lead now: its status and Events, not ours.
            return err;
        }
        let message = err.to_string();
        let outcome = Outcome::NotReady {
            reason: err.reason(),
            message: &message,
        };
        if let Err(status_err) = self.write_status(&outcome).await {
            tracing::warn!(error = %status_err, "cannot record the failure in status");
        }
        self.publish(EventType::Warning, err.reason(), &message)
            .await;
        err
    }

    async fn write_status(&self, outcome: &Outcome<'_>) -> Result<(), Error> {
        self.ctx.fence.check()?;
        let status = status::build(
            self.echo,
            outcome,
            self.trace.trace_id.clone(),
            jiff::Timestamp::now(),
        );
        let params = PatchParams::apply(status::FIELD_MANAGER).force();
        let patch = Patch::Apply(status::apply_patch(&status));
        self.api
            .patch_status(&self.echo.name_any(), &params, &patch)
            .instrument(tracing::info_span!("write status"))
            .await
            .map_err(Error::kube("write the status"))?;
        self.record.wrote(Write::Status);
        Ok(())
    }

    /// Publishes an Event whose note names this reconcile's trace. Events are for people;
    /// failing to publish one never fails the reconcile.
    async fn publish(&self, type_: EventType, reason: &str, body: &str) {
        if self.ctx.fence.check().is_err() {
            tracing::debug!(reason, "lease term over: Event not published");
            return;
        }
        let action = if self.echo.metadata.deletion_timestamp.is_some() {
            "Cleanup"
        } else {
            "Reconcile"
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(events::note(body, self.trace.trace_id.as_deref())),
            action: action.to_owned(),
            secondary: None,
        };
        let regarding = self.echo.object_ref(&());
        let traceparent = self.trace.traceparent.as_deref();
        let result = self
            .ctx
            .recorder
            .publish(&event, &regarding, traceparent)
            .instrument(tracing::info_span!("publish event", event.reason = reason))
            .await;
        match result {
            Ok(()) => self.record.wrote(Write::Event),
            Err(err) => tracing::warn!(error = %err, reason, "cannot publish the Kubernetes Event"),
        }
    }
}
