//! Vectors through the facade: collections, upsert/get, ranking per metric, thresholds,
//! filters, deletes, bad input and persistence.
use stratadb::prelude::*;
use stratadb::{CollectionInfo, VectorMatch};

fn setup() -> (Strata, RunId) {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    (db, run)
}

fn keys(m: &[VectorMatch]) -> Vec<&str> {
    m.iter().map(|m| m.key.as_str()).collect()
}

#[test]
fn collections_lifecycle() {
    let (db, run) = setup();
    assert!(db.vectors.list_collections(&run).unwrap().is_empty());
    db.vectors
        .create_collection(&run, "b", 3, DistanceMetric::Euclidean)
        .unwrap();
    db.vectors
        .create_collection(&run, "a", 2, DistanceMetric::Cosine)
        .unwrap();
    assert!(matches!(
        db.vectors
            .create_collection(&run, "a", 2, DistanceMetric::Cosine),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .create_collection(&run, "a", 5, DistanceMetric::DotProduct),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .create_collection(&run, "zero", 0, DistanceMetric::Cosine),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .create_collection(&run, "", 2, DistanceMetric::Cosine),
        Err(Error::InvalidKey(_))
    ));
    let list: Vec<CollectionInfo> = db.vectors.list_collections(&run).unwrap();
    assert_eq!(
        list.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    db.vectors
        .upsert(&run, "a", "x", &[1.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "a", "y", &[0.0, 1.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "a", "x", &[1.0, 1.0], None)
        .unwrap();
    let info = db.vectors.collection_info(&run, "a").unwrap().unwrap();
    assert_eq!(info.name, "a");
    assert_eq!(info.dimension, 2);
    assert_eq!(info.metric, DistanceMetric::Cosine);
    assert_eq!(info.count, 2);
    assert_eq!(db.vectors.count(&run, "a").unwrap(), 2);
    assert_eq!(db.vectors.count(&run, "b").unwrap(), 0);
    assert!(db.vectors.collection_info(&run, "nope").unwrap().is_none());
    assert!(matches!(
        db.vectors.count(&run, "nope"),
        Err(Error::NotFound(_))
    ));

    assert!(db.vectors.delete_collection(&run, "a").unwrap());
    assert!(!db.vectors.delete_collection(&run, "a").unwrap());
    assert!(db.vectors.collection_info(&run, "a").unwrap().is_none());
    assert_eq!(db.vectors.list_collections(&run).unwrap().len(), 1);
    // Re-creating gives an empty collection, possibly of another shape.
    db.vectors
        .create_collection(&run, "a", 3, DistanceMetric::DotProduct)
        .unwrap();
    assert_eq!(db.vectors.count(&run, "a").unwrap(), 0);
    assert!(db.vectors.get(&run, "a", "x").unwrap().is_none());
    assert!(db
        .vectors
        .search(&run, "a", &[1.0, 0.0, 0.0], 5, None)
        .unwrap()
        .is_empty());
}

#[test]
fn upsert_get_exact() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 4, DistanceMetric::Cosine)
        .unwrap();
    let v = [0.1f32, -0.2, 0.3, 1e-7];
    let v1 = db
        .vectors
        .upsert(
            &run,
            "c",
            "obj",
            &v,
            Some(json!({"title": "Hello", "n": 1})),
        )
        .unwrap();
    assert!(v1.is_txn());
    let got = db.vectors.get(&run, "c", "obj").unwrap().unwrap();
    assert_eq!(got.version, v1);
    assert_eq!(got.value.key, "obj");
    assert_eq!(got.value.vector, v.to_vec());
    assert_eq!(got.value.metadata, Some(json!({"title": "Hello", "n": 1})));

    db.vectors
        .upsert(
            &run,
            "c",
            "str",
            &[1.0, 2.0, 3.0, 4.0],
            Some(Value::from("plain text")),
        )
        .unwrap();
    let s = db.vectors.get(&run, "c", "str").unwrap().unwrap();
    assert_eq!(s.value.metadata, Some(Value::from("plain text")));
    db.vectors
        .upsert(&run, "c", "none", &[1.0, 0.0, 0.0, 0.0], None)
        .unwrap();
    assert_eq!(
        db.vectors
            .get(&run, "c", "none")
            .unwrap()
            .unwrap()
            .value
            .metadata,
        None
    );

    let v2 = db
        .vectors
        .upsert(&run, "c", "obj", &[4.0, 3.0, 2.0, 1.0], None)
        .unwrap();
    assert!(v2 > v1);
    let got = db.vectors.get(&run, "c", "obj").unwrap().unwrap();
    assert_eq!(got.value.vector, vec![4.0, 3.0, 2.0, 1.0]);
    assert_eq!(got.value.metadata, None);
    assert_eq!(got.version, v2);
    assert!(db.vectors.get(&run, "c", "missing").unwrap().is_none());

    // Search returns the metadata, whatever its type.
    let m = db
        .vectors
        .search(&run, "c", &[1.0, 2.0, 3.0, 4.0], 1, None)
        .unwrap();
    assert_eq!(m[0].key, "str");
    assert_eq!(m[0].metadata, Some(Value::from("plain text")));
    assert_eq!(m[0].vector, None);
}

#[test]
fn ranking_per_metric() {
    let (db, run) = setup();
    // Cosine: direction only.
    db.vectors
        .create_collection(&run, "cos", 2, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .upsert(&run, "cos", "same", &[10.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "cos", "diag", &[1.0, 1.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "cos", "ortho", &[0.0, 3.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "cos", "opp", &[-1.0, 0.0], None)
        .unwrap();
    let r = db
        .vectors
        .search(&run, "cos", &[1.0, 0.0], 10, None)
        .unwrap();
    assert_eq!(keys(&r), vec!["same", "diag", "ortho", "opp"]);
    let expect = [1.0f32, std::f32::consts::FRAC_1_SQRT_2, 0.0, -1.0];
    for (m, e) in r.iter().zip(expect) {
        assert!((m.score - e).abs() < 1e-5, "{}: {} vs {e}", m.key, m.score);
    }
    assert_eq!(
        keys(
            &db.vectors
                .search(&run, "cos", &[1.0, 0.0], 2, None)
                .unwrap()
        ),
        vec!["same", "diag"]
    );

    // Euclidean: closest first, score 1 / (1 + d).
    db.vectors
        .create_collection(&run, "l2", 2, DistanceMetric::Euclidean)
        .unwrap();
    db.vectors
        .upsert(&run, "l2", "near", &[1.0, 1.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "l2", "mid", &[3.0, 1.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "l2", "far", &[10.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "l2", "big_same_dir", &[100.0, 100.0], None)
        .unwrap();
    let r = db
        .vectors
        .search(&run, "l2", &[1.0, 1.0], 10, None)
        .unwrap();
    assert_eq!(keys(&r), vec!["near", "mid", "far", "big_same_dir"]);
    assert!((r[0].score - 1.0).abs() < 1e-6);
    assert!((r[1].score - 1.0 / 3.0).abs() < 1e-5);
    assert!(r.windows(2).all(|w| w[0].score >= w[1].score));

    // Dot product: magnitude matters.
    db.vectors
        .create_collection(&run, "dot", 2, DistanceMetric::DotProduct)
        .unwrap();
    db.vectors
        .upsert(&run, "dot", "long", &[5.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "dot", "unit", &[1.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "dot", "neg", &[-2.0, 0.0], None)
        .unwrap();
    db.vectors
        .upsert(&run, "dot", "side", &[0.0, 9.0], None)
        .unwrap();
    let r = db
        .vectors
        .search(&run, "dot", &[2.0, 0.0], 10, None)
        .unwrap();
    assert_eq!(keys(&r), vec!["long", "unit", "side", "neg"]);
    assert_eq!(
        r.iter().map(|m| m.score).collect::<Vec<_>>(),
        vec![10.0, 2.0, 0.0, -4.0]
    );

    // Thresholds keep only score >= threshold.
    let t = db
        .vectors
        .search_with_threshold(&run, "dot", &[2.0, 0.0], 10, 2.0, None)
        .unwrap();
    assert_eq!(keys(&t), vec!["long", "unit"]);
    let t = db
        .vectors
        .search_with_threshold(&run, "cos", &[1.0, 0.0], 10, 0.7, None)
        .unwrap();
    assert_eq!(keys(&t), vec!["same", "diag"]);
    let t = db
        .vectors
        .search_with_threshold(&run, "cos", &[1.0, 0.0], 1, 0.7, None)
        .unwrap();
    assert_eq!(keys(&t), vec!["same"]);
    assert!(db
        .vectors
        .search_with_threshold(&run, "l2", &[50.0, -50.0], 10, 0.9, None)
        .unwrap()
        .is_empty());
    assert!(db
        .vectors
        .search(&run, "cos", &[1.0, 0.0], 0, None)
        .unwrap()
        .is_empty());
}

#[test]
fn filters_return_k_when_enough_match() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 4, DistanceMetric::Cosine)
        .unwrap();
    let n = 600usize;
    db.transaction(|t| {
        for i in 0..n {
            let f = i as f32;
            let v = [f.sin(), f.cos(), (f * 0.37).sin(), 1.0];
            let meta = json!({
                "group": (i % 3) as i64,
                "rare": i % 50 == 0,
                "year": 2000 + (i % 20) as i64,
                "tags": if i % 2 == 0 { vec!["even"] } else { vec!["odd"] },
            });
            t.vector_upsert(&run, "c", &format!("v{i:04}"), &v, Some(meta))?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(db.vectors.count(&run, "c").unwrap(), n as u64);
    let q = [0.3f32, 0.2, -0.1, 1.0];
    let check = |filter: SearchFilter, k: usize, expected: usize, pred: &dyn Fn(usize) -> bool| {
        let r = db
            .vectors
            .search(&run, "c", &q, k, Some(filter.clone()))
            .unwrap();
        assert_eq!(r.len(), expected, "{filter:?}");
        assert!(r.windows(2).all(|w| w[0].score >= w[1].score));
        for m in &r {
            let i: usize = m.key[1..].parse().unwrap();
            assert!(pred(i), "{} does not match {filter:?}", m.key);
        }
        // Exactly the best `expected` among the matching ones.
        let all = db.vectors.search(&run, "c", &q, n, None).unwrap();
        let best: Vec<&str> = all
            .iter()
            .filter(|m| pred(m.key[1..].parse().unwrap()))
            .take(expected)
            .map(|m| m.key.as_str())
            .collect();
        assert_eq!(keys(&r), best, "{filter:?}");
    };
    check(SearchFilter::eq("rare", true), 10, 10, &|i| i % 50 == 0);
    check(SearchFilter::eq("rare", true), 50, 12, &|i| i % 50 == 0);
    check(SearchFilter::eq("group", 1i64), 20, 20, &|i| i % 3 == 1);
    check(SearchFilter::range("year", 2005.0..2007.0), 15, 15, &|i| {
        (5..7).contains(&(i % 20))
    });
    check(SearchFilter::contains("tags", "even"), 7, 7, &|i| {
        i % 2 == 0
    });
    check(
        SearchFilter::eq("group", 0i64).and(SearchFilter::eq("rare", true)),
        100,
        4,
        &|i| i % 3 == 0 && i % 50 == 0,
    );
    check(SearchFilter::eq("group", 9i64), 5, 0, &|_| false);
}

#[test]
fn deleted_vectors_never_returned() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Euclidean)
        .unwrap();
    for i in 0..50 {
        db.vectors
            .upsert(
                &run,
                "c",
                &format!("k{i}"),
                &[i as f32, 0.0],
                Some(json!({"i": i})),
            )
            .unwrap();
    }
    for i in (0..50).step_by(2) {
        assert!(db.vectors.delete(&run, "c", &format!("k{i}")).unwrap());
    }
    assert!(!db.vectors.delete(&run, "c", "k0").unwrap());
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 25);
    assert!(db.vectors.get(&run, "c", "k0").unwrap().is_none());
    let r = db.vectors.search(&run, "c", &[0.0, 0.0], 50, None).unwrap();
    assert_eq!(r.len(), 25);
    assert_eq!(r[0].key, "k1");
    assert!(r
        .iter()
        .all(|m| m.key[1..].parse::<i32>().unwrap() % 2 == 1));
    let f = db
        .vectors
        .search(
            &run,
            "c",
            &[0.0, 0.0],
            5,
            Some(SearchFilter::range("i", 0.0..10.0)),
        )
        .unwrap();
    assert_eq!(keys(&f), vec!["k1", "k3", "k5", "k7", "k9"]);
    // Deleted inside a transaction too.
    db.transaction(|t| t.vector_delete(&run, "c", "k1").map(|_| ()))
        .unwrap();
    let r = db.vectors.search(&run, "c", &[0.0, 0.0], 1, None).unwrap();
    assert_eq!(keys(&r), vec!["k3"]);
    // A delete in a transaction that aborts leaves the vector.
    let e = db.transaction(|t| {
        t.vector_delete(&run, "c", "k3")?;
        Err::<(), _>(Error::ConstraintViolation("abort".into()))
    });
    assert!(e.is_err());
    assert_eq!(
        keys(&db.vectors.search(&run, "c", &[0.0, 0.0], 1, None).unwrap()),
        vec!["k3"]
    );
}

#[test]
fn bad_input() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 3, DistanceMetric::Cosine)
        .unwrap();
    assert!(matches!(
        db.vectors.upsert(&run, "c", "k", &[1.0, 2.0], None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .upsert(&run, "c", "k", &[1.0, 2.0, 3.0, 4.0], None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .upsert(&run, "c", "k", &[1.0, f32::NAN, 3.0], None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors
            .upsert(&run, "c", "k", &[1.0, f32::INFINITY, 3.0], None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors.upsert(&run, "c", "", &[1.0, 2.0, 3.0], None),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        db.vectors.upsert(&run, "nope", "k", &[1.0, 2.0, 3.0], None),
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 0);
    assert!(matches!(
        db.vectors.search(&run, "c", &[1.0, 2.0], 3, None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors.search(&run, "c", &[f32::NAN, 1.0, 1.0], 3, None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.vectors.search(&run, "nope", &[1.0, 2.0, 3.0], 3, None),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.vectors.get(&run, "nope", "k"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.vectors.delete(&run, "nope", "k"),
        Err(Error::NotFound(_))
    ));
    let mut deep = Value::Null;
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        db.vectors
            .upsert(&run, "c", "k", &[1.0, 2.0, 3.0], Some(deep)),
        Err(Error::ConstraintViolation(_))
    ));
    // The zero vector under cosine: allowed or refused, but never a panic.
    let _ = db.vectors.upsert(&run, "c", "zero", &[0.0, 0.0, 0.0], None);
    let _ = db.vectors.search(&run, "c", &[0.0, 0.0, 0.0], 3, None);
}

#[test]
fn survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let q = [1.0f32, 0.0, 0.0];
    let before;
    let run;
    {
        let db = Strata::open(dir.path()).unwrap();
        run = db.runs.create(None).unwrap();
        db.vectors
            .create_collection(&run, "c", 3, DistanceMetric::Cosine)
            .unwrap();
        for i in 0..30 {
            let f = i as f32;
            db.vectors
                .upsert(
                    &run,
                    "c",
                    &format!("k{i}"),
                    &[1.0, f * 0.1, (f * 0.7).sin()],
                    Some(json!({"i": i})),
                )
                .unwrap();
        }
        db.vectors.delete(&run, "c", "k0").unwrap();
        db.vectors
            .create_collection(&run, "gone", 3, DistanceMetric::Cosine)
            .unwrap();
        db.vectors.upsert(&run, "gone", "x", &q, None).unwrap();
        db.vectors.delete_collection(&run, "gone").unwrap();
        before = db.vectors.search(&run, "c", &q, 10, None).unwrap();
        db.close().unwrap();
    }
    let check = |db: &Strata| {
        assert_eq!(db.vectors.count(&run, "c").unwrap(), 29);
        assert!(db.vectors.get(&run, "c", "k0").unwrap().is_none());
        assert_eq!(
            db.vectors
                .get(&run, "c", "k5")
                .unwrap()
                .unwrap()
                .value
                .metadata,
            Some(json!({"i": 5}))
        );
        assert_eq!(db.vectors.search(&run, "c", &q, 10, None).unwrap(), before);
        assert!(db.vectors.collection_info(&run, "gone").unwrap().is_none());
        let f = db
            .vectors
            .search(&run, "c", &q, 3, Some(SearchFilter::range("i", 20.0..)))
            .unwrap();
        assert_eq!(f.len(), 3);
    };
    {
        let db = Strata::open(dir.path()).unwrap();
        check(&db);
        db.vectors.upsert(&run, "c", "k0", &q, None).unwrap();
        drop(db); // without close
    }
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 30);
    assert_eq!(
        db.vectors.search(&run, "c", &q, 1, None).unwrap()[0].key,
        "k0"
    );
}

#[test]
fn same_key_changed_twice_in_one_transaction() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Euclidean)
        .unwrap();
    db.vectors
        .upsert(&run, "c", "c", &[9.0, 9.0], None)
        .unwrap();
    db.transaction(|t| {
        t.vector_upsert(&run, "c", "a", &[1.0, 0.0], None)?;
        t.vector_upsert(&run, "c", "a", &[5.0, 5.0], Some(json!({"v": 2})))?;
        t.vector_upsert(&run, "c", "b", &[1.0, 0.0], None)?;
        t.vector_delete(&run, "c", "b")?;
        t.vector_delete(&run, "c", "c")?;
        t.vector_upsert(&run, "c", "c", &[0.0, 1.0], None)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        db.vectors
            .get(&run, "c", "a")
            .unwrap()
            .unwrap()
            .value
            .vector,
        vec![5.0, 5.0]
    );
    assert!(db.vectors.get(&run, "c", "b").unwrap().is_none());
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 2);
    let r = db
        .vectors
        .search_with_vectors(&run, "c", &[5.0, 5.0], 10, None)
        .unwrap();
    assert_eq!(keys(&r), vec!["a", "c"]);
    assert_eq!(r[0].score, 1.0);
    assert_eq!(r[0].vector, Some(vec![5.0, 5.0]));
    assert_eq!(r[0].metadata, Some(json!({"v": 2})));
    assert_eq!(r[1].vector, Some(vec![0.0, 1.0]));
    let r = db.vectors.search(&run, "c", &[0.0, 1.0], 1, None).unwrap();
    assert_eq!(keys(&r), vec!["c"]);
    assert_eq!(r[0].score, 1.0);
}

#[test]
fn filters_ignore_non_object_metadata() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .upsert(&run, "c", "s", &[1.0, 0.0], Some(Value::from("x")))
        .unwrap();
    db.vectors
        .upsert(&run, "c", "n", &[0.9, 0.1], None)
        .unwrap();
    db.vectors
        .upsert(&run, "c", "o", &[0.8, 0.2], Some(json!({"x": "x"})))
        .unwrap();
    let q = [1.0, 0.0];
    let r = db
        .vectors
        .search(&run, "c", &q, 10, Some(SearchFilter::exists("x")))
        .unwrap();
    assert_eq!(keys(&r), vec!["o"]);
    let r = db
        .vectors
        .search(&run, "c", &q, 10, Some(!SearchFilter::exists("x")))
        .unwrap();
    assert_eq!(keys(&r), vec!["s", "n"]);
    assert_eq!(r[0].metadata, Some(Value::from("x")));
    assert_eq!(r[1].metadata, None);
}

#[test]
fn upsert_batch_and_ef_search() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "docs", 4, DistanceMetric::Cosine)
        .unwrap();
    let vecs: Vec<Vec<f32>> = (0..3000)
        .map(|i| {
            let x = i as f32;
            vec![(x * 0.37).sin(), (x * 0.11).cos(), (x * 0.05).sin(), 1.0]
        })
        .collect();
    let items: Vec<(String, &[f32], Option<Value>)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), &v[..], Some(json!({"even": i % 2 == 0}))))
        .collect();
    let v1 = db.vectors.upsert_batch(&run, "docs", items).unwrap();
    assert_eq!(db.vectors.count(&run, "docs").unwrap(), 3000);
    let got = db.vectors.get(&run, "docs", "k7").unwrap().unwrap();
    assert_eq!(got.version, v1, "one commit for the batch");
    assert_eq!(got.value.vector, vecs[7]);
    // One bad vector: nothing is written.
    let bad = vec![
        ("x1", vec![1.0, 0.0, 0.0, 0.0], None),
        ("x2", vec![1.0, 0.0], None),
    ];
    assert!(matches!(
        db.vectors.upsert_batch(&run, "docs", bad),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(db.vectors.get(&run, "docs", "x1").unwrap().is_none());
    assert!(matches!(
        db.vectors
            .upsert_batch(&run, "nope", [("a", vec![1.0f32; 4], None)]),
        Err(Error::NotFound(_))
    ));
    let empty: Vec<(&str, Vec<f32>, Option<Value>)> = Vec::new();
    assert!(db.vectors.upsert_batch(&run, "docs", empty).is_ok());
    // In a transaction, with other writes.
    db.transaction(|txn| {
        txn.vector_upsert_batch(&run, "docs", [("t1", vec![0.0f32, 0.0, 1.0, 0.0], None)])?;
        txn.kv_set(&run, "note", "batched")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(db.vectors.count(&run, "docs").unwrap(), 3001);
    let r = db
        .vectors
        .search(&run, "docs", &[0.0, 0.0, 1.0, 0.0], 1, None)
        .unwrap();
    assert_eq!(r[0].key, "t1");
    // Search effort per query and per collection.
    for (i, v) in vecs.iter().enumerate().step_by(97) {
        let r = db
            .vectors
            .search_with_ef(&run, "docs", v, 1, 8, None)
            .unwrap();
        assert_eq!(r[0].key, format!("k{i}"));
        let f = SearchFilter::eq("even", i % 2 == 0);
        let r = db
            .vectors
            .search_with_ef(&run, "docs", v, 3, 300, Some(f))
            .unwrap();
        assert_eq!(r[0].key, format!("k{i}"));
    }
    db.vectors.set_ef_search(&run, "docs", 200).unwrap();
    for ef in [0, 65_537] {
        assert!(matches!(
            db.vectors.set_ef_search(&run, "docs", ef),
            Err(Error::ConstraintViolation(_))
        ));
        assert!(matches!(
            db.vectors
                .search_with_ef(&run, "docs", &vecs[0], 1, ef, None),
            Err(Error::ConstraintViolation(_))
        ));
    }
    assert!(matches!(
        db.vectors.set_ef_search(&run, "nope", 10),
        Err(Error::NotFound(_))
    ));
}
