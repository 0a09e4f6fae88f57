//! The JSON document primitive.
//!
//! Documents are [`Value`] trees stored whole and versioned like KV
//! ([`Version::Txn`]). Path operations use JSONPath (RFC 9535) through
//! [`crate::json_path`]; see [`crate::json_path::get_path`] for what a query that
//! selects several nodes returns. Path operations on a missing document are `NotFound`;
//! a malformed path is `InvalidPath`.
use std::sync::Arc;

use strata_concurrency::Transaction;
use strata_core::{limits, Error, Result, RunId, Value, Version, Versioned};
use strata_storage::{Entry, Primitive};

use crate::decoded::DecodedCache;
use crate::engine::{committed_version, decode_value, encode_value, Engine};
use crate::json_path;
use crate::records::{self, txn_record};

fn key_of(run: &RunId, key: &str) -> Result<Box<[u8]>> {
    records::key_of(run, Primitive::Json, key)
}

/// The error for a path operation on a missing document: `InvalidPath` when the path is
/// malformed (the more specific mistake), else `NotFound`. Checked only on this cold
/// path, so that a valid path is parsed once per operation.
/// Decoded documents, so that path reads and writes of a document do not decode it from
/// MessagePack every time (see [`crate::decoded`]): at most 4,096 documents and 16 MiB of
/// their encoded bytes (documents over 2 MiB are not cached), shared by every database
/// of the process.
static DOCS: DecodedCache<Value> = DecodedCache::new(4096, 16 << 20);

/// The decoded document of a live entry of storage key `k`, shared with the cache.
fn shared_doc(k: &[u8], e: &Entry) -> Result<Arc<Value>> {
    let bytes = e
        .value
        .as_ref()
        .ok_or_else(|| Error::Internal("a deleted document was returned as live".into()))?;
    DOCS.get_or_decode(k, bytes, decode_value)
}

fn no_document(key: &str, path: &str) -> Error {
    match json_path::is_singular_path(path) {
        Err(e) => e,
        Ok(_) => Error::NotFound(format!("JSON document {key:?} does not exist")),
    }
}

/// Transaction-level JSON operations (no run-state checks: callers do them).
pub mod ops {
    use super::*;

    /// Reads a document.
    pub fn get(txn: &mut Transaction, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        let k = key_of(run, key)?;
        let Some(e) = crate::ttl::live_get(txn, &k) else {
            return Ok(None);
        };
        let doc = shared_doc(&k, &e)?;
        Ok(Some(Versioned::new(
            (*doc).clone(),
            Version::Txn(e.version),
            e.timestamp,
        )))
    }

    /// Writes a whole document.
    pub fn set(txn: &mut Transaction, run: &RunId, key: &str, doc: &Value) -> Result<()> {
        // Before the clone: cloning recurses once per level.
        limits::validate_depth(doc)?;
        set_owned(txn, run, key, doc.clone())
    }

    /// Writes a whole document it takes ownership of (kept decoded for the next read).
    pub fn set_owned(txn: &mut Transaction, run: &RunId, key: &str, doc: Value) -> Result<()> {
        let k = key_of(run, key)?;
        let bytes = encode_value(&doc)?;
        DOCS.insert(&k, bytes.clone(), Arc::new(doc));
        txn.put(k, bytes);
        Ok(())
    }

    /// Reads, changes and writes back a document for an operation on `path`; `NotFound`
    /// if the document does not exist (`InvalidPath` first if `path` is malformed).
    pub fn modify<T>(
        txn: &mut Transaction,
        run: &RunId,
        key: &str,
        path: &str,
        change: impl FnOnce(&mut Value) -> Result<T>,
    ) -> Result<T> {
        let mut doc = get(txn, run, key)?
            .ok_or_else(|| no_document(key, path))?
            .value;
        let out = change(&mut doc)?;
        set_owned(txn, run, key, doc)?;
        Ok(out)
    }

    /// Sets the value at a JSONPath inside a document (see
    /// [`json_path::set_path`]). Returns the version of the document when nothing was
    /// written (a non-singular path that selects nothing): the document is unchanged and
    /// no write is made; `None` when the document was rewritten.
    pub fn set_path(
        txn: &mut Transaction,
        run: &RunId,
        key: &str,
        path: &str,
        value: &Value,
    ) -> Result<Option<Version>> {
        limits::validate_depth(value)?;
        let current = get(txn, run, key)?.ok_or_else(|| no_document(key, path))?;
        let version = current.version;
        let mut doc = current.value;
        if json_path::set_path_count(&mut doc, path, value.clone())? == 0 {
            return Ok(Some(version));
        }
        set_owned(txn, run, key, doc)?;
        Ok(None)
    }
}

