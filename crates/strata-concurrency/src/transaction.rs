//! One optimistic transaction.
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use strata_core::{Error, Result};
use strata_storage::key::prefix_successor;
use strata_storage::mvcc::is_empty_range;
use strata_storage::{CommitInfo, Entry, ListedKey, SnapshotPin, Storage, Tree, Write};

use crate::metrics::Metrics;

/// The version reported for a value read back from this transaction's own, not yet
/// committed, writes: it has no commit version yet.
pub const PENDING_VERSION: u64 = 0;

type Range = (Bound<Box<[u8]>>, Bound<Box<[u8]>>);

/// An optimistic transaction: reads see the snapshot it began at plus its own writes;
/// [`commit`](Transaction::commit) validates that nothing it read has changed since.
///
/// Dropping a transaction without committing discards its writes.
pub struct Transaction {
    storage: Storage,
    metrics: Arc<Metrics>,
    pin: SnapshotPin,
    point_reads: HashSet<Box<[u8]>>,
    range_reads: Vec<Range>,
    writes: BTreeMap<Box<[u8]>, Option<Arc<[u8]>>>,
    finished: bool,
    /// The first read that failed (a damaged run on disk). Reads return what they have
    /// (nothing) so that the caller's code runs on, and `commit` fails with this error:
    /// nothing decided on a failed read is ever written or reported as a result.
    read_error: Option<Error>,
    /// The time reads of this transaction are judged at (time-to-live expiry): set when
    /// it begins, so that its reads are repeatable.
    read_time: strata_core::Timestamp,
    /// `false` for a read-only snapshot ([`TransactionManager::read`]): it never
    /// validates, so it keeps no read set.
    ///
    /// [`TransactionManager::read`]: crate::TransactionManager::read
    track_reads: bool,
}

impl Transaction {
    pub(crate) fn begin(storage: Storage, metrics: Arc<Metrics>) -> Self {
        let pin = storage.pin();
        Self::begin_pinned(storage, metrics, pin)
    }

    pub(crate) fn begin_pinned(storage: Storage, metrics: Arc<Metrics>, pin: SnapshotPin) -> Self {
        Self::begin_with(storage, metrics, pin, strata_core::Timestamp::now(), true)
    }

    /// A transaction over `pin` whose reads are judged at `read_time`; `track_reads`
    /// `false` for a read-only snapshot that never commits writes (no read set).
    pub(crate) fn begin_with(
        storage: Storage,
        metrics: Arc<Metrics>,
        pin: SnapshotPin,
        read_time: strata_core::Timestamp,
        track_reads: bool,
    ) -> Self {
        metrics.begun();
        Transaction {
            storage,
            metrics,
            pin,
            point_reads: HashSet::new(),
            range_reads: Vec::new(),
            writes: BTreeMap::new(),
            finished: false,
            read_error: None,
            read_time,
            track_reads,
        }
    }

    /// The time this transaction's reads are judged at (time-to-live expiry).
    pub fn read_time(&self) -> strata_core::Timestamp {
        self.read_time
    }

    /// Sets the time this transaction's reads are judged at (the engine's clock, or
    /// none for a view of the past).
    pub fn set_read_time(&mut self, t: strata_core::Timestamp) {
        self.read_time = t;
    }

    /// The snapshot version this transaction reads at.
    pub fn snapshot_version(&self) -> u64 {
        self.pin.version()
    }

    /// The storage underneath.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The first read of this transaction that failed (see [`commit`](Self::commit)).
    pub fn read_error(&self) -> Option<&Error> {
        self.read_error.as_ref()
    }

    pub(crate) fn take_read_error(&mut self) -> Option<Error> {
        self.read_error.take()
    }

