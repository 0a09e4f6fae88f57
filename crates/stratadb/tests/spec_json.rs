//! API reference samples: JSON Documents. Each test holds the reference's code block as
//! written and then asserts what the prose promises.

use stratadb::prelude::*;

fn db() -> Strata {
    Strata::ephemeral().expect("ephemeral db")
}

#[test]
fn set_and_get_samples() -> Result<()> {
    let db = db();

    // Idiomatic way - use json! macro
    let v1 = db.json.set(
        "user:1",
        json!({
            "name": "Alice",
            "age": 30,
            "active": true
        }),
    )?;

    // Or with HashMap if you need programmatic construction
    let mut doc = std::collections::HashMap::new();
    doc.insert("name".to_string(), Value::from("Alice"));
    doc.insert("age".to_string(), Value::from(30i64));
    let v2 = db.json.set("user:2", doc)?;

    // Returns: Result<Version>
    assert!(v1.is_txn() && v2.is_txn());
    assert!(v1 < v2);

    let mut name = None;
    if let Some(versioned) = db.json.get("user:1")? {
        // Convenience: as_object() delegates to inner value
        let doc = versioned.as_object().unwrap();
        println!("Name: {:?}", doc.get("name"));
        name = doc.get("name").cloned();
        assert_eq!(doc.get("age"), Some(&Value::Int(30)));
        assert_eq!(doc.get("active"), Some(&Value::Bool(true)));
        assert_eq!(versioned.version, v1);
    }
    assert_eq!(name, Some(Value::from("Alice")));

    let user2 = db.json.get("user:2")?.unwrap();
    assert_eq!(user2.value, json!({"name": "Alice", "age": 30}));
    assert_eq!(user2.version, v2);
    assert!(db.json.get("user:3")?.is_none());
    // JSON documents and KV pairs are separate namespaces.
    assert!(db.kv.get("user:1")?.is_none());
    Ok(())
}

#[test]
fn run_scoped_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    let config_doc = json!({"model": "gpt", "temperature": 0.7, "tools": ["search"]});

    db.json.set_in(&run, "config", config_doc)?;

    let doc = db.json.get_in(&run, "config")?;

    let doc = doc.expect("document stored in the run");
    assert_eq!(
        doc.value,
        json!({"model": "gpt", "temperature": 0.7, "tools": ["search"]})
    );
    assert_eq!(doc.as_object().unwrap()["temperature"], Value::Float(0.7));
    assert!(db.json.get("config")?.is_none(), "not in the default run");
    Ok(())
}

#[test]
fn path_operation_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.json.set_in(
        &run,
        "user:1",
        json!({"name": "Alice", "age": 30, "temporary_field": "x"}),
    )?;

    // get_path
    let name = db.json.get_path(&run, "user:1", "$.name")?.map(|v| v.value);
    let city = db
        .json
        .get_path(&run, "user:1", "$.address.city")?
        .map(|v| v.value);

    assert_eq!(name, Some(Value::from("Alice")));
    assert_eq!(city, None, "no address yet");
    assert_eq!(
        db.json.get_path(&run, "user:1", "$")?.map(|v| v.value),
        Some(json!({"name": "Alice", "age": 30, "temporary_field": "x"})),
        "`$` is the root"
    );

    // set_path
    db.json.set_path(&run, "user:1", "$.name", "Bob")?;
    db.json.set_path(&run, "user:1", "$.address.city", "NYC")?;

    assert_eq!(
        db.json.get_path(&run, "user:1", "$.name")?.map(|v| v.value),
        Some(Value::from("Bob"))
    );
    assert_eq!(
        db.json
            .get_path(&run, "user:1", "$.address.city")?
            .map(|v| v.value),
        Some(Value::from("NYC")),
        "missing intermediate objects are created"
    );
    assert_eq!(
        db.json.get_in(&run, "user:1")?.unwrap().value,
        json!({"name": "Bob", "age": 30, "temporary_field": "x", "address": {"city": "NYC"}})
    );

    // delete_path
    let before = db.json.get_in(&run, "user:1")?.unwrap().version;
    let deleted = db.json.delete_path(&run, "user:1", "$.temporary_field")?;
    assert_eq!(deleted, 1, "number of paths deleted");
    assert_eq!(
        db.json
            .get_path(&run, "user:1", "$.temporary_field")?
            .map(|v| v.value),
        None
    );
    assert!(db.json.get_in(&run, "user:1")?.unwrap().version > before);
    assert_eq!(
        db.json.delete_path(&run, "user:1", "$.temporary_field")?,
        0,
        "nothing left to delete"
    );

    // Errors: malformed path, missing document.
    let err = db.json.get_path(&run, "user:1", "$[").unwrap_err();
    assert!(matches!(err, Error::InvalidPath(_)), "{err:?}");
    let err = db.json.set_path(&run, "nobody", "$.name", "x").unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    Ok(())
}

#[test]
fn merge_sample_follows_rfc_7396() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.json.set_in(
        &run,
        "user:1",
        json!({"name": "Alice", "age": 30, "address": {"city": "NYC", "zip": "10001"}}),
    )?;

    // Partial update - only modifies specified fields
    db.json.merge(&run, "user:1", "$", json!({"age": 31}))?;

    assert_eq!(
        db.json.get_in(&run, "user:1")?.unwrap().value,
        json!({"name": "Alice", "age": 31, "address": {"city": "NYC", "zip": "10001"}})
    );

    // Nested objects merge recursively; null removes a member; arrays replace.
    let v = db.json.merge(
        &run,
        "user:1",
        "$",
        json!({"address": {"zip": null, "street": "5th"}, "tags": ["a"], "name": null}),
    )?;
    let doc = db.json.get_in(&run, "user:1")?.unwrap();
    assert_eq!(doc.version, v);
    assert_eq!(
        doc.value,
        json!({"age": 31, "address": {"city": "NYC", "street": "5th"}, "tags": ["a"]})
    );
    db.json
        .merge(&run, "user:1", "$", json!({"tags": ["b", "c"]}))?;
    assert_eq!(
        db.json.get_path(&run, "user:1", "$.tags")?.map(|v| v.value),
        Some(json!(["b", "c"]))
    );

    // Merge at a sub-path.
    db.json
        .merge(&run, "user:1", "$.address", json!({"city": "Boston"}))?;
    assert_eq!(
        db.json
            .get_path(&run, "user:1", "$.address")?
            .map(|v| v.value),
        Some(json!({"city": "Boston", "street": "5th"}))
    );
    Ok(())
}

#[test]
fn exists_sample() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.json.set_in(&run, "user:1", json!({"name": "Alice"}))?;

    let mut printed = false;
    if db.json.exists(&run, "user:1")? {
        println!("Document exists");
        printed = true;
    }
    assert!(printed);
    assert!(!db.json.exists(&run, "user:2")?);
    assert!(!db.json.exists(&db.runs.default_run(), "user:1")?);
    Ok(())
}
