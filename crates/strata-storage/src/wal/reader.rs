//! Reading a log segment at recovery: the torn-tail rule of the [module docs](super).
//!
//! Every byte is looked at a bounded number of times: valid frames are stepped over by
//! their length, and the one scan after a gap checks a few fixed fields per position
//! before it computes any checksum, so opening after a torn 64 MiB record costs about as
//! much as reading 64 MiB.
use std::path::Path;

use strata_core::{Error, Result};

use super::legacy::{read_segment_v1, FORMAT_V1, V1_HEADER_LEN};
use super::{
    frame_header_at, frame_payload, le_u32, SegmentHeader, FRAME_HEADER_LEN, WAL_FORMAT_VERSION,
    WAL_HEADER_LEN, WAL_MAGIC,
};
use crate::record::{decode_payload, CommitRecord};

/// What reading one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment's format (1 = v0.1, 2 = current).
    pub format: u32,
    /// The header of a format-2 segment.
    pub header: Option<SegmentHeader>,
    /// Length of the valid prefix: the header and every valid frame.
    pub valid_len: u64,
    /// Version of the first record, if any.
    pub first_version: Option<u64>,
    /// Version of the last valid record, if any.
    pub last_version: Option<u64>,
    /// Bytes after `valid_len` that are an unsynced tail, to be truncated (newest segment
    /// only; 0 otherwise).
    pub torn_bytes: u64,
    /// Zero bytes after `valid_len` in the newest segment: preallocated space never
    /// written (or written and lost in a power loss, which the durable marks would have
    /// told). Appending continues over them.
    pub preallocated_bytes: u64,
    /// The newest durable mark of the valid frames: every version up to it was fsynced
    /// when one of them was written (0 for format 1, which has no marks).
    pub durable_mark: u64,
}

/// The outcome of [`scan_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentScan {
    /// A readable segment.
    Segment(SegmentSummary),
    /// The newest segment's header never became durable (a crash while creating it) and
    /// nothing follows it: it holds no record and can be removed.
    TornCreation,
}

/// Reads the segment `buf` (the whole file at `path`, named for version `base`), calling
/// `on_record` for every valid record in order. `is_last` marks the newest segment, the
/// only one that may have an unsynced tail.
///
/// Errors name the file and the offset: a damaged header, a record that fails its
/// checksum in a sealed segment or before a later record that proves it was durable,
/// a valid record with an unexpected version.
pub fn scan_segment(
    path: &Path,
    buf: &[u8],
    base: u64,
    is_last: bool,
    on_record: &mut dyn FnMut(CommitRecord) -> Result<()>,
) -> Result<SegmentScan> {
    let name = path.display();
    if buf.len() >= 12 && &buf[..8] == WAL_MAGIC && le_u32(buf, 8) == Some(FORMAT_V1) {
        return scan_v1(path, buf, base, is_last, on_record);
    }
    let Some(header) = SegmentHeader::decode(buf) else {
        // Nothing after the header region: no record can have been written, let alone
        // acknowledged, so this is a segment whose creation a crash interrupted.
        let rest = buf.get(WAL_HEADER_LEN..).unwrap_or(&[]);
        if is_last && rest.iter().all(|&b| b == 0) {
            return Ok(SegmentScan::TornCreation);
        }
        if buf.len() >= 12 && &buf[..8] == WAL_MAGIC {
            let fmt = le_u32(buf, 8).unwrap_or(0);
            if fmt != WAL_FORMAT_VERSION {
                return Err(Error::Storage(format!(
                    "log segment {name} has format version {fmt}; this build reads versions \
                     {FORMAT_V1} and {WAL_FORMAT_VERSION}"
                )));
            }
            return Err(Error::Storage(format!(
                "log segment {name} is corrupt at offset 0: its header fails its checksum and \
                 records follow it"
            )));
        }
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB log segment (bad magic at offset 0)"
        )));
    };
    if base == 0 {
        return Err(Error::Storage(format!(
            "log segment {name} is named for version 0; versions start at 1"
        )));
    }
    if header.base != base {
        return Err(Error::Storage(format!(
            "log segment {name} is corrupt at offset 16: its header says base version {} \
             but its name says {base}",
            header.base
        )));
    }
    let mut pos = WAL_HEADER_LEN;
    let mut expected = base;
    let mut durable_mark = 0u64;
    while pos < buf.len() {
        let frame = frame_header_at(buf, pos, header.salt, expected, expected)
            .and_then(|h| frame_payload(buf, pos, &h).map(|p| (h, p)));
        let Some((hdr, payload)) = frame else { break };
        let rec = decode_payload(payload).map_err(|e| {
            Error::Storage(format!(
                "log segment {name}: bad record at offset {pos}: {e}"
            ))
        })?;
        if rec.version != hdr.version {
            return Err(Error::Storage(format!(
                "log segment {name}: record at offset {pos} says version {} in its payload \
                 and {} in its frame",
                rec.version, hdr.version
            )));
        }
        on_record(rec)?;
        durable_mark = durable_mark.max(hdr.durable);
        pos += FRAME_HEADER_LEN + hdr.len;
        expected = expected.checked_add(1).ok_or_else(|| {
            Error::Storage(format!(
                "log segment {name}: version overflow at offset {pos}"
            ))
        })?;
    }
    let mut summary = SegmentSummary {
        format: WAL_FORMAT_VERSION,
        header: Some(header),
        valid_len: pos as u64,
        first_version: (expected > base).then_some(base),
        last_version: (expected > base).then(|| expected - 1),
        torn_bytes: 0,
        preallocated_bytes: 0,
        durable_mark,
    };
    if pos == buf.len() {
        return Ok(SegmentScan::Segment(summary));
    }
    if !is_last {
        return Err(Error::Storage(format!(
            "log segment {name} is corrupt at offset {pos}: the record of version {expected} \
             is missing or fails its checksum in a sealed segment"
        )));
    }
    if buf[pos..].iter().all(|&b| b == 0) {
        summary.preallocated_bytes = (buf.len() - pos) as u64;
        return Ok(SegmentScan::Segment(summary));
    }
    if let Some((at, version, durable)) = durable_evidence(buf, pos, header.salt, expected) {
        return Err(Error::Storage(format!(
            "log segment {name} is corrupt at offset {pos}: the record of version {expected} \
             fails its checksum, but the record of version {version} at offset {at} was \
             written after version {durable} was durable"
        )));
    }
    summary.torn_bytes = (buf.len() - pos) as u64;
    Ok(SegmentScan::Segment(summary))
}

