//! `Engine::write`'s run check answered from what was seen (the run's record is not read
//! again while no run record changed) must still make a write conflict with a change of
//! its run committed after the write began: the retry reads the new record and refuses.
use std::sync::Arc;

use strata_core::{Error, Value};
use strata_primitives::{internal, kv, Engine};
use strata_storage::Storage;

#[test]
fn a_write_whose_run_closes_before_it_commits_is_retried_and_refused() {
    let engine = Engine::new(Storage::ephemeral()).unwrap();
    let runs = internal::runs(engine.clone());
    let kv_handle = internal::kv(engine.clone());
    let run = runs.create(None).unwrap();
    // Warm the check: from now on the record is not read for writes to `run`.
    for i in 0..3 {
        kv_handle.put(&run, &format!("warm{i}"), i).unwrap();
    }
    let mut attempts = 0;
    let res = engine.write(&run, |txn| {
        attempts += 1;
        kv::ops::put(txn, &run, "inside", &Value::Int(1))?;
        if attempts == 1 {
            // Another handle closes the run after this transaction passed its check.
            let runs = internal::runs(Arc::clone(&engine));
            std::thread::spawn(move || runs.close(&run).unwrap())
                .join()
                .unwrap();
        }
        Ok(())
    });
    assert!(
        matches!(res, Err(Error::RunError(_))),
        "the retry must see the run closed: {res:?}"
    );
    assert_eq!(
        attempts, 1,
        "the retry is refused by the check, before the closure"
    );
    assert!(kv_handle.get_in(&run, "inside").unwrap().is_none());
    // A run that stayed active is unaffected.
    let other = runs.create(None).unwrap();
    kv_handle.put(&other, "k", 1).unwrap();
    kv_handle.put(&other, "k", 2).unwrap();
}

/// `encode_value` reuses one scratch buffer per thread: every value, after a large one
/// and after one refused for its size, encodes exactly as the codec does alone.
#[test]
fn encoding_through_the_scratch_buffer_is_exact_whatever_came_before() {
    use strata_core::{codec, limits};
    use strata_primitives::engine::{decode_value, encode_value};

    let values = [
        Value::Int(1),
        Value::Bytes(vec![7; 200 << 10]),
        Value::String("after a large one".into()),
        Value::Bytes(vec![1; limits::MAX_VALUE_BYTES + 1]),
        Value::Array(vec![Value::Bool(true), Value::Null, Value::Float(0.5)]),
        Value::Bytes(Vec::new()),
    ];
    for v in &values {
        match encode_value(v) {
            Ok(bytes) => {
                assert_eq!(&bytes[..], &codec::encode(v).unwrap()[..]);
                assert_eq!(&decode_value(&bytes).unwrap(), v);
            }
            Err(e) => {
                assert!(matches!(e, Error::ConstraintViolation(_)), "{e}");
                assert!(limits::validate_value(v).is_err());
            }
        }
    }
    // Values encoded on several threads at once do not mix.
    std::thread::scope(|s| {
        for t in 0..4i64 {
            s.spawn(move || {
                for i in 0..2_000i64 {
                    let v = Value::String(format!("thread {t} value {i}"));
                    assert_eq!(decode_value(&encode_value(&v).unwrap()).unwrap(), v);
                }
            });
        }
    });
}
