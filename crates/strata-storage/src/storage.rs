//! [`Storage`]: the MVCC map plus the log, snapshots, recovery and the commit path.
//!
//! # The commit path
//!
//! 1. The caller's writes are encoded into a log payload *outside* any lock.
//! 2. Under the commit lock: the caller's validation runs against the latest state, the
//!    next commit version and a monotonic timestamp are taken, the framed record is
//!    written to the operating system (one `write` per commit), and the writes are
//!    applied to the map as a whole.
//! 3. In `Ephemeral`, `NoDurability` and `Buffered` modes the commit is published at
//!    once: the visible version advances to it, still under the lock, so versions are
//!    published in order and never with a gap.
//! 4. In `Strict` mode the committer leaves the lock and waits until a sync covers its
//!    record. One waiter at a time becomes the leader and fsyncs for everyone whose
//!    record was written before the sync began (group commit); after a successful sync
//!    the visible version advances to the newest record it covered.
//!
//! A failed write or fsync *poisons* the storage: every later commit fails with
//! `Error::Storage`, and nothing is reported durable that was not.
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use strata_core::limits::{MAX_COMMIT_BYTES, MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::{Error, Result, Timestamp};
use tracing::{debug, info, info_span, warn};

use crate::durability::{DurabilityMode, StorageOptions};
use crate::lineage::Lineage;
use crate::lock::DirLock;
use crate::logical::ScanMode;
use crate::manifest::{Manifest, RunMeta};
use crate::mvcc::{gc_entries, Entry, GcHook, KeyChain, MapStats, MvccMap, RetentionHook, Write};
use crate::record::{encode_payload, encoded_len, patch_header};
use crate::recovery::Recovered;
use crate::retention::RetentionPolicy;
use crate::run::{parse_run_name, run_name, Run, RUN_BLOCK_TARGET};
use crate::snapshot::{parse_snapshot_name, write_sorted_file};
use crate::timeline::{TimePoint, Timeline};
use crate::tree::{Layers, Merge, RunHandle, Tree};
use crate::vfs::{join, Vfs, VfsFile};
use crate::wal::{io_err, parse_segment_name, WalWriter};

/// Checks the storage-level limits of every write (see `strata_core::limits`): the same
/// bounds recovery enforces when it reads a record back.
fn check_limits(writes: &[Write]) -> Result<()> {
    for w in writes {
        if w.key.len() > MAX_STORED_KEY_BYTES {
            return Err(Error::ConstraintViolation(format!(
                "a storage key of {} bytes is longer than the limit of {MAX_STORED_KEY_BYTES}",
                w.key.len()
            )));
        }
        if let Some(v) = &w.value {
            if v.len() > MAX_STORED_VALUE_BYTES {
                return Err(Error::ConstraintViolation(format!(
                    "a stored value of {} bytes is larger than the limit of \
                     {MAX_STORED_VALUE_BYTES}",
                    v.len()
                )));
            }
        }
    }
    Ok(())
}

/// Figures of the sorted runs (see [`Storage::run_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Runs listed by the manifest.
    pub runs: u64,
    /// Bytes of their files.
    pub bytes: u64,
    /// Entries (versions) they hold.
    pub entries: u64,
    /// Memory their in-memory indexes take (an estimate).
    pub index_bytes: u64,
    /// Newest version they hold.
    pub flushed_through: u64,
}

/// What a successful commit was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit version (global, dense, increasing).
    pub version: u64,
    /// The commit timestamp (monotonic across commits).
    pub timestamp: Timestamp,
}

/// What recovery found when the storage was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Version of the snapshot recovery started from (0 if none).
    pub snapshot_version: u64,
    /// Log records replayed after the snapshot.
    pub records_replayed: u64,
    /// Bytes of torn log tail that were truncated.
    pub torn_bytes_truncated: u64,
    /// The newest recovered commit version.
    pub last_version: u64,
    /// `true` when the newest snapshot was unreadable and an older one (or none) plus
    /// the log was used instead.
    pub snapshot_fallback: bool,
    /// Log segments wholly covered by the snapshot, deleted without being read.
    pub segments_skipped: u64,
}

pub(crate) struct CommitState {
    pub(crate) next_version: u64,
    pub(crate) last_ts: Timestamp,
    pub(crate) wal: Option<WalWriter>,
}

#[derive(Default)]
pub(crate) struct SyncState {
    /// Newest version whose record is written and applied.
    pub(crate) written: u64,
    /// Newest version known durable.
    pub(crate) synced: u64,
    syncing: bool,
    unsynced_commits: u64,
    file: Option<Arc<dyn VfsFile>>,
    shutdown: bool,
    /// How long the last log fsync took (sizes the group-commit gathering window).
    last_sync: Duration,
    /// A Strict leader is waiting for in-flight committers' records (see `sync_to`).
    gathering: bool,
    /// While `gathering`: the `written` version the gatherer waits for. Only the commit
    /// that reaches it wakes the gatherer (one wake-up per fsync, not one per record).
    gather_until: u64,
}

pub(crate) struct Disk {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    options: StorageOptions,
    pub(crate) sync: Mutex<SyncState>,
    /// Committers wait here for their record's fsync.
    sync_cv: Condvar,
    /// Only a gathering syncer waits here, for in-flight committers' records (see
    /// `sync_once`). Its own condvar: a record written while committers wait for an
    /// fsync must wake the gatherer only, not every waiting committer (each spurious
    /// wake-up is a context switch that delays the fsync they wait for).
    gather_cv: Condvar,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// Strict mode's syncer thread (see `syncer_loop`), and what wakes it.
    syncer: Mutex<Option<JoinHandle<()>>>,
    syncer_cv: Condvar,
    /// The latest background snapshot thread, joined when the last handle is dropped.
    snapshot_thread: Mutex<Option<JoinHandle<()>>>,
    snapshot_lock: Mutex<()>,
    snapshot_running: AtomicBool,
    /// Committers stalled by a memtable at twice its size wait here (see
    /// `wait_for_memtable_room`); a flush's freeze wakes them.
    room: Mutex<()>,
    room_cv: Condvar,
    /// Held around every fsync of the log. A failed fsync poisons the storage before the
    /// gate is released, so no other fsync (a checkpoint's roll, a flush) can succeed
    /// afterwards and publish what the failed one did not make durable: after a failed
    /// fsync the kernel may drop the dirty pages and report the next fsync clean.
    sync_gate: Mutex<()>,
    /// Strict commits currently inside `commit` (group-commit gathering).
    committers: AtomicU64,
    /// `SyncState::written`, readable without the lock: what a spinning syncer polls
    /// (see [`spin_until`]).
    written_hint: AtomicU64,
    /// The manifest as last written (changed only under `snapshot_lock`).
    manifest: Mutex<Manifest>,
    /// The newest version and timestamp in the frozen memtable, while there is one.
    frozen_through: Mutex<Option<(u64, Timestamp)>>,
    /// The id the next run file gets. Taken before any file is written and never
    /// handed out twice, whatever happens to the flush or compaction that took it, so a
    /// run is never renamed over a file a manifest on disk may list.
    next_run_id: AtomicU64,
    /// The directory lock, taken out (released) by `close` or when the last caller
    /// handle is dropped, even while a `SnapshotPin` keeps `Inner` alive.
    lock: Mutex<Option<DirLock>>,
}

/// The newest version that wrote each primitive tag (see [`Storage::last_write_to`]);
/// tags without a slot share the last one.
struct TagWrites([AtomicU64; TAG_SLOTS]);

/// Slots of [`TagWrites`]: the tags in use (1..=8) have their own.
const TAG_SLOTS: usize = 16;

impl TagWrites {
    fn new(version: u64) -> TagWrites {
        TagWrites(std::array::from_fn(|_| AtomicU64::new(version)))
    }

    fn slot(tag: u8) -> usize {
        usize::from(tag).min(TAG_SLOTS - 1)
    }

    /// Notes a commit at `version` of `writes` (called before it becomes visible).
    fn note(&self, version: u64, writes: &[Write]) {
        for w in writes {
            if let Some(&tag) = w.key.get(crate::key::KEY_HEADER_LEN - 1) {
                self.0[Self::slot(tag)].fetch_max(version, Ordering::AcqRel);
            } else {
                // A key too short for a tag: count it as a write to every primitive.
                self.note_all(version);
            }
        }
    }

    /// Notes that any key may have changed at `version`.
    fn note_all(&self, version: u64) {
        for slot in &self.0 {
            slot.fetch_max(version, Ordering::AcqRel);
        }
    }

    fn get(&self, tag: u8) -> u64 {
        self.0[Self::slot(tag)].load(Ordering::Acquire)
    }
}

pub(crate) struct Inner {
    pub(crate) tree: Tree,
    /// The fork records (see [`crate::lineage`]).
    pub(crate) lineage: Lineage,
    /// When each version was committed (see [`crate::timeline`]).
    timeline: Timeline,
    gc_hook: parking_lot::RwLock<Option<GcHook>>,
    retention_hook: parking_lot::RwLock<Option<RetentionHook>>,
    pub(crate) visible: AtomicU64,
    /// Newest version applied to the map (ahead of `visible` while a strict commit
    /// waits for its fsync).
    pub(crate) applied: AtomicU64,
    /// Per primitive tag (see [`Storage::last_write_to`]): a version at least as new as
    /// every applied commit that wrote a key of that primitive.
    tag_writes: TagWrites,
    /// Newest version known fsynced: the durable mark written into every log frame.
    durable: AtomicU64,
    /// Newest version held by sorted runs (or, before the first flush of an upgraded
    /// database, by its legacy snapshot); 0 if none.
    snapshot_version: AtomicU64,
    pub(crate) commit: Mutex<CommitState>,
    poisoned: AtomicBool,
    poison_reason: Mutex<Option<String>>,
    /// Set by `close`: every later operation fails with [`closed_error`].
    closed: AtomicBool,
    /// Set when `close` starts: a background compaction gives up at once (its merge
    /// is redone by a later one), so close never waits for a large merge.
    closing: AtomicBool,
    pins: Mutex<BTreeMap<u64, usize>>,
    pub(crate) disk: Option<Disk>,
    recovery: RecoveryReport,
}

/// The versioned store. Cheap to clone (a shared handle).
///
/// ```
/// use std::sync::Arc;
/// use strata_storage::{Storage, Write};
///
/// let store = Storage::ephemeral();
/// let info = store
///     .commit(vec![Write { key: b"k".to_vec().into(), value: Some(Arc::from(&b"v"[..])) }], |_| Ok(()))
///     .unwrap();
/// let seen = store.get(b"k", store.visible_version()).unwrap().unwrap();
/// assert_eq!(seen.version, info.version);
/// ```
#[derive(Clone)]
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
    /// Shared by the handles given to callers (not by the background threads' copies):
    /// when the last one is dropped, background work is stopped and joined, so the
    /// storage — and its directory lock — is released before that drop returns.
    _handle: Option<Arc<LastHandle>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.dir())
            .field("durability", &self.durability())
            .field("visible_version", &self.visible_version())
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

struct LastHandle {
    inner: Arc<Inner>,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        let Some(d) = self.inner.disk.as_ref() else {
            return;
        };
        Storage::internal(self.inner.clone()).stop_flusher();
        let snapshot = d.snapshot_thread.lock().take();
        if let Some(h) = snapshot {
            let _ = h.join();
        }
        // Nothing writes any more: sync, then let the directory be opened again even if
        // a pin (a transaction) outlives this handle.
        self.inner.final_sync();
        d.lock.lock().take();
    }
}

/// Keeps the versions visible at one snapshot safe from garbage collection until dropped.
pub struct SnapshotPin {
    inner: Arc<Inner>,
    version: u64,
}

impl SnapshotPin {
    /// The pinned version.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let mut pins = self.inner.pins.lock();
        if let Some(n) = pins.get_mut(&self.version) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.version);
            }
        }
    }
}

impl Storage {
    /// A storage with no files at all: everything is lost when it is dropped.
    pub fn ephemeral() -> Storage {
        Storage::for_caller(Arc::new(Inner {
            tree: Tree::new(MvccMap::new(), Vec::new()),
            lineage: Lineage::default(),
            timeline: Timeline::in_memory(),
            gc_hook: parking_lot::RwLock::new(None),
            retention_hook: parking_lot::RwLock::new(None),
            visible: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            tag_writes: TagWrites::new(0),
            durable: AtomicU64::new(0),
            snapshot_version: AtomicU64::new(0),
            commit: Mutex::new(CommitState {
                next_version: 1,
                last_ts: Timestamp(0),
                wal: None,
            }),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(None),
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            pins: Mutex::new(BTreeMap::new()),
            disk: None,
            recovery: RecoveryReport::default(),
        }))
    }

