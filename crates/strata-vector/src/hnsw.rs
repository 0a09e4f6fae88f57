//! Hierarchical Navigable Small World graph (Malkov & Yashunin, 2016), written for
//! StrataDB's needs: deletes, updates, filtered search, reachability repair and a
//! checksummed binary form.
//!
//! - **Layout.** Nodes are the dense `u32` ids of the underlying [`ExactIndex`] arena
//!   (one contiguous `Vec<f32>`). Layer-0 adjacency lives in one flat `Vec<u32>` with
//!   `M0 + 1` slots per node (count, then neighbors); upper layers (about `1/M` of the
//!   nodes) have a small per-node vector.
//! - **Construction.** A node's top layer is `⌊−ln(U)·mL⌋` with `mL = 1/ln(M)`, drawn from a
//!   seeded splitmix64 generator, so a build is deterministic for a given insertion order.
//!   Neighbors are chosen with the diversity heuristic (a candidate is kept only if it is
//!   closer to the new node than to every neighbor already kept), `M` per layer at
//!   insertion; reverse links overflowing `M` (`M0` at layer 0) are re-pruned with the same
//!   heuristic.
//! - **Batches.** [`HnswIndex::insert_batch`] links chunks of new nodes in parallel
//!   (scoped threads): each node of a chunk searches the graph as it was before the chunk
//!   and scans the chunk itself (every node, with the walks' similarity), then reverse
//!   links are merged once per target node.
//!   Single inserts past 1,024 nodes are deferred and linked the same way, one chunk per
//!   `128 × threads` inserts; searches scan the deferred vectors exactly meanwhile.
//! - **Deletes** are tombstones: a deleted node keeps its vector and edges and still routes
//!   searches, but is never returned. An update is a delete plus an insert under a new id.
//!   [`HnswIndex::compact`] removes tombstoned nodes, re-links their former neighbors
//!   through them, renumbers ids densely and repairs reachability.
//! - **Filtered search.** A predicate `Fn(u32) -> bool` is applied during the layer-0
//!   traversal: non-matching nodes are expanded (the walk continues through them) but
//!   never enter the result set, and the search goes on until `ef` *matching* nodes are
//!   held, or the reachable graph is exhausted.
//! - **Exact matches.** A hash of each node's vector bits maps to its id, so a search whose
//!   query is bit-for-bit a stored vector always returns that vector (when live and
//!   accepted by the filter), even where the beam search would miss it: no `ef` makes a
//!   graph walk exact (on 50,000 clustered vectors with near-duplicates, `ef = 64` missed
//!   13 of 50,000 self-searches at `k = 1`, `ef = 256` still one).
//! - **Reachability.** [`HnswIndex::verify_reachability`] counts live nodes that a
//!   breadth-first walk of layer 0 from the entry point cannot reach;
//!   [`HnswIndex::repair_reachability`] links every such node from its nearest reachable
//!   neighbors. Bulk builds and compaction run the repair.
use std::collections::{BinaryHeap, HashMap, VecDeque};

use parking_lot::Mutex;
use strata_core::{Error, Result};

use crate::arena::VectorArena;
use crate::distance::DistanceMetric;
use crate::exact::{ExactIndex, Query, Scored, Slot, TopK};

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbors chosen per node and layer at insertion, and the bound on upper layers.
    pub m: usize,
    /// Bound on neighbors at layer 0 (usually `2·m`).
    pub m0: usize,
    /// Candidate list size while inserting.
    pub ef_construction: usize,
    /// Default candidate list size while searching; a search uses `max(ef_search, k)`.
    pub ef_search: usize,
    /// Seed of the level generator.
    pub seed: u64,
}

impl Default for HnswParams {
    /// `m = 16`, `m0 = 32`, `ef_construction = 100`, `ef_search = 64`.
    ///
    /// `ef_construction = 100` rather than the common 200: on 100,000 clustered 384-d
    /// vectors it inserts about 2.3× faster (≈4,400 vs ≈1,900 upserts/s on one core) for
    /// the same recall@10 at `ef_search = 64` (see `docs/vectors.md`).
    fn default() -> Self {
        HnswParams {
            m: 16,
            m0: 32,
            ef_construction: 100,
            ef_search: 64,
            seed: 0x5354_5241_5441_4442, // "STRATADB"
        }
    }
}

impl HnswParams {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.m < 2 || self.m > 256 || self.m0 < self.m || self.m0 > 1024 {
            return Err(Error::ConstraintViolation(format!(
                "HNSW parameters need 2 <= m <= 256 and m <= m0 <= 1024, got m={} m0={}",
                self.m, self.m0
            )));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(Error::ConstraintViolation(
                "HNSW ef_construction and ef_search must be positive".into(),
            ));
        }
        Ok(())
    }
}

const NO_LEVEL: u8 = u8::MAX;
/// Batch inserts link one node at a time below this many nodes.
const PARALLEL_MIN_NODES: usize = 1024;
/// Nodes per thread in one chunk of a parallel batch insert.
const CHUNK_PER_THREAD: usize = 128;

/// Threads used for bulk graph work: the available parallelism, at most 8, read once
/// per process (on Linux `available_parallelism` reads the CPU affinity and the cgroup
/// quota files on every call, tens of microseconds: more than a third of a single
/// upsert's whole cost at 100,000 × 384 when it was asked twice per upsert).
pub fn default_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// `f(0..n)` on up to `threads` scoped threads (contiguous ranges), results in order.
pub(crate) fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    f: &(dyn Fn(usize) -> T + Sync),
) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per)..((t + 1) * per).min(n);
                scope.spawn(move || range.map(f).collect::<Vec<T>>())
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // A panic in a worker is a bug: surface it on the caller's thread.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        out
    })
}
const MAX_LEVEL: usize = 16;
pub(crate) const NONE: u32 = u32::MAX;

/// Generation-stamped visited set, reused across searches through a pool.
#[derive(Default)]
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
    /// Scratch list of a node's unvisited neighbors.
    batch: Vec<u32>,
}

