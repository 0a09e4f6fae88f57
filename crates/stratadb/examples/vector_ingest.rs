//! Vector ingest and search through the public API (issue 16): single-call upserts,
//! batch upserts, recall@10 and QPS against an exact scan, and `k = 1` self-retrieval.
//!
//! ```text
//! cargo run --release -p stratadb --example vector_ingest -- [MODE] [N] [DATA]
//! ```
//! - `MODE`: `single` (one `db.vectors.upsert` per vector), `batch` (`upsert_batch` of
//!   1,000), `both` (default), or `memory` (batches, a checkpoint, then the process's
//!   anonymous memory with the input dropped, against the raw vector bytes, and search
//!   QPS before and after the checkpoint maps the vectors from the index file);
//! - `N`: vectors (default 100000);
//! - `DATA`: `synthetic` (default: 384-d clustered, `strata_vector::synthetic`) or the path
//!   of a raw little-endian `f32` file of 384-d rows (`tools/gen_embeddings.py`).
//!
//! `QUANTIZATION=int8` creates the collection with the int8 working copy.
//! The database is ephemeral unless `STRATA_DISK=1`, which uses a temporary directory
//! under `target/` at the default durability. 300 extra rows are the queries.
//! Rates are wall-clock and the machine may be shared: the report says so.
use std::collections::HashSet;
use std::time::Instant;

use stratadb::prelude::*;

const DIM: usize = 384;
const NQ: usize = 300;

