//! Time to live on KV pairs and JSON documents: expiry at the read's own time (an
//! injected clock), refresh without a new version, ordinary writes clearing it,
//! listings, transactions, the sweep that deletes expired records, forks, views.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_primitives::{internal, Engine};
use stratadb::prelude::*;
use stratadb::RetentionPolicy;

/// The primitives over an engine whose clock the test moves.
struct ClockDb {
    kv: KV,
    json: Json,
    runs: Runs,
    engine: Arc<Engine>,
    now: Arc<AtomicU64>,
}

impl ClockDb {
    fn new() -> Self {
        let engine = Engine::new(strata_storage::Storage::ephemeral()).unwrap();
        let now = Arc::new(AtomicU64::new(1_000_000_000));
        let clock = now.clone();
        engine.set_clock(Arc::new(move || {
            Timestamp::from_micros(clock.load(Ordering::SeqCst))
        }));
        ClockDb {
            kv: internal::kv(engine.clone()),
            json: internal::json(engine.clone()),
            runs: internal::runs(engine.clone()),
            engine,
            now,
        }
    }

    fn advance(&self, d: Duration) {
        self.now.fetch_add(d.as_micros() as u64, Ordering::SeqCst);
    }
}

const S: Duration = Duration::from_secs(1);

#[test]
fn a_key_expires_at_the_reads_own_time() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    let v = db
        .kv
        .put_with_ttl(&run, "session", "token", 10 * S)
        .unwrap();
    db.kv.put(&run, "plain", 1).unwrap();
    assert_eq!(db.kv.get_in(&run, "session").unwrap().unwrap().version, v);
    assert_eq!(db.kv.ttl(&run, "session").unwrap(), Some(10 * S));
    assert_eq!(db.kv.ttl(&run, "plain").unwrap(), None);
    db.advance(9 * S);
    assert!(db.kv.exists_in(&run, "session").unwrap());
    assert_eq!(db.kv.ttl(&run, "session").unwrap(), Some(S));
    db.advance(S);
    assert!(db.kv.get_in(&run, "session").unwrap().is_none());
    assert!(!db.kv.exists_in(&run, "session").unwrap());
    assert!(matches!(
        db.kv.ttl(&run, "session"),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        db.kv.keys(&run, "", None).unwrap(),
        vec!["plain".to_owned()]
    );
    assert_eq!(
        db.kv.keys(&run, "", Some(1)).unwrap(),
        vec!["plain".to_owned()]
    );
    // An expired key is absent to every operation built on reads.
    assert!(!db.kv.delete_in(&run, "session").unwrap());
    assert_eq!(db.kv.incr(&run, "session", 5).unwrap(), 5);
    // A zero TTL is refused.
    assert!(matches!(
        db.kv.put_with_ttl(&run, "z", 1, Duration::ZERO),
        Err(Error::ConstraintViolation(_))
    ));
}

#[test]
fn refreshing_keeps_the_version_and_a_plain_write_clears_the_expiry() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    let v = db.kv.put_with_ttl(&run, "k", "v", 10 * S).unwrap();
    db.advance(8 * S);
    assert!(db.kv.expire(&run, "k", Some(10 * S)).unwrap());
    db.advance(8 * S);
    let got = db.kv.get_in(&run, "k").unwrap().unwrap();
    assert_eq!(got.version, v, "a refresh writes no new version of the key");
    assert_eq!(db.kv.history(&run, "k", None, None).unwrap().len(), 1);
    // Clearing.
    assert!(db.kv.expire(&run, "k", None).unwrap());
    db.advance(100 * S);
    assert_eq!(db.kv.get_in(&run, "k").unwrap().unwrap().version, v);
    // A plain write over a key with an expiry clears it.
    db.kv.put_with_ttl(&run, "w", 1, 10 * S).unwrap();
    db.kv.put(&run, "w", 2).unwrap();
    db.advance(20 * S);
    assert_eq!(
        db.kv.get_in(&run, "w").unwrap().unwrap().value,
        Value::Int(2)
    );
    // Refreshing a missing key says so.
    assert!(!db.kv.expire(&run, "missing", Some(S)).unwrap());
}

#[test]
fn json_documents_expire_too() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    db.json
        .set_with_ttl(&run, "plan", json!({"step": 1}), 5 * S)
        .unwrap();
    assert_eq!(
        db.json
            .get_path(&run, "plan", "$.step")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(1)
    );
    db.json.set_path(&run, "plan", "$.step", 2).unwrap();
    db.advance(6 * S);
    // The path edit wrote a new version without a TTL: it lives on.
    assert_eq!(
        db.json
            .get_path(&run, "plan", "$.step")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(2)
    );
    db.json
        .set_with_ttl(&run, "note", json!({"a": 1}), 5 * S)
        .unwrap();
    db.advance(6 * S);
    assert!(db.json.get_in(&run, "note").unwrap().is_none());
    assert!(matches!(
        db.json.set_path(&run, "note", "$.a", 2),
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.json.ttl(&run, "plan").unwrap(), None);
}

