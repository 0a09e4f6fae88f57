//! A forked vector collection: fork of a run holding 100,000 vectors (384-d, clustered),
//! its first search (the fork's index is its parent's, shared), search QPS in a fork
//! that changed 10 % of the vectors next to the unforked collection, and the fork's
//! recall@10 against an exact scan of its own view (printed once).
//!
//! `cargo bench -p stratadb --bench vector_fork`
//! (`VECTOR_FORK_N=20000` for a smaller parent.)
use std::collections::HashMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use stratadb::prelude::*;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Nanoseconds the calling thread has run on a CPU (`/proc/thread-self/schedstat`; 0
/// where unavailable, which makes the CPU-time ratio meaningless but harmless).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("VECTOR_FORK_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dim = 384;
    let vectors = strata_vector::synthetic::clustered(n + 2_000, dim, 7);
    let (base, rest) = vectors.split_at(n);
    let db = Strata::ephemeral().expect("db");
    let run = db.runs.create(None).expect("run");
    db.vectors
        .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
        .expect("collection");
    let load = Instant::now();
    for chunk in base.chunks(5_000).enumerate() {
        let (i, vs) = chunk;
        let items: Vec<(String, &[f32], Option<Value>)> = vs
            .iter()
            .enumerate()
            .map(|(j, v)| (format!("v{:06}", i * 5_000 + j), v.as_slice(), None))
            .collect();
        db.vectors.upsert_batch(&run, "mem", items).expect("load");
    }
    eprintln!(
        "loaded {n} vectors in {:.1} s",
        load.elapsed().as_secs_f64()
    );

    // A fork that changes 10 %: overwrites 5 %, deletes 2.5 %, adds 2.5 %.
    let t = Instant::now();
    let fork = db.runs.fork(&run, None).expect("fork");
    let fork_us = t.elapsed().as_micros();
    let q0 = &rest[0];
    let t = Instant::now();
    db.vectors
        .search(&fork, "mem", q0, 10, None)
        .expect("first search");
    eprintln!(
        "fork of a {n}-vector run: {fork_us} µs; its first search: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut view: HashMap<String, Vec<f32>> = base
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("v{i:06}"), v.clone()))
        .collect();
    let tenth = n / 10;
    let changes = Instant::now();
    let overwrite: Vec<(String, &[f32], Option<Value>)> = (0..tenth / 2)
        .map(|i| {
            (
                format!("v{:06}", i * 2),
                base[(i * 2 + 1) % n].as_slice(),
                None,
            )
        })
        .collect();
    for (k, v, _) in &overwrite {
        view.insert(k.clone(), v.to_vec());
    }
    for chunk in overwrite.chunks(5_000) {
        db.vectors
            .upsert_batch(&fork, "mem", chunk.to_vec())
            .expect("overwrite");
    }
    for i in 0..tenth / 4 {
        let k = format!("v{:06}", n - 1 - i * 3);
        db.vectors.delete(&fork, "mem", &k).expect("delete");
        view.remove(&k);
    }
    let added: Vec<(String, &[f32], Option<Value>)> = (0..tenth / 4)
        .map(|i| {
            (
                format!("new{i:06}"),
                rest[(i % 1_000) + 1_000].as_slice(),
                None,
            )
        })
        .collect();
    for (k, v, _) in &added {
        view.insert(k.clone(), v.to_vec());
    }
    db.vectors.upsert_batch(&fork, "mem", added).expect("add");
    // Includes linking the fork's own vectors into its parent's graph (its bridge).
    eprintln!(
        "the fork's {} changes (batches of 5,000 overwrites, {} single deletes, one batch of {} adds): {:.2} s",
        tenth,
        tenth / 4,
        tenth / 4,
        changes.elapsed().as_secs_f64()
    );

    // Recall@10 of the fork against an exact scan of its view: for queries from the
    // collection's distribution, and for queries about what the fork itself added.
    let queries = &rest[..100];
    let own_queries = &rest[1_000..1_100];
    for (what, qs) in [
        ("random", queries),
        ("about the fork's own vectors", own_queries),
    ] {
        let mut hits = 0;
        for q in qs {
            let mut exact: Vec<(f32, &String)> =
                view.iter().map(|(k, v)| (cosine(q, v), k)).collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let cut = exact[9].0;
            let got = db
                .vectors
                .search(&fork, "mem", q, 10, None)
                .expect("search");
            // A hit counts if it scores at least the 10th best (ties are interchangeable).
            hits += got.iter().filter(|m| m.score >= cut - 1e-6).count();
        }
        eprintln!(
            "fork recall@10 over {} queries {what}: {:.3}",
            qs.len(),
            hits as f64 / (qs.len() * 10) as f64
        );
    }

    // QPS of the fork relative to the unforked collection, interleaved (the median of
    // 15 rounds of 100 queries each way), so that noise from other jobs hits both. On a
    // shared machine the measuring thread's CPU time is the steadier measure (wall time
    // also counts the time other jobs held the core); both are printed.
    let ratio = |when: &str| {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            let (t, c0) = (Instant::now(), thread_cpu_ns());
            for q in queries {
                db.vectors.search(&run, "mem", q, 10, None).expect("search");
            }
            let (unforked, unforked_cpu) = (t.elapsed().as_secs_f64(), thread_cpu_ns() - c0);
            let (t, c0) = (Instant::now(), thread_cpu_ns());
            for q in queries {
                db.vectors
                    .search(&fork, "mem", q, 10, None)
                    .expect("search");
            }
            wall.push(unforked / t.elapsed().as_secs_f64());
            cpu.push(unforked_cpu as f64 / (thread_cpu_ns() - c0).max(1) as f64);
        }
        for (what, ratios) in [("CPU time", &mut cpu), ("wall time", &mut wall)] {
            ratios.sort_by(f64::total_cmp);
            eprintln!(
                "fork QPS / unforked QPS, interleaved, {what}{when}: median {:.2} (range {:.2}–{:.2})",
                ratios[7], ratios[0], ratios[14]
            );
        }
    };
    ratio("");

    // The searches first: the fork bench below makes hundreds of thousands of forks of
    // the parent, which changes the database the searches would run in.
    let mut g = c.benchmark_group("vector_fork");
    g.measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let mut i = 0usize;
    g.bench_function("search_k10_unforked", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            db.vectors
                .search(&run, "mem", &queries[i], 10, None)
                .expect("search")
        })
    });
    g.bench_function("search_k10_fork_10pct_changed", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            db.vectors
                .search(&fork, "mem", &queries[i], 10, None)
                .expect("search")
        })
    });
    g.bench_function("fork_run_with_vectors", |b| {
        b.iter(|| db.runs.fork(&run, None).expect("fork"))
    });
    g.finish();
    let forks = db.runs.list(None, None).map(|l| l.len()).unwrap_or(0);
    ratio(&format!(" after the fork bench ({forks} runs)"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
