//! The key-value primitive.
//!
//! Versions are [`Version::Txn`]: the global commit version of the write.
use std::sync::Arc;

use strata_concurrency::Transaction;
use strata_core::{limits, Error, Result, RunId, Value, Version, Versioned};
use strata_storage::Primitive;

use crate::engine::{committed_version, encode_value, Engine};
use crate::records::{self, txn_record, txn_versioned};

fn key_of(run: &RunId, key: &str) -> Result<Box<[u8]>> {
    records::key_of(run, Primitive::Kv, key)
}

/// Transaction-level KV operations, the building blocks of the [`KV`] handle and of
/// multi-primitive transactions. They do not check the run's state: callers do.
pub mod ops {
    use super::*;

    /// Reads a key.
    pub fn get(txn: &mut Transaction, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        let k = key_of(run, key)?;
        crate::ttl::live_get(txn, &k)
            .as_ref()
            .map(txn_versioned)
            .transpose()
    }

    /// Writes a key that expires `ttl` after the transaction's read time (see
    /// [`crate::ttl`]).
    pub fn put_with_ttl(
        txn: &mut Transaction,
        run: &RunId,
        key: &str,
        value: &Value,
        ttl: std::time::Duration,
    ) -> Result<()> {
        let k = key_of(run, key)?;
        txn.put(k.clone(), encode_value(value)?);
        crate::ttl::set_with_record(txn, run, &k, ttl)
    }

    /// Writes a key.
    pub fn put(txn: &mut Transaction, run: &RunId, key: &str, value: &Value) -> Result<()> {
        let k = key_of(run, key)?;
        txn.put(k, encode_value(value)?);
        Ok(())
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(txn: &mut Transaction, run: &RunId, key: &str) -> Result<bool> {
        records::delete_in_txn(txn, key_of(run, key)?)
    }

    /// Adds `delta` to an integer (a missing key counts as 0); returns the new value.
    pub fn incr(txn: &mut Transaction, run: &RunId, key: &str, delta: i64) -> Result<i64> {
        let current = match get(txn, run, key)? {
            None => 0,
            Some(v) => match v.value {
                Value::Int(i) => i,
                other => return Err(Error::wrong_type("Int", other.type_name())),
            },
        };
        let new = current.checked_add(delta).ok_or_else(|| {
            Error::ConstraintViolation(format!(
                "incr of {key:?} by {delta} overflows i64 (current {current})"
            ))
        })?;
        put(txn, run, key, &Value::Int(new))?;
        Ok(new)
    }
}

/// The key-value store. Access via `db.kv`.
///
/// Three levels: `set`/`get`/`exists`/`delete` on the default run; `*_in(run, …)` on a
/// given run; and full control (`put`, `get_at`, `history`, `incr`, `cas`, batches,
/// `keys`) with explicit runs and versions.
#[derive(Clone)]
pub struct KV {
    engine: Arc<Engine>,
}

impl KV {
    /// Handle over an engine (see [`crate::internal`]).
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        KV { engine }
    }