fn load(data: &str, n: usize) -> Vec<Vec<f32>> {
    if data == "synthetic" {
        return strata_vector::synthetic::clustered(n + NQ, DIM, 42);
    }
    let bytes = std::fs::read(data).expect("read the vector file");
    bytes
        .chunks_exact(4 * DIM)
        .take(n + NQ)
        .map(|r| {
            r.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect()
}

fn open() -> (Strata, Option<tempfile::TempDir>) {
    if std::env::var("STRATA_DISK").as_deref() == Ok("1") {
        std::fs::create_dir_all("target").expect("target dir");
        let dir = tempfile::tempdir_in("target").expect("temp dir");
        (Strata::open(dir.path()).expect("open"), Some(dir))
    } else {
        (Strata::ephemeral().expect("open"), None)
    }
}

/// CPU seconds used by the whole process (all threads) so far, from `/proc/self/stat`
/// (`utime + stime`, assuming 100 ticks per second); `0` where unavailable.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The collection's options: `QUANTIZATION=int8` in the environment selects the int8
/// working copy.
fn options() -> stratadb::CollectionOptions {
    let q = if std::env::var("QUANTIZATION").as_deref() == Ok("int8") {
        stratadb::Quantization::Int8
    } else {
        stratadb::Quantization::None
    };
    stratadb::CollectionOptions::default().quantization(q)
}

fn key(i: usize) -> String {
    format!("doc:{i}")
}

fn ingest(db: &Strata, run: &RunId, data: &[Vec<f32>], batch: usize) {
    db.vectors
        .create_collection_with(run, "docs", DIM, DistanceMetric::Cosine, options())
        .expect("create");
    let n = data.len();
    let tenth = (n / 10).max(1);
    let started = Instant::now();
    let cpu0 = cpu_secs();
    let mut phase = Instant::now();
    let mut rates = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        if batch == 1 {
            db.vectors
                .upsert(run, "docs", &key(i), &data[i], None)
                .expect("upsert");
        } else {
            let items: Vec<(String, &[f32], Option<Value>)> =
                (i..end).map(|j| (key(j), &data[j][..], None)).collect();
            db.vectors
                .upsert_batch(run, "docs", items)
                .expect("upsert_batch");
        }
        let before = i / tenth;
        i = end;
        if i / tenth != before || i == n {
            rates.push(tenth as f64 / phase.elapsed().as_secs_f64());
            phase = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let how = if batch == 1 {
        "single upserts".to_string()
    } else {
        format!("upsert_batch of {batch}")
    };
    println!(
        "{how}: {n} in {secs:.1} s wall = {:.0}/s ({cpu:.1} CPU-s, {:.0} per CPU-s); per tenth: {}",
        n as f64 / secs,
        n as f64 / cpu.max(1e-9),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn quality(db: &Strata, run: &RunId, data: &[Vec<f32>], queries: &[Vec<f32>]) {
    let mut exact = strata_vector::ExactIndex::new(DIM, DistanceMetric::Cosine).expect("index");
    for (i, v) in data.iter().enumerate() {
        exact.insert(i as u32, v).expect("insert");
    }
    let t = Instant::now();
    let truth: Vec<HashSet<String>> = queries
        .iter()
        .map(|q| {
            exact
                .search(q, 10, None)
                .expect("search")
                .into_iter()
                .map(|(id, _)| key(id as usize))
                .collect()
        })
        .collect();
    let exact_qps = queries.len() as f64 / t.elapsed().as_secs_f64();
    println!("exact scan: {exact_qps:.0} QPS");
    for ef in [None, Some(32), Some(64), Some(128), Some(256)] {
        if let Some(ef) = ef {
            db.vectors
                .set_ef_search(run, "docs", ef)
                .expect("set_ef_search");
        }
        let t = Instant::now();
        let mut hit = 0;
        for _pass in 0..3 {
            hit = 0;
            for (q, tr) in queries.iter().zip(&truth) {
                let got = db.vectors.search(run, "docs", q, 10, None).expect("search");
                hit += got.iter().filter(|m| tr.contains(&m.key)).count();
            }
        }
        let qps = 3.0 * queries.len() as f64 / t.elapsed().as_secs_f64();
        let label = ef.map_or("default".to_string(), |e| e.to_string());
        println!(
            "ef {label}: recall@10 {:.4}, {qps:.0} QPS = {:.1}x exact",
            hit as f64 / (10 * queries.len()) as f64,
            qps / exact_qps
        );
    }
    let (mut misses, mut ties, mut checks) = (0, 0, 0);
    for (i, v) in data.iter().enumerate().step_by(25) {
        checks += 1;
        let got = db.vectors.search(run, "docs", v, 1, None).expect("search");
        if got[0].key != key(i) {
            let best = exact.search(v, 1, None).expect("search")[0].1;
            if got[0].score < best {
                misses += 1;
            } else {
                ties += 1;
            }
        }
    }
    println!(
        "self-retrieval k = 1: {misses} misses in {checks} checks ({ties} equal-score other keys)"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("both", String::as_str);
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let source = args.get(2).map_or("synthetic", String::as_str);
    // The memory mode generates its vectors as it goes; it needs only the queries.
    let mut data = load(source, if mode == "memory" { 0 } else { n });
    let queries = data.split_off(data.len().saturating_sub(NQ));
    println!(
        "# {} x {DIM} from {source}, {} queries, {} (wall clock; machine shared with other builds)",
        data.len(),
        queries.len(),
        if std::env::var("STRATA_DISK").as_deref() == Ok("1") {
            "on disk, default durability"
        } else {
            "ephemeral"
        }
    );
    if mode == "single" || mode == "both" {
        let (db, _dir) = open();
        let run = db.runs.default_run();
        ingest(&db, &run, &data, 1);
        quality(&db, &run, &data, &queries);
    }
    if mode == "batch" || mode == "both" {
        let (db, _dir) = open();
        let run = db.runs.default_run();
        ingest(&db, &run, &data, 1000);
        quality(&db, &run, &data, &queries);
    }
    if mode == "memory" {
        // Anonymous memory held for the collection: vectors generated and upserted
        // 10,000 at a time (so the input never sits in memory whole), a checkpoint
        // (records move from the memtable to a mapped run on disk), then `RssAnon`.
        drop(data);
        let (db, dir) = open();
        let run = db.runs.default_run();
        db.vectors
            .create_collection_with(&run, "docs", DIM, DistanceMetric::Cosine, options())
            .expect("create");
        let started = Instant::now();
        let mut done = 0;
        while done < n {
            let m = (n - done).min(10_000);
            let chunk = strata_vector::synthetic::clustered(m, DIM, 1_000 + done as u64);
            for (b, part) in chunk.chunks(1_000).enumerate() {
                let items: Vec<(String, &[f32], Option<Value>)> = part
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (key(done + b * 1_000 + j), v.as_slice(), None))
                    .collect();
                db.vectors
                    .upsert_batch(&run, "docs", items)
                    .expect("upsert");
            }
            done += m;
        }
        let secs = started.elapsed().as_secs_f64();
        // Search speed with the vectors in memory, then read in place from the index
        // file the checkpoint writes (`strata_vector`'s arena), on the same queries.
        let before = search_qps_of(&db, &run, &queries);
        db.checkpoint().expect("checkpoint");
        let after = search_qps_of(&db, &run, &queries);
        let raw = (n * DIM * 4) as f64;
        let (held, mapped) =
            strata_vector::internal::index_memory(&db.vectors, &run, "docs").expect("index");
        println!(
            "index: {:.0} MiB held in memory (graph, codes, keys, metadata), {:.0} MiB of \
             vectors read from the mapped index file",
            held as f64 / 1048576.0,
            mapped as f64 / 1048576.0
        );
        let anon = rss_bytes("RssAnon:");
        println!(
            "memory: {n} vectors in {secs:.1} s; RssAnon {:.0} MiB for {:.0} MiB of raw \
             vectors = {:.2}x raw, {:.2}x after a 64 MiB allowance; RssFile {:.0} MiB; \
             search {before:.0} QPS before the checkpoint, {after:.0} after",
            anon / 1048576.0,
            raw / 1048576.0,
            anon / raw,
            (anon - 64.0 * 1048576.0) / raw,
            rss_bytes("RssFile:") / 1048576.0,
        );
        if let Some(dir) = dir {
            // Reopen: open, then the first search (which loads the index file).
            let t = Instant::now();
            db.close().expect("close");
            let closed = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let db = Strata::open(dir.path()).expect("reopen");
            let opened = t.elapsed().as_secs_f64();
            let hits = db
                .vectors
                .search(&run, "docs", &queries[0], 10, None)
                .expect("search");
            assert_eq!(hits.len(), 10);
            let first = t.elapsed().as_secs_f64();
            let after = search_qps_of(&db, &run, &queries);
            println!(
                "reopen: close {:.0} ms, open {:.1} ms, first search (loads the index file) \
                 {:.0} ms; then {after:.0} QPS; RssAnon {:.0} MiB, RssFile {:.0} MiB",
                closed * 1e3,
                opened * 1e3,
                first * 1e3,
                rss_bytes("RssAnon:") / 1048576.0,
                rss_bytes("RssFile:") / 1048576.0,
            );
            // Searches while another thread upserts new vectors one call at a time.
            let fresh = strata_vector::synthetic::clustered(20_000, DIM, 7_777);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let (upserts, upsert_secs, qps) = std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    let t = Instant::now();
                    let mut done = 0;
                    for (i, v) in fresh.iter().enumerate() {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        db.vectors
                            .upsert(&run, "docs", &format!("new{i}"), v, None)
                            .expect("upsert");
                        done += 1;
                    }
                    (done, t.elapsed().as_secs_f64())
                });
                // Searches for as long as the writer writes (at most 10 s): both rates
                // over the same window.
                let t = Instant::now();
                let mut searched = 0usize;
                while !writer.is_finished() && t.elapsed().as_secs_f64() < 10.0 {
                    let q = &queries[searched % queries.len()];
                    let hits = db
                        .vectors
                        .search(&run, "docs", q, 10, None)
                        .expect("search");
                    assert_eq!(hits.len(), 10);
                    searched += 1;
                }
                let qps = searched as f64 / t.elapsed().as_secs_f64();
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let (done, secs) = writer.join().expect("writer");
                (done, secs, qps)
            });
            println!(
                "while upserting: {qps:.0} QPS; the other thread's single upserts: {:.0}/s \
                 ({upserts} in {upsert_secs:.1} s)",
                upserts as f64 / upsert_secs
            );
        }
    }
}

/// Queries per second of `k = 10` searches at the default `ef`, three passes.
fn search_qps_of(db: &Strata, run: &RunId, queries: &[Vec<f32>]) -> f64 {
    let t = Instant::now();
    for _pass in 0..3 {
        for q in queries {
            let hits = db.vectors.search(run, "docs", q, 10, None).expect("search");
            assert_eq!(hits.len(), 10);
        }
    }
    3.0 * queries.len() as f64 / t.elapsed().as_secs_f64()
}

/// A field of this process's `/proc/self/status` (`RssAnon:`, `RssFile:`) in bytes (0
/// where unavailable).
fn rss_bytes(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}
