//! Conflict detection keeps no state that outlives the transactions: validation reads the
//! version chains in the store, and a transaction's only footprint outside itself is its
//! snapshot pin. After any number of conflicting transactions — committed, conflicted,
//! aborted, dropped or unwound by a panic — nothing is pinned (`oldest_pinned()` is the
//! visible version), no transaction is counted active, the store holds only the keys that
//! were committed, and garbage collection can reclaim every old version.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use strata_concurrency::{Transaction, TransactionManager};
use strata_core::Error;
use strata_storage::{RetentionPolicy, Storage};

fn k(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn get_u64(t: &mut Transaction, key: &str) -> u64 {
    t.get(key.as_bytes())
        .and_then(|e| e.value)
        .map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

fn put_u64(t: &mut Transaction, key: &str, n: u64) {
    t.put(k(key), Arc::from(n.to_string().as_bytes()));
}

fn assert_idle(m: &TransactionManager) {
    let s = m.storage();
    assert_eq!(
        s.oldest_pinned(),
        s.visible_version(),
        "a snapshot is still pinned"
    );
    assert_eq!(m.metrics_snapshot().transactions_active, 0);
}

#[test]
fn ten_thousand_conflicts_leave_no_state_behind() {
    const N: u64 = 10_000;
    let m = TransactionManager::new(Storage::ephemeral());
    let s = m.storage().clone();
    let mut seed = m.begin();
    put_u64(&mut seed, "hot", 0);
    seed.commit().unwrap();

    for i in 0..N {
        // The loser reads the hot key and would write it plus a key of its own...
        let mut loser = m.begin();
        let n = get_u64(&mut loser, "hot");
        put_u64(&mut loser, "hot", n + 1_000_000);
        put_u64(&mut loser, &format!("loser/{i}"), i);
        assert_eq!(s.oldest_pinned(), i + 1);
        // ...but a winner commits the hot key first.
        let mut winner = m.begin();
        let n = get_u64(&mut winner, "hot");
        put_u64(&mut winner, "hot", n + 1);
        assert_eq!(winner.commit().unwrap().unwrap().version, i + 2);
        // The loser's snapshot is still pinned until it finishes.
        assert_eq!(s.oldest_pinned(), i + 1);
        let err = loser.commit().unwrap_err();
        assert!(matches!(err, Error::Conflict(_)) && err.is_retryable());
        if i % 1_000 == 0 {
            assert_idle(&m);
        }
    }

    assert_idle(&m);
    assert_eq!(s.visible_version(), N + 1);
    let metrics = m.metrics_snapshot();
    assert_eq!(metrics.transactions_committed, N + 1);
    assert_eq!(metrics.transactions_aborted, N);
    // Only the committed key exists: no loser writes, no side tables in the keyspace.
    assert_eq!(s.key_count().unwrap(), 1);
    assert!(s
        .scan_prefix(b"loser/", s.visible_version(), None)
        .unwrap()
        .is_empty());
    let hot = s.get(b"hot", s.visible_version()).unwrap().unwrap();
    assert_eq!(&*hot.value.unwrap(), N.to_string().as_bytes());
    // Nothing holds old versions: GC can cut the chain down to the newest entry.
    assert_eq!(
        s.history(b"hot", s.visible_version(), None, None)
            .unwrap()
            .len() as u64,
        N + 1
    );
    let dropped = s.gc_prefix(
        b"",
        &RetentionPolicy::KeepLast(1),
        strata_core::Timestamp::now(),
    );
    assert_eq!(dropped as u64, N);
    assert_eq!(
        s.history(b"hot", s.visible_version(), None, None)
            .unwrap()
            .len(),
        1
    );
    // A transaction that began before all of this would still be validated correctly,
    // and a fresh one commits without interference from the 10,000 losers.
    let mut t = m.begin();
    let n = get_u64(&mut t, "hot");
    put_u64(&mut t, "hot", n + 1);
    assert_eq!(t.commit().unwrap().unwrap().version, N + 2);
    assert_idle(&m);
}

#[test]
fn concurrent_conflicts_release_their_pins() {
    const THREADS: usize = 4;
    const CONFLICTS: u64 = 10_000;
    // Retries are unbounded in practice: the test is about pins, and on a loaded
    // two-core machine one of four threads hammering one key can lose 1,000 times in
    // a row (seen once while other builds ran).
    let m = TransactionManager::new(Storage::ephemeral()).with_max_attempts(u32::MAX);
    let s = m.storage().clone();
    let mut seed = m.begin();
    put_u64(&mut seed, "hot", 0);
    seed.commit().unwrap();
    // A long-lived reader pins version 1 for the whole run.
    let mut reader = m.begin();
    assert_eq!(reader.snapshot_version(), 1);
    assert_eq!(get_u64(&mut reader, "hot"), 0);

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (m, done, barrier) = (m.clone(), done.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut commits = 0u64;
                while !done.load(Ordering::Relaxed) {
                    m.run(|t| {
                        let n = get_u64(t, "hot");
                        thread::yield_now();
                        put_u64(t, "hot", n + 1);
                        Ok(())
                    })
                    .unwrap();
                    commits += 1;
                    // The deadline only keeps a broken build from spinning forever.
                    if m.metrics_snapshot().transactions_aborted >= CONFLICTS
                        || started.elapsed() > Duration::from_secs(60)
                    {
                        done.store(true, Ordering::Relaxed);
                    }
                }
                commits
            })
        })
        .collect();
    let mut samples = 0;
    while !done.load(Ordering::Relaxed) {
        // While the reader is open, it is the oldest pin; GC keeps what it can see.
        assert_eq!(s.oldest_pinned(), 1);
        assert!(m.metrics_snapshot().transactions_active <= THREADS as u64 + 1);
        samples += 1;
        thread::sleep(Duration::from_millis(1));
    }
    let commits: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(samples > 0);
    assert_eq!(s.oldest_pinned(), 1);
    s.gc_prefix(
        b"",
        &RetentionPolicy::KeepLast(1),
        strata_core::Timestamp::now(),
    );
    // GC kept the version the reader sees, and everything after it.
    assert_eq!(
        get_u64(&mut reader, "hot"),
        0,
        "GC dropped what an open snapshot reads"
    );
    assert_eq!(reader.get(b"hot").unwrap().version, 1);
    let kept = s
        .history(b"hot", s.visible_version(), None, None)
        .unwrap()
        .len() as u64;
    assert_eq!(kept, commits + 1);
    assert_eq!(reader.commit().unwrap(), None);

    assert_idle(&m);
    let metrics = m.metrics_snapshot();
    assert!(
        metrics.transactions_aborted >= CONFLICTS,
        "only {} conflicts in {:?}",
        metrics.transactions_aborted,
        started.elapsed()
    );
    // The seed, the reader and the increments.
    assert_eq!(metrics.transactions_committed, commits + 2);
    assert_eq!(s.visible_version(), commits + 1);
    let hot = s.get(b"hot", s.visible_version()).unwrap().unwrap();
    assert_eq!(&*hot.value.unwrap(), commits.to_string().as_bytes());
    // With the reader gone, GC reclaims everything but the newest version.
    s.gc_prefix(
        b"",
        &RetentionPolicy::KeepLast(1),
        strata_core::Timestamp::now(),
    );
    assert_eq!(
        s.history(b"hot", s.visible_version(), None, None)
            .unwrap()
            .len(),
        1
    );
    eprintln!(
        "{commits} commits, {} conflicts",
        metrics.transactions_aborted
    );
}

