//! Database metrics, kept with relaxed atomic counters (a few nanoseconds per update).
use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time copy of the database's counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DatabaseMetrics {
    /// Transactions that committed (read-only transactions included), since open.
    pub transactions_committed: u64,
    /// Transactions that aborted: a validation conflict, or an error from the caller's
    /// closure. Each retry of a retried transaction counts.
    pub transactions_aborted: u64,
    /// Transactions currently open.
    pub transactions_active: u64,
    /// `committed / (committed + aborted)`, in `0.0..=1.0`; `1.0` before any transaction.
    pub commit_rate: f64,
    /// Primitive operations performed (each get, set, append, search… counts one).
    pub operations: u64,
}

/// The live counters behind [`DatabaseMetrics`].
#[derive(Debug, Default)]
pub struct Metrics {
    committed: AtomicU64,
    aborted: AtomicU64,
    begun: AtomicU64,
    finished: AtomicU64,
    operations: AtomicU64,
}

impl Metrics {
    pub(crate) fn begun(&self) {
        self.begun.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn committed(&self) {
        self.committed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn aborted(&self) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts `n` primitive operations.
    pub fn record_operations(&self, n: u64) {
        self.operations.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> DatabaseMetrics {
        let committed = self.committed.load(Ordering::Relaxed);
        let aborted = self.aborted.load(Ordering::Relaxed);
        let finished = self.finished.load(Ordering::Relaxed);
        let begun = self.begun.load(Ordering::Relaxed);
        let total = committed + aborted;
        DatabaseMetrics {
            transactions_committed: committed,
            transactions_aborted: aborted,
            transactions_active: begun.saturating_sub(finished),
            commit_rate: if total == 0 {
                1.0
            } else {
                committed as f64 / total as f64
            },
            operations: self.operations.load(Ordering::Relaxed),
        }
    }
}
