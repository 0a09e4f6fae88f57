//! Run management: runs are isolated namespaces with a lifecycle.
//!
//! Run records live under the default run's id with the [`Primitive::Run`] tag, keyed by
//! the run id. Every write of any primitive first reads its run's record inside the same
//! transaction and fails with [`Error::RunError`] unless the run exists and is
//! [`RunState::Active`]; because that read is validated at commit, a write racing with a
//! state change either commits before it or is retried and refused. Reads work in every
//! state.
//!
//! ## Lifecycle
//!
//! | from | allowed to |
//! |---|---|
//! | `Active` | `Paused`, `Completed`, `Failed`, `Cancelled`, `Archived` |
//! | `Paused` | `Active`, `Completed`, `Failed`, `Cancelled`, `Archived` |
//! | `Completed`, `Failed`, `Cancelled` | `Archived` |
//! | `Archived` | — (terminal) |
//!
//! Any other transition is a [`Error::RunError`]. The default run always exists and is
//! active: its state cannot be changed.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_concurrency::Transaction;
use strata_core::{Error, Result, RunId, Timestamp, Value, Version, Versioned};
use strata_storage::key::{decode_key, encode_key};
use strata_storage::{Primitive, RetentionPolicy};

use crate::decoded::DecodedCache;
use crate::engine::Engine;

/// The lifecycle state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunState {
    /// Running, accepting writes.
    Active,
    /// Temporarily paused; can be resumed.
    Paused,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Terminal state (soft delete).
    Archived,
}

impl RunState {
    /// `true` for the states that accept writes (only `Active`).
    pub fn accepts_writes(self) -> bool {
        self == RunState::Active
    }

    /// `true` if the lifecycle allows going from `self` to `to`.
    pub fn can_transition_to(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Active, Paused)
                | (Paused, Active)
                | (Active | Paused, Completed | Failed | Cancelled)
                | (Active | Paused | Completed | Failed | Cancelled, Archived)
        )
    }
}

/// Everything known about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id.
    pub run_id: RunId,
    /// Its lifecycle state.
    pub state: RunState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its state or metadata last changed.
    pub updated_at: Timestamp,
    /// User metadata given at creation or by `update_metadata`.
    pub metadata: Option<Value>,
    /// The error message of a failed run.
    pub error: Option<String>,
    /// The version-history retention policy.
    pub retention: RetentionPolicy,
    /// For a fork ([`Runs::fork`]): the run it was forked from and the version of that
    /// run it started from. `None` for a run created empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ForkOrigin>,
    /// The oldest version from which the run's history is known complete, when it is
    /// not complete from its creation: set when a retention policy that drops versions
    /// is relaxed to `KeepAll` (the past may have been thinned), and for a fork of a
    /// run whose policy dropped versions (its inherited past). Forks at, views of and
    /// diffs from an older version are refused rather than answered from a thinned
    /// history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_complete_from: Option<Version>,
    /// `true` once a KV pair or JSON document of the run was written with a time to
    /// live (`put_with_ttl`, `set_with_ttl`, `expire`): only then do reads look for
    /// expiries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uses_ttl: bool,
}

impl RunInfo {
    /// The oldest version a read of the past may be answered from exactly: `None` when
    /// the current policy drops versions (no past is guaranteed).
    pub fn history_kept_from(&self) -> Option<u64> {
        if !self.retention.keeps_all() {
            return None;
        }
        Some(self.history_complete_from.map_or(0, |v| v.as_u64()))
    }
}

/// Where a forked run came from (see [`Runs::fork`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForkOrigin {
    /// The run it was forked from.
    pub parent: RunId,
    /// The version of the parent it started from ([`Version::Txn`]).
    pub version: Version,
}

pub(crate) fn run_key(run: &RunId) -> Box<[u8]> {
    encode_key(&RunId::DEFAULT, Primitive::Run, run.as_bytes()).into()
}

