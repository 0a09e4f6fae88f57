//! Storage benchmarks: `cargo bench -p strata-storage --bench storage`.
//!
//! Criterion measures each figure; a summary at the end prints the derived figures the
//! targets are stated in (ratios, keys/s, MB/s, bytes per key), from its own plain timed
//! runs. Databases live in a temporary directory under `STRATA_BENCH_DIR` (default: the
//! system temp dir), which should be on the same file system as the data you care about.
//!
//! Set `STRATA_BENCH_KEYS` to change the size of the reopen data set (default 1,000,000
//! keys of 24 bytes with 100-byte values).
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::{OsVfs, Vfs, VfsFile};
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

const KEY_LEN: usize = 24;
const VALUE_LEN: usize = 100;

fn bench_root() -> PathBuf {
    std::env::var_os("STRATA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in(bench_root())
        .unwrap()
}

fn n_keys() -> u64 {
    std::env::var("STRATA_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// `key-<i, 20 digits>`: 24 bytes, built without `format!` so that the benchmark
/// measures the storage rather than string formatting.
fn key(i: u64) -> Box<[u8]> {
    let mut k = *b"key-00000000000000000000";
    let mut n = i;
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    debug_assert_eq!(k.len(), KEY_LEN);
    Box::new(k)
}

fn one_write(i: u64, value: &Arc<[u8]>) -> Vec<Write> {
    vec![Write {
        key: key(i),
        value: Some(value.clone()),
    }]
}

fn value() -> Arc<[u8]> {
    Arc::from(vec![0xABu8; VALUE_LEN].as_slice())
}

fn options(durability: DurabilityMode) -> StorageOptions {
    StorageOptions {
        durability,
        snapshot_on_close: false,
        ..StorageOptions::default()
    }
}

fn mode_name(m: DurabilityMode) -> &'static str {
    match m {
        DurabilityMode::Strict => "strict",
        DurabilityMode::Buffered { .. } => "buffered",
        DurabilityMode::NoDurability => "no_durability",
    }
}

/// Raw `write(100 B)` + `fdatasync` on an appended file: the ceiling for Strict.
fn raw_fsync(dir: &Path, n: u64) -> Duration {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync-probe"))
        .unwrap();
    let buf = [7u8; 100];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    start.elapsed()
}

/// Raw `pwrite(100 B)` + `fdatasync` overwriting a file whose blocks were written and
/// synced beforehand (the way log segments are preallocated): no size change, so no
/// metadata journal commit per sync. The ceiling for Strict on preallocated segments.
fn raw_overwrite_fsync(dir: &Path, n: u64) -> Duration {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("overwrite-probe");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let len = n * 100;
    f.write_all_at(&vec![0u8; len as usize], 0).unwrap();
    f.sync_all().unwrap();
    let buf = [7u8; 100];
    let start = Instant::now();
    for i in 0..n {
        f.write_all_at(&buf, i * 100).unwrap();
        f.sync_data().unwrap();
    }
    let d = start.elapsed();
    drop(f);
    let _ = fs::remove_file(path);
    d
}

/// The real file system, counting the syncs of the files it opens: commits per fsync
/// on the real disk. Forwards the preallocated (mapped) segment path unchanged.
#[derive(Clone, Default)]
struct CountingVfs {
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingVfs {
    fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn wrap(&self, file: Arc<dyn VfsFile>) -> Arc<dyn VfsFile> {
        Arc::new(CountingFile {
            file,
            syncs: self.syncs.clone(),
        })
    }
}

struct CountingFile {
    file: Arc<dyn VfsFile>,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl VfsFile for CountingFile {
    fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        self.file.append(buf)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.file.sync()
    }
    fn rollback(&self, len: u64) -> std::io::Result<()> {
        self.file.rollback(len)
    }
}

impl Vfs for CountingVfs {
    fn create_dir_all(&self, p: &Path) -> std::io::Result<()> {
        OsVfs.create_dir_all(p)
    }
    fn open_append(&self, p: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(OsVfs.open_append(p)?))
    }
    fn create_empty(&self, p: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(OsVfs.create_empty(p)?))
    }
    fn create_preallocated(&self, p: &Path, capacity: u64) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(OsVfs.create_preallocated(p, capacity)?))
    }
    fn open_preallocated(
        &self,
        p: &Path,
        pos: u64,
        capacity: u64,
    ) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(OsVfs.open_preallocated(p, pos, capacity)?))
    }
    fn exists(&self, p: &Path) -> bool {
        OsVfs.exists(p)
    }
    fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
        OsVfs.read(p)
    }
    fn map_readonly(&self, p: &Path) -> std::io::Result<strata_storage::vfs::FileBytes> {
        OsVfs.map_readonly(p)
    }
    fn list(&self, p: &Path) -> std::io::Result<Vec<String>> {
        OsVfs.list(p)
    }
    fn rename(&self, a: &Path, b: &Path) -> std::io::Result<()> {
        OsVfs.rename(a, b)
    }
    fn remove(&self, p: &Path) -> std::io::Result<()> {
        OsVfs.remove(p)
    }
    fn truncate(&self, p: &Path, len: u64) -> std::io::Result<()> {
        OsVfs.truncate(p, len)
    }
    fn sync_dir(&self, p: &Path) -> std::io::Result<()> {
        OsVfs.sync_dir(p)
    }
}