/// JSON documents. Access via `db.json`.
#[derive(Clone)]
pub struct Json {
    engine: Arc<Engine>,
}

impl Json {
    /// Handle over an engine (see [`crate::internal`]).
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Json { engine }
    }

    /// Stores a document in the default run.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> Result<Version> {
        self.set_in(&RunId::DEFAULT, key, value)
    }
    /// Retrieves a document from the default run.
    pub fn get(&self, key: &str) -> Result<Option<Versioned<Value>>> {
        self.get_in(&RunId::DEFAULT, key)
    }

    /// Stores a document in `run`; returns its version.
    pub fn set_in(&self, run: &RunId, key: &str, value: impl Into<Value>) -> Result<Version> {
        let doc = value.into();
        let (_, info) = self
            .engine
            .write(run, |txn| ops::set(txn, run, key, &doc))?;
        committed_version(info)
    }
    /// Stores a document in `run` that expires `ttl` from now (see
    /// [`KV::put_with_ttl`](crate::KV::put_with_ttl) for the semantics); returns its
    /// version.
    pub fn set_with_ttl(
        &self,
        run: &RunId,
        key: &str,
        value: impl Into<Value>,
        ttl: std::time::Duration,
    ) -> Result<Version> {
        let doc = value.into();
        let k = key_of(run, key)?;
        let (_, info) = self.engine.write(run, |txn| {
            ops::set(txn, run, key, &doc)?;
            crate::ttl::set_with_record(txn, run, &k, ttl)
        })?;
        committed_version(info)
    }

    /// Sets (`Some`) or clears (`None`) the expiry of an existing document without
    /// writing a new version of it; `false` if it does not exist (or already expired).
    pub fn expire(&self, run: &RunId, key: &str, ttl: Option<std::time::Duration>) -> Result<bool> {
        records::expire(&self.engine, run, &key_of(run, key)?, ttl)
    }

    /// The time left before the document expires: `None` if it has no expiry;
    /// `NotFound` if it does not exist (or already expired).
    pub fn ttl(&self, run: &RunId, key: &str) -> Result<Option<std::time::Duration>> {
        records::ttl(&self.engine, run, &key_of(run, key)?, || {
            format!("document {key:?}")
        })
    }

    /// Retrieves a document from `run`.
    pub fn get_in(&self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        self.engine.read(run, |txn| ops::get(txn, run, key))
    }

    /// `true` if the document exists.
    pub fn exists(&self, run: &RunId, key: &str) -> Result<bool> {
        Ok(self.get_in(run, key)?.is_some())
    }

    /// Deletes a document; returns whether it existed.
    pub fn delete(&self, run: &RunId, key: &str) -> Result<bool> {
        records::delete(&self.engine, run, key_of(run, key)?)
    }

    /// The value at `path` (RFC 9535 JSONPath) inside the document, versioned like the
    /// document (its version and timestamp). `NotFound` if the document does not exist;
    /// `InvalidPath` if `path` is not valid JSONPath.
    ///
    /// The shape of the result depends on the path, not on the document:
    ///
    /// - a **singular path** (only single names and indices after `$`: `$.a.b`,
    ///   `$['odd key']`, `$.a[0]`, `$.a[-1]`) gives `Some(node)` when the node exists and
    ///   `None` when it does not (`$` is always `Some(document)`);
    /// - any **other path** (wildcards, slices, filters, `..`, unions) always gives
    ///   `Some(Value::Array(nodes))`: every selected node, in RFC 9535 order (document
    ///   order for arrays; an object's members in unspecified order), duplicates included;
    ///   the array is empty when nothing is selected.
    ///
    /// So `$.tags[0]` on `{"tags": ["a"]}` gives `Some("a")`, `$.tags[*]` gives
    /// `Some(["a"])` and `$.missing[*]` gives `Some([])`. Filters compare `Int` and `Float`
    /// numerically; the returned nodes keep their variant.
    pub fn get_path(&self, run: &RunId, key: &str, path: &str) -> Result<Option<Versioned<Value>>> {
        let k = key_of(run, key)?;
        let (doc, version, timestamp) = self
            .engine
            .read(run, |txn| {
                crate::ttl::live_get(txn, &k)
                    .map(|e| Ok((shared_doc(&k, &e)?, e.version, e.timestamp)))
                    .transpose()
            })?
            .ok_or_else(|| no_document(key, path))?;
        Ok(json_path::get_path(&doc, path)?
            .map(|v| Versioned::new(v, Version::Txn(version), timestamp)))
    }

    /// Sets the value at `path`, creating missing intermediate objects and keeping
    /// siblings; returns the document's new version. `NotFound` if the document does not
    /// exist.
    ///
    /// - A **singular path** replaces the node, or creates it with every missing
    ///   container on the way (an object before a name, an array before an index). An
    ///   array index must name an existing element (negative ones count from the end) or
    ///   be the array's length (append); any other index is a `ConstraintViolation`:
    ///   arrays are never padded. A name meeting a non-object, or an index meeting a
    ///   non-array, is `WrongType`.
    /// - A **non-singular path** is split at its last non-singular segment
    ///   (`$.users[?@.age > 30].flags.vip` = `$.users[?@.age > 30]` + `.flags.vip`) and the
    ///   singular rest is set below **every** node the first part selects. When it selects
    ///   nothing, the document is unchanged, nothing is written, and the document's
    ///   current version is returned.
    ///
    /// The update is all-or-nothing: on error the document is unchanged.
    pub fn set_path(
        &self,
        run: &RunId,
        key: &str,
        path: &str,
        value: impl Into<Value>,
    ) -> Result<Version> {
        let value = value.into();
        limits::validate_depth(&value)?;
        let (unchanged, info) = self
            .engine
            .write(run, |txn| ops::set_path(txn, run, key, path, &value))?;
        match unchanged {
            Some(version) => Ok(version),
            None => committed_version(info),
        }
    }

    /// Deletes every node `path` selects; returns how many were deleted. The document
    /// is rewritten only when something was deleted.
    pub fn delete_path(&self, run: &RunId, key: &str, path: &str) -> Result<u64> {
        self.engine
            .write(run, |txn| {
                let mut doc = ops::get(txn, run, key)?
                    .ok_or_else(|| no_document(key, path))?
                    .value;
                let n = json_path::delete_path(&mut doc, path)?;
                if n > 0 {
                    ops::set_owned(txn, run, key, doc)?;
                }
                Ok(n)
            })
            .map(|(v, _)| v)
    }

    /// Applies an RFC 7396 JSON Merge Patch at `path` (`"$"` for the whole document);
    /// returns the new version.
    pub fn merge(
        &self,
        run: &RunId,
        key: &str,
        path: &str,
        patch: impl Into<Value>,
    ) -> Result<Version> {
        let patch = patch.into();
        limits::validate_depth(&patch)?;
        let (_, info) = self.engine.write(run, |txn| {
            ops::modify(txn, run, key, path, |doc| {
                json_path::merge_at(doc, path, patch.clone())
            })
        })?;
        committed_version(info)
    }

    /// The document as of `version`; `NotFound` if it did not exist then, or if the run's
    /// retention policy no longer keeps that version (as for [`history`](Self::history)).
    pub fn get_at(&self, run: &RunId, key: &str, version: Version) -> Result<Versioned<Value>> {
        let k = key_of(run, key)?;
        records::get_at(&self.engine, run, &k, version, txn_record, || {
            format!("JSON document {key:?}")
        })
    }

    /// Versions of a document, newest first (deletes not listed), at most `limit`,
    /// older than `before`; the run's retention policy applies.
    pub fn history(
        &self,
        run: &RunId,
        key: &str,
        limit: Option<u64>,
        before: Option<Version>,
    ) -> Result<Vec<Versioned<Value>>> {
        let k = key_of(run, key)?;
        records::history(&self.engine, run, &k, limit, before, txn_record)
    }

    /// Document keys starting with `prefix`, sorted, at most `limit`.
    pub fn keys(&self, run: &RunId, prefix: &str, limit: Option<usize>) -> Result<Vec<String>> {
        records::keys(&self.engine, run, Primitive::Json, prefix, limit)
    }
}
