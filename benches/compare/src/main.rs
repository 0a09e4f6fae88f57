//! StrataDB side by side with redb, fjall and SQLite on the same key-value workloads, plus
//! recall against throughput of StrataDB's vector index.
//!
//! ```text
//! cd benches/compare && COMPARE_SCALE=1 cargo run --release
//! ```
//!
//! The parent process runs every engine's workloads in child processes of this same binary
//! (`compare --child ENGINE WORKLOAD DIR SCALE`), so that engines share neither memory
//! accounting (peak RSS is `VmHWM` of the loading child) nor caches in the process; then
//! it writes the "## Peer comparison" section of `docs/benchmarks.md` and the chart
//! `docs/peer-comparison.svg`.
//!
//! The workloads: `load` (bulk load, then close), `read` (reopen, point reads, prefix
//! listings), `commits` (single-key commits without and with fsync, each in a fresh
//! database) and `rewrite` (rewrite under retention: a fresh database of 1 KiB values in
//! which every key is rewritten [`REWRITE_ROUNDS`] times, StrataDB under `KeepLast(1)`;
//! the disk use while writing, after close and after each engine's explicit compaction,
//! as multiples of the live data).
//!
//! Environment: `COMPARE_SCALE` (default 1: N = 1,000,000 entries), `COMPARE_DIR` (where the
//! databases go; default the system temp dir unless it is a tmpfs, then this crate's
//! `target/`), `COMPARE_ENGINES` (comma-separated subset), `COMPARE_VECTORS=0` (skip the
//! vector section), `COMPARE_NO_DOCS=1` (print only), `COMPARE_RUNS` (passes over the
//! key-value workloads, default 1; the report keeps each engine's best figure),
//! `COMPARE_REPORT_SECTION=NAME` (write the key-value figures as a block of their own,
//! named NAME, inside the section instead of rewriting the section: how the 10M-key
//! figures live beside the 1M ones; see [`report::write_section`]). The figures are also
//! saved to `target/compare-results.tsv` (`target/compare-results-NAME.tsv` for a block);
//! `compare --report FILE` writes the docs from such a file.
//!
//! Scale: every count scales with `COMPARE_SCALE`, except that above 1 the counts whose
//! cost does not depend on the size of the loaded database are kept at their scale-1
//! value ([`Sizes::fixed_above_one`]): the commit workloads run on fresh databases, the
//! rewrite workload builds its own database (at scale 10 it would write 20 GiB per
//! engine), and the point reads sample the loaded database uniformly whatever their
//! count (scaled, they would take the slower engines minutes at 10M).
mod engines;
mod report;
mod vectors;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use engines::{open, Dur, Kv, Pair, ENGINES};

/// Entries in a load batch (one transaction).
pub const BATCH: usize = 1_000;
/// Keys per prefix group, and the listing limit.
pub const GROUP: u64 = 100;
pub const KEY_LEN: usize = 24;
pub const VALUE_LEN: usize = 100;
/// Value size of the rewrite workload.
pub const REWRITE_VALUE_LEN: usize = 1024;
/// How many times the rewrite workload writes every key.
pub const REWRITE_ROUNDS: u64 = 20;

/// Counts of every workload at a scale.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub load: u64,
    pub commits: u64,
    pub fsync: u64,
    pub reads: u64,
    pub listings: u64,
    /// Keys of the rewrite workload (each written [`REWRITE_ROUNDS`] times).
    pub rewrite: u64,
}

