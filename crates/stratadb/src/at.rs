//! [`AtVersion`]: the database as it was at an earlier version (time travel).
use strata_core::{Error, Result, Timestamp, Version};
use strata_primitives::{internal, Events, Json, Runs, State, KV};
use strata_storage::TimePoint;

use crate::Strata;

/// A read-only view of the whole database as of one version, from [`Strata::at`] or
/// [`Strata::at_time`].
///
/// Every read method of `kv`, `json`, `events`, `state` and `runs` answers as the
/// database stood right after the commit of that version — consistent across
/// primitives and runs, and repeatable: the answers never change, whatever is written
/// later. History reads (`get_at`, `history`) see the versions up to it. Every write
/// method fails with [`Error::ConstraintViolation`].
///
/// Time-to-live expiries are judged at the view's [`time`](AtVersion::time): the commit
/// time of the version for [`Strata::at`], the chosen time for [`Strata::at_time`]. A
/// record whose expiry had passed by then reads as absent even before garbage
/// collection deleted it.
///
/// A run that did not exist yet at that version is a [`Error::RunError`]. Reading a
/// run whose retention policy is not `KeepAll` as of a past version fails with
/// [`Error::ConstraintViolation`]: retention may have removed what it held then, and
/// a view never answers with a newer value instead.
///
/// Vector collections are not part of the view (their similarity index follows the
/// present only); read the vectors' records in the present, or fork the run at that
/// version ([`Runs::fork`]) and search the fork.
///
/// ```
/// use stratadb::prelude::*;
///
/// let db = Strata::ephemeral()?;
/// let v1 = db.kv.put(&db.runs.default_run(), "goal", "draft")?;
/// db.kv.set("goal", "final")?;
/// db.json.set("plan", json!({"step": 2}))?;
///
/// let past = db.at(v1)?;
/// assert_eq!(past.kv.get("goal")?.unwrap().value, "draft");
/// assert!(past.json.get("plan")?.is_none()); // written after v1
/// assert!(past.kv.set("goal", "x").is_err()); // the past is read-only
/// # Ok::<(), stratadb::Error>(())
/// ```
pub struct AtVersion {
    /// Key-value pairs as of the version.
    pub kv: KV,
    /// JSON documents as of the version.
    pub json: Json,
    /// Event streams as of the version.
    pub events: Events,
    /// State cells as of the version.
    pub state: State,
    /// Runs (their records and states) as of the version.
    pub runs: Runs,
    version: Version,
    time: Option<Timestamp>,
}

impl AtVersion {
    /// The version this view reads at: every commit up to it, none after it.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The time this view stands at: the time asked of [`Strata::at_time`], or the
    /// commit time of the version asked of [`Strata::at`]. `None` for version 0 (before
    /// the first commit) and for versions older than the database's timeline (a
    /// database created before StrataDB recorded commit times); such a view judges no
    /// expiry by time.
    pub fn time(&self) -> Option<Timestamp> {
        self.time
    }
}

impl std::fmt::Debug for AtVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtVersion")
            .field("version", &self.version)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

impl Strata {
    /// The database as it was right after the commit of `version` (a
    /// [`Version::Txn`], as returned by writes and found in [`Versioned::version`] of
    /// KV pairs, JSON documents and runs): a read-only view in which every read of
    /// every primitive answers as of then (see [`AtVersion`]).
    ///
    /// Errors: [`Error::ConstraintViolation`] if `version` is not a `Version::Txn` or
    /// is newer than the database's current version; an [`Error::Storage`] naming file
    /// and offset if the timeline file is damaged (the view needs the version's commit
    /// time to judge expiries at it).
    ///
    /// [`Versioned::version`]: strata_core::Versioned::version
    pub fn at(&self, version: Version) -> Result<AtVersion> {
        let v = match version {
            Version::Txn(v) => v,
            other => {
                return Err(Error::ConstraintViolation(format!(
                    "a view of the past needs a Version::Txn (a commit version), got {other}"
                )))
            }
        };
        let storage = self.engine.storage();
        storage.check_open()?;
        let current = storage.visible_version();
        if v > current {
            return Err(Error::ConstraintViolation(format!(
                "version {v} is in the future: the database is at version {current}"
            )));
        }
        let time = if v == 0 {
            None
        } else {
            storage.commit_time(v)?
        };
        Ok(self.view(v, time))
    }

