//! Runs as branches through the facade, on disk in the default (buffered) mode: the
//! time to fork a run of 1,000 and 1,000,000 keys, reads in forks of depth 1 and 8
//! next to the same reads in the unforked run (inherited point hits, misses, prefix
//! listings), and a read through `db.at(version)` and `db.at_time(t)` next to a current
//! read.
//!
//! `cargo bench -p stratadb --bench fork`
//! (`FORK_BENCH_KEYS=100000` for a smaller parent.)
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use stratadb::prelude::*;

fn key(i: u64) -> String {
    format!("user:{:08}:profile", i)
}

/// A run holding `n` keys with 100-byte values, loaded in batches.
fn load(db: &Strata, n: u64) -> RunId {
    let run = db.runs.create(None).expect("run");
    let value = Value::from("x".repeat(100));
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let batch: Vec<(String, Value)> = (i..end).map(|j| (key(j), value.clone())).collect();
        let refs: Vec<(&str, Value)> = batch.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        db.kv.mset(&run, &refs).expect("mset");
        i = end;
    }
    db.checkpoint().expect("checkpoint");
    run
}

fn bench(c: &mut Criterion) {
    let big: u64 = std::env::var("FORK_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Strata::open(dir.path().join("db")).expect("open");
    let small = load(&db, 1_000);
    let large = load(&db, big);

    let mut g = c.benchmark_group("fork");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, run) in [
        ("1k_keys", small),
        (format!("{}_keys", big).leak() as &str, large),
    ] {
        g.bench_function(BenchmarkId::new("fork", name), |b| {
            b.iter(|| db.runs.fork(&run, None).expect("fork"))
        });
    }

    // Strict mode: the fork's commit waits for its fsync.
    let strict_dir = tempfile::tempdir().expect("tempdir");
    let strict = StrataBuilder::new()
        .path(strict_dir.path().join("db"))
        .strict()
        .open()
        .expect("open strict");
    let strict_run = load(&strict, 1_000);
    g.bench_function(BenchmarkId::new("fork_strict", "1k_keys"), |b| {
        b.iter(|| strict.runs.fork(&strict_run, None).expect("fork"))
    });

    // Forks of depth 1 and 8 of the large run, each with a write of its own.
    let mut chain = vec![large];
    for d in 0..8 {
        let f = db
            .runs
            .fork(chain.last().expect("parent"), None)
            .expect("fork");
        db.kv.set_in(&f, &format!("own:{d}"), d).expect("own write");
        chain.push(f);
    }
    let levels = [
        ("unforked", chain[0]),
        ("depth_1", chain[1]),
        ("depth_8", chain[8]),
    ];
    let mut i = 0u64;
    for (name, run) in levels {
        g.bench_function(BenchmarkId::new("get_inherited_hit", name), |b| {
            b.iter(|| {
                i = (i + 7919) % big;
                db.kv.get_in(&run, &key(i)).expect("get").expect("hit")
            })
        });
        g.bench_function(BenchmarkId::new("get_miss", name), |b| {
            b.iter(|| {
                i = (i + 7919) % big;
                assert!(db
                    .kv
                    .get_in(&run, &format!("nope:{i}"))
                    .expect("get")
                    .is_none())
            })
        });
        g.bench_function(BenchmarkId::new("list_prefix_100", name), |b| {
            b.iter(|| {
                i = (i + 7919) % (big / 1000).max(1);
                db.kv
                    .keys(&run, &format!("user:{:05}", i), Some(100))
                    .expect("keys")
            })
        });
    }

    // db.at(v): a read as of an older version next to a current read.
    let v = db.kv.put(&large, "timeline", 1).expect("put");
    for n in 2..100 {
        db.kv.put(&large, "timeline", n).expect("put");
    }
    g.bench_function("get_current", |b| {
        b.iter(|| db.kv.get_in(&large, "timeline").expect("get"))
    });
    let past = db.at(v).expect("at");
    g.bench_function("get_at_view", |b| {
        b.iter(|| past.kv.get_in(&large, "timeline").expect("get"))
    });
    g.bench_function("at_then_get", |b| {
        b.iter(|| {
            db.at(v)
                .expect("at")
                .kv
                .get_in(&large, "timeline")
                .expect("get")
        })
    });
    // db.at_time(t): the version found in the timeline (over every commit the bench
    // made; each fork above is one), then the same read.
    let t = db.at(v).expect("at").time().expect("commit time");
    g.bench_function("at_time_then_get", |b| {
        b.iter(|| {
            db.at_time(t)
                .expect("at_time")
                .kv
                .get_in(&large, "timeline")
                .expect("get")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
