//! Time travel (`db.at(version)`) and forks, checked against a model that copies state
//! eagerly: random writes, deletes, forks at random versions, reads at random versions.
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use stratadb::prelude::*;
use stratadb::{ChangeKind, RetentionPolicy};

fn ev(n: i64) -> Value {
    json!({ "n": n })
}

#[test]
fn a_view_answers_every_primitive_as_of_its_version() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&run, "k", 1).unwrap();
    db.json.set_in(&run, "doc", json!({"a": 1})).unwrap();
    db.events.append_in(&run, "s", ev(1)).unwrap();
    db.state.set_in(&run, "c", "one").unwrap();
    let v2 = db.kv.put(&run, "k", 2).unwrap();
    db.json.set_path(&run, "doc", "$.a", 2).unwrap();
    db.events.append_in(&run, "s", ev(2)).unwrap();
    db.state.set_in(&run, "c", "two").unwrap();
    db.kv.delete_in(&run, "k").unwrap();
    let later = db.runs.create(None).unwrap();

    let past = db.at(v1).unwrap();
    assert_eq!(past.version(), v1);
    assert_eq!(
        past.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(1)
    );
    assert!(past.json.get_in(&run, "doc").unwrap().is_none());
    assert_eq!(past.events.count(&run, "s").unwrap(), 0);
    assert!(past.state.get_in(&run, "c").unwrap().is_none());
    assert!(matches!(
        past.kv.get_in(&later, "k"),
        Err(Error::RunError(_))
    ));
    assert!(past.runs.get(&later).unwrap().is_none());

    let mid = db.at(v2).unwrap();
    assert_eq!(
        mid.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(2)
    );
    assert_eq!(
        mid.json
            .get_path(&run, "doc", "$.a")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(1)
    );
    assert_eq!(mid.events.count(&run, "s").unwrap(), 1);
    assert_eq!(mid.state.get_in(&run, "c").unwrap().unwrap().value, "one");
    assert_eq!(mid.kv.keys(&run, "", None).unwrap(), vec!["k".to_owned()]);
    let hist = mid.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(hist.len(), 2);

    // Writes through a view fail; the present is untouched.
    assert!(matches!(
        mid.kv.set_in(&run, "k", 9),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        mid.events.append_in(&run, "s", ev(9)),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        mid.runs.create(None),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(db.kv.get_in(&run, "k").unwrap().is_none());

    // Bad versions.
    assert!(matches!(
        db.at(Version::Sequence(1)),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.at(Version::Txn(u64::MAX)),
        Err(Error::ConstraintViolation(_))
    ));
}

#[test]
fn views_are_repeatable_across_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Strata::open(&path).unwrap();
    let run = db.runs.create(None).unwrap();
    let mut at = Vec::new();
    for i in 0..30 {
        at.push(db.kv.put(&run, "k", i).unwrap());
        db.kv.put(&run, &format!("n{i:02}"), i).unwrap();
    }
    let check = |db: &Strata| {
        for (i, v) in at.iter().enumerate() {
            let view = db.at(*v).unwrap();
            assert_eq!(
                view.kv.get_in(&run, "k").unwrap().unwrap().value,
                Value::Int(i as i64)
            );
            assert_eq!(view.kv.keys(&run, "n", None).unwrap().len(), i);
        }
    };
    check(&db);
    db.checkpoint().unwrap();
    db.compact().unwrap();
    check(&db);
    db.close().unwrap();
    let db = Strata::open(&path).unwrap();
    check(&db);
}

#[test]
fn a_view_refuses_a_run_whose_retention_may_have_removed_its_past() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&run, "k", 1).unwrap();
    db.kv.put(&run, "k", 2).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    let view = db.at(v1).unwrap();
    assert!(matches!(
        view.kv.get_in(&run, "k"),
        Err(Error::ConstraintViolation(_))
    ));
    // The present version is not the past: reading it is fine.
    let now = db.at(db.runs.get(&run).unwrap().unwrap().version).unwrap();
    let _ = now;
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Put { run: usize, key: u8, value: i64 },
    Delete { run: usize, key: u8 },
    Fork { run: usize, back: usize },
    Check { run: usize, back: usize },
    Diff { run: usize, back: usize },
    Purge { run: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..8usize, 0..6u8, any::<i64>()).prop_map(|(run, key, value)| Op::Put { run, key, value }),
        2 => (0..8usize, 0..6u8).prop_map(|(run, key)| Op::Delete { run, key }),
        1 => (0..8usize, 0..6usize).prop_map(|(run, back)| Op::Fork { run, back }),
        2 => (0..8usize, 0..6usize).prop_map(|(run, back)| Op::Check { run, back }),
        1 => (0..8usize, 0..6usize).prop_map(|(run, back)| Op::Diff { run, back }),
        1 => (0..8usize).prop_map(|run| Op::Purge { run }),
    ]
}