    /// Sets a value in the default run.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        self.put(&RunId::DEFAULT, key, value).map(|_| ())
    }
    /// Gets a value from the default run.
    pub fn get(&self, key: &str) -> Result<Option<Versioned<Value>>> {
        self.get_in(&RunId::DEFAULT, key)
    }
    /// `true` if the key exists in the default run.
    pub fn exists(&self, key: &str) -> Result<bool> {
        self.exists_in(&RunId::DEFAULT, key)
    }
    /// Deletes a key from the default run; returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.delete_in(&RunId::DEFAULT, key)
    }

    /// Sets a value in `run`.
    pub fn set_in(&self, run: &RunId, key: &str, value: impl Into<Value>) -> Result<()> {
        self.put(run, key, value).map(|_| ())
    }
    /// Gets a value from `run`.
    pub fn get_in(&self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        self.engine.read(run, |txn| ops::get(txn, run, key))
    }
    /// `true` if the key exists in `run`.
    pub fn exists_in(&self, run: &RunId, key: &str) -> Result<bool> {
        Ok(self.get_in(run, key)?.is_some())
    }
    /// Deletes a key from `run`; returns whether it existed.
    pub fn delete_in(&self, run: &RunId, key: &str) -> Result<bool> {
        self.engine
            .write(run, |txn| ops::delete(txn, run, key))
            .map(|(v, _)| v)
    }

    /// Sets a value and returns the version it was written at.
    pub fn put(&self, run: &RunId, key: &str, value: impl Into<Value>) -> Result<Version> {
        let value = value.into();
        let (_, info) = self
            .engine
            .write(run, |txn| ops::put(txn, run, key, &value))?;
        committed_version(info)
    }

    /// Sets a value in `run` that expires `ttl` from now: from then on it reads as
    /// absent, and garbage collection deletes it (see [`expire`](Self::expire) to
    /// refresh). Returns the version written. A later write without a TTL clears the
    /// expiry. Expiry is judged at each read's own time (the engine's clock when the
    /// read's transaction began), so reads in one transaction are repeatable; history
    /// reads and views of the past see the delete garbage collection commits once the
    /// expiry has passed. `ConstraintViolation` for a zero `ttl`.
    ///
    /// ```
    /// # use strata_primitives::{internal, Engine};
    /// # use std::time::Duration;
    /// # let engine = Engine::new(strata_storage::Storage::ephemeral())?;
    /// # let kv = internal::kv(engine);
    /// # let run = strata_core::RunId::DEFAULT;
    /// kv.put_with_ttl(&run, "session", "token", Duration::from_secs(3600))?;
    /// assert!(kv.get_in(&run, "session")?.is_some());
    /// assert!(kv.ttl(&run, "session")?.unwrap() <= Duration::from_secs(3600));
    /// # Ok::<(), strata_core::Error>(())
    /// ```
    pub fn put_with_ttl(
        &self,
        run: &RunId,
        key: &str,
        value: impl Into<Value>,
        ttl: std::time::Duration,
    ) -> Result<Version> {
        let value = value.into();
        let (_, info) = self
            .engine
            .write(run, |txn| ops::put_with_ttl(txn, run, key, &value, ttl))?;
        committed_version(info)
    }

    /// Sets (`Some`) or clears (`None`) the expiry of an existing key **without writing
    /// a new version of it** (its value and version stay); returns `false` if the key
    /// does not exist (or already expired).
    pub fn expire(&self, run: &RunId, key: &str, ttl: Option<std::time::Duration>) -> Result<bool> {
        records::expire(&self.engine, run, &key_of(run, key)?, ttl)
    }

    /// The time left before the key expires: `None` if it has no expiry; `NotFound` if
    /// the key does not exist (or already expired).
    pub fn ttl(&self, run: &RunId, key: &str) -> Result<Option<std::time::Duration>> {
        records::ttl(&self.engine, run, &key_of(run, key)?, || {
            format!("key {key:?}")
        })
    }

    /// The value as of `version`: the newest write at or before it. `NotFound` if the
    /// key did not exist then (never written yet, deleted), or if the run's retention
    /// policy no longer keeps that version (exactly as [`history`](Self::history) would
    /// not list it, even before garbage collection has removed it).
    pub fn get_at(&self, run: &RunId, key: &str, version: Version) -> Result<Versioned<Value>> {
        let k = key_of(run, key)?;
        records::get_at(&self.engine, run, &k, version, txn_record, || {
            format!("key {key:?}")
        })
    }

    /// Versions of a key, newest first, at most `limit`, only those older than `before`
    /// (an exclusive cursor: pass the last version of a page to get the next page).
    /// Deletes are not listed. The run's retention policy is applied.
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

    /// Atomically adds `delta` to an integer value (a missing key starts from 0) and
    /// returns the new value. `WrongType` if the value is not an `Int`;
    /// `ConstraintViolation` on overflow.
    pub fn incr(&self, run: &RunId, key: &str, delta: i64) -> Result<i64> {
        self.engine
            .write(run, |txn| ops::incr(txn, run, key, delta))
            .map(|(v, _)| v)
    }

    /// Compare-and-swap by version: writes `value` only if the key's current version is
    /// `expected` (`None`: only if the key does not exist). Returns whether it wrote.
    pub fn cas(
        &self,
        run: &RunId,
        key: &str,
        expected: Option<Version>,
        value: impl Into<Value>,
    ) -> Result<bool> {
        let value = value.into();
        limits::validate_depth(&value)?;
        let expected = expected
            .map(|v| records::require_txn(v, "the expected version of cas"))
            .transpose()?;
        self.engine
            .write(run, |txn| {
                let current = ops::get(txn, run, key)?.map(|v| v.version.as_u64());
                if current != expected {
                    return Ok(false);
                }
                ops::put(txn, run, key, &value)?;
                Ok(true)
            })
            .map(|(v, _)| v)
    }

    /// Reads several keys from one consistent snapshot.
    pub fn mget(&self, run: &RunId, keys: &[&str]) -> Result<Vec<Option<Versioned<Value>>>> {
        self.engine.read(run, |txn| {
            keys.iter().map(|k| ops::get(txn, run, k)).collect()
        })
    }

    /// Writes several keys in one transaction: all get the same version, returned.
    pub fn mset(&self, run: &RunId, entries: &[(&str, Value)]) -> Result<Version> {
        if entries.is_empty() {
            // Nothing to write, but the run is checked like any write's: an empty batch
            // into a missing or closed run is the same mistake as a full one.
            let (_, info) = self.engine.write(run, |_| Ok(()))?;
            return Ok(Version::Txn(info.map_or_else(
                || self.engine.storage().visible_version(),
                |i| i.version,
            )));
        }
        let (_, info) = self.engine.write(run, |txn| {
            for (k, v) in entries {
                ops::put(txn, run, k, v)?;
            }
            Ok(())
        })?;
        committed_version(info)
    }

    /// Deletes several keys in one transaction; returns how many existed.
    pub fn mdelete(&self, run: &RunId, keys: &[&str]) -> Result<u64> {
        self.engine
            .write(run, |txn| {
                let mut n = 0;
                for k in keys {
                    n += u64::from(ops::delete(txn, run, k)?);
                }
                Ok(n)
            })
            .map(|(v, _)| v)
    }

    /// Keys starting with `prefix` (all keys for `""`), sorted, at most `limit`.
    pub fn keys(&self, run: &RunId, prefix: &str, limit: Option<usize>) -> Result<Vec<String>> {
        records::keys(&self.engine, run, Primitive::Kv, prefix, limit)
    }
}
