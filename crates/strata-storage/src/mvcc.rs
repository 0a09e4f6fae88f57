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
//!   longer wants *and* no open snapshot can still see (see [`RetentionPolicy`] for
//!   the one definition of what a policy keeps, shared with the read path). It works
//!   through the range in chunks of [`GC_CHUNK_KEYS`] keys, taking the write lock once
//!   per chunk, so a collection of a large run never stalls writers for long.
//! - **Size accounting.** The map counts the bytes applied to it (keys, values and a
//!   fixed per-entry overhead) and an estimate of the bytes it holds, so that the layer
//!   that knows the retention policies can collect in proportion to what was written
//!   rather than on a timer ([`MvccMap::stats`]).
//! - **A collection hook** ([`Storage::set_gc_hook`]): the layer above registers the
//!   function that applies its retention policies, and [`Storage::checkpoint`] calls
//!   it before flushing the memtable, so that no run ever persists what retention
//!   hides.
//!
//! [`Storage::checkpoint`]: crate::Storage::checkpoint
//! [`Storage::set_gc_hook`]: crate::Storage::set_gc_hook
use std::collections::{btree_map, BTreeMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use smallvec::{smallvec, SmallVec};
use strata_core::Timestamp;

use crate::inline_key::InlineKey;
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

/// What a listing of keys tells of a live key besides the key: the version and commit
/// time of the entry that makes it live (its value is not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedKey {
    /// The commit version of the live entry.
    pub version: u64,
    /// Its commit timestamp.
    pub timestamp: Timestamp,
}

/// A key and its versions, oldest first (as layers and files hand them over).
pub type KeyChain = (Box<[u8]>, Vec<Entry>);

/// A key's versions, oldest first. Most keys have one version, so it is stored inline:
/// no separate allocation per key.
pub(crate) type Chain = SmallVec<[Entry; 1]>;

/// Bytes counted for one entry besides its value: the entry itself, the value's
/// reference-counted allocation and the allocator's rounding (an estimate).
pub const ENTRY_OVERHEAD: u64 = 64;

/// Bytes counted for one key besides its bytes: its slot in the ordered map and its
/// allocation (an estimate).
pub const KEY_OVERHEAD: u64 = 64;

/// Keys garbage collection visits per acquisition of the write lock.
pub const GC_CHUNK_KEYS: usize = 1024;

/// A function that applies the retention policies of the layer above to a storage
/// (see [`Storage::set_gc_hook`](crate::Storage::set_gc_hook)).
pub type GcHook = Arc<dyn Fn(&crate::Storage) + Send + Sync>;

/// The retention policy of a storage key.
pub type PolicyOf = Box<dyn Fn(&[u8]) -> RetentionPolicy + Send + Sync>;

/// What compaction needs to apply retention to the versions it merges: the policy of
/// each key, and the time to judge `KeepFor` by (see
/// [`Storage::set_retention_hook`](crate::Storage::set_retention_hook)).
pub struct CompactionRetention {
    /// The retention policy of the key's run (`KeepAll` where none applies).
    pub policy_of: PolicyOf,
    /// "Now" for time-based policies.
    pub now: Timestamp,
}

/// Gives compaction the retention policies of the layer above, as of when it is called
/// (`None`: keep everything this time).
pub type RetentionHook = Arc<dyn Fn(&crate::Storage) -> Option<CompactionRetention> + Send + Sync>;

/// Drops the entries of one chain (ascending versions) that no reader at `pins` or at
/// `horizon` or later retains under `policy`; returns how many were dropped. Used by
/// compaction on the versions it merges. A chain from runs may be missing newer versions
/// (in the memtable or newer runs): judging it alone keeps at least what the whole
/// chain would keep, since every reader then sees an entry at least as new.
pub(crate) fn gc_entries(
    chain: &mut Vec<Entry>,
    policy: &RetentionPolicy,
    pins: &[u64],
    horizon: u64,
    now: Timestamp,
    floor: Option<u64>,
) -> u64 {
    if policy.keeps_all() || chain.len() <= 1 {
        return 0;
    }
    let mut c = Chain::from_vec(std::mem::take(chain));
    let (dropped, _) = gc_chain(&mut c, policy, pins, horizon, now, floor);
    *chain = c.into_vec();
    dropped
}

