//! The `Vectors` primitive: collections of vectors stored through transactions, searched
//! through an in-memory [`CollectionIndex`] per collection.
//!
//! **Source of truth.** Collection definitions and vector records are ordinary versioned
//! records (written in transactions, logged, snapshotted, recovered), so vectors are as
//! durable as any other primitive. Keys inside a run:
//!
//! ```text
//! 0x01 | collection                  -> collection definition (dimension, metric, created_at)
//! 0x02 | collection | 0x00 | key     -> vector record: dim u32 LE | f32 LE × dim | has_meta u8 | [metadata]
//! ```
//!
//! **Index.** Each collection has an in-memory index, updated after every commit. Closing
//! the database writes it to an index file ([`Vectors::persist_indexes`], see
//! [`crate::persist`]); opening loads that file and replays the records changed since, or
//! rebuilds the index from the records when there is no valid file. Once a collection's
//! file is written or loaded, its graph reads the vectors in place from the file's
//! mapped vector section instead of holding them in memory (the `arena` module), so a
//! checkpointed collection costs the process its graph, keys and metadata, and its
//! vectors live in the page cache. Each index entry remembers the commit
//! version that last changed each key, and an update is applied only if it is newer, so
//! concurrent committers that finish out of order still leave the index equal to the
//! committed state.
//!
//! **Metadata** may be any [`Value`]; filters look at the top-level fields of `Object`
//! metadata, and never match other metadata.
use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use strata_concurrency::Transaction;
use strata_core::{codec, limits, Error, Result, RunId, Timestamp, Value, Version, Versioned};
use strata_primitives::engine::{committed_version, Engine};
use strata_primitives::runs;
use strata_storage::{encode_key, Entry, Primitive};

use crate::arena::FileMap;
use crate::bridge::{Bridge, Side};
use crate::distance::{validate_vector, DistanceMetric};
use crate::filter::SearchFilter;
use crate::index::{CollectionConfig, CollectionIndex};
use crate::persist;
use crate::quantized::Quantization;

/// Vectors from which loading (or rebuilding) a collection's index ends by returning the
/// allocator's free pages to the OS (`strata_storage::release_free_memory`): below it the
/// transient memory is small, and a database of thousands of small collections would pay
/// a trim for each.
const RELEASE_MEMORY_AFTER_LOADING: usize = 50_000;

const META: u8 = 0x01;
const RECORD: u8 = 0x02;

/// A stored vector with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorData {
    /// The vector's key.
    pub key: String,
    /// The vector, exactly as upserted.
    pub vector: Vec<f32>,
    /// The metadata given at upsert, if any.
    pub metadata: Option<Value>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatch {
    /// The vector's key.
    pub key: String,
    /// Similarity score: higher is better for every metric (see [`DistanceMetric`]).
    pub score: f32,
    /// The vector itself; filled only by searches that ask for it
    /// ([`Vectors::search_with_vectors`]).
    pub vector: Option<Vec<f32>>,
    /// The vector's metadata, if it has any.
    pub metadata: Option<Value>,
}

/// A collection's definition and size.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// Collection name.
    pub name: String,
    /// Vector dimension, fixed at creation.
    pub dimension: usize,
    /// Similarity metric.
    pub metric: DistanceMetric,
    /// Number of vectors.
    pub count: u64,
    /// When the collection was created.
    pub created_at: Timestamp,
    /// The working copy its graph compares, chosen at creation.
    pub quantization: Quantization,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CollectionDef {
    dimension: usize,
    metric: DistanceMetric,
    created_at: Timestamp,
    /// Absent in definitions written before quantization existed: `None`.
    #[serde(default)]
    quantization: Quantization,
}

impl CollectionDef {
    /// The index settings this definition asks for (defaults otherwise).
    fn config(&self) -> CollectionConfig {
        CollectionConfig::new(self.dimension, self.metric).quantized(self.quantization)
    }
}

/// Settings of a collection chosen at creation, beyond its dimension and metric
/// ([`Vectors::create_collection_with`]). Start from `CollectionOptions::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollectionOptions {
    /// The working copy the collection's graph compares ([`Quantization`]); default
    /// [`Quantization::None`].
    pub quantization: Quantization,
}

impl CollectionOptions {
    /// Sets [`Self::quantization`].
    pub fn quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }
}

struct IndexEntry {
    /// The collection's vectors — for a forked collection, only those its run wrote
    /// itself (see [`Base`]).
    index: CollectionIndex,
    /// Commit version that created the collection this index belongs to.
    created_version: u64,
    /// Commit version of the last applied change per key (deletes included). The keys
    /// are shared with the index (one allocation per key, not two).
    applied: HashMap<Arc<str>, u64>,
    /// Changes applied since the entry was made (any count that moves will do).
    changes: u64,
    /// `changes` when the index file last matched this entry; `None` if it never did.
    persisted: Option<u64>,
    /// How the index came to be.
    source: IndexSource,
    /// Every change to the collection committed after this version is in `changelog`.
    tracked_since: u64,
    /// The keys changed after `tracked_since`, by commit version (bounded by
    /// [`MAX_CHANGELOG`]: the oldest go first, moving `tracked_since` up). What a fork
    /// of this collection must not take from this index.
    changelog: std::collections::BTreeMap<u64, Vec<String>>,
    changelog_len: usize,
    /// For a forked collection: where its inherited vectors are searched.
    base: Option<Base>,
    /// For a forked collection: whether the parent held each key of `applied` at the
    /// fork version (for the count).
    base_had: HashMap<String, bool>,
    /// For a forked collection whose own vectors and parent both have a graph: the links
    /// that let one walk search both (see [`crate::bridge`]).
    bridge: Option<Bridge>,
}

/// Collections of at most this many vectors get no index file (see
/// [`Vectors::persist_indexes`]): rebuilding them from their records costs less than
/// writing and reading a file.
pub const MAX_UNPERSISTED_VECTORS: usize = 32;

/// The most keys a collection's changelog lists (see [`IndexEntry::changelog`]).
const MAX_CHANGELOG: usize = 1 << 16;

/// The parent side of a forked collection: the parent's index, read as of the fork.
///
/// A fork's collection shares its parent's index instead of copying it. A search asks
/// the fork's own index (the vectors the fork wrote) and the parent's, drops the
/// parent's hits the fork overwrote or deleted, and drops those the parent changed
/// after the fork (from the parent's changelog) — those keys are scored exactly from
/// the records as the fork sees them instead. The parent's index may itself be a fork's.
struct Base {
    entry: Arc<RwLock<IndexEntry>>,
    parent: RunId,
    at: u64,
}

/// A forked collection whose parent's changelog no longer reaches back to the fork:
/// its index must be made again (see [`Vectors::forget_overlays`]).
struct Stale;

impl IndexEntry {
    fn new(mut index: CollectionIndex, created_version: u64, source: IndexSource) -> Self {
        // Single upserts leave their vectors pending; `link_pending` links them.
        index.set_deferred_linking(true);
        IndexEntry {
            index,
            created_version,
            applied: HashMap::new(),
            changes: 0,
            persisted: None,
            source,
            tracked_since: created_version,
            changelog: std::collections::BTreeMap::new(),
            changelog_len: 0,
            base: None,
            base_had: HashMap::new(),
            bridge: None,
        }
    }

