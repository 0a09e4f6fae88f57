//! The vector arena and brute-force (exact) top-k search.
//!
//! [`ExactIndex`] stores vectors of one dimension in a single contiguous `Vec<f32>`
//! indexed by dense internal ids (`u32`), with a tombstone per slot. It answers searches by
//! scanning every live vector with a bounded heap, so its results are exact. It is also the
//! vector storage underneath [`crate::hnsw::HnswIndex`].
//!
//! Vectors are kept exactly as inserted. For [`DistanceMetric::Cosine`] the inverse norm of
//! every vector is stored next to it and the query is normalized once, so a cosine costs
//! one dot product and one multiply, as fast as with pre-normalized vectors, while
//! [`ExactIndex::vector`] returns the original components.
//!
//! With [`Quantization::Int8`] the arena also keeps an int8 copy of every vector
//! ([`crate::quantized`]). Exact searches never use it; the HNSW walks do, through the
//! `walk_*` similarities, and re-rank what they find with `ExactIndex::sim`.
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use strata_core::{Error, Result};

use crate::arena::{FloatSection, VectorArena};
use crate::distance::{self, DistanceMetric};
use crate::quantized::{Int8Codes, Quantization, QueryCodes};

/// A candidate: internal id and raw similarity (higher is better, see
/// [`DistanceMetric::raw_to_score`]).
///
/// Ordered by similarity, then by *lower* id (so `a > b` means `a` ranks before `b`); this
/// makes every top-k deterministic even among equal scores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub sim: f32,
    pub id: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim
            .total_cmp(&other.sim)
            .then_with(|| other.id.cmp(&self.id))
    }
}

/// A bounded collector of the `k` best candidates.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Scored>>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// Offers a candidate; keeps it if it ranks among the best `k` so far.
    #[inline]
    pub fn push(&mut self, s: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(s));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if s > worst.0 {
                *worst = Reverse(s);
            }
        }
    }

    /// The worst kept similarity once `k` candidates are kept.
    #[inline]
    pub fn threshold(&self) -> Option<f32> {
        if self.heap.len() == self.k {
            self.heap.peek().map(|w| w.0.sim)
        } else {
            None
        }
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }
}

/// A query prepared for a metric (normalized for cosine).
pub(crate) struct Query {
    pub v: Vec<f32>,
    /// The query's int8 form when the arena has a working copy.
    pub codes: Option<QueryCodes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Slot {
    Empty = 0,
    Live = 1,
    Deleted = 2,
}

/// How many of a walk's candidates, best first by the int8 working copy, are re-scored
/// exactly when `k` results are wanted: `max(4·k, 32)`. The quantization error moves a
/// true neighbour only a few places: on 100,000 real sentence embeddings (all-MiniLM-L6-v2)
/// recall@10 was the same re-scoring 20, 40 or all candidates at every `ef` from 64 to
/// 128, and each exact score costs a full-precision vector read (`docs/vectors.md`).
pub(crate) fn rerank_depth(k: usize) -> usize {
    k.saturating_mul(4).max(32)
}

/// NaN (from overflowing components) ranks last, as in [`ExactIndex::sim`].
#[inline]
fn nan_to_worst(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// Vectors in a contiguous arena, searched by exhaustive scan. See the
/// [module documentation](self).
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dim: usize,
    metric: DistanceMetric,
    data: VectorArena,
    inv_norms: Vec<f32>,
    slots: Vec<Slot>,
    live: usize,
    /// The int8 working copy ([`Quantization::Int8`]), `None` without one.
    int8: Option<Box<Int8Codes>>,
}

impl ExactIndex {
    /// An empty index of vectors with `dimension` components compared with `metric`.
    ///
    /// Errors with [`Error::ConstraintViolation`] when the dimension is 0 or above
    /// [`strata_core::limits::MAX_VECTOR_DIMENSION`].
    pub fn new(dimension: usize, metric: DistanceMetric) -> Result<Self> {
        strata_core::limits::validate_dimension(dimension)?;
        Ok(ExactIndex {
            dim: dimension,
            metric,
            data: VectorArena::new(dimension),
            inv_norms: Vec::new(),
            slots: Vec::new(),
            live: 0,
            int8: None,
        })
    }

