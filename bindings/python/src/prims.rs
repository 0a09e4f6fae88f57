//! The primitive handles: `db.kv`, `db.json`, `db.events`, `db.state`, `db.vectors`,
//! `db.runs`. Each mirrors the Rust facade's three levels: the default run
//! (`set(key, value)`), a given run (`set_in(run, key, value)`) and full control
//! (`put(run, key, value)` returning the version). Runs are passed as `str` ids; `None`
//! where a run is expected means the default run. Every call releases the GIL.
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;

use stratadb::{
    AtVersion, CollectionInfo, CollectionOptions, DistanceMetric, Events, Json, Quantization,
    RetentionPolicy, RunInfo, RunState, Runs, State, Strata, Value, Version, Versioned, KV,
};

use crate::conv::{
    filter, from_value, opt_versioned, run_id, to_value, vector_arg, versioned, PyVersioned,
};
use crate::db::Db;

/// Key-value pairs returned by the scans.
type Pairs<'py> = Vec<(String, Bound<'py, PyAny>)>;

fn list_versioned(py: Python<'_>, v: Vec<Versioned<Value>>) -> PyResult<Vec<Py<PyVersioned>>> {
    v.iter().map(|x| Py::new(py, versioned(py, x)?)).collect()
}

/// A time to live in seconds, checked.
fn ttl_arg(seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(PyValueError::new_err(
            "a time to live must be a finite number of seconds > 0",
        ));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|e| PyValueError::new_err(format!("bad time to live: {e}")))
}

/// Key-value pairs (`db.kv`).
#[pyclass(frozen, module = "stratadb", name = "KV")]
pub struct PyKv {
    db: Db,
    /// For a view of the past (`db.at`): the view's handle, used instead of the
    /// database's.
    view: Option<Arc<AtVersion>>,
}

impl PyKv {
    pub(crate) fn new(db: Db) -> Self {
        PyKv { db, view: None }
    }

    pub(crate) fn in_view(db: Db, view: Arc<AtVersion>) -> Self {
        PyKv {
            db,
            view: Some(view),
        }
    }

    /// The handle calls go to: the view's, or the database's.
    fn h<'a>(&'a self, db: &'a Strata) -> &'a KV {
        match &self.view {
            Some(v) => &v.kv,
            None => &db.kv,
        }
    }
}

