//! The index of one vector collection: keys, metadata, vectors and the search strategy.
//!
//! [`CollectionIndex`] maps string keys to dense internal ids (`u32`), keeps each id's
//! metadata, and stores the vectors in an [`ExactIndex`] arena. It starts as a plain
//! arena searched exhaustively; once the collection holds more than
//! [`CollectionConfig::exact_threshold`] live vectors it builds an [`HnswIndex`] over the
//! same arena and keeps it up to date on every upsert.
//!
//! Each search picks a [`SearchStrategy`]:
//!
//! - collections of at most `exact_threshold` vectors are scanned exactly;
//! - unfiltered searches of larger collections use HNSW;
//! - filtered searches estimate the filter's selectivity `s` (from the inverted lists, or
//!   a sample of up to [`SELECTIVITY_SAMPLE`] live vectors), then take the cheapest of
//!   three: an exact scan of the matches (`n` filter evaluations + `s·n` distances); a
//!   filtered HNSW walk, which must expand about `1/s` times more nodes than unfiltered;
//!   and a *post-filtered* walk, which collects the `ef_search·(1 + 1/(2s))` nearest
//!   vectors without the filter ([`post_filter_ef`]) and keeps the matching ones. The
//!   last is the cheap one for loose filters (a few percent and up): it costs an
//!   unfiltered search with a longer candidate list. When the filter is correlated with
//!   where the query lies and fewer than `k` of those candidates match, it falls back to
//!   the cheaper of the other two;
//! - whenever HNSW returns fewer than `k` results (a filter matching few vectors reachable
//!   from the entry point), the search falls back to an exact scan, so **a filtered search
//!   returns `k` results whenever `k` matching vectors exist**.
//!
//! Results are `(key, score)` sorted by score descending, equal scores by key.
//!
//! Updates and deletes leave tombstones in the HNSW graph; once they exceed
//! [`CollectionConfig::compaction_ratio`] of its nodes the collection compacts (removes
//! them, re-links their neighbors, renumbers ids).
use std::collections::HashMap;
use std::sync::Arc;

use strata_core::{limits, Error, Result, Value};

use crate::distance::{self, DistanceMetric};
use crate::exact::ExactIndex;
use crate::filter::{MetadataColumns, MetadataSlot, SearchFilter};
use crate::hnsw::{HnswIndex, HnswParams};
use crate::quantized::Quantization;

/// A swappable vector index over dense `u32` ids.
pub trait VectorIndex: Send + Sync {
    /// Dimension of every vector.
    fn dimension(&self) -> usize;
    /// The metric scores are computed with.
    fn metric(&self) -> DistanceMetric;
    /// Inserts a vector under `id`.
    fn insert(&mut self, id: u32, vector: &[f32]) -> Result<()>;
    /// Deletes `id`; `false` when it was not live.
    fn remove(&mut self, id: u32) -> bool;
    /// The `k` best live ids accepted by `filter`, best first, as `(id, score)`.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>>;
    /// The live vector stored under `id`.
    fn vector(&self, id: u32) -> Option<&[f32]>;
    /// Number of live vectors.
    fn len(&self) -> usize;
    /// `true` when no vector is live.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reclaims deleted ids, renumbering the rest; returns old id → new id (`u32::MAX`
    /// for removed ids).
    fn compact(&mut self) -> Vec<u32>;
}

impl VectorIndex for ExactIndex {
    fn dimension(&self) -> usize {
        ExactIndex::dimension(self)
    }
    fn metric(&self) -> DistanceMetric {
        ExactIndex::metric(self)
    }
    fn insert(&mut self, id: u32, vector: &[f32]) -> Result<()> {
        ExactIndex::insert(self, id, vector)
    }
    fn remove(&mut self, id: u32) -> bool {
        ExactIndex::remove(self, id)
    }
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>> {
        ExactIndex::search(self, query, k, filter)
    }
    fn vector(&self, id: u32) -> Option<&[f32]> {
        ExactIndex::vector(self, id)
    }
    fn len(&self) -> usize {
        ExactIndex::len(self)
    }
    fn compact(&mut self) -> Vec<u32> {
        ExactIndex::compact(self)
    }
}

impl VectorIndex for HnswIndex {
    fn dimension(&self) -> usize {
        self.store().dimension()
    }
    fn metric(&self) -> DistanceMetric {
        self.store().metric()
    }
    fn insert(&mut self, id: u32, vector: &[f32]) -> Result<()> {
        HnswIndex::insert(self, id, vector)
    }
    fn remove(&mut self, id: u32) -> bool {
        HnswIndex::remove(self, id)
    }
    fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>> {
        HnswIndex::search(self, query, k, filter)
    }
    fn vector(&self, id: u32) -> Option<&[f32]> {
        self.store().vector(id)
    }
    fn len(&self) -> usize {
        HnswIndex::len(self)
    }
    fn compact(&mut self) -> Vec<u32> {
        HnswIndex::compact(self)
    }
}

/// Live vectors sampled to estimate a filter's selectivity.
pub const SELECTIVITY_SAMPLE: usize = 1024;

