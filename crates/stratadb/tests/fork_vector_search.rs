//! Vector search in a forked collection large enough to search by graph (more own
//! vectors than the exact-scan threshold): recall against an exact scan of the fork's
//! view, for queries from the collection's distribution and for queries about what the
//! fork itself wrote. Such a fork searches its own graph and its parent's in one walk
//! (bridged: `crates/strata-vector/src/bridge.rs`); the tests also cover what must keep
//! working around that walk — parent changes and a parent compaction after the fork
//! (the bridge is made again), forks of forks, a reopen, filters (two walks), counts,
//! and hidden vectors never returned.
use std::collections::HashMap;

use stratadb::prelude::*;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Recall@10 of `db`'s search in `run` against an exact scan of `view`, a hit counting
/// when it scores at least the exact 10th best (ties are interchangeable).
fn recall(db: &Strata, run: &RunId, view: &HashMap<String, Vec<f32>>, queries: &[Vec<f32>]) -> f64 {
    let mut hits = 0;
    for q in queries {
        let mut exact: Vec<f32> = view.values().map(|v| cosine(q, v)).collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        let cut = exact[9];
        let got = db.vectors.search(run, "mem", q, 10, None).unwrap();
        assert_eq!(got.len(), 10);
        for m in &got {
            // Every hit is in the fork's view, with its score there.
            let v = view
                .get(&m.key)
                .unwrap_or_else(|| panic!("{} is not in the view", m.key));
            assert!((cosine(q, v) - m.score).abs() < 1e-4, "{}", m.key);
        }
        hits += got.iter().filter(|m| m.score >= cut - 1e-5).count();
    }
    hits as f64 / (queries.len() * 10) as f64
}

/// A parent of 4,000 16-d vectors (`p…`, metadata `{"g": i % 4}`) and a fork that
/// overwrote 2,000 of them, deleted 300 and added 1,000 (`f…`): 3,000 own vectors, so
/// both sides have a graph.
fn fork_with_own_graph(db: &Strata) -> Setup {
    let dim = 16;
    let n = 4_000;
    let vectors = strata_vector::synthetic::clustered(n + 3_000, dim, 11);
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
        .unwrap();
    let items: Vec<(String, &[f32], Option<Value>)> = vectors[..n]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                format!("p{i:05}"),
                v.as_slice(),
                Some(json!({"g": (i % 4) as i64})),
            )
        })
        .collect();
    db.vectors.upsert_batch(&run, "mem", items).unwrap();
    let mut view: HashMap<String, Vec<f32>> = vectors[..n]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i:05}"), v.clone()))
        .collect();

    let fork = db.runs.fork(&run, None).unwrap();
    // Overwrite 2,000 of the parent's vectors, delete 300, add 1,000: 3,000 own vectors.
    let overwrite: Vec<(String, &[f32], Option<Value>)> = (0..2_000)
        .map(|i| (format!("p{:05}", i * 2), vectors[n + i].as_slice(), None))
        .collect();
    for (k, v, _) in &overwrite {
        view.insert(k.clone(), v.to_vec());
    }
    db.vectors.upsert_batch(&fork, "mem", overwrite).unwrap();
    for i in 0..300 {
        let k = format!("p{:05}", i * 2 + 1);
        assert!(db.vectors.delete(&fork, "mem", &k).unwrap());
        view.remove(&k);
    }
    let added: Vec<(String, &[f32], Option<Value>)> = (0..1_000)
        .map(|i| (format!("f{i:05}"), vectors[n + 2_000 + i].as_slice(), None))
        .collect();
    for (k, v, _) in &added {
        view.insert(k.clone(), v.to_vec());
    }
    db.vectors.upsert_batch(&fork, "mem", added).unwrap();
    Setup {
        run,
        fork,
        view,
        vectors,
    }
}

/// What [`fork_with_own_graph`] made.
struct Setup {
    /// The parent.
    run: RunId,
    /// The fork.
    fork: RunId,
    /// The fork's view: key → vector.
    view: HashMap<String, Vec<f32>>,
    /// Every vector generated (the first 4,000 are the parent's).
    vectors: Vec<Vec<f32>>,
}

/// Queries from the distribution (fresh points), and copies of the fork's own vectors.
fn queries(vectors: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let random = strata_vector::synthetic::clustered(60, 16, 99);
    let own = (0..60).map(|i| vectors[6_000 + i * 7].clone()).collect();
    (random, own)
}

