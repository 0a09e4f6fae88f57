//! Administration: what a database holds ([`Strata::info`]), making its files compact
//! ([`Strata::checkpoint`], [`Strata::compact`]) and checking them offline ([`verify`]).
//!
//! These are the facade's answers to what the `strata` command-line tool needs; they
//! report in plain public types, never by exposing the engine's internals.
//!
//! [`verify`] reads the files of a database directory with the same readers recovery
//! uses and never opens the database, so it also works on a directory another process
//! has open (the files can then change while they are read: a log segment growing
//! under the reader shows as a torn tail, which is not damage).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_core::{codec, Error, Result, RunId};
use strata_primitives::RunState;
use strata_storage::inspect::{
    check_manifest, check_run, check_segment, check_snapshot, check_timeline, file_kind,
    map_for_scan, EntryRef, FileKind,
};
use strata_storage::key::decode_key;
use strata_storage::{DurabilityMode, Primitive, RetentionPolicy};

use crate::strata::Strata;

/// Keys and versions of one primitive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrimitiveStats {
    /// Keys whose newest version is a value (for events and vectors this counts
    /// stream heads and collection definitions too).
    pub live_keys: u64,
    /// Keys whose newest version is a deletion.
    pub deleted_keys: u64,
    /// Versions kept, deletions included.
    pub versions: u64,
    /// Bytes of keys and values held in memory (payload only, no overhead).
    pub bytes: u64,
}

/// One file of a database directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path relative to the database directory.
    pub name: String,
    /// `log`, `run`, `manifest`, `timeline`, `snapshot` (before sorted runs), `vector-index`, `lock` or
    /// `other`.
    pub kind: &'static str,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a database holds, from [`Strata::info`].
#[derive(Debug, Clone, PartialEq)]
pub struct DbInfo {
    /// The database directory (empty for an ephemeral database).
    pub path: PathBuf,
    /// The durability mode (`None` for an ephemeral database).
    pub durability: Option<DurabilityMode>,
    /// The newest visible commit version.
    pub version: u64,
    /// Version of the snapshot the last open started from (0 if none).
    pub recovered_snapshot_version: u64,
    /// Log records replayed by the last open.
    pub recovered_records: u64,
    /// Number of runs in each state.
    pub runs_by_state: BTreeMap<String, u64>,
    /// Runs whose retention policy is not "keep all", with their policy.
    pub retention: Vec<(RunId, RetentionPolicy)>,
    /// Keys and versions per primitive (`kv`, `json`, `event`, `state`, `vector`, `run`).
    pub primitives: BTreeMap<&'static str, PrimitiveStats>,
    /// Keys of every primitive, deleted ones included (what an export writes a line for).
    pub keys: u64,
    /// Bytes of keys and values held in memory.
    pub memory_bytes: u64,
    /// The files of the directory.
    pub files: Vec<FileInfo>,
    /// Sum of the files' sizes.
    pub disk_bytes: u64,
    /// Transactions committed and aborted since the database was opened.
    pub transactions_committed: u64,
    /// Transactions aborted (conflicts) since the database was opened.
    pub transactions_aborted: u64,
}

/// The name used for a primitive in reports and exports.
pub(crate) fn primitive_label(p: Primitive) -> &'static str {
    match p {
        Primitive::Kv => "kv",
        Primitive::Json => "json",
        Primitive::Event => "event",
        Primitive::State => "state",
        Primitive::Vector => "vector",
        Primitive::Run => "run",
        Primitive::Fork => "fork",
        Primitive::Ttl => "ttl",
    }
}

/// Lists a database directory's files (recursively, for the vector index files).
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, FileInfo)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| Error::Storage(format!("cannot list {}: {e}", d.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::Storage(format!("cannot list {}: {e}", d.display())))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| Error::Storage(format!("cannot stat {}: {e}", path.display())))?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let kind = match file_kind(&file_name) {
                FileKind::Segment(_) => "log",
                FileKind::Snapshot(_) => "snapshot",
                FileKind::Run(_) => "run",
                FileKind::Manifest => "manifest",
                FileKind::Timeline => "timeline",
                FileKind::Other if file_name == strata_storage::LOCK_FILE => "lock",
                FileKind::Other if file_name.ends_with(".vidx") => "vector-index",
                FileKind::Other => "other",
            };
            out.push((
                path,
                FileInfo {
                    name,
                    kind,
                    bytes: meta.len(),
                },
            ));
        }
    }
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    Ok(out)
}

