//! Retention through the facade: garbage collection frees what retention hides (in
//! memory, in snapshots, after a reopen), answers never depend on when it ran, and
//! counters never restart.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strata_core::{Error, Result, RunId, Timestamp, Value, Version, Versioned};
use strata_primitives::internal;
use strata_primitives::{Engine, RetentionPolicy, Runs, State, KV};
use strata_storage::{DurabilityMode, Storage, StorageOptions};

/// The handles these tests use, over one engine (the facade's `Strata` keeps its
/// engine private; these tests drive garbage collection and snapshots directly).
struct Strata {
    kv: KV,
    state: State,
    runs: Runs,
    engine: Arc<Engine>,
}

impl Strata {
    fn over(storage: Storage) -> Result<Strata> {
        let engine = Engine::new(storage)?;
        Ok(Strata {
            kv: internal::kv(engine.clone()),
            state: internal::state(engine.clone()),
            runs: internal::runs(engine.clone()),
            engine,
        })
    }
    fn ephemeral() -> Result<Strata> {
        Strata::over(Storage::ephemeral())
    }
    fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
    fn close(self) -> Result<()> {
        self.engine.storage().close()
    }
}

/// Opens `path` without fsyncs, as `StrataBuilder::new().path(p).no_durability()` does.
struct StrataBuilder {
    path: std::path::PathBuf,
}

impl StrataBuilder {
    fn new() -> Self {
        StrataBuilder {
            path: Default::default(),
        }
    }
    fn path(mut self, p: impl AsRef<Path>) -> Self {
        self.path = p.as_ref().to_path_buf();
        self
    }
    fn no_durability(self) -> Self {
        self
    }
    fn open(self) -> Result<Strata> {
        let options = StorageOptions {
            durability: DurabilityMode::NoDurability,
            ..StorageOptions::default()
        };
        Strata::over(Storage::open(&self.path, options)?)
    }
}

/// What a read answered, without timestamps (two databases fed the same operations
/// assign the same versions but not the same times).
type Answer = std::result::Result<Option<(Value, Version)>, String>;

fn strip(r: Result<Option<Versioned<Value>>>) -> Answer {
    match r {
        Ok(v) => Ok(v.map(|v| (v.value, v.version))),
        Err(Error::NotFound(_)) => Err("not found".into()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn strip_list(r: Result<Vec<Versioned<Value>>>) -> Vec<(Value, Version)> {
    r.unwrap()
        .into_iter()
        .map(|v| (v.value, v.version))
        .collect()
}

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// Every answer about the run's keys a reader can get: KV history, current values and
/// `get_at` at every version so far; state history and current values.
fn answers(db: &Strata, run: &RunId) -> Vec<String> {
    let last = db.engine().storage().visible_version();
    let mut out = Vec::new();
    for k in KEYS {
        out.push(format!(
            "kv.history {k} {:?}",
            strip_list(db.kv.history(run, k, None, None))
        ));
        out.push(format!("kv.get {k} {:?}", strip(db.kv.get_in(run, k))));
        for v in 1..=last {
            let at = strip(db.kv.get_at(run, k, Version::Txn(v)).map(Some));
            out.push(format!("kv.get_at {k} {v} {at:?}"));
        }
        out.push(format!(
            "state.history {k} {:?}",
            strip_list(db.state.history(run, k, None))
        ));
        out.push(format!(
            "state.get {k} {:?}",
            strip(db.state.get_in(run, k))
        ));
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, i64),
    Delete(usize),
    StateSet(usize, i64),
    StateDelete(usize),
    /// Collect garbage in the first database.
    Gc,
    /// Open or close a long-lived transaction (a pinned snapshot) in the first database.
    TogglePin,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), 0..100i64).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0..KEYS.len()).prop_map(Op::Delete),
        2 => (0..KEYS.len(), 0..100i64).prop_map(|(k, v)| Op::StateSet(k, v)),
        1 => (0..KEYS.len()).prop_map(Op::StateDelete),
        2 => Just(Op::Gc),
        1 => Just(Op::TogglePin),
    ]
}

