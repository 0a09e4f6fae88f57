//! Runs as branches: `db.runs.fork` across every primitive, divergence, forks of forks,
//! lineage, what a fork keeps when its parent changes, retention, reopen.
use stratadb::prelude::*;
use stratadb::{ForkOrigin, RetentionPolicy};

fn db() -> Strata {
    Strata::ephemeral().unwrap()
}

fn s(v: &str) -> Value {
    Value::from(v)
}

/// An event payload.
fn ev(name: &str) -> Value {
    Value::from(serde_json::json!({ "e": name }))
}

#[test]
fn a_fork_sees_the_parent_at_the_fork_version_in_every_primitive() {
    let db = db();
    let run = db.runs.create(Some(s("parent"))).unwrap();
    db.kv.put(&run, "plan", "draft").unwrap();
    db.kv.put(&run, "plan", "v2").unwrap();
    db.kv.put(&run, "gone", 1).unwrap();
    db.kv.delete_in(&run, "gone").unwrap();
    db.json
        .set_in(
            &run,
            "doc",
            Value::from(serde_json::json!({"a": 1, "b": {"c": 2}})),
        )
        .unwrap();
    db.events.append_in(&run, "log", ev("e1")).unwrap();
    db.events.append_in(&run, "log", ev("e2")).unwrap();
    db.state.set_in(&run, "cell", 10).unwrap();
    db.state.set_in(&run, "cell", 11).unwrap();

    let fork = db.runs.fork(&run, None).unwrap();
    let info = db.runs.get(&fork).unwrap().unwrap().value;
    assert_eq!(info.state, RunState::Active);
    assert_eq!(info.metadata, Some(s("parent")));
    let origin = info.forked_from.expect("a fork records its origin");
    assert_eq!(origin.parent, run);

    // Everything the parent held.
    assert_eq!(db.kv.get_in(&fork, "plan").unwrap().unwrap().value, s("v2"));
    assert!(db.kv.get_in(&fork, "gone").unwrap().is_none());
    let hist = db.kv.history(&fork, "plan", None, None).unwrap();
    assert_eq!(
        hist.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        vec![s("v2"), s("draft")]
    );
    assert_eq!(
        db.kv.keys(&fork, "", None).unwrap(),
        vec!["plan".to_owned()]
    );
    assert_eq!(
        db.json
            .get_path(&fork, "doc", "$.b.c")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(2)
    );
    assert_eq!(db.events.count(&fork, "log").unwrap(), 2);
    assert_eq!(db.events.read_in(&fork, "log", 10).unwrap().len(), 2);
    let cell = db.state.get_in(&fork, "cell").unwrap().unwrap();
    assert_eq!(cell.value, Value::Int(11));

    // Then they diverge, both ways.
    db.kv.set_in(&fork, "plan", "fork-plan").unwrap();
    db.kv.delete_in(&fork, "plan").unwrap();
    db.kv.set_in(&fork, "only-fork", 1).unwrap();
    db.kv.set_in(&run, "plan", "parent-v3").unwrap();
    db.kv.set_in(&run, "only-parent", 1).unwrap();
    assert!(db.kv.get_in(&fork, "plan").unwrap().is_none());
    assert_eq!(
        db.kv.keys(&fork, "", None).unwrap(),
        vec!["only-fork".to_owned()]
    );
    assert_eq!(
        db.kv.get_in(&run, "plan").unwrap().unwrap().value,
        s("parent-v3")
    );
    assert_eq!(
        db.kv.keys(&run, "", None).unwrap(),
        vec!["only-parent".to_owned(), "plan".to_owned()]
    );

    // Event sequences continue from the parent's; the parent's later events stay out.
    let seq = db.events.append_in(&fork, "log", ev("f3")).unwrap();
    assert_eq!(seq, Version::Sequence(3));
    db.events.append_in(&run, "log", ev("p3")).unwrap();
    let fork_events: Vec<Value> = db
        .events
        .range(&fork, "log", 1, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.value)
        .collect();
    assert_eq!(fork_events, vec![ev("e1"), ev("e2"), ev("f3")]);
    assert_eq!(
        db.events.head(&run, "log").unwrap().unwrap().value,
        ev("p3")
    );

    // State counters continue, and CAS works on the inherited counter.
    let counter = cell.version.as_u64();
    let next = db
        .state
        .cas(&fork, "cell", Some(counter), 12)
        .unwrap()
        .expect("cas on the inherited counter");
    assert_eq!(next.as_u64(), counter + 1);
    assert_eq!(
        db.state.get_in(&run, "cell").unwrap().unwrap().value,
        Value::Int(11)
    );

    // JSON edits by path in the fork leave the parent's document alone.
    db.json.set_path(&fork, "doc", "$.b.c", 3).unwrap();
    assert_eq!(
        db.json
            .get_path(&run, "doc", "$.b.c")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(2)
    );
    assert_eq!(
        db.json
            .get_path(&fork, "doc", "$.b.c")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(3)
    );
}

