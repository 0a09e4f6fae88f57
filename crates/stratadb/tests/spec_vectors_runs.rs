//! API reference samples: Vector Store and Run Management. Each test holds the
//! reference's code block as written (`/* ... */` placeholders filled with real data of
//! the right dimension) and then asserts what the prose promises.
#![expect(clippy::useless_conversion, reason = "spec samples are kept verbatim")]

use std::time::Duration;

use stratadb::prelude::*;

fn db() -> Strata {
    Strata::ephemeral().expect("ephemeral db")
}

/// A 384-d embedding: `[0.001, 0.002, …, 0.384]` (the sample's `0.1, 0.2, 0.3, /* ... */
/// 0.384`), rotated by `shift` positions.
fn embedding_384(shift: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (1..=384).map(|i| i as f32 / 1000.0).collect();
    v.rotate_left(shift);
    v
}

/// A 384-d unit vector along the given axes (equal weights).
fn axes_384(axes: &[usize]) -> Vec<f32> {
    let mut v = vec![0.0f32; 384];
    for &a in axes {
        v[a] = 1.0;
    }
    v
}

// ---------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------

#[test]
fn collection_management_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    // DistanceMetric is included in prelude
    db.vectors.create_collection(
        &run,
        "embeddings",
        384, // dimension
        DistanceMetric::Cosine,
    )?;
    db.vectors
        .create_collection(&run, "old_embeddings", 3, DistanceMetric::Euclidean)?;
    db.vectors
        .upsert(&run, "old_embeddings", "x", &[1.0, 2.0, 3.0], None)?;

    let collections = db.vectors.list_collections(&run)?;
    let mut listed = Vec::new();
    for col in collections {
        println!(
            "{}: {} dimensions, {} vectors",
            col.name, col.dimension, col.count
        );
        listed.push((col.name, col.dimension, col.count, col.metric));
    }
    assert_eq!(
        listed,
        vec![
            ("embeddings".to_string(), 384, 0, DistanceMetric::Cosine),
            (
                "old_embeddings".to_string(),
                3,
                1,
                DistanceMetric::Euclidean
            ),
        ]
    );

    let existed = db.vectors.delete_collection(&run, "old_embeddings")?;
    assert!(existed, "true if collection existed");
    assert!(!db.vectors.delete_collection(&run, "old_embeddings")?);
    assert!(db
        .vectors
        .collection_info(&run, "old_embeddings")?
        .is_none());
    let names: Vec<String> = db
        .vectors
        .list_collections(&run)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["embeddings"]);
    // Recreating a deleted collection starts empty.
    db.vectors
        .create_collection(&run, "old_embeddings", 3, DistanceMetric::DotProduct)?;
    assert_eq!(db.vectors.count(&run, "old_embeddings")?, 0);
    // Collections are per run.
    assert!(db
        .vectors
        .list_collections(&db.runs.default_run())?
        .is_empty());
    Ok(())
}

#[test]
fn upsert_get_delete_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.vectors
        .create_collection(&run, "embeddings", 384, DistanceMetric::Cosine)?;

    let embedding = embedding_384(0);
    assert_eq!(embedding.len(), 384);
    assert_eq!(&embedding[..3], &[0.001, 0.002, 0.003]);
    assert_eq!(embedding[383], 0.384);

    // Use json! for metadata
    db.vectors.upsert(
        &run,
        "embeddings",
        "doc:1",
        &embedding,
        Some(json!({"title": "Hello World"}).into()),
    )?;

    let mut got = None;
    if let Some(data) = db.vectors.get(&run, "embeddings", "doc:1")? {
        println!("Vector: {:?}", data.value.vector);
        println!("Metadata: {:?}", data.value.metadata);
        got = Some(data);
    }
    let data = got.expect("vector stored");
    assert_eq!(data.value.vector, embedding, "vector exactly as upserted");
    assert_eq!(data.value.metadata, Some(json!({"title": "Hello World"})));
    assert!(data.version.is_txn());
    assert_eq!(db.vectors.count(&run, "embeddings")?, 1);

    // Upsert replaces.
    let other = embedding_384(7);
    db.vectors
        .upsert(&run, "embeddings", "doc:1", &other, None)?;
    let data = db.vectors.get(&run, "embeddings", "doc:1")?.unwrap();
    assert_eq!(data.value.vector, other);
    assert_eq!(data.value.metadata, None);
    assert_eq!(db.vectors.count(&run, "embeddings")?, 1);

    // The vector must match the collection's dimension.
    let err = db
        .vectors
        .upsert(&run, "embeddings", "bad", &[0.1, 0.2, 0.3], None)
        .unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");

    db.vectors.delete(&run, "embeddings", "doc:1")?;
    assert!(db.vectors.get(&run, "embeddings", "doc:1")?.is_none());
    assert_eq!(db.vectors.count(&run, "embeddings")?, 0);
    assert!(!db.vectors.delete(&run, "embeddings", "doc:1")?);
    Ok(())
}

