//! The shared engine every primitive handle points to.
use std::sync::Arc;

use strata_concurrency::{Transaction, TransactionManager};
use strata_core::{codec, limits, Error, Result, RunId, Timestamp, Value, Version};
use strata_storage::{CommitInfo, GcStats, Storage};

use crate::gc::Collector;
use crate::runs;

pub use crate::gc::{Clock, GC_EVERY_COMMITS, GC_MIN_BYTES};

/// A function told about a purged run (see [`Engine::on_purge`]).
pub type PurgeHook = Arc<dyn Fn(&RunId) + Send + Sync>;

/// Transactions, clock and garbage collection shared by all primitive handles.
pub struct Engine {
    manager: TransactionManager,
    collector: Arc<Collector>,
    /// Called with each run after it is purged (the vector indexes forget it).
    purge_hooks: Arc<parking_lot::RwLock<Vec<PurgeHook>>>,
    /// For a view of the past ([`Engine::at_version`]): the version every read is made
    /// at. Such an engine refuses writes.
    at: Option<u64>,
    /// For a view of the past: the time its reads judge expiries at (see
    /// [`Engine::at_version`]).
    at_time: Timestamp,
    /// Runs known to exist, so that a read need not read its run's record again.
    runs_seen: Arc<RunsSeen>,
    /// Runs known to accept writes, so that a write need not read (and decode) its
    /// run's record again: see [`Engine::write`].
    runs_writable: Arc<RunsSeen>,
}

/// Runs whose record was found to have a property — existing ([`Engine::read`]), or
/// accepting writes ([`Engine::write`]) — each with a snapshot version at which its
/// record was read. An entry answers for a reader at snapshot `S` while no
/// commit wrote any run record after `min(S, as_of)`
/// ([`Storage::last_write_to`]`(Primitive::Run)` at most that): the record is then
/// the same at `S` as at `as_of`. Creating, closing, forking, deleting or purging any
/// run writes a run record, after which each run's next read reads its record again.
/// Unknown runs are not remembered: their reads read the (absent) record each time.
#[derive(Default)]
struct RunsSeen {
    map: parking_lot::RwLock<std::collections::HashMap<RunId, u64>>,
}

/// Runs [`RunsSeen`] remembers at most (when full, each new run displaces one).
const RUNS_SEEN_MAX: usize = 4096;

impl RunsSeen {
    /// `true` if `run` is known to exist at `snapshot`, given the storage's newest
    /// run-record write `changed`.
    fn exists(&self, run: &RunId, snapshot: u64, changed: u64) -> bool {
        self.map
            .read()
            .get(run)
            .is_some_and(|&as_of| changed <= as_of.min(snapshot))
    }

    /// Notes that `run`'s record existed at `snapshot`.
    fn note(&self, run: &RunId, snapshot: u64) {
        let mut map = self.map.write();
        if map.len() >= RUNS_SEEN_MAX && !map.contains_key(run) {
            // Make room by forgetting one run (whichever the map yields first), not
            // all of them: a workload spread over more runs than fit would otherwise
            // clear the whole map on every miss.
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        let as_of = map.entry(*run).or_insert(snapshot);
        *as_of = (*as_of).max(snapshot);
    }
}

impl Engine {
    /// An engine over `storage`; creates the default run's record if missing, registers
    /// the garbage collector with the storage (it runs before every snapshot) and
    /// applies the runs' retention policies to what was recovered.
    pub fn new(storage: Storage) -> Result<Arc<Engine>> {
        let collector = Arc::new(Collector::new());
        let hook = collector.clone();
        storage.set_gc_hook(Some(Arc::new(move |s: &Storage| {
            hook.collect(s);
        })));
        let clock = collector.clone();
        storage.set_retention_hook(Some(Arc::new(move |s: &Storage| {
            crate::gc::compaction_retention(s, clock.now())
        })));
        let engine = Arc::new(Engine {
            manager: TransactionManager::new(storage),
            collector,
            purge_hooks: Arc::default(),
            at: None,
            at_time: Timestamp(0),
            runs_seen: Arc::default(),
            runs_writable: Arc::default(),
        });
        if !engine.storage().is_read_only() {
            runs::ensure_default_run(&engine)?;
        }
        // Retention holds after a reopen without waiting for a write: the log replays
        // every version it holds, hidden ones included.
        engine.collect_garbage_now();
        Ok(engine)
    }

