//! What one reconcile did and why it ran, for the attributes its `reconcile` span gets when
//! it ends (names in [`crate::operator::attributes`]): "reconciles that failed" or "reconciles
//! that wrote nothing" is then one query. Everything here is a static string or an integer,
//! so recording it allocates nothing.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use kube::runtime::controller::Action;

use crate::operator::calls::echo_span::AttemptCounter;

/// One kind of write a reconcile makes.
#[derive(Clone, Copy, Debug)]
pub enum Write {
    /// The finalizer added or removed.
    Finalizer = 1,
    /// The echo stored in, or deleted from, the echo service.
    Echo = 2,
    Status = 4,
    Event = 8,
}

/// Every combination of writes, indexed by their bits, in the order of [`Write`].
const WRITES: [&str; 16] = [
    "none",
    "finalizer",
    "echo",
    "finalizer,echo",
    "status",
    "finalizer,status",
    "echo,status",
    "finalizer,echo,status",
    "event",
    "finalizer,event",
    "echo,event",
    "finalizer,echo,event",
    "status,event",
    "finalizer,status,event",
    "echo,status,event",
    "finalizer,echo,status,event",
];

/// Filled in by the steps as they go. They hold it by reference across awaits, hence atomics.
#[derive(Debug, Default)]
pub struct Record {
    writes: AtomicU8,
    echo_attempts: AttemptCounter,
    ready: AtomicBool,
}

impl Record {
    /// The object is Ready at its generation: written now, or found so.
    pub fn ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn wrote(&self, write: Write) {
        self.writes.fetch_or(write as u8, Ordering::Relaxed);
    }

    /// What was written, as the `writes` attribute says it.
    pub fn writes(&self) -> &'static str {
        WRITES[usize::from(self.writes.load(Ordering::Relaxed) & 0x0f)]
    }

    /// Handed to every echo call of the reconcile, which counts its attempts in it.
    pub fn echo_attempts(&self) -> &AttemptCounter {
        &self.echo_attempts
    }
}

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done: next time at the resync, or on a change.
    Success,
    /// Failed: the error policy retries it with backoff.
    Error,
    /// Not failed, but asked to run again before the resync period (no step does today).
    Requeue,
}

impl Verdict {
    pub fn of<E>(result: &Result<Action, E>, resync: Duration) -> Self {
        match result {
            Err(_) => Self::Error,
            Ok(action)
                if *action == Action::await_change() || *action == Action::requeue(resync) =>
            {
                Self::Success
            }
            Ok(_) => Self::Requeue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
        }
    }
}

/// What caused a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A change of the object (a pending watch event).
    WatchEvent,
    /// No event; the previous reconcile failed.
    ErrorRetry,
    /// No event; the previous reconcile asked to run again early.
    Requeue,
    /// No event; the periodic check of a settled object (or the first since this replica
    /// started leading, whatever came before).
    Resync,
}

impl Trigger {
    /// The trigger of a reconcile no watch event caused, after one that ended `previous`.
    pub fn after(previous: Option<Verdict>) -> Self {
        match previous {
            Some(Verdict::Error) => Self::ErrorRetry,
            Some(Verdict::Requeue) => Self::Requeue,
            Some(Verdict::Success) | None => Self::Resync,
        }
    }

    /// Whether this reconcile carries on the story of the one before (so it is sampled as
    /// that one was); a resync starts a story of its own.
    pub fn continues_previous(self) -> bool {
        matches!(self, Self::ErrorRetry | Self::Requeue)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WatchEvent => "watch_event",
            Self::ErrorRetry => "error_retry",
            Self::Requeue => "requeue",
            Self::Resync => "resync",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writes_table_names_each_combination_in_order() {
        let names = ["finalizer", "echo", "status", "event"];
        for (bits, expected) in WRITES.iter().enumerate() {
            let joined: Vec<&str> = (0..4)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| names[i])
                .collect();
            let joined = if joined.is_empty() {
                "none".to_owned()
            } else {
                joined.join(",")
            };
            assert_eq!(&joined, expected);
        }
        let record = Record::default();
        assert_eq!(record.writes(), "none");
        record.wrote(Write::Event);
        record.wrote(Write::Finalizer);
        record.wrote(Write::Event);
        assert_eq!(record.writes(), "finalizer,event");
    }

    #[test]
    fn verdicts_and_triggers() {
        let resync = Duration::from_secs(300);
        let ok = |action| Ok::<_, ()>(action);
        assert_eq!(
            Verdict::of(&ok(Action::requeue(resync)), resync),
            Verdict::Success
        );
        assert_eq!(
            Verdict::of(&ok(Action::await_change()), resync),
            Verdict::Success
        );
        assert_eq!(
            Verdict::of(&ok(Action::requeue(Duration::from_secs(1))), resync),
            Verdict::Requeue
        );
        assert_eq!(Verdict::of(&Err::<Action, _>(()), resync), Verdict::Error);
        assert_eq!(Trigger::after(Some(Verdict::Error)), Trigger::ErrorRetry);
        assert_eq!(Trigger::after(Some(Verdict::Requeue)), Trigger::Requeue);
        assert_eq!(Trigger::after(Some(Verdict::Success)), Trigger::Resync);
        assert_eq!(Trigger::after(None), Trigger::Resync);
        assert!(Trigger::ErrorRetry.continues_previous() && !Trigger::Resync.continues_previous());
    }
}