    /// An empty one-dimensional index, standing in while the real one is moved out.
    pub(crate) fn placeholder(metric: DistanceMetric) -> Self {
        ExactIndex {
            dim: 1,
            metric,
            data: VectorArena::new(1),
            inv_norms: Vec::new(),
            slots: Vec::new(),
            live: 0,
            int8: None,
        }
    }

    /// The working copy the graph walks compare ([`Quantization`]).
    pub fn quantization(&self) -> Quantization {
        if self.int8.is_some() {
            Quantization::Int8
        } else {
            Quantization::None
        }
    }

    /// Switches the working copy: `Int8` quantizes every slot now (and each vector
    /// inserted later), `None` drops the codes.
    pub fn set_quantization(&mut self, quantization: Quantization) {
        match quantization {
            Quantization::None => self.int8 = None,
            Quantization::Int8 => {
                if self.int8.is_some() {
                    return;
                }
                let mut codes = Int8Codes::new(self.dim, self.metric);
                codes.resize(self.slots.len());
                for idx in 0..self.slots.len() {
                    if self.slots[idx] != Slot::Empty {
                        let inv = self.inv_norm(idx);
                        codes.set(idx, self.raw(idx as u32), inv);
                    }
                }
                self.int8 = Some(Box::new(codes));
            }
        }
    }

    #[inline]
    fn inv_norm(&self, idx: usize) -> f32 {
        if self.metric == DistanceMetric::Cosine {
            self.inv_norms[idx]
        } else {
            1.0
        }
    }

    /// The dimension of every vector.
    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> DistanceMetric {
        self.metric
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `true` when no vector is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of id slots (one past the highest id ever inserted and not compacted away).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Number of deleted vectors still occupying a slot (reclaimed by [`Self::compact`]).
    pub fn deleted_count(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::Deleted).count()
    }

    /// `true` when `id` holds a live vector.
    #[inline]
    pub fn is_live(&self, id: u32) -> bool {
        self.slots.get(id as usize) == Some(&Slot::Live)
    }

    pub(crate) fn slot(&self, id: u32) -> Slot {
        self.slots.get(id as usize).copied().unwrap_or(Slot::Empty)
    }

    /// The live vector with this id, exactly as inserted.
    pub fn vector(&self, id: u32) -> Option<&[f32]> {
        if self.is_live(id) {
            Some(self.raw(id))
        } else {
            None
        }
    }

