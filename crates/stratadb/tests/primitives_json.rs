//! JSON document semantics through the facade: paths, set_path, delete_path, merge.
use std::sync::Arc;

use stratadb::prelude::*;

fn setup() -> (Strata, RunId) {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    (db, run)
}

#[test]
fn set_get_and_versions() {
    let (db, run) = setup();
    let doc = json!({"name": "Ada", "age": 36, "tags": ["a", "b"]});
    let v1 = db.json.set("d", doc.clone()).unwrap();
    assert!(v1.is_txn());
    let got = db.json.get("d").unwrap().unwrap();
    assert_eq!(got.value, doc);
    assert_eq!(got.version, v1);
    assert!(db.json.exists(&run, "d").unwrap());
    assert!(!db.json.exists(&run, "other").unwrap());
    assert!(db.json.get("other").unwrap().is_none());

    let v2 = db.json.set_path(&run, "d", "$.age", 37i64).unwrap();
    let v3 = db.json.merge(&run, "d", "$", json!({"x": 1})).unwrap();
    let v4 = db.json.set_in(&run, "d", json!({"fresh": true})).unwrap();
    assert!(v1 < v2 && v2 < v3 && v3 < v4, "{v1} {v2} {v3} {v4}");
    assert_eq!(db.json.get_in(&run, "d").unwrap().unwrap().version, v4);
    assert_eq!(
        db.json.get_in(&run, "d").unwrap().unwrap().value,
        json!({"fresh": true})
    );
}

#[test]
fn get_path_forms() {
    let (db, run) = setup();
    db.json
        .set(
            "d",
            json!({
                "a": {"b": "deep", "n": 5},
                "arr": [10, 20, 30],
                "odd key": "odd",
                "items": [{"id": 1}, {"id": 2}]
            }),
        )
        .unwrap();
    let get = |p: &str| db.json.get_path(&run, "d", p).unwrap().map(|v| v.value);
    assert_eq!(get("$"), Some(db.json.get("d").unwrap().unwrap().value));
    assert_eq!(get("$.a.b"), Some(Value::from("deep")));
    assert_eq!(get("$.a.n"), Some(Value::Int(5)));
    assert_eq!(get("$.arr[0]"), Some(Value::Int(10)));
    assert_eq!(get("$.arr[-1]"), Some(Value::Int(30)));
    assert_eq!(get("$['odd key']"), Some(Value::from("odd")));
    assert_eq!(get("$.a.missing"), None);
    assert_eq!(get("$.arr[7]"), None);
    assert_eq!(get("$.arr[*]"), Some(json!([10, 20, 30])));
    assert_eq!(get("$.items[*].id"), Some(json!([1, 2])));
    assert_eq!(get("$.missing[*]"), Some(json!([])));
}

#[test]
fn set_path_creates_intermediates_keeps_siblings() {
    let (db, run) = setup();
    db.json
        .set("d", json!({"name": "Ada", "a": {"keep": 1}}))
        .unwrap();
    db.json.set_path(&run, "d", "$.a.b.c", "new").unwrap();
    db.json.set_path(&run, "d", "$.name", "Bob").unwrap();
    db.json.set_path(&run, "d", "$['odd key']", true).unwrap();
    assert_eq!(
        db.json.get("d").unwrap().unwrap().value,
        json!({"name": "Bob", "a": {"keep": 1, "b": {"c": "new"}}, "odd key": true})
    );
    db.json
        .set_path(&run, "d", "$.list", json!([1, 2]))
        .unwrap();
    db.json.set_path(&run, "d", "$.list[0]", 9i64).unwrap();
    assert_eq!(
        db.json
            .get_path(&run, "d", "$.list")
            .unwrap()
            .map(|v| v.value),
        Some(json!([9, 2]))
    );
    // Replacing the root.
    db.json
        .set_path(&run, "d", "$", json!({"root": 1}))
        .unwrap();
    assert_eq!(db.json.get("d").unwrap().unwrap().value, json!({"root": 1}));
}

