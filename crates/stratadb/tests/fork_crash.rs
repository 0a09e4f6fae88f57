//! Forks survive a SIGKILL: a child process writes, forks and writes in its forks (strict
//! mode, a small memtable so flushes and compactions run underneath), printing each
//! acknowledged step; the parent kills it and checks every acknowledged fork after
//! reopening.
use std::io::BufRead;

use stratadb::prelude::*;

const CHILD_ENV: &str = "STRATADB_FORK_CRASH_WRITER";

#[test]
#[ignore = "run by acknowledged_forks_survive_sigkill"]
fn fork_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = StrataBuilder::new()
        .path(&path)
        .strict()
        .memtable_size(64 << 10)
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    println!("RUN {run}");
    for i in 1..=1_000_000i64 {
        db.kv.put(&run, "counter", i).unwrap();
        db.kv
            .put(&run, &format!("item:{i:06}"), Value::Bytes(vec![7u8; 200]))
            .unwrap();
        if i % 10 == 0 {
            let fork = db.runs.fork(&run, None).unwrap();
            db.kv.set_in(&fork, "own", i).unwrap();
            db.kv
                .delete_in(&fork, &format!("item:{:06}", i - 1))
                .unwrap();
            println!("FORK {fork} {i}");
        }
        println!("ACK {i}");
    }
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn acknowledged_forks_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fork_writer_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut run: Option<RunId> = None;
    let mut forks: Vec<(RunId, i64)> = Vec::new();
    let mut acked = 0i64;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("RUN") => run = Some(parts.next().unwrap().parse().unwrap()),
            Some("FORK") => {
                let id: RunId = parts.next().unwrap().parse().unwrap();
                let at: i64 = parts.next().unwrap().parse().unwrap();
                forks.push((id, at));
            }
            Some("ACK") => {
                acked = parts.next().unwrap().parse().unwrap();
                if acked >= 1_500 {
                    break;
                }
            }
            _ => {}
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked >= 1_500, "the writer stopped at {acked}");
    let run = run.expect("the writer printed its run");

    let db = Strata::open(dir.path()).unwrap();
    let counter = db.kv.get_in(&run, "counter").unwrap().unwrap().value;
    assert!(counter.as_int().unwrap() >= acked);
    assert!(forks.len() >= 150);
    for (fork, at) in &forks {
        let info = db
            .runs
            .get(fork)
            .unwrap()
            .expect("an acknowledged fork exists");
        assert_eq!(info.value.forked_from.map(|o| o.parent), Some(run));
        let get = |k: &str| db.kv.get_in(fork, k).unwrap().map(|v| v.value);
        assert_eq!(get("counter"), Some(Value::Int(*at)), "fork at {at}");
        assert_eq!(get("own"), Some(Value::Int(*at)));
        assert!(get(&format!("item:{:06}", at - 1)).is_none());
        assert!(get(&format!("item:{at:06}")).is_some());
        assert!(get(&format!("item:{:06}", at + 1)).is_none());
        let items = db.kv.keys(fork, "item:", None).unwrap();
        assert_eq!(items.len() as i64, at - 1, "fork at {at}");
    }
    db.close().unwrap();
}