    fn noted<T: Default>(&mut self, r: Result<T>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                if self.read_error.is_none() {
                    self.read_error = Some(e);
                }
                T::default()
            }
        }
    }

    /// `true` if the transaction has written nothing yet.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    /// Reads `key`: this transaction's own write if any (reported with
    /// [`PENDING_VERSION`]), else the value at the snapshot. Records the read.
    pub fn get(&mut self, key: &[u8]) -> Option<Entry> {
        if let Some(w) = self.writes.get(key) {
            return w.as_ref().map(|v| Entry {
                version: PENDING_VERSION,
                timestamp: strata_core::Timestamp(0),
                value: Some(v.clone()),
            });
        }
        if self.track_reads {
            self.point_reads.insert(key.into());
        }
        let r = self.storage.get(key, self.snapshot_version());
        self.noted(r)
    }

    /// Records `key` in the read set as [`get`](Self::get) does, without reading it: for
    /// a caller that knows the key's value at this snapshot from elsewhere (a cache
    /// checked against [`Storage::last_write_to`]), so that a concurrent change of the
    /// key still makes this transaction conflict. Returns `false`, recording nothing,
    /// when this transaction wrote the key itself: its value is then the pending write,
    /// which no cache knows, and the caller must [`get`](Self::get) it.
    pub fn note_read(&mut self, key: Box<[u8]>) -> bool {
        if self.writes.contains_key(&key) {
            return false;
        }
        if self.track_reads {
            self.point_reads.insert(key);
        }
        true
    }

    /// Reads `key` as of an older version `at` (clamped to the snapshot). Historical
    /// reads are not validated: the past cannot change.
    pub fn get_at(&mut self, key: &[u8], at: u64) -> Option<Entry> {
        let r = self.storage.get(key, at.min(self.snapshot_version()));
        self.noted(r)
    }

    /// Versions of `key` at the snapshot, newest first (tombstones included), with
    /// version `< before` when given. Records a read of the key.
    pub fn history(&mut self, key: &[u8], before: Option<u64>, limit: Option<usize>) -> Vec<Entry> {
        if self.track_reads {
            self.point_reads.insert(key.into());
        }
        let r = self
            .storage
            .history(key, self.snapshot_version(), before, limit);
        self.noted(r)
    }

    /// Live entries with keys starting with `prefix`, merging the snapshot with this
    /// transaction's writes, in key order, at most `limit`. Records the whole prefix as
    /// read, so a concurrent insert under it (a phantom) is a conflict.
    pub fn scan_prefix(&mut self, prefix: &[u8], limit: Option<usize>) -> Vec<(Box<[u8]>, Entry)> {
        let end = prefix_successor(prefix);
        let end_b = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_range(Bound::Included(prefix), end_b, limit)
    }

    /// Like [`scan_prefix`](Self::scan_prefix) for a listing of keys: entries the
    /// snapshot's sorted runs hold come without their values (an empty value for a live
    /// entry; versions and timestamps kept), so nothing is copied that the listing
    /// would drop. Records the prefix as read, like `scan_prefix`.
    pub fn scan_prefix_keys(
        &mut self,
        prefix: &[u8],
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        let end = prefix_successor(prefix);
        let end_b = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_range_with(Bound::Included(prefix), end_b, limit, true)
    }

    /// Calls `sink` with each live key starting with `prefix`, in key order, at most
    /// `limit` of them: the keys [`scan_prefix_keys`](Self::scan_prefix_keys) lists,
    /// each with the version and timestamp of its live entry (for a key this
    /// transaction wrote, its pending version), without building that list — a listing
    /// of the snapshot alone allocates nothing per key (the key lives for the call
    /// only). Records the prefix as read, like `scan_prefix`. A failed read calls
    /// `sink` for fewer keys and fails the transaction at commit, as every read does.
    pub fn list_prefix_keys(
        &mut self,
        prefix: &[u8],
        limit: Option<usize>,
        sink: &mut dyn FnMut(&[u8], ListedKey),
    ) {
        let end = prefix_successor(prefix);
        let end_b = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let start = Bound::Included(prefix);
        if self
            .writes
            .range::<[u8], _>((start, end_b))
            .next()
            .is_some()
        {
            // Our own writes to merge in: through the list.
            for (k, e) in self.scan_range_with(start, end_b, limit, true) {
                let (version, timestamp) = (e.version, e.timestamp);
                sink(&k, ListedKey { version, timestamp });
            }
            return;
        }
        if self.track_reads {
            self.range_reads.push((own(start), own(end_b)));
        }
        let r = self
            .storage
            .list_keys(start, end_b, self.snapshot_version(), limit, sink);
        self.noted(r)
    }

    /// Like [`scan_prefix`](Self::scan_prefix) over an arbitrary key range.
    pub fn scan_range(
        &mut self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        self.scan_range_with(start, end, limit, false)
    }

    fn scan_range_with(
        &mut self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
        keys_only: bool,
    ) -> Vec<(Box<[u8]>, Entry)> {
        if is_empty_range(start, end) {
            // No key can be inside: nothing to read or validate (and `BTreeMap::range`
            // panics on such bounds).
            return Vec::new();
        }
        if self.track_reads {
            self.range_reads.push((own(start), own(end)));
        }
        let snapshot = self.snapshot_version();
        if self.writes.range::<[u8], _>((start, end)).next().is_none() {
            // Nothing of our own to merge: the snapshot's rows are the answer.
            let r = if keys_only {
                self.storage.scan_range_keys(start, end, snapshot, limit)
            } else {
                self.storage.scan_range(start, end, snapshot, limit)
            };
            return self.noted(r);
        }
        // Ask storage for enough rows that our own deletes cannot starve the limit.
        let own_deletes = self
            .writes
            .range::<[u8], _>((start, end))
            .filter(|(_, v)| v.is_none())
            .count();
        let base = self.storage.scan_range(
            start,
            end,
            snapshot,
            limit.map(|l| l.saturating_add(own_deletes)),
        );
        let base = self.noted(base);
        let mut merged: BTreeMap<Box<[u8]>, Entry> = base.into_iter().collect();
        for (k, v) in self.writes.range::<[u8], _>((start, end)) {
            match v {
                Some(v) => {
                    merged.insert(
                        k.clone(),
                        Entry {
                            version: PENDING_VERSION,
                            timestamp: strata_core::Timestamp(0),
                            value: Some(v.clone()),
                        },
                    );
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        merged
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// Like [`scan_range`](Self::scan_range) but newest key first.
    pub fn scan_range_rev(
        &mut self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        if is_empty_range(start, end) {
            return Vec::new();
        }
        if self.writes.range::<[u8], _>((start, end)).next().is_some() {
            let mut all = self.scan_range(start, end, None);
            all.reverse();
            all.truncate(limit.unwrap_or(usize::MAX));
            return all;
        }
        if self.track_reads {
            self.range_reads.push((own(start), own(end)));
        }
        let r = self
            .storage
            .scan_range_rev(start, end, self.snapshot_version(), limit);
        self.noted(r)
    }

    /// Buffers a write of `value` to `key`.
    pub fn put(&mut self, key: Box<[u8]>, value: Arc<[u8]>) {
        self.writes.insert(key, Some(value));
    }

    /// Buffers a delete of `key` (a tombstone on commit).
    pub fn delete(&mut self, key: Box<[u8]>) {
        self.writes.insert(key, None);
    }

    fn validate(&self, tree: &Tree) -> Result<()> {
        let snapshot = self.snapshot_version();
        for key in &self.point_reads {
            if tree.changed_since(key, snapshot)? {
                return Err(Error::Conflict(format!(
                    "key {} was changed by a concurrent transaction after this one began",
                    printable(key)
                )));
            }
        }
        for (start, end) in &self.range_reads {
            if let Some(key) = tree.first_newer_in_range(borrow(start), borrow(end), snapshot)? {
                return Err(Error::Conflict(format!(
                    "a concurrent transaction changed key {} inside a range this one scanned",
                    printable(&key)
                )));
            }
        }
        Ok(())
    }

    /// Validates and commits. Returns `None` for a read-only transaction, which never
    /// takes the commit lock (its snapshot reads were consistent by construction).
    ///
    /// Fails with [`Error::Conflict`] (retryable) if anything it read was changed by a
    /// transaction that committed after its snapshot.
    pub fn commit(mut self) -> Result<Option<CommitInfo>> {
        self.finished = true;
        self.metrics.finished();
        if let Some(e) = self.read_error.take() {
            self.metrics.aborted();
            return Err(e);
        }
        if self.writes.is_empty() {
            self.metrics.committed();
            return Ok(None);
        }
        if !self.track_reads {
            // A read-only snapshot kept no read set, so it cannot validate: writing
            // through one is a bug of the caller, and nothing is committed.
            self.metrics.aborted();
            return Err(Error::Internal(
                "a read-only snapshot wrote; nothing was committed".into(),
            ));
        }
        let writes: Vec<Write> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| Write { key, value })
            .collect();
        let res = self.storage.commit(writes, |tree| {
            // This runs under the commit lock, where every commit that took a version has
            // applied it: when the newest applied commit is the one this transaction's
            // snapshot reads at, nothing committed since it began and nothing it read can
            // have changed. A lone writer (the common case) skips a search per key read.
            if self.storage.applied_version() == self.snapshot_version() {
                return Ok(());
            }
            self.validate(tree)
        });
        match &res {
            Ok(_) => self.metrics.committed(),
            Err(_) => self.metrics.aborted(),
        }
        res.map(Some)
    }

    /// Discards the transaction, counting it as aborted.
    pub fn abort(mut self) {
        self.finished = true;
        self.metrics.finished();
        self.metrics.aborted();
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.finished();
            self.metrics.aborted();
        }
    }
}

fn own(b: Bound<&[u8]>) -> Bound<Box<[u8]>> {
    match b {
        Bound::Included(k) => Bound::Included(k.into()),
        Bound::Excluded(k) => Bound::Excluded(k.into()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn borrow(b: &Bound<Box<[u8]>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A storage key for messages: the user-key part as text when it is UTF-8.
fn printable(key: &[u8]) -> String {
    match strata_storage::decode_key(key) {
        Some((run, prim, user)) => {
            format!(
                "{:?}/{prim:?}/{:?}",
                run.to_string(),
                String::from_utf8_lossy(user)
            )
        }
        None => format!("{:?}", String::from_utf8_lossy(key)),
    }
}