impl Strata {
    /// What the database holds: versions, runs by state, keys and versions per
    /// primitive, memory and disk sizes, files, retention and transaction counters.
    /// Walks every key once (linear in the size of the database).
    ///
    /// ```
    /// let db = stratadb::Strata::ephemeral()?;
    /// db.kv.set("a", 1i64)?;
    /// let info = db.info()?;
    /// assert_eq!(info.primitives["kv"].live_keys, 1);
    /// assert_eq!(info.runs_by_state["Active"], 1);
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn info(&self) -> Result<DbInfo> {
        let storage = self.engine.storage();
        let version = storage.visible_version();
        let mut primitives: BTreeMap<&'static str, PrimitiveStats> = BTreeMap::new();
        let mut keys = 0u64;
        let mut memory_bytes = 0u64;
        storage.for_each_chain(version, |key, chain| {
            let Some((_, p, _)) = decode_key(key) else {
                return Ok(());
            };
            let s = primitives.entry(primitive_label(p)).or_default();
            if chain.last().is_some_and(|e| e.is_tombstone()) {
                s.deleted_keys += 1;
            } else {
                s.live_keys += 1;
            }
            s.versions += chain.len() as u64;
            let bytes = chain
                .iter()
                .map(|e| key.len() + e.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>() as u64;
            s.bytes += bytes;
            memory_bytes += bytes;
            keys += 1;
            Ok(())
        })?;
        let mut runs_by_state = BTreeMap::new();
        let mut retention = Vec::new();
        for run in self.runs.list(None, None)? {
            *runs_by_state
                .entry(format!("{:?}", run.value.state))
                .or_insert(0) += 1;
            if run.value.retention != RetentionPolicy::KeepAll {
                retention.push((run.value.run_id, run.value.retention));
            }
        }
        let files = match storage.dir() {
            Some(d) => list_files(d)?.into_iter().map(|(_, f)| f).collect(),
            None => Vec::new(),
        };
        let metrics = self.metrics();
        let report = storage.recovery_report();
        Ok(DbInfo {
            path: self.path().to_path_buf(),
            durability: storage.durability(),
            version,
            recovered_snapshot_version: report.snapshot_version,
            recovered_records: report.records_replayed,
            runs_by_state,
            retention,
            primitives,
            keys,
            memory_bytes,
            disk_bytes: files.iter().map(|f: &FileInfo| f.bytes).sum(),
            files,
            transactions_committed: metrics.transactions_committed,
            transactions_aborted: metrics.transactions_aborted,
        })
    }

    /// Flushes the memtable to a new sorted run (only what changed since the last
    /// flush) and writes the vector index files, then deletes the log segments the run
    /// covers, so that the next open replays nothing. Does nothing for an ephemeral
    /// database.
    pub fn checkpoint(&self) -> Result<()> {
        let storage = self.engine.storage();
        storage.flush()?;
        self.vectors.persist_indexes()?;
        storage.checkpoint()
    }

    /// Applies every run's retention policy now (dropping the old versions it no
    /// longer keeps from memory), [checkpoints](Self::checkpoint), then merges all
    /// sorted runs into one. Returns the number of versions dropped.
    pub fn compact(&self) -> Result<u64> {
        let mut dropped = 0u64;
        for run in self.runs.list(None, None)? {
            let policy = run.value.retention;
            if policy != RetentionPolicy::KeepAll {
                dropped += self.engine.collect_garbage(&run.value.run_id, &policy) as u64;
            }
        }
        self.checkpoint()?;
        self.engine.storage().compact(true)?;
        Ok(dropped)
    }
}

/// What [`verify`] found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The file, relative to the database directory.
    pub name: String,
    /// `log`, `run`, `manifest`, `timeline`, `snapshot` (before sorted runs), `vector-index`, `lock` or
    /// `other`.
    pub kind: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// What was checked and found, in a few words (records, keys, versions…).
    pub summary: String,
    /// The damage found, naming the offset where the readers report one; `None` when
    /// the file is sound.
    pub problem: Option<String>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every file, in name order.
    pub files: Vec<FileCheck>,
    /// Problems that concern several files (missing log records between segments, a
    /// log that does not continue the snapshot…).
    pub problems: Vec<String>,
    /// Bytes read.
    pub bytes_checked: u64,
    /// The newest version the files hold (what an open would recover).
    pub last_version: u64,
}

impl VerifyReport {
    /// `true` when nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.files.iter().all(|f| f.problem.is_none())
    }
}