#[test]
fn search_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.vectors
        .create_collection(&run, "embeddings", 384, DistanceMetric::Cosine)?;
    // cosine with the query (axis 0): a = 1.0, b ≈ 0.707, c = 0.0
    db.vectors.upsert(
        &run,
        "embeddings",
        "a",
        &axes_384(&[0]),
        Some(json!({"title": "A"}).into()),
    )?;
    db.vectors
        .upsert(&run, "embeddings", "b", &axes_384(&[0, 1]), None)?;
    db.vectors
        .upsert(&run, "embeddings", "c", &axes_384(&[1]), None)?;

    let query_embedding = axes_384(&[0]);

    let results = db.vectors.search(
        &run,
        "embeddings",
        &query_embedding,
        10,   // k - number of results
        None, // optional filter
    )?;

    let mut listed = Vec::new();
    for result in results {
        println!("{}: score={:.4}", result.key, result.score);
        listed.push(result);
    }
    let keys: Vec<&str> = listed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"], "best first");
    assert!((listed[0].score - 1.0).abs() < 1e-5);
    assert!((listed[1].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
    assert!(listed[2].score.abs() < 1e-5);
    assert_eq!(listed[0].metadata, Some(json!({"title": "A"})));
    assert_eq!(listed[1].metadata, None);
    assert!(
        listed.iter().all(|r| r.vector.is_none()),
        "vector not requested"
    );

    // k limits the number of results.
    let top1 = db
        .vectors
        .search(&run, "embeddings", &query_embedding, 1, None)?;
    assert_eq!(top1.len(), 1);
    assert_eq!(top1[0].key, "a");

    let query = query_embedding.clone();
    let results = db.vectors.search_with_threshold(
        &run,
        "embeddings",
        &query,
        10,
        0.7, // minimum score
        None,
    )?;
    let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert!(results.iter().all(|r| r.score >= 0.7));

    // A query of another dimension is refused.
    let err = db
        .vectors
        .search(&run, "embeddings", &[0.1, 0.2, 0.3], 10, None)
        .unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
    Ok(())
}

#[test]
fn count_and_collection_info_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;
    db.vectors
        .create_collection(&run, "embeddings", 384, DistanceMetric::Cosine)?;
    for i in 0..5 {
        db.vectors.upsert(
            &run,
            "embeddings",
            &format!("doc:{i}"),
            &embedding_384(i),
            None,
        )?;
    }

    let count = db.vectors.count(&run, "embeddings")?;
    assert_eq!(count, 5);

    let mut seen = None;
    if let Some(info) = db.vectors.collection_info(&run, "embeddings")? {
        println!("Name: {}", info.name);
        println!("Dimension: {}", info.dimension);
        println!("Count: {}", info.count);
        println!("Metric: {:?}", info.metric);
        seen = Some(info);
    }
    let info = seen.expect("collection exists");
    assert_eq!(info.name, "embeddings");
    assert_eq!(info.dimension, 384);
    assert_eq!(info.count, 5);
    assert_eq!(info.metric, DistanceMetric::Cosine);
    assert!(db.vectors.collection_info(&run, "nope")?.is_none());
    assert!(db.vectors.count(&run, "nope").unwrap_err().is_not_found());
    Ok(())
}

// ---------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------

