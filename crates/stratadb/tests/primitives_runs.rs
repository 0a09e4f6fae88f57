//! Run management through the facade: RunInfo, lifecycle, write enforcement in every
//! primitive, isolation between runs, listing, metadata and retention.
use std::sync::Arc;
use std::time::Duration;

use stratadb::prelude::*;
use stratadb::RunInfo;

fn db() -> Strata {
    Strata::ephemeral().unwrap()
}

/// The primitives over an engine whose clock the test sets (the facade keeps its
/// engine private; `strata_primitives::internal` builds the same handles).
struct ClockDb {
    kv: KV,
    json: Json,
    state: State,
    runs: Runs,
    engine: Arc<strata_primitives::Engine>,
}

impl ClockDb {
    fn new() -> Self {
        use strata_primitives::internal;
        let engine = strata_primitives::Engine::new(strata_storage::Storage::ephemeral()).unwrap();
        ClockDb {
            kv: internal::kv(engine.clone()),
            json: internal::json(engine.clone()),
            state: internal::state(engine.clone()),
            runs: internal::runs(engine.clone()),
            engine,
        }
    }

    fn engine(&self) -> &Arc<strata_primitives::Engine> {
        &self.engine
    }
}

fn info(db: &Strata, run: &RunId) -> RunInfo {
    db.runs.get(run).unwrap().unwrap().value
}

#[test]
fn run_info_fields() {
    let db = db();
    let before = Timestamp::now();
    let run = db
        .runs
        .create(Some(json!({"name": "exp-1", "user": "alice"})))
        .unwrap();
    let after = Timestamp::now();
    let got = db.runs.get(&run).unwrap().unwrap();
    assert!(got.version.is_txn());
    let i = got.value;
    assert_eq!(i.run_id, run);
    assert_eq!(i.state, RunState::Active);
    assert!(i.created_at >= before && i.created_at <= after);
    assert_eq!(i.updated_at, i.created_at);
    assert_eq!(i.metadata, Some(json!({"name": "exp-1", "user": "alice"})));
    assert_eq!(i.error, None);
    assert_eq!(i.retention, RetentionPolicy::KeepAll);
    assert!(db.runs.exists(&run).unwrap());
    assert!(db.runs.is_active(&run).unwrap());

    let mut deep = Value::Null;
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        db.runs.create(Some(deep.clone())),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.runs.update_metadata(&run, deep),
        Err(Error::ConstraintViolation(_))
    ));
    let plain = db.runs.create(None).unwrap();
    assert_ne!(plain, run);
    assert_eq!(info(&db, &plain).metadata, None);

    std::thread::sleep(Duration::from_millis(2));
    db.runs.fail(&run, "Connection timeout").unwrap();
    let f = info(&db, &run);
    assert_eq!(f.state, RunState::Failed);
    assert_eq!(f.error.as_deref(), Some("Connection timeout"));
    assert_eq!(f.created_at, i.created_at);
    assert!(f.updated_at > f.created_at);
    assert!(!db.runs.is_active(&run).unwrap());
    assert!(db.runs.exists(&run).unwrap());

    let unknown = RunId::new();
    assert!(db.runs.get(&unknown).unwrap().is_none());
    assert!(!db.runs.exists(&unknown).unwrap());
    assert!(!db.runs.is_active(&unknown).unwrap());
}

/// Brings a fresh run into `state` from Active.
fn run_in(db: &Strata, state: RunState) -> RunId {
    let run = db.runs.create(None).unwrap();
    match state {
        RunState::Active => {}
        RunState::Paused => assert!(db.runs.pause(&run).unwrap().is_txn()),
        RunState::Completed => assert!(db.runs.close(&run).unwrap().is_txn()),
        RunState::Failed => assert!(db.runs.fail(&run, "boom").unwrap().is_txn()),
        RunState::Cancelled => assert!(db.runs.cancel(&run).unwrap().is_txn()),
        RunState::Archived => assert!(db.runs.archive(&run).unwrap().is_txn()),
    }
    assert_eq!(info(db, &run).state, state);
    run
}