#[pymethods]
impl PyKv {
    /// Sets a key in the default run.
    fn set(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = to_value(value)?;
        self.db.call(py, |db| self.h(db).set(key, v))
    }
    /// Reads a key of the default run: a `Versioned` or `None`.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyVersioned>>> {
        let r = self.db.call(py, |db| self.h(db).get(key))?;
        opt_versioned(py, r)
    }
    /// `True` if the key exists in the default run.
    fn exists(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.db.call(py, |db| self.h(db).exists(key))
    }
    /// Deletes a key of the default run; returns whether it existed.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.db.call(py, |db| self.h(db).delete(key))
    }
    /// Sets a key in `run`.
    fn set_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db.call(py, |db| self.h(db).set_in(&r, key, v))
    }
    /// Reads a key of `run`.
    fn get_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).get_in(&r, key))?;
        opt_versioned(py, v)
    }
    /// `True` if the key exists in `run`.
    fn exists_in(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).exists_in(&r, key))
    }
    /// Deletes a key of `run`; returns whether it existed.
    fn delete_in(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).delete_in(&r, key))
    }
    /// Sets a key of `run` that expires `ttl_seconds` from now; returns its version.
    fn put_with_ttl(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
        ttl_seconds: f64,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        let ttl = ttl_arg(ttl_seconds)?;
        self.db
            .call(py, |db| self.h(db).put_with_ttl(&r, key, v, ttl))
            .map(|v| v.as_u64())
    }
    /// Sets (seconds) or clears (`None`) a key's expiry without a new version;
    /// `False` if the key does not exist.
    #[pyo3(signature = (run, key, ttl_seconds=None))]
    fn expire(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        ttl_seconds: Option<f64>,
    ) -> PyResult<bool> {
        let r = run_id(run)?;
        let ttl = ttl_seconds.map(ttl_arg).transpose()?;
        self.db.call(py, |db| self.h(db).expire(&r, key, ttl))
    }
    /// Seconds left before the key expires, or `None` if it has no expiry; a missing (or
    /// expired) key raises `NotFoundError`.
    fn ttl(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<Option<f64>> {
        let r = run_id(run)?;
        self.db
            .call(py, |db| self.h(db).ttl(&r, key))
            .map(|d| d.map(|d| d.as_secs_f64()))
    }
    /// Sets a key and returns the version it was written at.
    fn put(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).put(&r, key, v))
            .map(|v| v.as_u64())
    }
    /// The value as of `version` (`NotFoundError` if the key did not exist then).
    fn get_at(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        version: u64,
    ) -> PyResult<PyVersioned> {
        let r = run_id(run)?;
        let v = self
            .db
            .call(py, |db| self.h(db).get_at(&r, key, Version::Txn(version)))?;
        versioned(py, &v)
    }
    /// Versions of a key, newest first, at most `limit`, older than `before`.
    #[pyo3(signature = (run, key, limit=None, before=None))]
    fn history(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        limit: Option<u64>,
        before: Option<u64>,
    ) -> PyResult<Vec<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| {
            self.h(db).history(&r, key, limit, before.map(Version::Txn))
        })?;
        list_versioned(py, v)
    }
    /// Atomically adds `delta` to an integer (a missing key starts at 0); returns it.
    #[pyo3(signature = (run, key, delta=1))]
    fn incr(&self, py: Python<'_>, run: Option<&str>, key: &str, delta: i64) -> PyResult<i64> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).incr(&r, key, delta))
    }
    /// Writes `value` only if the key's version is `expected` (`None`: only if absent).
    fn cas(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        expected: Option<u64>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db.call(py, |db| {
            self.h(db).cas(&r, key, expected.map(Version::Txn), v)
        })
    }
    /// Reads several keys from one snapshot; `None` for missing keys.
    fn mget(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        keys: Vec<String>,
    ) -> PyResult<Vec<Option<Py<PyVersioned>>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.h(db).mget(&r, &refs)
        })?;
        v.into_iter().map(|x| opt_versioned(py, x)).collect()
    }
    /// Writes several keys in one transaction (a dict or a sequence of pairs); returns
    /// their common version.
    fn mset(&self, py: Python<'_>, run: Option<&str>, entries: &Bound<'_, PyAny>) -> PyResult<u64> {
        let r = run_id(run)?;
        let mut owned: Vec<(String, Value)> = Vec::new();
        if let Ok(d) = entries.cast::<PyDict>() {
            for (k, v) in d.iter() {
                owned.push((k.extract()?, to_value(&v)?));
            }
        } else {
            for item in entries.try_iter()? {
                let item = item?;
                let (k, v): (String, Bound<'_, PyAny>) = item.extract()?;
                owned.push((k, to_value(&v)?));
            }
        }
        let (keys, vals): (Vec<String>, Vec<Value>) = owned.into_iter().unzip();
        self.db
            .call(py, |db| {
                let refs: Vec<(&str, Value)> = keys.iter().map(String::as_str).zip(vals).collect();
                self.h(db).mset(&r, &refs)
            })
            .map(|v| v.as_u64())
    }
    /// Deletes several keys in one transaction; returns how many existed.
    fn mdelete(&self, py: Python<'_>, run: Option<&str>, keys: Vec<String>) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.h(db).mdelete(&r, &refs)
        })
    }
    /// Keys starting with `prefix`, sorted, at most `limit`.
    #[pyo3(signature = (run, prefix="", limit=None))]
    fn keys(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        prefix: &str,
        limit: Option<usize>,
    ) -> PyResult<Vec<String>> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).keys(&r, prefix, limit))
    }
    /// Keys and values starting with `prefix`, sorted by key, from one snapshot of the
    /// values (a binding convenience: `keys` then `mget` in one call).
    #[pyo3(signature = (run, prefix="", limit=None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        run: Option<&str>,
        prefix: &str,
        limit: Option<usize>,
    ) -> PyResult<Pairs<'py>> {
        let r = run_id(run)?;
        let (keys, vals) = self.db.call(py, |db| {
            let keys = self.h(db).keys(&r, prefix, limit)?;
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let vals = self.h(db).mget(&r, &refs)?;
            Ok((keys, vals))
        })?;
        let mut out = Vec::with_capacity(keys.len());
        for (k, v) in keys.into_iter().zip(vals) {
            if let Some(v) = v {
                out.push((k, from_value(py, &v.value)?));
            }
        }
        Ok(out)
    }
    /// `scan` of several prefixes in one call (one list of pairs per prefix).
    fn scan_prefixes<'py>(
        &self,
        py: Python<'py>,
        run: Option<&str>,
        prefixes: Vec<String>,
    ) -> PyResult<Vec<Pairs<'py>>> {
        let r = run_id(run)?;
        let found = self.db.call(py, |db| {
            let mut out = Vec::with_capacity(prefixes.len());
            for p in &prefixes {
                let keys = self.h(db).keys(&r, p, None)?;
                let vals = if keys.is_empty() {
                    Vec::new()
                } else {
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    self.h(db).mget(&r, &refs)?
                };
                out.push((keys, vals));
            }
            Ok(out)
        })?;
        found
            .into_iter()
            .map(|(keys, vals)| {
                keys.into_iter()
                    .zip(vals)
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .map(|(k, v)| Ok((k, from_value(py, &v.value)?)))
                    .collect()
            })
            .collect()
    }
    /// Copies every key starting with `src_prefix` to the same key with `dst_prefix`
    /// instead, in one transaction, without converting the values to Python; returns
    /// how many keys were copied (a binding convenience used by `copy_thread`).
    fn copy_prefix(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        src_prefix: &str,
        dst_prefix: &str,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| {
            let keys = self.h(db).keys(&r, src_prefix, None)?;
            if keys.is_empty() {
                return Ok(0);
            }
            db.transaction(|txn| {
                let mut n = 0;
                for k in &keys {
                    if let Some(v) = txn.kv_get(&r, k)? {
                        let dst = format!("{dst_prefix}{}", &k[src_prefix.len()..]);
                        txn.kv_set(&r, &dst, v.value)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
        })
    }
    /// Deletes every key starting with `prefix` in one transaction; returns how many.
    fn delete_prefix(&self, py: Python<'_>, run: Option<&str>, prefix: &str) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| {
            let keys = self.h(db).keys(&r, prefix, None)?;
            if keys.is_empty() {
                return Ok(0);
            }
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.h(db).mdelete(&r, &refs)
        })
    }
}

