//! Regression tests for the crash and recovery edges of the reliability audit: each
//! failed before the change that fixed it.
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::put;
use strata_core::limits::{MAX_COMMIT_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::Error;
use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::Vfs;
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

fn opts(vfs: Arc<dyn Vfs>, durability: DurabilityMode) -> StorageOptions {
    StorageOptions {
        durability,
        vfs,
        lock_directory: false,
        ..StorageOptions::default()
    }
}

fn fs_opts(fs: &FaultyVfs, durability: DurabilityMode) -> StorageOptions {
    opts(Arc::new(fs.clone()), durability)
}

fn value(s: &Storage, k: &str) -> Option<Vec<u8>> {
    s.get(k.as_bytes(), s.visible_version())
        .unwrap()
        .and_then(|e| e.value)
        .map(|v| v.to_vec())
}

fn commit(s: &Storage, k: &str, v: &str) -> strata_core::Result<u64> {
    s.commit(vec![put(k, v)], |_| Ok(())).map(|i| i.version)
}

/// Item 2: the newest segment's header zero-filled or torn (a power loss right after
/// creating it) is a torn creation: removed, nothing lost. A non-empty file with a bad
/// header is still an error.
#[test]
fn a_torn_or_zeroed_newest_segment_header_is_a_torn_creation() {
    for garbage in [
        vec![0u8; 48],
        vec![0u8; 4096],
        b"STRATW".to_vec(),
        Vec::new(),
    ] {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
        for i in 0..5 {
            commit(&s, &format!("k{i}"), "v").unwrap();
        }
        drop(s);
        // What a power loss during the next segment's creation leaves behind.
        let f = fs
            .create_empty(Path::new("/db/wal-00000000000000000006.log"))
            .unwrap();
        f.append(&garbage).unwrap();
        f.sync().unwrap();
        fs.sync_dir(Path::new("/db")).unwrap();
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict))
            .unwrap_or_else(|e| panic!("{} bytes: {e}", garbage.len()));
        assert_eq!(s.visible_version(), 5);
        assert_eq!(commit(&s, "after", "v").unwrap(), 6);
        drop(s);
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
        assert_eq!(value(&s, "after").as_deref(), Some(&b"v"[..]));
    }
    // Data after a damaged header: refuse, naming the file.
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    commit(&s, "a", "v").unwrap();
    drop(s);
    fs.corrupt_byte(Path::new("/db/wal-00000000000000000001.log"), 20, 0x40)
        .unwrap();
    let err = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap_err();
    assert!(
        err.to_string().contains("wal-00000000000000000001.log"),
        "{err}"
    );
}

/// Item 3: a snapshot that fails verification is never renamed into place, the failed
/// checkpoint (and its retry, and close) report the error instead of `Ok`, and the
/// database still opens from the log.
#[test]
fn a_snapshot_that_fails_verification_never_shadows_the_log() {
    let fs = FaultyVfs::new();
    let corrupt = Arc::new(AtomicBool::new(true));
    // Damage what is read back of snapshot temporary files while `corrupt` is set: the
    // verification step of a checkpoint then fails.
    let flag = corrupt.clone();
    fs.set_read_hook(Some(Arc::new(move |p: &Path, b: &mut Vec<u8>| {
        let is_tmp = p.to_string_lossy().ends_with(".sst.tmp");
        if is_tmp && flag.load(Ordering::SeqCst) && b.len() > 100 {
            b[60] ^= 1;
        }
    })));
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    let s = Storage::open("/db", opts(vfs.clone(), DurabilityMode::Strict)).unwrap();
    for i in 0..20 {
        commit(&s, &format!("k{i}"), "v").unwrap();
    }
    assert!(s.checkpoint().is_err());
    assert!(
        s.checkpoint().is_err(),
        "a retried checkpoint must not report Ok"
    );
    let names = fs.list(Path::new("/db")).unwrap();
    assert!(!names.iter().any(|n| n.contains(".sst")), "{names:?}");
    assert!(s.close().is_err(), "close must report the failed snapshot");
    drop(s);
    let s = Storage::open("/db", opts(vfs.clone(), DurabilityMode::Strict)).unwrap();
    assert_eq!(s.visible_version(), 20);
    corrupt.store(false, Ordering::SeqCst);
    s.checkpoint().unwrap();
    drop(s);
    let s = Storage::open("/db", opts(vfs, DurabilityMode::Strict)).unwrap();
    assert_eq!(s.recovery_report().snapshot_version, 20);
    assert_eq!(value(&s, "k19").as_deref(), Some(&b"v"[..]));
}

