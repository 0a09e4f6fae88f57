//! Found by a hostile review of the run-writable cache (`Engine::write`) and the encode
//! scratch buffer (`encode_value`): writes after a purge, a fork's lifecycle, a view of
//! the past, a write with a time to live whose run closes meanwhile, and `encode_value`
//! called from a thread-local destructor (it aborted the process before the fix).
use std::sync::Arc;

use strata_core::{Error, Value};
use strata_primitives::{internal, kv, Engine};
use strata_storage::Storage;

fn warm(kv_handle: &strata_primitives::KV, run: &strata_core::RunId) {
    for i in 0..3 {
        kv_handle.put(run, &format!("warm{i}"), i).unwrap();
    }
}

#[test]
fn review_purge_after_warm_refuses_writes() {
    let engine = Engine::new(Storage::ephemeral()).unwrap();
    let runs = internal::runs(engine.clone());
    let kv_handle = internal::kv(engine.clone());
    let run = runs.create(None).unwrap();
    warm(&kv_handle, &run);
    runs.purge(&run).unwrap();
    let r = kv_handle.put(&run, "after", 1);
    assert!(matches!(r, Err(Error::RunError(_))), "{r:?}");
}

#[test]
fn review_fork_then_lifecycle_of_child_and_parent() {
    let engine = Engine::new(Storage::ephemeral()).unwrap();
    let runs = internal::runs(engine.clone());
    let kv_handle = internal::kv(engine.clone());
    let parent = runs.create(None).unwrap();
    warm(&kv_handle, &parent);
    let child = runs.fork(&parent, None).unwrap();
    warm(&kv_handle, &child);
    warm(&kv_handle, &parent);
    runs.close(&child).unwrap();
    assert!(matches!(
        kv_handle.put(&child, "x", 1),
        Err(Error::RunError(_))
    ));
    kv_handle.put(&parent, "x", 1).unwrap();
    runs.pause(&parent).unwrap();
    assert!(matches!(
        kv_handle.put(&parent, "x", 2),
        Err(Error::RunError(_))
    ));
    runs.resume(&parent).unwrap();
    kv_handle.put(&parent, "x", 3).unwrap();
}

/// A view of the past shares the caches; it must not make the live engine accept a
/// write to a run closed since.
#[test]
fn review_view_then_close() {
    let engine = Engine::new(Storage::ephemeral()).unwrap();
    let runs = internal::runs(engine.clone());
    let kv_handle = internal::kv(engine.clone());
    let run = runs.create(None).unwrap();
    warm(&kv_handle, &run);
    let v = engine.storage().visible_version();
    let view = engine.at_version(v, strata_core::Timestamp(0));
    let view_kv = internal::kv(view);
    assert!(view_kv.get_in(&run, "warm0").unwrap().is_some());
    assert!(view_kv.put(&run, "v", 1).is_err());
    runs.close(&run).unwrap();
    assert!(view_kv.get_in(&run, "warm0").unwrap().is_some());
    assert!(matches!(
        kv_handle.put(&run, "after", 1),
        Err(Error::RunError(_))
    ));
}

/// A run closed inside a begun write that set a time to live (the write also writes the
/// run record itself).
#[test]
fn review_ttl_write_whose_run_closes_meanwhile() {
    let engine = Engine::new(Storage::ephemeral()).unwrap();
    let runs = internal::runs(engine.clone());
    let kv_handle = internal::kv(engine.clone());
    let run = runs.create(None).unwrap();
    warm(&kv_handle, &run);
    let mut attempts = 0;
    let res = engine.write(&run, |txn| {
        attempts += 1;
        kv::ops::put_with_ttl(
            txn,
            &run,
            "t",
            &Value::Int(1),
            std::time::Duration::from_secs(60),
        )?;
        if attempts == 1 {
            let runs = internal::runs(Arc::clone(&engine));
            std::thread::spawn(move || runs.close(&run).unwrap())
                .join()
                .unwrap();
        }
        Ok(())
    });
    assert!(matches!(res, Err(Error::RunError(_))), "{res:?}");
    assert!(kv_handle.get_in(&run, "t").unwrap().is_none());
}

struct WritesOnDrop;

impl Drop for WritesOnDrop {
    fn drop(&mut self) {
        // A thread-local destructor that encodes a value (say, a guard that records
        // something in the database when its thread ends).
        let r = strata_primitives::engine::encode_value(&Value::Int(7));
        assert!(r.is_ok());
    }
}

thread_local! {
    static GUARD: WritesOnDrop = const { WritesOnDrop };
}

/// `encode_value` called from a thread-local destructor, after its scratch buffer's
/// own destructor ran. Run in a child process: a panic in a TLS destructor aborts.
#[test]
fn review_encode_value_in_a_thread_local_destructor() {
    if std::env::var_os("REVIEW_TLS_CHILD").is_some() {
        std::thread::spawn(|| {
            GUARD.with(|_| {}); // registered first, destroyed last
            strata_primitives::engine::encode_value(&Value::Int(1)).unwrap();
        })
        .join()
        .unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "review_encode_value_in_a_thread_local_destructor",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REVIEW_TLS_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{stderr}",
        out.status
    );
}
