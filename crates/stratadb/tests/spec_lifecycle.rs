//! API reference samples: Quick Start, Database Lifecycle (constructors, builder
//! variants, flush/close/path/is_ephemeral/metrics), Value Types and the prelude.
//!
//! Each test holds the reference's code block as written (paths such as `./my-db`
//! replaced with temporary directories) and then asserts what the prose promises.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use stratadb::prelude::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn dir_entries(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------
// Quick Start
// ---------------------------------------------------------------------------------

fn quick_start(my_db: &Path) -> Result<()> {
    // Open a database
    let db = Strata::open(my_db)?;

    // Key-value operations
    db.kv.set("user:name", "Alice")?;
    let name = db.kv.get("user:name")?;

    // JSON documents - use json! macro
    db.json.set(
        "profile:1",
        json!({
            "name": "Alice",
            "age": 30
        }),
    )?;

    // Event streams
    db.events.append(
        "activity",
        json!({
            "action": "login"
        }),
    )?;

    assert_eq!(name.as_ref().and_then(|v| v.as_str()), Some("Alice"));

    // Graceful shutdown
    db.close()?;
    Ok(())
}

#[test]
fn quick_start_runs_and_data_survives_close() -> Result<()> {
    let dir = tmp();
    let path = dir.path().join("my-db");
    quick_start(&path)?;
    assert!(path.is_dir(), "open(path) creates the database directory");
    assert!(!dir_entries(&path).is_empty(), "database files are on disk");

    let db = Strata::open(&path)?;
    assert_eq!(db.kv.get("user:name")?.unwrap().as_str(), Some("Alice"));
    let profile = db.json.get("profile:1")?.unwrap();
    assert_eq!(profile.value, json!({"name": "Alice", "age": 30}));
    let events = db.events.read("activity", 10)?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].value, json!({"action": "login"}));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Opening a database
// ---------------------------------------------------------------------------------

#[test]
fn strata_open_uses_the_given_directory() -> Result<()> {
    let dir = tmp();
    let my_db = dir.path().join("my-db");
    let db = Strata::open(&my_db)?;
    assert_eq!(db.path(), my_db.as_path());
    assert!(!db.is_ephemeral());
    db.kv.set("k", 1i64)?;
    db.close()?;

    // `path: impl AsRef<Path>`: &str, String, PathBuf all work.
    let as_str: &str = my_db.to_str().unwrap();
    let db = Strata::open(as_str)?;
    assert_eq!(db.kv.get("k")?.unwrap().as_int(), Some(1));
    db.close()?;
    let db = Strata::open(my_db.to_string_lossy().into_owned())?;
    assert_eq!(db.kv.get("k")?.unwrap().as_int(), Some(1));
    Ok(())
}