    /// An engine over the same database on which every operation reads as of
    /// `version` (the visible version, if that is older) and every write fails with
    /// [`Error::ConstraintViolation`]: the handles built over it form a read-only view
    /// of the past. Reads of a run whose retention policy is not `KeepAll` fail with
    /// [`Error::ConstraintViolation`] when `version` is in the past: retention may
    /// have removed what the run held then, and a view never answers with a newer
    /// value instead.
    ///
    /// Time-to-live expiries are judged at `time` (see [`crate::ttl`]): the commit
    /// time of `version` for a view of a version, the chosen time for a view of a
    /// time. `Timestamp(0)` judges none by the clock (only the deletes garbage
    /// collection committed for expired records are seen), for versions older than the
    /// storage's timeline.
    pub fn at_version(&self, version: u64, time: Timestamp) -> Arc<Engine> {
        Arc::new(Engine {
            manager: self.manager.clone(),
            collector: self.collector.clone(),
            purge_hooks: self.purge_hooks.clone(),
            at: Some(version.min(self.storage().visible_version())),
            at_time: time,
            runs_seen: self.runs_seen.clone(),
            runs_writable: self.runs_writable.clone(),
        })
    }

    /// The time a view of the past judges expiries at (see [`at_version`](Self::at_version)).
    pub fn read_time(&self) -> Option<Timestamp> {
        self.at.map(|_| self.at_time)
    }

    /// Registers a function called with each run right after it is purged (see
    /// [`Runs::purge`](crate::Runs::purge)), for state kept outside the storage.
    pub fn on_purge(&self, hook: PurgeHook) {
        self.purge_hooks.write().push(hook);
    }

    pub(crate) fn purged(&self, run: &RunId) {
        let hooks = self.purge_hooks.read().clone();
        for h in hooks {
            h(run);
        }
    }

    /// The version this engine reads at, for a view of the past.
    pub fn read_version(&self) -> Option<u64> {
        self.at
    }

    /// The transaction manager.
    pub fn manager(&self) -> &TransactionManager {
        &self.manager
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        self.manager.storage()
    }

    /// The current time according to the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.collector.now()
    }

    /// Replaces the clock used for retention decisions (tests).
    pub fn set_clock(&self, clock: Clock) {
        self.collector.set_clock(clock);
    }

    /// Runs `f` in a retried transaction, counting one operation. After a commit,
    /// collects garbage if the bytes (or commits) written since the last collection
    /// call for it (see [`crate::gc`]).
    pub fn run<T>(
        &self,
        f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        self.manager.metrics().record_operations(1);
        if let Some(at) = self.at {
            // A view of the past judges expiries at its own time, not by the clock, so
            // its answers never change (see `crate::ttl`).
            let time = self.at_time;
            return self
                .manager
                .read_at(at, |txn| {
                    txn.set_read_time(time);
                    let mut f = f;
                    f(txn)
                })
                .map(|v| (v, None));
        }
        let out = self.manager.run_with_clock(|| self.now(), f)?;
        if out.1.is_some() {
            self.collector.maybe_collect(self.storage());
        }
        Ok(out)
    }

    /// Like [`run`](Self::run) for an operation that writes to `run_id`, which must
    /// exist and accept writes.
    pub fn write<T>(
        &self,
        run_id: &RunId,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        if let Some(at) = self.at {
            return Err(read_only_view(at));
        }
        self.run(|txn| {
            self.check_run_writable(txn, run_id)?;
            f(txn)
        })
    }

    /// Fails unless `run` exists and accepts writes at the transaction's snapshot (as
    /// [`runs::check_writable`]). When [`RunsSeen`] knows the record was writable and
    /// unchanged since, the record is not read again, only noted in the read set: a
    /// commit that changes it (closing the run, say) after this transaction began
    /// still makes it conflict and retry, and the retry reads the new record.
    fn check_run_writable(&self, txn: &mut Transaction, run: &RunId) -> Result<()> {
        let snapshot = txn.snapshot_version();
        let changed = self.storage().last_write_to(strata_storage::Primitive::Run);
        if self.runs_writable.exists(run, snapshot, changed) && txn.note_read(runs::run_key(run)) {
            return Ok(());
        }
        runs::check_writable(txn, run)?;
        if changed <= snapshot {
            self.runs_writable.note(run, snapshot);
        }
        Ok(())
    }

    /// Runs a read-only operation on `run_id` (which must exist): `f` reads one
    /// snapshot, taken now, and must not write (a write fails with
    /// [`Error::Internal`] and nothing is committed).
    ///
    /// The cheapest transaction there is: no read set (a read-only transaction never
    /// conflicts), no retry, one clock reading, and the run's existence checked
    /// against [`RunsSeen`] instead of reading its record again when no run record
    /// changed since it was last read.
    pub fn read<T>(
        &self,
        run_id: &RunId,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        if let Some(at) = self.at {
            self.check_history_kept(run_id, at)?;
            return self
                .run(|txn| {
                    self.check_run_exists(txn, run_id)?;
                    f(txn)
                })
                .map(|(v, _)| v);
        }
        self.manager.metrics().record_operations(1);
        self.manager.read(self.now(), |txn| {
            self.check_run_exists(txn, run_id)?;
            f(txn)
        })
    }

