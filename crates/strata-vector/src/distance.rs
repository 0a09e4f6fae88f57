//! Distance metrics, their score formulas and the `f32` kernels behind them.
//!
//! Every metric is reported as a **score where higher is better**, so that a minimum score
//! (`search_with_threshold`) and the order of results mean the same for all metrics:
//!
//! | metric | score | range |
//! |---|---|---|
//! | [`DistanceMetric::Cosine`] | `dot(a, b) / (‖a‖·‖b‖)`; `0` when either vector is all zeros | `[-1, 1]` |
//! | [`DistanceMetric::Euclidean`] | `1 / (1 + ‖a − b‖₂)` | `(0, 1]`, `1` for identical vectors |
//! | [`DistanceMetric::DotProduct`] | `dot(a, b)` | unbounded |
//!
//! A zero vector has no direction: its cosine score against anything (itself included) is
//! defined as `0`, the score of orthogonal vectors. It is accepted, not rejected.
//!
//! Internally the indexes rank by a cheaper *raw similarity* that orders candidates exactly
//! like the score (see [`DistanceMetric::raw_to_score`]): for Euclidean it is `−‖a − b‖²`,
//! which spares a square root and a division per comparison.
//!
//! The kernels ([`dot`], [`l2_squared`]) keep 16 independent accumulator lanes over
//! `chunks_exact(16)` so that LLVM emits packed SIMD multiplies and adds (four SSE registers
//! on baseline x86-64, two AVX registers when built with `target-cpu` allowing it) instead
//! of one serial dependency chain. The summation order differs from a naive loop, so
//! results can differ from it in the last bits.
use serde::{Deserialize, Serialize};
use strata_core::{Error, Result};

/// How the similarity of two vectors is measured. See the [module documentation](self) for
/// the exact score of each metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DistanceMetric {
    /// Cosine similarity, in `[-1, 1]`: the angle between the vectors, regardless of their
    /// lengths. The usual choice for text embeddings.
    Cosine,
    /// Euclidean (L2) distance `d`, reported as the score `1 / (1 + d)` in `(0, 1]`.
    Euclidean,
    /// Dot product, unbounded. Equals cosine similarity for unit-length vectors.
    DotProduct,
}

impl DistanceMetric {
    /// The metric's name: `"cosine"`, `"euclidean"` or `"dot_product"`.
    pub fn name(self) -> &'static str {
        match self {
            DistanceMetric::Cosine => "cosine",
            DistanceMetric::Euclidean => "euclidean",
            DistanceMetric::DotProduct => "dot_product",
        }
    }

    /// The public score of two vectors (higher is better), as documented in the
    /// [module documentation](self). Both slices must have the same length.
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            DistanceMetric::Cosine => cosine_similarity(a, b),
            DistanceMetric::Euclidean => euclidean_score(l2_squared(a, b).sqrt()),
            DistanceMetric::DotProduct => dot(a, b),
        }
    }

    /// Converts a raw similarity (as computed by the indexes) into the public score.
    ///
    /// Raw similarities are: the cosine itself for `Cosine`, the dot product for
    /// `DotProduct`, and `−‖a − b‖²` for `Euclidean`. The conversion is monotone, so
    /// ranking by raw similarity equals ranking by score.
    pub fn raw_to_score(self, raw: f32) -> f32 {
        match self {
            DistanceMetric::Cosine | DistanceMetric::DotProduct => raw,
            DistanceMetric::Euclidean => euclidean_score((-raw).max(0.0).sqrt()),
        }
    }
}

/// `1 / (1 + d)`: the Euclidean score of a distance `d ≥ 0`.
#[inline]
fn euclidean_score(d: f32) -> f32 {
    1.0 / (1.0 + d)
}

const LANES: usize = 16;

/// Dot product `Σ aᵢ·bᵢ` over the common length of `a` and `b`.
///
/// Vectorizable: 16 independent accumulators, combined pairwise at the end.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(acc) + tail
}

/// Squared Euclidean distance `Σ (aᵢ − bᵢ)²` over the common length of `a` and `b`.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce(acc) + tail
}

#[inline]
fn reduce(acc: [f32; LANES]) -> f32 {
    let mut half = [0.0f32; LANES / 2];
    for i in 0..LANES / 2 {
        half[i] = acc[i] + acc[i + LANES / 2];
    }
    let mut quarter = [0.0f32; LANES / 4];
    for i in 0..LANES / 4 {
        quarter[i] = half[i] + half[i + LANES / 4];
    }
    (quarter[0] + quarter[2]) + (quarter[1] + quarter[3])
}

/// Euclidean norm `‖v‖₂`.
#[inline]
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// `1 / ‖v‖₂`, or `0` for a zero vector (so that every cosine involving it is `0`).
#[inline]
pub fn inverse_norm(v: &[f32]) -> f32 {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        1.0 / n
    } else {
        0.0
    }
}

