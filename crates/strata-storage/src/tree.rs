//! The layered store: a memtable over sorted runs (a log-structured merge tree).
//!
//! # The idea
//!
//! Every version lives in exactly one *layer*, and layers hold disjoint, ordered ranges
//! of commit versions:
//!
//! 1. the **active memtable** ([`MvccMap`]): every commit after the last flush, in
//!    memory, where commits are applied;
//! 2. at most one **frozen memtable**: the previous active one, being written to a run
//!    by a flush (readers still read it until its run replaces it);
//! 3. the **sorted runs** ([`Run`]), newest first, read in place from disk.
//!
//! Because every layer is newer than every layer below it, the version of a key a
//! reader at snapshot `S` sees is in the *first* layer (top down) that holds a version
//! of that key at or before `S`. A point lookup stops there; a scan merges the layers'
//! key streams and, for each key, asks the same question; a history concatenates the
//! layers' chains.
//!
//! # Consistency while layers change
//!
//! The set of layers is an immutable value ([`Layers`]) behind a lock, replaced whole
//! when a flush freezes the memtable (under the commit lock, so at a version boundary),
//! when the frozen memtable's run is installed, and when a compaction replaces runs. A
//! reader takes the current value once and reads only it: whatever happens meanwhile,
//! the layers it holds stay alive (a replaced run's mapping outlives its unlinked file)
//! and hold every version up to its snapshot, because anything committed after it took
//! them is newer than its snapshot.
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_core::Result;

use crate::key::prefix_successor;
use crate::manifest::RunMeta;
use crate::mvcc::{is_empty_range, Entry, KeyChain, ListedKey, MapStats, MvccMap};
use crate::run::{cmp_bytes, Run, RunCursor};

/// Keys fetched from a memtable per step of a merged scan.
const MEM_CHUNK: usize = 256;

/// A run and what the manifest says about it.
#[derive(Clone)]
pub(crate) struct RunHandle {
    pub run: Arc<Run>,
    pub meta: RunMeta,
}

/// One consistent set of layers (see the module docs).
#[derive(Clone)]
pub(crate) struct Layers {
    pub active: Arc<MvccMap>,
    pub frozen: Option<Arc<MvccMap>>,
    /// Runs, newest first.
    pub runs: Arc<Vec<RunHandle>>,
}

/// The layered store. See the [module docs](self).
pub struct Tree {
    layers: RwLock<Arc<Layers>>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.layers();
        f.debug_struct("Tree")
            .field("runs", &l.runs.len())
            .field("frozen", &l.frozen.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) fn visible_at(chain: &[Entry], snapshot: u64) -> Option<&Entry> {
    chain.iter().rev().find(|e| e.version <= snapshot)
}

impl Tree {
    pub(crate) fn new(active: MvccMap, runs: Vec<RunHandle>) -> Tree {
        if !runs.is_empty() {
            active.set_keep_tombstones(true);
        }
        Tree {
            layers: RwLock::new(Arc::new(Layers {
                active: Arc::new(active),
                frozen: None,
                runs: Arc::new(runs),
            })),
        }
    }

    /// The current layers.
    pub(crate) fn layers(&self) -> Arc<Layers> {
        self.layers.read().clone()
    }

    /// Replaces the layers (flush and compaction steps).
    pub(crate) fn set_layers(&self, layers: Layers) {
        *self.layers.write() = Arc::new(layers);
    }

    /// Runs `f` on the active memtable without cloning the layer set (the commit path).
    pub(crate) fn with_active<T>(&self, f: impl FnOnce(&MvccMap) -> T) -> T {
        f(&self.layers.read().active)
    }

    /// Size counters: the memtables' entries, keys and bytes held, the active one's
    /// cumulative counters.
    pub fn stats(&self) -> MapStats {
        let l = self.layers();
        let mut s = l.active.stats();
        if let Some(f) = &l.frozen {
            let fs = f.stats();
            s.resident_bytes += fs.resident_bytes;
            s.entries += fs.entries;
            s.keys += fs.keys;
        }
        s
    }

