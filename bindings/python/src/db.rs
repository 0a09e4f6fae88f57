//! The database handle, its builder and the transaction handle.
//!
//! ## Sharing and closing
//!
//! A `Strata` Python object and the primitive handles it hands out (`db.kv`, `db.json`…)
//! share one [`Shared`]: a read-write lock around `Option<stratadb::Strata>`. Every call
//! takes the lock for reading (recursively, so a transaction callback may call back into
//! the database), releases the GIL, runs the Rust call and re-acquires the GIL.
//! `close()` marks the database as closing (calls that start from then on raise
//! `ClosedError`), releases the GIL, waits for the write lock (so for calls in flight),
//! takes the database out and closes it.
//!
//! ## Transactions
//!
//! `db.transaction(fn)` runs `fn(txn)` inside `stratadb::Strata::transaction`, with the
//! GIL released while the engine commits and re-acquired to run `fn`. On a commit
//! conflict `fn` is called again (so it must only write through `txn`). The `Txn` object
//! refers to the engine's transaction only while `fn` runs; it is invalidated before the
//! engine's closure returns, and using it later raises `StrataError`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use stratadb::{AtVersion, Strata, StrataBuilder, Timestamp, Txn, Version};

use crate::conv::{opt_versioned, run_id, to_value, vector_arg, PyVersioned};
use crate::errors::{ClosedError, IntoPy, StrataError};
use crate::prims::{PyEvents, PyJson, PyKv, PyRuns, PyState, PyVectors};

/// What the database object and its primitive handles share.
pub struct Shared {
    db: RwLock<Option<Strata>>,
    /// Set by `close()` before it waits for the write lock. Calls that start afterwards
    /// raise `ClosedError` without taking the lock: their recursive read locks would
    /// ignore the waiting writer, so a stream of calls from other threads would keep
    /// `close()` waiting for as long as it lasted. Calls already in flight finish first.
    closing: AtomicBool,
}

/// A shared, closable database.
pub type Db = Arc<Shared>;

impl Shared {
    /// Runs `f` on the open database with the GIL released.
    pub fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Strata) -> stratadb::Result<T> + Send,
    ) -> PyResult<T> {
        if self.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        let guard = self.db.read_recursive();
        let db = guard.as_ref().ok_or_else(closed)?;
        py.detach(|| f(db)).py()
    }

    /// Runs `f` on the open database with the GIL held (for callbacks into Python).
    pub fn with<T>(&self, f: impl FnOnce(&Strata) -> PyResult<T>) -> PyResult<T> {
        if self.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        let guard = self.db.read_recursive();
        let db = guard.as_ref().ok_or_else(closed)?;
        struct Inside;
        impl Drop for Inside {
            fn drop(&mut self) {
                INSIDE.with(|c| c.set(c.get() - 1));
            }
        }
        INSIDE.with(|c| c.set(c.get() + 1));
        let _inside = Inside;
        f(db)
    }
}

thread_local! {
    /// How many `Shared::with` scopes (transaction callbacks) this thread is inside:
    /// closing the database from one would wait for itself.
    static INSIDE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An `async def` transaction function returns a coroutine that nothing would run: its
/// writes would never happen, and the transaction would commit nothing, silently.
fn refuse_coroutine(py: Python<'_>, out: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let is_coroutine = py
        .import("inspect")?
        .call_method1("isawaitable", (out.bind(py),))?
        .is_truthy()?;
    if !is_coroutine {
        return Ok(out);
    }
    if let Ok(close) = out.bind(py).getattr("close") {
        let _ = close.call0(); // no "never awaited" warning
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "the transaction function returned an awaitable: db.transaction runs a plain \
         function (async code can call it through asyncio.to_thread)",
    ))
}

fn closed() -> PyErr {
    ClosedError::new_err("the database is closed")
}

/// A read-only view of the database as of one version (`db.at`, `db.at_time`).
#[pyclass(frozen, module = "stratadb", name = "View")]
pub struct PyView {
    /// Key-value pairs as of the view.
    #[pyo3(get)]
    kv: Py<PyKv>,
    /// JSON documents as of the view.
    #[pyo3(get)]
    json: Py<PyJson>,
    /// Event streams as of the view.
    #[pyo3(get)]
    events: Py<PyEvents>,
    /// State cells as of the view.
    #[pyo3(get)]
    state: Py<PyState>,
    /// Runs as of the view.
    #[pyo3(get)]
    runs: Py<PyRuns>,
    /// The version the view reads at.
    #[pyo3(get)]
    version: u64,
    /// The time the view stands at (µs since the Unix epoch), or `None` when unknown.
    #[pyo3(get)]
    time: Option<u64>,
}

