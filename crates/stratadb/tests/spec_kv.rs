//! API reference samples: Key-Value Store (KV). Each test holds the reference's code
//! block as written and then asserts what the prose promises.

use stratadb::prelude::*;

fn db() -> Strata {
    Strata::ephemeral().expect("ephemeral db")
}

#[test]
fn progressive_disclosure() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    // Level 1: Simple (default run)
    db.kv.set("key", "value")?;
    db.kv.get("key")?;

    // Level 2: Run-scoped
    db.kv.set_in(&run, "key", "value")?;
    db.kv.get_in(&run, "key")?;

    // Level 3: Full control (returns version)
    let version = db.kv.put(&run, "key", "value")?;

    assert!(version.is_txn());
    assert_eq!(db.kv.get_in(&run, "key")?.unwrap().version, version);
    // Level 1 is the default run.
    let default = db.runs.default_run();
    assert_eq!(
        db.kv.get("key")?.unwrap().value,
        db.kv.get_in(&default, "key")?.unwrap().value
    );
    // Runs are isolated namespaces.
    db.kv.set_in(&run, "only-in-run", 1i64)?;
    assert!(db.kv.get("only-in-run")?.is_none());
    assert!(db.kv.exists_in(&run, "only-in-run")?);
    Ok(())
}

#[test]
fn set_get_exists_delete_samples() -> Result<()> {
    let db = db();

    db.kv.set("name", "Alice")?;
    db.kv.set("age", 30i64)?;
    db.kv.set("active", true)?;

    let mut seen = None;
    if let Some(versioned) = db.kv.get("name")? {
        // Convenience: access value directly via delegation
        println!("Name: {:?}", versioned.as_str());
        println!("Version: {:?}", versioned.version);
        seen = Some((versioned.as_str().map(str::to_owned), versioned.version));
    }
    let (name, version) = seen.expect("name was set");
    assert_eq!(name.as_deref(), Some("Alice"));
    assert!(version.is_txn() && !version.is_zero());
    assert_eq!(db.kv.get("age")?.unwrap().as_int(), Some(30));
    assert_eq!(db.kv.get("active")?.unwrap().as_bool(), Some(true));
    assert!(db.kv.get("missing")?.is_none());

    let mut printed = false;
    if db.kv.exists("name")? {
        println!("Key exists");
        printed = true;
    }
    assert!(printed);
    assert!(!db.kv.exists("missing")?);

    let existed = db.kv.delete("name")?;
    assert!(existed, "delete returns true if the key existed");
    assert!(!db.kv.exists("name")?);
    assert!(db.kv.get("name")?.is_none());
    assert!(!db.kv.delete("name")?, "and false if it did not");
    Ok(())
}

#[test]
fn run_scoped_samples() -> Result<()> {
    let db = db();

    let run = db.runs.create(None)?;
    db.kv.set_in(&run, "session:token", "abc123")?;

    let value = db.kv.get_in(&run, "session:token")?;
    assert_eq!(value.unwrap().as_str(), Some("abc123"));
    assert!(
        db.kv.get("session:token")?.is_none(),
        "not in the default run"
    );

    let exists = db.kv.exists_in(&run, "session:token")?;
    assert!(exists);

    let existed = db.kv.delete_in(&run, "session:token")?;
    assert!(existed);
    assert!(!db.kv.exists_in(&run, "session:token")?);
    assert!(!db.kv.delete_in(&run, "session:token")?);
    Ok(())
}

#[test]
fn put_get_at_history_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    let version = db.kv.put(&run, "counter", 0i64)?;
    println!("Written at version: {:?}", version);
    assert!(version.is_txn());

    let v2 = db.kv.put(&run, "counter", 1i64)?;
    let v3 = db.kv.put(&run, "counter", 2i64)?;
    assert!(version < v2 && v2 < v3, "versions increase");

    let old_value = db.kv.get_at(&run, "counter", version)?;
    assert_eq!(old_value.as_int(), Some(0), "historical read");
    assert_eq!(old_value.version, version);
    assert_eq!(db.kv.get_at(&run, "counter", v2)?.as_int(), Some(1));
    assert_eq!(db.kv.get_at(&run, "counter", v3)?.as_int(), Some(2));
    // Before the first write there is nothing.
    let before_first = Version::Txn(version.as_u64() - 1);
    assert!(db
        .kv
        .get_at(&run, "counter", before_first)
        .unwrap_err()
        .is_not_found());

    let history = db.kv.history(&run, "counter", Some(10), None)?;
    let mut listed = Vec::new();
    for entry in history {
        println!("{:?} at {:?}", entry.value, entry.version);
        listed.push((entry.value.clone(), entry.version));
    }
    assert_eq!(
        listed,
        vec![
            (Value::Int(2), v3),
            (Value::Int(1), v2),
            (Value::Int(0), version)
        ],
        "history is newest first"
    );

    // limit and the `before` pagination cursor.
    let page1 = db.kv.history(&run, "counter", Some(2), None)?;
    assert_eq!(page1.len(), 2);
    let page2 = db
        .kv
        .history(&run, "counter", Some(2), Some(page1[1].version))?;
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].version, version);
    assert!(db.kv.history(&run, "missing", None, None)?.is_empty());
    Ok(())
}