    /// Lists a change of `key` at `version` in the changelog.
    /// Records that the change of `key` committed at `version` reaches the index now:
    /// the caller changes the index under the same write lock, so that a reader (a
    /// search, `persist_indexes`) never sees the applied version without the change.
    /// Returns the key's shared allocation, or `None` when a newer change of the key
    /// was applied already (strictly newer: several changes of one key in one
    /// transaction share its version and must all be applied, in order, so that the
    /// last one wins).
    fn record_applied(&mut self, key: &str, version: u64) -> Option<Arc<str>> {
        let shared = match self.applied.get_key_value(key) {
            Some((_, &v)) if v > version => return None,
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        self.applied.insert(shared.clone(), version);
        self.changes += 1;
        self.note_change(key, version);
        Some(shared)
    }

    fn note_change(&mut self, key: &str, version: u64) {
        if version <= self.tracked_since {
            return;
        }
        self.changelog
            .entry(version)
            .or_default()
            .push(key.to_owned());
        self.changelog_len += 1;
        while self.changelog_len > MAX_CHANGELOG {
            let Some((v, keys)) = self.changelog.pop_first() else {
                break;
            };
            self.changelog_len -= keys.len();
            self.tracked_since = v;
        }
    }

    /// The newest version this entry has applied.
    fn applied_through(&self) -> u64 {
        self.changelog
            .last_key_value()
            .map_or(self.tracked_since, |(v, _)| *v)
            .max(self.tracked_since)
    }

    /// Keys changed after `at` (the caller checked `at >= tracked_since`).
    fn changed_after(&self, at: u64) -> std::collections::HashSet<String> {
        self.changelog
            .range(at.saturating_add(1)..)
            .flat_map(|(_, keys)| keys.iter().cloned())
            .collect()
    }

    /// Number of vectors in the collection as its run sees it (`name`: the
    /// collection's, to read records through `storage`). For a forked collection: the
    /// parent's count as of the fork — its count now, corrected by the keys it changed
    /// since, computed now so that a parent change applied late still counts — and the
    /// fork's own changes. `Err(Stale)` when the parent's changelog no longer reaches
    /// back to the fork.
    fn view_len(
        &self,
        storage: &strata_storage::Storage,
        name: &str,
    ) -> Result<std::result::Result<u64, Stale>> {
        let Some(b) = &self.base else {
            return Ok(Ok(self.index.len() as u64));
        };
        let be = b.entry.read();
        if be.tracked_since > b.at {
            return Ok(Err(Stale));
        }
        let mut n = match be.view_len(storage, name)? {
            Ok(n) => n as i64,
            Err(stale) => return Ok(Err(stale)),
        };
        let through = be.applied_through();
        let has = |k: &str, v: u64| -> Result<bool> {
            Ok(storage.get(&record_key(&b.parent, name, k), v)?.is_some())
        };
        for k in be.changed_after(b.at) {
            n -= i64::from(has(&k, through)?);
            n += i64::from(has(&k, b.at)?);
        }
        drop(be);
        for k in self.applied.keys() {
            n += i64::from(self.index.contains(k));
            n -= i64::from(self.base_had.get(&**k).copied().unwrap_or(false));
        }
        Ok(Ok(n.max(0) as u64))
    }
}

/// Whether a forked collection could search with one walk (see [`crate::bridge`]) but
/// has no valid bridge: its own vectors and its parent's have a graph, and its parent is
/// not itself a fork (a fork of a fork walks its own graph, then its parent's view).
fn needs_bridge(e: &IndexEntry) -> bool {
    let Some(b) = &e.base else {
        return false;
    };
    let be = b.entry.read();
    let (Some(bh), Some(oh)) = (be.index.hnsw(), e.index.hnsw()) else {
        return false;
    };
    be.base.is_none()
        && crate::bridge::fits(bh, oh)
        && !e
            .bridge
            .as_ref()
            .is_some_and(|br| br.valid_for(be.index.generation(), e.index.generation()))
}

/// Brings a forked collection's bridge up to date after the fork wrote `keys` (hides the
/// parent's nodes of those keys, links the new own nodes), or makes it anew when it is
/// missing or no longer valid (the linking costs one walk of the parent's graph per own
/// vector, on all cores). Drops it when the collection cannot use one.
fn refresh_bridge(e: &mut IndexEntry, keys: &[String]) -> Result<()> {
    let Some(b) = &e.base else {
        return Ok(());
    };
    let be = b.entry.read();
    let graphs = match (be.index.hnsw(), e.index.hnsw()) {
        (Some(bh), Some(oh)) if be.base.is_none() && crate::bridge::fits(bh, oh) => Some((bh, oh)),
        _ => None,
    };
    let Some((bh, oh)) = graphs else {
        e.bridge = None;
        return Ok(());
    };
    let (bg, og) = (be.index.generation(), e.index.generation());
    match &mut e.bridge {
        Some(br) if br.valid_for(bg, og) => {
            let mut new = Vec::new();
            for k in keys {
                if let Some(id) = be.index.id_of(k) {
                    br.hide(id);
                }
                if let Some(o) = e.index.id_of(k) {
                    if !br.is_linked(o) {
                        new.push(o);
                    }
                }
            }
            new.sort_unstable();
            new.dedup();
            br.link(bh, oh, &new)?;
        }
        _ => {
            let hide: Vec<u32> = e.applied.keys().filter_map(|k| be.index.id_of(k)).collect();
            e.bridge = Some(Bridge::build(bh, bg, oh, og, hide)?);
        }
    }
    Ok(())
}

/// The best `want` hits of a forked collection by one walk over its own graph and its
/// parent's, joined by its bridge; `None` when it has no valid bridge, or when the walk
/// found fewer than `want` (the two walks, which widen their search, answer then).
/// `changed`: the keys the parent changed after the fork, hidden here (the caller scores
/// them from the records).
fn bridged_hits(
    e: &IndexEntry,
    be: &IndexEntry,
    changed: &std::collections::HashSet<String>,
    query: &[f32],
    want: usize,
    ef: Option<usize>,
) -> Result<Option<Vec<(String, f32)>>> {
    let (Some(br), Some(bh), Some(oh)) = (&e.bridge, be.index.hnsw(), e.index.hnsw()) else {
        return Ok(None);
    };
    if be.base.is_some() || !br.valid_for(be.index.generation(), e.index.generation()) {
        return Ok(None);
    }
    // More than both sides hold cannot be found: not worth a walk of everything.
    if want > be.index.len() + e.index.len() {
        return Ok(None);
    }
    let changed_ids: std::collections::HashSet<u32> =
        changed.iter().filter_map(|k| be.index.id_of(k)).collect();
    let ef = ef.unwrap_or(e.index.config().hnsw.ef_search).max(want);
    let hits = crate::bridge::search(bh, oh, br, query, want, ef, &|id| {
        !changed_ids.is_empty() && changed_ids.contains(&id)
    })?;
    let mut out = Vec::with_capacity(hits.len());
    for (side, id, score) in hits {
        // By key as well as by id: the ids the bridge hides were looked up when the fork
        // wrote, and a parent change applied to its index late may have moved one.
        let key = match side {
            Side::Own => e.index.key_of(id),
            Side::Base => be
                .index
                .key_of(id)
                .filter(|k| !e.applied.contains_key(*k) && !changed.contains(*k)),
        };
        if let Some(k) = key {
            out.push((k.to_owned(), score));
        }
    }
    Ok((out.len() >= want).then_some(out))
}

/// How a collection's in-memory index was obtained (see [`crate::internal::index_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// Made empty by `create_collection` in this process.
    Created,
    /// Rebuilt from the vector records when the database opened (no usable index file).
    Rebuilt,
    /// Loaded from the collection's index file when the database opened, then brought
    /// up to date with the records.
    Loaded {
        /// Records upserted or keys deleted because they changed after the file was
        /// written.
        replayed: usize,
    },
    /// A collection its run inherited from the run it was forked from: it searches the
    /// parent's index as of the fork and holds only the vectors the fork wrote itself.
    Forked {
        /// Vectors (and deletes) the fork had written when its index was made.
        own: usize,
    },
}

type IndexKey = (RunId, String);

/// Records of a collection: the key prefix, then `(full key, entry)` pairs.
type Records = (Vec<u8>, Vec<(Box<[u8]>, Entry)>);

/// An index change to apply once its transaction has committed.
#[derive(Debug, Clone)]
pub enum PendingIndexOp {
    /// Insert or replace a vector.
    Upsert {
        /// Run.
        run: RunId,
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Vector.
        vector: Vec<f32>,
        /// Metadata.
        metadata: Option<Value>,
    },
    /// Remove a vector.
    Delete {
        /// Run.
        run: RunId,
        /// Collection.
        collection: String,
        /// Key.
        key: String,
    },
}

/// Links the vectors single upserts left pending in a collection's graph (see
/// `CollectionIndex::set_deferred_linking`), a chunk at a time: planned under an
/// upgradable read lock — the walks and re-pruning, the expensive part, while searches
/// go on; other writers wait, as they would for the write lock — then installed under
/// the write lock, which takes a few list writes. Before this, the chunk was linked
/// inside the upsert's write lock, and at 1,000,000 vectors a search racing a thread of
/// single upserts ran at 161 queries per second.
fn link_pending(entry: &RwLock<IndexEntry>) {
    use parking_lot::{RwLockUpgradableReadGuard, RwLockWriteGuard};
    let mut guard = entry.upgradable_read();
    while guard.index.linking_due() {
        let Some(plan) = guard.index.plan_link_chunk() else {
            break;
        };
        let mut w = RwLockUpgradableReadGuard::upgrade(guard);
        w.index.apply_link_chunk(plan);
        guard = RwLockWriteGuard::downgrade_to_upgradable(w);
    }
}

/// A failed write of an index file, with its path.
fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!(
        "cannot write vector index file {}: {e}",
        path.display()
    ))
}

fn meta_key(run: &RunId, name: &str) -> Box<[u8]> {
    let mut k = vec![META];
    k.extend_from_slice(name.as_bytes());
    encode_key(run, Primitive::Vector, &k).into()
}

fn records_prefix(run: &RunId, name: &str) -> Vec<u8> {
    let mut k = vec![RECORD];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    encode_key(run, Primitive::Vector, &k)
}

