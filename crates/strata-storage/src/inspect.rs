//! Read-only checks of a database's files, for `strata verify`.
//!
//! These functions wrap the same readers recovery uses ([`crate::wal::scan_segment`] and
//! [`crate::snapshot`]'s snapshot reader), so a file that passes here is a file recovery
//! accepts, and the errors name the file and the offset of the damage. On top of the
//! readers' checks they check invariants recovery relies on without checking: log
//! timestamps never go backwards, keys are well formed, and every snapshot chain is in
//! ascending version order, no newer than the snapshot.
use std::path::Path;

use strata_core::{Error, Result};

use crate::key::decode_key;
use crate::mvcc::Entry;
use crate::snapshot::{parse_snapshot_name, read_snapshot};
use crate::wal::{parse_segment_name, scan_segment, SegmentScan};

/// What a file in a database directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A log segment whose first record has this version.
    Segment(u64),
    /// A snapshot at this version (the layout before sorted runs).
    Snapshot(u64),
    /// A sorted run with this id.
    Run(u64),
    /// The manifest.
    Manifest,
    /// The timeline (commit times; see [`crate::timeline`]).
    Timeline,
    /// Anything else (the lock file, temporary files, vector index files…).
    Other,
}

/// Classifies a file name of a database directory.
pub fn file_kind(name: &str) -> FileKind {
    if let Some(v) = parse_snapshot_name(name) {
        FileKind::Snapshot(v)
    } else if let Some(id) = crate::run::parse_run_name(name) {
        FileKind::Run(id)
    } else if name == crate::manifest::MANIFEST_NAME {
        FileKind::Manifest
    } else if name == crate::timeline::TIMELINE_NAME {
        FileKind::Timeline
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
    /// Bytes after the last whole record that recovery truncates: an unsynced tail of
    /// the newest segment, or the whole file for a segment whose creation a crash
    /// interrupted.
    pub torn_bytes: u64,
}

/// Checks one log segment (`bytes` read from `path`, named for version `base`) with the
/// recovery reader; `is_last` allows an unsynced tail, as recovery does. On top of the
/// reader's checks (header, frames, consecutive versions from `base`), timestamps must
/// not go backwards and keys must be well formed. Errors are [`Error::Storage`] naming
/// the file and offset.
pub fn check_segment(
    path: &Path,
    bytes: &[u8],
    base: u64,
    is_last: bool,
) -> Result<SegmentSummary> {
    let mut records = 0u64;
    let mut prev_ts: Option<strata_core::Timestamp> = None;
    let scan = scan_segment(path, bytes, base, is_last, &mut |rec| {
        if prev_ts.is_some_and(|ts| rec.timestamp < ts) {
            return Err(Error::Storage(format!(
                "log segment {}: the record of version {} has a timestamp older than the \
                 record before it",
                path.display(),
                rec.version
            )));
        }
        if rec.writes.iter().any(|w| decode_key(&w.key).is_none()) {
            return Err(Error::Storage(format!(
                "log segment {}: the record of version {} writes a malformed key",
                path.display(),
                rec.version
            )));
        }
        prev_ts = Some(rec.timestamp);
        records += 1;
        Ok(())
    })?;
    Ok(match scan {
        SegmentScan::Segment(s) => SegmentSummary {
            records,
            first_version: s.first_version,
            last_version: s.last_version,
            torn_bytes: s.torn_bytes,
        },
        SegmentScan::TornCreation => SegmentSummary {
            torn_bytes: bytes.len() as u64,
            ..SegmentSummary::default()
        },
    })
}

/// Maps an immutable file (a sorted run) for one pass from start to end, reading ahead
/// (see [`check_run`]). An empty file gives no bytes.
pub fn map_for_scan(path: &Path) -> std::io::Result<crate::vfs::FileBytes> {
    let f = std::fs::File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(std::sync::Arc::new(Vec::new()));
    }
    Ok(std::sync::Arc::new(crate::mapped::ReadOnlyMap::sequential(
        &f,
    )?))
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

/// One version of a key as the file checks hand it over: slices of the file's bytes,
/// so that checking every value of a large file allocates nothing per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The commit version.
    pub version: u64,
    /// The commit timestamp.
    pub timestamp: strata_core::Timestamp,
    /// The value, or `None` for a deletion.
    pub value: Option<&'a [u8]>,
}

impl<'a> From<&'a Entry> for EntryRef<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryRef {
            version: e.version,
            timestamp: e.timestamp,
            value: e.value.as_deref(),
        }
    }
}