#[test]
fn strata_ephemeral_sample() -> Result<()> {
    let cwd = std::env::current_dir().unwrap();
    let before = dir_entries(&cwd);

    let db = Strata::ephemeral()?;
    assert!(db.is_ephemeral());

    // All operations work normally
    db.kv.set("key", "value")?;

    assert_eq!(db.kv.get("key")?.unwrap().as_str(), Some("value"));
    let run = db.runs.create(None)?;
    db.json.set_in(&run, "doc", json!({"a": 1}))?;
    db.events.append_in(&run, "s", json!({"e": 1}))?;
    db.state.set_in(&run, "c", 1i64)?;
    db.vectors
        .create_collection(&run, "v", 2, DistanceMetric::Euclidean)?;
    db.vectors.upsert(&run, "v", "a", &[1.0, 0.0], None)?;
    assert_eq!(db.vectors.count(&run, "v")?, 1);
    db.flush()?;
    // No files: no directory of its own, nothing new in the working directory.
    assert!(
        db.path().as_os_str().is_empty() || !db.path().exists(),
        "ephemeral database has no directory, got {:?}",
        db.path()
    );

    // Data is lost when db is dropped
    drop(db);

    assert_eq!(dir_entries(&cwd), before, "ephemeral db created files");
    let db = Strata::ephemeral()?;
    assert!(
        db.kv.get("key")?.is_none(),
        "a new ephemeral db starts empty"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// StrataBuilder
// ---------------------------------------------------------------------------------

#[test]
fn builder_samples() -> Result<()> {
    let dir = tmp();
    let my_db = dir.path().join("my-db");
    let audit_db = dir.path().join("audit-db");

    // Production: buffered writes (default)
    let db = StrataBuilder::new().path(&my_db).buffered().open()?;
    assert_eq!(db.path(), my_db.as_path());
    assert!(!db.is_ephemeral());
    db.kv.set("mode", "buffered")?;
    db.close()?;

    // Integration testing: temp directory, no durability
    let db = StrataBuilder::new().no_durability().open_temp()?;
    let temp_path = db.path().to_path_buf();
    assert!(temp_path.is_dir(), "open_temp creates a directory");
    assert!(!db.is_ephemeral());
    db.kv.set("mode", "temp")?;
    drop(db);
    assert!(
        !temp_path.exists(),
        "open_temp's directory is removed when the db is dropped"
    );

    // Critical data: strict durability
    let db = StrataBuilder::new().path(&audit_db).strict().open()?;
    assert_eq!(db.path(), audit_db.as_path());
    db.kv.set("mode", "strict")?;
    db.close()?;

    // Unit testing: truly ephemeral (preferred)
    let db = Strata::ephemeral()?;
    assert!(db.is_ephemeral());
    drop(db);

    // Every disk-backed mode recovers ("Recovery: Yes").
    let db = Strata::open(&my_db)?;
    assert_eq!(db.kv.get("mode")?.unwrap().as_str(), Some("buffered"));
    db.close()?;
    let db = Strata::open(&audit_db)?;
    assert_eq!(db.kv.get("mode")?.unwrap().as_str(), Some("strict"));
    Ok(())
}

#[test]
fn builder_methods_table() -> Result<()> {
    let dir = tmp();

    // `buffered_with(interval_ms, max_writes)`
    let p = dir.path().join("buffered-with");
    let db = StrataBuilder::new().path(&p).buffered_with(10, 5).open()?;
    for i in 0..20i64 {
        db.kv.set(&format!("k{i}"), i)?;
    }
    db.close()?;
    let db = Strata::open(&p)?;
    assert_eq!(db.kv.get("k19")?.unwrap().as_int(), Some(19));
    drop(db);

    // `no_durability()`: files created, no fsync, recovery still works.
    let p = dir.path().join("no-durability");
    let db = StrataBuilder::new().path(&p).no_durability().open()?;
    db.kv.set("k", "v")?;
    assert!(
        !dir_entries(&p).is_empty(),
        "no_durability still creates files"
    );
    db.close()?;
    let db = Strata::open(&p)?;
    assert_eq!(db.kv.get("k")?.unwrap().as_str(), Some("v"));
    drop(db);

    // `open_temp()` on a builder with default settings.
    let db = StrataBuilder::new().open_temp()?;
    let tp = db.path().to_path_buf();
    db.kv.set("k", 1i64)?;
    db.flush()?;
    drop(db);
    assert!(!tp.exists());

    // `open()` needs a path.
    assert!(StrataBuilder::new().open().is_err());
    Ok(())
}

#[test]
#[allow(deprecated)]
fn deprecated_in_memory_still_works() -> Result<()> {
    let db = StrataBuilder::new().in_memory().open_temp()?;
    assert!(!db.is_ephemeral(), "in_memory is an alias of no_durability");
    let p = db.path().to_path_buf();
    assert!(p.is_dir());
    db.kv.set("k", "v")?;
    assert_eq!(db.kv.get("k")?.unwrap().as_str(), Some("v"));
    drop(db);
    assert!(!p.exists());

    let dir = tmp();
    let db = StrataBuilder::new()
        .path(dir.path().join("db"))
        .in_memory()
        .open()?;
    db.kv.set("k", 2i64)?;
    db.close()?;
    let db = Strata::open(dir.path().join("db"))?;
    assert_eq!(db.kv.get("k")?.unwrap().as_int(), Some(2));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Database operations
// ---------------------------------------------------------------------------------

#[test]
fn flush_close_path_samples() -> Result<()> {
    let dir = tmp();
    let data = dir.path().join("data");
    // Long interval and batch so that only flush() syncs.
    let db = StrataBuilder::new()
        .path(&data)
        .buffered_with(60_000, 1_000_000)
        .open()?;
    db.kv.set("a", 1i64)?;

    db.flush()?;

    let path = db.path();
    println!("Database at: {:?}", path);
    assert_eq!(path, data.as_path());

    db.close()?;

    // close released resources (the directory can be opened again) and kept the data.
    let db = Strata::open(&data)?;
    assert_eq!(db.kv.get("a")?.unwrap().as_int(), Some(1));
    db.close()?;

    // flush and close on an ephemeral db are fine too.
    let db = Strata::ephemeral()?;
    db.kv.set("a", 1i64)?;
    db.flush()?;
    db.close()?;
    Ok(())
}

#[test]
fn is_ephemeral_sample() -> Result<()> {
    let dir = tmp();
    let data = dir.path().join("data");

    let ephemeral_db = Strata::ephemeral()?;
    assert!(ephemeral_db.is_ephemeral());

    let disk_db = Strata::open(&data)?;
    assert!(!disk_db.is_ephemeral());

    let temp_db = StrataBuilder::new().no_durability().open_temp()?;
    assert!(!temp_db.is_ephemeral());
    Ok(())
}

#[test]
fn metrics_sample_and_fields_change() -> Result<()> {
    let db = Strata::ephemeral()?;

    let metrics = db.metrics();
    println!("Operations: {}", metrics.operations);
    println!("Commit rate: {:.2}%", metrics.commit_rate * 100.0);

    let stratadb::DatabaseMetrics {
        transactions_committed,
        transactions_aborted,
        transactions_active,
        commit_rate,
        operations,
    } = metrics;
    let _: (u64, u64, u64, f64, u64) = (
        transactions_committed,
        transactions_aborted,
        transactions_active,
        commit_rate,
        operations,
    );
    assert!((0.0..=1.0).contains(&commit_rate));
    assert_eq!(transactions_active, 0, "no transaction is open");

    db.kv.set("a", 1i64)?;
    db.kv.set("b", 2i64)?;
    db.kv.get("a")?;
    db.events.append("s", json!({"x": 1}))?;

    let after = db.metrics();
    assert!(
        after.transactions_committed >= transactions_committed + 3,
        "committed {} -> {}",
        transactions_committed,
        after.transactions_committed
    );
    assert!(
        after.operations >= operations + 4,
        "operations {} -> {}",
        operations,
        after.operations
    );
    assert_eq!(after.transactions_active, 0);
    assert!((0.0..=1.0).contains(&after.commit_rate));
    assert_eq!(after.transactions_aborted, transactions_aborted);

    // `transactions_active` counts the transactions open right now.
    let active_inside = db.transaction(|txn| {
        txn.kv_get(&db.runs.default_run(), "a")?;
        Ok(db.metrics().transactions_active)
    })?;
    assert!(
        active_inside >= 1,
        "active inside a transaction: {active_inside}"
    );
    assert_eq!(db.metrics().transactions_active, 0);

    // A transaction whose closure fails aborts: the aborted counter and the rate move.
    let err = db.transaction(|txn| {
        txn.kv_set(&db.runs.default_run(), "c", 3i64)?;
        Err::<(), _>(Error::ConstraintViolation("abort on purpose".into()))
    });
    assert!(err.is_err());
    let after_abort = db.metrics();
    assert_eq!(after_abort.transactions_aborted, transactions_aborted + 1);
    assert!(after_abort.commit_rate < 1.0);
    let expected_rate = after_abort.transactions_committed as f64
        / (after_abort.transactions_committed + after_abort.transactions_aborted) as f64;
    assert!((after_abort.commit_rate - expected_rate).abs() < 1e-9);
    assert!(db.kv.get("c")?.is_none());
    Ok(())
}

#[test]
fn strata_is_send_sync_and_shared_via_arc() -> Result<()> {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Strata>();

    let db = Arc::new(StrataBuilder::new().no_durability().open_temp()?);
    let run = db.runs.create(None)?;
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || -> Result<()> {
                for i in 0..25 {
                    db.kv.set_in(&run, &format!("w:{t}:{i}"), i as i64)?;
                    db.kv.incr(&run, "total", 1)?;
                    db.events.append_in(&run, "log", json!({"t": t, "i": i}))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    assert_eq!(db.kv.get_in(&run, "total")?.unwrap().as_int(), Some(100));
    assert_eq!(db.kv.keys(&run, "w:", None)?.len(), 100);
    assert_eq!(db.events.count(&run, "log")?, 100);
    Ok(())
}

// ---------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------

/// The `Value` enum has exactly the eight variants with the listed payload types.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(b) => {
            let _: &bool = b;
            "bool"
        }
        Value::Int(i) => {
            let _: &i64 = i;
            "int"
        }
        Value::Float(f) => {
            let _: &f64 = f;
            "float"
        }
        Value::String(s) => {
            let _: &String = s;
            "string"
        }
        Value::Bytes(b) => {
            let _: &Vec<u8> = b;
            "bytes"
        }
        Value::Array(a) => {
            let _: &Vec<Value> = a;
            "array"
        }
        Value::Object(o) => {
            let _: &HashMap<String, Value> = o;
            "object"
        }
    }
}

#[test]
fn value_enum_and_type_rules() {
    let all = [
        Value::Null,
        Value::Bool(true),
        Value::Int(1),
        Value::Float(1.0),
        Value::String("s".into()),
        Value::Bytes(b"s".to_vec()),
        Value::Array(vec![Value::Int(1)]),
        Value::Object(HashMap::from([("k".to_string(), Value::Null)])),
    ];
    let names: Vec<_> = all.iter().map(describe).collect();
    assert_eq!(
        names,
        ["null", "bool", "int", "float", "string", "bytes", "array", "object"]
    );

    // Strict equality: different types are never equal.
    assert_ne!(Value::Int(1), Value::Float(1.0));
    for (i, a) in all.iter().enumerate() {
        for (j, b) in all.iter().enumerate() {
            assert_eq!(i == j, a == b, "{a:?} vs {b:?}");
        }
    }
    // Bytes vs String are distinct.
    assert_ne!(Value::Bytes(b"abc".to_vec()), Value::String("abc".into()));
    // IEEE-754: NaN != NaN, -0.0 == 0.0.
    assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    assert_eq!(Value::Float(-0.0), Value::Float(0.0));
    // No implicit coercions.
    assert_eq!(Value::String("1".into()).as_int(), None);
    assert_eq!(Value::Int(1).as_float(), None);
    assert_eq!(Value::Float(1.0).as_int(), None);
}

#[test]
fn ergonomic_conversions_sample() -> Result<()> {
    let db = Strata::ephemeral()?;

    // These all work automatically
    db.kv.set("name", "Alice")?; // &str -> Value::String
    db.kv.set("count", 42i64)?; // i64 -> Value::Int
    db.kv.set("price", 19.99f64)?; // f64 -> Value::Float
    db.kv.set("active", true)?; // bool -> Value::Bool

    assert_eq!(
        db.kv.get("name")?.unwrap().value,
        Value::String("Alice".into())
    );
    assert_eq!(db.kv.get("count")?.unwrap().value, Value::Int(42));
    assert_eq!(db.kv.get("price")?.unwrap().value, Value::Float(19.99));
    assert_eq!(db.kv.get("active")?.unwrap().value, Value::Bool(true));
    Ok(())
}

#[test]
fn type_checking_and_extraction_methods() {
    let obj = HashMap::from([("a".to_string(), Value::Int(1))]);
    let cases: Vec<(Value, [bool; 8])> = vec![
        (
            Value::Null,
            [true, false, false, false, false, false, false, false],
        ),
        (
            Value::Bool(true),
            [false, true, false, false, false, false, false, false],
        ),
        (
            Value::Int(7),
            [false, false, true, false, false, false, false, false],
        ),
        (
            Value::Float(2.5),
            [false, false, false, true, false, false, false, false],
        ),
        (
            Value::from("s"),
            [false, false, false, false, true, false, false, false],
        ),
        (
            Value::Bytes(vec![1, 2]),
            [false, false, false, false, false, true, false, false],
        ),
        (
            Value::Array(vec![Value::Null]),
            [false, false, false, false, false, false, true, false],
        ),
        (
            Value::Object(obj.clone()),
            [false, false, false, false, false, false, false, true],
        ),
    ];
    for (v, expected) in &cases {
        let got = [
            v.is_null(),
            v.is_bool(),
            v.is_int(),
            v.is_float(),
            v.is_string(),
            v.is_bytes(),
            v.is_array(),
            v.is_object(),
        ];
        assert_eq!(&got, expected, "{v:?}");
    }

    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    assert_eq!(Value::Int(7).as_int(), Some(7));
    assert_eq!(Value::Float(2.5).as_float(), Some(2.5));
    assert_eq!(Value::from("s").as_str(), Some("s"));
    assert_eq!(Value::Bytes(vec![1, 2]).as_bytes(), Some(&[1u8, 2][..]));
    let arr = Value::Array(vec![Value::Null]);
    let slice: Option<&[Value]> = arr.as_array();
    assert_eq!(slice, Some(&[Value::Null][..]));
    let o = Value::Object(obj.clone());
    let map: Option<&HashMap<String, Value>> = o.as_object();
    assert_eq!(map, Some(&obj));
    // Extraction of another type gives None.
    assert_eq!(Value::Null.as_bool(), None);
    assert_eq!(Value::from("s").as_bytes(), None);
    assert_eq!(Value::Bytes(b"s".to_vec()).as_str(), None);
    assert_eq!(Value::Int(1).as_array(), None);
    assert_eq!(Value::Array(vec![]).as_object(), None);
}

// ---------------------------------------------------------------------------------
// Prelude
// ---------------------------------------------------------------------------------

mod prelude_only {
    //! Only the prelude is imported here: every name the reference lists must resolve.
    use stratadb::prelude::*;

    fn open_all() -> Result<Strata> {
        let _builder: StrataBuilder = StrataBuilder::new();
        Strata::ephemeral()
    }

    #[test]
    fn prelude_exports_the_listed_names() -> Result<()> {
        let db = open_all()?;
        let _kv: &KV = &db.kv;
        let _json: &Json = &db.json;
        let _events: &Events = &db.events;
        let _state: &State = &db.state;
        let _vectors: &Vectors = &db.vectors;
        let _runs: &Runs = &db.runs;

        let value: Value = json!({"a": [1, 2.5, "x", null, true]});
        assert!(value.is_object());
        let run: RunId = db.runs.default_run();
        let version: Version = db.kv.put(&run, "k", value.clone())?;
        let read: Versioned<Value> = db.kv.get("k")?.unwrap();
        assert_eq!(read.version, version);
        let ts: Timestamp = read.timestamp;
        assert!(ts <= Timestamp::now());

        let metrics = [
            DistanceMetric::Cosine,
            DistanceMetric::Euclidean,
            DistanceMetric::DotProduct,
        ];
        assert_eq!(metrics.len(), 3);
        let states = [
            RunState::Active,
            RunState::Paused,
            RunState::Completed,
            RunState::Failed,
            RunState::Cancelled,
            RunState::Archived,
        ];
        assert_eq!(states.len(), 6);
        let policy = RetentionPolicy::KeepLast(3);
        assert_ne!(policy, RetentionPolicy::KeepAll);

        let err: Error = Error::NotFound("x".into());
        assert!(err.is_not_found());
        let r: Result<()> = Err(err);
        assert!(r.is_err());
        Ok(())
    }
}

#[test]
fn dropping_a_database_releases_its_directory() -> Result<()> {
    // Dropping without close() is safe: the directory can be opened again at once and
    // what was committed is there, in every disk-backed mode.
    let dir = tmp();
    let builders = [
        ("buffered", StrataBuilder::new().buffered()),
        ("strict", StrataBuilder::new().strict()),
        ("no-durability", StrataBuilder::new().no_durability()),
    ];
    for (name, builder) in builders {
        let p = dir.path().join(name);
        for round in 0..3i64 {
            let db = builder.clone().path(&p).open()?;
            if round > 0 {
                assert_eq!(db.kv.get("round")?.unwrap().as_int(), Some(round - 1));
            }
            db.kv.set("round", round)?;
            drop(db);
        }
    }
    Ok(())
}