#[test]
fn create_get_list_exists_samples() -> Result<()> {
    let db = db();

    // Simple run
    let run = db.runs.create(None)?;
    let simple = run;

    // Run with metadata - use json! macro
    let run = db.runs.create(Some(
        json!({
            "name": "experiment-1",
            "user": "alice"
        })
        .into(),
    ))?;

    assert_ne!(simple, run, "every run has its own id");
    assert_eq!(db.runs.get(&simple)?.unwrap().value.metadata, None);

    let mut seen = None;
    if let Some(info) = db.runs.get(&run)? {
        println!("Run ID: {}", info.value.run_id);
        println!("State: {:?}", info.value.state);
        println!("Created: {}", info.value.created_at);
        seen = Some(info);
    }
    let info = seen.expect("run exists");
    assert_eq!(info.value.run_id, run);
    assert_eq!(info.value.state, RunState::Active);
    assert!(info.value.created_at <= Timestamp::now());
    assert!(info.version.is_txn());
    assert_eq!(
        info.value.metadata,
        Some(json!({"name": "experiment-1", "user": "alice"}))
    );
    assert!(db.runs.get(&RunId::new())?.is_none());

    db.runs.pause(&simple)?;

    // List all runs
    let all = db.runs.list(None, None)?;

    // List active runs
    let active = db.runs.list(Some(RunState::Active), Some(100))?;

    let all_ids: Vec<RunId> = all.iter().map(|i| i.value.run_id).collect();
    assert!(all_ids.contains(&simple) && all_ids.contains(&run));
    let active_ids: Vec<RunId> = active.iter().map(|i| i.value.run_id).collect();
    assert!(active_ids.contains(&run));
    assert!(!active_ids.contains(&simple), "paused run is not active");
    assert!(active.iter().all(|i| i.value.state == RunState::Active));
    let paused = db.runs.list(Some(RunState::Paused), None)?;
    assert_eq!(
        paused.iter().map(|i| i.value.run_id).collect::<Vec<_>>(),
        vec![simple]
    );
    assert_eq!(db.runs.list(None, Some(1))?.len(), 1, "limit");

    let mut printed = false;
    if db.runs.exists(&run)? {
        println!("Run exists");
        printed = true;
    }
    assert!(printed);
    assert!(!db.runs.exists(&RunId::new())?);

    let mut safe = false;
    if db.runs.is_active(&run)? {
        // Safe to write
        safe = true;
    }
    assert!(safe);
    assert!(db.runs.exists(&simple)? && !db.runs.is_active(&simple)?);
    assert!(!db.runs.is_active(&RunId::new())?);
    Ok(())
}

fn assert_write_refused(db: &Strata, run: &RunId) {
    let results = [
        db.kv.set_in(run, "k", 1i64).map(|_| ()),
        db.json.set_in(run, "d", json!({"a": 1})).map(|_| ()),
        db.events.append_in(run, "s", json!({"a": 1})).map(|_| ()),
        db.state.set_in(run, "c", 1i64).map(|_| ()),
        db.vectors
            .upsert(run, "v", "x", &[1.0, 0.0], None)
            .map(|_| ()),
    ];
    for r in results {
        match r {
            Err(Error::RunError(_)) => {}
            other => panic!("write to a non-active run gave {other:?}, expected RunError"),
        }
    }
}

fn new_run_with_data(db: &Strata) -> Result<RunId> {
    let run = db.runs.create(None)?;
    db.kv.set_in(&run, "k", 0i64)?;
    db.vectors
        .create_collection(&run, "v", 2, DistanceMetric::Cosine)?;
    Ok(run)
}

fn state_of(db: &Strata, run: &RunId) -> RunState {
    db.runs.get(run).unwrap().unwrap().value.state
}

#[test]
fn state_transition_samples() -> Result<()> {
    let db = db();

    // close: marks as completed.
    let run = new_run_with_data(&db)?;
    db.runs.close(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Completed);
    assert_write_refused(&db, &run);
    // Reads still work.
    assert_eq!(db.kv.get_in(&run, "k")?.unwrap().as_int(), Some(0));

    // pause / resume.
    let run = new_run_with_data(&db)?;
    db.runs.pause(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Paused);
    assert!(!db.runs.is_active(&run)?);
    assert_write_refused(&db, &run);
    db.runs.resume(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Active);
    db.kv.set_in(&run, "k", 1i64)?;
    assert_eq!(db.kv.get_in(&run, "k")?.unwrap().as_int(), Some(1));

    // fail, with an error message.
    let run = new_run_with_data(&db)?;
    db.runs.fail(&run, "Connection timeout")?;
    let info = db.runs.get(&run)?.unwrap().value;
    assert_eq!(info.state, RunState::Failed);
    assert_eq!(info.error.as_deref(), Some("Connection timeout"));
    assert_write_refused(&db, &run);

    // cancel.
    let run = new_run_with_data(&db)?;
    db.runs.cancel(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Cancelled);
    assert_write_refused(&db, &run);

    // archive: terminal.
    let run = new_run_with_data(&db)?;
    db.runs.archive(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Archived);
    assert_write_refused(&db, &run);
    assert!(matches!(db.runs.resume(&run), Err(Error::RunError(_))));
    assert_eq!(state_of(&db, &run), RunState::Archived);

    // A finished run can be archived; a completed one cannot be resumed.
    let run = new_run_with_data(&db)?;
    db.runs.close(&run)?;
    assert!(matches!(db.runs.resume(&run), Err(Error::RunError(_))));
    db.runs.archive(&run)?;
    assert_eq!(state_of(&db, &run), RunState::Archived);

    // Writes to a run that does not exist are RunErrors too.
    assert_write_refused(&db, &RunId::new());
    Ok(())
}

