//! The echo service's in-memory state: stored echoes and how many writes each has received,
//! within three budgets: keys in all, keys per namespace (one tenant cannot take every key
//! and leave the others with 507s), and bytes.

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

/// What the store may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Keys in all, stored or only counted (a key whose writes were all rejected counts
    /// too, so clients cannot grow the store without bound either).
    pub max_entries: usize,
    /// Keys of one namespace.
    pub max_entries_per_namespace: usize,
    /// Bytes of keys, messages and replies together.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// The operator stores one key per `Echo`; more is a runaway client. The byte budget
    /// keeps the store well inside the echo-server's 128 Mi memory limit even when every
    /// echo carries the longest message (4 KiB of UTF-8, stored again in its reply).
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_entries_per_namespace: 5_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The budget a write would exceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Entries(usize),
    NamespaceEntries { namespace: String, limit: usize },
    Bytes(usize),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entries(limit) => write!(f, "the store holds its maximum of {limit} echoes"),
            Self::NamespaceEntries { namespace, limit } => write!(
                f,
                "namespace {namespace} holds its maximum of {limit} echoes"
            ),
            Self::Bytes(limit) => write!(f, "the store holds its maximum of {limit} bytes"),
        }
    }
}

/// Result of one write attempt.
pub enum WriteOutcome {
    Stored(EchoReply),
    /// Rejected because the object asked for its first `fail_first` writes to fail.
    Rejected {
        attempt: u32,
        fail_first: u32,
    },
    /// Storing it would exceed a budget.
    Full(Exceeded),
}

#[derive(Default)]
struct Entry {
    writes: u32,
    echo: Option<EchoReply>,
}

/// Bytes an entry is charged: its key, and its message and reply when stored.
fn size_of(key: &EchoKey, echo: Option<&EchoReply>) -> usize {
    key.namespace.len() + key.name.len() + echo.map_or(0, |e| e.message.len() + e.reply.len())
}

#[derive(Default)]
struct Held {
    entries: HashMap<EchoKey, Entry>,
    per_namespace: HashMap<String, usize>,
    bytes: usize,
}

pub struct Store {
    held: Mutex<Held>,
    limits: Limits,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_limits(Limits::default())
    }
}

impl Store {
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            held: Mutex::default(),
            limits,
        }
    }

    /// Keys held now, stored or only counted.
    pub fn len(&self) -> usize {
        lock(&self.held).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts the write, then stores it unless it is one of the first `fail_first`, or a
    /// budget would be exceeded.
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
        let stored = EchoReply {
            reply: format!("echo: {message}"),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            message,
            delay_ms,
            fail_first,
            trace_id,
            writes: 0,
        };
        let mut held = lock(&self.held);
        if let Err(exceeded) = self.admits(&held, &key, &stored) {
            tracing::warn!(limit = %exceeded, "store is full; rejecting the write");
            return WriteOutcome::Full(exceeded);
        }
        held.charge(&key);
        let entry = held.entries.entry(key.clone()).or_default();
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
            writes: entry.writes,
            ..stored
        };
        let before = size_of(&key, entry.echo.as_ref());
        entry.echo = Some(stored.clone());
        held.bytes = held.bytes - before + size_of(&key, Some(&stored));
        WriteOutcome::Stored(stored)
    }

    /// Whether `key` may hold `echo` within every budget.
    fn admits(&self, held: &Held, key: &EchoKey, echo: &EchoReply) -> Result<(), Exceeded> {
        let existing = held.entries.get(key);
        if existing.is_none() {
            if held.entries.len() >= self.limits.max_entries {
                return Err(Exceeded::Entries(self.limits.max_entries));
            }
            let in_namespace = held.per_namespace.get(&key.namespace).copied();
            if in_namespace.unwrap_or(0) >= self.limits.max_entries_per_namespace {
                return Err(Exceeded::NamespaceEntries {
                    namespace: key.namespace.clone(),
                    limit: self.limits.max_entries_per_namespace,
                });
            }
        }
        let before = existing.map_or(0, |e| size_of(key, e.echo.as_ref()));
        if held.bytes - before + size_of(key, Some(echo)) > self.limits.max_bytes {
            return Err(Exceeded::Bytes(self.limits.max_bytes));
        }
        Ok(())
    }

    pub fn get(&self, key: &EchoKey) -> Option<EchoReply> {
        let _span = tracing::info_span!("store read").entered();
        lock(&self.held)
            .entries
            .get(key)
            .and_then(|entry| entry.echo.clone())
    }

    /// Forgets the echo and its write count; true when something was stored.
    pub fn remove(&self, key: &EchoKey) -> bool {
        let _span = tracing::info_span!("store delete").entered();
        let mut held = lock(&self.held);
        let Some(entry) = held.entries.remove(key) else {
            return false;
        };
        held.bytes -= size_of(key, entry.echo.as_ref());
        held.discharge(key);
        entry.echo.is_some()
    }
}

