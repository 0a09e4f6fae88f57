//! Vector search in a forked collection large enough to search by graph (more own
//! vectors than the exact-scan threshold): recall against an exact scan of the fork's
//! view, for queries from the collection's distribution and for queries about what the
//! fork itself wrote (the fork's own index is first walked with a budget sized to its
//! share of the collection, and again in full when its hits fill the answer).
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

#[test]
fn a_fork_with_thousands_of_own_vectors_keeps_its_recall() {
    let dim = 16;
    let n = 4_000;
    let vectors = strata_vector::synthetic::clustered(n + 3_000, dim, 11);
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", dim, DistanceMetric::Cosine)
        .unwrap();
    let items: Vec<(String, &[f32], Option<Value>)> = vectors[..n]
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("p{i:05}"), v.as_slice(), None))
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

    // Queries from the distribution (fresh points), and copies of the fork's own vectors.
    let random: Vec<Vec<f32>> = strata_vector::synthetic::clustered(60, dim, 99);
    let own: Vec<Vec<f32>> = (0..60)
        .map(|i| vectors[n + 2_000 + i * 7].clone())
        .collect();
    let r = recall(&db, &fork, &view, &random);
    assert!(r >= 0.95, "recall@10 for random queries: {r}");
    let r = recall(&db, &fork, &view, &own);
    assert!(
        r >= 0.95,
        "recall@10 for queries about the fork's own vectors: {r}"
    );
    // A stored vector of the fork finds itself first.
    for i in 0..60 {
        let key = format!("f{:05}", i * 7);
        let top = db
            .vectors
            .search(&fork, "mem", &view[&key], 1, None)
            .unwrap();
        assert!(top[0].score > 0.9999, "{key}: {:?}", top[0].key);
    }
    // The parent is untouched.
    let p = db
        .vectors
        .search(&run, "mem", &vectors[n], 10, None)
        .unwrap();
    assert!(p.iter().all(|m| m.key.starts_with('p')));
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