#[test]
fn update_metadata_sample() -> Result<()> {
    let db = db();
    let run = db.runs.create(Some(json!({"status": "new"}).into()))?;
    let before = db.runs.get(&run)?.unwrap();

    db.runs
        .update_metadata(&run, json!({"status": "processing"}).into())?;

    let after = db.runs.get(&run)?.unwrap();
    assert_eq!(after.value.metadata, Some(json!({"status": "processing"})));
    assert!(after.version > before.version);
    assert_eq!(after.value.created_at, before.value.created_at);
    assert!(after.value.updated_at >= before.value.updated_at);
    Ok(())
}

#[test]
fn retention_samples() -> Result<()> {
    let db = db();
    let run = db.runs.create(None)?;

    assert_eq!(
        db.runs.get_retention(&run)?,
        RetentionPolicy::KeepAll,
        "keep all history is the default"
    );

    // Keep last 100 versions
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(100))?;
    assert_eq!(db.runs.get_retention(&run)?, RetentionPolicy::KeepLast(100));

    // Keep 7 days of history
    db.runs.set_retention(
        &run,
        RetentionPolicy::KeepFor(Duration::from_secs(7 * 24 * 60 * 60)),
    )?;
    assert_eq!(
        db.runs.get_retention(&run)?,
        RetentionPolicy::KeepFor(Duration::from_secs(604_800))
    );

    // Keep all history (default)
    db.runs.set_retention(&run, RetentionPolicy::KeepAll)?;

    let policy = db.runs.get_retention(&run)?;
    assert_eq!(policy, RetentionPolicy::KeepAll);

    // The policy limits history.
    for i in 0..5i64 {
        db.kv.put(&run, "counter", i)?;
    }
    assert_eq!(db.kv.history(&run, "counter", None, None)?.len(), 5);
    db.runs.set_retention(&run, RetentionPolicy::KeepLast(2))?;
    let h = db.kv.history(&run, "counter", None, None)?;
    let values: Vec<Option<i64>> = h.iter().map(|v| v.as_int()).collect();
    assert_eq!(values, [Some(4), Some(3)]);
    // Policies are per run.
    assert_eq!(
        db.runs.get_retention(&db.runs.default_run())?,
        RetentionPolicy::KeepAll
    );
    Ok(())
}

#[test]
fn default_run_sample() -> Result<()> {
    let db = db();

    let default = db.runs.default_run();

    // Automatically available: exists, active, and where Level-1 calls go.
    assert!(db.runs.exists(&default)?);
    assert!(db.runs.is_active(&default)?);
    assert_eq!(db.runs.default_run(), default, "stable");
    db.kv.set("k", "v")?;
    assert_eq!(db.kv.get_in(&default, "k")?.unwrap().as_str(), Some("v"));
    db.events.append("s", json!({"a": 1}))?;
    assert_eq!(db.events.count(&default, "s")?, 1);
    db.state.set("c", 1i64)?;
    assert!(db.state.exists(&default, "c")?);
    db.json.set("d", json!({"a": 1}))?;
    assert!(db.json.exists(&default, "d")?);
    let listed: Vec<RunId> = db
        .runs
        .list(None, None)?
        .iter()
        .map(|i| i.value.run_id)
        .collect();
    assert!(listed.contains(&default));
    // A fresh database has it too (including a reopened one).
    let other = StrataBuilder::new().no_durability().open_temp()?;
    assert!(other.runs.is_active(&other.runs.default_run())?);
    Ok(())
}