impl PyView {
    fn new(py: Python<'_>, shared: Db, view: AtVersion) -> PyResult<PyView> {
        let version = view.version().as_u64();
        let time = view.time().map(|t| t.as_micros());
        let view = Arc::new(view);
        Ok(PyView {
            kv: Py::new(py, PyKv::in_view(shared.clone(), view.clone()))?,
            json: Py::new(py, PyJson::in_view(shared.clone(), view.clone()))?,
            events: Py::new(py, PyEvents::in_view(shared.clone(), view.clone()))?,
            state: Py::new(py, PyState::in_view(shared.clone(), view.clone()))?,
            runs: Py::new(py, PyRuns::in_view(shared, view))?,
            version,
            time,
        })
    }
}

#[pymethods]
impl PyView {
    fn __repr__(&self) -> String {
        match self.time {
            Some(t) => format!("View(version={}, time={t})", self.version),
            None => format!("View(version={})", self.version),
        }
    }
}

/// An open StrataDB database. Use it as a context manager to close it at the end:
/// `with stratadb.open(path) as db: ...`.
#[pyclass(frozen, module = "stratadb", name = "Strata")]
pub struct PyStrata {
    shared: Db,
    path: String,
    ephemeral: bool,
    /// Key-value pairs.
    #[pyo3(get)]
    kv: Py<PyKv>,
    /// JSON documents.
    #[pyo3(get)]
    json: Py<PyJson>,
    /// Event streams.
    #[pyo3(get)]
    events: Py<PyEvents>,
    /// State cells.
    #[pyo3(get)]
    state: Py<PyState>,
    /// Vector collections.
    #[pyo3(get)]
    vectors: Py<PyVectors>,
    /// Runs.
    #[pyo3(get)]
    runs: Py<PyRuns>,
}

impl PyStrata {
    fn wrap(py: Python<'_>, db: Strata) -> PyResult<PyStrata> {
        let path = db.path().to_string_lossy().into_owned();
        let ephemeral = db.is_ephemeral();
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            closing: AtomicBool::new(false),
        });
        Ok(PyStrata {
            kv: Py::new(py, PyKv::new(shared.clone()))?,
            json: Py::new(py, PyJson::new(shared.clone()))?,
            events: Py::new(py, PyEvents::new(shared.clone()))?,
            state: Py::new(py, PyState::new(shared.clone()))?,
            vectors: Py::new(py, PyVectors::new(shared.clone()))?,
            runs: Py::new(py, PyRuns::new(shared.clone()))?,
            shared,
            path,
            ephemeral,
        })
    }
}

#[pymethods]
impl PyStrata {
    /// Opens (or creates) a database in `path` with the default (buffered) durability.
    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyStrata> {
        let db = py.detach(|| Strata::open(&path)).py()?;
        PyStrata::wrap(py, db)
    }

    /// A database with no files at all; its data is lost when it is closed.
    #[staticmethod]
    fn ephemeral(py: Python<'_>) -> PyResult<PyStrata> {
        let db = py.detach(Strata::ephemeral).py()?;
        PyStrata::wrap(py, db)
    }

    /// A builder to choose the path and durability mode.
    #[staticmethod]
    fn builder() -> PyBuilder {
        PyBuilder::default()
    }