/// Settings of a [`CollectionIndex`].
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionConfig {
    /// Dimension of every vector (1 ..= [`limits::MAX_VECTOR_DIMENSION`]).
    pub dimension: usize,
    /// The metric.
    pub metric: DistanceMetric,
    /// HNSW parameters, used once the collection outgrows `exact_threshold`.
    pub hnsw: HnswParams,
    /// Collections with at most this many live vectors are searched by exact scan and
    /// have no graph. Default 2,000: near the measured crossover (≈1,500 vectors, about
    /// the same at any dimension since both costs scale with it), where an exact scan of
    /// 384-d vectors takes ≈0.1 ms; see `docs/vectors.md`.
    pub exact_threshold: usize,
    /// Compact when tombstones exceed this fraction of the graph's nodes. Default 0.2.
    pub compaction_ratio: f64,
    /// Cost of one filter evaluation relative to one distance computation, used to choose
    /// between an exact scan of the matches and a filtered HNSW walk. Default 0.02
    /// (filters read metadata columns: ≈2 ns against ≈100 ns for a 384-d distance).
    pub filter_cost: f64,
    /// The working copy the graph walks compare; default [`Quantization::None`]. Not
    /// part of the index's byte form: the collection's definition holds it, and an index
    /// read back gets it from there ([`CollectionIndex::set_quantization`]).
    pub quantization: Quantization,
}

impl CollectionConfig {
    /// Defaults for a dimension and metric.
    pub fn new(dimension: usize, metric: DistanceMetric) -> Self {
        CollectionConfig {
            dimension,
            metric,
            hnsw: HnswParams::default(),
            exact_threshold: 2_000,
            compaction_ratio: 0.2,
            filter_cost: 0.02,
            quantization: Quantization::None,
        }
    }

    /// These settings with the working copy `quantization`, and for
    /// [`Quantization::Int8`] its own graph defaults: `ef_construction = 150` and
    /// `ef_search = 96` (see [`INT8_EF_CONSTRUCTION`]), replacing whatever `hnsw` held:
    /// call it before adjusting them. `quantized(Quantization::None)` leaves them as
    /// they are.
    pub fn quantized(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        if quantization == Quantization::Int8 {
            self.hnsw.ef_construction = INT8_EF_CONSTRUCTION;
            self.hnsw.ef_search = INT8_EF_SEARCH;
        }
        self
    }
}

/// `ef_construction` of an int8 collection. The int8 walk is cheaper, so an int8
/// collection spends part of the saving on a better graph: on 100,000 real sentence
/// embeddings, inserts at 150 still ran faster than full-precision ones at the default
/// 100, and the graph reached recall@10 0.990 at `ef_search = 80` and 0.992 at 96,
/// where the full-precision one needs 128 for 0.992 (`docs/vectors.md`, "Int8 working
/// copy").
pub const INT8_EF_CONSTRUCTION: usize = 150;

/// `ef_search` of an int8 collection (see [`INT8_EF_CONSTRUCTION`]): 96 rather than 80
/// for a margin above recall@10 0.99 on such data, at 53–76× the exact scan's speed there.
pub const INT8_EF_SEARCH: usize = 96;

/// The planner's cost estimates for one filtered search, in units of one distance
/// computation (a random access to a vector from memory; an exact scan of scattered
/// matches costs about the same per vector, measured in `docs/vectors.md`).
#[derive(Debug, Clone, Copy)]
struct FilteredCosts {
    exact: f64,
    walk: f64,
    /// `None` when the capped candidate list would hold too few matches on average.
    post_filter: Option<f64>,
}

impl FilteredCosts {
    fn estimate(n: usize, s: f64, k: usize, ef_search: usize, m0: usize, filter_cost: f64) -> Self {
        let n = n as f64;
        let s = s.clamp(1e-9, 1.0);
        // A walk computes about `m0 / 2` distances per node it expands (half the
        // neighbours were seen already), and expands about `ef` nodes.
        let per_node = m0 as f64 * 0.5;
        // The filtered walk doubles `ef` and must reach 1/s times more nodes to hold that
        // many matches; it evaluates the filter on each.
        let walk = (2 * ef_search) as f64 * per_node / s * (1.0 + filter_cost);
        let exact = n * filter_cost + s * n;
        let ef_post = post_filter_ef(ef_search, k, s);
        // Expected matches among the candidates must reach 1.5·k, or too many searches
        // would fall back.
        let post_filter =
            (s * ef_post as f64 >= 1.5 * k as f64).then_some(ef_post as f64 * per_node);
        FilteredCosts {
            exact,
            walk,
            post_filter,
        }
    }

    /// The cheapest strategy (`PostFilter` only if `allow_post_filter`); ties go to the
    /// exact scan, which is exact.
    fn cheapest(&self, allow_post_filter: bool) -> SearchStrategy {
        let mut best = (SearchStrategy::Exact, self.exact);
        if self.walk < best.1 {
            best = (SearchStrategy::Hnsw, self.walk);
        }
        if let (true, Some(p)) = (allow_post_filter, self.post_filter) {
            if p < best.1 {
                best = (SearchStrategy::PostFilter, p);
            }
        }
        best.0
    }
}

/// How a search is carried out. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchStrategy {
    /// Scan every live vector (evaluating the filter, if any, on each).
    Exact,
    /// Walk the HNSW graph (applying the filter, if any, during the traversal).
    Hnsw,
    /// Walk the HNSW graph *without* the filter for a candidate list of
    /// [`post_filter_ef`] nodes (about `1/(2s)` times the unfiltered one) and keep the
    /// matching ones; falls back to the cheaper of the other two when fewer than `k` of
    /// them match. For loose filters (a few percent and up) that are not correlated with
    /// where the query lies. Unfiltered searches treat it as [`SearchStrategy::Hnsw`].
    PostFilter,
}

/// Largest candidate list a post-filtered search collects; below the selectivity where it
/// would need more, the filtered walk or the exact scan of the matches is cheaper anyway.
pub const POST_FILTER_MAX_EF: usize = 2048;

