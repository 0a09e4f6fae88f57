//! Values nested 100,000 levels deep through every entry point (issue 11, item 12): each
//! is refused with the nesting-limit `ConstraintViolation` before anything recursive
//! touches it, on a thread with the default 2 MiB stack, and dropping such a value does
//! not overflow the stack either.
use stratadb::prelude::*;
use stratadb::{limits, Txn};

const DEEP: usize = 100_000;

/// Arrays, with an object every 100 levels and outermost, `levels` deep.
fn deep(levels: usize) -> Value {
    let mut v = Value::Int(1);
    for i in 0..levels {
        v = if i % 100 != 1 && i + 1 != levels {
            Value::Array(vec![v])
        } else {
            Value::Object([("k".to_owned(), v)].into_iter().collect())
        };
    }
    v
}

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    match r {
        Err(Error::ConstraintViolation(m)) => {
            assert!(m.contains("levels deep"), "{what}: {m}")
        }
        other => panic!("{what}: expected the nesting-limit error, got {other:?}"),
    }
}

/// Runs `f` on a thread with a 2 MiB stack (the default for spawned threads).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_values_are_refused_at_every_entry_point() {
    on_small_stack(|| {
        let db = Strata::ephemeral().unwrap();
        let run = db.runs.default_run();
        db.json.set("doc", json!({"a": {}})).unwrap();
        db.kv.set("k", 1i64).unwrap();
        db.vectors
            .create_collection(&run, "c", 2, DistanceMetric::Cosine)
            .unwrap();
        let d = || deep(DEEP);

        refused("kv.set", db.kv.set("k", d()));
        refused("kv.set_in", db.kv.set_in(&run, "k", d()));
        refused("kv.put", db.kv.put(&run, "k", d()));
        refused("kv.cas", db.kv.cas(&run, "new", None, d()));
        refused("kv.mset", db.kv.mset(&run, &[("a", d())]));
        refused("json.set", db.json.set("doc2", d()));
        refused("json.set_in", db.json.set_in(&run, "doc2", d()));
        refused("json.set_path", db.json.set_path(&run, "doc", "$.a.b", d()));
        refused("json.merge", db.json.merge(&run, "doc", "$", d()));
        let mut patch = std::collections::HashMap::new();
        patch.insert("x".to_owned(), d());
        refused(
            "json.merge nested",
            db.json.merge(&run, "doc", "$", Value::Object(patch)),
        );
        refused("events.append", db.events.append("s", d()));
        refused("events.append_in", db.events.append_in(&run, "s", d()));
        refused("state.set", db.state.set("c", d()));
        refused("state.set_in", db.state.set_in(&run, "c", d()));
        refused("state.cas", db.state.cas(&run, "c2", None, d()));
        refused(
            "vectors.upsert",
            db.vectors.upsert(&run, "c", "a", &[1.0, 0.0], Some(d())),
        );
        refused(
            "vectors.search filter value",
            db.vectors.search(
                &run,
                "c",
                &[1.0, 0.0],
                1,
                Some(SearchFilter::Eq("f".into(), d())),
            ),
        );
        let mut nested = SearchFilter::exists("f");
        for _ in 0..200 {
            nested = SearchFilter::Not(Box::new(nested));
        }
        refused(
            "vectors.search filter nesting",
            db.vectors.search(&run, "c", &[1.0, 0.0], 1, Some(nested)),
        );
        refused("runs.create", db.runs.create(Some(d())));
        refused("runs.update_metadata", db.runs.update_metadata(&run, d()));
        type Step = fn(&mut Txn<'_>, &RunId, Value) -> Result<()>;
        let steps: [(&str, Step); 7] = [
            ("txn.kv_set", |t, r, v| t.kv_set(r, "k", v)),
            ("txn.json_set", |t, r, v| t.json_set(r, "doc3", v)),
            ("txn.json_set_path", |t, r, v| {
                t.json_set_path(r, "doc", "$.z", v)
            }),
            ("txn.events_append", |t, r, v| {
                t.events_append(r, "s", v).map(|_| ())
            }),
            ("txn.state_set", |t, r, v| {
                t.state_set(r, "c", v).map(|_| ())
            }),
            ("txn.state_cas", |t, r, v| {
                t.state_cas(r, "c3", None, v).map(|_| ())
            }),
            ("txn.vector_upsert", |t, r, v| {
                t.vector_upsert(r, "c", "a", &[1.0, 0.0], Some(v))
            }),
        ];
        for (what, step) in steps {
            refused(what, db.transaction(|t| step(t, &run, d())));
        }
        // Nothing was written.
        assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(1));
        assert_eq!(db.json.get("doc").unwrap().unwrap().value, json!({"a": {}}));
        assert_eq!(db.events.count(&run, "s").unwrap(), 0);
        // The limit itself still works.
        db.kv.set("ok", deep(limits::MAX_NESTING_DEPTH)).unwrap();
        refused(
            "kv.set 129",
            db.kv.set("no", deep(limits::MAX_NESTING_DEPTH + 1)),
        );
    });
}

#[test]
fn deep_values_convert_and_drop_on_a_small_stack() {
    on_small_stack(|| {
        let v = deep(DEEP);
        assert_eq!(v.depth(), DEEP);
        drop(v);
    });
}