fn record_key(run: &RunId, name: &str, key: &str) -> Box<[u8]> {
    let mut k = records_prefix(run, name);
    k.extend_from_slice(key.as_bytes());
    k.into()
}

fn encode_record(vector: &[f32], metadata: Option<&Value>) -> Result<Arc<[u8]>> {
    let mut b = Vec::with_capacity(5 + vector.len() * 4);
    b.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        b.extend_from_slice(&x.to_le_bytes());
    }
    match metadata {
        None => b.push(0),
        Some(m) => {
            b.push(1);
            b.extend_from_slice(&limits::validate_value(m)?);
        }
    }
    Ok(Arc::from(b))
}

fn decode_record(b: &[u8]) -> Result<(Vec<f32>, Option<Value>)> {
    let bad = || Error::Storage("vector record is malformed".into());
    let dim =
        u32::from_le_bytes(b.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let end = 4 + dim * 4;
    let raw = b.get(4..end).ok_or_else(bad)?;
    let vector = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let metadata = match b.get(end) {
        Some(0) => None,
        Some(1) => Some(codec::decode(&b[end + 1..])?),
        _ => return Err(bad()),
    };
    Ok((vector, metadata))
}

fn load_def(
    txn: &mut Transaction,
    run: &RunId,
    name: &str,
) -> Result<Option<(CollectionDef, u64)>> {
    match txn.get(&meta_key(run, name)) {
        None => Ok(None),
        Some(e) => {
            let def =
                rmp_serde::from_slice(e.value.as_deref().unwrap_or_default()).map_err(|err| {
                    Error::Serialization(format!("collection {name:?} definition: {err}"))
                })?;
            Ok(Some((def, e.version)))
        }
    }
}

fn require_def(txn: &mut Transaction, run: &RunId, name: &str) -> Result<CollectionDef> {
    load_def(txn, run, name)?.map(|(d, _)| d).ok_or_else(|| {
        Error::NotFound(format!(
            "vector collection {name:?} does not exist in run {run}"
        ))
    })
}

/// Transaction-level vector operations (no run-state checks: callers do them).
pub mod ops {
    use super::*;

    /// Validates and writes a vector record; returns the index change to apply after
    /// the commit.
    pub fn upsert(
        txn: &mut Transaction,
        run: &RunId,
        collection: &str,
        key: &str,
        vector: &[f32],
        metadata: Option<Value>,
    ) -> Result<PendingIndexOp> {
        limits::validate_key(key)?;
        if let Some(m) = &metadata {
            limits::validate_depth(m)?;
        }
        let def = require_def(txn, run, collection)?;
        validate_vector(vector, def.dimension)?;
        txn.put(
            record_key(run, collection, key),
            encode_record(vector, metadata.as_ref())?,
        );
        Ok(PendingIndexOp::Upsert {
            run: *run,
            collection: collection.to_owned(),
            key: key.to_owned(),
            vector: vector.to_vec(),
            metadata,
        })
    }

    /// Validates and writes many vector records of one collection (the definition is
    /// read once); returns the index changes to apply after the commit, in order.
    pub fn upsert_many<'a>(
        txn: &mut Transaction,
        run: &RunId,
        collection: &str,
        items: impl IntoIterator<Item = (&'a str, &'a [f32], Option<Value>)>,
    ) -> Result<Vec<PendingIndexOp>> {
        let def = require_def(txn, run, collection)?;
        let mut out = Vec::new();
        for (key, vector, metadata) in items {
            limits::validate_key(key)?;
            validate_vector(vector, def.dimension)?;
            txn.put(
                record_key(run, collection, key),
                encode_record(vector, metadata.as_ref())?,
            );
            out.push(PendingIndexOp::Upsert {
                run: *run,
                collection: collection.to_owned(),
                key: key.to_owned(),
                vector: vector.to_vec(),
                metadata,
            });
        }
        Ok(out)
    }

    /// Deletes a vector record; returns whether it existed and the index change.
    pub fn delete(
        txn: &mut Transaction,
        run: &RunId,
        collection: &str,
        key: &str,
    ) -> Result<(bool, PendingIndexOp)> {
        limits::validate_key(key)?;
        require_def(txn, run, collection)?;
        let k = record_key(run, collection, key);
        let existed = txn.get(&k).is_some();
        if existed {
            txn.delete(k);
        }
        Ok((
            existed,
            PendingIndexOp::Delete {
                run: *run,
                collection: collection.to_owned(),
                key: key.to_owned(),
            },
        ))
    }
}

/// Vector collections with similarity search. Access via `db.vectors`.
#[derive(Clone)]
pub struct Vectors {
    engine: Arc<Engine>,
    indexes: Arc<RwLock<HashMap<IndexKey, Arc<RwLock<IndexEntry>>>>>,
    /// Held while a collection's index is loaded on first use, so that it is loaded once
    /// and no committed change can slip between the load and the map.
    loading: Arc<parking_lot::Mutex<()>>,
    /// Collections deleted in this process: their index files go at the next
    /// `persist_indexes` (files of collections never loaded are kept as they are).
    deleted: Arc<parking_lot::Mutex<std::collections::HashSet<IndexKey>>>,
    /// Held for the whole of `persist_indexes`: two concurrent calls (two checkpoints)
    /// would share a collection's temporary file, each truncating what the other
    /// wrote, and one could map it while the other still writes.
    persisting: Arc<parking_lot::Mutex<()>>,
}

impl Vectors {
    /// Opens the primitive. Nothing is read yet: each collection's index is loaded on
    /// first use (a search, a write, a count) — from its index file when a valid one
    /// exists for this incarnation of the collection, then reconciled with the records
    /// (changes after the file was written are replayed); otherwise rebuilt from the
    /// records. A bad index file is logged and ignored, never an error. So opening a
    /// database with thousands of runs and collections costs nothing per collection.
    pub(crate) fn open(engine: Arc<Engine>) -> Result<Vectors> {
        let v = Vectors {
            engine,
            indexes: Arc::new(RwLock::new(HashMap::new())),
            loading: Arc::new(parking_lot::Mutex::new(())),
            deleted: Arc::new(parking_lot::Mutex::new(std::collections::HashSet::new())),
            persisting: Arc::new(parking_lot::Mutex::new(())),
        };
        // A purged run's indexes are forgotten and their files removed at once: they
        // hold its vectors.
        let indexes = Arc::downgrade(&v.indexes);
        let loading = Arc::downgrade(&v.loading);
        let dir = v.engine.storage().dir().map(Path::to_path_buf);
        v.engine.on_purge(Arc::new(move |run: &RunId| {
            let (Some(indexes), Some(loading)) = (indexes.upgrade(), loading.upgrade()) else {
                return;
            };
            let _one_at_a_time = loading.lock();
            indexes.write().retain(|(r, _), _| r != run);
            if let Some(dir) = &dir {
                if let Err(e) = persist::remove_run_files(dir, run) {
                    tracing::warn!(run = %run, error = %e, "vector index files of a purged run not removed");
                }
            }
        }));
        Ok(v)
    }

    /// Loads the index of a collection (see [`open`](Self::open)); `None` if the
    /// collection does not exist.
    fn load_entry(&self, run: &RunId, name: &str) -> Result<Option<Arc<RwLock<IndexEntry>>>> {
        let _one_at_a_time = self.loading.lock();
        self.load_entry_locked(run, name)
    }

    /// [`load_entry`](Self::load_entry) with the loading lock held (a fork's load
    /// loads its parent's index first).
    fn load_entry_locked(
        &self,
        run: &RunId,
        name: &str,
    ) -> Result<Option<Arc<RwLock<IndexEntry>>>> {
        if let Some(e) = self.indexes.read().get(&(*run, name.to_owned())) {
            return Ok(Some(e.clone()));
        }
        let (found, _) = self.engine.run(|txn| {
            let def = load_def(txn, run, name)?;
            let origin = runs::check_exists(txn, run)?.forked_from;
            Ok((def, origin))
        })?;
        let (Some((def, created_version)), origin) = found else {
            return Ok(None);
        };
        let t = std::time::Instant::now();
        // A collection inherited from the run this one was forked from shares the
        // parent's index (when the parent's index can tell what changed since).
        let inherited = origin
            .map(|o| (o.parent, o.version.as_u64()))
            .filter(|(_, at)| created_version <= *at);
        let mut entry = None;
        if let Some((parent, at)) = inherited {
            entry = self.overlay(run, name, &def, created_version, parent, at)?;
        }
        if entry.is_none() {
            let dir = self.engine.storage().dir().map(|d| d.to_path_buf());
            entry = dir
                .as_deref()
                .and_then(|d| self.load_file(d, run, name, &def, created_version));
        }
        let entry = match entry {
            Some(entry) => entry,
            None => self.rebuild(run, name, &def, created_version)?,
        };
        let n = entry.index.len();
        if n > 0 || entry.source != IndexSource::Rebuilt {
            let (how, replayed) = match entry.source {
                IndexSource::Loaded { replayed } => ("loaded", replayed),
                IndexSource::Forked { own } => ("shared with the parent run", own),
                _ => ("rebuilt", 0),
            };
            tracing::info!(
                run = %run,
                collection = %name,
                vectors = n,
                replayed,
                elapsed_ms = t.elapsed().as_millis() as u64,
                "vector index {how}"
            );
        }
        let loaded_or_rebuilt = !matches!(entry.source, IndexSource::Forked { .. });
        if loaded_or_rebuilt && n >= RELEASE_MEMORY_AFTER_LOADING {
            // Loading or rebuilding a large index freed as much as it kept (listings
            // of its keys, records read to replay or rebuild): hand it back to the OS
            // rather than leave it resident in the allocator. A fork's index shares its
            // parent's and freed little: its first search does not pay for a trim.
            strata_storage::release_free_memory();
        }
        let entry = Arc::new(RwLock::new(entry));
        self.indexes
            .write()
            .insert((*run, name.to_owned()), entry.clone());
        Ok(Some(entry))
    }

