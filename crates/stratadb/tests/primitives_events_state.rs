//! Event stream and state cell semantics through the facade.
use std::sync::Arc;

use stratadb::prelude::*;

fn setup() -> (Strata, RunId) {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    (db, run)
}

#[test]
fn sequences_are_dense_from_one() {
    let (db, run) = setup();
    for i in 1..=5u64 {
        let v = db.events.append("s", json!({ "i": i })).unwrap();
        assert_eq!(v, Version::Sequence(i));
    }
    // Another stream starts at 1 again.
    assert_eq!(
        db.events.append_in(&run, "t", json!({})).unwrap(),
        Version::Sequence(1)
    );
    let all = db.events.read("s", 100).unwrap();
    assert_eq!(all.len(), 5);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.version, Version::Sequence(i as u64 + 1));
        assert_eq!(e.value, json!({ "i": i as u64 + 1 }));
    }
}

#[test]
fn non_object_payload_rejected() {
    let (db, run) = setup();
    db.events.append("s", json!({"ok": 1})).unwrap();
    for bad in [
        Value::Null,
        Value::Int(1),
        Value::from("text"),
        json!([1, 2]),
        Value::Bytes(vec![1]),
    ] {
        assert!(
            matches!(
                db.events.append("s", bad.clone()),
                Err(Error::WrongType { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        db.events.append("fresh", 1i64),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(db.events.count(&run, "s").unwrap(), 1);
    assert_eq!(db.events.count(&run, "fresh").unwrap(), 0);
    assert_eq!(db.events.streams(&run).unwrap(), vec!["s"]);
    assert_eq!(
        db.events.append("s", json!({})).unwrap(),
        Version::Sequence(2)
    );
}

#[test]
fn read_range_head_count_streams() {
    let (db, run) = setup();
    assert!(db.events.head(&run, "s").unwrap().is_none());
    assert_eq!(db.events.count(&run, "s").unwrap(), 0);
    assert!(db.events.read("s", 10).unwrap().is_empty());
    assert!(db.events.streams(&run).unwrap().is_empty());
    for i in 1..=20i64 {
        db.events.append("s", json!({ "i": i })).unwrap();
    }
    db.events.append("b", json!({"x": 1})).unwrap();
    db.events.append("a", json!({"x": 1})).unwrap();

    let first3 = db.events.read_in(&run, "s", 3).unwrap();
    assert_eq!(
        first3
            .iter()
            .map(|e| e.version.as_u64())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(db.events.read("s", 0).unwrap().is_empty());
    assert_eq!(db.events.read("s", 1000).unwrap().len(), 20);

    let r = db.events.range(&run, "s", 10, 12).unwrap();
    assert_eq!(
        r.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![
            Version::Sequence(10),
            Version::Sequence(11),
            Version::Sequence(12)
        ]
    );
    assert_eq!(r[0].value, json!({"i": 10}));
    assert_eq!(db.events.range(&run, "s", 20, 20).unwrap().len(), 1);
    assert_eq!(db.events.range(&run, "s", 1, 20).unwrap().len(), 20);
    assert_eq!(db.events.range(&run, "s", 0, 3).unwrap().len(), 3);
    assert_eq!(db.events.range(&run, "s", 18, 99).unwrap().len(), 3);
    assert!(db.events.range(&run, "s", 12, 10).unwrap().is_empty());
    assert!(db.events.range(&run, "s", 21, 30).unwrap().is_empty());

    let head = db.events.head(&run, "s").unwrap().unwrap();
    assert_eq!(head.version, Version::Sequence(20));
    assert_eq!(head.value, json!({"i": 20}));
    assert_eq!(db.events.count(&run, "s").unwrap(), 20);
    assert_eq!(db.events.streams(&run).unwrap(), vec!["a", "b", "s"]);

    // Stream names that are prefixes of each other stay separate.
    db.events.append("s2", json!({})).unwrap();
    assert_eq!(db.events.count(&run, "s").unwrap(), 20);
    assert_eq!(db.events.read("s", 100).unwrap().len(), 20);
    assert_eq!(db.events.read("s2", 100).unwrap().len(), 1);
}

#[test]
fn concurrent_appends_to_different_streams() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.default_run();
    let per = 200u64;
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let stream = format!("stream-{t}");
                for i in 1..=per {
                    let v = db.events.append(&stream, json!({ "i": i })).unwrap();
                    assert_eq!(v, Version::Sequence(i));
                }
                // And a shared stream, contended.
                for _ in 0..25 {
                    db.events.append("shared", json!({ "t": t })).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for t in 0..4 {
        let stream = format!("stream-{t}");
        assert_eq!(db.events.count(&run, &stream).unwrap(), per);
        let evs = db.events.read(&stream, 1000).unwrap();
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e.version, Version::Sequence(i as u64 + 1));
            assert_eq!(e.value, json!({ "i": i as u64 + 1 }));
        }
    }
    let shared = db.events.read("shared", 1000).unwrap();
    assert_eq!(shared.len(), 100);
    for (i, e) in shared.iter().enumerate() {
        assert_eq!(e.version, Version::Sequence(i as u64 + 1));
    }
}

#[test]
fn state_counters() {
    let (db, run) = setup();
    assert_eq!(db.state.set("c", "a").unwrap(), Version::Counter(1));
    assert_eq!(db.state.set("c", "b").unwrap(), Version::Counter(2));
    assert_eq!(
        db.state.set_in(&run, "c", "c").unwrap(),
        Version::Counter(3)
    );
    let got = db.state.get("c").unwrap().unwrap();
    assert_eq!(got.version, Version::Counter(3));
    assert_eq!(got.as_str(), Some("c"));
    assert_eq!(db.state.set("other", 1i64).unwrap(), Version::Counter(1));
    assert_eq!(
        db.state.cas(&run, "c", Some(3), "d").unwrap(),
        Some(Version::Counter(4))
    );
    assert_eq!(
        db.state.get_in(&run, "c").unwrap().unwrap().version,
        Version::Counter(4)
    );
}

#[test]
fn state_cas() {
    let (db, run) = setup();
    assert_eq!(
        db.state.cas(&run, "lock", None, "a").unwrap(),
        Some(Version::Counter(1))
    );
    assert_eq!(db.state.cas(&run, "lock", None, "b").unwrap(), None);
    assert_eq!(db.state.cas(&run, "lock", Some(0), "b").unwrap(), None);
    assert_eq!(db.state.cas(&run, "lock", Some(2), "b").unwrap(), None);
    assert_eq!(db.state.get("lock").unwrap().unwrap().as_str(), Some("a"));
    assert_eq!(
        db.state.cas(&run, "lock", Some(1), "b").unwrap(),
        Some(Version::Counter(2))
    );
    assert_eq!(db.state.cas(&run, "lock", Some(1), "c").unwrap(), None);
    assert_eq!(db.state.get("lock").unwrap().unwrap().as_str(), Some("b"));
    assert_eq!(db.state.cas(&run, "nope", Some(1), "x").unwrap(), None);
    assert!(!db.state.exists(&run, "nope").unwrap());
}

#[test]
fn state_history_delete_exists() {
    let (db, run) = setup();
    for i in 0..5i64 {
        db.state.set("h", i).unwrap();
    }
    let h = db.state.history(&run, "h", None).unwrap();
    assert_eq!(
        h.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=5).rev().map(Version::Counter).collect::<Vec<_>>()
    );
    assert_eq!(
        h.iter().map(|v| v.as_int().unwrap()).collect::<Vec<_>>(),
        vec![4, 3, 2, 1, 0]
    );
    assert_eq!(db.state.history(&run, "h", Some(2)).unwrap().len(), 2);
    assert!(db.state.history(&run, "none", None).unwrap().is_empty());

    assert!(db.state.exists(&run, "h").unwrap());
    assert!(db.state.delete(&run, "h").unwrap());
    assert!(!db.state.delete(&run, "h").unwrap());
    assert!(!db.state.exists(&run, "h").unwrap());
    assert!(db.state.get("h").unwrap().is_none());
    assert_eq!(db.state.history(&run, "h", None).unwrap().len(), 5);
    // A cell that is deleted and re-created continues its counter.
    assert_eq!(
        db.state.cas(&run, "h", None, 9i64).unwrap(),
        Some(Version::Counter(6))
    );
}
