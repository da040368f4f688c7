//! Canonical JSON written straight from typed values, for content hashes.
//!
//! The canonical form of a value is its compact JSON with some keys left out at every depth and
//! every object's keys in sorted (byte) order — what `serde_json::to_value`, a prune and
//! `to_writer` produce, since `serde_json::Map` is a `BTreeMap`. Building that `Value` allocates
//! every string and map node of a 40-post snapshot only to serialize it again; this serializer
//! writes the same bytes in one pass. It relies on each struct declaring its fields in sorted
//! order, and checks it: a struct whose fields come out of order, a map (whose keys would need
//! sorting), or anything a `Value` would write differently (an f32, a tuple, an enum variant with
//! data) fails, and the caller takes the `Value` route instead. The bytes are the same either way
//! (tests compare both routes), so stored hashes stay valid.

use serde::ser::{self, Impossible, Serialize, SerializeSeq, SerializeStruct, Serializer};

/// What to leave out.
#[derive(Debug, Clone, Copy)]
pub struct Drop<'a> {
    /// Keys left out of every struct, at every depth.
    pub everywhere: &'a [&'a str],
    /// `(field, key)`: when the outermost struct's `field` is a sequence, `key` is also left out
    /// of each of its elements that is a struct — of those structs only, not of what they contain.
    pub inside: Option<(&'a str, &'a str)>,
}

/// Writes the canonical JSON of `value` into `out`. On `Err` (see the module documentation)
/// `out` holds a partial write and should be discarded.
pub fn write<W: std::io::Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
    drop: Drop<'_>,
) -> Result<(), serde_json::Error> {
    let mut json = serde_json::Serializer::new(out);
    let rules = Rules {
        drop: drop.everywhere,
        struct_also: None,
        elements_also: None,
        inside: drop.inside,
    };
    value.serialize(Canon {
        inner: &mut json,
        rules,
    })?;
    Ok(())
}

/// The same canonical form by the slow route: `value` as a `serde_json::Value` with the keys of
/// `drop` removed. Serialized, it gives the bytes [`write`] writes; the fallback when [`write`]
/// fails, and the reference its tests compare with.
pub fn value<T: Serialize + ?Sized>(value: &T, drop: Drop<'_>) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    if let Some((field, key)) = drop.inside {
        if let Some(items) = v.get_mut(field).and_then(|f| f.as_array_mut()) {
            for item in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                item.remove(key);
            }
        }
    }
    prune(&mut v, drop.everywhere);
    v
}

/// Removes the keys `drop` from every object inside `v`, in place.
fn prune(v: &mut serde_json::Value, drop: &[&str]) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !drop.contains(&k.as_str()));
            map.values_mut().for_each(|val| prune(val, drop));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| prune(i, drop)),
        _ => {}
    }
}

/// What one value leaves out. `Option` and newtype wrappers hand their rules to their content
/// unchanged: their JSON is their content's.
#[derive(Clone, Copy)]
struct Rules<'d> {
    /// Left out of every struct.
    drop: &'d [&'d str],
    /// Also left out of this value, if it is a struct.
    struct_also: Option<&'d str>,
    /// Also left out of each element of this value, if it is a sequence.
    elements_also: Option<&'d str>,
    /// [`Drop::inside`], applied if this value is a struct.
    inside: Option<(&'d str, &'d str)>,
}

impl Rules<'_> {
    /// The rules of the values inside this one: only `drop` carries on.
    fn nested(self) -> Self {
        Rules {
            drop: self.drop,
            struct_also: None,
            elements_also: None,
            inside: None,
        }
    }
}

/// A serializer that forwards to `inner`, leaving out keys and checking key order.
struct Canon<'d, S> {
    inner: S,
    rules: Rules<'d>,
}

/// A value to be written by [`Canon`] with `rules`.
struct Nested<'v, 'd, T: ?Sized> {
    value: &'v T,
    rules: Rules<'d>,
}

impl<T: Serialize + ?Sized> Serialize for Nested<'_, '_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Canon {
            inner: s,
            rules: self.rules,
        })
    }
}

fn not_canonical<E: ser::Error>(what: &str) -> E {
    E::custom(format_args!("not canonical: {what}"))
}

