//! Export/import round trips, info, checkpoint/compact and verify on real directories.
use std::io::Cursor;

use stratadb::prelude::*;
use stratadb::{import, verify, DistanceMetric, RetentionPolicy};

/// A database with every primitive, several runs in several states, deletions,
/// history thinned by retention, bytes and non-finite floats.
fn populate(db: &Strata) -> Result<RunId> {
    let def = db.runs.default_run();
    for i in 0..5i64 {
        db.kv.put(&def, "counter", i)?;
    }
    db.kv.put(&def, "bytes", Value::Bytes(vec![0, 1, 255]))?;
    db.kv.put(&def, "nan", Value::Float(f64::NAN))?;
    db.kv.put(&def, "gone", "soon")?;
    db.kv.delete_in(&def, "gone")?;
    db.json.set(
        "doc",
        json!({"b": 1, "a": [1.5, "x", null], "c": {"z": true, "y": 2}}),
    )?;
    db.json.set_path(&def, "doc", "$.c.y", 3i64)?;
    db.events.append("trace", json!({"step": 1}))?;
    db.events.append("trace", json!({"step": 2}))?;
    db.state.set("status", "running")?;
    db.state.cas(&def, "status", Some(1), "done")?;
    db.vectors
        .create_collection(&def, "docs", 3, DistanceMetric::Cosine)?;
    db.vectors.upsert(
        &def,
        "docs",
        "v1",
        &[0.1, 0.2, 0.3],
        Some(json!({"tag": "a"})),
    )?;
    db.vectors
        .upsert(&def, "docs", "v2", &[1e-7, -3.4e38, 0.333_333_34], None)?;
    let run = db.runs.create(Some(json!({"agent": "test"})))?;
    db.kv.set_in(&run, "k", "in run")?;
    db.runs.close(&run)?;
    let thinned = db.runs.create(None)?;
    for i in 0..10i64 {
        db.kv.put(&thinned, "x", i)?;
    }
    db.runs
        .set_retention(&thinned, RetentionPolicy::KeepLast(2))?;
    db.runs.fail(&thinned, "boom")?;
    Ok(run)
}

fn export_bytes(db: &Strata) -> Vec<u8> {
    let mut out = Vec::new();
    db.export(&mut out, None, |_| {}).unwrap();
    out
}

#[test]
fn export_import_export_is_byte_identical() {
    let a = tempfile::tempdir().unwrap();
    let db = Strata::open(a.path()).unwrap();
    let run = populate(&db).unwrap();
    let first = export_bytes(&db);
    let info = db.info().unwrap();
    db.close().unwrap();

    let b = tempfile::tempdir().unwrap();
    let target = b.path().join("restored");
    let report = import(&target, Cursor::new(&first)).unwrap();
    assert!(report.exact);
    assert_eq!(report.records, info.keys);

    let db2 = Strata::open(&target).unwrap();
    let second = export_bytes(&db2);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    // Semantics came back too: versions, counters, sequences, runs, vectors.
    let def = db2.runs.default_run();
    assert_eq!(
        db2.kv.history(&def, "counter", None, None).unwrap().len(),
        5
    );
    assert_eq!(
        db2.state.get("status").unwrap().unwrap().version,
        Version::Counter(2)
    );
    assert_eq!(db2.events.count(&def, "trace").unwrap(), 2);
    assert_eq!(
        db2.runs.get(&run).unwrap().unwrap().value.state,
        RunState::Completed
    );
    let v2 = db2.vectors.get(&def, "docs", "v2").unwrap().unwrap();
    assert_eq!(v2.value.vector, vec![1e-7, -3.4e38, 0.333_333_34]);
    let hits = db2
        .vectors
        .search(&def, "docs", &[0.1, 0.2, 0.3], 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "v1");
    assert_eq!(
        db2.kv.get("bytes").unwrap().unwrap().value,
        Value::Bytes(vec![0, 1, 255])
    );
    // Writes continue after the restored version.
    let v = db2.kv.put(&def, "after", 1i64).unwrap();
    assert_eq!(v.as_u64(), info.version + 1);
}

#[test]
fn import_into_a_non_empty_database_assigns_new_versions() {
    let src = Strata::ephemeral().unwrap();
    src.kv.set("a", 1i64).unwrap();
    src.kv.set("a", 2i64).unwrap();
    let dump = export_bytes(&src);

    let dir = tempfile::tempdir().unwrap();
    {
        let db = Strata::open(dir.path()).unwrap();
        db.kv.set("mine", true).unwrap();
        db.close().unwrap();
    }
    let report = import(dir.path(), Cursor::new(&dump)).unwrap();
    assert!(!report.exact);
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.kv.get("a").unwrap().unwrap().value, Value::Int(2));
    assert!(db.kv.get("mine").unwrap().is_some());
    let def = db.runs.default_run();
    assert_eq!(db.kv.history(&def, "a", None, None).unwrap().len(), 2);
}