/// An in-memory file system whose `sync` takes a fixed time: group commit measured
/// against a steady "disk", independent of this machine's shared, erratic one.
struct FixedLatency {
    fs: FaultyVfs,
    latency: Duration,
}

struct FixedLatencyFile {
    file: Arc<dyn VfsFile>,
    latency: Duration,
}

impl VfsFile for FixedLatencyFile {
    fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        self.file.append(buf)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.file.sync()?;
        std::thread::sleep(self.latency);
        Ok(())
    }
}

impl Vfs for FixedLatency {
    fn create_dir_all(&self, p: &Path) -> std::io::Result<()> {
        self.fs.create_dir_all(p)
    }
    fn open_append(&self, p: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(Arc::new(FixedLatencyFile {
            file: self.fs.open_append(p)?,
            latency: self.latency,
        }))
    }
    fn create_empty(&self, p: &Path) -> std::io::Result<Arc<dyn VfsFile>> {
        Ok(Arc::new(FixedLatencyFile {
            file: self.fs.create_empty(p)?,
            latency: self.latency,
        }))
    }
    fn exists(&self, p: &Path) -> bool {
        self.fs.exists(p)
    }
    fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
        self.fs.read(p)
    }
    fn list(&self, p: &Path) -> std::io::Result<Vec<String>> {
        self.fs.list(p)
    }
    fn rename(&self, a: &Path, b: &Path) -> std::io::Result<()> {
        self.fs.rename(a, b)
    }
    fn remove(&self, p: &Path) -> std::io::Result<()> {
        self.fs.remove(p)
    }
    fn truncate(&self, p: &Path, len: u64) -> std::io::Result<()> {
        self.fs.truncate(p, len)
    }
    fn sync_dir(&self, p: &Path) -> std::io::Result<()> {
        self.fs.sync_dir(p)
    }
}

/// Strict commits per second and commits per fsync with `threads` threads on a
/// simulated disk whose fsync takes `latency`.
fn simulated_strict(threads: u64, n: u64, latency: Duration) -> (f64, f64) {
    let fs = FaultyVfs::new();
    let s = Storage::open(
        "/db",
        StorageOptions {
            durability: DurabilityMode::Strict,
            vfs: Arc::new(FixedLatency {
                fs: fs.clone(),
                latency,
            }),
            lock_directory: false,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    commits(&s, 4 * threads, threads, 0); // warm up: the first fsync sizes the window
    let syncs = fs.sync_count();
    let d = commits(&s, n, threads, 1000);
    let per_sync = n as f64 / (fs.sync_count() - syncs) as f64;
    (n as f64 / d.as_secs_f64(), per_sync)
}

/// `n` single-key commits from `threads` threads.
fn commits(s: &Storage, n: u64, threads: u64, base: u64) -> Duration {
    let v = value();
    let start = Instant::now();
    if threads == 1 {
        for i in 0..n {
            s.commit(one_write(base + i, &v), |_| Ok(())).unwrap();
        }
    } else {
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (s, v) = (s.clone(), v.clone());
                scope.spawn(move || {
                    for i in (t..n).step_by(threads as usize) {
                        s.commit(one_write(base + i, &v), |_| Ok(())).unwrap();
                    }
                });
            }
        });
    }
    start.elapsed()
}

fn bench_fsync_and_strict(c: &mut Criterion) {
    let tmp = tempdir();
    let mut g = c.benchmark_group("durable");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("raw_fdatasync_100B", |b| {
        b.iter_custom(|iters| raw_fsync(tmp.path(), iters))
    });
    for threads in [1u64, 4] {
        let dir = tmp.path().join(format!("strict-{threads}"));
        let s = Storage::open(&dir, options(DurabilityMode::Strict)).unwrap();
        let mut base = 0;
        g.bench_with_input(
            BenchmarkId::new("strict_commit_threads", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    let d = commits(&s, iters, t, base);
                    base += iters;
                    d
                })
            },
        );
    }
    g.finish();
}

