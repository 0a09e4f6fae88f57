//! Records addressed by a name inside a run (KV pairs, JSON documents, state cells): the
//! key encoding and the operations these primitives share, written once.
//!
//! # Retention at read time
//!
//! `history` and `get_at` apply the run's retention policy with
//! [`RetentionPolicy::retained_from`](strata_storage::RetentionPolicy::retained_from) to
//! the key's versions as the reader's snapshot sees them, deletes included — the same
//! definition garbage collection uses — so their answers are the same whether or not
//! collection has run (see [`crate::gc`]).
use strata_concurrency::Transaction;
use strata_core::{limits, Error, Result, RunId, Timestamp, Value, Version, Versioned};
use strata_storage::key::KEY_HEADER_LEN;
use strata_storage::{encode_key, Entry, Primitive};

use crate::engine::{entry_value, Engine};
use crate::runs;

/// How a primitive turns a stored entry into what its readers get: `None` for an entry
/// that records a delete.
pub(crate) type Decode = fn(&Entry) -> Result<Option<Versioned<Value>>>;

/// [`txn_versioned`] as a [`Decode`]: tombstones are deletes.
pub(crate) fn txn_record(e: &Entry) -> Result<Option<Versioned<Value>>> {
    if e.is_tombstone() {
        return Ok(None);
    }
    txn_versioned(e).map(Some)
}

/// The versions of `key` the transaction's snapshot sees, oldest first, and the index
/// of the oldest one the run's retention policy keeps at `now`.
fn retained_chain(
    txn: &mut Transaction,
    run: &RunId,
    key: &[u8],
    now: Timestamp,
) -> Result<(Vec<Entry>, usize)> {
    let policy = runs::retention_of(txn, run)?;
    let mut chain = txn.history(key, None, None);
    chain.reverse();
    let from = policy.retained_from(&chain, now);
    Ok((chain, from))
}

/// The storage key of record `key` of `primitive` in `run`, after checking the key.
pub(crate) fn key_of(run: &RunId, primitive: Primitive, key: &str) -> Result<Box<[u8]>> {
    limits::validate_key(key)?;
    Ok(encode_key(run, primitive, key.as_bytes()).into())
}

/// A live entry as a value versioned by its commit ([`Version::Txn`]).
pub(crate) fn txn_versioned(e: &Entry) -> Result<Versioned<Value>> {
    Ok(Versioned::new(
        entry_value(e)?,
        Version::Txn(e.version),
        e.timestamp,
    ))
}

/// Deletes the record if it exists; returns whether it did.
pub(crate) fn delete_in_txn(txn: &mut Transaction, key: Box<[u8]>) -> Result<bool> {
    let existed = crate::ttl::live_get(txn, &key).is_some();
    if existed {
        txn.delete(key);
    }
    Ok(existed)
}

/// Deletes a record in its own transaction; returns whether it existed.
pub(crate) fn delete(engine: &Engine, run: &RunId, key: Box<[u8]>) -> Result<bool> {
    engine
        .write(run, |txn| delete_in_txn(txn, key.clone()))
        .map(|(v, _)| v)
}

/// Checks that a version passed in by a caller is a [`Version::Txn`], the only kind KV
/// keys, JSON documents, vectors and runs have; a `Sequence` (an event's position) or a
/// `Counter` (a state cell's) would otherwise be silently read as a commit number.
/// `what` names the parameter.
pub(crate) fn require_txn(version: Version, what: &str) -> Result<u64> {
    match version {
        Version::Txn(v) => Ok(v),
        other => Err(Error::ConstraintViolation(format!(
            "{what} must be a Version::Txn (a commit version, as returned by put/set and \
             found in Versioned::version of this primitive), got {other}"
        ))),
    }
}

/// The record as of `version` (the newest write at or before it). `NotFound`, described
/// by `what`, if it did not exist then or the run's retention policy no longer keeps it.
pub(crate) fn get_at(
    engine: &Engine,
    run: &RunId,
    key: &[u8],
    version: Version,
    decode: Decode,
    what: impl FnOnce() -> String,
) -> Result<Versioned<Value>> {
    let at = require_txn(version, "the version of get_at")?;
    let now = engine.now();
    let (found, thinned) = engine.read(run, |txn| {
        // A past older than the run's complete history may have been thinned by a
        // retention policy since relaxed: never answered from what is left.
        let info = runs::check_exists(txn, run)?;
        if info.history_kept_from().is_some_and(|from| at < from) {
            return Ok((None, true));
        }
        let (chain, from) = retained_chain(txn, run, key, now)?;
        // The newest write at or before `at` (the chain is clamped to the snapshot).
        match chain.iter().rposition(|e| e.version <= at) {
            Some(i) if i >= from => Ok((decode(&chain[i])?, false)),
            _ => Ok((None, false)),
        }
    })?;
    if thinned {
        return Err(Error::NotFound(format!(
            "{} as of version {version}: the run's retention policy no longer keeps that \
             version (its history is complete only from a later version)",
            what()
        )));
    }
    found.ok_or_else(|| Error::NotFound(format!("{} did not exist at version {version}", what())))
}