impl Sizes {
    pub fn at(scale: f64) -> Sizes {
        let s = |full: f64, min: u64| ((full * scale).round() as u64).max(min);
        // Counts that do not grow above scale 1 (see `fixed_above_one`).
        let f = |full: f64, min: u64| ((full * scale.min(1.0)).round() as u64).max(min);
        Sizes {
            load: s(1_000_000.0, 2_000),
            commits: f(100_000.0, 1_000),
            fsync: f(2_000.0, 100) / 4 * 4,
            reads: f(1_000_000.0, 2_000) / 2 * 2,
            listings: s(10_000.0, 200),
            rewrite: f(100_000.0, 1_000),
        }
    }
    /// The workloads whose counts stay at their scale-1 value above scale 1: the commits
    /// run on fresh databases (the size of the loaded one does not matter to them; fsync'd
    /// ones would take minutes more at 10M), the rewrite workload builds its own database
    /// (20 GiB of writes per engine at 10M), and the point reads still sample the whole
    /// loaded database uniformly (scaled to 10M, the two passes of reads would take fjall
    /// over 5 minutes, extrapolated from its 65 s at scale 2).
    pub fn fixed_above_one(scale: f64) -> Vec<&'static str> {
        if scale > 1.0 {
            vec![
                "the single-key commits (with and without fsync)",
                "the rewrite under retention",
                "the point reads (which still sample every loaded key uniformly)",
            ]
        } else {
            Vec::new()
        }
    }
    pub fn groups(&self) -> u64 {
        (self.load / GROUP).max(1)
    }
}

/// The 24-byte ASCII key of entry `i`: `p` + 5-digit group + `:` + 17-digit id. Entries of
/// one group share the 7-byte prefix `pGGGGG:`.
pub fn key(i: u64, groups: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[0] = b'p';
    write_digits(&mut k[1..6], i % groups);
    k[6] = b':';
    write_digits(&mut k[7..], i);
    k
}

pub fn prefix(group: u64) -> [u8; 7] {
    let mut p = [0u8; 7];
    p[0] = b'p';
    write_digits(&mut p[1..6], group);
    p[6] = b':';
    p
}

fn write_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 100-byte value of entry `i` (pseudo-random, so incompressible).
pub fn value(i: u64) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    fill(i, &mut v);
    v
}

