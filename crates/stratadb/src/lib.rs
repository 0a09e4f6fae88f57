//! StrataDB facade (being built).
pub use strata_core::{json, Error, Result, RunId, Timestamp, Value, Version, Versioned};
/// Everything a user needs.
pub mod prelude {
    pub use strata_core::{json, Error, Result, RunId, Timestamp, Value, Version, Versioned};
}
