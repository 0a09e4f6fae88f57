//! Beginning transactions and running closures in retried transactions.
use std::sync::Arc;
use std::time::Duration;

use strata_core::{Error, Result};
use strata_storage::{CommitInfo, Storage};

use crate::metrics::{DatabaseMetrics, Metrics};
use crate::transaction::Transaction;

/// Default number of attempts [`TransactionManager::run`] makes before giving up with the
/// last [`Error::Conflict`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 1_000;

/// Starts transactions on one storage and keeps the metrics.
#[derive(Clone)]
pub struct TransactionManager {
    storage: Storage,
    metrics: Arc<Metrics>,
    max_attempts: u32,
}

impl TransactionManager {
    /// A manager over `storage`.
    pub fn new(storage: Storage) -> Self {
        TransactionManager {
            storage,
            metrics: Arc::new(Metrics::default()),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Sets how many attempts [`run`](Self::run) makes.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The storage underneath.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The live counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A snapshot of the metrics.
    pub fn metrics_snapshot(&self) -> DatabaseMetrics {
        self.metrics.snapshot()
    }

    /// Begins a transaction at the current visible version.
    pub fn begin(&self) -> Transaction {
        Transaction::begin(self.storage.clone(), self.metrics.clone())
    }

    /// Runs the read-only `f` in a transaction whose snapshot is `version` (or the
    /// visible version, if that is older). A conflict cannot happen (nothing is
    /// written, and the past does not change); if `f` writes anything, nothing is
    /// committed and the result is an [`Error::ConstraintViolation`]: a reader in the
    /// past cannot write.
    pub fn read_at<T>(
        &self,
        version: u64,
        f: impl FnOnce(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        self.storage.check_open()?;
        let pin = self.storage.pin_at(version);
        let mut txn = Transaction::begin_pinned(self.storage.clone(), self.metrics.clone(), pin);
        match f(&mut txn) {
            Ok(value) => {
                if !txn.is_read_only() {
                    txn.abort();
                    return Err(Error::ConstraintViolation(format!(
                        "this view reads the database as of version {version} and is \
                         read-only; write through the database itself"
                    )));
                }
                txn.commit().map(|_| value)
            }
            Err(e) => {
                let e = txn.take_read_error().unwrap_or(e);
                txn.abort();
                Err(e)
            }
        }
    }

    /// Runs the read-only `f` once on a snapshot of the current visible version whose
    /// reads are judged at `read_time` (time-to-live expiry). A read-only transaction
    /// never conflicts (its reads were consistent by construction), so this keeps no
    /// read set and never retries: the cheapest way to make a one-shot read. If `f`
    /// writes anything, nothing is committed and the result is an
    /// [`Error::Internal`]. Once the storage is closed, fails at once with
    /// [`strata_storage::closed_error`].
    pub fn read<T>(
        &self,
        read_time: strata_core::Timestamp,
        f: impl FnOnce(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        self.storage.check_open()?;
        let pin = self.storage.pin();
        let mut txn = Transaction::begin_with(
            self.storage.clone(),
            self.metrics.clone(),
            pin,
            read_time,
            false,
        );
        match f(&mut txn) {
            Ok(value) => txn.commit().map(|_| value),
            Err(e) => {
                let e = txn.take_read_error().unwrap_or(e);
                txn.abort();
                Err(e)
            }
        }
    }

    /// Runs `f` in a transaction and commits it, retrying the whole closure on
    /// [`Error::Conflict`] up to the configured number of attempts with a short
    /// randomized backoff. Any other error from `f` or from the commit aborts and is
    /// returned as is. Returns `f`'s value and the commit info (`None` when `f` wrote
    /// nothing). Once the storage is closed, fails at once with
    /// [`strata_storage::closed_error`].
    pub fn run<T>(
        &self,
        f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        self.run_with_clock(strata_core::Timestamp::now, f)
    }

    /// [`run`](Self::run), each attempt's reads judged at the time `clock` gives when
    /// the attempt begins (time-to-live expiry; see [`Transaction::read_time`]), for a
    /// caller with its own clock: the clock is read once per attempt, not twice.
    pub fn run_with_clock<T>(
        &self,
        mut clock: impl FnMut() -> strata_core::Timestamp,
        mut f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<(T, Option<CommitInfo>)> {
        // A closed database refuses reads too, not only commits.
        self.storage.check_open()?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let pin = self.storage.pin();
            let mut txn = Transaction::begin_with(
                self.storage.clone(),
                self.metrics.clone(),
                pin,
                clock(),
                true,
            );
            let outcome = match f(&mut txn) {
                Ok(value) => txn.commit().map(|info| (value, info)),
                Err(e) => {
                    // A failed read explains the failure better than what it caused.
                    let e = txn.take_read_error().unwrap_or(e);
                    txn.abort();
                    Err(e)
                }
            };
            match outcome {
                Err(Error::Conflict(msg)) if attempt < self.max_attempts => {
                    // In strict mode the conflicting commit may still be waiting for its
                    // fsync, invisible to a new snapshot: wait for it rather than retry
                    // into the same conflict.
                    self.storage
                        .wait_until_applied_visible(Duration::from_millis(100));
                    backoff(attempt);
                    tracing::trace!(attempt, %msg, "retrying after conflict");
                }
                Err(Error::Conflict(msg)) => {
                    return Err(Error::Conflict(format!(
                        "gave up after {attempt} attempts: {msg}"
                    )))
                }
                other => return other,
            }
        }
    }
}

fn backoff(attempt: u32) {
    if attempt < 3 {
        std::thread::yield_now();
        return;
    }
    // Randomized exponential backoff, capped at ~1 ms, so contending retries spread out.
    let cap = 1u64 << attempt.min(10);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    std::thread::sleep(Duration::from_micros(nanos % cap + 1));
}
