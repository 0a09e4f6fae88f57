//! Hot paths of the primitives on an ephemeral engine (no disk I/O): KV get/set, JSON
//! get_path/set_path on a ~1 KiB document, event append and range.
//!
//! `cargo bench -p strata-primitives --bench primitives`
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use strata_core::{json, RunId, Value};
use strata_primitives::Engine;
use strata_storage::Storage;

fn doc_1kib() -> Value {
    let items: Vec<Value> = (0..26)
        .map(|i| json!({"id": i, "name": format!("item-{i}"), "tags": ["a", "b"], "score": 0.5}))
        .collect();
    json!({"user": {"name": "Alice", "address": {"city": "NYC", "zip": "10001"}}, "items": items})
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(Storage::ephemeral()).expect("engine");
    let kv = strata_primitives::internal::kv(engine.clone());
    let json = strata_primitives::internal::json(engine.clone());
    let events = strata_primitives::internal::events(engine.clone());
    let run = RunId::DEFAULT;
    for i in 0..10_000 {
        kv.put(&run, &format!("key:{i:06}"), i as i64).expect("put");
    }
    let doc = doc_1kib();
    let size = strata_core::codec::encode(&doc).expect("encode").len();
    json.set_in(&run, "doc", doc).expect("set doc");
    for _ in 0..1_000 {
        events
            .append_in(&run, "bench", json!({"k": "v"}))
            .expect("append");
    }

    let mut g = c.benchmark_group("primitives");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut i = 0u64;
    g.bench_function("kv_get", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            kv.get_in(&run, &format!("key:{i:06}")).expect("get")
        })
    });
    g.bench_function("kv_set", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            kv.put(&run, &format!("key:{i:06}"), i as i64).expect("set")
        })
    });
    g.bench_function(format!("json_get_path_{size}B_doc"), |b| {
        b.iter(|| {
            json.get_path(&run, "doc", "$.user.address.city")
                .expect("get_path")
        })
    });
    g.bench_function(format!("json_set_path_{size}B_doc"), |b| {
        b.iter(|| {
            json.set_path(&run, "doc", "$.user.address.city", "Boston")
                .expect("set_path")
        })
    });
    g.bench_function("event_append", |b| {
        b.iter(|| {
            events
                .append_in(&run, "append", json!({"tool": "search", "n": 1}))
                .expect("append")
        })
    });
    g.bench_function("event_range_100", |b| {
        b.iter(|| events.range(&run, "bench", 400, 499).expect("range"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
