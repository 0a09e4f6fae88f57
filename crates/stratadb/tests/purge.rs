//! `db.runs.purge`: a purged run is gone from the API and, after a full compaction,
//! from every file — runs, log segments, vector index files — except what a fork made
//! earlier still reads; forks keep exactly what they saw.
use std::path::Path;

use stratadb::prelude::*;

/// `true` if any file under `dir` contains `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

fn fill(db: &Strata, run: &RunId, marker: &str) {
    db.kv.put(run, &format!("{marker}-key"), marker).unwrap();
    db.json
        .set_in(run, &format!("{marker}-doc"), json!({ "text": marker }))
        .unwrap();
    db.events
        .append_in(run, "log", json!({ "text": marker }))
        .unwrap();
    db.state
        .set_in(run, &format!("{marker}-cell"), marker)
        .unwrap();
    db.vectors
        .upsert(
            run,
            "mem",
            &format!("{marker}-vec"),
            &[0.5, 0.25, 1.0],
            Some(json!({ "text": marker })),
        )
        .unwrap();
}

#[test]
fn a_purged_run_leaves_no_byte_that_no_fork_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Strata::open(&path).unwrap();
    let keep = db.runs.create(None).unwrap();
    db.kv.put(&keep, "other", "KEEP-MARKER-0001").unwrap();
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", 3, DistanceMetric::Cosine)
        .unwrap();
    db.kv.put(&run, "shared", "OLD-MARKER-00001").unwrap();
    fill(&db, &run, "SEEN-MARKER-0001");
    db.kv.put(&run, "shared", "SEEN-MARKER-0002").unwrap();
    db.checkpoint().unwrap(); // in a run on disk and in the index files
    let fork = db.runs.fork(&run, None).unwrap();
    fill(&db, &run, "GONE-MARKER-0001");
    db.kv.put(&run, "shared", "GONE-MARKER-0002").unwrap();
    db.vectors
        .search(&run, "mem", &[0.5, 0.25, 1.0], 3, None)
        .unwrap();
    db.checkpoint().unwrap();
    assert!(!files_contain(&path, b"GONE-MARKER-0001").is_empty());

    db.runs.purge(&run).unwrap();
    assert!(matches!(
        db.kv.get_in(&run, "shared"),
        Err(Error::RunError(_))
    ));
    assert!(db.runs.get(&run).unwrap().is_none());
    assert!(matches!(db.runs.purge(&run), Err(Error::RunError(_))));
    assert!(matches!(
        db.runs.purge(&RunId::DEFAULT),
        Err(Error::RunError(_))
    ));
    // The fork sees exactly what it saw.
    assert_eq!(
        db.kv.get_in(&fork, "shared").unwrap().unwrap().value,
        "SEEN-MARKER-0002"
    );
    assert_eq!(db.events.count(&fork, "log").unwrap(), 1);
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), 1);
    assert!(db
        .kv
        .get_in(&fork, "GONE-MARKER-0001-key")
        .unwrap()
        .is_none());

    db.compact().unwrap();
    for gone in ["GONE-MARKER-0001", "GONE-MARKER-0002"] {
        assert_eq!(
            files_contain(&path, gone.as_bytes()),
            Vec::<String>::new(),
            "{gone}"
        );
    }
    // The fork reads the parent's history up to the fork: the older version stays.
    assert!(!files_contain(&path, b"SEEN-MARKER-0002").is_empty());
    assert!(!files_contain(&path, b"OLD-MARKER-00001").is_empty());
    assert_eq!(db.kv.history(&fork, "shared", None, None).unwrap().len(), 2);
    assert!(!files_contain(&path, b"KEEP-MARKER-0001").is_empty());

    // After a reopen nothing comes back, and the fork still reads its past.
    db.close().unwrap();
    let db = Strata::open(&path).unwrap();
    assert!(db.runs.get(&run).unwrap().is_none());
    assert_eq!(
        db.kv.get_in(&fork, "shared").unwrap().unwrap().value,
        "SEEN-MARKER-0002"
    );
    assert_eq!(
        db.kv.get_in(&keep, "other").unwrap().unwrap().value,
        "KEEP-MARKER-0001"
    );

    // Purging the fork frees the rest.
    db.runs.purge(&fork).unwrap();
    db.compact().unwrap();
    for gone in ["SEEN-MARKER-0001", "SEEN-MARKER-0002", "OLD-MARKER-00001"] {
        assert_eq!(
            files_contain(&path, gone.as_bytes()),
            Vec::<String>::new(),
            "{gone}"
        );
    }
    assert!(!files_contain(&path, b"KEEP-MARKER-0001").is_empty());
    db.close().unwrap();
}

#[test]
fn purge_with_forks_cascades_and_views_of_the_past_refuse_a_purged_run() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let v = db.kv.put(&run, "k", 1).unwrap();
    let a = db.runs.fork(&run, None).unwrap();
    let b = db.runs.fork(&a, None).unwrap();
    let other = db.runs.create(None).unwrap();
    db.runs.purge_with_forks(&run).unwrap();
    for r in [run, a, b] {
        assert!(db.runs.get(&r).unwrap().is_none());
        assert!(matches!(db.kv.get_in(&r, "k"), Err(Error::RunError(_))));
    }
    assert!(db.runs.get(&other).unwrap().is_some());
    let past = db.at(v).unwrap();
    assert!(matches!(past.kv.get_in(&run, "k"), Err(Error::RunError(_))));
}

#[test]
fn a_purged_fork_in_the_middle_keeps_its_children_reading_through_it() {
    let db = Strata::ephemeral().unwrap();
    let root = db.runs.create(None).unwrap();
    db.kv.put(&root, "from-root", 1).unwrap();
    let mid = db.runs.fork(&root, None).unwrap();
    db.kv.put(&mid, "from-mid", 2).unwrap();
    let leaf = db.runs.fork(&mid, None).unwrap();
    db.kv.put(&mid, "after-leaf", 3).unwrap();
    db.runs.purge(&mid).unwrap();
    db.runs
        .set_retention(&root, stratadb::RetentionPolicy::KeepLast(1))
        .unwrap();
    db.kv.put(&root, "from-root", 10).unwrap();
    assert_eq!(
        db.kv.get_in(&leaf, "from-root").unwrap().unwrap().value,
        Value::Int(1)
    );
    assert_eq!(
        db.kv.get_in(&leaf, "from-mid").unwrap().unwrap().value,
        Value::Int(2)
    );
    assert!(db.kv.get_in(&leaf, "after-leaf").unwrap().is_none());
    assert_eq!(
        db.kv.keys(&leaf, "", None).unwrap(),
        vec!["from-mid".to_owned(), "from-root".to_owned()]
    );
}
