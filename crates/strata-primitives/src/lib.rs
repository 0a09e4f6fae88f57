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
pub mod engine;
pub mod events;
pub mod gc;
pub mod json;
pub mod json_path;
pub mod kv;
mod records;
pub mod runs;
pub mod state;

pub use engine::Engine;
pub use events::Events;
pub use json::Json;
pub use kv::KV;
pub use runs::{RunInfo, RunState, Runs};
pub use state::State;
pub use strata_storage::RetentionPolicy;
