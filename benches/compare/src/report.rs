//! The markdown section and the SVG chart.
//!
//! The "## Peer comparison" section of `docs/benchmarks.md` holds the figures of the last
//! ordinary run (its settings, key-value table, chart and vector table) followed by any
//! number of *blocks*: the key-value table of a run made with
//! `COMPARE_REPORT_SECTION=NAME` (such as the 10M-key run), between the lines
//! `<!-- compare-block NAME -->` and `<!-- /compare-block NAME -->`. An ordinary run
//! rewrites the section and keeps the blocks; a block run replaces (or appends) only its
//! own block. So the 1M and the 10M figures are regenerated independently.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::engines::compaction_call;
use crate::vectors::VecResults;
use crate::{Sizes, REWRITE_ROUNDS};

struct Row {
    key: &'static str,
    label: String,
    unit: &'static str,
    higher_better: bool,
    /// Short name in the chart (throughput rows only).
    chart: Option<&'static str>,
}

fn rows(sz: Sizes) -> Vec<Row> {
    let r = |key, label: String, unit, higher_better, chart| Row {
        key,
        label,
        unit,
        higher_better,
        chart,
    };
    vec![
        r(
            "load",
            format!(
                "Bulk load: {} entries, random order, 1,000 per transaction",
                n(sz.load)
            ),
            "entries/s",
            true,
            Some("bulk load"),
        ),
        r(
            "commit",
            format!("{} single-key commits, no fsync", n(sz.commits)),
            "commits/s",
            true,
            Some("commit, no fsync"),
        ),
        r(
            "fsync1",
            format!("{} single-key commits, fsync each, 1 thread", n(sz.fsync)),
            "commits/s",
            true,
            Some("fsync commit, 1 thr"),
        ),
        r(
            "fsync4",
            format!(
                "{} single-key commits, fsync each, 4 threads × {}",
                n(sz.fsync),
                n(sz.fsync / 4)
            ),
            "commits/s",
            true,
            Some("fsync commit, 4 thr"),
        ),
        r(
            "read1",
            format!("{} random point reads, 1 thread", n(sz.reads)),
            "reads/s",
            true,
            Some("reads, 1 thr"),
        ),
        r(
            "read2",
            format!("{} random point reads, 2 threads", n(sz.reads)),
            "reads/s",
            true,
            Some("reads, 2 thr"),
        ),
        r(
            "prefix",
            format!("{} prefix listings of up to 100 keys", n(sz.listings)),
            "listings/s",
            true,
            Some("prefix listing"),
        ),
        r(
            "rewrite",
            format!(
                "Rewrite under retention: {} keys × 1 KiB, each rewritten {REWRITE_ROUNDS} times in random order, \
                 1,000 per transaction, no fsync (StrataDB `KeepLast(1)`)",
                n(sz.rewrite)
            ),
            "rewrites/s",
            true,
            Some("rewrite, 1 KiB"),
        ),
        r(
            "rewrite_peak_x",
            format!(
                "Rewrite: peak on disk while writing, × the live data ({} × 1 KiB)",
                n(sz.rewrite)
            ),
            "× live ↓",
            false,
            None,
        ),
        r(
            "rewrite_closed_x",
            "Rewrite: on disk after close, × the live data".into(),
            "× live ↓",
            false,
            None,
        ),
        r(
            "rewrite_compacted_x",
            "Rewrite: on disk after reopen and the engine's explicit compaction, × the live data"
                .into(),
            "× live ↓",
            false,
            None,
        ),
        r(
            "rewrite_compact_ms",
            "Rewrite: time of that explicit compaction".into(),
            "ms ↓",
            false,
            None,
        ),
        r(
            "reopen_ms",
            "Reopen the loaded database (open + first read)".into(),
            "ms ↓",
            false,
            None,
        ),
        r(
            "close_ms",
            "Close after the load (StrataDB flushes its memtable here)".into(),
            "ms ↓",
            false,
            None,
        ),
        r(
            "disk_mib",
            "On-disk size after load and close".into(),
            "MiB ↓",
            false,
            None,
        ),
        r(
            "rss_loaded_mib",
            "Resident memory after the load, before close (VmRSS)".into(),
            "MiB ↓",
            false,
            None,
        ),
        r(
            "rss_mib",
            "Peak resident memory of the loading process (VmHWM)".into(),
            "MiB ↓",
            false,
            None,
        ),
        r(
            "read_rss_anon_mib",
            "After reopen and the reads: anonymous memory (RssAnon)".into(),
            "MiB ↓",
            false,
            None,
        ),
        r(
            "read_rss_file_mib",
            "After reopen and the reads: mapped file pages (RssFile, the page cache)".into(),
            "MiB",
            false,
            None,
        ),
        r(
            "read_hwm_mib",
            "Peak resident memory of the reading process (VmHWM)".into(),
            "MiB ↓",
            false,
            None,
        ),
    ]
}