    /// Fails unless `run` exists at the transaction's snapshot (as
    /// [`runs::check_exists`], without reading its record when [`RunsSeen`] knows).
    fn check_run_exists(&self, txn: &mut Transaction, run: &RunId) -> Result<()> {
        let snapshot = txn.snapshot_version();
        let changed = self.storage().last_write_to(strata_storage::Primitive::Run);
        if self.runs_seen.exists(run, snapshot, changed) {
            return Ok(());
        }
        runs::check_exists(txn, run)?;
        if changed <= snapshot {
            self.runs_seen.note(run, snapshot);
        }
        Ok(())
    }

    /// For a view at `at`: fails if `run`'s retention policy may have removed what it
    /// held at `at`.
    fn check_history_kept(&self, run_id: &RunId, at: u64) -> Result<()> {
        let storage = self.storage();
        if storage.is_purged(run_id) {
            return Err(Error::RunError(format!(
                "run {run_id} was purged: its past cannot be read any more"
            )));
        }
        if at >= storage.visible_version() {
            return Ok(());
        }
        match runs::info_now(storage, run_id)? {
            Some(info) if info.history_kept_from().is_none_or(|from| at < from) => {
                Err(Error::ConstraintViolation(format!(
                    "run {run_id} keeps history under {:?} (complete from {:?}): what it \
                     held at version {at} may have been removed, so it cannot be read as of \
                     then",
                    info.retention, info.history_complete_from
                )))
            }
            _ => Ok(()),
        }
    }

    /// Garbage-collects old versions in one run under `policy`; returns the number of
    /// versions dropped.
    pub fn collect_garbage(
        &self,
        run_id: &RunId,
        policy: &strata_storage::RetentionPolicy,
    ) -> usize {
        let stats = crate::gc::collect_run(self.storage(), run_id, policy, self.now());
        usize::try_from(stats.entries_dropped).unwrap_or(usize::MAX)
    }

    /// Garbage-collects every run under its retention policy now (after a collection
    /// already running, if any); returns what was dropped.
    pub fn collect_garbage_now(&self) -> GcStats {
        self.collector.collect(self.storage())
    }
}

/// The error of a write through a view of the past.
fn read_only_view(at: u64) -> Error {
    Error::ConstraintViolation(format!(
        "this view reads the database as of version {at} and is read-only; write \
         through the database itself"
    ))
}

/// Encodes a value after checking it against the limits.
pub fn encode_value(value: &Value) -> Result<Arc<[u8]>> {
    // Encoding into a fresh `Vec` and moving it into an `Arc` allocates twice (and the
    // `Vec` grows through several reallocations on the way): each write is encoded into
    // this thread's scratch buffer instead, and copied once into its `Arc`.
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    /// Larger scratch buffers are freed after use rather than kept for the thread's life.
    const KEEP_SCRATCH_BYTES: usize = 64 << 10;
    let scratched = SCRATCH.try_with(|scratch| {
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            return None;
        };
        buf.clear();
        let encoded = limits::validate_value_into(value, &mut buf).map(|()| Arc::from(&buf[..]));
        if buf.capacity() > KEEP_SCRATCH_BYTES {
            *buf = Vec::new();
        }
        Some(encoded)
    });
    match scratched {
        Ok(Some(encoded)) => encoded,
        // The buffer is gone (a write from another thread-local's destructor, after
        // this one was destroyed) or in use (re-entered): encode without it.
        Ok(None) | Err(_) => Ok(Arc::from(limits::validate_value(value)?)),
    }
}

/// Decodes a stored value.
pub fn decode_value(bytes: &[u8]) -> Result<Value> {
    codec::decode(bytes)
}

/// Decodes the value of a storage entry that must be live.
pub(crate) fn entry_value(entry: &strata_storage::Entry) -> Result<Value> {
    match &entry.value {
        Some(v) => decode_value(v),
        None => Err(Error::Internal("tombstone returned as a live entry".into())),
    }
}

/// The version of a write operation's commit. A transaction that wrote something always
/// has one; its absence is a bug.
pub fn committed_version(info: Option<strata_storage::CommitInfo>) -> Result<Version> {
    info.map(|i| Version::Txn(i.version))
        .ok_or_else(|| Error::Internal("a write committed without a version".into()))
}
