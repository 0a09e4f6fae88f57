//! # strata-storage
//!
//! The storage engine of StrataDB, usable on its own:
//!
//! - [`key`]: the ordered keyspace (run, primitive, user key);
//! - [`mvcc`]: the in-memory multi-version map (version chains, tombstones, GC);
//! - [`wal`] and [`record`]: the write-ahead log, one framed record per commit;
//! - [`snapshot`]: checksummed, block-structured snapshot files;
//! - [`Storage`]: opening, recovery, the commit path, durability modes, snapshots;
//! - [`vfs`]: the file-system seam, and [`testing`] its fault-injecting twin.
//!
//! Values are opaque bytes at this layer; the layers above encode
//! [`strata_core::Value`]s with [`strata_core::codec`].
#![deny(missing_docs)]
// `unsafe` is denied everywhere but in `mapped` (creating a shared file mapping and
// copying a record into it), where each use carries its safety argument.
#![deny(unsafe_code)]

pub mod compaction;
mod durability;
pub mod inspect;
pub mod key;
mod lock;
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
pub mod tree;
pub mod vfs;
pub mod wal;

pub use durability::{
    DurabilityMode, StorageOptions, DEFAULT_BUFFERED_INTERVAL_MS, DEFAULT_BUFFERED_MAX_WRITES,
    DEFAULT_MEMTABLE_SIZE, DEFAULT_SEGMENT_SIZE, DEFAULT_SNAPSHOT_THRESHOLD,
};
pub use key::{decode_key, encode_key, Primitive};
pub use lock::{lock_holder, DirLock, LOCK_FILE};
pub use mvcc::{Entry, GcHook, GcStats, MapStats, MvccMap, Write};
pub use restore::RestoreReport;
pub use retention::RetentionPolicy;
pub use storage::{closed_error, CommitInfo, RecoveryReport, RunStats, SnapshotPin, Storage};
pub use tree::Tree;