/// Fills `out` with pseudo-random (incompressible) bytes derived from `seed`.
fn fill(seed: u64, out: &mut [u8]) {
    let mut s = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    for chunk in out.chunks_mut(8) {
        s = splitmix(s);
        let b = s.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn scale() -> f64 {
    std::env::var("COMPARE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// Peak resident memory of this process in KiB (`VmHWM`).
fn vm_hwm_kib() -> u64 {
    vm_status_kib("VmHWM:")
}

/// A memory figure of `/proc/self/status` in KiB.
fn vm_status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                total += disk_bytes(&e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

fn emit(name: &str, value: f64) {
    println!("M {name} {value}");
}

fn rate(n: u64, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- child workloads

fn child(engine: &str, workload: &str, dir: &Path, scale: f64) {
    let sz = Sizes::at(scale);
    let groups = sz.groups();
    match workload {
        "load" => {
            let mut order: Vec<u64> = (0..sz.load).collect();
            fastrand::Rng::with_seed(42).shuffle(&mut order);
            let db = open(engine, dir, Dur::NoSync);
            let t = Instant::now();
            let mut batch = Vec::with_capacity(BATCH);
            for chunk in order.chunks(BATCH) {
                batch.clear();
                batch.extend(chunk.iter().map(|&i| (key(i, groups), value(i))));
                let pairs: Vec<Pair> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                db.load(&pairs);
            }
            db.flush();
            emit("load", rate(sz.load, t));
            drop(order);
            drop(batch);
            emit("rss_loaded_kib", vm_status_kib("VmRSS:") as f64);
            let t = Instant::now();
            db.close();
            emit("close_ms", t.elapsed().as_secs_f64() * 1e3);
            emit("rss_kib", vm_hwm_kib() as f64);
        }
        "read" => {
            let probe = key(0, groups);
            let t = Instant::now();
            let db = open(engine, dir, Dur::NoSync);
            {
                let mut r = db.reader();
                assert!(r.get(&probe) == VALUE_LEN, "{engine}: key 0 missing");
            }
            emit("reopen_ms", t.elapsed().as_secs_f64() * 1e3);
            // 1 thread.
            let mut rng = fastrand::Rng::with_seed(7);
            let keys: Vec<u64> = (0..sz.reads).map(|_| rng.u64(0..sz.load)).collect();
            let found = {
                let mut r = db.reader();
                let t = Instant::now();
                let mut found = 0u64;
                for &i in &keys {
                    found += (r.get(&key(i, groups)) == VALUE_LEN) as u64;
                }
                emit("read1", rate(sz.reads, t));
                found
            };
            assert_eq!(found, sz.reads, "{engine}: reads missed");
            // 2 threads, half the reads each.
            let db_ref: &dyn Kv = db.as_ref();
            let t = Instant::now();
            std::thread::scope(|s| {
                for half in keys.chunks(keys.len() / 2) {
                    s.spawn(move || {
                        let mut r = db_ref.reader();
                        let mut found = 0u64;
                        for &i in half {
                            found += (r.get(&key(i, groups)) == VALUE_LEN) as u64;
                        }
                        assert_eq!(found, half.len() as u64);
                    });
                }
            });
            emit("read2", rate(sz.reads, t));
            // Prefix listings.
            let mut r = db.reader();
            let t = Instant::now();
            let mut listed = 0;
            for _ in 0..sz.listings {
                listed += r.prefix(&prefix(rng.u64(0..groups)), GROUP as usize);
            }
            emit("prefix", rate(sz.listings, t));
            emit("listed_avg", listed as f64 / sz.listings as f64);
            // Memory after reopen and reads: anonymous (the process's own: caches,
            // memtable, indexes) and file-backed (mapped files: the OS page cache).
            emit("read_rss_anon_kib", vm_status_kib("RssAnon:") as f64);
            emit("read_rss_file_kib", vm_status_kib("RssFile:") as f64);
            emit("read_hwm_kib", vm_hwm_kib() as f64);
            drop(r);
            db.close();
        }
        "commits" => {
            let mut rng = fastrand::Rng::with_seed(11);
            let d = dir.join("nofsync");
            let db = open(engine, &d, Dur::NoSync);
            let t = Instant::now();
            for _ in 0..sz.commits {
                let i = rng.u64(..);
                db.put(&key(i, groups), &value(i));
            }
            db.flush();
            emit("commit", rate(sz.commits, t));
            db.close();
            let _ = std::fs::remove_dir_all(&d);

            let d = dir.join("fsync1");
            let db = open(engine, &d, Dur::Sync);
            let t = Instant::now();
            for _ in 0..sz.fsync {
                let i = rng.u64(..);
                db.put(&key(i, groups), &value(i));
            }
            emit("fsync1", rate(sz.fsync, t));
            db.close();
            let _ = std::fs::remove_dir_all(&d);

            let d = dir.join("fsync4");
            let db = open(engine, &d, Dur::Sync);
            let db_ref: &dyn Kv = db.as_ref();
            let t = Instant::now();
            std::thread::scope(|s| {
                for th in 0..4u64 {
                    s.spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(100 + th);
                        for _ in 0..sz.fsync / 4 {
                            let i = rng.u64(..);
                            db_ref.put(&key(i, groups), &value(i));
                        }
                    });
                }
            });
            emit("fsync4", rate(sz.fsync, t));
            db.close();
            let _ = std::fs::remove_dir_all(&d);
        }
        "rewrite" => rewrite(engine, dir, sz.rewrite),
        other => panic!("unknown workload {other}"),
    }
}

/// Rewrite under retention: `n` keys of [`REWRITE_VALUE_LEN`] bytes, each written
/// [`REWRITE_ROUNDS`] times (every round in a new random order, new values each time),
/// [`BATCH`] keys per transaction without fsync, one flush at the end (in the time).
/// StrataDB keeps only the newest version (`KeepLast(1)`, set before the first write).
/// Then the disk use: its peak while writing (sampled every 10 transactions, the
/// sampling time not counted), after close, and after reopening and running the engine's
/// explicit compaction, each as a multiple of the live values (`n` × 1 KiB).
fn rewrite(engine: &str, dir: &Path, n: u64) {
    const L: usize = REWRITE_VALUE_LEN;
    let groups = (n / GROUP).max(1);
    let live = (n * L as u64) as f64;
    let keys: Vec<[u8; KEY_LEN]> = (0..n).map(|i| key(i, groups)).collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut values = vec![0u8; BATCH * L];
    let db = open(engine, dir, Dur::NoSync);
    db.keep_latest_only();
    let mut peak = 0u64;
    let mut sampling = Duration::ZERO;
    let t = Instant::now();
    for round in 0..REWRITE_ROUNDS {
        rng.shuffle(&mut order);
        for (b, chunk) in order.chunks(BATCH).enumerate() {
            for (j, &i) in chunk.iter().enumerate() {
                fill(((i as u64) << 8) | round, &mut values[j * L..(j + 1) * L]);
            }
            let pairs: Vec<Pair> = chunk
                .iter()
                .zip(values.chunks(L))
                .map(|(&i, v)| (&keys[i][..], v))
                .collect();
            db.load(&pairs);
            if b % 10 == 9 {
                let s = Instant::now();
                peak = peak.max(disk_bytes(dir));
                sampling += s.elapsed();
            }
        }
    }
    db.flush();
    let elapsed = t.elapsed() - sampling;
    emit(
        "rewrite",
        (n * REWRITE_ROUNDS) as f64 / elapsed.as_secs_f64(),
    );
    emit("rewrite_peak_x", peak.max(disk_bytes(dir)) as f64 / live);
    let t = Instant::now();
    db.close();
    emit("rewrite_close_ms", t.elapsed().as_secs_f64() * 1e3);
    emit("rewrite_closed_x", disk_bytes(dir) as f64 / live);

    let mut db = open(engine, dir, Dur::NoSync);
    let t = Instant::now();
    db.compact();
    emit("rewrite_compact_ms", t.elapsed().as_secs_f64() * 1e3);
    {
        let mut r = db.reader();
        for i in [0, keys.len() / 2, keys.len() - 1] {
            assert_eq!(r.get(&keys[i]), L, "{engine}: rewritten key {i} missing");
        }
    }
    db.close();
    emit("rewrite_compacted_x", disk_bytes(dir) as f64 / live);
}

// ---------------------------------------------------------------- parent

fn run_child(engine: &str, workload: &str, dir: &Path, scale: f64) -> BTreeMap<String, f64> {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(["--child", engine, workload])
        .arg(dir)
        .arg(scale.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("spawn child");
    assert!(
        out.status.success(),
        "{engine} {workload} failed: {}",
        out.status
    );
    eprintln!(
        "[{engine}] {workload} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some("M") {
            if let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) {
                m.insert(k.to_string(), v);
            }
        }
    }
    m
}

fn is_tmpfs(path: &Path) -> bool {
    // The longest mount point containing `path` decides.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && path.starts_with(f[1])).then(|| (f[1].len(), f[2] == "tmpfs"))
        })
        .max()
        .is_some_and(|(_, t)| t)
}

fn data_root() -> PathBuf {
    if let Ok(d) = std::env::var("COMPARE_DIR") {
        return PathBuf::from(d);
    }
    let tmp = std::env::temp_dir();
    if is_tmpfs(&tmp) {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
    } else {
        tmp
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let scale: f64 = args[5].parse().expect("scale");
        child(&args[2], &args[3], Path::new(&args[4]), scale);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--report") {
        let text = std::fs::read_to_string(&args[2]).expect("results file");
        publish(&Saved::from_tsv(&text));
        return;
    }
    let scale = scale();
    let sz = Sizes::at(scale);
    let engines: Vec<&str> = match std::env::var("COMPARE_ENGINES") {
        Ok(list) => ENGINES
            .iter()
            .copied()
            .filter(|e| list.split(',').any(|x| x.trim() == *e))
            .collect(),
        Err(_) => ENGINES.to_vec(),
    };
    let root = data_root();
    std::fs::create_dir_all(&root).expect("data dir");
    let tmp = tempfile::Builder::new()
        .prefix("strata-compare-")
        .tempdir_in(&root)
        .expect("tempdir");
    eprintln!(
        "scale {scale}: {sz:?}; databases under {} (tmpfs: {})",
        tmp.path().display(),
        is_tmpfs(tmp.path())
    );
    let runs: usize = std::env::var("COMPARE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut results: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for pass in 0..runs {
        // Rotate the order of the engines from pass to pass, so that a noisy period of
        // the (shared) machine does not always hit the same engine.
        for j in 0..engines.len() {
            let e = engines[(j + pass) % engines.len()];
            let dir = tmp.path().join(e);
            let mut m = BTreeMap::new();
            eprintln!(
                "[{e}] pass {}/{runs}: load of {} entries ...",
                pass + 1,
                sz.load
            );
            m.extend(run_child(e, "load", &dir, scale));
            m.insert("disk_mib".into(), disk_bytes(&dir) as f64 / 1048576.0);
            eprintln!("[{e}] reads ...");
            m.extend(run_child(e, "read", &dir, scale));
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("[{e}] commits ...");
            let cdir = tmp.path().join(format!("{e}-commits"));
            m.extend(run_child(e, "commits", &cdir, scale));
            let _ = std::fs::remove_dir_all(&cdir);
            eprintln!(
                "[{e}] rewrite of {} keys × {REWRITE_ROUNDS} ...",
                sz.rewrite
            );
            let rdir = tmp.path().join(format!("{e}-rewrite"));
            m.extend(run_child(e, "rewrite", &rdir, scale));
            let _ = std::fs::remove_dir_all(&rdir);
            eprintln!("[{e}] {m:?}");
            let best = results.entry(e.to_string()).or_default();
            for (k, v) in m {
                let lower_better = k.ends_with("_ms")
                    || k.ends_with("_mib")
                    || k.ends_with("_kib")
                    || k.ends_with("_x");
                best.entry(k)
                    .and_modify(|b| *b = if lower_better { b.min(v) } else { b.max(v) })
                    .or_insert(v);
            }
        }
    }
    let section = std::env::var("COMPARE_REPORT_SECTION")
        .ok()
        .filter(|s| !s.trim().is_empty());
    // A block holds key-value figures only: no vector section for it.
    let vec_results = if section.is_some() || std::env::var("COMPARE_VECTORS").as_deref() == Ok("0")
    {
        None
    } else {
        Some(vectors::run(scale))
    };
    let saved = Saved {
        scale,
        runs,
        section: section.clone(),
        engines: engines.iter().map(|e| e.to_string()).collect(),
        results,
        vec: vec_results,
        machine: format!(
            "{} · stratadb at commit {}",
            report::machine(),
            source_commit()
        ),
        date: report::date(),
    };
    let name = match &section {
        Some(s) => format!("target/compare-results-{s}.tsv"),
        None => "target/compare-results.tsv".into(),
    };
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    // `target/` may not exist (a build with CARGO_TARGET_DIR elsewhere).
    let _ = std::fs::create_dir_all(file.parent().expect("results dir"));
    std::fs::write(&file, saved.to_tsv()).expect("save results");
    eprintln!("results saved to {}", file.display());
    publish(&saved);
}

/// The repository's commit, and whether `crates/` had uncommitted changes when the
/// benchmark ran (the binary is built from the working tree).
fn source_commit() -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    if git(&["status", "--porcelain", "--", "crates"]).is_empty() {
        head
    } else {
        format!("{head} with uncommitted changes in crates/")
    }
}