/// Looks after a gap at `gap` for a frame of a version `>= expected` whose durable mark
/// covers `expected`; returns its offset, version and mark.
///
/// A frame header that verifies (salted checksum, version in the window) is evidence
/// that the frame was written, even if its payload is torn: the mark is inside the
/// header checksum. So while headers verify, the next frame's position is known exactly
/// and is checked directly (a record torn inside its payload costs O(1), however
/// large). Past a header that does not verify (a lost or garbled page), every later
/// position is checked once, a few field loads each before any checksum.
fn durable_evidence(buf: &[u8], gap: usize, salt: u32, expected: u64) -> Option<(usize, u64, u64)> {
    let max_version = expected.saturating_add(((buf.len() - gap) / FRAME_HEADER_LEN) as u64 + 1);
    let mut p = gap;
    // Follow the chain of verifying headers from the gap.
    while let Some(h) = frame_header_at(buf, p, salt, expected, max_version) {
        if h.durable >= expected {
            return Some((p, h.version, h.durable));
        }
        match p.checked_add(FRAME_HEADER_LEN + h.len) {
            Some(next) if next < buf.len() => p = next,
            _ => return None, // the chain runs to the end of the file
        }
    }
    // Scan the rest. The high half of a version in the window is one of two values, so
    // most positions are rejected by one 4-byte compare.
    let (hi_min, hi_max) = ((expected >> 32) as u32, (max_version >> 32) as u32);
    let mut q = p + 1;
    while q + FRAME_HEADER_LEN <= buf.len() {
        let hi = u32::from_le_bytes([buf[q + 12], buf[q + 13], buf[q + 14], buf[q + 15]]);
        if hi >= hi_min && hi <= hi_max {
            if let Some(h) = frame_header_at(buf, q, salt, expected, max_version) {
                if h.durable >= expected {
                    return Some((q, h.version, h.durable));
                }
                if frame_payload(buf, q, &h).is_some() {
                    q += FRAME_HEADER_LEN + h.len;
                    continue;
                }
            }
        }
        q += 1;
    }
    None
}