/// Checks every file of the database in `path` without opening it: each log segment
/// (frame checksums, record decoding, consecutive versions, monotonic timestamps), each
/// snapshot (every checksum, its version, key order and chain invariants, and that
/// every KV, JSON and event value decodes), each vector index file, and that the log
/// continues the newest snapshot without a gap. `progress` is called with the bytes
/// read so far.
///
/// Damage is reported in the [`VerifyReport`], not as an error; an error means the
/// directory could not be read at all (it does not exist, or holds no database).
pub fn verify(path: impl AsRef<Path>, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
    let dir = path.as_ref();
    if !dir.is_dir() {
        return Err(Error::NotFound(format!(
            "no database directory at {}",
            dir.display()
        )));
    }
    let files = list_files(dir)?;
    let is_db = files
        .iter()
        .any(|(_, f)| matches!(f.kind, "log" | "snapshot" | "run" | "manifest"));
    if !is_db {
        return Err(Error::NotFound(format!(
            "{} holds no StrataDB database (no log or snapshot files)",
            dir.display()
        )));
    }
    let mut report = VerifyReport::default();
    let last_segment = files
        .iter()
        .filter(|(_, f)| f.kind == "log")
        .map(|(_, f)| f.name.clone())
        .next_back();
    // The base the log continues: the manifest's flushed version, or (for a database
    // never flushed since the upgrade to sorted runs) the newest snapshot.
    let manifest = files
        .iter()
        .find(|(_, f)| f.kind == "manifest")
        .and_then(|(full, _)| std::fs::read(full).ok().map(|b| (full, b)))
        .and_then(|(full, b)| check_manifest(full, &b).ok());
    let listed_runs: Vec<u64> = manifest
        .as_ref()
        .map(|m| m.runs.iter().map(|r| r.id).collect())
        .unwrap_or_default();
    let newest_snapshot = match &manifest {
        Some(m) => Some(m.flushed_through),
        None => files
            .iter()
            .filter_map(|(_, f)| match file_kind(&f.name) {
                FileKind::Snapshot(v) => Some(v),
                _ => None,
            })
            .max(),
    };
    for id in &listed_runs {
        let name = format!("run-{id:020}.sst");
        if !files.iter().any(|(_, f)| f.name == name) {
            report
                .problems
                .push(format!("the manifest lists {name}, which is missing"));
        }
    }
    // (base, first, last) of each sound segment, for the cross-file checks.
    let mut segments: Vec<(u64, Option<u64>, Option<u64>)> = Vec::new();
    for (full, f) in &files {
        let mut check = FileCheck {
            name: f.name.clone(),
            kind: f.kind,
            bytes: f.bytes,
            summary: String::new(),
            problem: None,
        };
        let read =
            || std::fs::read(full).map_err(|e| format!("cannot read {}: {e}", full.display()));
        let outcome: std::result::Result<String, String> = match (f.kind, file_kind(&f.name)) {
            ("log", FileKind::Segment(base)) => read().and_then(|bytes| {
                let is_last = last_segment.as_deref() == Some(f.name.as_str());
                let s = check_segment(full, &bytes, base, is_last).map_err(|e| e.to_string())?;
                segments.push((base, s.first_version, s.last_version));
                let mut summary = match (s.first_version, s.last_version) {
                    (Some(a), Some(b)) => format!("{} records, versions {a}..={b}", s.records),
                    _ => "no records".to_owned(),
                };
                if s.torn_bytes > 0 {
                    summary.push_str(&format!(
                        "; {} bytes of torn tail (an interrupted write, truncated on open)",
                        s.torn_bytes
                    ));
                }
                Ok(summary)
            }),
            ("snapshot", FileKind::Snapshot(v)) => read().and_then(|bytes| {
                let s = check_snapshot(full, &bytes, v, check_values).map_err(|e| e.to_string())?;
                if Some(v) != newest_snapshot {
                    return Ok(format!(
                        "version {v}, {} keys, {} versions (older snapshot, not used)",
                        s.keys, s.entries
                    ));
                }
                Ok(format!(
                    "version {v}, {} keys, {} versions",
                    s.keys, s.entries
                ))
            }),
            // Runs are immutable once named: read in place through a mapping, with no
            // copy of the file and no memory growing with it.
            ("run", FileKind::Run(id)) => map_for_scan(full)
                .map_err(|e| format!("cannot read {}: {e}", full.display()))
                .and_then(|bytes| {
                    let bytes: &[u8] = (*bytes).as_ref();
                    let s = check_run(full, bytes, check_values).map_err(|e| e.to_string())?;
                    let listed = if listed_runs.contains(&id) {
                        ""
                    } else {
                        " (not in the manifest: left by an interrupted flush, deleted on open)"
                    };
                    Ok(format!(
                        "versions up to {}, {} keys, {} versions{listed}",
                        s.version, s.keys, s.entries
                    ))
                }),
            ("manifest", _) => read().and_then(|bytes| {
                let m = check_manifest(full, &bytes).map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} runs, versions up to {}",
                    m.runs.len(),
                    m.flushed_through
                ))
            }),
            ("timeline", _) => read().and_then(|bytes| {
                let listed = manifest.as_ref().map_or(0, |m| m.timeline_len);
                let t = check_timeline(full, &bytes, listed).map_err(|e| e.to_string())?;
                let mut summary = match t.versions {
                    Some((a, b)) => {
                        format!("commit times of {} commits, versions {a}..={b}", t.commits)
                    }
                    None => "no commit times".to_owned(),
                };
                if t.unlisted_bytes > 0 {
                    summary.push_str(&format!(
                        "; {} bytes past the manifest's length (an interrupted flush, cut off \
                         by the next one)",
                        t.unlisted_bytes
                    ));
                }
                Ok(summary)
            }),
            ("vector-index", _) => read().and_then(|bytes| check_vector_file(dir, full, &bytes)),
            ("lock", _) => Ok(match strata_storage::lock_holder(dir) {
                Some(pid) => format!("last locked by process {pid}"),
                None => "lock file".to_owned(),
            }),
            _ => Ok("not a database file; ignored".to_owned()),
        };
        match outcome {
            Ok(s) => check.summary = s,
            Err(p) => check.problem = Some(p),
        }
        report.bytes_checked += f.bytes;
        progress(report.bytes_checked);
        report.files.push(check);
    }
    // The log must continue the newest snapshot, and segments each other, with no gap.
    let mut expected = newest_snapshot.map(|v| v + 1);
    let mut last_version = newest_snapshot.unwrap_or(0);
    for (base, first, last) in &segments {
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        if *last < expected.unwrap_or(0) {
            // Entirely covered by the snapshot (kept only until the next checkpoint).
            continue;
        }
        if let Some(e) = expected {
            if *first > e {
                report.problems.push(format!(
                    "versions {e}..{first} are missing: no snapshot or log segment holds them \
                     (segment {} starts at {first})",
                    strata_segment_name(*base)
                ));
            }
        }
        expected = Some(last + 1);
        last_version = last_version.max(*last);
    }
    report.last_version = last_version;
    Ok(report)
}