#[test]
fn every_way_a_transaction_ends_releases_its_pin() {
    let m = TransactionManager::new(Storage::ephemeral());
    let mut seed = m.begin();
    put_u64(&mut seed, "x", 1);
    seed.commit().unwrap();
    assert_idle(&m);

    // Explicit abort.
    let mut t = m.begin();
    get_u64(&mut t, "x");
    t.abort();
    assert_idle(&m);
    // Dropped without commit.
    let mut t = m.begin();
    put_u64(&mut t, "x", 2);
    drop(t);
    assert_idle(&m);
    // Read-only commit.
    let mut t = m.begin();
    get_u64(&mut t, "x");
    assert_eq!(t.commit().unwrap(), None);
    assert_idle(&m);
    // An error from the closure of run.
    let err = m
        .run(|t| {
            get_u64(t, "x");
            Err::<(), _>(Error::NotFound("x".into()))
        })
        .unwrap_err();
    assert!(err.is_not_found());
    assert_idle(&m);
    // A panic inside the closure of run unwinds through the open transaction.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.run(|t| -> strata_core::Result<()> {
            put_u64(t, "x", 3);
            panic!("caller bug");
        })
    }));
    assert!(caught.is_err());
    assert_idle(&m);
    // Giving up after the maximum number of attempts.
    let m3 = m.clone().with_max_attempts(3);
    let interferer = m.clone();
    let err = m3
        .run(|t| {
            let n = get_u64(t, "x");
            let mut other = interferer.begin();
            put_u64(&mut other, "x", n + 10);
            other.commit().unwrap();
            put_u64(t, "x", n + 1);
            Ok(())
        })
        .unwrap_err();
    assert!(err.is_retryable());
    assert_idle(&m);
    let metrics = m.metrics_snapshot();
    // seed, read-only, 3 interferers.
    assert_eq!(metrics.transactions_committed, 5);
    // abort, drop, closure error, panic, 3 conflicts.
    assert_eq!(metrics.transactions_aborted, 7);
    assert_eq!(m.storage().visible_version(), 4);
}

/// A one-shot read (`TransactionManager::read`) keeps no read set, so it cannot
/// validate: a write through it commits nothing and fails, and it leaves nothing
/// pinned or active.
#[test]
fn a_read_only_snapshot_refuses_to_commit_a_write() {
    let m = TransactionManager::new(Storage::ephemeral());
    m.run(|t| {
        put_u64(t, "a", 1);
        Ok(())
    })
    .unwrap();
    let now = strata_core::Timestamp::now();
    assert_eq!(m.read(now, |t| Ok(get_u64(t, "a"))).unwrap(), 1);
    let r = m.read(now, |t| {
        put_u64(t, "a", 2);
        Ok(())
    });
    assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
    assert_eq!(m.read(now, |t| Ok(get_u64(t, "a"))).unwrap(), 1);
    assert_idle(&m);
}

/// `run_with_clock` reads the caller's clock once per attempt, when the attempt begins,
/// and judges that attempt's reads at it; a retry after a conflict reads it again.
#[test]
fn run_with_clock_reads_the_clock_once_per_attempt() {
    use strata_core::Timestamp;
    let m = TransactionManager::new(Storage::ephemeral());
    let mut ticks = 0u64;
    let mut seen = Vec::new();
    let mut first = true;
    m.run_with_clock(
        || {
            ticks += 1;
            Timestamp(1_000 * ticks)
        },
        |t| {
            seen.push(t.read_time());
            t.get(b"k");
            t.put(b"k".to_vec().into_boxed_slice(), Arc::from(&b"v"[..]));
            if std::mem::take(&mut first) {
                // A concurrent commit of the key this attempt read: it must retry.
                let mut other = m.begin();
                other.put(b"k".to_vec().into_boxed_slice(), Arc::from(&b"w"[..]));
                other.commit().unwrap();
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen, vec![Timestamp(1_000), Timestamp(2_000)]);
}
