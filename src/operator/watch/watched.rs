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
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::{Deserialize, de::DeserializeOwned};

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
        K::deserialize(Skipping {
            inner: deserializer,
            path: SKIPPED,
        })
        .map(Watched)
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

/// A deserializer that hands its value on as is, except the map entry at `path` (never
/// empty), which it skips. Only maps are looked into; any other value passes untouched.
/// (Sequences too: the path names map keys, never list items.)
struct Skipping<'p, D> {
    inner: D,
    path: &'p [&'static str],
}

/// Each method hands the visitor on to the same method of the inner deserializer.
macro_rules! pass_through {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* visitor)
            }
        )*
    };
}

/// Each method hands its value to the same method of the inner visitor.
macro_rules! visit_through {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
                self.inner.$method(value)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Skipping<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    pass_through! {
        deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
        deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_u128(); deserialize_f32();
        deserialize_f64(); deserialize_char(); deserialize_str(); deserialize_string();
        deserialize_bytes(); deserialize_byte_buf(); deserialize_option(); deserialize_unit();
        deserialize_seq(); deserialize_identifier(); deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<'p, D> Skipping<'p, D> {
    fn visitor<V>(&self, inner: V) -> SkippingVisitor<'p, V> {
        SkippingVisitor {
            inner,
            path: self.path,
        }
    }
}

/// Wraps the map it is given so that the entry at `path` is skipped.
struct SkippingVisitor<'p, V> {
    inner: V,
    path: &'p [&'static str],
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SkippingVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(SkippingMap {
            inner: map,
            path: self.path,
            descend: None,
        })
    }

    // A struct may also come as a sequence of its fields; nothing is skipped in one.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    // Values of any other kind go to the inner visitor as they are.
    visit_through! {
        visit_bool(bool); visit_i64(i64); visit_u64(u64); visit_i128(i128); visit_u128(u128);
        visit_f64(f64); visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
        visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(deserializer)
    }
}

/// A map whose entry at `path[0]` is skipped (the path's last key) or looked into for the
/// rest of the path.
struct SkippingMap<'p, A> {
    inner: A,
    path: &'p [&'static str],
    /// The rest of the path, when the key just read is on it: for the value that follows.
    descend: Option<&'p [&'static str]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkippingMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return self.inner.next_key_seed(seed);
        };
        loop {
            let Some(key) = self.inner.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            let here = key.as_str() == *first;
            if here && rest.is_empty() {
                self.inner.next_value::<IgnoredAny>()?;
                continue;
            }
            self.descend = here.then_some(rest);
            return key.hand_to(seed).map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match self.descend.take() {
            Some(rest) => self.inner.next_value_seed(SkippingSeed {
                inner: seed,
                path: rest,
            }),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Deserializes its seed's value through [`Skipping`].
struct SkippingSeed<'p, S> {
    inner: S,
    path: &'p [&'static str],
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SkippingSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Skipping {
            inner: deserializer,
            path: self.path,
        })
    }
}

/// A map key, borrowed from the input when it can be (no allocation), so it can be compared
/// before it is handed on.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Owned(key) => key,
        }
    }
}

impl<'de> Key<'de> {
    fn hand_to<S: DeserializeSeed<'de>, E: de::Error>(self, seed: S) -> Result<S::Value, E> {
        match self {
            Key::Borrowed(key) => seed.deserialize(de::value::BorrowedStrDeserializer::new(key)),
            Key::Owned(key) => seed.deserialize(key.into_deserializer()),
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(key))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key.to_owned()))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
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
    fn only_the_entry_at_the_path_is_skipped() {
        let input = json!({
            "managedFields": 1,
            "metadata": { "name": "a", "managedFields": [2], "metadata": { "managedFields": 3 } },
            "spec": { "metadata": { "managedFields": 4 } },
        })
        .to_string();
        let value = Value::deserialize(Skipping {
            inner: &mut serde_json::Deserializer::from_str(&input),
            path: SKIPPED,
        })
        .expect("JSON parses");
        assert_eq!(
            value,
            json!({
                "managedFields": 1,
                "metadata": { "name": "a", "metadata": { "managedFields": 3 } },
                "spec": { "metadata": { "managedFields": 4 } },
            })
        );
    }

    #[test]
    fn a_value_that_is_not_a_map_passes_untouched() {
        for input in [
            "\"text\"",
            "7",
            "-1",
            "2.5",
            "true",
            "null",
            "[{\"managedFields\": 1}]",
        ] {
            let value = Value::deserialize(Skipping {
                inner: &mut serde_json::Deserializer::from_str(input),
                path: SKIPPED,
            })
            .expect("JSON parses");
            assert_eq!(
                value,
                serde_json::from_str::<Value>(input).expect("JSON"),
                "{input}"
            );
        }
    }

    #[test]
    fn a_key_with_escapes_is_compared_as_decoded() {
        // `\u0064` is `d`: serde_json hands an escaped key over as an owned string.
        let input = r#"{"metadata": {"name": "a", "managedFiel\u0064s": [1]}, "spec\u0020": 1}"#;
        let value = Value::deserialize(Skipping {
            inner: &mut serde_json::Deserializer::from_str(input),
            path: SKIPPED,
        })
        .expect("JSON parses");
        assert_eq!(value, json!({ "metadata": { "name": "a" }, "spec ": 1 }));
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
