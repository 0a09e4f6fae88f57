//! A checkpoint gives the flushed memtable's memory back to the operating system.
//!
//! A memtable is many small allocations (one per version); once it is written as a run
//! and dropped, glibc keeps the freed chunks resident unless they sit at the very top
//! of its heap. A checkpoint therefore trims the allocator (`malloc_trim`). This is its
//! own test binary: the measure is the process's anonymous memory, which tests running
//! beside it in the same process would disturb.
#![cfg(all(target_os = "linux", target_env = "gnu"))]
use std::sync::Arc;

use strata_storage::{Storage, StorageOptions, Write};

/// `RssAnon` of this process, in bytes.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_checkpoint_returns_the_flushed_memtables_memory() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        // One memtable for everything written here: the checkpoint flushes it whole.
        memtable_size: 1 << 30,
        snapshot_threshold: u64::MAX,
        ..StorageOptions::default()
    };
    let s = Storage::open(dir.path(), options).unwrap();
    let value: Arc<[u8]> = Arc::from(vec![7u8; 1500]);
    for batch in 0..100u32 {
        let writes = (0..1000u32)
            .map(|i| Write {
                key: format!("doc:{batch:04}:{i:04}").into_bytes().into(),
                value: Some(Arc::from(&value[..])),
            })
            .collect();
        s.commit(writes, |_| Ok(())).unwrap();
        // Something long-lived allocated after the memtable's versions, as a real
        // process has (here: a small buffer per batch, kept to the end), so that the
        // versions are not simply the top of the heap.
        std::hint::black_box(Box::leak(vec![0u8; 64].into_boxed_slice()));
    }
    let before = rss_anon();
    s.checkpoint().unwrap();
    assert_eq!(s.run_count(), 1);
    let after = rss_anon();
    // 100,000 versions of 1.5 KiB: about 150 MiB in the memtable.
    assert!(
        before.saturating_sub(after) >= 100 << 20,
        "RssAnon {} MiB before the checkpoint, {} MiB after",
        before >> 20,
        after >> 20
    );
    // Everything is still there, read from the run.
    let v = s.visible_version();
    assert_eq!(
        s.get(b"doc:0042:0042", v)
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some(&value[..])
    );
    s.close().unwrap();
}
