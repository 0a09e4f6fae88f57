//! Review of the WAL format 2 and recovery (issue 11): hostile cases that failed when
//! they were written. Each test names the scenario it breaks.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::put;
use strata_core::limits::{MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::Vfs;
use strata_storage::wal::{encode_frame, SegmentHeader};
use strata_storage::{DurabilityMode, Storage, StorageOptions};

fn fs_opts(fs: &FaultyVfs, durability: DurabilityMode) -> StorageOptions {
    StorageOptions {
        durability,
        vfs: Arc::new(fs.clone()),
        lock_directory: false,
        ..StorageOptions::default()
    }
}

/// A record payload (record format 1) with one put.
fn payload(version: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![1u8];
    p.extend_from_slice(&version.to_le_bytes());
    p.extend_from_slice(&version.to_le_bytes()); // timestamp
    p.extend_from_slice(&1u32.to_le_bytes());
    p.push(1);
    p.extend_from_slice(&(key.len() as u32).to_le_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(&(value.len() as u32).to_le_bytes());
    p.extend_from_slice(value);
    p
}

/// Issue 11 item 7b: "a `SnapshotPin` outliving the handles must not keep the directory
/// lock". A transaction holds a pin; one left alive after `close()` and the drop of every
/// storage handle still holds `LOCK`, so the database cannot be opened again.
#[test]
fn review_a_snapshot_pin_outliving_the_handles_does_not_keep_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StorageOptions {
        durability: DurabilityMode::Strict,
        ..StorageOptions::default()
    };
    let s = Storage::open(dir.path(), opts.clone()).unwrap();
    s.commit(vec![put("k", "v")], |_| Ok(())).unwrap();
    let pin = s.pin();
    s.close().unwrap();
    drop(s);
    let reopened = Storage::open(dir.path(), opts.clone());
    assert!(
        reopened.is_ok(),
        "a pin outliving its storage keeps the directory lock: {:?}",
        reopened.err()
    );
    drop(reopened);
    drop(pin);
    // Dropped without close: the same holds.
    let s = Storage::open(dir.path(), opts.clone()).unwrap();
    let pin = s.pin();
    drop(s);
    let reopened = Storage::open(dir.path(), opts);
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    drop(pin);
}

/// docs/durability.md, commit path step 2: "Recovery enforces the same bounds when it
/// reads, so nothing acknowledged can be unreadable." It does not: a log record holding a
/// value over `MAX_STORED_VALUE_BYTES` (or a key over `MAX_STORED_KEY_BYTES`) — written by
/// v0.1, which had no storage limits, or damaged — is accepted at open, and then every
/// checkpoint fails (the snapshot writer or its verification refuses it) and `close()`
/// fails every time: the log can never be trimmed. The bound must hold on read.
#[test]
fn review_recovery_enforces_the_key_and_value_limits_on_read() {
    let cases: [(&str, Vec<u8>, Vec<u8>); 2] = [
        (
            "value",
            b"k".to_vec(),
            vec![7u8; MAX_STORED_VALUE_BYTES + 1],
        ),
        ("key", vec![b'k'; MAX_STORED_KEY_BYTES + 1], b"v".to_vec()),
    ];
    for (what, key, value) in cases {
        let fs = FaultyVfs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        let f = fs
            .create_empty(Path::new("/db/wal-00000000000000000001.log"))
            .unwrap();
        let salt = 0x1234_5678;
        let mut buf = SegmentHeader {
            salt,
            base: 1,
            prev_len: 0,
        }
        .encode()
        .to_vec();
        encode_frame(salt, 1, 0, &payload(1, b"small", b"v"), &mut buf);
        encode_frame(salt, 2, 1, &payload(2, &key, &value), &mut buf);
        f.append(&buf).unwrap();
        f.sync().unwrap();
        match Storage::open("/db", fs_opts(&fs, DurabilityMode::Strict)) {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("wal-00000000000000000001.log"),
                    "{what}: the error must name the segment: {msg}"
                );
            }
            Ok(s) => {
                // Accepted: then the database must remain usable, checkpoints included.
                let r = s.checkpoint();
                assert!(
                    r.is_ok(),
                    "{what}: a record over the limit was accepted on read, and now no \
                     checkpoint can ever succeed: {r:?}"
                );
            }
        }
    }
}