    /// The records of a collection, and the version they were read at.
    fn scan_records(&self, run: &RunId, name: &str) -> Result<(Records, u64)> {
        let prefix = records_prefix(run, name);
        let ((records, at), _) = self
            .engine
            .run(|txn| Ok((txn.scan_prefix(&prefix, None), txn.snapshot_version())))?;
        Ok(((prefix, records), at))
    }

    /// The index of a collection `run` inherited from `parent` (forked at `at`): the
    /// parent's index, loaded if needed, plus the vectors `run` wrote itself. `None`
    /// when the parent's index no longer lists every change since `at` (its changelog
    /// starts later, e.g. after a reopen): the caller rebuilds instead.
    fn overlay(
        &self,
        run: &RunId,
        name: &str,
        def: &CollectionDef,
        created_version: u64,
        parent: RunId,
        at: u64,
    ) -> Result<Option<IndexEntry>> {
        // A parent that is gone (purged) has no index to share: rebuild from the
        // records the fork still sees.
        let Ok(Some(base)) = self.load_entry_locked(&parent, name) else {
            return Ok(None);
        };
        let storage = self.engine.storage();
        let b = base.read();
        if b.tracked_since > at || b.created_version != created_version {
            return Ok(None);
        }
        // The fork searches with its parent's effort until told otherwise.
        let mut config = def.config();
        config.hnsw.ef_search = b.index.config().hnsw.ef_search;
        let mut entry = IndexEntry::new(
            CollectionIndex::new(config)?,
            created_version,
            IndexSource::Forked { own: 0 },
        );
        // What the fork wrote itself, deletes included (they hide the parent's).
        let prefix = records_prefix(run, name);
        let end = strata_storage::key::prefix_successor(&prefix);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let snapshot = storage.visible_version();
        let own = storage.scan_own_range(Bound::Included(&prefix), end, snapshot)?;
        let parent_has = |key: &str, version: u64| -> Result<bool> {
            Ok(storage
                .get(&record_key(&parent, name, key), version)?
                .is_some())
        };
        for (rk, re) in &own {
            let key = String::from_utf8_lossy(&rk[prefix.len()..]).into_owned();
            if let Some(bytes) = re.value.as_deref() {
                let (vector, metadata) = decode_record(bytes)?;
                entry
                    .index
                    .upsert(&key, &vector, metadata.filter(Value::is_object))?;
            }
            entry.base_had.insert(key.clone(), parent_has(&key, at)?);
            let shared = entry
                .index
                .shared_key(&key)
                .unwrap_or_else(|| Arc::from(key));
            entry.applied.insert(shared, re.version);
        }
        entry.source = IndexSource::Forked { own: own.len() };
        entry.tracked_since = snapshot;
        drop(b);
        entry.base = Some(Base {
            entry: base,
            parent,
            at,
        });
        refresh_bridge(&mut entry, &[])?;
        Ok(Some(entry))
    }

    /// Builds a collection's index from its records.
    fn rebuild(
        &self,
        run: &RunId,
        name: &str,
        def: &CollectionDef,
        created_version: u64,
    ) -> Result<IndexEntry> {
        let mut entry = IndexEntry::new(
            CollectionIndex::new(def.config())?,
            created_version,
            IndexSource::Rebuilt,
        );
        let ((prefix, records), snapshot) = self.scan_records(run, name)?;
        entry.tracked_since = snapshot.max(created_version);
        // In batches, so that the graph is built on all cores.
        const BATCH: usize = 8192;
        let mut batch = Vec::with_capacity(BATCH.min(records.len()));
        let mut rest = records.into_iter().peekable();
        while let Some((rk, re)) = rest.next() {
            let key = String::from_utf8_lossy(&rk[prefix.len()..]).into_owned();
            let (vector, metadata) = decode_record(re.value.as_deref().unwrap_or_default())?;
            let key: Arc<str> = Arc::from(key);
            entry.applied.insert(key.clone(), re.version);
            batch.push((key, vector, metadata.filter(Value::is_object)));
            if batch.len() == BATCH || rest.peek().is_none() {
                entry.index.upsert_batch_shared(
                    std::mem::take(&mut batch),
                    crate::hnsw::default_threads(),
                )?;
            }
        }
        Ok(entry)
    }