/// Size counters of a map (see [`MvccMap::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Bytes applied since the map was created (keys, values, [`ENTRY_OVERHEAD`] per
    /// write); only grows.
    pub bytes_applied: u64,
    /// Estimated bytes held: every entry (value plus [`ENTRY_OVERHEAD`]) and every key
    /// (its bytes plus [`KEY_OVERHEAD`]), hidden versions included.
    pub resident_bytes: u64,
    /// Entries held, hidden versions and tombstones included.
    pub entries: u64,
    /// Keys held.
    pub keys: u64,
    /// Commits applied since the map was created.
    pub commits_applied: u64,
}

/// What one garbage collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Keys visited.
    pub keys_visited: u64,
    /// Entries dropped (hidden versions, and the tombstone of each removed key).
    pub entries_dropped: u64,
    /// Keys removed entirely (their only entry was a delete no snapshot needs).
    pub keys_removed: u64,
    /// Estimated bytes freed (as counted by [`MapStats::resident_bytes`]).
    pub bytes_freed: u64,
}

impl GcStats {
    /// Adds another collection's figures to these.
    pub fn add(&mut self, other: GcStats) {
        self.keys_visited += other.keys_visited;
        self.entries_dropped += other.entries_dropped;
        self.keys_removed += other.keys_removed;
        self.bytes_freed += other.bytes_freed;
    }
}

fn entry_size(value: Option<&Arc<[u8]>>) -> u64 {
    value.map_or(0, |v| v.len() as u64) + ENTRY_OVERHEAD
}

fn key_size(key: &[u8]) -> u64 {
    key.len() as u64 + KEY_OVERHEAD
}

#[derive(Default)]
struct Counters {
    bytes_applied: AtomicU64,
    resident_bytes: AtomicU64,
    entries: AtomicU64,
    keys: AtomicU64,
    commits_applied: AtomicU64,
}

impl Counters {
    fn grow(&self, entries: u64, keys: u64, bytes: u64) {
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.keys.fetch_add(keys, Ordering::Relaxed);
        self.resident_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn shrink(&self, entries: u64, keys: u64, bytes: u64) {
        // Updated under the map's write lock, so never below zero; saturate anyway.
        let sub = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.entries, entries);
        sub(&self.keys, keys);
        sub(&self.resident_bytes, bytes);
    }
}

