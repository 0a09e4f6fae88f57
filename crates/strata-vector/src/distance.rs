//! Distance metrics, their score formulas and the `f32` kernels behind them.
//!
//! The score of each metric, higher is better, is documented on [`DistanceMetric`].
//!
//! Internally the indexes rank by a cheaper *raw similarity* that orders candidates exactly
//! like the score (see [`DistanceMetric::raw_to_score`]): for Euclidean it is `−‖a − b‖²`,
//! which spares a square root and a division per comparison.
//!
//! The kernels ([`dot`], [`l2_squared`]) keep many independent accumulator lanes over
//! fixed-size chunks (`as_chunks`) so that LLVM emits packed SIMD instead of one serial
//! dependency chain: 16 lanes (four SSE registers) on baseline x86-64 and other targets,
//! and 32 lanes of fused multiply-adds (four AVX registers) on x86-64 CPUs where AVX2 and
//! FMA are detected at run time. The summation order differs from a naive loop, so
//! results can differ from it in the last bits.
use serde::{Deserialize, Serialize};
use strata_core::{Error, Result};

/// How the similarity of two vectors is measured.
///
/// Every metric is reported as a **score where higher is better**, so that a minimum score
/// (`search_with_threshold`) and the order of results mean the same for all metrics:
///
/// | metric | score | range |
/// |---|---|---|
/// | [`DistanceMetric::Cosine`] | `dot(a, b) / (‖a‖·‖b‖)`; `0` when either vector is all zeros | `[-1, 1]` |
/// | [`DistanceMetric::Euclidean`] | `1 / (1 + ‖a − b‖₂)` | `(0, 1]`, `1` for identical vectors |
/// | [`DistanceMetric::DotProduct`] | `dot(a, b)` | unbounded |
///
/// A zero vector has no direction: its cosine score against anything (itself included) is
/// defined as `0`, the score of orthogonal vectors. It is accepted, not rejected.
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

    /// The public score of two vectors (higher is better), as documented on
    /// [`DistanceMetric`]. Both slices must have the same length.
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
            // Rounding can take a cosine a hair past ±1.
            DistanceMetric::Cosine => raw.clamp(-1.0, 1.0),
            DistanceMetric::DotProduct => raw,
            DistanceMetric::Euclidean => euclidean_score((-raw).max(0.0).sqrt()),
        }
    }
}

/// `1 / (1 + d)`: the Euclidean score of a distance `d ≥ 0`.
#[inline]
fn euclidean_score(d: f32) -> f32 {
    1.0 / (1.0 + d)
}

/// Dot product `Σ aᵢ·bᵢ` over the common length of `a` and `b`.
///
/// On x86-64 CPUs with AVX2 and FMA (detected at run time) this runs a 32-lane fused
/// multiply-add kernel; elsewhere a portable 16-lane kernel that LLVM vectorizes for the
/// baseline target (SSE2). Both sum in a fixed order, so results are deterministic on a
/// given machine, but may differ from a naive loop (and between the two kernels) in the
/// last bits.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        return simd::dot_avx2(a, b);
    }
    dot_lanes::<16, false>(a, b)
}

/// Squared Euclidean distance `Σ (aᵢ − bᵢ)²` over the common length of `a` and `b`.
/// Dispatched like [`dot`].
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        return simd::l2_squared_avx2(a, b);
    }
    l2_lanes::<16, false>(a, b)
}

/// Dot product of two int8 code vectors (see [`quantize_i8`]) over their common length,
/// exact in `i32`: each product is at most 127² in magnitude, so no sum of up to
/// [`strata_core::limits::MAX_VECTOR_DIMENSION`] of them overflows.
///
/// On x86-64 CPUs with AVX2 (detected at run time) this takes 32 codes per step, widens
/// them to `i16` and sums pairs of products with `vpmaddwd`; elsewhere a portable
/// 16-lane loop.
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        return simd::dot_i8_avx2(a, b);
    }
    dot_i8_portable(a, b)
}