/// Everything a report needs, saved to `target/compare-results.tsv` so that
/// `compare --report FILE` can write the docs again without rerunning.
struct Saved {
    scale: f64,
    runs: usize,
    /// The block of the section these figures go to (`COMPARE_REPORT_SECTION`), or
    /// `None` for the section itself.
    section: Option<String>,
    engines: Vec<String>,
    results: BTreeMap<String, BTreeMap<String, f64>>,
    vec: Option<vectors::VecResults>,
    machine: String,
    date: String,
}

impl Saved {
    fn to_tsv(&self) -> String {
        let mut s = format!(
            "scale\t{}\nruns\t{}\nengines\t{}\nmachine\t{}\ndate\t{}\n",
            self.scale,
            self.runs,
            self.engines.join(","),
            self.machine,
            self.date
        );
        if let Some(section) = &self.section {
            s += &format!("section\t{section}\n");
        }
        for (e, m) in &self.results {
            for (k, v) in m {
                s += &format!("kv\t{e}\t{k}\t{v}\n");
            }
        }
        if let Some(v) = &self.vec {
            s += &format!(
                "vec\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                v.n, v.queries, v.insert_per_s, v.build_s, v.memory_mib, v.exact_qps, v.params
            );
            for (ef, r, q) in &v.hnsw {
                s += &format!("hnsw\t{ef}\t{r}\t{q}\n");
            }
        }
        s
    }

