//! [`StrataBuilder`]: choosing where and how durably a database lives.
use std::path::{Path, PathBuf};

use strata_core::{Error, Result};
use strata_storage::{DurabilityMode, Storage, StorageOptions};

use crate::strata::Strata;

/// Builder for a [`Strata`] database.
///
/// | constructor | files | log sync | recovery |
/// |---|---|---|---|
/// | [`Strata::ephemeral`] | none | — | no |
/// | `.no_durability().open_temp()` | temp dir (removed on drop) | never | yes |
/// | `.buffered().open()` (default) | your dir | every `interval_ms` / `max_writes` | yes |
/// | `.strict().open()` | your dir | every commit (group commit) | yes |
///
/// ```
/// use stratadb::prelude::*;
/// let db = StrataBuilder::new().no_durability().open_temp()?;
/// db.kv.set("k", 1i64)?;
/// # Ok::<(), stratadb::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct StrataBuilder {
    path: Option<PathBuf>,
    durability: DurabilityMode,
    memtable_size: Option<u64>,
    read_only: bool,
}

impl StrataBuilder {
    /// A builder with the defaults: buffered durability, no path yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The database directory (created if missing). Takes anything `Strata::open`
    /// takes: `&str`, `String`, `&Path`, `PathBuf`, `&TempDir`…
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Write the log to the OS at every commit but never fsync it: survives a process
    /// crash, a power loss may lose recent commits.
    pub fn no_durability(mut self) -> Self {
        self.durability = DurabilityMode::NoDurability;
        self
    }

    /// Deprecated alias of [`no_durability`](Self::no_durability).
    #[deprecated(
        note = "use .no_durability() for disk-backed databases without fsync, or Strata::ephemeral() for no files at all"
    )]
    pub fn in_memory(self) -> Self {
        self.no_durability()
    }

    /// Buffered durability with the defaults (fsync within 100 ms of a commit or after
    /// 1,000 commits). This is the default mode.
    pub fn buffered(mut self) -> Self {
        self.durability = DurabilityMode::default();
        self
    }

    /// Buffered durability: fsync within `interval_ms` of a commit, or as soon as
    /// `max_writes` commits are unsynced.
    pub fn buffered_with(mut self, interval_ms: u64, max_writes: usize) -> Self {
        self.durability = DurabilityMode::Buffered {
            interval_ms,
            max_writes: max_writes as u64,
        };
        self
    }

    /// Strict durability: a commit returns only once it is fsynced.
    pub fn strict(mut self) -> Self {
        self.durability = DurabilityMode::Strict;
        self
    }

    /// Opens the database at the configured path. Fails with
    /// [`Error::ConstraintViolation`] if no path was set.
    pub fn open(self) -> Result<Strata> {
        let path = self.path.clone().ok_or_else(|| {
            Error::ConstraintViolation(
                "no database path: call .path(..), or use .open_temp() or Strata::ephemeral()"
                    .into(),
            )
        })?;
        let storage = Storage::open(&path, self.options())?;
        Strata::from_storage(storage, path, None)
    }

    /// Opens a database in a new temporary directory that is removed when the database
    /// is dropped. A path set with [`path`](Self::path) is ignored.
    pub fn open_temp(self) -> Result<Strata> {
        let dir = tempfile::Builder::new().prefix("stratadb-").tempdir()?;
        let path = dir.path().to_path_buf();
        let storage = Storage::open(&path, self.options())?;
        Strata::from_storage(storage, path, Some(dir))
    }

    /// The memory recent writes may take before they are flushed to a sorted run on
    /// disk (default 32 MiB, at least 1 MiB). Reads of older data go to the runs, which
    /// are memory-mapped: their pages are the operating system's page cache, shared and
    /// reclaimable, not the process's own memory. A larger memtable means fewer, larger
    /// runs and less compaction; a smaller one bounds memory more tightly. While the
    /// background thread flushes or merges runs, a write that finds the memtable at
    /// twice this size waits until the flush has frozen it, so bulk writes slow down to
    /// the pace of the merges instead of holding ever more memory.
    pub fn memtable_size(mut self, bytes: u64) -> Self {
        self.memtable_size = Some(bytes.max(1 << 20));
        self
    }

    /// Opens an existing database **read-only**, beside a process that may have it open
    /// for writing: no lock is taken and nothing is ever written (no file created,
    /// changed or deleted). Every write fails with [`Error::ConstraintViolation`]. The
    /// view is what the writer has made durable when it opens — its sorted runs, and the
    /// log records a later record proves fsynced (so never a strict commit whose fsync
    /// could still fail; the writer's newest commit may show only after its next one) —
    /// and [`Strata::refresh`] moves it forward. Vector search indexes are built when it
    /// opens; reopen to search vectors added since.
    ///
    /// ```no_run
    /// use stratadb::prelude::*;
    /// let reader = StrataBuilder::new().path("./agent-memory").read_only().open()?;
    /// println!("{:?}", reader.kv.get("user:name")?);
    /// reader.refresh()?; // later: catch up with the writer
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn options(&self) -> StorageOptions {
        let defaults = StorageOptions::default();
        StorageOptions {
            durability: self.durability,
            memtable_size: self.memtable_size.unwrap_or(defaults.memtable_size),
            read_only: self.read_only,
            ..defaults
        }
    }
}
