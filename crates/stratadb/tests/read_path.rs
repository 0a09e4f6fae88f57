//! The one-shot read path (`Engine::read`): its run check is answered from the runs
//! already seen while no run record changed, and must still give the documented errors
//! for a run that is purged, never existed, or did not exist yet at a view's version —
//! also under concurrency and after a reopen.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

#[test]
fn a_read_after_a_purge_fails_though_the_run_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (a, b) = (db.runs.create(None).unwrap(), db.runs.create(None).unwrap());
    db.kv.set_in(&a, "k", 1).unwrap();
    db.kv.set_in(&b, "k", 2).unwrap();
    // Seen: the next reads answer the run check without the record.
    for _ in 0..3 {
        assert!(db.kv.get_in(&a, "k").unwrap().is_some());
        assert_eq!(db.kv.keys(&b, "", None).unwrap(), vec!["k".to_string()]);
    }
    db.runs.purge(&a).unwrap();
    assert!(is_run_error(db.kv.get_in(&a, "k")));
    assert!(is_run_error(db.kv.keys(&a, "", None)));
    assert!(is_run_error(db.events.count(&a, "s")));
    // The other run, seen before the purge's run-record write, still reads.
    assert!(db.kv.get_in(&b, "k").unwrap().is_some());
    // A run that never existed fails every time.
    let unknown = RunId::new();
    for _ in 0..2 {
        assert!(is_run_error(db.kv.get_in(&unknown, "k")));
    }
    db.close().unwrap();
    let db = open(dir.path());
    assert!(is_run_error(db.kv.get_in(&a, "k")));
    assert!(is_run_error(db.kv.get_in(&unknown, "k")));
    assert!(db.kv.get_in(&b, "k").unwrap().is_some());
}

#[test]
fn a_view_before_a_run_existed_fails_after_reads_of_the_run_now() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.kv.set("before", 0).unwrap();
    let before = db.kv.get("before").unwrap().unwrap().version;
    let run = db.runs.create(None).unwrap();
    let v = db.kv.put(&run, "k", 1).unwrap();
    // Seen at the current version...
    assert!(db.kv.get_in(&run, "k").unwrap().is_some());
    // ...but at `before` the run did not exist.
    let past = db.at(before).unwrap();
    assert!(is_run_error(past.kv.get_in(&run, "k")));
    assert!(db.at(v).unwrap().kv.get_in(&run, "k").unwrap().is_some());
    // And the other way round: a view in which the run exists, then its purge.
    let view = db.at(v).unwrap();
    assert!(view.kv.get_in(&run, "k").unwrap().is_some());
    db.runs.purge(&run).unwrap();
    assert!(is_run_error(db.kv.get_in(&run, "k")));
}

/// Readers hammer a run while it is purged: a read that starts after `purge` returned
/// fails; none fails before the purge began.
#[test]
fn reads_racing_a_purge_fail_from_the_purge_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    let run = db.runs.create(None).unwrap();
    db.kv.set_in(&run, "k", 1).unwrap();
    let (purging, purged) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, purging, purged) = (db.clone(), purging.clone(), purged.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                loop {
                    let after = purged.load(Ordering::SeqCst);
                    let r = db.kv.get_in(&run, "k");
                    let started_purging = purging.load(Ordering::SeqCst);
                    reads += 1;
                    if after {
                        assert!(is_run_error(r), "a read after the purge succeeded");
                        return reads;
                    }
                    match r {
                        Ok(v) => assert!(v.is_some()),
                        Err(Error::RunError(_)) => assert!(started_purging),
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    purging.store(true, Ordering::SeqCst);
    db.runs.purge(&run).unwrap();
    purged.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

/// The run check of reads through a read-only opener follows the writer: a run the
/// reader saw and the writer then purged fails there after `refresh`.
#[test]
fn a_read_only_opener_sees_a_purge_after_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let db = StrataBuilder::new().path(dir.path()).open().unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.set_in(&run, "k", 1).unwrap();
    // A reader applies a record once a later one proves it durable.
    let prove = || {
        db.flush().unwrap();
        db.kv.set("tick", 0).unwrap();
    };
    prove();
    let reader = StrataBuilder::new()
        .path(dir.path())
        .read_only()
        .open()
        .unwrap();
    assert!(reader.kv.get_in(&run, "k").unwrap().is_some());
    db.runs.purge(&run).unwrap();
    prove();
    reader.refresh().unwrap();
    assert!(is_run_error(reader.kv.get_in(&run, "k")));
}
