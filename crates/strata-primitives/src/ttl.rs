//! Time to live for KV pairs and JSON documents.
//!
//! # Design
//!
//! A record written with a time to live gets a **TTL record** beside it, in the same
//! commit, under the record's run with the [`Primitive::Ttl`] tag:
//!
//! ```text
//! key:   run (16 B) | 0x08 | the record's tag (1 B) | the record's user key
//! value: expires_at (u64 LE, µs since the Unix epoch) | applies_to (u64 LE)
//! ```
//!
//! `applies_to` names the version of the record the expiry belongs to: `0` for "the
//! version written in the same commit" (a TTL record and its record then share their
//! version). A write of the record without a TTL makes a new version the TTL record no
//! longer applies to, so an ordinary write clears the expiry without touching it.
//!
//! **Refreshing** an expiry ([`expire`]) rewrites only the TTL record, with
//! `applies_to` = the record's current version: the record keeps its version.
//!
//! **Reads** judge expiry at the transaction's read time
//! ([`Transaction::read_time`], the engine's clock when it began — injectable for
//! tests), so a transaction's reads are repeatable: an expired record reads as absent
//! (gets, existence checks, listings, and the read-modify-writes built on them). Runs
//! that never used a TTL skip all of this: their run record's `uses_ttl` flag is off.
//!
//! **Expired records are deleted** by garbage collection ([`sweep`]): a delete committed
//! once the expiry has passed, after which retention frees them like any deleted
//! version. History reads (`history`, `get_at`) see those deletes, not the clock.
//!
//! **Views of the past** (`db.at(v)`, `db.at_time(t)`) judge expiries at their own
//! time: the commit time of `v` (from the storage's timeline), or `t`. A record that
//! had expired by then reads as absent there even if no sweep had deleted it yet, and
//! one that had not expires in no view of that time, so views stay repeatable. For
//! versions older than the timeline (a database created before it existed) a view sees
//! only the sweeps' deletes.
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use strata_concurrency::Transaction;
use strata_core::{Error, Result, RunId, Timestamp};
use strata_storage::key::KEY_HEADER_LEN;
use strata_storage::{Entry, Primitive, Storage, Write};
use tracing::debug;

use crate::runs;

/// The TTL record key of the record stored under `record_key`.
pub(crate) fn ttl_key(record_key: &[u8]) -> Box<[u8]> {
    let mut k = Vec::with_capacity(record_key.len() + 1);
    k.extend_from_slice(&record_key[..16]);
    k.push(Primitive::Ttl.tag());
    k.extend_from_slice(&record_key[16..]);
    k.into()
}

/// The record key a TTL record key belongs to.
fn record_key_of(ttl_key: &[u8]) -> Option<Box<[u8]>> {
    if ttl_key.len() < KEY_HEADER_LEN + 1 {
        return None;
    }
    let mut k = Vec::with_capacity(ttl_key.len() - 1);
    k.extend_from_slice(&ttl_key[..16]);
    k.extend_from_slice(&ttl_key[KEY_HEADER_LEN..]);
    Some(k.into())
}

fn encode(expires_at: Timestamp, applies_to: u64) -> Arc<[u8]> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&expires_at.as_micros().to_le_bytes());
    v.extend_from_slice(&applies_to.to_le_bytes());
    Arc::from(v)
}

fn decode(bytes: &[u8]) -> Option<(Timestamp, u64)> {
    let e: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let a: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
    (bytes.len() == 16).then(|| (Timestamp(u64::from_le_bytes(e)), u64::from_le_bytes(a)))
}

/// The expiry of `record` (an entry of the record under `record_key`) given its TTL
/// record's entry, if that applies to it.
fn expiry_of(record: &Entry, ttl: &Entry) -> Option<Timestamp> {
    let (expires_at, applies_to) = decode(ttl.value.as_deref()?)?;
    let applies = if applies_to == 0 {
        ttl.version == record.version
    } else {
        applies_to == record.version
    };
    applies.then_some(expires_at)
}

/// Set once any run of any database in this process is known to use a time to live
/// (by [`runs::mark_uses_ttl`], or by garbage collection, which every engine runs when
/// it opens, finding such a run): until then reads skip the run-record lookup below,
/// which would otherwise cost every get a second read of its run's record.
pub(crate) static TTL_SEEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Notes that a run using a time to live exists (see [`TTL_SEEN`]).
pub(crate) fn seen() {
    TTL_SEEN.store(true, std::sync::atomic::Ordering::Release);
}

/// `true` if the run of `record_key` ever used a time to live.
pub(crate) fn run_uses_ttl(txn: &mut Transaction, record_key: &[u8]) -> bool {
    if !TTL_SEEN.load(std::sync::atomic::Ordering::Acquire) {
        return false;
    }
    let Some(run) = record_key
        .get(..16)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(RunId::from_bytes)
    else {
        return false;
    };
    runs::info_in(txn, &run).is_some_and(|i| i.uses_ttl)
}

/// The expiry of the live record under `record_key` as the transaction sees it.
pub(crate) fn expiry(
    txn: &mut Transaction,
    record_key: &[u8],
    record: &Entry,
) -> Option<Timestamp> {
    if !run_uses_ttl(txn, record_key) {
        return None;
    }
    let ttl = txn.get(&ttl_key(record_key))?;
    expiry_of(record, &ttl)
}