/// The portable int8 kernel (the reference for the AVX2 one in tests).
#[doc(hidden)]
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    const N: usize = 32;
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<N>();
    let (cb, rb) = b[..n].as_chunks::<N>();
    let mut acc = [0i32; N];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..N {
            // An i8 product fits an i16 (|x·y| ≤ 128²): the multiply LLVM emits is the
            // 16-bit one, widened once per lane.
            acc[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    let tail: i32 = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// Quantizes `v` to int8 codes with one symmetric scale for the whole vector: `codes[i] =
/// round(v[i] / scale)` with `scale = max|v[i]| / 127`, so `v[i] ≈ codes[i] · scale` with
/// an error of at most `scale / 2` per component. Returns the scale (`0` for a zero
/// vector, whose codes are all `0`). `codes` must be as long as `v`.
pub fn quantize_i8(v: &[f32], codes: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (c, x) in codes.iter_mut().zip(v) {
        // In [-127, 127] by construction; the clamp only guards rounding at the ends.
        *c = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

/// `N` independent accumulators over fixed-size chunks: the shape LLVM turns into packed
/// SIMD. With `FMA`, each step is one fused multiply-add (only worth it where the target
/// has FMA instructions; elsewhere `mul_add` is a slow library call).
#[inline(always)]
fn dot_lanes<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<N>();
    let (cb, rb) = b[..n].as_chunks::<N>();
    let mut acc = [0.0f32; N];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..N {
            acc[i] = if FMA {
                x[i].mul_add(y[i], acc[i])
            } else {
                acc[i] + x[i] * y[i]
            };
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(acc) + tail
}

#[inline(always)]
fn l2_lanes<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, ra) = a[..n].as_chunks::<N>();
    let (cb, rb) = b[..n].as_chunks::<N>();
    let mut acc = [0.0f32; N];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..N {
            let d = x[i] - y[i];
            acc[i] = if FMA {
                d.mul_add(d, acc[i])
            } else {
                acc[i] + d * d
            };
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce(acc) + tail
}

/// Sum of the lanes, in a fixed order. (A plain sequential sum: a hand-written tree
/// reduction makes LLVM's SLP vectorizer fall back to two-lane code for the whole loop.)
#[inline(always)]
fn reduce<const N: usize>(acc: [f32; N]) -> f32 {
    acc.iter().sum()
}

/// The AVX2 + FMA kernels and their run-time detection.
#[cfg(target_arch = "x86_64")]
mod simd {
    /// `true` when the CPU has AVX2 and FMA. `is_x86_feature_detected!` caches the CPUID
    /// answer, so this is one relaxed atomic load after the first call.
    #[inline(always)]
    pub(super) fn has_avx2_fma() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        super::dot_lanes::<32, true>(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_squared_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        super::l2_lanes::<32, true>(a, b)
    }

    /// Prefetches the first two 64-byte lines of `v` (a vector, or its int8 codes) into
    /// all cache levels; the hardware prefetcher follows with the rest of the vector.
    /// (Prefetching every line measured no better: the line-fill buffers saturate.)
    #[inline]
    #[expect(unsafe_code, reason = "the prefetch intrinsic; see the SAFETY note")]
    pub(super) fn prefetch<T>(v: &[T]) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(v).min(128);
        let p = v.as_ptr().cast::<i8>();
        let mut off = 0;
        while off < bytes {
            // SAFETY: `_mm_prefetch` requires SSE, part of the x86-64 baseline. A prefetch
            // is a hint that never faults and has no architectural effect; the address
            // `p + off` stays inside the slice `v` (`off < size_of_val(v)`), computed with
            // `wrapping_add` so no pointer arithmetic can be out of bounds either.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }

    /// Int8 dot product: 32 codes per step, widened to `i16` and summed in pairs into
    /// two `i32` accumulators (`vpmaddwd`), then the tail in scalar code.
    #[target_feature(enable = "avx2")]
    #[expect(unsafe_code, reason = "unaligned SIMD loads; see the SAFETY note")]
    fn dot_i8_avx2_impl(a: &[i8], b: &[i8]) -> i32 {
        use std::arch::x86_64::{
            __m128i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16,
            _mm256_extracti128_si256, _mm256_madd_epi16, _mm256_setzero_si256, _mm_add_epi32,
            _mm_cvtsi128_si32, _mm_loadu_si128, _mm_shuffle_epi32,
        };
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: `i + 32 <= n <= len` of both slices, so the four 16-byte loads at
            // `i` and `i + 16` read inside them; `_mm_loadu_si128` has no alignment
            // requirement, and SSE2/AVX2 are guaranteed by the caller's detection.
            let (a0, b0, a1, b1) = unsafe {
                (
                    _mm_loadu_si128(pa.add(i).cast::<__m128i>()),
                    _mm_loadu_si128(pb.add(i).cast::<__m128i>()),
                    _mm_loadu_si128(pa.add(i + 16).cast::<__m128i>()),
                    _mm_loadu_si128(pb.add(i + 16).cast::<__m128i>()),
                )
            };
            acc0 = _mm256_add_epi32(
                acc0,
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(a0), _mm256_cvtepi8_epi16(b0)),
            );
            acc1 = _mm256_add_epi32(
                acc1,
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(a1), _mm256_cvtepi8_epi16(b1)),
            );
            i += 32;
        }
        let acc = _mm256_add_epi32(acc0, acc1);
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        let mut total = _mm_cvtsi128_si32(s);
        for j in i..n {
            total += i32::from(a[j]) * i32::from(b[j]);
        }
        total
    }

    /// Callers must have checked [`has_avx2_fma`].
    #[inline]
    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel after run-time detection"
    )]
    pub(super) fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        debug_assert!(has_avx2_fma());
        // SAFETY: the CPU supports AVX2 (the caller checked `has_avx2_fma()`), the only
        // requirement of the `#[target_feature]` function; its loads are argued there.
        unsafe { dot_i8_avx2_impl(a, b) }
    }

    /// Callers must have checked [`has_avx2_fma`].
    #[inline]
    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel after run-time detection"
    )]
    pub(super) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        debug_assert!(has_avx2_fma());
        // SAFETY: the only requirement of a `#[target_feature]` function is that the CPU
        // supports the features; `dot` calls this only after `has_avx2_fma()` returned
        // true. The body is safe Rust (slices, bounds-checked indexing).
        unsafe { dot_avx2_impl(a, b) }
    }

    /// Callers must have checked [`has_avx2_fma`].
    #[inline]
    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel after run-time detection"
    )]
    pub(super) fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
        debug_assert!(has_avx2_fma());
        // SAFETY: as in `dot_avx2`: called only after `has_avx2_fma()` returned true.
        unsafe { l2_squared_avx2_impl(a, b) }
    }
}