/// The candidate list size of a post-filtered search for `k` results, a filter of
/// selectivity `s` and the collection's (or the query's) `ef_search`:
/// `max(ef_search, k) · (1 + 1/(2s))`, at most [`POST_FILTER_MAX_EF`] (or
/// `max(ef_search, k)`, if larger).
///
/// Why it grows like `1/s`: the `k`-th matching vector lies about `k/s` deep in the
/// unfiltered order, and a beam search is less accurate the deeper a result lies in its
/// list. The factor is fitted on real sentence embeddings (`docs/vectors.md`, 29,000
/// all-MiniLM-L6-v2 vectors, k = 10): the smallest lists that kept recall@10 ≥ 0.99 were
/// about 320 at 10 %, 150–190 at 33 % and 128 at 50 % selectivity with `ef_search = 64`;
/// a list of only `2k/s` lost 1–4 % of recall there (synthetic clusters did not show it).
pub fn post_filter_ef(ef_search: usize, k: usize, s: f64) -> usize {
    let base = ef_search.max(k);
    let want = (base as f64 * (1.0 + 0.5 / s.max(1e-9))).ceil();
    let want = if want.is_finite() && want < POST_FILTER_MAX_EF as f64 {
        want as usize
    } else {
        POST_FILTER_MAX_EF
    };
    want.max(base)
}

enum Engine {
    Exact(ExactIndex),
    Hnsw(Box<HnswIndex>),
}

impl Engine {
    fn store(&self) -> &ExactIndex {
        match self {
            Engine::Exact(e) => e,
            Engine::Hnsw(h) => h.store(),
        }
    }
}

/// The in-memory index of one collection. See the [module documentation](self).
pub struct CollectionIndex {
    config: CollectionConfig,
    engine: Engine,
    keys: HashMap<Arc<str>, u32>,
    id_keys: Vec<Option<Arc<str>>>,
    /// Boxed: most vectors have none, and a `Value` takes 56 bytes (see
    /// [`MetadataSlot`]).
    metadata: Vec<MetadataSlot>,
    /// The metadata again, column-wise, for fast filter evaluation.
    columns: MetadataColumns,
    /// Tombstoned ids not reclaimed yet.
    deleted: usize,
    /// Bumped whenever ids are renumbered or the engine changes (see
    /// [`Self::generation`]).
    generation: u64,
    /// Whether the owner links vectors upserted one by one itself, outside its
    /// exclusive lock ([`Self::set_deferred_linking`]).
    deferred_linking: bool,
}

impl std::fmt::Debug for CollectionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionIndex")
            .field("config", &self.config)
            .field("len", &self.len())
            .field("deleted", &self.deleted)
            .field("hnsw", &matches!(self.engine, Engine::Hnsw(_)))
            .finish()
    }
}

