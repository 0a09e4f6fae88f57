//! Append-only event streams.
//!
//! Each (run, stream) is a log with dense sequence numbers starting at **1**
//! ([`Version::Sequence`]). Keys inside a run (after the run and primitive tag):
//!
//! ```text
//! 0x01 | stream                    -> stream head: the number of events (u64 LE)
//! 0x02 | stream | 0x00 | seq (u64 BE) -> the event payload
//! ```
//!
//! An append reads and bumps only its own stream's head, so appends to different
//! streams never conflict; two appends to the same stream serialize on the head and get
//! consecutive sequence numbers. Big-endian sequence numbers keep each stream's events
//! in order in the keyspace, so reads and ranges are range scans.
use std::ops::Bound;
use std::sync::Arc;

use strata_concurrency::Transaction;
use strata_core::{limits, Error, Result, RunId, Value, Version, Versioned};
use strata_storage::{encode_key, Entry, Primitive};

use crate::engine::{encode_value, entry_value, Engine};

const HEAD: u8 = 0x01;
const EVENT: u8 = 0x02;

fn head_key(run: &RunId, stream: &str) -> Box<[u8]> {
    let mut k = vec![HEAD];
    k.extend_from_slice(stream.as_bytes());
    encode_key(run, Primitive::Event, &k).into()
}

fn stream_prefix(run: &RunId, stream: &str) -> Vec<u8> {
    let mut k = vec![EVENT];
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    encode_key(run, Primitive::Event, &k)
}

fn event_key(run: &RunId, stream: &str, seq: u64) -> Vec<u8> {
    let mut k = stream_prefix(run, stream);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> u64 {
    let n = key.len();
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[n - 8..]);
    u64::from_be_bytes(b)
}

fn versioned(key: &[u8], e: &Entry) -> Result<Versioned<Value>> {
    Ok(Versioned::new(
        entry_value(e)?,
        Version::Sequence(seq_of(key)),
        e.timestamp,
    ))
}

fn count_in(txn: &mut Transaction, run: &RunId, stream: &str) -> Result<u64> {
    match txn.get(&head_key(run, stream)) {
        None => Ok(0),
        Some(e) => {
            let b = e.value.as_deref().unwrap_or_default();
            let arr: [u8; 8] = b.try_into().map_err(|_| {
                Error::Storage(format!("event stream head of {stream:?} is malformed"))
            })?;
            Ok(u64::from_le_bytes(arr))
        }
    }
}

/// Transaction-level event operations (no run-state checks: callers do them).
pub mod ops {
    use super::*;

    /// Appends an event; the payload must be an `Object`. Returns its sequence number.
    pub fn append(
        txn: &mut Transaction,
        run: &RunId,
        stream: &str,
        payload: &Value,
    ) -> Result<Version> {
        limits::validate_key(stream)?;
        if !payload.is_object() {
            return Err(Error::wrong_type("Object", payload.type_name()));
        }
        let bytes = encode_value(payload)?;
        let seq = count_in(txn, run, stream)? + 1;
        txn.put(
            head_key(run, stream),
            Arc::from(seq.to_le_bytes().as_slice()),
        );
        txn.put(event_key(run, stream, seq).into(), bytes);
        Ok(Version::Sequence(seq))
    }
}

/// Event streams. Access via `db.events`.
#[derive(Clone)]
pub struct Events {
    engine: Arc<Engine>,
}

impl Events {
    /// Handle over an engine (see [`crate::internal`]).
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Events { engine }
    }

    /// Appends an event (an `Object`; anything else is `WrongType` and nothing is
    /// stored) to a stream of the default run; returns its sequence number.
    pub fn append(&self, stream: &str, payload: impl Into<Value>) -> Result<Version> {
        self.append_in(&RunId::DEFAULT, stream, payload)
    }
    /// The first `limit` events of a stream of the default run, in order.
    pub fn read(&self, stream: &str, limit: usize) -> Result<Vec<Versioned<Value>>> {
        self.read_in(&RunId::DEFAULT, stream, limit)
    }

    /// Appends an event to a stream of `run`.
    pub fn append_in(
        &self,
        run: &RunId,
        stream: &str,
        payload: impl Into<Value>,
    ) -> Result<Version> {
        let payload = payload.into();
        self.engine
            .write(run, |txn| ops::append(txn, run, stream, &payload))
            .map(|(v, _)| v)
    }

    /// The first `limit` events of a stream of `run`, in sequence order.
    pub fn read_in(
        &self,
        run: &RunId,
        stream: &str,
        limit: usize,
    ) -> Result<Vec<Versioned<Value>>> {
        limits::validate_key(stream)?;
        let p = stream_prefix(run, stream);
        self.engine.read(run, |txn| {
            txn.scan_prefix(&p, Some(limit))
                .iter()
                .map(|(k, e)| versioned(k, e))
                .collect()
        })
    }

    /// Events with sequence numbers in `start..=end` (empty when `start > end`).
    pub fn range(
        &self,
        run: &RunId,
        stream: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<Versioned<Value>>> {
        limits::validate_key(stream)?;
        if start > end {
            return Ok(Vec::new());
        }
        let lo = event_key(run, stream, start);
        let hi = event_key(run, stream, end);
        self.engine.read(run, |txn| {
            txn.scan_range(Bound::Included(&lo), Bound::Included(&hi), None)
                .iter()
                .map(|(k, e)| versioned(k, e))
                .collect()
        })
    }

    /// The latest event of a stream, if any.
    pub fn head(&self, run: &RunId, stream: &str) -> Result<Option<Versioned<Value>>> {
        limits::validate_key(stream)?;
        self.engine.read(run, |txn| {
            let n = count_in(txn, run, stream)?;
            if n == 0 {
                return Ok(None);
            }
            let k = event_key(run, stream, n);
            txn.get(&k).as_ref().map(|e| versioned(&k, e)).transpose()
        })
    }

    /// The number of events in a stream (0 for a stream never appended to).
    pub fn count(&self, run: &RunId, stream: &str) -> Result<u64> {
        limits::validate_key(stream)?;
        self.engine.read(run, |txn| count_in(txn, run, stream))
    }

    /// Names of the streams of `run` that have events, sorted.
    pub fn streams(&self, run: &RunId) -> Result<Vec<String>> {
        let p = encode_key(run, Primitive::Event, &[HEAD]);
        let skip = p.len();
        self.engine.read(run, |txn| {
            Ok(txn
                .scan_prefix(&p, None)
                .into_iter()
                .map(|(k, _)| String::from_utf8_lossy(&k[skip..]).into_owned())
                .collect())
        })
    }
}