/// Hints the CPU to start loading `v` into cache (a no-op off x86-64). Used by the HNSW
/// walk to fetch a node's unvisited neighbors in parallel before scoring them one by one,
/// which overlaps their memory latencies.
#[inline]
pub fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    simd::prefetch(v);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// [`prefetch`] for an int8 code vector.
#[inline]
pub fn prefetch_codes(v: &[i8]) {
    #[cfg(target_arch = "x86_64")]
    simd::prefetch(v);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// The portable kernels, for comparison in benchmarks and tests.
#[doc(hidden)]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<16, false>(a, b)
}

/// Euclidean norm `‖v‖₂`.
#[inline]
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// `‖v‖₂` computed in `f64`: the `f32` sum of squares overflows for components from
/// about `1e19` and underflows to `0` below about `1e-22`, although such vectors are
/// finite and have a direction.
fn norm_f64(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `1 / ‖v‖₂` (the norm taken in `f64`), or `0` for a zero vector (so that every cosine
/// involving it is `0`) and for a vector so short that its inverse norm is not a finite
/// `f32` (all components below about `1e-38`, where `f32` itself runs out of precision).
#[inline]
pub fn inverse_norm(v: &[f32]) -> f32 {
    let n = norm_f64(v);
    let inv = (1.0 / n) as f32;
    if n > 0.0 && inv.is_finite() {
        inv
    } else {
        0.0
    }
}

/// Scales `v` to unit length in place (in `f64`, so that very large and very small
/// vectors normalize too). Returns `false` (leaving `v` unchanged) for a zero vector,
/// which has no direction.
pub fn normalize(v: &mut [f32]) -> bool {
    let n = norm_f64(v);
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / n) as f32;
    }
    true
}