impl CollectionIndex {
    /// An empty collection index.
    ///
    /// Errors with [`Error::ConstraintViolation`] for a dimension outside
    /// `1..=MAX_VECTOR_DIMENSION` or invalid HNSW parameters.
    pub fn new(config: CollectionConfig) -> Result<Self> {
        // Validates the parameters once, so that building the graph later cannot fail.
        HnswIndex::new(config.dimension, config.metric, config.hnsw)?;
        let mut store = ExactIndex::new(config.dimension, config.metric)?;
        store.set_quantization(config.quantization);
        Ok(CollectionIndex {
            engine: Engine::Exact(store),
            config,
            keys: HashMap::new(),
            id_keys: Vec::new(),
            metadata: Vec::new(),
            columns: MetadataColumns::new(),
            deleted: 0,
            generation: 0,
            deferred_linking: false,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Dimension of every vector.
    pub fn dimension(&self) -> usize {
        self.config.dimension
    }

    /// The metric.
    pub fn metric(&self) -> DistanceMetric {
        self.config.metric
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// `true` when the collection holds no vector.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `true` when the collection holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// The internal id of `key`'s live vector.
    pub(crate) fn id_of(&self, key: &str) -> Option<u32> {
        self.keys.get(key).copied()
    }

    /// The key of the live vector with internal id `id`.
    pub(crate) fn key_of(&self, id: u32) -> Option<&str> {
        self.id_keys.get(id as usize).and_then(|k| k.as_deref())
    }

    /// Changes whenever internal ids stop meaning what they meant (compaction renumbers
    /// them, the graph replaces the exact arena): whatever refers to this index by id
    /// (a fork's links into its parent's graph) is valid only for the generation it was
    /// made at.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The HNSW graph, once the collection has outgrown the exact threshold.
    pub fn hnsw(&self) -> Option<&HnswIndex> {
        match &self.engine {
            Engine::Hnsw(h) => Some(h),
            Engine::Exact(_) => None,
        }
    }

    /// Sets the HNSW search candidate list size (`ef_search`).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.config.hnsw.ef_search = ef.max(1);
        if let Engine::Hnsw(h) = &mut self.engine {
            h.set_ef_search(ef);
        }
    }

    /// The index's own copy of `key`, if it holds it: callers that keep keys too share
    /// the allocation.
    pub(crate) fn shared_key(&self, key: &str) -> Option<Arc<str>> {
        self.keys.get_key_value(key).map(|(k, _)| k.clone())
    }

    /// Inserts or replaces the vector and metadata stored under `key`.
    ///
    /// Errors: [`Error::InvalidKey`] for an invalid key (see
    /// [`limits::validate_key`]); [`Error::ConstraintViolation`] for a vector of the wrong
    /// dimension or with a NaN or infinite component; [`Error::WrongType`] for metadata
    /// that is not an `Object`. On error nothing changes.
    pub fn upsert(&mut self, key: &str, vector: &[f32], metadata: Option<Value>) -> Result<()> {
        self.upsert_shared(Arc::from(key), vector, metadata)
    }

    /// [`Self::upsert`] keeping `key`'s allocation (see [`Self::upsert_batch`]).
    pub(crate) fn upsert_shared(
        &mut self,
        key: Arc<str>,
        vector: &[f32],
        metadata: Option<Value>,
    ) -> Result<()> {
        limits::validate_key(&key)?;
        distance::validate_vector(vector, self.config.dimension)?;
        if let Some(m) = &metadata {
            if !m.is_object() {
                return Err(Error::wrong_type("Object", m.type_name()));
            }
        }
        let existing = self.keys.get(&*key).copied();
        if let (Some(id), Engine::Exact(store)) = (existing, &mut self.engine) {
            // No graph: overwrite in place.
            store.insert(id, vector)?;
            self.columns.set(id, metadata.as_ref());
            self.metadata[id as usize] = metadata.map(Box::new);
            return Ok(());
        }
        let id = self.engine.store().slot_count();
        if id >= u32::MAX as usize - 1 {
            return Err(Error::ConstraintViolation(
                "collection has exhausted its 2^32 internal ids".into(),
            ));
        }
        let id = id as u32;
        match &mut self.engine {
            Engine::Exact(e) => e.insert(id, vector)?,
            Engine::Hnsw(h) if self.deferred_linking => h.insert_deferred(id, vector)?,
            Engine::Hnsw(h) => h.insert(id, vector)?,
        }
        if let Some(old) = existing {
            self.tombstone(old);
        }
        self.keys.insert(key.clone(), id);
        let idx = id as usize;
        if self.id_keys.len() <= idx {
            self.id_keys.resize(idx + 1, None);
            self.metadata.resize(idx + 1, None);
        }
        self.id_keys[idx] = Some(key);
        self.columns.set(id, metadata.as_ref());
        self.metadata[idx] = metadata.map(Box::new);
        self.maintain();
        Ok(())
    }

    /// Inserts or replaces many vectors at once: like [`Self::upsert`] for each item in
    /// order (a key given twice keeps its last vector), with the graph insertion spread
    /// over `threads` threads (see [`HnswIndex::insert_batch`]).
    ///
    /// Errors as [`Self::upsert`]; every item is validated first, so on error nothing
    /// changes.
    pub fn upsert_batch(
        &mut self,
        items: Vec<(String, Vec<f32>, Option<Value>)>,
        threads: usize,
    ) -> Result<()> {
        let items = items
            .into_iter()
            .map(|(k, v, m)| (Arc::from(k), v, m))
            .collect();
        self.upsert_batch_shared(items, threads)
    }

    /// [`Self::upsert_batch`] keeping each key's allocation: a caller that keeps the
    /// keys too (the per-key versions of [`crate::Vectors`]) shares them with the index.
    pub(crate) fn upsert_batch_shared(
        &mut self,
        items: Vec<(Arc<str>, Vec<f32>, Option<Value>)>,
        threads: usize,
    ) -> Result<()> {
        for (key, vector, metadata) in &items {
            limits::validate_key(key)?;
            distance::validate_vector(vector, self.config.dimension)?;
            if let Some(m) = metadata {
                if !m.is_object() {
                    return Err(Error::wrong_type("Object", m.type_name()));
                }
            }
        }
        // The last occurrence of each key wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, (key, _, _)) in items.iter().enumerate() {
            last.insert(&**key, i);
        }
        let keep: Vec<bool> = (0..items.len())
            .map(|i| last.get(&*items[i].0) == Some(&i))
            .collect();
        drop(last);
        let mut items: Vec<_> = items
            .into_iter()
            .zip(keep)
            .filter_map(|(item, k)| k.then_some(item))
            .collect();
        // Without a graph (or for a small batch) one at a time: the exact arena is cheap
        // and the graph gets built (in parallel) when the threshold is crossed.
        let first_graph_slot = match &self.engine {
            Engine::Hnsw(h) if items.len() > 1 => h.store().slot_count(),
            _ => {
                let mut rest = items.into_iter();
                while let Some((key, vector, metadata)) = rest.next() {
                    self.upsert_shared(key, &vector, metadata)?;
                    if matches!(self.engine, Engine::Hnsw(_)) {
                        return self.upsert_batch_shared(rest.collect(), threads);
                    }
                }
                return Ok(());
            }
        };
        if first_graph_slot + items.len() >= u32::MAX as usize - 1 {
            return Err(Error::ConstraintViolation(
                "collection has exhausted its 2^32 internal ids".into(),
            ));
        }
        let pairs: Vec<(u32, &[f32])> = items
            .iter()
            .enumerate()
            .map(|(i, (_, v, _))| ((first_graph_slot + i) as u32, &v[..]))
            .collect();
        if let Engine::Hnsw(h) = &mut self.engine {
            h.insert_batch(&pairs, threads)?;
        }
        drop(pairs);
        for (i, (key, _, metadata)) in items.drain(..).enumerate() {
            let id = (first_graph_slot + i) as u32;
            if let Some(old) = self.keys.get(&*key).copied() {
                self.tombstone(old);
            }
            self.keys.insert(key.clone(), id);
            let idx = id as usize;
            if self.id_keys.len() <= idx {
                self.id_keys.resize(idx + 1, None);
                self.metadata.resize(idx + 1, None);
            }
            self.id_keys[idx] = Some(key);
            self.columns.set(id, metadata.as_ref());
            self.metadata[idx] = metadata.map(Box::new);
        }
        self.maintain();
        Ok(())
    }

    fn tombstone(&mut self, id: u32) {
        let removed = match &mut self.engine {
            Engine::Exact(e) => e.remove(id),
            Engine::Hnsw(h) => h.remove(id),
        };
        if removed {
            self.deleted += 1;
        }
        if let Some(k) = self.id_keys.get_mut(id as usize) {
            *k = None;
        }
        if let Some(m) = self.metadata.get_mut(id as usize) {
            *m = None;
        }
        self.columns.clear(id);
    }

    /// Deletes `key`; returns `false` when it was absent.
    pub fn delete(&mut self, key: &str) -> bool {
        match self.keys.remove(key) {
            Some(id) => {
                self.tombstone(id);
                self.maintain();
                true
            }
            None => false,
        }
    }

    /// The vector (exactly as upserted) and metadata stored under `key`.
    pub fn get(&self, key: &str) -> Option<(&[f32], Option<&Value>)> {
        let id = *self.keys.get(key)?;
        let v = self.engine.store().vector(id)?;
        Some((v, self.metadata[id as usize].as_deref()))
    }

    /// Every `(key, vector, metadata)`, in internal id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[f32], Option<&Value>)> + '_ {
        let store = self.engine.store();
        store.live_ids().filter_map(move |id| {
            let key = self.id_keys[id as usize].as_deref()?;
            Some((
                key,
                store.vector(id)?,
                self.metadata[id as usize].as_deref(),
            ))
        })
    }

    /// The working copy the graph walks compare now (what the arena holds).
    pub fn quantization(&self) -> Quantization {
        self.engine.store().quantization()
    }

    /// Switches the working copy the graph walks compare (see [`crate::quantized`]).
    /// The arena quantizes its vectors now, also while the collection is small enough to
    /// be searched exactly, so the graph is built with the same comparisons it will be
    /// searched with.
    pub fn set_quantization(&mut self, quantization: Quantization) {
        self.config.quantization = quantization;
        match &mut self.engine {
            Engine::Exact(e) => e.set_quantization(quantization),
            Engine::Hnsw(h) => h.set_quantization(quantization),
        }
    }

    /// Builds the graph when the collection outgrows the exact threshold, and compacts
    /// when tombstones exceed the compaction ratio.
    fn maintain(&mut self) {
        let live = self.len();
        if matches!(self.engine, Engine::Exact(_)) && live > self.config.exact_threshold {
            let placeholder = Engine::Exact(ExactIndex::placeholder(self.config.metric));
            if let Engine::Exact(mut store) = std::mem::replace(&mut self.engine, placeholder) {
                if self.deleted > 0 {
                    let remap = store.compact();
                    self.apply_remap(&remap);
                }
                self.engine = Engine::Hnsw(Box::new(HnswIndex::build_validated(
                    store,
                    self.config.hnsw,
                )));
                self.generation += 1;
            }
            return;
        }
        let nodes = live + self.deleted;
        if self.deleted >= 64 && self.deleted as f64 > self.config.compaction_ratio * nodes as f64 {
            self.compact();
        }
    }

    /// Reclaims tombstoned ids now (normally automatic, see the
    /// [module documentation](self)).
    pub fn compact(&mut self) {
        let remap = match &mut self.engine {
            Engine::Exact(e) => e.compact(),
            Engine::Hnsw(h) => h.compact(),
        };
        self.apply_remap(&remap);
    }

    fn apply_remap(&mut self, remap: &[u32]) {
        let n = remap.iter().filter(|&&x| x != u32::MAX).count();
        let mut id_keys = vec![None; n];
        let mut metadata = vec![None; n];
        for (old, &new) in remap.iter().enumerate() {
            if new == u32::MAX {
                continue;
            }
            let key = self.id_keys.get_mut(old).and_then(Option::take);
            if let Some(k) = &key {
                self.keys.insert(k.clone(), new);
            }
            id_keys[new as usize] = key;
            metadata[new as usize] = self.metadata.get_mut(old).and_then(Option::take);
        }
        self.id_keys = id_keys;
        self.metadata = metadata;
        self.columns = MetadataColumns::build(&self.metadata);
        self.deleted = 0;
        self.generation += 1;
    }

    /// Live nodes unreachable from the HNSW entry point (`0` without a graph).
    pub fn verify_reachability(&self) -> usize {
        self.hnsw().map_or(0, HnswIndex::verify_reachability)
    }

    /// Reconnects live nodes unreachable from the HNSW entry point; returns how many
    /// were unreachable. (Inserts run this each time the graph grows by an eighth.)
    pub fn repair_reachability(&mut self) -> usize {
        match &mut self.engine {
            Engine::Hnsw(h) => h.repair_reachability(),
            Engine::Exact(_) => 0,
        }
    }

    /// Fraction of live vectors matching `filter`: counted from the inverted lists when
    /// the filter requires an `Eq`/`In` on a field, otherwise estimated on the live ones
    /// among an evenly spaced sample of about [`SELECTIVITY_SAMPLE`] ids.
    pub fn estimate_selectivity(&self, filter: &SearchFilter) -> f64 {
        let store = self.engine.store();
        let live = store.len();
        if live == 0 {
            return 0.0;
        }
        let filter = self.columns.compile(filter, &self.metadata);
        if let Some(ids) = filter.indexed_candidates() {
            // Inverted lists give the count directly (an upper bound: they may hold
            // stale ids, which only makes the exact scan look costlier than it is).
            return (ids.len() as f64 / live as f64).min(1.0);
        }
        let slots = store.slot_count();
        let step = (slots / SELECTIVITY_SAMPLE).max(1);
        let (mut seen, mut hit) = (0usize, 0usize);
        for id in (0..slots as u32).step_by(step) {
            if !store.is_live(id) {
                continue;
            }
            seen += 1;
            if filter.matches(id) {
                hit += 1;
            }
        }
        hit as f64 / seen.max(1) as f64
    }

    /// The strategy [`Self::search`] uses for this filter (see the
    /// [module documentation](self)).
    pub fn plan(&self, k: usize, filter: Option<&SearchFilter>) -> SearchStrategy {
        let n = self.len();
        let h = match &self.engine {
            Engine::Hnsw(h) if n > self.config.exact_threshold => h,
            _ => return SearchStrategy::Exact,
        };
        let Some(filter) = filter else {
            return SearchStrategy::Hnsw;
        };
        let s = self.estimate_selectivity(filter);
        let k = k.min(self.len());
        self.filtered_costs(h, s, k, h.params().ef_search.max(k))
            .cheapest(true)
    }

    /// The cost estimates of a filtered search of selectivity `s` for `k` results.
    fn filtered_costs(&self, h: &HnswIndex, s: f64, k: usize, ef_search: usize) -> FilteredCosts {
        FilteredCosts::estimate(
            self.len(),
            s,
            k,
            ef_search,
            h.params().m0,
            self.config.filter_cost,
        )
    }

    /// The `k` vectors most similar to `query` among those matching `filter`, as
    /// `(key, score)` sorted by score descending (equal scores by key).
    ///
    /// Errors with [`Error::ConstraintViolation`] when the query has the wrong dimension or
    /// a non-finite component.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<(String, f32)>> {
        self.search_using(query, k, filter, self.plan(k, filter))
    }

