//! Vector indexes load on first use, not at open: a database with many collections
//! opens without touching them, and a first use that races with writers sees every
//! committed vector.
use strata_vector::IndexSource;
use stratadb::prelude::*;

fn vec_of(i: usize) -> Vec<f32> {
    vec![
        (i as f32 * 0.37).sin(),
        (i as f32 * 0.11).cos(),
        i as f32 / 500.0,
        1.0,
    ]
}

#[test]
fn indexes_load_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    {
        let db = Strata::open(dir.path()).unwrap();
        for r in 0..40 {
            let run = db.runs.create(None).unwrap();
            db.vectors
                .create_collection(&run, "mem", 4, DistanceMetric::Cosine)
                .unwrap();
            // More than `MAX_UNPERSISTED_VECTORS`: each collection gets a file.
            for i in 0..40 {
                db.vectors
                    .upsert(&run, "mem", &format!("v{i}"), &vec_of(r * 40 + i), None)
                    .unwrap();
            }
            runs.push(run);
        }
        db.close().unwrap();
    }
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(strata_vector::internal::loaded_indexes(&db.vectors), 0);
    let hits = db
        .vectors
        .search(&runs[7], "mem", &vec_of(7 * 40 + 3), 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "v3");
    assert_eq!(strata_vector::internal::loaded_indexes(&db.vectors), 1);
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &runs[7], "mem"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    // A collection that does not exist loads nothing.
    assert!(db
        .vectors
        .search(&runs[7], "nope", &vec_of(1), 1, None)
        .is_err());
    assert_eq!(strata_vector::internal::loaded_indexes(&db.vectors), 1);
    // Closing keeps the files of collections never loaded: the next open loads them.
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &runs[39], "mem"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
}

#[test]
fn a_first_use_racing_with_writers_sees_every_committed_vector() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    {
        let db = Strata::open(dir.path()).unwrap();
        db.vectors
            .create_collection(&run, "c", 4, DistanceMetric::Euclidean)
            .unwrap();
        for i in 0..100 {
            db.vectors
                .upsert(&run, "c", &format!("k{i}"), &vec_of(i), None)
                .unwrap();
        }
        db.close().unwrap();
    }
    let db = Strata::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 100..400 {
                db.vectors
                    .upsert(&run, "c", &format!("k{i}"), &vec_of(i), None)
                    .unwrap();
            }
        });
        s.spawn(|| {
            for i in 0..50 {
                // The first of these loads the index while the writer commits.
                let hits = db.vectors.search(&run, "c", &vec_of(i), 1, None).unwrap();
                assert_eq!(hits.len(), 1);
            }
        });
        writer.join().unwrap();
    });
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 400);
    for i in (0..400).step_by(7) {
        let hits = db.vectors.search(&run, "c", &vec_of(i), 1, None).unwrap();
        assert_eq!(hits[0].key, format!("k{i}"), "vector {i}");
    }
}
