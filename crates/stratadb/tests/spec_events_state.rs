//! API reference samples: Event Streams and State Cells. Each test holds the reference's
//! code block as written and then asserts what the prose promises.

use stratadb::prelude::*;

fn db() -> Strata {
    Strata::ephemeral().expect("ephemeral db")
}

// ---------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------

#[test]
fn append_and_read_samples() -> Result<()> {
    let db = db();

    // Use json! macro for clean event creation
    let first = db.events.append(
        "activity",
        json!({
            "action": "login",
            "user_id": "user:1"
        }),
    )?;
    let second = db
        .events
        .append("activity", json!({"action": "logout", "user_id": "user:1"}))?;

    // Returns: Result<Version> — a position in the stream.
    assert_eq!(first, Version::Sequence(1));
    assert_eq!(second, Version::Sequence(2));

    let events = db.events.read("activity", 100)?;
    let mut seen = Vec::new();
    for event in events {
        println!("{:?}: {:?}", event.version, event.value);
        seen.push((event.version, event.value));
    }
    assert_eq!(
        seen,
        vec![
            (
                Version::Sequence(1),
                json!({"action": "login", "user_id": "user:1"})
            ),
            (
                Version::Sequence(2),
                json!({"action": "logout", "user_id": "user:1"})
            ),
        ],
        "events are read in append order"
    );
    assert_eq!(db.events.read("activity", 1)?.len(), 1, "limit");
    assert!(db.events.read("nothing", 10)?.is_empty());

    // The payload must be an Object.
    let err = db.events.append("activity", "not an object").unwrap_err();
    assert!(matches!(err, Error::WrongType { .. }), "{err:?}");
    assert_eq!(db.events.read("activity", 100)?.len(), 2, "nothing stored");
    Ok(())
}

#[test]
fn run_scoped_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    let event = json!({"type": "tool_call", "tool": "search"});

    db.events.append_in(&run, "trace", event)?;

    let events = db.events.read_in(&run, "trace", 50)?;

    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].value,
        json!({"type": "tool_call", "tool": "search"})
    );
    assert_eq!(events[0].version, Version::Sequence(1));
    assert!(
        db.events.read("trace", 50)?.is_empty(),
        "not in the default run"
    );
    Ok(())
}

#[test]
fn range_head_count_streams_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    for i in 1..=25i64 {
        db.events.append_in(&run, "activity", json!({"n": i}))?;
    }
    db.events.append_in(&run, "audit", json!({"n": 0}))?;

    // range: start and end are both inclusive.
    let events = db.events.range(&run, "activity", 10, 20)?;
    let seqs: Vec<u64> = events.iter().map(|e| e.version.as_u64()).collect();
    assert_eq!(seqs, (10..=20).collect::<Vec<u64>>());
    for e in &events {
        assert!(e.version.is_sequence());
        assert_eq!(
            e.value.as_object().unwrap()["n"],
            Value::Int(e.version.as_u64() as i64)
        );
    }
    assert_eq!(db.events.range(&run, "activity", 25, 25)?.len(), 1);
    assert_eq!(db.events.range(&run, "activity", 24, 99)?.len(), 2);
    assert!(db.events.range(&run, "activity", 20, 10)?.is_empty());

    // head: the latest event.
    let mut latest_seen = None;
    if let Some(latest) = db.events.head(&run, "activity")? {
        println!("Latest event: {:?}", latest.value);
        latest_seen = Some(latest);
    }
    let latest = latest_seen.expect("stream has events");
    assert_eq!(latest.version, Version::Sequence(25));
    assert_eq!(latest.value, json!({"n": 25}));
    assert!(db.events.head(&run, "empty")?.is_none());

    // count
    let count = db.events.count(&run, "activity")?;
    println!("Total events: {}", count);
    assert_eq!(count, 25);
    assert_eq!(db.events.count(&run, "empty")?, 0);

    // streams
    let streams = db.events.streams(&run)?;
    let mut names = Vec::new();
    for name in streams {
        println!("Stream: {}", name);
        names.push(name);
    }
    assert_eq!(names, ["activity", "audit"]);
    Ok(())
}

// ---------------------------------------------------------------------------------
// State cells
// ---------------------------------------------------------------------------------

