//! API reference samples: Versioning, Error Handling and the Complete Example. Each test
//! holds the reference's code block as written and then asserts what the prose promises.
#![expect(clippy::useless_conversion, reason = "spec samples are kept verbatim")]

use std::sync::Arc;
use std::time::Duration;

use stratadb::prelude::*;

// ---------------------------------------------------------------------------------
// Versioning
// ---------------------------------------------------------------------------------

/// The `Version` enum has exactly the three listed variants, each carrying a `u64`.
fn number(v: Version) -> u64 {
    match v {
        Version::Txn(n) => n,
        Version::Sequence(n) => n,
        Version::Counter(n) => n,
    }
}

#[test]
fn version_enum_and_methods() {
    let t = Version::Txn(7);
    let s = Version::Sequence(3);
    let c = Version::Counter(0);
    assert_eq!((number(t), number(s), number(c)), (7, 3, 0));

    assert_eq!(t.as_u64(), 7);
    assert_eq!(s.as_u64(), 3);
    assert_eq!(c.as_u64(), 0);
    assert!(t.is_txn() && !t.is_sequence() && !t.is_counter());
    assert!(!s.is_txn() && s.is_sequence() && !s.is_counter());
    assert!(!c.is_txn() && !c.is_sequence() && c.is_counter());
    assert!(c.is_zero() && !t.is_zero() && !s.is_zero());
    assert!(Version::Txn(0).is_zero());
}

#[test]
fn every_mutation_produces_the_documented_version_kind() -> Result<()> {
    let db = Strata::ephemeral()?;
    let run = db.runs.create(None)?;

    // Txn: KV, JSON, Vectors, Runs (global transaction ids, increasing).
    let kv = db.kv.put(&run, "k", 1i64)?;
    let json = db.json.set_in(&run, "d", json!({"a": 1}))?;
    db.vectors
        .create_collection(&run, "v", 2, DistanceMetric::Cosine)?;
    db.vectors.upsert(&run, "v", "x", &[1.0, 0.0], None)?;
    let vec_read = db.vectors.get(&run, "v", "x")?.unwrap();
    let run_read = db.runs.get(&run)?.unwrap();
    for v in [kv, json, vec_read.version, run_read.version] {
        assert!(v.is_txn(), "{v:?}");
    }
    assert!(kv < json && json < vec_read.version);

    // Sequence: Events (position in the log).
    let e1 = db.events.append_in(&run, "s", json!({"n": 1}))?;
    let e2 = db.events.append_in(&run, "s", json!({"n": 2}))?;
    assert_eq!((e1, e2), (Version::Sequence(1), Version::Sequence(2)));
    assert_eq!(db.events.read_in(&run, "s", 10)?[1].version, e2);

    // Counter: State (per-entity).
    let c1 = db.state.set_in(&run, "a", 1i64)?;
    let c2 = db.state.set_in(&run, "a", 2i64)?;
    let other = db.state.set_in(&run, "b", 1i64)?;
    assert_eq!(
        (c1, c2, other),
        (
            Version::Counter(1),
            Version::Counter(2),
            Version::Counter(1)
        )
    );

    // Every read returns version information equal to the write's.
    assert_eq!(db.kv.get_in(&run, "k")?.unwrap().version, kv);
    assert_eq!(db.json.get_in(&run, "d")?.unwrap().version, json);
    assert_eq!(db.state.get_in(&run, "a")?.unwrap().version, c2);
    Ok(())
}

