//! The process around the controller: leader election decides whether this replica
//! reconciles at all; the health port tells the kubelet whether it is ready and still makes
//! progress, and tells Prometheus what it did.

pub mod health;
pub mod leader;
pub mod liveness;
pub mod metrics;
