//! Multi-primitive transactions through the facade: atomic visibility, aborts,
//! run-state enforcement, concurrency, and atomicity across SIGKILL.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratadb::prelude::*;

fn setup() -> (Strata, RunId) {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.default_run();
    (db, run)
}

#[test]
fn all_primitives_commit_together() {
    let (db, run) = setup();
    let other = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "mem", 2, DistanceMetric::Cosine)
        .unwrap();
    db.json.set("doc", json!({"a": 1})).unwrap();
    let out = db
        .transaction(|t| {
            let seq = t.events_append(&run, "trace", json!({"tool": "search"}))?;
            let c = t.state_set(&run, "status", "done")?;
            t.kv_set(&run, "last", 3i64)?;
            t.kv_set(&other, "elsewhere", true)?;
            t.json_set_path(&run, "doc", "$.b", 2i64)?;
            t.vector_upsert(&run, "mem", "m1", &[1.0, 0.0], Some(json!({"k": 1})))?;
            // Reads see the transaction's own writes.
            assert_eq!(t.kv_get(&run, "last")?.unwrap().as_int(), Some(3));
            assert_eq!(t.state_get(&run, "status")?.unwrap().as_str(), Some("done"));
            assert_eq!(
                t.json_get(&run, "doc")?.unwrap().value,
                json!({"a": 1, "b": 2})
            );
            Ok((seq, c))
        })
        .unwrap();
    assert_eq!(out, (Version::Sequence(1), Version::Counter(1)));
    assert_eq!(db.events.count(&run, "trace").unwrap(), 1);
    assert_eq!(
        db.state.get("status").unwrap().unwrap().as_str(),
        Some("done")
    );
    let last = db.kv.get("last").unwrap().unwrap();
    assert_eq!(last.as_int(), Some(3));
    assert_eq!(
        db.kv
            .get_in(&other, "elsewhere")
            .unwrap()
            .unwrap()
            .as_bool(),
        Some(true)
    );
    let doc = db.json.get("doc").unwrap().unwrap();
    assert_eq!(doc.value, json!({"a": 1, "b": 2}));
    let vec = db.vectors.get(&run, "mem", "m1").unwrap().unwrap();
    // One commit: every Txn-versioned write shares the version.
    assert_eq!(doc.version, last.version);
    assert_eq!(vec.version, last.version);
    assert_eq!(
        db.kv.get_in(&other, "elsewhere").unwrap().unwrap().version,
        last.version
    );
    let hits = db
        .vectors
        .search(&run, "mem", &[1.0, 0.0], 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "m1");
    assert_eq!(hits[0].metadata, Some(json!({"k": 1})));
}

#[test]
fn error_from_closure_leaves_nothing() {
    let (db, run) = setup();
    db.vectors
        .create_collection(&run, "mem", 2, DistanceMetric::Cosine)
        .unwrap();
    db.kv.set("keep", 1i64).unwrap();
    let before = db.metrics();
    let r: Result<()> = db.transaction(|t| {
        t.events_append(&run, "trace", json!({"x": 1}))?;
        t.state_set(&run, "status", "x")?;
        t.kv_set(&run, "k", 1i64)?;
        t.kv_set(&run, "keep", 2i64)?;
        t.kv_incr(&run, "n", 1)?;
        t.vector_upsert(&run, "mem", "m", &[1.0, 0.0], None)?;
        Err(Error::ConstraintViolation("changed my mind".into()))
    });
    assert!(matches!(r, Err(Error::ConstraintViolation(m)) if m == "changed my mind"));
    assert_eq!(db.events.count(&run, "trace").unwrap(), 0);
    assert!(db.events.streams(&run).unwrap().is_empty());
    assert!(db.state.get("status").unwrap().is_none());
    assert!(db.kv.get("k").unwrap().is_none());
    assert!(db.kv.get("n").unwrap().is_none());
    assert_eq!(db.kv.get("keep").unwrap().unwrap().as_int(), Some(1));
    assert!(db.vectors.get(&run, "mem", "m").unwrap().is_none());
    assert_eq!(db.vectors.count(&run, "mem").unwrap(), 0);
    assert!(db
        .vectors
        .search(&run, "mem", &[1.0, 0.0], 5, None)
        .unwrap()
        .is_empty());
    let after = db.metrics();
    assert!(after.transactions_aborted > before.transactions_aborted);

    // An error from an operation (bad payload) aborts the whole transaction as well.
    let r = db.transaction(|t| {
        t.kv_set(&run, "k", 1i64)?;
        t.events_append(&run, "trace", Value::Int(1))?;
        Ok(())
    });
    assert!(matches!(r, Err(Error::WrongType { .. })));
    assert!(db.kv.get("k").unwrap().is_none());
    // Even if the closure swallowed an error, a later Ok commits what it wrote.
    db.transaction(|t| {
        t.kv_set(&run, "k", 2i64)?;
        assert!(t.events_append(&run, "trace", Value::Int(1)).is_err());
        Ok(())
    })
    .unwrap();
    assert_eq!(db.kv.get("k").unwrap().unwrap().as_int(), Some(2));
    assert_eq!(db.events.count(&run, "trace").unwrap(), 0);
}

