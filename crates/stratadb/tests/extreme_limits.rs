//! Extreme limits and counts (usize::MAX, 0, open ranges) never panic or over-allocate.
use stratadb::prelude::*;
#[test]
fn huge_limits_do_not_panic() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.events.append("s", json!({"a": 1})).unwrap();
    assert_eq!(db.events.read("s", usize::MAX).unwrap().len(), 1);
    db.kv.set("k", 1i64).unwrap();
    assert_eq!(db.kv.keys(&run, "", Some(usize::MAX)).unwrap().len(), 1);
    assert_eq!(
        db.kv
            .history(&run, "k", Some(u64::MAX), None)
            .unwrap()
            .len(),
        1
    );
    db.transaction(|t| {
        t.kv_set(&run, "k2", 2i64)?;
        t.kv_delete(&run, "k")?;
        Ok(())
    })
    .unwrap();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Euclidean)
        .unwrap();
    db.vectors
        .upsert(&run, "c", "a", &[1.0, 0.0], None)
        .unwrap();
    assert_eq!(
        db.vectors
            .search(&run, "c", &[1.0, 0.0], usize::MAX, None)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        db.vectors
            .search(&run, "c", &[1.0, 0.0], 0, None)
            .unwrap()
            .len(),
        0
    );
    assert_eq!(db.events.range(&run, "s", 0, u64::MAX).unwrap().len(), 1);
    assert_eq!(
        db.state
            .history(&run, "nope", Some(u64::MAX))
            .unwrap()
            .len(),
        0
    );
}
#[test]
fn huge_k_on_hnsw() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Cosine)
        .unwrap();
    db.transaction(|t| {
        for i in 0..2500 {
            let x = i as f32;
            t.vector_upsert(&run, "c", &format!("v{i}"), &[x.cos(), x.sin()], None)?;
        }
        Ok(())
    })
    .unwrap();
    let all = db
        .vectors
        .search(&run, "c", &[1.0, 0.0], usize::MAX, None)
        .unwrap();
    assert_eq!(all.len(), 2500);
    let f = SearchFilter::exists("nothing");
    assert!(db
        .vectors
        .search(&run, "c", &[1.0, 0.0], 10, Some(f))
        .unwrap()
        .is_empty());
}
