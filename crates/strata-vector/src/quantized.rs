//! An optional int8 working copy of a collection's vectors, for the graph walks.
//!
//! An HNSW search or insert spends most of its time in distance computations, and at
//! 100,000 × 384 those are bound by memory, not arithmetic: each one pulls a 1,536-byte
//! vector from RAM (about 200 ns measured, see `docs/vectors.md`). With
//! [`Quantization::Int8`] the arena keeps, next to every full-precision vector, a copy
//! of 1 byte per component; the walks compare those (a quarter of the bytes, and a
//! cheaper integer kernel), and the candidates a walk ends with are **re-ranked with the
//! full-precision vectors**, so every returned score is exact and only the choice of
//! candidates sees the quantization error.
//!
//! **The code.** Each vector gets one symmetric scale, `max|vᵢ| / 127`, and its codes
//! `round(vᵢ / scale)` ([`crate::distance::quantize_i8`]); no training data is needed, so
//! vectors can arrive one at a time, and a code never changes once written. A raw
//! similarity is rebuilt from the integer dot product `Σ cᵢ·dᵢ` as:
//!
//! | metric | per vector | raw similarity of query `q` and vector `v` |
//! |---|---|---|
//! | cosine | `f = scale · 1/‖v‖` | `f_q · f_v · Σ cd` (the query is normalized first) |
//! | dot product | `f = scale` | `f_q · f_v · Σ cd` |
//! | Euclidean | `f = scale`, `‖v‖²` (exact) | `−(‖q‖² + ‖v‖² − 2 · f_q · f_v · Σ cd)` |
//!
//! These are the same quantities [`crate::exact::ExactIndex`] ranks by, so quantized and
//! exact similarities can be compared (the HNSW neighbour heuristic compares
//! similarities between stored vectors with similarities to the node being linked; all
//! of them come from the working copy while a graph is built).
//!
//! **Cost.** `dimension + 4` bytes per vector (`+ 12` for Euclidean) beside the
//! full-precision copy, which stays: it serves the re-ranking, exact scans and `get`.
use serde::{Deserialize, Serialize};

use crate::distance::{self, DistanceMetric};

/// How the graph of a collection compares vectors while it searches and links.
///
/// Chosen per collection at creation
/// ([`Vectors::create_collection_with`](crate::Vectors::create_collection_with)) and
/// kept in its definition. Returned scores are always exact: with `Int8` the candidates
/// of a walk are re-ranked with the full-precision vectors. See `docs/vectors.md` for the
/// measured speed and recall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Quantization {
    /// The walks compare full-precision `f32` vectors (the default).
    #[default]
    None,
    /// The walks compare an int8 copy of each vector (one byte per component, one scale
    /// per vector) and re-rank their best candidates with the `f32` vectors. Faster walks
    /// (inserts and searches) for `dimension + 4` more bytes per vector (`+ 12` for
    /// Euclidean). Such a collection's graph defaults to `ef_construction = 150` and
    /// `ef_search = 96`.
    ///
    /// The codes have one scale per vector and no offset: where neighbours differ by
    /// less than the rounding (a large offset shared by all vectors, or tight clusters
    /// at scale), the walks cannot tell them apart and recall drops; `docs/vectors.md`
    /// measures it. Suited to normalized text embeddings; keep `None` otherwise.
    Int8,
}

impl Quantization {
    /// The name used in documentation and logs: `"none"` or `"int8"`.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
        }
    }
}

/// A query's int8 form, made once per search.
#[derive(Debug, Clone)]
pub(crate) struct QueryCodes {
    codes: Vec<i8>,
    factor: f32,
    sq_norm: f64,
}

/// The int8 codes of every slot of an arena, with their factors (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Int8Codes {
    dim: usize,
    metric: DistanceMetric,
    codes: Vec<i8>,
    factors: Vec<f32>,
    /// `‖v‖²` per slot, for Euclidean only (empty otherwise). In `f64`, like the
    /// arithmetic that uses it: a finite vector's squared norm can exceed `f32::MAX`
    /// while its distance to a neighbour does not.
    sq_norms: Vec<f64>,
}

impl Int8Codes {
    pub(crate) fn new(dim: usize, metric: DistanceMetric) -> Self {
        Int8Codes {
            dim,
            metric,
            codes: Vec::new(),
            factors: Vec::new(),
            sq_norms: Vec::new(),
        }
    }

    /// Makes room for `slots` slots (new ones hold zero codes).
    pub(crate) fn resize(&mut self, slots: usize) {
        self.codes.resize(slots * self.dim, 0);
        self.factors.resize(slots, 0.0);
        if self.metric == DistanceMetric::Euclidean {
            self.sq_norms.resize(slots, 0.0);
        }
    }

    /// Writes the codes of slot `idx` (which must exist) for vector `v`; `inv_norm` is
    /// `1/‖v‖` (used for cosine only).
    pub(crate) fn set(&mut self, idx: usize, v: &[f32], inv_norm: f32) {
        let start = idx * self.dim;
        let scale = distance::quantize_i8(v, &mut self.codes[start..start + self.dim]);
        self.factors[idx] = match self.metric {
            DistanceMetric::Cosine => scale * inv_norm,
            DistanceMetric::DotProduct | DistanceMetric::Euclidean => scale,
        };
        if self.metric == DistanceMetric::Euclidean {
            self.sq_norms[idx] = sq_norm(v);
        }
    }