#[test]
fn writes_to_non_active_run_abort_everything() {
    let (db, run) = setup();
    let paused = db.runs.create(None).unwrap();
    db.runs.pause(&paused).unwrap();
    let closed = db.runs.create(None).unwrap();
    db.runs.close(&closed).unwrap();
    for bad in [paused, closed, RunId::new()] {
        let r = db.transaction(|t| {
            t.kv_set(&run, "a", 1i64)?;
            t.events_append(&run, "s", json!({}))?;
            t.state_set(&bad, "x", 1i64)?;
            Ok(())
        });
        assert!(matches!(r, Err(Error::RunError(_))), "{r:?}");
        assert!(db.kv.get("a").unwrap().is_none());
        assert_eq!(db.events.count(&run, "s").unwrap(), 0);
    }
    // Reads of a paused run inside a transaction work.
    let r = db.transaction(|t| t.kv_get(&paused, "nothing")).unwrap();
    assert!(r.is_none());
}

#[test]
fn closure_error_is_returned_as_is_and_not_retried() {
    let (db, run) = setup();
    let mut calls = 0;
    let r: Result<()> = db.transaction(|t| {
        calls += 1;
        t.kv_set(&run, "k", 1i64)?;
        Err(Error::Conflict("application says no".into()))
    });
    assert_eq!(calls, 1, "an error from the closure must not re-run it");
    assert!(
        matches!(r, Err(Error::Conflict(ref m)) if m == "application says no"),
        "{r:?}"
    );
    assert!(db.kv.get("k").unwrap().is_none());
    let mut calls = 0;
    let r: Result<()> = db.transaction(|_| {
        calls += 1;
        Err(Error::NotFound("x".into()))
    });
    assert_eq!(calls, 1);
    assert!(matches!(r, Err(Error::NotFound(ref m)) if m == "x"));
}

#[test]
fn run_state_change_races_with_writes() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.create(None).unwrap();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut ok = 0u64;
            loop {
                match db.transaction(|t| {
                    t.events_append(&run, "e", json!({}))?;
                    t.kv_incr(&run, "n", 1)
                }) {
                    Ok(_) => ok += 1,
                    Err(Error::RunError(_)) => return ok,
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        })
    };
    while db.events.count(&run, "e").unwrap() < 20 {
        std::thread::yield_now();
    }
    db.runs.close(&run).unwrap();
    let count_at_close = db.events.count(&run, "e").unwrap();
    let ok = writer.join().unwrap();
    // Every acknowledged write is visible, nothing was written after the close.
    assert_eq!(ok, count_at_close);
    assert_eq!(db.events.count(&run, "e").unwrap(), ok);
    assert_eq!(
        db.kv.get_in(&run, "n").unwrap().unwrap().as_int(),
        Some(ok as i64)
    );
}

#[test]
fn concurrent_vector_upserts_keep_index_and_records_equal() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.default_run();
    db.vectors
        .create_collection(&run, "c", 3, DistanceMetric::Euclidean)
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let key = format!("k{}", i % 10);
                    let v = [t as f32, i as f32, (t * i) as f32];
                    if i % 7 == 3 {
                        db.vectors.delete(&run, "c", &key).unwrap();
                    } else if i % 2 == 0 {
                        db.vectors
                            .upsert(&run, "c", &key, &v, Some(json!({ "t": t })))
                            .unwrap();
                    } else {
                        db.transaction(|x| x.vector_upsert(&run, "c", &key, &v, None))
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut live = 0;
    for i in 0..10 {
        let key = format!("k{i}");
        let stored = db.vectors.get(&run, "c", &key).unwrap();
        let found = db
            .vectors
            .search_with_vectors(&run, "c", &[0.0, 0.0, 0.0], 100, None)
            .unwrap()
            .into_iter()
            .find(|m| m.key == key);
        match (stored, found) {
            (None, None) => {}
            (Some(s), Some(m)) => {
                live += 1;
                assert_eq!(
                    m.vector.as_deref(),
                    Some(s.value.vector.as_slice()),
                    "{key}"
                );
                assert_eq!(m.metadata, s.value.metadata, "{key}");
            }
            (s, m) => panic!("{key}: record {s:?} but index {m:?}"),
        }
    }
    assert_eq!(db.vectors.count(&run, "c").unwrap(), live);
}

