//! Reopen time of a database holding one large vector collection: loading the persisted
//! index file against rebuilding the HNSW graph from the records.
//!
//! ```text
//! cargo run --release -p stratadb --example vector_reopen -- [N] [DIM]   # default 100000 384
//! ```
//!
//! Builds `N` clustered `DIM`-d vectors through the `stratadb` API in a temporary
//! directory, closes (which writes the index file), then times: a reopen that loads the
//! file; a reopen after 1,000 more changes made without a close (load + replay); a reopen
//! with the index files removed (rebuild, the behaviour before index files). Each reopen
//! also checks the search results against those before the close.
use std::time::Instant;

use strata_vector::IndexSource;
use stratadb::prelude::*;

/// Clustered vectors like embeddings (see `strata_vector::synthetic`).
fn data(n: usize, dim: usize) -> Vec<Vec<f32>> {
    strata_vector::synthetic::clustered(n, dim, 42)
}

fn searches(db: &Strata, run: &RunId, queries: &[Vec<f32>]) -> Vec<Vec<String>> {
    queries
        .iter()
        .map(|q| {
            db.vectors
                .search(run, "docs", q, 10, None)
                .unwrap()
                .into_iter()
                .map(|m| m.key)
                .collect()
        })
        .collect()
}

fn overlap(a: &[Vec<String>], b: &[Vec<String>]) -> usize {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.iter().filter(|k| y.contains(k)).count())
        .sum()
}

/// Seconds to open the vector primitive alone (the index part of a reopen) on the
/// closed database in `path`: storage and engine are opened first, untimed.
fn vectors_open(path: &std::path::Path) -> f64 {
    let storage = strata_storage::Storage::open(path, Default::default()).unwrap();
    let engine = strata_primitives::Engine::new(storage).unwrap();
    let t = Instant::now();
    let v = strata_vector::internal::open(engine).unwrap();
    let s = t.elapsed().as_secs_f64();
    drop(v);
    s
}

fn timed_open(path: &std::path::Path) -> (Strata, f64) {
    let t = Instant::now();
    let db = Strata::open(path).unwrap();
    (db, t.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N and DIM are numbers"))
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let dim = args.get(1).copied().unwrap_or(384);
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let vectors = data(n + 1_000, dim);
    let queries: Vec<Vec<f32>> = data(20, dim)
        .into_iter()
        .map(|q| q.iter().map(|x| x * 0.9).collect())
        .collect();

    let t = Instant::now();
    let db = Strata::open(dir.path()).unwrap();
    db.vectors
        .create_collection(&run, "docs", dim, DistanceMetric::Cosine)
        .unwrap();
    for (c, chunk) in vectors[..n].chunks(1_000).enumerate() {
        db.transaction(|txn| {
            for (i, v) in chunk.iter().enumerate() {
                txn.vector_upsert(&run, "docs", &format!("doc{}", c * 1_000 + i), v, None)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let built = t.elapsed().as_secs_f64();
    println!(
        "built {n} x {dim}-d in {built:.1} s = {:.0} upserts/s through the public API (db.transaction + vector_upsert, 1,000 per transaction)",
        n as f64 / built
    );
    let before = searches(&db, &run, &queries);
    let t = Instant::now();
    db.close().unwrap();
    let file = strata_vector::persist::file_path(dir.path(), &run, "docs");
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "close (flush + index file {:.1} MB + snapshot): {:.2} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // 1. Load.
    let (db, load) = timed_open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "docs"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(searches(&db, &run, &queries), before);
    println!("reopen, index file loaded: {load:.2} s");
    db.close().unwrap();
    println!(
        "  of which the vector index (the vector primitive opened alone): {:.2} s",
        vectors_open(dir.path())
    );
    let db = Strata::open(dir.path()).unwrap();

    // 2. Load + replay 1,000 changes made after the file was written.
    let changes = Instant::now();
    for (i, v) in vectors[n..].iter().enumerate() {
        if i % 2 == 0 {
            db.vectors
                .upsert(&run, "docs", &format!("doc{}", n + i), v, None)
                .unwrap();
        } else {
            db.vectors.delete(&run, "docs", &format!("doc{i}")).unwrap();
        }
    }
    println!(
        "1,000 single-call changes (500 db.vectors.upsert + 500 db.vectors.delete, one transaction each) on {n} vectors: {:.0} per second",
        1_000.0 / changes.elapsed().as_secs_f64()
    );
    let after = searches(&db, &run, &queries);
    drop(db);
    let (db, replay) = timed_open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "docs"),
        Some(IndexSource::Loaded { replayed: 1_000 })
    );
    println!("reopen, index file loaded + 1,000 changes replayed: {replay:.2} s");
    let replayed = searches(&db, &run, &queries);
    println!(
        "replayed graph agrees with the one before the drop on {}/{} top-10 keys",
        overlap(&replayed, &after),
        10 * queries.len()
    );
    db.close().unwrap();

    // 3. Rebuild (no index file).
    std::fs::remove_dir_all(strata_vector::persist::root(dir.path())).unwrap();
    let (db, rebuild) = timed_open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "docs"),
        Some(IndexSource::Rebuilt)
    );
    println!("reopen, index rebuilt from the records: {rebuild:.2} s");
    let rebuilt = searches(&db, &run, &queries);
    db.close().unwrap();
    std::fs::remove_dir_all(strata_vector::persist::root(dir.path())).ok();
    println!(
        "  of which the vector index (the vector primitive opened alone): {:.2} s",
        vectors_open(dir.path())
    );
    println!(
        "rebuilt graph agrees with the one before the drop on {}/{} top-10 keys",
        overlap(&rebuilt, &after),
        10 * queries.len()
    );
    println!("speedup: {:.0}x", rebuild / load);
}
