//! `close()` with live clones of the primitive handles (issue 11, item 9): every handle
//! fails afterwards with a clear "closed" error that is not serious, reads included, and
//! the directory lock is released so the database can be opened again at once.
use stratadb::prelude::*;

fn assert_closed<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    let e = r.expect_err(what);
    assert!(
        matches!(e, Error::ConstraintViolation(_)),
        "{what}: wrong error kind: {e:?}"
    );
    assert!(e.to_string().contains("database is closed"), "{what}: {e}");
    assert!(!e.is_serious(), "{what}: closed must not be serious: {e}");
}

#[test]
fn clones_fail_with_closed_error_and_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.set("k", 1i64).unwrap();
    db.vectors
        .create_collection(&run, "c", 2, DistanceMetric::Cosine)
        .unwrap();
    let kv = db.kv.clone();
    let json = db.json.clone();
    let events = db.events.clone();
    let state = db.state.clone();
    let vectors = db.vectors.clone();
    let runs = db.runs.clone();
    db.close().unwrap();

    // The lock is released although the clones are alive: reopen in the same process.
    let db2 = Strata::open(dir.path()).unwrap();
    assert_eq!(db2.kv.get("k").unwrap().unwrap().as_int(), Some(1));

    assert_closed("kv.set", kv.set("k", 2i64));
    assert_closed("kv.get", kv.get("k"));
    assert_closed("json.set", json.set("d", json!({"a": 1})));
    assert_closed("json.get", json.get("d"));
    assert_closed("events.append", events.append("s", json!({"e": 1})));
    assert_closed("events.read", events.read("s", 10));
    assert_closed("state.set", state.set("c", 1i64));
    assert_closed("state.get", state.get("c"));
    assert_closed(
        "vectors.upsert",
        vectors.upsert(&run, "c", "a", &[1.0, 0.0], None),
    );
    assert_closed(
        "vectors.search",
        vectors.search(&run, "c", &[1.0, 0.0], 1, None),
    );
    assert_closed("vectors.list", vectors.list_collections(&run));
    assert_closed("vectors.persist_indexes", vectors.persist_indexes());
    assert_closed("runs.create", runs.create(None));
    assert_closed("runs.get", runs.get(&run));
    // The clones wrote nothing: the reopened database is untouched.
    assert_eq!(db2.kv.get("k").unwrap().unwrap().as_int(), Some(1));
    db2.kv.set("k", 3i64).unwrap();
    db2.close().unwrap();
    let db3 = Strata::open(dir.path()).unwrap();
    assert_eq!(db3.kv.get("k").unwrap().unwrap().as_int(), Some(3));
}

#[test]
fn ephemeral_clones_fail_after_close() {
    let db = Strata::ephemeral().unwrap();
    db.kv.set("k", 1i64).unwrap();
    let kv = db.kv.clone();
    let vectors = db.vectors.clone();
    let run = db.runs.default_run();
    db.close().unwrap();
    assert_closed("kv.set", kv.set("k", 2i64));
    assert_closed("kv.get", kv.get("k"));
    assert_closed("kv.mset", kv.mset(&run, &[]));
    assert_closed("vectors.list", vectors.list_collections(&run));
}

#[test]
fn dropping_the_database_with_live_clones_keeps_them_usable() {
    // Only `close()` closes: dropping `Strata` while a clone lives keeps the data reachable
    // through the clone (and the lock held until the clone is dropped too).
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    let kv = db.kv.clone();
    drop(db);
    kv.set("k", 5i64).unwrap();
    assert!(Strata::open(dir.path()).is_err());
    drop(kv);
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(5));
}
