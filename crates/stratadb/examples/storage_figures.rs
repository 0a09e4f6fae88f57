//! Figures of the storage engine on a grown database, measured the way users call it
//! (the facade, one call per operation), each step in a fresh child process so that
//! memory figures are the step's own:
//!
//! ```text
//! cargo run --release --example storage_figures -- DIR [KEYS]   # default 1,000,000 keys
//! ```
//!
//! Steps: load `KEYS` keys (24-byte keys, 100-byte values, batches of 1,000) and close;
//! reopen to the first read (warm page cache); 100,000 random gets, then `RssAnon`,
//! `RssFile` and `VmHWM`; 1,000 single-key commits, then `close()`; the bytes of runs and
//! log on disk.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use stratadb::prelude::*;

const VALUE_LEN: usize = 100;

fn key(i: u64) -> String {
    format!("user:{i:012}:profile:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes this process caused to be written to storage (`/proc/self/io`).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn open(dir: &Path) -> Strata {
    StrataBuilder::new()
        .no_durability()
        .path(dir)
        .open()
        .expect("open")
}

fn disk(dir: &Path) -> (u64, u64) {
    let (mut runs, mut log) = (0, 0);
    for e in std::fs::read_dir(dir).expect("list").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        if name.ends_with(".sst") {
            runs += len;
        } else if name.ends_with(".log") {
            log += len;
        }
    }
    (runs, log)
}

fn child(step: &str, dir: &Path, keys: u64) {
    match step {
        "load" => {
            let db = open(dir);
            let t = Instant::now();
            let value = Value::Bytes(vec![b'v'; VALUE_LEN]);
            let mut batch: Vec<(String, Value)> = Vec::with_capacity(1000);
            for i in 0..keys {
                batch.push((key(i), value.clone()));
                if batch.len() == 1000 || i + 1 == keys {
                    let entries: Vec<(&str, Value)> =
                        batch.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                    db.kv.mset(&RunId::DEFAULT, &entries).expect("mset");
                    batch.clear();
                }
            }
            let load_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            db.close().expect("close");
            let close_ms = t.elapsed().as_secs_f64() * 1e3;
            let (runs, log) = disk(dir);
            let written = written_bytes();
            println!(
                "load: {keys} keys in {load_s:.1} s ({:.0} keys/s); close after load {close_ms:.1} ms; \
                 peak {} MiB; runs {:.1} MiB, log {:.1} MiB on disk; {:.1} MiB written in all \
                 ({:.2}x the runs: log, flushes and compactions)",
                keys as f64 / load_s,
                status_kib("VmHWM:") / 1024,
                runs as f64 / (1 << 20) as f64,
                log as f64 / (1 << 20) as f64,
                written as f64 / (1 << 20) as f64,
                written as f64 / runs.max(1) as f64
            );
        }
        "reopen" => {
            let t = Instant::now();
            let db = open(dir);
            let first = db.kv.get(&key(keys / 2)).expect("get");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(first.is_some(), "key missing");
            println!("reopen to first read: {ms:.2} ms");
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            let t = Instant::now();
            let n = 100_000;
            for _ in 0..n {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let got = db.kv.get(&key(rng % keys)).expect("get");
                assert!(got.is_some());
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{n} random gets: {:.0} gets/s; RssAnon {} MiB, RssFile {} MiB, VmHWM {} MiB",
                n as f64 / secs,
                status_kib("RssAnon:") / 1024,
                status_kib("RssFile:") / 1024,
                status_kib("VmHWM:") / 1024
            );
            let t = Instant::now();
            let mut listed = 0;
            for i in 0..10_000u64 {
                let prefix = format!("user:{:09}", (i * 7919) % (keys / 1000).max(1));
                listed += db
                    .kv
                    .keys(&RunId::DEFAULT, &prefix, Some(100))
                    .expect("keys")
                    .len();
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "10,000 prefix listings ({} keys each on average): {:.0} listings/s",
                listed / 10_000,
                10_000.0 / secs
            );
            drop(db);
        }
        "commits" => {
            let db = open(dir);
            let t = Instant::now();
            for i in 0..1000u64 {
                db.kv
                    .set(&key(i * 7919 % keys), Value::Int(i as i64))
                    .expect("set");
            }
            let commits_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            db.close().expect("close");
            let (runs, log) = disk(dir);
            println!(
                "1,000 commits: {commits_ms:.1} ms; close after them: {:.1} ms; on disk: runs {:.1} MiB, log {:.1} MiB",
                t.elapsed().as_secs_f64() * 1e3,
                runs as f64 / (1 << 20) as f64,
                log as f64 / (1 << 20) as f64
            );
        }
        other => panic!("unknown step {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--child" {
        let keys = args[4].parse().expect("keys");
        child(&args[2], Path::new(&args[3]), keys);
        return;
    }
    let dir = PathBuf::from(args.get(1).expect("usage: storage_figures DIR [KEYS]"));
    let keys: u64 = args.get(2).map_or(1_000_000, |k| k.parse().expect("KEYS"));
    let exe = std::env::current_exe().expect("exe");
    let fresh = !dir.join("MANIFEST").exists();
    let steps: &[&str] = if fresh {
        &["load", "reopen", "reopen", "commits", "reopen"]
    } else {
        &["reopen", "reopen", "commits", "reopen"]
    };
    for step in steps {
        let status = Command::new(&exe)
            .args(["--child", step, &dir.to_string_lossy(), &keys.to_string()])
            .status()
            .expect("child");
        assert!(status.success(), "step {step} failed");
    }
}
