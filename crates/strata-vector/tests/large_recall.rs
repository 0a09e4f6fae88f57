//! The large recall run: 100,000 clustered 384-d vectors (ignored by default; CI runs it in
//! release with `--ignored`; about 30 s of one core). `examples/recall.rs` prints the
//! full study with throughput figures.
use std::collections::HashSet;

use strata_core::json;
use strata_vector::{
    CollectionConfig, CollectionIndex, DistanceMetric, SearchFilter, SearchStrategy,
};

fn dataset(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    strata_vector::synthetic::clustered(n, dim, seed)
}

fn recall(c: &CollectionIndex, queries: &[Vec<f32>], f: Option<&SearchFilter>) -> f64 {
    let mut hit = 0;
    for q in queries {
        let truth: HashSet<String> = c
            .search_using(q, 10, f, SearchStrategy::Exact)
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        let got = c.search(q, 10, f).unwrap();
        assert_eq!(got.len(), 10);
        hit += got.iter().filter(|p| truth.contains(&p.0)).count();
    }
    hit as f64 / (queries.len() * 10) as f64
}

#[test]
#[ignore = "large: 100k x 384 (run in release with --ignored)"]
fn recall_100k_384() {
    let n = 100_000;
    let mut data = dataset(n + 100, 384, 42);
    let queries = data.split_off(n);
    let mut c = CollectionIndex::new(CollectionConfig::new(384, DistanceMetric::Cosine)).unwrap();
    for (i, v) in data.iter().enumerate() {
        c.upsert(
            &format!("doc:{i}"),
            v,
            Some(json!({"bucket": (i % 100) as i64})),
        )
        .unwrap();
    }
    c.repair_reachability();
    assert_eq!(c.verify_reachability(), 0);
    let r = recall(&c, &queries, None);
    assert!(r >= 0.95, "recall@10 {r}");
    for i in (0..n).step_by(997) {
        let got = c.search(&data[i], 1, None).unwrap();
        assert_eq!(got[0].0, format!("doc:{i}"));
    }
    let f = SearchFilter::eq("bucket", 42);
    assert!(recall(&c, &queries, Some(&f)) >= 0.99);
    for i in (0..n).step_by(4) {
        assert!(c.delete(&format!("doc:{i}")));
    }
    assert_eq!(c.verify_reachability(), 0);
    let r = recall(&c, &queries, None);
    assert!(r >= 0.95, "recall@10 after deleting 25% {r}");
}