#[test]
fn fork_at_a_past_version_and_forks_of_forks() {
    let db = db();
    let run = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&run, "k", 1).unwrap();
    db.kv.put(&run, "k", 2).unwrap();
    db.kv.put(&run, "later", 1).unwrap();
    let a = db.runs.fork(&run, Some(v1)).unwrap();
    assert_eq!(db.kv.get_in(&a, "k").unwrap().unwrap().value, Value::Int(1));
    assert!(db.kv.get_in(&a, "later").unwrap().is_none());
    let va = db.kv.put(&a, "k", 10).unwrap();
    db.kv.put(&a, "a-only", 1).unwrap();
    let b = db.runs.fork(&a, None).unwrap();
    db.kv.put(&a, "k", 11).unwrap();
    assert_eq!(
        db.kv.get_in(&b, "k").unwrap().unwrap().value,
        Value::Int(10)
    );
    let hist: Vec<Value> = db
        .kv
        .history(&b, "k", None, None)
        .unwrap()
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(hist, vec![Value::Int(10), Value::Int(1)]);
    assert_eq!(
        db.kv.get_at(&b, "k", v1).unwrap().value,
        Value::Int(1),
        "time travel inside a fork reaches the grandparent"
    );
    assert_eq!(db.kv.get_at(&b, "k", va).unwrap().value, Value::Int(10));
    assert_eq!(
        db.kv.keys(&b, "", None).unwrap(),
        vec!["a-only".to_owned(), "k".to_owned()]
    );
    let c = db.runs.fork(&b, None).unwrap();
    let info = db.runs.get(&c).unwrap().unwrap().value;
    assert_eq!(info.forked_from.map(|o| o.parent), Some(b));
    assert_eq!(
        db.kv.get_in(&c, "k").unwrap().unwrap().value,
        Value::Int(10)
    );
}

#[test]
fn bad_forks_are_clear_errors() {
    let db = db();
    let missing = RunId::new();
    assert!(matches!(
        db.runs.fork(&missing, None),
        Err(Error::RunError(_))
    ));
    let run = db.runs.create(None).unwrap();
    assert!(matches!(
        db.runs.fork(&run, Some(Version::Sequence(1))),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.runs.fork(&run, Some(Version::Txn(u64::MAX))),
        Err(Error::ConstraintViolation(_))
    ));
    // Before the run existed.
    assert!(matches!(
        db.runs.fork(&run, Some(Version::Txn(1))),
        Err(Error::RunError(_))
    ));
    // In the past of a run whose retention may have thinned its history.
    let v = db.kv.put(&run, "k", 1).unwrap();
    db.kv.put(&run, "k", 2).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert!(matches!(
        db.runs.fork(&run, Some(v)),
        Err(Error::ConstraintViolation(_))
    ));
    // At its current version it is fine.
    let f = db.runs.fork(&run, None).unwrap();
    assert_eq!(db.kv.get_in(&f, "k").unwrap().unwrap().value, Value::Int(2));
}