/// JSON documents (`db.json`).
#[pyclass(frozen, module = "stratadb", name = "Json")]
pub struct PyJson {
    db: Db,
    /// For a view of the past (`db.at`): the view's handle, used instead of the
    /// database's.
    view: Option<Arc<AtVersion>>,
}

impl PyJson {
    pub(crate) fn new(db: Db) -> Self {
        PyJson { db, view: None }
    }

    pub(crate) fn in_view(db: Db, view: Arc<AtVersion>) -> Self {
        PyJson {
            db,
            view: Some(view),
        }
    }

    /// The handle calls go to: the view's, or the database's.
    fn h<'a>(&'a self, db: &'a Strata) -> &'a Json {
        match &self.view {
            Some(v) => &v.json,
            None => &db.json,
        }
    }
}

#[pymethods]
impl PyJson {
    /// Sets a document in the default run; returns its version.
    fn set(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).set(key, v))
            .map(|v| v.as_u64())
    }
    /// Reads a document of the default run.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyVersioned>>> {
        let v = self.db.call(py, |db| self.h(db).get(key))?;
        opt_versioned(py, v)
    }
    /// Sets a document in `run`; returns its version.
    fn set_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).set_in(&r, key, v))
            .map(|v| v.as_u64())
    }
    /// Sets a document in `run` that expires `ttl_seconds` from now; returns its version.
    fn set_with_ttl(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
        ttl_seconds: f64,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        let ttl = ttl_arg(ttl_seconds)?;
        self.db
            .call(py, |db| self.h(db).set_with_ttl(&r, key, v, ttl))
            .map(|v| v.as_u64())
    }
    /// Sets (seconds) or clears (`None`) a document's expiry without a new version;
    /// `False` if the document does not exist.
    #[pyo3(signature = (run, key, ttl_seconds=None))]
    fn expire(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        ttl_seconds: Option<f64>,
    ) -> PyResult<bool> {
        let r = run_id(run)?;
        let ttl = ttl_seconds.map(ttl_arg).transpose()?;
        self.db.call(py, |db| self.h(db).expire(&r, key, ttl))
    }
    /// Seconds left before the document expires, or `None` if it has no expiry; a missing
    /// (or expired) document raises `NotFoundError`.
    fn ttl(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<Option<f64>> {
        let r = run_id(run)?;
        self.db
            .call(py, |db| self.h(db).ttl(&r, key))
            .map(|d| d.map(|d| d.as_secs_f64()))
    }
    /// Reads a document of `run`.
    fn get_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).get_in(&r, key))?;
        opt_versioned(py, v)
    }
    /// `True` if the document exists.
    fn exists(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).exists(&r, key))
    }
    /// Deletes a document; returns whether it existed.
    fn delete(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).delete(&r, key))
    }
    /// The value at a JSONPath.
    fn get_path(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        path: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).get_path(&r, key, path))?;
        opt_versioned(py, v)
    }
    /// Sets the value at a JSONPath; returns the version.
    fn set_path(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        path: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).set_path(&r, key, path, v))
            .map(|v| v.as_u64())
    }
    /// Deletes what a JSONPath selects; returns how many values were removed.
    fn delete_path(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        path: &str,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).delete_path(&r, key, path))
    }
    /// Merges a patch (RFC 7396) at a JSONPath; returns the version.
    fn merge(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        path: &str,
        patch: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(patch)?;
        self.db
            .call(py, |db| self.h(db).merge(&r, key, path, v))
            .map(|v| v.as_u64())
    }
    /// The document as of `version`.
    fn get_at(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        version: u64,
    ) -> PyResult<PyVersioned> {
        let r = run_id(run)?;
        let v = self
            .db
            .call(py, |db| self.h(db).get_at(&r, key, Version::Txn(version)))?;
        versioned(py, &v)
    }
    /// Versions of a document, newest first.
    #[pyo3(signature = (run, key, limit=None, before=None))]
    fn history(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        limit: Option<u64>,
        before: Option<u64>,
    ) -> PyResult<Vec<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| {
            self.h(db).history(&r, key, limit, before.map(Version::Txn))
        })?;
        list_versioned(py, v)
    }
    /// Document keys starting with `prefix`, sorted.
    #[pyo3(signature = (run, prefix="", limit=None))]
    fn keys(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        prefix: &str,
        limit: Option<usize>,
    ) -> PyResult<Vec<String>> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).keys(&r, prefix, limit))
    }
}