/// `1234567` → `1,234,567`.
fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        n(v.round() as u64)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A figure as the table shows it: multiples of the live data with two decimals.
fn cell(key: &str, v: f64) -> String {
    if key.ends_with("_x") {
        format!("{v:.2}")
    } else {
        fmt(v)
    }
}

fn metric(m: &BTreeMap<String, f64>, key: &str) -> Option<f64> {
    if let Some(base) = key
        .strip_suffix("_mib")
        .filter(|b| b.starts_with("rss") || b.starts_with("read_"))
    {
        return m.get(&format!("{base}_kib")).map(|k| k / 1024.0);
    }
    m.get(key).copied()
}

fn lock_version(name: &str) -> String {
    let lock = include_str!("../Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .map(|i| {
            let rest = &lock[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .unwrap_or_else(|| "?".into())
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("?".into(), |kib| format!("{:.0} GiB", kib / 1048576.0));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{nproc} cores (nproc) · {cpu} · {mem} RAM · Linux {kernel} · load average at the end {}",
        load.join(" ")
    )
}

pub fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn pretty(e: &str) -> &str {
    match e {
        "stratadb" => "StrataDB",
        "redb" => "redb",
        "fjall" => "fjall",
        "sqlite" => "SQLite",
        other => other,
    }
}

pub fn markdown(
    scale: f64,
    runs: usize,
    engines: &[&str],
    results: &BTreeMap<String, BTreeMap<String, f64>>,
    vec: Option<&VecResults>,
    machine: &str,
    date: &str,
) -> String {
    let sz = Sizes::at(scale);
    let mut s = String::new();
    let scale_note = if (scale - 1.0).abs() < 1e-9 {
        "full scale".to_string()
    } else {
        format!("COMPARE_SCALE={scale}")
    };
    let _ = writeln!(s, "## Peer comparison\n");
    let _ = writeln!(
        s,
        "StrataDB against [redb](https://crates.io/crates/redb), [fjall](https://crates.io/crates/fjall) \
         and SQLite (through rusqlite) on the same key-value workloads, at the same durability, \
         measured by `benches/compare` (its own cargo workspace, so the root `cargo test --workspace` \
         never builds the peers). Generated by the benchmark itself on {date}; do not edit by hand.\n"
    );
    let _ = writeln!(
        s,
        "```text\ncd benches/compare && COMPARE_SCALE={scale} COMPARE_RUNS={runs} cargo run --release\n```\n"
    );
    let _ = writeln!(s, "- Machine: {machine}");
    let _ = writeln!(
        s,
        "- Versions: stratadb {} (this repository), redb {}, fjall {} (lsm-tree {}), rusqlite {} with bundled SQLite {}, rustc release profile",
        lock_version("stratadb"),
        lock_version("redb"),
        lock_version("fjall"),
        lock_version("lsm-tree"),
        lock_version("rusqlite"),
        rusqlite::version()
    );
    let _ = writeln!(
        s,
        "- Data: 24-byte ASCII keys `pGGGGG:IIIIIIIIIIIIIIIII` ({} groups of 100 keys sharing a 7-byte prefix), \
         100-byte incompressible values, {} entries ≈ {:.0} MB of live data; databases in a temporary \
         directory on the same disk file system as the repository (not tmpfs).",
        n(sz.groups()),
        n(sz.load),
        sz.load as f64 * 124.0 / 1e6
    );
    let _ = writeln!(
        s,
        "- Durability: loads and \"no fsync\" commits write each commit to the OS without fsync \
         (StrataDB `no_durability()`, fjall's default journal mode, SQLite WAL + `synchronous=OFF`; \
         redb `Durability::None`, which keeps such commits in memory only) and end with one fsync of \
         everything (counted in the time); \"fsync each\" commits return only once durable (StrataDB \
         `strict()`, fjall `PersistMode::SyncData`, SQLite WAL + `synchronous=FULL`, redb \
         `Durability::Immediate`). 4-thread commits: StrataDB and fjall from 4 threads on one handle \
         (group commit), redb's single writer, SQLite one connection shared behind a mutex."
    );
    let _ = writeln!(
        s,
        "- Reads: every point read and listing is its own snapshot (StrataDB `kv.get_in` / `kv.keys`, \
         fjall `get` / `prefix`, one redb read transaction each, an autocommit SQLite `SELECT` on a \
         per-thread connection with a cached statement) and copies the value (keys for listings) out. \
         Each engine runs in child processes of the benchmark (load; reopen + reads; commits), so peak \
         memory is per engine. Default settings otherwise (caches included). Wall-clock time on a machine \
         shared with other jobs, so each figure is the best of {runs} pass(es) over all engines \
         (the order of the engines rotated from pass to pass); fsync rates in particular vary \
         a lot with the other jobs' I/O (2× between passes is common).\n"
    );

    let _ = writeln!(s, "### Key-value workloads ({scale_note})\n");
    kv_table(&mut s, sz, engines, results);
    let _ = writeln!(s, "{PROFILE_NOTES}");
    let _ = writeln!(
        s,
        "![Throughput per workload and engine, log scale](peer-comparison.svg)\n"
    );

    if let Some(v) = vec {
        let _ = writeln!(
            s,
            "### Vector search: recall@10 against queries/s ({scale_note})\n"
        );
        let _ = writeln!(
            s,
            "StrataDB's vector index (`strata_vector::CollectionIndex`, what `db.vectors` searches) on \
             {} × {}-d clustered vectors (200 clusters, each a random center plus a random \
             24-dimensional subspace; cosine), {} held-out queries of the same distribution, k = 10, \
             one thread, the default index settings ({}). Recall is against the \
             exact scan (`SearchStrategy::Exact`). Building the index by {} single upserts took {:.1} s \
             ({} vectors/s); the index holds {:.0} MiB. The peers have no vector index, so this \
             section is StrataDB alone; `vectors.md` describes the index and has its own measurements.\n",
            n(v.n as u64),
            crate::vectors::DIM,
            v.queries,
            v.params,
            n(v.n as u64),
            v.build_s,
            fmt(v.insert_per_s),
            v.memory_mib
        );
        let _ = writeln!(s, "| search | recall@10 | queries/s | vs exact scan |");
        let _ = writeln!(s, "|---|--:|--:|--:|");
        let _ = writeln!(s, "| exact scan | 1.0000 | {} | 1.0× |", fmt(v.exact_qps));
        for (ef, recall, qps) in &v.hnsw {
            let _ = writeln!(
                s,
                "| HNSW, ef_search = {ef} | {recall:.4} | {} | {:.0}× |",
                fmt(*qps),
                qps / v.exact_qps
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// The key-value table, its legend and the one-line summary of leads and lags.
fn kv_table(
    s: &mut String,
    sz: Sizes,
    engines: &[&str],
    results: &BTreeMap<String, BTreeMap<String, f64>>,
) {
    let _ = write!(s, "| workload | unit |");
    for e in engines {
        let _ = write!(s, " {} |", pretty(e));
    }
    let _ = writeln!(s, " StrataDB ÷ best peer |");
    let _ = write!(s, "|---|---|");
    for _ in engines {
        let _ = write!(s, "--:|");
    }
    let _ = writeln!(s, "---|");
    let (mut leads, mut trails) = (Vec::new(), Vec::new());
    for row in rows(sz) {
        let _ = write!(s, "| {} | {} |", row.label, row.unit);
        let vals: Vec<Option<f64>> = engines
            .iter()
            .map(|e| results.get(*e).and_then(|m| metric(m, row.key)))
            .collect();
        let best_peer = engines
            .iter()
            .zip(&vals)
            .filter(|(e, _)| **e != "stratadb")
            .filter_map(|(e, v)| v.map(|v| (*e, v)))
            .fold(None::<(&str, f64)>, |acc, (e, v)| match acc {
                Some((_, b)) if (row.higher_better && b >= v) || (!row.higher_better && b <= v) => {
                    acc
                }
                _ => Some((e, v)),
            });
        let strata = engines
            .iter()
            .position(|e| *e == "stratadb")
            .and_then(|i| vals[i]);
        for v in &vals {
            let cell = v.map_or("–".into(), |v| cell(row.key, v));
            let winner = vals.iter().flatten().copied().fold(None::<f64>, |a, x| {
                Some(match a {
                    None => x,
                    Some(a) if row.higher_better => a.max(x),
                    Some(a) => a.min(x),
                })
            });
            if v.is_some() && *v == winner && engines.len() > 1 {
                let _ = write!(s, " **{cell}** |");
            } else {
                let _ = write!(s, " {cell} |");
            }
        }
        match (strata, best_peer) {
            (Some(a), Some((pe, b))) if b > 0.0 => {
                let _ = writeln!(s, " {:.2}× ({}) |", a / b, pretty(pe));
                let name = match row.key {
                    "load" => "bulk load",
                    "commit" => "commits without fsync",
                    "fsync1" => "fsync'd commits on 1 thread",
                    "fsync4" => "fsync'd commits on 4 threads",
                    "read1" => "point reads on 1 thread",
                    "read2" => "point reads on 2 threads",
                    "prefix" => "prefix listings",
                    "reopen_ms" => "reopen time",
                    "close_ms" => "close time",
                    "disk_mib" => "size on disk",
                    "rewrite" => "rewrites under retention",
                    "rewrite_peak_x" => "peak disk while rewriting",
                    "rewrite_closed_x" => "disk after the rewrites and close",
                    "rewrite_compacted_x" => "disk after the rewrites and compaction",
                    "rewrite_compact_ms" => "compaction time after the rewrites",
                    "rss_loaded_mib" => "memory after the load",
                    "rss_mib" => "peak memory",
                    "read_rss_anon_mib" => "anonymous memory after reopen and reads",
                    "read_hwm_mib" => "peak memory of the reading process",
                    other => other,
                };
                if row.key == "read_rss_file_mib" {
                    // Page cache, not the process's own memory: neither a lead nor a lag.
                } else if (a >= b) == row.higher_better {
                    leads.push(format!("{name} ({:.2}×)", a / b));
                } else {
                    trails.push(format!("{name} ({:.2}×)", a / b));
                }
            }
            _ => {
                let _ = writeln!(s, " – |");
            }
        }
    }
    let _ = writeln!(
        s,
        "\nBold: the best engine of the row. Rows marked ↓ are better lower, so there a ratio above 1 \
         means StrataDB trails; elsewhere a ratio above 1 means StrataDB leads.\n"
    );
    if !leads.is_empty() || !trails.is_empty() {
        let _ = writeln!(
            s,
            "StrataDB leads on: {}. It trails on: {}.\n",
            if leads.is_empty() {
                "–".into()
            } else {
                leads.join(", ")
            },
            if trails.is_empty() {
                "–".into()
            } else {
                trails.join(", ")
            }
        );
    }
    retention_note(s, sz, engines, results);
}

/// What the rewrite rows measure, and StrataDB's figures against the target of issue 12
/// (≤ 1.3× the kept versions on disk after close or after an explicit compaction).
fn retention_note(
    s: &mut String,
    sz: Sizes,
    engines: &[&str],
    results: &BTreeMap<String, BTreeMap<String, f64>>,
) {
    let live_mib = sz.rewrite as f64 * 1024.0 / 1048576.0;
    let calls: Vec<String> = engines
        .iter()
        .map(|e| format!("{} {}", pretty(e), compaction_call(e)))
        .collect();
    let _ = write!(
        s,
        "*Rewrite under retention.* Each engine writes a fresh database: {} keys × 1 KiB of \
         incompressible values ({live_mib:.1} MiB live), every key written {REWRITE_ROUNDS} times \
         ({:.2} GiB written), a new random order each round. StrataDB's run is under \
         `RetentionPolicy::KeepLast(1)` from before the first write; the peers keep one version \
         of a key by design (redb and SQLite rewrite B-tree pages, fjall drops shadowed versions \
         when it compacts). The disk use (every file of the database) is sampled every 10 \
         transactions while writing, measured after close, then after reopening and the \
         engine's explicit compaction: {}. Multiples are of the values alone (the 24-byte keys \
         add 2 %). SQLite's figures are those of the benchmark's `WITHOUT ROWID` table (the \
         same schema as every other workload): a row of 1 KiB exceeds what an index b-tree \
         page keeps in place (about 1,000 bytes at 4 KiB pages), so each row spills its tail \
         to an overflow page of its own, before and after `VACUUM`; an ordinary rowid table \
         would keep such rows in place.",
        n(sz.rewrite),
        sz.rewrite as f64 * 1024.0 * REWRITE_ROUNDS as f64 / (1u64 << 30) as f64,
        calls.join(", ")
    );
    let strata = results.get("stratadb");
    let get = |k: &str| strata.and_then(|m| m.get(k).copied());
    if let (Some(closed), Some(compacted)) = (get("rewrite_closed_x"), get("rewrite_compacted_x")) {
        let verdict = match (closed <= 1.3, compacted <= 1.3) {
            (true, true) => "met after close and after compaction",
            (false, true) => "met after the explicit compaction, not after close alone",
            (true, false) => "met after close, not after the explicit compaction",
            (false, false) => "not met",
        };
        let _ = write!(
            s,
            " Issue 12's target for StrataDB, at most 1.3× the kept versions after close or after \
             an explicit compaction: {closed:.2}× after close, {compacted:.2}× after `db.compact()` \
             ({verdict})."
        );
    }
    let _ = writeln!(s, "\n");
}

/// The key-value table of a run made with `COMPARE_REPORT_SECTION=NAME`: a block of the
/// section, between `<!-- compare-block NAME -->` and `<!-- /compare-block NAME -->`,
/// that ordinary runs keep (see [`write_section`]).
pub fn block(
    name: &str,
    scale: f64,
    runs: usize,
    engines: &[&str],
    results: &BTreeMap<String, BTreeMap<String, f64>>,
    machine: &str,
    date: &str,
) -> String {
    let sz = Sizes::at(scale);
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", block_begin(name));
    let _ = writeln!(
        s,
        "### Key-value workloads at {} keys (COMPARE_SCALE={scale})\n",
        n(sz.load)
    );
    let _ = writeln!(
        s,
        "The same workloads and settings as the table above, at a larger scale; a block of \
         this section of its own (`{name}`), which the ordinary run keeps. Generated by the \
         benchmark itself on {date}; do not edit by hand.\n"
    );
    let _ = writeln!(
        s,
        "```text\ncd benches/compare && COMPARE_SCALE={scale} COMPARE_RUNS={runs} COMPARE_REPORT_SECTION={name} cargo run --release\n```\n"
    );
    let _ = writeln!(s, "- Machine: {machine}");
    let _ = writeln!(
        s,
        "- Data: {} entries of 24-byte keys ({} groups of 100) and 100-byte values ≈ {:.2} GB of live data.",
        n(sz.load),
        n(sz.groups()),
        sz.load as f64 * 124.0 / 1e9
    );
    let fixed = Sizes::fixed_above_one(scale);
    if !fixed.is_empty() {
        let _ = writeln!(
            s,
            "- Not scaled: {} keep their scale-1 counts. The commits and the rewrite run on \
             fresh databases, so the loaded size does not matter to them, and scaled they would \
             take far longer (fsync'd commits minutes per engine, the rewrite {:.0} GiB of writes \
             per engine); the reads are still spread uniformly over every loaded key, from a \
             cold reopen, and scaled they would take the slower engines over 5 minutes \
             (extrapolated from scale 2).",
            match fixed.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            },
            100_000.0 * scale * 1024.0 * REWRITE_ROUNDS as f64 / (1u64 << 30) as f64
        );
    }
    let _ = writeln!(
        s,
        "- Passes: {}.\n",
        if runs == 1 {
            "one (each figure is a single measurement, not the best of several, so noisier than \
             the table above)"
                .to_string()
        } else {
            format!("each figure is the best of {runs}")
        }
    );
    kv_table(&mut s, sz, engines, results);
    let _ = writeln!(s, "{}", block_end(name));
    s
}

fn block_begin(name: &str) -> String {
    format!("<!-- compare-block {name} -->")
}

fn block_end(name: &str) -> String {
    format!("<!-- /compare-block {name} -->")
}

/// The blocks of a section: (name, text from its first to its last line).
fn blocks(section: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < section.len() {
        let name = section[i]
            .trim_end()
            .strip_prefix("<!-- compare-block ")
            .and_then(|r| r.strip_suffix(" -->"));
        if let Some(name) = name {
            let end = block_end(name);
            let stop = section[i..]
                .iter()
                .position(|l| l.trim_end() == end)
                .map_or(section.len() - 1, |j| i + j);
            out.push((name.to_string(), section[i..=stop].join("\n")));
            i = stop;
        }
        i += 1;
    }
    out
}

/// Writes `md` into the `## Peer comparison` section of `path` (which runs up to the next
/// `## ` heading; created at the end of the file if missing, the file too).
///
/// `block: None`: `md` is the whole section; the blocks the old section had are kept
/// after it, in their order. `block: Some(NAME)`: `md` is the block NAME; it replaces the
/// old block of that name, or is appended at the end of the section; the rest of the
/// section is left alone.
pub fn write_section(path: &Path, md: &str, block: Option<&str>) {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let lines: Vec<&str> = old.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "## Peer comparison");
    let (before, section, after) = match start {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| l.starts_with("## "))
                .map_or(lines.len(), |i| start + 1 + i);
            (&lines[..start], &lines[start..end], &lines[end..])
        }
        None => (&lines[..], &lines[..0], &lines[..0]),
    };
    let md = md.trim_end();
    let body = match block {
        None => {
            let mut body = md.to_string();
            for (_, text) in blocks(section) {
                body.push_str("\n\n");
                body.push_str(&text);
            }
            body
        }
        Some(name) => {
            let begin = block_begin(name);
            match section.iter().position(|l| l.trim_end() == begin) {
                _ if section.is_empty() => format!("## Peer comparison\n\n{md}"),
                Some(i) => {
                    let end = block_end(name);
                    let stop = section[i..]
                        .iter()
                        .position(|l| l.trim_end() == end)
                        .map_or(section.len(), |j| i + j + 1);
                    let mut body = section[..i].join("\n");
                    body.push('\n');
                    body.push_str(md);
                    if stop < section.len() {
                        body.push('\n');
                        body.push_str(&section[stop..].join("\n"));
                    }
                    body.trim_end().to_string()
                }
                None => format!("{}\n\n{md}", section.join("\n").trim_end()),
            }
        }
    };
    let mut out = before.join("\n").trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&body);
    out.push('\n');
    if !after.is_empty() {
        out.push('\n');
        out.push_str(&after.join("\n"));
        out.push('\n');
    }
    std::fs::write(path, out).expect("write docs/benchmarks.md");
}

