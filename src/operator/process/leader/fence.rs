//! The leader's own deadline, checked right before every side effect.
//!
//! Losing the lease drops the controller, but that news travels through a channel and a
//! `select!`: a leader paused (SIGSTOP, a frozen VM, CPU throttling) past its deadline can,
//! once resumed, run a few more steps of its reconciles before the drop. Each step that
//! writes (a status write, a finalizer patch, an Event) and each attempt of a write to the
//! echo service (`operator::calls::fenced`) first asks the fence, synchronously, whether
//! this replica's deadline still lies ahead.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::lock::lock;

#[derive(Clone, Debug)]
pub struct Fence(Arc<Mutex<Deadline>>);

#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// No election: this replica always leads.
    Never,
    /// Leading until then; a past instant once it stopped.
    At(Instant),
}

/// A side effect refused because this replica's term is over.
#[derive(Debug, thiserror::Error)]
#[error("this replica's lease term ended; it no longer writes")]
pub struct TermOver;

impl Fence {
    /// For a replica that takes part in no election.
    pub fn always_open() -> Self {
        Self(Arc::new(Mutex::new(Deadline::Never)))
    }

    /// For an elector: closed until its first renewal.
    pub fn closed() -> Self {
        Self(Arc::new(Mutex::new(Deadline::At(Instant::now()))))
    }

    /// Leading until `deadline`.
    pub fn open_until(&self, deadline: Instant) {
        *lock(&self.0) = Deadline::At(deadline);
    }

    /// Leading no more.
    pub fn close(&self) {
        *lock(&self.0) = Deadline::At(Instant::now());
    }

    /// `Ok` while this replica may still write.
    pub fn check(&self) -> Result<(), TermOver> {
        match *lock(&self.0) {
            Deadline::Never => Ok(()),
            Deadline::At(deadline) if Instant::now() < deadline => Ok(()),
            Deadline::At(_) => Err(TermOver),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn writes_stop_at_the_deadline_even_before_anyone_says_so() {
        let fence = Fence::closed();
        assert!(fence.check().is_err(), "closed until the first renewal");
        fence.open_until(Instant::now() + Duration::from_secs(12));
        assert!(fence.check().is_ok());
        // Paused past the deadline: nobody closed the fence, and still it refuses.
        tokio::time::advance(Duration::from_secs(13)).await;
        assert!(fence.check().is_err());
        assert!(Fence::always_open().check().is_ok());
    }
}
