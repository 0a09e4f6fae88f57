//! `db.runs.diff` (a run between two versions) and `db.runs.diff_runs` (a fork against
//! its parent): every primitive, streaming over many keys, bad input.
use stratadb::prelude::*;
use stratadb::{Change, ChangeKind, DiffPrimitive, RetentionPolicy};

fn collect(d: stratadb::Diff) -> Vec<Change> {
    d.collect::<Result<Vec<_>>>().unwrap()
}

fn summary(changes: &[Change]) -> Vec<(DiffPrimitive, Option<String>, String, ChangeKind)> {
    changes
        .iter()
        .map(|c| (c.primitive, c.container.clone(), c.key.clone(), c.kind))
        .collect()
}

#[test]
fn diff_between_versions_covers_every_primitive() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "same", 1).unwrap();
    db.kv.put(&run, "changed", 1).unwrap();
    db.kv.put(&run, "removed", 1).unwrap();
    db.json.set_in(&run, "doc", json!({"a": 1})).unwrap();
    db.state.set_in(&run, "cell", "x").unwrap();
    db.vectors
        .create_collection(&run, "mem", 2, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .upsert(&run, "mem", "v1", &[1.0, 0.0], None)
        .unwrap();
    let from = db.kv.put(&run, "rewritten", 5).unwrap();

    db.kv.put(&run, "changed", 2).unwrap();
    db.kv.delete_in(&run, "removed").unwrap();
    db.kv.put(&run, "added", 1).unwrap();
    db.kv.put(&run, "rewritten", 5).unwrap(); // same bytes: no change
    db.json.set_path(&run, "doc", "$.a", 2).unwrap();
    db.events.append_in(&run, "log", json!({"n": 1})).unwrap();
    db.state.delete(&run, "cell").unwrap();
    db.vectors
        .upsert(&run, "mem", "v2", &[0.0, 1.0], None)
        .unwrap();

    let changes = collect(db.runs.diff(&run, from, None).unwrap());
    use ChangeKind::*;
    use DiffPrimitive as P;
    assert_eq!(
        summary(&changes),
        vec![
            (P::Kv, None, "added".into(), Added),
            (P::Kv, None, "changed".into(), Changed),
            (P::Kv, None, "removed".into(), Removed),
            (P::Json, None, "doc".into(), Changed),
            (P::Event, Some("log".into()), "1".into(), Added),
            (P::State, None, "cell".into(), Removed),
            (P::Vector, Some("mem".into()), "v2".into(), Added),
        ]
    );
    let changed = &changes[1];
    assert_eq!(changed.before.as_ref().unwrap().value, Value::Int(1));
    assert_eq!(changed.after.as_ref().unwrap().value, Value::Int(2));
    // Nothing changed between a version and itself; the reverse diff mirrors.
    assert!(collect(db.runs.diff(&run, from, Some(from)).unwrap()).is_empty());
}

#[test]
fn diff_runs_shows_what_a_fork_and_its_parent_changed() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    for i in 0..1_000 {
        db.kv.put(&run, &format!("k{i:04}"), i).unwrap();
    }
    let fork = db.runs.fork(&run, None).unwrap();
    assert!(collect(db.runs.diff_runs(&run, &fork).unwrap()).is_empty());
    db.kv.put(&fork, "k0001", -1).unwrap();
    db.kv.delete_in(&fork, "k0500").unwrap();
    db.kv.put(&fork, "zz-fork", 1).unwrap();
    db.kv.put(&run, "k0999", -1).unwrap();
    let changes = collect(db.runs.diff_runs(&run, &fork).unwrap());
    use ChangeKind::*;
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.key.as_str(), c.kind))
            .collect::<Vec<_>>(),
        vec![
            ("k0001", Changed),
            ("k0500", Removed),
            ("k0999", Changed),
            ("zz-fork", Added)
        ]
    );
    // The fork's own changes since it was made: a diff of the fork across versions.
    let origin = db
        .runs
        .get(&fork)
        .unwrap()
        .unwrap()
        .value
        .forked_from
        .unwrap();
    let own = collect(db.runs.diff(&fork, origin.version, None).unwrap());
    assert_eq!(
        own.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
        vec!["k0001", "k0500", "zz-fork"]
    );
}

#[test]
fn diff_streams_over_many_keys_and_rejects_bad_input() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let from = db.kv.put(&run, "first", 0).unwrap();
    let entries: Vec<(String, Value)> = (0..5_000)
        .map(|i| (format!("n{i:05}"), Value::Int(i)))
        .collect();
    let refs: Vec<(&str, Value)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    db.kv.mset(&run, &refs).unwrap();
    let mut n = 0;
    for c in db.runs.diff(&run, from, None).unwrap() {
        assert_eq!(c.unwrap().kind, ChangeKind::Added);
        n += 1;
    }
    assert_eq!(n, 5_000);
    assert!(matches!(
        db.runs.diff(&run, Version::Sequence(1), None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.runs.diff(&run, Version::Txn(u64::MAX), None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.runs.diff(&RunId::new(), from, None),
        Err(Error::RunError(_))
    ));
    assert!(matches!(
        db.runs.diff_runs(&run, &RunId::new()),
        Err(Error::RunError(_))
    ));
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert!(matches!(
        db.runs.diff(&run, from, None),
        Err(Error::ConstraintViolation(_))
    ));
}
