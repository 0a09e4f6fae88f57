//! [`AtVersion`]: the database as it was at an earlier version (time travel).
use strata_core::{Error, Result, Version};
use strata_primitives::{internal, Events, Json, Runs, State, KV};

use crate::Strata;

/// A read-only view of the whole database as of one version, from [`Strata::at`].
///
/// Every read method of `kv`, `json`, `events`, `state` and `runs` answers as the
/// database stood right after the commit of that version — consistent across
/// primitives and runs, and repeatable: the answers never change, whatever is written
/// later. History reads (`get_at`, `history`) see the versions up to it. Every write
/// method fails with [`Error::ConstraintViolation`].
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
}

impl AtVersion {
    /// The version this view reads at.
    pub fn version(&self) -> Version {
        self.version
    }
}

impl std::fmt::Debug for AtVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtVersion")
            .field("version", &self.version)
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
    /// is newer than the database's current version.
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
        let engine = self.engine.at_version(v);
        Ok(AtVersion {
            kv: internal::kv(engine.clone()),
            json: internal::json(engine.clone()),
            events: internal::events(engine.clone()),
            state: internal::state(engine.clone()),
            runs: internal::runs(engine),
            version,
        })
    }
}
