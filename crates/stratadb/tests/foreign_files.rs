//! Files the database does not own (issue 11, items 8 and 10): a user's `*.tmp` files in
//! the database directory and in the vector index directory survive open and close, and
//! vector collections with names up to the 1 KiB key limit get index files whose names
//! fit any file system, so `close()` succeeds and reopening loads the file.
use strata_vector::persist;
use strata_vector::IndexSource;
use stratadb::prelude::*;

/// Vectors that keep a collection above `MAX_UNPERSISTED_VECTORS` (so it gets an index
/// file) and away from the test's own vectors (pointing the other way).
fn filler(db: &Strata, run: &RunId, name: &str) {
    for i in 0..strata_vector::MAX_UNPERSISTED_VECTORS {
        db.vectors
            .upsert(
                run,
                name,
                &format!("filler{i}"),
                &[-1.0, -(i as f32) - 1.0],
                None,
            )
            .unwrap();
    }
}

#[test]
fn foreign_tmp_files_survive_open_and_close() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.tmp"), b"mine").unwrap();
    std::fs::write(dir.path().join("x.tmp"), b"mine too").unwrap();
    let run = RunId::DEFAULT;
    {
        let db = Strata::open(dir.path()).unwrap();
        db.kv.set("k", 1i64).unwrap();
        db.vectors
            .create_collection(&run, "c", 2, DistanceMetric::Cosine)
            .unwrap();
        db.vectors
            .upsert(&run, "c", "a", &[1.0, 0.0], None)
            .unwrap();
        filler(&db, &run, "c");
        db.close().unwrap();
    }
    // A user file inside the vector index directory of the run is not ours either.
    let vdir = persist::root(dir.path()).join(run.to_string());
    std::fs::write(vdir.join("notes.tmp"), b"also mine").unwrap();
    for _ in 0..2 {
        let db = Strata::open(dir.path()).unwrap();
        db.vectors.delete_collection(&run, "c").ok();
        db.vectors
            .create_collection(&run, "c", 2, DistanceMetric::Cosine)
            .unwrap();
        db.vectors
            .upsert(&run, "c", "b", &[0.0, 1.0], None)
            .unwrap();
        db.close().unwrap();
        // Dropped without close too.
        drop(Strata::open(dir.path()).unwrap());
    }
    assert_eq!(
        std::fs::read(dir.path().join("notes.tmp")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(dir.path().join("x.tmp")).unwrap(),
        b"mine too"
    );
    assert_eq!(std::fs::read(vdir.join("notes.tmp")).unwrap(), b"also mine");
}

#[test]
fn one_kib_collection_name_closes_and_reloads_its_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let long = "n".repeat(stratadb::limits::MAX_KEY_BYTES);
    let other = format!("{}m", "n".repeat(stratadb::limits::MAX_KEY_BYTES - 1));
    {
        let db = Strata::open(dir.path()).unwrap();
        for name in [&long, &other] {
            db.vectors
                .create_collection(&run, name, 2, DistanceMetric::Cosine)
                .unwrap();
            db.vectors
                .upsert(&run, name, "a", &[1.0, 0.0], None)
                .unwrap();
            filler(&db, &run, name);
        }
        db.vectors
            .upsert(&run, &long, "b", &[0.0, 1.0], None)
            .unwrap();
        db.close().expect("close with a 1 KiB collection name");
    }
    let file = persist::file_path(dir.path(), &run, &long);
    assert!(file.exists(), "{}", file.display());
    assert!(file.file_name().unwrap().len() < 64);
    let db = Strata::open(dir.path()).unwrap();
    for name in [&long, &other] {
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, name),
            Some(IndexSource::Loaded { replayed: 0 }),
            "the index file must be loaded, not rebuilt"
        );
    }
    assert_eq!(
        db.vectors.count(&run, &long).unwrap(),
        2 + strata_vector::MAX_UNPERSISTED_VECTORS as u64
    );
    let hits = db
        .vectors
        .search(&run, &long, &[0.0, 1.0], 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "b");
    db.close().unwrap();
}

/// A collection name of 65 to ~125 bytes had a hex-named index file in earlier builds;
/// such a file is no longer looked up: the index is rebuilt once, and the stale file is
/// removed by the next close (it is named like an index file, so it is ours).
#[test]
fn legacy_hex_named_index_file_of_a_long_name_is_rebuilt_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let name = "L".repeat(100);
    {
        let db = Strata::open(dir.path()).unwrap();
        db.vectors
            .create_collection(&run, &name, 2, DistanceMetric::Cosine)
            .unwrap();
        db.vectors
            .upsert(&run, &name, "a", &[1.0, 0.0], None)
            .unwrap();
        filler(&db, &run, &name);
        db.close().unwrap();
    }
    let new = persist::file_path(dir.path(), &run, &name);
    let legacy = new.with_file_name(format!("{}.vidx", "4c".repeat(100)));
    std::fs::rename(&new, &legacy).unwrap();
    {
        let db = Strata::open(dir.path()).unwrap();
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, &name),
            Some(IndexSource::Rebuilt)
        );
        assert_eq!(
            db.vectors.count(&run, &name).unwrap(),
            1 + strata_vector::MAX_UNPERSISTED_VECTORS as u64
        );
        db.close().unwrap();
    }
    assert!(new.exists());
    assert!(!legacy.exists(), "the stale legacy file is removed");
}