    /// The database as it was at `time`: a read-only view ([`AtVersion`]) of every
    /// commit made at or before `time` — commit timestamps never go back, so that is a
    /// version, [`AtVersion::version`] — whose reads judge time-to-live expiries at
    /// `time`. Use it with the timestamps StrataDB hands out ([`Versioned::timestamp`],
    /// [`Timestamp::now`]): a view at a record's timestamp sees that record.
    ///
    /// A time before the first commit gives the empty database (version 0, where not
    /// even the default run exists yet).
    ///
    /// Errors: [`Error::ConstraintViolation`] if `time` is later than now and not before
    /// the newest commit's timestamp (commits still to come could be stamped at or
    /// before it, so the view would change), or earlier than the first commit the database
    /// recorded the time of while older ones exist (a database created before
    /// StrataDB kept commit times: use [`at`](Self::at) with a version); an
    /// [`Error::Storage`] naming file and offset if the timeline file is damaged.
    ///
    /// ```
    /// use stratadb::prelude::*;
    ///
    /// let db = Strata::ephemeral()?;
    /// let first = db.kv.put(&db.runs.default_run(), "goal", "draft")?;
    /// let then = db.kv.get("goal")?.unwrap().timestamp;
    /// std::thread::sleep(std::time::Duration::from_millis(2));
    /// db.kv.set("goal", "final")?;
    ///
    /// let past = db.at_time(then)?;
    /// assert_eq!(past.version(), first);
    /// assert_eq!(past.kv.get("goal")?.unwrap().value, "draft");
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    ///
    /// [`Versioned::timestamp`]: strata_core::Versioned::timestamp
    pub fn at_time(&self, time: Timestamp) -> Result<AtVersion> {
        let storage = self.engine.storage();
        storage.check_open()?;
        // Commit timestamps are `max(clock, previous)`: every commit from now on gets
        // one at or after both the clock and the newest commit's. A view is stable —
        // the same answers whenever it is asked — when no later commit can get a
        // timestamp at or before `time`: when `time` is before the newest commit's
        // timestamp (which may lead the clock, after a clock step back or a restore from
        // a machine whose clock ran ahead), or not after the clock (waited out below).
        let last = storage.last_commit_timestamp();
        let now = Timestamp::now();
        if time > now && time >= last {
            return Err(Error::ConstraintViolation(format!(
                "time {} µs is in the future, not over yet (the clock is at {} µs, the \
                 newest commit at {} µs): commits made from now on may still be stamped at \
                 or before it, so a view of it would change",
                time.as_micros(),
                now.as_micros(),
                last.as_micros()
            )));
        }
        // A time of "now": once the clock has passed it, every later commit's timestamp
        // is above it (at most a microsecond's wait).
        let mut spins = 0u32;
        while Timestamp::now() <= time && spins < 1_000 {
            std::thread::yield_now();
            spins += 1;
        }
        let v = match storage.version_at_time(time)? {
            TimePoint::Version(v) => {
                // A strict commit waiting for its fsync is not visible yet: wait for it
                // (one fsync), so that a view never leaves out a commit made by then
                // that a later view of the same time would include.
                if v > storage.visible_version() {
                    storage.wait_until_applied_visible(std::time::Duration::from_secs(5));
                }
                v.min(storage.visible_version())
            }
            TimePoint::Unknown { starts_at } => {
                return Err(Error::ConstraintViolation(format!(
                    "no commit time is recorded before version {starts_at} (the database \
                     is older than its timeline), so time {} µs cannot be placed; read \
                     an older state by version with `at`",
                    time.as_micros()
                )))
            }
        };
        Ok(self.view(v, Some(time)))
    }

    fn view(&self, v: u64, time: Option<Timestamp>) -> AtVersion {
        let engine = self.engine.at_version(v, time.unwrap_or(Timestamp(0)));
        AtVersion {
            kv: internal::kv(engine.clone()),
            json: internal::json(engine.clone()),
            events: internal::events(engine.clone()),
            state: internal::state(engine.clone()),
            runs: internal::runs(engine),
            version: Version::Txn(v),
            time,
        }
    }
}
