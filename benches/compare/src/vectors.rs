//! Recall@10 against queries per second of StrataDB's vector index (`CollectionIndex`, the
//! index behind `db.vectors`) at several `ef_search` settings, and of the exact scan.
//!
//! Data: 200 clusters, each a random center plus a random 24-dimensional subspace, so the
//! vectors have a low intrinsic dimension like real embeddings; queries are held-out points
//! of the same distribution; cosine metric; the default index settings (recorded in the
//! report). One thread throughout.
use std::collections::HashSet;
use std::time::Instant;

use strata_vector::{CollectionConfig, CollectionIndex, DistanceMetric, SearchStrategy};

pub const DIM: usize = 384;
pub const K: usize = 10;
pub const EFS: [usize; 5] = [16, 32, 64, 128, 256];

#[derive(Debug, Clone)]
pub struct VecResults {
    pub n: usize,
    pub queries: usize,
    pub insert_per_s: f64,
    pub build_s: f64,
    pub memory_mib: f64,
    pub exact_qps: f64,
    /// The index settings used (the defaults of `CollectionConfig::new`).
    pub params: String,
    /// (ef, recall@10, queries/s)
    pub hnsw: Vec<(usize, f64, f64)>,
}

fn normal(rng: &mut fastrand::Rng) -> f32 {
    let u = (rng.f32() + f32::EPSILON).min(1.0);
    let v = rng.f32();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn dataset(n: usize, seed: u64) -> Vec<Vec<f32>> {
    const CLUSTERS: usize = 200;
    const INTRINSIC: usize = 24;
    let mut rng = fastrand::Rng::with_seed(seed);
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| normal(&mut rng)).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..CLUSTERS)
        .map(|_| {
            (0..INTRINSIC)
                .map(|_| (0..DIM).map(|_| normal(&mut rng) * 0.15).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = rng.usize(0..CLUSTERS);
            let mut v: Vec<f32> = centers[c]
                .iter()
                .map(|x| x + normal(&mut rng) * 0.05)
                .collect();
            for b in &bases[c] {
                let z = normal(&mut rng);
                for (x, y) in v.iter_mut().zip(b) {
                    *x += z * y;
                }
            }
            v
        })
        .collect()
}

pub fn run(scale: f64) -> VecResults {
    let n = ((100_000.0 * scale).round() as usize).max(10_000);
    let queries = if n >= 50_000 { 500 } else { 200 };
    eprintln!("[vectors] {n} x {DIM}, {queries} queries ...");
    let data = dataset(n + queries, 0x5EED);
    let (base, qs) = data.split_at(n);
    let config = CollectionConfig::new(DIM, DistanceMetric::Cosine);
    let params = format!(
        "m {}, m0 {}, ef_construction {}, exact_threshold {}",
        config.hnsw.m, config.hnsw.m0, config.hnsw.ef_construction, config.exact_threshold
    );
    let mut idx = CollectionIndex::new(config).expect("collection");
    let t = Instant::now();
    for (i, v) in base.iter().enumerate() {
        idx.upsert(&format!("v{i}"), v, None).expect("upsert");
    }
    let build_s = t.elapsed().as_secs_f64();
    assert!(idx.hnsw().is_some(), "no graph was built");
    eprintln!("[vectors] built in {build_s:.1} s");

    let t = Instant::now();
    let truth: Vec<HashSet<String>> = qs
        .iter()
        .map(|q| {
            idx.search_using(q, K, None, SearchStrategy::Exact)
                .expect("exact")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        })
        .collect();
    let exact_qps = queries as f64 / t.elapsed().as_secs_f64();

    let mut hnsw = Vec::new();
    for ef in EFS {
        idx.set_ef_search(ef);
        // Warm-up pass, then the timed one.
        for q in qs.iter().take(20) {
            idx.search_using(q, K, None, SearchStrategy::Hnsw)
                .expect("hnsw");
        }
        let t = Instant::now();
        let results: Vec<Vec<(String, f32)>> = qs
            .iter()
            .map(|q| {
                idx.search_using(q, K, None, SearchStrategy::Hnsw)
                    .expect("hnsw")
            })
            .collect();
        let qps = queries as f64 / t.elapsed().as_secs_f64();
        let hits: usize = results
            .iter()
            .zip(&truth)
            .map(|(r, t)| r.iter().filter(|(k, _)| t.contains(k)).count())
            .sum();
        let recall = hits as f64 / (queries * K) as f64;
        eprintln!("[vectors] ef {ef}: recall@10 {recall:.4}, {qps:.0} q/s");
        hnsw.push((ef, recall, qps));
    }
    VecResults {
        n,
        queries,
        insert_per_s: n as f64 / build_s,
        build_s,
        memory_mib: idx.memory_bytes() as f64 / 1048576.0,
        exact_qps,
        params,
        hnsw,
    }
}