fn go(db: &Strata, run: &RunId, to: RunState) -> Result<Version> {
    match to {
        RunState::Active => db.runs.resume(run),
        RunState::Paused => db.runs.pause(run),
        RunState::Completed => db.runs.close(run),
        RunState::Failed => db.runs.fail(run, "err"),
        RunState::Cancelled => db.runs.cancel(run),
        RunState::Archived => db.runs.archive(run),
    }
}

#[test]
fn transition_table() {
    use RunState::*;
    let all = [Active, Paused, Completed, Failed, Cancelled, Archived];
    let allowed = |from: RunState, to: RunState| {
        matches!(
            (from, to),
            (Active, Paused)
                | (Paused, Active)
                | (Active | Paused, Completed | Failed | Cancelled)
                | (Active | Paused | Completed | Failed | Cancelled, Archived)
        )
    };
    let db = db();
    for from in all {
        for to in all {
            let run = run_in(&db, from);
            let r = go(&db, &run, to);
            if allowed(from, to) {
                r.unwrap_or_else(|e| panic!("{from:?} -> {to:?} failed: {e}"));
                assert_eq!(info(&db, &run).state, to, "{from:?} -> {to:?}");
            } else {
                assert!(
                    matches!(r, Err(Error::RunError(_))),
                    "{from:?} -> {to:?} gave {r:?}"
                );
                assert_eq!(info(&db, &run).state, from, "{from:?} -> {to:?}");
            }
        }
    }
    // Paused -> Active -> Paused -> Active works repeatedly.
    let run = db.runs.create(None).unwrap();
    for _ in 0..3 {
        db.runs.pause(&run).unwrap();
        db.runs.resume(&run).unwrap();
    }
    assert!(db.runs.is_active(&run).unwrap());
    // Transitions of an unknown run are RunError.
    assert!(matches!(
        db.runs.close(&RunId::new()),
        Err(Error::RunError(_))
    ));
}

fn populate(db: &Strata, run: &RunId) {
    db.kv.set_in(run, "k", "v").unwrap();
    db.json.set_in(run, "j", json!({"a": 1})).unwrap();
    db.events.append_in(run, "e", json!({"x": 1})).unwrap();
    db.state.set_in(run, "s", 1i64).unwrap();
    db.vectors
        .create_collection(run, "c", 2, DistanceMetric::Cosine)
        .unwrap();
    db.vectors.upsert(run, "c", "v", &[1.0, 0.0], None).unwrap();
}

fn assert_writes_refused(db: &Strata, run: &RunId) {
    let refused = |r: Result<()>, what: &str| {
        assert!(matches!(r, Err(Error::RunError(_))), "{what}: {r:?}");
    };
    refused(db.kv.set_in(run, "k", "w"), "kv.set_in");
    refused(db.kv.put(run, "k2", 1i64).map(|_| ()), "kv.put");
    refused(db.kv.delete_in(run, "k").map(|_| ()), "kv.delete_in");
    refused(db.kv.incr(run, "n", 1).map(|_| ()), "kv.incr");
    refused(db.kv.cas(run, "k", None, 1i64).map(|_| ()), "kv.cas");
    refused(
        db.kv.mset(run, &[("a", Value::Int(1))]).map(|_| ()),
        "kv.mset",
    );
    refused(db.kv.mdelete(run, &["k"]).map(|_| ()), "kv.mdelete");
    refused(
        db.json.set_in(run, "j", json!({})).map(|_| ()),
        "json.set_in",
    );
    refused(
        db.json.set_path(run, "j", "$.a", 2i64).map(|_| ()),
        "json.set_path",
    );
    refused(
        db.json.delete_path(run, "j", "$.a").map(|_| ()),
        "json.delete_path",
    );
    refused(
        db.json.merge(run, "j", "$", json!({"b": 1})).map(|_| ()),
        "json.merge",
    );
    refused(db.json.delete(run, "j").map(|_| ()), "json.delete");
    refused(
        db.events.append_in(run, "e", json!({})).map(|_| ()),
        "events.append_in",
    );
    refused(db.state.set_in(run, "s", 2i64).map(|_| ()), "state.set_in");
    refused(
        db.state.cas(run, "s", Some(1), 2i64).map(|_| ()),
        "state.cas",
    );
    refused(db.state.delete(run, "s").map(|_| ()), "state.delete");
    refused(
        db.vectors
            .create_collection(run, "c2", 2, DistanceMetric::Cosine)
            .map(|_| ()),
        "vectors.create_collection",
    );
    refused(
        db.vectors
            .upsert(run, "c", "v2", &[0.0, 1.0], None)
            .map(|_| ()),
        "vectors.upsert",
    );
    refused(
        db.vectors.delete(run, "c", "v").map(|_| ()),
        "vectors.delete",
    );
    refused(
        db.vectors.delete_collection(run, "c").map(|_| ()),
        "vectors.delete_collection",
    );
    refused(
        db.transaction(|t| t.kv_set(run, "tx", 1i64)),
        "transaction kv_set",
    );
}

