//! The in-memory multi-version map: the live data of the database.
//!
//! Every key maps to a *version chain*: the writes of that key in commit order, each
//! with its commit version, commit timestamp and either a value or a tombstone.
//!
//! - **One global commit sequence.** Versions come from a single counter shared by all
//!   runs and primitives, so a snapshot is consistent across the whole database.
//! - **Visibility.** A reader at snapshot `S` sees, for each key, the newest entry with
//!   `version <= S`; if that entry is a tombstone the key does not exist at `S`. Commits
//!   are applied under the map's write lock as a whole and become visible only when the
//!   published version reaches them, so no reader ever sees part of a commit.
//! - **Deletes are tombstones**, never removal: history and readers at older snapshots
//!   keep working. A tombstone is a flag (`value: None`), so `Null` remains storable.
//! - **Garbage collection** ([`MvccMap::gc_range`]) drops entries that retention no
//!   longer wants *and* no open snapshot can still see.
use std::collections::{btree_map, BTreeMap};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use smallvec::{smallvec, SmallVec};
use strata_core::Timestamp;

use crate::key::prefix_successor;
use crate::retention::RetentionPolicy;

/// One version of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The commit version that wrote it.
    pub version: u64,
    /// The commit timestamp.
    pub timestamp: Timestamp,
    /// The encoded value, or `None` for a tombstone (a delete).
    pub value: Option<Arc<[u8]>>,
}

impl Entry {
    /// `true` for a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// A key's versions, oldest first. Most keys have one version, so it is stored inline:
/// no separate allocation per key.
pub(crate) type Chain = SmallVec<[Entry; 1]>;

/// An ordered map from encoded keys to version chains. See the [module docs](self).
#[derive(Default)]
pub struct MvccMap {
    inner: RwLock<BTreeMap<Box<[u8]>, Chain>>,
}

/// One write of a commit: a key and its new value, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The encoded storage key (see [`crate::key`]).
    pub key: Box<[u8]>,
    /// The encoded value, or `None` for a delete.
    pub value: Option<Arc<[u8]>>,
}

/// `true` when no key can lie between the bounds: start after end, or start equal to end
/// with either bound excluded. (`BTreeMap::range` panics on such bounds, so every range
/// operation checks first and treats them as empty.)
pub fn is_empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s >= e
        }
        _ => false,
    }
}

fn visible_at(chain: &Chain, snapshot: u64) -> Option<&Entry> {
    // Chains are short and sorted ascending; search from the newest end.
    chain.iter().rev().find(|e| e.version <= snapshot)
}