    /// The ids of live vectors, ascending.
    pub fn live_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Slot::Live)
            .map(|(i, _)| i as u32)
    }

    /// Vector of any non-empty slot (live or deleted).
    #[inline]
    pub(crate) fn raw(&self, id: u32) -> &[f32] {
        self.data.get(id as usize)
    }

    /// Inserts (or replaces) the vector with this id.
    ///
    /// Errors with [`Error::ConstraintViolation`] on a dimension mismatch, a non-finite
    /// component, or an id of `u32::MAX` (reserved).
    pub fn insert(&mut self, id: u32, vector: &[f32]) -> Result<()> {
        distance::validate_vector(vector, self.dim)?;
        if id == u32::MAX {
            return Err(Error::ConstraintViolation(
                "vector id u32::MAX is reserved".into(),
            ));
        }
        let idx = id as usize;
        if idx >= self.slots.len() {
            self.slots.resize(idx + 1, Slot::Empty);
            self.data.grow_to(idx + 1);
            if self.metric == DistanceMetric::Cosine {
                self.inv_norms.resize(idx + 1, 0.0);
            }
            if let Some(codes) = &mut self.int8 {
                codes.resize(idx + 1);
            }
        }
        self.data.set(idx, vector);
        if self.metric == DistanceMetric::Cosine {
            self.inv_norms[idx] = distance::inverse_norm(vector);
        }
        let inv = self.inv_norm(idx);
        if let Some(codes) = &mut self.int8 {
            codes.set(idx, vector, inv);
        }
        if self.slots[idx] != Slot::Live {
            self.live += 1;
        }
        self.slots[idx] = Slot::Live;
        Ok(())
    }

    /// Marks the vector deleted (a tombstone: its slot and data stay until [`Self::compact`]).
    /// Returns `false` when `id` was not live.
    pub fn remove(&mut self, id: u32) -> bool {
        match self.slots.get_mut(id as usize) {
            Some(s) if *s == Slot::Live => {
                *s = Slot::Deleted;
                self.live -= 1;
                true
            }
            _ => false,
        }
    }

    /// Validates and prepares a query: dimension, finiteness, normalization for cosine.
    pub(crate) fn prepare(&self, q: &[f32]) -> Result<Query> {
        distance::validate_vector(q, self.dim)?;
        let mut v = q.to_vec();
        if self.metric == DistanceMetric::Cosine {
            distance::normalize(&mut v);
        }
        Ok(self.query_from(v))
    }

    /// A query from a vector already normalized for the metric.
    pub(crate) fn query_from(&self, v: Vec<f32>) -> Query {
        let codes = self.int8.as_ref().map(|c| c.prepare(&v));
        Query { v, codes }
    }

    /// Raw similarity of a prepared query and the vector in slot `id`.
    #[inline]
    pub(crate) fn sim(&self, q: &Query, id: u32) -> f32 {
        let v = self.raw(id);
        let s = match self.metric {
            DistanceMetric::Cosine => {
                let inv = self.inv_norms[id as usize];
                let s = distance::dot(&q.v, v) * inv;
                // Not finite, or a vector too short for an `f32` inverse norm (or a zero
                // vector, whose cosine the fallback makes 0 too).
                if s.is_finite() && inv != 0.0 {
                    s
                } else {
                    distance::cosine_f64(&q.v, v)
                }
            }
            DistanceMetric::DotProduct => distance::dot(&q.v, v),
            DistanceMetric::Euclidean => -distance::l2_squared(&q.v, v),
        };
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    }

    /// Starts loading the vector of slot `id` into cache.
    #[inline]
    pub(crate) fn prefetch(&self, id: u32) {
        distance::prefetch(self.raw(id));
    }

    /// The similarity a graph walk ranks by: from the int8 working copy when there is
    /// one (an approximation of [`Self::sim`] on the same scale), else exact.
    #[inline]
    pub(crate) fn walk_sim(&self, q: &Query, id: u32) -> f32 {
        match (&self.int8, &q.codes) {
            (Some(codes), Some(qc)) => nan_to_worst(codes.sim(qc, id)),
            _ => self.sim(q, id),
        }
    }

    /// [`Self::sim_between`] for graph walks, like [`Self::walk_sim`].
    #[inline]
    pub(crate) fn walk_sim_between(&self, a: u32, b: u32) -> f32 {
        match &self.int8 {
            Some(codes) => nan_to_worst(codes.sim_between(a, b)),
            None => self.sim_between(a, b),
        }
    }

    /// [`Self::prefetch`] of what [`Self::walk_sim`] reads.
    #[inline]
    pub(crate) fn walk_prefetch(&self, id: u32) {
        match &self.int8 {
            Some(codes) => codes.prefetch(id),
            None => self.prefetch(id),
        }
    }

    /// For a walk whose best `k` are wanted: keeps the first [`rerank_depth`]`(k)` of
    /// `found` (best first by walk similarity), replaces their similarities by exact
    /// ones and sorts them best first. Nothing to do without a working copy: the walk's
    /// similarities are exact already.
    pub(crate) fn rerank(&self, q: &Query, found: &mut Vec<Scored>, k: usize) {
        if self.int8.is_none() {
            return;
        }
        found.truncate(rerank_depth(k));
        for s in found.iter_mut() {
            s.sim = self.sim(q, s.id);
        }
        found.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Raw similarity between two stored vectors.
    #[inline]
    pub(crate) fn sim_between(&self, a: u32, b: u32) -> f32 {
        let (va, vb) = (self.raw(a), self.raw(b));
        let s = match self.metric {
            DistanceMetric::Cosine => {
                let (ia, ib) = (self.inv_norms[a as usize], self.inv_norms[b as usize]);
                let s = distance::dot(va, vb) * ia * ib;
                if s.is_finite() && ia != 0.0 && ib != 0.0 {
                    s
                } else {
                    distance::cosine_f64(va, vb)
                }
            }
            DistanceMetric::DotProduct => distance::dot(va, vb),
            DistanceMetric::Euclidean => -distance::l2_squared(va, vb),
        };
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    }

    /// Converts raw candidates to `(id, score)` pairs.
    pub(crate) fn to_scores(&self, v: Vec<Scored>) -> Vec<(u32, f32)> {
        v.into_iter()
            .map(|s| (s.id, self.metric.raw_to_score(s.sim)))
            .collect()
    }

    /// The `k` live vectors most similar to `query` (accepted by `filter`, when given),
    /// best first, as `(id, score)`. Equal scores rank by ascending id.
    ///
    /// Errors with [`Error::ConstraintViolation`] when the query has the wrong dimension or
    /// a non-finite component.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Result<Vec<(u32, f32)>> {
        let q = self.prepare(query)?;
        Ok(self.to_scores(self.scan(&q, k, filter)))
    }

    /// Exhaustive scan with a bounded heap.
    pub(crate) fn scan(
        &self,
        q: &Query,
        k: usize,
        filter: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Scored> {
        if k == 0 {
            return Vec::new();
        }
        let mut top = TopK::new(k);
        let mut bar = f32::NEG_INFINITY;
        let mut full = false;
        for (i, slot) in self.slots.iter().enumerate() {
            if *slot != Slot::Live {
                continue;
            }
            let id = i as u32;
            if let Some(f) = filter {
                if !f(id) {
                    continue;
                }
            }
            let sim = self.sim(q, id);
            // Ids ascend, so an equal score never displaces a kept one.
            if full && sim <= bar {
                continue;
            }
            top.push(Scored { sim, id });
            if let Some(t) = top.threshold() {
                full = true;
                bar = t;
            }
        }
        top.into_sorted()
    }

    /// Exact top-k over the given candidate ids (skipping ids that are not live).
    pub fn search_ids(
        &self,
        query: &[f32],
        k: usize,
        ids: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, f32)>> {
        let q = self.prepare(query)?;
        let mut top = TopK::new(k);
        if k > 0 {
            for id in ids {
                if self.is_live(id) {
                    top.push(Scored {
                        sim: self.sim(&q, id),
                        id,
                    });
                }
            }
        }
        Ok(self.to_scores(top.into_sorted()))
    }

    /// Drops deleted and empty slots, renumbering live vectors densely in id order.
    ///
    /// Returns the map from old id to new id (`u32::MAX` for dropped slots).
    pub fn compact(&mut self) -> Vec<u32> {
        let mut remap = vec![u32::MAX; self.slots.len()];
        let mut live = Vec::with_capacity(self.live);
        let mut next = 0usize;
        for (old, new) in remap.iter_mut().enumerate() {
            if self.slots[old] != Slot::Live {
                continue;
            }
            live.push(old);
            *new = next as u32;
            if next != old {
                if self.metric == DistanceMetric::Cosine {
                    self.inv_norms[next] = self.inv_norms[old];
                }
                if let Some(codes) = &mut self.int8 {
                    codes.move_slot(old, next);
                }
            }
            next += 1;
        }
        self.data.rebuild(live.into_iter());
        if self.metric == DistanceMetric::Cosine {
            self.inv_norms.truncate(next);
            self.inv_norms.shrink_to_fit();
        }
        if let Some(codes) = &mut self.int8 {
            codes.truncate(next);
        }
        self.slots = vec![Slot::Live; next];
        self.live = next;
        remap
    }

    /// Approximate heap memory used, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.data.owned_bytes()
            + self.inv_norms.capacity() * 4
            + self.slots.capacity()
            + self.int8.as_ref().map_or(0, |c| c.memory_bytes())
    }

    /// Bytes of vectors read in place from a mapped index file rather than held in
    /// memory (see the crate's `arena` module).
    pub fn mapped_bytes(&self) -> usize {
        self.data.mapped_bytes()
    }

    /// The vectors by slot, for writing an index file.
    pub(crate) fn arena(&self) -> &VectorArena {
        &self.data
    }

    /// Reads the slots an index file just written from this index holds from that
    /// file's mapped vector section from now on (see [`VectorArena::adopt`]).
    pub(crate) fn adopt_section(&mut self, section: FloatSection) -> bool {
        self.data.adopt(section)
    }

    /// An index over `arena` (read from an index file) with these slot states, one per
    /// arena slot. Every non-empty slot's vector is checked as [`Self::insert`] checks it
    /// (finite components), and cosine norms are computed, in one pass.
    pub(crate) fn from_arena(
        metric: DistanceMetric,
        states: Vec<Slot>,
        arena: VectorArena,
    ) -> Result<Self> {
        let dim = arena.dimension();
        strata_core::limits::validate_dimension(dim)?;
        if arena.slots() != states.len() {
            return Err(Error::Serialization(format!(
                "vector arena holds {} slots, the index {}",
                arena.slots(),
                states.len()
            )));
        }
        let mut inv_norms = Vec::new();
        if metric == DistanceMetric::Cosine {
            inv_norms.reserve_exact(states.len());
        }
        let mut live = 0;
        for (idx, state) in states.iter().enumerate() {
            let v = arena.get(idx);
            if *state != Slot::Empty {
                distance::validate_vector(v, dim)
                    .map_err(|e| Error::Serialization(format!("vector of slot {idx}: {e}")))?;
            }
            if *state == Slot::Live {
                live += 1;
            }
            if metric == DistanceMetric::Cosine {
                inv_norms.push(if *state == Slot::Empty {
                    0.0
                } else {
                    distance::inverse_norm(v)
                });
            }
        }
        Ok(ExactIndex {
            dim,
            metric,
            data: arena,
            inv_norms,
            slots: states,
            live,
            int8: None,
        })
    }

    /// Restores a slot during deserialization.
    pub(crate) fn restore_slot(&mut self, id: u32, slot: Slot, vector: &[f32]) -> Result<()> {
        match slot {
            Slot::Empty => {
                let idx = id as usize;
                if idx >= self.slots.len() {
                    self.slots.resize(idx + 1, Slot::Empty);
                    self.data.grow_to(idx + 1);
                    if self.metric == DistanceMetric::Cosine {
                        self.inv_norms.resize(idx + 1, 0.0);
                    }
                    if let Some(codes) = &mut self.int8 {
                        codes.resize(idx + 1);
                    }
                }
                Ok(())
            }
            Slot::Live => self.insert(id, vector),
            Slot::Deleted => {
                self.insert(id, vector)?;
                self.remove(id);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_search_remove() {
        let mut ix = ExactIndex::new(2, DistanceMetric::Euclidean).unwrap();
        ix.insert(0, &[0.0, 0.0]).unwrap();
        ix.insert(1, &[1.0, 0.0]).unwrap();
        ix.insert(5, &[3.0, 4.0]).unwrap();
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.slot_count(), 6);
        let r = ix.search(&[0.0, 0.0], 2, None).unwrap();
        assert_eq!(r, vec![(0, 1.0), (1, 0.5)]);
        let r = ix.search(&[0.0, 0.0], 10, Some(&|id| id != 0)).unwrap();
        assert_eq!(r, vec![(1, 0.5), (5, 1.0 / 6.0)]);
        assert!(ix.remove(1));
        assert!(!ix.remove(1));
        assert!(!ix.remove(3));
        assert_eq!(ix.vector(1), None);
        assert_eq!(ix.vector(5), Some(&[3.0, 4.0][..]));
        assert_eq!(ix.search(&[0.0, 0.0], 10, None).unwrap().len(), 2);
        assert_eq!(ix.deleted_count(), 1);
        let remap = ix.compact();
        assert_eq!(remap, vec![0, u32::MAX, u32::MAX, u32::MAX, u32::MAX, 1]);
        assert_eq!(ix.vector(1), Some(&[3.0, 4.0][..]));
        assert_eq!(ix.slot_count(), 2);
        assert!(ix.search(&[0.0], 1, None).is_err());
        assert!(ix.insert(0, &[f32::NAN, 0.0]).is_err());
        assert!(ix.insert(u32::MAX, &[0.0, 0.0]).is_err());
        assert!(ExactIndex::new(0, DistanceMetric::Cosine).is_err());
    }

    #[test]
    fn cosine_keeps_original_vectors() {
        let mut ix = ExactIndex::new(3, DistanceMetric::Cosine).unwrap();
        ix.insert(0, &[3.0, 0.0, 4.0]).unwrap();
        ix.insert(1, &[0.0, 0.0, 0.0]).unwrap();
        ix.insert(2, &[-1.0, 0.0, 0.0]).unwrap();
        assert_eq!(ix.vector(0), Some(&[3.0, 0.0, 4.0][..]));
        let r = ix.search(&[6.0, 0.0, 8.0], 3, None).unwrap();
        assert_eq!(r[0].0, 0);
        assert!((r[0].1 - 1.0).abs() < 1e-6);
        assert_eq!(r[1], (1, 0.0));
        assert!((r[2].1 + 0.6).abs() < 1e-6);
        // A zero query scores 0 against everything.
        let r = ix.search(&[0.0, 0.0, 0.0], 3, None).unwrap();
        assert!(r.iter().all(|(_, s)| *s == 0.0));
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    proptest! {
        #[test]
        fn scan_equals_naive_sort(
            vs in proptest::collection::vec(proptest::collection::vec(-4i8..4, 3), 0..60),
            q in proptest::collection::vec(-4i8..4, 3),
            k in 0usize..20,
            metric in prop_oneof![
                Just(DistanceMetric::Cosine),
                Just(DistanceMetric::Euclidean),
                Just(DistanceMetric::DotProduct)
            ],
            modulus in 1u32..4,
        ) {
            // Small integer components make ties frequent, exercising the tie order.
            let mut ix = ExactIndex::new(3, metric).unwrap();
            let vs: Vec<Vec<f32>> =
                vs.iter().map(|v| v.iter().map(|x| *x as f32).collect()).collect();
            for (i, v) in vs.iter().enumerate() {
                ix.insert(i as u32, v).unwrap();
            }
            let q: Vec<f32> = q.iter().map(|x| *x as f32).collect();
            let keep = |id: u32| id.is_multiple_of(modulus);
            let got = ix.search(&q, k, Some(&keep)).unwrap();
            let mut naive: Vec<(u32, f32)> = vs
                .iter()
                .enumerate()
                .filter(|(i, _)| keep(*i as u32))
                .map(|(i, _)| (i as u32, ix.sim(&ix.prepare(&q).unwrap(), i as u32)))
                .collect();
            naive.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            naive.truncate(k);
            let naive: Vec<(u32, f32)> =
                naive.into_iter().map(|(i, s)| (i, metric.raw_to_score(s))).collect();
            prop_assert_eq!(&got, &naive);
            // And scores agree with the metric's public formula.
            for (id, s) in &got {
                let expect = metric.score(&q, &vs[*id as usize]);
                prop_assert!((s - expect).abs() < 1e-4, "{} vs {}", s, expect);
            }
        }
    }
}
