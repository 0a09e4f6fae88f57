//! Durability modes: when a commit reaches the disk.
use std::sync::Arc;

use crate::vfs::{OsVfs, Vfs};

/// Default `interval_ms` of [`DurabilityMode::Buffered`]: 100 ms. An idle database is
/// synced by a background flusher at most this long after a commit.
pub const DEFAULT_BUFFERED_INTERVAL_MS: u64 = 100;
/// Default `max_writes` of [`DurabilityMode::Buffered`]: a sync is also started after
/// this many commits, whichever comes first.
pub const DEFAULT_BUFFERED_MAX_WRITES: u64 = 1_000;

/// How commits of a disk-backed database are made durable.
///
/// Every mode writes each commit's log record to the operating system before the commit
/// returns, so a *process* crash never loses an acknowledged commit; they differ in when
/// the record is `fsync`ed, which decides what a *power loss* can take away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Never fsync commits (only log segment rolls, snapshots, `flush` and close sync).
    /// A power loss may lose a suffix of recent commits; recovery still yields a prefix
    /// of the commit order.
    NoDurability,
    /// A background flusher fsyncs within `interval_ms` of a commit, or as soon as
    /// `max_writes` commits are unsynced. A power loss loses at most that window.
    /// If an fsync fails the database is poisoned: later commits fail with
    /// `Error::Storage`.
    Buffered {
        /// Longest time a commit stays unsynced, in milliseconds.
        interval_ms: u64,
        /// Most commits left unsynced before a sync is started.
        max_writes: u64,
    },
    /// A commit returns only after its record is fsynced. Concurrent committers share
    /// one fsync (group commit).
    Strict,
}

impl Default for DurabilityMode {
    fn default() -> Self {
        DurabilityMode::Buffered {
            interval_ms: DEFAULT_BUFFERED_INTERVAL_MS,
            max_writes: DEFAULT_BUFFERED_MAX_WRITES,
        }
    }
}

/// Default size at which a log segment is closed and a new one started: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Default amount of log written since the last flush that triggers a new one: 128 MiB.
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 128 * 1024 * 1024;
/// Default memory the memtable may hold before it is flushed to a sorted run: 32 MiB
/// (as counted by [`crate::MapStats::resident_bytes`]).
pub const DEFAULT_MEMTABLE_SIZE: u64 = 32 * 1024 * 1024;

/// Options for opening a disk-backed [`crate::Storage`].
#[derive(Clone)]
pub struct StorageOptions {
    /// When commits are synced.
    pub durability: DurabilityMode,
    /// Log segment size limit in bytes.
    pub segment_size: u64,
    /// Log bytes since the last flush that trigger a background flush of the memtable.
    pub snapshot_threshold: u64,
    /// Memtable bytes (see [`crate::MapStats::resident_bytes`]) that trigger a
    /// background flush: the bound on memory held by recent writes. While a flush or a
    /// merge is under way, a commit that finds the memtable at twice this size waits
    /// until the flush has frozen it (the write stall), so the memtable never holds
    /// much more than twice this, plus the frozen one being written.
    pub memtable_size: u64,
    /// Flush the memtable to a sorted run when the database is closed (so the next open
    /// replays no log).
    pub snapshot_on_close: bool,
    /// The file system (the real one unless testing).
    pub vfs: Arc<dyn Vfs>,
    /// Lock the directory against a second open (on for the real file system).
    pub lock_directory: bool,
    /// Open without writing anything, beside a writer that may hold the directory (see
    /// [`crate::Storage::open`]): no lock, no file created, changed or deleted; every
    /// write fails.
    pub read_only: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            durability: DurabilityMode::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            snapshot_threshold: DEFAULT_SNAPSHOT_THRESHOLD,
            memtable_size: DEFAULT_MEMTABLE_SIZE,
            snapshot_on_close: true,
            vfs: Arc::new(OsVfs),
            lock_directory: true,
            read_only: false,
        }
    }
}

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageOptions")
            .field("durability", &self.durability)
            .field("segment_size", &self.segment_size)
            .field("snapshot_threshold", &self.snapshot_threshold)
            .field("memtable_size", &self.memtable_size)
            .field("snapshot_on_close", &self.snapshot_on_close)
            .field("lock_directory", &self.lock_directory)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}
