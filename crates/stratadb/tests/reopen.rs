//! Persistence through the facade: every primitive's data, versions and counters survive
//! close + reopen and drop without close; new versions keep increasing; a second open of
//! an open directory fails.
use std::path::Path;

use stratadb::prelude::*;

struct Seen {
    run: RunId,
    kv_version: Version,
    json_version: Version,
}

fn write_all(db: &Strata, run: &RunId) -> Seen {
    let d = db.runs.default_run();
    db.kv.set("dk", "default").unwrap();
    db.kv.put(run, "k", 1i64).unwrap();
    let kv_version = db.kv.put(run, "k", 2i64).unwrap();
    db.kv.set_in(run, "null", Value::Null).unwrap();
    db.kv.incr(run, "n", 41).unwrap();
    db.json.set_in(run, "j", json!({"a": {"b": 1}})).unwrap();
    let json_version = db.json.set_path(run, "j", "$.a.c", "x").unwrap();
    for i in 1..=3i64 {
        db.events.append_in(run, "e", json!({ "i": i })).unwrap();
    }
    db.events.append("de", json!({"d": 1})).unwrap();
    for i in 0..4i64 {
        db.state.set_in(run, "s", i).unwrap();
    }
    db.state.set_in(&d, "ds", "x").unwrap();
    db.vectors
        .create_collection(run, "v", 2, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .upsert(run, "v", "a", &[1.0, 0.0], Some(json!({"t": "a"})))
        .unwrap();
    db.vectors.upsert(run, "v", "b", &[0.0, 1.0], None).unwrap();
    db.runs.update_metadata(run, json!({"m": 1})).unwrap();
    db.runs
        .set_retention(run, RetentionPolicy::KeepLast(50))
        .unwrap();
    Seen {
        run: *run,
        kv_version,
        json_version,
    }
}

fn check_all(db: &Strata, s: &Seen) {
    let run = &s.run;
    assert_eq!(db.kv.get("dk").unwrap().unwrap().as_str(), Some("default"));
    let k = db.kv.get_in(run, "k").unwrap().unwrap();
    assert_eq!(k.as_int(), Some(2));
    assert_eq!(k.version, s.kv_version);
    assert_eq!(db.kv.history(run, "k", None, None).unwrap().len(), 2);
    assert!(db.kv.get_in(run, "null").unwrap().unwrap().is_null());
    assert_eq!(db.kv.get_in(run, "n").unwrap().unwrap().as_int(), Some(41));
    let j = db.json.get_in(run, "j").unwrap().unwrap();
    assert_eq!(j.value, json!({"a": {"b": 1, "c": "x"}}));
    assert_eq!(j.version, s.json_version);
    assert_eq!(db.events.count(run, "e").unwrap(), 3);
    let ev = db.events.read_in(run, "e", 10).unwrap();
    assert_eq!(
        ev.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![
            Version::Sequence(1),
            Version::Sequence(2),
            Version::Sequence(3)
        ]
    );
    assert_eq!(ev[2].value, json!({"i": 3}));
    assert_eq!(db.events.count(&db.runs.default_run(), "de").unwrap(), 1);
    let st = db.state.get_in(run, "s").unwrap().unwrap();
    assert_eq!(st.version, Version::Counter(4));
    assert_eq!(st.as_int(), Some(3));
    assert_eq!(db.state.history(run, "s", None).unwrap().len(), 4);
    assert_eq!(
        db.state.get("ds").unwrap().unwrap().version,
        Version::Counter(1)
    );
    let info = db.vectors.collection_info(run, "v").unwrap().unwrap();
    assert_eq!((info.dimension, info.count), (2, 2));
    assert_eq!(
        db.vectors
            .get(run, "v", "a")
            .unwrap()
            .unwrap()
            .value
            .metadata,
        Some(json!({"t": "a"}))
    );
    let hits = db.vectors.search(run, "v", &[0.1, 1.0], 2, None).unwrap();
    assert_eq!(hits[0].key, "b");
    let ri = db.runs.get(run).unwrap().unwrap().value;
    assert_eq!(ri.metadata, Some(json!({"m": 1})));
    assert_eq!(ri.state, RunState::Active);
    assert_eq!(
        db.runs.get_retention(run).unwrap(),
        RetentionPolicy::KeepLast(50)
    );
    assert!(db.runs.is_active(&db.runs.default_run()).unwrap());
}

/// New writes continue the sequences after a reopen.
fn check_continues(db: &Strata, s: &Seen) {
    let run = &s.run;
    let v = db.kv.put(run, "k", 3i64).unwrap();
    assert!(v > s.kv_version, "{v} after {}", s.kv_version);
    assert!(v > s.json_version);
    let j = db.json.set_in(run, "j2", json!({})).unwrap();
    assert!(j > v);
    assert_eq!(
        db.events.append_in(run, "e", json!({"i": 4})).unwrap(),
        Version::Sequence(4)
    );
    assert_eq!(
        db.state.set_in(run, "s", 4i64).unwrap(),
        Version::Counter(5)
    );
    assert_eq!(db.kv.incr(run, "n", 1).unwrap(), 42);
    let vv = db.vectors.upsert(run, "v", "c", &[1.0, 1.0], None).unwrap();
    assert!(vv > j);
    assert_eq!(db.vectors.count(run, "v").unwrap(), 3);
}

fn reopen_with(close: bool) {
    let dir = tempfile::tempdir().unwrap();
    let seen = {
        let db = Strata::open(dir.path()).unwrap();
        let run = db.runs.create(Some(json!({"m": 0}))).unwrap();
        let s = write_all(&db, &run);
        check_all(&db, &s);
        if close {
            db.close().unwrap();
        } else {
            drop(db);
        }
        s
    };
    {
        let db = Strata::open(dir.path()).unwrap();
        check_all(&db, &seen);
        check_continues(&db, &seen);
        if close {
            db.close().unwrap();
        }
    }
    // And once more: the continued writes persisted too.
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.events.count(&seen.run, "e").unwrap(), 4);
    assert_eq!(
        db.state.get_in(&seen.run, "s").unwrap().unwrap().version,
        Version::Counter(5)
    );
    assert_eq!(
        db.kv.get_in(&seen.run, "n").unwrap().unwrap().as_int(),
        Some(42)
    );
    assert_eq!(db.vectors.count(&seen.run, "v").unwrap(), 3);
    assert_eq!(db.kv.history(&seen.run, "k", None, None).unwrap().len(), 3);
}