/// Checks one snapshot file: every checksum, the version in its header against the one
/// in its name, and the invariants of every chain. `on_chain` sees each chain (to check
/// the values, for example).
pub fn check_snapshot(
    path: &Path,
    bytes: &[u8],
    name_version: u64,
    mut on_chain: impl FnMut(&[u8], &[EntryRef<'_>]) -> Result<()>,
) -> Result<SnapshotSummary> {
    let on_chain = |key: &[u8], chain: &[Entry]| {
        let refs: Vec<EntryRef<'_>> = chain.iter().map(EntryRef::from).collect();
        on_chain(key, &refs)
    };
    check_loaded(
        path,
        read_snapshot(path, bytes)?,
        Some(name_version),
        on_chain,
    )
}

/// The checks of [`check_snapshot`] on a file already read (`name_version`: the
/// version its name says, when it has one).
fn check_loaded(
    path: &Path,
    snap: crate::snapshot::LoadedSnapshot,
    name_version: Option<u64>,
    mut on_chain: impl FnMut(&[u8], &[Entry]) -> Result<()>,
) -> Result<SnapshotSummary> {
    let name_version = name_version.unwrap_or(snap.version);
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

/// Checks one sorted run file like [`check_snapshot`] (every checksum, key order, chain
/// invariants, no version newer than the run's header says), calling `on_chain` for
/// each chain. Returns the run's newest version, keys and entries.
///
/// One pass over `bytes` (which may be the file mapped in place), a chain at a time:
/// memory does not grow with the file, and no entry is copied.
pub fn check_run(
    path: &Path,
    bytes: &[u8],
    mut on_chain: impl FnMut(&[u8], &[EntryRef<'_>]) -> Result<()>,
) -> Result<SnapshotSummary> {
    let bad = |what: String| Error::Storage(format!("snapshot {}: {what}", path.display()));
    let mut s = SnapshotSummary::default();
    let mut key: &[u8] = &[];
    let mut chain: Vec<EntryRef<'_>> = Vec::new();
    // The walk checks checksums, key order and ascending versions no newer than the
    // header's; what is left per chain is the key's shape and the caller's check.
    let mut finish = |key: &[u8], chain: &[EntryRef<'_>], s: &mut SnapshotSummary| {
        if decode_key(key).is_none() {
            return Err(bad(format!("key {key:02x?} is malformed")));
        }
        on_chain(key, chain)?;
        s.keys += 1;
        s.entries += chain.len() as u64;
        Ok(())
    };
    let (version, _) = crate::snapshot::for_each_entry_ref(path, bytes, |k, v, ts, value| {
        if k != key && !chain.is_empty() {
            finish(key, &chain, &mut s)?;
            chain.clear();
        }
        key = k;
        chain.push(EntryRef {
            version: v,
            timestamp: ts,
            value,
        });
        Ok(())
    })?;
    if !chain.is_empty() {
        finish(key, &chain, &mut s)?;
    }
    s.version = version;
    Ok(s)
}

/// What a sound timeline file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineSummary {
    /// Commits whose times it records.
    pub commits: u64,
    /// The first and last of them.
    pub versions: Option<(u64, u64)>,
    /// The version it starts at (older commits' times were never recorded).
    pub starts_at: u64,
    /// Bytes after the length the manifest lists: left by a flush whose manifest never
    /// landed, cut off by the next flush.
    pub unlisted_bytes: u64,
}

/// Checks the timeline file (`bytes` read from `path`) up to the `listed_len` bytes
/// the manifest lists, as the storage reads it. Errors are [`Error::Storage`] naming
/// the file and the offset.
pub fn check_timeline(path: &Path, bytes: &[u8], listed_len: u64) -> Result<TimelineSummary> {
    let Some(valid) = usize::try_from(listed_len)
        .ok()
        .and_then(|l| bytes.get(..l))
    else {
        return Err(Error::Storage(format!(
            "timeline {} is {} bytes long, shorter than the {listed_len} bytes the manifest \
             lists",
            path.display(),
            bytes.len()
        )));
    };
    if valid.is_empty() {
        // No byte listed: the whole file was written by a first flush whose manifest
        // never landed (the storage ignores it and the next flush recreates it), not
        // damage. Parsing the empty prefix would report a bad magic.
        return Ok(TimelineSummary {
            unlisted_bytes: bytes.len() as u64,
            ..TimelineSummary::default()
        });
    }
    let c = crate::timeline::parse(path, valid)?;
    Ok(TimelineSummary {
        commits: c.commits,
        versions: c.versions(),
        starts_at: c.starts_at,
        unlisted_bytes: (bytes.len() - valid.len()) as u64,
    })
}

/// Checks the manifest and returns it.
pub fn check_manifest(path: &Path, bytes: &[u8]) -> Result<crate::manifest::Manifest> {
    crate::manifest::Manifest::decode(path, bytes)
}
