//! A Kubernetes operator whose traces cross processes: from the watch event that saw a
//! change, through reconcile and an instrumented HTTP call, into the echo service it calls.

pub mod crd;
pub mod echo_api;
pub mod echo_server;
pub mod lock;
pub mod metrics;
pub mod operator;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
