//! Randomized concurrent transactions checked against a serial model.
//!
//! Several threads run random transactions — transfers between accounts that preserve a
//! total, audits that scan every account, inserts under prefixes numbered by a scan of
//! that prefix, and generic reads, writes and deletes of a small hot keyspace. Each
//! transaction records every read it made with the value it saw, and every write.
//!
//! Afterwards the committed transactions are replayed one by one, in commit-version
//! order, against a plain `BTreeMap`: every read must return exactly what the model holds
//! at that point of the serial order (plus the transaction's own earlier writes), and the
//! final model must equal the store. Read-only transactions (which commit without a
//! version) are checked against the model as of their snapshot version. This is the
//! definition of serializability, checked directly.
//!
//! The default run is short; `cargo test --release -- --ignored` runs the long ones.
//! `STRATA_SEED=<n>` replays a seed (thread interleavings still vary).
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;
use std::vec::IntoIter;

use strata_concurrency::{Transaction, TransactionManager};
use strata_storage::key::prefix_successor;
use strata_storage::{DurabilityMode, Storage, StorageOptions};

const ACCOUNTS: u64 = 16;
const INITIAL_BALANCE: u64 = 100;
const TOTAL: u64 = ACCOUNTS * INITIAL_BALANCE;
/// Transactions per item prefix, on average: the prefixes multiply with the run length so
/// that a scan of one stays short.
const TXNS_PER_ITEM_PREFIX: u64 = 1_000;
const GENERIC_KEYS: u64 = 12;

type Bytes = Vec<u8>;
type Model = BTreeMap<Bytes, Bytes>;

/// One step of a transaction, with what a read saw.
#[derive(Debug, Clone)]
enum Op {
    Get {
        key: Bytes,
        seen: Option<Bytes>,
    },
    /// A scan keeps only the row count and a digest of the rows, to bound memory.
    Scan {
        prefix: Bytes,
        limit: Option<usize>,
        reverse: bool,
        rows: usize,
        digest: u64,
    },
    Put {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
}

/// A finished transaction: `version` is its commit version, or `None` if it was
/// read-only (it then committed at `snapshot`).
#[derive(Debug)]
struct Record {
    thread: usize,
    version: Option<u64>,
    snapshot: u64,
    ops: Vec<Op>,
}

/// Wraps a transaction and logs every operation.
struct Recorder<'a> {
    txn: &'a mut Transaction,
    ops: Vec<Op>,
}

impl Recorder<'_> {
    fn get(&mut self, key: &str) -> Option<Bytes> {
        let seen = self
            .txn
            .get(key.as_bytes())
            .and_then(|e| e.value)
            .map(|v| v.to_vec());
        self.ops.push(Op::Get {
            key: key.into(),
            seen: seen.clone(),
        });
        seen
    }

    fn get_u64(&mut self, key: &str) -> Option<u64> {
        self.get(key).map(|v| dec(&v))
    }

    fn scan(&mut self, prefix: &str, limit: Option<usize>, reverse: bool) -> Vec<(Bytes, Bytes)> {
        let rows = if reverse {
            let end = prefix_successor(prefix.as_bytes());
            let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            self.txn
                .scan_range_rev(Bound::Included(prefix.as_bytes()), end, limit)
        } else {
            self.txn.scan_prefix(prefix.as_bytes(), limit)
        };
        let seen: Vec<(Bytes, Bytes)> = rows
            .into_iter()
            .map(|(k, e)| {
                (
                    k.to_vec(),
                    e.value.expect("scans return live rows").to_vec(),
                )
            })
            .collect();
        self.ops.push(Op::Scan {
            prefix: prefix.into(),
            limit,
            reverse,
            rows: seen.len(),
            digest: digest(&seen),
        });
        seen
    }

    fn put(&mut self, key: &str, value: &str) {
        self.txn
            .put(key.as_bytes().into(), Arc::from(value.as_bytes()));
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
    }

    fn delete(&mut self, key: &str) {
        self.txn.delete(key.as_bytes().into());
        self.ops.push(Op::Delete { key: key.into() });
    }
}

/// A digest of scanned rows (SipHash with fixed keys: stable within the process).
fn digest(rows: &[(Bytes, Bytes)]) -> u64 {
    let mut h = DefaultHasher::new();
    rows.hash(&mut h);
    h.finish()
}

