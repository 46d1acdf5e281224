//! One way to take a lock in this crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it if a panic poisoned it. Every lock in this crate guards a
/// value that each update changes in one step (one map insert or remove, one counter), so
/// a panic elsewhere cannot leave it half-written, and refusing it would turn one panic
/// into a stuck process.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
