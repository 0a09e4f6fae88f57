//! API edges of issue 11, item 13: a `set_path` that selects nothing writes nothing; a
//! `Version` of the wrong kind is refused; JSONPath errors stay short for huge paths; a
//! transaction's own writes read back with the documented pending version.
use stratadb::prelude::*;

#[test]
fn set_path_selecting_nothing_writes_no_version() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    let v1 = db.json.set_in(&run, "doc", json!({"users": []})).unwrap();
    let v2 = db
        .json
        .set_path(&run, "doc", "$.nobody[*].x", 1i64)
        .unwrap();
    assert_eq!(v2, v1, "the document's version is returned unchanged");
    assert_eq!(db.json.history(&run, "doc", None, None).unwrap().len(), 1);
    let doc = db.json.get_in(&run, "doc").unwrap().unwrap();
    assert_eq!(doc.version, v1);
    assert_eq!(doc.value, json!({"users": []}));
    // A path that matches still writes a new version.
    let v3 = db
        .json
        .set_path(&run, "doc", "$.users", json!([1]))
        .unwrap();
    assert!(v3 > v1);
    // Inside a transaction too: no write, so nothing to commit.
    db.transaction(|t| t.json_set_path(&run, "doc", "$.none[*]", 2i64))
        .unwrap();
    assert_eq!(db.json.history(&run, "doc", None, None).unwrap().len(), 2);
}

fn wrong_kind<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    match r {
        Err(Error::ConstraintViolation(m)) => assert!(m.contains("Version::Txn"), "{what}: {m}"),
        other => panic!("{what}: expected a ConstraintViolation, got {other:?}"),
    }
}

#[test]
fn versions_of_the_wrong_kind_are_refused() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    let v = db.kv.put(&run, "k", 1i64).unwrap();
    let j = db.json.set_in(&run, "d", json!({})).unwrap();
    let n = v.as_u64();
    for bad in [Version::Sequence(n), Version::Counter(n)] {
        wrong_kind("kv.get_at", db.kv.get_at(&run, "k", bad));
        wrong_kind("kv.cas", db.kv.cas(&run, "k", Some(bad), 2i64));
        wrong_kind("kv.history", db.kv.history(&run, "k", None, Some(bad)));
        wrong_kind(
            "json.get_at",
            db.json.get_at(&run, "d", Version::Counter(j.as_u64())),
        );
        wrong_kind("json.history", db.json.history(&run, "d", None, Some(bad)));
    }
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(1));
    // The right kind still works.
    assert!(db.kv.cas(&run, "k", Some(v), 2i64).unwrap());
    assert_eq!(db.kv.get_at(&run, "k", v).unwrap().as_int(), Some(1));
}

#[test]
fn jsonpath_errors_do_not_echo_huge_paths() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.json.set("d", json!({"a": 1})).unwrap();
    let huge = format!("$.{}[", "a".repeat(100_000));
    let errors = [
        db.json.get_path(&run, "d", &huge).unwrap_err(),
        db.json.set_path(&run, "d", &huge, 1i64).unwrap_err(),
        db.json.delete_path(&run, "d", &huge).unwrap_err(),
        db.json.merge(&run, "d", &huge, json!({})).unwrap_err(),
        db.json.set_path(&run, "absent", &huge, 1i64).unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, Error::InvalidPath(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.len() < 1_000, "{} bytes: {}", text.len(), &text[..200]);
        assert!(text.contains("100003 bytes"), "{text}");
    }
    // A non-singular merge path, long but valid: also short.
    let long_valid = format!("$..{}", "b".repeat(50_000));
    let e = db
        .json
        .merge(&run, "d", &long_valid, json!({}))
        .unwrap_err();
    assert!(e.to_string().len() < 1_000, "{}", e.to_string().len());
}

#[test]
fn own_writes_in_a_transaction_read_back_as_pending() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    db.transaction(|t| {
        t.kv_set(&run, "k", 1i64)?;
        let seen = t.kv_get(&run, "k")?.unwrap();
        assert!(seen.version.is_pending() && seen.version.is_zero());
        assert_eq!(seen.version, Version::Txn(0));
        assert_eq!(seen.timestamp, Timestamp(0));
        t.json_set(&run, "d", json!({"a": 1}))?;
        assert!(t.json_get(&run, "d")?.unwrap().version.is_pending());
        Ok(())
    })
    .unwrap();
    let k = db.kv.get("k").unwrap().unwrap();
    assert!(!k.version.is_pending() && !k.version.is_zero());
    assert!(k.timestamp > Timestamp(0));
}