/// The model: every run's full state after every commit, copied eagerly.
type State = BTreeMap<u8, i64>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn forks_and_views_match_an_eager_model(ops in proptest::collection::vec(op(), 1..60)) {
        let db = Strata::ephemeral().unwrap();
        let root = db.runs.create(None).unwrap();
        let mut runs = vec![root];
        // model[run][version] = the run's state right after that version.
        let mut history: HashMap<RunId, Vec<(u64, State)>> = HashMap::new();
        let mut versions: Vec<u64> = vec![db.runs.get(&root).unwrap().unwrap().version.as_u64()];
        history.insert(root, vec![(versions[0], State::new())]);
        let state_at = |h: &HashMap<RunId, Vec<(u64, State)>>, run: &RunId, v: u64| -> Option<State> {
            h.get(run)?.iter().rev().find(|(at, _)| *at <= v).map(|(_, s)| s.clone())
        };
        let mut purged: std::collections::HashSet<RunId> = Default::default();
        for op in ops {
            // Every operation on a purged run fails; its forks carry on.
            let target = match &op {
                Op::Put { run, .. } | Op::Delete { run, .. } | Op::Fork { run, .. }
                | Op::Check { run, .. } | Op::Diff { run, .. } | Op::Purge { run } => runs[run % runs.len()],
            };
            if purged.contains(&target) {
                prop_assert!(db.kv.get_in(&target, "k0").is_err());
                prop_assert!(db.kv.put(&target, "k0", 1).is_err());
                prop_assert!(db.runs.fork(&target, None).is_err());
                prop_assert!(db.runs.purge(&target).is_err());
                continue;
            }
            match op {
                Op::Purge { .. } => {
                    db.runs.purge(&target).unwrap();
                    purged.insert(target);
                }
                Op::Put { run, key, value } => {
                    let r = runs[run % runs.len()];
                    let v = db.kv.put(&r, &format!("k{key}"), value).unwrap().as_u64();
                    let mut s = history[&r].last().unwrap().1.clone();
                    s.insert(key, value);
                    history.get_mut(&r).unwrap().push((v, s));
                    versions.push(v);
                }
                Op::Delete { run, key } => {
                    let r = runs[run % runs.len()];
                    let existed = db.kv.delete_in(&r, &format!("k{key}")).unwrap();
                    let mut s = history[&r].last().unwrap().1.clone();
                    prop_assert_eq!(existed, s.remove(&key).is_some());
                    if existed {
                        let v = db.info().unwrap().version;
                        history.get_mut(&r).unwrap().push((v, s));
                        versions.push(v);
                    }
                }
                Op::Fork { run, back } => {
                    let r = runs[run % runs.len()];
                    let first = history[&r][0].0;
                    let candidates: Vec<u64> = versions.iter().copied().filter(|v| *v >= first).collect();
                    let at = candidates[candidates.len() - 1 - back % candidates.len()];
                    let child = db.runs.fork(&r, Some(Version::Txn(at))).unwrap();
                    let created = db.runs.get(&child).unwrap().unwrap().version.as_u64();
                    let s = state_at(&history, &r, at).unwrap();
                    history.insert(child, vec![(created, s)]);
                    versions.push(created);
                    runs.push(child);
                }
                Op::Diff { run, back } => {
                    let r = runs[run % runs.len()];
                    let v = versions[versions.len() - 1 - back % versions.len()];
                    if let Some(then) = state_at(&history, &r, v) {
                        let now = &history[&r].last().unwrap().1;
                        let mut want = Vec::new();
                        for k in 0..6u8 {
                            let kind = match (then.get(&k), now.get(&k)) {
                                (None, Some(_)) => Some(ChangeKind::Added),
                                (Some(_), None) => Some(ChangeKind::Removed),
                                (Some(a), Some(b)) if a != b => Some(ChangeKind::Changed),
                                _ => None,
                            };
                            if let Some(kind) = kind {
                                want.push((format!("k{k}"), kind));
                            }
                        }
                        let got: Vec<(String, ChangeKind)> = db
                            .runs
                            .diff(&r, Version::Txn(v), None)
                            .unwrap()
                            .map(|c| c.map(|c| (c.key, c.kind)))
                            .collect::<Result<_>>()
                            .unwrap();
                        prop_assert_eq!(got, want);
                    }
                }
                Op::Check { run, back } => {
                    let r = runs[run % runs.len()];
                    let v = versions[versions.len() - 1 - back % versions.len()];
                    let view = db.at(Version::Txn(v)).unwrap();
                    match state_at(&history, &r, v) {
                        None => prop_assert!(view.kv.keys(&r, "", None).is_err()),
                        Some(expected) => {
                            let keys = view.kv.keys(&r, "", None).unwrap();
                            let want: Vec<String> = expected.keys().map(|k| format!("k{k}")).collect();
                            prop_assert_eq!(keys, want);
                            for k in 0..6u8 {
                                let got = view.kv.get_in(&r, &format!("k{k}")).unwrap().map(|x| x.value);
                                prop_assert_eq!(got, expected.get(&k).map(|x| Value::Int(*x)));
                            }
                        }
                    }
                }
            }
        }
        // The present of every run matches the model's newest state.
        for r in runs.iter().filter(|r| !purged.contains(r)) {
            let expected = &history[r].last().unwrap().1;
            for k in 0..6u8 {
                let got = db.kv.get_in(r, &format!("k{k}")).unwrap().map(|x| x.value);
                prop_assert_eq!(got, expected.get(&k).map(|x| Value::Int(*x)));
            }
        }
    }
}