#[test]
fn the_parent_closing_or_archiving_changes_nothing_the_fork_sees() {
    let db = db();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "k", "v").unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    db.runs.close(&run).unwrap();
    db.runs.archive(&run).unwrap();
    assert_eq!(db.kv.get_in(&fork, "k").unwrap().unwrap().value, s("v"));
    // A closed run can itself be forked, and the fork accepts writes.
    let again = db.runs.fork(&run, None).unwrap();
    db.kv.set_in(&again, "k", "w").unwrap();
    assert_eq!(db.kv.get_in(&again, "k").unwrap().unwrap().value, s("w"));
}

#[test]
fn retention_in_the_parent_never_removes_what_a_fork_reads() {
    let db = db();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "k", "seen-by-fork").unwrap();
    db.kv.put(&run, "d", "deleted-later").unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    for i in 0..50 {
        db.kv.put(&run, "k", i).unwrap();
    }
    db.kv.delete_in(&run, "d").unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    db.flush().unwrap();
    assert_eq!(
        db.kv.get_in(&fork, "k").unwrap().unwrap().value,
        s("seen-by-fork")
    );
    assert_eq!(
        db.kv.get_in(&fork, "d").unwrap().unwrap().value,
        s("deleted-later")
    );
    // A delete in a fork under KeepLast(1) keeps hiding the parent's value.
    db.runs
        .set_retention(&fork, RetentionPolicy::KeepLast(1))
        .unwrap();
    db.kv.delete_in(&fork, "k").unwrap();
    db.runs
        .set_retention(&fork, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert!(db.kv.get_in(&fork, "k").unwrap().is_none());
}

#[test]
fn forks_survive_reopen_checkpoint_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (run, fork, v_fork) = {
        let db = Strata::open(&path).unwrap();
        let run = db.runs.create(None).unwrap();
        for i in 0..200 {
            db.kv.put(&run, &format!("key{i:04}"), i).unwrap();
        }
        db.flush().unwrap();
        let fork = db.runs.fork(&run, None).unwrap();
        let v_fork = db
            .runs
            .get(&fork)
            .unwrap()
            .unwrap()
            .value
            .forked_from
            .unwrap();
        db.kv.set_in(&fork, "key0000", "changed").unwrap();
        db.kv.delete_in(&fork, "key0001").unwrap();
        for i in 0..200 {
            db.kv.put(&run, &format!("key{i:04}"), -i).unwrap();
        }
        db.checkpoint().unwrap();
        db.compact().unwrap();
        db.close().unwrap();
        (run, fork, v_fork)
    };
    let db = Strata::open(&path).unwrap();
    let info = db.runs.get(&fork).unwrap().unwrap().value;
    assert_eq!(info.forked_from, Some(v_fork));
    assert_eq!(
        info.forked_from,
        Some(ForkOrigin {
            parent: run,
            version: v_fork.version
        })
    );
    assert_eq!(
        db.kv.get_in(&fork, "key0000").unwrap().unwrap().value,
        s("changed")
    );
    assert!(db.kv.get_in(&fork, "key0001").unwrap().is_none());
    assert_eq!(
        db.kv.get_in(&fork, "key0002").unwrap().unwrap().value,
        Value::Int(2)
    );
    assert_eq!(
        db.kv.get_in(&run, "key0002").unwrap().unwrap().value,
        Value::Int(-2)
    );
    assert_eq!(db.kv.keys(&fork, "", None).unwrap().len(), 199);
    assert_eq!(db.kv.keys(&fork, "key01", Some(5)).unwrap().len(), 5);
}

fn unit(i: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dim];
    v[i % dim] = 1.0;
    v[(i * 7 + 3) % dim] += 0.5 + (i as f32) / 1000.0;
    v
}

