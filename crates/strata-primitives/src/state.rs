//! State cells: named values with a per-cell mutation counter, for compare-and-swap
//! coordination.
//!
//! Versions are [`Version::Counter`]: the first write of a cell gives 1 and every later
//! write adds one. A cell that is deleted and written again continues from its last
//! counter, so a stale `cas` can never succeed against a re-created cell — whatever
//! retention and garbage collection did in between.
//!
//! A cell's stored bytes are `counter (u64 LE) ++ encoded value`. A delete is stored as
//! the counter alone (8 bytes; an encoded value is never empty), not as a storage
//! tombstone: it is the newest version of the key, which retention always keeps, so the
//! counter survives collection of the cell's history. (Databases written before this
//! used tombstones; their counters are still found by looking through them.)
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

/// The cell at `e`, or `None` where `e` records a delete (a tombstone or a bare
/// counter).
fn versioned(e: &Entry) -> Result<Option<Versioned<Value>>> {
    let Some(bytes) = e.value.as_deref() else {
        return Ok(None);
    };
    let (counter, v) = split(bytes)?;
    if v.is_empty() {
        return Ok(None);
    }
    Ok(Some(Versioned::new(
        decode_value(v)?,
        Version::Counter(counter),
        e.timestamp,
    )))
}

/// Transaction-level state operations (no run-state checks: callers do them).
pub mod ops {
    use super::*;

    /// Reads a cell.
    pub fn get(txn: &mut Transaction, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        let k = key_of(run, key)?;
        match txn.get(&k) {
            Some(e) => versioned(&e),
            None => Ok(None),
        }
    }

    /// The cell's last counter (of its newest write or delete), 0 if it never existed.
    fn last_counter(txn: &mut Transaction, k: &[u8]) -> Result<u64> {
        match txn.get(k) {
            Some(e) => Ok(split(e.value.as_deref().unwrap_or_default())?.0),
            None => {
                // A storage tombstone (databases written before deletes kept the
                // counter): the counter is in the write before it.
                let hist = txn.history(k, None, Some(2));
                match hist.iter().find(|e| !e.is_tombstone()) {
                    Some(e) => Ok(split(e.value.as_deref().unwrap_or_default())?.0),
                    None => Ok(0),
                }
            }
        }
    }

    /// Deletes a cell, keeping its counter; returns whether it existed.
    pub fn delete(txn: &mut Transaction, run: &RunId, key: &str) -> Result<bool> {
        let k = key_of(run, key)?;
        let Some(e) = txn.get(&k) else {
            return Ok(false);
        };
        let Some(bytes) = e.value.as_deref() else {
            return Ok(false);
        };
        let (counter, v) = split(bytes)?;
        if v.is_empty() {
            return Ok(false);
        }
        txn.put(k, Arc::from(counter.to_le_bytes().as_slice()));
        Ok(true)
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
    /// Handle over an engine.
    pub fn new(engine: Arc<Engine>) -> Self {
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

    /// Deletes a cell; returns whether it existed. Its counter is kept: a later write
    /// continues from it.
    pub fn delete(&self, run: &RunId, key: &str) -> Result<bool> {
        self.engine
            .write(run, |txn| ops::delete(txn, run, key))
            .map(|(v, _)| v)
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