/// Versions of a record, newest first, deletes not listed, the run's retention policy
/// applied, only those older than `before`, at most `limit`.
pub(crate) fn history(
    engine: &Engine,
    run: &RunId,
    key: &[u8],
    limit: Option<u64>,
    before: Option<Version>,
    decode: Decode,
) -> Result<Vec<Versioned<Value>>> {
    // Only primitives versioned by commit take a cursor.
    let before = before
        .map(|b| require_txn(b, "the `before` cursor of history"))
        .transpose()?;
    let now = engine.now();
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    engine.read(run, |txn| {
        let (chain, from) = retained_chain(txn, run, key, now)?;
        let mut out = Vec::new();
        for e in chain[from..].iter().rev() {
            if out.len() >= limit {
                break;
            }
            if let Some(v) = decode(e)? {
                if before.is_none_or(|b| v.version.as_u64() < b) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    })
}

/// Names of the records of `primitive` in `run` starting with `prefix`, sorted, at most
/// `limit`.
pub(crate) fn keys(
    engine: &Engine,
    run: &RunId,
    primitive: Primitive,
    prefix: &str,
    limit: Option<usize>,
) -> Result<Vec<String>> {
    let p = encode_key(run, primitive, prefix.as_bytes());
    engine.read(run, |txn| {
        if !crate::ttl::run_uses_ttl(txn, &p) {
            // No record of the run can expire: the keys as listed, straight into
            // strings, gathered on the stack and moved into the list at the end. With
            // the list allocated first, its allocation (over 1 KiB for a hundred keys)
            // came right after the previous listing's strings were freed, which makes
            // the C allocator merge all of those before it can reuse them (a tenth of
            // a 100-key listing).
            let mut keys: smallvec::SmallVec<[String; 128]> = smallvec::SmallVec::new();
            txn.list_prefix_keys(&p, limit, &mut |k, _| {
                keys.push(user_key_string(&k[KEY_HEADER_LEN..]));
            });
            return Ok(keys.into_vec());
        }
        let mut rows = txn.scan_prefix_keys(&p, limit);
        let listed = rows.len();
        crate::ttl::retain_live(txn, &mut rows);
        if rows.len() < listed && limit.is_some() {
            // Expired records took places: list again, whole, and cut.
            rows = txn.scan_prefix_keys(&p, None);
            crate::ttl::retain_live(txn, &mut rows);
            rows.truncate(limit.unwrap_or(usize::MAX));
        }
        Ok(rows
            .into_iter()
            .map(|(k, _)| user_key_string(&k[KEY_HEADER_LEN..]))
            .collect())
    })
}

/// Sets or clears the expiry of the record `key` of `run` without writing the record
/// (see [`crate::ttl`]); `false` if it does not exist.
pub(crate) fn expire(
    engine: &Engine,
    run: &RunId,
    key: &[u8],
    ttl: Option<std::time::Duration>,
) -> Result<bool> {
    engine
        .write(run, |txn| crate::ttl::expire(txn, run, key, ttl))
        .map(|(v, _)| v)
}

/// The time left before the record `key` of `run` expires (`None`: no expiry);
/// `NotFound`, described by `what`, if it does not exist.
pub(crate) fn ttl(
    engine: &Engine,
    run: &RunId,
    key: &[u8],
    what: impl FnOnce() -> String,
) -> Result<Option<std::time::Duration>> {
    engine
        .read(run, |txn| Ok(crate::ttl::remaining(txn, key)))?
        .ok_or_else(|| Error::NotFound(format!("{} does not exist", what())))
}

/// A user key as a `String`: keys are written from `&str`, so they are UTF-8 (a
/// damaged one is shown lossily rather than failing the listing).
fn user_key_string(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(k).into_owned(),
    }
}
