//! Documented limits and the validators that enforce them.
//!
//! The bounds are far above what agent workloads use (keys are names like
//! `"user:42:profile"`, values are documents of a few KiB, embeddings have at most a few
//! thousand dimensions) yet low enough that one hostile input cannot exhaust memory or
//! the stack: every value lives in memory, is copied into the write-ahead log, and is
//! walked recursively when encoded, decoded and compared.
use crate::{codec, Error, Result, Value};

/// Longest key, in UTF-8 bytes: 1 KiB. Keys are names, not data; the same bound applies
/// to stream, collection and cell names. Long keys also cost memory in every version.
pub const MAX_KEY_BYTES: usize = 1024;

/// Largest value, in bytes of its binary encoding: 16 MiB. A larger blob belongs in a
/// file with its path stored here; one write must fit comfortably in a log record.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of arrays and objects: 128 levels. Real documents rarely exceed 10;
/// the bound keeps recursive encoding, decoding and comparison far from the stack limit.
pub const MAX_NESTING_DEPTH: usize = 128;

/// Largest encoded record of one commit in the write-ahead log: 256 MiB (the sum of its
/// keys and values plus a few bytes per write). A transaction whose writes encode to more
/// fails with [`Error::ConstraintViolation`] before anything is written or acknowledged;
/// recovery rejects a longer log record as damage, so the writer and the reader agree.
pub const MAX_COMMIT_BYTES: usize = 256 * 1024 * 1024;

/// Longest key the storage layer accepts: 64 KiB. Storage keys are the user key behind a
/// run id and a primitive tag, plus names (collection, stream) for some primitives, so they
/// may exceed [`MAX_KEY_BYTES`]; the bound is checked on every commit and on every read of
/// a log record or snapshot.
pub const MAX_STORED_KEY_BYTES: usize = 64 * 1024;

/// Largest value the storage layer accepts: 32 MiB. Values at that layer are encoded
/// records (a user value of at most [`MAX_VALUE_BYTES`], or a vector with its metadata),
/// checked on every commit and on every read of a log record or snapshot.
pub const MAX_STORED_VALUE_BYTES: usize = 32 * 1024 * 1024;

/// Largest vector dimension: 65,536 components (256 KiB per vector). Current embedding
/// models produce at most a few thousand.
pub const MAX_VECTOR_DIMENSION: usize = 65_536;

/// Checks a key: non-empty, at most [`MAX_KEY_BYTES`] bytes, no NUL character (NUL is
/// reserved as a separator inside composite storage keys).
///
/// Errors with [`Error::InvalidKey`] naming the key (truncated) and the rule it broke.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey(format!(
            "key {:?}… is {} bytes, longer than the limit of {MAX_KEY_BYTES}",
            truncate(key, 32),
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(Error::InvalidKey(format!(
            "key {:?} contains a NUL character",
            truncate(key, 64)
        )));
    }
    Ok(())
}

/// Checks a value's nesting depth and encoded size, returning its encoding so that the
/// caller need not encode it twice.
///
/// Errors with [`Error::ConstraintViolation`] when the value nests deeper than
/// [`MAX_NESTING_DEPTH`] or encodes to more than [`MAX_VALUE_BYTES`].
pub fn validate_value(value: &Value) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    validate_value_into(value, &mut bytes)?;
    Ok(bytes)
}

/// [`validate_value`] appending the encoding to `buf` (which must be empty, so that
/// the limit applies to this value alone), for a caller that reuses one buffer.
///
/// Errors as [`validate_value`]; `buf` then holds an unspecified prefix of the encoding.
pub fn validate_value_into(value: &Value, buf: &mut Vec<u8>) -> Result<()> {
    debug_assert!(buf.is_empty(), "the limit applies to one value");
    // `encode_into` checks the nesting depth first.
    codec::encode_into(value, buf)?;
    if buf.len() > MAX_VALUE_BYTES {
        return Err(Error::ConstraintViolation(format!(
            "value encodes to {} bytes, more than the limit of {MAX_VALUE_BYTES}",
            buf.len()
        )));
    }
    Ok(())
}

/// Checks a value's nesting depth, without recursion and without looking below level
/// [`MAX_NESTING_DEPTH`] + 1, so that a value nested however deep is rejected before
/// anything recursive (encoding, cloning, comparing, formatting) touches it. Every API
/// taking a `Value` calls it first.
///
/// Errors with [`Error::ConstraintViolation`].
pub fn validate_depth(value: &Value) -> Result<()> {
    if value.deeper_than(MAX_NESTING_DEPTH) {
        return Err(Error::ConstraintViolation(format!(
            "value nests more than {MAX_NESTING_DEPTH} levels deep, the limit"
        )));
    }
    Ok(())
}

/// Checks a vector dimension: between 1 and [`MAX_VECTOR_DIMENSION`].
pub fn validate_dimension(dimension: usize) -> Result<()> {
    if dimension == 0 || dimension > MAX_VECTOR_DIMENSION {
        return Err(Error::ConstraintViolation(format!(
            "vector dimension {dimension} is outside 1..={MAX_VECTOR_DIMENSION}"
        )));
    }
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("user:1").is_ok());
        assert!(validate_key("ключ with spaces / and ☺").is_ok());
        assert!(matches!(validate_key(""), Err(Error::InvalidKey(_))));
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        let err = validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidKey(ref m) if m.contains("1025")));
        assert!(matches!(validate_key("a\0b"), Err(Error::InvalidKey(_))));
    }

    #[test]
    fn values() {
        assert!(validate_value(&Value::from("x")).is_ok());
        let big = Value::Bytes(vec![0; MAX_VALUE_BYTES + 1]);
        assert!(matches!(
            validate_value(&big),
            Err(Error::ConstraintViolation(_))
        ));
        let mut deep = Value::Null;
        for _ in 0..=MAX_NESTING_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        assert!(matches!(
            validate_value(&deep),
            Err(Error::ConstraintViolation(_))
        ));
    }

    #[test]
    fn dimensions() {
        assert!(validate_dimension(384).is_ok());
        assert!(validate_dimension(0).is_err());
        assert!(validate_dimension(MAX_VECTOR_DIMENSION + 1).is_err());
    }
}