fn bench_fast_modes(c: &mut Criterion) {
    let tmp = tempdir();
    let mut g = c.benchmark_group("commit");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for mode in [DurabilityMode::default(), DurabilityMode::NoDurability] {
        let dir = tmp.path().join(mode_name(mode));
        let s = Storage::open(&dir, options(mode)).unwrap();
        let mut base = 0;
        g.bench_function(mode_name(mode), |b| {
            b.iter_custom(|iters| {
                let d = commits(&s, iters, 1, base);
                base += iters;
                d
            })
        });
    }
    g.finish();
}

/// A database of `n` keys written one key per commit, as log only; and a copy of it
/// after a checkpoint (snapshot only). Returns (log dir, snapshot dir).
struct Dataset {
    _tmp: tempfile::TempDir,
    log_dir: PathBuf,
    snap_dir: PathBuf,
    n: u64,
}

fn dir_bytes(dir: &Path, ext: &str) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| ext.is_empty() || p.extension().is_some_and(|x| x == ext))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn dataset(n: u64) -> Dataset {
    let tmp = tempdir();
    let log_dir = tmp.path().join("log");
    let snap_dir = tmp.path().join("snap");
    let opts = StorageOptions {
        snapshot_threshold: u64::MAX,
        ..options(DurabilityMode::NoDurability)
    };
    let s = Storage::open(&log_dir, opts.clone()).unwrap();
    commits(&s, n, 1, 0);
    s.flush().unwrap();
    drop(s);
    fs::create_dir(&snap_dir).unwrap();
    for e in fs::read_dir(&log_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            fs::copy(&p, snap_dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let s = Storage::open(&snap_dir, opts).unwrap();
    s.checkpoint().unwrap();
    drop(s);
    Dataset {
        _tmp: tmp,
        log_dir,
        snap_dir,
        n,
    }
}

fn open_time(dir: &Path) -> Duration {
    let start = Instant::now();
    let s = Storage::open(dir, options(DurabilityMode::NoDurability)).unwrap();
    let d = start.elapsed();
    drop(s);
    d
}

fn bench_reopen(c: &mut Criterion, ds: &Dataset) {
    let mut g = c.benchmark_group("reopen");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::BytesDecimal(dir_bytes(&ds.log_dir, "log")));
    g.bench_function("log_replay", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_time(&ds.log_dir)).sum())
    });
    g.throughput(Throughput::BytesDecimal(dir_bytes(&ds.snap_dir, "snap")));
    g.bench_function("snapshot_load", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| open_time(&ds.snap_dir)).sum())
    });
    g.finish();
}

