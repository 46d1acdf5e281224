//! The echo service's in-memory state: stored echoes and how many writes each has received.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::echo_api::EchoReply;
use crate::lock::lock;

/// Identifies an echo the way the URL does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EchoKey {
    pub namespace: String,
    pub name: String,
}

/// Result of one write attempt.
pub enum WriteOutcome {
    Stored(EchoReply),
    /// Rejected because the object asked for its first `fail_first` writes to fail.
    Rejected {
        attempt: u32,
        fail_first: u32,
    },
    /// A new key, and the store already holds `capacity` keys.
    Full {
        capacity: usize,
    },
}

/// Keys kept by default: the operator stores one per `Echo`; more is a runaway client.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Default)]
struct Entry {
    writes: u32,
    echo: Option<EchoReply>,
}

/// Stored echoes and write counters, at most `capacity` keys (a key whose writes were all
/// rejected counts too, so clients cannot grow it without bound either).
pub struct Store {
    entries: Mutex<HashMap<EchoKey, Entry>>,
    capacity: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Store {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
        }
    }

    /// Keys held now, stored or only counted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts the write, then stores it unless it is one of the first `fail_first`.
    pub fn write(
        &self,
        key: EchoKey,
        message: String,
        delay_ms: u32,
        fail_first: u32,
        trace_id: Option<String>,
    ) -> WriteOutcome {
        let _span = tracing::info_span!(
            "store write",
            echo.namespace = %key.namespace,
            echo.name = %key.name
        )
        .entered();
        let mut entries = self.lock();
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            tracing::warn!(
                capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX),
                "store is full; rejecting a new key"
            );
            return WriteOutcome::Full {
                capacity: self.capacity,
            };
        }
        let entry = entries.entry(key.clone()).or_default();
        entry.writes = entry.writes.saturating_add(1);
        if entry.writes <= fail_first {
            tracing::info!(
                attempt = i64::from(entry.writes),
                fail_first = i64::from(fail_first),
                "rejecting write as failFirst asks"
            );
            return WriteOutcome::Rejected {
                attempt: entry.writes,
                fail_first,
            };
        }
        let stored = EchoReply {
            reply: format!("echo: {message}"),
            namespace: key.namespace,
            name: key.name,
            message,
            delay_ms,
            fail_first,
            trace_id,
            writes: entry.writes,
        };
        entry.echo = Some(stored.clone());
        WriteOutcome::Stored(stored)
    }

    pub fn get(&self, key: &EchoKey) -> Option<EchoReply> {
        let _span = tracing::info_span!("store read").entered();
        self.lock().get(key).and_then(|entry| entry.echo.clone())
    }

    /// Forgets the echo and its write count; true when something was stored.
    pub fn remove(&self, key: &EchoKey) -> bool {
        let _span = tracing::info_span!("store delete").entered();
        self.lock()
            .remove(key)
            .is_some_and(|entry| entry.echo.is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EchoKey, Entry>> {
        lock(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EchoKey {
        EchoKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn write(store: &Store, name: &str, fail_first: u32) -> WriteOutcome {
        store.write(key(name), "m".into(), 0, fail_first, None)
    }

    #[test]
    fn new_keys_past_the_capacity_are_refused_and_existing_ones_still_written() {
        let store = Store::with_capacity(2);
        assert!(matches!(write(&store, "a", 0), WriteOutcome::Stored(_)));
        // A write that is only counted (failFirst) holds a key as well.
        assert!(matches!(
            write(&store, "b", 5),
            WriteOutcome::Rejected { .. }
        ));
        assert!(matches!(
            write(&store, "c", 0),
            WriteOutcome::Full { capacity: 2 }
        ));
        assert_eq!(store.len(), 2);
        assert!(matches!(write(&store, "a", 0), WriteOutcome::Stored(_)));
        store.remove(&key("b"));
        assert!(matches!(write(&store, "c", 0), WriteOutcome::Stored(_)));
        assert_eq!(store.len(), 2);
    }
}
