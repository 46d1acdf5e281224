//! Per-object exponential backoff after failed reconciles: each object backs off on its own,
//! so one failing object never slows the others or spins in a hot loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::lock::lock;

pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::default(),
        }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(count.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forgets `key`: after a success, and when the object is gone (a deleted object that
    /// was failing must not stay in the table).
    pub fn reset(&self, key: &str) {
        lock(&self.failures).remove(key);
    }

    /// Forgets every object's failures.
    pub fn clear(&self) {
        lock(&self.failures).clear();
    }

    /// Objects with failures on record.
    pub fn len(&self) -> usize {
        lock(&self.failures).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay("a").as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        assert_eq!(
            backoff.next_delay("b").as_secs(),
            1,
            "objects back off independently"
        );
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a").as_secs(), 1);
    }
}
