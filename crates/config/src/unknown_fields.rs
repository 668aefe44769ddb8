//! Deserializing YAML while collecting every unknown field instead of stopping at the first.
//!
//! The model's structs keep `#[serde(deny_unknown_fields)]`, which makes serde fail on the
//! first unknown key. To report all of them, [`decode`] wraps serde-saphyr's deserializer in a
//! [`Filter`] that sits between the YAML and each struct: it reads every key of a struct's
//! mapping itself, passes the known ones on, and records and skips the rest (serde tells a
//! deserializer the field names of the struct it wants). The caller turns the records into
//! errors, so for the user unknown fields are still errors, just all of them at once.
//!
//! The filter also tracks the [`Path`] of the value being read, so that when serde fails the
//! caller can say which field was wrong, and so that unknown fields can be located in the
//! source map.

use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess,
    SeqAccess, Visitor,
};

use crate::path::Path;

/// A key in a struct's mapping that the struct does not have.
#[derive(Debug)]
pub(crate) struct UnknownField {
    /// The mapping the key was found in.
    pub(crate) parent: Path,
    /// The key as written.
    pub(crate) key: String,
    /// The fields the struct does have.
    pub(crate) known: &'static [&'static str],
}

/// The outcome of [`decode`]: the value or serde's first error, plus what was collected.
pub(crate) struct Decoded<T> {
    pub(crate) result: Result<T, serde_saphyr::Error>,
    /// Every unknown field, in the order they were read.
    pub(crate) unknown: Vec<UnknownField>,
    /// The path of the innermost value being read when `result` failed.
    pub(crate) error_path: Option<Path>,
}

/// Deserializes `text`, collecting unknown fields rather than failing on them.
///
/// Duplicate keys are left to the source map, which reports all of them; here the first
/// occurrence wins so that deserialization can go on and find other problems.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Decoded<T> {
    let collector = Collector::default();
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::FirstWins,
    };
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        T::deserialize(Filter {
            inner: de,
            collector: &collector,
            path: Path::root(),
        })
    });
    Decoded {
        result,
        unknown: collector.unknown.into_inner(),
        error_path: collector.error_path.into_inner(),
    }
}

#[derive(Default)]
struct Collector {
    unknown: RefCell<Vec<UnknownField>>,
    error_path: RefCell<Option<Path>>,
}

impl Collector {
    /// Remembers where an error happened. Errors unwind from the innermost value outwards, so
    /// the first path noted is the most precise one.
    fn failed_at<E>(&self, path: &Path, error: E) -> E {
        let mut slot = self.error_path.borrow_mut();
        if slot.is_none() {
            *slot = Some(path.clone());
        }
        error
    }
}

/// A deserializer that reads like `inner` but filters unknown struct fields out.
struct Filter<'c, D> {
    inner: D,
    collector: &'c Collector,
    path: Path,
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let Filter { inner, collector, path } = self;
            let visitor = Wrap { visitor, collector, path: path.clone(), fields: None };
            inner
                .$method($($arg,)* visitor)
                .map_err(|e| collector.failed_at(&path, e))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Filter<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let Filter {
            inner,
            collector,
            path,
        } = self;
        let visitor = Wrap {
            visitor,
            collector,
            path: path.clone(),
            fields: Some(fields),
        };
        inner
            .deserialize_struct(name, fields, visitor)
            .map_err(|e| collector.failed_at(&path, e))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that hands the wrapped visitor filtered sequences and mappings.
struct Wrap<'c, V> {
    visitor: V,
    collector: &'c Collector,
    path: Path,
    /// The struct's field names, when this visitor reads a struct.
    fields: Option<&'static [&'static str]>,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Filter {
            inner,
            collector: self.collector,
            path: self.path,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(Filter {
            inner,
            collector: self.collector,
            path: self.path,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, inner: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(SeqFilter {
            inner,
            collector: self.collector,
            path: self.path,
            next_index: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, inner: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(MapFilter {
            inner,
            collector: self.collector,
            path: self.path,
            fields: self.fields,
            key: None,
        })
    }

    // The model's enums are plain strings (unit variants), so enum payloads are not filtered.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(data)
    }
}

struct SeqFilter<'c, A> {
    inner: A,
    collector: &'c Collector,
    path: Path,
    next_index: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for SeqFilter<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let path = self.path.index(self.next_index);
        self.next_index += 1;
        self.inner.next_element_seed(SeedFilter {
            seed,
            collector: self.collector,
            path,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct MapFilter<'c, A> {
    inner: A,
    collector: &'c Collector,
    path: Path,
    fields: Option<&'static [&'static str]>,
    /// The key whose value comes next, for the value's path.
    key: Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for MapFilter<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(fields) = self.fields else {
            // A free-form map (none in the model today): keys pass through unnamed.
            self.key = None;
            return self.inner.next_key_seed(seed);
        };
        while let Some(key) = self.inner.next_key::<String>()? {
            if fields.contains(&key.as_str()) {
                let field = seed.deserialize(de::value::StrDeserializer::<A::Error>::new(&key))?;
                self.key = Some(key);
                return Ok(Some(field));
            }
            self.collector.unknown.borrow_mut().push(UnknownField {
                parent: self.path.clone(),
                key,
                known: fields,
            });
            self.inner.next_value::<IgnoredAny>()?;
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let path = match &self.key {
            Some(key) => self.path.key(key),
            None => self.path.clone(),
        };
        self.inner.next_value_seed(SeedFilter {
            seed,
            collector: self.collector,
            path,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct SeedFilter<'c, S> {
    seed: S,
    collector: &'c Collector,
    path: Path,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for SeedFilter<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
        let SeedFilter {
            seed,
            collector,
            path,
        } = self;
        // A type that reads a string and then rejects it (`Duration`) fails here, after the
        // filter's own deserialize call succeeded, so note the path here as well.
        seed.deserialize(Filter {
            inner,
            collector,
            path: path.clone(),
        })
        .map_err(|e| collector.failed_at(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        weight: u32,
    }

    #[test]
    fn collects_every_unknown_field_and_still_deserializes() {
        let text = "name: a\nextra: 1\ninner:\n  - weight: 2\n    wieght: 3\n  - weight: 4\n";
        let decoded = decode::<Outer>(text);
        let value = decoded.result.unwrap();
        assert_eq!(value.inner.len(), 2);
        let found: Vec<String> = decoded
            .unknown
            .iter()
            .map(|u| format!("{}:{}", u.parent, u.key))
            .collect();
        assert_eq!(found, [":extra", "inner[0]:wieght"]);
        assert_eq!(decoded.unknown[1].known, ["weight"]);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WithDuration {
        #[allow(dead_code, reason = "only the error matters")]
        timeout: crate::Duration,
    }

    #[test]
    fn notes_the_path_of_a_value_rejected_after_it_was_read() {
        let decoded = decode::<WithDuration>("timeout: 5\n");
        assert!(decoded.result.is_err());
        assert_eq!(
            decoded.error_path.map(|p| p.to_string()).as_deref(),
            Some("timeout")
        );
    }

    #[test]
    fn notes_the_path_of_the_value_that_failed() {
        let decoded = decode::<Outer>("name: a\ninner:\n  - weight: 1\n  - weight: heavy\n");
        assert!(decoded.result.is_err());
        assert_eq!(
            decoded.error_path.map(|p| p.to_string()).as_deref(),
            Some("inner[1].weight")
        );
    }
}