fn encode_info(info: &RunInfo) -> Result<Arc<[u8]>> {
    rmp_serde::to_vec_named(info)
        .map(Arc::from)
        .map_err(|e| Error::Serialization(format!("cannot encode run info: {e}")))
}

fn decode_info(bytes: &[u8]) -> Result<RunInfo> {
    strata_core::codec::decode_record(bytes, "run info")
}

fn load(txn: &mut Transaction, run: &RunId) -> Result<Option<Versioned<RunInfo>>> {
    match txn.get(&run_key(run)) {
        Some(e) => {
            let bytes = e
                .value
                .as_deref()
                .ok_or_else(|| Error::Internal("run tombstone".into()))?;
            Ok(Some(Versioned::new(
                decode_info(bytes)?,
                Version::Txn(e.version),
                e.timestamp,
            )))
        }
        None => Ok(None),
    }
}

fn not_found(run: &RunId) -> Error {
    Error::RunError(format!("run {run} does not exist"))
}

/// A creation timestamp strictly later than every earlier one in this process, so that
/// runs created within the same microsecond still list in creation order (`list` sorts
/// by `created_at`; run ids are random).
fn creation_time() -> Timestamp {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = Timestamp::now().as_micros();
    let prev = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or_else(|last| last);
    Timestamp::from_micros(now.max(prev + 1))
}

/// Decoded run records, so that the run check every operation makes does not decode
/// the record each time.
static DECODED_RUNS: DecodedCache<RunInfo> = DecodedCache::new(4096, 64 << 20);

/// Fails unless `run` exists; returns its info. The read is part of the transaction's
/// read set, so a concurrent change of the run makes the transaction retry.
pub fn check_exists(txn: &mut Transaction, run: &RunId) -> Result<Arc<RunInfo>> {
    let entry = txn.get(&run_key(run)).ok_or_else(|| not_found(run))?;
    let bytes = entry
        .value
        .as_ref()
        .ok_or_else(|| Error::Internal("run tombstone".into()))?;
    DECODED_RUNS.get_or_decode(run.as_bytes(), bytes, decode_info)
}

/// The run's info if it exists (recording the read, like [`check_exists`]).
pub(crate) fn info_in(txn: &mut Transaction, run: &RunId) -> Option<Arc<RunInfo>> {
    let entry = txn.get(&run_key(run))?;
    let bytes = entry.value.as_ref()?;
    DECODED_RUNS
        .get_or_decode(run.as_bytes(), bytes, decode_info)
        .ok()
}

/// Marks `run` as using times to live (see [`RunInfo::uses_ttl`]), in the transaction.
pub(crate) fn mark_uses_ttl(txn: &mut Transaction, run: &RunId) -> Result<()> {
    crate::ttl::seen();
    let info = check_exists(txn, run)?;
    if !info.uses_ttl {
        let mut info = (*info).clone();
        info.uses_ttl = true;
        txn.put(run_key(run), encode_info(&info)?);
    }
    Ok(())
}

/// Fails unless `run` exists and is active; returns its info.
pub fn check_writable(txn: &mut Transaction, run: &RunId) -> Result<Arc<RunInfo>> {
    let info = check_exists(txn, run)?;
    if !info.state.accepts_writes() {
        return Err(Error::RunError(format!(
            "run {run} is {:?} and does not accept writes",
            info.state
        )));
    }
    Ok(info)
}

pub(crate) fn ensure_default_run(engine: &Engine) -> Result<()> {
    engine.run(|txn| {
        if load(txn, &RunId::DEFAULT)?.is_none() {
            let now = Timestamp::now();
            let info = RunInfo {
                run_id: RunId::DEFAULT,
                state: RunState::Active,
                created_at: now,
                updated_at: now,
                metadata: None,
                error: None,
                retention: RetentionPolicy::KeepAll,
                forked_from: None,
                history_complete_from: None,
                uses_ttl: false,
            };
            txn.put(run_key(&RunId::DEFAULT), encode_info(&info)?);
        }
        Ok(())
    })?;
    Ok(())
}