#[test]
fn reopen_after_close() {
    reopen_with(true);
}

#[test]
fn reopen_after_drop_without_close() {
    reopen_with(false);
}

fn reopen_in_mode(dir: &Path, b: fn() -> StrataBuilder) {
    let run;
    {
        let db = b().path(dir).open().unwrap();
        run = db.runs.create(None).unwrap();
        db.kv.set_in(&run, "k", "v").unwrap();
        db.events.append_in(&run, "e", json!({})).unwrap();
        db.runs.pause(&run).unwrap();
    }
    let db = b().path(dir).open().unwrap();
    assert_eq!(
        db.kv.get_in(&run, "k").unwrap().unwrap().as_str(),
        Some("v")
    );
    assert_eq!(db.events.count(&run, "e").unwrap(), 1);
    assert_eq!(
        db.runs.get(&run).unwrap().unwrap().value.state,
        RunState::Paused
    );
    assert!(matches!(
        db.kv.set_in(&run, "k", 1i64),
        Err(Error::RunError(_))
    ));
}

#[test]
fn every_durability_mode_reopens() {
    let modes: [fn() -> StrataBuilder; 4] = [
        || StrataBuilder::new().strict(),
        || StrataBuilder::new().buffered(),
        || StrataBuilder::new().buffered_with(5, 10),
        || StrataBuilder::new().no_durability(),
    ];
    for m in modes {
        let dir = tempfile::tempdir().unwrap();
        reopen_in_mode(dir.path(), m);
    }
}

#[test]
fn run_lifecycle_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c);
    {
        let db = Strata::open(dir.path()).unwrap();
        a = db.runs.create(None).unwrap();
        b = db.runs.create(None).unwrap();
        c = db.runs.create(None).unwrap();
        db.runs.fail(&b, "oops").unwrap();
        db.runs.archive(&c).unwrap();
        db.close().unwrap();
    }
    let db = Strata::open(dir.path()).unwrap();
    let list: Vec<RunId> = db
        .runs
        .list(None, None)
        .unwrap()
        .iter()
        .map(|i| i.value.run_id)
        .collect();
    assert_eq!(list, vec![RunId::DEFAULT, a, b, c]);
    let bi = db.runs.get(&b).unwrap().unwrap().value;
    assert_eq!(bi.state, RunState::Failed);
    assert_eq!(bi.error.as_deref(), Some("oops"));
    assert_eq!(
        db.runs.get(&c).unwrap().unwrap().value.state,
        RunState::Archived
    );
    assert!(db.runs.is_active(&a).unwrap());
}

#[test]
fn second_open_fails_with_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    db.kv.set("k", 1i64).unwrap();
    assert!(matches!(Strata::open(dir.path()), Err(Error::Storage(_))));
    assert!(matches!(
        StrataBuilder::new().path(dir.path()).strict().open(),
        Err(Error::Storage(_))
    ));
    // The first handle is unaffected.
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(1));
    db.close().unwrap();
    // Once closed, the directory can be opened again.
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(1));
    drop(db);
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(1));
}

#[test]
fn ephemeral_and_temp() {
    let db = Strata::ephemeral().unwrap();
    assert!(db.is_ephemeral());
    db.kv.set("k", 1i64).unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    let db = StrataBuilder::new().no_durability().open_temp().unwrap();
    assert!(!db.is_ephemeral());
    let p = db.path().to_path_buf();
    assert!(p.exists());
    db.kv.set("k", 1i64).unwrap();
    drop(db);
    assert!(!p.exists());
    assert!(matches!(
        StrataBuilder::new().open(),
        Err(Error::ConstraintViolation(_))
    ));
}

#[test]
fn recreated_collection_reopens_with_its_new_shape() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    {
        let db = Strata::open(dir.path()).unwrap();
        db.vectors
            .create_collection(&run, "c", 2, DistanceMetric::Cosine)
            .unwrap();
        db.vectors
            .upsert(&run, "c", "old", &[1.0, 0.0], None)
            .unwrap();
        db.vectors.delete_collection(&run, "c").unwrap();
        db.vectors
            .create_collection(&run, "c", 3, DistanceMetric::Euclidean)
            .unwrap();
        db.vectors
            .upsert(&run, "c", "new", &[1.0, 0.0, 0.0], None)
            .unwrap();
        drop(db);
    }
    let db = Strata::open(dir.path()).unwrap();
    let i = db.vectors.collection_info(&run, "c").unwrap().unwrap();
    assert_eq!(
        (i.dimension, i.metric, i.count),
        (3, DistanceMetric::Euclidean, 1)
    );
    assert!(db.vectors.get(&run, "c", "old").unwrap().is_none());
    let r = db
        .vectors
        .search(&run, "c", &[1.0, 0.0, 0.0], 5, None)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].key, "new");
}