impl Visited {
    pub(crate) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; returns `true` if it was not marked yet.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An HNSW graph over an [`ExactIndex`] arena. See the [module documentation](self).
pub struct HnswIndex {
    params: HnswParams,
    store: ExactIndex,
    /// Top layer per slot, [`NO_LEVEL`] for slots not in the graph.
    levels: Vec<u8>,
    /// Layer-0 adjacency: `m0 + 1` slots per id (count, neighbors).
    links0: Vec<u32>,
    /// Upper layers: for a node of level `L`, `L · (m + 1)` slots (count, neighbors) for
    /// layers `1..=L`.
    upper: UpperLinks,
    entry: u32,
    max_level: usize,
    nodes: usize,
    /// Node count at the last reachability repair (repairs run each time it grows by 1/8).
    repaired_at: usize,
    rng: u64,
    /// Live vectors inserted one by one but not linked into the graph yet (see
    /// [`HnswIndex::insert`]); searches scan them exactly.
    pending: Vec<u32>,
    /// Every live node, found by the hash of its vector's bits (see [`vector_hash`]): a
    /// query equal to a stored vector finds it even where the beam search would not. A
    /// table of bare ids, 5 bytes per node with its control byte (a map from the 64-bit
    /// hash took 17): hashes are recomputed from the stored vectors when the table grows.
    /// Duplicates of one vector each have their entry, so deleting one copy leaves the
    /// others found.
    exact_ids: hashbrown::HashTable<u32>,
    pool: Mutex<Vec<Visited>>,
}

/// A 64-bit hash of a vector's component bits (`-0.0` and `0.0` differ), for the
/// exact-match map.
fn vector_hash(v: &[f32]) -> u64 {
    let mut h = v.len() as u64;
    for pair in v.chunks(2) {
        let lo = u64::from(pair[0].to_bits());
        let hi = pair.get(1).map_or(0, |x| u64::from(x.to_bits()));
        h = (h.rotate_left(5) ^ (lo | hi << 32)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h ^ (h >> 29)
}

/// See [`HnswIndex::note_exact`].
fn note_exact_in(table: &mut hashbrown::HashTable<u32>, store: &ExactIndex, id: u32, v: &[f32]) {
    table.insert_unique(vector_hash(v), id, |&o| vector_hash(store.raw(o)));
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("dimension", &self.store.dimension())
            .field("metric", &self.store.metric())
            .field("live", &self.store.len())
            .field("nodes", &self.nodes)
            .field("max_level", &self.max_level)
            .finish()
    }
}

/// The upper-layer adjacency of every node in one arena: a node of level `L` owns
/// `L` consecutive blocks of `m + 1` slots (count, then neighbors), found through its
/// first block's number. One `u32` per slot instead of a `Vec` header (24 bytes) and a
/// heap allocation per node: at a million vectors that is about 20 MB less.
///
/// Blocks are never freed: nodes are never re-linked under the same id (an update takes
/// a new id), and [`HnswIndex::compact`] builds a fresh arena.
#[derive(Clone, Default)]
struct UpperLinks {
    /// First block of each slot's node; [`NONE`] for none (level 0 or not in the graph).
    first_block: Vec<u32>,
    /// Levels of each slot's node above 0, to bound its blocks.
    blocks: Vec<u8>,
    arena: Vec<u32>,
}

impl UpperLinks {
    fn resize(&mut self, n: usize) {
        self.first_block.resize(n, NONE);
        self.blocks.resize(n, 0);
    }

    /// Gives `id` `levels` zeroed blocks of `width` slots.
    fn allocate(&mut self, id: u32, levels: usize, width: usize) {
        let i = id as usize;
        if levels == 0 {
            self.first_block[i] = NONE;
            self.blocks[i] = 0;
            return;
        }
        // Block numbers fit a u32 until the arena holds 2^32 blocks (over 250 GB at
        // m = 16): memory runs out long before.
        self.first_block[i] = (self.arena.len() / width) as u32;
        self.blocks[i] = levels as u8;
        self.arena.resize(self.arena.len() + levels * width, 0);
    }

    /// Every upper-layer slot of `id` (empty for a node of level 0).
    #[inline]
    fn node(&self, id: u32, width: usize) -> &[u32] {
        let i = id as usize;
        match self.first_block[i] {
            NONE => &[],
            b => {
                let start = b as usize * width;
                &self.arena[start..start + self.blocks[i] as usize * width]
            }
        }
    }

    #[inline]
    fn node_mut(&mut self, id: u32, width: usize) -> &mut [u32] {
        let i = id as usize;
        match self.first_block[i] {
            NONE => &mut [],
            b => {
                let start = b as usize * width;
                &mut self.arena[start..start + self.blocks[i] as usize * width]
            }
        }
    }

    fn memory_bytes(&self) -> usize {
        self.first_block.capacity() * 4 + self.blocks.capacity() + self.arena.capacity() * 4
    }
}

impl Clone for HnswIndex {
    fn clone(&self) -> Self {
        HnswIndex {
            params: self.params,
            store: self.store.clone(),
            levels: self.levels.clone(),
            links0: self.links0.clone(),
            upper: self.upper.clone(),
            entry: self.entry,
            max_level: self.max_level,
            nodes: self.nodes,
            repaired_at: self.repaired_at,
            rng: self.rng,
            pending: self.pending.clone(),
            exact_ids: self.exact_ids.clone(),
            pool: Mutex::new(Vec::new()),
        }
    }
}

impl HnswIndex {
    /// An empty graph for vectors of `dimension` components compared with `metric`.
    pub fn new(dimension: usize, metric: DistanceMetric, params: HnswParams) -> Result<Self> {
        params.validate()?;
        Ok(Self::with_store(
            ExactIndex::new(dimension, metric)?,
            params,
        ))
    }

    fn with_store(store: ExactIndex, params: HnswParams) -> Self {
        HnswIndex {
            params,
            store,
            levels: Vec::new(),
            links0: Vec::new(),
            upper: UpperLinks::default(),
            entry: NONE,
            max_level: 0,
            nodes: 0,
            repaired_at: 0,
            rng: params.seed,
            pending: Vec::new(),
            exact_ids: hashbrown::HashTable::new(),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Builds a graph over every live vector of `store` (inserted in id order, in
    /// parallel chunks on [`default_threads`] threads past the first 1,024), then repairs
    /// reachability. Deleted slots of `store` stay outside the graph.
    pub fn build(store: ExactIndex, params: HnswParams) -> Result<Self> {
        params.validate()?;
        Ok(Self::build_validated(store, params))
    }

    /// [`Self::build`] with parameters already validated.
    pub(crate) fn build_validated(store: ExactIndex, params: HnswParams) -> Self {
        let mut h = Self::with_store(store, params);
        let ids: Vec<u32> = h.store.live_ids().collect();
        h.ensure_slots(h.store.slot_count());
        h.rebuild_exact_ids();
        h.link_batch(&ids, default_threads());
        h.repair_reachability();
        h
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the default search candidate list size (`ef_search ≥ 1`).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// Switches the working copy the walks compare (see [`crate::quantized`]). Edges
    /// already made stay; later inserts, searches and compactions use the new copy.
    pub fn set_quantization(&mut self, quantization: crate::Quantization) {
        self.store.set_quantization(quantization);
    }

    /// The vector arena (for exact scans over the same ids).
    pub fn store(&self) -> &ExactIndex {
        &self.store
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// `true` when no vector is live.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Number of nodes in the graph, tombstoned ones included.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Number of tombstoned nodes (still in the graph until [`Self::compact`]).
    pub fn deleted_count(&self) -> usize {
        self.store.deleted_count()
    }

    /// The highest layer.
    pub fn max_level(&self) -> usize {
        self.max_level
    }

    fn ensure_slots(&mut self, n: usize) {
        if self.levels.len() < n {
            self.levels.resize(n, NO_LEVEL);
            self.links0.resize(n * (self.params.m0 + 1), 0);
            self.upper.resize(n);
        }
    }

    #[inline]
    fn in_graph(&self, id: u32) -> bool {
        self.levels.get(id as usize).is_some_and(|l| *l != NO_LEVEL)
    }

    #[inline]
    pub(crate) fn neighbors(&self, id: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            let base = id as usize * (self.params.m0 + 1);
            let c = self.links0[base] as usize;
            &self.links0[base + 1..base + 1 + c]
        } else {
            let w = self.params.m + 1;
            let s = &self.upper.node(id, w)[(layer - 1) * w..layer * w];
            &s[1..1 + s[0] as usize]
        }
    }

    fn set_neighbors(&mut self, id: u32, layer: usize, list: &[u32]) {
        let slots = if layer == 0 {
            let w = self.params.m0 + 1;
            let base = id as usize * w;
            &mut self.links0[base..base + w]
        } else {
            let w = self.params.m + 1;
            &mut self.upper.node_mut(id, w)[(layer - 1) * w..layer * w]
        };
        let n = list.len().min(slots.len() - 1);
        slots[0] = n as u32;
        slots[1..1 + n].copy_from_slice(&list[..n]);
    }

    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 {
            self.params.m0
        } else {
            self.params.m
        }
    }

    fn random_level(&mut self) -> usize {
        level_from(&mut self.rng, self.params.m)
    }

    pub(crate) fn visited(&self) -> Visited {
        self.pool.lock().pop().unwrap_or_default()
    }

    pub(crate) fn recycle(&self, v: Visited) {
        let mut pool = self.pool.lock();
        if pool.len() < 64 {
            pool.push(v);
        }
    }

    /// Inserts the vector under `id`, which must not be in the graph yet (live or
    /// tombstoned: an update is [`Self::remove`] then an insert under a fresh id).
    ///
    /// Past 1,024 nodes on a machine with several cores ([`default_threads`] > 1) the
    /// linking is deferred: the vector is stored (and searchable: searches scan deferred
    /// vectors exactly) and linked with the next ones in one parallel chunk of
    /// `128 × threads` (see [`Self::insert_batch`], [`Self::flush_pending`]).
    ///
    /// Errors with [`Error::ConstraintViolation`] on a dimension mismatch, a non-finite
    /// component, or an id already in use.
    pub fn insert(&mut self, id: u32, vector: &[f32]) -> Result<()> {
        self.insert_with(id, vector, false)
    }

    /// [`Self::insert`] for a caller that links pending vectors itself, outside its
    /// exclusive lock ([`Self::linking_due`], [`Self::plan_pending_chunk`]): the chunk is
    /// linked here only if the caller fell four chunks behind.
    pub(crate) fn insert_deferred(&mut self, id: u32, vector: &[f32]) -> Result<()> {
        self.insert_with(id, vector, true)
    }

    fn insert_with(&mut self, id: u32, vector: &[f32], deferred: bool) -> Result<()> {
        if self.in_graph(id) || self.store.slot(id) != Slot::Empty {
            return Err(Error::ConstraintViolation(format!(
                "id {id} is already in the HNSW graph (ids are not reused before compaction)"
            )));
        }
        self.store.insert(id, vector)?;
        self.ensure_slots(self.store.slot_count());
        self.note_exact(id, vector);
        let threads = default_threads();
        if threads > 1 && self.nodes >= PARALLEL_MIN_NODES {
            // Deferred: linked with the next ones in one parallel chunk.
            self.pending.push(id);
            let behind = if deferred { 4 } else { 1 };
            if self.pending.len() >= behind * CHUNK_PER_THREAD * threads {
                self.flush_pending();
            }
            return Ok(());
        }
        self.link_new_node(id);
        self.after_growth();
        Ok(())
    }

    /// Links the vectors inserted one by one since the last chunk (see
    /// [`Self::insert`]). Searches do not need this (they scan those vectors); it runs by
    /// itself every `128 × threads` inserts.
    pub fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let ids: Vec<u32> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|&id| self.store.is_live(id))
            .collect();
        self.link_batch(&ids, default_threads());
        self.after_growth();
    }

    /// Vectors inserted but not linked into the graph yet.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// A breadth-first reachability repair each time the graph grows by an eighth:
    /// amortized O(8·M0) edge visits per insert, small next to the insert itself.
    fn after_growth(&mut self) {
        if self.nodes < 256 || self.nodes >= self.repaired_at + self.repaired_at / 8 {
            self.repair_reachability();
        }
    }

    /// Inserts many vectors, linking them into the graph on up to `threads` threads.
    ///
    /// The batch is cut into chunks; the nodes of a chunk search the graph as it was
    /// before the chunk in parallel (and each other by an exact scan of the chunk), choose
    /// their neighbors with the same heuristic as [`Self::insert`], then the reverse
    /// links are merged per target node (one re-pruning per node and chunk, in parallel).
    /// Small graphs and `threads <= 1` insert one by one. The result differs from
    /// sequential inserts in detail, not in quality (recall is tested against them).
    ///
    /// Errors as [`Self::insert`], and for an id given twice; on error nothing changes.
    pub fn insert_batch(&mut self, items: &[(u32, &[f32])], threads: usize) -> Result<()> {
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for &(id, v) in items {
            crate::distance::validate_vector(v, self.store.dimension())?;
            if id == NONE
                || self.in_graph(id)
                || self.store.slot(id) != Slot::Empty
                || !seen.insert(id)
            {
                return Err(Error::ConstraintViolation(format!(
                    "id {id} is reserved, already in the HNSW graph or given twice"
                )));
            }
        }
        for &(id, v) in items {
            self.store.insert(id, v)?;
        }
        self.ensure_slots(self.store.slot_count());
        let ids: Vec<u32> = items.iter().map(|p| p.0).collect();
        for &(id, v) in items {
            self.note_exact(id, v);
        }
        self.link_batch(&ids, threads);
        self.after_growth();
        Ok(())
    }

    /// Links nodes whose vectors are in the store (see [`Self::insert_batch`]).
    fn link_batch(&mut self, ids: &[u32], threads: usize) {
        let threads = threads.max(1);
        let mut i = 0;
        while i < ids.len() {
            // Sequential until the graph is large enough for chunks to be a small part of
            // it; chunks stay under 1/8 of the graph.
            if threads == 1 || self.nodes < PARALLEL_MIN_NODES {
                self.link_new_node(ids[i]);
                i += 1;
                continue;
            }
            let chunk = (CHUNK_PER_THREAD * threads)
                .min(self.nodes / 8)
                .max(threads);
            let end = (i + chunk).min(ids.len());
            self.link_chunk(&ids[i..end], threads);
            i = end;
        }
    }

    /// One chunk of [`Self::link_batch`].
    fn link_chunk(&mut self, chunk: &[u32], threads: usize) {
        let plan = self.plan_chunk(chunk.to_vec(), self.rng, threads);
        self.apply_chunk(plan);
    }

    /// Everything one chunk's linking computes — the expensive part, the walks and the
    /// re-pruning — from the graph as it is, without changing it (so it may run under a
    /// shared lock while searches go on): levels drawn from `rng`, each new node's
    /// neighbor lists, and the merged lists of the nodes they link back to.
    fn plan_chunk(&self, chunk: Vec<u32>, mut rng: u64, threads: usize) -> LinkPlan {
        // 1. Levels (sequential: the generator is deterministic).
        let levels: Vec<usize> = chunk
            .iter()
            .map(|_| level_from(&mut rng, self.params.m))
            .collect();
        // 2. Neighbor choice per new node and layer, in parallel against the graph as it
        //    is (the new nodes have no edges yet, so walks cannot reach them) plus an exact
        //    scan of the chunk itself.
        let choose = |me: usize| -> Vec<Vec<u32>> {
            let id = chunk[me];
            let level = levels[me];
            let q = self.node_query(id);
            let top = level.min(self.max_level);
            let mut ep = vec![self.descend(&q, top)];
            let mut visited = self.visited();
            let mut per_layer = vec![Vec::new(); level + 1];
            for layer in (0..=top).rev() {
                let found = self.search_layer(
                    &q,
                    &ep,
                    self.params.ef_construction,
                    layer,
                    &mut visited,
                    &|n| n != id,
                );
                let mut cands = found.clone();
                for (j, &other) in chunk.iter().enumerate() {
                    if j != me && levels[j] >= layer {
                        cands.push(Scored {
                            sim: self.store.walk_sim(&q, other),
                            id: other,
                        });
                    }
                }
                cands.sort_unstable_by(|a, b| b.cmp(a));
                cands.truncate(self.params.ef_construction);
                per_layer[layer] = self.select_neighbors(&cands, self.params.m);
                if !found.is_empty() {
                    ep = found;
                }
            }
            self.recycle(visited);
            per_layer
        };
        let chosen: Vec<Vec<Vec<u32>>> = parallel_map(chunk.len(), threads, &choose);
        // 3. Reverse links, grouped by target node and layer, re-pruned in parallel. A
        //    target in the chunk starts from the list chosen for it above (installed
        //    before these merges are).
        let position: HashMap<u32, usize> =
            chunk.iter().enumerate().map(|(me, &id)| (id, me)).collect();
        let mut incoming: HashMap<(u32, usize), Vec<u32>> = HashMap::new();
        for (me, &id) in chunk.iter().enumerate() {
            for (layer, list) in chosen[me].iter().enumerate() {
                for &n in list {
                    incoming.entry((n, layer)).or_default().push(id);
                }
            }
        }
        let incoming: Vec<((u32, usize), Vec<u32>)> = incoming.into_iter().collect();
        let merge = |i: usize| -> Option<Vec<u32>> {
            let ((from, layer), new) = &incoming[i];
            let current: &[u32] = match position.get(from) {
                Some(&me) => &chosen[me][*layer],
                None => self.neighbors(*from, *layer),
            };
            let mut list = current.to_vec();
            for &n in new {
                if n != *from && !list.contains(&n) {
                    list.push(n);
                }
            }
            if list.len() == current.len() {
                return None;
            }
            let max = self.max_links(*layer);
            if list.len() <= max {
                return Some(list);
            }
            let mut cands: Vec<Scored> = list
                .iter()
                .map(|&n| Scored {
                    sim: self.store.walk_sim_between(*from, n),
                    id: n,
                })
                .collect();
            cands.sort_unstable_by(|a, b| b.cmp(a));
            Some(self.select_neighbors(&cands, max))
        };
        let merged: Vec<Option<Vec<u32>>> = parallel_map(incoming.len(), threads, &merge);
        let merged = incoming
            .into_iter()
            .zip(merged)
            .filter_map(|((target, _), list)| list.map(|l| (target, l)))
            .collect();
        LinkPlan {
            chunk,
            levels,
            chosen,
            merged,
            rng,
        }
    }

    /// Installs a chunk planned by [`Self::plan_chunk`] against this very graph.
    fn apply_chunk(&mut self, plan: LinkPlan) {
        let LinkPlan {
            chunk,
            levels,
            chosen,
            merged,
            rng,
        } = plan;
        self.rng = rng;
        // The new nodes and their own lists.
        for (me, &id) in chunk.iter().enumerate() {
            self.levels[id as usize] = levels[me] as u8;
            self.upper.allocate(id, levels[me], self.params.m + 1);
            self.nodes += 1;
        }
        for (me, &id) in chunk.iter().enumerate() {
            for (layer, list) in chosen[me].iter().enumerate() {
                self.set_neighbors(id, layer, list);
            }
        }
        // The merged reverse links.
        for ((from, layer), list) in merged {
            self.set_neighbors(from, layer, &list);
        }
        // A new top level moves the entry point.
        for (me, &id) in chunk.iter().enumerate() {
            if levels[me] > self.max_level {
                self.max_level = levels[me];
                self.entry = id;
            }
        }
    }

    /// `true` when enough vectors upserted one by one wait to be linked that a caller
    /// deferring the linking ([`Self::insert_deferred`]) should link a chunk now
    /// ([`Self::plan_pending_chunk`], [`Self::apply_pending_chunk`]).
    pub(crate) fn linking_due(&self) -> bool {
        self.pending.len() >= CHUNK_PER_THREAD * default_threads()
    }

    /// Plans the linking of the next chunk of pending vectors without changing the
    /// graph (see [`Self::plan_chunk`]): the caller may hold a shared lock, so that
    /// searches go on during the expensive part; `None` when nothing is pending.
    pub(crate) fn plan_pending_chunk(&self) -> Option<PendingPlan> {
        let threads = default_threads();
        let size = (CHUNK_PER_THREAD * threads)
            .min(self.nodes / 8)
            .max(threads);
        let mut taken = 0;
        let mut chunk = Vec::with_capacity(size);
        for &id in &self.pending {
            if chunk.len() == size {
                break;
            }
            taken += 1;
            if self.store.is_live(id) && !self.in_graph(id) {
                chunk.push(id);
            }
        }
        if taken == 0 {
            return None;
        }
        let plan = self.plan_chunk(chunk, self.rng, threads);
        Some(PendingPlan { taken, plan })
    }

    /// Installs a plan of [`Self::plan_pending_chunk`]. The graph must not have changed
    /// in between (the caller held a lock that excludes writers).
    pub(crate) fn apply_pending_chunk(&mut self, plan: PendingPlan) {
        self.pending.drain(..plan.taken);
        self.apply_chunk(plan.plan);
        self.after_growth();
    }

    /// Tombstones `id`: it keeps routing searches but is never returned. Returns `false`
    /// when `id` was not live.
    pub fn remove(&mut self, id: u32) -> bool {
        if !self.store.is_live(id) {
            return false;
        }
        // Out of the exact-match table first (its vector is still in the store, so its
        // hash can be found): another live copy of the same vector keeps its own entry.
        let hash = vector_hash(self.store.raw(id));
        if let Ok(entry) = self.exact_ids.find_entry(hash, |&o| o == id) {
            entry.remove();
        }
        self.store.remove(id)
    }

    /// Greedy descent (ef = 1) from the entry point down to `target_layer + 1`.
    pub(crate) fn descend(&self, q: &Query, target_layer: usize) -> Scored {
        let mut cur = Scored {
            sim: self.store.walk_sim(q, self.entry),
            id: self.entry,
        };
        let mut layer = self.max_level;
        while layer > target_layer {
            let mut changed = true;
            while changed {
                changed = false;
                for &n in self.neighbors(cur.id, layer) {
                    let sim = self.store.walk_sim(q, n);
                    if sim > cur.sim {
                        cur = Scored { sim, id: n };
                        changed = true;
                    }
                }
            }
            layer -= 1;
        }
        cur
    }

    /// Beam search on one layer. Every reached node is expanded; only nodes accepted by
    /// `accept` enter the results, and the walk stops once `ef` accepted nodes are held
    /// and no candidate can improve them. Results are best first.
    fn search_layer(
        &self,
        q: &Query,
        entries: &[Scored],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Scored> {
        visited.reset(self.levels.len());
        let mut candidates: BinaryHeap<Scored> =
            BinaryHeap::with_capacity(ef.saturating_mul(2).min(4096));
        let mut results = TopK::new(ef);
        let mut bound = f32::NEG_INFINITY;
        for e in entries {
            if visited.insert(e.id) {
                candidates.push(*e);
                if accept(e.id) {
                    results.push(*e);
                }
            }
        }
        if let Some(t) = results.threshold() {
            bound = t;
        }
        let mut batch = std::mem::take(&mut visited.batch);
        while let Some(c) = candidates.pop() {
            if c.sim < bound {
                break;
            }
            // Collect the unvisited neighbors and prefetch their vectors first, so that
            // their cache misses overlap instead of stalling one distance at a time.
            batch.clear();
            for &n in self.neighbors(c.id, layer) {
                if visited.insert(n) {
                    batch.push(n);
                }
            }
            for &n in &batch {
                self.store.walk_prefetch(n);
            }
            for &n in &batch {
                let sim = self.store.walk_sim(q, n);
                if sim >= bound {
                    let s = Scored { sim, id: n };
                    candidates.push(s);
                    if accept(n) {
                        results.push(s);
                        if let Some(t) = results.threshold() {
                            bound = t;
                        }
                    }
                }
            }
        }
        visited.batch = batch;
        results.into_sorted()
    }

    /// The diversity heuristic: from `candidates` (best first, relative to the base node),
    /// keep a candidate only if it is more similar to the base than to every kept one.
    ///
    /// The dot product is not a metric (a long vector is "similar" to everything), and the
    /// heuristic alone then leaves short vectors with few in-links; for it, the lists are
    /// topped up to `m` with the best pruned candidates.
    fn select_neighbors(&self, candidates: &[Scored], m: usize) -> Vec<u32> {
        let mut kept: Vec<Scored> = Vec::with_capacity(m);
        let mut pruned: Vec<u32> = Vec::new();
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            let diverse = kept
                .iter()
                .all(|r| self.store.walk_sim_between(c.id, r.id) < c.sim);
            if diverse {
                kept.push(*c);
            } else {
                pruned.push(c.id);
            }
        }
        let mut out: Vec<u32> = kept.into_iter().map(|s| s.id).collect();
        if self.store.metric() == DistanceMetric::DotProduct {
            let room = m - out.len();
            out.extend(pruned.into_iter().take(room));
        }
        out
    }

    /// Links a node whose vector is already in the store (and slots allocated).
    fn link_new_node(&mut self, id: u32) {
        let level = self.random_level();
        self.levels[id as usize] = level as u8;
        self.upper.allocate(id, level, self.params.m + 1);
        self.set_neighbors(id, 0, &[]);
        self.nodes += 1;
        if self.entry == NONE {
            self.entry = id;
            self.max_level = level;
            return;
        }
        let q = self.node_query(id);
        let top = level.min(self.max_level);
        let mut ep = vec![self.descend(&q, top)];
        let mut visited = self.visited();
        for layer in (0..=top).rev() {
            let found = self.search_layer(
                &q,
                &ep,
                self.params.ef_construction,
                layer,
                &mut visited,
                &|n| n != id,
            );
            let chosen = self.select_neighbors(&found, self.params.m);
            self.set_neighbors(id, layer, &chosen);
            for &n in &chosen {
                self.add_link(n, id, layer);
            }
            if !found.is_empty() {
                ep = found;
            }
        }
        self.recycle(visited);
        if level > self.max_level {
            self.max_level = level;
            self.entry = id;
        }
    }

    /// Adds the edge `from → to` on `layer`, re-pruning `from`'s list when full.
    fn add_link(&mut self, from: u32, to: u32, layer: usize) {
        let max = self.max_links(layer);
        let current = self.neighbors(from, layer);
        if current.contains(&to) {
            return;
        }
        if current.len() < max {
            let mut list = current.to_vec();
            list.push(to);
            self.set_neighbors(from, layer, &list);
            return;
        }
        let mut cands: Vec<Scored> = current
            .iter()
            .chain(std::iter::once(&to))
            .map(|&n| Scored {
                sim: self.store.walk_sim_between(from, n),
                id: n,
            })
            .collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = self.select_neighbors(&cands, max);
        self.set_neighbors(from, layer, &chosen);
    }

    /// The `k` live vectors most similar to `query` (and accepted by `filter`), best first,
    /// as `(id, score)`, searching with `ef = max(ef_search, k)` (doubled under a filter).
    ///
    /// Approximate: may miss true neighbors, and may return fewer than `k` results when
    /// the filter matches few nodes reachable from the entry point.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>> {
        let mut ef = self.params.ef_search.max(k);
        if filter.is_some() {
            ef = ef.saturating_mul(2);
        }
        self.search_with_ef(query, k, ef, filter)
    }

    /// [`Self::search`] with an explicit candidate list size (`max(ef, k)` is used).
    pub fn search_with_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>> {
        self.search_walk(query, k, ef, filter, false)
    }

    /// A post-filtered search: walks the graph *without* the filter for `ef` candidates,
    /// keeps the ones `filter` accepts (re-ranked exactly with an int8 working copy: only
    /// the kept ones are re-scored), and returns the best `k` of them, so possibly fewer
    /// than `k`. Pending vectors compete for the candidate list before the filter (ranked
    /// with the walks' similarity, then re-scored exactly if kept); a query that is
    /// bit-for-bit a stored, accepted vector finds it, as in [`Self::search_with_ef`].
    pub(crate) fn search_post_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<(u32, f32)>> {
        self.search_walk(query, k, ef, Some(filter), true)
    }

    /// The walk behind [`Self::search_with_ef`] (the filter applied during the walk) and
    /// [`Self::search_post_filtered`] (`post`: applied to the walk's candidates).
    fn search_walk(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
        post: bool,
    ) -> Result<Vec<(u32, f32)>> {
        let q = self.store.prepare(query)?;
        if k == 0 || self.store.is_empty() {
            return Ok(Vec::new());
        }
        // More than the stored vectors cannot be found: this also bounds huge `k`s.
        let k = k.min(self.nodes + self.pending.len());
        let store = &self.store;
        let walk_filter = filter.filter(|_| !post);
        let mut found = if self.entry == NONE {
            Vec::new()
        } else {
            let ef = ef.max(k).min(self.nodes);
            let ep = self.descend(&q, 0);
            let mut visited = self.visited();
            let found = match walk_filter {
                Some(f) => self.search_layer(&q, &[ep], ef, 0, &mut visited, &|n| {
                    store.is_live(n) && f(n)
                }),
                None => self.search_layer(&q, &[ep], ef, 0, &mut visited, &|n| store.is_live(n)),
            };
            self.recycle(visited);
            found
        };
        match (post, filter) {
            (true, Some(f)) => {
                // The candidate list must be a prefix of the unfiltered order, so vectors
                // not linked yet compete for its places before the filter applies (padding
                // a list short of matches with far pending ones would hide that the caller
                // should search another way).
                if !self.pending.is_empty() {
                    let mut top = TopK::new(ef.max(k));
                    for s in found.drain(..) {
                        top.push(s);
                    }
                    for &id in &self.pending {
                        if store.is_live(id) {
                            top.push(Scored {
                                sim: store.walk_sim(&q, id),
                                id,
                            });
                        }
                    }
                    found = top.into_sorted();
                }
                found.retain(|s| f(s.id));
                // With an int8 working copy only the kept candidates are re-ranked.
                store.rerank(&q, &mut found, k);
            }
            _ => {
                // With an int8 working copy, the walk's best candidates are ranked again
                // exactly.
                store.rerank(&q, &mut found, k);
                // Vectors not linked yet are scanned exactly.
                if !self.pending.is_empty() {
                    let mut top = TopK::new(k);
                    for s in found.drain(..) {
                        top.push(s);
                    }
                    for &id in &self.pending {
                        if store.is_live(id) && filter.is_none_or(|f| f(id)) {
                            top.push(Scored {
                                sim: store.sim(&q, id),
                                id,
                            });
                        }
                    }
                    found = top.into_sorted();
                }
            }
        }
        // A query that is a stored vector finds it even where the walk did not.
        if let Some(id) = self.exact_match(query) {
            if !found.iter().any(|s| s.id == id) && filter.is_none_or(|f| f(id)) {
                found.push(Scored {
                    sim: self.store.sim(&q, id),
                    id,
                });
                found.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        found.truncate(k);
        Ok(self.store.to_scores(found))
    }

    /// The entry point of the walks, `None` for an empty graph.
    pub(crate) fn entry_point(&self) -> Option<u32> {
        (self.entry != NONE).then_some(self.entry)
    }

    /// Vectors inserted but not linked yet (searches scan them exactly).
    pub(crate) fn pending_ids(&self) -> &[u32] {
        &self.pending
    }

    /// Ids below this bound have adjacency slots (and fit a [`Visited`] reset to it).
    pub(crate) fn slot_len(&self) -> usize {
        self.levels.len()
    }

    /// The `count` graph nodes nearest to `v` — tombstoned ones included, pending ones
    /// not — found by a walk with candidate list `ef`, best first (raw similarities).
    pub(crate) fn nearest_nodes(&self, v: &[f32], count: usize, ef: usize) -> Result<Vec<Scored>> {
        let q = self.store.prepare(v)?;
        if self.entry == NONE || count == 0 {
            return Ok(Vec::new());
        }
        let ep = self.descend(&q, 0);
        let mut visited = self.visited();
        let mut found = self.search_layer(&q, &[ep], ef.max(count), 0, &mut visited, &|_| true);
        self.recycle(visited);
        self.store.rerank(&q, &mut found, count);
        found.truncate(count);
        Ok(found)
    }

    /// The live node whose vector is bit-for-bit `v`, if the exact-match map has one.
    pub(crate) fn exact_match(&self, v: &[f32]) -> Option<u32> {
        self.exact_ids
            .find(vector_hash(v), |&o| {
                self.store.is_live(o) && self.store.raw(o) == v
            })
            .copied()
    }

    /// Adds `id` (its vector in the store already) to the exact-match table.
    fn note_exact(&mut self, id: u32, v: &[f32]) {
        note_exact_in(&mut self.exact_ids, &self.store, id, v);
    }

    fn rebuild_exact_ids(&mut self) {
        let mut table = hashbrown::HashTable::with_capacity(self.store.len());
        for id in self.store.live_ids() {
            note_exact_in(&mut table, &self.store, id, self.store.raw(id));
        }
        self.exact_ids = table;
    }

    /// Live nodes that a breadth-first walk of layer 0 from the entry point does not reach
    /// (tombstoned nodes are walked through but not counted). `0` for a healthy graph.
    pub fn verify_reachability(&self) -> usize {
        let reached = self.reachable();
        self.store
            .live_ids()
            .filter(|&id| self.in_graph(id) && !reached[id as usize])
            .count()
    }

    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.levels.len()];
        if self.entry != NONE {
            self.mark_from(self.entry, &mut seen);
        }
        seen
    }

    fn mark_from(&self, start: u32, seen: &mut [bool]) {
        if seen[start as usize] {
            return;
        }
        seen[start as usize] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(x) = queue.pop_front() {
            for &n in self.neighbors(x, 0) {
                if !seen[n as usize] {
                    seen[n as usize] = true;
                    queue.push_back(n);
                }
            }
        }
    }

    /// Links every unreachable live node from its nearest reachable nodes on layer 0
    /// (taking a free neighbor slot, or replacing the least similar neighbor that has
    /// another in-link). Returns the number of nodes that were unreachable.
    pub fn repair_reachability(&mut self) -> usize {
        self.repaired_at = self.nodes;
        if self.entry == NONE {
            return 0;
        }
        let mut seen = self.reachable();
        let lost: Vec<u32> = self
            .store
            .live_ids()
            .filter(|&id| self.in_graph(id) && !seen[id as usize])
            .collect();
        if lost.is_empty() {
            return 0;
        }
        let mut indegree = vec![0u32; self.levels.len()];
        for id in 0..self.levels.len() as u32 {
            if self.in_graph(id) {
                for &n in self.neighbors(id, 0) {
                    indegree[n as usize] += 1;
                }
            }
        }
        let mut visited = self.visited();
        let ef = self.params.ef_construction.max(self.params.m0);
        for &u in &lost {
            if seen[u as usize] {
                continue; // reached through a node repaired earlier
            }
            let q = self.node_query(u);
            let ep = self.descend(&q, 0);
            let found = self.search_layer(&q, &[ep], ef, 0, &mut visited, &|n| n != u);
            let mut linked = false;
            for c in found.iter().filter(|c| seen[c.id as usize]) {
                let list = self.neighbors(c.id, 0).to_vec();
                if list.len() < self.params.m0 {
                    let mut l = list;
                    l.push(u);
                    self.set_neighbors(c.id, 0, &l);
                    linked = true;
                } else if let Some(pos) = list
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| indegree[n as usize] > 1)
                    .min_by(|a, b| {
                        let sa = self.store.walk_sim_between(c.id, *a.1);
                        let sb = self.store.walk_sim_between(c.id, *b.1);
                        sa.total_cmp(&sb)
                    })
                    .map(|(i, _)| i)
                {
                    let mut l = list;
                    indegree[l[pos] as usize] -= 1;
                    l[pos] = u;
                    self.set_neighbors(c.id, 0, &l);
                    linked = true;
                }
                if linked {
                    indegree[u as usize] += 1;
                    break;
                }
            }
            if !linked {
                // Every candidate is saturated with single-in-link neighbors: extend the
                // entry point's list by replacing its least similar neighbor.
                let e = self.entry;
                let mut l = self.neighbors(e, 0).to_vec();
                if l.len() < self.params.m0 {
                    l.push(u);
                } else if let Some(last) = l.last_mut() {
                    *last = u;
                }
                self.set_neighbors(e, 0, &l);
            }
            self.mark_from(u, &mut seen);
        }
        self.recycle(visited);
        // Replacing an edge can orphan another node in rare cases: check again.
        let remaining = self.verify_reachability();
        if remaining > 0 && remaining < lost.len() {
            self.repair_reachability();
        }
        lost.len()
    }

    fn node_query(&self, id: u32) -> Query {
        let mut v = self.store.raw(id).to_vec();
        if self.store.metric() == DistanceMetric::Cosine {
            crate::distance::normalize(&mut v);
        }
        self.store.query_from(v)
    }

    /// Removes tombstoned nodes: each live node that linked to one keeps its live
    /// neighbors and replaces each deleted one with the most similar live node reached
    /// through the deleted ones; then ids are renumbered densely in order and
    /// reachability is repaired.
    ///
    /// Returns the map from old id to new id (`u32::MAX` for removed ids).
    pub fn compact(&mut self) -> Vec<u32> {
        self.flush_pending();
        let slots = self.levels.len();
        // 1. Re-link around deleted nodes: each live node keeps its live neighbors and
        //    fills the slots of its deleted ones with the most similar live nodes found
        //    through them (their first `m` neighbors, and one hop further if needed).
        //    Keeping the surviving edges as they are preserves the degree and the reverse
        //    links a fresh heuristic selection would prune.
        for layer in 0..=self.max_level {
            for id in 0..slots as u32 {
                if !self.store.is_live(id) || (self.levels[id as usize] as usize) < layer {
                    continue;
                }
                if self.levels[id as usize] == NO_LEVEL {
                    continue;
                }
                let list = self.neighbors(id, layer);
                let mut kept: Vec<u32> = Vec::with_capacity(list.len());
                let mut frontier: Vec<u32> = Vec::new();
                for &n in list {
                    if self.store.is_live(n) {
                        kept.push(n);
                    } else {
                        frontier.push(n);
                    }
                }
                let removed = frontier.len();
                if removed == 0 {
                    continue;
                }
                let mut cand: Vec<u32> = Vec::with_capacity(removed * self.params.m);
                for _hop in 0..2 {
                    let mut next = Vec::new();
                    for d in frontier {
                        if !self.in_graph(d) {
                            continue;
                        }
                        for &n in self.neighbors(d, layer).iter().take(self.params.m) {
                            if n == id || kept.contains(&n) {
                                continue;
                            }
                            if self.store.is_live(n) {
                                cand.push(n);
                            } else {
                                next.push(n);
                            }
                        }
                    }
                    cand.sort_unstable();
                    cand.dedup();
                    if cand.len() >= removed {
                        break;
                    }
                    frontier = next;
                }
                for &n in &cand {
                    self.store.walk_prefetch(n);
                }
                let mut scored: Vec<Scored> = cand
                    .into_iter()
                    .map(|n| Scored {
                        sim: self.store.walk_sim_between(id, n),
                        id: n,
                    })
                    .collect();
                scored.sort_unstable_by(|a, b| b.cmp(a));
                kept.extend(scored.iter().take(removed).map(|s| s.id));
                self.set_neighbors(id, layer, &kept);
            }
        }
        // 2. New entry point: the old one if live, else the live node of highest level.
        let new_entry_old = if self.entry != NONE && self.store.is_live(self.entry) {
            Some(self.entry)
        } else {
            self.store
                .live_ids()
                .filter(|&id| self.in_graph(id))
                .max_by(|&a, &b| {
                    self.levels[a as usize]
                        .cmp(&self.levels[b as usize])
                        .then(b.cmp(&a))
                })
        };
        // 3. Renumber.
        let remap = self.store.compact();
        let n = self.store.slot_count();
        let m0w = self.params.m0 + 1;
        let mw = self.params.m + 1;
        let mut levels = vec![NO_LEVEL; n];
        let mut links0 = vec![0u32; n * m0w];
        let mut upper = UpperLinks::default();
        upper.resize(n);
        let mut nodes = 0;
        let fix = |list: &[u32]| -> Vec<u32> {
            list.iter()
                .map(|&x| remap[x as usize])
                .filter(|&x| x != NONE)
                .collect()
        };
        for (old, &new) in remap.iter().enumerate() {
            if new == NONE || self.levels[old] == NO_LEVEL {
                continue;
            }
            let new = new as usize;
            nodes += 1;
            let lvl = self.levels[old];
            levels[new] = lvl;
            let l0 = fix(self.neighbors(old as u32, 0));
            links0[new * m0w] = l0.len() as u32;
            links0[new * m0w + 1..new * m0w + 1 + l0.len()].copy_from_slice(&l0);
            upper.allocate(new as u32, lvl as usize, mw);
            for layer in 1..=lvl as usize {
                let l = fix(self.neighbors(old as u32, layer));
                let up = &mut upper.node_mut(new as u32, mw)[(layer - 1) * mw..layer * mw];
                up[0] = l.len() as u32;
                up[1..1 + l.len()].copy_from_slice(&l);
            }
        }
        self.levels = levels;
        self.links0 = links0;
        self.upper = upper;
        self.nodes = nodes;
        match new_entry_old {
            Some(e) => {
                self.entry = remap[e as usize];
                self.max_level = self.levels[self.entry as usize] as usize;
            }
            None => {
                self.entry = NONE;
                self.max_level = 0;
            }
        }
        self.rebuild_exact_ids();
        self.repair_reachability();
        remap
    }

    /// Approximate heap memory used, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.levels.capacity()
            + self.links0.capacity() * 4
            + self.upper.memory_bytes()
            + self.exact_ids.capacity() * 5
    }