/// Event streams (`db.events`).
#[pyclass(frozen, module = "stratadb", name = "Events")]
pub struct PyEvents {
    db: Db,
    /// For a view of the past (`db.at`): the view's handle, used instead of the
    /// database's.
    view: Option<Arc<AtVersion>>,
}

impl PyEvents {
    pub(crate) fn new(db: Db) -> Self {
        PyEvents { db, view: None }
    }

    pub(crate) fn in_view(db: Db, view: Arc<AtVersion>) -> Self {
        PyEvents {
            db,
            view: Some(view),
        }
    }

    /// The handle calls go to: the view's, or the database's.
    fn h<'a>(&'a self, db: &'a Strata) -> &'a Events {
        match &self.view {
            Some(v) => &v.events,
            None => &db.events,
        }
    }
}

#[pymethods]
impl PyEvents {
    /// Appends an event (a dict) to a stream of the default run; returns its sequence.
    fn append(&self, py: Python<'_>, stream: &str, payload: &Bound<'_, PyAny>) -> PyResult<u64> {
        let v = to_value(payload)?;
        self.db
            .call(py, |db| self.h(db).append(stream, v))
            .map(|v| v.as_u64())
    }
    /// The first `limit` events of a stream of the default run.
    fn read(&self, py: Python<'_>, stream: &str, limit: usize) -> PyResult<Vec<Py<PyVersioned>>> {
        let v = self.db.call(py, |db| self.h(db).read(stream, limit))?;
        list_versioned(py, v)
    }
    /// Appends an event to a stream of `run`.
    fn append_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        stream: &str,
        payload: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(payload)?;
        self.db
            .call(py, |db| self.h(db).append_in(&r, stream, v))
            .map(|v| v.as_u64())
    }
    /// The first `limit` events of a stream of `run`.
    fn read_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        stream: &str,
        limit: usize,
    ) -> PyResult<Vec<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self
            .db
            .call(py, |db| self.h(db).read_in(&r, stream, limit))?;
        list_versioned(py, v)
    }
    /// Events with sequence numbers in `start..=end`.
    fn range(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        stream: &str,
        start: u64,
        end: u64,
    ) -> PyResult<Vec<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self
            .db
            .call(py, |db| self.h(db).range(&r, stream, start, end))?;
        list_versioned(py, v)
    }
    /// The latest event of a stream.
    fn head(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        stream: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).head(&r, stream))?;
        opt_versioned(py, v)
    }
    /// The number of events in a stream.
    fn count(&self, py: Python<'_>, run: Option<&str>, stream: &str) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).count(&r, stream))
    }
    /// Names of the streams of `run`, sorted.
    fn streams(&self, py: Python<'_>, run: Option<&str>) -> PyResult<Vec<String>> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).streams(&r))
    }
}

/// State cells (`db.state`).
#[pyclass(frozen, module = "stratadb", name = "State")]
pub struct PyState {
    db: Db,
    /// For a view of the past (`db.at`): the view's handle, used instead of the
    /// database's.
    view: Option<Arc<AtVersion>>,
}

impl PyState {
    pub(crate) fn new(db: Db) -> Self {
        PyState { db, view: None }
    }

    pub(crate) fn in_view(db: Db, view: Arc<AtVersion>) -> Self {
        PyState {
            db,
            view: Some(view),
        }
    }

    /// The handle calls go to: the view's, or the database's.
    fn h<'a>(&'a self, db: &'a Strata) -> &'a State {
        match &self.view {
            Some(v) => &v.state,
            None => &db.state,
        }
    }
}

