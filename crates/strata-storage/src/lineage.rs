//! Forked runs: a run that starts as a pointer to another run at a version.
//!
//! A fork copies nothing. The child run's keyspace starts empty, and a **fork record**
//! says where its past lives: `(parent, at)`. Reading key `k` of the child at snapshot
//! `S` is
//!
//! 1. the child's own newest entry of `k` at or before `S` (a tombstone included: a
//!    delete in the child hides what the parent held), else
//! 2. the same read in the parent, at `min(S, at)` — and so on up the ancestry.
//!
//! Every write to the child happens after the fork committed, so its own versions are
//! all newer than `at`: the child's history of a key is its own versions followed by
//! the parent's up to `at`, already in order. Writes to the parent after `at` are
//! invisible to the child (its reads of the parent never go past `at`), and writes to
//! the child never touch the parent's keys, so the two diverge from the fork on.
//!
//! The cost of a fork is one small record, whatever the size of the parent; a read in a
//! fork of depth `d` makes at most `d + 1` lookups (a miss in the child falls through),
//! and a scan merges `d + 1` streams.
//!
//! # Fork records
//!
//! A fork record is an ordinary key, written by the same commit as the child's other
//! records (so it is logged, recovered, flushed and exported like any data), under the
//! default run's id with the [`Primitive::Fork`] tag:
//!
//! ```text
//! key:   [0; 16] | 0x07 | child run id (16 B)
//! value: 0x01 | parent run id (16 B) | at (u64 LE)                  a fork
//!        0x02 | 0x00                                               a purged run
//!        0x02 | 0x01 | parent run id (16 B) | at (u64 LE)          a purged fork
//! ```
//!
//! # Purged runs
//!
//! A purge ([`Lineage`] notes it like a fork) marks a run whose every version is to be
//! removed from the files, except what forks made earlier still read: garbage
//! collection (memtable) and compaction (runs on disk) keep, of a purged run's keys,
//! only the entries some pinned reader sees — an open snapshot, or a child's fork
//! version — and drop the rest, keys included. A purged fork keeps its own fork point,
//! so that its children still reach its parent through it.
//!
//! The storage keeps every fork record in memory ([`Lineage`]): it loads them when it
//! opens (one range scan of the fork records only) and notes each one a commit writes,
//! before the commit becomes visible, so no reader can see a child without its lineage.
//!
//! # What forks pin
//!
//! The child reads its parent's history up to `at` (under the child's own retention
//! policy), so every version of the parent at or before its newest child's `at` must
//! survive garbage collection and compaction under any retention policy: that version
//! is the parent's *floor*, honoured whenever the parent's versions are
//! collected ([`Lineage::floor_of`]). A delete in a forked run is never collected away
//! either (it is what hides the parent's value).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use strata_core::RunId;

use crate::key::{encode_key, Primitive, KEY_HEADER_LEN};
use crate::mvcc::Write;

/// The format byte of a fork record's value.
const FORK_FORMAT: u8 = 1;
/// The format byte of a purge record's value.
const PURGE_FORMAT: u8 = 2;

/// Where a forked run's past lives: its parent, read as of version `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForkPoint {
    /// The run forked from.
    pub parent: RunId,
    /// The version of the parent the fork sees.
    pub at: u64,
}

/// The storage key of `child`'s fork record.
pub fn fork_key(child: &RunId) -> Box<[u8]> {
    encode_key(&RunId::DEFAULT, Primitive::Fork, child.as_bytes()).into()
}

/// The prefix of every fork record.
pub fn fork_prefix() -> Vec<u8> {
    encode_key(&RunId::DEFAULT, Primitive::Fork, &[])
}

/// The value of a fork record.
pub fn encode_fork(point: &ForkPoint) -> Arc<[u8]> {
    let mut v = Vec::with_capacity(25);
    v.push(FORK_FORMAT);
    v.extend_from_slice(point.parent.as_bytes());
    v.extend_from_slice(&point.at.to_le_bytes());
    Arc::from(v)
}