impl<'d, S: Serializer> Serializer for Canon<'d, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Seq<'d, S::SerializeSeq>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStruct = Struct<'d, S::SerializeStruct>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i64(v)
    }
    fn serialize_i128(self, _: i128) -> Result<S::Ok, S::Error> {
        Err(not_canonical("an i128"))
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u64(v)
    }
    fn serialize_u128(self, _: u128) -> Result<S::Ok, S::Error> {
        Err(not_canonical("a u128"))
    }
    fn serialize_f32(self, _: f32) -> Result<S::Ok, S::Error> {
        // A `Value` holds an f32 as an f64, which prints differently.
        Err(not_canonical("an f32"))
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.inner.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let rules = self.rules;
        self.inner.serialize_some(&Nested { value, rules })
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_newtype_struct(name, &Nested { value, rules })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_canonical("a newtype variant"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let rules = Rules {
            struct_also: self.rules.elements_also,
            ..self.rules.nested()
        };
        Ok(Seq {
            inner: self.inner.serialize_seq(len)?,
            rules,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_canonical("a tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_canonical("a tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_canonical("a tuple variant"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Err(not_canonical("a map"))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(Struct {
            inner: self.inner.serialize_struct(name, len)?,
            rules: self.rules,
            last: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_canonical("a struct variant"))
    }
}

/// A sequence: each element written canonically, with `rules`.
struct Seq<'d, S> {
    inner: S,
    rules: Rules<'d>,
}

impl<S: SerializeSeq> SerializeSeq for Seq<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let rules = self.rules;
        self.inner.serialize_element(&Nested { value, rules })
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// A struct: dropped keys left out, the others checked to come in increasing order.
struct Struct<'d, S> {
    inner: S,
    rules: Rules<'d>,
    last: Option<&'static str>,
}

impl<S: SerializeStruct> SerializeStruct for Struct<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        let r = self.rules;
        if r.drop.contains(&key) || r.struct_also == Some(key) {
            return Ok(());
        }
        if self.last.is_some_and(|last| last >= key) {
            return Err(not_canonical("struct fields out of order"));
        }
        self.last = Some(key);
        let rules = Rules {
            elements_also: r.inside.and_then(|(field, k)| (field == key).then_some(k)),
            ..r.nested()
        };
        self.inner.serialize_field(key, &Nested { value, rules })
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Inner {
        a: i64,
        b: Option<String>,
        url: &'static str,
    }

    #[derive(serde::Serialize)]
    struct Outer {
        items: Vec<Inner>,
        one: Inner,
        z: f64,
    }

    #[derive(serde::Serialize)]
    struct Unsorted {
        b: i64,
        a: i64,
    }

    fn via_value<T: Serialize>(v: &T, drop: &[&str]) -> String {
        let drop = Drop {
            everywhere: drop,
            inside: None,
        };
        value(v, drop).to_string()
    }

    fn direct<T: Serialize>(v: &T, drop: Drop<'_>) -> Result<String, serde_json::Error> {
        let mut out = Vec::new();
        write(&mut out, v, drop)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn writes_what_the_value_route_writes_and_applies_the_inner_drop_one_level_only() {
        let inner = |a| Inner {
            a,
            b: (a % 2 == 0).then(|| format!("\"q\" \u{1} {a}")),
            url: "https://x",
        };
        let v = Outer {
            items: vec![inner(1), inner(2)],
            one: inner(3),
            z: 0.1,
        };
        let drop = Drop {
            everywhere: &["url"],
            inside: None,
        };
        assert_eq!(direct(&v, drop).unwrap(), via_value(&v, &["url"]));
        // `b` left out of the structs in `items`, not of `one`.
        let got = direct(
            &v,
            Drop {
                everywhere: &["url"],
                inside: Some(("items", "b")),
            },
        )
        .unwrap();
        assert_eq!(
            got,
            r#"{"items":[{"a":1},{"a":2}],"one":{"a":3,"b":null},"z":0.1}"#
        );
        // `inside` naming a field that is a struct, not a sequence, leaves it whole (as the
        // `Value` route, which only looks into arrays, does); an `Option` around the outermost
        // struct keeps the rule.
        let one_b = Drop {
            everywhere: &["url"],
            inside: Some(("one", "b")),
        };
        assert_eq!(direct(&v, one_b).unwrap(), via_value(&v, &["url"]));
        let items_b = Drop {
            everywhere: &["url"],
            inside: Some(("items", "b")),
        };
        assert_eq!(direct(&Some(&v), items_b).unwrap(), got);
    }

    #[test]
    fn refuses_unsorted_fields_and_maps() {
        let none = Drop {
            everywhere: &[],
            inside: None,
        };
        assert!(direct(&Unsorted { b: 1, a: 2 }, none).is_err());
        let map: std::collections::HashMap<&str, i64> = [("a", 1)].into();
        assert!(direct(&map, none).is_err());
        // Dropping the out-of-order key makes the rest sorted.
        let drop_b = Drop {
            everywhere: &["b"],
            inside: None,
        };
        assert_eq!(
            direct(&Unsorted { b: 1, a: 2 }, drop_b).unwrap(),
            r#"{"a":2}"#
        );
    }
}