#[pymethods]
impl PyState {
    /// Sets a cell of the default run; returns its new counter.
    fn set(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).set(key, v))
            .map(|v| v.as_u64())
    }
    /// Reads a cell of the default run.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyVersioned>>> {
        let v = self.db.call(py, |db| self.h(db).get(key))?;
        opt_versioned(py, v)
    }
    /// Sets a cell of `run`.
    fn set_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).set_in(&r, key, v))
            .map(|v| v.as_u64())
    }
    /// Reads a cell of `run`.
    fn get_in(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
    ) -> PyResult<Option<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).get_in(&r, key))?;
        opt_versioned(py, v)
    }
    /// Writes only if the cell's counter is `expected_counter` (`None`: only if absent);
    /// returns the new counter, or `None` if it did not match.
    fn cas(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        expected_counter: Option<u64>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Option<u64>> {
        let r = run_id(run)?;
        let v = to_value(value)?;
        self.db
            .call(py, |db| self.h(db).cas(&r, key, expected_counter, v))
            .map(|o| o.map(|v| v.as_u64()))
    }
    /// Deletes a cell; returns whether it existed.
    fn delete(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).delete(&r, key))
    }
    /// `True` if the cell exists.
    fn exists(&self, py: Python<'_>, run: Option<&str>, key: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db.call(py, |db| self.h(db).exists(&r, key))
    }
    /// Versions of a cell, newest first.
    #[pyo3(signature = (run, key, limit=None))]
    fn history(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        key: &str,
        limit: Option<u64>,
    ) -> PyResult<Vec<Py<PyVersioned>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| self.h(db).history(&r, key, limit))?;
        list_versioned(py, v)
    }
}

/// One vector search result.
#[pyclass(frozen, module = "stratadb", name = "VectorMatch")]
pub struct PyVectorMatch {
    /// The vector's key.
    #[pyo3(get)]
    key: String,
    /// Similarity score (higher is better for every metric).
    #[pyo3(get)]
    score: f32,
    /// The vector's metadata.
    #[pyo3(get)]
    metadata: Py<PyAny>,
    /// The vector, when the search asked for it.
    #[pyo3(get)]
    vector: Option<Vec<f32>>,
}

#[pymethods]
impl PyVectorMatch {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "VectorMatch(key={:?}, score={}, metadata={})",
            self.key,
            self.score,
            self.metadata.bind(py).repr()?
        ))
    }
}

fn metric(name: &str) -> PyResult<DistanceMetric> {
    match name {
        "cosine" => Ok(DistanceMetric::Cosine),
        "euclidean" => Ok(DistanceMetric::Euclidean),
        "dot_product" | "dot" => Ok(DistanceMetric::DotProduct),
        other => Err(PyValueError::new_err(format!(
            "unknown metric {other:?}: use \"cosine\", \"euclidean\" or \"dot_product\""
        ))),
    }
}

fn quantization(name: &str) -> PyResult<Quantization> {
    match name {
        "none" => Ok(Quantization::None),
        "int8" => Ok(Quantization::Int8),
        other => Err(PyValueError::new_err(format!(
            "unknown quantization {other:?}: use \"none\" or \"int8\""
        ))),
    }
}

fn collection_dict<'py>(py: Python<'py>, c: &CollectionInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &c.name)?;
    d.set_item("dimension", c.dimension)?;
    d.set_item("metric", c.metric.name())?;
    d.set_item("count", c.count)?;
    d.set_item("created_at", c.created_at.as_micros())?;
    d.set_item("quantization", c.quantization.name())?;
    Ok(d)
}

/// Vector collections (`db.vectors`).
#[pyclass(frozen, module = "stratadb", name = "Vectors")]
pub struct PyVectors {
    db: Db,
}

impl PyVectors {
    pub(crate) fn new(db: Db) -> Self {
        PyVectors { db }
    }
}