/// Cosine similarity in `[-1, 1]`; `0` when either vector is all zeros.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (ia, ib) = (inverse_norm(a), inverse_norm(b));
    let s = dot(a, b) * ia * ib;
    // As the indexes do (`ExactIndex::sim`): a vector too short for an `f32` inverse
    // norm is scored in `f64` too, not as a zero vector.
    if s.is_finite() && ia != 0.0 && ib != 0.0 {
        s.clamp(-1.0, 1.0)
    } else {
        cosine_f64(a, b)
    }
}

/// Cosine similarity computed entirely in `f64`, in `[-1, 1]` (`0` for a zero vector):
/// the fallback when the fast `f32` product is not finite, e.g. the dot product of two
/// vectors with components near `1e20` overflows `f32` although their cosine does not.
pub(crate) fn cosine_f64(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (norm_f64(a), norm_f64(b));
    if na == 0.0 || nb == 0.0 || !na.is_finite() || !nb.is_finite() {
        return 0.0;
    }
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) / na) * (f64::from(y) / nb))
        .sum();
    (d as f32).clamp(-1.0, 1.0)
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

    #[test]
    fn cosine_of_subnormal_vectors_matches_the_indexes() {
        let tiny = [1e-40f32, 1e-40];
        assert!((cosine_similarity(&tiny, &[1.0, 1.0]) - 1.0).abs() < 1e-5);
        assert!((cosine_similarity(&tiny, &tiny) - 1.0).abs() < 1e-5);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
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

    #[test]
    fn int8_quantization_round_trips_within_half_a_step() {
        let v: Vec<f32> = (0..385)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut codes = vec![0i8; v.len()];
        let scale = quantize_i8(&v, &mut codes);
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((scale - max / 127.0).abs() < 1e-7);
        for (c, x) in codes.iter().zip(&v) {
            assert!(
                (f32::from(*c) * scale - x).abs() <= scale * 0.5 + 1e-6,
                "{c} {x}"
            );
        }
        assert!(codes.iter().any(|c| c.abs() == 127));
        let mut zero = vec![5i8; 3];
        assert_eq!(quantize_i8(&[0.0; 3], &mut zero), 0.0);
        assert_eq!(zero, vec![0; 3]);
    }

    #[test]
    fn int8_kernel_extremes_do_not_overflow() {
        let n = strata_core::limits::MAX_VECTOR_DIMENSION;
        let a = vec![-127i8; n];
        let b = vec![-127i8; n];
        assert_eq!(dot_i8(&a, &b), 127 * 127 * n as i32);
        assert_eq!(dot_i8_portable(&a, &b), 127 * 127 * n as i32);
        let c = vec![127i8; n];
        assert_eq!(dot_i8(&a, &c), -127 * 127 * n as i32);
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

        #[test]
        fn int8_kernel_matches_naive(
            pairs in proptest::collection::vec((any::<i8>(), any::<i8>()), 0..200)
        ) {
            let a: Vec<i8> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<i8> = pairs.iter().map(|p| p.1).collect();
            let naive: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            prop_assert_eq!(dot_i8(&a, &b), naive);
            prop_assert_eq!(dot_i8_portable(&a, &b), naive);
        }
    }
}
