//! Echo objects as tests hand them to the operator, built by chaining:
//! `echo("default", "slow", spec("m").delay_ms(3_000)).finalized().being_deleted()`.

use echo_operator::crd::{Echo, EchoSpec, FINALIZER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A new `Echo` at generation 1, as the API server would hand it out.
pub fn echo(namespace: &str, name: &str, spec: EchoSpec) -> Echo {
    let mut echo = Echo::new(name, spec);
    echo.metadata.namespace = Some(namespace.into());
    echo.metadata.uid = Some(format!("uid-{name}"));
    echo.metadata.generation = Some(1);
    echo.metadata.resource_version = Some("1".into());
    echo
}

/// A spec with only its message; chain `EchoSpec`'s own `delay_ms` and `fail_first` for the
/// rest.
pub fn spec(message: &str) -> EchoSpec {
    EchoSpec::new(message)
}

/// Changes to an `Echo`, as a user or the API server would make them.
pub trait EchoBuilder {
    fn at_generation(self, generation: i64) -> Self;
    fn at_resource_version(self, resource_version: &str) -> Self;
    fn with_message(self, message: &str) -> Self;
    fn annotated(self, key: &str, value: impl Into<String>) -> Self;
    /// Carries the operator's finalizer.
    fn finalized(self) -> Self;
    /// Marked for deletion now.
    fn being_deleted(self) -> Self;
}

impl EchoBuilder for Echo {
    fn at_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    fn at_resource_version(mut self, resource_version: &str) -> Self {
        self.metadata.resource_version = Some(resource_version.into());
        self
    }

    fn with_message(mut self, message: &str) -> Self {
        self.spec.message = message.into();
        self
    }

    fn annotated(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata
            .annotations
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }

    fn finalized(mut self) -> Self {
        self.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        self
    }

    fn being_deleted(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        self
    }
}

/// The trace id the operator wrote into the status: 32 hex digits.
pub fn status_trace_id(echo: &Echo) -> String {
    let trace_id = echo
        .status
        .as_ref()
        .and_then(|s| s.trace_id.clone())
        .expect("status.traceId");
    assert_eq!(trace_id.len(), 32, "trace id {trace_id:?}");
    trace_id
}
