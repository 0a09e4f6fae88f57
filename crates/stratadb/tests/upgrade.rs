//! Databases written by StrataDB v0.1 (log segment, snapshot and vector index formats 1)
//! open with the current code, keep every value, version and history, accept new writes
//! (in format 2), and convert completely at the next checkpoint. The fixtures and what
//! they hold are described in `tests/data/README.md`.
use std::path::{Path, PathBuf};
use std::str::FromStr;

use stratadb::prelude::*;

fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("db");
    copy_dir(&src, &dst);
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

fn check(db: &Strata, run: &RunId) {
    let d = RunId::DEFAULT;
    assert_eq!(
        db.kv.get("greeting").unwrap().unwrap().as_str(),
        Some("hello again")
    );
    let hist = db.kv.history(&d, "greeting", None, None).unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1].as_str(), Some("hello"));
    assert_eq!(hist[1].version, Version::Txn(2));
    assert_eq!(db.kv.get("n").unwrap().unwrap().as_int(), Some(42));
    let plan = db.json.get_in(run, "plan").unwrap().unwrap();
    assert_eq!(plan.value, json!({"steps": ["a", "b"], "done": 1}));
    let events = db.events.read_in(run, "trace", 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].version, Version::Sequence(2));
    let status = db.state.get_in(run, "status").unwrap().unwrap();
    assert_eq!(status.as_str(), Some("done"));
    let hits = db
        .vectors
        .search(run, "mem", &[0.9, 0.1, 0.0], 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "a");
    assert_eq!(db.vectors.count(run, "mem").unwrap(), 2);
    // Its definition predates quantization: it reads as none.
    let info = db.vectors.collection_info(run, "mem").unwrap().unwrap();
    assert_eq!(info.quantization, stratadb::Quantization::None);
    assert!(db.kv.get_in(run, "bytes").unwrap().is_none());
    let bytes_hist = db.kv.history(run, "bytes", None, None).unwrap();
    assert_eq!(bytes_hist.len(), 1, "the deleted value is in history");
    let runs = db.runs.list(None, None).unwrap();
    assert_eq!(runs.len(), 3, "default, the fixture run, the closed run");
    assert!(runs.iter().any(|r| r.value.state == RunState::Completed));
}

fn upgrade(name: &str, run: &str) {
    let (_tmp, dir) = copy_fixture(name);
    let run = RunId::from_str(run).unwrap();
    let db = Strata::open(&dir).unwrap();
    check(&db, &run);
    // New writes continue the version sequence, in a format-2 segment.
    let v = db.kv.put(&run, "after-upgrade", 1i64).unwrap();
    assert_eq!(v, Version::Txn(21));
    db.close().unwrap();
    // After the checkpoint at close only format-2 files remain; they open again.
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap_or_default();
        if p.extension().is_some_and(|x| x == "log") {
            assert_eq!(&bytes[8..12], &2u32.to_le_bytes(), "{}", p.display());
        }
        if p.extension().is_some_and(|x| x == "snap") {
            assert_eq!(&bytes[8..12], &2u32.to_le_bytes(), "{}", p.display());
        }
    }
    let db = Strata::open(&dir).unwrap();
    check(&db, &run);
    assert!(db.kv.get_in(&run, "after-upgrade").unwrap().is_some());
}

#[test]
fn a_closed_v0_1_database_opens_and_upgrades() {
    upgrade("v0.1-closed", "54fe8e3d-8606-4252-8491-5b02adf82c50");
}

#[test]
fn a_crashed_v0_1_database_opens_and_upgrades() {
    upgrade("v0.1-crashed", "95586609-4815-42e1-b8b7-ab873d87656d");
}

/// The format of each run file in `dir` (the header's u32 at offset 8).
fn run_formats(dir: &Path) -> Vec<u32> {
    let mut formats: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, u32::from_le_bytes(b[8..12].try_into().unwrap()))
        })
        .collect();
    formats.sort();
    formats.into_iter().map(|(_, f)| f).collect()
}

fn check_runs_format2(db: &Strata) {
    let run = RunId::from_str("d24c10f0-ee59-4a2a-963e-81b2edcc5041").unwrap();
    for i in 0..200i64 {
        let v = db.kv.get(&format!("key{i:04}")).unwrap().unwrap();
        assert_eq!(v.value, Value::Int(i));
    }
    assert!(db.kv.get("key0200").unwrap().is_none());
    assert!(db.kv.get("absent").unwrap().is_none());
    assert_eq!(
        db.kv.keys(&RunId::DEFAULT, "key019", None).unwrap().len(),
        10
    );
    let a = db.kv.history(&run, "a", None, None).unwrap();
    let values: Vec<Value> = a.into_iter().map(|v| v.value).collect();
    assert_eq!(values, vec![Value::from("second"), Value::from("first")]);
    assert!(db.kv.get_in(&run, "gone").unwrap().is_none());
    assert_eq!(db.kv.history(&run, "gone", None, None).unwrap().len(), 1);
}

/// A database whose runs were written before key filters (run format 2) reads as it
/// is; a compaction rewrites its runs in format 3 (with a key filter), after which it
/// reads the same, also after a reopen.
#[test]
fn runs_of_format_2_read_and_compact_into_format_3() {
    let (_tmp, dir) = copy_fixture("runs-format2");
    assert_eq!(run_formats(&dir), vec![2]);
    let db = Strata::open(&dir).unwrap();
    check_runs_format2(&db);
    db.kv.set("after", 1).unwrap();
    db.compact().unwrap();
    check_runs_format2(&db);
    db.close().unwrap();
    assert!(
        run_formats(&dir).iter().all(|&f| f == 3),
        "{:?}",
        run_formats(&dir)
    );
    let db = Strata::open(&dir).unwrap();
    check_runs_format2(&db);
    assert!(db.kv.get("after").unwrap().is_some());
}