pub fn chart(
    path: &Path,
    scale: f64,
    engines: &[&str],
    results: &BTreeMap<String, BTreeMap<String, f64>>,
) {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let sz = Sizes::at(scale);
    let rows: Vec<Row> = rows(sz).into_iter().filter(|r| r.chart.is_some()).collect();
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            engines
                .iter()
                .filter_map(|e| results.get(*e).and_then(|m| metric(m, r.key)))
        })
        .filter(|v| *v > 0.0)
        .collect();
    let lo = 10f64.powf(all.iter().copied().fold(f64::MAX, f64::min).log10().floor());
    let hi = 10f64.powf(all.iter().copied().fold(0.0, f64::max).log10().ceil());
    let colors = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(127, 127, 127),
    ];
    let w = rows.len();
    let root = SVGBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let title = if (scale - 1.0).abs() < 1e-9 {
        "StrataDB and peers: operations per second (log scale, higher is better)".to_string()
    } else {
        format!("StrataDB and peers: operations per second (log scale, COMPARE_SCALE={scale})")
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..w as f64, (lo..hi).log_scale())
        .expect("chart");
    let names: Vec<&str> = rows.iter().map(|r| r.chart.unwrap_or("")).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(w + 1)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|y| {
            if *y >= 1e6 {
                format!("{:.0}M", y / 1e6)
            } else if *y >= 1e3 {
                format!("{:.0}k", y / 1e3)
            } else {
                format!("{y:.0}")
            }
        })
        .y_desc("ops/s")
        .label_style(("sans-serif", 13))
        .draw()
        .expect("mesh");
    // Workload names under the axis, centered on each group of bars.
    for (i, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, lo));
        root.draw(&Text::new(
            name.to_string(),
            (px, py + 12),
            ("sans-serif", 14)
                .into_font()
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .expect("label");
    }
    let bar = 0.8 / engines.len() as f64;
    for (ei, e) in engines.iter().enumerate() {
        let color = colors[ei % colors.len()];
        let bars: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(ri, r)| {
                results
                    .get(*e)
                    .and_then(|m| metric(m, r.key))
                    .map(|v| (ri as f64 + 0.1 + ei as f64 * bar, v))
            })
            .collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x, v)| Rectangle::new([(x, lo), (x + bar * 0.92, v)], color.filled())),
            )
            .expect("bars")
            .label(pretty(e))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .expect("legend");
    root.present().expect("write svg");
}