/// `true` when `buf` (a whole segment file) cannot hold a record: nothing but zeros
/// after the header region. Such a newest segment is left by a crash while it was being
/// created, or between its creation and the sealing of its predecessor.
pub(crate) fn holds_no_record(buf: &[u8]) -> bool {
    buf.get(WAL_HEADER_LEN..)
        .unwrap_or(&[])
        .iter()
        .all(|&b| b == 0)
}

fn scan_v1(
    path: &Path,
    buf: &[u8],
    base: u64,
    is_last: bool,
    on_record: &mut dyn FnMut(CommitRecord) -> Result<()>,
) -> Result<SegmentScan> {
    let contents = read_segment_v1(path, buf, base, is_last)?;
    let first = contents.records.first().map(|r| r.version);
    let last = contents.records.last().map(|r| r.version);
    // Format-1 frames carry no version, so check the payloads' own: a segment's records
    // have increasing versions. (Recovery would otherwise take a record that goes back as
    // one already in the snapshot and skip it silently.)
    if let Some(w) = contents
        .records
        .windows(2)
        .find(|w| w[1].version <= w[0].version)
    {
        return Err(Error::Storage(format!(
            "log segment {}: a record with version {} follows version {}",
            path.display(),
            w[1].version,
            w[0].version
        )));
    }
    for rec in contents.records {
        on_record(rec)?;
    }
    if contents.valid_len < V1_HEADER_LEN {
        return Ok(SegmentScan::TornCreation);
    }
    Ok(SegmentScan::Segment(SegmentSummary {
        format: FORMAT_V1,
        header: None,
        valid_len: contents.valid_len as u64,
        first_version: first,
        last_version: last,
        torn_bytes: (buf.len() - contents.valid_len) as u64,
        preallocated_bytes: 0,
        durable_mark: 0,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_core::Timestamp;

    use super::super::encode_frame;
    use super::*;
    use crate::mvcc::Write;
    use crate::record::{encode_payload, patch_header};

    const SALT: u32 = 0x5a17_5a17;

    fn payload(v: u64, value: &[u8]) -> Vec<u8> {
        let mut p = encode_payload(&[Write {
            key: format!("key{v}").into_bytes().into(),
            value: Some(Arc::from(value)),
        }]);
        patch_header(&mut p, v, Timestamp(v));
        p
    }

    /// A segment at base 1 with records 1..=n; `durable(v)` gives each frame's mark.
    fn segment(n: u64, durable: impl Fn(u64) -> u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = SegmentHeader {
            salt: SALT,
            base: 1,
            prev_len: 0,
        }
        .encode()
        .to_vec();
        let mut starts = Vec::new();
        for v in 1..=n {
            starts.push(buf.len());
            encode_frame(SALT, v, durable(v), &payload(v, b"value"), &mut buf);
        }
        starts.push(buf.len());
        (buf, starts)
    }

    fn scan(buf: &[u8], is_last: bool) -> Result<(SegmentScan, Vec<u64>)> {
        let mut seen = Vec::new();
        let s = scan_segment(Path::new("seg"), buf, 1, is_last, &mut |r| {
            seen.push(r.version);
            Ok(())
        })?;
        Ok((s, seen))
    }

    fn summary(s: SegmentScan) -> SegmentSummary {
        match s {
            SegmentScan::Segment(s) => s,
            SegmentScan::TornCreation => panic!("torn creation"),
        }
    }

    #[test]
    fn torn_tail_at_every_offset_recovers_the_prefix() {
        // Nothing durable: every cut of the last record is a torn tail.
        let (buf, starts) = segment(5, |_| 0);
        for cut in starts[4]..buf.len() {
            let (s, seen) = scan(&buf[..cut], true).unwrap();
            let s = summary(s);
            assert_eq!(seen, vec![1, 2, 3, 4], "cut at {cut}");
            assert_eq!(s.valid_len as usize, starts[4]);
            assert_eq!(s.torn_bytes as usize, cut - starts[4]);
        }
    }

    #[test]
    fn a_lost_earlier_page_with_a_later_unsynced_record_is_a_torn_tail() {
        // Records 3..5 were never synced (marks stay at 2); record 3 is zeroed, 4 and 5
        // survive: a power loss that kept a later page. Truncate at record 3.
        let (mut buf, starts) = segment(5, |v| if v <= 3 { v - 1 } else { 2 });
        buf[starts[2]..starts[3]].fill(0);
        let (s, seen) = scan(&buf, true).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(summary(s).valid_len as usize, starts[2]);
    }

    #[test]
    fn damage_before_a_record_that_proves_durability_is_an_error() {
        // Record 5 was written after version 3 was synced: damage at 3 is corruption.
        let (mut buf, starts) = segment(5, |v| if v == 5 { 3 } else { 0 });
        buf[starts[2] + 40] ^= 0x10;
        let msg = scan(&buf, true).unwrap_err().to_string();
        assert!(
            msg.contains("seg") && msg.contains(&format!("offset {}", starts[2])),
            "{msg}"
        );
        // In a sealed segment any damage is an error, whatever the marks.
        let (mut buf, starts) = segment(5, |_| 0);
        buf[starts[2] + 40] ^= 0x10;
        assert!(scan(&buf, false).is_err());
        assert!(scan(&buf[..buf.len() - 1], false).is_err());
    }

    #[test]
    fn embedded_frames_never_validate() {
        // What a user can store: a copy of this very log as it was (older versions, same
        // salt) and a copy of another database's log (another salt, any versions, marks
        // that would "prove" durability).
        let (this_log_before, _) = segment(1, |_| 0);
        let mut other_db = SegmentHeader {
            salt: SALT ^ 0x0101_0101,
            base: 1,
            prev_len: 0,
        }
        .encode()
        .to_vec();
        for v in 1..=5 {
            encode_frame(
                SALT ^ 0x0101_0101,
                v,
                v - 1,
                &payload(v, b"x"),
                &mut other_db,
            );
        }
        let mut value = this_log_before.clone();
        value.extend_from_slice(&other_db);
        let (mut buf, _) = segment(1, |_| 0);
        let start = buf.len();
        encode_frame(SALT, 2, 0, &payload(2, &value), &mut buf);
        // Whole: the value is stepped over inside its valid frame.
        let (s, seen) = scan(&buf, true).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(summary(s).torn_bytes, 0);
        // Torn at every position inside the value: always a torn tail at record 2.
        for cut in (start + 1..buf.len()).step_by(7) {
            let (s, seen) = scan(&buf[..cut], true).unwrap();
            assert_eq!(seen, vec![1], "cut at {cut}");
            assert_eq!(summary(s).valid_len as usize, start);
        }
    }

    #[test]
    fn torn_creation_and_bad_headers() {
        let (buf, _) = segment(2, |_| 0);
        assert_eq!(scan(&buf[..10], true).unwrap().0, SegmentScan::TornCreation);
        assert_eq!(scan(&[0; 300], true).unwrap().0, SegmentScan::TornCreation);
        assert!(scan(&[0; 300], false).is_err());
        let mut bad = buf.clone();
        bad[20] ^= 1;
        assert!(scan(&bad, true)
            .unwrap_err()
            .to_string()
            .contains("offset 0"));
        let mut foreign = buf.clone();
        foreign[0] = b'X';
        assert!(scan(&foreign, true)
            .unwrap_err()
            .to_string()
            .contains("not a StrataDB"));
        let empty = segment(0, |_| 0).0;
        let s = summary(scan(&empty, true).unwrap().0);
        assert_eq!((s.first_version, s.last_version), (None, None));
        let wrong_base = scan_segment(Path::new("s"), &buf, 9, true, &mut |_| Ok(()));
        assert!(wrong_base.unwrap_err().to_string().contains("base version"));
    }

    /// Regression (found by the `wal_segment` fuzz target): a format-1 segment whose
    /// records go back in version (each with a valid checksum) was read without error,
    /// and recovery would have skipped the older records as already in the snapshot.
    #[test]
    fn format_1_records_must_increase_in_version() {
        let v1 = |versions: &[u64]| {
            let mut buf = b"STRATWAL".to_vec();
            buf.extend_from_slice(&FORMAT_V1.to_le_bytes());
            buf.extend_from_slice(&[0; 4]);
            for &v in versions {
                let p = payload(v, b"value");
                let len = (p.len() as u32).to_le_bytes();
                buf.extend_from_slice(&len);
                let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &p);
                buf.extend_from_slice(&crc.to_le_bytes());
                buf.extend_from_slice(&p);
            }
            buf
        };
        let (s, seen) = scan(&v1(&[1, 2, 3]), true).unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(summary(s).last_version, Some(3));
        for bad in [&[1, 2, 1][..], &[1, 3, 3], &[5, 2]] {
            for is_last in [true, false] {
                let err = scan(&v1(bad), is_last).unwrap_err().to_string();
                assert!(err.contains("follows version"), "{bad:?}: {err}");
            }
        }
    }
}