/// Scales `v` to unit length in place. Returns `false` (leaving `v` unchanged) for a zero
/// vector, which has no direction.
pub fn normalize(v: &mut [f32]) -> bool {
    let inv = inverse_norm(v);
    if inv == 0.0 {
        return false;
    }
    for x in v.iter_mut() {
        *x *= inv;
    }
    true
}

/// Cosine similarity in `[-1, 1]`; `0` when either vector is all zeros.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let s = dot(a, b) * inverse_norm(a) * inverse_norm(b);
    s.clamp(-1.0, 1.0)
}

/// Checks that `v` has `expected` components, all finite.
///
/// Errors with [`Error::ConstraintViolation`] naming the expected and actual dimension, or
/// the index and value of the first NaN or infinite component.
pub fn validate_vector(v: &[f32], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(Error::ConstraintViolation(format!(
            "vector dimension mismatch: expected {expected}, got {}",
            v.len()
        )));
    }
    validate_finite(v)
}

/// Checks that every component of `v` is finite (neither NaN nor ±infinity).
pub fn validate_finite(v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::ConstraintViolation(format!(
            "vector component {i} is {}, only finite values are allowed",
            v[i]
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn small_values() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, -5.0, 6.0];
        assert_eq!(dot(&a, &b), 12.0);
        assert_eq!(l2_squared(&a, &b), 9.0 + 49.0 + 9.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert!((cosine_similarity(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine_similarity(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-7);
        assert!((cosine_similarity(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-7);
    }

    #[test]
    fn scores_are_higher_is_better() {
        let q = [1.0, 0.0];
        let near = [0.9, 0.1];
        let far = [-1.0, 0.5];
        for m in [
            DistanceMetric::Cosine,
            DistanceMetric::Euclidean,
            DistanceMetric::DotProduct,
        ] {
            assert!(m.score(&q, &near) > m.score(&q, &far), "{m:?}");
        }
        assert_eq!(DistanceMetric::Euclidean.score(&q, &q), 1.0);
        assert_eq!(
            DistanceMetric::Euclidean.score(&[0.0, 0.0], &[3.0, 4.0]),
            1.0 / 6.0
        );
        assert_eq!(DistanceMetric::Euclidean.raw_to_score(-25.0), 1.0 / 6.0);
        assert_eq!(DistanceMetric::DotProduct.score(&[2.0], &[-3.0]), -6.0);
    }

    #[test]
    fn zero_vectors() {
        let z = [0.0f32; 5];
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(cosine_similarity(&z, &v), 0.0);
        assert_eq!(cosine_similarity(&z, &z), 0.0);
        let mut zz = z;
        assert!(!normalize(&mut zz));
        assert_eq!(zz, z);
        let mut vv = v;
        assert!(normalize(&mut vv));
        assert!((norm(&vv) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn validation() {
        assert!(validate_vector(&[1.0, 2.0], 2).is_ok());
        let e = validate_vector(&[1.0, 2.0], 3).unwrap_err();
        assert!(matches!(e, Error::ConstraintViolation(ref m) if m.contains("expected 3, got 2")));
        let e = validate_vector(&[1.0, f32::NAN], 2).unwrap_err();
        assert!(matches!(e, Error::ConstraintViolation(ref m) if m.contains("component 1")));
        assert!(validate_vector(&[f32::INFINITY, 0.0], 2).is_err());
        assert!(validate_vector(&[f32::NEG_INFINITY], 1).is_err());
        assert!(validate_vector(&[f32::MAX, f32::MIN], 2).is_ok());
    }

    #[test]
    fn metric_serde() {
        let s = serde_json::to_string(&DistanceMetric::DotProduct).unwrap();
        assert_eq!(s, "\"DotProduct\"");
        let m: DistanceMetric = serde_json::from_str("\"Cosine\"").unwrap();
        assert_eq!(m, DistanceMetric::Cosine);
        assert_eq!(DistanceMetric::Euclidean.name(), "euclidean");
    }

    proptest! {
        #[test]
        fn kernels_match_naive(
            pairs in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..100)
        ) {
            let a: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<f32> = pairs.iter().map(|p| p.1).collect();
            let tol = 1e-3 * (1.0 + a.len() as f64);
            prop_assert!((dot(&a, &b) as f64 - naive_dot(&a, &b)).abs() < tol);
            let l2: f64 = a.iter().zip(&b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum();
            prop_assert!((l2_squared(&a, &b) as f64 - l2).abs() < tol * 10.0);
            let c = cosine_similarity(&a, &b);
            prop_assert!((-1.0..=1.0).contains(&c));
        }
    }
}