/// The value of the record of a purged run (`fork`: its fork point, if it is a fork).
pub fn encode_purged(fork: Option<&ForkPoint>) -> Arc<[u8]> {
    let mut v = vec![PURGE_FORMAT];
    match fork {
        None => v.push(0),
        Some(p) => {
            v.push(1);
            v.extend_from_slice(p.parent.as_bytes());
            v.extend_from_slice(&p.at.to_le_bytes());
        }
    }
    Arc::from(v)
}

fn fork_point(bytes: &[u8]) -> Option<ForkPoint> {
    let parent: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    let at: [u8; 8] = bytes.get(16..24)?.try_into().ok()?;
    Some(ForkPoint {
        parent: RunId::from_bytes(parent),
        at: u64::from_le_bytes(at),
    })
}

/// Decodes a fork record's value; `None` if it is not a fork this version understands
/// (a purged fork included: see [`decode_record`]).
pub fn decode_fork(bytes: &[u8]) -> Option<ForkPoint> {
    if bytes.len() != 25 || bytes[0] != FORK_FORMAT {
        return None;
    }
    fork_point(&bytes[1..])
}

/// Decodes a lineage record: the fork point (if the run is a fork) and whether the run
/// is purged; `None` if this version does not understand it.
pub fn decode_record(bytes: &[u8]) -> Option<(Option<ForkPoint>, bool)> {
    match bytes {
        [FORK_FORMAT, ..] => decode_fork(bytes).map(|p| (Some(p), false)),
        [PURGE_FORMAT, 0] => Some((None, true)),
        [PURGE_FORMAT, 1, rest @ ..] if rest.len() == 24 => Some((Some(fork_point(rest)?), true)),
        _ => None,
    }
}

/// The child run a fork-record key names, if `key` is one.
fn child_of_fork_key(key: &[u8]) -> Option<RunId> {
    if key.len() != KEY_HEADER_LEN + 16
        || key[16] != Primitive::Fork.tag()
        || key[..16] != *RunId::DEFAULT.as_bytes()
    {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&key[KEY_HEADER_LEN..]);
    Some(RunId::from_bytes(id))
}

/// The run a storage key belongs to (its first 16 bytes).
pub(crate) fn run_of(key: &[u8]) -> Option<RunId> {
    let b: [u8; 16] = key.get(..16)?.try_into().ok()?;
    Some(RunId::from_bytes(b))
}

/// `key` moved to run `to` (the run id replaced, the rest kept).
pub(crate) fn rekey(key: &[u8], to: &RunId) -> Box<[u8]> {
    let mut k = key.to_vec();
    k[..16].copy_from_slice(to.as_bytes());
    k.into()
}

/// Every fork record, in memory.
#[derive(Default)]
pub(crate) struct Lineage {
    forks: RwLock<HashMap<RunId, ForkPoint>>,
    /// Purged runs.
    purged: RwLock<HashSet<RunId>>,
    /// `true` once any fork is known: reads skip the lineage entirely until then.
    any: AtomicBool,
    /// Per forked run, the keys it wrote itself, when known (see [`OwnKeys`]).
    own: RwLock<HashMap<RunId, OwnKeys>>,
    /// [`Lineage::floors`], until the lineage changes.
    floors_cache: parking_lot::Mutex<Option<Arc<HashMap<RunId, u64>>>>,
    /// Bumped when the whole lineage is replaced: an own-key set started before then
    /// is never completed.
    epoch: std::sync::atomic::AtomicU64,
}

/// The most keys [`OwnKeys`] lists for one forked run; a fork that wrote more is
/// always read level by level.
pub(crate) const MAX_OWN_KEYS: usize = 1 << 16;

/// The keys (after the run id) a forked run wrote itself, deletes included: a read
/// that falls through a fork of depth `d` skips every level whose set shows it does
/// not hold the key (or nothing in a scanned range), so it costs about one lookup
/// instead of `d + 1`. A new fork starts with an empty, complete set; a fork found at
/// open gets its set on first use (one scan of its own keys). Commits add their keys
/// under the commit lock, so a set never misses a key a reader could see.
pub(crate) enum OwnKeys {
    /// Being filled by a scan; commits add to it; readers do not use it yet.
    Building(std::collections::BTreeSet<Box<[u8]>>),
    /// Complete.
    Ready(std::collections::BTreeSet<Box<[u8]>>),
    /// More than [`MAX_OWN_KEYS`]: not tracked.
    TooMany,
}