fn resident_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Time this thread has spent on a CPU: unlike wall time, barely affected by other
/// processes competing for the cores (this machine is shared).
fn thread_cpu() -> Duration {
    let s = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = s
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Runs `f`, returning (wall time, this thread's CPU time).
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let (w, c) = (Instant::now(), thread_cpu());
    let out = f();
    (w.elapsed(), thread_cpu().saturating_sub(c), out)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The figures the targets are stated in, from plain timed runs.
fn summary(ds: &Dataset, full: bool) {
    let tmp = tempdir();
    let per_sec = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    println!("\n== strata-storage summary ==");

    // Raw fdatasync, strict with 1 thread and with 4 threads, interleaved in short
    // rounds so that all three see the same disk (this machine's disk is shared, and
    // its fsync rate swings with other tenants' I/O): the ratios are what matters.
    let (rounds, n) = if full { (12, 250) } else { (2, 20) };
    let s1 = Storage::open(tmp.path().join("s1"), options(DurabilityMode::Strict)).unwrap();
    let s4 = Storage::open(tmp.path().join("s4"), options(DurabilityMode::Strict)).unwrap();
    let (mut t_raw, mut t_over, mut t1, mut t4) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for r in 0..rounds {
        t_raw += raw_fsync(tmp.path(), n);
        t_over += raw_overwrite_fsync(tmp.path(), n);
        t1 += commits(&s1, n, 1, r * n);
        t4 += commits(&s4, 4 * n, 4, r * 4 * n);
    }
    let raw = per_sec(rounds * n, t_raw);
    let over = per_sec(rounds * n, t_over);
    let strict1 = per_sec(rounds * n, t1);
    let strict4 = per_sec(rounds * 4 * n, t4);
    println!("raw fdatasync (100 B appends):   {raw:>12.0} /s");
    println!(
        "raw fdatasync (100 B overwrites of synced blocks): {over:>8.0} /s; strict 1 thread = {:.0}% of it (target >= 90%)",
        100.0 * strict1 / over
    );
    println!(
        "strict, 1 thread:                {strict1:>12.0} commits/s  = {:.0}% of raw fdatasync (target >= 90%)",
        100.0 * strict1 / raw
    );
    println!(
        "strict, 4 threads:               {strict4:>12.0} commits/s  = {:.2}x 1 thread (target >= 3x)",
        strict4 / strict1
    );
    let latency = Duration::from_micros(200);
    let (sim1, _) = simulated_strict(1, if full { 2000 } else { 50 }, latency);
    let (sim4, per4) = simulated_strict(4, if full { 8000 } else { 200 }, latency);
    println!(
        "strict on a simulated disk with a steady 200 us fsync: 1 thread {sim1:.0}/s, 4 threads {sim4:.0}/s = {:.2}x, {per4:.2} commits per fsync",
        sim4 / sim1
    );

    // Strict commits per fsync on the real disk, 1 to 32 committing threads (one
    // storage each, run in interleaved rounds so each sees the same disk).
    let counts = [1u64, 2, 4, 8, 32];
    let vfs: Vec<CountingVfs> = counts.iter().map(|_| CountingVfs::default()).collect();
    let stores: Vec<Storage> = counts
        .iter()
        .zip(&vfs)
        .map(|(t, v)| {
            Storage::open(
                tmp.path().join(format!("count-{t}")),
                StorageOptions {
                    vfs: Arc::new(v.clone()),
                    ..options(DurabilityMode::Strict)
                },
            )
            .unwrap()
        })
        .collect();
    let per_thread = if full { 100 } else { 5 };
    let mut totals = vec![(Duration::ZERO, 0u64, 0u64); counts.len()];
    for r in 0..rounds {
        for (i, &t) in counts.iter().enumerate() {
            let n = per_thread * t;
            let before = vfs[i].syncs();
            totals[i].0 += commits(&stores[i], n, t, r * n);
            totals[i].1 += n;
            totals[i].2 += vfs[i].syncs() - before;
        }
    }
    let one = per_sec(totals[0].1, totals[0].0);
    for (i, &t) in counts.iter().enumerate() {
        let (d, n, syncs) = totals[i];
        println!(
            "strict, {t:>2} threads (real disk):   {:>12.0} commits/s = {:.2}x 1 thread, {:.2} commits per fsync",
            per_sec(n, d),
            per_sec(n, d) / one,
            n as f64 / syncs.max(1) as f64
        );
    }
    drop(stores);

    let m = if full { 1_000_000 } else { 10_000 };
    for mode in [DurabilityMode::default(), DurabilityMode::NoDurability] {
        let s = Storage::open(tmp.path().join(mode_name(mode)), options(mode)).unwrap();
        let (wall, cpu, _) = timed(|| commits(&s, m, 1, 0));
        println!(
            "{:<32} {:>12.0} commits/s wall, {:.0} per CPU-second of the committing thread (target >= 1,000,000)",
            format!("{}, 1 key/commit:", mode_name(mode)),
            per_sec(m, wall),
            per_sec(m, cpu)
        );
    }

    let live = ds.n * (KEY_LEN + VALUE_LEN) as u64;
    let log_bytes = dir_bytes(&ds.log_dir, "log");
    let snap_bytes = dir_bytes(&ds.snap_dir, "snap");
    for (what, dir, bytes) in [
        ("log replay", &ds.log_dir, log_bytes),
        ("snapshot load", &ds.snap_dir, snap_bytes),
    ] {
        let runs: Vec<(Duration, Duration)> = (0..5)
            .map(|_| {
                let (w, c, s) =
                    timed(|| Storage::open(dir, options(DurabilityMode::NoDurability)).unwrap());
                drop(s);
                (w, c)
            })
            .collect();
        let wall = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.1).collect());
        let file = if what == "log replay" {
            "log"
        } else {
            "snapshot"
        };
        for (how, d) in [("wall", wall), ("CPU", cpu)] {
            println!(
                "{:<32} {:>6.3} s {how:<4} for {} keys = {:>9.0} keys/s, {:>4.0} MB/s of {file}, {:>4.0} MB/s of live data (targets: >= 300 MB/s, <= 0.5 s)",
                format!("reopen, {what}:"),
                d.as_secs_f64(),
                ds.n,
                per_sec(ds.n, d),
                bytes as f64 / 1e6 / d.as_secs_f64(),
                live as f64 / 1e6 / d.as_secs_f64()
            );
        }
    }
    let on_disk = dir_bytes(&ds.snap_dir, "");
    println!(
        "on disk after checkpoint:        {:.1} MB for {:.1} MB live data = {:.2}x (target <= 1.3x); log alone {:.2}x",
        on_disk as f64 / 1e6,
        live as f64 / 1e6,
        on_disk as f64 / live as f64,
        log_bytes as f64 / live as f64
    );
    // In a fresh process: memory freed by the runs above would hide the growth.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(RSS_CHILD, &ds.snap_dir)
        .output()
        .unwrap();
    let grown: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let per_key = grown as f64 / ds.n as f64;
    println!(
        "resident memory:                 {per_key:.0} B/key for {} B raw = {:.2}x (target <= 2.5x)",
        KEY_LEN + VALUE_LEN,
        per_key / (KEY_LEN + VALUE_LEN) as f64
    );
}

