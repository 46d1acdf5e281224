//! Shared test harness, one module per concern; each test binary uses a part of it.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod echo_process;
pub mod eventually;
pub mod fake_api;
pub mod fixtures;
pub mod operator;
pub mod otlp;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use echo_process::{CALLER_SPAN, EchoServer, traceparent, unreachable_echo_url};
pub use eventually::eventually;
pub use fake_api::FakeApi;
pub use fixtures::{EchoBuilder, SpecBuilder, echo, spec, status_trace_id};
pub use operator::{Operator, OperatorOptions};
pub use otlp::{Receiver, SpanRecord};
pub use telemetry::{flush_operator_spans, receiver};
pub use trace::{ECHO, OPERATOR, Trace, all_exported, exported};