    #[inline]
    fn codes(&self, id: u32) -> &[i8] {
        let start = id as usize * self.dim;
        &self.codes[start..start + self.dim]
    }

    /// The int8 form of a prepared query (already normalized for cosine).
    pub(crate) fn prepare(&self, q: &[f32]) -> QueryCodes {
        let mut codes = vec![0i8; q.len()];
        let factor = distance::quantize_i8(q, &mut codes);
        let sq_norm = if self.metric == DistanceMetric::Euclidean {
            sq_norm(q)
        } else {
            0.0
        };
        QueryCodes {
            codes,
            factor,
            sq_norm,
        }
    }

    /// Approximate raw similarity of a query and slot `id`.
    #[inline]
    pub(crate) fn sim(&self, q: &QueryCodes, id: u32) -> f32 {
        let dot = distance::dot_i8(&q.codes, self.codes(id));
        let sq = || (q.sq_norm, self.sq_norms[id as usize]);
        self.combine(dot, q.factor, self.factors[id as usize], sq)
    }

    /// Approximate raw similarity of two slots.
    #[inline]
    pub(crate) fn sim_between(&self, a: u32, b: u32) -> f32 {
        let dot = distance::dot_i8(self.codes(a), self.codes(b));
        let sq = || (self.sq_norms[a as usize], self.sq_norms[b as usize]);
        self.combine(dot, self.factors[a as usize], self.factors[b as usize], sq)
    }

    /// The raw similarity from a code dot product and the two factors (and, for
    /// Euclidean, the two squared norms, read only then), computed in `f64`: the product
    /// of a large dot and large scales, or the Euclidean `‖a‖² + ‖b‖²`, can overflow
    /// `f32` on finite vectors whose similarity does not.
    #[inline]
    fn combine(&self, dot: i32, fa: f32, fb: f32, sq: impl Fn() -> (f64, f64)) -> f32 {
        let prod = f64::from(dot) * f64::from(fa) * f64::from(fb);
        let raw = match self.metric {
            DistanceMetric::Cosine | DistanceMetric::DotProduct => prod,
            DistanceMetric::Euclidean => {
                let (sa, sb) = sq();
                -(sa + sb - 2.0 * prod)
            }
        };
        raw as f32
    }

    #[inline]
    pub(crate) fn prefetch(&self, id: u32) {
        distance::prefetch_codes(self.codes(id));
    }

    /// Moves slot `old` to slot `new` (`new < old`), for compaction.
    pub(crate) fn move_slot(&mut self, old: usize, new: usize) {
        self.codes
            .copy_within(old * self.dim..(old + 1) * self.dim, new * self.dim);
        self.factors[new] = self.factors[old];
        if self.metric == DistanceMetric::Euclidean {
            self.sq_norms[new] = self.sq_norms[old];
        }
    }

    /// Keeps the first `slots` slots and releases the rest.
    pub(crate) fn truncate(&mut self, slots: usize) {
        self.codes.truncate(slots * self.dim);
        self.codes.shrink_to_fit();
        self.factors.truncate(slots);
        self.factors.shrink_to_fit();
        self.sq_norms.truncate(slots.min(self.sq_norms.len()));
        self.sq_norms.shrink_to_fit();
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.codes.capacity() + self.factors.capacity() * 4 + self.sq_norms.capacity() * 8
    }
}

/// `‖v‖²` in `f64`.
fn sq_norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::ExactIndex;

    /// The working copy's similarities stay within a small error of the exact ones, for
    /// every metric, both against a query and between stored vectors. The error is
    /// measured against `‖a‖·‖b‖`, the scale of the dot product it comes from.
    #[test]
    fn quantized_similarities_track_the_exact_ones() {
        let data = crate::synthetic::clustered(300, 64, 7);
        let norm = |v: &[f32]| crate::distance::norm(v);
        for metric in [
            DistanceMetric::Cosine,
            DistanceMetric::DotProduct,
            DistanceMetric::Euclidean,
        ] {
            let mut ix = ExactIndex::new(64, metric).unwrap();
            ix.set_quantization(Quantization::Int8);
            for (i, v) in data.iter().enumerate() {
                ix.insert(i as u32, v).unwrap();
            }
            let scale = |a: &[f32], b: &[f32]| match metric {
                DistanceMetric::Cosine => 1.0,
                DistanceMetric::DotProduct => norm(a) * norm(b),
                DistanceMetric::Euclidean => 2.0 * norm(a) * norm(b),
            };
            let q = ix.prepare(&data[5]).unwrap();
            let (mut worst_q, mut worst_b) = (0.0f32, 0.0f32);
            for id in 0..data.len() as u32 {
                let v = &data[id as usize];
                let err = (ix.sim(&q, id) - ix.walk_sim(&q, id)).abs();
                worst_q = worst_q.max(err / scale(&data[5], v));
                let err = (ix.sim_between(3, id) - ix.walk_sim_between(3, id)).abs();
                worst_b = worst_b.max(err / scale(&data[3], v));
            }
            assert!(worst_q < 0.01, "{metric:?}: query error {worst_q}");
            assert!(worst_b < 0.01, "{metric:?}: stored pair error {worst_b}");
            assert!(worst_q > 0.0, "{metric:?}: the working copy is not in use");
        }
    }
}