#[test]
fn incr_sample() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.kv.put(&run, "counter", 0i64)?;

    let new_value = db.kv.incr(&run, "counter", 1)?;
    println!("Counter is now: {}", new_value);

    assert_eq!(new_value, 1);
    assert_eq!(db.kv.incr(&run, "counter", 10)?, 11);
    assert_eq!(db.kv.incr(&run, "counter", -20)?, -9, "negative decrements");
    assert_eq!(db.kv.get_in(&run, "counter")?.unwrap().as_int(), Some(-9));
    // Only integers can be incremented.
    db.kv.set_in(&run, "name", "Alice")?;
    let err = db.kv.incr(&run, "name", 1).unwrap_err();
    assert!(matches!(err, Error::WrongType { .. }), "{err:?}");
    Ok(())
}

/// The reference's `cas` sample; returns whether it took the "Updated" branch.
fn cas_sample(db: &Strata, run: &RunId) -> Result<bool> {
    // Get current version
    let current = db.kv.get_in(run, "config")?;
    let expected = current.map(|v| v.version);

    // Try to update atomically
    if db.kv.cas(run, "config", expected, "new-value")? {
        println!("Updated successfully");
        Ok(true)
    } else {
        println!("Concurrent modification detected");
        Ok(false)
    }
}

#[test]
fn cas_sample_and_semantics() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    // Key absent: expected = None, which requires absence, so it succeeds.
    assert!(cas_sample(&db, &run)?);
    assert_eq!(
        db.kv.get_in(&run, "config")?.unwrap().as_str(),
        Some("new-value")
    );
    // Key present at the read version: succeeds again.
    db.kv.set_in(&run, "config", "old")?;
    assert!(cas_sample(&db, &run)?);
    assert_eq!(
        db.kv.get_in(&run, "config")?.unwrap().as_str(),
        Some("new-value")
    );

    // Stale expected version fails and does not write.
    let stale = db.kv.get_in(&run, "config")?.unwrap().version;
    db.kv.set_in(&run, "config", "someone-else")?;
    assert!(!db.kv.cas(&run, "config", Some(stale), "mine")?);
    assert_eq!(
        db.kv.get_in(&run, "config")?.unwrap().as_str(),
        Some("someone-else")
    );

    // `None` means "key must not exist".
    assert!(!db.kv.cas(&run, "config", None, "mine")?);
    assert!(db.kv.cas(&run, "fresh", None, 1i64)?);
    assert!(!db.kv.cas(&run, "fresh", None, 2i64)?);
    assert_eq!(db.kv.get_in(&run, "fresh")?.unwrap().as_int(), Some(1));
    // A version on a missing key fails.
    assert!(!db.kv.cas(&run, "absent", Some(stale), 1i64)?);
    assert!(!db.kv.exists_in(&run, "absent")?);
    Ok(())
}

#[test]
fn batch_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.kv.set_in(&run, "key1", 1i64)?;
    db.kv.set_in(&run, "key3", 3i64)?;

    let values = db.kv.mget(&run, &["key1", "key2", "key3"])?;
    for (i, val) in values.iter().enumerate() {
        println!("key{}: {:?}", i + 1, val);
    }
    assert_eq!(values.len(), 3);
    assert_eq!(values[0].as_ref().unwrap().as_int(), Some(1));
    assert!(values[1].is_none());
    assert_eq!(values[2].as_ref().unwrap().as_int(), Some(3));

    let msetv = db.kv.mset(
        &run,
        &[("name", Value::from("Alice")), ("age", Value::from(30i64))],
    )?;
    let name = db.kv.get_in(&run, "name")?.unwrap();
    let age = db.kv.get_in(&run, "age")?.unwrap();
    assert_eq!(name.as_str(), Some("Alice"));
    assert_eq!(age.as_int(), Some(30));
    // One transaction: both keys carry the returned version.
    assert_eq!(name.version, msetv);
    assert_eq!(age.version, msetv);

    db.kv.set_in(&run, "key2", 2i64)?;
    db.kv.delete_in(&run, "key2")?;
    let deleted_count = db.kv.mdelete(&run, &["key1", "key2"])?;
    assert_eq!(deleted_count, 1, "counts only the keys that existed");
    assert!(!db.kv.exists_in(&run, "key1")?);
    assert!(db.kv.exists_in(&run, "key3")?);
    Ok(())
}

#[test]
fn keys_sample() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    for k in ["user:2", "user:1", "config", "user:3", "session"] {
        db.kv.set_in(&run, k, k)?;
    }
    db.kv.set("user:default-run", 1i64)?;

    // List all keys
    let all_keys = db.kv.keys(&run, "", None)?;

    // List keys with prefix
    let user_keys = db.kv.keys(&run, "user:", Some(100))?;

    assert_eq!(
        all_keys,
        ["config", "session", "user:1", "user:2", "user:3"]
    );
    assert_eq!(user_keys, ["user:1", "user:2", "user:3"]);
    assert_eq!(db.kv.keys(&run, "user:", Some(2))?, ["user:1", "user:2"]);
    assert!(db.kv.keys(&run, "nope", None)?.is_empty());
    db.kv.delete_in(&run, "user:2")?;
    assert_eq!(db.kv.keys(&run, "user:", None)?, ["user:1", "user:3"]);
    Ok(())
}