impl MvccMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies every write of one commit. The caller guarantees that `version` is larger
    /// than every version already in the map.
    pub fn apply(&self, version: u64, timestamp: Timestamp, writes: &[Write]) {
        let mut map = self.inner.write();
        for w in writes {
            let entry = Entry {
                version,
                timestamp,
                value: w.value.clone(),
            };
            match map.get_mut(&w.key) {
                Some(chain) => {
                    // Two writes of one key in one commit: the last one wins.
                    if chain.last().is_some_and(|e| e.version == version) {
                        chain.pop();
                    }
                    chain.push(entry);
                }
                None => {
                    map.insert(w.key.clone(), smallvec![entry]);
                }
            }
        }
    }

    /// Like [`apply`](Self::apply), taking the writes by value: each key is moved into
    /// the map (no copy) and found with a single search. Used by the commit path and by
    /// recovery, which own their writes.
    pub(crate) fn apply_owned(&self, version: u64, timestamp: Timestamp, writes: Vec<Write>) {
        let mut map = self.inner.write();
        for w in writes {
            let entry = Entry {
                version,
                timestamp,
                value: w.value,
            };
            match map.entry(w.key) {
                btree_map::Entry::Occupied(mut o) => {
                    let chain = o.get_mut();
                    // Two writes of one key in one commit: the last one wins.
                    if chain.last().is_some_and(|e| e.version == version) {
                        chain.pop();
                    }
                    chain.push(entry);
                }
                btree_map::Entry::Vacant(v) => {
                    v.insert(smallvec![entry]);
                }
            }
        }
    }

    /// Builds a map from chains (used by recovery from a snapshot, whose chains are
    /// already sorted, which makes the bulk build linear).
    pub(crate) fn from_chains(chains: Vec<(Box<[u8]>, Chain)>) -> Self {
        MvccMap {
            inner: RwLock::new(chains.into_iter().collect()),
        }
    }

    /// Puts a whole chain (ascending versions) under a key that has none, for an exact
    /// restore ([`crate::Storage::restore_chains`]). Returns `false`, changing nothing,
    /// if the key already has entries.
    pub(crate) fn insert_chain(&self, key: Box<[u8]>, entries: Vec<Entry>) -> bool {
        match self.inner.write().entry(key) {
            btree_map::Entry::Occupied(_) => false,
            btree_map::Entry::Vacant(v) => {
                v.insert(Chain::from_vec(entries));
                true
            }
        }
    }

    /// The entry of `key` visible at `snapshot`, tombstones included.
    pub fn get_entry(&self, key: &[u8], snapshot: u64) -> Option<Entry> {
        let map = self.inner.read();
        map.get(key).and_then(|c| visible_at(c, snapshot)).cloned()
    }

    /// The value of `key` visible at `snapshot` (`None` if absent or deleted).
    pub fn get(&self, key: &[u8], snapshot: u64) -> Option<Entry> {
        self.get_entry(key, snapshot).filter(|e| !e.is_tombstone())
    }

    /// The version of the newest entry of `key` (tombstones included, whatever the
    /// snapshot), used by transaction validation.
    pub fn latest_version(&self, key: &[u8]) -> Option<u64> {
        self.inner
            .read()
            .get(key)
            .and_then(|c| c.last())
            .map(|e| e.version)
    }

    /// The first key in `[start, end)` whose newest entry is newer than `since`, if any.
    pub fn first_newer_in_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        since: u64,
    ) -> Option<Box<[u8]>> {
        if is_empty_range(start, end) {
            return None;
        }
        let map = self.inner.read();
        map.range::<[u8], _>((start, end))
            .find(|(_, c)| c.last().is_some_and(|e| e.version > since))
            .map(|(k, _)| k.clone())
    }

    /// Live (non-deleted) entries visible at `snapshot` with keys in `[start, end)`, in key
    /// order, at most `limit` of them.
    pub fn scan_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        self.scan(start, end, snapshot, limit, false)
    }

    /// Like [`scan_range`](Self::scan_range) in reverse key order.
    pub fn scan_range_rev(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        self.scan(start, end, snapshot, limit, true)
    }

    fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        reverse: bool,
    ) -> Vec<(Box<[u8]>, Entry)> {
        if is_empty_range(start, end) {
            return Vec::new();
        }
        let map = self.inner.read();
        let range = map.range::<[u8], _>((start, end));
        let chains: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        chains
            .filter_map(|(k, chain)| {
                visible_at(chain, snapshot)
                    .filter(|e| !e.is_tombstone())
                    .map(|e| (k.clone(), e.clone()))
            })
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// Live entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        snapshot: u64,
        limit: Option<usize>,
    ) -> Vec<(Box<[u8]>, Entry)> {
        let end = prefix_successor(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_range(Bound::Included(prefix), end_bound, snapshot, limit)
    }

    /// The versions of `key` visible at `snapshot` with version `< before` (when given),
    /// newest first, tombstones included, at most `limit`.
    pub fn history(
        &self,
        key: &[u8],
        snapshot: u64,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Vec<Entry> {
        let map = self.inner.read();
        let Some(chain) = map.get(key) else {
            return Vec::new();
        };
        chain
            .iter()
            .rev()
            .filter(|e| e.version <= snapshot && before.is_none_or(|b| e.version < b))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// Number of keys (with any version, tombstones included).
    pub fn key_count(&self) -> usize {
        self.inner.read().len()
    }

    /// Copies up to `max` chains with keys strictly after `after` (from the start when
    /// `None`), keeping only entries with `version <= snapshot`. Used to write snapshots
    /// in chunks without holding the lock for long.
    pub(crate) fn chunk_after(
        &self,
        after: Option<&[u8]>,
        snapshot: u64,
        max: usize,
    ) -> Vec<(Box<[u8]>, Vec<Entry>)> {
        let map = self.inner.read();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::with_capacity(max.min(4096));
        for (k, chain) in map.range::<[u8], _>((start, Bound::Unbounded)) {
            if out.len() >= max {
                break;
            }
            let kept: Vec<Entry> = chain
                .iter()
                .filter(|e| e.version <= snapshot)
                .cloned()
                .collect();
            if !kept.is_empty() {
                out.push((k.clone(), kept));
            }
        }
        out
    }

    /// Garbage-collects the chains of keys in `[start, end)` under `policy`.
    ///
    /// An entry is dropped only when (a) the policy no longer retains it and (b) no
    /// snapshot `>= oldest_snapshot` can see it, i.e. a newer entry exists with
    /// `version <= oldest_snapshot`. The newest entry of a chain is always kept, except
    /// that a chain that is only a tombstone visible to every open snapshot is removed.
    /// Returns the number of entries dropped.
    pub fn gc_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        oldest_snapshot: u64,
        now: Timestamp,
    ) -> usize {
        if matches!(policy, RetentionPolicy::KeepAll) {
            return 0;
        }
        if is_empty_range(start, end) {
            return 0;
        }
        let mut map = self.inner.write();
        let mut dropped = 0;
        let mut empty = Vec::new();
        for (k, chain) in map.range_mut::<[u8], _>((start, end)) {
            dropped += gc_chain(chain, policy, oldest_snapshot, now);
            if chain.len() == 1 && chain[0].is_tombstone() && chain[0].version <= oldest_snapshot {
                empty.push(k.clone());
            }
        }
        for k in empty {
            map.remove(&k);
            dropped += 1;
        }
        dropped
    }
}

fn gc_chain(
    chain: &mut Chain,
    policy: &RetentionPolicy,
    oldest_snapshot: u64,
    now: Timestamp,
) -> usize {
    let n = chain.len();
    if n <= 1 {
        return 0;
    }
    // Index of the entry the oldest open snapshot sees: everything before it is invisible
    // to all snapshots.
    let Some(pinned) = chain.iter().rposition(|e| e.version <= oldest_snapshot) else {
        return 0;
    };
    let retained_from = match policy {
        RetentionPolicy::KeepAll => 0,
        RetentionPolicy::KeepLast(k) => n.saturating_sub((*k).max(1)),
        RetentionPolicy::KeepFor(d) => {
            let cutoff = now.saturating_sub(*d);
            // Keep entries newer than the cutoff, and always the newest one.
            chain
                .iter()
                .position(|e| e.timestamp >= cutoff)
                .unwrap_or(n - 1)
        }
    };
    let cut = retained_from.min(pinned);
    if cut > 0 {
        chain.drain(..cut);
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn w(k: &str, v: Option<&str>) -> Write {
        Write {
            key: k.as_bytes().into(),
            value: v.map(|s| Arc::from(s.as_bytes())),
        }
    }

    #[test]
    fn inverted_and_empty_ranges_are_empty_not_a_panic() {
        let m = MvccMap::new();
        m.apply(1, Timestamp(1), &[w("a", Some("1")), w("c", Some("3"))]);
        let (c, a) = (&b"c"[..], &b"a"[..]);
        assert!(m
            .scan_range(Bound::Included(c), Bound::Excluded(a), 1, None)
            .is_empty());
        assert!(m
            .scan_range_rev(Bound::Included(c), Bound::Included(a), 1, None)
            .is_empty());
        assert!(m
            .scan_range(Bound::Excluded(a), Bound::Included(a), 1, None)
            .is_empty());
        assert!(m
            .first_newer_in_range(Bound::Included(c), Bound::Excluded(a), 0)
            .is_none());
        assert_eq!(
            m.scan_range(Bound::Included(a), Bound::Included(a), 1, None)
                .len(),
            1
        );
    }

    #[test]
    fn visibility_and_tombstones() {
        let m = MvccMap::new();
        m.apply(1, Timestamp(1), &[w("a", Some("1")), w("b", Some("x"))]);
        m.apply(2, Timestamp(2), &[w("a", Some("2"))]);
        m.apply(3, Timestamp(3), &[w("a", None)]);
        assert_eq!(&*m.get(b"a", 1).unwrap().value.unwrap(), b"1");
        assert_eq!(&*m.get(b"a", 2).unwrap().value.unwrap(), b"2");
        assert!(m.get(b"a", 3).is_none());
        assert!(m.get(b"a", 0).is_none());
        assert_eq!(m.latest_version(b"a"), Some(3));
        let h = m.history(b"a", 3, None, None);
        assert_eq!(
            h.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        let h = m.history(b"a", 3, Some(3), Some(1));
        assert_eq!(h.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.scan_prefix(b"", 3, None).len(), 1);
        assert_eq!(m.scan_prefix(b"", 2, None).len(), 2);
    }

    #[test]
    fn gc_respects_policy_and_snapshots() {
        let m = MvccMap::new();
        for v in 1..=10 {
            m.apply(v, Timestamp(v * 1_000_000), &[w("k", Some("x"))]);
        }
        // An open snapshot at 5 pins version 5.
        let dropped = m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(2),
            5,
            Timestamp(0),
        );
        assert_eq!(dropped, 4);
        assert_eq!(m.history(b"k", 10, None, None).len(), 6);
        m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(2),
            10,
            Timestamp(0),
        );
        assert_eq!(m.history(b"k", 10, None, None).len(), 2);
        // KeepFor: versions older than 3 s before "now" (11 s) disappear, newest stays.
        m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepFor(Duration::from_secs(3)),
            10,
            Timestamp(100_000_000),
        );
        assert_eq!(m.history(b"k", 10, None, None).len(), 1);
        // A lone tombstone visible to everyone goes away entirely.
        m.apply(11, Timestamp(11), &[w("k", None)]);
        m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(1),
            11,
            Timestamp(0),
        );
        assert_eq!(m.key_count(), 0);
    }
}