#[test]
fn vector_collections_fork_with_their_vectors_and_diverge() {
    let db = db();
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", 16, DistanceMetric::Cosine)
        .unwrap();
    for i in 0..300 {
        db.vectors
            .upsert(&run, "mem", &format!("v{i}"), &unit(i, 16), None)
            .unwrap();
    }
    let fork = db.runs.fork(&run, None).unwrap();
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), 300);
    assert_eq!(db.vectors.list_collections(&fork).unwrap().len(), 1);
    let hit = db
        .vectors
        .search(&fork, "mem", &unit(42, 16), 1, None)
        .unwrap();
    assert_eq!(hit[0].key, "v42");
    // Diverge: the fork deletes and adds; the parent changes a vector.
    db.vectors.delete(&fork, "mem", "v42").unwrap();
    db.vectors
        .upsert(&fork, "mem", "fork-only", &unit(5, 16), None)
        .unwrap();
    db.vectors
        .upsert(&run, "mem", "v7", &unit(200, 16), None)
        .unwrap();
    let hit = db
        .vectors
        .search(&fork, "mem", &unit(42, 16), 3, None)
        .unwrap();
    assert!(hit.iter().all(|m| m.key != "v42"));
    let hit = db
        .vectors
        .search(&run, "mem", &unit(42, 16), 1, None)
        .unwrap();
    assert_eq!(hit[0].key, "v42");
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), 300);
    assert_eq!(db.vectors.count(&run, "mem").unwrap(), 300);
    assert!(db.vectors.get(&run, "mem", "fork-only").unwrap().is_none());
    let v7 = db.vectors.get(&fork, "mem", "v7").unwrap().unwrap();
    assert_eq!(v7.value.vector, unit(7, 16));
}

#[test]
fn export_and_exact_import_keep_forks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path().join("a")).unwrap();
    let run = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&run, "k", "old").unwrap();
    db.kv.put(&run, "k", "new").unwrap();
    let fork = db.runs.fork(&run, Some(v1)).unwrap();
    db.kv.set_in(&fork, "mine", 1).unwrap();
    let mut dump = Vec::new();
    db.export(&mut dump, None, |_| {}).unwrap();
    db.close().unwrap();
    let report = stratadb::import(dir.path().join("b"), &dump[..]).unwrap();
    assert!(report.exact);
    let db = Strata::open(dir.path().join("b")).unwrap();
    assert_eq!(db.kv.get_in(&fork, "k").unwrap().unwrap().value, s("old"));
    assert_eq!(db.kv.get_in(&run, "k").unwrap().unwrap().value, s("new"));
    assert_eq!(db.kv.keys(&fork, "", None).unwrap().len(), 2);
    let mut again = Vec::new();
    db.export(&mut again, None, |_| {}).unwrap();
    assert_eq!(dump, again, "export | import | export is byte-identical");
}