/// Run management. Access via `db.runs`.
#[derive(Clone)]
pub struct Runs {
    engine: Arc<Engine>,
}

impl Runs {
    /// Handle over an engine (see [`crate::internal`]).
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Runs { engine }
    }

    /// The id of the default run, which always exists and is active.
    pub fn default_run(&self) -> RunId {
        RunId::DEFAULT
    }

    /// Creates a new active run with optional metadata and returns its id.
    pub fn create(&self, metadata: Option<Value>) -> Result<RunId> {
        if let Some(m) = &metadata {
            crate::engine::encode_value(m)?;
        }
        let id = RunId::new();
        let now = creation_time();
        self.engine.run(|txn| {
            let info = RunInfo {
                run_id: id,
                state: RunState::Active,
                created_at: now,
                updated_at: now,
                metadata: metadata.clone(),
                error: None,
                retention: RetentionPolicy::KeepAll,
                forked_from: None,
                history_complete_from: None,
                uses_ttl: false,
            };
            txn.put(run_key(&id), encode_info(&info)?);
            Ok(())
        })?;
        tracing::debug!(run = %id, "run created");
        Ok(id)
    }

    /// Forks `run` at version `at` (`None`: its current state) and returns the new
    /// run's id.
    ///
    /// The fork sees everything `run` held at `at` in every primitive — KV pairs with
    /// their history, JSON documents, event streams (new events continue the
    /// parent's sequence numbers), state cells (counters continue) and vector
    /// collections — and from then on the two diverge: a write to either is invisible
    /// to the other. Nothing is copied: the fork is one small record pointing at its
    /// parent, so forking takes the same time whatever the size of `run`. Reads in a
    /// fork that its own writes do not answer are answered by the parent as of `at`
    /// (through each ancestor, for a fork of a fork).
    ///
    /// The new run is [`RunState::Active`], starts with `run`'s metadata and
    /// retention policy, and records its origin in [`RunInfo::forked_from`]. `run`
    /// may be in any state; closing or archiving it later does not change what the
    /// fork sees, and garbage collection keeps what the fork reads of it whatever the
    /// parent's retention policy.
    ///
    /// Errors: [`Error::RunError`] if `run` does not exist (or did not exist yet at
    /// `at`); [`Error::ConstraintViolation`] if `at` is not a [`Version::Txn`], is newer
    /// than the database's current version, or is in the past of a run whose retention
    /// policy is not `KeepAll` (its history then may no longer be complete).
    ///
    /// ```
    /// # use strata_primitives::{internal, Engine};
    /// # let engine = Engine::new(strata_storage::Storage::ephemeral())?;
    /// # let (kv, runs) = (internal::kv(engine.clone()), internal::runs(engine));
    /// let run = runs.create(None)?;
    /// let v1 = kv.put(&run, "plan", "draft")?;
    /// kv.put(&run, "plan", "final")?;
    /// let fork = runs.fork(&run, Some(v1))?;
    /// assert_eq!(kv.get_in(&fork, "plan")?.unwrap().value, "draft");
    /// kv.set_in(&fork, "plan", "alternative")?;
    /// assert_eq!(kv.get_in(&run, "plan")?.unwrap().value, "final");
    /// # Ok::<(), strata_core::Error>(())
    /// ```
    pub fn fork(&self, run: &RunId, at: Option<Version>) -> Result<RunId> {
        let at = at
            .map(|v| crate::records::require_txn(v, "the version to fork at"))
            .transpose()?;
        let child = RunId::new();
        let now = creation_time();
        let (at, _) = self.engine.run(|txn| {
            let parent = check_exists(txn, run)?;
            let current = txn.snapshot_version();
            let at = at.unwrap_or(current);
            if at > current {
                return Err(Error::ConstraintViolation(format!(
                    "cannot fork run {run} at version {at}: the database is at version \
                     {current}"
                )));
            }
            if at < current {
                if parent.history_kept_from().is_none_or(|from| at < from) {
                    return Err(Error::ConstraintViolation(format!(
                        "cannot fork run {run} at past version {at}: its retention policy \
                         ({:?}, complete history from {:?}) may have removed versions it \
                         held then (fork at its current version, or keep all history)",
                        parent.retention, parent.history_complete_from
                    )));
                }
                if txn.get_at(&run_key(run), at).is_none() {
                    return Err(Error::RunError(format!(
                        "run {run} did not exist yet at version {at}"
                    )));
                }
            }
            let info = RunInfo {
                run_id: child,
                state: RunState::Active,
                created_at: now,
                updated_at: now,
                metadata: parent.metadata.clone(),
                error: None,
                retention: parent.retention,
                forked_from: Some(ForkOrigin {
                    parent: *run,
                    version: Version::Txn(at),
                }),
                // The inherited past is what the parent kept: complete only where the
                // parent's is.
                history_complete_from: match parent.history_kept_from() {
                    None => Some(Version::Txn(at)),
                    Some(0) => None,
                    Some(from) => Some(Version::Txn(from)),
                },
                uses_ttl: parent.uses_ttl,
            };
            txn.put(run_key(&child), encode_info(&info)?);
            txn.put(
                strata_storage::lineage::fork_key(&child),
                strata_storage::lineage::encode_fork(&strata_storage::lineage::ForkPoint {
                    parent: *run,
                    at,
                }),
            );
            Ok(at)
        })?;
        tracing::debug!(parent = %run, run = %child, at, "run forked");
        Ok(child)
    }

    /// Removes every version of every primitive of `run` — KV pairs, JSON documents,
    /// events, state cells, vector collections and their index files — and the run
    /// itself: afterwards it does not exist (a [`Error::RunError`] for every operation
    /// on it, views of the past included). Returns the version of the purge.
    ///
    /// Forks made earlier keep exactly what they saw: the versions they read stay
    /// (pinned) until they are purged too (see [`purge_with_forks`](Self::purge_with_forks)).
    /// Everything else is freed from memory at once, and from the files by the next
    /// full compaction (`Strata::compact`): after it, no file holds a byte of the run
    /// that no fork still reads. Transactions already running when the purge commits
    /// that read the run fail with a conflict.
    ///
    /// Errors: [`Error::RunError`] if the run does not exist or is the default run.
    pub fn purge(&self, run: &RunId) -> Result<Version> {
        self.purge_runs(run, false)
    }

    /// Like [`purge`](Self::purge), and purges every fork of `run` (and their forks)
    /// in the same commit.
    pub fn purge_with_forks(&self, run: &RunId) -> Result<Version> {
        self.purge_runs(run, true)
    }

    fn purge_runs(&self, run: &RunId, cascade: bool) -> Result<Version> {
        if run.is_default() {
            return Err(Error::RunError(
                "the default run cannot be purged (it always exists)".into(),
            ));
        }
        let (targets, info) = self.engine.run(|txn| {
            check_exists(txn, run)?;
            let mut targets = vec![*run];
            if cascade {
                let prefix = encode_key(&RunId::DEFAULT, Primitive::Run, &[]);
                let mut children: std::collections::HashMap<RunId, Vec<RunId>> =
                    std::collections::HashMap::new();
                for (_, e) in txn.scan_prefix(&prefix, None) {
                    let info = decode_info(e.value.as_deref().unwrap_or_default())?;
                    if let Some(o) = info.forked_from {
                        children.entry(o.parent).or_default().push(info.run_id);
                    }
                }
                let mut i = 0;
                while i < targets.len() {
                    if let Some(c) = children.get(&targets[i]) {
                        targets.extend(c.iter().copied());
                    }
                    i += 1;
                }
            }
            for t in &targets {
                let info = check_exists(txn, t)?;
                let fork = info
                    .forked_from
                    .map(|o| strata_storage::lineage::ForkPoint {
                        parent: o.parent,
                        at: o.version.as_u64(),
                    });
                txn.delete(run_key(t));
                txn.put(
                    strata_storage::lineage::fork_key(t),
                    strata_storage::lineage::encode_purged(fork.as_ref()),
                );
            }
            Ok(targets)
        })?;
        for t in &targets {
            self.engine.purged(t);
        }
        let freed = self.engine.storage().collect_purged();
        tracing::info!(
            run = %run,
            runs = targets.len(),
            versions_freed = freed.entries_dropped,
            "run purged"
        );
        crate::engine::committed_version(info)
    }

    /// What changed in `run` from version `from` to version `to` (`None`: now), as a
    /// stream of [`Change`](crate::diff::Change)s in key order: keys added, removed
    /// and changed per primitive (KV pairs, JSON documents, events, state cells,
    /// vectors). Streamed a page at a time: memory does not depend on the size of the
    /// run. For a fork, `from` may be before the fork (its view then is the parent's).
    ///
    /// Errors: [`Error::ConstraintViolation`] for versions that are not
    /// [`Version::Txn`], newer than the database, or in the past of a run whose
    /// retention policy is not `KeepAll`; [`Error::RunError`] if the run does not exist.
    ///
    /// ```
    /// # use strata_primitives::{internal, Engine, diff::ChangeKind};
    /// # let engine = Engine::new(strata_storage::Storage::ephemeral())?;
    /// # let (kv, runs) = (internal::kv(engine.clone()), internal::runs(engine));
    /// let run = runs.create(None)?;
    /// let v1 = kv.put(&run, "a", 1)?;
    /// kv.put(&run, "a", 2)?;
    /// kv.put(&run, "b", 1)?;
    /// let changes: Vec<_> = runs.diff(&run, v1, None)?.collect::<Result<_, _>>()?;
    /// assert_eq!(changes.len(), 2);
    /// assert_eq!((changes[0].key.as_str(), changes[0].kind), ("a", ChangeKind::Changed));
    /// assert_eq!((changes[1].key.as_str(), changes[1].kind), ("b", ChangeKind::Added));
    /// # Ok::<(), strata_core::Error>(())
    /// ```
    pub fn diff(
        &self,
        run: &RunId,
        from: Version,
        to: Option<Version>,
    ) -> Result<crate::diff::Diff> {
        let storage = self.engine.storage();
        storage.check_open()?;
        // "Now" is the view's version for a view of the past (`db.at`).
        let now = self
            .engine
            .read_version()
            .unwrap_or(storage.visible_version());
        let from = self.diff_version(run, from, now)?;
        let to = match to {
            Some(v) => self.diff_version(run, v, now)?,
            None => now,
        };
        if !self.exists(run)? {
            return Err(not_found(run));
        }
        Ok(crate::diff::Diff::new(
            storage.clone(),
            (*run, from),
            (*run, to),
        ))
    }

    /// What differs between run `a` and run `b` now, as a stream of
    /// [`Change`](crate::diff::Change)s (`before` from `a`, `after` from `b`): for a
    /// fork and its parent, `diff_runs(&parent, &fork)` lists what the fork changed
    /// and what the parent changed since the fork. Streamed like [`diff`](Self::diff).
    pub fn diff_runs(&self, a: &RunId, b: &RunId) -> Result<crate::diff::Diff> {
        let storage = self.engine.storage();
        storage.check_open()?;
        for r in [a, b] {
            if !self.exists(r)? {
                return Err(not_found(r));
            }
        }
        let now = self
            .engine
            .read_version()
            .unwrap_or(storage.visible_version());
        Ok(crate::diff::Diff::new(
            storage.clone(),
            (*a, now),
            (*b, now),
        ))
    }

    fn diff_version(&self, run: &RunId, v: Version, now: u64) -> Result<u64> {
        let v = crate::records::require_txn(v, "a version to diff")?;
        if v > now {
            return Err(Error::ConstraintViolation(format!(
                "version {v} is in the future: the database is at version {now}"
            )));
        }
        if v < now {
            if let Some(info) = info_now(self.engine.storage(), run)? {
                if info.history_kept_from().is_none_or(|from| v < from) {
                    return Err(Error::ConstraintViolation(format!(
                        "run {run} keeps history under {:?} (complete from {:?}): what it \
                         held at version {v} may have been removed, so it cannot be \
                         compared with",
                        info.retention, info.history_complete_from
                    )));
                }
            }
        }
        Ok(v)
    }

    /// Information about a run, or `None` if it does not exist.
    pub fn get(&self, run: &RunId) -> Result<Option<Versioned<RunInfo>>> {
        self.engine.run(|txn| load(txn, run)).map(|(v, _)| v)
    }

    /// Runs in creation order (the default run first), optionally only those in `state`,
    /// at most `limit`; each with the version and time of its last change.
    pub fn list(
        &self,
        state: Option<RunState>,
        limit: Option<u64>,
    ) -> Result<Vec<Versioned<RunInfo>>> {
        let prefix = encode_key(&RunId::DEFAULT, Primitive::Run, &[]);
        let (mut runs, _) = self.engine.run(|txn| {
            let mut out = Vec::new();
            for (k, e) in txn.scan_prefix(&prefix, None) {
                if decode_key(&k).is_none() {
                    continue;
                }
                let info = decode_info(e.value.as_deref().unwrap_or_default())?;
                if state.is_none_or(|s| s == info.state) {
                    out.push(Versioned::new(info, Version::Txn(e.version), e.timestamp));
                }
            }
            Ok(out)
        })?;
        // Creation order: by creation time, then by run id for a stable order.
        runs.sort_by_key(|v| (v.value.created_at, v.value.run_id));
        runs.truncate(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
        Ok(runs)
    }

    /// `true` if the run exists (in any state).
    pub fn exists(&self, run: &RunId) -> Result<bool> {
        Ok(self.get(run)?.is_some())
    }

    /// `true` if the run exists and is active.
    pub fn is_active(&self, run: &RunId) -> Result<bool> {
        Ok(self
            .get(run)?
            .is_some_and(|i| i.value.state == RunState::Active))
    }

    /// Changes a run's record in a transaction; returns the version of the change.
    fn update(
        &self,
        run: &RunId,
        mut change: impl FnMut(&mut RunInfo) -> Result<()>,
    ) -> Result<Version> {
        let (_, info) = self.engine.run(|txn| {
            let mut info = (*check_exists(txn, run)?).clone();
            change(&mut info)?;
            info.updated_at = Timestamp::now().max(info.updated_at);
            txn.put(run_key(run), encode_info(&info)?);
            Ok(())
        })?;
        crate::engine::committed_version(info)
    }

    fn transition(&self, run: &RunId, to: RunState, error: Option<&str>) -> Result<Version> {
        if run.is_default() {
            return Err(Error::RunError(
                "the default run always stays active; its state cannot be changed".into(),
            ));
        }
        let version = self.update(run, |info| {
            if !info.state.can_transition_to(to) {
                return Err(Error::RunError(format!(
                    "run {run} cannot go from {:?} to {to:?}",
                    info.state
                )));
            }
            info.state = to;
            if let Some(e) = error {
                info.error = Some(e.to_owned());
            }
            Ok(())
        })?;
        tracing::debug!(run = %run, state = ?to, "run state changed");
        Ok(version)
    }

    /// Marks the run completed; returns the version of the change.
    pub fn close(&self, run: &RunId) -> Result<Version> {
        self.transition(run, RunState::Completed, None)
    }
    /// Pauses an active run.
    pub fn pause(&self, run: &RunId) -> Result<Version> {
        self.transition(run, RunState::Paused, None)
    }
    /// Resumes a paused run.
    pub fn resume(&self, run: &RunId) -> Result<Version> {
        self.transition(run, RunState::Active, None)
    }
    /// Marks the run failed with an error message.
    pub fn fail(&self, run: &RunId, error: &str) -> Result<Version> {
        self.transition(run, RunState::Failed, Some(error))
    }
    /// Cancels the run.
    pub fn cancel(&self, run: &RunId) -> Result<Version> {
        self.transition(run, RunState::Cancelled, None)
    }
    /// Archives the run (terminal).
    pub fn archive(&self, run: &RunId) -> Result<Version> {
        self.transition(run, RunState::Archived, None)
    }

    /// Replaces the run's metadata; returns the version of the change. Allowed in every
    /// state (it describes the run; it is not data of the run).
    pub fn update_metadata(&self, run: &RunId, metadata: Value) -> Result<Version> {
        crate::engine::encode_value(&metadata)?;
        self.update(run, |info| {
            info.metadata = Some(metadata.clone());
            Ok(())
        })
    }

    /// Sets the run's version-history retention policy and applies it at once; returns
    /// the version of the change.
    pub fn set_retention(&self, run: &RunId, policy: RetentionPolicy) -> Result<Version> {
        let mut relaxed = false;
        let version = self.update(run, |info| {
            // Relaxing a policy that dropped versions: the past before this change may
            // be thinned. No past is exact until the version of this change is known
            // and recorded by the second update below.
            relaxed = !info.retention.keeps_all() && policy.keeps_all();
            if relaxed {
                info.history_complete_from = Some(Version::Txn(u64::MAX));
            }
            info.retention = policy;
            Ok(())
        })?;
        if relaxed {
            self.update(run, |info| {
                if info.history_complete_from == Some(Version::Txn(u64::MAX)) {
                    info.history_complete_from = Some(version);
                }
                Ok(())
            })?;
        }
        self.engine.collect_garbage(run, &policy);
        Ok(version)
    }

    /// The run's retention policy.
    pub fn get_retention(&self, run: &RunId) -> Result<RetentionPolicy> {
        self.get(run)?
            .map(|i| i.value.retention)
            .ok_or_else(|| not_found(run))
    }
}

