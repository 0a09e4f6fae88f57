//! # strata-storage
//!
//! The storage engine of StrataDB, usable on its own. It is a small log-structured
//! merge tree with multi-version concurrency control:
//!
//! - every commit gets the next version of **one global sequence** and is written, as one
//!   framed record, to the **write-ahead log** ([`wal`], [`record`]) before it is applied;
//! - recent versions live in memory in the **memtable** ([`mvcc`]), an ordered map from
//!   key to version chain;
//! - when the memtable is full it is **flushed** to an immutable **sorted run** ([`run`]),
//!   a checksummed, block-structured file read in place through a memory map, and a new
//!   **manifest** ([`manifest`]) listing it is atomically renamed into place;
//! - runs are merged in the background by **compaction** ([`compaction`]), which keeps
//!   their number logarithmic in the number of flushes;
//! - readers see the layers — memtable, a frozen memtable being flushed, the runs — as one
//!   store ([`tree`]): a version lives in exactly one layer, layers hold disjoint version
//!   ranges, so the first layer holding a version of a key at or before the reader's
//!   snapshot holds the one it sees;
//! - [`Storage`] ties it together: opening (recovery: the manifest, then the log after the
//!   last flush), the commit path and group commit, durability modes, flush, compaction
//!   and garbage collection of versions retention no longer keeps;
//! - [`vfs`] is the file-system seam, and [`testing`] its fault-injecting twin (power
//!   loss that drops or damages any unsynced page, failing syncs, a full disk).
//!
//! Values are opaque bytes at this layer; the layers above encode
//! [`strata_core::Value`]s with [`strata_core::codec`]. The bytes of every file are in
//! `docs/storage-format.md`, and the crash argument of every step in
//! `docs/durability.md`.
//!
//! ```
//! use std::sync::Arc;
//! use strata_storage::{Storage, StorageOptions, Write};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Storage::open(dir.path(), StorageOptions::default()).unwrap();
//! let put = |k: &str, v: &str| Write { key: k.as_bytes().into(), value: Some(Arc::from(v.as_bytes())) };
//! let first = store.commit(vec![put("agent/goal", "draft")], |_| Ok(())).unwrap();
//! store.checkpoint().unwrap(); // the memtable becomes a sorted run on disk
//! store.commit(vec![put("agent/goal", "final")], |_| Ok(())).unwrap();
//! // The newest version comes from the memtable, the older one from the run.
//! let now = store.get(b"agent/goal", store.visible_version()).unwrap().unwrap();
//! let then = store.get(b"agent/goal", first.version).unwrap().unwrap();
//! assert_eq!((&*now.value.unwrap(), &*then.value.unwrap()), (&b"final"[..], &b"draft"[..]));
//! assert_eq!(store.run_count(), 1);
//! ```
#![deny(missing_docs)]
// `unsafe` is denied everywhere but in `mapped` (creating a shared file mapping,
// copying a record into it, cache prefetch hints, and `malloc_trim`), where each use
// carries its safety argument.
#![deny(unsafe_code)]

pub mod compaction;
mod durability;
mod filter;
mod inline_key;
pub mod inspect;
pub mod key;
pub mod lineage;
mod lock;
mod logical;
pub mod manifest;
mod mapped;
pub mod mvcc;
pub mod record;
mod recovery;
mod restore;
mod retention;
pub mod run;
pub mod snapshot;
mod storage;
pub mod testing;
pub mod timeline;
pub mod tree;
pub mod vfs;
pub mod wal;

pub use durability::{
    DurabilityMode, StorageOptions, DEFAULT_BUFFERED_INTERVAL_MS, DEFAULT_BUFFERED_MAX_WRITES,
    DEFAULT_MEMTABLE_SIZE, DEFAULT_SEGMENT_SIZE, DEFAULT_SNAPSHOT_THRESHOLD,
};
pub use key::{decode_key, encode_key, Primitive};
pub use lock::{lock_holder, DirLock, LOCK_FILE};
pub use mvcc::{
    CompactionRetention, Entry, GcHook, GcStats, ListedKey, MapStats, MvccMap, RetentionHook, Write,
};
pub use restore::RestoreReport;
pub use retention::RetentionPolicy;
pub use storage::{closed_error, CommitInfo, RecoveryReport, RunStats, SnapshotPin, Storage};
pub use timeline::TimePoint;
pub use tree::Tree;

/// Returns the C allocator's free pages to the operating system (glibc's
/// `malloc_trim`; nothing elsewhere). Every checkpoint and merge calls it, since a
/// flushed memtable was many small allocations that glibc would otherwise keep
/// resident; layers above call it after freeing or replacing large structures (a
/// vector index loaded from its file). Takes a few milliseconds on a heap of hundreds
/// of MiB.
pub fn release_free_memory() {
    mapped::ReleaseFreeHeap.release();
}