#[test]
fn concurrent_increments_are_exact() {
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.default_run();
    let threads = 8;
    let per = 50;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..per {
                    db.transaction(|t| {
                        t.kv_incr(&run, "counter", 1)?;
                        t.events_append(&run, "log", json!({}))?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = (threads * per) as i64;
    assert_eq!(db.kv.get("counter").unwrap().unwrap().as_int(), Some(total));
    assert_eq!(db.events.count(&run, "log").unwrap(), total as u64);
    assert_eq!(
        db.kv.history(&run, "counter", None, None).unwrap().len(),
        total as usize
    );
}

// ---------------------------------------------------------------------------------
// SIGKILL atomicity: the test binary re-executes itself as a child that commits
// multi-primitive transactions in a loop and is killed at a random moment.

const CHILD_ENV: &str = "STRATADB_TXN_KILL_CHILD_DIR";
const CHILD_TEST: &str = "sigkill_child_writer";

/// The child: not a test of its own (it returns at once unless the parent started it).
#[test]
#[ignore = "helper process for the SIGKILL tests"]
fn sigkill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = StrataBuilder::new().path(&dir).strict().open().unwrap();
    let run = db.runs.default_run();
    let mut n = db.events.count(&run, "log").unwrap();
    println!("READY {n}");
    loop {
        n += 1;
        db.transaction(|t| {
            t.events_append(&run, "log", json!({ "n": n as i64 }))?;
            t.state_set(&run, "n", n as i64)?;
            t.kv_set(&run, "n", n as i64)?;
            Ok(())
        })
        .unwrap();
        println!("ACK {n}");
    }
}

/// Checks that every transaction is fully visible or not at all; returns the number
/// committed.
fn check_consistent(dir: &std::path::Path, acked: u64) -> u64 {
    let db = StrataBuilder::new().path(dir).strict().open().unwrap();
    let run = db.runs.default_run();
    let c = db.events.count(&run, "log").unwrap();
    assert!(
        c >= acked,
        "acknowledged {acked} transactions, only {c} recovered"
    );
    assert!(
        c <= acked + 1,
        "{c} recovered but only {acked} acknowledged"
    );
    let events = db.events.read("log", usize::MAX).unwrap();
    assert_eq!(events.len() as u64, c);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.version, Version::Sequence(i as u64 + 1));
        assert_eq!(e.value, json!({ "n": i as i64 + 1 }));
    }
    if c == 0 {
        assert!(db.kv.get("n").unwrap().is_none());
        assert!(db.state.get("n").unwrap().is_none());
    } else {
        let kv = db.kv.get("n").unwrap().unwrap();
        assert_eq!(kv.as_int(), Some(c as i64), "kv vs events");
        let st = db.state.get("n").unwrap().unwrap();
        assert_eq!(st.as_int(), Some(c as i64), "state vs events");
        assert_eq!(st.version, Version::Counter(c));
        assert_eq!(
            db.kv.history(&run, "n", None, None).unwrap().len() as u64,
            c
        );
    }
    db.close().unwrap();
    c
}

fn after<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| line[i + tag.len()..].trim())
}

fn sigkill_rounds(kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed = 0u64;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CHILD_TEST,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a varying number of acknowledged commits, plus a little jitter.
        let target = 1 + (round * 7 + 3) % 17;
        let mut acked = committed;
        let mut ready = false;
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < target {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("child stopped acknowledging commits");
            // libtest prints "test <name> ... " without a newline before the child's output.
            if let Some(n) = after(&line, "READY ") {
                assert_eq!(n.parse::<u64>().unwrap(), committed);
                ready = true;
            } else if let Some(n) = after(&line, "ACK ") {
                assert!(ready);
                let n: u64 = n.parse().unwrap();
                assert_eq!(n, acked + 1);
                acked = n;
                seen += 1;
            }
        }
        if round == 0 {
            // The directory lock holds across processes too.
            assert!(matches!(
                StrataBuilder::new().path(dir.path()).strict().open(),
                Err(Error::Storage(_))
            ));
        }
        std::thread::sleep(Duration::from_micros(((round * 389) % 2000) as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements printed before the kill count too.
        for line in rx.try_iter() {
            if let Some(n) = after(&line, "ACK ") {
                let n: u64 = n.parse().unwrap();
                assert_eq!(n, acked + 1);
                acked = n;
            }
        }
        committed = check_consistent(dir.path(), acked);
    }
    assert!(committed >= kills as u64);
}

#[test]
fn sigkill_transactions_are_atomic() {
    sigkill_rounds(4);
}

#[test]
#[ignore = "long: 100+ kills; run with --ignored"]
fn sigkill_transactions_are_atomic_long() {
    sigkill_rounds(120);
}
