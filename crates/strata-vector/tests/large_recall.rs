//! The large recall run: 100,000 clustered 384-d vectors (ignored by default; CI runs it in
//! release with `--ignored`; about 30 s of one core). `examples/recall.rs` prints the
//! full study with throughput figures.
use std::collections::HashSet;

use strata_core::json;
use strata_vector::{
    CollectionConfig, CollectionIndex, DistanceMetric, SearchFilter, SearchStrategy,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Same generator as the example and the bench: 200 clusters of center + 24-d subspace.
fn dataset(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centers: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..dim).map(|_| rng.normal()).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..200)
        .map(|_| {
            (0..24)
                .map(|_| (0..dim).map(|_| rng.normal() * 0.15).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = (rng.next() % 200) as usize;
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

fn recall(c: &CollectionIndex, queries: &[Vec<f32>], f: Option<&SearchFilter>) -> f64 {
    let mut hit = 0;
    for q in queries {
        let truth: HashSet<String> = c
            .search_using(q, 10, f, SearchStrategy::Exact)
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        let got = c.search(q, 10, f).unwrap();
        assert_eq!(got.len(), 10);
        hit += got.iter().filter(|p| truth.contains(&p.0)).count();
    }
    hit as f64 / (queries.len() * 10) as f64
}

#[test]
#[ignore = "large: 100k x 384 (run in release with --ignored)"]
fn recall_100k_384() {
    let n = 100_000;
    let mut data = dataset(n + 100, 384, 42);
    let queries = data.split_off(n);
    let mut c = CollectionIndex::new(CollectionConfig::new(384, DistanceMetric::Cosine)).unwrap();
    for (i, v) in data.iter().enumerate() {
        c.upsert(
            &format!("doc:{i}"),
            v,
            Some(json!({"bucket": (i % 100) as i64})),
        )
        .unwrap();
    }
    c.repair_reachability();
    assert_eq!(c.verify_reachability(), 0);
    let r = recall(&c, &queries, None);
    assert!(r >= 0.95, "recall@10 {r}");
    for i in (0..n).step_by(997) {
        let got = c.search(&data[i], 1, None).unwrap();
        assert_eq!(got[0].0, format!("doc:{i}"));
    }
    let f = SearchFilter::eq("bucket", 42);
    assert!(recall(&c, &queries, Some(&f)) >= 0.99);
    for i in (0..n).step_by(4) {
        assert!(c.delete(&format!("doc:{i}")));
    }
    assert_eq!(c.verify_reachability(), 0);
    let r = recall(&c, &queries, None);
    assert!(r >= 0.95, "recall@10 after deleting 25% {r}");
}