fn assert_reads_work(db: &Strata, run: &RunId) {
    assert_eq!(db.kv.get_in(run, "k").unwrap().unwrap().as_str(), Some("v"));
    assert_eq!(db.kv.history(run, "k", None, None).unwrap().len(), 1);
    assert_eq!(db.kv.keys(run, "", None).unwrap(), vec!["k"]);
    assert_eq!(
        db.json.get_path(run, "j", "$.a").unwrap().map(|v| v.value),
        Some(Value::Int(1))
    );
    assert_eq!(db.events.count(run, "e").unwrap(), 1);
    assert_eq!(db.events.read_in(run, "e", 10).unwrap().len(), 1);
    assert_eq!(
        db.state.get_in(run, "s").unwrap().unwrap().as_int(),
        Some(1)
    );
    assert_eq!(db.vectors.count(run, "c").unwrap(), 1);
    assert!(db.vectors.get(run, "c", "v").unwrap().is_some());
    assert_eq!(
        db.vectors.search(run, "c", &[1.0, 0.0], 1, None).unwrap()[0].key,
        "v"
    );
    assert_eq!(db.vectors.list_collections(run).unwrap().len(), 1);
}

#[test]
fn non_active_runs_refuse_writes_but_allow_reads() {
    let db = db();
    for state in [
        RunState::Paused,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Archived,
    ] {
        let run = db.runs.create(None).unwrap();
        populate(&db, &run);
        go(&db, &run, state).unwrap();
        assert_writes_refused(&db, &run);
        assert_reads_work(&db, &run);
    }
    // A resumed run accepts writes again.
    let run = db.runs.create(None).unwrap();
    populate(&db, &run);
    db.runs.pause(&run).unwrap();
    assert_writes_refused(&db, &run);
    db.runs.resume(&run).unwrap();
    db.kv.set_in(&run, "k", "again").unwrap();
    db.vectors
        .upsert(&run, "c", "v3", &[0.5, 0.5], None)
        .unwrap();
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 2);
}

#[test]
fn unknown_run_is_run_error() {
    let db = db();
    let ghost = RunId::new();
    assert!(matches!(
        db.kv.set_in(&ghost, "k", 1i64),
        Err(Error::RunError(_))
    ));
    assert!(matches!(db.kv.get_in(&ghost, "k"), Err(Error::RunError(_))));
    assert!(matches!(
        db.json.set_in(&ghost, "k", json!({})),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.events.append_in(&ghost, "s", json!({})),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.state.set_in(&ghost, "s", 1i64),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.vectors
            .create_collection(&ghost, "c", 2, DistanceMetric::Cosine),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.vectors.upsert(&ghost, "c", "k", &[1.0, 0.0], None),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.runs.update_metadata(&ghost, json!({})),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.runs.set_retention(&ghost, RetentionPolicy::KeepLast(1)),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.runs.get_retention(&ghost),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.transaction(|t| t.events_append(&ghost, "s", json!({}))),
        Err(Error::RunError(_))
    ));
}