    fn from_tsv(text: &str) -> Saved {
        let mut saved = Saved {
            scale: 1.0,
            runs: 1,
            section: None,
            engines: Vec::new(),
            results: BTreeMap::new(),
            vec: None,
            machine: String::new(),
            date: String::new(),
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let num = |i: usize| f[i].parse::<f64>().expect("number");
            match f[0] {
                "scale" => saved.scale = num(1),
                "runs" => saved.runs = num(1) as usize,
                "engines" => saved.engines = f[1].split(',').map(String::from).collect(),
                "machine" => saved.machine = f[1].to_string(),
                "date" => saved.date = f[1].to_string(),
                "section" => saved.section = Some(f[1].to_string()),
                "kv" => {
                    saved
                        .results
                        .entry(f[1].to_string())
                        .or_default()
                        .insert(f[2].to_string(), num(3));
                }
                "vec" => {
                    saved.vec = Some(vectors::VecResults {
                        n: num(1) as usize,
                        queries: num(2) as usize,
                        insert_per_s: num(3),
                        build_s: num(4),
                        memory_mib: num(5),
                        exact_qps: num(6),
                        params: f.get(7).unwrap_or(&"?").to_string(),
                        hnsw: Vec::new(),
                    })
                }
                "hnsw" => {
                    if let Some(v) = &mut saved.vec {
                        v.hnsw.push((num(1) as usize, num(2), num(3)));
                    }
                }
                _ => {}
            }
        }
        saved
    }
}

fn publish(saved: &Saved) {
    let engines: Vec<&str> = saved.engines.iter().map(String::as_str).collect();
    let md = match &saved.section {
        None => report::markdown(
            saved.scale,
            saved.runs,
            &engines,
            &saved.results,
            saved.vec.as_ref(),
            &saved.machine,
            &saved.date,
        ),
        Some(name) => report::block(
            name,
            saved.scale,
            saved.runs,
            &engines,
            &saved.results,
            &saved.machine,
            &saved.date,
        ),
    };
    println!("{md}");
    if std::env::var("COMPARE_NO_DOCS").as_deref() != Ok("1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        report::write_section(&docs.join("benchmarks.md"), &md, saved.section.as_deref());
        if saved.section.is_none() {
            // The chart belongs to the section's own table.
            report::chart(
                &docs.join("peer-comparison.svg"),
                saved.scale,
                &engines,
                &saved.results,
            );
        }
        eprintln!("wrote {}", docs.display());
    }
}