    /// See [`CollectionIndex::adopt_vector_section`](crate::index::CollectionIndex).
    pub(crate) fn adopt_vector_section(&mut self, section: crate::arena::FloatSection) -> bool {
        self.store.adopt_section(section)
    }

    /// Serializes the graph and its vectors to a self-checking binary form (little
    /// endian, ending with a CRC-32C of all preceding bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(true)
    }

    /// The number of vector slots [`Self::encode`] without inline vectors expects the
    /// vector section beside it to hold (one per slot, empty slots zeroed).
    pub(crate) fn encoded_slots(&self) -> usize {
        self.levels.len().max(self.store.slot_count())
    }

    /// [`Self::to_bytes`] (format 1, `vectors_inline`) or the graph alone (format 2):
    /// the vectors of its [`Self::encoded_slots`] slots are then written elsewhere, as
    /// an index file's vector section, and handed back to [`Self::decode`].
    pub(crate) fn encode(&self, vectors_inline: bool) -> Vec<u8> {
        let dim = self.store.dimension();
        let slots = self.encoded_slots();
        let per_slot = 2 + if vectors_inline { dim * 4 } else { 0 } + 4 * 17;
        let mut out = Vec::with_capacity(64 + slots * per_slot);
        out.extend_from_slice(MAGIC);
        put_u32(
            &mut out,
            if vectors_inline {
                FORMAT_VERSION
            } else {
                FORMAT_VERSION_SPLIT
            },
        );
        put_u32(&mut out, dim as u32);
        out.push(metric_code(self.store.metric()));
        put_u32(&mut out, self.params.m as u32);
        put_u32(&mut out, self.params.m0 as u32);
        put_u32(&mut out, self.params.ef_construction as u32);
        put_u32(&mut out, self.params.ef_search as u32);
        put_u64(&mut out, self.params.seed);
        put_u64(&mut out, self.rng);
        put_u32(&mut out, slots as u32);
        put_u32(&mut out, self.entry);
        put_u32(&mut out, self.max_level as u32);
        for id in 0..slots as u32 {
            let slot = self.store.slot(id);
            out.push(slot as u8);
            out.push(self.levels.get(id as usize).copied().unwrap_or(NO_LEVEL));
            if vectors_inline && slot != Slot::Empty {
                for x in self.store.raw(id) {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        for id in 0..slots as u32 {
            if !self.in_graph(id) {
                continue;
            }
            for layer in 0..=self.levels[id as usize] as usize {
                let l = self.neighbors(id, layer);
                put_u32(&mut out, l.len() as u32);
                for &n in l {
                    put_u32(&mut out, n);
                }
            }
        }
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Restores a graph written by [`Self::to_bytes`]. The bytes hold no working copy:
    /// the graph comes back with [`Quantization::None`](crate::Quantization::None), and
    /// [`Self::set_quantization`] makes the int8 codes again.
    ///
    /// Errors with [`Error::Serialization`] when the bytes are truncated, corrupted (the
    /// checksum differs) or inconsistent (an edge to a missing node, a bad level, …).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes, None)
    }

    /// [`Self::from_bytes`], or with `arena` the graph alone (format 2) over the
    /// vectors of an index file's vector section, one per encoded slot.
    pub(crate) fn decode(bytes: &[u8], arena: Option<VectorArena>) -> Result<Self> {
        let bad = |what: &str| Error::Serialization(format!("HNSW graph: {what}"));
        if bytes.len() < MAGIC.len() + 4 {
            return Err(bad("truncated"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if crc32c::crc32c(body) != stored {
            return Err(bad("checksum mismatch (corrupted bytes)"));
        }
        let mut r = Reader { b: body, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(bad("not an HNSW graph (bad magic)"));
        }
        let version = r.u32()?;
        match (version, &arena) {
            (FORMAT_VERSION, None) | (FORMAT_VERSION_SPLIT, Some(_)) => {}
            (FORMAT_VERSION | FORMAT_VERSION_SPLIT, _) => {
                return Err(bad(&format!(
                    "format version {version} with the vectors {}",
                    if arena.is_some() {
                        "beside it"
                    } else {
                        "missing"
                    }
                )))
            }
            _ => return Err(bad(&format!("unsupported format version {version}"))),
        }
        let dim = r.u32()? as usize;
        let metric = metric_from_code(r.u8()?).ok_or_else(|| bad("unknown metric"))?;
        let params = HnswParams {
            m: r.u32()? as usize,
            m0: r.u32()? as usize,
            ef_construction: r.u32()? as usize,
            ef_search: r.u32()? as usize,
            seed: r.u64()?,
        };
        params
            .validate()
            .map_err(|e| bad(&format!("bad parameters: {e}")))?;
        let rng = r.u64()?;
        let slots = r.u32()? as usize;
        let entry = r.u32()?;
        let max_level = r.u32()? as usize;
        // Each slot takes at least 2 bytes: reject absurd counts before allocating.
        if slots > r.remaining() / 2 {
            return Err(bad("slot count exceeds the data"));
        }
        let read_slot = |r: &mut Reader| -> Result<(Slot, u8)> {
            let slot = match r.u8()? {
                0 => Slot::Empty,
                1 => Slot::Live,
                2 => Slot::Deleted,
                _ => return Err(bad("bad slot state")),
            };
            Ok((slot, r.u8()?))
        };
        let mut slot_levels = Vec::with_capacity(slots);
        let store = match arena {
            Some(arena) => {
                // Format 2: the slot states first, then the store over the arena.
                if arena.dimension() != dim || arena.slots() != slots {
                    return Err(bad("the vector section does not match the graph's slots"));
                }
                for _ in 0..slots {
                    slot_levels.push(read_slot(&mut r)?);
                }
                let states = slot_levels.iter().map(|(s, _)| *s).collect();
                ExactIndex::from_arena(metric, states, arena).map_err(|e| bad(&e.to_string()))?
            }
            None => {
                let mut store = ExactIndex::new(dim, metric).map_err(|e| bad(&e.to_string()))?;
                let mut vec_buf = vec![0f32; dim];
                for id in 0..slots as u32 {
                    let (slot, level) = read_slot(&mut r)?;
                    if slot != Slot::Empty {
                        for x in vec_buf.iter_mut() {
                            *x = f32::from_le_bytes(r.array4()?);
                        }
                    }
                    store
                        .restore_slot(id, slot, &vec_buf)
                        .map_err(|e| bad(&e.to_string()))?;
                    slot_levels.push((slot, level));
                }
                store
            }
        };
        let mut h = Self::with_store(store, params);
        h.rng = rng;
        h.ensure_slots(slots);
        for (id, &(slot, level)) in slot_levels.iter().enumerate() {
            let id = id as u32;
            if level != NO_LEVEL {
                if slot == Slot::Empty || level as usize > max_level || max_level > MAX_LEVEL {
                    return Err(bad("bad node level"));
                }
                h.levels[id as usize] = level;
                h.upper.allocate(id, level as usize, params.m + 1);
                h.nodes += 1;
            }
        }
        for id in 0..slots as u32 {
            if !h.in_graph(id) {
                continue;
            }
            for layer in 0..=h.levels[id as usize] as usize {
                let count = r.u32()? as usize;
                if count > h.max_links(layer) {
                    return Err(bad("neighbor list longer than its bound"));
                }
                let mut list = Vec::with_capacity(count);
                for _ in 0..count {
                    let n = r.u32()?;
                    if !h.in_graph(n) || (h.levels[n as usize] as usize) < layer {
                        return Err(bad("edge to a node missing from its layer"));
                    }
                    list.push(n);
                }
                h.set_neighbors(id, layer, &list);
            }
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        if h.nodes == 0 {
            if entry != NONE {
                return Err(bad("entry point in an empty graph"));
            }
        } else if !h.in_graph(entry) || h.levels[entry as usize] as usize != max_level {
            return Err(bad("bad entry point"));
        }
        h.entry = entry;
        h.max_level = max_level;
        h.rebuild_exact_ids();
        // Live vectors outside the graph were pending when written.
        h.pending = h.store.live_ids().filter(|&id| !h.in_graph(id)).collect();
        // The graph was repaired before it was written: count from here.
        h.repaired_at = h.nodes;
        Ok(h)
    }
}

/// A node's level from the generator state `rng` (advanced): geometric with ratio
/// `1/m`, capped at [`MAX_LEVEL`].
fn level_from(rng: &mut u64, m: usize) -> usize {
    let ml = 1.0 / (m as f64).ln();
    // Uniform in (0, 1]: never ln(0).
    let u = ((splitmix64(rng) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-u.ln() * ml) as usize).min(MAX_LEVEL)
}

/// One chunk's linking, computed by [`HnswIndex::plan_chunk`].
struct LinkPlan {
    chunk: Vec<u32>,
    levels: Vec<usize>,
    chosen: Vec<Vec<Vec<u32>>>,
    merged: Vec<((u32, usize), Vec<u32>)>,
    /// The level generator's state after drawing `levels`.
    rng: u64,
}

/// The linking of the next pending vectors (see [`HnswIndex::plan_pending_chunk`]).
pub(crate) struct PendingPlan {
    /// Entries of the pending list it consumes (dead ones included).
    taken: usize,
    plan: LinkPlan,
}

const MAGIC: &[u8; 8] = b"STRHNSW\x01";
/// The graph with its vectors inline (what [`HnswIndex::to_bytes`] writes).
const FORMAT_VERSION: u32 = 1;
/// The graph alone, its vectors in a section beside it (index files).
const FORMAT_VERSION_SPLIT: u32 = 2;

pub(crate) fn metric_code(m: DistanceMetric) -> u8 {
    match m {
        DistanceMetric::Cosine => 0,
        DistanceMetric::Euclidean => 1,
        DistanceMetric::DotProduct => 2,
    }
}

pub(crate) fn metric_from_code(c: u8) -> Option<DistanceMetric> {
    match c {
        0 => Some(DistanceMetric::Cosine),
        1 => Some(DistanceMetric::Euclidean),
        2 => Some(DistanceMetric::DotProduct),
        _ => None,
    }
}

fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Error::Serialization("HNSW graph: truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn array4(&mut self) -> Result<[u8; 4]> {
        let s = self.take(4)?;
        Ok([s[0], s[1], s[2], s[3]])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array4()?))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Clustered data: `clusters` Gaussian-ish blobs (sum of uniforms) around random
    /// centers, deterministic for a seed.
    pub(crate) fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut uni = move || (splitmix64(&mut s) >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let centers: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| uni() * 4.0).collect())
            .collect();
        (0..n)
            .map(|i| {
                let c = &centers[i % clusters];
                c.iter()
                    .map(|x| x + (uni() + uni() + uni()) * 0.5)
                    .collect()
            })
            .collect()
    }

    fn build(data: &[Vec<f32>], metric: DistanceMetric) -> HnswIndex {
        let mut h = HnswIndex::new(data[0].len(), metric, HnswParams::default()).unwrap();
        for (i, v) in data.iter().enumerate() {
            h.insert(i as u32, v).unwrap();
        }
        h
    }

    fn recall(h: &HnswIndex, queries: &[Vec<f32>], k: usize) -> f64 {
        let mut hit = 0;
        for q in queries {
            let truth: Vec<u32> = h
                .store()
                .search(q, k, None)
                .unwrap()
                .into_iter()
                .map(|p| p.0)
                .collect();
            let got = h.search(q, k, None).unwrap();
            hit += got.iter().filter(|p| truth.contains(&p.0)).count();
        }
        hit as f64 / (queries.len() * k) as f64
    }

    /// Deferred linking (what `Vectors` does for single upserts): a plan leaves the
    /// graph untouched until applied, and planning then applying chunk after chunk
    /// builds a graph as good as linking inside `insert` (chunks are cut at other
    /// points, so the graphs differ in detail).
    #[test]
    fn planned_chunks_link_like_inline_ones() {
        let data = clustered(3_000, 16, 20, 9);
        let inline = build(&data, DistanceMetric::Cosine);
        let mut h = HnswIndex::new(16, DistanceMetric::Cosine, HnswParams::default()).unwrap();
        let mut plans = 0;
        for (i, v) in data.iter().enumerate() {
            h.insert_deferred(i as u32, v).unwrap();
            while h.linking_due() {
                let before = h.to_bytes();
                let plan = h.plan_pending_chunk().unwrap();
                assert_eq!(h.to_bytes(), before, "planning changes nothing");
                h.apply_pending_chunk(plan);
                plans += 1;
            }
        }
        if default_threads() > 1 {
            assert!(plans > 0, "the graph is past the parallel threshold");
        }
        assert!(h.pending_count() < CHUNK_PER_THREAD * default_threads());
        h.flush_pending();
        assert_eq!(h.pending_count(), 0);
        assert_eq!(h.verify_reachability(), 0);
        let (deferred, inline) = (
            recall(&h, &data[..200], 10),
            recall(&inline, &data[..200], 10),
        );
        assert!(
            deferred >= 0.95 && deferred >= inline - 0.02,
            "{deferred} vs {inline}"
        );
        for (i, v) in data.iter().enumerate().step_by(7) {
            assert_eq!(h.search(v, 1, None).unwrap()[0].0, i as u32);
        }
    }

    #[test]
    fn tiny_graphs() {
        let mut h = HnswIndex::new(2, DistanceMetric::Euclidean, HnswParams::default()).unwrap();
        assert!(h.search(&[0.0, 0.0], 3, None).unwrap().is_empty());
        assert!(h.search(&[0.0, 0.0], usize::MAX, None).unwrap().is_empty());
        assert_eq!(h.verify_reachability(), 0);
        h.insert(7, &[1.0, 1.0]).unwrap();
        assert_eq!(
            h.search(&[0.0, 0.0], 3, None).unwrap(),
            vec![(7, 1.0 / (1.0 + 2.0f32.sqrt()))]
        );
        assert!(h.insert(7, &[1.0, 2.0]).is_err());
        assert!(h.search(&[0.0], 3, None).is_err());
        assert!(h.remove(7));
        assert!(h.search(&[0.0, 0.0], 3, None).unwrap().is_empty());
        assert!(
            h.insert(7, &[1.0, 2.0]).is_err(),
            "tombstoned ids are not reused"
        );
        h.insert(8, &[2.0, 2.0]).unwrap();
        assert_eq!(h.search(&[0.0, 0.0], 3, None).unwrap().len(), 1);
        assert_eq!(
            h.search(&[0.0, 0.0], usize::MAX, Some(&|_| true))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            h.store()
                .search(&[0.0, 0.0], usize::MAX, None)
                .unwrap()
                .len(),
            1
        );
        let remap = h.compact();
        assert_eq!(remap[8], 0);
        assert_eq!(h.node_count(), 1);
        assert_eq!(h.search(&[0.0, 0.0], 3, None).unwrap()[0].0, 0);
    }

    #[test]
    fn recall_and_self_search_all_metrics() {
        let mut data = clustered(1550, 16, 20, 1);
        let queries = data.split_off(1500);
        for metric in [
            DistanceMetric::Cosine,
            DistanceMetric::Euclidean,
            DistanceMetric::DotProduct,
        ] {
            let mut h = build(&data, metric);
            // Incremental inserts repair as the graph grows; repair the rest now.
            let orphans = h.verify_reachability();
            assert!(
                orphans < data.len() / 20,
                "{metric:?}: {orphans} unreachable"
            );
            h.repair_reachability();
            assert_eq!(h.verify_reachability(), 0, "{metric:?}");
            let r = recall(&h, &queries, 10);
            assert!(r >= 0.95, "{metric:?} recall {r}");
            if metric != DistanceMetric::DotProduct {
                // (With dot product a vector need not be its own best match.)
                for (i, v) in data.iter().enumerate().step_by(7) {
                    let got = h.search(v, 1, None).unwrap();
                    assert_eq!(got[0].0, i as u32, "{metric:?}");
                }
            }
        }
    }

    #[test]
    fn deletes_filters_compaction_and_bytes() {
        let mut data = clustered(2040, 12, 10, 2);
        let queries = data.split_off(2000);
        let mut h = build(&data, DistanceMetric::Euclidean);
        for id in (0..2000u32).step_by(5) {
            assert!(h.remove(id));
        }
        for q in &queries {
            for (id, _) in h.search(q, 10, None).unwrap() {
                assert!(id % 5 != 0, "deleted id {id} returned");
            }
            let f = |id: u32| id % 50 == 1;
            let got = h.search(q, 10, Some(&f)).unwrap();
            assert_eq!(got.len(), 10);
            let truth = h.store().search(q, 10, Some(&f)).unwrap();
            let hits = got.iter().filter(|p| truth.contains(p)).count();
            assert!(hits >= 9, "filtered hits {hits}");
        }
        assert!(recall(&h, &queries, 10) >= 0.95);
        // Round trip with tombstones.
        let bytes = h.to_bytes();
        let back = HnswIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        for q in &queries {
            assert_eq!(
                back.search(q, 10, None).unwrap(),
                h.search(q, 10, None).unwrap()
            );
        }
        let mut corrupted = bytes.clone();
        corrupted[100] ^= 1;
        assert!(matches!(
            HnswIndex::from_bytes(&corrupted),
            Err(Error::Serialization(_))
        ));
        assert!(HnswIndex::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(HnswIndex::from_bytes(b"").is_err());
        // Compaction keeps recall and reachability.
        let remap = h.compact();
        assert_eq!(h.deleted_count(), 0);
        assert_eq!(h.node_count(), 1600);
        assert_eq!(h.verify_reachability(), 0);
        assert!(recall(&h, &queries, 10) >= 0.95);
        for (old, new) in remap.iter().enumerate() {
            if *new != NONE {
                assert_eq!(h.store().vector(*new).unwrap(), &data[old][..]);
            } else {
                assert_eq!(old % 5, 0);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256, ..proptest::prelude::ProptestConfig::default()
        })]
        /// Corrupted bytes with a recomputed checksum (so the parser's own checks are
        /// reached) are rejected or yield a graph that searches without panicking.
        #[test]
        fn from_bytes_never_panics(
            flips in proptest::collection::vec((0usize..4096, 0u8..=255), 1..4),
            cut in proptest::option::of(0usize..4096),
        ) {
            use std::sync::OnceLock;
            static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
            let good = BYTES.get_or_init(|| {
                let data = clustered(40, 4, 3, 9);
                let mut h = build(&data, DistanceMetric::Cosine);
                h.remove(3);
                h.to_bytes()
            });
            let mut body = good[..good.len() - 4].to_vec();
            for (pos, x) in flips {
                let i = pos % body.len();
                body[i] ^= x;
            }
            if let Some(c) = cut {
                body.truncate(c % (body.len() + 1));
            }
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            if let Ok(h) = HnswIndex::from_bytes(&body) {
                let dim = h.store().dimension();
                let q = vec![0.5f32; dim];
                let _ = h.search(&q, 5, None);
                let _ = h.search(&q, 5, Some(&|id| id % 2 == 0));
                let _ = h.verify_reachability();
                let mut h = h;
                h.repair_reachability();
                let _ = h.insert(h.store().slot_count() as u32, &q);
                h.compact();
            }
        }
    }

    #[test]
    fn repair_reconnects_orphans() {
        let data = clustered(600, 8, 6, 3);
        let mut h = build(&data, DistanceMetric::Euclidean);
        // Orphan a few nodes by erasing every in-link to them on layer 0.
        let victims = [5u32, 77, 300];
        for id in 0..600u32 {
            let l: Vec<u32> = h
                .neighbors(id, 0)
                .iter()
                .copied()
                .filter(|n| !victims.contains(n))
                .collect();
            h.set_neighbors(id, 0, &l);
        }
        let unreachable = h.verify_reachability();
        assert!(unreachable >= victims.len() - usize::from(victims.contains(&h.entry)));
        h.repair_reachability();
        assert_eq!(h.verify_reachability(), 0);
        for v in victims {
            assert_eq!(h.search(&data[v as usize], 1, None).unwrap()[0].0, v);
        }
    }

    #[test]
    fn build_is_deterministic_and_bulk_build_works() {
        let data = clustered(400, 8, 4, 5);
        let a = build(&data, DistanceMetric::Cosine);
        let b = build(&data, DistanceMetric::Cosine);
        assert_eq!(a.to_bytes(), b.to_bytes());
        let mut store = ExactIndex::new(8, DistanceMetric::Cosine).unwrap();
        for (i, v) in data.iter().enumerate() {
            store.insert(i as u32, v).unwrap();
        }
        store.remove(3);
        let c = HnswIndex::build(store, HnswParams::default()).unwrap();
        assert_eq!(c.node_count(), 399);
        assert_eq!(c.verify_reachability(), 0);
        assert_eq!(c.search(&data[10], 1, None).unwrap()[0].0, 10);
    }

    /// Clustered data where about half the vectors are near-duplicates (tiny noise) of an
    /// earlier one: the shape that makes a beam search miss a stored vector.
    pub(crate) fn with_near_duplicates(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let base = crate::synthetic::clustered(n, dim, seed);
        let mut rng = crate::synthetic::Rng(seed ^ 0xD0B1);
        let mut data: Vec<Vec<f32>> = Vec::with_capacity(n);
        for (i, v) in base.into_iter().enumerate() {
            if i > 10 && rng.next_u64().is_multiple_of(2) {
                let j = (rng.next_u64() % i as u64) as usize;
                let d: Vec<f32> = data[j].iter().map(|x| x + rng.normal() * 1e-4).collect();
                data.push(d);
            } else {
                data.push(v);
            }
        }
        data
    }

    /// Searches each (filter-accepted) vector with `k = 1` and counts the searches whose
    /// result scores below the vector itself (a near-duplicate may tie or win by rounding:
    /// that is not a miss).
    fn self_misses(
        h: &HnswIndex,
        data: &[Vec<f32>],
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> usize {
        data.iter()
            .enumerate()
            .map(|(i, v)| (i as u32, v))
            .filter(|(i, _)| filter.is_none_or(|f| f(*i)) && h.store().is_live(*i))
            .filter(|(i, v)| {
                let top = h.search(v, 1, filter).unwrap()[0];
                let own = h.store().search_ids(v, 1, [*i]).unwrap()[0];
                top.0 != *i && top.1 < own.1
            })
            .count()
    }

    /// Regression (issue 11 item 14): a stored vector searched with `k = 1` finds itself,
    /// whatever `ef` — the walk alone misses some (here with `ef_search = 2`; at the
    /// default 64 it takes more data, see `self_retrieval_at_scale`).
    #[test]
    fn stored_vectors_find_themselves_at_any_ef() {
        let data = with_near_duplicates(1500, 12, 11);
        for metric in [DistanceMetric::Cosine, DistanceMetric::Euclidean] {
            let mut h = build(&data, metric);
            h.set_ef_search(2);
            assert_eq!(self_misses(&h, &data, None), 0, "{metric:?}");
            let odd = |id: u32| id % 2 == 1;
            assert_eq!(self_misses(&h, &data, Some(&odd)), 0, "{metric:?} filtered");
            // An exact match that the filter rejects is not returned.
            for (i, v) in data.iter().enumerate().step_by(2).take(50) {
                let got = h.search(v, 1, Some(&odd)).unwrap();
                assert_ne!(got[0].0, i as u32);
            }
            // Deleted vectors are never returned, even for their own vector.
            for i in (0..data.len() as u32).step_by(3) {
                h.remove(i);
            }
            for (i, v) in data.iter().enumerate().step_by(3) {
                assert_ne!(h.search(v, 1, None).unwrap()[0].0, i as u32);
            }
            assert_eq!(self_misses(&h, &data, None), 0, "{metric:?} after deletes");
            // The map survives serialization and compaction (ids renumbered).
            let mut back = HnswIndex::from_bytes(&h.to_bytes()).unwrap();
            back.set_ef_search(2);
            assert_eq!(self_misses(&back, &data, None), 0, "{metric:?} reloaded");
            let remap = h.compact();
            let live: Vec<Vec<f32>> = (0..data.len())
                .filter(|&i| remap[i] != NONE)
                .map(|i| data[i].clone())
                .collect();
            assert_eq!(self_misses(&h, &live, None), 0, "{metric:?} compacted");
        }
    }

    /// The same at the default `ef_search` on data large enough for the walk to miss
    /// (13 of 50,000 before the exact-match check). Slow in debug builds.
    #[test]
    #[ignore = "builds a 50,000-vector graph; run with --release -- --ignored"]
    fn self_retrieval_at_scale() {
        let data = with_near_duplicates(50_000, 32, 3);
        let h = build(&data, DistanceMetric::Cosine);
        assert_eq!(self_misses(&h, &data, None), 0);
    }

    #[test]
    fn batch_insert_keeps_quality_and_validates() {
        let mut data = clustered(3050, 16, 20, 4);
        let queries = data.split_off(3000);
        let mut h = HnswIndex::new(16, DistanceMetric::Cosine, HnswParams::default()).unwrap();
        for (i, v) in data.iter().enumerate().take(1200) {
            h.insert(i as u32, v).unwrap();
        }
        h.flush_pending();
        assert_eq!(h.pending_count(), 0);
        // Bad items: nothing changes.
        let bad_dim = [0.5f32; 15];
        for items in [
            vec![(1200u32, &data[1200][..]), (1201, &bad_dim[..])],
            vec![(1200, &data[1200][..]), (1200, &data[1201][..])],
            vec![(5, &data[1200][..])],
            vec![(NONE, &data[1200][..])],
        ] {
            assert!(h.insert_batch(&items, 2).is_err());
            assert_eq!(h.len(), 1200);
            assert_eq!(h.node_count(), 1200);
        }
        let items: Vec<(u32, &[f32])> = data
            .iter()
            .enumerate()
            .skip(1200)
            .map(|(i, v)| (i as u32, &v[..]))
            .collect();
        h.insert_batch(&items, 2).unwrap();
        assert_eq!(h.node_count(), 3000);
        h.repair_reachability();
        assert_eq!(h.verify_reachability(), 0);
        let r = recall(&h, &queries, 10);
        assert!(r >= 0.95, "recall after a parallel batch {r}");
        assert_eq!(self_misses(&h, &data, None), 0);
        // Same quality as one-by-one inserts.
        let seq = build(&data, DistanceMetric::Cosine);
        assert!(r >= recall(&seq, &queries, 10) - 0.02);
    }

    #[test]
    fn pending_inserts_are_searchable_and_survive_bytes() {
        let data = clustered(1300, 8, 10, 6);
        let mut h = build(&data, DistanceMetric::Euclidean);
        if default_threads() > 1 {
            assert!(
                h.pending_count() > 0,
                "inserts past 1,024 nodes are deferred"
            );
        }
        let pending = h.pending_count();
        for (i, v) in data.iter().enumerate().skip(1100) {
            assert_eq!(h.search(v, 1, None).unwrap()[0].0, i as u32);
            let only_me = |id: u32| id == i as u32;
            assert_eq!(
                h.search(v, 3, Some(&only_me)).unwrap(),
                vec![(i as u32, 1.0)]
            );
        }
        assert!(h.remove(1299));
        assert!(h
            .search(&data[1299], 5, None)
            .unwrap()
            .iter()
            .all(|p| p.0 != 1299));
        let back = HnswIndex::from_bytes(&h.to_bytes()).unwrap();
        assert_eq!(back.pending_count(), pending.saturating_sub(1));
        assert_eq!(back.search(&data[1298], 1, None).unwrap()[0].0, 1298);
        h.flush_pending();
        assert_eq!(h.pending_count(), 0);
        assert_eq!(h.node_count(), 1300 - usize::from(pending > 0));
        assert_eq!(h.search(&data[1298], 1, None).unwrap()[0].0, 1298);
        assert!(
            h.insert(1299, &data[0]).is_err(),
            "a deleted pending id is not reused"
        );
    }

    /// A graph built from an existing arena (a collection crossing the exact
    /// threshold) finds every one of those vectors by an equal query. Failed before:
    /// the build left the exact-match table empty until a compaction or a reload.
    #[test]
    fn a_graph_built_from_an_arena_finds_every_vector_exactly() {
        let mut store = ExactIndex::new(4, DistanceMetric::Euclidean).unwrap();
        for i in 0..50u32 {
            store.insert(i, &[i as f32, 1.0, 2.0, 3.0]).unwrap();
        }
        let h = HnswIndex::build(store, HnswParams::default()).unwrap();
        for i in 0..50u32 {
            assert_eq!(h.exact_match(&[i as f32, 1.0, 2.0, 3.0]), Some(i));
        }
    }

    /// Deleting the newest of two identical vectors leaves the older one found by an
    /// equal query (failed before: the table held one id per vector, the deleted one).
    #[test]
    fn deleting_one_copy_of_a_duplicate_vector_keeps_the_other_found() {
        let mut h = HnswIndex::new(4, DistanceMetric::Euclidean, HnswParams::default()).unwrap();
        let x = [1.0f32, 2.0, 3.0, 4.0];
        h.insert(0, &x).unwrap();
        h.insert(1, &x).unwrap();
        assert!(h.remove(1));
        assert_eq!(h.exact_match(&x), Some(0));
        assert!(h.remove(0));
        assert_eq!(h.exact_match(&x), None);
        assert!(!h.remove(0), "removing twice");
    }
}
