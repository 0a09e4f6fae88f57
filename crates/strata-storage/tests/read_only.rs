//! A second, read-only opening beside a live writer: it never writes, never blocks the
//! writer, never shows a commit whose fsync may still fail, and catches up on refresh.
use std::path::Path;
use std::sync::Arc;

use strata_core::Error;
use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::Vfs;
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

fn put(k: &str, v: &str) -> Write {
    Write {
        key: k.as_bytes().into(),
        value: Some(Arc::from(v.as_bytes())),
    }
}

fn value(s: &Storage, k: &str) -> Option<String> {
    s.get(k.as_bytes(), s.visible_version())
        .unwrap()
        .and_then(|e| e.value)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn reader_opts() -> StorageOptions {
    StorageOptions {
        read_only: true,
        ..StorageOptions::default()
    }
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_reader_opens_beside_a_live_writer_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let writer = Storage::open(
        &dir,
        StorageOptions {
            durability: DurabilityMode::Strict,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        writer
            .commit(vec![put(&format!("k{i:03}"), "flushed")], |_| Ok(()))
            .unwrap();
    }
    writer.checkpoint().unwrap();
    for i in 0..50 {
        writer
            .commit(vec![put(&format!("k{i:03}"), "logged")], |_| Ok(()))
            .unwrap();
    }
    // A second writer is refused; a reader is not.
    assert!(Storage::open(&dir, StorageOptions::default()).is_err());
    let before = listing(&dir);
    let reader = Storage::open(&dir, reader_opts()).unwrap();
    assert!(reader.is_read_only());
    // Everything but (at most) the newest strict commit, whose durability no later
    // record proves yet.
    let v = reader.visible_version();
    assert!((149..=150).contains(&v), "reader at {v}");
    assert_eq!(value(&reader, "k099").as_deref(), Some("flushed"));
    assert_eq!(value(&reader, "k010").as_deref(), Some("logged"));
    assert_eq!(reader.history(b"k010", v, None, None).unwrap().len(), 2);
    // Writes fail clearly; checkpoint and compaction do nothing.
    let err = reader.commit(vec![put("x", "y")], |_| Ok(())).unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    reader.checkpoint().unwrap();
    assert!(!reader.compact(true).unwrap());
    assert_eq!(listing(&dir), before, "the reader changed the directory");

    // The writer goes on (flushing and compacting); the reader catches up on refresh.
    for i in 0..30 {
        writer
            .commit(vec![put(&format!("n{i:03}"), "new")], |_| Ok(()))
            .unwrap();
    }
    writer.checkpoint().unwrap();
    writer.compact(true).unwrap();
    writer.commit(vec![put("tail", "1")], |_| Ok(())).unwrap();
    writer.commit(vec![put("tail", "2")], |_| Ok(())).unwrap();
    // A reader holding its old view keeps reading it.
    assert_eq!(value(&reader, "n000"), None);
    let v2 = reader.refresh().unwrap();
    assert!(v2 >= 181, "refreshed to {v2}");
    assert_eq!(value(&reader, "n029").as_deref(), Some("new"));
    assert_eq!(value(&reader, "k099").as_deref(), Some("flushed"));
    assert_eq!(value(&reader, "tail").as_deref(), Some("1"));
    writer.close().unwrap();
    reader.refresh().unwrap();
    assert_eq!(value(&reader, "tail").as_deref(), Some("2"));
    drop(reader);
    // The writer's database is intact.
    let w = Storage::open(&dir, StorageOptions::default()).unwrap();
    assert_eq!(w.visible_version(), 182);
}

#[test]
fn read_only_needs_an_existing_database() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Storage::open(tmp.path().join("missing"), reader_opts()).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(!tmp.path().join("missing").exists());
}

/// A strict commit whose fsync failed was never acknowledged: a reader must not see it,
/// although its record reached the file.
#[test]
fn a_reader_never_sees_a_commit_whose_fsync_failed() {
    let fs = FaultyVfs::new();
    let o = |read_only| StorageOptions {
        durability: DurabilityMode::Strict,
        vfs: Arc::new(fs.clone()) as Arc<dyn Vfs>,
        lock_directory: false,
        read_only,
        ..StorageOptions::default()
    };
    let writer = Storage::open("/db", o(false)).unwrap();
    for i in 0..10 {
        writer
            .commit(vec![put(&format!("k{i}"), "ok")], |_| Ok(()))
            .unwrap();
    }
    fs.fail_sync_after(1);
    assert!(writer.commit(vec![put("lost", "x")], |_| Ok(())).is_err());
    assert!(writer.is_poisoned());
    let reader = Storage::open("/db", o(true)).unwrap();
    assert_eq!(value(&reader, "lost"), None);
    assert_eq!(reader.visible_version(), 10);
    assert_eq!(value(&reader, "k9").as_deref(), Some("ok"));
}

/// A writer that died (process crash) leaves files a reader opens, and a later writer
/// recovers as usual.
#[test]
fn a_reader_opens_after_the_writer_crashed() {
    let fs = FaultyVfs::new();
    let o = |read_only| StorageOptions {
        durability: DurabilityMode::Buffered {
            interval_ms: 10_000,
            max_writes: 1_000_000,
        },
        vfs: Arc::new(fs.clone()) as Arc<dyn Vfs>,
        lock_directory: false,
        read_only,
        snapshot_threshold: 4096,
        ..StorageOptions::default()
    };
    let writer = Storage::open("/db", o(false)).unwrap();
    for i in 0..300 {
        writer
            .commit(vec![put(&format!("k{i:03}"), "v")], |_| Ok(()))
            .unwrap();
    }
    writer.flush().unwrap();
    writer
        .commit(vec![put("unsynced", "v")], |_| Ok(()))
        .unwrap();
    fs.process_crash();
    drop(writer);
    let reader = Storage::open("/db", o(true)).unwrap();
    let v = reader.visible_version();
    assert!(v >= 299, "{v}");
    assert_eq!(value(&reader, "k299").as_deref(), Some("v"));
    drop(reader);
    let writer = Storage::open("/db", o(false)).unwrap();
    assert_eq!(writer.visible_version(), 301);
}