#[pymethods]
impl PyVectors {
    /// Creates a collection; `metric` is "cosine", "euclidean" or "dot_product";
    /// `quantization` "none" or "int8" (the graph walks compare an int8 copy of each
    /// vector and re-rank with the full vectors: faster inserts and searches, exact
    /// scores).
    #[pyo3(signature = (run, name, dimension, metric="cosine", quantization="none"))]
    fn create_collection(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        name: &str,
        dimension: usize,
        metric: &str,
        quantization: &str,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let m = self::metric(metric)?;
        let options = CollectionOptions::default().quantization(self::quantization(quantization)?);
        self.db
            .call(py, |db| {
                db.vectors
                    .create_collection_with(&r, name, dimension, m, options)
            })
            .map(|v| v.as_u64())
    }
    /// Deletes a collection and its vectors; returns whether it existed.
    fn delete_collection(&self, py: Python<'_>, run: Option<&str>, name: &str) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db
            .call(py, |db| db.vectors.delete_collection(&r, name))
    }
    /// The collections of `run` as dicts (name, dimension, metric, count, created_at).
    fn list_collections<'py>(
        &self,
        py: Python<'py>,
        run: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| db.vectors.list_collections(&r))?;
        v.iter().map(|c| collection_dict(py, c)).collect()
    }
    /// One collection's description, or `None`.
    fn collection_info<'py>(
        &self,
        py: Python<'py>,
        run: Option<&str>,
        name: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let r = run_id(run)?;
        let v = self
            .db
            .call(py, |db| db.vectors.collection_info(&r, name))?;
        v.map(|c| collection_dict(py, &c)).transpose()
    }
    /// The number of vectors in a collection.
    fn count(&self, py: Python<'_>, run: Option<&str>, name: &str) -> PyResult<u64> {
        let r = run_id(run)?;
        self.db.call(py, |db| db.vectors.count(&r, name))
    }
    /// Inserts or replaces a vector (a numpy float32 array, used without copying, or a
    /// sequence of numbers) with optional metadata; returns the version.
    #[pyo3(signature = (run, collection, key, vector, metadata=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        collection: &str,
        key: &str,
        vector: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let r = run_id(run)?;
        let vec = vector_arg(vector)?;
        let slice = vec.as_slice()?;
        let meta = metadata.map(to_value).transpose()?;
        self.db
            .call(py, |db| db.vectors.upsert(&r, collection, key, slice, meta))
            .map(|v| v.as_u64())
    }
    /// A stored vector: `Versioned` whose value is `{"key", "vector", "metadata"}`.
    fn get(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        collection: &str,
        key: &str,
    ) -> PyResult<Option<PyVersioned>> {
        let r = run_id(run)?;
        let v = self.db.call(py, |db| db.vectors.get(&r, collection, key))?;
        v.map(|v| {
            let d = PyDict::new(py);
            d.set_item("key", &v.value.key)?;
            d.set_item("vector", PyList::new(py, &v.value.vector)?)?;
            d.set_item(
                "metadata",
                match &v.value.metadata {
                    Some(m) => from_value(py, m)?,
                    None => py.None().into_bound(py),
                },
            )?;
            Ok(PyVersioned {
                value: d.into_any().unbind(),
                version: v.version.as_u64(),
                version_kind: crate::conv::version_kind(v.version),
                timestamp: v.timestamp.as_micros(),
            })
        })
        .transpose()
    }
    /// Deletes a vector; returns whether it existed.
    fn delete(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        collection: &str,
        key: &str,
    ) -> PyResult<bool> {
        let r = run_id(run)?;
        self.db
            .call(py, |db| db.vectors.delete(&r, collection, key))
    }
    /// The `k` most similar vectors, best first, optionally only those whose metadata
    /// matches `filter` (a dict, see the package docs) and scoring at least `threshold`.
    #[pyo3(signature = (run, collection, query, k, filter=None, threshold=None, with_vectors=false))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        run: Option<&str>,
        collection: &str,
        query: &Bound<'_, PyAny>,
        k: usize,
        filter: Option<&Bound<'_, PyAny>>,
        threshold: Option<f32>,
        with_vectors: bool,
    ) -> PyResult<Vec<PyVectorMatch>> {
        let r = run_id(run)?;
        let q = vector_arg(query)?;
        let slice = q.as_slice()?;
        let f = filter.map(self::filter_arg).transpose()?;
        let hits = self.db.call(py, |db| match (threshold, with_vectors) {
            // The matches scoring at least `t` are a prefix of the ranking, so the top
            // `k` with their vectors, cut at `t`, are what the threshold search returns
            // (which refuses a NaN threshold).
            (Some(t), true) if !t.is_nan() => db
                .vectors
                .search_with_vectors(&r, collection, slice, k, f)
                .map(|mut hits| {
                    hits.retain(|h| h.score >= t);
                    hits
                }),
            (Some(t), _) => db
                .vectors
                .search_with_threshold(&r, collection, slice, k, t, f),
            (None, true) => db.vectors.search_with_vectors(&r, collection, slice, k, f),
            (None, false) => db.vectors.search(&r, collection, slice, k, f),
        })?;
        hits.into_iter()
            .map(|h| {
                Ok(PyVectorMatch {
                    key: h.key,
                    score: h.score,
                    metadata: match &h.metadata {
                        Some(m) => from_value(py, m)?.unbind(),
                        None => py.None(),
                    },
                    vector: h.vector,
                })
            })
            .collect()
    }
}

fn filter_arg(obj: &Bound<'_, PyAny>) -> PyResult<stratadb::SearchFilter> {
    filter(obj)
}

fn state_name(s: RunState) -> &'static str {
    match s {
        RunState::Active => "active",
        RunState::Paused => "paused",
        RunState::Completed => "completed",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
        RunState::Archived => "archived",
    }
}

fn parse_state(s: &str) -> PyResult<RunState> {
    Ok(match s {
        "active" => RunState::Active,
        "paused" => RunState::Paused,
        "completed" => RunState::Completed,
        "failed" => RunState::Failed,
        "cancelled" => RunState::Cancelled,
        "archived" => RunState::Archived,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown run state {other:?}"
            )))
        }
    })
}

fn retention_dict<'py>(py: Python<'py>, p: &RetentionPolicy) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match p {
        RetentionPolicy::KeepAll => d.set_item("policy", "keep_all")?,
        RetentionPolicy::KeepLast(n) => {
            d.set_item("policy", "keep_last")?;
            d.set_item("n", *n)?;
        }
        RetentionPolicy::KeepFor(t) => {
            d.set_item("policy", "keep_for")?;
            d.set_item("seconds", t.as_secs_f64())?;
        }
    }
    Ok(d)
}