fn strata_segment_name(base: u64) -> String {
    format!("wal-{base:020}.log")
}

/// Values of KV pairs, JSON documents and events must decode ([`codec::validate`]: the
/// same check as [`codec::decode`] without building the value).
fn check_values(key: &[u8], chain: &[EntryRef<'_>]) -> Result<()> {
    let Some((_, p, user)) = decode_key(key) else {
        return Ok(());
    };
    let is_value = match p {
        Primitive::Kv | Primitive::Json => true,
        Primitive::Event => user.first() == Some(&0x02),
        _ => false,
    };
    if !is_value {
        return Ok(());
    }
    for e in chain {
        if let Some(v) = e.value {
            codec::validate(v).map_err(|err| {
                Error::Storage(format!(
                    "key {key:02x?} version {}: the value does not decode: {err}",
                    e.version
                ))
            })?;
        }
    }
    Ok(())
}

fn check_vector_file(dir: &Path, full: &Path, bytes: &[u8]) -> std::result::Result<String, String> {
    let rel = full.strip_prefix(dir).unwrap_or(full);
    let run = rel
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|s| s.parse::<RunId>().ok());
    let name = rel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(strata_vector::persist::collection_of_file_name);
    let (Some(run), Some(name)) = (run, name) else {
        return Err("not named <run id>/<hex collection name>.vidx".to_owned());
    };
    strata_vector::persist::check_file(bytes, &run, &name)
        .map(|n| {
            format!("collection {name:?} of run {run}, {n} vectors (a cache: rebuilt from the records if damaged)")
        })
        .map_err(|e| e.to_string())
}

/// Which run states [`Strata::info`] lists, in order.
pub const RUN_STATES: [RunState; 6] = [
    RunState::Active,
    RunState::Paused,
    RunState::Completed,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Archived,
];

#[cfg(test)]
mod tests {

    use strata_core::{Timestamp, Value};
    use strata_storage::key::encode_key;

    use super::*;

    fn entry(version: u64, value: Option<&[u8]>) -> EntryRef<'_> {
        EntryRef {
            version,
            timestamp: Timestamp::from_micros(version),
            value,
        }
    }

    #[test]
    fn check_values_reports_the_value_that_does_not_decode() {
        let run = RunId::default_run();
        let good = codec::encode(&Value::from("fine")).unwrap();
        let kv = encode_key(&run, Primitive::Kv, b"k");
        // a `uint 64` beyond i64::MAX at byte 2, inside an array of two
        let bad = [
            0x92, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(check_values(&kv, &[entry(1, Some(&good)), entry(2, None)]).is_ok());
        let err = check_values(&kv, &[entry(1, Some(&good)), entry(3, Some(&bad))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version 3: the value does not decode"),
            "{err}"
        );
        assert!(err.contains("at byte 2"), "{err}");
        assert!(err.contains("does not fit in i64"), "{err}");
        let json = encode_key(&run, Primitive::Json, b"doc");
        assert!(check_values(&json, &[entry(1, Some(&[0xc1]))]).is_err());
        // state cells are not checked as values
        let state = encode_key(&run, Primitive::State, b"cell");
        assert!(check_values(&state, &[entry(1, Some(&[0xc1]))]).is_ok());
    }
}