/// Item 3, the reader's side: a run is read in place, so damage inside it is found by
/// the read that touches it — an error naming the file and offset, never a wrong answer
/// — and the damaged database still opens (reads elsewhere keep working).
#[test]
fn a_damaged_run_is_an_error_naming_the_file_when_read() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    for i in 0..10 {
        commit(&s, &format!("k{i}"), "v").unwrap();
    }
    s.checkpoint().unwrap();
    drop(s);
    let run = Path::new("/db/run-00000000000000000001.sst");
    fs.corrupt_byte(run, 100, 0x08).unwrap();
    // Open reads the run's last block (for its last key): with one block, the damage
    // is found there; with more, by the first read of the damaged block.
    let err = match Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)) {
        Err(e) => e,
        Ok(s) => {
            assert!(s.scan_prefix(b"", s.visible_version(), None).is_err());
            s.get(b"k3", s.visible_version()).unwrap_err()
        }
    };
    assert!(
        err.to_string().contains("run-00000000000000000001.sst")
            && err.to_string().contains("offset"),
        "{err}"
    );
    // The header, footer and index are checked at open.
    let len = fs.file_len(run).unwrap();
    fs.corrupt_byte(run, len - 50, 0x08).unwrap();
    let err = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap_err();
    assert!(
        err.to_string().contains("run-00000000000000000001.sst"),
        "{err}"
    );
}

/// Item 4: a key's history spans blocks (no length field grows with it), and a commit
/// over the per-commit limit fails before anything is written or acknowledged.
#[test]
fn commits_over_the_limit_fail_before_anything_is_written() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    commit(&s, "before", "v").unwrap();
    let big: Arc<[u8]> = Arc::from(vec![1u8; 16 * 1024 * 1024].as_slice());
    let n = MAX_COMMIT_BYTES / big.len() + 1;
    let writes: Vec<Write> = (0..n)
        .map(|i| Write {
            key: format!("big{i}").into_bytes().into(),
            value: Some(big.clone()),
        })
        .collect();
    let len_before = fs.file_len(Path::new("/db/wal-00000000000000000001.log"));
    let err = s.commit(writes, |_| Ok(())).unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
    assert!(err.to_string().contains("per commit"), "{err}");
    assert_eq!(
        fs.file_len(Path::new("/db/wal-00000000000000000001.log")),
        len_before
    );
    let too_big: Arc<[u8]> = Arc::from(vec![1u8; MAX_STORED_VALUE_BYTES + 1].as_slice());
    let err = s
        .commit(
            vec![Write {
                key: b"huge".to_vec().into(),
                value: Some(too_big),
            }],
            |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
    // The version was not used up, and the log is intact.
    assert_eq!(commit(&s, "after", "v").unwrap(), 2);
    drop(s);
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    assert_eq!(s.visible_version(), 2);
    assert_eq!(s.recovery_report().torn_bytes_truncated, 0);
}

/// Item 5: what recovery accepted after a process crash came from the page cache; it is
/// fsynced before it counts as durable, so a later power loss cannot take it.
#[test]
fn recovery_makes_what_it_accepted_durable() {
    for seed in 0..20 {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::NoDurability)).unwrap();
        for i in 0..50 {
            commit(&s, &format!("k{i}"), "v").unwrap();
        }
        drop(s);
        fs.process_crash();
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::NoDurability)).unwrap();
        assert_eq!(s.visible_version(), 50);
        s.flush().unwrap();
        drop(s);
        fs.power_loss(seed);
        let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::NoDurability)).unwrap();
        assert_eq!(
            s.visible_version(),
            50,
            "seed {seed}: recovered commits lost"
        );
        // And the versions readers saw are never reused.
        assert_eq!(commit(&s, "next", "v").unwrap(), 51);
    }
}

/// Item 6: while a strict commit's fsync is failing, a checkpoint must not roll, sync
/// and publish it; after the failure nothing is reported durable.
#[test]
fn a_checkpoint_never_publishes_a_commit_whose_fsync_failed() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    commit(&s, "good", "v").unwrap();
    // The next fsync (the commit's) fails after 300 ms, during which a checkpoint runs:
    // the kernel reports the error once and drops the dirty pages.
    fs.fail_sync_after_delay(1, Duration::from_millis(300));
    let s2 = s.clone();
    let failing = std::thread::spawn(move || commit(&s2, "bad", "v"));
    std::thread::sleep(Duration::from_millis(100)); // the leader is inside its fsync
    let checkpoint = s.checkpoint();
    let commit_result = failing.join().unwrap();
    assert!(
        commit_result.is_err(),
        "the commit whose fsync failed returned Ok"
    );
    assert!(
        checkpoint.is_err(),
        "the checkpoint synced after a failed fsync"
    );
    assert_eq!(
        value(&s, "bad"),
        None,
        "a commit whose fsync failed was published"
    );
    assert!(
        s.flush().is_err(),
        "flush reported durable after a failed fsync"
    );
    assert!(s.is_poisoned());
}