/// Recall ≥ 0.95 for both kinds of queries, and each of the fork's added vectors finds
/// itself first.
fn check_fork(db: &Strata, fork: &RunId, view: &HashMap<String, Vec<f32>>, vectors: &[Vec<f32>]) {
    let (random, own) = queries(vectors);
    let r = recall(db, fork, view, &random);
    assert!(r >= 0.95, "recall@10 for random queries: {r}");
    let r = recall(db, fork, view, &own);
    assert!(
        r >= 0.95,
        "recall@10 for queries about the fork's own vectors: {r}"
    );
    for i in 0..60 {
        let key = format!("f{:05}", i * 7);
        let top = db
            .vectors
            .search(fork, "mem", &view[&key], 1, None)
            .unwrap();
        assert!(top[0].score > 0.9999, "{key}: {:?}", top[0].key);
    }
}

#[test]
fn a_fork_with_thousands_of_own_vectors_keeps_its_recall() {
    let db = Strata::ephemeral().unwrap();
    let Setup {
        run,
        fork,
        view,
        vectors,
    } = fork_with_own_graph(&db);
    // Both sides have a graph: one walk searches them (see strata-vector's `bridge`).
    assert!(strata_vector::internal::is_bridged(
        &db.vectors,
        &fork,
        "mem"
    ));
    assert!(!strata_vector::internal::is_bridged(
        &db.vectors,
        &run,
        "mem"
    ));
    check_fork(&db, &fork, &view, &vectors);
    // A parent vector the fork deleted or overwrote is not found, even by its own
    // vector (the walk passes through it; the exact-match shortcut must not return it).
    for i in 0..60 {
        for k in [format!("p{:05}", i * 2 + 1), format!("p{:05}", i * 2)] {
            let old = &vectors[k[1..].parse::<usize>().unwrap()];
            for m in db.vectors.search(&fork, "mem", old, 5, None).unwrap() {
                let v = view.get(&m.key).expect("a hit outside the fork's view");
                assert!(
                    (cosine(old, v) - m.score).abs() < 1e-4,
                    "{} scored as the parent's",
                    m.key
                );
            }
        }
    }
    // The parent is untouched.
    let p = db
        .vectors
        .search(&run, "mem", &vectors[4_000], 10, None)
        .unwrap();
    assert!(p.iter().all(|m| m.key.starts_with('p')));
    // Filtered searches (two walks) still answer from the fork's view only.
    let f = SearchFilter::eq("g", 1);
    for q in queries(&vectors).0.iter().take(20) {
        let got = db
            .vectors
            .search(&fork, "mem", q, 10, Some(f.clone()))
            .unwrap();
        assert_eq!(got.len(), 10);
        for m in got {
            assert_eq!(m.metadata, Some(json!({"g": 1})), "{}", m.key);
            assert!((cosine(q, &view[&m.key]) - m.score).abs() < 1e-4);
        }
    }
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), view.len() as u64);
}

/// The parent keeps changing after the fork — overwrites (of keys the fork also wrote
/// and of others), deletes enough to compact its graph (renumbering the ids the fork's
/// links point at), inserts near the fork's queries — and the fork's answers stay those
/// of its own view; its bridge is made again for the renumbered graph.
#[test]
fn a_bridged_fork_ignores_later_parent_changes_and_survives_its_compaction() {
    let db = Strata::ephemeral().unwrap();
    let Setup {
        run,
        fork,
        view,
        vectors,
    } = fork_with_own_graph(&db);
    assert!(strata_vector::internal::is_bridged(
        &db.vectors,
        &fork,
        "mem"
    ));
    let n = 4_000;
    // Overwrite 600 keys (every fifth: half of them the fork wrote too) with vectors of
    // other keys, delete 1,500, insert 500 copies of the fork's query points.
    let over: Vec<(String, &[f32], Option<Value>)> = (0..600)
        .map(|i| {
            (
                format!("p{:05}", i * 5),
                vectors[(i * 5 + 3) % n].as_slice(),
                None,
            )
        })
        .collect();
    db.vectors.upsert_batch(&run, "mem", over).unwrap();
    for i in 0..1_500 {
        let k = format!("p{:05}", n - 1 - i);
        db.vectors.delete(&run, "mem", &k).unwrap();
    }
    let (random, own) = queries(&vectors);
    let near: Vec<(String, &[f32], Option<Value>)> = random
        .iter()
        .chain(&own)
        .enumerate()
        .flat_map(|(i, q)| (0..4).map(move |j| (format!("q{i:03}{j}"), q.as_slice(), None)))
        .collect();
    db.vectors.upsert_batch(&run, "mem", near).unwrap();
    check_fork(&db, &fork, &view, &vectors);
    assert!(
        strata_vector::internal::is_bridged(&db.vectors, &fork, "mem"),
        "the bridge is made again after the parent's compaction"
    );
    // A vector the parent deleted after the fork is still the fork's, and found.
    for i in (0..1_500).step_by(50) {
        let k = format!("p{:05}", n - 1 - i);
        if let Some(v) = view.get(&k) {
            let top = db.vectors.search(&fork, "mem", v, 1, None).unwrap();
            assert!(top[0].score > 0.9999, "{k}: {:?}", top[0].key);
        }
    }
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), view.len() as u64);
}

