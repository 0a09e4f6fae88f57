//! The ordered keyspace: how (run, primitive, user key) becomes one byte string.
//!
//! ```text
//! +----------------+-----------+------------------+
//! | run id (16 B)  | tag (1 B) | user key (0..N B) |
//! +----------------+-----------+------------------+
//! ```
//!
//! Byte-wise order of encoded keys is order by run, then primitive, then user key, so
//! every run and every primitive within a run is one contiguous range: prefix listing
//! and per-run scans are range scans in the ordered map, O(log n + results).
use strata_core::RunId;

/// Which primitive a record belongs to. Tags are part of the on-disk format: they are
/// append-only and never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Primitive {
    /// Key-value pairs.
    Kv = 1,
    /// JSON documents.
    Json = 2,
    /// Event stream entries and stream heads.
    Event = 3,
    /// State cells.
    State = 4,
    /// Vector collections and vector records.
    Vector = 5,
    /// Run metadata (stored under the default run's id).
    Run = 6,
    /// Fork records: where a forked run's past lives (stored under the default run's
    /// id, keyed by the child's id; see [`crate::lineage`]).
    Fork = 7,
    /// Time-to-live records of KV pairs and JSON documents (under the record's run;
    /// the user part is the record's tag and user key).
    Ttl = 8,
}

impl Primitive {
    /// The tag byte.
    pub fn tag(self) -> u8 {
        self as u8
    }
    /// The primitive of a tag byte, if known.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            1 => Primitive::Kv,
            2 => Primitive::Json,
            3 => Primitive::Event,
            4 => Primitive::State,
            5 => Primitive::Vector,
            6 => Primitive::Run,
            7 => Primitive::Fork,
            8 => Primitive::Ttl,
            _ => return None,
        })
    }
}

/// Length of the run-and-tag prefix of every key.
pub const KEY_HEADER_LEN: usize = 17;

/// Encodes a storage key.
pub fn encode_key(run: &RunId, primitive: Primitive, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(KEY_HEADER_LEN + user_key.len());
    k.extend_from_slice(run.as_bytes());
    k.push(primitive.tag());
    k.extend_from_slice(user_key);
    k
}

/// The prefix shared by every key of `run` (all primitives).
pub fn run_prefix(run: &RunId) -> Vec<u8> {
    run.as_bytes().to_vec()
}

/// Splits an encoded key into its parts, or `None` if it is too short or the tag unknown.
pub fn decode_key(key: &[u8]) -> Option<(RunId, Primitive, &[u8])> {
    if key.len() < KEY_HEADER_LEN {
        return None;
    }
    let mut run = [0u8; 16];
    run.copy_from_slice(&key[..16]);
    let prim = Primitive::from_tag(key[16])?;
    Some((RunId::from_bytes(run), prim, &key[KEY_HEADER_LEN..]))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_run_then_primitive_then_key() {
        let a = RunId::from_bytes([1; 16]);
        let b = RunId::from_bytes([2; 16]);
        let k1 = encode_key(&a, Primitive::Kv, b"zzz");
        let k2 = encode_key(&a, Primitive::Json, b"aaa");
        let k3 = encode_key(&b, Primitive::Kv, b"");
        assert!(k1 < k2 && k2 < k3);
        let (r, p, u) = decode_key(&k2).unwrap();
        assert_eq!((r, p, u), (a, Primitive::Json, &b"aaa"[..]));
        assert!(decode_key(b"short").is_none());
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