impl Held {
    /// Counts a new key against its namespace and the byte budget (its name only: the
    /// message is charged once stored).
    fn charge(&mut self, key: &EchoKey) {
        if !self.entries.contains_key(key) {
            *self.per_namespace.entry(key.namespace.clone()).or_default() += 1;
            self.bytes += size_of(key, None);
        }
    }

    fn discharge(&mut self, key: &EchoKey) {
        if let Some(count) = self.per_namespace.get_mut(&key.namespace) {
            *count -= 1;
            if *count == 0 {
                self.per_namespace.remove(&key.namespace);
            }
        }
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
        let store = Store::with_limits(Limits {
            max_entries: 2,
            ..Limits::default()
        });
        assert!(matches!(write(&store, "a", 0), WriteOutcome::Stored(_)));
        // A write that is only counted (failFirst) holds a key as well.
        assert!(matches!(
            write(&store, "b", 5),
            WriteOutcome::Rejected { .. }
        ));
        assert!(matches!(
            write(&store, "c", 0),
            WriteOutcome::Full(Exceeded::Entries(2))
        ));
        assert_eq!(store.len(), 2);
        assert!(matches!(write(&store, "a", 0), WriteOutcome::Stored(_)));
        store.remove(&key("b"));
        assert!(matches!(write(&store, "c", 0), WriteOutcome::Stored(_)));
        assert_eq!(store.len(), 2);
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn key(namespace: &str, name: &str) -> EchoKey {
        EchoKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn one_namespace_cannot_take_every_key() {
        let store = Store::with_limits(Limits {
            max_entries_per_namespace: 3,
            ..Limits::default()
        });
        for i in 0..3 {
            let outcome = store.write(key("greedy", &format!("e{i}")), "m".into(), 0, 0, None);
            assert!(matches!(outcome, WriteOutcome::Stored(_)));
        }
        assert!(matches!(
            store.write(key("greedy", "e3"), "m".into(), 0, 0, None),
            WriteOutcome::Full(Exceeded::NamespaceEntries { .. })
        ));
        assert!(
            matches!(
                store.write(key("modest", "e0"), "m".into(), 0, 0, None),
                WriteOutcome::Stored(_)
            ),
            "another namespace still writes"
        );
        store.remove(&key("greedy", "e0"));
        assert!(matches!(
            store.write(key("greedy", "e3"), "m".into(), 0, 0, None),
            WriteOutcome::Stored(_)
        ));
    }

    #[test]
    fn the_byte_budget_holds_and_is_given_back() {
        let store = Store::with_limits(Limits {
            max_bytes: 10_000,
            ..Limits::default()
        });
        let big = "x".repeat(3_000); // 3,000 message + 3,006 reply bytes
        assert!(matches!(
            store.write(key("a", "one"), big.clone(), 0, 0, None),
            WriteOutcome::Stored(_)
        ));
        assert!(matches!(
            store.write(key("a", "two"), big.clone(), 0, 0, None),
            WriteOutcome::Full(Exceeded::Bytes(10_000))
        ));
        // Rewriting the same key with the same size fits: its old bytes are given back.
        assert!(matches!(
            store.write(key("a", "one"), big.clone(), 0, 0, None),
            WriteOutcome::Stored(_)
        ));
        store.remove(&key("a", "one"));
        assert!(matches!(
            store.write(key("a", "two"), big, 0, 0, None),
            WriteOutcome::Stored(_)
        ));
    }
}
