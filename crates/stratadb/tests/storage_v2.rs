//! Storage v2 through the facade: a bounded memtable over sorted runs on disk.
use stratadb::prelude::*;

fn run_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Rewriting the same keys many times under `KeepLast(1)`: garbage collection drops
/// hidden versions from memory before each flush, and compaction drops the ones that
/// reached a run, so the disk holds about the live data, not every version.
#[test]
fn retention_frees_disk_through_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = StrataBuilder::new()
        .no_durability()
        .memtable_size(1 << 20)
        .path(dir.path())
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    db.runs
        .set_retention(&run, RetentionPolicy::KeepLast(1))
        .unwrap();
    let keys = 2_000;
    let value = Value::Bytes(vec![7u8; 1024]);
    for round in 0..10 {
        for k in 0..keys {
            db.kv
                .put(&run, &format!("key{k:05}"), value.clone())
                .unwrap();
        }
        if round == 4 {
            // Half-way, a history read of an old version is already hidden.
            let h = db.kv.history(&run, "key00001", None, None).unwrap();
            assert_eq!(h.len(), 1);
        }
    }
    db.compact().unwrap();
    let live = keys as u64 * 1024;
    let on_disk = run_bytes(dir.path());
    assert!(
        on_disk <= live * 13 / 10 + 256 * 1024,
        "{on_disk} bytes of runs for {live} bytes of live values"
    );
    assert_eq!(
        db.kv.history(&run, "key01999", None, None).unwrap().len(),
        1
    );
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(db.kv.keys(&run, "", None).unwrap().len(), keys);
    assert_eq!(
        db.kv.get_in(&run, "key00042").unwrap().unwrap().value,
        value
    );
}

/// Keep-all keeps every version on disk across flushes, compactions and reopens.
#[test]
fn keep_all_history_survives_flushes_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = StrataBuilder::new()
        .no_durability()
        .memtable_size(1 << 20)
        .path(dir.path())
        .open()
        .unwrap();
    let run = RunId::DEFAULT;
    for round in 0..5i64 {
        for k in 0..1_000 {
            db.kv
                .put(
                    &run,
                    &format!("k{k:04}"),
                    Value::Bytes(vec![round as u8; 600]),
                )
                .unwrap();
        }
    }
    db.compact().unwrap();
    assert_eq!(db.kv.history(&run, "k0500", None, None).unwrap().len(), 5);
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    let h = db.kv.history(&run, "k0999", None, None).unwrap();
    assert_eq!(h.len(), 5);
    assert_eq!(h[0].value, Value::Bytes(vec![4u8; 600]));
    assert_eq!(h[4].value, Value::Bytes(vec![0u8; 600]));
}
