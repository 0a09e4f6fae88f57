//! KV semantics through the facade: versions, history, get_at, incr, cas, batches, keys.
use std::sync::Arc;

use stratadb::prelude::*;

fn db() -> Strata {
    Strata::ephemeral().unwrap()
}

fn txn(v: Version) -> u64 {
    match v {
        Version::Txn(n) => n,
        other => panic!("expected Version::Txn, got {other:?}"),
    }
}

#[test]
fn versions_are_txn_and_increase() {
    let db = db();
    let run = db.runs.default_run();
    let v1 = txn(db.kv.put(&run, "a", 1i64).unwrap());
    let v2 = txn(db.kv.put(&run, "a", 2i64).unwrap());
    let v3 = txn(db.kv.put(&run, "b", 3i64).unwrap());
    assert!(v1 < v2 && v2 < v3);
    let got = db.kv.get_in(&run, "a").unwrap().unwrap();
    assert_eq!(got.version, Version::Txn(v2));
    assert_eq!(got.value, Value::Int(2));
    db.kv.set("c", "x").unwrap();
    assert!(db.kv.get("c").unwrap().unwrap().version.is_txn());
}

#[test]
fn history_newest_first_limit_and_cursor() {
    let db = db();
    let run = db.runs.default_run();
    let mut versions = Vec::new();
    for i in 0..10i64 {
        versions.push(db.kv.put(&run, "k", i).unwrap());
    }
    let h = db.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(h.len(), 10);
    let got: Vec<i64> = h.iter().map(|v| v.as_int().unwrap()).collect();
    assert_eq!(got, (0..10).rev().collect::<Vec<_>>());
    let hv: Vec<Version> = h.iter().map(|v| v.version).collect();
    let mut expected = versions.clone();
    expected.reverse();
    assert_eq!(hv, expected);

    assert_eq!(db.kv.history(&run, "k", Some(3), None).unwrap().len(), 3);
    assert_eq!(db.kv.history(&run, "k", Some(0), None).unwrap().len(), 0);

    // Paginate with the exclusive `before` cursor, 3 per page.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.kv.history(&run, "k", Some(3), cursor).unwrap();
        if page.is_empty() {
            break;
        }
        cursor = Some(page.last().unwrap().version);
        pages.extend(page.into_iter().map(|v| v.as_int().unwrap()));
    }
    assert_eq!(pages, (0..10).rev().collect::<Vec<_>>());

    // `before` is exclusive.
    let before = db.kv.history(&run, "k", None, Some(versions[5])).unwrap();
    let vals: Vec<i64> = before.iter().map(|v| v.as_int().unwrap()).collect();
    assert_eq!(vals, vec![4, 3, 2, 1, 0]);
    assert!(db
        .kv
        .history(&run, "k", None, Some(versions[0]))
        .unwrap()
        .is_empty());
    assert!(db
        .kv
        .history(&run, "missing", None, None)
        .unwrap()
        .is_empty());
}

