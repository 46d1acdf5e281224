//! What the watch parses of an object: all of it but `metadata.managedFields`.
//!
//! Nothing here reads `managedFields` (the status is written by server-side apply, which
//! needs no copy of them), yet they are the largest part of a watched object: one tree of
//! JSON maps per manager. Dropping them once parsed kept them out of the cache (RSS at
//! 10,000 objects from 110 to about 50 MiB), but parsing them still took 77 of a reconcile's
//! 635 heap allocations (`make profile-allocations`, docs/performance.md). `Api<Watched<K>>`
//! reaches `K`'s URLs, and its objects skip the field while they are parsed, unbuilt.

use std::fmt;

use futures::{Stream, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use super::skipping::Skipping;
use crate::operator::stand_in::stands_in_for;

/// Where the skipped field is: keys of nested maps, from the object's top.
const SKIPPED: &[&str] = &["metadata", "managedFields"];

/// `K`, parsed without `metadata.managedFields` (left unset).
#[derive(Clone, Debug)]
pub struct Watched<K>(pub K);

stands_in_for!(Watched {
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
});

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Watched<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(Skipping::new(deserializer, SKIPPED)).map(Watched)
    }
}

/// kube-runtime's watcher over `api`, its objects parsed without `managedFields`.
pub fn watch<K>(
    api: Api<Watched<K>>,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + Send + 'static,
{
    watcher::watcher(api, config).map_ok(unwrap_event)
}

fn unwrap_event<K>(event: watcher::Event<Watched<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(Watched(object)) => watcher::Event::Apply(object),
        watcher::Event::Delete(Watched(object)) => watcher::Event::Delete(object),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(Watched(object)) => watcher::Event::InitApply(object),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use kube::core::WatchEvent;
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::Echo;

    fn echo_json(managed_fields: Value) -> Value {
        json!({
            "apiVersion": "tracing.example.com/v1alpha1",
            "kind": "Echo",
            "metadata": {
                "name": "a",
                "namespace": "ns",
                "generation": 2,
                "labels": { "managedFields": "a label, kept" },
                "managedFields": managed_fields,
                "resourceVersion": "7",
            },
            "spec": { "message": "hello", "delayMs": 5 },
            "status": { "reply": "hello", "observedGeneration": 1 },
        })
    }

    #[test]
    fn an_object_parses_whole_but_for_its_managed_fields() {
        let object = echo_json(json!([
            { "manager": "kubectl", "operation": "Update", "fieldsV1": { "f:spec": {} } },
        ]));
        let mut expected: Echo = serde_json::from_value(object.clone()).expect("an Echo");
        assert!(!expected.managed_fields().is_empty());
        expected.metadata.managed_fields = None;

        let watched: Watched<Echo> =
            serde_json::from_str(&object.to_string()).expect("an Echo parses");
        // `Echo` has no `PartialEq`; its JSON compares every field.
        let as_json = |echo: &Echo| serde_json::to_value(echo).expect("an Echo serialises");
        assert_eq!(as_json(&watched.0), as_json(&expected));
        assert_eq!(watched.0.labels()["managedFields"], "a label, kept");
    }

    #[test]
    fn managed_fields_are_skipped_unbuilt_so_even_a_malformed_entry_does_not_fail() {
        let object = echo_json(json!(7)).to_string();
        assert!(serde_json::from_str::<Echo>(&object).is_err());
        let watched: Watched<Echo> = serde_json::from_str(&object).expect("the field is skipped");
        assert!(watched.0.managed_fields().is_empty());
    }

    #[test]
    fn a_watch_event_parses_through_and_bad_input_is_an_error() {
        let line = json!({ "type": "MODIFIED", "object": echo_json(json!([])) }).to_string();
        match serde_json::from_str::<WatchEvent<Watched<Echo>>>(&line) {
            Ok(WatchEvent::Modified(Watched(echo))) => assert_eq!(echo.spec.message, "hello"),
            other => panic!("expected a Modified event, got {other:?}"),
        }
        assert!(serde_json::from_str::<Watched<Echo>>("not json").is_err());
        let no_metadata_map = json!({ "metadata": 1, "spec": { "message": "m" } }).to_string();
        assert!(serde_json::from_str::<Watched<Echo>>(&no_metadata_map).is_err());
        let no_spec = json!({ "metadata": { "name": "a" } }).to_string();
        assert!(serde_json::from_str::<Watched<Echo>>(&no_spec).is_err());
    }

    #[test]
    fn watched_reaches_the_urls_of_the_resource_it_stands_for() {
        assert_eq!(
            Watched::<Echo>::url_path(&(), Some("ns")),
            Echo::url_path(&(), Some("ns"))
        );
        assert_eq!(Watched::<Echo>::kind(&()), "Echo");
        assert_eq!(Watched::<Echo>::api_version(&()), Echo::api_version(&()));
    }
}
