//! Transaction benchmarks.
//!
//! - `commit/<storage>/<workload>/<threads>`: read-modify-write transactions committed
//!   through `TransactionManager::run` by 1, 2, 4 and 8 threads, either on disjoint keys
//!   (each thread its own 16 keys: no conflicts) or on 4 hot keys shared by all threads
//!   (each transaction picks one at random), over ephemeral storage and over a
//!   `NoDurability` database in a temporary directory. Throughput is in commits
//!   (retries are not counted); the conflict rate `aborted / (committed + aborted)` is
//!   printed after each benchmark, and both in a summary table at the end (commits/s
//!   there is the median over the timed calls).
//! - `read/…`: a read-only transaction (begin + get + commit) next to a plain
//!   `Storage::get` at the visible version, on 10,000 keys.
//!
//! Run: `cargo bench -p strata-concurrency --bench transactions`.
use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_concurrency::{Transaction, TransactionManager};
use strata_storage::{DurabilityMode, Storage, StorageOptions};
use tempfile::TempDir;

const THREADS: [usize; 4] = [1, 2, 4, 8];
const HOT_KEYS: u64 = 4;
const DISJOINT_KEYS_PER_THREAD: u64 = 16;

#[derive(Clone, Copy)]
enum Backing {
    Ephemeral,
    NoDurability,
}

impl Backing {
    fn name(self) -> &'static str {
        match self {
            Backing::Ephemeral => "ephemeral",
            Backing::NoDurability => "nodurability",
        }
    }

    fn open(self) -> (TransactionManager, Option<TempDir>) {
        match self {
            Backing::Ephemeral => (TransactionManager::new(Storage::ephemeral()), None),
            Backing::NoDurability => {
                let dir = tempfile::tempdir().expect("tempdir");
                let opts = StorageOptions {
                    durability: DurabilityMode::NoDurability,
                    ..StorageOptions::default()
                };
                let s = Storage::open(dir.path(), opts).expect("open");
                (TransactionManager::new(s), Some(dir))
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Disjoint,
    Hot,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Disjoint => "disjoint",
            Workload::Hot => "hot4",
        }
    }
}

fn get_u64(t: &mut Transaction, key: &[u8]) -> u64 {
    t.get(key).and_then(|e| e.value).map_or(0, |v| {
        u64::from_le_bytes(v[..8].try_into().expect("8-byte counter"))
    })
}

/// Commits `n` read-modify-write transactions from thread `t`.
fn worker(m: &TransactionManager, workload: Workload, t: usize, n: u64, seed: u64) {
    let mut rng = seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let key = match workload {
            Workload::Disjoint => format!("d/{t}/{}", i % DISJOINT_KEYS_PER_THREAD),
            Workload::Hot => {
                // xorshift64
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                format!("hot/{}", rng % HOT_KEYS)
            }
        };
        m.run(|txn| {
            let n = get_u64(txn, key.as_bytes());
            txn.put(key.as_bytes().into(), Arc::from((n + 1).to_le_bytes()));
            Ok(())
        })
        .expect("commit");
    }
}

/// Runs `total` commits split over `threads` threads; returns the wall time.
fn run_commits(m: &TransactionManager, workload: Workload, threads: usize, total: u64) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ total;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let n = total / threads as u64 + u64::from((t as u64) < total % threads as u64);
            scope.spawn(move || worker(m, workload, t, n, seed));
        }
    });
    started.elapsed()
}

struct Row {
    backing: &'static str,
    workload: &'static str,
    threads: usize,
    commits_per_s: f64,
    conflict_rate: f64,
}

thread_local! {
    static SUMMARY: RefCell<Vec<Row>> = const { RefCell::new(Vec::new()) };
}

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for backing in [Backing::Ephemeral, Backing::NoDurability] {
        for workload in [Workload::Disjoint, Workload::Hot] {
            for threads in THREADS {
                let (m, dir) = backing.open();
                // Commits per second of each timed call (warm-up included).
                let mut rates: Vec<f64> = Vec::new();
                let id =
                    BenchmarkId::new(format!("{}/{}", backing.name(), workload.name()), threads);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let took = run_commits(&m, workload, threads, iters);
                        rates.push(iters as f64 / took.as_secs_f64());
                        took
                    })
                });
                if dir.is_some() {
                    m.storage().close().expect("close");
                }
                if rates.is_empty() {
                    continue; // filtered out on the command line
                }
                rates.sort_by(f64::total_cmp);
                let metrics = m.metrics_snapshot();
                let attempts = metrics.transactions_committed + metrics.transactions_aborted;
                let row = Row {
                    backing: backing.name(),
                    workload: workload.name(),
                    threads,
                    commits_per_s: rates[rates.len() / 2],
                    conflict_rate: metrics.transactions_aborted as f64 / attempts as f64,
                };
                eprintln!(
                    "    {} commits, {} conflicts: conflict rate {:.1}%",
                    metrics.transactions_committed,
                    metrics.transactions_aborted,
                    row.conflict_rate * 100.0
                );
                SUMMARY.with(|s| s.borrow_mut().push(row));
            }
        }
    }
    group.finish();
}

fn read_overhead(c: &mut Criterion) {
    const KEYS: u64 = 10_000;
    let (m, _) = Backing::Ephemeral.open();
    let key = |i: u64| format!("key/{i:05}").into_bytes();
    let mut load = m.begin();
    for i in 0..KEYS {
        load.put(
            key(i).into(),
            Arc::from(&b"a value of about thirty bytes.."[..]),
        );
    }
    load.commit().expect("load");
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| key(i * 7919 % KEYS)).collect();

    let mut group = c.benchmark_group("read");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let s = m.storage().clone();
    let mut i = 0usize;
    group.bench_function("storage_get_at_visible_version", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(s.get(&keys[i], s.visible_version()))
        })
    });
    group.bench_function("txn_begin_get_commit", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let mut t = m.begin();
            let e = t.get(&keys[i]);
            black_box(t.commit().expect("read-only commit"));
            black_box(e)
        })
    });
    group.bench_function("txn_begin_commit_empty", |b| {
        b.iter(|| black_box(m.begin().commit().expect("empty commit")))
    });
    group.finish();
}

fn print_summary(_: &mut Criterion) {
    SUMMARY.with(|s| {
        let rows = s.borrow();
        if rows.is_empty() {
            return;
        }
        eprintln!("\n| storage | keys | threads | commits/s | conflict rate |");
        eprintln!("|---|---|---:|---:|---:|");
        for r in rows.iter() {
            eprintln!(
                "| {} | {} | {} | {:.0} | {:.1}% |",
                r.backing,
                r.workload,
                r.threads,
                r.commits_per_s,
                r.conflict_rate * 100.0
            );
        }
    });
}

criterion_group!(benches, commit_throughput, read_overhead, print_summary);
criterion_main!(benches);