    /// Loads a collection's index file and reconciles it with the records; `None` (after
    /// a warning, unless the file is simply absent) when it cannot be used.
    fn load_file(
        &self,
        dir: &Path,
        run: &RunId,
        name: &str,
        def: &CollectionDef,
        created_version: u64,
    ) -> Option<IndexEntry> {
        let path = persist::file_path(dir, run, name);
        // Mapped, not read: the graph's vectors stay in the file's pages (see
        // `crate::arena`); the rest is decoded into memory.
        let map = match std::fs::File::open(&path).and_then(|f| FileMap::sequential(&f)) {
            Ok(m) => Arc::new(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read vector index file; rebuilding");
                return None;
            }
        };
        let file = match persist::decode_file(map.bytes(), Some(&map), run, name) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "invalid vector index file; rebuilding");
                return None;
            }
        };
        // Searches read the mapped vectors where the graph leads them.
        map.advise_random();
        drop(map);
        if file.created_version != created_version {
            tracing::info!(
                path = %path.display(),
                file_version = file.created_version,
                created_version,
                "vector index file belongs to an earlier collection of that name; rebuilding"
            );
            return None;
        }
        if file.index.dimension() != def.dimension || file.index.metric() != def.metric {
            tracing::warn!(path = %path.display(), "vector index file disagrees with the collection definition; rebuilding");
            return None;
        }
        // The file holds full-precision vectors only; the working copy is made again.
        let mut file = file;
        file.index.set_quantization(def.quantization);
        match self.reconcile(run, name, file) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot bring the vector index file up to date; rebuilding");
                None
            }
        }
    }

    /// Brings a loaded index up to the committed records: upserts records whose version
    /// differs from the one the index applied (or that it lacks), deletes keys without a
    /// record. Records are decoded only when replayed.
    fn reconcile(
        &self,
        run: &RunId,
        name: &str,
        file: persist::FileContents,
    ) -> Result<IndexEntry> {
        let persist::FileContents {
            created_version,
            applied: old,
            mut index,
        } = file;
        // Keys and versions only (a listing allocates nothing per key); the values of
        // the few records to replay are read in the same snapshot. Reading every
        // record's value here cost a copy of every vector, 1.4 GiB at 1,000,000 × 384;
        // collecting every key before comparing left a million freed strings in the
        // allocator (tens of MiB of resident memory after a reopen). A key the file
        // already holds at its version goes straight into `applied`, under the index's
        // own copy of the key.
        let prefix = records_prefix(run, name);
        let mut applied: HashMap<Arc<str>, u64> = HashMap::with_capacity(index.len());
        let (records, snapshot) = self
            .engine
            .run(|txn| {
                applied.clear();
                let mut stale: Vec<(String, u64)> = Vec::new();
                txn.list_prefix_keys(&prefix, None, &mut |k, listed| {
                    let key = String::from_utf8_lossy(&k[prefix.len()..]);
                    let shared = (old.get(&*key) == Some(&listed.version))
                        .then(|| index.shared_key(&key))
                        .flatten();
                    match shared {
                        Some(shared) => {
                            applied.insert(shared, listed.version);
                        }
                        None => stale.push((key.into_owned(), listed.version)),
                    }
                });
                let mut records = Vec::with_capacity(stale.len());
                for (key, version) in stale {
                    let mut rk = prefix.clone();
                    rk.extend_from_slice(key.as_bytes());
                    let entry = txn.get(&rk).ok_or_else(|| {
                        Error::Internal(format!("vector record {key:?} listed but not read"))
                    })?;
                    records.push((key, version, entry.value.unwrap_or_default()));
                }
                Ok((records, txn.snapshot_version()))
            })?
            .0;
        let mut replayed = 0usize;
        // Every change up to the newest the file applied is in the file; later ones
        // are replayed below, at their versions — except deletes, whose versions are
        // unknown: they make the changelog start at this scan.
        let file_through = old
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .max(created_version);
        let mut changed: Vec<(String, u64)> = Vec::new();
        for (key, version, value) in records {
            let (vector, metadata) = decode_record(&value)?;
            index.upsert(&key, &vector, metadata.filter(Value::is_object))?;
            replayed += 1;
            changed.push((key.clone(), version));
            let shared = index.shared_key(&key).unwrap_or_else(|| Arc::from(key));
            applied.insert(shared, version);
        }
        let gone: Vec<String> = index
            .iter()
            .filter(|(k, _, _)| !applied.contains_key(*k))
            .map(|(k, _, _)| k.to_owned())
            .collect();
        let any_gone = !gone.is_empty();
        for k in gone {
            index.delete(&k);
            replayed += 1;
        }
        let changes = replayed as u64;
        let mut entry = IndexEntry::new(index, created_version, IndexSource::Loaded { replayed });
        entry.applied = applied;
        entry.changes = changes;
        entry.persisted = Some(0);
        if any_gone {
            entry.tracked_since = snapshot;
        } else {
            entry.tracked_since = file_through;
            for (k, v) in changed {
                entry.note_change(&k, v);
            }
        }
        Ok(entry)
    }

    /// Writes the index file of every collection changed since its file was last
    /// written — except forked collections (made again from their parent's index) and
    /// collections of at most `MAX_UNPERSISTED_VECTORS` (32) vectors (rebuilt from their
    /// records faster than a file is read) — and deletes the index files (and stale
    /// temporary files) of collections that no longer exist. Returns the number of files written. Does nothing for an
    /// ephemeral database. `Strata::close` calls it; calling it at other times is safe
    /// (concurrent writes are picked up by the next call, or replayed on open). Fails
    /// with the "database is closed" error once the database was closed.
    pub fn persist_indexes(&self) -> Result<usize> {
        // After `close` the directory may belong to another handle: never write into it.
        self.engine.storage().check_open()?;
        if self.engine.storage().is_read_only() {
            return Ok(0);
        }
        let Some(dir) = self.engine.storage().dir().map(|d| d.to_path_buf()) else {
            return Ok(0);
        };
        let _one_at_a_time = self.persisting.lock();
        let started = std::time::Instant::now();
        let entries: Vec<(IndexKey, Arc<RwLock<IndexEntry>>)> = self
            .indexes
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut keep = std::collections::HashSet::new();
        let mut tiny = std::collections::HashSet::new();
        let mut written = 0usize;
        let mut bytes_written = 0usize;
        let mut first_error = None;
        for ((run, name), entry) in &entries {
            let path = persist::file_path(&dir, run, name);
            if !keep.insert(path.clone()) {
                // Two names hashing to one file name (SHA-256 makes this practically
                // impossible): the second is not written and is rebuilt on open.
                tracing::warn!(run = %run, collection = %name, path = %path.display(), "index file name already used by another collection; not written");
                continue;
            }
            let encoded = {
                let e = entry.read();
                // A tiny collection is rebuilt from its records faster than its file
                // is opened: it gets none (and an older one goes), so thousands of
                // runs with a few vectors each close in milliseconds.
                if e.base.is_none() && e.index.len() <= MAX_UNPERSISTED_VECTORS {
                    keep.remove(&path);
                    tiny.insert(path.clone());
                    continue;
                }
                // A forked collection's index holds only the fork's own vectors; it is
                // made again from the parent's on the next open.
                if e.persisted == Some(e.changes) || e.base.is_some() {
                    continue;
                }
                // A collection small enough to be scanned exactly (no graph) is rebuilt
                // from its records in no time if its file is lost: the file is written
                // without fsyncs (its checksum rejects whatever a power loss leaves), so
                // thousands of runs with a few vectors each do not pay two fsyncs each.
                let sync = e.index.hnsw().is_some();
                // The vectors are streamed from the index into the file under this read
                // lock (writes to this collection wait, and with them the searches that
                // come after a waiting write), so they are never copied into one
                // buffer; the fsyncs come after it.
                let state = (e.changes, e.index.generation());
                persist::encode_file(run, name, e.created_version, &e.applied, &e.index).and_then(
                    |f| {
                        persist::write_file(&path, &f, &e.index)
                            .map(|w| (w, f.len(), state, sync))
                            .map_err(|err| io_error(&path, err))
                    },
                )
            };
            // One collection failing does not keep the others from being written.
            let result = encoded.and_then(|(pending, len, state, sync)| {
                let installed = pending.install(sync).map_err(|err| io_error(&path, err))?;
                written += 1;
                bytes_written += len;
                // Mapped (its pages populated) before the write lock is taken.
                let section = if sync { installed.map_section() } else { None };
                let mut e = entry.write();
                e.persisted = Some(state.0);
                // Unchanged since it was written (no change applied, no id renumbered):
                // from now on the index reads its vectors from the file's pages instead
                // of holding them (the `arena` module).
                if (e.changes, e.index.generation()) == state {
                    if let Some(section) = section {
                        e.index.adopt_vector_section(section);
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                tracing::warn!(run = %run, collection = %name, error = %e, "vector index file not written");
                first_error.get_or_insert(e);
            }
        }
        // Files to remove: those of collections deleted in this process (unless the
        // name was created again and its index is kept), and temporary files. Files of
        // collections never loaded stay as they are: still valid for the next open.
        let gone: std::collections::HashSet<PathBuf> = self
            .deleted
            .lock()
            .iter()
            .map(|(run, name)| persist::file_path(&dir, run, name))
            .chain(entries.iter().filter_map(|((run, name), _)| {
                // A loaded collection's file under the name an older release gave it
                // (hex of the whole name, for long names) is stale.
                let legacy = persist::root(&dir).join(run.to_string()).join(format!(
                    "{}.{}",
                    name.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
                    "vidx"
                ));
                (legacy != persist::file_path(&dir, run, name)).then_some(legacy)
            }))
            .chain(tiny)
            .filter(|p| !keep.contains(p))
            .collect();
        let root = persist::root(&dir);
        if let Ok(runs) = std::fs::read_dir(&root) {
            for run_dir in runs.flatten() {
                let run_path = run_dir.path();
                let Ok(files) = std::fs::read_dir(&run_path) else {
                    continue;
                };
                let mut removed = false;
                for f in files.flatten() {
                    let p = f.path();
                    // Only our own index and temporary files: never a file put there
                    // by someone else.
                    let name = f.file_name();
                    let ours = name.to_str().is_some_and(persist::is_own_file);
                    let temp = name.to_str().is_some_and(|n| n.ends_with(".tmp"));
                    if ours && !keep.contains(&p) && (temp || gone.contains(&p)) {
                        std::fs::remove_file(&p).map_err(|e| {
                            Error::Storage(format!("cannot remove {}: {e}", p.display()))
                        })?;
                        removed = true;
                    }
                }
                if removed {
                    persist::sync_dir(&run_path)
                        .map_err(|e| Error::Storage(format!("{}: {e}", run_path.display())))?;
                }
                // Succeeds only when the run has no collection left.
                if std::fs::remove_dir(&run_path).is_ok() {
                    persist::sync_dir(&root)
                        .map_err(|e| Error::Storage(format!("{}: {e}", root.display())))?;
                }
            }
        }
        if written > 0 {
            tracing::info!(
                files = written,
                bytes = bytes_written,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "vector index files written"
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// How the index of a collection was obtained, or `None` if the collection has no
    /// index (it does not exist).
    pub(crate) fn index_source(&self, run: &RunId, name: &str) -> Option<IndexSource> {
        self.entry(run, name).map(|e| e.read().source)
    }

    /// See [`crate::internal::is_bridged`].
    pub(crate) fn is_bridged(&self, run: &RunId, name: &str) -> bool {
        self.entry(run, name).is_some_and(|e| {
            let e = e.read();
            e.bridge.is_some() && !needs_bridge(&e)
        })
    }

    /// See [`crate::internal::index_quantization`].
    pub(crate) fn index_quantization(&self, run: &RunId, name: &str) -> Option<Quantization> {
        self.entry(run, name).map(|e| e.read().index.quantization())
    }

    pub(crate) fn index_memory(&self, run: &RunId, name: &str) -> Option<(usize, usize)> {
        self.entry(run, name).map(|e| {
            let e = e.read();
            (e.index.memory_bytes(), e.index.mapped_bytes())
        })
    }

    pub(crate) fn loaded_indexes(&self) -> usize {
        self.indexes.read().len()
    }

    /// The index of a collection, loaded on first use; `None` if the collection does
    /// not exist (or its index could not be built, which is logged).
    fn entry(&self, run: &RunId, name: &str) -> Option<Arc<RwLock<IndexEntry>>> {
        if let Some(e) = self.indexes.read().get(&(*run, name.to_owned())) {
            return Some(e.clone());
        }
        match self.load_entry(run, name) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(run = %run, collection = %name, error = %err, "cannot load the vector index");
                None
            }
        }
    }

    /// Applies committed index changes (called after the commit at `version`). Runs of
    /// upserts into one collection go to the index as one batch, whose graph insertion
    /// runs in parallel (see [`CollectionIndex::upsert_batch`]).
    pub(crate) fn apply(&self, ops: Vec<PendingIndexOp>, version: u64) {
        type Batch = Vec<(String, Vec<f32>, Option<Value>)>;
        let mut batch: Batch = Vec::new();
        let mut batch_entry: Option<Arc<RwLock<IndexEntry>>> = None;
        // Forked collections written, with their keys: their bridges follow at the end.
        let mut forks: Vec<(Arc<RwLock<IndexEntry>>, Vec<String>)> = Vec::new();
        // Entries whose graph may have vectors due for linking.
        let mut touched: Vec<Arc<RwLock<IndexEntry>>> = Vec::new();
        let mut flush = |entry: &mut Option<Arc<RwLock<IndexEntry>>>, batch: &mut Batch| {
            if let Some(entry) = entry.take() {
                if !touched.iter().any(|t| Arc::ptr_eq(t, &entry)) {
                    touched.push(entry.clone());
                }
                let mut e = entry.write();
                // The applied versions and change count move with the index, under this
                // one lock (`IndexEntry::record_applied`).
                let mut items = Vec::with_capacity(batch.len());
                for (key, vector, metadata) in std::mem::take(batch) {
                    if let Some(shared) = e.record_applied(&key, version) {
                        items.push((shared, vector, metadata));
                    }
                }
                let n = items.len();
                if n == 0 {
                    return;
                }
                let result = if n == 1 {
                    let (key, vector, metadata) = items.into_iter().next().unwrap_or_default();
                    e.index.upsert_shared(key, &vector, metadata)
                } else {
                    e.index
                        .upsert_batch_shared(items, crate::hnsw::default_threads())
                };
                if let Err(err) = result {
                    tracing::error!(error = %err, vectors = n, "index update failed after commit");
                }
            }
        };
        for op in ops {
            let (run, collection, key) = match &op {
                PendingIndexOp::Upsert {
                    run,
                    collection,
                    key,
                    ..
                }
                | PendingIndexOp::Delete {
                    run,
                    collection,
                    key,
                } => (*run, collection, key),
            };
            let Some(entry) = self.entry(&run, collection) else {
                continue;
            };
            if batch_entry
                .as_ref()
                .is_some_and(|b| !Arc::ptr_eq(b, &entry))
            {
                flush(&mut batch_entry, &mut batch);
            }
            {
                let mut e = entry.write();
                // A change older than the collection, or than what the index applied
                // for the key, is skipped (checked again where it is applied).
                if version <= e.created_version
                    || e.applied.get(key.as_str()).is_some_and(|&v| v > version)
                {
                    continue;
                }
                let fork_of = e.base.as_ref().map(|b| (b.parent, b.at));
                if fork_of.is_some() {
                    match forks.iter_mut().find(|(f, _)| Arc::ptr_eq(f, &entry)) {
                        Some((_, keys)) => keys.push(key.clone()),
                        None => forks.push((entry.clone(), vec![key.clone()])),
                    }
                }
                if let Some((parent, at)) = fork_of {
                    if !e.base_had.contains_key(key) {
                        let had = self
                            .engine
                            .storage()
                            .get(&record_key(&parent, collection, key), at)
                            .map(|r| r.is_some())
                            .unwrap_or(false);
                        e.base_had.insert(key.clone(), had);
                    }
                }
            }
            match op {
                PendingIndexOp::Upsert {
                    key,
                    vector,
                    metadata,
                    ..
                } => {
                    batch.push((key, vector, metadata.filter(Value::is_object)));
                    batch_entry = Some(entry);
                }
                PendingIndexOp::Delete { key, .. } => {
                    flush(&mut batch_entry, &mut batch);
                    let mut e = entry.write();
                    if e.record_applied(&key, version).is_some() {
                        e.index.delete(&key);
                    }
                }
            }
        }
        flush(&mut batch_entry, &mut batch);
        for entry in &touched {
            link_pending(entry);
        }
        for (entry, keys) in forks {
            let mut e = entry.write();
            if let Err(err) = refresh_bridge(&mut e, &keys) {
                // Searches use the two walks meanwhile: slower, not wrong.
                e.bridge = None;
                tracing::error!(error = %err, "forked collection's bridge not updated");
            }
        }
    }

    /// Creates a collection of `dimension`-d vectors compared with `metric`; returns the
    /// version of its creation. An existing name is a `ConstraintViolation`.
    pub fn create_collection(
        &self,
        run: &RunId,
        name: &str,
        dimension: usize,
        metric: DistanceMetric,
    ) -> Result<Version> {
        self.create_collection_with(run, name, dimension, metric, CollectionOptions::default())
    }

    /// [`create_collection`](Self::create_collection) with further settings, kept in the
    /// collection's definition (and reported by [`collection_info`](Self::collection_info)).
    ///
    /// With [`Quantization::Int8`] the graph walks of inserts and searches compare an
    /// int8 copy of each vector and re-rank their candidates with the full-precision
    /// vectors, so scores stay exact; `docs/vectors.md` has the measured speed and recall.
    ///
    /// Through the facade: `db.vectors.create_collection_with(&run, "chunks", 384,
    /// DistanceMetric::Cosine, CollectionOptions::default().quantization(Quantization::Int8))`.
    pub fn create_collection_with(
        &self,
        run: &RunId,
        name: &str,
        dimension: usize,
        metric: DistanceMetric,
        options: CollectionOptions,
    ) -> Result<Version> {
        limits::validate_key(name)?;
        limits::validate_dimension(dimension)?;
        let def = CollectionDef {
            dimension,
            metric,
            created_at: Timestamp::now(),
            quantization: options.quantization,
        };
        let bytes: Arc<[u8]> = rmp_serde::to_vec_named(&def)
            .map_err(|e| Error::Serialization(e.to_string()))?
            .into();
        let (_, info) = self.engine.write(run, |txn| {
            if load_def(txn, run, name)?.is_some() {
                return Err(Error::ConstraintViolation(format!(
                    "vector collection {name:?} already exists in run {run}"
                )));
            }
            txn.put(meta_key(run, name), bytes.clone());
            Ok(())
        })?;
        let created = committed_version(info)?;
        let version = created.as_u64();
        let entry = IndexEntry::new(
            CollectionIndex::new(def.config())?,
            version,
            IndexSource::Created,
        );
        let mut map = self.indexes.write();
        let slot = map.entry((*run, name.to_owned()));
        let replace = match &slot {
            std::collections::hash_map::Entry::Occupied(o) => {
                o.get().read().created_version < version
            }
            std::collections::hash_map::Entry::Vacant(_) => true,
        };
        if replace {
            map.insert((*run, name.to_owned()), Arc::new(RwLock::new(entry)));
        }
        Ok(created)
    }

    /// Deletes a collection and all its vectors; returns whether it existed.
    pub fn delete_collection(&self, run: &RunId, name: &str) -> Result<bool> {
        limits::validate_key(name)?;
        let prefix = records_prefix(run, name);
        let (existed, info) = self.engine.write(run, |txn| {
            if load_def(txn, run, name)?.is_none() {
                return Ok(false);
            }
            txn.delete(meta_key(run, name));
            for (k, _) in txn.scan_prefix(&prefix, None) {
                txn.delete(k);
            }
            Ok(true)
        })?;
        if let (true, Some(info)) = (existed, info) {
            self.deleted.lock().insert((*run, name.to_owned()));
            let mut map = self.indexes.write();
            let stale = map
                .get(&(*run, name.to_owned()))
                .is_some_and(|e| e.read().created_version < info.version);
            if stale {
                map.remove(&(*run, name.to_owned()));
            }
        }
        Ok(existed)
    }

    fn info_of(&self, run: &RunId, name: &str, def: &CollectionDef) -> Result<CollectionInfo> {
        let storage = self.engine.storage();
        let mut count = 0;
        for _ in 0..3 {
            let Some(e) = self.entry(run, name) else {
                break;
            };
            let counted = e.read().view_len(storage, name)?;
            match counted {
                Ok(n) => {
                    count = n;
                    break;
                }
                Err(Stale) => self.forget_overlays(name),
            }
        }
        Ok(CollectionInfo {
            name: name.to_owned(),
            dimension: def.dimension,
            metric: def.metric,
            count,
            created_at: def.created_at,
            quantization: def.quantization,
        })
    }

    /// Forgets the indexes of every forked collection named `name`, to be made again
    /// on their next use: one of them found its parent's changelog no longer reaching
    /// back to its fork (a busy parent), and the next load rebuilds it from its records.
    fn forget_overlays(&self, name: &str) {
        let _one_at_a_time = self.loading.lock();
        self.indexes
            .write()
            .retain(|(_, n), e| n != name || e.read().base.is_none());
    }

    /// The collections of a run, sorted by name.
    pub fn list_collections(&self, run: &RunId) -> Result<Vec<CollectionInfo>> {
        let prefix = encode_key(run, Primitive::Vector, &[META]);
        let defs = self.engine.read(run, |txn| {
            txn.scan_prefix(&prefix, None)
                .into_iter()
                .map(|(k, e)| {
                    let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                    let def: CollectionDef =
                        rmp_serde::from_slice(e.value.as_deref().unwrap_or_default())
                            .map_err(|err| Error::Serialization(err.to_string()))?;
                    Ok((name, def))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        defs.iter().map(|(n, d)| self.info_of(run, n, d)).collect()
    }

    /// A collection's definition and size, or `None` if it does not exist.
    pub fn collection_info(&self, run: &RunId, name: &str) -> Result<Option<CollectionInfo>> {
        limits::validate_key(name)?;
        let def = self.engine.read(run, |txn| load_def(txn, run, name))?;
        def.map(|(d, _)| self.info_of(run, name, &d)).transpose()
    }

    /// Number of vectors in a collection; `NotFound` if it does not exist.
    pub fn count(&self, run: &RunId, name: &str) -> Result<u64> {
        self.collection_info(run, name)?
            .map(|i| i.count)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "vector collection {name:?} does not exist in run {run}"
                ))
            })
    }

    /// Inserts or replaces a vector; returns the commit version. The vector must have the
    /// collection's dimension and finite components.
    pub fn upsert(
        &self,
        run: &RunId,
        collection: &str,
        key: &str,
        vector: &[f32],
        metadata: Option<Value>,
    ) -> Result<Version> {
        // Before the closure clones it: cloning recurses once per level.
        if let Some(m) = &metadata {
            limits::validate_depth(m)?;
        }
        let (op, info) = self.engine.write(run, |txn| {
            ops::upsert(txn, run, collection, key, vector, metadata.clone())
        })?;
        let version = committed_version(info)?;
        self.apply(vec![op], version.as_u64());
        Ok(version)
    }

    /// Inserts or replaces many vectors of one collection in one transaction (one
    /// commit, one log record); returns its version. Every vector is validated before
    /// anything is written: one bad item fails the whole batch. A key given twice keeps
    /// its last vector. The index inserts the batch into its graph in parallel on the
    /// available cores, so this is much faster than one [`upsert`](Self::upsert) per
    /// vector (`docs/vectors.md` has figures). An empty batch writes nothing and returns
    /// the current version.
    ///
    ///
    /// `items` are `(key, vector, metadata)`, e.g. `[("a", vec![1.0, 0.0], None)]`.
    pub fn upsert_batch<K, V>(
        &self,
        run: &RunId,
        collection: &str,
        items: impl IntoIterator<Item = (K, V, Option<Value>)>,
    ) -> Result<Version>
    where
        K: AsRef<str>,
        V: AsRef<[f32]>,
    {
        let items: Vec<(K, V, Option<Value>)> = items.into_iter().collect();
        if items.is_empty() {
            limits::validate_key(collection)?;
            self.engine
                .read(run, |txn| require_def(txn, run, collection))?;
            return Ok(Version::Txn(self.engine.storage().visible_version()));
        }
        let (ops, info) = self.engine.write(run, |txn| {
            ops::upsert_many(
                txn,
                run,
                collection,
                items
                    .iter()
                    .map(|(k, v, m)| (k.as_ref(), v.as_ref(), m.clone())),
            )
        })?;
        let version = committed_version(info)?;
        self.apply(ops, version.as_u64());
        Ok(version)
    }

    /// Sets the HNSW search effort (`ef_search`, the candidate list size; default 64, 96
    /// for [`Quantization::Int8`] collections) of
    /// a collection for this process: higher finds more of the true nearest neighbors and
    /// is slower (`docs/vectors.md` has the recall/speed table). A search uses
    /// `max(ef_search, k)`, doubled under a filter. The setting is kept in the index file
    /// written at close, not in the collection's definition. `ef` must be 1..=65,536.
    pub fn set_ef_search(&self, run: &RunId, collection: &str, ef: usize) -> Result<()> {
        check_ef(ef)?;
        limits::validate_key(collection)?;
        self.engine
            .read(run, |txn| require_def(txn, run, collection))?;
        if let Some(entry) = self.entry(run, collection) {
            entry.write().index.set_ef_search(ef);
        }
        Ok(())
    }

    /// Like [`search`](Self::search) with the HNSW search effort `ef` for this query only
    /// (see [`set_ef_search`](Self::set_ef_search)).
    pub fn search_with_ef(
        &self,
        run: &RunId,
        collection: &str,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<SearchFilter>,
    ) -> Result<Vec<VectorMatch>> {
        check_ef(ef)?;
        self.search_inner(
            run,
            collection,
            query,
            k,
            None,
            filter.as_ref(),
            false,
            Some(ef),
        )
    }

    /// A vector and its metadata, or `None`.
    pub fn get(
        &self,
        run: &RunId,
        collection: &str,
        key: &str,
    ) -> Result<Option<Versioned<VectorData>>> {
        limits::validate_key(key)?;
        self.engine.read(run, |txn| {
            require_def(txn, run, collection)?;
            match txn.get(&record_key(run, collection, key)) {
                None => Ok(None),
                Some(e) => {
                    let (vector, metadata) = decode_record(e.value.as_deref().unwrap_or_default())?;
                    Ok(Some(Versioned::new(
                        VectorData {
                            key: key.to_owned(),
                            vector,
                            metadata,
                        },
                        Version::Txn(e.version),
                        e.timestamp,
                    )))
                }
            }
        })
    }

    /// Deletes a vector; returns whether it existed.
    pub fn delete(&self, run: &RunId, collection: &str, key: &str) -> Result<bool> {
        let ((existed, op), info) = self
            .engine
            .write(run, |txn| ops::delete(txn, run, collection, key))?;
        if let Some(info) = info {
            self.apply(vec![op], info.version);
        }
        Ok(existed)
    }

    /// The `k` most similar vectors, best first, among those matching `filter`. Returns
    /// `k` results whenever `k` matching vectors exist.
    pub fn search(
        &self,
        run: &RunId,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<SearchFilter>,
    ) -> Result<Vec<VectorMatch>> {
        self.search_inner(
            run,
            collection,
            query,
            k,
            None,
            filter.as_ref(),
            false,
            None,
        )
    }

    /// Like [`search`](Self::search), keeping only results with `score >= threshold`.
    /// A NaN threshold is refused ([`Error::ConstraintViolation`]); `±∞` are allowed
    /// (keep everything, keep nothing).
    pub fn search_with_threshold(
        &self,
        run: &RunId,
        collection: &str,
        query: &[f32],
        k: usize,
        threshold: f32,
        filter: Option<SearchFilter>,
    ) -> Result<Vec<VectorMatch>> {
        self.search_inner(
            run,
            collection,
            query,
            k,
            Some(threshold),
            filter.as_ref(),
            false,
            None,
        )
    }

    /// Like [`search`](Self::search), with each match's `vector` filled in.
    pub fn search_with_vectors(
        &self,
        run: &RunId,
        collection: &str,
        query: &[f32],
        k: usize,
        filter: Option<SearchFilter>,
    ) -> Result<Vec<VectorMatch>> {
        self.search_inner(run, collection, query, k, None, filter.as_ref(), true, None)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private body behind the three public search variants"
    )]
    fn search_inner(
        &self,
        run: &RunId,
        collection: &str,
        query: &[f32],
        k: usize,
        threshold: Option<f32>,
        filter: Option<&SearchFilter>,
        with_vectors: bool,
        ef: Option<usize>,
    ) -> Result<Vec<VectorMatch>> {
        limits::validate_key(collection)?;
        if let Some(f) = filter {
            crate::filter::validate_filter(f)?;
        }
        if let Some(t) = threshold.filter(|t| t.is_nan()) {
            return Err(Error::ConstraintViolation(format!(
                "the score threshold must be a number, not {t}"
            )));
        }
        self.engine.read(run, |txn| {
            let def = require_def(txn, run, collection)?;
            validate_vector(query, def.dimension)?;
            let Some(entry) = self.entry(run, collection) else {
                return Ok(Vec::new());
            };
            // A bridge lost to a compaction (the parent's, which its forks do not hear
            // of) is made again before the search.
            let stale = needs_bridge(&entry.read());
            if stale {
                let mut e = entry.write();
                if needs_bridge(&e) {
                    if let Err(err) = refresh_bridge(&mut e, &[]) {
                        e.bridge = None;
                        tracing::error!(error = %err, "forked collection's bridge not made");
                    }
                }
            }
            // The index is updated just after each commit, so it can hold changes this
            // search's snapshot does not see yet (or lack ones it does). Hits are read
            // back from the records at the snapshot: a key the snapshot lacks is
            // dropped, one whose record differs from the indexed vector is scored from
            // the record. So that drops cannot leave fewer than `k` results while more
            // exist, the index is asked for more until it has given `k` keeps or all it
            // has (drops are the few changes in flight, so one round is the rule).
            let mut want = k;
            loop {
                let mut gathered = 0;
                let (hits, exhausted) = {
                    let e = entry.read();
                    let hits = if e.base.is_none() {
                        e.index.search_with_ef(query, want, ef, filter)?
                    } else {
                        let mut found = HashMap::new();
                        let mut exact = std::collections::HashSet::new();
                        if collect_hits(&e, query, want, ef, filter, &mut found, &mut exact)?
                            .is_err()
                        {
                            drop(e);
                            self.forget_overlays(collection);
                            return Err(Error::Conflict(
                                "the forked collection's index was made again; retry".into(),
                            ));
                        }
                        // Whether the index has more is judged before the re-checks
                        // below drop any.
                        gathered = found.len();
                        // Keys some parent changed after a fork: scored from the records
                        // as this run sees them.
                        for key in exact {
                            let Some(rec) = txn.get(&record_key(run, collection, &key)) else {
                                found.remove(&key);
                                continue;
                            };
                            let (vector, metadata) =
                                decode_record(rec.value.as_deref().unwrap_or_default())?;
                            if filter.is_none_or(|f| f.matches(metadata.as_ref())) {
                                found.insert(key, def.metric.score(query, &vector));
                            } else {
                                found.remove(&key);
                            }
                        }
                        let mut hits: Vec<(String, f32)> = found.into_iter().collect();
                        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        hits.truncate(want);
                        hits
                    };
                    // Fewer than asked: the index has no more. Past the threshold: more
                    // would score lower still.
                    let exhausted = hits.len().max(gathered) < want
                        || threshold.is_some_and(|t| hits.last().is_some_and(|h| h.1 < t));
                    // The version each hit was indexed at (a fork's inherited keys are
                    // checked by `collect_hits` against the fork's records already).
                    let hits: Vec<(String, f32, Option<u64>)> = hits
                        .into_iter()
                        .map(|(key, score)| {
                            let at = if e.base.is_none() {
                                e.applied.get(key.as_str()).copied()
                            } else {
                                None
                            };
                            (key, score, at)
                        })
                        .collect();
                    (hits, exhausted)
                };
                let mut out = Vec::with_capacity(hits.len());
                for (key, mut score, indexed_at) in hits {
                    let Some(rec) = txn.get(&record_key(run, collection, &key)) else {
                        continue;
                    };
                    let (vector, metadata) =
                        decode_record(rec.value.as_deref().unwrap_or_default())?;
                    if indexed_at.is_some_and(|v| v != rec.version) {
                        // The snapshot's record is not the indexed one.
                        if !filter.is_none_or(|f| f.matches(metadata.as_ref())) {
                            continue;
                        }
                        score = def.metric.score(query, &vector);
                    }
                    if threshold.is_some_and(|t| score < t) {
                        continue;
                    }
                    out.push(VectorMatch {
                        key,
                        score,
                        vector: with_vectors.then_some(vector),
                        metadata,
                    });
                }
                if out.len() >= k || exhausted || want >= k.saturating_mul(16) {
                    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
                    out.truncate(k);
                    return Ok(out);
                }
                want = want.saturating_mul(2).max(want + 16);
            }
        })
    }
}

/// The best `want` hits of a collection's index and, for a forked collection, of its
/// parent's as of the fork (recursively), into `found`; keys some parent changed after
/// the fork go to `exact`, to be scored from the records (see [`Base`]).
fn collect_hits(
    e: &IndexEntry,
    query: &[f32],
    want: usize,
    ef: Option<usize>,
    filter: Option<&SearchFilter>,
    found: &mut HashMap<String, f32>,
    exact: &mut std::collections::HashSet<String>,
) -> Result<std::result::Result<(), Stale>> {
    let Some(b) = &e.base else {
        for (key, score) in e.index.search_with_ef(query, want, ef, filter)? {
            found.entry(key).or_insert(score);
        }
        return Ok(Ok(()));
    };
    let be = b.entry.read();
    if be.tracked_since > b.at {
        return Ok(Err(Stale));
    }
    let changed = be.changed_after(b.at);
    for k in &changed {
        if !e.applied.contains_key(k.as_str()) {
            exact.insert(k.clone());
        }
    }
    // One walk over the fork's graph and its parent's, when they are bridged.
    if filter.is_none() {
        if let Some(hits) = bridged_hits(e, &be, &changed, query, want, ef)? {
            for (key, score) in hits {
                found.entry(key).or_insert(score);
            }
            return Ok(Ok(()));
        }
    }
    // The parent's hits first. Ask for more than `want`: hits this fork hides do not
    // count.
    let total = be.index.len() + be.applied.len();
    let mut ask = want.saturating_add(8);
    let mut inherited: Vec<(String, f32)>;
    loop {
        let mut sub = HashMap::new();
        let mut sub_exact = std::collections::HashSet::new();
        if collect_hits(&be, query, ask, ef, filter, &mut sub, &mut sub_exact)?.is_err() {
            return Ok(Err(Stale));
        }
        let got = sub.len();
        inherited = sub
            .into_iter()
            .filter(|(k, _)| !e.applied.contains_key(k.as_str()) && !changed.contains(k))
            .collect();
        if inherited.len() >= want || got < ask || ask >= total {
            for k in sub_exact {
                if !e.applied.contains_key(k.as_str()) {
                    exact.insert(k);
                }
            }
            break;
        }
        ask = ask.saturating_mul(2);
    }
    // Then the fork's own vectors, with a search budget (`ef`) sized to their share of
    // the collection: the walk costs about `ef`, whatever the index's size, and a fork
    // that changed a tenth of its parent would otherwise pay a second full search. If
    // every own hit the small walk found ranks among the best `want` overall, the own
    // vectors may hold more of the answer (a query about what the fork wrote): walk
    // again with the full budget.
    let own = e.index.len();
    let full_ef = ef.unwrap_or(e.index.config().hnsw.ef_search).max(want);
    let share = own as f64 / (own + total).max(1) as f64;
    let small_ef = ((full_ef as f64 * share * 2.0).ceil() as usize).clamp(want, full_ef);
    let mut own_hits = e
        .index
        .search_with_ef(query, want, Some(small_ef), filter)?;
    // `want > 0`: for `k = 0` no hit ranks, and `want - 1` below would underflow.
    if small_ef < full_ef && want > 0 && own_hits.len() == want {
        let mut scores: Vec<f32> = inherited
            .iter()
            .map(|(_, s)| *s)
            .chain(own_hits.iter().map(|(_, s)| *s))
            .collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let cutoff = scores.get(want - 1).copied().unwrap_or(f32::NEG_INFINITY);
        if own_hits.last().is_some_and(|(_, s)| *s >= cutoff) {
            own_hits = e.index.search_with_ef(query, want, Some(full_ef), filter)?;
        }
    }
    for (key, score) in own_hits {
        found.entry(key).or_insert(score);
    }
    for (k, s) in inherited {
        found.entry(k).or_insert(s);
    }
    Ok(Ok(()))
}

/// Largest `ef_search` accepted.
const MAX_EF: usize = 65_536;

fn check_ef(ef: usize) -> Result<()> {
    if (1..=MAX_EF).contains(&ef) {
        Ok(())
    } else {
        Err(Error::ConstraintViolation(format!(
            "ef_search must be 1..={MAX_EF}, got {ef}"
        )))
    }
}

/// Checks that `run` accepts writes (re-exported for multi-primitive transactions).
pub fn check_writable(txn: &mut Transaction, run: &RunId) -> Result<()> {
    runs::check_writable(txn, run).map(|_| ())
}
