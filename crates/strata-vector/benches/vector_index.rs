//! Criterion benchmarks of the vector engine.
//!
//! ```text
//! cargo bench -p strata-vector --bench vector_index
//! ```
//!
//! - `distance/*`: kernels at 384 dimensions over 1,000 stored vectors (1.5 MB, cache
//!   resident), throughput in bytes of stored vectors scanned;
//! - `search_20k_384/*`: one query (k = 10) against 20,000 clustered 384-d vectors
//!   (cosine): exact scan vs HNSW at ef 16/64, and a 1% filter (exact scan of the matches,
//!   the strategy chosen) vs the same filter walked through the graph.
//!
//! The larger recall/QPS study (100,000 × 384) is `examples/recall.rs`.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_core::json;
use strata_vector::distance::{self, DistanceMetric};
use strata_vector::{CollectionConfig, CollectionIndex, SearchFilter, SearchStrategy};

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

/// The same generator as `examples/recall.rs`: 200 clusters, each a random center plus a
/// random 24-dimensional subspace, plus small isotropic noise.
fn dataset(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    const CLUSTERS: usize = 200;
    const INTRINSIC: usize = 24;
    let mut rng = Rng(seed);
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..dim).map(|_| rng.normal()).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..CLUSTERS)
        .map(|_| {
            (0..INTRINSIC)
                .map(|_| (0..dim).map(|_| rng.normal() * 0.15).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = (rng.next() % CLUSTERS as u64) as usize;
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

fn kernels(c: &mut Criterion) {
    const DIM: usize = 384;
    const N: usize = 1000;
    let data = dataset(N + 1, DIM, 1);
    let q = data[N].clone();
    let flat: Vec<f32> = data[..N].concat();
    let mut g = c.benchmark_group("distance");
    g.throughput(Throughput::Bytes((N * DIM * 4) as u64));
    g.bench_function("dot_384", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for v in flat.chunks_exact(DIM) {
                s += distance::dot(black_box(&q), v);
            }
            s
        })
    });
    g.bench_function("dot_384_portable", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for v in flat.chunks_exact(DIM) {
                s += distance::dot_portable(black_box(&q), v);
            }
            s
        })
    });
    g.bench_function("l2_squared_384", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for v in flat.chunks_exact(DIM) {
                s += distance::l2_squared(black_box(&q), v);
            }
            s
        })
    });
    g.finish();
}

fn search(c: &mut Criterion) {
    const DIM: usize = 384;
    const N: usize = 20_000;
    let mut data = dataset(N + 100, DIM, 2);
    let queries = data.split_off(N);
    let mut col =
        CollectionIndex::new(CollectionConfig::new(DIM, DistanceMetric::Cosine)).expect("config");
    for (i, v) in data.iter().enumerate() {
        col.upsert(
            &format!("doc:{i}"),
            v,
            Some(json!({"bucket": (i % 100) as i64})),
        )
        .expect("upsert");
    }
    let one_pct = SearchFilter::eq("bucket", 7);
    let mut g = c.benchmark_group("search_20k_384");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let mut qi = 0usize;
    let mut next = move || {
        qi = (qi + 1) % 100;
        qi
    };
    g.bench_function("exact_scan", |b| {
        b.iter(|| {
            col.search_using(&queries[next()], 10, None, SearchStrategy::Exact)
                .expect("search")
        })
    });
    for ef in [16, 64] {
        col.set_ef_search(ef);
        g.bench_with_input(BenchmarkId::new("hnsw_ef", ef), &ef, |b, _| {
            b.iter(|| {
                col.search_using(&queries[next()], 10, None, SearchStrategy::Hnsw)
                    .expect("search")
            })
        });
    }
    col.set_ef_search(64);
    g.bench_function("filter_1pct_exact_scan_of_matches", |b| {
        b.iter(|| {
            col.search_using(&queries[next()], 10, Some(&one_pct), SearchStrategy::Exact)
                .expect("search")
        })
    });
    g.bench_function("filter_1pct_hnsw_walk", |b| {
        b.iter(|| {
            col.search_using(&queries[next()], 10, Some(&one_pct), SearchStrategy::Hnsw)
                .expect("search")
        })
    });
    g.finish();
}

criterion_group!(benches, kernels, search);
criterion_main!(benches);