/// An ordered map from encoded keys to version chains. See the [module docs](self).
#[derive(Default)]
pub struct MvccMap {
    inner: RwLock<BTreeMap<InlineKey, Chain>>,
    counters: Counters,
    /// Set when older versions live below this map (in sorted runs): a delete is then
    /// never collected here, since it hides the key's older values in those runs.
    keep_tombstones: AtomicBool,
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
        let c = &self.counters;
        c.commits_applied.fetch_add(1, Ordering::Relaxed);
        for w in writes {
            let size = entry_size(w.value.as_ref());
            c.bytes_applied
                .fetch_add(size + w.key.len() as u64, Ordering::Relaxed);
            let entry = Entry {
                version,
                timestamp,
                value: w.value.clone(),
            };
            match map.get_mut(&w.key[..]) {
                Some(chain) => {
                    // Two writes of one key in one commit: the last one wins.
                    if chain.last().is_some_and(|e| e.version == version) {
                        if let Some(old) = chain.pop() {
                            c.shrink(1, 0, entry_size(old.value.as_ref()));
                        }
                    }
                    chain.push(entry);
                    c.grow(1, 0, size);
                }
                None => {
                    c.grow(1, 1, size + key_size(&w.key));
                    map.insert(InlineKey::from(&w.key[..]), smallvec![entry]);
                }
            }
        }
    }

    /// Like [`apply`](Self::apply), taking the writes by value: each key is moved into
    /// the map (no copy) and found with a single search. Used by the commit path and by
    /// recovery, which own their writes.
    pub(crate) fn apply_owned(&self, version: u64, timestamp: Timestamp, writes: Vec<Write>) {
        let mut map = self.inner.write();
        let c = &self.counters;
        c.commits_applied.fetch_add(1, Ordering::Relaxed);
        for w in writes {
            let size = entry_size(w.value.as_ref());
            c.bytes_applied
                .fetch_add(size + w.key.len() as u64, Ordering::Relaxed);
            let entry = Entry {
                version,
                timestamp,
                value: w.value,
            };
            match map.entry(InlineKey::from(w.key)) {
                btree_map::Entry::Occupied(mut o) => {
                    let chain = o.get_mut();
                    // Two writes of one key in one commit: the last one wins.
                    if chain.last().is_some_and(|e| e.version == version) {
                        if let Some(old) = chain.pop() {
                            c.shrink(1, 0, entry_size(old.value.as_ref()));
                        }
                    }
                    chain.push(entry);
                    c.grow(1, 0, size);
                }
                btree_map::Entry::Vacant(v) => {
                    c.grow(1, 1, size + key_size(v.key().as_slice()));
                    v.insert(smallvec![entry]);
                }
            }
        }
    }

    /// Builds a map from chains (used by recovery from a snapshot, whose chains are
    /// already sorted, which makes the bulk build linear).
    pub(crate) fn from_chains(chains: Vec<(Box<[u8]>, Chain)>) -> Self {
        let counters = Counters::default();
        for (k, chain) in &chains {
            let bytes: u64 = chain.iter().map(|e| entry_size(e.value.as_ref())).sum();
            counters.grow(chain.len() as u64, 1, bytes + key_size(k));
        }
        MvccMap {
            inner: RwLock::new(
                chains
                    .into_iter()
                    .map(|(k, c)| (InlineKey::from(k), c))
                    .collect(),
            ),
            counters,
            keep_tombstones: AtomicBool::new(false),
        }
    }

    /// An empty map that takes over from this one as the memtable after a flush: the
    /// cumulative counters (bytes and commits applied) carry on, and deletes are kept
    /// (older versions now live in runs below it).
    pub(crate) fn successor(&self) -> MvccMap {
        let m = MvccMap::new();
        m.keep_tombstones.store(true, Ordering::Release);
        let c = &self.counters;
        m.counters
            .bytes_applied
            .store(c.bytes_applied.load(Ordering::Relaxed), Ordering::Relaxed);
        m.counters
            .commits_applied
            .store(c.commits_applied.load(Ordering::Relaxed), Ordering::Relaxed);
        m
    }

    /// Keep deletes (older versions live in runs below this map).
    pub(crate) fn set_keep_tombstones(&self, keep: bool) {
        self.keep_tombstones.store(keep, Ordering::Release);
    }

    /// `true` when garbage collection keeps lone deletes (runs lie below this map).
    pub(crate) fn keeps_tombstones(&self) -> bool {
        self.keep_tombstones.load(Ordering::Acquire)
    }

    /// The whole chain of `key` (ascending versions), if it has one.
    pub(crate) fn chain(&self, key: &[u8]) -> Option<Vec<Entry>> {
        self.inner.read().get(key).map(|c| c.to_vec())
    }

    /// Up to `max` whole chains with keys in the range, in key order (or reverse).
    pub(crate) fn chains_in(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        max: usize,
        reverse: bool,
    ) -> Vec<KeyChain> {
        if is_empty_range(start, end) {
            return Vec::new();
        }
        let map = self.inner.read();
        let range = map.range::<[u8], _>((start, end));
        if reverse {
            range
                .rev()
                .take(max)
                .map(|(k, c)| (k.to_boxed(), c.to_vec()))
                .collect()
        } else {
            range
                .take(max)
                .map(|(k, c)| (k.to_boxed(), c.to_vec()))
                .collect()
        }
    }

    /// Estimated bytes held (see [`MapStats::resident_bytes`]): the one counter the
    /// commit path reads, to decide when the memtable is full.
    pub(crate) fn resident_bytes(&self) -> u64 {
        self.counters.resident_bytes.load(Ordering::Relaxed)
    }

    /// The map's size counters. The figures are read without a lock: each is exact
    /// between commits, and they may disagree by one commit while one is applied.
    pub fn stats(&self) -> MapStats {
        let c = &self.counters;
        MapStats {
            bytes_applied: c.bytes_applied.load(Ordering::Relaxed),
            resident_bytes: c.resident_bytes.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            keys: c.keys.load(Ordering::Relaxed),
            commits_applied: c.commits_applied.load(Ordering::Relaxed),
        }
    }

    /// Puts a whole chain (ascending versions) under a key that has none, for an exact
    /// restore ([`crate::Storage::restore_chains`]). Returns `false`, changing nothing,
    /// if the key already has entries.
    pub(crate) fn insert_chain(&self, key: Box<[u8]>, entries: Vec<Entry>) -> bool {
        match self.inner.write().entry(InlineKey::from(key)) {
            btree_map::Entry::Occupied(_) => false,
            btree_map::Entry::Vacant(v) => {
                let bytes: u64 = entries.iter().map(|e| entry_size(e.value.as_ref())).sum();
                self.counters.grow(
                    entries.len() as u64,
                    1,
                    bytes + key_size(v.key().as_slice()),
                );
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
            .map(|(k, _)| k.to_boxed())
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
                    .map(|e| (k.to_boxed(), e.clone()))
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
                out.push((k.to_boxed(), kept));
            }
        }
        out
    }

    /// Garbage-collects the chains of keys in `[start, end)` under `policy`; returns
    /// the number of entries dropped. See [`gc_range_stats`](Self::gc_range_stats).
    pub fn gc_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        oldest_snapshot: u64,
        now: Timestamp,
    ) -> usize {
        let stats = self.gc_range_stats(start, end, policy, oldest_snapshot, now);
        usize::try_from(stats.entries_dropped).unwrap_or(usize::MAX)
    }

    /// Garbage-collects the chains of keys in `[start, end)` under `policy`, for
    /// readers at `oldest_snapshot` or later: see [`gc_range_pinned`](Self::gc_range_pinned)
    /// with no individual pins.
    pub fn gc_range_stats(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        oldest_snapshot: u64,
        now: Timestamp,
    ) -> GcStats {
        self.gc_range_pinned(start, end, policy, &[], oldest_snapshot, now)
    }

    /// Garbage-collects the chains of keys in `[start, end)` under `policy`.
    ///
    /// The readers to serve are one at each version of `pins` (open snapshots) and every
    /// reader at `horizon` or later (the visible version when the pins were read: any
    /// snapshot taken since reads at or after it). For each, the entries the policy
    /// retains in the chain as that reader sees it are kept, and the entry it sees (see
    /// [`RetentionPolicy::retained_from`]); everything else is dropped, so each reader
    /// gets exactly the answers it would have got without collection, and an open
    /// snapshot holds only what it can read, not every version written after it.
    /// The newest entry of a chain is always kept, except that a chain that is only a
    /// delete visible to every reader is removed. Works in chunks of [`GC_CHUNK_KEYS`]
    /// keys, taking the write lock once per chunk.
    pub fn gc_range_pinned(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        pins: &[u64],
        horizon: u64,
        now: Timestamp,
    ) -> GcStats {
        let keep = self.keep_tombstones.load(Ordering::Acquire);
        self.gc_range_pinned_keeping(start, end, policy, pins, horizon, now, keep, None)
    }

    /// [`gc_range_pinned`](Self::gc_range_pinned), removing a key whose only entry is
    /// a delete only when `keep_tombstones` is `false` (a delete in a forked run hides
    /// its parent's value and must stay).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gc_range_pinned_keeping(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        policy: &RetentionPolicy,
        pins: &[u64],
        horizon: u64,
        now: Timestamp,
        keep_tombstones: bool,
        floor: Option<u64>,
    ) -> GcStats {
        let mut stats = GcStats::default();
        if policy.keeps_all() || is_empty_range(start, end) {
            return stats;
        }
        let mut pins: Vec<u64> = pins.iter().copied().filter(|&p| p < horizon).collect();
        pins.sort_unstable();
        pins.dedup();
        let oldest = pins.first().copied().unwrap_or(horizon);
        let mut cursor: Option<Box<[u8]>> = None;
        loop {
            let lo = cursor.as_deref().map_or(start, Bound::Excluded);
            if is_empty_range(lo, end) {
                break;
            }
            let mut map = self.inner.write();
            let mut visited = 0usize;
            let mut last: Option<&[u8]> = None;
            let mut empty = Vec::new();
            let mut chunk = GcStats::default();
            for (k, chain) in map.range_mut::<[u8], _>((lo, end)) {
                if visited == GC_CHUNK_KEYS {
                    break;
                }
                visited += 1;
                last = Some(k.as_slice());
                let (dropped, freed) = gc_chain(chain, policy, &pins, horizon, now, floor);
                chunk.entries_dropped += dropped;
                chunk.bytes_freed += freed;
                if !keep_tombstones
                    && chain.len() == 1
                    && chain[0].is_tombstone()
                    && chain[0].version <= oldest
                {
                    empty.push(k.clone());
                }
            }
            let next = last.map(Box::<[u8]>::from);
            for k in empty {
                if map.remove(&k).is_some() {
                    chunk.entries_dropped += 1;
                    chunk.keys_removed += 1;
                    chunk.bytes_freed += entry_size(None) + key_size(k.as_slice());
                }
            }
            self.counters
                .shrink(chunk.entries_dropped, chunk.keys_removed, chunk.bytes_freed);
            drop(map);
            chunk.keys_visited = visited as u64;
            stats.add(chunk);
            if visited < GC_CHUNK_KEYS {
                break;
            }
            cursor = next;
        }
        stats
    }
}

