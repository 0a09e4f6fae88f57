//! # StrataDB
//!
//! An embedded database for AI agents: key-value pairs, JSON documents, event streams,
//! state cells and vectors, scoped by runs, versioned, durable through a write-ahead log
//! and snapshots, with optimistic transactions.
//!
//! ```
//! use stratadb::prelude::*;
//!
//! let db = Strata::ephemeral()?;
//! db.kv.set("user:name", "Alice")?;
//! assert_eq!(db.kv.get("user:name")?.unwrap().as_str(), Some("Alice"));
//!
//! db.json.set("profile:1", json!({"name": "Alice", "age": 30}))?;
//! db.events.append("activity", json!({"action": "login"}))?;
//! # Ok::<(), stratadb::Error>(())
//! ```
//!
//! Every primitive has three levels: the default run (`db.kv.set(key, value)`), a given
//! run (`db.kv.set_in(&run, key, value)`), and full control with explicit runs and
//! versions (`db.kv.put(&run, key, value)` returning the version). Several primitives can
//! be changed atomically with [`Strata::transaction`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod admin;
mod at;
mod builder;
mod export;
mod strata;
mod transaction;

pub use admin::{verify, DbInfo, FileCheck, FileInfo, PrimitiveStats, VerifyReport, RUN_STATES};
pub use at::AtVersion;
pub use builder::StrataBuilder;
pub use export::{import, ExportReport, ImportReport, EXPORT_FORMAT_VERSION};
pub use strata::Strata;
pub use transaction::Txn;

pub use strata_concurrency::DatabaseMetrics;
pub use strata_core::{json, limits, Error, Result, RunId, Timestamp, Value, Version, Versioned};
pub use strata_primitives::diff::{Change, ChangeKind, Diff, DiffPrimitive};
pub use strata_primitives::{
    Events, ForkOrigin, Json, RetentionPolicy, RunInfo, RunState, Runs, State, KV,
};
pub use strata_storage::{lock_holder, DurabilityMode};
pub use strata_vector::{
    CollectionInfo, CollectionOptions, DistanceMetric, Quantization, SearchFilter, VectorData,
    VectorMatch, Vectors,
};

/// Everything a typical program needs: `use stratadb::prelude::*;`.
pub mod prelude {
    pub use crate::{Strata, StrataBuilder};
    pub use strata_core::{json, Error, Result, RunId, Timestamp, Value, Version, Versioned};
    pub use strata_primitives::{Events, Json, RetentionPolicy, RunState, Runs, State, KV};
    pub use strata_vector::{DistanceMetric, SearchFilter, Vectors};
}

/// The README's tour, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