fn dec(b: &[u8]) -> u64 {
    std::str::from_utf8(b).unwrap().parse().unwrap()
}

/// splitmix64: a tiny deterministic generator, so no extra dependency is needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn acct(i: u64) -> String {
    format!("acct/{i:02}")
}

/// One random transaction body. `seq` makes inserted keys unique per thread.
fn random_txn(r: &mut Recorder<'_>, rng: &mut Rng, item_prefixes: u64, thread: usize, seq: u64) {
    match rng.below(100) {
        // Transfer between two accounts, if the balance allows.
        0..=39 => {
            let a = rng.below(ACCOUNTS);
            let b = (a + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
            let amount = 1 + rng.below(30);
            let from = r.get_u64(&acct(a)).unwrap();
            if rng.below(4) == 0 {
                thread::yield_now();
            }
            let to = r.get_u64(&acct(b)).unwrap();
            if from >= amount {
                r.put(&acct(a), &(from - amount).to_string());
                r.put(&acct(b), &(to + amount).to_string());
            }
        }
        // Audit: the snapshot always holds the full total. Sometimes record it.
        40..=54 => {
            let rows = r.scan("acct/", None, rng.below(2) == 0);
            assert_eq!(rows.len() as u64, ACCOUNTS);
            let sum: u64 = rows.iter().map(|(_, v)| dec(v)).sum();
            assert_eq!(sum, TOTAL, "an audit saw an inconsistent snapshot");
            if rng.below(3) == 0 {
                let n = r.get_u64("audits").unwrap_or(0);
                r.put("audits", &(n + 1).to_string());
            }
        }
        // Insert under a prefix, numbered by how many rows the scan of it found.
        55..=74 => {
            let p = rng.below(item_prefixes);
            let prefix = format!("item/{p}/");
            let count = r.scan(&prefix, None, false).len();
            if rng.below(4) == 0 {
                thread::yield_now();
            }
            r.put(&format!("{prefix}{thread}-{seq}"), &count.to_string());
            // Read back through a limited scan, merged with the own insert.
            r.scan(&prefix, Some(1 + rng.below(3) as usize), rng.below(2) == 0);
        }
        // Generic: read a few hot keys, write or delete a few derived from them.
        _ => {
            let mut sum = 0;
            for _ in 0..1 + rng.below(3) {
                let key = format!("gen/{:02}", rng.below(GENERIC_KEYS));
                sum += r.get_u64(&key).unwrap_or(0);
            }
            if rng.below(4) == 0 {
                thread::yield_now();
            }
            for _ in 0..rng.below(3) {
                let key = format!("gen/{:02}", rng.below(GENERIC_KEYS));
                if rng.below(5) == 0 {
                    r.delete(&key);
                } else {
                    r.put(&key, &((sum + rng.below(10)) % 1_000_000).to_string());
                }
                if rng.below(3) == 0 {
                    // Read-your-writes, through a point read and a scan.
                    r.get(&key);
                    r.scan("gen/", None, rng.below(2) == 0);
                }
            }
        }
    }
}

/// Runs `threads` workers of `per_thread` random transactions each; returns the records.
fn run_workload(m: &TransactionManager, threads: usize, per_thread: u64, seed: u64) -> Vec<Record> {
    let item_prefixes = (threads as u64 * per_thread / TXNS_PER_ITEM_PREFIX).max(4);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let m = m.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut rng = Rng(seed ^ (thread as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                let mut records = Vec::new();
                barrier.wait();
                for seq in 0..per_thread {
                    let ((ops, snapshot), info) = m
                        .run(|txn| {
                            let snapshot = txn.snapshot_version();
                            let mut r = Recorder {
                                txn,
                                ops: Vec::new(),
                            };
                            random_txn(&mut r, &mut rng, item_prefixes, thread, seq);
                            Ok((r.ops, snapshot))
                        })
                        .unwrap();
                    records.push(Record {
                        thread,
                        version: info.map(|i| i.version),
                        snapshot,
                        ops,
                    });
                }
                records
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// Replays `rec`'s operations against `model` plus its own writes, checking each read.
/// Returns the transaction's writes.
fn replay(model: &Model, rec: &Record) -> BTreeMap<Bytes, Option<Bytes>> {
    let mut own: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
    for (i, op) in rec.ops.iter().enumerate() {
        match op {
            Op::Get { key, seen } => {
                let expected = match own.get(key) {
                    Some(w) => w.clone(),
                    None => model.get(key).cloned(),
                };
                assert_eq!(
                    seen,
                    &expected,
                    "{rec:?}: op {i} read {:?} differently from the serial order",
                    String::from_utf8_lossy(key)
                );
            }
            Op::Scan {
                prefix,
                limit,
                reverse,
                rows,
                digest: seen,
            } => {
                let mut merged: BTreeMap<Bytes, Bytes> = model
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for (k, w) in own.iter().filter(|(k, _)| k.starts_with(prefix)) {
                    match w {
                        Some(v) => merged.insert(k.clone(), v.clone()),
                        None => merged.remove(k),
                    };
                }
                let mut expected: Vec<(Bytes, Bytes)> = merged.into_iter().collect();
                if *reverse {
                    expected.reverse();
                }
                expected.truncate(limit.unwrap_or(usize::MAX));
                assert_eq!(
                    (*rows, *seen),
                    (expected.len(), digest(&expected)),
                    "{rec:?}: op {i} scanned differently from the serial order, which has \
                     {expected:?}"
                );
            }
            Op::Put { key, value } => {
                own.insert(key.clone(), Some(value.clone()));
            }
            Op::Delete { key } => {
                own.insert(key.clone(), None);
            }
        }
    }
    own
}

fn apply(model: &mut Model, writes: BTreeMap<Bytes, Option<Bytes>>) {
    for (k, w) in writes {
        match w {
            Some(v) => model.insert(k, v),
            None => model.remove(&k),
        };
    }
}

fn initial_state() -> Model {
    (0..ACCOUNTS)
        .map(|i| {
            (
                acct(i).into_bytes(),
                INITIAL_BALANCE.to_string().into_bytes(),
            )
        })
        .collect()
}

fn setup(m: &TransactionManager) -> u64 {
    let mut t = m.begin();
    for (k, v) in initial_state() {
        t.put(k.into(), Arc::from(v));
    }
    t.commit().unwrap().unwrap().version
}

/// Checks the records against a serial replay in commit order and returns the model.
fn check_serializable(base_version: u64, final_version: u64, records: &[Record]) -> Model {
    let mut writers: Vec<&Record> = records.iter().filter(|r| r.version.is_some()).collect();
    writers.sort_by_key(|r| r.version);
    let mut readers: Vec<&Record> = records.iter().filter(|r| r.version.is_none()).collect();
    readers.sort_by_key(|r| r.snapshot);

    // Every version after the setup belongs to exactly one recorded transaction.
    let versions: Vec<u64> = writers.iter().map(|r| r.version.unwrap()).collect();
    assert_eq!(
        versions,
        (base_version + 1..=final_version).collect::<Vec<_>>(),
        "commit versions are not dense"
    );

    // Each thread's transactions are in program order: its commits have increasing
    // versions and every transaction starts at or after its previous commit.
    let mut by_thread: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_thread.entry(r.thread).or_default().push(r);
    }
    for (t, rs) in &by_thread {
        let mut last_commit = base_version;
        for r in rs {
            assert!(
                r.snapshot >= last_commit,
                "thread {t}: a transaction began at {} before its own commit {last_commit} \
                 was visible",
                r.snapshot
            );
            if let Some(v) = r.version {
                assert!(v > last_commit);
                last_commit = v;
            }
        }
    }

    let mut model = initial_state();
    let mut readers = readers.into_iter().peekable();
    check_readers(&model, base_version, &mut readers);
    for w in writers {
        let writes = replay(&model, w);
        assert!(
            !writes.is_empty(),
            "{w:?} committed a version without writes"
        );
        apply(&mut model, writes);
        check_readers(&model, w.version.unwrap(), &mut readers);
    }
    assert!(
        readers.next().is_none(),
        "a read-only snapshot beyond the last commit"
    );
    model
}

/// Checks the read-only transactions whose snapshot is `version`, the state `model` holds.
fn check_readers(model: &Model, version: u64, readers: &mut Peekable<IntoIter<&Record>>) {
    while let Some(r) = readers.next_if(|r| r.snapshot <= version) {
        assert_eq!(r.snapshot, version, "{r:?}: snapshot of an unknown version");
        assert!(replay(model, r).is_empty());
    }
}

/// The whole store at its visible version.
fn store_contents(s: &Storage) -> Model {
    s.scan_prefix(b"", s.visible_version(), None)
        .unwrap()
        .into_iter()
        .map(|(k, e)| (k.to_vec(), e.value.unwrap().to_vec()))
        .collect()
}

/// Invariants of the final state that do not need the replay.
fn check_invariants(model: &Model) {
    let balances: u64 = model
        .iter()
        .filter(|(k, _)| k.starts_with(b"acct/"))
        .map(|(_, v)| dec(v))
        .sum();
    assert_eq!(balances, TOTAL);
    let mut by_prefix: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for (k, v) in model.range(b"item/".to_vec()..) {
        if !k.starts_with(b"item/") {
            break;
        }
        let end = 5 + k[5..].iter().position(|&b| b == b'/').unwrap();
        by_prefix.entry(&k[..=end]).or_default().push(dec(v));
    }
    for (prefix, mut numbers) in by_prefix {
        numbers.sort_unstable();
        // Each insert was numbered by the count it scanned: no phantom, no duplicates.
        let dense: Vec<u64> = (0..numbers.len() as u64).collect();
        assert_eq!(numbers, dense, "{}", String::from_utf8_lossy(prefix));
    }
}

fn seed() -> u64 {
    let seed = std::env::var("STRATA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("STRATA_SEED={seed}");
    seed
}

fn scenario(m: &TransactionManager, threads: usize, per_thread: u64) -> Model {
    let seed = seed();
    let started = Instant::now();
    let base = setup(m);
    let records = run_workload(m, threads, per_thread, seed);
    let s = m.storage();
    let model = check_serializable(base, s.visible_version(), &records);
    assert_eq!(
        store_contents(s),
        model,
        "final state differs from the serial model"
    );
    check_invariants(&model);
    let metrics = m.metrics_snapshot();
    assert_eq!(metrics.transactions_active, 0);
    assert_eq!(
        metrics.transactions_committed,
        1 + threads as u64 * per_thread
    );
    assert_eq!(s.oldest_pinned(), s.visible_version());
    let writers = records.iter().filter(|r| r.version.is_some()).count();
    eprintln!(
        "{} transactions ({writers} writers) on {threads} threads in {:?}: {} conflicts, \
         {} items",
        records.len(),
        started.elapsed(),
        metrics.transactions_aborted,
        model.keys().filter(|k| k.starts_with(b"item/")).count()
    );
    model
}

#[test]
fn random_transactions_equal_a_serial_execution() {
    let m = TransactionManager::new(Storage::ephemeral());
    scenario(&m, 4, 3_000);
}

#[test]
fn random_transactions_on_strict_disk_storage_equal_a_serial_execution_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StorageOptions {
        durability: DurabilityMode::Strict,
        ..StorageOptions::default()
    };
    let m = TransactionManager::new(Storage::open(dir.path(), opts()).unwrap());
    let model = scenario(&m, 4, 150);
    drop(m);
    let s = Storage::open(dir.path(), opts()).unwrap();
    assert_eq!(
        store_contents(&s),
        model,
        "recovered state differs from the model"
    );
    s.close().unwrap();
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn long_random_transactions_equal_a_serial_execution() {
    let per_thread = std::env::var("STRATA_STRESS_TXNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60_000);
    let m = TransactionManager::new(Storage::ephemeral());
    scenario(&m, 8, per_thread);
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn long_random_transactions_on_buffered_disk_storage_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StorageOptions {
        durability: DurabilityMode::Buffered {
            interval_ms: 5,
            max_writes: 100,
        },
        segment_size: 256 * 1024,
        snapshot_threshold: 1024 * 1024,
        ..StorageOptions::default()
    };
    let m = TransactionManager::new(Storage::open(dir.path(), opts()).unwrap());
    let model = scenario(&m, 8, 15_000);
    m.storage().close().unwrap();
    drop(m);
    let s = Storage::open(dir.path(), opts()).unwrap();
    assert_eq!(
        store_contents(&s),
        model,
        "recovered state differs from the model"
    );
    s.close().unwrap();
}
