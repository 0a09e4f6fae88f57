//! The retention workload of issue 11: 10,000 keys of 1 KiB rewritten 100 times under
//! `KeepLast(1)`, in 1,000 commits of 1,000 keys, with the default (buffered)
//! durability. Prints the disk use while writing and after `close()`, the process's
//! memory (VmHWM, RssAnon) and what the storage map holds, against the 9.8 MiB of live
//! data.
//!
//! ```text
//! cargo run --release -p stratadb --example retention_workload [-- DIR [KEYS ROUNDS]]
//! ```
//!
//! Without `DIR` a temporary directory is used (and removed).
use std::path::Path;
use std::time::Instant;

use stratadb::prelude::*;

const VALUE_SIZE: usize = 1024;
const KEYS_PER_COMMIT: usize = 1_000;

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A field of /proc/self/status in KiB (0 where unavailable).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let temp = tempfile::tempdir()?;
    let dir = args
        .first()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let keys: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let live = (keys * VALUE_SIZE) as u64;

    let db = Strata::open(&dir)?;
    let run = db.runs.create(None)?;
    db.runs.set_retention(&run, RetentionPolicy::KeepLast(1))?;
    let names: Vec<String> = (0..keys).map(|i| format!("key-{i:06}")).collect();

    let started = Instant::now();
    let mut commits = 0u64;
    let mut peak_disk = 0u64;
    let mut peak_resident = 0u64;
    for round in 0..rounds {
        let value = Value::Bytes(vec![round as u8; VALUE_SIZE]);
        for chunk in names.chunks(KEYS_PER_COMMIT) {
            let batch: Vec<(&str, Value)> =
                chunk.iter().map(|k| (k.as_str(), value.clone())).collect();
            db.kv.mset(&run, &batch)?;
            commits += 1;
            peak_disk = peak_disk.max(dir_size(&dir));
            peak_resident = peak_resident.max(db.engine().storage().map().stats().resident_bytes);
        }
    }
    let written = started.elapsed();
    let stats = db.engine().storage().map().stats();
    let disk_before_close = dir_size(&dir);
    let rss_anon = status_kib("RssAnon:");
    let started_close = Instant::now();
    db.close()?;
    let close_time = started_close.elapsed();
    let disk_after_close = dir_size(&dir);
    let hwm = status_kib("VmHWM:");

    println!(
        "workload: {keys} keys x {VALUE_SIZE} B x {rounds} rewrites under KeepLast(1), \
         {commits} commits, {:.1} MiB written, {:.1} MiB live",
        mib(live * rounds as u64),
        mib(live)
    );
    println!(
        "write time {:.2} s ({:.0} MiB/s), close {:.2} s",
        written.as_secs_f64(),
        mib(live * rounds as u64) / written.as_secs_f64(),
        close_time.as_secs_f64()
    );
    println!(
        "disk: peak while writing {:.1} MiB, before close {:.1} MiB, after close {:.1} MiB",
        mib(peak_disk),
        mib(disk_before_close),
        mib(disk_after_close)
    );
    println!(
        "map: resident estimate peak {:.1} MiB, at end {:.1} MiB ({} entries, {} keys)",
        mib(peak_resident),
        mib(stats.resident_bytes),
        stats.entries,
        stats.keys
    );
    println!(
        "process: VmHWM {:.1} MiB, RssAnon before close {:.1} MiB",
        hwm as f64 / 1024.0,
        rss_anon as f64 / 1024.0
    );

    // Reopen without a write: what comes back into memory.
    let db = Strata::open(&dir)?;
    let reopened = db.engine().storage().map().stats();
    println!(
        "after reopen: {:.1} MiB resident estimate, {} entries",
        mib(reopened.resident_bytes),
        reopened.entries
    );
    db.close()?;
    Ok(())
}
