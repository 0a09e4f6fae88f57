//! The write path's run check (`Engine::write`): once a run was found to accept writes,
//! later writes answer the check without reading its record while no run record
//! changed. Closing, failing, archiving, deleting or purging the run must still refuse
//! every write from then on (and resuming a paused run accept them again) — after writes that warmed the check, and under
//! concurrency. (A commit that began before the run changed: `strata-primitives`'s
//! `tests/write_check.rs`.)
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use stratadb::prelude::*;

fn open(dir: &std::path::Path) -> Strata {
    StrataBuilder::new()
        .no_durability()
        .path(dir)
        .open()
        .unwrap()
}

fn is_run_error<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::RunError(_)))
}

fn txn_version(v: Version) -> u64 {
    match v {
        Version::Txn(v) => v,
        other => panic!("not a commit version: {other:?}"),
    }
}

#[test]
fn every_way_out_of_active_refuses_writes_after_warm_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    type End = fn(&Strata, &RunId) -> Result<Version>;
    let ends: [(&str, End); 6] = [
        ("close", |db, r| db.runs.close(r)),
        ("fail", |db, r| db.runs.fail(r, "boom")),
        ("cancel", |db, r| db.runs.cancel(r)),
        ("pause", |db, r| db.runs.pause(r)),
        ("archive", |db, r| {
            db.runs.close(r)?;
            db.runs.archive(r)
        }),
        ("purge", |db, r| db.runs.purge(r)),
    ];
    let bystander = db.runs.create(None).unwrap();
    for (name, end) in ends {
        let run = db.runs.create(None).unwrap();
        // Warm the check: the record is read once, then answered from what was seen.
        for i in 0..5 {
            db.kv.put(&run, &format!("k{i}"), i).unwrap();
            db.kv.put(&bystander, &format!("{name}{i}"), i).unwrap();
        }
        end(&db, &run).unwrap();
        assert!(is_run_error(db.kv.put(&run, "after", 1)), "{name}: kv");
        assert!(is_run_error(db.json.set_in(&run, "doc", 1)), "{name}: json");
        assert!(
            is_run_error(db.state.set_in(&run, "cell", 1)),
            "{name}: state"
        );
        assert!(
            is_run_error(db.events.append_in(&run, "s", 1)),
            "{name}: events"
        );
        // Another run, seen writable before the change, still takes writes.
        db.kv.put(&bystander, &format!("{name}-after"), 1).unwrap();
    }
}

#[test]
fn a_resumed_run_takes_writes_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let run = db.runs.create(None).unwrap();
    for round in 0..3 {
        for i in 0..3 {
            db.kv.put(&run, &format!("r{round}-{i}"), i).unwrap();
        }
        db.runs.pause(&run).unwrap();
        assert!(is_run_error(db.kv.put(&run, "paused", 1)), "round {round}");
        db.runs.resume(&run).unwrap();
    }
    db.kv.put(&run, "last", 1).unwrap();
    assert_eq!(db.kv.keys(&run, "", None).unwrap().len(), 10);
}

#[test]
fn no_write_commits_after_the_close_that_raced_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    for round in 0..20 {
        let run = db.runs.create(None).unwrap();
        db.kv.put(&run, "warm", 0).unwrap();
        let start = Arc::new(Barrier::new(4));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (db, start, stop) = (db.clone(), start.clone(), stop.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut committed = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        match db.kv.put(&run, &format!("x{w}-{i}"), i as i64) {
                            Ok(v) => committed.push(txn_version(v)),
                            Err(Error::RunError(_)) => break,
                            Err(e) => panic!("round {round}: unexpected {e}"),
                        }
                        i += 1;
                    }
                    committed
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let closed_at = txn_version(db.runs.close(&run).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(2));
        stop.store(true, Ordering::Release);
        let mut total = 0;
        for w in writers {
            let versions = w.join().unwrap();
            total += versions.len();
            assert!(
                versions.iter().all(|&v| v < closed_at),
                "round {round}: a write committed at or after the close at {closed_at}"
            );
        }
        // Every acknowledged write is there, nothing else.
        let keys = db.kv.keys(&run, "x", None).unwrap();
        assert_eq!(keys.len(), total, "round {round}");
        assert!(is_run_error(db.kv.put(&run, "late", 1)));
    }
}