/// A deterministic pseudo-random vector.
fn pseudo(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// The exact top `k` of `(key, vector)` for `query` under cosine, best first.
fn exact_top(
    items: &std::collections::BTreeMap<String, Vec<f32>>,
    query: &[f32],
    k: usize,
) -> Vec<String> {
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    };
    let mut scored: Vec<(f32, &String)> = items.iter().map(|(k, v)| (cos(v, query), k)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(k).map(|(_, k)| k.clone()).collect()
}

#[test]
fn a_forked_collection_shares_the_parent_index_and_searches_its_own_view() {
    let db = db();
    let dim = 16;
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
        .unwrap();
    let mut parent: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    for i in 0..2_000u64 {
        let v = pseudo(i, dim);
        db.vectors
            .upsert(&run, "mem", &format!("p{i:04}"), &v, None)
            .unwrap();
        parent.insert(format!("p{i:04}"), v);
    }
    // The parent's index is loaded (it was written through): the fork shares it.
    let fork = db.runs.fork(&run, None).unwrap();
    let mut child = parent.clone();
    // The fork changes 10 %: overwrites, deletes, additions.
    for i in 0..100u64 {
        let v = pseudo(10_000 + i, dim);
        db.vectors
            .upsert(&fork, "mem", &format!("p{i:04}"), &v, None)
            .unwrap();
        child.insert(format!("p{i:04}"), v);
        db.vectors
            .delete(&fork, "mem", &format!("p{:04}", 1_000 + i))
            .unwrap();
        child.remove(&format!("p{:04}", 1_000 + i));
        let v = pseudo(20_000 + i, dim);
        db.vectors
            .upsert(&fork, "mem", &format!("f{i:04}"), &v, None)
            .unwrap();
        child.insert(format!("f{i:04}"), v);
    }
    // The parent changes after the fork too: the fork must not see it.
    for i in 1_500..1_550u64 {
        db.vectors
            .upsert(
                &run,
                "mem",
                &format!("p{i:04}"),
                &pseudo(30_000 + i, dim),
                None,
            )
            .unwrap();
        db.vectors
            .delete(&run, "mem", &format!("p{:04}", i + 100))
            .unwrap();
    }
    assert!(matches!(
        strata_vector::internal::index_source(&db.vectors, &fork, "mem"),
        Some(strata_vector::IndexSource::Forked { .. })
    ));
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), child.len() as u64);
    assert_eq!(db.vectors.count(&run, "mem").unwrap(), 1_950);
    let mut hits = 0;
    let mut total = 0;
    for q in 0..50u64 {
        let query = pseudo(50_000 + q, dim);
        let want = exact_top(&child, &query, 10);
        let got: Vec<String> = db
            .vectors
            .search(&fork, "mem", &query, 10, None)
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        for k in &got {
            assert!(child.contains_key(k), "{k} is not in the fork's view");
        }
        hits += got.iter().filter(|k| want.contains(k)).count();
        total += want.len();
    }
    let recall = hits as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 in the fork: {recall}");
    // A stored vector the parent changed after the fork is found with the fork's copy.
    let old = child.get("p1520").unwrap().clone();
    let top = db.vectors.search(&fork, "mem", &old, 1, None).unwrap();
    assert_eq!(top[0].key, "p1520");
    assert_eq!(top[0].vector, None);
    let deleted_in_parent = child.get("p1620").unwrap().clone();
    let top = db
        .vectors
        .search(&fork, "mem", &deleted_in_parent, 1, None)
        .unwrap();
    assert_eq!(top[0].key, "p1620");
    // A fork of the fork.
    let grandchild = db.runs.fork(&fork, None).unwrap();
    db.vectors.delete(&grandchild, "mem", "f0000").unwrap();
    assert_eq!(
        db.vectors.count(&grandchild, "mem").unwrap(),
        child.len() as u64 - 1
    );
    let q = child.get("f0001").unwrap().clone();
    let top = db.vectors.search(&grandchild, "mem", &q, 1, None).unwrap();
    assert_eq!(top[0].key, "f0001");
}

#[test]
fn forked_collections_after_reopen_and_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let dim = 8;
    let (run, fork, quiet_fork) = {
        let db = Strata::open(&path).unwrap();
        let run = db.runs.create(None).unwrap();
        db.vectors
            .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
            .unwrap();
        for i in 0..1_500u64 {
            let kind = if i % 2 == 0 { "even" } else { "odd" };
            db.vectors
                .upsert(
                    &run,
                    "mem",
                    &format!("k{i:04}"),
                    &pseudo(i, dim),
                    Some(json!({"kind": kind})),
                )
                .unwrap();
        }
        let quiet_fork = db.runs.fork(&run, None).unwrap();
        let fork = db.runs.fork(&run, None).unwrap();
        db.vectors.delete(&fork, "mem", "k0002").unwrap();
        db.vectors
            .upsert(&run, "mem", "k0004", &pseudo(99_999, dim), None)
            .unwrap();
        // Filtered search in the fork: only even keys, never the one it deleted.
        let hits = db
            .vectors
            .search(
                &fork,
                "mem",
                &pseudo(2, dim),
                5,
                Some(SearchFilter::eq("kind", "even")),
            )
            .unwrap();
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|h| h.key != "k0002"));
        assert!(hits
            .iter()
            .all(|h| h.key[1..].parse::<u64>().unwrap() % 2 == 0));
        db.close().unwrap();
        (run, fork, quiet_fork)
    };
    let db = Strata::open(&path).unwrap();
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), 1_499);
    assert_eq!(db.vectors.count(&quiet_fork, "mem").unwrap(), 1_500);
    assert_eq!(db.vectors.count(&run, "mem").unwrap(), 1_500);
    let top = db
        .vectors
        .search(&fork, "mem", &pseudo(4, dim), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "k0004", "the fork keeps its copy of k0004");
    let top = db
        .vectors
        .search(&run, "mem", &pseudo(99_999, dim), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "k0004");
    let top = db
        .vectors
        .search(&quiet_fork, "mem", &pseudo(7, dim), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "k0007");
}