#[test]
fn delete_path_counts() {
    let (db, run) = setup();
    db.json
        .set(
            "d",
            json!({"a": 1, "b": {"c": 2, "d": 3}, "arr": [1, 2, 3]}),
        )
        .unwrap();
    let v0 = db.json.get("d").unwrap().unwrap().version;
    assert_eq!(db.json.delete_path(&run, "d", "$.a").unwrap(), 1);
    assert_eq!(db.json.delete_path(&run, "d", "$.a").unwrap(), 0);
    assert_eq!(db.json.delete_path(&run, "d", "$.b.*").unwrap(), 2);
    assert_eq!(db.json.delete_path(&run, "d", "$.arr[0]").unwrap(), 1);
    assert_eq!(
        db.json.get("d").unwrap().unwrap().value,
        json!({"b": {}, "arr": [2, 3]})
    );
    // Nothing deleted: the version does not change.
    let v = db.json.get("d").unwrap().unwrap().version;
    assert!(v > v0);
    assert_eq!(db.json.delete_path(&run, "d", "$.zzz").unwrap(), 0);
    assert_eq!(db.json.get("d").unwrap().unwrap().version, v);
}

#[test]
fn merge_rfc7396() {
    let (db, run) = setup();
    db.json
        .set(
            "d",
            json!({"name": "Ada", "age": 30, "tmp": true, "prefs": {"theme": "dark", "units": "si"}}),
        )
        .unwrap();
    db.json
        .merge(
            &run,
            "d",
            "$",
            json!({"age": 31, "tmp": null, "prefs": {"units": null, "lang": "en"}}),
        )
        .unwrap();
    assert_eq!(
        db.json.get("d").unwrap().unwrap().value,
        json!({"name": "Ada", "age": 31, "prefs": {"theme": "dark", "lang": "en"}})
    );
    db.json
        .merge(&run, "d", "$.prefs", json!({"theme": null, "font": 12}))
        .unwrap();
    assert_eq!(
        db.json
            .get_path(&run, "d", "$.prefs")
            .unwrap()
            .map(|v| v.value),
        Some(json!({"lang": "en", "font": 12}))
    );
    // A non-object patch replaces the target.
    db.json.merge(&run, "d", "$.prefs", json!([1])).unwrap();
    assert_eq!(
        db.json
            .get_path(&run, "d", "$.prefs")
            .unwrap()
            .map(|v| v.value),
        Some(json!([1]))
    );
}

#[test]
fn errors() {
    let (db, run) = setup();
    db.json.set("d", json!({"a": 1})).unwrap();
    for bad in ["a.b", "$..[", "$[", "$.a[", "", "$.", "$[01]"] {
        assert!(
            matches!(db.json.get_path(&run, "d", bad), Err(Error::InvalidPath(_))),
            "get_path {bad:?}"
        );
        assert!(
            matches!(
                db.json.set_path(&run, "d", bad, 1i64),
                Err(Error::InvalidPath(_))
            ),
            "set_path {bad:?}"
        );
        assert!(
            matches!(
                db.json.delete_path(&run, "d", bad),
                Err(Error::InvalidPath(_))
            ),
            "delete_path {bad:?}"
        );
        assert!(
            matches!(
                db.json.merge(&run, "d", bad, json!({})),
                Err(Error::InvalidPath(_))
            ),
            "merge {bad:?}"
        );
    }
    assert_eq!(db.json.get("d").unwrap().unwrap().value, json!({"a": 1}));

    assert!(matches!(
        db.json.get_path(&run, "missing", "$.a"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.json.set_path(&run, "missing", "$.a", 1i64),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.json.delete_path(&run, "missing", "$.a"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.json.merge(&run, "missing", "$", json!({})),
        Err(Error::NotFound(_))
    ));
    assert!(!db.json.exists(&run, "missing").unwrap());
}

#[test]
fn concurrent_set_path_on_one_document_loses_nothing() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.default_run();
    db.json.set("d", json!({})).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    db.json
                        .set_path(&run, "d", &format!("$.t{t}.f{i}"), i as i64)
                        .unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let d = db.json.get("d").unwrap().unwrap().value;
    let o = d.as_object().unwrap();
    assert_eq!(o.len(), 4);
    for t in 0..4 {
        assert_eq!(o[&format!("t{t}")].as_object().unwrap().len(), 25);
    }
}
