//! Recovery: from the files in a database directory to the state of its last commit.
//!
//! 1. **Clean up.** Temporary files of unfinished snapshots (`snap-*.snap.tmp`) are
//!    removed — only those: the directory may hold files of the user's.
//! 2. **Pick a snapshot.** The newest snapshot that reads back intact (every checksum,
//!    order and count verified). If it is damaged, an older one is used when the log
//!    still holds every record after it; otherwise open fails with the snapshot's error.
//! 3. **Skip what it covers.** Log segments whose records are all in the snapshot are not
//!    read (damage in them cannot matter) and are deleted.
//! 4. **Replay the log.** Every remaining segment is read in order with the torn-tail rule
//!    of [`crate::wal`]: sealed segments must be intact and end exactly where the next
//!    segment's header says they ended; records must continue the snapshot without a gap.
//!    A newest segment whose creation was interrupted is removed; an unsynced tail of the
//!    newest segment is truncated (with a warning) before anything is appended.
//! 5. **Make it durable.** What recovery accepted may have been read from the page cache
//!    after a process crash, so the newest segment is fsynced before the recovered
//!    version counts as durable: a later `flush()` or power loss never loses it.
use std::path::Path;
use std::sync::Arc;

use strata_core::{Error, Result, Timestamp};
use tracing::{info, warn};

use crate::durability::StorageOptions;
use crate::manifest::{is_manifest_temp, Manifest};
use crate::mvcc::MvccMap;
use crate::run::{is_run_temp, parse_run_name, run_name, Run};
use crate::snapshot::{is_snapshot_temp, parse_snapshot_name, read_snapshot, snapshot_name};
use crate::tree::RunHandle;
use crate::vfs::{join, Vfs};
use crate::wal::{
    holds_no_record, io_err, parse_segment_name, scan_segment, segment_name, SegmentHeader,
    SegmentScan, WalWriter,
};
use crate::RecoveryReport;

/// The state recovered from a directory.
pub(crate) struct Recovered {
    pub map: MvccMap,
    pub runs: Vec<RunHandle>,
    pub manifest: Manifest,
    pub last_version: u64,
    pub last_ts: Timestamp,
    /// The version and timestamp of every commit replayed from the log, in order (for
    /// the timeline).
    pub replayed: Vec<(u64, Timestamp)>,
    /// `None` when opened read-only.
    pub wal: Option<WalWriter>,
    pub report: RecoveryReport,
}

/// The newest segment read so far: where appending may continue.
struct Tail {
    base: u64,
    header: Option<SegmentHeader>,
    valid_len: u64,
    last_version: Option<u64>,
}

