//! Read-only checks of a database's files, for `strata verify`.
//!
//! These functions wrap the same readers recovery uses ([`crate::wal`]'s segment reader
//! and [`crate::snapshot`]'s snapshot reader), so a file that passes here is a file
//! recovery accepts, and the errors name the file and the offset of the damage. On top
//! of the checksums they check the invariants recovery relies on: log records of a
//! segment carry consecutive versions with non-decreasing timestamps, and every
//! snapshot chain is in ascending version order, no newer than the snapshot, under a
//! well-formed key.
use std::path::Path;

use strata_core::{Error, Result};

use crate::key::decode_key;
use crate::mvcc::Entry;
use crate::snapshot::{parse_snapshot_name, read_snapshot};
use crate::wal::{parse_segment_name, read_segment};

/// What a file in a database directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A log segment whose first record has this version.
    Segment(u64),
    /// A snapshot at this version.
    Snapshot(u64),
    /// Anything else (the lock file, temporary files, vector index files…).
    Other,
}

/// Classifies a file name of a database directory.
pub fn file_kind(name: &str) -> FileKind {
    if let Some(v) = parse_snapshot_name(name) {
        FileKind::Snapshot(v)
    } else if let Some(b) = parse_segment_name(name) {
        FileKind::Segment(b)
    } else {
        FileKind::Other
    }
}

/// What a sound log segment holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Commit records in the segment.
    pub records: u64,
    /// Version of the first record (`None` if there is none).
    pub first_version: Option<u64>,
    /// Version of the last record.
    pub last_version: Option<u64>,
    /// Bytes of torn tail after the last whole record (only allowed in the last
    /// segment; recovery truncates it).
    pub torn_bytes: u64,
}

/// Checks one log segment (`bytes` read from `path`); `is_last` allows a torn tail, as
/// recovery does. Errors are [`Error::Storage`] naming the file and offset.
pub fn check_segment(path: &Path, bytes: &[u8], is_last: bool) -> Result<SegmentSummary> {
    let contents = read_segment(path, bytes, is_last)?;
    let mut s = SegmentSummary {
        records: contents.records.len() as u64,
        torn_bytes: if contents.torn {
            (bytes.len() - contents.valid_len) as u64
        } else {
            0
        },
        ..SegmentSummary::default()
    };
    let mut prev: Option<(u64, strata_core::Timestamp)> = None;
    for (i, rec) in contents.records.iter().enumerate() {
        if let Some((v, ts)) = prev {
            if rec.version != v + 1 {
                return Err(Error::Storage(format!(
                    "log segment {}: record {i} has version {} after version {v} \
                     (versions must be consecutive)",
                    path.display(),
                    rec.version
                )));
            }
            if rec.timestamp < ts {
                return Err(Error::Storage(format!(
                    "log segment {}: record {i} (version {}) has a timestamp older than \
                     the record before it",
                    path.display(),
                    rec.version
                )));
            }
        }
        for w in &rec.writes {
            if decode_key(&w.key).is_none() {
                return Err(Error::Storage(format!(
                    "log segment {}: record {i} (version {}) writes a malformed key",
                    path.display(),
                    rec.version
                )));
            }
        }
        prev = Some((rec.version, rec.timestamp));
        s.first_version.get_or_insert(rec.version);
        s.last_version = Some(rec.version);
    }
    Ok(s)
}

/// What a sound snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The snapshot's version (checked against `name_version`).
    pub version: u64,
    /// Keys in it.
    pub keys: u64,
    /// Entries (versions, tombstones included) in it.
    pub entries: u64,
}

/// Checks one snapshot file: every checksum, the version in its header against the one
/// in its name, and the invariants of every chain. `on_chain` sees each chain (to check
/// the values, for example).
pub fn check_snapshot(
    path: &Path,
    bytes: &[u8],
    name_version: u64,
    mut on_chain: impl FnMut(&[u8], &[Entry]) -> Result<()>,
) -> Result<SnapshotSummary> {
    let snap = read_snapshot(path, bytes)?;
    let bad = |what: String| Error::Storage(format!("snapshot {}: {what}", path.display()));
    if snap.version != name_version {
        return Err(bad(format!(
            "its header says version {} but its name says {name_version}",
            snap.version
        )));
    }
    let mut s = SnapshotSummary {
        version: snap.version,
        ..SnapshotSummary::default()
    };
    let mut prev_key: Option<&[u8]> = None;
    for (key, chain) in &snap.chains {
        if prev_key.is_some_and(|p| p >= &key[..]) {
            return Err(bad(format!("key {key:02x?} is out of order")));
        }
        if decode_key(key).is_none() {
            return Err(bad(format!("key {key:02x?} is malformed")));
        }
        let mut prev = 0;
        for e in chain {
            if e.version <= prev || e.version > snap.version {
                return Err(bad(format!(
                    "key {key:02x?}: version {} out of order or newer than the snapshot",
                    e.version
                )));
            }
            prev = e.version;
        }
        on_chain(key, chain)?;
        s.keys += 1;
        s.entries += chain.len() as u64;
        prev_key = Some(key);
    }
    Ok(s)
}