const RSS_CHILD: &str = "STRATA_BENCH_RSS_OF";

/// Prints how much the resident set grows when the database in `dir` is opened.
fn rss_child(dir: &str) {
    let before = resident_bytes();
    let s = Storage::open(dir, options(DurabilityMode::NoDurability)).unwrap();
    let after = resident_bytes();
    assert!(s.key_count().unwrap() > 0);
    println!("{}", after.saturating_sub(before));
}

/// A database whose last log record (`mib` MiB of random bytes, like f32 embeddings) is
/// torn by one byte, as a crash in the middle of writing it leaves it.
fn torn_record_db(mib: usize) -> tempfile::TempDir {
    let tmp = tempdir();
    let dir = tmp.path().join("db");
    let s = Storage::open(&dir, options(DurabilityMode::NoDurability)).unwrap();
    for i in 0..1_000 {
        s.commit(one_write(i, &value()), |_| Ok(())).unwrap();
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let chunk = 16 * 1024 * 1024;
    let writes: Vec<Write> = (0..(mib * 1024 * 1024).div_ceil(chunk))
        .map(|c| {
            let len = chunk.min(mib * 1024 * 1024 - c * chunk);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Write {
                key: format!("big{c}").into_bytes().into(),
                value: Some(Arc::from(bytes)),
            }
        })
        .collect();
    s.commit(writes, |_| Ok(())).unwrap();
    drop(s);
    // The big record went to a segment of its own: tear the newest one.
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    // The segment is allocated ahead (zeros after the last record): cut the record
    // itself, one byte before its end.
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(end as u64).unwrap();
    tmp
}

/// Open after a torn record of 16 and 64 MiB: linear in the log, well under a second.
fn bench_torn_recovery(c: &mut Criterion, full: bool) {
    let mut g = c.benchmark_group("recovery_torn_record");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(5));
    let sizes: &[usize] = if full { &[16, 64] } else { &[1] };
    for &mib in sizes {
        let db = torn_record_db(mib);
        let src = db.path().join("db");
        g.throughput(Throughput::Bytes((mib * 1024 * 1024) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{mib}MiB")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Each open truncates the tail: time it on a fresh copy.
                    let copy = tempdir();
                    let dst = copy.path().join("db");
                    std::fs::create_dir(&dst).unwrap();
                    for e in std::fs::read_dir(&src).unwrap() {
                        let p = e.unwrap().path();
                        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
                    }
                    let start = Instant::now();
                    let s = Storage::open(&dst, options(DurabilityMode::NoDurability)).unwrap();
                    total += start.elapsed();
                    assert_eq!(s.visible_version(), 1_000);
                    assert!(s.recovery_report().torn_bytes_truncated > 0);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(commit_benches, bench_fsync_and_strict, bench_fast_modes);

fn main() {
    if let Ok(dir) = std::env::var(RSS_CHILD) {
        return rss_child(&dir);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then every
    // benchmark runs once, on a small data set.
    let full = std::env::args().any(|a| a == "--bench");
    let ds = dataset(if full { n_keys() } else { 10_000 });
    summary(&ds, full);
    commit_benches();
    let mut c = Criterion::default().configure_from_args();
    bench_reopen(&mut c, &ds);
    bench_torn_recovery(&mut c, full);
    c.final_summary();
}