pub(crate) fn recover(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    options: &StorageOptions,
) -> Result<Recovered> {
    let read_only = options.read_only;
    let mut snapshots = Vec::new();
    let mut segments = Vec::new();
    let mut run_files = Vec::new();
    for name in vfs.list(dir).map_err(|e| io_err(dir, e))? {
        if is_snapshot_temp(&name)
            || is_run_temp(&name)
            || is_manifest_temp(&name)
            || crate::wal::is_segment_temp(&name)
        {
            if read_only {
                continue;
            }
            let p = join(dir, &name);
            vfs.remove(&p).map_err(|e| io_err(&p, e))?;
        } else if let Some(v) = parse_snapshot_name(&name) {
            snapshots.push(v);
        } else if let Some(b) = parse_segment_name(&name) {
            segments.push(b);
        } else if let Some(id) = parse_run_name(&name) {
            run_files.push(id);
        }
    }
    snapshots.sort_unstable();
    segments.sort_unstable();
    let mut report = RecoveryReport::default();

    // 1b. The manifest, if a flush ever completed: its runs are the base state, and
    // any other run or snapshot file is left over from an interrupted flush or
    // compaction (or superseded by the first flush after an upgrade).
    if let Some(manifest) = Manifest::read(vfs, dir)? {
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for meta in &manifest.runs {
            let path = join(dir, &run_name(meta.id));
            if !vfs.exists(&path) {
                return Err(Error::Storage(format!(
                    "the manifest of {} lists run {} but the file is missing",
                    dir.display(),
                    path.display()
                )));
            }
            let run = Run::open(vfs, &path, meta.id)?;
            if run.max_version() != meta.max_version || run.entries() != meta.entries {
                return Err(Error::Storage(format!(
                    "run {} does not match the manifest (versions up to {} with {} entries, \
                     listed as {} with {})",
                    path.display(),
                    run.max_version(),
                    run.entries(),
                    meta.max_version,
                    meta.entries
                )));
            }
            runs.push(RunHandle {
                run: Arc::new(run),
                meta: *meta,
            });
        }
        let listed: std::collections::HashSet<u64> = manifest.runs.iter().map(|r| r.id).collect();
        if read_only {
            run_files.clear();
            snapshots.clear();
        }
        let mut removed = false;
        for id in run_files.iter().filter(|id| !listed.contains(id)) {
            let p = join(dir, &run_name(*id));
            vfs.remove(&p).map_err(|e| io_err(&p, e))?;
            removed = true;
        }
        for v in &snapshots {
            let p = join(dir, &snapshot_name(*v));
            vfs.remove(&p).map_err(|e| io_err(&p, e))?;
            removed = true;
        }
        if removed {
            vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
        }
        info!(
            runs = runs.len(),
            flushed_through = manifest.flushed_through,
            "opened sorted runs"
        );
        report.snapshot_version = manifest.flushed_through;
        let base = Base {
            map: MvccMap::new(),
            last: manifest.flushed_through,
            last_ts: manifest.last_timestamp,
            runs,
            manifest,
        };
        return replay(vfs, dir, options, segments, base, report);
    }
    // No manifest: no flush ever completed, so no run file can be live.
    for id in run_files.iter().filter(|_| !read_only) {
        let p = join(dir, &run_name(*id));
        vfs.remove(&p).map_err(|e| io_err(&p, e))?;
    }

    // 2. The newest snapshot that reads back intact.
    let mut snapshot_error: Option<Error> = None;
    let mut loaded = None;
    for &v in snapshots.iter().rev() {
        let path = join(dir, &snapshot_name(v));
        let attempt = vfs
            .read(&path)
            .map_err(|e| io_err(&path, e))
            .and_then(|bytes| {
                let snap = read_snapshot(&path, &bytes)?;
                if snap.version != v {
                    return Err(Error::Storage(format!(
                        "snapshot {} is corrupt: its header says version {} but its name \
                         says {v}",
                        path.display(),
                        snap.version
                    )));
                }
                Ok((snap, bytes.len()))
            });
        match attempt {
            Ok(s) => {
                loaded = Some(s);
                break;
            }
            Err(e) => {
                warn!(file = %path.display(), error = %e,
                    "snapshot unreadable; trying an older snapshot and the log");
                snapshot_error.get_or_insert(e);
            }
        }
    }
    let mut last = 0u64;
    let mut last_ts = Timestamp(0);
    let map = match loaded {
        Some((snap, size)) => {
            for (_, chain) in &snap.chains {
                if let Some(e) = chain.last() {
                    last_ts = last_ts.max(e.timestamp);
                }
            }
            info!(
                version = snap.version,
                keys = snap.chains.len(),
                bytes = size,
                "loaded snapshot"
            );
            last = snap.version;
            report.snapshot_version = snap.version;
            MvccMap::from_chains(snap.chains)
        }
        None => MvccMap::new(),
    };
    let snapshot_version = last;
    // A damaged snapshot is only bypassed when the log still starts right after what we
    // fall back to; otherwise its error is the answer.
    let missing = |first_base: u64| first_base > snapshot_version.saturating_add(1);
    if let Some(e) = snapshot_error.take() {
        if segments.first().is_none_or(|&b| missing(b)) {
            return Err(e);
        }
        report.snapshot_fallback = true;
    }
    let base = Base {
        map,
        last,
        last_ts,
        runs: Vec::new(),
        manifest: Manifest {
            next_run_id: 1,
            ..Manifest::default()
        },
    };
    replay(vfs, dir, options, segments, base, report)
}

/// The state before the log: runs (or a legacy snapshot loaded into the memtable).
struct Base {
    map: MvccMap,
    last: u64,
    last_ts: Timestamp,
    runs: Vec<RunHandle>,
    manifest: Manifest,
}