#[test]
fn bad_dumps_are_refused_with_the_line() {
    let src = Strata::ephemeral().unwrap();
    src.kv.set("a", 1i64).unwrap();
    let dump = String::from_utf8(export_bytes(&src)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let truncated: String = dump.lines().take(2).map(|l| format!("{l}\n")).collect();
    let err = import(dir.path().join("t"), Cursor::new(truncated)).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    let garbage = dump.replacen("\"kv\"", "\"nope\"", 1);
    let err = import(dir.path().join("g"), Cursor::new(garbage)).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");

    let err = import(dir.path().join("h"), Cursor::new("not json\n")).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    // A failed exact restore leaves an empty database behind.
    let db = Strata::open(dir.path().join("g")).unwrap();
    assert!(db.kv.get("a").unwrap().is_none());
}

#[test]
fn info_checkpoint_compact() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    populate(&db).unwrap();
    // A collection above `MAX_UNPERSISTED_VECTORS`, so a checkpoint writes its file.
    db.vectors
        .create_collection(&RunId::DEFAULT, "big", 2, DistanceMetric::Cosine)
        .unwrap();
    for i in 0..=strata_vector::MAX_UNPERSISTED_VECTORS {
        db.vectors
            .upsert(
                &RunId::DEFAULT,
                "big",
                &format!("v{i}"),
                &[1.0, i as f32],
                None,
            )
            .unwrap();
    }
    let info = db.info().unwrap();
    assert_eq!(info.primitives["kv"].live_keys, 5);
    assert_eq!(info.primitives["kv"].deleted_keys, 1);
    assert_eq!(info.runs_by_state["Failed"], 1);
    assert_eq!(info.retention.len(), 1);
    assert!(info.files.iter().any(|f| f.kind == "log"));
    db.checkpoint().unwrap();
    let info = db.info().unwrap();
    assert!(info.files.iter().any(|f| f.kind == "run"));
    assert!(info.files.iter().any(|f| f.kind == "manifest"));
    assert!(info.files.iter().any(|f| f.kind == "vector-index"));
    db.compact().unwrap();
}

fn damage(path: &std::path::Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = [0u8; 1];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0xff]).unwrap();
}

#[test]
fn verify_finds_damage_by_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StrataBuilder::new()
            .strict()
            .path(dir.path())
            .open()
            .unwrap();
        populate(&db).unwrap();
        db.checkpoint().unwrap();
        for i in 0..20i64 {
            db.kv.set("after", i).unwrap();
        }
        drop(db);
    }
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(report.is_ok(), "{report:#?}");
    assert!(report.last_version > 20);

    let list = |kind: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(kind))
            .collect();
        v.sort();
        v
    };
    // A flipped byte in the log segment, in its first record: with
    // valid records after it, the reader names the offset.
    use strata_storage::wal::{FRAME_HEADER_LEN, WAL_HEADER_LEN};
    let log = list(".log").pop().unwrap();
    let in_first_record = (WAL_HEADER_LEN + FRAME_HEADER_LEN + 2) as u64;
    damage(&log, in_first_record);
    let report = verify(dir.path(), |_| {}).unwrap();
    assert!(!report.is_ok());
    let bad = report.files.iter().find(|f| f.problem.is_some()).unwrap();
    assert!(bad.name.ends_with(".log"));
    let at = format!("offset {WAL_HEADER_LEN}");
    assert!(bad.problem.as_ref().unwrap().contains(&at), "{bad:?}");
    damage(&log, in_first_record);

    let snap = list(".sst").pop().unwrap();
    damage(&snap, 40);
    let report = verify(dir.path(), |_| {}).unwrap();
    let bad = report.files.iter().find(|f| f.problem.is_some()).unwrap();
    assert!(bad.name.ends_with(".sst"), "{bad:?}");
    assert!(bad.problem.as_ref().unwrap().contains("offset"), "{bad:?}");
    damage(&snap, 40);
    assert!(verify(dir.path(), |_| {}).unwrap().is_ok());

    assert!(verify(dir.path().join("missing"), |_| {})
        .unwrap_err()
        .is_not_found());
}
