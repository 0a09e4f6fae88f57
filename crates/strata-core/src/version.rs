//! Version identifiers.
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one write. The variant says what the number counts:
///
/// | variant    | used by                | meaning |
/// |------------|------------------------|---------|
/// | `Txn`      | KV, JSON, Vectors, Runs | the global commit version of the transaction that wrote it |
/// | `Sequence` | Events                 | the position of the event in its stream (the first event is 1) |
/// | `Counter`  | State                  | how many times the cell has been written (the first write is 1) |
///
/// Versions of the same variant are ordered by their number; comparing versions of
/// different variants orders by variant first and carries no meaning.
///
/// **No committed write ever has version 0** (the first commit, the first event of a
/// stream and the first write of a cell are all 1). The only `0` an API returns marks a
/// *pending* write: inside a transaction (`Strata::transaction`), reading a key or a
/// document that the transaction itself wrote returns it with `Version::Txn(0)` and
/// timestamp 0, because its commit version is not known before the commit. Test for it
/// with [`is_pending`](Version::is_pending); the committed write gets its real version,
/// returned by the operation after the transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Version {
    /// A global transaction (commit) version.
    Txn(u64),
    /// A position in an append-only stream.
    Sequence(u64),
    /// A per-entity mutation counter.
    Counter(u64),
}

impl Version {
    /// The numeric value, whatever the variant.
    pub fn as_u64(&self) -> u64 {
        match *self {
            Version::Txn(v) | Version::Sequence(v) | Version::Counter(v) => v,
        }
    }
    /// `true` for [`Version::Txn`].
    pub fn is_txn(&self) -> bool {
        matches!(self, Version::Txn(_))
    }
    /// `true` for [`Version::Sequence`].
    pub fn is_sequence(&self) -> bool {
        matches!(self, Version::Sequence(_))
    }
    /// `true` for [`Version::Counter`].
    pub fn is_counter(&self) -> bool {
        matches!(self, Version::Counter(_))
    }
    /// `true` when the number is 0: no committed write ever has version 0, so this is
    /// the pending marker (see [`is_pending`](Version::is_pending)).
    pub fn is_zero(&self) -> bool {
        self.as_u64() == 0
    }
    /// `true` for `Version::Txn(0)`: a transaction's own uncommitted write, read back
    /// inside that transaction (see the type's documentation).
    pub fn is_pending(&self) -> bool {
        *self == Version::Txn(0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Txn(v) => write!(f, "txn:{v}"),
            Version::Sequence(v) => write!(f, "seq:{v}"),
            Version::Counter(v) => write!(f, "counter:{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        let t = Version::Txn(5);
        assert!(t.is_txn() && !t.is_sequence() && !t.is_counter() && !t.is_zero());
        assert_eq!(t.as_u64(), 5);
        assert!(Version::Sequence(0).is_zero() && Version::Sequence(0).is_sequence());
        assert!(Version::Counter(1).is_counter());
        assert!(Version::Txn(1) < Version::Txn(2));
        assert_eq!(Version::Counter(3).to_string(), "counter:3");
    }
}
