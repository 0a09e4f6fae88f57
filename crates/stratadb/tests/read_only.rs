//! `StrataBuilder::read_only`: a second process reads a database a writer holds, and
//! keeps working when that writer is killed.
use std::io::BufRead;

use stratadb::prelude::*;

const CHILD_ENV: &str = "STRATADB_READ_ONLY_WRITER";

/// The writer child: strict commits forever, printing each acknowledged counter value;
/// flushes now and then so the reader sees runs and log alike.
#[test]
#[ignore = "run by readers_beside_a_writer_that_is_then_killed"]
fn writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = StrataBuilder::new()
        .path(&path)
        .strict()
        .memtable_size(1 << 20)
        .open()
        .unwrap();
    db.kv.set("doc", json!({"title": "plan"})).unwrap();
    for i in 1..=100_000i64 {
        db.kv.set("counter", i).unwrap();
        db.kv
            .set(&format!("item:{i:06}"), Value::Bytes(vec![1u8; 200]))
            .unwrap();
        println!("ACK {i}");
    }
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn readers_beside_a_writer_that_is_then_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0i64;
    let wait_for = |lines: &mut std::io::Lines<_>, n: i64, acked: &mut i64| {
        for line in lines.by_ref() {
            if let Some(v) = line.unwrap().strip_prefix("ACK ") {
                *acked = v.trim().parse().unwrap();
                if *acked >= n {
                    return;
                }
            }
        }
        panic!("the writer stopped at {acked}");
    };
    wait_for(&mut lines, 2_000, &mut acked);
    // A second writer is refused; a reader opens while the writer runs.
    assert!(Strata::open(dir.path()).is_err());
    let reader = StrataBuilder::new()
        .path(dir.path())
        .read_only()
        .open()
        .unwrap();
    assert!(reader.is_read_only());
    let seen = reader
        .kv
        .get("counter")
        .unwrap()
        .unwrap()
        .value
        .as_int()
        .unwrap();
    assert!(seen >= 1, "reader sees {seen}");
    assert!(reader.kv.get("doc").unwrap().is_some());
    // Every item up to the counter it sees is there (a consistent snapshot).
    for i in (1..=seen).step_by(97) {
        assert!(
            reader.kv.get(&format!("item:{i:06}")).unwrap().is_some(),
            "item {i}"
        );
    }
    let err = reader.kv.set("x", 1i64).unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
    // The writer goes on; the reader catches up.
    let target = acked + 1_000;
    wait_for(&mut lines, target, &mut acked);
    reader.refresh().unwrap();
    let later = reader
        .kv
        .get("counter")
        .unwrap()
        .unwrap()
        .value
        .as_int()
        .unwrap();
    assert!(later > seen, "refresh moved from {seen} to {later}");
    // SIGKILL the writer in the middle of its work.
    child.kill().unwrap();
    child.wait().unwrap();
    // What it printed before it died: the last acknowledged value.
    for line in lines {
        if let Some(v) = line.unwrap().strip_prefix("ACK ") {
            acked = v.trim().parse().unwrap();
        }
    }
    reader.refresh().unwrap();
    let after = reader
        .kv
        .get("counter")
        .unwrap()
        .unwrap()
        .value
        .as_int()
        .unwrap();
    assert!(
        after >= later && after <= acked + 1,
        "{after} after the kill (acked {acked})"
    );
    reader.close().unwrap();
    // The writer's recovery still finds every acknowledged commit.
    let db = Strata::open(dir.path()).unwrap();
    let last = db
        .kv
        .get("counter")
        .unwrap()
        .unwrap()
        .value
        .as_int()
        .unwrap();
    assert!(last >= acked, "recovered {last}, acknowledged {acked}");
}