impl OwnKeys {
    fn insert(&mut self, rest: &[u8]) {
        let full = match self {
            OwnKeys::Building(set) | OwnKeys::Ready(set) => {
                set.insert(rest.into());
                set.len() > MAX_OWN_KEYS
            }
            OwnKeys::TooMany => false,
        };
        if full {
            *self = OwnKeys::TooMany;
        }
    }
}

/// What a fork level's own-key set says about a key or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// The level certainly holds nothing there: skip it.
    Absent,
    /// It may: read it.
    Maybe,
    /// No set yet (the caller may build one).
    Unknown,
}

impl Lineage {
    /// Builds the lineage from the fork records `records` lists (key, live value).
    pub(crate) fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let l = Lineage::default();
        for (k, v) in records {
            if let Some(child) = child_of_fork_key(k) {
                l.set(child, decode_record(v));
            }
        }
        l
    }

    /// Replaces the whole lineage (read-only refresh, restore).
    pub(crate) fn replace(&self, other: Lineage) {
        let forks = other.forks.into_inner();
        let purged = other.purged.into_inner();
        let mut mine = self.forks.write();
        let mut mine_purged = self.purged.write();
        self.any
            .store(!forks.is_empty() || !purged.is_empty(), Ordering::Release);
        *mine = forks;
        *mine_purged = purged;
        // The epoch first: a set started after the clear below belongs to the new one.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.own.write().clear();
        *self.floors_cache.lock() = None;
    }

    /// Records what the lineage record of `run` now says (`None`: no record).
    fn set(&self, run: RunId, record: Option<(Option<ForkPoint>, bool)>) {
        *self.floors_cache.lock() = None;
        let mut forks = self.forks.write();
        let mut purged = self.purged.write();
        forks.remove(&run);
        purged.remove(&run);
        if let Some((point, is_purged)) = record {
            if let Some(p) = point {
                forks.insert(run, p);
            }
            if is_purged {
                purged.insert(run);
            }
        }
        self.any
            .store(!forks.is_empty() || !purged.is_empty(), Ordering::Release);
    }

    /// Notes the fork records a commit writes (a delete of one removes the fork).
    /// Called before the commit is applied, under the commit lock.
    pub(crate) fn note(&self, writes: &[Write]) {
        for w in writes {
            if let Some(child) = child_of_fork_key(&w.key) {
                let record = w.value.as_deref().and_then(decode_record);
                if matches!(record, Some((Some(_), false))) && self.parent_of(&child).is_none() {
                    // A new fork: its own keyspace is empty.
                    self.own
                        .write()
                        .insert(child, OwnKeys::Ready(Default::default()));
                }
                self.set(child, record);
            }
        }
        if !self.any() {
            return;
        }
        let own = self.own.read();
        if own.is_empty() {
            return;
        }
        let mut grown: Vec<RunId> = Vec::new();
        for w in writes {
            if let Some(run) = run_of(&w.key) {
                if own.contains_key(&run) && !grown.contains(&run) {
                    grown.push(run);
                }
            }
        }
        drop(own);
        if grown.is_empty() {
            return;
        }
        let mut own = self.own.write();
        for w in writes {
            let Some(run) = run_of(&w.key) else { continue };
            if let Some(set) = own.get_mut(&run) {
                set.insert(&w.key[16..]);
            }
        }
    }

    /// Whether fork level `run` may hold `rest` (a key after the run id).
    pub(crate) fn presence(&self, run: &RunId, rest: &[u8]) -> Presence {
        match self.own.read().get(run) {
            Some(OwnKeys::Ready(set)) => {
                if set.contains(rest) {
                    Presence::Maybe
                } else {
                    Presence::Absent
                }
            }
            Some(_) => Presence::Maybe,
            None => Presence::Unknown,
        }
    }

    /// Whether fork level `run` may hold a key (after the run id) in the range.
    pub(crate) fn presence_in(
        &self,
        run: &RunId,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
    ) -> Presence {
        match self.own.read().get(run) {
            Some(OwnKeys::Ready(set)) => {
                if crate::mvcc::is_empty_range(start, end) {
                    return Presence::Absent;
                }
                if set.range::<[u8], _>((start, end)).next().is_some() {
                    Presence::Maybe
                } else {
                    Presence::Absent
                }
            }
            Some(_) => Presence::Maybe,
            None => Presence::Unknown,
        }
    }

    /// Starts the own-key set of `run` (under the commit lock: commits from now on add
    /// to it); `false` if it already has one.
    pub(crate) fn start_own(&self, run: &RunId) -> Option<u64> {
        let mut own = self.own.write();
        if own.contains_key(run) {
            return None;
        }
        own.insert(*run, OwnKeys::Building(Default::default()));
        Some(self.epoch.load(Ordering::Acquire))
    }

    /// Completes the own-key set of `run` with the keys a scan found (`None`: too many).
    pub(crate) fn finish_own(&self, run: &RunId, epoch: u64, scanned: Option<Vec<Box<[u8]>>>) {
        let mut own = self.own.write();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return; // the lineage was replaced meanwhile: the scan read old layers
        }
        let Some(entry) = own.get_mut(run) else {
            return;
        };
        let next = match (std::mem::replace(entry, OwnKeys::TooMany), scanned) {
            (OwnKeys::Building(mut set), Some(keys)) => {
                set.extend(keys);
                if set.len() > MAX_OWN_KEYS {
                    OwnKeys::TooMany
                } else {
                    OwnKeys::Ready(set)
                }
            }
            (OwnKeys::Ready(set), _) => OwnKeys::Ready(set),
            _ => OwnKeys::TooMany,
        };
        *entry = next;
    }

    /// `true` if any run is a fork.
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Where `run` was forked from, if it is a fork.
    pub(crate) fn parent_of(&self, run: &RunId) -> Option<ForkPoint> {
        if !self.any() {
            return None;
        }
        self.forks.read().get(run).copied()
    }

    /// The newest version of `run` a fork still reads, if any: garbage collection and
    /// compaction keep every version of `run` at or before it (a fork reads its
    /// parent's history up to its fork version, under its own retention policy). A
    /// purged fork counts only while a fork that is not purged reads through it.
    pub(crate) fn floor_of(&self, run: &RunId) -> Option<u64> {
        if !self.any() {
            return None;
        }
        self.floors().get(run).copied()
    }

    /// [`floor_of`](Self::floor_of) of every run that has one (computed once per
    /// change of the lineage).
    pub(crate) fn floors(&self) -> Arc<HashMap<RunId, u64>> {
        let mut out: HashMap<RunId, u64> = HashMap::new();
        if !self.any() {
            return Arc::new(out);
        }
        if let Some(cached) = self.floors_cache.lock().as_ref() {
            return cached.clone();
        }
        let forks = self.forks.read();
        let purged = self.purged.read();
        // Purged forks some live fork still reads through.
        let mut needed: HashSet<RunId> = HashSet::new();
        for child in forks.keys().filter(|c| !purged.contains(*c)) {
            let mut cur = *child;
            let mut steps = 0;
            while let Some(p) = forks.get(&cur) {
                steps += 1;
                if steps > forks.len() || !needed.insert(p.parent) {
                    break; // a cycle in a damaged database, or walked already
                }
                cur = p.parent;
            }
        }
        for (child, p) in forks.iter() {
            if purged.contains(child) && !needed.contains(child) {
                continue;
            }
            let f = out.entry(p.parent).or_insert(p.at);
            *f = (*f).max(p.at);
        }
        let out = Arc::new(out);
        *self.floors_cache.lock() = Some(out.clone());
        out
    }

    /// `true` if `run` was purged.
    pub(crate) fn is_purged(&self, run: &RunId) -> bool {
        self.any() && self.purged.read().contains(run)
    }

    /// The purged runs.
    pub(crate) fn purged(&self) -> Vec<RunId> {
        if !self.any() {
            return Vec::new();
        }
        self.purged.read().iter().copied().collect()
    }

    /// `true` if any run was purged.
    pub(crate) fn any_purged(&self) -> bool {
        self.any() && !self.purged.read().is_empty()
    }

    /// The read levels of `run` at `snapshot`: the run itself, then each ancestor with
    /// the version it is read at. One element for a run that is not a fork.
    pub(crate) fn ancestry(&self, run: &RunId, snapshot: u64) -> Vec<(RunId, u64)> {
        let mut out = vec![(*run, snapshot)];
        if !self.any() {
            return out;
        }
        let forks = self.forks.read();
        let mut cur = *run;
        let mut snap = snapshot;
        // Lineage is acyclic (a child id is new when its fork is written); the bound
        // only guards against a damaged database naming a cycle.
        while let Some(p) = forks.get(&cur) {
            if out.len() > forks.len() {
                break;
            }
            snap = snap.min(p.at);
            cur = p.parent;
            out.push((cur, snap));
        }
        out
    }

    /// The levels a point read of `rest` (a key after the run id) in `run` at
    /// `snapshot` must look at — the ancestry without the fork levels whose own-key
    /// sets show they never wrote it — and whether some fork level has no set yet.
    pub(crate) fn levels_for(
        &self,
        run: &RunId,
        snapshot: u64,
        rest: &[u8],
    ) -> (smallvec::SmallVec<[(RunId, u64); 4]>, bool) {
        let mut out = smallvec::SmallVec::new();
        let mut unknown = false;
        let forks = self.forks.read();
        let own = self.own.read();
        let mut cur = *run;
        let mut snap = snapshot;
        let mut steps = 0usize;
        loop {
            let parent = forks.get(&cur);
            // The last level (not a fork) is always read; a fork level only when its
            // set does not rule the key out.
            let read = match (parent, own.get(&cur)) {
                (None, _) => true,
                (Some(_), Some(OwnKeys::Ready(set))) => set.contains(rest),
                (Some(_), Some(_)) => true,
                (Some(_), None) => {
                    unknown = true;
                    true
                }
            };
            if read {
                out.push((cur, snap));
            }
            let Some(p) = parent else { break };
            steps += 1;
            if steps > forks.len() {
                break; // a cycle in a damaged database
            }
            snap = snap.min(p.at);
            cur = p.parent;
        }
        (out, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_record_round_trips_and_rejects_garbage() {
        let p = ForkPoint {
            parent: RunId::new(),
            at: 42,
        };
        assert_eq!(decode_fork(&encode_fork(&p)), Some(p));
        assert_eq!(decode_fork(b"short"), None);
        assert_eq!(decode_record(&encode_fork(&p)), Some((Some(p), false)));
        assert_eq!(decode_record(&encode_purged(None)), Some((None, true)));
        assert_eq!(
            decode_record(&encode_purged(Some(&p))),
            Some((Some(p), true))
        );
        assert_eq!(decode_record(&[2, 7]), None);
        let mut bad = encode_fork(&p).to_vec();
        bad[0] = 9;
        assert_eq!(decode_fork(&bad), None);
        let child = RunId::new();
        assert_eq!(child_of_fork_key(&fork_key(&child)), Some(child));
        assert_eq!(child_of_fork_key(&fork_prefix()), None);
    }

    #[test]
    fn ancestry_clamps_versions_and_pins_are_per_parent() {
        let (a, b, c) = (RunId::new(), RunId::new(), RunId::new());
        let l = Lineage::default();
        assert_eq!(l.ancestry(&c, 100), vec![(c, 100)]);
        let w = |child: &RunId, parent: RunId, at: u64| Write {
            key: fork_key(child),
            value: Some(encode_fork(&ForkPoint { parent, at })),
        };
        l.note(&[w(&b, a, 10), w(&c, b, 20)]);
        assert_eq!(l.ancestry(&c, 100), vec![(c, 100), (b, 20), (a, 10)]);
        assert_eq!(l.ancestry(&c, 15), vec![(c, 15), (b, 15), (a, 10)]);
        assert_eq!(l.floor_of(&a), Some(10));
        assert_eq!(l.floor_of(&b), Some(20));
        assert_eq!(l.floor_of(&c), None);
        l.note(&[Write {
            key: fork_key(&c),
            value: None,
        }]);
        assert_eq!(l.parent_of(&c), None);
    }
}