#[test]
fn state_set_get_samples() -> Result<()> {
    let db = db();

    let v1 = db.state.set("task:status", "running")?;
    db.state.set("task:progress", 50i64)?;

    // Returns: Result<Version> — a per-cell counter.
    assert_eq!(v1, Version::Counter(1));
    assert_eq!(db.state.set("task:progress", 60i64)?, Version::Counter(2));

    let mut status = None;
    if let Some(state) = db.state.get("task:status")? {
        // Convenience: as_str() delegates to inner value
        println!("Status: {:?}", state.as_str());
        status = state.as_str().map(str::to_owned);
        assert_eq!(state.version, Version::Counter(1));
    }
    assert_eq!(status.as_deref(), Some("running"));
    assert_eq!(db.state.get("task:progress")?.unwrap().as_int(), Some(60));
    assert!(db.state.get("nothing")?.is_none());
    Ok(())
}

#[test]
fn state_run_scoped_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    db.state.set_in(&run, "status", "active")?;

    let state = db.state.get_in(&run, "status")?;

    let state = state.expect("cell set in the run");
    assert_eq!(state.as_str(), Some("active"));
    assert_eq!(state.version, Version::Counter(1));
    assert!(db.state.get("status")?.is_none(), "not in the default run");
    Ok(())
}

/// The reference's `state.cas` sample; returns the version when the lock was acquired.
fn acquire_lock_sample(db: &Strata, run: &RunId) -> Result<Option<Version>> {
    // Get current counter
    let current = db.state.get_in(run, "lock")?;
    let counter = current.map(|v| match v.version {
        Version::Counter(c) => c,
        _ => 0,
    });

    // Try to acquire lock
    if let Some(version) = db.state.cas(run, "lock", counter, "acquired")? {
        println!("Lock acquired at {:?}", version);
        Ok(Some(version))
    } else {
        println!("Lock contention - retry");
        Ok(None)
    }
}

#[test]
fn state_cas_sample_and_semantics() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    // Cell absent: counter = None, which requires absence.
    assert_eq!(acquire_lock_sample(&db, &run)?, Some(Version::Counter(1)));
    assert_eq!(acquire_lock_sample(&db, &run)?, Some(Version::Counter(2)));
    assert_eq!(
        db.state.get_in(&run, "lock")?.unwrap().as_str(),
        Some("acquired")
    );

    // A stale counter fails with None and writes nothing.
    assert_eq!(db.state.cas(&run, "lock", Some(1), "stolen")?, None);
    // `None` for a cell that exists fails.
    assert_eq!(db.state.cas(&run, "lock", None, "stolen")?, None);
    let cell = db.state.get_in(&run, "lock")?.unwrap();
    assert_eq!(cell.as_str(), Some("acquired"));
    assert_eq!(cell.version, Version::Counter(2));
    // The right counter succeeds and bumps it.
    assert_eq!(
        db.state.cas(&run, "lock", Some(2), "released")?,
        Some(Version::Counter(3))
    );
    // A counter for a missing cell fails.
    assert_eq!(db.state.cas(&run, "other", Some(1), "x")?, None);
    assert!(!db.state.exists(&run, "other")?);
    Ok(())
}

#[test]
fn state_delete_exists_history_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.state.set_in(&run, "lock", "held")?;
    for s in ["starting", "running", "done"] {
        db.state.set_in(&run, "status", s)?;
    }

    let exists = db.state.exists(&run, "lock")?;
    assert!(exists);

    db.state.delete(&run, "lock")?;
    assert!(!db.state.exists(&run, "lock")?);
    assert!(db.state.get_in(&run, "lock")?.is_none());
    assert!(!db.state.delete(&run, "lock")?, "already deleted");

    let history = db.state.history(&run, "status", Some(10))?;
    let listed: Vec<(Option<&str>, Version)> =
        history.iter().map(|v| (v.as_str(), v.version)).collect();
    assert_eq!(
        listed,
        vec![
            (Some("done"), Version::Counter(3)),
            (Some("running"), Version::Counter(2)),
            (Some("starting"), Version::Counter(1)),
        ],
        "newest first, counters per cell"
    );
    assert_eq!(db.state.history(&run, "status", Some(1))?.len(), 1);
    Ok(())
}