    /// Opens (creating if needed) the storage in `dir`, recovering its state from the
    /// sorted runs the manifest lists plus the log records after them.
    ///
    /// With [`StorageOptions::read_only`] the directory must exist, no lock is taken
    /// (a writer may hold it) and nothing is written: no file is created, truncated or
    /// deleted, and every commit fails with [`Error::ConstraintViolation`]. The reader
    /// sees the runs and the log records proven durable (by a later record's durable
    /// mark, or by being in a sealed segment), never a strict commit whose fsync may
    /// still fail; [`refresh`](Self::refresh) catches up with the writer. A file the
    /// writer deletes while the reader opens (a flush or compaction finishing) makes it
    /// start over, a few times.
    pub fn open(dir: impl AsRef<Path>, options: StorageOptions) -> Result<Storage> {
        let dir = dir.as_ref().to_path_buf();
        let span = info_span!("storage_open", dir = %dir.display(), read_only = options.read_only);
        let _entered = span.enter();
        let started = Instant::now();
        let vfs = options.vfs.clone();
        if options.read_only {
            return Storage::open_read_only(dir, options, started);
        }
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !vfs.exists(a))
            .map(Path::to_path_buf)
            .collect();
        vfs.create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        // Every directory created here must survive a power loss like its files do: its
        // entry in its parent is made durable, from the top down.
        for created in missing.iter().rev() {
            if let Some(parent) = created.parent() {
                // A relative top-level directory's parent is the working directory.
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                vfs.sync_dir(parent).map_err(|e| io_err(parent, e))?;
            }
        }
        let lock = if options.lock_directory {
            Some(DirLock::acquire(&dir)?)
        } else {
            None
        };
        let recovered = crate::recovery::recover(&vfs, &dir, &options)?;
        Storage::assemble(dir, vfs, options, lock, recovered, started)
    }

    fn open_read_only(dir: PathBuf, options: StorageOptions, started: Instant) -> Result<Storage> {
        let vfs = options.vfs.clone();
        if !vfs.exists(&dir) {
            return Err(Error::NotFound(format!(
                "no database at {} to open read-only",
                dir.display()
            )));
        }
        let recovered = Storage::recover_read_only(&vfs, &dir, &options)?;
        Storage::assemble(dir, vfs, options, None, recovered, started)
    }

    /// Read-only recovery, started over when a writer deletes a file it was reading.
    fn recover_read_only(
        vfs: &Arc<dyn Vfs>,
        dir: &Path,
        options: &StorageOptions,
    ) -> Result<Recovered> {
        let mut attempt = 0;
        loop {
            match crate::recovery::recover(vfs, dir, options) {
                Ok(r) => return Ok(r),
                Err(e) if attempt < 5 => {
                    debug!(error = %e, attempt, "read-only open raced with the writer; retrying");
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(2 << attempt));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn assemble(
        dir: PathBuf,
        vfs: Arc<dyn Vfs>,
        options: StorageOptions,
        lock: Option<DirLock>,
        recovered: Recovered,
        started: Instant,
    ) -> Result<Storage> {
        let Recovered {
            map,
            runs,
            manifest,
            last_version: last,
            last_ts,
            replayed,
            wal,
            report,
        } = recovered;
        // A timeline file not yet written starts after what the runs (or a legacy
        // snapshot) hold: those commits' times were never recorded.
        let timeline = Timeline::on_disk(
            &dir,
            manifest.timeline_len,
            manifest.flushed_through.max(report.snapshot_version) + 1,
        );
        for (v, t) in replayed {
            timeline.note(v, t);
        }
        info!(
            last_version = last,
            snapshot_version = report.snapshot_version,
            records_replayed = report.records_replayed,
            torn_bytes = report.torn_bytes_truncated,
            runs = runs.len(),
            memtable_keys = map.key_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered"
        );
        let file = wal.as_ref().map(|w| w.current_file());
        let disk = Disk {
            dir,
            vfs,
            sync: Mutex::new(SyncState {
                written: last,
                synced: last,
                file,
                ..SyncState::default()
            }),
            sync_cv: Condvar::new(),
            gather_cv: Condvar::new(),
            flusher: Mutex::new(None),
            syncer: Mutex::new(None),
            syncer_cv: Condvar::new(),
            snapshot_thread: Mutex::new(None),
            snapshot_lock: Mutex::new(()),
            snapshot_running: AtomicBool::new(false),
            room: Mutex::new(()),
            room_cv: Condvar::new(),
            sync_gate: Mutex::new(()),
            committers: AtomicU64::new(0),
            written_hint: AtomicU64::new(last),
            next_run_id: AtomicU64::new(manifest.next_run_id.max(1)),
            manifest: Mutex::new(manifest),
            frozen_through: Mutex::new(None),
            lock: Mutex::new(lock),
            options,
        };
        let tree = Tree::new(map, runs);
        let lineage = load_lineage(&tree)?;
        let inner = Arc::new(Inner {
            tree,
            lineage,
            timeline,
            gc_hook: parking_lot::RwLock::new(None),
            retention_hook: parking_lot::RwLock::new(None),
            visible: AtomicU64::new(last),
            applied: AtomicU64::new(last),
            tag_writes: TagWrites::new(last),
            durable: AtomicU64::new(last),
            snapshot_version: AtomicU64::new(report.snapshot_version),
            commit: Mutex::new(CommitState {
                next_version: last + 1,
                last_ts,
                wal,
            }),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(None),
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            pins: Mutex::new(BTreeMap::new()),
            disk: Some(disk),
            recovery: report,
        });
        if inner.disk.as_ref().is_some_and(|d| d.options.read_only) {
            return Ok(Storage::for_caller(inner));
        }
        if let Some(DurabilityMode::Buffered { interval_ms, .. }) =
            inner.disk.as_ref().map(|d| d.options.durability)
        {
            let weak = Arc::downgrade(&inner);
            let handle = std::thread::Builder::new()
                .name("strata-flusher".into())
                .spawn(move || flusher_loop(weak, Duration::from_millis(interval_ms.max(1))))
                .map_err(|e| Error::Storage(format!("cannot start the flusher thread: {e}")))?;
            if let Some(d) = &inner.disk {
                *d.flusher.lock() = Some(handle);
            }
        }
        if inner.disk.as_ref().map(|d| d.options.durability) == Some(DurabilityMode::Strict) {
            let this = Storage::internal(inner.clone());
            let handle = std::thread::Builder::new()
                .name("strata-syncer".into())
                .spawn(move || this.syncer_loop())
                .map_err(|e| Error::Storage(format!("cannot start the syncer thread: {e}")))?;
            if let Some(d) = &inner.disk {
                *d.syncer.lock() = Some(handle);
            }
        }
        Ok(Storage::for_caller(inner))
    }

    /// A handle for a caller (see [`LastHandle`]).
    fn for_caller(inner: Arc<Inner>) -> Storage {
        Storage {
            inner: inner.clone(),
            _handle: Some(Arc::new(LastHandle { inner })),
        }
    }

    /// A copy for a background thread: it does not keep the caller's handle alive.
    fn internal(inner: Arc<Inner>) -> Storage {
        Storage {
            inner,
            _handle: None,
        }
    }

    /// What recovery found when this storage was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The directory, for a disk-backed storage.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.disk.as_ref().map(|d| d.dir.as_path())
    }

    /// The durability mode, or `None` for an ephemeral storage.
    pub fn durability(&self) -> Option<DurabilityMode> {
        self.inner.disk.as_ref().map(|d| d.options.durability)
    }

    /// The newest published commit version: a reader starting now uses it as snapshot.
    pub fn visible_version(&self) -> u64 {
        self.inner.visible.load(Ordering::Acquire)
    }

    /// A version at least as new as every applied commit that wrote a key of
    /// `primitive` (in any run), and as every replacement of the whole state (a restore,
    /// a [`refresh`](Self::refresh)). It is raised before such a commit becomes visible,
    /// so a reader at snapshot `S` that finds it `<= S` knows that no key of `primitive`
    /// changed after it up to `S`: a value of such a key read at any snapshot at or
    /// after it is still the value at `S`. The layer above caches run records on this
    /// (each read checks its run exists without reading the record again).
    pub fn last_write_to(&self, primitive: crate::key::Primitive) -> u64 {
        self.inner.tag_writes.get(primitive.tag())
    }

    /// Raises [`last_write_to`](Self::last_write_to) of every primitive to `version`:
    /// for a restore, which may have written keys of any kind.
    pub(crate) fn note_every_primitive_written(&self, version: u64) {
        self.inner.tag_writes.note_all(version);
    }

    /// The time `version` was committed: the timestamp of the newest commit at or
    /// before it (exact for a version a commit made; see [`crate::timeline`]). `None`
    /// for version 0 and for versions older than the timeline (a database created
    /// before it existed). Reads the timeline file on first use.
    ///
    /// Errors: [`Error::Storage`] naming the file and offset if the timeline file is
    /// damaged.
    pub fn commit_time(&self, version: u64) -> Result<Option<Timestamp>> {
        self.check_open()?;
        let vfs = self.inner.disk.as_ref().map(|d| &d.vfs);
        self.inner.timeline.commit_time(vfs, version)
    }

    /// The newest version committed at or before `ts` (see [`TimePoint`]), among the
    /// commits applied so far (which may run ahead of
    /// [`visible_version`](Self::visible_version) while strict commits wait for their
    /// fsync). Reads the timeline file on first use.
    ///
    /// Errors: as [`commit_time`](Self::commit_time).
    pub fn version_at_time(&self, ts: Timestamp) -> Result<TimePoint> {
        self.check_open()?;
        // A commit takes its timestamp and notes it in the timeline under the commit
        // lock: taking the lock once orders this lookup after every commit that has
        // taken its timestamp already.
        drop(self.inner.commit.lock());
        let vfs = self.inner.disk.as_ref().map(|d| &d.vfs);
        self.inner.timeline.version_at(vfs, ts)
    }

    /// The timestamp of the newest commit (0 before the first). Commit timestamps never
    /// go back: every later commit's is at least this one and at least the clock's.
    pub fn last_commit_timestamp(&self) -> Timestamp {
        self.inner.commit.lock().last_ts
    }

    /// Notes the commits of a restore (up to `version`) in the timeline: every distinct
    /// version with its newest timestamp, in version order, times made non-decreasing.
    /// Versions before the first restored one left no record in the dump, so their
    /// times are unknown: the timeline starts at the first restored version (or after
    /// `version` for an empty dump), exactly as it reads back after a reopen.
    pub(crate) fn note_restored_times(&self, mut times: Vec<(u64, Timestamp)>, version: u64) {
        times.sort_unstable();
        let mut pairs: Vec<(u64, Timestamp)> = Vec::with_capacity(times.len());
        for (v, t) in times {
            match pairs.last_mut() {
                Some((lv, lt)) if *lv == v => *lt = (*lt).max(t),
                Some(&mut (_, lt)) => pairs.push((v, t.max(lt))),
                None => pairs.push((v, t)),
            }
        }
        let starts_at = pairs.first().map_or(version + 1, |p| p.0);
        // The storage was empty: nothing of the timeline is on disk yet.
        self.inner.timeline.reset(0, starts_at, &pairs);
    }

    /// The newest commit applied to the map. It runs ahead of
    /// [`visible_version`](Self::visible_version) only in `Strict` mode, while commits
    /// wait for their fsync.
    pub fn applied_version(&self) -> u64 {
        self.inner.applied.load(Ordering::Acquire)
    }

    /// Waits (at most `timeout`) until every commit applied so far is visible. A
    /// transaction that conflicted with a commit still waiting for its fsync calls this
    /// before retrying, so that its retry reads that commit instead of conflicting again.
    /// Returns whether they became visible in time.
    pub fn wait_until_applied_visible(&self, timeout: Duration) -> bool {
        let target = self.applied_version();
        if self.visible_version() >= target {
            return true;
        }
        let Some(d) = self.inner.disk.as_ref() else {
            return true;
        };
        if d.options.durability != DurabilityMode::Strict {
            // Commits publish under the commit lock: once we hold it, every commit
            // applied before is visible. Nobody signals `sync_cv` for them.
            drop(self.inner.commit.lock());
            return self.visible_version() >= target;
        }
        let deadline = Instant::now() + timeout;
        let mut s = d.sync.lock();
        while self.visible_version() < target && !self.is_poisoned() {
            if d.sync_cv.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        self.visible_version() >= target
    }

    /// Pins the current visible version (see [`SnapshotPin`]).
    pub fn pin(&self) -> SnapshotPin {
        let mut pins = self.inner.pins.lock();
        // Read the version under the pins lock so that GC, which computes the oldest pin
        // under the same lock, never misses a reader that is starting.
        let version = self.visible_version();
        *pins.entry(version).or_insert(0) += 1;
        SnapshotPin {
            inner: self.inner.clone(),
            version,
        }
    }

    /// Pins `version`, or the visible version if that is older: a snapshot in the
    /// past, for reads as of an earlier version. From now on garbage collection keeps
    /// what a reader there sees; what it dropped before is gone (callers check the
    /// retention policies that could have dropped it).
    pub fn pin_at(&self, version: u64) -> SnapshotPin {
        let mut pins = self.inner.pins.lock();
        let version = version.min(self.visible_version());
        *pins.entry(version).or_insert(0) += 1;
        SnapshotPin {
            inner: self.inner.clone(),
            version,
        }
    }

    /// The oldest version any open snapshot can read.
    pub fn oldest_pinned(&self) -> u64 {
        let pins = self.inner.pins.lock();
        pins.keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.visible_version())
    }

    /// The versions open snapshots pin (ascending) and the visible version, read
    /// together: every snapshot pinned later reads at or after that visible version.
    /// Garbage collection keeps what each of them can read (see
    /// [`MvccMap::gc_range_pinned`]).
    pub fn pins_and_visible(&self) -> (Vec<u64>, u64) {
        let pins = self.inner.pins.lock();
        (pins.keys().copied().collect(), self.visible_version())
    }

    /// The layered store (memtables over sorted runs), for validation and advanced
    /// reads.
    pub fn tree(&self) -> &Tree {
        &self.inner.tree
    }

    /// Size counters of the memtables (see [`MapStats`]).
    pub fn stats(&self) -> MapStats {
        self.inner.tree.stats()
    }

    /// Registers (or with `None` removes) the function that applies the retention
    /// policies of the layer above. [`checkpoint`](Self::checkpoint) calls it before
    /// every flush; the hook must not call `checkpoint` itself.
    pub fn set_gc_hook(&self, hook: Option<GcHook>) {
        *self.inner.gc_hook.write() = hook;
    }

    /// Registers (or with `None` removes) the function that gives compaction the
    /// retention policies of the layer above, so that merging runs drops the versions
    /// retention no longer keeps and no open snapshot can read: retention frees disk,
    /// not only memory.
    pub fn set_retention_hook(&self, hook: Option<RetentionHook>) {
        *self.inner.retention_hook.write() = hook;
    }

    fn run_gc_hook(&self) {
        let hook = self.inner.gc_hook.read().clone();
        if let Some(h) = hook {
            h(self);
        }
    }

    /// The live value of `key` at `snapshot`. Fails only when a sorted run on disk is
    /// damaged (the error names the file and offset).
    ///
    /// A key of a forked run that the run itself never wrote is read in its parent as
    /// of the fork version (see [`crate::lineage`]); so are the scans and histories
    /// below.
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>> {
        crate::logical::get(&self.inner.tree, &self.inner.lineage, key, snapshot, || {
            self.prepare_fork_levels(key)
        })
    }

    /// Before a read of `key` (or a range starting there) through a forked run: gives
    /// every fork level of its ancestry its own-key set, if it has none yet (see
    /// [`crate::lineage::OwnKeys`]), so the read can skip the levels that do not hold it.
    fn prepare_fork_levels(&self, key: &[u8]) -> Result<()> {
        let lineage = &self.inner.lineage;
        if !lineage.any() {
            return Ok(());
        }
        let Some(run) = crate::lineage::run_of(key) else {
            return Ok(());
        };
        if lineage.parent_of(&run).is_none() {
            return Ok(());
        }
        let levels = lineage.ancestry(&run, u64::MAX);
        // The last level is not a fork: it is always read.
        for (level, _) in &levels[..levels.len() - 1] {
            if lineage.presence(level, &[]) != crate::lineage::Presence::Unknown {
                continue;
            }
            let epoch = {
                let _no_commit_in_between = self.inner.commit.lock();
                match lineage.start_own(level) {
                    Some(e) => e,
                    None => continue,
                }
            };
            let prefix = crate::key::run_prefix(level);
            let end = crate::key::prefix_successor(&prefix);
            let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let max = crate::lineage::MAX_OWN_KEYS + 1;
            let keys =
                crate::logical::own_keys(&self.inner.tree, Bound::Included(&prefix), end, max);
            match keys {
                Ok(keys) => {
                    let fits = keys.len() <= crate::lineage::MAX_OWN_KEYS;
                    lineage.finish_own(level, epoch, fits.then_some(keys));
                }
                Err(e) => {
                    lineage.finish_own(level, epoch, None);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Live entries with keys starting with `prefix` at `snapshot`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        snapshot: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        let end = crate::key::prefix_successor(prefix);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_range(Bound::Included(prefix), end, snapshot, limit)
    }

    /// Live entries with keys in a range at `snapshot`, in key order.
    pub fn scan_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        self.scan_in_mode(start, end, snapshot, limit, ScanMode::default())
    }

    /// The scans below: a fork's levels made ready for the range, then a logical scan.
    fn scan_in_mode(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        mode: ScanMode,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        self.prepare_fork_levels_for(start)?;
        let (t, l) = (&self.inner.tree, &self.inner.lineage);
        crate::logical::scan(t, l, start, end, snapshot, limit, mode)
    }

    /// Readies a fork's levels for a range read starting at `start` (a no-op for an
    /// unbounded start, which no run-scoped read has).
    fn prepare_fork_levels_for(&self, start: Bound<&[u8]>) -> Result<()> {
        if let Bound::Included(k) | Bound::Excluded(k) = start {
            self.prepare_fork_levels(k)?;
        }
        Ok(())
    }

    /// Like [`scan_range`](Self::scan_range) for a listing of keys: entries read from
    /// sorted runs come without their values (a live entry's value is empty; whether
    /// it is live, its version and its timestamp are kept), so the listing copies no
    /// value out of the files.
    pub fn scan_range_keys(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        let mode = ScanMode {
            keys_only: true,
            ..ScanMode::default()
        };
        self.scan_in_mode(start, end, snapshot, limit, mode)
    }

    /// Calls `sink` with each live key in a range at `snapshot`, in key order, at most
    /// `limit` of them, and with the version and timestamp of the entry that makes it
    /// live — what [`scan_range_keys`](Self::scan_range_keys) returns, without building
    /// it: a short listing (up to 4,096 keys) allocates nothing per key (the key passed
    /// to `sink` lives for the call only).
    pub fn list_keys(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        sink: &mut dyn FnMut(&[u8], crate::mvcc::ListedKey),
    ) -> Result<()> {
        self.prepare_fork_levels_for(start)?;
        let (t, l) = (&self.inner.tree, &self.inner.lineage);
        crate::logical::list_keys(t, l, start, end, snapshot, limit, sink)
    }

    /// Like [`scan_range`](Self::scan_range) in reverse key order.
    pub fn scan_range_rev(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        let mode = ScanMode {
            reverse: true,
            ..ScanMode::default()
        };
        self.scan_in_mode(start, end, snapshot, limit, mode)
    }

    /// The entries of the keys in a range visible at `snapshot` that were written in
    /// that range itself — deletes included, nothing read through the lineage of a
    /// forked run — in key order. What a fork changed, as opposed to what it sees.
    pub fn scan_own_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        crate::logical::scan_own(&self.inner.tree, start, end, snapshot)
    }

    /// Versions of `key` visible at `snapshot`, newest first (see [`Tree::history`]).
    pub fn history(
        &self,
        key: &[u8],
        snapshot: u64,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>> {
        self.prepare_fork_levels(key)?;
        let (t, l) = (&self.inner.tree, &self.inner.lineage);
        crate::logical::history(t, l, key, snapshot, before, limit)
    }

    /// Number of keys with any version (tombstones included).
    pub fn key_count(&self) -> Result<usize> {
        self.inner.tree.key_count()
    }

    /// Number of sorted runs on disk.
    pub fn run_count(&self) -> usize {
        self.inner.tree.run_count()
    }

    /// Figures of the sorted runs on disk.
    pub fn run_stats(&self) -> RunStats {
        let l = self.inner.tree.layers();
        let mut s = RunStats {
            runs: l.runs.len() as u64,
            flushed_through: self.inner.snapshot_version.load(Ordering::Acquire),
            ..RunStats::default()
        };
        for r in l.runs.iter() {
            s.bytes += r.meta.bytes;
            s.entries += r.meta.entries;
            s.index_bytes += r.run.index_bytes();
        }
        s
    }

    /// Fails with the "closed" error once [`close`](Self::close) was called. Readers
    /// above the storage (transactions, primitives) call it before every operation.
    pub fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        Ok(())
    }

    /// `true` once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.is_read_only() {
            return Err(Error::ConstraintViolation(
                "the database was opened read-only; open it without read_only to write".into(),
            ));
        }
        self.check_not_poisoned()
    }

    /// `true` when opened with [`StorageOptions::read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner
            .disk
            .as_ref()
            .is_some_and(|d| d.options.read_only)
    }

    /// For a storage opened read-only: reads the files again and moves this view to
    /// the newest state the writer made durable (runs and log), so that readers
    /// starting now see it; readers already reading keep their view. Returns the new
    /// visible version. Does nothing (and returns the visible version) otherwise.
    pub fn refresh(&self) -> Result<u64> {
        self.check_open()?;
        let Some(d) = self.inner.disk.as_ref().filter(|d| d.options.read_only) else {
            return Ok(self.visible_version());
        };
        let _one_at_a_time = d.snapshot_lock.lock();
        let r = Storage::recover_read_only(&d.vfs, &d.dir, &d.options)?;
        if r.last_version < self.visible_version() {
            // The writer never goes back; a lower figure means a race we lost.
            return Ok(self.visible_version());
        }
        {
            let mut c = self.inner.commit.lock();
            // The whole state is replaced: any key may change (see `last_write_to`).
            self.inner.tag_writes.note_all(r.last_version);
            let active = r.map;
            active.set_keep_tombstones(!r.runs.is_empty());
            self.inner.tree.set_layers(Layers {
                active: Arc::new(active),
                frozen: None,
                runs: Arc::new(r.runs),
            });
            self.inner.lineage.replace(load_lineage(&self.inner.tree)?);
            self.inner.timeline.reset(
                r.manifest.timeline_len,
                r.manifest.flushed_through.max(r.report.snapshot_version) + 1,
                &r.replayed,
            );
            c.next_version = r.last_version + 1;
            c.last_ts = r.last_ts;
            self.inner.applied.store(r.last_version, Ordering::Release);
            self.inner.visible.store(r.last_version, Ordering::Release);
            self.inner
                .snapshot_version
                .store(r.manifest.flushed_through, Ordering::Release);
            *d.manifest.lock() = r.manifest;
        }
        Ok(r.last_version)
    }

    fn check_not_poisoned(&self) -> Result<()> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            let reason = self.inner.poison_reason.lock().clone().unwrap_or_default();
            return Err(Error::Storage(format!(
                "the database is poisoned after a failed write or sync and accepts no more \
                 writes; reopen it to recover: {reason}"
            )));
        }
        Ok(())
    }

    pub(crate) fn poison(&self, reason: String) {
        warn!(%reason, "storage poisoned");
        let mut r = self.inner.poison_reason.lock();
        if r.is_none() {
            *r = Some(reason);
        }
        self.inner.poisoned.store(true, Ordering::Release);
        drop(r);
        // Wake every committer waiting for an fsync: none will come now. Under the sync
        // lock, so that no waiter checks before the flag and sleeps after the wake-up.
        if let Some(d) = self.inner.disk.as_ref() {
            let _s = d.sync.lock();
            d.sync_cv.notify_all();
            d.syncer_cv.notify_all();
        }
    }

    /// `true` once a failed write or sync has poisoned the storage.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// Commits `writes` atomically as one new version.
    ///
    /// `validate` runs under the commit lock against the latest applied state, before a
    /// version is assigned; if it fails, nothing is written and its error is returned.
    /// On success the commit is visible to new readers, and durable as the mode promises,
    /// when this returns.
    pub fn commit<F>(&self, writes: Vec<Write>, validate: F) -> Result<CommitInfo>
    where
        F: FnOnce(&Tree) -> Result<()>,
    {
        self.check_writable()?;
        check_limits(&writes)?;
        let disk = self.inner.disk.as_ref();
        if let Some(d) = disk {
            self.wait_for_memtable_room(d);
        }
        let mode = disk.map(|d| d.options.durability);
        let _in_flight = disk
            .filter(|_| mode == Some(DurabilityMode::Strict))
            .map(|d| InFlight::enter(&d.committers));
        let size = encoded_len(&writes);
        if size > MAX_COMMIT_BYTES {
            return Err(Error::ConstraintViolation(format!(
                "a commit of {} writes encodes to {size} bytes, more than the limit of \
                 {MAX_COMMIT_BYTES} bytes per commit; split it into smaller transactions",
                writes.len(),
            )));
        }
        let mut payload = disk.map(|_| encode_payload(&writes));
        let mut snapshot_due = false;
        let info = {
            let mut c = self.inner.commit.lock();
            self.check_writable()?;
            validate(&self.inner.tree)?;
            let version = c.next_version;
            let timestamp = Timestamp::now().max(c.last_ts);
            if let (Some(d), Some(p)) = (disk, payload.as_mut()) {
                patch_header(p, version, timestamp);
                let Some(wal) = c.wal.as_mut() else {
                    return Err(Error::Internal("disk storage without a log writer".into()));
                };
                if wal.needs_roll(p.len()) {
                    // Only the newest segment may have an unsynced tail: a segment is
                    // fsynced before the next one is started, whatever the mode.
                    self.sync_log_file(d, &wal.current_file())?;
                    if let Err(e) = wal.start_segment(version, p.len()) {
                        if e.fatal {
                            self.poison(e.error.to_string());
                        }
                        return Err(e.error);
                    }
                }
                let durable = self.inner.durable.load(Ordering::Acquire);
                if let Err(e) = wal.append(version, durable, p) {
                    if e.fatal {
                        self.poison(e.error.to_string());
                    }
                    return Err(e.error);
                }
                snapshot_due = wal.bytes_since_snapshot >= d.options.snapshot_threshold;
            }
            c.next_version += 1;
            c.last_ts = timestamp;
            self.inner.timeline.note(version, timestamp);
            // Once the record is in the log (a failed append must not leave a fork or
            // a purge noted) and before the commit is visible (no reader may see a
            // child run without its lineage).
            self.inner.lineage.note(&writes);
            // Before the commit is visible (see `last_write_to`).
            self.inner.tag_writes.note(version, &writes);
            let held = self.inner.tree.with_active(|m| {
                m.apply_owned(version, timestamp, writes);
                m.resident_bytes()
            });
            if let Some(d) = disk {
                snapshot_due |= held >= d.options.memtable_size;
            }
            self.inner.applied.store(version, Ordering::Release);
            if let (Some(d), Some(wal)) = (disk, c.wal.as_ref()) {
                let mut s = d.sync.lock();
                s.written = version;
                d.written_hint.store(version, Ordering::Release);
                s.file = Some(wal.current_file());
                s.unsynced_commits += 1;
                if s.gathering && version >= s.gather_until {
                    d.gather_cv.notify_one();
                }
                if let Some(DurabilityMode::Buffered { max_writes, .. }) = mode {
                    if s.unsynced_commits >= max_writes {
                        unpark_flusher(d);
                    }
                }
            }
            if mode != Some(DurabilityMode::Strict) {
                self.inner.visible.store(version, Ordering::Release);
            }
            CommitInfo { version, timestamp }
        };
        if mode == Some(DurabilityMode::Strict) {
            self.sync_to(info.version, true)?;
        }
        if snapshot_due {
            self.start_background_snapshot();
        }
        Ok(info)
    }

    /// fsyncs a log file through the gate (see `Disk::sync_gate`). Refuses once the
    /// storage is poisoned; a failure poisons it before the gate is released.
    fn sync_log_file(&self, d: &Disk, file: &Arc<dyn VfsFile>) -> Result<()> {
        let _gate = d.sync_gate.lock();
        // Poison only, not `closed`: `close` syncs the commits that raced with it after
        // setting the flag.
        self.check_not_poisoned()?;
        file.sync().map_err(|e| {
            let err = Error::Storage(format!(
                "fsync of the log in {} failed: {e}",
                d.dir.display()
            ));
            self.poison(err.to_string());
            err
        })
    }

    /// Records that every version up to `version` is durable.
    fn mark_durable(&self, d: &Disk, s: &mut SyncState, version: u64) {
        let _ = d;
        s.synced = s.synced.max(version);
        self.inner.durable.fetch_max(version, Ordering::AcqRel);
    }

    /// Blocks until every commit up to `target` is fsynced (group commit).
    ///
    /// In `Strict` mode a dedicated syncer thread fsyncs back to back while records are
    /// pending, so committers only wait: none has to be woken to lead the next fsync. A
    /// lone committer (and `flush`) syncs for itself instead, which saves the two
    /// thread hand-offs per commit that would otherwise cost it throughput.
    fn sync_to(&self, target: u64, for_commit: bool) -> Result<()> {
        let Some(d) = self.inner.disk.as_ref() else {
            return Ok(());
        };
        let has_syncer = d.syncer.lock().is_some();
        let mut s = d.sync.lock();
        let mut spun = false;
        loop {
            // For a commit, durable first: one that another fsync covered succeeded, even
            // if the storage was poisoned or closed since. `flush` reports poisoning
            // whatever it would have had to sync. (Poison only, not `closed`: `close`
            // syncs the commits that raced with it after setting the flag.)
            if for_commit && s.synced >= target {
                return Ok(());
            }
            self.check_not_poisoned()?;
            if s.synced >= target {
                return Ok(());
            }
            let handed_over = has_syncer && d.committers.load(Ordering::Acquire) > 1 && !s.shutdown;
            if !s.syncing && !handed_over {
                self.sync_once(d, &mut s, true);
                continue;
            }
            if handed_over && !s.syncing {
                d.syncer_cv.notify_one();
            }
            // Spin first (once per call): the fsync that covers this record is under
            // way or about to start, and being woken from a sleep costs more than a
            // short fsync on a virtual machine (see `spin_until`).
            if !spun {
                spun = true;
                let budget = spin_budget(s.last_sync);
                let durable = &self.inner.durable;
                let poisoned = &self.inner.poisoned;
                let before = durable.load(Ordering::Acquire);
                parking_lot::MutexGuard::unlocked(&mut s, || {
                    spin_until(true, budget, || {
                        let now = durable.load(Ordering::Acquire);
                        // Without the syncer, the fsync under way may not cover this
                        // record; once it ends, this committer leads the next one.
                        now >= target
                            || (!handed_over && now != before)
                            || poisoned.load(Ordering::Acquire)
                    })
                });
                // Whatever the spin saw, look again under the lock before sleeping: the
                // state read before the spin is stale (the fsync under way may have
                // ended without covering this record, and nobody would wake a sleeper).
                continue;
            }
            if s.syncing {
                d.sync_cv.wait(&mut s);
            } else {
                // Bounded: whatever happens to the syncer, this committer looks again
                // (and leads itself if it has to) rather than sleep forever.
                d.sync_cv.wait_for(&mut s, Duration::from_millis(50));
            }
        }
    }

    /// One fsync covering every record written so far (called with `syncing` false; the
    /// lock is released during the fsync). With `gather`, strict committers in flight
    /// that have no unsynced record yet — typically the ones the previous fsync just
    /// released, about to commit again — get a short, bounded moment to write theirs, so
    /// that this fsync covers them too. Nothing waits when there is one committer.
    fn sync_once(&self, d: &Disk, s: &mut parking_lot::MutexGuard<'_, SyncState>, gather: bool) {
        s.syncing = true;
        let in_flight = d.committers.load(Ordering::Acquire);
        let expected = in_flight.saturating_sub(s.written.saturating_sub(s.synced));
        if gather && expected > 0 && !s.last_sync.is_zero() {
            let window = (s.last_sync / 4).min(Duration::from_micros(200));
            let deadline = Instant::now() + window;
            let want = s.written + expected;
            // Spin for them first: they are typically running right now, and a sleep
            // and a wake-up would cost as much as the window.
            let written = &d.written_hint;
            parking_lot::MutexGuard::unlocked(s, || {
                spin_until(false, window, || written.load(Ordering::Acquire) >= want)
            });
            s.gathering = true;
            s.gather_until = want;
            while s.written < want && !d.gather_cv.wait_until(s, deadline).timed_out() {}
            s.gathering = false;
        }
        let upto = s.written;
        let counted = s.unsynced_commits;
        let file = s.file.clone();
        let started = Instant::now();
        let res = parking_lot::MutexGuard::unlocked(s, || {
            file.map_or(Ok(()), |f| self.sync_log_file(d, &f))
        });
        s.syncing = false;
        s.last_sync = started.elapsed();
        if res.is_ok() {
            self.mark_durable(d, s, upto);
            s.unsynced_commits = s.unsynced_commits.saturating_sub(counted);
            self.inner.visible.fetch_max(upto, Ordering::AcqRel);
        }
        d.sync_cv.notify_all();
        if s.written > upto {
            // Records written during this fsync (led by a lone committer, `flush` or the
            // syncer itself) are the syncer's to cover next, without waiting for their
            // committers to wake it.
            d.syncer_cv.notify_one();
        }
    }

    /// The strict-mode syncer: fsyncs as long as written records are not yet durable,
    /// then sleeps until a committer wakes it. Stops at shutdown or when poisoned. Each
    /// fsync first gathers the records of committers in flight (see `sync_once`): on a
    /// steady 200 µs disk, 4 threads get 3.95 commits per fsync with it and 2.00
    /// without (`cargo bench -p strata-storage --bench storage`, summary).
    fn syncer_loop(&self) {
        let Some(d) = self.inner.disk.as_ref() else {
            return;
        };
        let mut s = d.sync.lock();
        let mut spun = false;
        loop {
            if s.shutdown || self.is_poisoned() {
                return;
            }
            if s.written > s.synced && !s.syncing {
                self.sync_once(d, &mut s, true);
                spun = false;
                continue;
            }
            // After an fsync the committers it released are about to write again:
            // look for their records a short while before sleeping, so that they need
            // not wake this thread (see `spin_until`).
            if !spun && !s.syncing {
                spun = true;
                let budget = spin_budget(s.last_sync);
                let synced = s.synced;
                let written = &d.written_hint;
                parking_lot::MutexGuard::unlocked(&mut s, || {
                    spin_until(false, budget, || written.load(Ordering::Acquire) > synced)
                });
                continue;
            }
            d.syncer_cv.wait(&mut s);
        }
    }

    /// Forces every commit so far to disk (fsync), whatever the durability mode.
    pub fn flush(&self) -> Result<()> {
        let Some(d) = self.inner.disk.as_ref() else {
            return Ok(());
        };
        let target = d.sync.lock().written;
        self.sync_to(target, false)
    }

    /// The write stall: a commit waits while the memtable holds twice its size and a
    /// flush is under way, until that flush has frozen it.
    ///
    /// The thread that flushes also merges runs, and a merge of large runs takes seconds;
    /// without the stall, commits kept filling the memtable for all that time (a
    /// 10,000,000-key load left 2 GB resident and a 5.5 s `close`, which had to flush it).
    /// Stalling writers while background work catches up is what every LSM engine does;
    /// it bounds the memtable to twice `memtable_size` (plus the frozen one being
    /// written) at the cost of write speed during long merges. The flush thread itself
    /// never waits (it is what frees the room), nor does a commit during `close`.
    fn wait_for_memtable_room(&self, d: &Disk) {
        let limit = d.options.memtable_size.saturating_mul(2);
        let full = || self.inner.tree.with_active(|m| m.resident_bytes()) >= limit;
        if !full() || IN_FLUSH_THREAD.with(|f| f.get()) {
            return;
        }
        self.start_background_snapshot();
        let started = Instant::now();
        let mut g = d.room.lock();
        while full()
            && d.snapshot_running.load(Ordering::Acquire)
            && !self.inner.closing.load(Ordering::Acquire)
            && !self.is_closed()
            && !self.is_poisoned()
        {
            if started.elapsed() >= MAX_STALL {
                warn!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "the memtable is still full after the longest write stall; committing anyway"
                );
                break;
            }
            // Bounded, so that a missed wake-up costs a millisecond, never a hang.
            d.room_cv.wait_for(&mut g, Duration::from_millis(1));
        }
        drop(g);
        let waited = started.elapsed();
        if waited >= Duration::from_millis(100) {
            debug!(
                waited_ms = waited.as_millis() as u64,
                "commit stalled until the memtable was flushed"
            );
        }
    }

    fn start_background_snapshot(&self) {
        let Some(d) = self.inner.disk.as_ref() else {
            return;
        };
        if d.snapshot_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Storage::internal(self.inner.clone());
        let spawned = std::thread::Builder::new()
            .name("strata-snapshot".into())
            .spawn(move || loop {
                IN_FLUSH_THREAD.with(|f| f.set(true));
                let flushed = match this.checkpoint() {
                    Err(e) => {
                        warn!(error = %e, "background flush failed; the log is kept");
                        false
                    }
                    Ok(()) => {
                        loop {
                            match this.compact(false) {
                                Ok(true) => continue,
                                Ok(false) => break,
                                Err(e) => {
                                    warn!(error = %e, "background compaction failed; the runs are kept");
                                    break;
                                }
                            }
                        }
                        true
                    }
                };
                let Some(d) = this.inner.disk.as_ref() else {
                    return;
                };
                // A commit that filled the memtable while this thread ran started no
                // flush (one was running): look once more, after clearing the flag (a
                // swap, so that a commit which found it still set has its writes seen
                // here), or the memtable would stay over its size until the next commit.
                d.snapshot_running.swap(false, Ordering::AcqRel);
                let full = this.inner.tree.with_active(|m| m.resident_bytes())
                    >= d.options.memtable_size;
                if !flushed
                    || !full
                    || this.is_closed()
                    || d.snapshot_running.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            });
        match spawned {
            Ok(h) => {
                // The previous snapshot thread is finished or just returning: reap it.
                let previous = d.snapshot_thread.lock().replace(h);
                if let Some(p) = previous {
                    let _ = p.join();
                }
            }
            Err(_) => d.snapshot_running.store(false, Ordering::Release),
        }
    }

    /// Flushes the memtable: every commit so far is written to a new sorted run (only
    /// what changed since the last flush), the manifest is replaced to list it, and the
    /// log segments it covers are deleted. Writers are blocked only while the log rolls
    /// to a new segment and the memtable is swapped for an empty one. Does nothing for
    /// an ephemeral storage or when every commit is already in a run; returns an error
    /// (and changes nothing the next open relies on) when the run or the manifest could
    /// not be written, so `Ok` always means every commit so far is in a durable run.
    ///
    /// Steps, each crash-safe (see `docs/durability.md`):
    /// 1. retention is applied to the memtable (the collection hook);
    /// 2. under the commit lock: the log is fsynced and rolled, the memtable frozen and
    ///    an empty one takes its place (readers see both until step 5);
    /// 3. the frozen memtable is written as `run-<id>.sst.tmp`, fsynced, read back,
    ///    verified and renamed into place;
    /// 4. the manifest listing it is written and renamed into place (the commit point);
    /// 5. the run replaces the frozen memtable for readers;
    /// 6. covered log segments, superseded snapshots and unlisted runs are deleted.
    pub fn checkpoint(&self) -> Result<()> {
        let Some(d) = self.inner.disk.as_ref() else {
            return Ok(());
        };
        if d.options.read_only {
            return Ok(());
        }
        let _one_at_a_time = d.snapshot_lock.lock();
        // A closed storage writes no file: its directory may belong to another instance.
        self.check_open()?;
        let span = info_span!("flush", dir = %d.dir.display());
        let _entered = span.enter();
        // However the checkpoint ends, the memory freed by then goes back to the OS
        // instead of staying resident in the allocator: the frozen memtable's versions
        // (unless a reader still holds it), and what the layers above freed before
        // calling it (a vector index's copy of its vectors, now read from its file).
        let _release = crate::mapped::ReleaseFreeHeap;
        let started = Instant::now();
        // A frozen memtable left by a failed flush goes first.
        self.write_frozen(d)?;
        // Apply retention first, so that the run never persists what it hides.
        self.run_gc_hook();
        let (version, new_base) = {
            let mut c = self.inner.commit.lock();
            self.check_writable()?;
            let next = c.next_version;
            let version = next - 1;
            if self.inner.snapshot_version.load(Ordering::Acquire) == version {
                return Ok(());
            }
            let Some(wal) = c.wal.as_mut() else {
                return Ok(());
            };
            if wal.base() != next {
                // Roll, so the run covers whole segments; the old one is fsynced
                // first, so every version up to `version` is durable.
                self.sync_log_file(d, &wal.current_file())?;
                if let Err(e) = wal.start_segment(next, 0) {
                    if e.fatal {
                        self.poison(e.error.to_string());
                    }
                    return Err(e.error);
                }
            }
            wal.bytes_since_snapshot = 0;
            let file = wal.current_file();
            let mut s = d.sync.lock();
            self.mark_durable(d, &mut s, version);
            s.file = Some(file);
            self.inner.visible.fetch_max(version, Ordering::AcqRel);
            d.sync_cv.notify_all();
            drop(s);
            // Freeze: from here on commits go to a new, empty memtable.
            let l = self.inner.tree.layers();
            self.inner.tree.set_layers(Layers {
                active: Arc::new(l.active.successor()),
                frozen: Some(l.active.clone()),
                runs: l.runs.clone(),
            });
            *d.frozen_through.lock() = Some((version, c.last_ts));
            // Room in the new memtable: stalled committers go on.
            d.room_cv.notify_all();
            (version, next)
        };
        let written = self.write_frozen(d)?;
        let removed = self.remove_obsolete_files(d, new_base)?;
        info!(
            version,
            bytes = written,
            files_removed = removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "memtable flushed"
        );
        Ok(())
    }

    /// Writes the frozen memtable (if any) as a run, lists it in the manifest and puts
    /// it in the frozen memtable's place. Returns the bytes written.
    fn write_frozen(&self, d: &Disk) -> Result<u64> {
        self.check_open()?;
        let l = self.inner.tree.layers();
        let Some(frozen) = l.frozen.clone() else {
            return Ok(0);
        };
        let Some((version, last_ts)) = *d.frozen_through.lock() else {
            return Err(Error::Internal(
                "a frozen memtable without its version".into(),
            ));
        };
        let mut manifest = d.manifest.lock().clone();
        let id = d.next_run_id.fetch_add(1, Ordering::AcqRel);
        let mut after: Option<Box<[u8]>> = None;
        let mut next = || -> Result<Option<Vec<KeyChain>>> {
            let chunk = frozen.chunk_after(after.as_deref(), version, 4096);
            Ok(chunk.last().map(|(last, _)| last.clone()).map(|last| {
                after = Some(last);
                chunk
            }))
        };
        let min_version = manifest.flushed_through + 1;
        let mut new_runs: Vec<RunHandle> = Vec::new();
        let mut size = 0;
        let keys = frozen.key_count() as u64;
        if keys > 0 {
            let w = write_sorted_file(
                &d.vfs,
                &d.dir,
                &run_name(id),
                version,
                RUN_BLOCK_TARGET,
                Some(keys),
                &mut next,
            )?;
            size = w.size;
            let run = Arc::new(Run::open(&d.vfs, &w.path, id)?);
            let meta = RunMeta {
                id,
                // Restores go only to an empty database: every memtable version is
                // newer than the runs'.
                min_version,
                max_version: version,
                entries: w.entries,
                bytes: w.size,
            };
            new_runs.push(RunHandle { run, meta });
        }
        manifest.next_run_id = d.next_run_id.load(Ordering::Acquire);
        let mut metas: Vec<RunMeta> = new_runs.iter().map(|r| r.meta).collect();
        metas.extend(l.runs.iter().map(|r| r.meta));
        // Older runs must end before the new one starts (restores only go to an empty
        // database, so this holds; checked anyway, since the manifest requires it).
        manifest.runs = metas;
        manifest.flushed_through = version;
        manifest.last_timestamp = manifest.last_timestamp.max(last_ts);
        // Durable before the manifest that lets the log records go (see `timeline`).
        manifest.timeline_len = self.inner.timeline.persist_through(&d.vfs, version)?;
        self.write_manifest(d, &manifest)?;
        *d.manifest.lock() = manifest;
        self.inner
            .snapshot_version
            .fetch_max(version, Ordering::AcqRel);
        new_runs.extend(l.runs.iter().cloned());
        let now = self.inner.tree.layers();
        self.inner.tree.set_layers(Layers {
            active: now.active.clone(),
            frozen: None,
            runs: Arc::new(new_runs),
        });
        *d.frozen_through.lock() = None;
        Ok(size)
    }

    /// Writes `manifest`. A failure after the rename was attempted leaves unknown which
    /// manifest is on disk: the storage is poisoned (no flush or compaction may then
    /// carry on from the old one; reopening reads whichever is there, and both are
    /// complete since nothing is deleted before a manifest is known durable).
    fn write_manifest(&self, d: &Disk, manifest: &Manifest) -> Result<()> {
        match manifest.write(&d.vfs, &d.dir) {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.maybe_applied {
                    self.poison(format!(
                        "the manifest may or may not have been replaced: {}",
                        e.error
                    ));
                }
                Err(e.error)
            }
        }
    }

    /// Deletes what the manifest made obsolete: log segments before `new_base`, legacy
    /// snapshots, runs it does not list. Returns how many files went.
    fn remove_obsolete_files(&self, d: &Disk, new_base: u64) -> Result<usize> {
        let listed: std::collections::HashSet<u64> =
            d.manifest.lock().runs.iter().map(|r| r.id).collect();
        let mut removed = 0;
        for name in d.vfs.list(&d.dir).map_err(|e| io_err(&d.dir, e))? {
            let obsolete = parse_segment_name(&name).is_some_and(|b| b < new_base)
                || parse_snapshot_name(&name).is_some()
                || parse_run_name(&name).is_some_and(|id| !listed.contains(&id));
            if obsolete {
                let p = join(&d.dir, &name);
                d.vfs.remove(&p).map_err(|e| io_err(&p, e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            d.vfs.sync_dir(&d.dir).map_err(|e| io_err(&d.dir, e))?;
        }
        Ok(removed)
    }

    /// Merges sorted runs into one (see [`compaction`](crate::compaction)): with
    /// `all`, every run; otherwise only when the newest runs have grown comparable in
    /// size to their older neighbour. Drops the versions retention no longer keeps and
    /// no open snapshot can read (see [`set_retention_hook`](Self::set_retention_hook));
    /// keeps everything else, deletes included. Returns whether it merged anything.
    pub fn compact(&self, all: bool) -> Result<bool> {
        let Some(d) = self.inner.disk.as_ref() else {
            return Ok(false);
        };
        if d.options.read_only {
            return Ok(false);
        }
        let _one_at_a_time = d.snapshot_lock.lock();
        self.check_writable()?;
        let l = self.inner.tree.layers();
        let n = if all {
            l.runs.len()
        } else {
            crate::compaction::pick(&l.runs.iter().map(|r| r.meta).collect::<Vec<_>>())
        };
        // A full compaction also rewrites a lone run that may still hold what purged
        // runs no longer keep, so that afterwards no file holds it.
        let lone_purge = all && n == 1 && self.inner.lineage.any_purged();
        if n < 2 && !lone_purge {
            return Ok(false);
        }
        let span = info_span!("compaction", dir = %d.dir.display(), runs = n);
        let _entered = span.enter();
        let started = Instant::now();
        let chosen: Vec<RunHandle> = l.runs[..n].to_vec();
        let mut manifest = d.manifest.lock().clone();
        let id = d.next_run_id.fetch_add(1, Ordering::AcqRel);
        let source = Layers {
            active: Arc::new(MvccMap::new()),
            frozen: None,
            runs: Arc::new(chosen.clone()),
        };
        let max_version = chosen[0].meta.max_version;
        let min_version = chosen[n - 1].meta.min_version;
        let mut merge = Merge::new(&source, Bound::Unbounded, Bound::Unbounded, false, u64::MAX);
        // Retention decides what goes: the versions no reader retains (the readers
        // first: a policy read later can only be newer). Everything else is kept,
        // deletes included: a delete is part of its key's history.
        let (pins, horizon) = self.pins_and_visible();
        // What forks read of their parents stays (see `Lineage::floors`).
        let floors = self.inner.lineage.floors();
        // Purged runs keep only what a pinned reader sees.
        let purged: std::collections::HashSet<strata_core::RunId> =
            self.inner.lineage.purged().into_iter().collect();
        let hook = self.inner.retention_hook.read().clone();
        let retention = hook.and_then(|h| h(self));
        let mut dropped = 0u64;
        let closing = &self.inner.closing;
        let mut next = || -> Result<Option<Vec<KeyChain>>> {
            if closing.load(Ordering::Acquire) {
                // The merged runs stay listed; the unfinished file is removed.
                return Err(Error::Storage(
                    "compaction interrupted: the database is closing".into(),
                ));
            }
            let mut chunk = Vec::new();
            while chunk.len() < 1024 {
                let Some((key, mut chain)) = merge.next()? else {
                    break;
                };
                let run = crate::lineage::run_of(&key);
                let floor = run.and_then(|r| floors.get(&r).copied());
                if run.is_some_and(|r| purged.contains(&r)) {
                    dropped += crate::mvcc::purge_entries(&mut chain, &pins, floor);
                    if chain.is_empty() {
                        continue;
                    }
                } else if let Some(r) = &retention {
                    let policy = (r.policy_of)(&key);
                    dropped += gc_entries(&mut chain, &policy, &pins, horizon, r.now, floor);
                }
                chunk.push((key, chain));
            }
            Ok((!chunk.is_empty()).then_some(chunk))
        };
        // The merged run holds at most as many keys as the inputs hold entries.
        let keys = chosen.iter().map(|r| r.meta.entries).sum();
        let w = write_sorted_file(
            &d.vfs,
            &d.dir,
            &run_name(id),
            max_version,
            RUN_BLOCK_TARGET,
            Some(keys),
            &mut next,
        )?;
        let run = Arc::new(Run::open(&d.vfs, &w.path, id)?);
        let meta = RunMeta {
            id,
            min_version,
            max_version,
            entries: w.entries,
            bytes: w.size,
        };
        manifest.next_run_id = d.next_run_id.load(Ordering::Acquire);
        let mut runs = vec![RunHandle { run, meta }];
        runs.extend(l.runs[n..].iter().cloned());
        manifest.runs = runs.iter().map(|r| r.meta).collect();
        self.write_manifest(d, &manifest)?;
        *d.manifest.lock() = manifest;
        let now = self.inner.tree.layers();
        self.inner.tree.set_layers(Layers {
            active: now.active.clone(),
            frozen: now.frozen.clone(),
            runs: Arc::new(runs),
        });
        let read: u64 = chosen.iter().map(|r| r.meta.bytes).sum();
        let removed = self.remove_obsolete_files(d, 0)?;
        info!(
            runs_merged = n,
            bytes_read = read,
            bytes_written = w.size,
            versions_dropped = dropped,
            files_removed = removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "runs compacted"
        );
        // The merge's chunks of chains were many small allocations, freed by now.
        crate::mapped::ReleaseFreeHeap.release();
        Ok(true)
    }

    /// Garbage-collects the memtable's keys in `[start, end)` under `policy` for the
    /// readers at `pins` and at `horizon` or later (see [`MvccMap::gc_range_pinned`]).
    /// Versions already in sorted runs are not touched (the read path hides what
    /// retention does not keep).
    pub fn gc_range_pinned(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        pins: &[u64],
        horizon: u64,
        now: Timestamp,
    ) -> crate::mvcc::GcStats {
        // What forks read of this range counts as pinned, and a delete in a fork stays
        // (see `crate::lineage`). A range that is not one run's is judged as if every
        // fork pinned it.
        let lineage = &self.inner.lineage;
        let mut floor = None;
        let mut keep = false;
        if lineage.any() {
            match crate::logical::single_run(start, end) {
                Some(run) => {
                    floor = lineage.floor_of(&run);
                    keep = lineage.parent_of(&run).is_some();
                }
                None => {
                    floor = lineage.floors().values().copied().max();
                    keep = true;
                }
            }
        }
        self.inner.tree.with_active(|m| {
            let keep = keep || m.keeps_tombstones();
            m.gc_range_pinned_keeping(start, end, policy, pins, horizon, now, keep, floor)
        })
    }

    /// Removes from the memtable what purged runs still hold and no reader needs: of
    /// each key of a purged run, only the entries seen by an open snapshot or by a
    /// fork of it are kept (see [`crate::lineage`]). Versions already in sorted runs go
    /// when compaction merges them ([`compact`](Self::compact) with `all` reaches
    /// every run).
    pub fn collect_purged(&self) -> crate::mvcc::GcStats {
        let mut total = crate::mvcc::GcStats::default();
        let lineage = &self.inner.lineage;
        if !lineage.any_purged() {
            return total;
        }
        let (pins, _) = self.pins_and_visible();
        let floors = lineage.floors();
        for run in lineage.purged() {
            let floor = floors.get(&run).copied();
            let prefix = crate::key::run_prefix(&run);
            let end = crate::key::prefix_successor(&prefix);
            let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let stats = self
                .inner
                .tree
                .with_active(|m| m.purge_range(Bound::Included(&prefix), end, &pins, floor));
            if stats.entries_dropped > 0 {
                debug!(run = %run, versions_dropped = stats.entries_dropped, "purged run collected");
            }
            total.add(stats);
        }
        total
    }

    /// `true` if `run` was purged (see [`crate::lineage`]).
    pub fn is_purged(&self, run: &strata_core::RunId) -> bool {
        self.inner.lineage.is_purged(run)
    }

    /// Garbage-collects the keys starting with `prefix` under `policy`, never dropping a
    /// version an open snapshot can read. `now` is injectable for tests. Returns the
    /// number of versions dropped. Collection is in the memtable only; the next flush
    /// makes it permanent (versions already in runs are hidden by the read path).
    pub fn gc_prefix(&self, prefix: &[u8], policy: &RetentionPolicy, now: Timestamp) -> usize {
        let oldest = self.oldest_pinned();
        let end = crate::key::prefix_successor(prefix);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let dropped = self
            .inner
            .tree
            .with_active(|m| m.gc_range(Bound::Included(prefix), end, policy, oldest, now));
        if dropped > 0 {
            debug!(dropped, ?policy, "garbage-collected versions");
        }
        dropped
    }

    /// Syncs, snapshots (if configured), stops background work and releases the
    /// directory lock, even while other handles (clones, transactions, pins) are alive.
    /// Every later commit, checkpoint or (through [`check_open`](Self::check_open)) read
    /// fails with a [`Error::ConstraintViolation`] saying the database is closed; that
    /// error is not [`is_serious`](Error::is_serious): nothing is wrong with the data.
    /// The storage is closed even when the sync or the snapshot fails (that error is
    /// returned; every commit synced before stays in the log and is recovered on open).
    /// Closing again does nothing.
    pub fn close(&self) -> Result<()> {
        let Some(d) = self.inner.disk.as_ref() else {
            self.inner.closed.store(true, Ordering::Release);
            return Ok(());
        };
        if self.is_closed() {
            return Ok(());
        }
        self.inner.closing.store(true, Ordering::Release);
        let mut result = self.flush();
        if result.is_ok() && d.options.snapshot_on_close {
            result = self.checkpoint();
        }
        {
            // Under the commit lock, so that no commit is half-way through the log.
            let _c = self.inner.commit.lock();
            self.inner.closed.store(true, Ordering::Release);
        }
        // Commits that slipped in after the snapshot are in the log: sync them.
        if result.is_ok() {
            result = self.flush();
        }
        if result.is_ok() {
            // Free the newest segment's unused preallocation: a closed database takes
            // only the space its records need. No commit can append any more.
            let mut c = self.inner.commit.lock();
            if let Some(wal) = c.wal.as_mut() {
                result = wal.seal();
            }
        }
        self.stop_flusher();
        let snapshot = d.snapshot_thread.lock().take();
        if let Some(h) = snapshot {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        self.inner.final_sync();
        d.lock.lock().take();
        result
    }

    fn stop_flusher(&self) {
        if let Some(d) = self.inner.disk.as_ref() {
            d.sync.lock().shutdown = true;
            d.sync_cv.notify_all();
            d.syncer_cv.notify_all();
            unpark_flusher(d);
            // Take the handles first: a mutex guard living through the joins would
            // block a flusher that is just entering `sync_to`, and the join with it.
            let flusher = d.flusher.lock().take();
            let syncer = d.syncer.lock().take();
            for handle in [flusher, syncer].into_iter().flatten() {
                if handle.thread().id() != std::thread::current().id() {
                    let _ = handle.join();
                }
            }
        }
    }
}

/// The longest a commit waits for room in the memtable (see
/// `Storage::wait_for_memtable_room`): a safety net against a flush thread that cannot
/// make progress. A merge longer than this (the merges measured, up to 10,000,000 keys,
/// took seconds) lets the memtable grow again, with a warning, rather than block writes.
const MAX_STALL: Duration = Duration::from_secs(60);

thread_local! {
    /// Set on the background flush thread: the write stall never makes it wait for
    /// itself (see `wait_for_memtable_room`).
    static IN_FLUSH_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The lineage of the fork records `tree` holds.
pub(crate) fn load_lineage(tree: &Tree) -> Result<Lineage> {
    let records = tree.scan_prefix(&crate::lineage::fork_prefix(), u64::MAX, None)?;
    Ok(Lineage::from_records(records.iter().filter_map(
        |(k, e)| e.value.as_deref().map(|v| (&k[..], v)),
    )))
}

/// The error of every operation on a closed database: a
/// [`Error::ConstraintViolation`] (the caller used a handle after `close`), not a
/// serious error.
pub fn closed_error() -> Error {
    Error::ConstraintViolation(
        "the database is closed; open it again to use it (handles cloned before close \
         stay closed)"
            .into(),
    )
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.final_sync();
    }
}

impl Inner {
    /// Stops background work and, best effort, syncs what was written (see `Drop`).
    fn final_sync(&self) {
        if let Some(d) = &self.disk {
            let mut s = d.sync.lock();
            s.shutdown = true;
            // Best effort: a dropped (not closed) database still syncs what it wrote,
            // unless it was opened without durability. The sync lock is released first:
            // the gate is always taken before it, never after.
            let poisoned = self.poisoned.load(Ordering::Acquire);
            let pending = (d.options.durability != DurabilityMode::NoDurability
                && s.written > s.synced
                && !poisoned)
                .then(|| s.file.clone().map(|f| (f, s.written)))
                .flatten();
            d.sync_cv.notify_all();
            drop(s);
            if let Some((f, written)) = pending {
                let _gate = d.sync_gate.lock();
                match f.sync() {
                    Ok(()) => {
                        let mut s = d.sync.lock();
                        s.synced = s.synced.max(written);
                    }
                    Err(e) => warn!(error = %e, "final sync on drop failed"),
                }
            }
            unpark_flusher(d);
        }
    }
}

fn flusher_loop(weak: Weak<Inner>, interval: Duration) {
    loop {
        // Sleep holding only the weak reference: a strong one would keep the storage
        // alive after its last handle is dropped. A full batch, `stop_flusher` and the
        // storage's drop unpark the thread early.
        std::thread::park_timeout(interval);
        let Some(inner) = weak.upgrade() else { return };
        let storage = Storage::internal(inner);
        let Some(d) = storage.inner.disk.as_ref() else {
            return;
        };
        let target = {
            let s = d.sync.lock();
            if s.shutdown {
                return;
            }
            if s.written <= s.synced || s.syncing {
                continue;
            }
            s.written
        };
        if storage.sync_to(target, false).is_err() {
            return;
        }
    }
}

/// How long a strict committer (or the syncer) spins for an fsync (or records) before
/// sleeping: twice the last fsync, within 50 µs ..= 1 ms; not at all when the last
/// fsync took longer than that cap, as no spin could then outlast the wait.
fn spin_budget(last_sync: Duration) -> Duration {
    let cap = Duration::from_millis(1);
    if last_sync > cap {
        return Duration::ZERO;
    }
    (last_sync * 2).clamp(Duration::from_micros(50), cap)
}

/// Committers of every storage in the process spinning in [`spin_until`] now.
static SPINNING_COMMITTERS: AtomicU64 = AtomicU64::new(0);

/// At most this many committers spin at once in the whole process (see
/// [`spin_until`]): twice the cores it may use, read once. Measured on 2 cores with 4
/// strict threads, six interleaved rounds (`examples/strict_threads.rs`): the lone
/// committer's rate ×2.22 with no committer spinning, ×2.35 with at most 2, ×2.76 with
/// at most 4 (all of them).
fn max_spinners() -> u64 {
    static CORES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| 2 * std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
}

/// Waits up to `budget` for `done()` by spinning, then yielding the core between looks;
/// `true` if `done()` held. A `committer` gives up at once (returns `false`) when
/// [`max_spinners`] committers already spin: too many spinners would only take the
/// cores that the threads being waited for need. The syncer and a leader gathering
/// records before its fsync are not counted: everybody waits for them.
///
/// Why spin at all: group commit hands work between threads twice per fsync (a
/// committer's record to the syncer, the fsync's completion back to the committers).
/// Sleeping on a condition variable makes each hand-off a wake-up, and on a virtual
/// machine waking a thread on an idle (halted) virtual core costs about 45 µs (a
/// condvar round trip measured 88–91 µs on the 2-core development VM, a spinning one
/// 3–14 µs), as much as a short fsync. Waiting spinners keep their core awake. The
/// budget is bounded, so a slow disk costs sleeps again, not unbounded CPU; RocksDB's
/// write thread waits the same way (spin, then yield, then block).
fn spin_until(committer: bool, budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    /// Gives the committer's place back however the wait ends.
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            SPINNING_COMMITTERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if done() {
        return true;
    }
    let _counted = if committer {
        if SPINNING_COMMITTERS.fetch_add(1, Ordering::AcqRel) >= max_spinners() {
            SPINNING_COMMITTERS.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        Some(Counted)
    } else {
        None
    };
    for _ in 0..64 {
        std::hint::spin_loop();
        if done() {
            return true;
        }
    }
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline {
        std::thread::yield_now();
        if done() {
            return true;
        }
    }
    false
}

/// Counts a Strict commit in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn unpark_flusher(d: &Disk) {
    if let Some(h) = d.flusher.lock().as_ref() {
        h.thread().unpark();
    }
}

/// What [`Storage::restore_into_run`] did with the chains it was given.
pub(crate) enum RunRestore {
    /// Every chain is in the new run and the storage stands at the restored version.
    Done(crate::restore::RestoreReport),
    /// A key came out of order: the chains before it were read back into the memtable
    /// and the run file removed. The rest goes the memtable way too, starting with
    /// `next`; `times` and `last_ts` cover what was loaded so far.
    OutOfOrder {
        report: crate::restore::RestoreReport,
        next: KeyChain,
        times: Vec<(u64, Timestamp)>,
        last_ts: Timestamp,
    },
}

impl Storage {
    /// `true` if restores go straight into a sorted run (a writable storage on disk).
    pub(crate) fn streams_restores(&self) -> bool {
        self.inner
            .disk
            .as_ref()
            .is_some_and(|d| !d.options.read_only)
    }

    /// The streaming half of an exact restore into an empty storage on disk: chains in
    /// ascending key order (as an export writes them) go straight into one sorted run,
    /// a chunk at a time, with no memtable in between, so memory stays flat whatever
    /// the size of the dump. The run is listed by a manifest at `version` (with the
    /// timeline of the restored commits), the log rolls to `version + 1`, and readers
    /// switch to the run — the same end state, file for file, as a flush of the
    /// restored memtable.
    ///
    /// A key out of order cannot be written to a sorted file: what was written is then
    /// read back into the memtable ([`RunRestore::OutOfOrder`]) and the caller loads the
    /// rest as before. Errors leave the storage empty (the caller poisons it).
    pub(crate) fn restore_into_run<I>(
        &self,
        version: u64,
        chains: &mut I,
        check: impl Fn(&[u8], &[Entry]) -> Result<()>,
    ) -> Result<RunRestore>
    where
        I: Iterator<Item = Result<KeyChain>>,
    {
        let Some(d) = self.inner.disk.as_ref() else {
            return Err(Error::Internal(
                "a run restore needs a storage on disk".into(),
            ));
        };
        let _one_at_a_time = d.snapshot_lock.lock();
        self.check_writable()?;
        let span = info_span!("restore", dir = %d.dir.display(), version);
        let _entered = span.enter();
        let started = Instant::now();
        let mut report = crate::restore::RestoreReport {
            version,
            ..Default::default()
        };
        // Every restored commit's time, for the timeline (16 bytes per entry).
        let mut times: Vec<(u64, Timestamp)> = Vec::new();
        let mut last_ts = Timestamp(0);
        let mut min_version = u64::MAX;
        let mut prev: Option<Box<[u8]>> = None;
        let mut out_of_order: Option<KeyChain> = None;
        let mut next = || -> Result<Option<Vec<KeyChain>>> {
            if out_of_order.is_some() {
                return Ok(None);
            }
            let mut chunk = Vec::new();
            for item in chains.by_ref() {
                let (key, chain) = item?;
                check(&key, &chain)?;
                match prev.as_deref().map(|p| p.cmp(&key[..])) {
                    Some(std::cmp::Ordering::Equal) => {
                        return Err(Error::ConstraintViolation(format!(
                            "key {key:02x?} appears twice"
                        )));
                    }
                    Some(std::cmp::Ordering::Greater) => {
                        out_of_order = Some((key, chain));
                        break;
                    }
                    _ => {}
                }
                for e in &chain {
                    last_ts = last_ts.max(e.timestamp);
                    min_version = min_version.min(e.version);
                    times.push((e.version, e.timestamp));
                }
                report.keys += 1;
                report.entries += chain.len() as u64;
                prev = Some(key.clone());
                chunk.push((key, chain));
                if chunk.len() == 4096 {
                    break;
                }
            }
            Ok((!chunk.is_empty()).then_some(chunk))
        };
        let id = d.next_run_id.fetch_add(1, Ordering::AcqRel);
        let name = run_name(id);
        // The number of keys is not known ahead: the restored run has no key filter
        // (the first compaction that merges it writes one).
        let w = write_sorted_file(
            &d.vfs,
            &d.dir,
            &name,
            version,
            RUN_BLOCK_TARGET,
            None,
            &mut next,
        )?;
        let run = Arc::new(Run::open(&d.vfs, &w.path, id)?);
        if let Some(first_out) = out_of_order {
            // Read the sorted prefix back into the memtable; the file goes.
            let mut cursor = crate::run::RunCursor::new(
                run,
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            );
            while let Some((key, chain)) = cursor.next_chain()? {
                self.inner.tree.with_active(|m| m.insert_chain(key, chain));
            }
            d.vfs.remove(&w.path).map_err(|e| io_err(&w.path, e))?;
            return Ok(RunRestore::OutOfOrder {
                report,
                next: first_out,
                times,
                last_ts,
            });
        }
        let mut c = self.inner.commit.lock();
        // The commit lock was not held while the run was written, so a commit may have
        // landed meanwhile: going on would drop it (the memtable is replaced, the log
        // rolls past it) and note its version twice in the timeline. Refuse instead.
        if c.next_version != 1 {
            drop(c);
            d.vfs.remove(&w.path).map_err(|e| io_err(&w.path, e))?;
            return Err(Error::ConstraintViolation(
                "an exact restore needs an empty database, but a commit landed during it".into(),
            ));
        }
        self.note_restored_times(times, version);
        let mut manifest = d.manifest.lock().clone();
        let mut runs = Vec::new();
        if w.entries > 0 {
            runs.push(RunHandle {
                run,
                meta: RunMeta {
                    id,
                    min_version: min_version.min(version),
                    max_version: version,
                    entries: w.entries,
                    bytes: w.size,
                },
            });
        } else {
            d.vfs.remove(&w.path).map_err(|e| io_err(&w.path, e))?;
        }
        manifest.next_run_id = d.next_run_id.load(Ordering::Acquire);
        manifest.runs = runs.iter().map(|r| r.meta).collect();
        manifest.flushed_through = version;
        manifest.last_timestamp = manifest.last_timestamp.max(last_ts);
        manifest.timeline_len = self.inner.timeline.persist_through(&d.vfs, version)?;
        self.write_manifest(d, &manifest)?;
        *d.manifest.lock() = manifest;
        // From here on the restore is durable: the log continues after it.
        let Some(wal) = c.wal.as_mut() else {
            return Err(Error::Internal("disk storage without a log writer".into()));
        };
        if wal.base() != version + 1 {
            self.sync_log_file(d, &wal.current_file())?;
            if let Err(e) = wal.start_segment(version + 1, 0) {
                if e.fatal {
                    self.poison(e.error.to_string());
                }
                return Err(e.error);
            }
        }
        // The restored state replaces the whole state: any key may change (see
        // `last_write_to`).
        self.inner.tag_writes.note_all(version);
        let l = self.inner.tree.layers();
        let active = l.active.successor();
        active.set_keep_tombstones(!runs.is_empty());
        self.inner.tree.set_layers(Layers {
            active: Arc::new(active),
            frozen: None,
            runs: Arc::new(runs),
        });
        self.inner.lineage.replace(load_lineage(&self.inner.tree)?);
        c.next_version = version + 1;
        c.last_ts = c.last_ts.max(last_ts);
        self.inner
            .snapshot_version
            .store(version, Ordering::Release);
        self.inner.applied.store(version, Ordering::Release);
        {
            let mut s = d.sync.lock();
            s.written = version;
            d.written_hint.store(version, Ordering::Release);
            s.file = c.wal.as_ref().map(|w| w.current_file());
            self.mark_durable(d, &mut s, version);
        }
        self.inner.visible.store(version, Ordering::Release);
        drop(c);
        self.remove_obsolete_files(d, version + 1)?;
        info!(
            version,
            keys = report.keys,
            entries = report.entries,
            bytes = w.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "restored into a sorted run"
        );
        Ok(RunRestore::Done(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyVfs;
    use crate::vfs::{Vfs, VfsFile};

    fn put(k: &str, v: &str) -> Write {
        Write {
            key: k.as_bytes().into(),
            value: Some(Arc::from(v.as_bytes())),
        }
    }

    fn opts(fs: &FaultyVfs, mode: DurabilityMode) -> StorageOptions {
        StorageOptions {
            durability: mode,
            vfs: Arc::new(fs.clone()),
            lock_directory: false,
            ..StorageOptions::default()
        }
    }

    fn value(s: &Storage, k: &str) -> Option<Vec<u8>> {
        s.get(k.as_bytes(), s.visible_version())
            .unwrap()
            .and_then(|e| e.value)
            .map(|v| v.to_vec())
    }

    /// The keys-only listing (its own merge over runs read in place) lists exactly
    /// what a full scan lists — the same keys, versions and timestamps — across a
    /// memtable and several runs holding overwrites and deletes, at old and new
    /// snapshots, with every kind of bound and limit.
    #[test]
    fn a_keys_only_listing_matches_a_full_scan() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::NoDurability)).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut snapshots = Vec::new();
        for round in 0..6 {
            for _ in 0..60 {
                let k = format!("k{:02}", rand(50));
                let w = if rand(4) == 0 {
                    Write {
                        key: k.as_bytes().into(),
                        value: None,
                    }
                } else {
                    put(&k, &format!("v{round}"))
                };
                s.commit(vec![w], |_| Ok(())).unwrap();
                if rand(20) == 0 {
                    snapshots.push(s.visible_version());
                }
            }
            if round < 5 {
                s.checkpoint().unwrap(); // a run per round; the last stays in memory
            }
        }
        assert!(s.run_count() >= 2, "{} runs", s.run_count());
        snapshots.push(s.visible_version());
        type Range<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);
        let bounds: Vec<Range<'_>> = vec![
            (Bound::Unbounded, Bound::Unbounded),
            (Bound::Included(b"k1"), Bound::Excluded(b"k2")),
            (Bound::Excluded(b"k10"), Bound::Excluded(b"k3")),
            (Bound::Included(b"k25"), Bound::Unbounded),
            (Bound::Included(b"a"), Bound::Excluded(b"k05")),
            (Bound::Included(b"z"), Bound::Unbounded),
        ];
        for &snap in &snapshots {
            for &(lo, hi) in &bounds {
                for limit in [None, Some(0), Some(1), Some(7), Some(1000)] {
                    let full = s.scan_range(lo, hi, snap, limit).unwrap();
                    let keys = s.scan_range_keys(lo, hi, snap, limit).unwrap();
                    let strip = |v: Vec<(Box<[u8]>, Entry)>| {
                        v.into_iter()
                            .map(|(k, e)| (k, e.version, e.timestamp, e.value.is_some()))
                            .collect::<Vec<_>>()
                    };
                    // The same listing handed over key by key.
                    let mut listed = Vec::new();
                    s.list_keys(lo, hi, snap, limit, &mut |k, e| {
                        listed.push((Box::<[u8]>::from(k), e.version, e.timestamp, true));
                    })
                    .unwrap();
                    let full = strip(full);
                    assert_eq!(listed, full, "listed at {snap}, {lo:?}..{hi:?}, {limit:?}");
                    assert_eq!(strip(keys), full, "at {snap}, {lo:?}..{hi:?}, {limit:?}");
                }
            }
        }
    }

    /// Seeks made together in several runs ([`crate::run::SeekSteps`]) start from the
    /// blocks a seek in each run alone starts from, for keys before, inside, between
    /// and after the runs' keys, in runs of many blocks.
    #[test]
    fn seeks_made_together_find_the_blocks_of_seeks_made_alone() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::NoDurability)).unwrap();
        // Runs each much smaller than the one before, which compaction leaves apart.
        for (round, count) in [16_000u32, 6_000, 2_400].into_iter().enumerate() {
            let writes = (0..count)
                .map(|i| {
                    let key = format!("group{:03}:{:08}", i % 97, i * 3 + round as u32);
                    put(&key, &"v".repeat(200))
                })
                .collect();
            s.commit(writes, |_| Ok(())).unwrap();
            s.checkpoint().unwrap();
        }
        let layers = s.inner.tree.layers();
        let runs: Vec<&crate::run::Run> = layers.runs.iter().map(|r| &*r.run).collect();
        assert!(runs.len() >= 2, "{} runs", runs.len());
        assert!(runs.iter().any(|r| r.block_count() > 4 * 64));
        let mut probes: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), b"zzz".to_vec()];
        for g in [0u32, 1, 42, 96, 97] {
            probes.push(format!("group{g:03}:").into_bytes());
            probes.push(format!("group{g:03}:{:08}", g + 97 * 7).into_bytes());
        }
        for key in &probes {
            let together = crate::run::SeekSteps::blocks(&runs, key);
            let alone: Vec<usize> = runs.iter().map(|r| r.seek(key)).collect();
            assert_eq!(together.to_vec(), alone, "{}", String::from_utf8_lossy(key));
        }
    }

    /// A database of the layout before sorted runs (a format-2 snapshot plus the log
    /// after it) opens, and its first flush converts it: one run listed by a new
    /// manifest, the snapshot deleted only after the manifest is durable.
    #[test]
    fn a_snapshot_database_is_converted_by_its_first_flush() {
        let fs = FaultyVfs::new();
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let dir = Path::new("/db");
        // Build the old layout: a log, a snapshot at version 40, more log after it.
        let s = Storage::open(dir, opts(&fs, DurabilityMode::Strict)).unwrap();
        for i in 0..60 {
            s.commit(
                vec![put(&format!("k{:02}", i % 25), &format!("v{i}"))],
                |_| Ok(()),
            )
            .unwrap();
        }
        let layers = s.inner.tree.layers();
        crate::snapshot::write_snapshot(&vfs, dir, &layers.active, 40).unwrap();
        drop(layers);
        drop(s);
        // No manifest, no run: what the previous release left.
        for name in fs.list(dir).unwrap() {
            if name.starts_with("run-") || name == "MANIFEST" {
                fs.remove(&dir.join(&name)).unwrap();
            }
        }
        let s = Storage::open(dir, opts(&fs, DurabilityMode::Strict)).unwrap();
        assert_eq!(s.recovery_report().snapshot_version, 40);
        assert_eq!(s.visible_version(), 60);
        assert_eq!(value(&s, "k09").as_deref(), Some(&b"v59"[..]));
        assert_eq!(s.history(b"k09", 60, None, None).unwrap().len(), 3);
        s.checkpoint().unwrap();
        let names = fs.list(dir).unwrap();
        assert!(names.iter().any(|n| n == "MANIFEST"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("snap-")), "{names:?}");
        drop(s);
        let s = Storage::open(dir, opts(&fs, DurabilityMode::Strict)).unwrap();
        assert_eq!(s.visible_version(), 60);
        assert_eq!(s.run_count(), 1);
        assert_eq!(s.history(b"k09", 60, None, None).unwrap().len(), 3);
        assert_eq!(value(&s, "k24").as_deref(), Some(&b"v49"[..]));
    }

    /// A file system whose sorted-run files are slow to write (every append sleeps), so
    /// that merges take long while commits go on; everything else is `FaultyVfs`.
    struct SlowRuns(FaultyVfs);

    struct SlowFile(Arc<dyn VfsFile>);

    impl VfsFile for SlowFile {
        fn append(&self, buf: &[u8]) -> std::io::Result<()> {
            std::thread::sleep(Duration::from_micros(300));
            self.0.append(buf)
        }
        fn sync(&self) -> std::io::Result<()> {
            self.0.sync()
        }
        fn rollback(&self, len: u64) -> std::io::Result<()> {
            self.0.rollback(len)
        }
    }

    impl Vfs for SlowRuns {
        fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
            self.0.create_dir_all(path)
        }
        fn open_append(&self, path: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
            self.0.open_append(path)
        }
        fn create_empty(&self, path: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
            let f = self.0.create_empty(path)?;
            let run = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run-"));
            Ok(if run { Arc::new(SlowFile(f)) } else { f })
        }
        fn exists(&self, path: &Path) -> bool {
            self.0.exists(path)
        }
        fn create_preallocated(
            &self,
            path: &Path,
            capacity: u64,
        ) -> std::io::Result<Arc<dyn VfsFile>> {
            self.0.create_preallocated(path, capacity)
        }
        fn open_preallocated(
            &self,
            path: &Path,
            pos: u64,
            capacity: u64,
        ) -> std::io::Result<Arc<dyn VfsFile>> {
            self.0.open_preallocated(path, pos, capacity)
        }
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            self.0.read(path)
        }
        fn map_readonly(&self, path: &Path) -> std::io::Result<crate::vfs::FileBytes> {
            self.0.map_readonly(path)
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            self.0.list(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.0.rename(from, to)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            self.0.remove(path)
        }
        fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
            self.0.truncate(path, len)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.0.sync_dir(dir)
        }
    }

    /// The write stall: while the flush thread merges (slowly here), commits stop once
    /// the memtable holds twice its size, instead of filling it for as long as the
    /// merge takes. Every commit lands, and `close` does not wait for a stalled flush.
    #[test]
    fn commits_stall_at_twice_the_memtable_size_while_runs_merge() {
        let fs = FaultyVfs::new();
        let memtable = 64 * 1024;
        let o = StorageOptions {
            durability: DurabilityMode::NoDurability,
            vfs: Arc::new(SlowRuns(fs.clone())),
            lock_directory: false,
            memtable_size: memtable,
            ..StorageOptions::default()
        };
        let s = Storage::open("/db", o.clone()).unwrap();
        let big = "x".repeat(1000);
        let mut most = 0;
        for i in 0..1500 {
            s.commit(vec![put(&format!("k{i:05}"), &big)], |_| Ok(()))
                .unwrap();
            most = most.max(s.inner.tree.with_active(|m| m.resident_bytes()));
        }
        // One commit (about 1 KB and its bookkeeping) may land on a memtable just under
        // the limit.
        assert!(
            most <= 2 * memtable + 4096,
            "the memtable reached {most} bytes (limit {})",
            2 * memtable
        );
        assert!(
            s.run_count() >= 2,
            "merges never ran: {} runs",
            s.run_count()
        );
        s.close().unwrap();
        let s = Storage::open(
            "/db",
            StorageOptions {
                vfs: Arc::new(fs),
                ..o
            },
        )
        .unwrap();
        assert_eq!(s.key_count().unwrap(), 1500);
        assert_eq!(value(&s, "k01499").map(|v| v.len()), Some(1000));
    }

    /// The memtable is flushed in the background once it holds `memtable_size` bytes,
    /// and reads see every layer.
    #[test]
    fn a_full_memtable_is_flushed_in_the_background() {
        let fs = FaultyVfs::new();
        let mut o = opts(&fs, DurabilityMode::NoDurability);
        o.memtable_size = 64 * 1024;
        let s = Storage::open("/db", o.clone()).unwrap();
        let big = "x".repeat(1000);
        for i in 0..1000 {
            s.commit(vec![put(&format!("k{i:04}"), &big)], |_| Ok(()))
                .unwrap();
        }
        // Background flushes run while committing: wait (bounded) for them to catch up
        // (on a loaded machine the last ones may still be running when the commits end).
        // A flush thread may have been started but not yet have taken the snapshot
        // lock, and mid-flush the figures can read low for a moment: wait until no
        // flush is running (or about to) as well.
        let d = s.inner.disk.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (s.run_count() == 0
            || s.stats().resident_bytes >= 512 * 1024
            || d.snapshot_running.load(Ordering::Acquire))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(d.snapshot_lock.lock());
        assert!(s.run_count() >= 1, "no run was written");
        assert!(s.stats().resident_bytes < 512 * 1024, "{:?}", s.stats());
        assert_eq!(s.key_count().unwrap(), 1000);
        assert_eq!(s.scan_prefix(b"k", 1000, None).unwrap().len(), 1000);
        drop(s);
        let s = Storage::open("/db", o).unwrap();
        assert_eq!(s.scan_prefix(b"k", 1000, Some(5)).unwrap().len(), 5);
        assert_eq!(value(&s, "k0999").map(|v| v.len()), Some(1000));
    }

    #[test]
    fn reopen_replays_the_log() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        for i in 0..50 {
            s.commit(vec![put(&format!("k{i}"), "v")], |_| Ok(()))
                .unwrap();
        }
        s.commit(
            vec![Write {
                key: b"k3".to_vec().into(),
                value: None,
            }],
            |_| Ok(()),
        )
        .unwrap();
        drop(s);
        fs.process_crash();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        assert_eq!(s.visible_version(), 51);
        assert_eq!(value(&s, "k7").as_deref(), Some(&b"v"[..]));
        assert_eq!(value(&s, "k3"), None);
        assert_eq!(s.history(b"k3", 51, None, None).unwrap().len(), 2);
        let next = s.commit(vec![put("x", "y")], |_| Ok(())).unwrap();
        assert_eq!(next.version, 52);
    }

    #[test]
    fn checkpoint_then_reopen_and_segments_are_removed() {
        let fs = FaultyVfs::new();
        let mut o = opts(&fs, DurabilityMode::NoDurability);
        o.segment_size = 4096;
        let s = Storage::open("/db", o.clone()).unwrap();
        for i in 0..500 {
            s.commit(
                vec![put(&format!("k{:03}", i % 100), &format!("v{i}"))],
                |_| Ok(()),
            )
            .unwrap();
        }
        s.checkpoint().unwrap();
        for i in 500..520 {
            s.commit(
                vec![put(&format!("k{:03}", i % 100), &format!("v{i}"))],
                |_| Ok(()),
            )
            .unwrap();
        }
        let names = fs.list(Path::new("/db")).unwrap();
        assert_eq!(names.iter().filter(|n| n.starts_with("run-")).count(), 1);
        assert!(names.iter().any(|n| n == "MANIFEST"), "{names:?}");
        assert_eq!(
            names.iter().filter(|n| n.starts_with("wal-")).count(),
            1,
            "{names:?}"
        );
        drop(s);
        let s = Storage::open("/db", o).unwrap();
        assert_eq!(s.recovery_report().snapshot_version, 500);
        assert_eq!(s.recovery_report().records_replayed, 20);
        assert_eq!(value(&s, "k019").as_deref(), Some(&b"v519"[..]));
        assert_eq!(s.history(b"k019", 520, None, None).unwrap().len(), 6);
    }

    #[test]
    fn strict_survives_power_loss_and_failed_fsync_poisons() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        for i in 0..20 {
            s.commit(vec![put(&format!("k{i}"), "v")], |_| Ok(()))
                .unwrap();
        }
        fs.fail_sync_after(1);
        assert!(s.commit(vec![put("bad", "v")], |_| Ok(())).is_err());
        assert!(s.is_poisoned());
        let err = s.commit(vec![put("later", "v")], |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Storage(_)));
        // The failed commit was never published.
        assert_eq!(value(&s, "bad"), None);
        drop(s);
        fs.power_loss(7);
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        for i in 0..20 {
            assert!(value(&s, &format!("k{i}")).is_some(), "k{i} lost");
        }
    }

    #[test]
    fn spin_until_sees_a_change_gives_up_after_its_budget_and_keeps_its_limit() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                flag.store(true, Ordering::Release);
            })
        };
        assert!(spin_until(false, Duration::from_secs(30), || flag
            .load(Ordering::Acquire)));
        setter.join().unwrap();

        // Not as a committer: another test may hold every committer's place meanwhile
        // (the count is process-wide), and then a committer does not spin at all.
        let started = Instant::now();
        assert!(!spin_until(false, Duration::from_millis(5), || false));
        assert!(started.elapsed() >= Duration::from_millis(5));

        // No budget after an fsync slower than the cap.
        assert_eq!(spin_budget(Duration::from_millis(3)), Duration::ZERO);
        assert_eq!(
            spin_budget(Duration::from_micros(10)),
            Duration::from_micros(50)
        );
        assert_eq!(
            spin_budget(Duration::from_micros(300)),
            Duration::from_micros(600)
        );
    }

    /// With the limit reached a committer does not spin at all, and leaves the count as
    /// it found it; a condition that already holds is still reported. (The only test
    /// that fills the process-wide count, so it cannot disturb the others for long.)
    #[test]
    fn committers_past_the_spinning_limit_do_not_spin() {
        let held = max_spinners();
        SPINNING_COMMITTERS.fetch_add(held, Ordering::AcqRel);
        let started = Instant::now();
        let spun = spin_until(true, Duration::from_secs(30), || false);
        let took = started.elapsed();
        let after = SPINNING_COMMITTERS.load(Ordering::Acquire);
        let ready = spin_until(true, Duration::from_secs(30), || true);
        SPINNING_COMMITTERS.fetch_sub(held, Ordering::AcqRel);
        assert!(!spun && took < Duration::from_secs(10));
        assert!(after >= held);
        assert!(ready);
    }

    /// A committer joining an fsync led by a lone committer, which does not cover its
    /// record, must not sleep out the 50 ms fallback: it looks again after its spin,
    /// and the fsync's end hands its record to the syncer. (With a spin that slept on
    /// the state read before it, such commits took 50 ms.)
    #[test]
    fn a_commit_joining_a_lone_leaders_fsync_is_synced_promptly() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        // Shorter than the spin's cap, so that a joiner's spin outlasts the fsync.
        fs.set_sync_delay(Duration::from_micros(600));
        for i in 0..3 {
            s.commit(vec![put(&format!("warm{i}"), "v")], |_| Ok(()))
                .unwrap();
        }
        let mut slow = 0;
        for round in 0..20 {
            std::thread::scope(|scope| {
                let s1 = s.clone();
                scope.spawn(move || {
                    s1.commit(vec![put(&format!("lead{round}"), "v")], |_| Ok(()))
                        .unwrap();
                });
                // Join while the lone leader's fsync is under way.
                std::thread::sleep(Duration::from_micros(300));
                let started = Instant::now();
                s.commit(vec![put(&format!("join{round}"), "v")], |_| Ok(()))
                    .unwrap();
                if started.elapsed() >= Duration::from_millis(45) {
                    slow += 1;
                }
            });
        }
        // A join takes a few 0.6 ms fsyncs; the fallback alone would be 50 ms. With
        // the old wait 14 and 18 of the 20 joins took 45 ms or more (two runs), so a
        // few slow rounds on a loaded machine do not fail the test and the old wait
        // still does.
        assert!(slow <= 3, "{slow} of 20 joins took 45 ms or more");
    }

    /// Committers spin for their fsync (see `spin_until`); one that fails must still
    /// release every one of them with an error, and every commit acknowledged before it
    /// must survive a power loss.
    #[test]
    fn strict_committers_racing_a_failing_fsync_all_return_and_acknowledged_ones_survive() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        fs.fail_sync_after_delay(60, Duration::from_millis(3));
        let acked: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let s = s.clone();
                    scope.spawn(move || {
                        let mut acked = Vec::new();
                        for i in 0..200 {
                            let k = format!("t{t}-{i}");
                            match s.commit(vec![put(&k, "v")], |_| Ok(())) {
                                Ok(_) => acked.push(k),
                                Err(e) => {
                                    assert!(matches!(e, Error::Storage(_)), "{e}");
                                    break;
                                }
                            }
                        }
                        acked
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(s.is_poisoned());
        let total: usize = acked.iter().map(Vec::len).sum();
        assert!(total > 0 && total < 8 * 200, "{total} acknowledged");
        drop(s);
        fs.power_loss(3);
        let s = Storage::open("/db", opts(&fs, DurabilityMode::Strict)).unwrap();
        for k in acked.iter().flatten() {
            assert!(value(&s, k).is_some(), "{k} was acknowledged and is lost");
        }
    }

    #[test]
    fn buffered_flusher_syncs_an_idle_database() {
        let fs = FaultyVfs::new();
        let mode = DurabilityMode::Buffered {
            interval_ms: 10,
            max_writes: 1_000_000,
        };
        let s = Storage::open("/db", opts(&fs, mode)).unwrap();
        s.commit(vec![put("a", "1")], |_| Ok(())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.inner.disk.as_ref().unwrap().sync.lock().synced < 1 {
            assert!(Instant::now() < deadline, "flusher never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(s);
        fs.power_loss(1);
        let s = Storage::open("/db", opts(&fs, mode)).unwrap();
        assert_eq!(value(&s, "a").as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn validation_failure_writes_nothing() {
        let s = Storage::ephemeral();
        let err = s
            .commit(vec![put("a", "1")], |_| Err(Error::Conflict("x".into())))
            .unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(s.visible_version(), 0);
        assert_eq!(
            s.commit(vec![put("a", "1")], |_| Ok(())).unwrap().version,
            1
        );
    }
}
