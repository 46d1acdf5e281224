//! Which watch events need a reconcile.
//!
//! Only changes of `metadata.generation` (spec edits, and deletion, which bumps it), of the
//! deletion mark, of the object's uid (deleted and recreated with the same name) and of the
//! skip-cleanup annotation trigger one: the operator's own status and finalizer writes would
//! otherwise wake it again and fill Jaeger with empty traces.
//!
//! Not kube-runtime's `predicate_filter`: it sees objects, not events, so it can neither
//! forget an object when it is deleted nor notice, after a re-list, the objects that
//! vanished while the watch was down. The filter decides and keeps its own memory; what to
//! do about a decision (spans, metrics, forgetting elsewhere) is the caller's.

use std::collections::{HashMap, HashSet};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::crd::{Echo, SKIP_CLEANUP_ANNOTATION};

/// What a trigger was decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// A deleted and recreated object with the same name and generation is new work.
    uid: Option<String>,
    generation: Option<i64>,
    deleting: bool,
    /// Asking to skip the remote cleanup bumps no generation, but is new work.
    skip_cleanup: bool,
}

impl Seen {
    fn of(echo: &Echo) -> Self {
        Self {
            uid: echo.metadata.uid.clone(),
            generation: echo.metadata.generation,
            deleting: echo.metadata.deletion_timestamp.is_some(),
            skip_cleanup: echo
                .annotations()
                .get(SKIP_CLEANUP_ANNOTATION)
                .is_some_and(|v| v == "true"),
        }
    }
}

/// What one watch event asks for.
#[derive(Debug)]
pub enum Decision {
    /// A change to reconcile, with the watch event's type (`Apply`, `InitApply`).
    Reconcile(&'static str, Box<Echo>),
    /// These objects no longer exist: forget everything kept about them.
    Forget(Vec<String>),
    /// Nothing new.
    Ignore,
}

/// Remembers what each object looked like when it last triggered a reconcile.
#[derive(Default)]
pub struct ChangeFilter {
    seen: HashMap<String, Seen>,
    /// Objects listed since the last `Init`, to forget those that vanished meanwhile.
    relisted: Option<HashSet<String>>,
}

impl ChangeFilter {
    pub fn decide(&mut self, event: watcher::Event<Echo>) -> Decision {
        match event {
            watcher::Event::Apply(echo) => self.changed("Apply", echo),
            watcher::Event::InitApply(echo) => self.changed("InitApply", echo),
            watcher::Event::Delete(echo) => {
                let key = ObjectRef::from_obj(&echo).to_string();
                self.seen.remove(&key);
                Decision::Forget(vec![key])
            }
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                Decision::Ignore
            }
            watcher::Event::InitDone => match self.relisted.take() {
                Some(relisted) => {
                    let vanished: Vec<String> = self
                        .seen
                        .keys()
                        .filter(|key| !relisted.contains(*key))
                        .cloned()
                        .collect();
                    for key in &vanished {
                        self.seen.remove(key);
                    }
                    Decision::Forget(vanished)
                }
                None => Decision::Ignore,
            },
        }
    }

    /// Objects remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn changed(&mut self, event_type: &'static str, echo: Echo) -> Decision {
        let key = ObjectRef::from_obj(&echo).to_string();
        if let Some(relisted) = &mut self.relisted {
            relisted.insert(key.clone());
        }
        let now = Seen::of(&echo);
        if now.generation.is_some() && self.seen.get(&key) == Some(&now) {
            return Decision::Ignore;
        }
        self.seen.insert(key, now);
        Decision::Reconcile(event_type, Box::new(echo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EchoSpec;

    fn echo(name: &str, generation: i64, deleting: bool) -> Echo {
        echo_with_uid(name, "uid-1", generation, deleting)
    }

    fn echo_with_uid(name: &str, uid: &str, generation: i64, deleting: bool) -> Echo {
        let mut echo = Echo::new(name, EchoSpec::new("hi"));
        echo.metadata.namespace = Some("default".into());
        echo.metadata.uid = Some(uid.into());
        echo.metadata.generation = Some(generation);
        if deleting {
            echo.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
        }
        echo
    }

    fn reconciles(filter: &mut ChangeFilter, event: watcher::Event<Echo>) -> bool {
        matches!(filter.decide(event), Decision::Reconcile(..))
    }

    #[test]
    fn only_generation_and_deletion_changes_trigger() {
        let mut filter = ChangeFilter::default();
        use watcher::Event::{Apply, Delete};
        assert!(reconciles(&mut filter, Apply(echo("a", 1, false))));
        assert!(
            !reconciles(&mut filter, Apply(echo("a", 1, false))),
            "status-only change"
        );
        assert!(
            reconciles(&mut filter, Apply(echo("a", 2, false))),
            "spec change"
        );
        assert!(
            reconciles(&mut filter, Apply(echo("a", 2, true))),
            "deletion started"
        );
        assert!(matches!(
            filter.decide(Delete(echo("a", 2, true))),
            Decision::Forget(keys) if keys.len() == 1
        ));
        assert!(
            reconciles(&mut filter, Apply(echo("a", 2, false))),
            "recreated after delete"
        );
    }

    #[test]
    fn asking_to_skip_the_cleanup_triggers() {
        let mut filter = ChangeFilter::default();
        let deleting = echo("a", 2, true);
        assert!(reconciles(
            &mut filter,
            watcher::Event::Apply(deleting.clone())
        ));
        let mut skipping = deleting;
        skipping.metadata.annotations =
            Some([(SKIP_CLEANUP_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert!(
            reconciles(&mut filter, watcher::Event::Apply(skipping)),
            "the annotation bumps no generation but is new work"
        );
    }

    #[test]
    fn an_object_recreated_during_a_watch_gap_triggers() {
        let mut filter = ChangeFilter::default();
        let old = echo_with_uid("a", "uid-old", 1, false);
        assert!(reconciles(&mut filter, watcher::Event::Apply(old)));
        // The Delete event was lost in a watch gap; the new object has the same name and
        // generation but another uid.
        let new = echo_with_uid("a", "uid-new", 1, false);
        assert!(
            reconciles(&mut filter, watcher::Event::Apply(new)),
            "a new uid is a new object"
        );
    }

    #[test]
    fn relist_forgets_objects_that_vanished() {
        let mut filter = ChangeFilter::default();
        filter.decide(watcher::Event::Apply(echo("a", 1, false)));
        filter.decide(watcher::Event::Apply(echo("b", 1, false)));
        filter.decide(watcher::Event::Init);
        assert!(!reconciles(
            &mut filter,
            watcher::Event::InitApply(echo("a", 1, false))
        ));
        let Decision::Forget(vanished) = filter.decide(watcher::Event::InitDone) else {
            panic!("a relist must forget what vanished");
        };
        assert_eq!(filter.len(), 1, "b was deleted while the watch was down");
        assert_eq!(
            vanished,
            [ObjectRef::from_obj(&echo("b", 1, false)).to_string()]
        );
    }
}