    /// Forces every commit so far to disk (fsync).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.call(py, |db| db.flush())
    }

    /// Flushes, writes index files and a snapshot, and closes the database. Closing
    /// twice is allowed; any other call after closing raises `ClosedError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if INSIDE.with(|c| c.get()) > 0 {
            return Err(StrataError::new_err(
                "cannot close the database inside a transaction function",
            ));
        }
        self.shared.closing.store(true, Ordering::Release);
        let db = py.detach(|| self.shared.db.write().take());
        match db {
            Some(db) => py.detach(|| db.close()).py(),
            None => Ok(()),
        }
    }

    /// The database as it was right after the commit of `version` (an `int` version
    /// returned by writes): a read-only `View` whose `kv`, `json`, `events`, `state` and
    /// `runs` answer every read as of then; writes raise `ConstraintViolationError`.
    fn at(&self, py: Python<'_>, version: u64) -> PyResult<PyView> {
        let view = self.shared.call(py, |db| db.at(Version::Txn(version)))?;
        PyView::new(py, self.shared.clone(), view)
    }

    /// The database as it was at `timestamp` (µs since the Unix epoch, as in
    /// `Versioned.timestamp`): a read-only `View` of every commit made by then, judging
    /// expiries at that time. A time in the future raises `ConstraintViolationError`.
    fn at_time(&self, py: Python<'_>, timestamp: u64) -> PyResult<PyView> {
        let view = self
            .shared
            .call(py, |db| db.at_time(Timestamp(timestamp)))?;
        PyView::new(py, self.shared.clone(), view)
    }

    /// `True` once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire) || self.shared.db.read_recursive().is_none()
    }

    /// The database directory (`""` for an ephemeral database).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// `True` for a database made by `Strata.ephemeral()`.
    fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Transaction counters as a dict: `transactions_committed`,
    /// `transactions_aborted`, `transactions_active`, `commit_rate`, `operations`.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let m = self.shared.call(py, |db| Ok(db.metrics()))?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("transactions_committed", m.transactions_committed)?;
        d.set_item("transactions_aborted", m.transactions_aborted)?;
        d.set_item("transactions_active", m.transactions_active)?;
        d.set_item("commit_rate", m.commit_rate)?;
        d.set_item("operations", m.operations)?;
        Ok(d)
    }

    /// Runs `fn(txn)` in one transaction spanning every primitive and run, retrying it
    /// on a commit conflict; returns what `fn` returns. An exception raised by `fn`
    /// aborts the transaction and propagates.
    fn transaction(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let raised: Mutex<Option<PyErr>> = Mutex::new(None);
        let result = self.shared.with(|db| {
            py.detach(|| {
                db.transaction(|txn| {
                    Python::attach(|py| {
                        let handle = Py::new(py, PyTxn::new(txn)).map_err(|e| stash(&raised, e))?;
                        let out = func.call1(py, (handle.clone_ref(py),));
                        handle.get().finish();
                        let out = out.and_then(|o| refuse_coroutine(py, o));
                        out.map_err(|e| stash(&raised, e))
                    })
                })
            })
            .py()
        });
        match raised.into_inner() {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Benchmark helper: runs `n` calls of `db.kv.get(key)` (`op="get"`) or
    /// `db.kv.put(default run, key, value)` (`op="put"`) in Rust, with the GIL released,
    /// and returns the elapsed seconds: the baseline for the per-call overhead of the
    /// Python binding.
    fn _bench_rust_kv(
        &self,
        py: Python<'_>,
        op: &str,
        key: &str,
        value: &Bound<'_, PyAny>,
        n: u64,
    ) -> PyResult<f64> {
        let v = to_value(value)?;
        let get = match op {
            "get" => true,
            "put" => false,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown op {other:?}"
                )))
            }
        };
        self.shared.call(py, |db| {
            let run = stratadb::RunId::DEFAULT;
            let start = std::time::Instant::now();
            for _ in 0..n {
                if get {
                    std::hint::black_box(db.kv.get(key)?);
                } else {
                    std::hint::black_box(db.kv.put(&run, key, v.clone())?);
                }
            }
            Ok(start.elapsed().as_secs_f64())
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        if self.ephemeral {
            "Strata(ephemeral)".into()
        } else {
            format!("Strata(path={:?})", self.path)
        }
    }
}

fn stash(slot: &Mutex<Option<PyErr>>, e: PyErr) -> stratadb::Error {
    let msg = e.to_string();
    *slot.lock() = Some(e);
    stratadb::Error::Internal(format!("the transaction function raised: {msg}"))
}

/// Chooses where and how durably a database lives:
/// `Strata.builder().path(p).strict().open()`.
#[pyclass(module = "stratadb", name = "StrataBuilder")]
#[derive(Default, Clone)]
pub struct PyBuilder {
    inner: StrataBuilder,
}

#[pymethods]
impl PyBuilder {
    #[new]
    fn new() -> Self {
        Self::default()
    }
    /// The database directory (created if missing).
    fn path(&self, path: std::path::PathBuf) -> Self {
        PyBuilder {
            inner: self.inner.clone().path(path),
        }
    }
    /// Never fsync (a process crash loses nothing; a power loss may lose recent commits).
    fn no_durability(&self) -> Self {
        PyBuilder {
            inner: self.inner.clone().no_durability(),
        }
    }
    /// fsync within 100 ms or 1,000 commits (the default).
    fn buffered(&self) -> Self {
        PyBuilder {
            inner: self.inner.clone().buffered(),
        }
    }
    /// fsync within `interval_ms` or `max_writes` commits.
    fn buffered_with(&self, interval_ms: u64, max_writes: usize) -> Self {
        PyBuilder {
            inner: self.inner.clone().buffered_with(interval_ms, max_writes),
        }
    }
    /// fsync before every commit returns (concurrent commits share an fsync).
    fn strict(&self) -> Self {
        PyBuilder {
            inner: self.inner.clone().strict(),
        }
    }
    /// Opens the database at the configured path.
    fn open(&self, py: Python<'_>) -> PyResult<PyStrata> {
        let b = self.inner.clone();
        let db = py.detach(|| b.open()).py()?;
        PyStrata::wrap(py, db)
    }
    /// Opens a database in a new temporary directory removed when it is closed.
    fn open_temp(&self, py: Python<'_>) -> PyResult<PyStrata> {
        let b = self.inner.clone();
        let db = py.detach(|| b.open_temp()).py()?;
        PyStrata::wrap(py, db)
    }
}