/// Steps 3–5: skip what the base covers, replay the rest of the log, make it durable.
fn replay(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    options: &StorageOptions,
    segments: Vec<u64>,
    base: Base,
    mut report: RecoveryReport,
) -> Result<Recovered> {
    let Base {
        map,
        mut last,
        mut last_ts,
        runs,
        manifest,
    } = base;
    let snapshot_version = last;
    let read_only = options.read_only;
    let mut times: Vec<(u64, Timestamp)> = Vec::new();
    let missing = |first_base: u64| first_base > snapshot_version.saturating_add(1);

    // 3. Segments wholly covered by the snapshot: never read, deleted.
    let mut first_needed = 0;
    while first_needed + 1 < segments.len()
        && segments[first_needed + 1] <= snapshot_version.saturating_add(1)
    {
        first_needed += 1;
    }
    for &base in &segments[..first_needed] {
        report.segments_skipped += 1;
        if read_only {
            continue;
        }
        let p = join(dir, &segment_name(base));
        vfs.remove(&p).map_err(|e| io_err(&p, e))?;
    }
    if first_needed > 0 && !read_only {
        vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    }
    let segments = &segments[first_needed..];
    if let Some(&first) = segments.first() {
        if missing(first) {
            return Err(Error::Storage(format!(
                "the log in {} starts at version {first} but the newest snapshot holds only \
                 versions up to {snapshot_version}: records are missing",
                dir.display()
            )));
        }
    }

    // An empty newest segment (a crash while creating it, or before its predecessor was
    // sealed) holds no record: remove it, so that its predecessor is the newest.
    // Its header still says where its predecessor ended when it was started: the
    // predecessor was sealed (fsynced) then, so it is read as a sealed segment of that
    // length, not with the newest segment's lenient rule.
    let mut sealed_len: Option<u64> = None;
    let mut segments = segments.to_vec();
    while segments.len() >= 2 {
        let Some(&newest) = segments.last() else {
            break;
        };
        let path = join(dir, &segment_name(newest));
        let bytes = vfs.read(&path).map_err(|e| io_err(&path, e))?;
        if !holds_no_record(&bytes) {
            break;
        }
        sealed_len = SegmentHeader::decode(&bytes)
            .map(|h| h.prev_len)
            .filter(|&l| l > 0);
        segments.pop();
        if read_only {
            // A writer may be creating it right now: read what is before it.
            continue;
        }
        warn!(file = %path.display(), "removing an empty log segment left by a crash");
        vfs.remove(&path).map_err(|e| io_err(&path, e))?;
        vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    }

    // 4. Replay.
    let mut tail: Option<Tail> = None;
    for (i, &base) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let path = join(dir, &segment_name(base));
        let bytes = vfs.read(&path).map_err(|e| io_err(&path, e))?;
        let mut replayed = 0u64;
        let sealed = sealed_len.filter(|_| is_last);
        // Read-only, the newest segment's records are applied only up to what its
        // frames prove durable: a strict commit whose fsync is still running (and may
        // fail) is never shown to a reader.
        let hold_back = read_only && is_last && sealed.is_none();
        let mut held: Vec<crate::record::CommitRecord> = Vec::new();
        let (scan_buf, scan_as_last) = match sealed {
            Some(l) => {
                let end = usize::try_from(l)
                    .ok()
                    .filter(|&l| l <= bytes.len())
                    .ok_or_else(|| {
                        Error::Storage(format!(
                            "log segment {} is {} bytes long, but the next segment was \
                             started when it ended at offset {l}: records are missing",
                            path.display(),
                            bytes.len()
                        ))
                    })?;
                (&bytes[..end], false)
            }
            None => (&bytes[..], is_last),
        };
        let scan = scan_segment(&path, scan_buf, base, scan_as_last, &mut |rec| {
            if rec.version <= last {
                return Ok(()); // already in the snapshot
            }
            if Some(rec.version) != last.checked_add(1) {
                return Err(Error::Storage(format!(
                    "log segment {} jumps from version {last} to {}: records are missing",
                    path.display(),
                    rec.version
                )));
            }
            last = rec.version;
            if hold_back {
                held.push(rec);
                return Ok(());
            }
            last_ts = last_ts.max(rec.timestamp);
            times.push((rec.version, rec.timestamp));
            map.apply_owned(rec.version, rec.timestamp, rec.writes);
            replayed += 1;
            Ok(())
        })?;
        if hold_back {
            let proven = match &scan {
                SegmentScan::Segment(s) => s.durable_mark,
                SegmentScan::TornCreation => 0,
            };
            let mut applied_to = held.first().map_or(last, |r| r.version - 1);
            for rec in held.drain(..) {
                if rec.version > proven {
                    break;
                }
                applied_to = rec.version;
                last_ts = last_ts.max(rec.timestamp);
                times.push((rec.version, rec.timestamp));
                map.apply_owned(rec.version, rec.timestamp, rec.writes);
                replayed += 1;
            }
            last = applied_to;
        }
        report.records_replayed += replayed;
        let summary = match scan {
            SegmentScan::TornCreation if read_only => continue,
            SegmentScan::TornCreation => {
                warn!(file = %path.display(), "removing a log segment whose creation a crash interrupted");
                vfs.remove(&path).map_err(|e| io_err(&path, e))?;
                vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
                report.torn_bytes_truncated += bytes.len() as u64;
                continue;
            }
            SegmentScan::Segment(mut s) => {
                if sealed.is_some() {
                    // Past the sealed length: only the preallocation the seal did not cut.
                    s.torn_bytes = (bytes.len() - scan_buf.len()) as u64;
                }
                s
            }
        };
        if let (Some(prev), Some(h)) = (&tail, &summary.header) {
            if h.prev_len != 0 && h.prev_len != prev.valid_len {
                return Err(Error::Storage(format!(
                    "log segment {} ends at offset {}, but the next segment was started when \
                     it ended at offset {}: records are missing",
                    join(dir, &segment_name(prev.base)).display(),
                    prev.valid_len,
                    h.prev_len
                )));
            }
        }
        if let Some(first) = summary.first_version {
            if first > last.saturating_add(1) {
                return Err(Error::Storage(format!(
                    "log segment {} starts at version {first} after version {last}: records \
                     are missing",
                    path.display()
                )));
            }
        }
        if summary.torn_bytes > 0 && !read_only {
            warn!(
                file = %path.display(),
                offset = summary.valid_len,
                bytes = summary.torn_bytes,
                "truncating an unsynced log tail left by a crash"
            );
            report.torn_bytes_truncated += summary.torn_bytes;
            vfs.truncate(&path, summary.valid_len)
                .map_err(|e| io_err(&path, e))?;
        }
        tail = Some(Tail {
            base,
            header: summary.header,
            valid_len: summary.valid_len,
            last_version: summary.last_version,
        });
    }

    if last == u64::MAX {
        return Err(Error::Storage(format!(
            "the database in {} has used up the version space (last version {last})",
            dir.display()
        )));
    }
    if read_only {
        report.last_version = last;
        return Ok(Recovered {
            map,
            runs,
            manifest,
            last_version: last,
            last_ts,
            replayed: times,
            wal: None,
            report,
        });
    }
    // Continue the newest format-2 segment if it ends exactly at the recovered version;
    // otherwise (none, format 1, or ending before a newer snapshot) start a new one.
    let continue_tail = tail.as_ref().and_then(|t| {
        let h = t.header?;
        let ends_at = t.last_version.unwrap_or(t.base.saturating_sub(1));
        (ends_at == last).then_some((h, t.valid_len))
    });
    let wal = match continue_tail {
        Some((header, len)) => {
            let w = WalWriter::reopen(vfs.clone(), dir, header, len, options.segment_size)?;
            // 5. Recovered records may have come from the page cache: make them durable.
            let path = join(dir, &segment_name(header.base));
            w.current_file().sync().map_err(|e| io_err(&path, e))?;
            w
        }
        None => {
            let prev_len = tail.as_ref().map_or(0, |t| t.valid_len);
            if let Some(t) = &tail {
                // A format-1 or superseded segment stays sealed: sync it before the next.
                let path = join(dir, &segment_name(t.base));
                let f = vfs.open_append(&path).map_err(|e| io_err(&path, e))?;
                f.sync().map_err(|e| io_err(&path, e))?;
            }
            WalWriter::create(vfs.clone(), dir, last + 1, prev_len, options.segment_size)?
        }
    };
    vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    report.last_version = last;
    Ok(Recovered {
        map,
        runs,
        manifest,
        last_version: last,
        last_ts,
        replayed: times,
        wal: Some(wal),
        report,
    })
}
