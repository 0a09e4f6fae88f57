//! Reading log segments of format 1 (StrataDB v0.1), for upgrades.
//!
//! Format 1 frames carried no segment salt, version or durable mark, so telling a torn
//! tail from damage needed a forward search for a later valid frame. That search is kept
//! here only to open databases written by v0.1: such a segment is read once at open, the
//! database then appends to a new format-2 segment, and the next checkpoint deletes it.
//! It only counts frames of records newer than the last one read, in the window of
//! versions the remaining bytes can hold, and checks the record's format byte and version
//! before any checksum: linear in the segment, and not fooled by a copy of the log stored
//! in a value (its records are older).
//!
//! ```text
//! header (16 B): magic "STRATWAL" | format u32 LE (= 1) | reserved u32
//! frame:         payload_len u32 LE | crc32c(payload_len bytes ++ payload) u32 LE | payload
//! ```
use std::path::Path;

use strata_core::{Error, Result};

use crate::record::{decode_payload, CommitRecord, RECORD_FORMAT};

/// Format version of v0.1 log segments.
pub(crate) const FORMAT_V1: u32 = 1;
/// Size of a format-1 segment header.
pub(crate) const V1_HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 8;
const MAX_FRAME_PAYLOAD: usize = 1 << 30;

fn v1_header() -> [u8; V1_HEADER_LEN] {
    let mut h = [0u8; V1_HEADER_LEN];
    h[..8].copy_from_slice(super::WAL_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_V1.to_le_bytes());
    h
}

/// Tries to read one frame at `pos`; returns the payload range on success.
fn frame_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let hdr = buf.get(pos..pos + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let start = pos + FRAME_HEADER_LEN;
    let payload = buf.get(start..start + len)?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&hdr[..4]), payload);
    (actual == crc).then_some((start, start + len))
}

/// What reading one segment produced.
#[derive(Debug)]
pub(crate) struct SegmentContents {
    pub records: Vec<CommitRecord>,
    /// Length of the valid prefix of the file.
    pub valid_len: usize,
}

/// Smallest size of a format-1 frame holding a record: frame header and an empty record.
const MIN_FRAME_LEN: usize = FRAME_HEADER_LEN + 21;

/// `true` if a valid frame of a record of version `>= floor` starts after `gap`. Records
/// of a segment have dense, increasing versions, so a record written after the one at
/// `gap` has a version in a window bounded by the bytes left; the record format byte and
/// that window are checked before any checksum is computed. So the search costs a few
/// loads per position (not a checksum over the claimed length at every position), and
/// bytes of records already read (a copy of this log stored in a value) never count.
fn later_frame(buf: &[u8], gap: usize, floor: u64) -> bool {
    let max = floor.saturating_add(((buf.len() - gap) / MIN_FRAME_LEN) as u64 + 1);
    (gap + 1..buf.len()).any(|p| {
        let Some(h) = buf.get(p + FRAME_HEADER_LEN..p + FRAME_HEADER_LEN + 9) else {
            return false;
        };
        let version = u64::from_le_bytes([h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]]);
        h[0] == RECORD_FORMAT && (floor..=max).contains(&version) && frame_at(buf, p).is_some()
    })
}

/// Parses a segment file's bytes. `is_last` allows a torn tail. `base` is the version in
/// the segment's name: no record in it is older.
pub(crate) fn read_segment_v1(
    path: &Path,
    buf: &[u8],
    base: u64,
    is_last: bool,
) -> Result<SegmentContents> {
    let name = path.display();
    if buf.len() < V1_HEADER_LEN {
        // A crash while creating the segment: only acceptable for the last one, and only
        // if what is there is a prefix of a valid header.
        if is_last && v1_header().starts_with(buf) {
            return Ok(SegmentContents {
                records: Vec::new(),
                valid_len: 0,
            });
        }
        return Err(Error::Storage(format!(
            "log segment {name} has a truncated header"
        )));
    }
    if &buf[..8] != super::WAL_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB log segment (bad magic)"
        )));
    }
    let fmt = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if fmt != FORMAT_V1 {
        return Err(Error::Storage(format!(
            "log segment {name} has format version {fmt}; expected {FORMAT_V1}"
        )));
    }
    let mut pos = V1_HEADER_LEN;
    let mut records = Vec::new();
    while pos < buf.len() {
        match frame_at(buf, pos) {
            Some((start, end)) => {
                let rec = decode_payload(&buf[start..end]).map_err(|e| {
                    Error::Storage(format!(
                        "log segment {name}: bad record at offset {pos}: {e}"
                    ))
                })?;
                records.push(rec);
                pos = end;
            }
            None => {
                let floor = records
                    .last()
                    .map_or(base, |r: &CommitRecord| r.version.saturating_add(1));
                let later_valid = later_frame(buf, pos, floor);
                if later_valid || !is_last {
                    return Err(Error::Storage(format!(
                        "log segment {name} is corrupt at offset {pos}: a record fails its \
                         checksum{}",
                        if later_valid {
                            " and valid records follow it"
                        } else {
                            ""
                        }
                    )));
                }
                return Ok(SegmentContents {
                    records,
                    valid_len: pos,
                });
            }
        }
    }
    Ok(SegmentContents {
        records,
        valid_len: pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Write;
    use crate::record::{encode_payload, patch_header};
    use std::sync::Arc;
    use strata_core::Timestamp;

    fn frame(payload: &[u8], out: &mut Vec<u8>) {
        let len = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
    }

    fn segment_with(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = v1_header().to_vec();
        let mut ends = Vec::new();
        for v in 1..=n {
            let mut p = encode_payload(&[Write {
                key: format!("key{v}").into_bytes().into(),
                value: Some(Arc::from(&b"value"[..])),
            }]);
            patch_header(&mut p, v, Timestamp(v));
            frame(&p, &mut buf);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn v1_torn_tail_and_corruption() {
        let (buf, ends) = segment_with(5);
        let c = read_segment_v1(Path::new("x"), &buf[..ends[4] - 3], 1, true).unwrap();
        assert_eq!((c.records.len(), c.valid_len), (4, ends[3]));
        let mut bad = buf.clone();
        bad[ends[1] + 12] ^= 0x10;
        assert!(read_segment_v1(Path::new("x"), &bad, 1, true).is_err());
        assert!(read_segment_v1(Path::new("x"), &buf[..buf.len() - 1], 1, false).is_err());
        assert_eq!(
            read_segment_v1(Path::new("x"), &buf, 1, false)
                .unwrap()
                .records
                .len(),
            5
        );
    }
}
