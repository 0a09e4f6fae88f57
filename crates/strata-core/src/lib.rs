//! # strata-core
//!
//! The vocabulary every other StrataDB crate speaks:
//!
//! - [`Value`]: the eight-variant value model (see [`value`] for its rules);
//! - [`Version`], [`Versioned`], [`Timestamp`]: how every read reports *which* write it saw;
//! - [`RunId`]: the id of a run, the isolation namespace of all data;
//! - [`Error`] / [`Result`]: the one error type of the public API;
//! - [`limits`]: documented bounds on keys, values, nesting and vector dimensions;
//! - [`codec`]: the exact binary encoding of values used on disk;
//! - [`json!`]: build a [`Value`] with JSON syntax.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
mod error;
pub mod limits;
mod macros;
mod run_id;
mod timestamp;
pub mod value;
mod value_json;
mod version;
mod versioned;

pub use error::{Error, Result};
pub use run_id::RunId;
pub use timestamp::Timestamp;
pub use value::Value;
pub use version::Version;
pub use versioned::Versioned;

#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