#[test]
fn garbage_collection_deletes_expired_records_and_retention_frees_them() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    for i in 0..100 {
        db.kv
            .put_with_ttl(&run, &format!("k{i:03}"), i, 10 * S)
            .unwrap();
    }
    db.kv.put(&run, "kept", 1).unwrap();
    db.advance(11 * S);
    let before = db.engine.storage().stats().keys;
    db.engine.collect_garbage_now();
    db.engine.collect_garbage_now();
    let after = db.engine.storage().stats().keys;
    assert!(
        after < before,
        "expired records and their TTL records are freed ({before} keys before, {after} after)"
    );
    assert_eq!(db.kv.keys(&run, "", None).unwrap(), vec!["kept".to_owned()]);
    // History shows the delete the sweep committed.
    let h = db.kv.history(&run, "k000", None, None).unwrap();
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn a_transaction_reads_expiry_at_its_own_time() {
    let db = ClockDb::new();
    let run = db.runs.create(None).unwrap();
    db.kv.put_with_ttl(&run, "k", 1, 10 * S).unwrap();
    db.advance(9 * S);
    // Two reads in one transaction agree, whatever the clock does between them.
    let got = db
        .engine
        .run(|txn| {
            let a = strata_primitives::kv::ops::get(txn, &run, "k")?;
            db.advance(5 * S);
            let b = strata_primitives::kv::ops::get(txn, &run, "k")?;
            Ok((a.is_some(), b.is_some()))
        })
        .unwrap()
        .0;
    assert_eq!(got, (true, true));
    assert!(db.kv.get_in(&run, "k").unwrap().is_none());
}

#[test]
fn a_fork_inherits_expiries_and_views_see_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path().join("db")).unwrap();
    let run = db.runs.create(None).unwrap();
    let v = db
        .kv
        .put_with_ttl(&run, "k", "short", Duration::from_millis(200))
        .unwrap();
    db.kv.put(&run, "other", 1).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    assert!(db.kv.get_in(&fork, "k").unwrap().is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(db.kv.get_in(&run, "k").unwrap().is_none());
    assert!(db.kv.get_in(&fork, "k").unwrap().is_none());
    // Views judge no clock: before the sweep the view at `v` still sees the value...
    assert!(db.at(v).unwrap().kv.get_in(&run, "k").unwrap().is_some());
    // ...and after the sweep (run by a checkpoint's collection), the delete.
    db.checkpoint().unwrap();
    let after = db.kv.put(&run, "marker", 1).unwrap();
    assert!(db
        .at(after)
        .unwrap()
        .kv
        .get_in(&run, "k")
        .unwrap()
        .is_none());
    assert!(db.at(v).unwrap().kv.get_in(&run, "k").unwrap().is_some());
    // The record is gone from the parent; the fork still reads its inherited copy as
    // expired by its own clock.
    assert!(db.kv.get_in(&fork, "k").unwrap().is_none());
}

const REOPEN_ENV: &str = "STRATADB_TTL_REOPEN_DIR";

/// Run by `a_fresh_process_sees_expiries_of_a_reopened_database`.
#[test]
#[ignore = "run by a_fresh_process_sees_expiries_of_a_reopened_database"]
fn ttl_reopen_child() {
    let Ok(path) = std::env::var(REOPEN_ENV) else {
        return;
    };
    let db = Strata::open(&path).unwrap();
    let run = db
        .runs
        .list(None, None)
        .unwrap()
        .last()
        .unwrap()
        .value
        .run_id;
    // The key expires only now, after the open (whose collection deleted nothing).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(db.kv.get_in(&run, "plain").unwrap().is_some());
    assert!(
        db.kv.get_in(&run, "short").unwrap().is_none(),
        "the expired key must read as absent in a process that never wrote a TTL"
    );
    println!("CHILD-OK");
}

/// A process that opens a database whose runs use TTLs judges expiry from its first
/// read (the flag that lets other databases skip the lookup is set when it opens).
#[test]
fn a_fresh_process_sees_expiries_of_a_reopened_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Strata::open(dir.path()).unwrap();
        let run = db.runs.create(None).unwrap();
        db.kv.put(&run, "plain", 1).unwrap();
        db.kv
            .put_with_ttl(&run, "short", 1, Duration::from_millis(1000))
            .unwrap();
        db.close().unwrap();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ttl_reopen_child", "--ignored", "--nocapture"])
        .env(REOPEN_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
