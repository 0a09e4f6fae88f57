//! The commit record: one per committed transaction, holding all of its writes.
//!
//! Payload layout (little-endian), inside the frame described in [`crate::wal`]:
//!
//! ```text
//! record_format u8 (= 1) | version u64 | timestamp_us u64 | write_count u32
//! then per write: op u8 (1 = put, 2 = delete) | key_len u32 | key
//!                 [ value_len u32 | value ]   (puts only)
//! ```
use std::sync::Arc;

use strata_core::limits::{MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::Timestamp;

use crate::mvcc::Write;

/// Format of the record payload. Append-only: a new layout gets a new number.
pub const RECORD_FORMAT: u8 = 1;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
/// Offset of the version field inside the payload (patched in under the commit lock).
pub(crate) const VERSION_OFFSET: usize = 1;
/// Offset of the timestamp field.
pub(crate) const TIMESTAMP_OFFSET: usize = 9;

/// A decoded commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// Commit version.
    pub version: u64,
    /// Commit timestamp.
    pub timestamp: Timestamp,
    /// The writes, in the order they were made.
    pub writes: Vec<Write>,
}

/// Size of the payload [`encode_payload`] makes for `writes`, computed without encoding
/// (so an over-limit commit is refused before its copy is allocated).
pub(crate) fn encoded_len(writes: &[Write]) -> usize {
    21 + writes
        .iter()
        .map(|w| 9 + w.key.len() + w.value.as_ref().map_or(0, |v| 4 + v.len()))
        .sum::<usize>()
}

/// Encodes a payload with version and timestamp left as zero, to be patched by
/// [`patch_header`] once the commit version is known.
pub(crate) fn encode_payload(writes: &[Write]) -> Vec<u8> {
    let size = encoded_len(writes);
    let mut buf = Vec::with_capacity(size);
    buf.push(RECORD_FORMAT);
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes());
    buf.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for w in writes {
        buf.push(if w.value.is_some() { OP_PUT } else { OP_DELETE });
        buf.extend_from_slice(&(w.key.len() as u32).to_le_bytes());
        buf.extend_from_slice(&w.key);
        if let Some(v) = &w.value {
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
    }
    buf
}

/// Writes the version and timestamp into an encoded payload.
pub(crate) fn patch_header(payload: &mut [u8], version: u64, timestamp: Timestamp) {
    payload[VERSION_OFFSET..VERSION_OFFSET + 8].copy_from_slice(&version.to_le_bytes());
    payload[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.0.to_le_bytes());
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("record truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// Decodes a payload. The error says what was malformed.
pub fn decode_payload(payload: &[u8]) -> Result<CommitRecord, String> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let format = c.u8()?;
    if format != RECORD_FORMAT {
        return Err(format!("unknown record format {format}"));
    }
    let version = c.u64()?;
    let timestamp = Timestamp(c.u64()?);
    let count = c.u32()? as usize;
    let mut writes = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let op = c.u8()?;
        let klen = c.u32()? as usize;
        // The limits every commit was checked against: the same bounds on read.
        if klen > MAX_STORED_KEY_BYTES {
            return Err(format!(
                "a key of {klen} bytes is longer than the limit of {MAX_STORED_KEY_BYTES}"
            ));
        }
        let key: Box<[u8]> = c.take(klen)?.into();
        let value = match op {
            OP_PUT => {
                let vlen = c.u32()? as usize;
                if vlen > MAX_STORED_VALUE_BYTES {
                    return Err(format!(
                        "a value of {vlen} bytes is larger than the limit of \
                         {MAX_STORED_VALUE_BYTES}"
                    ));
                }
                Some(Arc::from(c.take(vlen)?))
            }
            OP_DELETE => None,
            other => return Err(format!("unknown write op {other}")),
        };
        writes.push(Write { key, value });
    }
    if c.pos != payload.len() {
        return Err(format!(
            "{} trailing bytes after record",
            payload.len() - c.pos
        ));
    }
    Ok(CommitRecord {
        version,
        timestamp,
        writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(
            version in any::<u64>(),
            ts in any::<u64>(),
            writes in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100))),
                0..20)
        ) {
            let writes: Vec<Write> = writes
                .into_iter()
                .map(|(k, v)| Write { key: k.into(), value: v.map(Arc::from) })
                .collect();
            let mut p = encode_payload(&writes);
            patch_header(&mut p, version, Timestamp(ts));
            let rec = decode_payload(&p).unwrap();
            prop_assert_eq!(rec, CommitRecord { version, timestamp: Timestamp(ts), writes });
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_payload(&bytes);
        }
    }
}
