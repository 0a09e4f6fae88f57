//! Searches racing writers: the index is updated just after each commit, so a search's
//! snapshot and the index can disagree about the changes in flight. A search must still
//! return `k` results whenever the collection holds at least `k` matching vectors, with
//! scores computed from the vectors its snapshot sees.
use std::sync::atomic::{AtomicBool, Ordering};

use stratadb::prelude::*;

const DIM: usize = 8;

fn vector(n: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| {
            let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 56);
            z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// `n` vectors, then one thread upserts new keys, replaces and deletes old ones while
/// this one searches with `k = 10`: every search returns exactly 10 matches, sorted, each
/// scored as the record it returns.
fn searches_keep_k_results_while_writers_commit(n: u64) {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.vectors
        .create_collection(&run, "c", DIM, DistanceMetric::Cosine)
        .unwrap();
    let items: Vec<(String, Vec<f32>, Option<Value>)> = (0..n)
        .map(|i| {
            (
                format!("k{i}"),
                vector(i),
                Some(json!({"even": i % 2 == 0})),
            )
        })
        .collect();
    db.vectors.upsert_batch(&run, "c", items).unwrap();
    let stop = AtomicBool::new(false);
    /// Stops the writer however the searching thread leaves (a failed assertion
    /// included), so that a failure fails the test instead of hanging it.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = vector(1_000_000 + i);
                db.vectors
                    .upsert(
                        &run,
                        "c",
                        &format!("new{i}"),
                        &v,
                        Some(json!({"even": true})),
                    )
                    .unwrap();
                // Replace an old key's vector, delete another (never below 10 left).
                db.vectors
                    .upsert(
                        &run,
                        "c",
                        &format!("k{}", i % n),
                        &vector(2_000_000 + i),
                        None,
                    )
                    .unwrap();
                db.vectors
                    .delete(&run, "c", &format!("k{}", (i * 7 + 3) % n))
                    .unwrap();
                i += 1;
            }
        });
        let started = std::time::Instant::now();
        let mut searches = 0;
        while started.elapsed() < std::time::Duration::from_millis(1500) || searches < 300 {
            let q = vector(5_000_000 + searches);
            let hits = db.vectors.search(&run, "c", &q, 10, None).unwrap();
            assert_eq!(hits.len(), 10, "search {searches}: {hits:?}");
            for w in hits.windows(2) {
                assert!(w[0].score >= w[1].score, "sorted: {hits:?}");
            }
            let filtered = db
                .vectors
                .search(&run, "c", &q, 10, Some(SearchFilter::eq("even", true)))
                .unwrap();
            assert_eq!(filtered.len(), 10, "filtered search {searches}");
            for m in &filtered {
                assert_eq!(m.metadata, Some(json!({"even": true})), "{m:?}");
            }
            searches += 1;
        }
    });
    // Quiet again: every score is the record's.
    let q = vector(42);
    for m in db
        .vectors
        .search(&run, "c", &q, 10, None)
        .unwrap()
        .into_iter()
    {
        let rec = db.vectors.get(&run, "c", &m.key).unwrap().unwrap();
        let expected = DistanceMetric::Cosine.score(&q, &rec.value.vector);
        assert!((m.score - expected).abs() < 1e-5, "{m:?} vs {expected}");
    }
}

#[test]
fn exact_collection_searches_keep_k_results_while_writers_commit() {
    searches_keep_k_results_while_writers_commit(300);
}

#[test]
fn graph_searches_keep_k_results_while_writers_commit() {
    searches_keep_k_results_while_writers_commit(3_000);
}