#[test]
fn default_run() {
    let db = db();
    let d = db.runs.default_run();
    assert!(d.is_default());
    assert!(db.runs.exists(&d).unwrap());
    assert!(db.runs.is_active(&d).unwrap());
    assert_eq!(info(&db, &d).state, RunState::Active);
    for to in [
        RunState::Paused,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Archived,
    ] {
        assert!(matches!(go(&db, &d, to), Err(Error::RunError(_))), "{to:?}");
    }
    assert!(db.runs.is_active(&d).unwrap());
    db.kv.set("still", "writable").unwrap();
    assert!(db
        .runs
        .list(None, None)
        .unwrap()
        .iter()
        .any(|i| i.value.run_id == d));
}

#[test]
fn list_filters_limits_and_orders() {
    let db = db();
    let mut created = Vec::new();
    // Many runs are created within the same microsecond: the order must still hold.
    for _ in 0..300 {
        created.push(db.runs.create(None).unwrap());
    }
    db.runs.pause(&created[3]).unwrap();
    db.runs.pause(&created[7]).unwrap();
    db.runs.close(&created[5]).unwrap();

    let all = db.runs.list(None, None).unwrap();
    let ids: Vec<RunId> = all.iter().map(|i| i.value.run_id).collect();
    assert_eq!(ids.len(), 301);
    assert_eq!(ids[0], RunId::DEFAULT, "the default run is the oldest");
    assert_eq!(&ids[1..], &created[..], "creation order");

    let paused: Vec<RunId> = db
        .runs
        .list(Some(RunState::Paused), None)
        .unwrap()
        .iter()
        .map(|i| i.value.run_id)
        .collect();
    assert_eq!(paused, vec![created[3], created[7]]);
    let completed = db.runs.list(Some(RunState::Completed), None).unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].value.run_id, created[5]);
    assert!(db
        .runs
        .list(Some(RunState::Archived), None)
        .unwrap()
        .is_empty());
    let active = db.runs.list(Some(RunState::Active), Some(4)).unwrap();
    assert_eq!(
        active.iter().map(|i| i.value.run_id).collect::<Vec<_>>(),
        vec![RunId::DEFAULT, created[0], created[1], created[2]]
    );
    assert_eq!(db.runs.list(None, Some(0)).unwrap().len(), 0);
    assert_eq!(
        db.runs.list(Some(RunState::Active), None).unwrap().len(),
        301 - 3
    );
}

#[test]
fn update_metadata() {
    let db = db();
    let run = db.runs.create(Some(json!({"v": 1}))).unwrap();
    let created = info(&db, &run);
    std::thread::sleep(Duration::from_millis(2));
    db.runs
        .update_metadata(&run, json!({"status": "processing"}))
        .unwrap();
    let i = info(&db, &run);
    assert_eq!(i.metadata, Some(json!({"status": "processing"})));
    assert!(i.updated_at > created.updated_at);
    assert_eq!(i.created_at, created.created_at);
    // Allowed in a finished run too.
    db.runs.close(&run).unwrap();
    db.runs.update_metadata(&run, Value::from("done")).unwrap();
    assert_eq!(info(&db, &run).metadata, Some(Value::from("done")));
    assert_eq!(info(&db, &run).state, RunState::Completed);
}

