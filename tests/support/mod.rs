//! Shared test harness, one module per concern; each test binary uses a part of it.

// Each test binary uses a different part of the harness, and of its re-exports below.
#![allow(dead_code)]

pub mod echo_process;
pub mod echo_stub;
pub mod eventually;
pub mod fake_api;
pub mod fixtures;
pub mod metrics;
pub mod operator;
pub mod otlp;
pub mod telemetry;
pub mod tls;
pub mod trace;

// The names most tests use, at `support::`.
#[allow(unused_imports)]
pub use self::{
    echo_process::{CALLER_SPAN, EchoServer, traceparent, unreachable_echo_url},
    eventually::eventually,
    fake_api::FakeApi,
    fixtures::{EchoBuilder, echo, spec, status_trace_id},
    operator::{Operator, OperatorOptions},
    otlp::SpanRecord,
    telemetry::receiver,
    trace::{ECHO, OPERATOR, Trace, all_exported, exported},
};