/// Item 7: a full disk gives clear errors, never poisons a log it could restore, lets
/// writes resume once space is freed, and every acknowledged commit survives.
#[test]
fn a_full_disk_fails_commits_cleanly_and_writes_resume_after() {
    for mode in [DurabilityMode::Strict, DurabilityMode::NoDurability] {
        let fs = FaultyVfs::new();
        let mut o = fs_opts(&fs, mode);
        o.segment_size = 4096; // segment creation hits the full disk too
        let s = Storage::open("/db", o.clone()).unwrap();
        fs.set_capacity(Some(fs.used_bytes() + 20_000));
        let mut acked = Vec::new();
        let mut failures = 0;
        for i in 0..400 {
            let k = format!("key{i:04}");
            match commit(&s, &k, &"x".repeat(100)) {
                Ok(v) => acked.push((k, v)),
                Err(e) => {
                    failures += 1;
                    assert!(e.is_serious(), "{e}");
                    assert!(e.to_string().contains("/db/"), "no file named: {e}");
                }
            }
        }
        assert!(failures > 0, "the disk never filled");
        assert!(
            !s.is_poisoned(),
            "{mode:?}: a restorable failed append poisoned"
        );
        assert!(s.checkpoint().is_err(), "a snapshot cannot fit");
        fs.set_capacity(None);
        let v = commit(&s, "resumed", "v").unwrap();
        acked.push(("resumed".into(), v));
        s.flush().unwrap();
        drop(s);
        fs.power_loss(3);
        let s = Storage::open("/db", o).unwrap();
        for (k, v) in &acked {
            let e = s.get(k.as_bytes(), s.visible_version()).unwrap();
            assert_eq!(e.map(|e| e.version), Some(*v), "{mode:?}: {k} lost");
        }
        s.checkpoint().unwrap();
    }
}

/// Item 7b: a new database directory's entry is made durable (its parent is fsynced).
#[test]
fn a_new_database_directory_survives_a_power_loss() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/parent/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    commit(&s, "k", "v").unwrap();
    drop(s);
    fs.power_loss(1);
    let s = Storage::open("/parent/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    assert_eq!(value(&s, "k").as_deref(), Some(&b"v"[..]));
}

/// Item 7b: damage in log segments a snapshot already covers (left by a crash between
/// the snapshot's rename and their deletion) does not stop the database from opening.
#[test]
fn damaged_segments_a_snapshot_covers_are_skipped() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    for i in 0..10 {
        commit(&s, &format!("k{i}"), "v").unwrap();
    }
    s.checkpoint().unwrap();
    commit(&s, "k10", "v").unwrap();
    drop(s);
    let f = fs
        .create_empty(Path::new("/db/wal-00000000000000000001.log"))
        .unwrap();
    f.append(b"garbage that is not a log segment at all")
        .unwrap();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    assert_eq!(s.visible_version(), 11);
    assert_eq!(s.recovery_report().segments_skipped, 1);
    assert!(!fs.exists(Path::new("/db/wal-00000000000000000001.log")));
}

/// Item 7b: in non-strict modes nobody signals the sync condition variable for a
/// publish, so `wait_until_applied_visible` must not sleep until its timeout.
#[test]
fn waiting_for_applied_commits_returns_at_once_in_non_strict_modes() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::NoDurability)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    commit(&s, &format!("t{t}-{i}"), "v").unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..2_000 {
        let t = Instant::now();
        assert!(s.wait_until_applied_visible(Duration::from_secs(2)));
        slowest = slowest.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a wait slept until its timeout: {slowest:?}"
    );
}

/// Item 8: open deletes only its own temporary files.
#[test]
fn open_leaves_foreign_temporary_files_alone() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    commit(&s, "k", "v").unwrap();
    drop(s);
    for name in ["notes.tmp", "x.tmp", "snap-1.snap.tmp"] {
        let f = fs.create_empty(&Path::new("/db").join(name)).unwrap();
        f.append(b"user data").unwrap();
    }
    let ours = Path::new("/db/snap-00000000000000000001.snap.tmp");
    fs.create_empty(ours).unwrap().append(b"half").unwrap();
    let s = Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)).unwrap();
    assert_eq!(s.visible_version(), 1);
    for name in ["notes.tmp", "x.tmp", "snap-1.snap.tmp"] {
        assert!(
            fs.exists(&Path::new("/db").join(name)),
            "{name} was deleted"
        );
    }
    assert!(!fs.exists(ours));
}
