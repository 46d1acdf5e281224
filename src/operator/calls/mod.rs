//! The calls out, each with its CLIENT span and W3C `traceparent`: to the echo service
//! (reqwest behind retry and tracing middleware, one span per attempt) and to the
//! Kubernetes API (a tower layer on kube's client, so an API server with tracing enabled
//! adds its spans to the reconcile's trace).

pub mod api_tracing;
pub mod bounded;
pub mod echo_client;
pub mod echo_span;
pub mod fenced;
pub mod written;
