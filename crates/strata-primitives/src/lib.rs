//! # strata-primitives
//!
//! The primitives of StrataDB, each written as functions over a
//! [`strata_concurrency::Transaction`] (the `ops` module of each primitive) so that one
//! transaction can span several primitives, plus a handle per primitive that runs each
//! operation in its own retried transaction:
//!
//! - [`KV`]: key-value pairs with history, `incr`, `cas` and batches;
//! - [`Json`]: JSON documents with JSONPath reads and writes and merge patches;
//! - [`Events`]: append-only event streams;
//! - [`State`]: compare-and-swap state cells with per-cell counters;
//! - [`Runs`]: run lifecycle, metadata and retention.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod decoded;
pub mod diff;
pub mod engine;
pub mod events;
pub mod gc;
pub mod json;
pub mod json_path;
pub mod kv;
mod records;
pub mod runs;
pub mod state;
mod ttl;

pub use engine::Engine;

/// Building the primitive handles over an [`Engine`]: for the crates that assemble a
/// database (the `stratadb` facade, `strata-vector`) and for engine-level tests and
/// tools. Not part of the user-facing API: users get the handles as the fields of
/// `stratadb::Strata`, whose documentation does not include this module. Keeping the
/// constructors here, rather than as `KV::new` and so on, keeps the engine type out of
/// the handles' own documentation.
pub mod internal {
    use std::sync::Arc;

    use crate::{Engine, Events, Json, Runs, State, KV};

    /// The key-value handle over `engine`.
    pub fn kv(engine: Arc<Engine>) -> KV {
        KV::new(engine)
    }
    /// The JSON handle over `engine`.
    pub fn json(engine: Arc<Engine>) -> Json {
        Json::new(engine)
    }
    /// The events handle over `engine`.
    pub fn events(engine: Arc<Engine>) -> Events {
        Events::new(engine)
    }
    /// The state-cell handle over `engine`.
    pub fn state(engine: Arc<Engine>) -> State {
        State::new(engine)
    }
    /// The runs handle over `engine`.
    pub fn runs(engine: Arc<Engine>) -> Runs {
        Runs::new(engine)
    }
}
pub use events::Events;
pub use json::Json;
pub use kv::KV;
pub use runs::{ForkOrigin, RunInfo, RunState, Runs};
pub use state::State;
pub use strata_storage::RetentionPolicy;