fn apply(db: &Strata, run: &RunId, op: &Op) {
    match *op {
        Op::Put(k, v) => {
            db.kv.put(run, KEYS[k], v).unwrap();
        }
        Op::Delete(k) => {
            db.kv.delete_in(run, KEYS[k]).unwrap();
        }
        Op::StateSet(k, v) => {
            db.state.set_in(run, KEYS[k], v).unwrap();
        }
        Op::StateDelete(k) => {
            db.state.delete(run, KEYS[k]).unwrap();
        }
        Op::Gc | Op::TogglePin => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// `KeepLast(n)`: a database collected at random moments (with snapshots pinned at
    /// random moments) answers exactly as its twin that never collected.
    #[test]
    fn keep_last_answers_do_not_depend_on_when_gc_ran(
        n in 1usize..4,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let (a, b) = (Strata::ephemeral().unwrap(), Strata::ephemeral().unwrap());
        let (ra, rb) = (a.runs.create(None).unwrap(), b.runs.create(None).unwrap());
        a.runs.set_retention(&ra, RetentionPolicy::KeepLast(n)).unwrap();
        b.runs.set_retention(&rb, RetentionPolicy::KeepLast(n)).unwrap();
        let mut pin = None;
        for op in &ops {
            apply(&a, &ra, op);
            apply(&b, &rb, op);
            match op {
                Op::Gc => {
                    a.engine().collect_garbage_now();
                    prop_assert_eq!(answers(&a, &ra), answers(&b, &rb));
                }
                Op::TogglePin => {
                    pin = match pin {
                        None => Some(a.engine().manager().begin()),
                        Some(_) => None,
                    };
                }
                _ => {}
            }
        }
        a.engine().collect_garbage_now();
        prop_assert_eq!(answers(&a, &ra), answers(&b, &rb));
        drop(pin);
        a.engine().collect_garbage_now();
        prop_assert_eq!(answers(&a, &ra), answers(&b, &rb));
    }

    /// `KeepFor(d)`: with the clock moving forward (to just after a random commit's
    /// window), the answers before and after a collection are identical.
    #[test]
    fn keep_for_answers_do_not_depend_on_when_gc_ran(
        ops in proptest::collection::vec(op(), 1..60),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 60),
    ) {
        let db = Strata::ephemeral().unwrap();
        let run = db.runs.create(None).unwrap();
        let window = Duration::from_millis(1);
        db.runs.set_retention(&run, RetentionPolicy::KeepFor(window)).unwrap();
        let now = Arc::new(AtomicU64::new(Timestamp::now().as_micros()));
        let clock = now.clone();
        db.engine()
            .set_clock(Arc::new(move || Timestamp::from_micros(clock.load(Ordering::SeqCst))));
        let mut stamps: Vec<u64> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            apply(&db, &run, op);
            for k in KEYS {
                if let Some(v) = db.kv.get_in(&run, k).unwrap() {
                    stamps.push(v.timestamp.as_micros());
                }
            }
            if matches!(op, Op::Gc | Op::TogglePin) && !stamps.is_empty() {
                // Move "now" so that the window starts exactly at some earlier commit.
                let t = stamps[picks[i].index(stamps.len())] + window.as_micros() as u64;
                now.fetch_max(t, Ordering::SeqCst);
                let before = answers(&db, &run);
                db.engine().collect_garbage_now();
                prop_assert_eq!(before, answers(&db, &run));
            }
        }
    }
}

/// `KeepLast(2)` over put, put, delete, put: the delete is one of the two newest
/// versions, before and after collection (it used to count at read time only after GC).
#[test]
fn keep_last_counts_deletes_the_same_before_and_after_gc() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(2))
        .unwrap();
    let v1 = db.kv.put(&run, "k", 1i64).unwrap();
    let v2 = db.kv.put(&run, "k", 2i64).unwrap();
    db.kv.delete_in(&run, "k").unwrap();
    let v3 = db.kv.put(&run, "k", 3i64).unwrap();
    let check = |when: &str| {
        let h = strip_list(db.kv.history(&run, "k", None, None));
        assert_eq!(h, vec![(Value::Int(3), v3)], "history {when} GC");
        for v in [v1, v2] {
            assert!(
                matches!(db.kv.get_at(&run, "k", v), Err(Error::NotFound(_))),
                "get_at {v} {when} GC"
            );
        }
    };
    check("before");
    db.engine().collect_garbage_now();
    check("after");
}

