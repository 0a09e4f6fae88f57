//! Review probes of forks, time travel, diff and purge (`db.runs.fork`, `db.at`,
//! `db.runs.diff`/`diff_runs`, `db.runs.purge`/`purge_with_forks`).
//!
//! The tests named `bug_*` expose defects found in review and fail until they are
//! fixed; the others pin down semantics that hold.
use std::path::Path;

use stratadb::prelude::*;
use stratadb::{Change, ChangeKind, DiffPrimitive};

/// The files under `dir` that contain `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

fn values(h: Vec<Versioned<Value>>) -> Vec<Value> {
    h.into_iter().map(|v| v.value).collect()
}

fn collect(d: stratadb::Diff) -> Vec<Change> {
    d.collect::<Result<Vec<_>>>().unwrap()
}

// ---------------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------------

/// A chain root -> mid -> leaf, all purged (one cascade): nothing reads the root any
/// more, so after a full compaction no file may hold its bytes.
#[test]
fn bug_purged_chain_of_forks_leaves_root_bytes_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Strata::open(&path).unwrap();
    let root = db.runs.create(None).unwrap();
    db.kv.put(&root, "secret", "ROOT-SECRET-7781").unwrap();
    let mid = db.runs.fork(&root, None).unwrap();
    db.kv.put(&mid, "m", "MID-SECRET-77812").unwrap();
    let leaf = db.runs.fork(&mid, None).unwrap();
    db.kv.put(&leaf, "l", "LEAF-SECRET-7781").unwrap();
    db.checkpoint().unwrap();
    db.runs.purge_with_forks(&root).unwrap();
    for r in [root, mid, leaf] {
        assert!(db.runs.get(&r).unwrap().is_none());
    }
    db.compact().unwrap();
    db.close().unwrap();
    let db = Strata::open(&path).unwrap();
    db.compact().unwrap();
    db.close().unwrap();
    for m in ["ROOT-SECRET-7781", "MID-SECRET-77812", "LEAF-SECRET-7781"] {
        assert_eq!(
            files_contain(&path, m.as_bytes()),
            Vec::<String>::new(),
            "{m}: every run of the chain was purged and compacted; no live fork reads it, \
             so no file may still hold it"
        );
    }
}

/// Same chain purged one run at a time, leaf first.
#[test]
fn bug_purged_chain_one_by_one_leaves_root_bytes_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Strata::open(&path).unwrap();
    let root = db.runs.create(None).unwrap();
    db.kv.put(&root, "secret", "ROOT-SECRET-9124").unwrap();
    let mid = db.runs.fork(&root, None).unwrap();
    let leaf = db.runs.fork(&mid, None).unwrap();
    db.checkpoint().unwrap();
    db.runs.purge(&leaf).unwrap();
    db.runs.purge(&mid).unwrap();
    db.runs.purge(&root).unwrap();
    db.compact().unwrap();
    assert_eq!(
        files_contain(&path, b"ROOT-SECRET-9124"),
        Vec::<String>::new(),
        "root, mid and leaf are all purged: nothing reads the root's value any more"
    );
    db.close().unwrap();
}

/// A fork's history of a key it inherited lists the parent's versions up to the fork;
/// "forks made earlier keep exactly what they saw" must hold for history and get_at,
/// not only for the latest value.
#[test]
fn bug_parent_purge_truncates_fork_history_and_get_at() {
    let db = Strata::ephemeral().unwrap();
    let parent = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&parent, "k", 1).unwrap();
    db.kv.put(&parent, "k", 2).unwrap();
    let fork = db.runs.fork(&parent, None).unwrap();
    let before = values(db.kv.history(&fork, "k", None, None).unwrap());
    assert_eq!(before, vec![Value::Int(2), Value::Int(1)]);
    assert_eq!(db.kv.get_at(&fork, "k", v1).unwrap().value, Value::Int(1));

    db.runs.purge(&parent).unwrap();
    assert_eq!(
        values(db.kv.history(&fork, "k", None, None).unwrap()),
        before,
        "the fork's history of an inherited key changed when its parent was purged"
    );
    assert_eq!(
        db.kv.get_at(&fork, "k", v1).map(|v| v.value).ok(),
        Some(Value::Int(1)),
        "get_at in the fork at a version before the fork no longer answers after the \
         parent's purge"
    );
}

/// A fork inherits `KeepAll`; its reads apply its own policy to the chain it sees
/// ("answers are the same whether or not collection has run"). Changing the parent's
/// policy afterwards must not thin the fork's history.
#[test]
fn bug_parent_retention_change_thins_fork_history() {
    let db = Strata::ephemeral().unwrap();
    let parent = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&parent, "k", 1).unwrap();
    db.kv.put(&parent, "k", 2).unwrap();
    db.kv.put(&parent, "k", 3).unwrap();
    let fork = db.runs.fork(&parent, None).unwrap();
    assert_eq!(
        db.runs.get_retention(&fork).unwrap(),
        RetentionPolicy::KeepAll
    );
    let before = values(db.kv.history(&fork, "k", None, None).unwrap());
    assert_eq!(before, vec![Value::Int(3), Value::Int(2), Value::Int(1)]);
    db.runs
        .set_retention(&parent, RetentionPolicy::KeepLast(1))
        .unwrap();
    assert_eq!(
        values(db.kv.history(&fork, "k", None, None).unwrap()),
        before,
        "the fork keeps all history, yet its history changed when the parent's \
         retention policy (and garbage collection) did"
    );
    assert_eq!(db.kv.get_at(&fork, "k", v1).unwrap().value, Value::Int(1));
}

