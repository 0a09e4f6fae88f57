//! Version-history retention policies.
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much version history of a run to keep. The newest version of every key is always
/// kept, and so is every version an open snapshot can still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RetentionPolicy {
    /// Keep every version (the default).
    #[default]
    KeepAll,
    /// Keep the newest `n` versions of each key (`KeepLast(0)` behaves like `KeepLast(1)`).
    KeepLast(usize),
    /// Keep versions written within this duration, plus the newest version.
    KeepFor(Duration),
}
