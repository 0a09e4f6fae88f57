//! State cells: named values with a per-cell mutation counter, for compare-and-swap
//! coordination.
//!
//! Versions are [`Version::Counter`]: the first write of a cell gives 1 and every later
//! write adds one. A cell that is deleted and written again continues from its last
//! counter (so a stale `cas` can never succeed against a re-created cell), unless
//! retention has already removed its history.
//!
//! A cell's stored bytes are `counter (u64 LE) ++ encoded value`.
use std::sync::Arc;

use strata_concurrency::Transaction;
use strata_core::{limits, Error, Result, RunId, Value, Version, Versioned};
use strata_storage::{Entry, Primitive};

use crate::engine::{decode_value, Engine};
use crate::records;

fn key_of(run: &RunId, key: &str) -> Result<Box<[u8]>> {
    records::key_of(run, Primitive::State, key)
}

fn split(bytes: &[u8]) -> Result<(u64, &[u8])> {
    if bytes.len() < 8 {
        return Err(Error::Storage("state cell record is malformed".into()));
    }
    let (c, v) = bytes.split_at(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    Ok((u64::from_le_bytes(a), v))
}

fn versioned(e: &Entry) -> Result<Versioned<Value>> {
    let bytes = e
        .value
        .as_deref()
        .ok_or_else(|| Error::Internal("state tombstone".into()))?;
    let (counter, v) = split(bytes)?;
    Ok(Versioned::new(
        decode_value(v)?,
        Version::Counter(counter),
        e.timestamp,
    ))
}

/// Transaction-level state operations (no run-state checks: callers do them).
pub mod ops {
    use super::*;

    /// Reads a cell.
    pub fn get(txn: &mut Transaction, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        let k = key_of(run, key)?;
        txn.get(&k).as_ref().map(versioned).transpose()
    }

    /// The counter of the cell's newest live write, looking through deletes.
    fn last_counter(txn: &mut Transaction, k: &[u8]) -> Result<u64> {
        match txn.get(k) {
            Some(e) => Ok(split(e.value.as_deref().unwrap_or_default())?.0),
            None => {
                let hist = txn.history(k, None, Some(2));
                match hist.iter().find(|e| !e.is_tombstone()) {
                    Some(e) => Ok(split(e.value.as_deref().unwrap_or_default())?.0),
                    None => Ok(0),
                }
            }
        }
    }

    /// Writes a cell; returns its new counter.
    pub fn set(txn: &mut Transaction, run: &RunId, key: &str, value: &Value) -> Result<Version> {
        let k = key_of(run, key)?;
        let counter = last_counter(txn, &k)? + 1;
        let mut bytes = counter.to_le_bytes().to_vec();
        let encoded = limits::validate_value(value)?;
        bytes.extend_from_slice(&encoded);
        txn.put(k, Arc::from(bytes));
        Ok(Version::Counter(counter))
    }

    /// Compare-and-swap by counter (`None`: the cell must not exist).
    pub fn cas(
        txn: &mut Transaction,
        run: &RunId,
        key: &str,
        expected_counter: Option<u64>,
        value: &Value,
    ) -> Result<Option<Version>> {
        let current = get(txn, run, key)?.map(|v| v.version.as_u64());
        if current != expected_counter {
            return Ok(None);
        }
        set(txn, run, key, value).map(Some)
    }
}

/// State cells. Access via `db.state`.
#[derive(Clone)]
pub struct State {
    engine: Arc<Engine>,
}

impl State {
    /// Handle over an engine (see [`crate::internal`]).
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        State { engine }
    }

    /// Sets a cell in the default run; returns its new counter version.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> Result<Version> {
        self.set_in(&RunId::DEFAULT, key, value)
    }
    /// Reads a cell of the default run.
    pub fn get(&self, key: &str) -> Result<Option<Versioned<Value>>> {
        self.get_in(&RunId::DEFAULT, key)
    }
    /// Sets a cell in `run`.
    pub fn set_in(&self, run: &RunId, key: &str, value: impl Into<Value>) -> Result<Version> {
        let value = value.into();
        self.engine
            .write(run, |txn| ops::set(txn, run, key, &value))
            .map(|(v, _)| v)
    }
    /// Reads a cell of `run`.
    pub fn get_in(&self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        self.engine.read(run, |txn| ops::get(txn, run, key))
    }

    /// Writes `value` only if the cell's counter is `expected_counter` (`None`: only if
    /// the cell does not exist). Returns the new version, or `None` if the counter did
    /// not match.
    pub fn cas(
        &self,
        run: &RunId,
        key: &str,
        expected_counter: Option<u64>,
        value: impl Into<Value>,
    ) -> Result<Option<Version>> {
        let value = value.into();
        self.engine
            .write(run, |txn| ops::cas(txn, run, key, expected_counter, &value))
            .map(|(v, _)| v)
    }

    /// Deletes a cell; returns whether it existed.
    pub fn delete(&self, run: &RunId, key: &str) -> Result<bool> {
        records::delete(&self.engine, run, key_of(run, key)?)
    }

    /// `true` if the cell exists.
    pub fn exists(&self, run: &RunId, key: &str) -> Result<bool> {
        Ok(self.get_in(run, key)?.is_some())
    }

    /// Versions of a cell, newest first (deletes not listed), at most `limit`; the run's
    /// retention policy applies.
    pub fn history(
        &self,
        run: &RunId,
        key: &str,
        limit: Option<u64>,
    ) -> Result<Vec<Versioned<Value>>> {
        let k = key_of(run, key)?;
        records::history(&self.engine, run, &k, limit, None, versioned)
    }
}
