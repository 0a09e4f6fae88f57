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
//!   the strategy chosen) vs the same filter walked through the graph; and the same
//!   vectors in an int8 collection (`int8_hnsw_ef/*`);
//! - `distance/dot_i8_384*`: the int8 working copy's kernel over the same vectors.
//!
//! The larger recall/QPS study (100,000 × 384) is `examples/recall.rs`.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_core::json;
use strata_vector::distance::{self, DistanceMetric};
use strata_vector::{
    CollectionConfig, CollectionIndex, Quantization, SearchFilter, SearchStrategy, INT8_EF_SEARCH,
};

fn dataset(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    strata_vector::synthetic::clustered(n, dim, seed)
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
    // The int8 working copy's kernel, over the same vectors quantized (a quarter of the
    // bytes; the group's throughput counts the f32 bytes they stand for).
    let codes: Vec<i8> = data[..N]
        .iter()
        .flat_map(|v| {
            let mut c = vec![0i8; DIM];
            distance::quantize_i8(v, &mut c);
            c
        })
        .collect();
    let mut qc = vec![0i8; DIM];
    distance::quantize_i8(&q, &mut qc);
    g.bench_function("dot_i8_384", |b| {
        b.iter(|| {
            let mut s = 0i64;
            for v in codes.chunks_exact(DIM) {
                s += i64::from(distance::dot_i8(black_box(&qc), v));
            }
            s
        })
    });
    g.bench_function("dot_i8_384_portable", |b| {
        b.iter(|| {
            let mut s = 0i64;
            for v in codes.chunks_exact(DIM) {
                s += i64::from(distance::dot_i8_portable(black_box(&qc), v));
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
    // The same vectors in an int8 collection (its own graph defaults).
    let mut int8 = CollectionIndex::new(
        CollectionConfig::new(DIM, DistanceMetric::Cosine).quantized(Quantization::Int8),
    )
    .expect("config");
    for (i, v) in data.iter().enumerate() {
        int8.upsert(&format!("doc:{i}"), v, None).expect("upsert");
    }
    for ef in [64, INT8_EF_SEARCH] {
        int8.set_ef_search(ef);
        g.bench_with_input(BenchmarkId::new("int8_hnsw_ef", ef), &ef, |b, _| {
            b.iter(|| {
                int8.search_using(&queries[next()], 10, None, SearchStrategy::Hnsw)
                    .expect("search")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, search);
criterion_main!(benches);