#[test]
fn retention_set_get_keep_last() {
    let db = db();
    let run = db.runs.create(None).unwrap();
    assert_eq!(
        db.runs.get_retention(&run).unwrap(),
        RetentionPolicy::KeepAll
    );
    let mut versions = Vec::new();
    for i in 0..10i64 {
        versions.push(db.kv.put(&run, "k", i).unwrap());
        db.state.set_in(&run, "s", i).unwrap();
        db.json.set_in(&run, "j", json!({ "i": i })).unwrap();
    }
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 10);

    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(3))
        .unwrap();
    assert_eq!(
        db.runs.get_retention(&run).unwrap(),
        RetentionPolicy::KeepLast(3)
    );
    let h = db.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(
        h.iter().map(|v| v.as_int().unwrap()).collect::<Vec<_>>(),
        vec![9, 8, 7]
    );
    assert_eq!(db.state.history(&run, "s", None).unwrap().len(), 3);
    assert_eq!(db.json.history(&run, "j", None, None).unwrap().len(), 3);
    // Old versions are gone for get_at too; kept ones remain readable.
    assert!(matches!(
        db.kv.get_at(&run, "k", versions[0]),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        db.kv.get_at(&run, "k", versions[8]).unwrap().as_int(),
        Some(8)
    );
    let mut newer = Vec::new();
    for i in 10..30i64 {
        newer.push(db.kv.put(&run, "k", i).unwrap());
        db.state.set_in(&run, "s", i).unwrap();
        let h = db.kv.history(&run, "k", None, None).unwrap();
        assert!(h.len() <= 3);
        assert_eq!(h[0].as_int(), Some(i));
        assert!(db.state.history(&run, "s", Some(100)).unwrap().len() <= 3);
    }
    // Point reads agree with the history even before garbage collection has run.
    assert!(matches!(
        db.kv.get_at(&run, "k", newer[10]),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        db.kv.get_at(&run, "k", newer[17]).unwrap().as_int(),
        Some(27)
    );
    // The state counter is unaffected by retention.
    assert_eq!(
        db.state.get_in(&run, "s").unwrap().unwrap().version,
        Version::Counter(30)
    );
    // Other runs are unaffected.
    for i in 0..5i64 {
        db.kv.set("k", i).unwrap();
    }
    assert_eq!(
        db.kv
            .history(&db.runs.default_run(), "k", None, None)
            .unwrap()
            .len(),
        5
    );
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 1);
    db.runs
        .set_retention(&run, RetentionPolicy::KeepAll)
        .unwrap();
    assert_eq!(
        db.runs.get_retention(&run).unwrap(),
        RetentionPolicy::KeepAll
    );
    // Retention can be set on a finished run.
    db.runs.close(&run).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(2))
        .unwrap();
    assert_eq!(
        db.runs.get_retention(&run).unwrap(),
        RetentionPolicy::KeepLast(2)
    );
}