/// A state cell's counter continues after its history was collected: a stale
/// `cas(Some(1))` fails (it used to restart at 1 and succeed), also after a reopen.
#[test]
fn state_counter_survives_gc_and_a_stale_cas_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = StrataBuilder::new()
        .path(dir.path())
        .no_durability()
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert_eq!(
        db.state.set_in(&run, "lock", "alice").unwrap(),
        Version::Counter(1)
    );
    // Someone read counter 1, then the cell is deleted and its history collected.
    assert!(db.state.delete(&run, "lock").unwrap());
    assert!(!db.state.delete(&run, "lock").unwrap());
    assert!(!db.state.exists(&run, "lock").unwrap());
    assert!(db.state.history(&run, "lock", None).unwrap().is_empty());
    db.engine().collect_garbage_now();
    assert_eq!(
        db.state
            .cas(&run, "lock", None, "bob")
            .unwrap()
            .map(|v| v.as_u64()),
        Some(2),
        "the re-created cell continues from its last counter"
    );
    assert_eq!(
        db.state.cas(&run, "lock", Some(1), "alice").unwrap(),
        None,
        "a stale cas must fail"
    );
    db.state.delete(&run, "lock").unwrap();
    db.close().unwrap();
    let db = StrataBuilder::new()
        .path(dir.path())
        .no_durability()
        .open()
        .unwrap();
    assert_eq!(db.state.cas(&run, "lock", Some(2), "carol").unwrap(), None);
    assert_eq!(
        db.state.set_in(&run, "lock", "dave").unwrap(),
        Version::Counter(3)
    );
    db.close().unwrap();
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn snapshot_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("snap-"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// The workload at 1/10 scale: 1,000 keys of 1 KiB rewritten 100 times under
/// `KeepLast(1)` (100 MiB written for 1 MiB of live data). Memory stays within 3× of
/// the live data while writing, the snapshot written at close holds only the live data,
/// and a reopen does not bring hidden versions back.
#[test]
fn keep_last_1_rewrites_stay_within_a_small_factor_of_the_live_data() {
    const KEYS: usize = 1_000;
    const ROUNDS: usize = 100;
    const SIZE: usize = 1024;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        StrataBuilder::new()
            .path(dir.path())
            .no_durability()
            .open()
            .unwrap()
    };
    let db = open();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    let names: Vec<String> = (0..KEYS).map(|i| format!("key-{i:05}")).collect();
    let live = (KEYS * SIZE) as u64;
    let mut peak = 0u64;
    for round in 0..ROUNDS {
        let value = Value::Bytes(vec![round as u8; SIZE]);
        let batch: Vec<(&str, Value)> = names.iter().map(|k| (k.as_str(), value.clone())).collect();
        db.kv.mset(&run, &batch).unwrap();
        peak = peak.max(db.engine().storage().stats().resident_bytes);
    }
    assert!(
        peak <= 3 * live,
        "resident peaked at {peak} bytes for {live} bytes of live data"
    );
    db.close().unwrap();
    let snap = snapshot_size(dir.path());
    assert!(
        snap <= 3 * live / 2,
        "the snapshot at close holds {snap} bytes for {live} bytes of live data"
    );
    assert!(
        dir_size(dir.path()) <= 2 * live,
        "{} bytes on disk",
        dir_size(dir.path())
    );
    let db = open();
    let stats = db.engine().storage().stats();
    assert!(stats.resident_bytes <= 3 * live / 2, "{stats:?}");
    assert_eq!(
        db.kv.get_in(&run, "key-00007").unwrap().unwrap().value,
        Value::Bytes(vec![(ROUNDS - 1) as u8; SIZE])
    );
    db.close().unwrap();
}

/// Retention applies at open: versions the log replays are dropped before any write.
#[test]
fn retention_applies_after_a_reopen_without_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        StrataBuilder::new()
            .path(dir.path())
            .no_durability()
            .open()
            .unwrap()
    };
    let db = open();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(2))
        .unwrap();
    for i in 0..200i64 {
        db.kv.put(&run, &format!("k{}", i % 10), i).unwrap();
    }
    // Dropped without close: no snapshot, the log holds every version.
    drop(db);
    let db = open();
    let entries = db.engine().storage().stats().entries;
    // Ten keys with two versions each, plus the runs' records.
    assert!(entries <= 20 + 10, "{entries} entries after reopen");
    assert_eq!(db.kv.history(&run, "k3", None, None).unwrap().len(), 2);
    db.close().unwrap();
}