#[test]
fn versioned_struct_and_methods() -> Result<()> {
    let db = Strata::ephemeral()?;
    let before = Timestamp::now();
    let version = db.kv.put(&db.runs.default_run(), "name", "Alice")?;
    let after = Timestamp::now();

    let read: Versioned<Value> = db.kv.get("name")?.unwrap();
    // Public fields.
    let Versioned {
        value,
        version: v,
        timestamp,
    } = read.clone();
    assert_eq!(value, Value::from("Alice"));
    assert_eq!(v, version);
    // Creation timestamp in microseconds.
    assert!(
        before <= timestamp && timestamp <= after,
        "{before:?} {timestamp:?} {after:?}"
    );
    assert!(timestamp.as_micros() > 1_600_000_000_000_000);

    // Methods.
    let r: &Value = read.value();
    assert_eq!(r, &Value::from("Alice"));
    assert_eq!(read.version(), version);
    assert_eq!(read.timestamp(), timestamp);
    let age = read.age().expect("written in the past");
    assert!(age < Duration::from_secs(60));
    assert!(!read.is_older_than(Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(5));
    assert!(read.is_older_than(Duration::from_millis(1)));
    assert!(read.age().unwrap() >= Duration::from_millis(5));
    let owned: Value = read.into_value();
    assert_eq!(owned, Value::from("Alice"));
    Ok(())
}

#[test]
fn versioned_value_convenience_methods() -> Result<()> {
    let db = Strata::ephemeral()?;
    db.kv.set("s", "text")?;
    db.kv.set("i", 42i64)?;
    db.kv.set("f", 2.5f64)?;
    db.kv.set("b", true)?;
    db.kv
        .set("a", Value::Array(vec![Value::Int(1), Value::Null]))?;
    db.kv.set("o", json!({"k": "v"}))?;
    db.kv.set("n", Value::Null)?;

    let get = |k: &str| db.kv.get(k).unwrap().unwrap();
    assert_eq!(get("s").as_str(), Some("text"));
    assert!(get("s").is_string() && !get("s").is_null());
    assert_eq!(get("i").as_int(), Some(42));
    assert_eq!(get("f").as_float(), Some(2.5));
    assert_eq!(get("b").as_bool(), Some(true));
    assert_eq!(get("a").as_array(), Some(&[Value::Int(1), Value::Null][..]));
    assert_eq!(get("o").as_object().unwrap()["k"], Value::from("v"));
    assert!(get("n").is_null() && !get("n").is_string());
    // They delegate: wrong types give None, like Value's.
    assert_eq!(get("s").as_int(), None);
    assert_eq!(get("i").as_str(), None);
    assert_eq!(get("i").as_float(), None);
    assert_eq!(get("o").as_array(), None);
    assert_eq!(get("a").as_object(), None);
    assert_eq!(get("n").as_bool(), None);
    Ok(())
}

#[test]
#[allow(unused_variables)]
fn versioned_before_after_sample() -> Result<()> {
    let db = Strata::ephemeral()?;
    db.kv.set("name", "Alice")?;

    // The sample as written: each line compiles. (`name` borrows a temporary, so it
    // cannot be used after its statement; the assertions below use the same
    // expressions inline.)

    // Before (verbose)
    let name = db.kv.get("name")?.unwrap().value.as_str();

    // After (clean)
    let name = db.kv.get("name")?.unwrap().as_str();

    assert_eq!(db.kv.get("name")?.unwrap().value.as_str(), Some("Alice"));
    assert_eq!(db.kv.get("name")?.unwrap().as_str(), Some("Alice"));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Error handling
// ---------------------------------------------------------------------------------

/// The `Error` enum has exactly the listed variants with the listed payloads.
fn variant(e: &Error) -> &'static str {
    match e {
        Error::NotFound(s) => {
            let _: &String = s;
            "NotFound"
        }
        Error::WrongType { expected, actual } => {
            let _ = (expected, actual);
            "WrongType"
        }
        Error::InvalidKey(s) => {
            let _: &String = s;
            "InvalidKey"
        }
        Error::InvalidPath(s) => {
            let _: &String = s;
            "InvalidPath"
        }
        Error::Conflict(s) => {
            let _: &String = s;
            "Conflict"
        }
        Error::ConstraintViolation(s) => {
            let _: &String = s;
            "ConstraintViolation"
        }
        Error::RunError(s) => {
            let _: &String = s;
            "RunError"
        }
        Error::Io(e) => {
            let _: &std::io::Error = e;
            "Io"
        }
        Error::Serialization(s) => {
            let _: &String = s;
            "Serialization"
        }
        Error::Storage(s) => {
            let _: &String = s;
            "Storage"
        }
        Error::Internal(s) => {
            let _: &String = s;
            "Internal"
        }
    }
}

/// (retryable, not_found, conflict, serious) per the Error Methods table.
fn classify(e: &Error) -> (bool, bool, bool, bool) {
    (
        e.is_retryable(),
        e.is_not_found(),
        e.is_conflict(),
        e.is_serious(),
    )
}

#[test]
fn error_methods_on_constructed_errors() {
    let cases = [
        (Error::NotFound("k".into()), (false, true, false, false)),
        (
            Error::WrongType {
                expected: "Int".into(),
                actual: "String".into(),
            },
            (false, false, false, false),
        ),
        (Error::InvalidKey("k".into()), (false, false, false, false)),
        (Error::InvalidPath("p".into()), (false, false, false, false)),
        (Error::Conflict("c".into()), (true, false, true, false)),
        (
            Error::ConstraintViolation("c".into()),
            (false, false, false, false),
        ),
        (Error::RunError("r".into()), (false, false, false, false)),
        (
            Error::Io(std::io::Error::other("disk")),
            (false, false, false, true),
        ),
        (
            Error::Serialization("s".into()),
            (false, false, false, false),
        ),
        (Error::Storage("s".into()), (false, false, false, true)),
        (Error::Internal("bug".into()), (false, false, false, true)),
    ];
    for (e, expected) in &cases {
        assert_eq!(classify(e), *expected, "{} {e:?}", variant(e));
    }
    // Errors display a message naming what was wrong.
    assert!(Error::NotFound("user:1".into())
        .to_string()
        .contains("user:1"));
    // std::error::Error, so `?` into Box<dyn Error> works.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::Internal("x".into()));
    assert!(boxed.to_string().contains('x'));
}

#[test]
fn real_operations_report_the_documented_variants() -> Result<()> {
    let db = Strata::ephemeral()?;
    let run = db.runs.create(None)?;

    let e = db.kv.get_at(&run, "missing", Version::Txn(1)).unwrap_err();
    assert_eq!(variant(&e), "NotFound");
    assert!(e.is_not_found() && !e.is_retryable() && !e.is_serious());

    db.kv.set_in(&run, "s", "text")?;
    let e = db.kv.incr(&run, "s", 1).unwrap_err();
    assert_eq!(variant(&e), "WrongType");

    let e = db.kv.set("", 1i64).unwrap_err();
    assert_eq!(variant(&e), "InvalidKey");

    db.json.set_in(&run, "d", json!({"a": 1}))?;
    let e = db.json.get_path(&run, "d", "not a path").unwrap_err();
    assert_eq!(variant(&e), "InvalidPath");

    let e = db
        .vectors
        .create_collection(&run, "v", 0, DistanceMetric::Cosine)
        .unwrap_err();
    assert_eq!(variant(&e), "ConstraintViolation");

    db.runs.close(&run)?;
    let e = db.kv.set_in(&run, "k", 1i64).unwrap_err();
    assert_eq!(variant(&e), "RunError");
    assert!(!e.is_retryable() && !e.is_serious() && !e.is_not_found());

    // Opening a database where a regular file is in the way is an I/O or storage
    // error: serious.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x")?;
    let e = Strata::open(&file).unwrap_err();
    assert!(e.is_serious(), "{e:?}");
    Ok(())
}

// The reference's pattern, verbatim.
fn handle_cas_retry(db: &Strata, run: &RunId) -> Result<()> {
    loop {
        let current = db.kv.get_in(run, "counter")?;
        let expected = current.as_ref().map(|v| v.version);
        let new_val = current
            .map(|v| v.value.as_int().unwrap_or(0) + 1)
            .unwrap_or(1);

        match db.kv.cas(run, "counter", expected, new_val) {
            Ok(true) => return Ok(()),
            Ok(false) => continue, // Retry on conflict
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn handle_cas_retry_pattern() -> Result<()> {
    let db = Strata::ephemeral()?;
    let run = db.runs.create(None)?;

    handle_cas_retry(&db, &run)?;
    assert_eq!(db.kv.get_in(&run, "counter")?.unwrap().as_int(), Some(1));
    handle_cas_retry(&db, &run)?;
    assert_eq!(db.kv.get_in(&run, "counter")?.unwrap().as_int(), Some(2));

    // Concurrent increments through the pattern lose no update.
    let db = Arc::new(db);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || -> Result<()> {
                for _ in 0..50 {
                    handle_cas_retry(&db, &run)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread panicked")?;
    }
    assert_eq!(db.kv.get_in(&run, "counter")?.unwrap().as_int(), Some(202));
    let history = db.kv.history(&run, "counter", None, None)?;
    assert_eq!(history.len(), 202, "one version per successful swap");

    // Non-retryable errors are returned: a closed run.
    db.runs.close(&run)?;
    let err = handle_cas_retry(&db, &run).unwrap_err();
    assert!(matches!(err, Error::RunError(_)), "{err:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------
// Complete example
// ---------------------------------------------------------------------------------

fn complete_example(agent_memory: &std::path::Path) -> Result<RunId> {
    // Open database
    let db = StrataBuilder::new().path(agent_memory).buffered().open()?;

    // Create a conversation run with metadata
    let conversation = db.runs.create(Some(
        json!({
            "user": "alice",
            "topic": "weather"
        })
        .into(),
    ))?;

    // Store conversation context (KV)
    db.kv.set_in(&conversation, "user:name", "Alice")?;
    db.kv.set_in(&conversation, "user:location", "NYC")?;

    // Store user profile (JSON) - use json! macro for ergonomic syntax
    db.json.set_in(
        &conversation,
        "user:profile",
        json!({
            "preferences": {
                "units": "metric",
                "theme": "dark"
            }
        }),
    )?;

    // Log agent actions (Events) - json! macro makes this clean
    db.events.append_in(
        &conversation,
        "trace",
        json!({
            "type": "user_message",
            "content": "What's the weather?"
        }),
    )?;

    db.events.append_in(
        &conversation,
        "trace",
        json!({
            "type": "tool_call",
            "tool": "weather_api"
        }),
    )?;

    // Track current state (State)
    db.state.set_in(&conversation, "agent:status", "thinking")?;

    // Store embeddings (Vectors)
    db.vectors
        .create_collection(&conversation, "memory", 4, DistanceMetric::Cosine)?;
    db.vectors.upsert(
        &conversation,
        "memory",
        "mem:1",
        &[0.1, 0.2, 0.3, 0.4],
        Some(Value::from("User asked about weather")),
    )?;

    // Read everything back
    let name = db.kv.get_in(&conversation, "user:name")?;
    let name_value = name.clone().map(|v| v.value);
    println!("User: {:?}", name.map(|v| v.value));
    assert_eq!(name_value, Some(Value::from("Alice")));

    let events = db.events.read_in(&conversation, "trace", 10)?;
    println!("Events: {}", events.len());
    assert_eq!(events.len(), 2);

    let similar = db
        .vectors
        .search(&conversation, "memory", &[0.1, 0.2, 0.3, 0.4], 5, None)?;
    println!("Similar memories: {}", similar.len());
    assert_eq!(similar.len(), 1);
    assert_eq!(similar[0].key, "mem:1");
    assert!((similar[0].score - 1.0).abs() < 1e-5);
    assert_eq!(
        similar[0].metadata,
        Some(Value::from("User asked about weather"))
    );

    // Close the conversation
    db.runs.close(&conversation)?;

    // Flush and close
    db.flush()?;
    db.close()?;

    Ok(conversation)
}

#[test]
fn complete_example_runs_and_everything_is_recovered() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("agent-memory");
    let conversation = complete_example(&path)?;

    let db = Strata::open(&path)?;
    let info = db.runs.get(&conversation)?.unwrap().value;
    assert_eq!(info.state, RunState::Completed);
    assert_eq!(
        info.metadata,
        Some(json!({"user": "alice", "topic": "weather"}))
    );
    assert_eq!(
        db.kv
            .get_in(&conversation, "user:location")?
            .unwrap()
            .as_str(),
        Some("NYC")
    );
    assert_eq!(
        db.json
            .get_path(&conversation, "user:profile", "$.preferences.theme")?
            .map(|v| v.value),
        Some(Value::from("dark"))
    );
    let trace = db.events.read_in(&conversation, "trace", 10)?;
    assert_eq!(trace.len(), 2);
    assert_eq!(
        trace[1].value,
        json!({"type": "tool_call", "tool": "weather_api"})
    );
    assert_eq!(
        db.state
            .get_in(&conversation, "agent:status")?
            .unwrap()
            .as_str(),
        Some("thinking")
    );
    let similar = db
        .vectors
        .search(&conversation, "memory", &[0.1, 0.2, 0.3, 0.4], 5, None)?;
    assert_eq!(similar.len(), 1, "the vector index is rebuilt on open");
    assert_eq!(similar[0].key, "mem:1");
    // The conversation is closed: reads work, writes are refused.
    assert!(matches!(
        db.kv.set_in(&conversation, "user:name", "Bob"),
        Err(Error::RunError(_))
    ));
    Ok(())
}
