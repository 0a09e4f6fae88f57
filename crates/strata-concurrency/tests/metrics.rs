//! `DatabaseMetrics` after a known sequence of transactions: exact counts of committed,
//! aborted and active transactions, and the commit rate.
use std::sync::Arc;

use strata_concurrency::{DatabaseMetrics, TransactionManager};
use strata_core::Error;
use strata_storage::{DurabilityMode, Storage, StorageOptions};

fn k(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn v(s: &str) -> Arc<[u8]> {
    Arc::from(s.as_bytes())
}

fn expect(m: &TransactionManager, committed: u64, aborted: u64, active: u64) -> DatabaseMetrics {
    let got = m.metrics_snapshot();
    assert_eq!(
        (
            got.transactions_committed,
            got.transactions_aborted,
            got.transactions_active
        ),
        (committed, aborted, active),
        "(committed, aborted, active)"
    );
    let rate = if committed + aborted == 0 {
        1.0
    } else {
        committed as f64 / (committed + aborted) as f64
    };
    assert_eq!(got.commit_rate, rate);
    got
}

#[test]
fn metrics_after_a_known_sequence() {
    let m = TransactionManager::new(Storage::ephemeral());
    assert_eq!(
        m.metrics_snapshot(),
        DatabaseMetrics {
            transactions_committed: 0,
            transactions_aborted: 0,
            transactions_active: 0,
            commit_rate: 1.0,
            operations: 0,
        }
    );

    // Two open transactions.
    let mut t1 = m.begin();
    let mut t2 = m.begin();
    expect(&m, 0, 0, 2);
    assert!(t1.get(b"x").is_none());
    // A writer commits.
    t2.put(k("x"), v("1"));
    t2.commit().unwrap().unwrap();
    expect(&m, 1, 0, 1);
    // A read-only transaction commits (without a version) and counts as committed.
    assert_eq!(t1.commit().unwrap(), None);
    expect(&m, 2, 0, 0);

    // A conflict.
    let mut t3 = m.begin();
    assert!(t3.get(b"x").is_some());
    t3.put(k("x"), v("3"));
    let mut t4 = m.begin();
    t4.put(k("x"), v("4"));
    expect(&m, 2, 0, 2);
    t4.commit().unwrap().unwrap();
    assert!(t3.commit().unwrap_err().is_conflict());
    let got = expect(&m, 3, 1, 0);
    assert_eq!(got.commit_rate, 0.75);

    // An explicit abort and a dropped transaction.
    let t5 = m.begin();
    let mut t6 = m.begin();
    t6.put(k("y"), v("6"));
    expect(&m, 3, 1, 2);
    t5.abort();
    drop(t6);
    let got = expect(&m, 3, 3, 0);
    assert_eq!(got.commit_rate, 0.5);

    // run: an error from the closure aborts once and is not retried.
    let mut calls = 0;
    let err = m
        .run(|t| {
            calls += 1;
            t.put(k("z"), v("never"));
            Err::<(), _>(Error::InvalidKey("bad".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey(_)));
    assert_eq!(calls, 1);
    expect(&m, 3, 4, 0);

    // run: one conflict, then success: one abort and one commit (plus the interferer's).
    let other = m.clone();
    let mut calls = 0;
    let (value, info) = m
        .run(|t| {
            calls += 1;
            let seen = t.get(b"x").unwrap().value.unwrap();
            if calls == 1 {
                let mut i = other.begin();
                i.put(k("x"), v("interfered"));
                i.commit().unwrap();
            }
            t.put(k("x"), v("run"));
            Ok(seen)
        })
        .unwrap();
    assert_eq!(calls, 2);
    assert_eq!(&*value, b"interfered");
    assert_eq!(info.unwrap().version, 4);
    expect(&m, 5, 5, 0);

    // run: a closure that never writes commits read-only.
    let ((), info) = m
        .run(|t| {
            t.get(b"x");
            Ok(())
        })
        .unwrap();
    assert!(info.is_none());
    expect(&m, 6, 5, 0);

    // run giving up: every attempt counts as an abort.
    let limited = m.clone().with_max_attempts(4);
    let other = m.clone();
    let err = limited
        .run(|t| {
            t.get(b"x");
            let mut i = other.begin();
            i.put(k("x"), v("again"));
            i.commit().unwrap();
            t.put(k("x"), v("lost"));
            Ok(())
        })
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("gave up after 4 attempts"),
        "{err}"
    );
    // The limited manager shares the counters: 4 interferers committed, 4 attempts aborted.
    let got = expect(&m, 10, 9, 0);
    assert_eq!(limited.metrics_snapshot(), got);
    assert_eq!(got.commit_rate, 10.0 / 19.0);

    // Operations are counted by the layers above.
    m.metrics().record_operations(7);
    m.metrics().record_operations(3);
    assert_eq!(m.metrics_snapshot().operations, 10);
    assert_eq!(m.storage().visible_version(), 8);
}

#[test]
fn a_storage_error_at_commit_counts_as_aborted_and_is_not_retried() {
    // A failed fsync (not `close`, whose error is a non-serious ConstraintViolation
    // returned before the closure runs).
    let fs = strata_storage::testing::FaultyVfs::new();
    let opts = StorageOptions {
        durability: DurabilityMode::Strict,
        vfs: Arc::new(fs.clone()),
        lock_directory: false,
        ..StorageOptions::default()
    };
    let m = TransactionManager::new(Storage::open("/db", opts).unwrap());
    m.run(|t| {
        t.put(k("a"), v("1"));
        Ok(())
    })
    .unwrap();
    expect(&m, 1, 0, 0);
    fs.fail_sync_after(1);
    let mut calls = 0;
    let err = m
        .run(|t| {
            calls += 1;
            t.put(k("b"), v("2"));
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(calls, 1);
    expect(&m, 1, 1, 0);
}

#[test]
fn a_closed_storage_fails_before_the_closure_runs() {
    let m = TransactionManager::new(Storage::ephemeral());
    m.storage().close().unwrap();
    let mut calls = 0;
    let err = m
        .run(|_| {
            calls += 1;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err}");
    assert!(!err.is_serious());
    assert_eq!(calls, 0);
}

#[test]
fn a_new_manager_starts_its_own_counters() {
    let s = Storage::ephemeral();
    let m1 = TransactionManager::new(s.clone());
    let mut t = m1.begin();
    t.put(k("a"), v("1"));
    t.commit().unwrap();
    let m2 = TransactionManager::new(s);
    expect(&m1, 1, 0, 0);
    expect(&m2, 0, 0, 0);
    // Clones share counters.
    let m3 = m1.clone();
    m3.begin().abort();
    expect(&m1, 1, 1, 0);
}