/// Keeps, of a purged run's chain (ascending versions), only the entries a reader at
/// one of `pins` sees and those at or before `floor` (what forks of the run read);
/// returns how many were dropped. An empty chain is left when no
/// pin sees anything: the key goes.
pub(crate) fn purge_entries(chain: &mut Vec<Entry>, pins: &[u64], floor: Option<u64>) -> u64 {
    let before = chain.len();
    let seen: Vec<usize> = pins
        .iter()
        .filter_map(|&p| chain.iter().rposition(|e| e.version <= p))
        .collect();
    let mut i = 0usize;
    chain.retain(|e| {
        let keep = seen.contains(&i) || floor.is_some_and(|f| e.version <= f);
        i += 1;
        keep
    });
    (before - chain.len()) as u64
}

impl MvccMap {
    /// Purges the keys in `[start, end)`: keeps of each chain only the entries a reader
    /// at one of `pins` sees (see [`purge_entries`]) and removes keys left with none.
    pub(crate) fn purge_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        pins: &[u64],
        floor: Option<u64>,
    ) -> GcStats {
        let mut stats = GcStats::default();
        let mut cursor: Option<Box<[u8]>> = None;
        loop {
            let lo = cursor.as_deref().map_or(start, Bound::Excluded);
            if is_empty_range(lo, end) {
                break;
            }
            let mut map = self.inner.write();
            let mut visited = 0usize;
            let mut last: Option<Box<[u8]>> = None;
            let mut empty = Vec::new();
            let mut chunk = GcStats::default();
            for (k, chain) in map.range_mut::<[u8], _>((lo, end)) {
                if visited == GC_CHUNK_KEYS {
                    break;
                }
                visited += 1;
                last = Some(k.to_boxed());
                let mut entries: Vec<Entry> = std::mem::take(chain).into_vec();
                let sizes: u64 = entries.iter().map(|e| entry_size(e.value.as_ref())).sum();
                let dropped = purge_entries(&mut entries, pins, floor);
                let kept: u64 = entries.iter().map(|e| entry_size(e.value.as_ref())).sum();
                *chain = Chain::from_vec(entries);
                if chain.is_empty() {
                    empty.push(k.clone());
                }
                chunk.entries_dropped += dropped;
                chunk.bytes_freed += sizes - kept;
            }
            for k in empty {
                if map.remove(&k).is_some() {
                    chunk.keys_removed += 1;
                    chunk.bytes_freed += key_size(k.as_slice());
                }
            }
            self.counters
                .shrink(chunk.entries_dropped, chunk.keys_removed, chunk.bytes_freed);
            drop(map);
            chunk.keys_visited = visited as u64;
            stats.add(chunk);
            if visited < GC_CHUNK_KEYS {
                break;
            }
            cursor = last;
        }
        stats
    }
}