/// The record under `key` as the transaction sees it: absent when deleted or expired
/// at the transaction's read time.
pub(crate) fn live_get(txn: &mut Transaction, key: &[u8]) -> Option<Entry> {
    let e = txn.get(key)?;
    match expiry(txn, key, &e) {
        Some(at) if at <= txn.read_time() => None,
        _ => Some(e),
    }
}

/// Drops, from `rows` (live records of one run, in key order), those expired at the
/// transaction's read time.
pub(crate) fn retain_live(txn: &mut Transaction, rows: &mut Vec<(Box<[u8]>, Entry)>) {
    let Some((first, _)) = rows.first() else {
        return;
    };
    if !run_uses_ttl(txn, first) {
        return;
    }
    let now = txn.read_time();
    rows.retain(|(k, e)| match txn.get(&ttl_key(k)) {
        Some(ttl) => expiry_of(e, &ttl).is_none_or(|at| at > now),
        None => true,
    });
}

/// The absolute expiry `ttl` from the transaction's read time.
fn expires_at(txn: &Transaction, ttl: Duration) -> Result<Timestamp> {
    let micros = u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return Err(Error::ConstraintViolation(
            "a time to live must be longer than zero".into(),
        ));
    }
    Ok(Timestamp(
        txn.read_time().as_micros().saturating_add(micros),
    ))
}

/// Writes the TTL record of the record `record_key` this transaction writes.
pub(crate) fn set_with_record(
    txn: &mut Transaction,
    run: &RunId,
    record_key: &[u8],
    ttl: Duration,
) -> Result<()> {
    let at = expires_at(txn, ttl)?;
    runs::mark_uses_ttl(txn, run)?;
    txn.put(ttl_key(record_key), encode(at, 0));
    Ok(())
}

/// Sets (`Some`) or clears (`None`) the expiry of the live record under `record_key`
/// without writing the record itself; `false` if there is no live record.
pub(crate) fn expire(
    txn: &mut Transaction,
    run: &RunId,
    record_key: &[u8],
    ttl: Option<Duration>,
) -> Result<bool> {
    let Some(record) = live_get(txn, record_key) else {
        return Ok(false);
    };
    if record.version == strata_concurrency::PENDING_VERSION {
        return Err(Error::ConstraintViolation(
            "set the expiry of a record written in the same transaction with its \
             *_with_ttl write"
                .into(),
        ));
    }
    match ttl {
        Some(ttl) => {
            let at = expires_at(txn, ttl)?;
            runs::mark_uses_ttl(txn, run)?;
            txn.put(ttl_key(record_key), encode(at, record.version));
        }
        None => {
            if expiry(txn, record_key, &record).is_some() {
                txn.delete(ttl_key(record_key));
            }
        }
    }
    Ok(true)
}

/// The time left before the live record under `record_key` expires (`Some(None)`: it
/// has no expiry); `None` when there is no live record.
pub(crate) fn remaining(txn: &mut Transaction, record_key: &[u8]) -> Option<Option<Duration>> {
    let record = live_get(txn, record_key)?;
    let now = txn.read_time();
    Some(
        expiry(txn, record_key, &record)
            .map(|at| Duration::from_micros(at.as_micros().saturating_sub(now.as_micros()))),
    )
}

/// Deletes the records of `run` whose expiry has passed at `now` (and TTL records
/// that no longer apply to any version), each with its TTL record, in its own commit
/// that fails (and is skipped) if either changed meanwhile. Returns how many records
/// were deleted.
pub(crate) fn sweep(storage: &Storage, run: &RunId, now: Timestamp) -> u64 {
    if storage.is_read_only() {
        return 0;
    }
    let mut prefix = run.as_bytes().to_vec();
    prefix.push(Primitive::Ttl.tag());
    let end = strata_storage::key::prefix_successor(&prefix);
    let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let snapshot = storage.visible_version();
    let rows = match storage.scan_range(Bound::Included(&prefix), end, snapshot, None) {
        Ok(r) => r,
        Err(e) => {
            debug!(run = %run, error = %e, "expired records not swept");
            return 0;
        }
    };
    let mut deleted = 0;
    for (tk, ttl) in rows {
        let Some(rk) = record_key_of(&tk) else {
            continue;
        };
        let Some((at, _)) = ttl.value.as_deref().and_then(decode) else {
            continue;
        };
        let record = storage.get(&rk, snapshot).ok().flatten();
        let (writes, counted) = match record {
            Some(r) => match expiry_of(&r, &ttl) {
                Some(at) if at <= now => (
                    vec![
                        Write {
                            key: rk.clone(),
                            value: None,
                        },
                        Write {
                            key: tk.clone(),
                            value: None,
                        },
                    ],
                    1,
                ),
                Some(_) => continue,
                // A TTL record of an older version of the record: it no longer applies.
                None => (
                    vec![Write {
                        key: tk.clone(),
                        value: None,
                    }],
                    0,
                ),
            },
            None if at <= now => (
                vec![Write {
                    key: tk.clone(),
                    value: None,
                }],
                0,
            ),
            None => continue,
        };
        let committed = storage.commit(writes, |tree| {
            if tree.changed_since(&rk, snapshot)? || tree.changed_since(&tk, snapshot)? {
                return Err(Error::Conflict("changed while being swept".into()));
            }
            Ok(())
        });
        if committed.is_ok() {
            deleted += counted;
        }
    }
    if deleted > 0 {
        debug!(run = %run, deleted, "expired records deleted");
    }
    deleted
}