    /// [`Self::search`] with the HNSW candidate list size `ef` for this query (`None`: the
    /// collection's `ef_search`).
    pub fn search_with_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<(String, f32)>> {
        self.search_inner(query, k, filter, self.plan(k, filter), ef)
    }

    /// [`Self::search`] keeping only results scoring at least `min_score`.
    pub fn search_with_threshold(
        &self,
        query: &[f32],
        k: usize,
        min_score: f32,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<(String, f32)>> {
        let mut r = self.search(query, k, filter)?;
        r.retain(|(_, s)| *s >= min_score);
        Ok(r)
    }

    /// [`Self::search`] with a forced strategy (`Hnsw` falls back to `Exact` without a
    /// graph or when it finds fewer than `k` results).
    pub fn search_using(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
        strategy: SearchStrategy,
    ) -> Result<Vec<(String, f32)>> {
        self.search_inner(query, k, filter, strategy, None)
    }

    fn search_inner(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
        strategy: SearchStrategy,
        ef: Option<usize>,
    ) -> Result<Vec<(String, f32)>> {
        distance::validate_vector(query, self.config.dimension)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let k = k.min(self.len());
        let compiled = filter.map(|f| self.columns.compile(f, &self.metadata));
        let pred = |id: u32| compiled.as_ref().is_none_or(|f| f.matches(id));
        let pred_dyn: &dyn Fn(u32) -> bool = &pred;
        let f = filter.map(|_| pred_dyn);
        let mut hits = match (&self.engine, strategy, filter) {
            (Engine::Hnsw(h), SearchStrategy::PostFilter, Some(filter)) => {
                let ef_search = ef.unwrap_or(h.params().ef_search).max(k);
                let s = self.estimate_selectivity(filter);
                let ef_post = post_filter_ef(ef_search, k, s);
                let found = h.search_post_filtered(query, k, ef_post, &pred)?;
                if found.len() >= k {
                    found
                } else {
                    // Too few matches near the query (a filter correlated with where the
                    // query lies): the cheaper of the two strategies that always answer.
                    let fallback = self.filtered_costs(h, s, k, ef_search).cheapest(false);
                    return self.search_inner(query, k, Some(filter), fallback, ef);
                }
            }
            (Engine::Hnsw(h), SearchStrategy::Hnsw | SearchStrategy::PostFilter, _) => {
                let mut ef = ef.unwrap_or(h.params().ef_search).max(k);
                if filter.is_some() {
                    ef = ef.saturating_mul(2);
                }
                let r = h.search_with_ef(query, k, ef, f)?;
                let expected = if filter.is_none() {
                    k.min(self.len())
                } else {
                    k
                };
                if r.len() < expected {
                    self.engine.store().search(query, k, f)?
                } else {
                    r
                }
            }
            _ => match compiled.as_ref().and_then(|c| c.candidates()) {
                // A column the filter requires narrows the scan to its candidates.
                Some(cands) => self.engine.store().search_ids(
                    query,
                    k,
                    cands.into_iter().filter(|&id| pred(id)),
                )?,
                None => self.engine.store().search(query, k, f)?,
            },
        };
        // Ties may straddle the cut differently by id; order the kept ones by key.
        let mut out: Vec<(String, f32)> = hits
            .drain(..)
            .filter_map(|(id, s)| {
                self.id_keys
                    .get(id as usize)
                    .and_then(|k| k.as_deref())
                    .map(|k| (k.to_string(), s))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Serializes the whole index: settings, the vector arena (with the HNSW graph when
    /// there is one), and per id its key and metadata. The metadata columns and the
    /// key → id map are derived, and rebuilt by [`Self::from_bytes`]. The layout is in
    /// `docs/storage-format.md` ("Vector index files"); the bytes carry no checksum of
    /// their own beyond the embedded graph's (index files add one over everything).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.encode(true)?.0)
    }

    /// [`Self::to_bytes`], or (`vectors_inline` false) with a graph's vectors left out:
    /// returns the bytes and the number of vector slots the caller must write beside
    /// them, in slot order from [`Self::vector_arena`] (0 when the vectors are inline,
    /// as they always are without a graph), for [`Self::decode`] to read back.
    pub(crate) fn encode(&self, vectors_inline: bool) -> Result<(Vec<u8>, usize)> {
        use crate::persist::{put_bytes, put_f64, put_u32, put_u64};
        let mut arena_slots = 0;
        let c = &self.config;
        let mut out = Vec::new();
        put_u32(&mut out, c.dimension as u32);
        out.push(crate::hnsw::metric_code(c.metric));
        put_u32(&mut out, c.hnsw.m as u32);
        put_u32(&mut out, c.hnsw.m0 as u32);
        put_u32(&mut out, c.hnsw.ef_construction as u32);
        put_u32(&mut out, c.hnsw.ef_search as u32);
        put_u64(&mut out, c.hnsw.seed);
        put_u64(&mut out, c.exact_threshold as u64);
        put_f64(&mut out, c.compaction_ratio);
        put_f64(&mut out, c.filter_cost);
        match &self.engine {
            Engine::Exact(e) => {
                out.reserve(e.slot_count() * (1 + 4 * c.dimension) + 16);
                out.push(0);
                put_u32(&mut out, e.slot_count() as u32);
                for id in 0..e.slot_count() as u32 {
                    let slot = e.slot(id);
                    if slot == crate::exact::Slot::Empty {
                        return Err(Error::Internal(format!(
                            "vector collection index: empty slot {id} in a dense arena"
                        )));
                    }
                    out.push(slot as u8);
                    for x in e.raw(id) {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
            Engine::Hnsw(h) => {
                out.push(1);
                let g = h.encode(vectors_inline);
                if !vectors_inline {
                    arena_slots = h.encoded_slots();
                }
                put_u64(&mut out, g.len() as u64);
                out.extend_from_slice(&g);
            }
        }
        put_u32(&mut out, self.id_keys.len() as u32);
        let mut buf = Vec::new();
        for id in 0..self.id_keys.len() {
            match &self.id_keys[id] {
                None => out.push(0),
                Some(k) => {
                    out.push(1);
                    put_bytes(&mut out, k.as_bytes())?;
                }
            }
            match self.metadata.get(id).and_then(|m| m.as_deref()) {
                None => out.push(0),
                Some(m) => {
                    out.push(1);
                    buf.clear();
                    strata_core::codec::encode_into(m, &mut buf)?;
                    put_bytes(&mut out, &buf)?;
                }
            }
        }
        Ok((out, arena_slots))
    }

    /// Lets the owner link the graph's pending vectors itself: upserts then leave the
    /// vectors they add to the graph pending (searched exactly) and the owner, when
    /// [`Self::linking_due`], plans a chunk under a shared lock
    /// ([`Self::plan_link_chunk`]: the walks, while searches go on) and installs it under
    /// an exclusive one ([`Self::apply_link_chunk`]: a few list writes). `Vectors` does
    /// this, so that searches do not wait for the linking of single upserts.
    pub(crate) fn set_deferred_linking(&mut self, on: bool) {
        self.deferred_linking = on;
    }

    /// See [`Self::set_deferred_linking`].
    pub(crate) fn linking_due(&self) -> bool {
        match &self.engine {
            Engine::Hnsw(h) => h.linking_due(),
            Engine::Exact(_) => false,
        }
    }

    /// See [`Self::set_deferred_linking`]; `None` when nothing is pending.
    pub(crate) fn plan_link_chunk(&self) -> Option<crate::hnsw::PendingPlan> {
        match &self.engine {
            Engine::Hnsw(h) => h.plan_pending_chunk(),
            Engine::Exact(_) => None,
        }
    }

    /// Installs a plan of [`Self::plan_link_chunk`]; the index must not have changed
    /// since it was made.
    pub(crate) fn apply_link_chunk(&mut self, plan: crate::hnsw::PendingPlan) {
        if let Engine::Hnsw(h) = &mut self.engine {
            h.apply_pending_chunk(plan);
        }
    }

    /// The vectors by slot, for writing them beside [`Self::encode`]'s bytes.
    pub(crate) fn vector_arena(&self) -> &crate::arena::VectorArena {
        self.engine.store().arena()
    }

    /// Reads the vectors an index file just written from this index holds from that
    /// file's mapped vector section from now on (see [`crate::arena`]); `false` when
    /// the index has no graph or the section does not fit.
    pub(crate) fn adopt_vector_section(&mut self, section: crate::arena::FloatSection) -> bool {
        match &mut self.engine {
            Engine::Hnsw(h) => h.adopt_vector_section(section),
            Engine::Exact(_) => false,
        }
    }

    /// Bytes of vectors read in place from a mapped index file rather than held in
    /// memory (0 for an index never written to or loaded from a file).
    pub fn mapped_bytes(&self) -> usize {
        self.engine.store().mapped_bytes()
    }

    /// Restores an index written by [`Self::to_bytes`]. The bytes do not record the
    /// working copy: the index comes back with [`Quantization::None`], and
    /// [`Self::set_quantization`] restores it (the collection's definition holds it).
    ///
    /// Errors with [`Error::Serialization`] when the bytes are truncated or inconsistent
    /// (a key on a dead slot, a live slot without a key, a duplicate key, bad settings…).
    /// Counts are checked against the bytes left before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes, None)
    }

    /// [`Self::from_bytes`], with the graph's vectors in `arena` when [`Self::encode`]
    /// left them out.
    pub(crate) fn decode(
        bytes: &[u8],
        vectors: Option<crate::arena::FloatSection>,
    ) -> Result<Self> {
        use crate::exact::Slot;
        let bad = |what: &str| Error::Serialization(format!("vector collection index: {what}"));
        let mut r = crate::persist::ByteReader::new(bytes);
        let dimension = r.u32()? as usize;
        let metric = crate::hnsw::metric_from_code(r.u8()?).ok_or_else(|| bad("unknown metric"))?;
        let hnsw = HnswParams {
            m: r.u32()? as usize,
            m0: r.u32()? as usize,
            ef_construction: r.u32()? as usize,
            ef_search: r.u32()? as usize,
            seed: r.u64()?,
        };
        let exact_threshold = usize::try_from(r.u64()?).map_err(|_| bad("bad threshold"))?;
        let compaction_ratio = r.f64()?;
        let filter_cost = r.f64()?;
        if !(compaction_ratio.is_finite() && filter_cost.is_finite()) {
            return Err(bad("non-finite setting"));
        }
        let config = CollectionConfig {
            dimension,
            metric,
            hnsw,
            exact_threshold,
            compaction_ratio,
            filter_cost,
            quantization: Quantization::None,
        };
        let mut ix = CollectionIndex::new(config).map_err(|e| bad(&e.to_string()))?;
        let arena = match vectors {
            None => None,
            Some(section) => Some(
                crate::arena::VectorArena::from_section(dimension, section)
                    .ok_or_else(|| bad("vector section is not whole vectors"))?,
            ),
        };
        let tag = r.u8()?;
        if tag == 0 && arena.is_some() {
            return Err(bad("vectors beside an index without a graph"));
        }
        ix.engine = match tag {
            0 => {
                let slots = r.u32()? as usize;
                // Ids are dense (no empty slot), so each slot takes 1 + 4·dimension bytes:
                // reject absurd counts before allocating.
                if slots > r.remaining() / (1 + 4 * dimension) {
                    return Err(bad("slot count exceeds the data"));
                }
                let mut store = ExactIndex::new(dimension, metric)?;
                let mut v = vec![0f32; dimension];
                for id in 0..slots as u32 {
                    let slot = match r.u8()? {
                        1 => Slot::Live,
                        2 => Slot::Deleted,
                        _ => return Err(bad("bad slot state")),
                    };
                    for x in v.iter_mut() {
                        *x = r.f32()?;
                    }
                    store
                        .restore_slot(id, slot, &v)
                        .map_err(|e| bad(&e.to_string()))?;
                }
                Engine::Exact(store)
            }
            1 => {
                let len = r.u64()?;
                if len > r.remaining() as u64 {
                    return Err(bad("graph length exceeds the data"));
                }
                let h = HnswIndex::decode(r.take(len as usize)?, arena)?;
                if h.store().dimension() != dimension
                    || h.store().metric() != metric
                    || h.params().m != hnsw.m
                    || h.params().m0 != hnsw.m0
                {
                    return Err(bad("graph settings differ from the collection's"));
                }
                Engine::Hnsw(Box::new(h))
            }
            _ => return Err(bad("unknown engine")),
        };
        let store = ix.engine.store();
        let slots = store.slot_count();
        let n = r.u32()? as usize;
        // Each id takes at least two bytes.
        if n > slots || n > r.remaining() / 2 {
            return Err(bad("id count exceeds the slots"));
        }
        let mut id_keys: Vec<Option<Arc<str>>> = vec![None; slots];
        let mut metadata: Vec<MetadataSlot> = vec![None; slots];
        let mut keys = HashMap::with_capacity(store.len());
        for id in 0..n {
            let live = store.is_live(id as u32);
            match r.u8()? {
                0 if !live => {}
                1 if live => {
                    let k = std::str::from_utf8(r.bytes()?).map_err(|_| bad("key is not UTF-8"))?;
                    let k: Arc<str> = Arc::from(k);
                    if keys.insert(k.clone(), id as u32).is_some() {
                        return Err(bad("duplicate key"));
                    }
                    id_keys[id] = Some(k);
                }
                _ => return Err(bad("key presence disagrees with the slot")),
            }
            match r.u8()? {
                0 => {}
                1 if live => {
                    let m = strata_core::codec::decode(r.bytes()?)
                        .map_err(|e| bad(&format!("metadata: {e}")))?;
                    if !m.is_object() {
                        return Err(bad("metadata is not an object"));
                    }
                    metadata[id] = Some(Box::new(m));
                }
                _ => return Err(bad("bad metadata marker")),
            }
        }
        if keys.len() != store.len() {
            return Err(bad("a live slot has no key"));
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        ix.deleted = store.deleted_count();
        ix.columns = MetadataColumns::build(&metadata);
        ix.keys = keys;
        ix.id_keys = id_keys;
        ix.metadata = metadata;
        Ok(ix)
    }

    /// Approximate heap memory of vectors, graph, id maps and metadata columns (the
    /// metadata values themselves excluded), in bytes.
    pub fn memory_bytes(&self) -> usize {
        let engine = match &self.engine {
            Engine::Exact(e) => e.memory_bytes(),
            Engine::Hnsw(h) => h.memory_bytes(),
        };
        let keys: usize = self.keys.keys().map(|k| k.len() + 48).sum();
        engine
            + keys
            + self.id_keys.capacity() * 16
            + self.metadata.capacity() * std::mem::size_of::<MetadataSlot>()
            + self.columns.memory_bytes()
    }
}