/// What the profiles of the trailing workloads showed (perf, `--call-graph dwarf`, on the
/// child processes of this benchmark). About the code at the time of writing, not the
/// figures above: update it when the storage changes.
const PROFILE_NOTES: &str = "\
**How StrataDB holds this data (storage v2).** Recent writes live in an in-memory \
memtable (32 MiB by default, `StrataBuilder::memtable_size`); everything older lives in \
immutable sorted runs (`run-<id>.sst`), memory-mapped and read in place, listed by a \
`MANIFEST` and merged in the background (binary-counter compaction). So:

- *Load and close.* A flush writes only the memtable; close flushes what the last flush \
  left (at most one memtable) instead of rewriting the database.
- *Reopen.* Open reads the manifest, maps the runs, checks their headers, footers and \
  index checksums, decodes each run's sparse index (one key per 4 KiB block) and replays \
  only the log written since the last flush: no cost proportional to the data.
- *Point reads.* Each read is a read-only snapshot (no read set, no retry; its run check \
  answered from the runs already seen while no run record changed). A read that misses \
  the memtable asks each run's key filter (a blocked Bloom filter, one cache line) and \
  skips the runs that cannot hold the key; in the one that may, it binary-searches the \
  in-memory index and decodes one 4 KiB block in place (its checksum verified the first \
  time it is read).
- *Prefix listings.* A listing of keys merges the layers key by key, reading each run's \
  entries where they lie in the mapping and handing each key it returns straight to the \
  caller's string (no value, no intermediate row); it seeks in all runs together, step \
  by step (index, block), so that their cache misses overlap; a short listing asks the \
  kernel for no read-ahead. Each run costs a listing a seek: the fewer runs the last \
  compactions left, the faster it lists.
- *Memory.* Anonymous memory (`RssAnon`) holds the memtable and the runs' indexes; the \
  mapped run pages are the operating system's page cache (`RssFile`), shared and \
  reclaimable, so a database larger than memory still opens and reads.

Profiles of the earlier, all-in-memory storage (before sorted runs) are in the history \
of this file.
";
