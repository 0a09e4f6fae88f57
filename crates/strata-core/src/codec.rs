//! The binary encoding of [`Value`]s: MessagePack through `rmp-serde`.
//!
//! `Value` implements `Serialize` / `Deserialize` *untagged*: each variant maps to the
//! MessagePack type that preserves it exactly:
//!
//! | variant  | MessagePack                    |
//! |----------|--------------------------------|
//! | `Null`   | nil                            |
//! | `Bool`   | true / false                   |
//! | `Int`    | int (smallest width that fits) |
//! | `Float`  | float 64 (always, bit-exact: NaN payloads and -0.0 survive) |
//! | `String` | str                            |
//! | `Bytes`  | bin                            |
//! | `Array`  | array                          |
//! | `Object` | map with str keys              |
//!
//! Because `Int` and `Float` use different MessagePack families, and `String` and `Bytes`
//! too, decoding never confuses them. The encoding is part of the on-disk format
//! (`docs/storage-format.md`) and must never change incompatibly.
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::limits::MAX_NESTING_DEPTH;
use crate::{Error, Result, Value};

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a StrataDB value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in i64")))
    }
    fn visit_f32<E>(self, v: f32) -> std::result::Result<Value, E> {
        Ok(Value::Float(f64::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = HashMap::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Encodes a value to its exact binary form.
pub fn encode(value: &Value) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf)?;
    Ok(buf)
}

/// Appends the binary form of `value` to `buf`.
pub fn encode_into(value: &Value, buf: &mut Vec<u8>) -> Result<()> {
    crate::limits::validate_depth(value)?;
    value
        .serialize(&mut rmp_serde::Serializer::new(buf))
        .map_err(|e| Error::Serialization(format!("cannot encode value: {e}")))
}

/// Decodes a value written by [`encode`]. Fails with [`Error::Serialization`] on
/// malformed input, never panics.
///
/// Nesting deeper than [`MAX_NESTING_DEPTH`] (which [`encode`] never writes) is refused
/// as the decoder meets it, so hostile bytes cannot make decoding recurse deeply.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde's limit bounds the recursion (its count is one above `Value::depth`);
    // the exact limit is then checked without recursion.
    de.set_max_depth(MAX_NESTING_DEPTH + 1);
    let value = Value::deserialize(&mut de)
        .map_err(|e| Error::Serialization(format!("cannot decode value: {e}")))?;
    if value.deeper_than(MAX_NESTING_DEPTH) {
        return Err(Error::Serialization(format!(
            "cannot decode value: nested more than {MAX_NESTING_DEPTH} levels deep"
        )));
    }
    Ok(value)
}

/// Levels of nesting a record may add around the values it holds (a struct, an
/// `Option`, a map of fields) for [`decode_record`].
pub const RECORD_NESTING_LEVELS: usize = 8;

/// Decodes a MessagePack record that holds [`Value`]s (for example a run's metadata),
/// refusing nesting deeper than [`MAX_NESTING_DEPTH`] + [`RECORD_NESTING_LEVELS`] as the
/// decoder meets it, so that damaged or hostile bytes cannot make it recurse deeply.
/// `what` names the record in the error.
pub fn decode_record<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_NESTING_DEPTH + RECORD_NESTING_LEVELS);
    T::deserialize(&mut de).map_err(|e| Error::Serialization(format!("cannot decode {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bit_identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| bit_identical(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| bit_identical(v, w)))
            }
            _ => a == b,
        }
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            Just(Value::Float(f64::NAN)),
            Just(Value::Float(-0.0)),
            ".*".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..32).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::hash_map(".*", inner, 0..8).prop_map(Value::Object),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip_is_exact(v in arb_value()) {
            let bytes = encode(&v).unwrap();
            let back = decode(&bytes).unwrap();
            prop_assert!(bit_identical(&v, &back), "{v:?} != {back:?}");
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn distinguishes_lookalikes() {
        for (a, b) in [
            (Value::Int(1), Value::Float(1.0)),
            (Value::from("ab"), Value::from(b"ab")),
            (Value::Int(0), Value::Null),
            (Value::Float(0.0), Value::Int(0)),
        ] {
            assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
            assert_eq!(decode(&encode(&b).unwrap()).unwrap(), b);
            assert_ne!(encode(&a).unwrap(), encode(&b).unwrap());
        }
        let nan = decode(&encode(&Value::Float(f64::NAN)).unwrap()).unwrap();
        assert!(nan.as_float().unwrap().is_nan());
        let nz = decode(&encode(&Value::Float(-0.0)).unwrap()).unwrap();
        assert!(nz.as_float().unwrap().is_sign_negative());
        for i in [i64::MIN, -1, 0, 127, 128, 255, 256, 65_536, i64::MAX] {
            assert_eq!(
                decode(&encode(&Value::Int(i)).unwrap()).unwrap(),
                Value::Int(i)
            );
        }
    }

    #[test]
    fn deep_nesting_round_trips_up_to_the_limit() {
        let mut v = Value::Int(1);
        for _ in 0..MAX_NESTING_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v);
        let too_deep = Value::Array(vec![v]);
        assert!(matches!(
            encode(&too_deep),
            Err(Error::ConstraintViolation(_))
        ));
    }

    /// Bytes nesting 100,000 arrays (0x91 = array of one element) are refused by the
    /// decoder without recursing 100,000 times, on a thread with the default 2 MiB stack.
    #[test]
    fn decoding_deep_nesting_is_refused_without_recursion() {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let mut bytes = vec![0x91u8; 100_000];
                bytes.push(0x01);
                assert!(matches!(decode(&bytes), Err(Error::Serialization(_))));
                let mut ok = vec![0x91u8; MAX_NESTING_DEPTH];
                ok.push(0x01);
                assert_eq!(decode(&ok).unwrap().depth(), MAX_NESTING_DEPTH);
                let mut over = vec![0x91u8; MAX_NESTING_DEPTH + 1];
                over.push(0x01);
                assert!(decode(&over).is_err());
                assert!(decode_record::<Option<Value>>(&bytes, "a record").is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
