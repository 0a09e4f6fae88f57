//! The agent-shaped database of the issue "Storage v2", measured through the facade:
//! `RUNS` runs (default 10,000), each with 50 events, 10 KV facts, a JSON plan edited
//! by path, a state cell changed by compare-and-swap and a collection of 10 vectors of
//! 384 dimensions; 90 % of the runs are completed and put under `KeepLast(1)`.
//!
//! ```text
//! cargo run --release -p stratadb --example agent_shaped -- DIR [RUNS]
//! ```
//!
//! Steps, each in a fresh child process (so memory figures are the step's own):
//! build and `close()` (timed); reopen to the first read (timed), then read one run of
//! every 100 (its facts, plan, events and a vector search) and report `RssAnon`,
//! `RssFile` and `VmHWM`; then 1,000 commits into one run and `close()` (timed).
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use stratadb::prelude::*;
use stratadb::RetentionPolicy;

const DIM: usize = 384;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

fn build(dir: &Path, runs: u64) -> Result<()> {
    let t = Instant::now();
    let db = Strata::open(dir)?;
    for r in 0..runs {
        let run = db
            .runs
            .create(Some(json!({ "agent": "planner", "n": r as i64 })))?;
        for i in 0..50 {
            db.events
                .append_in(&run, "trace", json!({ "step": i, "tool": "search" }))?;
        }
        for i in 0..10 {
            db.kv
                .set_in(&run, &format!("fact:{i}"), format!("fact {i} of run {r}"))?;
        }
        db.json.set_in(
            &run,
            "plan",
            json!({ "steps": ["search", "answer"], "done": 0 }),
        )?;
        db.json.set_path(&run, "plan", "$.done", 1i64)?;
        db.json.set_path(&run, "plan", "$.done", 2i64)?;
        db.state.set_in(&run, "status", "thinking")?;
        let current = db.state.get_in(&run, "status")?.map(|s| s.version.as_u64());
        db.state.cas(&run, "status", current, "done")?;
        db.vectors
            .create_collection(&run, "memory", DIM, DistanceMetric::Cosine)?;
        for i in 0..10 {
            db.vectors.upsert(
                &run,
                "memory",
                &format!("m{i}"),
                &vector(r * 10 + i),
                Some(json!({ "kind": "fact" })),
            )?;
        }
        if r % 10 != 0 {
            db.runs.set_retention(&run, RetentionPolicy::KeepLast(1))?;
            db.runs.close(&run)?;
        }
        if (r + 1) % 1000 == 0 {
            eprintln!("  {} runs in {:.1} s", r + 1, t.elapsed().as_secs_f64());
        }
    }
    println!("build: {runs} runs in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let files = db.vectors.persist_indexes()?;
    let persist_ms = t.elapsed().as_secs_f64() * 1e3;
    db.close()?;
    println!(
        "close after the build: {:.0} ms (of which {persist_ms:.0} ms writing {files} vector index files)",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("on disk: {:.1} MiB", du(dir) as f64 / 1048576.0);
    Ok(())
}

fn reopen(dir: &Path) -> Result<()> {
    let t = Instant::now();
    let db = Strata::open(dir)?;
    let first = db.kv.get_in(&RunId::DEFAULT, "missing")?;
    println!(
        "reopen to the first read: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let all = db.runs.list(None, None)?;
    println!("list every run: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let mut read = 0;
    for info in all.iter().step_by(100) {
        let run = info.value.run_id;
        if run.is_default() {
            continue;
        }
        db.kv.get_in(&run, "fact:3")?;
        db.json.get_path(&run, "plan", "$.done")?;
        db.events.read_in(&run, "trace", 50)?;
        db.vectors.search(&run, "memory", &vector(read), 3, None)?;
        read += 1;
    }
    println!(
        "read {read} runs (facts, plan, 50 events, a vector search each) in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "after reopen and reads: RssAnon {} MiB, RssFile {} MiB, VmHWM {} MiB ({} runs listed, first read found {})",
        status_kib("RssAnon:") / 1024,
        status_kib("RssFile:") / 1024,
        status_kib("VmHWM:") / 1024,
        all.len(),
        first.is_some()
    );
    let run = all.last().map(|i| i.value.run_id).unwrap_or(RunId::DEFAULT);
    for i in 0..1000 {
        db.kv
            .set_in(&RunId::DEFAULT, &format!("later:{i}"), i as i64)?;
    }
    let _ = run;
    let t = Instant::now();
    db.close()?;
    println!(
        "1,000 commits, then close: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/tmp/agent-shaped"),
    );
    match args.get(2).map(String::as_str) {
        Some("--build") => {
            let runs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
            return build(dir, runs);
        }
        Some("--reopen") => return reopen(dir),
        _ => {}
    }
    let runs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let _ = std::fs::remove_dir_all(dir);
    let me = std::env::current_exe().map_err(Error::Io)?;
    for step in [
        vec!["--build".to_owned(), runs.to_string()],
        vec!["--reopen".to_owned()],
        vec!["--reopen".to_owned()],
    ] {
        let status = Command::new(&me)
            .arg(dir)
            .args(&step)
            .status()
            .map_err(Error::Io)?;
        if !status.success() {
            return Err(Error::Internal(format!("step {step:?} failed")));
        }
    }
    Ok(())
}