    /// Number of sorted runs.
    pub fn run_count(&self) -> usize {
        self.layers().runs.len()
    }

    /// The entry of `key` visible at `snapshot`, tombstones included.
    pub fn get_entry(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>> {
        let l = self.layers();
        if let Some(e) = l.active.get_entry(key, snapshot) {
            return Ok(Some(e));
        }
        if let Some(f) = &l.frozen {
            if let Some(e) = f.get_entry(key, snapshot) {
                return Ok(Some(e));
            }
        }
        // Each run's key filter is one cache line, mostly a miss from memory: asked for
        // together, the misses of all runs overlap instead of adding up (a key of the
        // oldest, largest run is looked up in every newer run's filter first).
        let h = crate::filter::key_hash(key);
        let eligible = || l.runs.iter().filter(|r| r.meta.min_version <= snapshot);
        if l.runs.len() > 1 {
            for r in eligible() {
                r.run.prefetch_filter(h);
            }
        }
        for r in eligible() {
            if let Some(e) = r.run.get_hashed(key, h, snapshot)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The live value of `key` at `snapshot` (`None` if absent or deleted).
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>> {
        Ok(self.get_entry(key, snapshot)?.filter(|e| !e.is_tombstone()))
    }

    /// `true` if `key` has a version newer than `since` (transaction validation).
    /// Only layers that can hold such a version are read.
    pub fn changed_since(&self, key: &[u8], since: u64) -> Result<bool> {
        let l = self.layers();
        if let Some(v) = l.active.latest_version(key) {
            return Ok(v > since);
        }
        if let Some(v) = l.frozen.as_ref().and_then(|f| f.latest_version(key)) {
            return Ok(v > since);
        }
        for r in l.runs.iter() {
            if r.meta.max_version <= since {
                break; // this run and every older one hold nothing newer
            }
            if let Some(e) = r.run.chain(key)?.last() {
                return Ok(e.version > since);
            }
        }
        Ok(false)
    }

    /// A key in `[start, end)` with a version newer than `since`, if any.
    pub fn first_newer_in_range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        since: u64,
    ) -> Result<Option<Box<[u8]>>> {
        let l = self.layers();
        if let Some(k) = l.active.first_newer_in_range(start, end, since) {
            return Ok(Some(k));
        }
        if let Some(k) = l
            .frozen
            .as_ref()
            .and_then(|f| f.first_newer_in_range(start, end, since))
        {
            return Ok(Some(k));
        }
        if is_empty_range(start, end) {
            return Ok(None);
        }
        for r in l.runs.iter() {
            if r.meta.max_version <= since {
                break;
            }
            let mut c = RunCursor::new(r.run.clone(), start, end, false);
            while let Some((k, chain)) = c.next_chain()? {
                if !within_end(&k, end) {
                    break;
                }
                if chain.last().is_some_and(|e| e.version > since) {
                    return Ok(Some(k));
                }
            }
        }
        Ok(None)
    }

    /// Versions of `key` visible at `snapshot` with version `< before` (when given),
    /// newest first, tombstones included, at most `limit`.
    pub fn history(
        &self,
        key: &[u8],
        snapshot: u64,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>> {
        let chain = self.chain(&self.layers(), key, snapshot)?;
        Ok(chain
            .into_iter()
            .rev()
            .filter(|e| e.version <= snapshot && before.is_none_or(|b| e.version < b))
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// Every version of `key` up to `snapshot` across the layers, ascending.
    fn chain(&self, l: &Layers, key: &[u8], snapshot: u64) -> Result<Vec<Entry>> {
        let mut parts: smallvec::SmallVec<[Vec<Entry>; 2]> = smallvec::SmallVec::new();
        if let Some(c) = l.active.chain(key) {
            parts.push(c);
        }
        if let Some(c) = l.frozen.as_ref().and_then(|f| f.chain(key)) {
            parts.push(c);
        }
        for r in l.runs.iter() {
            if r.meta.min_version > snapshot {
                continue;
            }
            let c = r.run.chain(key)?;
            if !c.is_empty() {
                parts.push(c);
            }
        }
        Ok(union(parts))
    }

    /// Live entries visible at `snapshot` with keys in `[start, end)`, in key order (or
    /// reverse), at most `limit`.
    pub fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        self.scan_with(start, end, snapshot, limit, reverse, false)
    }

    /// Like [`scan`](Self::scan); with `keys_only`, live entries may come with an
    /// empty value instead of their own: always those read from sorted runs (see
    /// [`RunCursor::keys_only`]), and every one in a listing short enough for
    /// [`list_keys`]. Only their versions, timestamps and liveness are meant.
    pub(crate) fn scan_with(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        reverse: bool,
        keys_only: bool,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        let l = self.layers();
        if l.frozen.is_none() && l.runs.is_empty() {
            return Ok(if reverse {
                l.active.scan_range_rev(start, end, snapshot, limit)
            } else {
                l.active.scan_range(start, end, snapshot, limit)
            });
        }
        let limit = limit.unwrap_or(usize::MAX);
        if keys_only && !reverse && limit <= LIST_KEYS_MAX && !is_empty_range(start, end) {
            let mut out = Vec::with_capacity(limit.min(256));
            let empty: Arc<[u8]> = Arc::from(&[][..]);
            list_keys(&l, start, end, snapshot, limit, &mut |k, e| {
                let value = Some(empty.clone());
                let (version, timestamp) = (e.version, e.timestamp);
                out.push((
                    Box::from(k),
                    Entry {
                        version,
                        timestamp,
                        value,
                    },
                ));
            })?;
            return Ok(out);
        }
        let mut out = Vec::with_capacity(limit.min(256));
        if limit == 0 {
            return Ok(out);
        }
        let mut merge = Merge::new(&l, start, end, reverse, snapshot);
        if keys_only {
            merge.keys_only();
        }
        while let Some((k, chain)) = merge.next()? {
            if let Some(e) = visible_at(&chain, snapshot).filter(|e| !e.is_tombstone()) {
                out.push((k, e.clone()));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Calls `sink` with each live key in `start..end` at `snapshot`, in key order, at
    /// most `limit` of them, and with the version that makes it live; values are not
    /// read. Listings of up to [`LIST_KEYS_MAX`] keys merge the layers in place,
    /// allocating nothing per key; longer ones take the merged scan (which reads runs
    /// ahead).
    pub(crate) fn list_keys(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        snapshot: u64,
        limit: Option<usize>,
        sink: &mut dyn FnMut(&[u8], ListedKey),
    ) -> Result<()> {
        if is_empty_range(start, end) {
            return Ok(());
        }
        if let Some(max) = limit.filter(|&m| m <= LIST_KEYS_MAX) {
            return list_keys(&self.layers(), start, end, snapshot, max, sink);
        }
        for (k, e) in self.scan_with(start, end, snapshot, limit, false, true)? {
            let (version, timestamp) = (e.version, e.timestamp);
            sink(&k, ListedKey { version, timestamp });
        }
        Ok(())
    }

    /// Live entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        snapshot: u64,
        limit: Option<usize>,
    ) -> Result<Vec<(Box<[u8]>, Entry)>> {
        let end = prefix_successor(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.scan(Bound::Included(prefix), end_bound, snapshot, limit, false)
    }

    /// Up to `max` chains with keys after `after`, each cut to `version <= snapshot`
    /// (keys with nothing left are skipped), merged across the layers.
    pub(crate) fn chunk_after(
        &self,
        l: &Layers,
        after: Option<&[u8]>,
        snapshot: u64,
        max: usize,
    ) -> Result<Vec<KeyChain>> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut merge = Merge::new(l, start, Bound::Unbounded, false, snapshot);
        let mut out = Vec::new();
        while out.len() < max {
            let Some((k, mut chain)) = merge.next()? else {
                break;
            };
            chain.retain(|e| e.version <= snapshot);
            if !chain.is_empty() {
                out.push((k, chain));
            }
        }
        Ok(out)
    }

    /// Number of keys with any version (tombstones included) in any layer.
    pub fn key_count(&self) -> Result<usize> {
        let l = self.layers();
        if l.frozen.is_none() && l.runs.is_empty() {
            return Ok(l.active.key_count());
        }
        let mut merge = Merge::new(&l, Bound::Unbounded, Bound::Unbounded, false, u64::MAX);
        let mut n = 0;
        while merge.next()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

fn within_end(key: &[u8], end: Bound<&[u8]>) -> bool {
    match end {
        Bound::Included(e) => cmp_bytes(key, e).is_le(),
        Bound::Excluded(e) => cmp_bytes(key, e).is_lt(),
        Bound::Unbounded => true,
    }
}

/// The union of chains from several layers, ascending by version, each version once.
fn union(mut parts: smallvec::SmallVec<[Vec<Entry>; 2]>) -> Vec<Entry> {
    match parts.len() {
        0 => Vec::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let mut all: Vec<Entry> = parts.into_iter().flatten().collect();
            all.sort_by_key(|e| e.version);
            all.dedup_by_key(|e| e.version);
            all
        }
    }
}

/// Most keys a listing may ask for to take [`list_keys`]: it reads runs without
/// read-ahead, which a long scan of a cold run needs.
const LIST_KEYS_MAX: usize = 4096;

/// One layer of [`list_keys`]: a memtable's chains (fetched in chunks) or a run's
/// entries, borrowed in place.
enum KeyStream<'a> {
    Mem {
        map: &'a MvccMap,
        buf: std::collections::VecDeque<KeyChain>,
        /// Where the next chunk starts (exclusive), once one was read.
        from: Option<Box<[u8]>>,
        done: bool,
    },
    Run {
        cursor: crate::run::RawCursor<'a>,
        /// The key under the cursor while it is inside the listed range.
        key: Option<&'a [u8]>,
    },
}

impl<'a> KeyStream<'a> {
    /// A memtable's stream, its first chunk read.
    fn mem(map: &'a MvccMap, start: Bound<&[u8]>, end: Bound<&[u8]>) -> KeyStream<'a> {
        let mut s = KeyStream::Mem {
            map,
            buf: Default::default(),
            from: None,
            done: false,
        };
        s.refill(start, end);
        s
    }

    /// A run's stream from the first entry at or after `start`, starting from block
    /// `block` (that of [`Run::seek`]).
    fn run(
        run: &'a Run,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        block: usize,
    ) -> Result<KeyStream<'a>> {
        let from = match start {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let mut cursor = crate::run::RawCursor::seek_from(run, from, block)?;
        if let Bound::Excluded(k) = start {
            while cursor
                .current()
                .is_some_and(|e| cmp_bytes(e.key, k).is_eq())
            {
                cursor.advance()?;
            }
        }
        let key = cursor
            .current()
            .map(|e| e.key)
            .filter(|k| within_end(k, end));
        Ok(KeyStream::Run { cursor, key })
    }

    /// Reads the memtable's next chunk once the last one is used up.
    fn refill(&mut self, start: Bound<&[u8]>, end: Bound<&[u8]>) {
        if let KeyStream::Mem {
            map,
            buf,
            from,
            done,
        } = self
        {
            if buf.is_empty() && !*done {
                let lo = from.as_deref().map_or(start, Bound::Excluded);
                let chunk = map.chains_in(lo, end, MEM_CHUNK, false);
                *done = chunk.len() < MEM_CHUNK;
                if let Some((k, _)) = chunk.last() {
                    *from = Some(k.clone());
                }
                buf.extend(chunk);
            }
        }
    }

    /// The key under the stream (`None` once it has left the range).
    fn head(&self) -> Option<&[u8]> {
        match self {
            KeyStream::Mem { buf, .. } => buf.front().map(|(k, _)| &**k),
            KeyStream::Run { key, .. } => *key,
        }
    }

    /// Consumes every version of `key` (the stream's head) and returns the newest one
    /// at or before `snapshot`, if any, as `Some(live)` (`None`: none at or before it).
    fn take(
        &mut self,
        key: &[u8],
        snapshot: u64,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Result<Option<Option<ListedKey>>> {
        let found = match self {
            KeyStream::Mem { buf, .. } => buf.pop_front().and_then(|(_, chain)| {
                visible_at(&chain, snapshot).map(|e| {
                    (!e.is_tombstone()).then_some(ListedKey {
                        version: e.version,
                        timestamp: e.timestamp,
                    })
                })
            }),
            KeyStream::Run { cursor, key: head } => {
                let mut found = None;
                while let Some(e) = cursor.current().filter(|e| eq_bytes(e.key, key)) {
                    if e.version <= snapshot {
                        found = Some(e.value.is_some().then_some(ListedKey {
                            version: e.version,
                            timestamp: strata_core::Timestamp(e.timestamp),
                        }));
                    }
                    cursor.advance()?;
                }
                *head = cursor
                    .current()
                    .map(|e| e.key)
                    .filter(|k| within_end(k, end));
                found
            }
        };
        self.refill(start, end);
        Ok(found)
    }
}

/// `a == b`, comparing the last eight bytes first: keys in one listing share their
/// beginning, so two different ones mostly differ near the end.
#[inline]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 && a[n - 8..] != b[n - 8..] {
        return false;
    }
    cmp_bytes(a, b).is_eq()
}

/// The number of leading bytes every key in `start..end` shares: the common prefix of
/// the two bounds (a key at or after `start` and before `end` begins with it), 0 when
/// either is unbounded.
fn shared_prefix_len(start: Bound<&[u8]>, end: Bound<&[u8]>) -> usize {
    match (start, end) {
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s.iter().zip(e).take_while(|(a, b)| a == b).count()
        }
        _ => 0,
    }
}

/// Keys-only forward listing (see [`Tree::list_keys`]) of at most `limit` live keys:
/// the layers merged key by key, each run read in place through a [`RawCursor`], so
/// nothing is allocated per key; `sink` is called with each live key, in order. The
/// newest layer holding a version of a key at or before `snapshot` decides it (a
/// delete hides it), as in every read. Layers with nothing in the range take no part
/// in the merge, and keys are compared after the prefix every key of the range shares.
///
/// [`RawCursor`]: crate::run::RawCursor
fn list_keys(
    l: &Layers,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    snapshot: u64,
    limit: usize,
    sink: &mut dyn FnMut(&[u8], ListedKey),
) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    // Newest layer first: on equal keys the first stream decides.
    let mut streams: smallvec::SmallVec<[KeyStream<'_>; 8]> = smallvec::SmallVec::new();
    for map in std::iter::once(&l.active).chain(&l.frozen) {
        let s = KeyStream::mem(map, start, end);
        if s.head().is_some() {
            streams.push(s);
        }
    }
    let runs: smallvec::SmallVec<[&Run; 8]> = l
        .runs
        .iter()
        .filter(|r| r.meta.min_version <= snapshot)
        .map(|r| &*r.run)
        .collect();
    // The seeks in all runs together, so that their cache misses overlap.
    let blocks = match start {
        Bound::Included(k) | Bound::Excluded(k) => crate::run::SeekSteps::blocks(&runs, k),
        Bound::Unbounded => runs.iter().map(|_| 0).collect(),
    };
    for (r, b) in runs.into_iter().zip(blocks) {
        let s = KeyStream::run(r, start, end, b)?;
        if s.head().is_some() {
            streams.push(s);
        }
    }
    let skip = shared_prefix_len(start, end);
    fn after(k: &[u8], skip: usize) -> &[u8] {
        k.get(skip..).unwrap_or(k)
    }
    let mut key: Vec<u8> = Vec::new();
    let mut listed = 0;
    while listed < limit {
        // The smallest key under any stream, and the first stream holding it.
        let mut best: Option<(usize, &[u8])> = None;
        for (i, s) in streams.iter().enumerate() {
            if let Some(k) = s.head() {
                if best.is_none_or(|(_, b)| cmp_bytes(after(k, skip), after(b, skip)).is_lt()) {
                    best = Some((i, k));
                }
            }
        }
        let Some((first, k)) = best else {
            break;
        };
        key.clear();
        key.extend_from_slice(k);
        // Every layer's versions of the key are consumed; the first layer with one at
        // or before the snapshot decides. Streams before `first` hold larger keys.
        let mut decided: Option<Option<ListedKey>> = None;
        for s in &mut streams[first..] {
            if s.head().is_some_and(|h| eq_bytes(h, &key)) {
                let e = s.take(&key, snapshot, start, end)?;
                if decided.is_none() {
                    decided = e;
                }
            }
        }
        if let Some(Some(e)) = decided {
            sink(&key, e);
            listed += 1;
        }
    }
    Ok(())
}

/// A stream of one layer's chains in key order (or reverse).
enum Source {
    Mem {
        map: Arc<MvccMap>,
        /// Where the next chunk starts (exclusive once something was read).
        from: Option<Box<[u8]>>,
        buf: std::collections::VecDeque<(Box<[u8]>, Vec<Entry>)>,
        done: bool,
    },
    Run(RunCursor),
}

struct Stream {
    source: Source,
    peeked: Option<(Box<[u8]>, Vec<Entry>)>,
}

/// Merges the layers' streams of chains in key order (or reverse) within bounds.
pub(crate) struct Merge {
    streams: Vec<Stream>,
    start: Bound<Box<[u8]>>,
    end: Bound<Box<[u8]>>,
    reverse: bool,
}

impl Merge {
    pub(crate) fn new(
        l: &Layers,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
        snapshot: u64,
    ) -> Merge {
        let mem = |map: &Arc<MvccMap>| Stream {
            source: Source::Mem {
                map: map.clone(),
                from: None,
                buf: Default::default(),
                done: false,
            },
            peeked: None,
        };
        let mut streams = vec![mem(&l.active)];
        if let Some(f) = &l.frozen {
            streams.push(mem(f));
        }
        for r in l.runs.iter() {
            if r.meta.min_version > snapshot {
                continue;
            }
            streams.push(Stream {
                source: Source::Run(RunCursor::new(r.run.clone(), start, end, reverse)),
                peeked: None,
            });
        }
        Merge {
            streams,
            start: start.map(Box::from),
            end: end.map(Box::from),
            reverse,
        }
    }

    /// Makes the runs' streams hand out entries without values (see
    /// [`RunCursor::keys_only`]).
    pub(crate) fn keys_only(&mut self) {
        for s in &mut self.streams {
            if let Source::Run(c) = &mut s.source {
                c.keys_only();
            }
        }
    }

    fn in_range(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => cmp_bytes(key, s).is_ge(),
            Bound::Excluded(s) => cmp_bytes(key, s).is_gt(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => cmp_bytes(key, e).is_le(),
            Bound::Excluded(e) => cmp_bytes(key, e).is_lt(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    fn past_range(&self, key: &[u8]) -> bool {
        if self.reverse {
            match &self.start {
                Bound::Included(s) => cmp_bytes(key, s).is_lt(),
                Bound::Excluded(s) => cmp_bytes(key, s).is_le(),
                Bound::Unbounded => false,
            }
        } else {
            !within_end(key, self.end.as_ref().map(|b| &**b))
        }
    }

    fn fill(&mut self, i: usize) -> Result<()> {
        let Merge {
            streams,
            start,
            end,
            reverse,
        } = self;
        let stream = &mut streams[i];
        if stream.peeked.is_some() {
            return Ok(());
        }
        let next = match &mut stream.source {
            Source::Mem {
                map,
                from,
                buf,
                done,
            } => {
                if buf.is_empty() && !*done {
                    let (lo, hi) = match (&from, *reverse) {
                        (None, _) => (start.as_ref().map(|b| &**b), end.as_ref().map(|b| &**b)),
                        (Some(f), false) => (Bound::Excluded(&**f), end.as_ref().map(|b| &**b)),
                        (Some(f), true) => (start.as_ref().map(|b| &**b), Bound::Excluded(&**f)),
                    };
                    let chunk = map.chains_in(lo, hi, MEM_CHUNK, *reverse);
                    if chunk.len() < MEM_CHUNK {
                        *done = true;
                    }
                    if let Some((k, _)) = chunk.last() {
                        *from = Some(k.clone());
                    }
                    buf.extend(chunk);
                }
                buf.pop_front()
            }
            Source::Run(c) => c.next_chain()?,
        };
        stream.peeked = next;
        Ok(())
    }

    /// The next key and its chain (all layers' versions, ascending, each once).
    pub(crate) fn next(&mut self) -> Result<Option<KeyChain>> {
        loop {
            for i in 0..self.streams.len() {
                self.fill(i)?;
            }
            // The stream with the smallest (largest, in reverse) key; ties go to the
            // newest layer, which comes first.
            let mut best: Option<usize> = None;
            for (i, s) in self.streams.iter().enumerate() {
                let Some((k, _)) = &s.peeked else { continue };
                let better = match best.and_then(|b| self.streams[b].peeked.as_ref()) {
                    None => true,
                    Some((b, _)) if self.reverse => cmp_bytes(k, b).is_gt(),
                    Some((b, _)) => cmp_bytes(k, b).is_lt(),
                };
                if better {
                    best = Some(i);
                }
            }
            let Some(best) = best else {
                return Ok(None);
            };
            let Some((key, chain)) = self.streams[best].peeked.take() else {
                return Ok(None);
            };
            if self.past_range(&key) {
                return Ok(None);
            }
            let mut parts: smallvec::SmallVec<[Vec<Entry>; 2]> = smallvec::smallvec![chain];
            for s in &mut self.streams {
                if s.peeked
                    .as_ref()
                    .is_some_and(|(k, _)| cmp_bytes(k, &key).is_eq())
                {
                    if let Some((_, c)) = s.peeked.take() {
                        parts.push(c);
                    }
                }
            }
            // A run cursor starts at the block holding the start key: skip what lies
            // before it.
            if !self.in_range(&key) {
                continue;
            }
            return Ok(Some((key, union(parts))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_a_range_share_the_prefix_of_its_bounds() {
        let (i, e) = (Bound::Included::<&[u8]>, Bound::Excluded::<&[u8]>);
        assert_eq!(shared_prefix_len(i(b"user:0042:"), e(b"user:0042;")), 9);
        assert_eq!(shared_prefix_len(e(b"abc"), i(b"abd")), 2);
        assert_eq!(shared_prefix_len(i(b"abc"), e(b"xyz")), 0);
        assert_eq!(shared_prefix_len(i(b"abc"), Bound::Unbounded), 0);
        assert_eq!(shared_prefix_len(Bound::Unbounded, e(b"abc")), 0);
        assert_eq!(shared_prefix_len(i(b"ab"), e(b"abc")), 2);
    }

    #[test]
    fn eq_bytes_is_slice_equality() {
        let keys: [&[u8]; 8] = [
            b"",
            b"a",
            b"abcdefgh",
            b"abcdefgi",
            b"xbcdefgh",
            b"user:0042:00000001",
            b"user:0042:00000002",
            b"user:0043:00000001",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(eq_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
