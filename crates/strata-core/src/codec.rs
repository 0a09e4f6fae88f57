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

/// Checks that [`decode`] would accept `bytes`, without building the [`Value`]: no
/// string, byte array, vector or map is allocated, nothing is copied.
///
/// It exists for `verify`, which must show that every stored value decodes but has no use
/// for the values themselves: decoding each one into a `Value` only to drop it spent most
/// of verify's time allocating and freeing. Tools that only need a yes/no (or the reason)
/// should call this instead of `decode`.
///
/// It accepts exactly the byte strings `decode` accepts (a differential property test and
/// the `codec` fuzz target hold it to that), including `decode`'s leniencies:
///
/// - bytes after the first complete value are ignored;
/// - a MessagePack `str` whose bytes are not UTF-8 is accepted (`decode` makes it a
///   [`Value::Bytes`]); only map keys must be valid UTF-8;
/// - a map key may be a `str` or a `bin` holding UTF-8; any other key type is refused;
/// - integers must fit in an `i64` (a `uint 64` above `i64::MAX` is refused); any float
///   is accepted, NaN included; `float 32` too;
/// - extension types and the reserved marker `0xc1` are refused;
/// - nesting deeper than [`MAX_NESTING_DEPTH`] arrays and maps is refused, as the
///   walk meets it, so hostile bytes cannot make it recurse deeply;
/// - there is no size limit beyond the input itself (as in `decode`: the
///   [`MAX_VALUE_BYTES`](crate::limits::MAX_VALUE_BYTES) bound is enforced on writes).
///
/// Errors with [`Error::Serialization`], whose message names what was wrong and the byte
/// offset where it was found (the wording differs from `decode`'s, which comes from
/// rmp-serde and carries no offset). Never panics.
pub fn validate(bytes: &[u8]) -> Result<()> {
    Validator {
        bytes,
        pos: 0,
        json: false,
    }
    .value(0)
}

/// Encodes JSON text to the binary form of the [`Value`] it denotes — the bytes
/// [`encode`] gives for `serde_json::from_str::<Value>(json)` up to the order of object
/// members, so [`decode`] returns exactly that value — without building the `Value`:
/// the parser's events are written straight out as MessagePack. Bulk loads (`strata
/// import` reads every value of a dump as JSON) spend most of their time building and
/// dropping `Value`s otherwise.
///
/// The same input is refused as by that path: text that is not one JSON value, an
/// integer outside `i64`, nesting deeper than [`MAX_NESTING_DEPTH`]
/// ([`Error::ConstraintViolation`], as [`encode`]); other errors are
/// [`Error::Serialization`]. Duplicate object members are all written and the last one
/// wins on decoding, as it does when parsing into a `Value`.
pub fn encode_json_into(json: &str, buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    let mut de = serde_json::Deserializer::from_str(json);
    let mut too_deep = false;
    let seed = JsonTranscoder {
        out: buf,
        depth: 0,
        too_deep: &mut too_deep,
    };
    let outcome = de::DeserializeSeed::deserialize(seed, &mut de).and_then(|()| de.end());
    if let Err(e) = outcome {
        buf.truncate(start);
        return Err(if too_deep {
            Error::ConstraintViolation(format!(
                "value nests more than {MAX_NESTING_DEPTH} levels deep, the limit"
            ))
        } else {
            Error::Serialization(format!("cannot encode JSON value: {e}"))
        });
    }
    Ok(())
}

/// Writes the JSON value it is given as MessagePack (see [`encode_json_into`]).
struct JsonTranscoder<'a> {
    out: &'a mut Vec<u8>,
    /// Arrays and objects around the value.
    depth: usize,
    too_deep: &'a mut bool,
}

impl JsonTranscoder<'_> {
    fn child(&mut self) -> JsonTranscoder<'_> {
        JsonTranscoder {
            out: self.out,
            depth: self.depth,
            too_deep: self.too_deep,
        }
    }

    /// Starts a container: its 32-bit marker and room for a 4-byte count, which
    /// [`Self::close`] shrinks to fit once the members are written (the parser does
    /// not say how many come). Returns where the count goes.
    fn open<E: de::Error>(&mut self, marker: u8) -> std::result::Result<usize, E> {
        self.depth += 1;
        // Containers count as levels, empty ones too (as `Value::deeper_than`).
        if self.depth > MAX_NESTING_DEPTH {
            *self.too_deep = true;
            return Err(E::custom("too deep"));
        }
        self.out.push(marker);
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        Ok(at)
    }

    /// Ends the container whose count goes at `at`: writes the smallest header that
    /// holds `count` (as `encode` does) and moves the members up to it, so the stored
    /// bytes are as compact as the parsed value's — and stay within the stored-value
    /// limit whenever its encoding would.
    fn close(&mut self, at: usize, count: u32) {
        let marker_at = at - 1;
        let long = self.out[marker_at];
        let (header, len): ([u8; 5], usize) = match count {
            0..=15 => {
                let fix = if long == 0xdd { 0x90 } else { 0x80 };
                ([fix | count as u8, 0, 0, 0, 0], 1)
            }
            16..=0xffff => {
                let m = if long == 0xdd { 0xdc } else { 0xde };
                let c = (count as u16).to_be_bytes();
                ([m, c[0], c[1], 0, 0], 3)
            }
            _ => {
                let c = count.to_be_bytes();
                ([long, c[0], c[1], c[2], c[3]], 5)
            }
        };
        let body = at + 4;
        if len < 5 {
            let end = self.out.len();
            self.out.copy_within(body..end, marker_at + len);
            self.out.truncate(end - (5 - len));
        }
        self.out[marker_at..marker_at + len].copy_from_slice(&header[..len]);
    }

    fn write_str(&mut self, v: &str) {
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_str(self.out, v);
    }
}

