//! [`Txn`]: one transaction across every primitive and run.
use parking_lot::Mutex;
use strata_concurrency::Transaction;
use strata_core::{Result, RunId, Value, Version, Versioned};
use strata_primitives::{events, json, kv, runs, state};
use strata_vector::{vectors, PendingIndexOp, Vectors};

/// The handle a [`crate::Strata::transaction`] closure receives. Its operations mirror the
/// primitives' (`kv_*`, `json_*`, `events_*`, `state_*`, `vector_*`) on any run, read
/// the transaction's snapshot plus its own writes, and commit together or not at all.
/// Writes to a run that is not active fail with `RunError`, aborting the transaction.
pub struct Txn<'a> {
    raw: &'a mut Transaction,
    vectors: &'a Vectors,
    pending: &'a Mutex<Vec<PendingIndexOp>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(
        raw: &'a mut Transaction,
        vectors: &'a Vectors,
        pending: &'a Mutex<Vec<PendingIndexOp>>,
    ) -> Self {
        Txn {
            raw,
            vectors,
            pending,
        }
    }

    fn writable(&mut self, run: &RunId) -> Result<()> {
        runs::check_writable(self.raw, run).map(|_| ())
    }

    /// Reads a key. A key this transaction wrote is returned as written, with the
    /// pending version `Version::Txn(0)` and timestamp 0 (its commit version is not known
    /// yet; see [`Version`](strata_core::Version)).
    pub fn kv_get(&mut self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        runs::check_exists(self.raw, run)?;
        kv::ops::get(self.raw, run, key)
    }
    /// Writes a key.
    pub fn kv_set(&mut self, run: &RunId, key: &str, value: impl Into<Value>) -> Result<()> {
        self.writable(run)?;
        kv::ops::put(self.raw, run, key, &value.into())
    }
    /// Deletes a key; returns whether it existed.
    pub fn kv_delete(&mut self, run: &RunId, key: &str) -> Result<bool> {
        self.writable(run)?;
        kv::ops::delete(self.raw, run, key)
    }
    /// Adds `delta` to an integer key; returns the new value.
    pub fn kv_incr(&mut self, run: &RunId, key: &str, delta: i64) -> Result<i64> {
        self.writable(run)?;
        kv::ops::incr(self.raw, run, key, delta)
    }

    /// Reads a JSON document; one this transaction wrote has the pending version
    /// `Version::Txn(0)` and timestamp 0, as for [`kv_get`](Self::kv_get).
    pub fn json_get(&mut self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        runs::check_exists(self.raw, run)?;
        json::ops::get(self.raw, run, key)
    }
    /// Writes a JSON document.
    pub fn json_set(&mut self, run: &RunId, key: &str, doc: impl Into<Value>) -> Result<()> {
        self.writable(run)?;
        json::ops::set(self.raw, run, key, &doc.into())
    }
    /// Sets a value at a JSONPath inside an existing document (a non-singular path that
    /// selects nothing writes nothing).
    pub fn json_set_path(
        &mut self,
        run: &RunId,
        key: &str,
        path: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        self.writable(run)?;
        json::ops::set_path(self.raw, run, key, path, &value.into()).map(|_| ())
    }

    /// Appends an event (an `Object`); returns its sequence number.
    pub fn events_append(
        &mut self,
        run: &RunId,
        stream: &str,
        payload: impl Into<Value>,
    ) -> Result<Version> {
        self.writable(run)?;
        events::ops::append(self.raw, run, stream, &payload.into())
    }

    /// Reads a state cell.
    pub fn state_get(&mut self, run: &RunId, key: &str) -> Result<Option<Versioned<Value>>> {
        runs::check_exists(self.raw, run)?;
        state::ops::get(self.raw, run, key)
    }
    /// Writes a state cell; returns its new counter.
    pub fn state_set(
        &mut self,
        run: &RunId,
        key: &str,
        value: impl Into<Value>,
    ) -> Result<Version> {
        self.writable(run)?;
        state::ops::set(self.raw, run, key, &value.into())
    }
    /// Compare-and-swap on a state cell's counter.
    pub fn state_cas(
        &mut self,
        run: &RunId,
        key: &str,
        expected_counter: Option<u64>,
        value: impl Into<Value>,
    ) -> Result<Option<Version>> {
        self.writable(run)?;
        state::ops::cas(self.raw, run, key, expected_counter, &value.into())
    }

    /// Inserts or replaces a vector (the index is updated once the transaction commits).
    pub fn vector_upsert(
        &mut self,
        run: &RunId,
        collection: &str,
        key: &str,
        vector: &[f32],
        metadata: Option<Value>,
    ) -> Result<()> {
        self.writable(run)?;
        let op = vectors::ops::upsert(self.raw, run, collection, key, vector, metadata)?;
        self.pending.lock().push(op);
        Ok(())
    }
    /// Inserts or replaces many vectors of one collection (the index inserts them in
    /// parallel once the transaction commits; see `Vectors::upsert_batch`).
    pub fn vector_upsert_batch<K, V>(
        &mut self,
        run: &RunId,
        collection: &str,
        items: impl IntoIterator<Item = (K, V, Option<Value>)>,
    ) -> Result<()>
    where
        K: AsRef<str>,
        V: AsRef<[f32]>,
    {
        self.writable(run)?;
        let items: Vec<(K, V, Option<Value>)> = items.into_iter().collect();
        let ops = vectors::ops::upsert_many(
            self.raw,
            run,
            collection,
            items
                .iter()
                .map(|(k, v, m)| (k.as_ref(), v.as_ref(), m.clone())),
        )?;
        self.pending.lock().extend(ops);
        Ok(())
    }
    /// Deletes a vector; returns whether it existed.
    pub fn vector_delete(&mut self, run: &RunId, collection: &str, key: &str) -> Result<bool> {
        self.writable(run)?;
        let (existed, op) = vectors::ops::delete(self.raw, run, collection, key)?;
        self.pending.lock().push(op);
        Ok(existed)
    }

    /// The vectors primitive (for reads inside the closure; they see committed data).
    pub fn vectors(&self) -> &Vectors {
        self.vectors
    }
}