fn run_info(py: Python<'_>, v: &Versioned<RunInfo>) -> PyResult<PyVersioned> {
    let i = &v.value;
    let d = PyDict::new(py);
    d.set_item("run_id", i.run_id.to_string())?;
    d.set_item("state", state_name(i.state))?;
    d.set_item("created_at", i.created_at.as_micros())?;
    d.set_item("updated_at", i.updated_at.as_micros())?;
    d.set_item(
        "metadata",
        match &i.metadata {
            Some(m) => from_value(py, m)?,
            None => py.None().into_bound(py),
        },
    )?;
    d.set_item("error", i.error.clone())?;
    d.set_item("retention", retention_dict(py, &i.retention)?)?;
    d.set_item(
        "history_complete_from",
        i.history_complete_from.map(|v| v.as_u64()),
    )?;
    d.set_item("uses_ttl", i.uses_ttl)?;
    match &i.forked_from {
        Some(o) => {
            let f = PyDict::new(py);
            f.set_item("parent", o.parent.to_string())?;
            f.set_item("version", o.version.as_u64())?;
            d.set_item("forked_from", f)?;
        }
        None => d.set_item("forked_from", py.None())?,
    }
    Ok(PyVersioned {
        value: d.into_any().unbind(),
        version: v.version.as_u64(),
        version_kind: crate::conv::version_kind(v.version),
        timestamp: v.timestamp.as_micros(),
    })
}

fn change_dict<'py>(py: Python<'py>, c: &stratadb::Change) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let (primitive, kind) = (c.primitive.name(), c.kind.name());
    d.set_item("primitive", primitive)?;
    d.set_item("container", c.container.clone())?;
    d.set_item("key", c.key.clone())?;
    d.set_item("kind", kind)?;
    let side = |v: &Option<Versioned<Value>>| -> PyResult<Py<PyAny>> {
        Ok(match v {
            Some(v) => Py::new(py, crate::conv::versioned(py, v)?)?.into_any(),
            None => py.None(),
        })
    };
    d.set_item("before", side(&c.before)?)?;
    d.set_item("after", side(&c.after)?)?;
    Ok(d)
}

/// Runs (`db.runs`): isolated namespaces with a lifecycle.
#[pyclass(frozen, module = "stratadb", name = "Runs")]
pub struct PyRuns {
    db: Db,
    /// For a view of the past (`db.at`): the view's handle, used instead of the
    /// database's.
    view: Option<Arc<AtVersion>>,
}

impl PyRuns {
    pub(crate) fn new(db: Db) -> Self {
        PyRuns { db, view: None }
    }

    pub(crate) fn in_view(db: Db, view: Arc<AtVersion>) -> Self {
        PyRuns {
            db,
            view: Some(view),
        }
    }

    /// The handle calls go to: the view's, or the database's.
    fn h<'a>(&'a self, db: &'a Strata) -> &'a Runs {
        match &self.view {
            Some(v) => &v.runs,
            None => &db.runs,
        }
    }
}

