//! A deserializer that skips one map entry, named by its path, while the rest is parsed.
//!
//! Serde has no "skip this field" for a type it does not own (`ObjectMeta`'s `managedFields`
//! is k8s-openapi's), so the skip sits between the JSON and the type: every value goes
//! through to the type's own visitor, except the entry at the path, which is read as
//! `IgnoredAny` and never built.

use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

/// A deserializer that hands its value on as is, except the map entry at `path` (never
/// empty), which it skips. Only maps are looked into; any other value passes untouched.
/// (Sequences too: the path names map keys, never list items.)
pub(super) struct Skipping<'p, D> {
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
    /// `inner`, with the entry at `path` (keys of nested maps from the top; never empty)
    /// skipped.
    pub(super) fn new(inner: D, path: &'p [&'static str]) -> Self {
        Skipping { inner, path }
    }

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
    use serde_json::{Value, json};

    use super::*;

    const PATH: &[&str] = &["metadata", "managedFields"];

    #[test]
    fn only_the_entry_at_the_path_is_skipped() {
        let input = json!({
            "managedFields": 1,
            "metadata": { "name": "a", "managedFields": [2], "metadata": { "managedFields": 3 } },
            "spec": { "metadata": { "managedFields": 4 } },
        })
        .to_string();
        let value = Value::deserialize(Skipping::new(
            &mut serde_json::Deserializer::from_str(&input),
            PATH,
        ))
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
            let value = Value::deserialize(Skipping::new(
                &mut serde_json::Deserializer::from_str(input),
                PATH,
            ))
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
        let value = Value::deserialize(Skipping::new(
            &mut serde_json::Deserializer::from_str(input),
            PATH,
        ))
        .expect("JSON parses");
        assert_eq!(value, json!({ "metadata": { "name": "a" }, "spec ": 1 }));
    }
}
