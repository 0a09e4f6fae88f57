//! # strata-concurrency
//!
//! Optimistic (OCC) transactions over [`strata_storage::Storage`].
//!
//! ## Isolation: serializable
//!
//! A [`Transaction`] reads a consistent snapshot — the commit version that was visible
//! when it began — plus its own buffered writes. It records what it read: every point
//! key (present or absent) and every scanned key range. At commit, under the storage's
//! commit lock, it is validated against the latest state: if any key it read, or any key
//! inside a range it scanned, has a version newer than its snapshot, it fails with
//! [`strata_core::Error::Conflict`] (retryable) and writes nothing. Otherwise its writes
//! are committed as one version. Blind writes (writes of keys it never read) never
//! conflict.
//!
//! Because every committed transaction read only data that was still current at its
//! commit point, the outcome equals a serial execution in commit-version order: the
//! classic anomalies — dirty read, dirty write, lost update, fuzzy (non-repeatable)
//! read, read skew, write skew and phantoms — are all prevented (each has a test in
//! `tests/anomalies.rs`).
//!
//! ## Bounded bookkeeping
//!
//! Validation consults the version chains in the store itself (the newest version of
//! each key), so there is no separate map of recently committed write sets to prune:
//! conflict detection keeps no state beyond the open transactions' own read sets.
//!
//! ## Read-only transactions
//!
//! A transaction that wrote nothing commits without taking the commit lock.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod manager;
mod metrics;
mod transaction;

pub use manager::{TransactionManager, DEFAULT_MAX_ATTEMPTS};
pub use metrics::{DatabaseMetrics, Metrics};
pub use transaction::{Transaction, PENDING_VERSION};
