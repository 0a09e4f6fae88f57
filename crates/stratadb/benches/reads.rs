//! One-shot reads through the facade on a database that lives in sorted runs (the
//! shape of `benches/compare`'s read workloads, smaller): random point reads of keys
//! that exist, of keys that do not (every run's key filter says no), and listings of
//! up to 100 keys under a prefix. Each call is its own snapshot.
//!
//! `cargo bench -p stratadb --bench reads`
//! (`READS_BENCH_KEYS=1000000` for the compare size; default 200,000.)
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stratadb::prelude::*;

/// Keys of `benches/compare`: 1,000 groups of keys sharing a 7-byte prefix.
fn key(i: u64, groups: u64) -> String {
    format!("p{:05}:{:017}", i % groups, i)
}

/// A small deterministic generator (xorshift64*): the same keys on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("READS_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let groups = (n / 100).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        // A small memtable: the data ends in several runs, as a grown database's does.
        let db = StrataBuilder::new()
            .path(&path)
            .no_durability()
            .memtable_size(4 << 20)
            .open()
            .expect("open");
        let mut order: Vec<u64> = (0..n).collect();
        let mut shuffle = Rng(42);
        for i in (1..order.len()).rev() {
            order.swap(i, shuffle.below(i as u64 + 1) as usize);
        }
        let value = Value::Bytes(vec![7u8; 100]);
        for chunk in order.chunks(1_000) {
            let batch: Vec<(String, Value)> = chunk
                .iter()
                .map(|&i| (key(i, groups), value.clone()))
                .collect();
            let refs: Vec<(&str, Value)> =
                batch.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            db.kv.mset(&RunId::DEFAULT, &refs).expect("mset");
        }
        db.close().expect("close");
    }
    let db = StrataBuilder::new().path(&path).open().expect("reopen");
    let run = db.runs.default_run();
    let mut rng = Rng(7);

    let mut g = c.benchmark_group("reads");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    g.bench_function("get_present", |b| {
        b.iter(|| {
            let k = key(rng.below(n), groups);
            db.kv.get_in(&run, &k).expect("get").expect("present")
        })
    });
    g.bench_function("get_absent", |b| {
        b.iter(|| {
            let k = key(n + rng.below(n), groups);
            assert!(db.kv.get_in(&run, &k).expect("get").is_none());
        })
    });
    g.bench_function("keys_prefix_100", |b| {
        b.iter(|| {
            let p = format!("p{:05}:", rng.below(groups));
            db.kv.keys(&run, &p, Some(100)).expect("keys")
        })
    });
    g.finish();
    db.close().expect("close");
}

criterion_group!(benches, bench);
criterion_main!(benches);