/// Every run's record as of `snapshot`, read directly from the storage (no
/// transaction: used by garbage collection, which must not depend on the engine). Notes
/// a run using a time to live (see `crate::ttl::TTL_SEEN`).
pub(crate) fn run_infos(
    storage: &strata_storage::Storage,
    snapshot: u64,
) -> Result<Vec<Arc<RunInfo>>> {
    let prefix = encode_key(&RunId::DEFAULT, Primitive::Run, &[]);
    let mut out = Vec::new();
    for (k, e) in storage.scan_prefix(&prefix, snapshot, None)? {
        let Some((_, _, id)) = decode_key(&k) else {
            continue;
        };
        let Some(bytes) = e.value.as_ref() else {
            continue;
        };
        let info = DECODED_RUNS.get_or_decode(id, bytes, decode_info)?;
        if info.uses_ttl {
            crate::ttl::seen();
        }
        out.push(info);
    }
    Ok(out)
}

/// Every run's retention policy as of `snapshot` (see [`run_infos`]).
pub(crate) fn retention_policies(
    storage: &strata_storage::Storage,
    snapshot: u64,
) -> Result<Vec<(RunId, RetentionPolicy)>> {
    Ok(run_infos(storage, snapshot)?
        .into_iter()
        .map(|i| (i.run_id, i.retention))
        .collect())
}

/// The run's record now (`None` if it does not exist), read directly from the
/// storage.
pub(crate) fn info_now(
    storage: &strata_storage::Storage,
    run: &RunId,
) -> Result<Option<Arc<RunInfo>>> {
    let Some(e) = storage.get(&run_key(run), storage.visible_version())? else {
        return Ok(None);
    };
    let Some(bytes) = e.value.as_ref() else {
        return Ok(None);
    };
    Ok(Some(DECODED_RUNS.get_or_decode(
        run.as_bytes(),
        bytes,
        decode_info,
    )?))
}

/// Retention of the run, read inside a transaction.
pub(crate) fn retention_of(txn: &mut Transaction, run: &RunId) -> Result<RetentionPolicy> {
    Ok(check_exists(txn, run)?.retention)
}
