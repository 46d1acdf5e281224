//! The operator: watches `Echo` objects, calls the echo service, writes status back, and
//! keeps one trace from the watch event to the remote service.
//!
//! The modules in the order a change flows through them:
//!
//! 1. [`watch`]: the watch stream becomes reconcile triggers; each change gets a
//!    `watch event` span.
//! 2. [`controller`]: kube-runtime's `Controller` schedules (and merges) the triggers.
//! 3. [`reconcile`]: the `reconcile` span and its steps: finalizer, echo call, status, Event.
//! 4. [`calls`]: the CLIENT spans of the calls to the echo service and the API server.
//! 5. [`process`]: around it all, leader election, health and metrics; [`context`] wires
//!    what every reconcile shares.
//!
//! kube-runtime's scheduler sits between the watch and the reconcile and carries no trace
//! context, so the hand-over goes around it, keyed by the object:
//!
//! ```text
//!  watch event ──► watch::traced_triggers ──► kube-runtime scheduler ──► reconcile()
//!      │  `watch event` span, its context          │ creates and enters     │ first poll,
//!      ▼  stored under the object's key            ▼ `reconciling object`   │ that span not
//!  watch::trace_links::TraceLinks ◄── start_reconcile ── reconcile::adopt ◄─┘ started yet
//!      (newest pending event → parent;        (sets that span's parent before the SDK's
//!       older ones → links; no event → a       sampler decides: tracing-opentelemetry
//!       new root; a retry also tells the       starts spans lazily, context activation
//!       sampler if the failed one was sampled)  being off)
//! ```
//!
//! The key is the object's `ObjectRef`. A reconcile with no pending event (a requeue, a
//! retry, a resync) starts a new trace linked to the previous reconcile. [`attributes`] names
//! what our spans say beyond the semantic conventions.

pub mod watch;

pub mod controller;

pub mod reconcile;

pub mod calls;

pub mod attributes;
pub mod context;
pub mod process;
mod stand_in;

pub use context::{Context, Settings};
pub use controller::{LoopConfig, run_controller, run_while_leading};
