//! The `Echo` custom resource: its spec, its status and the CRD generated from them.
//!
//! Validation lives in the schema so the API server rejects bad specs before the operator
//! ever sees them; the limits are the echo service's own, from [`crate::echo_api`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::echo_api::{EchoRequest, MAX_DELAY_MS, MAX_FAIL_FIRST, MAX_MESSAGE_CHARS};

/// API group of every resource this project defines.
pub const GROUP: &str = "tracing.example.com";
/// Annotation through which whoever applies an object can start its trace.
pub const TRACEPARENT_ANNOTATION: &str = "tracing.example.com/traceparent";
/// KEP-5915's annotation: the context of whoever changed the object. A reconcile starts a new
/// trace linked to it (not continued). The operator also writes it on its Events.
pub const K8S_TRACEPARENT_ANNOTATION: &str = "tracing.k8s.io/traceparent";
/// Annotation that lets an object be deleted without calling the echo service: the escape
/// for an echo service that is gone for good (`"true"` to skip).
pub const SKIP_CLEANUP_ANNOTATION: &str = "tracing.example.com/skip-cleanup";
/// Finalizer that makes the operator delete the remote echo before the object goes away.
pub const FINALIZER: &str = "tracing.example.com/echo-cleanup";
/// The one condition type the operator maintains.
pub const READY_CONDITION: &str = "Ready";

/// What the user wants echoed, and how the echo service should behave while doing it.
// kube's `printcolumn(...)` repeats the same keys once per column, which this lint mistakes
// for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "tracing.example.com",
    version = "v1alpha1",
    kind = "Echo",
    plural = "echoes",
    shortname = "ec",
    namespaced,
    status = "EchoStatus",
    printcolumn(name = "Message", type_ = "string", json_path = ".spec.message"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Trace", type_ = "string", json_path = ".status.traceId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EchoSpec {
    /// Text the echo service stores and answers with.
    #[schemars(length(min = 1, max = MAX_MESSAGE_CHARS))]
    #[x_kube(validation = Rule::new("self.trim().size() > 0").message("message must not be blank"))]
    pub message: String,
    /// Milliseconds the echo service waits before it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Kubernetes knows `int32`, not schemars' `uint32` (the API server warns about it).
    #[schemars(range(min = 0, max = MAX_DELAY_MS), extend("format" = "int32"))]
    pub delay_ms: Option<u32>,
    /// The echo service answers 503 to the first N writes it receives for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_FAIL_FIRST), extend("format" = "int32"))]
    pub fail_first: Option<u32>,
}

/// What the operator last observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EchoStatus {
    /// The generation the operator last reconciled successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the echo service answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Trace id of the reconcile that wrote this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the operator last wrote this status (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconciled: Option<String>,
    /// Standard conditions; the operator maintains `Ready`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl Echo {
    /// The `Ready` condition, if the status has one.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == READY_CONDITION)
    }

    /// True when the operator has not yet reconciled the current generation.
    pub fn generation_pending(&self) -> bool {
        let observed = self.status.as_ref().and_then(|s| s.observed_generation);
        match (self.metadata.generation, observed) {
            (Some(generation), Some(observed)) => observed < generation,
            _ => true,
        }
    }
}

impl EchoSpec {
    /// A spec that echoes `message` at once and never fails on purpose.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            delay_ms: None,
            fail_first: None,
        }
    }

    /// Asks the echo service to wait `delay_ms` before it answers.
    pub fn delay_ms(mut self, delay_ms: u32) -> Self {
        self.delay_ms = Some(delay_ms);
        self
    }

    /// Asks the echo service to reject the first `fail_first` writes.
    pub fn fail_first(mut self, fail_first: u32) -> Self {
        self.fail_first = Some(fail_first);
        self
    }
}

impl From<&EchoSpec> for EchoRequest {
    fn from(spec: &EchoSpec) -> Self {
        Self {
            message: spec.message.clone(),
            delay_ms: spec.delay_ms,
            fail_first: spec.fail_first,
        }
    }
}

/// The CRD as YAML, exactly as `crdgen` prints it and `crd/` stores it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&Echo::crd())
}
