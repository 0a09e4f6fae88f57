//! The shared engine every primitive handle points to.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use strata_concurrency::{Transaction, TransactionManager};
use strata_core::{codec, limits, Error, Result, RunId, Timestamp, Value, Version};
use strata_storage::{CommitInfo, Storage};

use crate::runs::{self, RunInfo};

/// A source of "now", injectable so that time-based retention can be tested without
/// sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How many commits to a run with a retention policy pass between two garbage
/// collections of that run.
pub const GC_EVERY_COMMITS: u64 = 1024;

/// Transactions, clock and bookkeeping shared by all primitive handles.
pub struct Engine {
    manager: TransactionManager,
    clock: parking_lot::RwLock<Clock>,
    commits_since_gc: AtomicU64,
}

impl Engine {
    /// An engine over `storage`; creates the default run's record if missing.
    pub fn new(storage: Storage) -> Result<Arc<Engine>> {
        let engine = Arc::new(Engine {
            manager: TransactionManager::new(storage),
            clock: parking_lot::RwLock::new(Arc::new(Timestamp::now)),
            commits_since_gc: AtomicU64::new(0),
        });
        runs::ensure_default_run(&engine)?;
        Ok(engine)
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
        (self.clock.read())()
    }

    /// Replaces the clock used for retention decisions (tests).
    pub fn set_clock(&self, clock: Clock) {
        *self.clock.write() = clock;
    }

    /// Runs `f` in a retried transaction, counting one operation.
    pub fn run<T>(
        &self,
        f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        self.manager.metrics().record_operations(1);
        self.manager.run(f)
    }

    /// Like [`run`](Self::run) for an operation that writes to `run_id`: afterwards,
    /// collects garbage in that run every [`GC_EVERY_COMMITS`] commits if it has a
    /// retention policy.
    pub fn write<T>(
        &self,
        run_id: &RunId,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        let mut info_seen: Option<Arc<RunInfo>> = None;
        let out = self.run(|txn| {
            info_seen = Some(runs::check_writable(txn, run_id)?);
            f(txn)
        })?;
        if let Some(info) = info_seen {
            if info.retention != strata_storage::RetentionPolicy::KeepAll
                && self
                    .commits_since_gc
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(GC_EVERY_COMMITS)
            {
                self.collect_garbage(run_id, &info.retention);
            }
        }
        Ok(out)
    }

    /// Runs a read-only operation on `run_id` (which must exist).
    pub fn read<T>(
        &self,
        run_id: &RunId,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        self.run(|txn| {
            runs::check_exists(txn, run_id)?;
            f(txn)
        })
        .map(|(v, _)| v)
    }

    /// Garbage-collects old versions in one run under `policy`.
    pub fn collect_garbage(
        &self,
        run_id: &RunId,
        policy: &strata_storage::RetentionPolicy,
    ) -> usize {
        let prefix = strata_storage::key::run_prefix(run_id);
        self.storage().gc_prefix(&prefix, policy, self.now())
    }
}

/// Encodes a value after checking it against the limits.
pub fn encode_value(value: &Value) -> Result<Arc<[u8]>> {
    Ok(Arc::from(limits::validate_value(value)?))
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
