//! Garbage collection: applying the runs' retention policies to the stored versions.
//!
//! What a policy keeps is defined once, by
//! [`RetentionPolicy::retained_from`](strata_storage::RetentionPolicy::retained_from),
//! and readers apply it exactly at read time (in the shared record operations); collection only
//! frees what readers can no longer get, so **no answer depends on when it ran**.
//! What this module decides is *when* to collect, so that memory and the snapshots stay
//! within a small factor of what retention keeps:
//!
//! - **After commits, by bytes written.** The storage map counts the bytes applied to it
//!   ([`MapStats`]). A collection is due once the bytes written since the last one
//!   reach half of what the map held after it (at least [`GC_MIN_BYTES`]): the garbage
//!   a collection leaves behind is then at most about half the data held, and the work
//!   of a collection (one visit per key) is paid for by at least as many bytes written.
//!   A commit-count backstop, [`GC_EVERY_COMMITS`] or one commit per key held,
//!   whichever is more, catches many tiny commits.
//! - **Before every snapshot** (background, explicit or at close): the collector is
//!   registered with the storage as its GC hook (see
//!   [`MvccMap::set_gc_hook`](strata_storage::MvccMap::set_gc_hook)), so no snapshot
//!   persists a hidden version.
//! - **At open**, so that versions the log brings back are dropped without waiting for
//!   the next write.
//!
//! One collection runs at a time; the committer that finds one due runs it after its
//! commit (others carry on, and one that finds a collection running skips it); a
//! snapshot waits for a running collection and then runs its own. Collection works through each run in chunks of
//! [`GC_CHUNK_KEYS`](strata_storage::mvcc::GC_CHUNK_KEYS) keys under the map's write
//! lock, so concurrent writers wait at most one chunk.
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use strata_core::{RunId, Timestamp};
use strata_storage::{GcStats, MapStats, RetentionPolicy, Storage};
use tracing::{debug, info_span, warn};

use crate::runs;

/// A source of "now", injectable so that time-based retention can be tested without
/// sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The fewest bytes written between two collections triggered by writes.
pub const GC_MIN_BYTES: u64 = 256 << 10;

/// The commit-count backstop: at least this many commits pass between two collections
/// triggered by the count (more when the map holds more keys than this).
pub const GC_EVERY_COMMITS: u64 = 1024;

/// Decides when to collect and does it. Shared by the engine and the storage's GC hook;
/// it holds no reference to either, so registering it creates no cycle.
pub(crate) struct Collector {
    clock: parking_lot::RwLock<Clock>,
    /// Set once [`set_clock`](Self::set_clock) replaced the system clock.
    custom_clock: AtomicBool,
    /// Held while a collection runs.
    running: parking_lot::Mutex<()>,
    /// A collection is due once the map's `bytes_applied` reaches this...
    next_bytes: AtomicU64,
    /// ... or its `commits_applied` reaches this.
    next_commits: AtomicU64,
}