struct TxnPtr(*mut Txn<'static>);
// SAFETY: the pointer is only dereferenced under the `PyTxn::ptr` mutex, while the
// engine's transaction closure that owns the `Txn` is blocked in the Python call.
unsafe impl Send for TxnPtr {}

/// The handle `db.transaction(fn)` passes to `fn`. Its methods take the run first
/// (`None` for the default run), read the transaction's snapshot plus its own writes,
/// and commit together with everything else `fn` writes.
#[pyclass(frozen, module = "stratadb", name = "Txn")]
pub struct PyTxn {
    ptr: Mutex<Option<TxnPtr>>,
}

impl PyTxn {
    fn new(txn: &mut Txn<'_>) -> Self {
        let p = std::ptr::from_mut(txn).cast::<Txn<'static>>();
        PyTxn {
            ptr: Mutex::new(Some(TxnPtr(p))),
        }
    }

    fn finish(&self) {
        *self.ptr.lock() = None;
    }

    fn op<T>(&self, f: impl FnOnce(&mut Txn<'_>) -> stratadb::Result<T>) -> PyResult<T> {
        let guard = self.ptr.lock();
        let p = guard.as_ref().ok_or_else(|| {
            StrataError::new_err("this transaction is finished: use txn only inside its function")
        })?;
        // SAFETY: `finish` clears the pointer (under this mutex) before the closure that
        // owns the `Txn` returns, so while it is `Some` the `Txn` is alive; the mutex
        // gives exclusive access.
        let txn = unsafe { &mut *p.0 };
        f(txn).py()
    }
}

#[pymethods]
impl PyTxn {
    /// Reads a key.
    fn kv_get(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        opt_versioned(py, self.op(|t| t.kv_get(&r, key))?)
    }
    /// Writes a key.
    fn kv_set(&self, run: Option<&str>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.op(|t| t.kv_set(&r, key, v))
    }
    /// Deletes a key; returns whether it existed.
    fn kv_delete(&self, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.op(|t| t.kv_delete(&r, key))
    }
    /// Adds `delta` to an integer key; returns the new value.
    #[pyo3(signature = (run, key, delta=1))]
    fn kv_incr(&self, run: Option<&str>, key: &str, delta: i64) -> PyResult<i64> {
        let r = run_id(run)?;
        self.op(|t| t.kv_incr(&r, key, delta))
    }
    /// Reads a JSON document.
    fn json_get(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        opt_versioned(py, self.op(|t| t.json_get(&r, key))?)
    }
    /// Writes a JSON document.
    fn json_set(&self, run: Option<&str>, key: &str, doc: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = run_id(run)?;
        let v = to_value(doc)?;
        self.op(|t| t.json_set(&r, key, v))
    }
    /// Sets the value at a JSONPath inside an existing document.
    fn json_set_path(
        &self,
        run: Option<&str>,
        key: &str,
        path: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.op(|t| t.json_set_path(&r, key, path, v))
    }
    /// Appends an event (a dict); returns its sequence number.
    fn events_append(
        &self,
        run: Option<&str>,
        stream: &str,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(payload)?;
        self.op(|t| t.events_append(&r, stream, v))
            .map(|v| v.as_u64())
    }
    /// Reads a state cell.
    fn state_get(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        opt_versioned(py, self.op(|t| t.state_get(&r, key))?)
    }
    /// Writes a state cell; returns its new counter.
    fn state_set(&self, run: Option<&str>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.op(|t| t.state_set(&r, key, v)).map(|v| v.as_u64())
    }
    /// Compare-and-swap on a state cell's counter; returns the new counter or None.
    fn state_cas(
        &self,
        run: Option<&str>,
        key: &str,
        expected_counter: Option<u64>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.op(|t| t.state_cas(&r, key, expected_counter, v))
            .map(|o| o.map(|v| v.as_u64()))
    }
    /// Inserts or replaces a vector.
    #[pyo3(signature = (run, collection, key, vector, metadata=None))]
    fn vector_upsert(
        &self,
        run: Option<&str>,
        collection: &str,
        key: &str,
        vector: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let r = run_id(run)?;
        let vec = vector_arg(vector)?;
        let slice = vec.as_slice()?;
        let meta = metadata.map(to_value).transpose()?;
        self.op(|t| t.vector_upsert(&r, collection, key, slice, meta))
    }
    /// Deletes a vector; returns whether it existed.
    fn vector_delete(&self, run: Option<&str>, collection: &str, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.op(|t| t.vector_delete(&r, collection, key))
    }
}
