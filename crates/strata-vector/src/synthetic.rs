//! Synthetic clustered vectors for tests, examples and benchmarks.
//!
//! Real embeddings have a low intrinsic dimension, which is what makes graph search work;
//! uniform random vectors do not, and would understate recall. The generator mimics that:
//! 200 clusters, each a random center plus a random 24-dimensional subspace; a point is
//! `center + basis · z + ε` with `z ~ N(0, I₂₄)` and small isotropic noise `ε`.
//! Deterministic for a given seed (SplitMix64 with Box–Muller normals).

/// Number of clusters.
pub const CLUSTERS: usize = 200;
/// Dimension of each cluster's subspace.
pub const INTRINSIC_DIMENSION: usize = 24;

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// `n` clustered vectors of dimension `dim` (see the [module docs](self)).
pub fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..dim).map(|_| rng.normal()).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..CLUSTERS)
        .map(|_| {
            (0..INTRINSIC_DIMENSION)
                .map(|_| (0..dim).map(|_| rng.normal() * 0.15).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = (rng.next_u64() % CLUSTERS as u64) as usize;
            let mut v: Vec<f32> = centers[c].iter().map(|x| x + rng.normal() * 0.05).collect();
            for b in &bases[c] {
                let z = rng.normal();
                for (x, y) in v.iter_mut().zip(b) {
                    *x += z * y;
                }
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let a = clustered(50, 8, 7);
        assert_eq!(a, clustered(50, 8, 7));
        assert_ne!(a, clustered(50, 8, 8));
        assert!(a
            .iter()
            .all(|v| v.len() == 8 && v.iter().all(|x| x.is_finite())));
    }
}