impl Collector {
    pub(crate) fn new() -> Collector {
        Collector {
            clock: parking_lot::RwLock::new(Arc::new(Timestamp::now)),
            custom_clock: AtomicBool::new(false),
            running: parking_lot::Mutex::new(()),
            next_bytes: AtomicU64::new(GC_MIN_BYTES),
            next_commits: AtomicU64::new(GC_EVERY_COMMITS),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        // Every operation asks: without a clock set by a test, skip the lock.
        if !self.custom_clock.load(Ordering::Acquire) {
            return Timestamp::now();
        }
        (self.clock.read())()
    }

    pub(crate) fn set_clock(&self, clock: Clock) {
        *self.clock.write() = clock;
        self.custom_clock.store(true, Ordering::Release);
    }

    /// `true` when the writes since the last collection call for one.
    pub(crate) fn is_due(&self, stats: &MapStats) -> bool {
        stats.bytes_applied >= self.next_bytes.load(Ordering::Relaxed)
            || stats.commits_applied >= self.next_commits.load(Ordering::Relaxed)
    }

    /// Collects if a collection is due and none is running.
    pub(crate) fn maybe_collect(&self, storage: &Storage) {
        if self.is_due(&storage.stats()) {
            if let Some(guard) = self.running.try_lock() {
                self.collect_locked(storage, guard);
            }
        }
    }

    /// Collects every run that has a retention policy, after any collection already
    /// running.
    pub(crate) fn collect(&self, storage: &Storage) -> GcStats {
        let guard = self.running.lock();
        self.collect_locked(storage, guard)
    }

    fn collect_locked(&self, storage: &Storage, guard: parking_lot::MutexGuard<'_, ()>) -> GcStats {
        let out = self.collect_all(storage);
        let after = storage.stats();
        self.next_bytes.store(
            after.bytes_applied + GC_MIN_BYTES.max(after.resident_bytes / 2),
            Ordering::Relaxed,
        );
        self.next_commits.store(
            after.commits_applied + GC_EVERY_COMMITS.max(after.keys),
            Ordering::Relaxed,
        );
        drop(guard);
        out
    }

    fn collect_all(&self, storage: &Storage) -> GcStats {
        let span = info_span!("gc");
        let _entered = span.enter();
        let started = Instant::now();
        let before = storage.stats();
        // The readers first: a policy read later can only be newer.
        let (pins, horizon) = storage.pins_and_visible();
        let now = self.now();
        // One read of the run records gives the policies and the runs using TTLs.
        let infos = match runs::run_infos(storage, horizon) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "garbage collection skipped: cannot read the runs' policies");
                return GcStats::default();
            }
        };
        let mut total = GcStats::default();
        let mut runs_collected = 0u64;
        for info in &infos {
            if info.retention.keeps_all() {
                continue;
            }
            runs_collected += 1;
            total.add(collect_run_at(
                storage,
                &info.run_id,
                &info.retention,
                &pins,
                horizon,
                now,
            ));
        }
        // Purged runs: what no snapshot or fork still reads goes.
        total.add(storage.collect_purged());
        // Records whose time to live has passed are deleted (then freed by retention).
        for info in infos.iter().filter(|i| i.uses_ttl) {
            crate::ttl::sweep(storage, &info.run_id, now);
        }
        let after = storage.stats();
        debug!(
            runs = runs_collected,
            pinned_snapshots = pins.len(),
            horizon,
            keys_visited = total.keys_visited,
            versions_dropped = total.entries_dropped,
            keys_removed = total.keys_removed,
            bytes_freed = total.bytes_freed,
            resident_before = before.resident_bytes,
            resident_after = after.resident_bytes,
            elapsed_us = started.elapsed().as_micros() as u64,
            "garbage collected"
        );
        total
    }
}

/// The retention compaction applies to the versions it merges: each run's policy as of
/// the visible version (runs without a record, and keys that are no run's, keep
/// everything), judged at `now`.
pub(crate) fn compaction_retention(
    storage: &Storage,
    now: Timestamp,
) -> Option<strata_storage::CompactionRetention> {
    let horizon = storage.visible_version();
    let policies = match runs::retention_policies(storage, horizon) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "compaction keeps every version: cannot read the runs' policies");
            return None;
        }
    };
    let by_run: std::collections::HashMap<RunId, RetentionPolicy> = policies
        .into_iter()
        .filter(|(_, p)| !p.keeps_all())
        .collect();
    if by_run.is_empty() {
        return None;
    }
    Some(strata_storage::CompactionRetention {
        policy_of: Box::new(move |key: &[u8]| {
            strata_storage::decode_key(key)
                .and_then(|(run, _, _)| by_run.get(&run).copied())
                .unwrap_or(RetentionPolicy::KeepAll)
        }),
        now,
    })
}

/// Collects one run under `policy` for readers at `pins` and at `horizon` or later.
fn collect_run_at(
    storage: &Storage,
    run: &RunId,
    policy: &RetentionPolicy,
    pins: &[u64],
    horizon: u64,
    now: Timestamp,
) -> GcStats {
    let prefix = strata_storage::key::run_prefix(run);
    let end = strata_storage::key::prefix_successor(&prefix);
    let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let stats = storage.gc_range_pinned(Bound::Included(&prefix), end, policy, pins, horizon, now);
    if stats.entries_dropped > 0 {
        debug!(
            run = %run,
            ?policy,
            versions_dropped = stats.entries_dropped,
            bytes_freed = stats.bytes_freed,
            "run garbage-collected"
        );
    }
    stats
}

/// Collects one run under `policy` now (used when a policy is set).
pub(crate) fn collect_run(
    storage: &Storage,
    run: &RunId,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> GcStats {
    let (pins, horizon) = storage.pins_and_visible();
    collect_run_at(storage, run, policy, &pins, horizon, now)
}