#[test]
fn purge_refuses_a_transaction_that_read_the_run_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Strata::open(&path).unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "k", "PURGED-VALUE-0001").unwrap();
    let mut first = true;
    let r = db.transaction(|t| {
        t.kv_get(&run, "k")?;
        if first {
            first = false;
            db.runs.purge(&run)?;
        }
        t.kv_set(&run, "late", "LATE-WRITE-00001")?;
        Ok(())
    });
    assert!(matches!(r, Err(Error::RunError(_))), "{r:?}");
    assert!(db.runs.get(&run).unwrap().is_none());
    db.compact().unwrap();
    for m in ["PURGED-VALUE-0001", "LATE-WRITE-00001"] {
        assert_eq!(files_contain(&path, m.as_bytes()), Vec::<String>::new());
    }
    db.close().unwrap();
}

#[test]
fn purge_then_reopen_without_close_then_compact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (run, fork) = {
        let db = Strata::open(&path).unwrap();
        let run = db.runs.create(None).unwrap();
        db.kv.put(&run, "k", "SEEN-BY-FORK-001").unwrap();
        let fork = db.runs.fork(&run, None).unwrap();
        db.kv.put(&run, "k", "NOT-SEEN-000001").unwrap();
        db.runs.purge(&run).unwrap();
        drop(db);
        (run, fork)
    };
    let db = Strata::open(&path).unwrap();
    assert!(db.runs.get(&run).unwrap().is_none());
    assert!(matches!(db.kv.get_in(&run, "k"), Err(Error::RunError(_))));
    assert_eq!(
        db.kv.get_in(&fork, "k").unwrap().unwrap().value,
        Value::from("SEEN-BY-FORK-001")
    );
    db.compact().unwrap();
    assert_eq!(
        files_contain(&path, b"NOT-SEEN-000001"),
        Vec::<String>::new()
    );
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------
// Retention around forks and views
// ---------------------------------------------------------------------------------