/// Writes an object member's name (a string) as MessagePack.
struct KeyWriter<'a>(&'a mut Vec<u8>);

impl<'de> de::DeserializeSeed<'de> for KeyWriter<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyWriter<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<(), E> {
        let _ = rmp::encode::write_str(self.0, v);
        Ok(())
    }
}

impl<'de> de::DeserializeSeed<'de> for JsonTranscoder<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonTranscoder<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        self.out.push(0xc0);
        Ok(())
    }
    fn visit_none<E>(self) -> std::result::Result<(), E> {
        self.out.push(0xc0);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<(), E> {
        self.out.push(if v { 0xc3 } else { 0xc2 });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<(), E> {
        let _ = rmp::encode::write_sint(self.out, v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<(), E> {
        let v =
            i64::try_from(v).map_err(|_| E::custom(format!("integer {v} does not fit in i64")))?;
        self.visit_i64(v)
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<(), E> {
        let _ = rmp::encode::write_f64(self.out, v);
        Ok(())
    }
    fn visit_str<E>(mut self, v: &str) -> std::result::Result<(), E> {
        self.write_str(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> std::result::Result<(), A::Error> {
        let at = self.open(0xdd)?;
        let mut n = 0u32;
        while seq.next_element_seed(self.child())?.is_some() {
            n += 1;
        }
        self.close(at, n);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<(), A::Error> {
        let at = self.open(0xdf)?;
        let mut n = 0u32;
        while map.next_key_seed(KeyWriter(self.out))?.is_some() {
            map.next_value_seed(self.child())?;
            n += 1;
        }
        self.close(at, n);
        Ok(())
    }
}

/// The stored value `bytes` as JSON, if JSON carries it without loss: a value
/// [`decode`] accepts holding no byte arrays (strings that are not UTF-8 decode to
/// bytes), no NaN and no infinity. Serializing the view writes the JSON of the value
/// `decode` would return, with object members sorted by name (so the output is
/// deterministic) and, for a member name written twice, the last one — exactly what
/// serializing the decoded [`Value`] with sorted members writes, without building it:
/// `strata export` writes every stored value this way.
pub fn json_view(bytes: &[u8]) -> Option<JsonView<'_>> {
    let mut check = Validator {
        bytes,
        pos: 0,
        json: true,
    };
    check.value(0).ok()?;
    Some(JsonView {
        bytes: &bytes[..check.pos],
    })
}

/// A stored value known to be lossless in JSON (see [`json_view`]).
#[derive(Debug, Clone, Copy)]
pub struct JsonView<'a> {
    bytes: &'a [u8],
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut r = PackedReader {
            bytes: self.bytes,
            pos: 0,
        };
        r.write(s)
    }
}

/// Reads values [`json_view`] checked (so lengths are in bounds and markers known).
struct PackedReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> PackedReader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let b = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        b
    }

    fn uint(&mut self, width: usize) -> u64 {
        self.take(width)
            .iter()
            .fold(0u64, |n, &x| (n << 8) | u64::from(x))
    }

    /// The length of a string, byte array, array or map whose marker was just read.
    fn len(&mut self, marker: u8) -> usize {
        let n = match marker {
            0xd9 | 0xc4 => self.uint(1),
            0xda | 0xc5 | 0xdc | 0xde => self.uint(2),
            0xdb | 0xc6 | 0xdd | 0xdf => self.uint(4),
            0xa0..=0xbf => u64::from(marker & 0x1f),
            _ => u64::from(marker & 0x0f),
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// A string or (as a map key) UTF-8 byte array.
    fn text(&mut self) -> &'a str {
        let marker = self.take(1)[0];
        let len = self.len(marker);
        std::str::from_utf8(self.take(len)).unwrap_or_default()
    }

    /// Moves past one value.
    fn skip(&mut self) {
        let marker = self.take(1)[0];
        match marker {
            0xcc | 0xd0 => self.pos += 1,
            0xcd | 0xd1 => self.pos += 2,
            0xce | 0xd2 | 0xca => self.pos += 4,
            0xcf | 0xd3 | 0xcb => self.pos += 8,
            0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6 => {
                let n = self.len(marker);
                self.pos += n;
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                for _ in 0..self.len(marker) {
                    self.skip();
                }
            }
            0x80..=0x8f | 0xde | 0xdf => {
                for _ in 0..self.len(marker) {
                    self.skip();
                    self.skip();
                }
            }
            _ => {}
        }
    }

    fn write<S: Serializer>(&mut self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let marker = self.take(1)[0];
        match marker {
            0x00..=0x7f => s.serialize_i64(i64::from(marker)),
            0xe0..=0xff => s.serialize_i64(i64::from(marker as i8)),
            0xc0 => s.serialize_unit(),
            0xc2 => s.serialize_bool(false),
            0xc3 => s.serialize_bool(true),
            0xcc => s.serialize_i64(self.uint(1) as i64),
            0xcd => s.serialize_i64(self.uint(2) as i64),
            0xce => s.serialize_i64(self.uint(4) as i64),
            // Checked to fit in an i64.
            0xcf => s.serialize_i64(self.uint(8) as i64),
            0xd0 => s.serialize_i64(i64::from(self.uint(1) as u8 as i8)),
            0xd1 => s.serialize_i64(i64::from(self.uint(2) as u16 as i16)),
            0xd2 => s.serialize_i64(i64::from(self.uint(4) as u32 as i32)),
            0xd3 => s.serialize_i64(self.uint(8) as i64),
            0xca => s.serialize_f64(f64::from(f32::from_bits(self.uint(4) as u32))),
            0xcb => s.serialize_f64(f64::from_bits(self.uint(8))),
            0xa0..=0xbf | 0xd9..=0xdb => {
                let len = self.len(marker);
                s.serialize_str(std::str::from_utf8(self.take(len)).unwrap_or_default())
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let len = self.len(marker);
                let mut seq = s.serialize_seq(Some(len))?;
                for _ in 0..len {
                    let start = self.pos;
                    self.skip();
                    seq.serialize_element(&JsonView {
                        bytes: &self.bytes[start..self.pos],
                    })?;
                }
                seq.end()
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let len = self.len(marker);
                let mut members: Vec<(&str, usize, usize)> = Vec::with_capacity(len);
                for _ in 0..len {
                    let key = self.text();
                    let start = self.pos;
                    self.skip();
                    members.push((key, start, self.pos));
                }
                // Sorted by name; of a name written twice the last counts, as when
                // decoding into a map (a stable sort keeps them in written order).
                members.sort_by(|a, b| a.0.cmp(b.0));
                let mut kept: Vec<(&str, usize, usize)> = Vec::with_capacity(members.len());
                for m in members {
                    match kept.last_mut() {
                        Some(last) if last.0 == m.0 => *last = m,
                        _ => kept.push(m),
                    }
                }
                let mut map = s.serialize_map(Some(kept.len()))?;
                for (key, start, end) in kept {
                    map.serialize_entry(
                        key,
                        &JsonView {
                            bytes: &self.bytes[start..end],
                        },
                    )?;
                }
                map.end()
            }
            _ => Err(serde::ser::Error::custom(format_args!(
                "{} cannot be written as JSON",
                describe(marker)
            ))),
        }
    }
}

/// A cursor over the bytes being validated; `pos` is the offset of the next unread byte.
struct Validator<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Also refuse what JSON cannot carry without loss (see [`json_view`]): byte
    /// arrays, strings that are not UTF-8 (they decode to bytes), NaN and infinities.
    json: bool,
}

impl<'a> Validator<'a> {
    /// One value at `self.pos`, inside `depth` arrays or maps. Recursion is bounded by
    /// [`MAX_NESTING_DEPTH`], the same bound `decode` recurses to.
    fn value(&mut self, depth: usize) -> Result<()> {
        let at = self.pos;
        let marker = self.marker()?;
        match marker {
            // positive and negative fixint, nil, false, true
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(()),
            0xcc | 0xd0 => self.skip(at, 1, "integer").map(drop),
            0xcd | 0xd1 => self.skip(at, 2, "integer").map(drop),
            0xce | 0xd2 => self.skip(at, 4, "integer").map(drop),
            0xd3 => self.skip(at, 8, "integer").map(drop),
            0xcf => {
                let b = self.skip(at, 8, "integer")?;
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let v = u64::from_be_bytes(be);
                if i64::try_from(v).is_err() {
                    return Err(fail(at, format_args!("integer {v} does not fit in i64")));
                }
                Ok(())
            }
            0xca => {
                let b = self.skip(at, 4, "float 32")?;
                let f = f32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                self.finite(at, f.is_finite())
            }
            0xcb => {
                let b = self.skip(at, 8, "float 64")?;
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                self.finite(at, f64::from_be_bytes(be).is_finite())
            }
            // Strings need not be UTF-8 here: `decode` turns the others into `Bytes`.
            0xa0..=0xbf | 0xd9..=0xdb => {
                let len = self.str_len(at, marker)?;
                let b = self.skip(at, len, "string")?;
                if self.json && std::str::from_utf8(b).is_err() {
                    return Err(fail(at, format_args!("a string is not UTF-8 (bytes)")));
                }
                Ok(())
            }
            0xc4..=0xc6 => {
                let len = self.bin_len(at, marker)?;
                self.skip(at, len, "byte array")?;
                if self.json {
                    return Err(fail(at, format_args!("JSON has no byte arrays")));
                }
                Ok(())
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let len = match marker {
                    0xdc => self.len_field(at, 2, "array")?,
                    0xdd => self.len_field(at, 4, "array")?,
                    _ => usize::from(marker & 0x0f),
                };
                self.enter(at, depth)?;
                for _ in 0..len {
                    self.value(depth + 1)?;
                }
                Ok(())
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let len = match marker {
                    0xde => self.len_field(at, 2, "map")?,
                    0xdf => self.len_field(at, 4, "map")?,
                    _ => usize::from(marker & 0x0f),
                };
                self.enter(at, depth)?;
                for _ in 0..len {
                    self.key()?;
                    self.value(depth + 1)?;
                }
                Ok(())
            }
            // 0xc1 (reserved) and the extension types
            _ => Err(fail(
                at,
                format_args!("{} is not a StrataDB value", describe(marker)),
            )),
        }
    }

    /// A map key: a `str` or `bin` holding UTF-8, as `decode` reads keys into `String`s.
    fn key(&mut self) -> Result<()> {
        let at = self.pos;
        let marker = self.marker()?;
        let len = match marker {
            0xa0..=0xbf | 0xd9..=0xdb => self.str_len(at, marker)?,
            0xc4..=0xc6 => self.bin_len(at, marker)?,
            _ => {
                return Err(fail(
                    at,
                    format_args!("a map key is {}, not a string", describe(marker)),
                ))
            }
        };
        let key = self.skip(at, len, "map key")?;
        std::str::from_utf8(key)
            .map(drop)
            .map_err(|e| fail(at, format_args!("a map key is not valid UTF-8: {e}")))
    }

    /// Refuses NaN and infinities when checking for JSON.
    fn finite(&self, at: usize, finite: bool) -> Result<()> {
        if self.json && !finite {
            return Err(fail(at, format_args!("JSON has no NaN or infinity")));
        }
        Ok(())
    }

    /// Refuses a container that would nest deeper than [`MAX_NESTING_DEPTH`].
    fn enter(&self, at: usize, depth: usize) -> Result<()> {
        if depth >= MAX_NESTING_DEPTH {
            return Err(fail(
                at,
                format_args!("nested more than {MAX_NESTING_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn marker(&mut self) -> Result<u8> {
        let Some(&m) = self.bytes.get(self.pos) else {
            return Err(fail(
                self.pos,
                format_args!("the input ends where a value was expected"),
            ));
        };
        self.pos += 1;
        Ok(m)
    }

    /// The next `len` bytes, the payload (or length field) of the item starting at `at`.
    fn skip(&mut self, at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < len {
            return Err(fail(
                at,
                format_args!(
                    "the {what} needs {len} bytes from byte {}, but only {} remain",
                    self.pos,
                    rest.len()
                ),
            ));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// A big-endian length field of `width` (1, 2 or 4) bytes.
    fn len_field(&mut self, at: usize, width: usize, what: &str) -> Result<usize> {
        let b = self.skip(at, width, what)?;
        let n = b.iter().fold(0u32, |n, &x| (n << 8) | u32::from(x));
        // A u32 always fits in a 32- or 64-bit usize; the input bounds every length.
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn str_len(&mut self, at: usize, marker: u8) -> Result<usize> {
        match marker {
            0xd9 => self.len_field(at, 1, "string"),
            0xda => self.len_field(at, 2, "string"),
            0xdb => self.len_field(at, 4, "string"),
            _ => Ok(usize::from(marker & 0x1f)),
        }
    }

    fn bin_len(&mut self, at: usize, marker: u8) -> Result<usize> {
        match marker {
            0xc4 => self.len_field(at, 1, "byte array"),
            0xc5 => self.len_field(at, 2, "byte array"),
            _ => self.len_field(at, 4, "byte array"),
        }
    }
}

/// What a MessagePack marker byte introduces, for error messages.
fn describe(marker: u8) -> &'static str {
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "an integer",
        0xc0 => "nil",
        0xc2 | 0xc3 => "a boolean",
        0xca | 0xcb => "a float",
        0xa0..=0xbf | 0xd9..=0xdb => "a string",
        0xc4..=0xc6 => "a byte array",
        0x90..=0x9f | 0xdc | 0xdd => "an array",
        0x80..=0x8f | 0xde | 0xdf => "a map",
        0xc7..=0xc9 | 0xd4..=0xd8 => "a MessagePack extension type",
        0xc1 => "the reserved marker 0xc1",
    }
}

/// The error for a problem found in the item starting at byte `at`. Cold: only reached
/// on damaged bytes, so the walk itself never formats or allocates.
#[cold]
#[inline(never)]
fn fail(at: usize, what: fmt::Arguments<'_>) -> Error {
    Error::Serialization(format!("cannot decode value: at byte {at}: {what}"))
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

    /// `validate` and `decode` agree on `bytes`; returns whether they accepted it.
    fn agree(bytes: &[u8]) -> bool {
        let v = validate(bytes);
        let d = decode(bytes);
        assert_eq!(
            v.is_ok(),
            d.is_ok(),
            "validate and decode disagree on {bytes:02x?}: validate {v:?}, decode {d:?}"
        );
        v.is_ok()
    }

    /// Asserts that both refuse `bytes` and that validate's message contains every part.
    fn refused(bytes: &[u8], parts: &[&str]) {
        assert!(decode(bytes).is_err(), "decode accepted {bytes:02x?}");
        match validate(bytes) {
            Err(Error::Serialization(m)) => {
                assert!(m.starts_with("cannot decode value: "), "{m}");
                for p in parts {
                    assert!(m.contains(p), "{m:?} lacks {p:?}");
                }
            }
            other => panic!("validate gave {other:?} for {bytes:02x?}"),
        }
    }

    fn accepted(bytes: &[u8]) {
        decode(bytes).unwrap();
        validate(bytes).unwrap();
    }

    #[test]
    fn validate_refuses_truncated_input() {
        refused(&[], &["at byte 0", "ends where a value was expected"]);
        // every strict prefix of a value fails, at every level of nesting
        let mut o = HashMap::new();
        o.insert(
            "key".to_owned(),
            Value::Array(vec![Value::Int(-300), 1.5.into()]),
        );
        o.insert("b".to_owned(), Value::Bytes(vec![1, 2, 3]));
        o.insert("s".to_owned(), Value::from("x".repeat(40)));
        o.insert("big".to_owned(), Value::Int(i64::MAX));
        let bytes = encode(&Value::Object(o)).unwrap();
        for cut in 0..bytes.len() {
            refused(&bytes[..cut], &["cannot decode value"]);
        }
        accepted(&bytes);
        refused(
            &[0x92, 0x01],
            &["at byte 2", "ends where a value was expected"],
        );
        refused(
            &[0xcd, 0x01],
            &["at byte 0", "integer needs 2 bytes from byte 1"],
        );
        refused(
            &[0xa5, b'a', b'b'],
            &["at byte 0", "string needs 5 bytes", "only 2"],
        );
        refused(&[0xc5, 0x01], &["byte array needs 2 bytes"]);
        refused(&[0xdc, 0x00], &["array needs 2 bytes"]);
        // an array announcing 4 billion elements fails quickly at the end of the input
        refused(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02], &["at byte 7"]);
        refused(&[0xdf, 0xff, 0xff, 0xff, 0xff], &["at byte 5"]);
    }

    #[test]
    fn validate_refuses_integers_beyond_i64() {
        let mut b = vec![0xcf];
        b.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        accepted(&b);
        b[1..].copy_from_slice(&(i64::MAX as u64 + 1).to_be_bytes());
        refused(
            &b,
            &[
                "at byte 0",
                "integer 9223372036854775808 does not fit in i64",
            ],
        );
        let nested = [&[0x91u8, 0x91][..], &b].concat();
        refused(&nested, &["at byte 2", "does not fit"]);
        for b in [
            &[0xcc, 0xff][..],
            &[0xcd, 0xff, 0xff],
            &[0xce, 0xff, 0xff, 0xff, 0xff],
            &[0xd0, 0x80],
            &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
            &[0xe0],
            &[0x7f],
        ] {
            accepted(b);
        }
    }

    #[test]
    fn validate_refuses_extensions_and_the_reserved_marker() {
        refused(&[0xc1], &["at byte 0", "reserved marker 0xc1"]);
        refused(&[0x91, 0xd4, 0x01, 0x00], &["at byte 1", "extension"]);
        refused(&[0xc7, 0x01, 0x05, 0x00], &["extension"]);
        for m in [0xc8u8, 0xc9, 0xd5, 0xd6, 0xd7, 0xd8] {
            let mut b = vec![m];
            b.extend_from_slice(&[0; 20]);
            refused(&b, &["extension"]);
        }
    }

    #[test]
    fn validate_map_keys_like_decode() {
        // str and bin keys holding UTF-8 are accepted, duplicates too (the last one wins)
        accepted(&[0x81, 0xa1, b'k', 0x01]);
        accepted(&[0x81, 0xc4, 0x02, 0xc3, 0xa9, 0x01]);
        accepted(&[0x82, 0xa1, b'k', 0x01, 0xa1, b'k', 0x02]);
        accepted(&[0x81, 0xd9, 0x00, 0xc0]);
        refused(
            &[0x81, 0x01, 0x01],
            &["at byte 1", "map key is an integer, not a string"],
        );
        refused(&[0x81, 0xc0, 0x01], &["map key is nil"]);
        refused(&[0x81, 0xc3, 0x01], &["map key is a boolean"]);
        refused(&[0x81, 0xca, 0, 0, 0, 0, 0x01], &["map key is a float"]);
        refused(&[0x81, 0x90, 0x01], &["map key is an array"]);
        refused(&[0x81, 0x80, 0x01], &["map key is a map"]);
        refused(
            &[0x81, 0xd4, 0, 0, 0x01],
            &["map key is a MessagePack extension"],
        );
        refused(&[0x81, 0xc1, 0x01], &["map key is the reserved marker"]);
        refused(
            &[0x92, 0x01, 0x81, 0xa2, 0xff, 0xfe, 0x01],
            &["at byte 3", "map key is not valid UTF-8"],
        );
        refused(
            &[0x81, 0xc4, 0x01, 0xff, 0x01],
            &["map key is not valid UTF-8"],
        );
        refused(
            &[0x81, 0xa1, b'k'],
            &["at byte 3", "ends where a value was expected"],
        );
    }

    /// `decode`'s leniencies, which `validate` must share.
    #[test]
    fn validate_accepts_what_decode_accepts() {
        // trailing bytes after the first value are ignored
        accepted(&[0x01, 0xc1, 0xff]);
        // a str that is not UTF-8 decodes as bytes, outside map keys
        accepted(&[0xa2, 0xff, 0xfe]);
        assert_eq!(
            decode(&[0xa2, 0xff, 0xfe]).unwrap(),
            Value::Bytes(vec![0xff, 0xfe])
        );
        accepted(&[0x81, 0xa1, b'k', 0xa1, 0x80]);
        // float 32, NaN, infinities, -0.0
        accepted(&[0xca, 0x7f, 0xc0, 0x00, 0x01]);
        for f in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE,
        ] {
            accepted(&encode(&Value::Float(f)).unwrap());
        }
        // non-minimal widths
        accepted(&[0xdc, 0x00, 0x01, 0xc0]);
        accepted(&[0xdf, 0x00, 0x00, 0x00, 0x01, 0xdb, 0, 0, 0, 1, b'k', 0xc2]);
        accepted(&[0xc6, 0, 0, 0, 0]);
        // a value larger than MAX_VALUE_BYTES: decode has no size limit, nor has validate
        let big = encode(&Value::Bytes(vec![7; crate::limits::MAX_VALUE_BYTES + 1])).unwrap();
        accepted(&big);
    }

    /// The walk recurses at most [`MAX_NESTING_DEPTH`] levels, however deep the bytes
    /// nest: 100,000 nested arrays are refused on a thread with the default 2 MiB stack.
    #[test]
    fn validate_refuses_nesting_deeper_than_the_limit() {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let mut ok = vec![0x91u8; MAX_NESTING_DEPTH];
                ok.push(0x01);
                validate(&ok).unwrap();
                let mut over = vec![0x91u8; MAX_NESTING_DEPTH + 1];
                over.push(0x01);
                let err = validate(&over).unwrap_err().to_string();
                assert!(err.contains("at byte 128"), "{err}");
                assert!(err.contains("nested more than 128 levels deep"), "{err}");
                // an empty container counts as a level too
                let mut empty = vec![0x91u8; MAX_NESTING_DEPTH];
                empty.push(0x90);
                assert!(validate(&empty).is_err());
                let mut huge = vec![0x91u8; 100_000];
                huge.push(0x01);
                assert!(validate(&huge).is_err());
                // maps count as arrays do
                let mut maps = [0x81u8, 0xa1, b'k'].repeat(MAX_NESTING_DEPTH);
                maps.push(0xc0);
                validate(&maps).unwrap();
                let mut maps = [0x81u8, 0xa1, b'k'].repeat(MAX_NESTING_DEPTH + 1);
                maps.push(0xc0);
                assert!(validate(&maps).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
        let mut v = Value::Int(1);
        for _ in 0..MAX_NESTING_DEPTH {
            v = Value::Array(vec![v]);
        }
        let mut bytes = encode(&v).unwrap();
        agree(&bytes);
        bytes.insert(0, 0x91);
        assert!(!agree(&bytes));
    }

    /// Pieces of MessagePack likely to meet every rule: containers of a few items, deep
    /// prefixes, strings and byte arrays with and without UTF-8, integers around
    /// `i64::MAX`, floats, extensions, and raw bytes.
    fn msgpack_piece() -> impl Strategy<Value = Vec<u8>> {
        let text = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..5),
            "[a-zé]{0,4}".prop_map(String::into_bytes),
        ];
        prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            (0u8..4).prop_map(|n| vec![0x90 | n]),
            (0u8..4).prop_map(|n| vec![0x80 | n]),
            (0u8..3, any::<bool>()).prop_map(|(n, m)| vec![if m { 0xde } else { 0xdc }, 0, n]),
            (text.clone(), 0u8..3).prop_map(|(t, kind)| {
                let mut b = match kind {
                    0 => vec![0xa0 | t.len() as u8],
                    1 => vec![0xd9, t.len() as u8],
                    _ => vec![0xc4, t.len() as u8],
                };
                b.extend_from_slice(&t);
                b
            }),
            prop_oneof![
                Just(i64::MAX as u64),
                Just(i64::MAX as u64 + 1),
                Just(u64::MAX),
                any::<u64>()
            ]
            .prop_map(|n| [&[0xcf][..], &n.to_be_bytes()].concat()),
            any::<u64>().prop_map(|n| [&[0xd3][..], &n.to_be_bytes()].concat()),
            any::<u64>().prop_map(|n| [&[0xcb][..], &n.to_be_bytes()].concat()),
            any::<u32>().prop_map(|n| [&[0xca][..], &n.to_be_bytes()].concat()),
            (any::<u8>(), any::<u8>()).prop_map(|(t, d)| vec![0xd4, t, d]),
            // nesting around the limit, ending in an empty container or not
            (126usize..131, 0u8..3).prop_map(|(k, end)| {
                let mut b = vec![0x91; k];
                b.extend_from_slice(match end {
                    0 => &[][..],
                    1 => &[0x90],
                    _ => &[0x80],
                });
                b
            }),
            (126usize..131).prop_map(|k| [0x81u8, 0xa1, b'k'].repeat(k)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn validate_accepts_every_encoded_value(v in arb_value()) {
            let bytes = encode(&v).unwrap();
            prop_assert!(validate(&bytes).is_ok(), "{:?}", validate(&bytes));
        }

        /// Encoded values with a few bytes overwritten, one inserted or removed, and cut.
        #[test]
        fn validate_agrees_with_decode_on_damaged_values(
            v in arb_value(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            insert in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
            remove in proptest::option::of(any::<prop::sample::Index>()),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let mut bytes = encode(&v).unwrap();
            for (i, b) in edits {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            if let Some((i, b)) = insert {
                bytes.insert(i.index(bytes.len() + 1), b);
            }
            if let Some(i) = remove {
                bytes.remove(i.index(bytes.len()));
            }
            if let Some(i) = cut {
                bytes.truncate(i.index(bytes.len() + 1));
            }
            agree(&bytes);
        }

        #[test]
        fn validate_agrees_with_decode_on_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            agree(&bytes);
        }

        #[test]
        fn validate_agrees_with_decode_on_msgpack_pieces(
            pieces in proptest::collection::vec(msgpack_piece(), 0..24),
        ) {
            agree(&pieces.concat());
        }
    }
}

#[cfg(test)]
mod json_transcode_tests {
    use super::tests::arb_value;
    use super::*;
    use proptest::prelude::*;

    /// The path `encode_json_into` replaces: parse into a `Value`, then encode it.
    fn through_value(json: &str) -> Option<Value> {
        let v: Value = serde_json::from_str(json).ok()?;
        encode(&v).ok()?;
        Some(v)
    }

    fn transcoded(json: &str) -> Option<Value> {
        let mut buf = vec![0xee]; // bytes already in the buffer stay
        let r = encode_json_into(json, &mut buf);
        assert_eq!(buf[0], 0xee);
        match r {
            Ok(()) => Some(decode(&buf[1..]).expect("transcoded bytes decode")),
            Err(_) => {
                assert_eq!(
                    buf.len(),
                    1,
                    "a failed transcode leaves the buffer as it was"
                );
                None
            }
        }
    }

    /// Makes a value JSON-safe: bytes become strings, non-finite floats zero.
    fn json_safe(v: Value) -> Value {
        match &v {
            Value::Bytes(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Float(f) if !f.is_finite() => Value::Float(0.0),
            Value::Array(a) => Value::Array(a.iter().cloned().map(json_safe).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), json_safe(v.clone())))
                    .collect(),
            ),
            _ => v,
        }
    }

    #[test]
    fn edge_cases_agree_with_parsing_into_a_value() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        let cases = [
            "null".to_owned(),
            "true".into(),
            " false ".into(),
            "0".into(),
            "-1".into(),
            "9223372036854775807".into(),
            "9223372036854775808".into(),
            "18446744073709551615".into(),
            "-9223372036854775808".into(),
            "-9223372036854775809".into(),
            "1.5".into(),
            "1e308".into(),
            "1e400".into(),
            "-0.0".into(),
            r#""""#.into(),
            r#""\u00e9\n\"x\\""#.into(),
            r#""\ud83d\ude00""#.into(),
            r#""\ud800""#.into(),
            "[]".into(),
            "{}".into(),
            r#"{"a":1,"a":2}"#.into(),
            r#"{"a":{"b":[1,{"c":null}]},"é":"x"}"#.into(),
            deep(MAX_NESTING_DEPTH),
            deep(MAX_NESTING_DEPTH + 1),
            deep_obj(MAX_NESTING_DEPTH),
            deep_obj(MAX_NESTING_DEPTH + 1),
            "1 2".into(),
            "[1,]".into(),
            "{\"a\"}".into(),
            "".into(),
            "nul".into(),
            "\"open".into(),
            "[1, 2".into(),
        ];
        for json in &cases {
            assert_eq!(transcoded(json), through_value(json), "{json:.60}");
        }
        // Headers of every size, nested: the same bytes as `encode`.
        for n in [0usize, 1, 15, 16, 65_535, 65_536] {
            let json = format!("[{}]", vec!["[1]"; n].join(","));
            let mut b = Vec::new();
            encode_json_into(&json, &mut b).unwrap();
            let v: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(b, encode(&v).unwrap(), "{n} members");
        }
        let err = encode_json_into("18446744073709551615", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("does not fit in i64"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
        #[test]
        fn json_of_any_value_transcodes_to_that_value(v in arb_value().prop_map(json_safe)) {
            let json = serde_json::to_string(&v).unwrap();
            let got = transcoded(&json);
            prop_assert_eq!(&got, &through_value(&json));
            prop_assert!(got.is_some(), "{json}");
            // As compact as `encode` (the same size; only the order of members may
            // differ, a map's being its iteration order).
            let mut b = Vec::new();
            encode_json_into(&json, &mut b).unwrap();
            prop_assert_eq!(b.len(), encode(&got.unwrap()).unwrap().len());
        }

        #[test]
        fn damaged_json_is_refused_exactly_when_parsing_refuses_it(
            v in arb_value().prop_map(json_safe),
            cut in any::<prop::sample::Index>(),
            byte in prop::sample::select(vec![b'[', b']', b'{', b'}', b',', b':', b'"', b'1', b'-', b'e', b'\\', b' ']),
            mode in 0..3u8,
        ) {
            let mut json = serde_json::to_string(&v).unwrap().into_bytes();
            let at = cut.index(json.len() + 1);
            match mode {
                0 => json.truncate(at),
                1 => json.insert(at, byte),
                _ => { if at < json.len() { json[at] = byte; } }
            }
            if let Ok(json) = String::from_utf8(json) {
                prop_assert_eq!(transcoded(&json), through_value(&json), "{}", json);
            }
        }
    }
}

#[cfg(test)]
mod json_view_tests {
    use super::tests::arb_value;
    use super::*;
    use proptest::prelude::*;

    /// What the view replaces: decode, keep only values JSON carries, and write the
    /// value with sorted object members (a `serde_json::Value` map is sorted).
    fn through_value(bytes: &[u8]) -> Option<String> {
        fn lossless(v: &Value) -> Option<serde_json::Value> {
            Some(match v {
                Value::Null => serde_json::Value::Null,
                Value::Bool(b) => (*b).into(),
                Value::Int(i) => (*i).into(),
                Value::Float(f) => serde_json::Number::from_f64(*f)?.into(),
                Value::String(s) => s.clone().into(),
                Value::Bytes(_) => return None,
                Value::Array(a) => a.iter().map(lossless).collect::<Option<Vec<_>>>()?.into(),
                Value::Object(o) => serde_json::Value::Object(
                    o.iter()
                        .map(|(k, v)| Some((k.clone(), lossless(v)?)))
                        .collect::<Option<serde_json::Map<_, _>>>()?,
                ),
            })
        }
        let v = decode(bytes).ok()?;
        Some(serde_json::to_string(&lossless(&v)?).unwrap())
    }

    fn viewed(bytes: &[u8]) -> Option<String> {
        json_view(bytes).map(|v| serde_json::to_string(&v).unwrap())
    }

    #[test]
    fn edge_cases_match_decoding() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0xc0],
            vec![0x7f],
            vec![0xe0],
            vec![0xd0, 0x80],
            vec![0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0],
            vec![0xca, 0x3f, 0xc0, 0, 0],
            vec![0xca, 0x7f, 0xc0, 0, 0],             // NaN as f32
            vec![0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], // infinity
            vec![0xa2, 0xc3, 0xa9],                   // "é"
            vec![0xa1, 0xff],                         // not UTF-8: bytes
            vec![0xc4, 0x01, 0x41],                   // bytes
            vec![0x82, 0xa1, b'b', 0x01, 0xa1, b'a', 0x02],
            vec![0x82, 0xa1, b'a', 0x01, 0xa1, b'a', 0x02], // a name twice: the last
            vec![0x81, 0xc4, 0x01, b'k', 0xc3],             // a byte-array name
            vec![0x81, 0x01, 0xc3],                         // a number as name
            vec![0x92, 0x01],                               // truncated
            vec![0xc1],
            vec![0xd4, 0x01, 0x02],
            vec![0x91, 0xc0, 0xff, 0xff], // trailing bytes are ignored
        ];
        for b in &cases {
            assert_eq!(viewed(b), through_value(b), "{b:02x?}");
        }
        assert_eq!(viewed(&cases[13]).as_deref(), Some(r#"{"a":2}"#));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
        #[test]
        fn the_view_writes_what_decoding_writes(v in arb_value()) {
            let bytes = encode(&v).unwrap();
            prop_assert_eq!(viewed(&bytes), through_value(&bytes));
        }

        #[test]
        fn damaged_bytes_view_as_decoding_does(
            v in arb_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            mode in 0..3u8,
        ) {
            let mut b = encode(&v).unwrap();
            let i = at.index(b.len() + 1);
            match mode {
                0 => b.truncate(i),
                1 => b.insert(i, byte),
                _ => { if i < b.len() { b[i] = byte; } }
            }
            prop_assert_eq!(viewed(&b), through_value(&b));
        }
    }
}