#[test]
fn retention_keep_for_with_injected_clock() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    let mut versions = Vec::new();
    for i in 0..5i64 {
        versions.push(db.kv.put(&run, "k", i).unwrap());
        db.state.set_in(&run, "s", i).unwrap();
    }
    let hour = Duration::from_secs(3600);
    db.runs
        .set_retention(&run, RetentionPolicy::KeepFor(3 * hour))
        .unwrap();
    assert_eq!(
        db.runs.get_retention(&run).unwrap(),
        RetentionPolicy::KeepFor(3 * hour)
    );
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 5);

    // Two hours later: everything is still within 3 h.
    let now = Timestamp::now().as_micros();
    let later = now + 2 * 3600 * 1_000_000;
    db.engine()
        .set_clock(Arc::new(move || Timestamp::from_micros(later)));
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 5);
    assert_eq!(db.state.history(&run, "s", None).unwrap().len(), 5);

    // With a 1 h window, only the newest version survives.
    db.runs
        .set_retention(&run, RetentionPolicy::KeepFor(hour))
        .unwrap();
    let h = db.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].as_int(), Some(4));
    assert_eq!(h[0].version, versions[4]);
    let s = db.state.history(&run, "s", None).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].version, Version::Counter(5));
    assert!(matches!(
        db.kv.get_at(&run, "k", versions[1]),
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.kv.get_in(&run, "k").unwrap().unwrap().as_int(), Some(4));
    // The default run keeps everything.
    for i in 0..3i64 {
        db.kv.set("k", i).unwrap();
    }
    assert_eq!(
        db.kv
            .history(&db.runs.default_run(), "k", None, None)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn isolation_between_runs() {
    let db = db();
    let a = db.runs.create(None).unwrap();
    let b = db.runs.create(None).unwrap();
    populate(&db, &a);
    let d = db.runs.default_run();
    for other in [&b, &d] {
        assert!(db.kv.get_in(other, "k").unwrap().is_none());
        assert!(db.kv.keys(other, "", None).unwrap().is_empty());
        assert!(db.kv.history(other, "k", None, None).unwrap().is_empty());
        assert!(db.json.get_in(other, "j").unwrap().is_none());
        assert!(matches!(
            db.json.get_path(other, "j", "$.a"),
            Err(Error::NotFound(_))
        ));
        assert_eq!(db.events.count(other, "e").unwrap(), 0);
        assert!(db.events.streams(other).unwrap().is_empty());
        assert!(db.events.read_in(other, "e", 10).unwrap().is_empty());
        assert!(db.state.get_in(other, "s").unwrap().is_none());
        assert!(db.vectors.list_collections(other).unwrap().is_empty());
        assert!(db.vectors.collection_info(other, "c").unwrap().is_none());
        assert!(matches!(
            db.vectors.get(other, "c", "v"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            db.vectors.search(other, "c", &[1.0, 0.0], 1, None),
            Err(Error::NotFound(_))
        ));
    }
    // Same names in another run are independent.
    db.kv.set_in(&b, "k", "b").unwrap();
    assert_eq!(
        db.events.append_in(&b, "e", json!({})).unwrap(),
        Version::Sequence(1)
    );
    assert_eq!(db.state.set_in(&b, "s", 5i64).unwrap(), Version::Counter(1));
    db.vectors
        .create_collection(&b, "c", 3, DistanceMetric::Euclidean)
        .unwrap();
    db.vectors
        .upsert(&b, "c", "v", &[0.0, 0.0, 1.0], None)
        .unwrap();
    assert_eq!(db.kv.get_in(&a, "k").unwrap().unwrap().as_str(), Some("v"));
    assert_eq!(db.events.count(&a, "e").unwrap(), 1);
    assert_eq!(db.state.get_in(&a, "s").unwrap().unwrap().as_int(), Some(1));
    assert_eq!(
        db.vectors
            .collection_info(&a, "c")
            .unwrap()
            .unwrap()
            .dimension,
        2
    );
    assert_eq!(
        db.vectors.get(&a, "c", "v").unwrap().unwrap().value.vector,
        vec![1.0, 0.0]
    );
    assert_eq!(db.vectors.count(&b, "c").unwrap(), 1);
    // Deleting in one run does not touch the other.
    db.vectors.delete_collection(&b, "c").unwrap();
    db.kv.delete_in(&b, "k").unwrap();
    assert_eq!(db.vectors.count(&a, "c").unwrap(), 1);
    assert!(db.kv.exists_in(&a, "k").unwrap());
}

#[test]
fn keep_for_applies_as_the_clock_moves() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    let hour = Duration::from_secs(3600);
    db.runs
        .set_retention(&run, RetentionPolicy::KeepFor(hour))
        .unwrap();
    let mut kv = Vec::new();
    let mut js = Vec::new();
    for i in 0..4i64 {
        kv.push(db.kv.put(&run, "k", i).unwrap());
        js.push(db.json.set_in(&run, "j", json!({ "i": i })).unwrap());
        db.state.set_in(&run, "s", i).unwrap();
    }
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 4);
    assert_eq!(db.kv.get_at(&run, "k", kv[0]).unwrap().as_int(), Some(0));

    let later = Timestamp::now().as_micros() + 2 * 3600 * 1_000_000;
    db.engine()
        .set_clock(Arc::new(move || Timestamp::from_micros(later)));
    let h = db.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].version, kv[3]);
    assert_eq!(db.json.history(&run, "j", None, None).unwrap().len(), 1);
    assert_eq!(db.state.history(&run, "s", None).unwrap().len(), 1);
    for v in &kv[..3] {
        assert!(matches!(
            db.kv.get_at(&run, "k", *v),
            Err(Error::NotFound(_))
        ));
    }
    assert!(matches!(
        db.json.get_at(&run, "j", js[0]),
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.kv.get_at(&run, "k", kv[3]).unwrap().as_int(), Some(3));
    assert_eq!(
        db.json.get_at(&run, "j", js[3]).unwrap().value,
        json!({"i": 3})
    );
    // Current values are never affected.
    assert_eq!(db.kv.get_in(&run, "k").unwrap().unwrap().as_int(), Some(3));
    assert_eq!(
        db.state.get_in(&run, "s").unwrap().unwrap().version,
        Version::Counter(4)
    );
}