#[pymethods]
impl PyRuns {
    /// The id of the default run.
    fn default_run(&self) -> String {
        stratadb::RunId::DEFAULT.to_string()
    }
    /// Creates an active run with optional metadata; returns its id.
    #[pyo3(signature = (metadata=None))]
    fn create(&self, py: Python<'_>, metadata: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
        let m = metadata.map(to_value).transpose()?;
        self.db
            .call(py, |db| self.h(db).create(m))
            .map(|r| r.to_string())
    }
    /// The run's information (`Versioned` of a dict), or `None`.
    fn get(&self, py: Python<'_>, run: &str) -> PyResult<Option<PyVersioned>> {
        let r = run_id(Some(run))?;
        let v = self.db.call(py, |db| self.h(db).get(&r))?;
        v.map(|v| run_info(py, &v)).transpose()
    }
    /// Runs in creation order, optionally only those in `state`, at most `limit`.
    #[pyo3(signature = (state=None, limit=None))]
    fn list(
        &self,
        py: Python<'_>,
        state: Option<&str>,
        limit: Option<u64>,
    ) -> PyResult<Vec<PyVersioned>> {
        let s = state.map(parse_state).transpose()?;
        let v = self.db.call(py, |db| self.h(db).list(s, limit))?;
        v.iter().map(|x| run_info(py, x)).collect()
    }
    /// `True` if the run exists.
    fn exists(&self, py: Python<'_>, run: &str) -> PyResult<bool> {
        let r = run_id(Some(run))?;
        self.db.call(py, |db| self.h(db).exists(&r))
    }
    /// `True` if the run exists and is active.
    fn is_active(&self, py: Python<'_>, run: &str) -> PyResult<bool> {
        let r = run_id(Some(run))?;
        self.db.call(py, |db| self.h(db).is_active(&r))
    }
    /// Marks the run completed.
    fn close(&self, py: Python<'_>, run: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).close(&r))
            .map(|v| v.as_u64())
    }
    /// Pauses an active run.
    fn pause(&self, py: Python<'_>, run: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).pause(&r))
            .map(|v| v.as_u64())
    }
    /// Resumes a paused run.
    fn resume(&self, py: Python<'_>, run: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).resume(&r))
            .map(|v| v.as_u64())
    }
    /// Marks the run failed with an error message.
    fn fail(&self, py: Python<'_>, run: &str, error: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).fail(&r, error))
            .map(|v| v.as_u64())
    }
    /// Cancels the run.
    fn cancel(&self, py: Python<'_>, run: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).cancel(&r))
            .map(|v| v.as_u64())
    }
    /// Archives the run (terminal).
    fn archive(&self, py: Python<'_>, run: &str) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).archive(&r))
            .map(|v| v.as_u64())
    }
    /// Replaces the run's metadata.
    fn update_metadata(
        &self,
        py: Python<'_>,
        run: &str,
        metadata: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        let m = to_value(metadata)?;
        self.db
            .call(py, |db| self.h(db).update_metadata(&r, m))
            .map(|v| v.as_u64())
    }
    /// Sets the version-history retention: keep everything (no argument), the newest
    /// `keep_last` versions, or versions younger than `keep_for_seconds`.
    #[pyo3(signature = (run, keep_last=None, keep_for_seconds=None))]
    fn set_retention(
        &self,
        py: Python<'_>,
        run: &str,
        keep_last: Option<usize>,
        keep_for_seconds: Option<f64>,
    ) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        let policy = match (keep_last, keep_for_seconds) {
            (None, None) => RetentionPolicy::KeepAll,
            (Some(n), None) => RetentionPolicy::KeepLast(n),
            (None, Some(s)) if s.is_finite() && s >= 0.0 => RetentionPolicy::KeepFor(
                Duration::try_from_secs_f64(s)
                    .map_err(|e| PyValueError::new_err(format!("bad keep_for_seconds {s}: {e}")))?,
            ),
            _ => {
                return Err(PyValueError::new_err(
                    "give at most one of keep_last and keep_for_seconds (a finite number >= 0)",
                ))
            }
        };
        self.db
            .call(py, |db| self.h(db).set_retention(&r, policy))
            .map(|v| v.as_u64())
    }
    /// Forks the run at commit version `at` (default: now): a new active run that sees
    /// everything the run held then and diverges from there. Nothing is copied.
    /// Returns the new run's id.
    #[pyo3(signature = (run, at=None))]
    fn fork(&self, py: Python<'_>, run: &str, at: Option<u64>) -> PyResult<String> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| self.h(db).fork(&r, at.map(stratadb::Version::Txn)))
            .map(|id| id.to_string())
    }
    /// Removes every version of every primitive of the run, and the run itself (with
    /// `with_forks=True`, its forks too); forks made earlier keep what they saw.
    /// Returns the commit version of the purge.
    #[pyo3(signature = (run, with_forks=false))]
    fn purge(&self, py: Python<'_>, run: &str, with_forks: bool) -> PyResult<u64> {
        let r = run_id(Some(run))?;
        self.db
            .call(py, |db| {
                if with_forks {
                    self.h(db).purge_with_forks(&r)
                } else {
                    self.h(db).purge(&r)
                }
            })
            .map(|v| v.as_u64())
    }
    /// What changed in the run from commit version `from_version` to `to_version`
    /// (default: now): a list of dicts with `primitive`, `container`, `key`, `kind`
    /// (`"added"`, `"removed"`, `"changed"`), `before` and `after` (`Versioned` or `None`).
    #[pyo3(signature = (run, from_version, to_version=None))]
    fn diff<'py>(
        &self,
        py: Python<'py>,
        run: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let r = run_id(Some(run))?;
        let changes = self.db.call(py, |db| {
            db.runs
                .diff(
                    &r,
                    stratadb::Version::Txn(from_version),
                    to_version.map(stratadb::Version::Txn),
                )?
                .collect::<stratadb::Result<Vec<_>>>()
        })?;
        changes.iter().map(|c| change_dict(py, c)).collect()
    }
    /// What differs between run `a` (`before`) and run `b` (`after`) now, e.g. a parent
    /// and its fork; same dicts as `diff`.
    fn diff_runs<'py>(
        &self,
        py: Python<'py>,
        a: &str,
        b: &str,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let (ra, rb) = (run_id(Some(a))?, run_id(Some(b))?);
        let changes = self.db.call(py, |db| {
            db.runs
                .diff_runs(&ra, &rb)?
                .collect::<stratadb::Result<Vec<_>>>()
        })?;
        changes.iter().map(|c| change_dict(py, c)).collect()
    }
    /// The run's retention policy as a dict.
    fn get_retention<'py>(&self, py: Python<'py>, run: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = run_id(Some(run))?;
        let p = self.db.call(py, |db| self.h(db).get_retention(&r))?;
        retention_dict(py, &p)
    }
}