/// The fork rewrites a third of its own vectors: its own index compacts (renumbering
/// the own ids the bridge links), and the bridge is made again on that write.
#[test]
fn a_bridged_fork_that_compacts_its_own_index_stays_bridged() {
    let db = Strata::ephemeral().unwrap();
    let Setup {
        fork,
        mut view,
        vectors,
        ..
    } = fork_with_own_graph(&db);
    // 1,000 of the 3,000 own vectors rewritten (tombstones > 20 % of the own graph).
    let rewrite: Vec<(String, &[f32], Option<Value>)> = (0..1_000)
        .map(|i| {
            (
                format!("p{:05}", i * 2),
                vectors[3_000 + i].as_slice(),
                None,
            )
        })
        .collect();
    for (k, v, _) in &rewrite {
        view.insert(k.clone(), v.to_vec());
    }
    db.vectors.upsert_batch(&fork, "mem", rewrite).unwrap();
    assert!(strata_vector::internal::is_bridged(
        &db.vectors,
        &fork,
        "mem"
    ));
    check_fork(&db, &fork, &view, &vectors);
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), view.len() as u64);
}

/// A fork of a bridged fork searches its own writes, then its parent's view (which walks
/// bridged): answers from its own view only.
#[test]
fn a_fork_of_a_bridged_fork_answers_from_its_own_view() {
    let db = Strata::ephemeral().unwrap();
    let Setup {
        fork,
        view,
        vectors,
        ..
    } = fork_with_own_graph(&db);
    let child = db.runs.fork(&fork, None).unwrap();
    let mut child_view = view.clone();
    // The child overwrites 100 of the fork's own vectors and deletes 100 of its parent's.
    for (i, v) in vectors.iter().enumerate().take(100) {
        let k = format!("f{:05}", i * 3);
        db.vectors.upsert(&child, "mem", &k, v, None).unwrap();
        child_view.insert(k, v.clone());
        let k = format!("p{:05}", 3_001 + i * 2);
        db.vectors.delete(&child, "mem", &k).unwrap();
        child_view.remove(&k);
    }
    let (random, own) = queries(&vectors);
    for qs in [&random, &own] {
        let r = recall(&db, &child, &child_view, qs);
        assert!(r >= 0.95, "recall@10 of the fork's fork: {r}");
    }
    assert!(strata_vector::internal::is_bridged(
        &db.vectors,
        &fork,
        "mem"
    ));
    // The middle fork is untouched by its child.
    check_fork(&db, &fork, &view, &vectors);
}

/// After a reopen the fork's index is made again from its parent's (and bridged), or
/// rebuilt from its records; either way it answers from its view.
#[test]
fn a_bridged_fork_answers_the_same_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (fork, view, vectors) = {
        let db = Strata::open(dir.path()).unwrap();
        let Setup {
            fork,
            view,
            vectors,
            ..
        } = fork_with_own_graph(&db);
        check_fork(&db, &fork, &view, &vectors);
        db.close().unwrap();
        (fork, view, vectors)
    };
    let db = Strata::open(dir.path()).unwrap();
    check_fork(&db, &fork, &view, &vectors);
    if let Some(strata_vector::IndexSource::Forked { .. }) =
        strata_vector::internal::index_source(&db.vectors, &fork, "mem")
    {
        assert!(strata_vector::internal::is_bridged(
            &db.vectors,
            &fork,
            "mem"
        ));
    }
    assert_eq!(db.vectors.count(&fork, "mem").unwrap(), view.len() as u64);
}

/// `k = 0` on a forked collection answers nothing (as on an unforked one) instead of
/// underflowing `want - 1` in the budgeted own walk.
#[test]
fn a_search_for_zero_hits_in_a_fork_answers_nothing() {
    let dim = 8;
    let vectors = strata_vector::synthetic::clustered(400, dim, 5);
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
        .unwrap();
    let items: Vec<(String, &[f32], Option<Value>)> = vectors[..300]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i:05}"), v.as_slice(), None))
        .collect();
    db.vectors.upsert_batch(&run, "mem", items).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    let own: Vec<(String, &[f32], Option<Value>)> = vectors[300..]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("f{i:05}"), v.as_slice(), None))
        .collect();
    db.vectors.upsert_batch(&fork, "mem", own).unwrap();
    assert!(db
        .vectors
        .search(&run, "mem", &vectors[0], 0, None)
        .unwrap()
        .is_empty());
    assert!(db
        .vectors
        .search(&fork, "mem", &vectors[0], 0, None)
        .unwrap()
        .is_empty());
}
