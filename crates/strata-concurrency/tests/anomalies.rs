//! One test per classic isolation anomaly, each showing it is prevented under our
//! serializable OCC. Every test interleaves two transactions by hand: both begin, read and
//! write in a chosen order, one commits, and then the other either fails to commit with a
//! retryable `Error::Conflict` (writing nothing), or is shown to have kept reading its own
//! snapshot.
use std::ops::Bound;
use std::sync::Arc;

use strata_concurrency::{Transaction, TransactionManager, PENDING_VERSION};
use strata_core::{Error, Result};
use strata_storage::{CommitInfo, Storage};

fn k(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn v(s: &str) -> Arc<[u8]> {
    Arc::from(s.as_bytes())
}

/// The value of `key` as this transaction sees it (records a read).
fn read(txn: &mut Transaction, key: &str) -> Option<String> {
    txn.get(key.as_bytes())
        .and_then(|e| e.value)
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

fn read_u64(txn: &mut Transaction, key: &str) -> u64 {
    read(txn, key).unwrap().parse().unwrap()
}

/// The latest committed value of `key`, read straight from storage.
fn committed(m: &TransactionManager, key: &str) -> Option<String> {
    let s = m.storage();
    s.get(key.as_bytes(), s.visible_version())
        .unwrap()
        .and_then(|e| e.value)
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// A manager over ephemeral storage holding `pairs`, committed as version 1.
fn setup(pairs: &[(&str, &str)]) -> TransactionManager {
    let m = TransactionManager::new(Storage::ephemeral());
    if !pairs.is_empty() {
        let mut t = m.begin();
        for (key, val) in pairs {
            t.put(k(key), v(val));
        }
        assert_eq!(t.commit().unwrap().unwrap().version, 1);
    }
    m
}

/// Asserts a commit failed with a retryable conflict.
fn assert_conflict(res: Result<Option<CommitInfo>>) {
    match res {
        Err(e @ Error::Conflict(_)) => {
            assert!(e.is_retryable(), "{e}");
            assert!(e.is_conflict(), "{e}");
        }
        other => panic!("expected a retryable conflict, got {other:?}"),
    }
}

#[test]
fn dirty_read_is_prevented() {
    let m = setup(&[("x", "1")]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    t1.put(k("x"), v("2"));
    t1.put(k("new"), v("n"));
    // T1 reads its own uncommitted write...
    assert_eq!(read(&mut t1, "x").as_deref(), Some("2"));
    assert_eq!(t1.get(b"x").unwrap().version, PENDING_VERSION);
    // ...but nobody else does: not T2, not a scan, not storage.
    assert_eq!(read(&mut t2, "x").as_deref(), Some("1"));
    assert_eq!(read(&mut t2, "new"), None);
    assert_eq!(t2.scan_prefix(b"n", None).len(), 0);
    assert_eq!(committed(&m, "x").as_deref(), Some("1"));
    assert_eq!(m.storage().visible_version(), 1);

    // An aborted (or dropped) transaction's writes never become visible.
    t1.abort();
    let t3 = {
        let mut t = m.begin();
        t.put(k("x"), v("3"));
        t
    };
    drop(t3);
    assert_eq!(read(&mut t2, "x").as_deref(), Some("1"));
    assert_eq!(committed(&m, "x").as_deref(), Some("1"));
    assert_eq!(committed(&m, "new"), None);
    assert_eq!(m.storage().visible_version(), 1);
    assert_eq!(t2.commit().unwrap(), None);
}

#[test]
fn dirty_write_is_prevented() {
    // Invariant: x == y. Two transactions write both keys, interleaved key by key.
    // Buffered writes plus atomic commits mean the final state is entirely one
    // transaction's, never x from one and y from the other.
    let m = setup(&[("x", "0"), ("y", "0")]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    t1.put(k("x"), v("1"));
    t2.put(k("x"), v("2"));
    t2.put(k("y"), v("2"));
    t1.put(k("y"), v("1"));
    let c2 = t2.commit().unwrap().unwrap();
    let c1 = t1.commit().unwrap().unwrap();
    assert_eq!((c2.version, c1.version), (2, 3));
    assert_eq!(committed(&m, "x").as_deref(), Some("1"));
    assert_eq!(committed(&m, "y").as_deref(), Some("1"));

    // When the writes depend on what was read, the second writer conflicts: it can never
    // overwrite a value it did not see.
    let mut t3 = m.begin();
    let mut t4 = m.begin();
    let x3 = read_u64(&mut t3, "x");
    let x4 = read_u64(&mut t4, "x");
    t3.put(k("x"), v(&(x3 + 10).to_string()));
    t3.put(k("y"), v(&(x3 + 10).to_string()));
    t4.put(k("x"), v(&(x4 + 20).to_string()));
    t4.put(k("y"), v(&(x4 + 20).to_string()));
    assert_eq!(t3.commit().unwrap().unwrap().version, 4);
    assert_conflict(t4.commit());
    assert_eq!(committed(&m, "x").as_deref(), Some("11"));
    assert_eq!(committed(&m, "y").as_deref(), Some("11"));
    assert_eq!(m.storage().visible_version(), 4);
}

#[test]
fn lost_update_is_prevented() {
    let m = setup(&[("counter", "0")]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    let a = read_u64(&mut t1, "counter");
    let b = read_u64(&mut t2, "counter");
    assert_eq!((a, b), (0, 0));
    t1.put(k("counter"), v(&(a + 1).to_string()));
    t2.put(k("counter"), v(&(b + 1).to_string()));
    t1.commit().unwrap().unwrap();
    // T2's increment would overwrite T1's: it must fail and write nothing.
    assert_conflict(t2.commit());
    assert_eq!(committed(&m, "counter").as_deref(), Some("1"));
    assert_eq!(m.storage().visible_version(), 2);

    // Retried from scratch, it sees T1's write and the total is right.
    let (_, info) = m
        .run(|t| {
            let n = read_u64(t, "counter");
            t.put(k("counter"), v(&(n + 1).to_string()));
            Ok(())
        })
        .unwrap();
    assert_eq!(info.unwrap().version, 3);
    assert_eq!(committed(&m, "counter").as_deref(), Some("2"));
}

#[test]
fn lost_update_of_a_key_read_as_absent_is_prevented() {
    // Both transactions see "slot" empty and claim it: only the first may succeed.
    let m = setup(&[]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    assert_eq!(read(&mut t1, "slot"), None);
    assert_eq!(read(&mut t2, "slot"), None);
    t1.put(k("slot"), v("t1"));
    t2.put(k("slot"), v("t2"));
    t1.commit().unwrap().unwrap();
    assert_conflict(t2.commit());
    assert_eq!(committed(&m, "slot").as_deref(), Some("t1"));

    // A concurrent delete of a key that was read conflicts too.
    let mut t3 = m.begin();
    let mut t4 = m.begin();
    assert_eq!(read(&mut t3, "slot").as_deref(), Some("t1"));
    assert_eq!(read(&mut t4, "slot").as_deref(), Some("t1"));
    t3.delete(k("slot"));
    t4.put(k("slot"), v("t4"));
    t3.commit().unwrap().unwrap();
    assert_conflict(t4.commit());
    assert_eq!(committed(&m, "slot"), None);
}

#[test]
fn fuzzy_read_is_prevented() {
    let m = setup(&[("x", "1")]);
    let mut t1 = m.begin();
    assert_eq!(read(&mut t1, "x").as_deref(), Some("1"));
    let mut t2 = m.begin();
    t2.put(k("x"), v("2"));
    t2.commit().unwrap().unwrap();
    let mut t3 = m.begin();
    t3.delete(k("x"));
    t3.commit().unwrap().unwrap();
    assert_eq!(committed(&m, "x"), None);

    // T1's second read of x repeats the first, through history too.
    assert_eq!(read(&mut t1, "x").as_deref(), Some("1"));
    let hist = t1.history(b"x", None, None);
    assert_eq!(hist.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1]);
    assert_eq!(t1.get_at(b"x", 100).unwrap().version, 1);
    assert_eq!(t1.snapshot_version(), 1);

    // And if T1 writes anything based on it, it cannot commit: x changed under it.
    t1.put(k("copy"), v("1"));
    assert_conflict(t1.commit());
    assert_eq!(committed(&m, "copy"), None);
    assert_eq!(m.storage().visible_version(), 3);
}

#[test]
fn history_read_conflicts_with_a_concurrent_write() {
    let m = setup(&[("x", "1")]);
    let mut t1 = m.begin();
    assert_eq!(t1.history(b"x", None, None).len(), 1);
    let mut t2 = m.begin();
    t2.put(k("x"), v("2"));
    t2.commit().unwrap().unwrap();
    t1.put(k("summary"), v("one version"));
    assert_conflict(t1.commit());
}

#[test]
fn read_skew_is_prevented() {
    // Invariant: x + y == 100.
    let m = setup(&[("x", "50"), ("y", "50")]);
    let mut t1 = m.begin();
    let x = read_u64(&mut t1, "x");
    // T2 transfers 10 from x to y and commits between T1's two reads.
    let mut t2 = m.begin();
    let (x2, y2) = (read_u64(&mut t2, "x"), read_u64(&mut t2, "y"));
    t2.put(k("x"), v(&(x2 - 10).to_string()));
    t2.put(k("y"), v(&(y2 + 10).to_string()));
    t2.commit().unwrap().unwrap();
    // T1 still sees y from its snapshot: its view is consistent.
    let y = read_u64(&mut t1, "y");
    assert_eq!((x, y), (50, 50));
    assert_eq!(x + y, 100);
    let scanned: u64 = t1
        .scan_range(Bound::Included(b"x"), Bound::Included(b"y"), None)
        .iter()
        .map(|(_, e)| std::str::from_utf8(e.value.as_ref().unwrap()).unwrap())
        .map(|s| s.parse::<u64>().unwrap())
        .sum();
    assert_eq!(scanned, 100);
    // Writing what it derived from the stale pair would be read skew: conflict.
    t1.put(k("total"), v(&(x + y).to_string()));
    assert_conflict(t1.commit());
    assert_eq!(committed(&m, "x").as_deref(), Some("40"));
    assert_eq!(committed(&m, "y").as_deref(), Some("60"));
    assert_eq!(committed(&m, "total"), None);
}

#[test]
fn write_skew_is_prevented() {
    // Invariant: at least one doctor stays on call. Each transaction checks that both are
    // on call, then takes *a different one* off: the write sets are disjoint, so only
    // read-set validation can catch it.
    let m = setup(&[("alice", "on"), ("bob", "on")]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    let on = |t: &mut Transaction| {
        ["alice", "bob"]
            .iter()
            .filter(|d| read(t, d).as_deref() == Some("on"))
            .count()
    };
    assert_eq!(on(&mut t1), 2);
    assert_eq!(on(&mut t2), 2);
    t1.put(k("alice"), v("off"));
    t2.put(k("bob"), v("off"));
    t1.commit().unwrap().unwrap();
    assert_conflict(t2.commit());
    assert_eq!(committed(&m, "alice").as_deref(), Some("off"));
    assert_eq!(committed(&m, "bob").as_deref(), Some("on"));

    // Retried, T2 sees that only Bob is left and leaves him on call.
    let (taken_off, _) = m
        .run(|t| {
            if on(t) == 2 {
                t.put(k("bob"), v("off"));
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .unwrap();
    assert!(!taken_off);
    assert_eq!(committed(&m, "bob").as_deref(), Some("on"));
}

#[test]
fn phantom_is_prevented() {
    let m = setup(&[("emp/alice", "1"), ("emp/bob", "1"), ("other", "x")]);
    let mut t1 = m.begin();
    let rows = t1.scan_prefix(b"emp/", None);
    assert_eq!(rows.len(), 2);
    // T2 inserts a new row under the scanned prefix.
    let mut t2 = m.begin();
    t2.put(k("emp/carol"), v("1"));
    t2.commit().unwrap().unwrap();
    // T1's rescan does not see the phantom...
    assert_eq!(t1.scan_prefix(b"emp/", None).len(), 2);
    // ...and its commit, derived from the count, conflicts.
    t1.put(k("headcount"), v("2"));
    assert_conflict(t1.commit());
    assert_eq!(committed(&m, "headcount"), None);
    let s = m.storage();
    assert_eq!(
        s.scan_prefix(b"emp/", s.visible_version(), None)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn phantom_variants_delete_update_limit_and_reverse_scans() {
    let m = setup(&[("emp/a", "1"), ("emp/b", "1"), ("emp/c", "1")]);
    // Each closure changes the scanned range in a different way after T1's scan.
    type Change = fn(&mut Transaction);
    let changes: Vec<(&str, Change)> = vec![
        ("delete under the prefix", |t| t.delete(k("emp/b"))),
        ("update under the prefix", |t| t.put(k("emp/a"), v("2"))),
        ("insert before the first key", |t| t.put(k("emp/0"), v("1"))),
    ];
    type Scan = fn(&mut Transaction) -> usize;
    let scans: Vec<(&str, Scan)> = vec![
        ("prefix", |t| t.scan_prefix(b"emp/", None).len()),
        // A limited scan reads the whole range for validation purposes.
        ("prefix limit 1", |t| t.scan_prefix(b"emp/", Some(1)).len()),
        ("range", |t| {
            t.scan_range(Bound::Included(b"emp/"), Bound::Excluded(b"emp0"), None)
                .len()
        }),
        ("reverse range", |t| {
            t.scan_range_rev(Bound::Included(b"emp/"), Bound::Unbounded, None)
                .len()
        }),
    ];
    for (scan_name, scan) in &scans {
        for (change_name, change) in &changes {
            // Reset to the three rows.
            let mut reset = m.begin();
            for r in ["emp/0", "emp/a", "emp/b", "emp/c"] {
                reset.delete(k(r));
            }
            for r in ["emp/a", "emp/b", "emp/c"] {
                reset.put(k(r), v("1"));
            }
            reset.commit().unwrap();

            let mut t1 = m.begin();
            let seen = scan(&mut t1);
            let mut t2 = m.begin();
            change(&mut t2);
            t2.commit().unwrap().unwrap();
            assert_eq!(scan(&mut t1), seen, "{scan_name}: rescan changed");
            t1.put(k("report"), v(&seen.to_string()));
            let res = t1.commit();
            assert!(
                matches!(&res, Err(e) if e.is_retryable()),
                "{scan_name} / {change_name}: expected a conflict, got {res:?}"
            );
        }
    }
}

#[test]
fn a_write_outside_the_scanned_range_does_not_conflict() {
    let m = setup(&[("emp/a", "1"), ("emp0", "x"), ("emo", "x")]);
    let mut t1 = m.begin();
    assert_eq!(t1.scan_prefix(b"emp/", None).len(), 1);
    let mut t2 = m.begin();
    // Just after and just before the prefix range.
    t2.put(k("emp0"), v("y"));
    t2.put(k("emo"), v("y"));
    t2.put(k("emp"), v("y"));
    t2.commit().unwrap().unwrap();
    t1.put(k("count"), v("1"));
    assert_eq!(t1.commit().unwrap().unwrap().version, 3);
}

#[test]
fn own_writes_are_merged_into_scans_without_hiding_phantoms() {
    let m = setup(&[("p/a", "1"), ("p/b", "1"), ("p/c", "1")]);
    let mut t1 = m.begin();
    t1.delete(k("p/a"));
    t1.put(k("p/d"), v("mine"));
    let keys: Vec<Box<[u8]>> = t1
        .scan_prefix(b"p/", None)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![k("p/b"), k("p/c"), k("p/d")]);
    let first = t1.scan_prefix(b"p/", Some(1));
    assert_eq!(first[0].0, k("p/b"));
    let rev = t1.scan_range_rev(Bound::Included(b"p/"), Bound::Unbounded, Some(2));
    assert_eq!(
        rev.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![k("p/d"), k("p/c")]
    );
    assert_eq!(rev[0].1.version, PENDING_VERSION);
    let mut t2 = m.begin();
    t2.put(k("p/bb"), v("1"));
    t2.commit().unwrap().unwrap();
    assert_conflict(t1.commit());
}

#[test]
fn blind_writes_never_conflict() {
    let m = setup(&[("x", "0")]);
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    let mut t3 = m.begin();
    t1.put(k("x"), v("1"));
    t2.put(k("x"), v("2"));
    t2.put(k("y"), v("2"));
    t3.delete(k("x"));
    // Reading a key a transaction itself wrote is not a read of the store.
    assert_eq!(read(&mut t1, "x").as_deref(), Some("1"));
    assert_eq!(t2.commit().unwrap().unwrap().version, 2);
    assert_eq!(t3.commit().unwrap().unwrap().version, 3);
    assert_eq!(t1.commit().unwrap().unwrap().version, 4);
    // Last committer wins.
    assert_eq!(committed(&m, "x").as_deref(), Some("1"));
    assert_eq!(committed(&m, "y").as_deref(), Some("2"));
    let s = m.storage();
    let hist: Vec<u64> = s
        .history(b"x", s.visible_version(), None, None)
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(hist, vec![4, 3, 2, 1]);
    let metrics = m.metrics_snapshot();
    assert_eq!(metrics.transactions_aborted, 0);
}

#[test]
fn read_only_transaction_commits_at_its_snapshot_even_if_data_changed() {
    let m = setup(&[("x", "50"), ("y", "50"), ("l/1", "a")]);
    let mut reader = m.begin();
    assert_eq!(read_u64(&mut reader, "x"), 50);
    assert_eq!(reader.scan_prefix(b"l/", None).len(), 1);
    let mut writer = m.begin();
    writer.put(k("x"), v("0"));
    writer.put(k("y"), v("100"));
    writer.put(k("l/2"), v("b"));
    writer.commit().unwrap().unwrap();
    // Reads after the concurrent commit still come from the reader's snapshot.
    assert_eq!(read_u64(&mut reader, "y"), 50);
    assert_eq!(reader.scan_prefix(b"l/", None).len(), 1);
    assert!(reader.is_read_only());
    let before = m.storage().visible_version();
    assert_eq!(reader.commit().unwrap(), None);
    assert_eq!(m.storage().visible_version(), before);
    let metrics = m.metrics_snapshot();
    assert_eq!(metrics.transactions_committed, 3);
    assert_eq!(metrics.transactions_aborted, 0);
}

#[test]
fn a_failed_commit_writes_nothing_and_frees_its_snapshot() {
    let m = setup(&[("x", "1")]);
    let mut t1 = m.begin();
    read(&mut t1, "x");
    t1.put(k("x"), v("from t1"));
    t1.put(k("side"), v("effect"));
    let mut t2 = m.begin();
    t2.put(k("x"), v("2"));
    t2.commit().unwrap().unwrap();
    let s = m.storage();
    assert_eq!(s.oldest_pinned(), 1);
    assert_conflict(t1.commit());
    assert_eq!(s.visible_version(), 2);
    assert_eq!(s.oldest_pinned(), 2);
    assert_eq!(committed(&m, "side"), None);
    assert_eq!(s.history(b"x", 2, None, None).unwrap().len(), 2);
    assert_eq!(s.key_count().unwrap(), 1);
}

/// A transaction that began while a strict commit was applied but still waiting for its
/// fsync reads the snapshot before that commit. Commit validation skips its key checks
/// only when no commit was *applied* after the snapshot, not merely made visible: here
/// one was, and it changed what the transaction read, so the commit must conflict.
#[test]
fn a_commit_still_waiting_for_its_fsync_is_a_concurrent_change() {
    use std::time::Duration;
    use strata_storage::{DurabilityMode, StorageOptions};

    let fs = strata_storage::testing::FaultyVfs::new();
    let opts = StorageOptions {
        durability: DurabilityMode::Strict,
        vfs: Arc::new(fs.clone()),
        lock_directory: false,
        ..StorageOptions::default()
    };
    let m = Arc::new(TransactionManager::new(Storage::open("/db", opts).unwrap()));
    let mut t = m.begin();
    t.put(k("x"), v("1"));
    t.commit().unwrap().unwrap();
    let visible = m.storage().visible_version();
    // The next fsync takes 500 ms, then fails: the writer's commit stays applied but
    // invisible for that long.
    fs.fail_sync_after_delay(1, Duration::from_millis(500));
    let writer = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            let mut w = m.begin();
            w.put(k("x"), v("2"));
            w.commit()
        })
    };
    while m.storage().applied_version() == visible {
        std::thread::yield_now();
    }
    let mut reader = m.begin();
    assert_eq!(reader.snapshot_version(), visible);
    assert_eq!(read(&mut reader, "x").as_deref(), Some("1"));
    reader.put(k("y"), v("derived from x = 1"));
    assert_conflict(reader.commit());
    assert!(writer.join().unwrap().is_err(), "the writer's fsync failed");
}
