//! The directory lock is released by `close()` even while clones are alive, and when the
//! last caller handle is dropped even while a `SnapshotPin` outlives it (issue 11, items
//! 7b and 9).
use std::sync::Arc;

use strata_core::Error;
use strata_storage::{Storage, StorageOptions, Write};

fn put(k: &str) -> Write {
    Write {
        key: k.as_bytes().into(),
        value: Some(Arc::from(&b"v"[..])),
    }
}

#[test]
fn snapshot_pin_outliving_the_handles_does_not_keep_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path(), StorageOptions::default()).unwrap();
    s.commit(vec![put("a")], |_| Ok(())).unwrap();
    let pin = s.pin();
    drop(s);
    let again = Storage::open(dir.path(), StorageOptions::default())
        .expect("a SnapshotPin must not keep the directory lock");
    assert!(again.get(b"a", again.visible_version()).unwrap().is_some());
    drop(pin);
}

#[test]
fn close_releases_the_lock_while_clones_live_and_they_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path(), StorageOptions::default()).unwrap();
    let clone = s.clone();
    let pin = s.pin();
    s.commit(vec![put("a")], |_| Ok(())).unwrap();
    s.close().unwrap();
    let again = Storage::open(dir.path(), StorageOptions::default())
        .expect("close must release the lock although a clone is alive");
    let e = clone.commit(vec![put("b")], |_| Ok(())).unwrap_err();
    assert!(matches!(e, Error::ConstraintViolation(_)), "{e:?}");
    assert!(!e.is_serious(), "{e}");
    assert!(e.to_string().contains("database is closed"), "{e}");
    assert!(clone.check_open().is_err());
    assert!(
        clone.checkpoint().is_err(),
        "a closed storage must not snapshot"
    );
    assert!(!clone.is_poisoned());
    // Closing twice is harmless.
    clone.close().unwrap();
    drop((clone, pin));
    assert!(again.get(b"a", again.visible_version()).unwrap().is_some());
    assert!(again.get(b"b", again.visible_version()).unwrap().is_none());
}

#[test]
fn ephemeral_close_refuses_commits() {
    let s = Storage::ephemeral();
    let clone = s.clone();
    s.close().unwrap();
    let e = clone.commit(vec![put("b")], |_| Ok(())).unwrap_err();
    assert!(matches!(e, Error::ConstraintViolation(_)), "{e:?}");
}