/// Drops the entries of one chain no reader retains (see
/// [`MvccMap::gc_range_pinned`]; `pins` are sorted and all below `horizon`); returns
/// (entries dropped, bytes freed).
fn gc_chain(
    chain: &mut Chain,
    policy: &RetentionPolicy,
    pins: &[u64],
    horizon: u64,
    now: Timestamp,
    floor: Option<u64>,
) -> (u64, u64) {
    if chain.len() <= 1 {
        return (0, 0);
    }
    // The entry a reader at `v` sees.
    let seen = |chain: &Chain, v: u64| chain.iter().rposition(|e| e.version <= v);
    // Readers at the horizon or later see the chain up to the horizon's entry or
    // further: keep from what the horizon's reader retains to the end (the whole
    // chain's retained suffix starts no earlier).
    let Some(h) = seen(chain, horizon) else {
        return (0, 0);
    };
    let suffix = policy
        .retained_from(chain, now)
        .min(policy.retained_from(&chain[..=h], now));
    // Each older pinned reader: what it retains, up to the entry it sees.
    let mut kept: SmallVec<[(usize, usize); 4]> = SmallVec::new();
    // Versions at or before the floor (the newest fork version of this run) are read by
    // forks, with their whole history: they all stay.
    if let Some(f) = floor {
        let protected = chain.iter().take_while(|e| e.version <= f).count();
        if protected > 0 && suffix > 0 {
            kept.push((0, protected.min(suffix) - 1));
        }
    }
    for &p in pins {
        if let Some(i) = seen(chain, p) {
            let from = policy.retained_from(&chain[..=i], now);
            if from < suffix {
                kept.push((from, i.min(suffix - 1)));
            }
        }
    }
    let mut freed = 0;
    let dropped;
    if kept.is_empty() {
        // The common case: a prefix goes.
        if suffix == 0 {
            return (0, 0);
        }
        freed = chain[..suffix]
            .iter()
            .map(|e| entry_size(e.value.as_ref()))
            .sum();
        chain.drain(..suffix);
        dropped = suffix as u64;
    } else {
        let before = chain.len();
        let mut i = 0usize;
        chain.retain(|e| {
            let keep = i >= suffix || kept.iter().any(|&(a, b)| a <= i && i <= b);
            if !keep {
                freed += entry_size(e.value.as_ref());
            }
            i += 1;
            keep
        });
        dropped = (before - chain.len()) as u64;
    }
    // A long chain cut down keeps its allocation unless it is given back.
    if chain.spilled() && chain.capacity() > 2 * chain.len() {
        chain.shrink_to_fit();
    }
    (dropped, freed)
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
        // An open snapshot at 5 sees versions 4 and 5 as its newest two: both stay.
        let dropped = m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(2),
            5,
            Timestamp(0),
        );
        assert_eq!(dropped, 3);
        assert_eq!(m.history(b"k", 10, None, None).len(), 7);
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

    #[test]
    fn gc_works_in_chunks_and_accounts_for_bytes() {
        let m = MvccMap::new();
        let keys = GC_CHUNK_KEYS * 2 + 7;
        let value = Arc::<[u8]>::from(vec![7u8; 100]);
        for v in 1..=5u64 {
            let writes: Vec<Write> = (0..keys)
                .map(|i| Write {
                    key: format!("k{i:05}").into_bytes().into(),
                    value: Some(value.clone()),
                })
                .collect();
            m.apply(v, Timestamp(v), &writes);
        }
        let before = m.stats();
        assert_eq!(before.keys, keys as u64);
        assert_eq!(before.entries, 5 * keys as u64);
        assert_eq!(before.commits_applied, 5);
        let per_entry = 100 + ENTRY_OVERHEAD;
        assert_eq!(
            before.resident_bytes,
            5 * keys as u64 * per_entry + keys as u64 * (6 + KEY_OVERHEAD)
        );
        assert_eq!(before.bytes_applied, 5 * keys as u64 * (per_entry + 6));
        let stats = m.gc_range_stats(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(1),
            5,
            Timestamp(5),
        );
        assert_eq!(stats.keys_visited, keys as u64);
        assert_eq!(stats.entries_dropped, 4 * keys as u64);
        assert_eq!(stats.bytes_freed, 4 * keys as u64 * per_entry);
        let after = m.stats();
        assert_eq!(after.entries, keys as u64);
        assert_eq!(
            after.resident_bytes,
            before.resident_bytes - stats.bytes_freed
        );
        // Every key of every chunk was collected, and the newest versions remain.
        for i in [0, GC_CHUNK_KEYS - 1, GC_CHUNK_KEYS, keys - 1] {
            let k = format!("k{i:05}");
            assert_eq!(m.history(k.as_bytes(), 5, None, None).len(), 1, "{k}");
        }
        // Deleted keys disappear entirely, and so does their accounting.
        let deletes: Vec<Write> = (0..keys).map(|i| w(&format!("k{i:05}"), None)).collect();
        m.apply(6, Timestamp(6), &deletes);
        m.gc_range(
            Bound::Unbounded,
            Bound::Unbounded,
            &RetentionPolicy::KeepLast(1),
            6,
            Timestamp(6),
        );
        assert_eq!(m.key_count(), 0);
        assert_eq!(m.stats().resident_bytes, 0);
        assert_eq!(m.stats().entries, 0);
        assert_eq!(m.stats().keys, 0);
    }

    #[test]
    fn readers_at_or_after_the_oldest_snapshot_see_the_same_retained_history() {
        // For KeepLast and KeepFor, with deletes, whatever the oldest snapshot: the live
        // versions a reader at any snapshot >= it retains are unchanged by collection
        // (a removed lone delete retained nothing live).
        let policies = [
            RetentionPolicy::KeepLast(1),
            RetentionPolicy::KeepLast(2),
            RetentionPolicy::KeepLast(3),
            RetentionPolicy::KeepFor(Duration::from_micros(3)),
        ];
        let pattern = [
            true, true, false, true, false, false, true, true, true, false,
        ];
        for policy in policies {
            for oldest in 1..=pattern.len() as u64 {
                let m = MvccMap::new();
                for (i, live) in pattern.iter().enumerate() {
                    let v = i as u64 + 1;
                    let value = live.then(|| v.to_string());
                    m.apply(v, Timestamp(v), &[w("k", value.as_deref())]);
                }
                let now = Timestamp(12);
                let retained = |m: &MvccMap, s: u64| -> Vec<u64> {
                    let mut chain = m.history(b"k", s, None, None);
                    chain.reverse();
                    let from = policy.retained_from(&chain, now);
                    chain[from..]
                        .iter()
                        .filter(|e| !e.is_tombstone())
                        .map(|e| e.version)
                        .collect()
                };
                let expected: Vec<Vec<u64>> = (oldest..=10).map(|s| retained(&m, s)).collect();
                m.gc_range(Bound::Unbounded, Bound::Unbounded, &policy, oldest, now);
                let got: Vec<Vec<u64>> = (oldest..=10).map(|s| retained(&m, s)).collect();
                assert_eq!(got, expected, "{policy:?} oldest {oldest}");
            }
        }
    }

    #[test]
    fn pinned_readers_keep_only_what_they_read() {
        let policies = [
            RetentionPolicy::KeepLast(1),
            RetentionPolicy::KeepLast(2),
            RetentionPolicy::KeepFor(Duration::from_micros(3)),
        ];
        let pattern = [
            true, true, false, true, false, true, true, true, true, false, true,
        ];
        let last = pattern.len() as u64;
        let pin_sets: [&[u64]; 5] = [&[], &[2], &[3, 7], &[1, 4, 5, 9], &[6, 6, 8]];
        for policy in policies {
            for pins in pin_sets {
                for horizon in [9, last] {
                    let m = MvccMap::new();
                    for (i, live) in pattern.iter().enumerate() {
                        let v = i as u64 + 1;
                        let value = live.then(|| v.to_string());
                        m.apply(v, Timestamp(v), &[w("k", value.as_deref())]);
                    }
                    let now = Timestamp(13);
                    let retained = |m: &MvccMap, s: u64| -> Vec<u64> {
                        let mut chain = m.history(b"k", s, None, None);
                        chain.reverse();
                        let from = policy.retained_from(&chain, now);
                        chain[from..]
                            .iter()
                            .filter(|e| !e.is_tombstone())
                            .map(|e| e.version)
                            .collect()
                    };
                    let readers: Vec<u64> = pins.iter().copied().chain(horizon..=last).collect();
                    let seen = |m: &MvccMap| -> Vec<(Vec<u64>, Option<u64>)> {
                        readers
                            .iter()
                            .map(|&s| (retained(m, s), m.get(b"k", s).map(|e| e.version)))
                            .collect()
                    };
                    let expected = seen(&m);
                    let stats = m.gc_range_pinned(
                        Bound::Unbounded,
                        Bound::Unbounded,
                        &policy,
                        pins,
                        horizon,
                        now,
                    );
                    assert_eq!(
                        seen(&m),
                        expected,
                        "{policy:?} pins {pins:?} horizon {horizon}"
                    );
                    assert_eq!(
                        m.stats().entries,
                        m.history(b"k", last, None, None).len() as u64
                    );
                    if policy == RetentionPolicy::KeepLast(1) && pins == [3, 7] && horizon == last {
                        // 3 and 7 are what the pinned readers see; 11 is the newest.
                        let left: Vec<u64> = m
                            .history(b"k", last, None, None)
                            .iter()
                            .map(|e| e.version)
                            .collect();
                        assert_eq!(left, vec![11, 7, 3]);
                        assert_eq!(stats.entries_dropped, 8);
                    }
                }
            }
        }
    }
}