#[test]
fn get_at_reads_the_past() {
    let db = db();
    let run = db.runs.default_run();
    db.kv.put(&run, "other", 0i64).unwrap();
    let v1 = db.kv.put(&run, "k", "one").unwrap();
    let v2 = db.kv.put(&run, "k", "two").unwrap();
    db.kv.put(&run, "other", 1i64).unwrap();
    assert_eq!(db.kv.get_at(&run, "k", v1).unwrap().as_str(), Some("one"));
    let at2 = db.kv.get_at(&run, "k", v2).unwrap();
    assert_eq!(at2.as_str(), Some("two"));
    assert_eq!(at2.version, v2);
    // Between writes: the newest at or before.
    let latest = db.kv.get_in(&run, "other").unwrap().unwrap().version;
    assert_eq!(
        db.kv.get_at(&run, "k", latest).unwrap().as_str(),
        Some("two")
    );
    let before = Version::Txn(txn(v1) - 1);
    assert!(matches!(
        db.kv.get_at(&run, "k", before),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.kv.get_at(&run, "never", latest),
        Err(Error::NotFound(_))
    ));
    // After a delete, reading at the deleted point is NotFound, older versions remain.
    db.kv.delete_in(&run, "k").unwrap();
    let now = db.kv.put(&run, "other", 2i64).unwrap();
    assert!(matches!(
        db.kv.get_at(&run, "k", now),
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.kv.get_at(&run, "k", v1).unwrap().as_str(), Some("one"));
}

#[test]
fn incr_semantics() {
    let db = db();
    let run = db.runs.default_run();
    assert_eq!(db.kv.incr(&run, "n", 5).unwrap(), 5);
    assert_eq!(db.kv.incr(&run, "n", -7).unwrap(), -2);
    assert_eq!(db.kv.get("n").unwrap().unwrap().value, Value::Int(-2));
    assert_eq!(db.kv.incr(&run, "zero", 0).unwrap(), 0);
    assert_eq!(db.kv.get("zero").unwrap().unwrap().value, Value::Int(0));

    db.kv.set("s", "text").unwrap();
    assert!(matches!(
        db.kv.incr(&run, "s", 1),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(db.kv.get("s").unwrap().unwrap().as_str(), Some("text"));
    db.kv.set("f", 1.5f64).unwrap();
    assert!(matches!(
        db.kv.incr(&run, "f", 1),
        Err(Error::WrongType { .. })
    ));

    db.kv.set("big", i64::MAX - 1).unwrap();
    assert_eq!(db.kv.incr(&run, "big", 1).unwrap(), i64::MAX);
    assert!(matches!(
        db.kv.incr(&run, "big", 1),
        Err(Error::ConstraintViolation(_))
    ));
    assert_eq!(db.kv.get("big").unwrap().unwrap().as_int(), Some(i64::MAX));
    db.kv.set("small", i64::MIN).unwrap();
    assert!(matches!(
        db.kv.incr(&run, "small", -1),
        Err(Error::ConstraintViolation(_))
    ));
}

#[test]
fn cas_semantics() {
    let db = db();
    let run = db.runs.default_run();
    assert!(db.kv.cas(&run, "c", None, "first").unwrap());
    assert!(!db.kv.cas(&run, "c", None, "again").unwrap());
    assert_eq!(db.kv.get("c").unwrap().unwrap().as_str(), Some("first"));
    let v1 = db.kv.get("c").unwrap().unwrap().version;
    assert!(db.kv.cas(&run, "c", Some(v1), "second").unwrap());
    // v1 is now stale.
    assert!(!db.kv.cas(&run, "c", Some(v1), "third").unwrap());
    assert_eq!(db.kv.get("c").unwrap().unwrap().as_str(), Some("second"));
    let v2 = db.kv.get("c").unwrap().unwrap().version;
    assert!(v2 > v1);
    // Expecting a version on a missing key fails.
    assert!(!db.kv.cas(&run, "missing", Some(v2), "x").unwrap());
    assert!(!db.kv.exists("missing").unwrap());
    // After a delete, None succeeds again.
    db.kv.delete("c").unwrap();
    assert!(!db.kv.cas(&run, "c", Some(v2), "x").unwrap());
    assert!(db.kv.cas(&run, "c", None, "reborn").unwrap());
    assert_eq!(db.kv.get("c").unwrap().unwrap().as_str(), Some("reborn"));
}

#[test]
fn batches() {
    let db = db();
    let run = db.runs.default_run();
    let v = db
        .kv
        .mset(
            &run,
            &[
                ("a", Value::from(1i64)),
                ("b", Value::from("two")),
                ("c", Value::Null),
            ],
        )
        .unwrap();
    assert!(v.is_txn());
    for k in ["a", "b", "c"] {
        assert_eq!(db.kv.get(k).unwrap().unwrap().version, v, "key {k}");
    }
    let got = db.kv.mget(&run, &["a", "zz", "b"]).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap().value, Value::Int(1));
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().as_str(), Some("two"));

    assert_eq!(db.kv.mdelete(&run, &["a", "nope", "b", "zz"]).unwrap(), 2);
    assert!(!db.kv.exists("a").unwrap());
    assert!(!db.kv.exists("b").unwrap());
    assert!(db.kv.exists("c").unwrap());
    assert_eq!(db.kv.mdelete(&run, &["a", "b"]).unwrap(), 0);
}

#[test]
fn keys_sorted_prefixed_limited() {
    let db = db();
    let run = db.runs.default_run();
    for k in ["user:3", "user:1", "item:1", "user:2", "users", "u"] {
        db.kv.set(k, 1i64).unwrap();
    }
    assert_eq!(
        db.kv.keys(&run, "", None).unwrap(),
        vec!["item:1", "u", "user:1", "user:2", "user:3", "users"]
    );
    assert_eq!(
        db.kv.keys(&run, "user:", None).unwrap(),
        vec!["user:1", "user:2", "user:3"]
    );
    assert_eq!(
        db.kv.keys(&run, "user", Some(2)).unwrap(),
        vec!["user:1", "user:2"]
    );
    assert!(db.kv.keys(&run, "zzz", None).unwrap().is_empty());
    db.kv.delete("user:2").unwrap();
    assert_eq!(
        db.kv.keys(&run, "user:", None).unwrap(),
        vec!["user:1", "user:3"]
    );
}

#[test]
fn delete_keeps_history_and_null_is_a_value() {
    let db = db();
    let run = db.runs.default_run();
    let v1 = db.kv.put(&run, "k", "a").unwrap();
    let v2 = db.kv.put(&run, "k", "b").unwrap();
    assert!(db.kv.delete("k").unwrap());
    assert!(!db.kv.delete("k").unwrap());
    assert!(db.kv.get("k").unwrap().is_none());
    assert!(!db.kv.exists("k").unwrap());
    let h = db.kv.history(&run, "k", None, None).unwrap();
    assert_eq!(
        h.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![v2, v1]
    );
    assert_eq!(h[0].as_str(), Some("b"));

    let vn = db.kv.put(&run, "n", Value::Null).unwrap();
    let got = db.kv.get("n").unwrap().unwrap();
    assert!(got.is_null());
    assert_eq!(got.version, vn);
    assert!(db.kv.exists("n").unwrap());
    assert_eq!(db.kv.keys(&run, "n", None).unwrap(), vec!["n"]);
    assert!(db.kv.delete("n").unwrap());
}

#[test]
fn value_types_round_trip() {
    let db = db();
    let vals = [
        Value::Bool(true),
        Value::Int(-3),
        Value::Float(2.5),
        Value::String("s".into()),
        Value::Bytes(vec![0, 1, 255]),
        Value::Array(vec![Value::Int(1), Value::Null]),
        json!({"a": {"b": [1, 2.5, "x"]}}),
    ];
    for (i, v) in vals.iter().enumerate() {
        let k = format!("k{i}");
        db.kv.set(&k, v.clone()).unwrap();
        assert_eq!(&db.kv.get(&k).unwrap().unwrap().value, v);
    }
    // Strict types: Int(1) stored stays Int.
    db.kv.set("one", 1i64).unwrap();
    assert_ne!(db.kv.get("one").unwrap().unwrap().value, Value::Float(1.0));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let db = db();
    let run = db.runs.default_run();
    let long = "k".repeat(2048);
    assert!(matches!(db.kv.set("", 1i64), Err(Error::InvalidKey(_))));
    assert!(matches!(db.kv.set(&long, 1i64), Err(Error::InvalidKey(_))));
    assert!(matches!(db.kv.get(""), Err(Error::InvalidKey(_))));
    assert!(matches!(db.kv.get(&long), Err(Error::InvalidKey(_))));
    assert!(matches!(db.kv.incr(&run, "", 1), Err(Error::InvalidKey(_))));
    assert!(matches!(
        db.kv.history(&run, &long, None, None),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        db.kv
            .mset(&run, &[("ok", Value::Int(1)), ("", Value::Int(2))]),
        Err(Error::InvalidKey(_))
    ));
    assert!(!db.kv.exists("ok").unwrap(), "a failed mset writes nothing");

    let big = Value::Bytes(vec![0u8; 16 * 1024 * 1024 + 1]);
    assert!(matches!(
        db.kv.set("big", big),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(!db.kv.exists("big").unwrap());
    let big_str = Value::String("x".repeat(16 * 1024 * 1024 + 1));
    assert!(matches!(
        db.kv.set("big", big_str),
        Err(Error::ConstraintViolation(_))
    ));

    let mut deep = Value::Null;
    for _ in 0..129 {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        db.kv.set("deep", deep),
        Err(Error::ConstraintViolation(_))
    ));
    let mut ok = Value::Null;
    for _ in 0..127 {
        ok = Value::Array(vec![ok]);
    }
    db.kv.set("deep_ok", ok.clone()).unwrap();
    assert_eq!(db.kv.get("deep_ok").unwrap().unwrap().value, ok);

    let mut deep_obj = Value::Int(1);
    for _ in 0..200 {
        deep_obj = Value::Object([("a".to_string(), deep_obj)].into_iter().collect());
    }
    assert!(matches!(
        db.json.set("deep", deep_obj.clone()),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.state.set("deep", deep_obj.clone()),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.events.append("deep", json!({ "x": deep_obj })),
        Err(Error::ConstraintViolation(_))
    ));
    assert!(matches!(
        db.events.append("", json!({})),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        db.json.set("", json!({})),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        db.state.set(&long, 1i64),
        Err(Error::InvalidKey(_))
    ));
    assert_eq!(db.events.count(&run, "deep").unwrap(), 0);
}

#[test]
fn concurrent_cas_loses_no_update_and_one_lock_winner() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.default_run();
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut wins = 0;
                for _ in 0..25 {
                    loop {
                        let cur = db.kv.get_in(&run, "c").unwrap();
                        let exp = cur.as_ref().map(|v| v.version);
                        let n = cur.map_or(0, |v| v.as_int().unwrap()) + 1;
                        if db.kv.cas(&run, "c", exp, n).unwrap() {
                            wins += 1;
                            break;
                        }
                    }
                }
                let lock = db.state.cas(&run, "lock", None, "mine").unwrap().is_some();
                (wins, lock)
            })
        })
        .collect();
    let res: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(db.kv.get("c").unwrap().unwrap().as_int(), Some(200));
    assert_eq!(res.iter().filter(|r| r.1).count(), 1);
}

#[test]
fn duplicate_keys_in_batches_and_oversized_event() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.kv
        .mset(&run, &[("a", Value::Int(1)), ("a", Value::Int(2))])
        .unwrap();
    assert_eq!(db.kv.get("a").unwrap().unwrap().as_int(), Some(2));
    assert_eq!(db.kv.history(&run, "a", None, None).unwrap().len(), 1);
    let big = json!({"x": "y".repeat(17 * 1024 * 1024)});
    assert!(matches!(
        db.events.append("s", big),
        Err(Error::ConstraintViolation(_))
    ));
    assert_eq!(db.events.count(&run, "s").unwrap(), 0);
    assert_eq!(db.kv.mdelete(&run, &["a", "a"]).unwrap(), 1);
}
