//! [`Strata`]: the database handle.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_concurrency::DatabaseMetrics;
use strata_core::{Error, Result, Version};
use strata_primitives::{internal, Engine, Events, Json, Runs, State, KV};
use strata_storage::Storage;
use strata_vector::Vectors;

use crate::builder::StrataBuilder;
use crate::transaction::Txn;

/// An open StrataDB database.
///
/// The primitives are public fields: `db.kv`, `db.json`, `db.events`, `db.state`,
/// `db.vectors`, `db.runs`. `Strata` is `Send + Sync`; share it between threads with
/// `Arc<Strata>`.
///
/// Dropping a database without [`close`](Strata::close) is safe: what was committed is
/// recovered on the next open, as far as the durability mode had synced it (every mode
/// survives a process crash; buffered and strict also sync on drop).
pub struct Strata {
    /// Key-value pairs.
    pub kv: KV,
    /// JSON documents.
    pub json: Json,
    /// Event streams.
    pub events: Events,
    /// State cells.
    pub state: State,
    /// Vector collections.
    pub vectors: Vectors,
    /// Run management.
    pub runs: Runs,
    pub(crate) engine: Arc<Engine>,
    path: PathBuf,
    ephemeral: bool,
    // Declared last so that it is removed after everything above is dropped.
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Strata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strata")
            .field("path", &self.path)
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

impl Strata {
    /// Opens (or creates) a database in `path` with the default (buffered) durability.
    ///
    /// ```no_run
    /// let db = stratadb::Strata::open("./my-db")?;
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Strata> {
        StrataBuilder::new().path(path.as_ref()).open()
    }

    /// A database with no disk I/O at all; its data is lost when it is dropped.
    ///
    /// ```
    /// let db = stratadb::Strata::ephemeral()?;
    /// assert!(db.is_ephemeral());
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn ephemeral() -> Result<Strata> {
        Strata::from_storage(Storage::ephemeral(), PathBuf::new(), None)
    }

    pub(crate) fn from_storage(
        storage: Storage,
        path: PathBuf,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Strata> {
        let ephemeral = storage.dir().is_none();
        let engine = Engine::new(storage)?;
        let vectors = strata_vector::internal::open(engine.clone())?;
        Ok(Strata {
            kv: internal::kv(engine.clone()),
            json: internal::json(engine.clone()),
            events: internal::events(engine.clone()),
            state: internal::state(engine.clone()),
            vectors,
            runs: internal::runs(engine.clone()),
            engine,
            path,
            ephemeral,
            _temp_dir: temp,
        })
    }

    /// For a database opened [read-only](crate::StrataBuilder::read_only): catches up with
    /// what the writer has made durable since (readers starting now see it). Returns the
    /// new version. For any other database it does nothing and returns the current
    /// version.
    pub fn refresh(&self) -> Result<Version> {
        self.engine.storage().refresh().map(Version::Txn)
    }

    /// `true` for a database opened [read-only](crate::StrataBuilder::read_only).
    pub fn is_read_only(&self) -> bool {
        self.engine.storage().is_read_only()
    }

    /// Forces every commit so far to disk (fsync), whatever the durability mode.
    /// Does nothing for an ephemeral database.
    pub fn flush(&self) -> Result<()> {
        self.engine.storage().flush()
    }

    /// Flushes, writes the vector index files and a snapshot so the next open is fast,
    /// and closes the database. The database is closed even if writing an index file
    /// fails (that error is returned; the next open rebuilds that index from its records).
    ///
    /// Every handle cloned from this database (`db.kv.clone()`, …) fails afterwards with
    /// an [`Error::ConstraintViolation`] saying the database is closed (not
    /// [`is_serious`](Error::is_serious)), reads included; the directory lock is
    /// released at once, so the database can be opened again while such clones live.
    /// The database is closed (and the lock released) even when this returns an error.
    pub fn close(self) -> Result<()> {
        let storage = self.engine.storage();
        // Commits first, so that the index files never run ahead of the durable records.
        let flushed = storage.flush();
        let persisted = match &flushed {
            Ok(()) => self.vectors.persist_indexes().map(|_| ()),
            Err(_) => Ok(()),
        };
        if let Err(e) = &persisted {
            tracing::warn!(error = %e, "writing vector index files failed");
        }
        let closed = storage.close();
        flushed.and(closed).and(persisted)
    }

    /// The database directory (empty for an ephemeral database).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `true` for a database made by [`Strata::ephemeral`].
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Transaction and operation counters.
    pub fn metrics(&self) -> DatabaseMetrics {
        self.engine.manager().metrics_snapshot()
    }

    /// Runs `f` in one transaction spanning any primitives and runs: everything it
    /// writes commits atomically, or nothing does. On a conflict with a concurrent
    /// transaction the closure is run again (so it should have no side effects outside
    /// `txn`); any error it returns aborts the transaction and is returned.
    ///
    /// Reads inside the closure see the transaction's own writes; those carry the
    /// pending version `Version::Txn(0)` and timestamp 0 until the commit (no committed
    /// write ever has version 0; see [`Version::is_pending`](crate::Version::is_pending)).
    ///
    /// ```
    /// use stratadb::prelude::*;
    /// let db = Strata::ephemeral()?;
    /// let run = db.runs.default_run();
    /// db.transaction(|txn| {
    ///     txn.events_append(&run, "trace", json!({"tool": "search", "result": 3}))?;
    ///     txn.state_set(&run, "agent:status", "done")?;
    ///     txn.kv_set(&run, "last_result", 3i64)?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(db.events.count(&run, "trace")?, 1);
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn transaction<T>(&self, mut f: impl FnMut(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        let vectors = &self.vectors;
        let pending = parking_lot::Mutex::new(Vec::new());
        // An error returned by the closure aborts and is returned as is, even a
        // `Conflict`: only conflicts detected at commit make the engine run it again.
        let closure_err = parking_lot::Mutex::new(None);
        let result = self.engine.run(|raw| {
            // A retry starts over: forget index changes of the failed attempt.
            pending.lock().clear();
            let mut txn = Txn::new(raw, vectors, &pending);
            f(&mut txn).map_err(|e| {
                let marker = Error::Internal("the transaction closure failed".into());
                *closure_err.lock() = Some(e);
                marker
            })
        });
        let (value, info) = match result {
            Ok(v) => v,
            Err(e) => return Err(closure_err.into_inner().unwrap_or(e)),
        };
        if let Some(info) = info {
            strata_vector::internal::apply(vectors, pending.into_inner(), info.version);
        }
        Ok(value)
    }
}