/// A run kept `KeepLast(1)` for a while (its history was thinned), then `KeepAll`:
/// a fork or a view at a version from the thinned past must refuse (as it does while
/// the policy is `KeepLast`) or answer right — never answer "absent".
#[test]
fn bug_fork_and_view_in_a_past_thinned_before_the_policy_became_keep_all() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&run, "k", "old").unwrap();
    db.kv.put(&run, "k", "new").unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepAll)
        .unwrap();

    let mut wrong = Vec::new();
    match db.runs.fork(&run, Some(v1)) {
        Err(Error::ConstraintViolation(_)) => {}
        Ok(fork) => {
            let got = db.kv.get_in(&fork, "k").unwrap().map(|v| v.value);
            if got != Some(Value::from("old")) {
                wrong.push(format!("fork at v1 reads k = {got:?}"));
            }
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    match db.at(v1).unwrap().kv.get_in(&run, "k") {
        Err(Error::ConstraintViolation(_)) => {}
        Ok(v) => {
            let got = v.map(|v| v.value);
            if got != Some(Value::from("old")) {
                wrong.push(format!("db.at(v1) reads k = {got:?}"));
            }
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(
        wrong.is_empty(),
        "k was \"old\" at v1; the run's history was thinned, so both must answer \"old\" \
         or refuse: {wrong:?}"
    );
}

// ---------------------------------------------------------------------------------
// Views of the past
// ---------------------------------------------------------------------------------

/// `AtVersion::runs` answers "as of that version": its diffs must compare as of the
/// view's version, not the present.
#[test]
fn bug_view_runs_diff_reads_the_present() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "x", 0).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    let v1 = db.kv.put(&fork, "x", 1).unwrap();
    db.kv.put(&fork, "x", 2).unwrap();
    db.kv.put(&fork, "later", 1).unwrap();

    let past = db.at(v1).unwrap();
    let changes = collect(past.runs.diff_runs(&run, &fork).unwrap());
    let summary: Vec<(String, ChangeKind, Option<Value>)> = changes
        .iter()
        .map(|c| {
            (
                c.key.clone(),
                c.kind,
                c.after.as_ref().map(|v| v.value.clone()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("x".to_owned(), ChangeKind::Changed, Some(Value::Int(1)))],
        "a view at v1 must diff the runs as they were at v1"
    );
    let since: Vec<Change> = collect(past.runs.diff(&fork, v1, None).unwrap());
    assert!(
        since.is_empty(),
        "diff(fork, v1, None) in a view at v1 must be empty, got {since:?}"
    );
}

#[test]
fn view_of_a_fork_reads_through_the_lineage_as_of_its_version() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "a", 1).unwrap();
    db.events.append_in(&run, "s", json!({"n": 1})).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    let v = db.events.append_in(&fork, "s", json!({"n": 2})).unwrap();
    assert_eq!(v, Version::Sequence(2));
    let vf = db.kv.put(&fork, "b", 2).unwrap();
    db.kv.put(&fork, "a", 10).unwrap();
    db.events.append_in(&fork, "s", json!({"n": 3})).unwrap();
    db.kv.put(&run, "c", 3).unwrap();
    let past = db.at(vf).unwrap();
    assert_eq!(
        past.kv.keys(&fork, "", None).unwrap(),
        vec!["a".to_owned(), "b".to_owned()]
    );
    assert_eq!(
        past.kv.get_in(&fork, "a").unwrap().unwrap().value,
        Value::Int(1)
    );
    assert_eq!(past.events.count(&fork, "s").unwrap(), 2);
    assert_eq!(past.events.read_in(&fork, "s", 10).unwrap().len(), 2);
    let info = past.runs.get(&fork).unwrap().unwrap().value;
    assert_eq!(info.forked_from.unwrap().parent, run);
    // A future version is refused.
    assert!(matches!(
        db.at(Version::Txn(u64::MAX)),
        Err(Error::ConstraintViolation(_))
    ));
}

// ---------------------------------------------------------------------------------
// Export / import
// ---------------------------------------------------------------------------------

/// An import into a database that already has data commits every version anew (new
/// version numbers). A fork record carries its parent's version number: it must be
/// translated too, or the fork must be refused — a fork must never read another
/// version of its parent than the one it was made at.
#[test]
fn bug_merge_import_of_a_fork_reads_the_parent_at_a_wrong_version() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let db = Strata::open(&src).unwrap();
    let parent = db.runs.create(None).unwrap();
    let v1 = db.kv.put(&parent, "k", "at-fork").unwrap();
    db.kv.put(&parent, "k", "after-fork-1").unwrap();
    db.kv.put(&parent, "k", "after-fork-2").unwrap();
    db.kv.put(&parent, "only-after", 1).unwrap();
    let fork = db.runs.fork(&parent, Some(v1)).unwrap();
    db.kv.put(&fork, "own", 1).unwrap();
    let mut dump = Vec::new();
    db.export(&mut dump, None, |_| {}).unwrap();
    db.close().unwrap();

    // A target that already holds data: the import is a merge.
    let dst = dir.path().join("dst");
    let db = Strata::open(&dst).unwrap();
    let other = db.runs.create(None).unwrap();
    for i in 0..5 {
        db.kv.put(&other, "x", i).unwrap();
    }
    db.close().unwrap();
    // Chosen semantics: a merge renumbers versions, so forks are refused with a
    // clear error before any of them is imported.
    match stratadb::import(&dst, &dump[..]) {
        Err(Error::ConstraintViolation(m)) => {
            assert!(m.contains("fork"), "{m}");
            let db = Strata::open(&dst).unwrap();
            assert!(db.runs.get(&fork).unwrap().is_none());
            return;
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(report) => assert!(!report.exact),
    }

    let db = Strata::open(&dst).unwrap();
    let get = |r: &RunId, k: &str| db.kv.get_in(r, k).unwrap().map(|v| v.value);
    assert_eq!(get(&parent, "k"), Some(Value::from("after-fork-2")));
    assert_eq!(get(&fork, "own"), Some(Value::Int(1)));
    assert_eq!(
        get(&fork, "k"),
        Some(Value::from("at-fork")),
        "after a merge import the fork reads its parent at another version"
    );
    assert_eq!(get(&fork, "only-after"), None);
    db.close().unwrap();
}

#[test]
fn exact_import_keeps_a_fork_of_a_purged_parent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let db = Strata::open(&src).unwrap();
    let parent = db.runs.create(None).unwrap();
    db.kv.put(&parent, "k", "seen").unwrap();
    db.events.append_in(&parent, "s", json!({"n": 1})).unwrap();
    let fork = db.runs.fork(&parent, None).unwrap();
    db.kv.put(&parent, "k", "PURGED-AFTER-FORK").unwrap();
    db.runs.purge(&parent).unwrap();
    let mut dump = Vec::new();
    db.export(&mut dump, None, |_| {}).unwrap();
    db.close().unwrap();
    assert!(
        !dump.windows(17).any(|w| w == b"PURGED-AFTER-FORK"),
        "an export after a purge must not carry what no fork reads"
    );
    let dst = dir.path().join("dst");
    assert!(stratadb::import(&dst, &dump[..]).unwrap().exact);
    let db = Strata::open(&dst).unwrap();
    assert!(db.runs.get(&parent).unwrap().is_none());
    assert!(matches!(
        db.kv.get_in(&parent, "k"),
        Err(Error::RunError(_))
    ));
    assert_eq!(
        db.kv.get_in(&fork, "k").unwrap().unwrap().value,
        Value::from("seen")
    );
    assert_eq!(
        db.events.append_in(&fork, "s", json!({"n": 2})).unwrap(),
        Version::Sequence(2)
    );
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------

/// A deterministic pseudo-random vector.
fn pseudo(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A forked collection whose index is already shared with its parent's: the parent
/// then changes more keys than its bounded changelog lists (65,536). The fork must keep
/// finding the vectors it saw — the doc says the fork falls back to a rebuild when the
/// parent's changelog no longer reaches back to the fork.
#[test]
fn bug_busy_parent_overflows_changelog_and_fork_loses_a_vector() {
    let db = Strata::ephemeral().unwrap();
    let dim = 4;
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "c", dim, DistanceMetric::Cosine)
        .unwrap();
    let victim = vec![1.0f32, 0.0, 0.0, 0.0];
    db.vectors
        .upsert(&run, "c", "victim", &victim, None)
        .unwrap();
    let batch = |round: u64| -> Vec<(String, Vec<f32>, Option<Value>)> {
        (0..1_000u64)
            .map(|i| {
                let mut v = pseudo(round * 10_000 + i, dim);
                v[0] = -v[0].abs(); // never close to the victim
                (format!("k{i:04}"), v, None)
            })
            .collect()
    };
    db.vectors.upsert_batch(&run, "c", batch(0)).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    // The fork's index is made now: it shares the parent's.
    let top = db.vectors.search(&fork, "c", &victim, 1, None).unwrap();
    assert_eq!(top[0].key, "victim");
    assert!(matches!(
        strata_vector::internal::index_source(&db.vectors, &fork, "c"),
        Some(strata_vector::IndexSource::Forked { .. })
    ));

    // The parent deletes the victim, then gets very busy.
    db.vectors.delete(&run, "c", "victim").unwrap();
    let top = db.vectors.search(&fork, "c", &victim, 1, None).unwrap();
    assert_eq!(top[0].key, "victim", "right after the parent's delete");
    for round in 1..=66 {
        db.vectors.upsert_batch(&run, "c", batch(round)).unwrap();
    }
    assert_eq!(db.vectors.count(&fork, "c").unwrap(), 1_001);
    assert!(db.vectors.get(&fork, "c", "victim").unwrap().is_some());
    let top = db.vectors.search(&fork, "c", &victim, 1, None).unwrap();
    assert_eq!(
        top.first().map(|m| m.key.as_str()),
        Some("victim"),
        "the fork still holds `victim` (get finds it) but its search no longer does \
         once the parent's changelog dropped the delete"
    );
}

/// Forks made while another thread keeps adding vectors to the parent: each fork's
/// count must equal the number of vector records it sees (counted by a diff from
/// before the collection existed).
#[test]
fn bug_fork_count_races_the_parents_index_update() {
    let db = std::sync::Arc::new(Strata::ephemeral().unwrap());
    let dim = 4;
    let run = db.runs.create(None).unwrap();
    let v0 = db.kv.put(&run, "start", 1).unwrap();
    db.vectors
        .create_collection(&run, "c", dim, DistanceMetric::Cosine)
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 1_900 {
                db.vectors
                    .upsert(&run, "c", &format!("w{i:05}"), &pseudo(i, dim), None)
                    .unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let truth = |fork: &RunId| {
        collect(db.runs.diff(fork, v0, None).unwrap())
            .into_iter()
            .filter(|c| c.primitive == DiffPrimitive::Vector && c.kind == ChangeKind::Added)
            .count() as u64
    };
    let mut forks = Vec::new();
    while !writer.is_finished() && forks.len() < 400 {
        let fork = db.runs.fork(&run, None).unwrap();
        db.vectors.count(&fork, "c").unwrap(); // the fork's index is made now
        forks.push(fork);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    // Long after the writer stopped: the counts stay wrong.
    let bad: Vec<(u64, u64)> = forks
        .iter()
        .map(|f| (db.vectors.count(f, "c").unwrap(), truth(f)))
        .filter(|(c, t)| c != t)
        .collect();
    assert!(
        bad.is_empty(),
        "forks whose count differs from the vector records they hold (count, records): {bad:?}"
    );
}

/// Writers keep changing the parent (a counter and one item per increment, in one
/// transaction) while forks are made: every fork sees a consistent state.
#[test]
fn forks_made_under_concurrent_writers_are_consistent_snapshots() {
    let db = std::sync::Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.create(None).unwrap();
    db.kv.put(&run, "n", 0).unwrap();
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    db.transaction(|x| {
                        let n = x.kv_get(&run, "n")?.unwrap().value.as_int().unwrap();
                        x.kv_set(&run, "n", n + 1)?;
                        x.kv_set(&run, &format!("item:{t}:{i:04}"), n + 1)?;
                        x.events_append(&run, "log", json!({"n": n + 1}))?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    let mut forks = Vec::new();
    for _ in 0..40 {
        let f = db.runs.fork(&run, None).unwrap();
        // Write into the fork while the parent keeps moving.
        db.kv.put(&f, "mine", 1).unwrap();
        forks.push(f);
    }
    for w in writers {
        w.join().unwrap();
    }
    for f in &forks {
        let n = db
            .kv
            .get_in(f, "n")
            .unwrap()
            .unwrap()
            .value
            .as_int()
            .unwrap();
        let items = db.kv.keys(f, "item:", None).unwrap().len() as i64;
        assert_eq!(items, n, "fork {f}: counter {n} but {items} items");
        assert_eq!(db.events.count(f, "log").unwrap() as i64, n);
        // A fork of the fork at the same state.
        let ff = db.runs.fork(f, None).unwrap();
        assert_eq!(
            db.kv.keys(&ff, "item:", Some(1_000)).unwrap().len() as i64,
            n
        );
    }
    assert_eq!(
        db.kv.get_in(&run, "n").unwrap().unwrap().value,
        Value::Int(300)
    );
}

/// A reader opened read-only sees forks, writes in them and purges the writer makes,
/// after each refresh.
#[test]
fn read_only_reader_follows_forks_and_purges_after_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let w = StrataBuilder::new().path(&path).strict().open().unwrap();
    let run = w.runs.create(None).unwrap();
    for i in 0..50 {
        w.kv.put(&run, &format!("k{i:02}"), i).unwrap();
    }
    w.kv.put(&w.runs.default_run(), "tick", 0).unwrap();
    w.flush().unwrap();
    let r = StrataBuilder::new().path(&path).read_only().open().unwrap();
    assert_eq!(r.kv.keys(&run, "", None).unwrap().len(), 50);

    let fork = w.runs.fork(&run, None).unwrap();
    w.kv.put(&fork, "k00", "fork").unwrap();
    w.kv.delete_in(&fork, "k01").unwrap();
    w.kv.put(&run, "k02", "parent-later").unwrap();
    w.kv.put(&w.runs.default_run(), "tick", 1).unwrap();
    w.flush().unwrap();
    r.refresh().unwrap();
    let get = |k: &str| r.kv.get_in(&fork, k).unwrap().map(|v| v.value);
    assert_eq!(get("k00"), Some(Value::from("fork")));
    assert_eq!(get("k01"), None);
    assert_eq!(get("k02"), Some(Value::Int(2)));
    assert_eq!(r.kv.keys(&fork, "", None).unwrap().len(), 49);
    assert_eq!(
        r.runs
            .get(&fork)
            .unwrap()
            .unwrap()
            .value
            .forked_from
            .unwrap()
            .parent,
        run
    );

    // The reader built the fork's own-key set; the writer now writes a key the fork
    // had inherited.
    w.kv.put(&fork, "k03", "fork-later").unwrap();
    w.kv.put(&w.runs.default_run(), "tick", 2).unwrap();
    w.flush().unwrap();
    r.refresh().unwrap();
    assert_eq!(get("k03"), Some(Value::from("fork-later")));

    w.runs.purge(&run).unwrap();
    w.kv.put(&w.runs.default_run(), "tick", 3).unwrap();
    w.flush().unwrap();
    r.refresh().unwrap();
    assert!(matches!(r.kv.get_in(&run, "k05"), Err(Error::RunError(_))));
    assert_eq!(get("k05"), Some(Value::Int(5)));
    drop(r);
    w.close().unwrap();
}

/// A fork that deleted most inherited keys: `keys` with a prefix and a limit still
/// returns `limit` keys (no starvation), and a fork of it agrees.
#[test]
fn keys_with_limit_in_a_fork_that_deleted_most_inherited_keys() {
    let db = Strata::ephemeral().unwrap();
    let run = db.runs.create(None).unwrap();
    let names: Vec<String> = (0..3_000).map(|i| format!("p:{i:05}")).collect();
    let entries: Vec<(&str, Value)> = names.iter().map(|n| (n.as_str(), Value::Int(1))).collect();
    db.kv.mset(&run, &entries).unwrap();
    let fork = db.runs.fork(&run, None).unwrap();
    let doomed: Vec<&str> = names[..2_990].iter().map(|s| s.as_str()).collect();
    assert_eq!(db.kv.mdelete(&fork, &doomed).unwrap(), 2_990);
    assert_eq!(
        db.kv.keys(&fork, "p:", Some(3)).unwrap(),
        vec!["p:02990", "p:02991", "p:02992"]
    );
    let grand = db.runs.fork(&fork, None).unwrap();
    db.kv.delete_in(&grand, "p:02991").unwrap();
    assert_eq!(
        db.kv.keys(&grand, "p:0299", Some(2)).unwrap(),
        vec!["p:02990", "p:02992"]
    );
    assert_eq!(db.kv.keys(&run, "p:", Some(1)).unwrap(), vec!["p:00000"]);
}

/// Depth-4 fork chain: every primitive reads through every level; each level's own
/// writes (json path edits and merges, state cas/delete, events) hide the ancestors'.
#[test]
fn deep_fork_chain_across_primitives() {
    let db = Strata::ephemeral().unwrap();
    let root = db.runs.create(None).unwrap();
    db.json
        .set_in(&root, "doc", json!({"a": {"b": 1}, "list": [1, 2]}))
        .unwrap();
    db.state.set_in(&root, "cell", "r").unwrap();
    db.events.append_in(&root, "s", json!({"lvl": 0})).unwrap();
    let mut levels = vec![root];
    for lvl in 1..=4i64 {
        let parent = *levels.last().unwrap();
        let f = db.runs.fork(&parent, None).unwrap();
        db.json
            .set_path(&f, "doc", &format!("$.l{lvl}"), lvl)
            .unwrap();
        db.json
            .merge(
                &f,
                "doc",
                "$.a",
                json!({ "b": lvl, format!("m{lvl}"): true }),
            )
            .unwrap();
        let cell = db.state.get_in(&f, "cell").unwrap().unwrap();
        assert!(db
            .state
            .cas(&f, "cell", Some(cell.version.as_u64()), format!("c{lvl}"))
            .unwrap()
            .is_some());
        assert_eq!(
            db.events.append_in(&f, "s", json!({ "lvl": lvl })).unwrap(),
            Version::Sequence(lvl as u64 + 1)
        );
        // The parent moves on after the fork: invisible to f.
        db.events
            .append_in(&parent, "s", json!({"late": lvl}))
            .unwrap();
        db.json.set_path(&parent, "doc", "$.late", true).unwrap();
        levels.push(f);
    }
    let leaf = *levels.last().unwrap();
    let doc = db.json.get_in(&leaf, "doc").unwrap().unwrap().value;
    assert_eq!(
        doc,
        json!({
            "a": {"b": 4, "m1": true, "m2": true, "m3": true, "m4": true},
            "list": [1, 2], "l1": 1, "l2": 2, "l3": 3, "l4": 4
        })
    );
    let hist = values(db.state.history(&leaf, "cell", None).unwrap());
    assert_eq!(
        hist,
        vec!["c4", "c3", "c2", "c1", "r"]
            .into_iter()
            .map(Value::from)
            .collect::<Vec<_>>()
    );
    assert_eq!(db.events.count(&leaf, "s").unwrap(), 5);
    let lv: Vec<Value> = values(db.events.range(&leaf, "s", 1, u64::MAX).unwrap());
    assert_eq!(lv, (0..=4).map(|l| json!({ "lvl": l })).collect::<Vec<_>>());
    assert_eq!(
        db.events.head(&leaf, "s").unwrap().unwrap().value,
        json!({"lvl": 4})
    );
    assert_eq!(db.events.streams(&leaf).unwrap(), vec!["s".to_owned()]);
    assert_eq!(db.events.read_in(&leaf, "s", 2).unwrap().len(), 2);
    // Delete in the leaf: the ancestors keep their cell, the counter continues.
    assert!(db.state.delete(&leaf, "cell").unwrap());
    assert!(db.state.get_in(&leaf, "cell").unwrap().is_none());
    assert_eq!(
        db.state.get_in(&levels[3], "cell").unwrap().unwrap().value,
        Value::from("c3")
    );
    let v = db.state.set_in(&leaf, "cell", "again").unwrap();
    assert_eq!(v, Version::Counter(6));
    // The diff of root and leaf lists every primitive.
    let kinds: std::collections::BTreeSet<String> =
        collect(db.runs.diff_runs(&root, &leaf).unwrap())
            .into_iter()
            .map(|c| format!("{:?}/{:?}", c.primitive, c.kind))
            .collect();
    for want in [
        "Json/Changed",
        "State/Changed",
        "Event/Added",
        "Event/Changed",
    ] {
        assert!(kinds.contains(want), "{want} missing from {kinds:?}");
    }
}

/// Collections in forks: delete and recreate in the fork; the parent deletes and
/// recreates after the fork; filters, thresholds and vectors in forks of forks.
#[test]
fn forked_collections_survive_deletes_and_recreations_on_both_sides() {
    let db = Strata::ephemeral().unwrap();
    let dim = 8;
    let run = db.runs.create(None).unwrap();
    db.vectors
        .create_collection(&run, "c", dim, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .create_collection(&run, "d", dim, DistanceMetric::Euclidean)
        .unwrap();
    for i in 0..300u64 {
        let tag = if i % 3 == 0 { "a" } else { "b" };
        db.vectors
            .upsert(
                &run,
                "c",
                &format!("v{i:03}"),
                &pseudo(i, dim),
                Some(json!({"t": tag})),
            )
            .unwrap();
        db.vectors
            .upsert(&run, "d", &format!("v{i:03}"), &pseudo(i, dim), None)
            .unwrap();
    }
    let fork = db.runs.fork(&run, None).unwrap();
    // Load the fork's shared index before the parent changes.
    assert_eq!(db.vectors.count(&fork, "c").unwrap(), 300);
    // The parent drops and recreates "c" with other contents.
    assert!(db.vectors.delete_collection(&run, "c").unwrap());
    db.vectors
        .create_collection(&run, "c", dim, DistanceMetric::Cosine)
        .unwrap();
    db.vectors
        .upsert(&run, "c", "v003", &pseudo(999, dim), None)
        .unwrap();
    assert_eq!(db.vectors.count(&run, "c").unwrap(), 1);
    assert_eq!(db.vectors.count(&fork, "c").unwrap(), 300);
    let hits = db
        .vectors
        .search_with_vectors(
            &fork,
            "c",
            &pseudo(3, dim),
            3,
            Some(SearchFilter::eq("t", "a")),
        )
        .unwrap();
    assert_eq!(hits[0].key, "v003");
    assert_eq!(hits[0].vector.as_deref(), Some(&pseudo(3, dim)[..]));
    assert!(hits.iter().all(|h| h.metadata == Some(json!({"t": "a"}))));
    let t = db
        .vectors
        .search_with_threshold(&fork, "c", &pseudo(3, dim), 50, 0.999, None)
        .unwrap();
    assert_eq!(
        t.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec!["v003"]
    );

    // The fork drops "d" and recreates it: nothing inherited comes back.
    let grand = db.runs.fork(&fork, None).unwrap();
    assert!(db.vectors.delete_collection(&fork, "d").unwrap());
    assert!(matches!(
        db.vectors.count(&fork, "d"),
        Err(Error::NotFound(_))
    ));
    db.vectors
        .create_collection(&fork, "d", dim, DistanceMetric::Euclidean)
        .unwrap();
    assert_eq!(db.vectors.count(&fork, "d").unwrap(), 0);
    assert!(db.vectors.get(&fork, "d", "v001").unwrap().is_none());
    assert!(db
        .vectors
        .search(&fork, "d", &pseudo(1, dim), 5, None)
        .unwrap()
        .is_empty());
    assert_eq!(db.vectors.count(&run, "d").unwrap(), 300);
    // The grandchild forked before the drop keeps both collections.
    assert_eq!(db.vectors.count(&grand, "d").unwrap(), 300);
    assert_eq!(db.vectors.count(&grand, "c").unwrap(), 300);
    let top = db
        .vectors
        .search(&grand, "d", &pseudo(7, dim), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "v007");
    db.vectors.delete(&grand, "c", "v003").unwrap();
    let hits = db
        .vectors
        .search(
            &grand,
            "c",
            &pseudo(3, dim),
            2,
            Some(SearchFilter::eq("t", "a")),
        )
        .unwrap();
    assert!(hits.iter().all(|h| h.key != "v003"));
    assert_eq!(hits.len(), 2);
    assert_eq!(db.vectors.count(&grand, "c").unwrap(), 299);
}

/// A fork that keeps all history, of a parent that does not: `diff` and `get_at` in the
/// fork at a version before the fork read the parent's thinned past. They check only
/// the fork's own policy, so they answer wrongly instead of refusing.
#[test]
fn bug_fork_reads_thinned_ancestor_past_without_refusing() {
    let db = Strata::ephemeral().unwrap();
    let parent = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&parent, RetentionPolicy::KeepLast(1))
        .unwrap();
    let v1 = db.kv.put(&parent, "k", 1).unwrap();
    db.kv.put(&parent, "k", 2).unwrap();
    db.runs
        .set_retention(&parent, RetentionPolicy::KeepLast(1))
        .unwrap(); // collect now
    let fork = db.runs.fork(&parent, None).unwrap();
    db.runs
        .set_retention(&fork, RetentionPolicy::KeepAll)
        .unwrap();

    match db.runs.diff(&fork, v1, None) {
        Err(Error::ConstraintViolation(_)) => {}
        Ok(d) => {
            let got: Vec<(String, ChangeKind)> =
                collect(d).into_iter().map(|c| (c.key, c.kind)).collect();
            assert_eq!(
                got,
                vec![("k".to_owned(), ChangeKind::Changed)],
                "k was 1 at v1 and is 2 now: the diff must say Changed (or refuse)"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    // `get_at` documents NotFound for a version retention no longer keeps.
    match db.kv.get_at(&fork, "k", v1) {
        Err(Error::ConstraintViolation(_)) => {}
        Err(Error::NotFound(m)) => assert!(m.contains("no longer keeps"), "{m}"),
        Ok(v) => assert_eq!(v.value, Value::Int(1)),
        Err(e) => panic!("get_at(fork, k, v1) must answer 1 or refuse, got {e}"),
    }
}

/// Writers hammer a run and its fork while the run is purged: writes to the purged run
/// fail from the purge on, the fork keeps exactly its view, and after a compaction no
/// file holds a value written to the parent after the fork.
#[test]
fn purge_racing_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = std::sync::Arc::new(Strata::open(&path).unwrap());
    let run = db.runs.create(None).unwrap();
    for i in 0..100 {
        db.kv.put(&run, &format!("k{i:03}"), i).unwrap();
    }
    let fork = db.runs.fork(&run, None).unwrap();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let (db, reached) = (db.clone(), reached.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..400 {
                    let target = if i % 2 == 0 { run } else { fork };
                    let v = format!("LATE-{t}-{i:04}-{}", if target == run { "P" } else { "F" });
                    match db.kv.put(&target, &format!("k{:03}", i % 100), v.as_str()) {
                        Ok(_) => {
                            ok += usize::from(target == run);
                            reached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(Error::RunError(_)) if target == run => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                ok
            })
        })
        .collect();
    // Purge once the writers are under way (whatever the machine's load).
    while reached.load(std::sync::atomic::Ordering::Relaxed) < 40 {
        std::thread::yield_now();
    }
    db.runs.purge(&run).unwrap();
    let to_parent: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        to_parent > 0,
        "no write reached the parent before its purge"
    );
    assert!(db.kv.put(&run, "x", 1).is_err());
    // Every fork key is either its own late write or the value it saw.
    for i in 0..100 {
        let v = db
            .kv
            .get_in(&fork, &format!("k{i:03}"))
            .unwrap()
            .unwrap()
            .value;
        match &v {
            Value::Int(n) => assert_eq!(*n, i),
            Value::String(s) => assert!(s.ends_with("-F"), "{s}"),
            other => panic!("{other:?}"),
        }
    }
    db.compact().unwrap();
    // Every file once; then each value written to the parent.
    let mut files = Vec::new();
    let mut pending = vec![path.clone()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                pending.push(e.path());
            } else if let Ok(b) = std::fs::read(e.path()) {
                files.push((e.path(), b));
            }
        }
    }
    for (f, bytes) in &files {
        for (p, _) in bytes.windows(5).enumerate().filter(|(_, w)| *w == b"LATE-") {
            let found = &bytes[p..(p + 13).min(bytes.len())];
            assert!(
                !found.ends_with(b"-P"),
                "{} still holds {}, written to the purged run after the fork",
                f.display(),
                String::from_utf8_lossy(found)
            );
        }
    }
    std::sync::Arc::try_unwrap(db)
        .ok()
        .unwrap()
        .close()
        .unwrap();
}

const PURGE_CHILD_ENV: &str = "STRATADB_REVIEW_PURGE_CRASH";

#[test]
#[ignore = "run by a_purge_survives_sigkill"]
fn review_purge_writer_child() {
    let Ok(path) = std::env::var(PURGE_CHILD_ENV) else {
        return;
    };
    let db = StrataBuilder::new()
        .path(&path)
        .strict()
        .memtable_size(64 << 10)
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    for i in 0..200 {
        db.kv.put(&run, &format!("k{i:03}"), i).unwrap();
    }
    let fork = db.runs.fork(&run, None).unwrap();
    for i in 0..200 {
        db.kv
            .put(&run, &format!("k{i:03}"), format!("PURGED-LATE-{i:03}"))
            .unwrap();
    }
    db.runs.purge(&run).unwrap();
    println!("PURGED {run} {fork}");
    for i in 1..=1_000_000i64 {
        db.kv.put(&fork, "n", i).unwrap();
        db.kv
            .put(&fork, &format!("f{i:06}"), Value::Bytes(vec![3u8; 200]))
            .unwrap();
        println!("ACK {i}");
    }
}

#[test]
fn a_purge_survives_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "review_purge_writer_child",
            "--ignored",
            "--nocapture",
        ])
        .env(PURGE_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ids: Option<(RunId, RunId)> = None;
    let mut acked = 0i64;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut p = line.split_whitespace();
        match p.next() {
            Some("PURGED") => {
                ids = Some((
                    p.next().unwrap().parse().unwrap(),
                    p.next().unwrap().parse().unwrap(),
                ))
            }
            Some("ACK") => {
                acked = p.next().unwrap().parse().unwrap();
                if acked >= 500 {
                    break;
                }
            }
            _ => {}
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (run, fork) = ids.expect("the child purged");
    assert!(acked >= 500, "the child stopped at {acked}");
    let db = Strata::open(dir.path()).unwrap();
    assert!(db.runs.get(&run).unwrap().is_none());
    assert!(matches!(
        db.kv.get_in(&run, "k000"),
        Err(Error::RunError(_))
    ));
    assert!(
        db.kv
            .get_in(&fork, "n")
            .unwrap()
            .unwrap()
            .value
            .as_int()
            .unwrap()
            >= acked
    );
    for i in 0..200 {
        assert_eq!(
            db.kv
                .get_in(&fork, &format!("k{i:03}"))
                .unwrap()
                .unwrap()
                .value,
            Value::Int(i)
        );
    }
    db.compact().unwrap();
    assert_eq!(
        files_contain(dir.path(), b"PURGED-LATE-"),
        Vec::<String>::new()
    );
    db.close().unwrap();
}
