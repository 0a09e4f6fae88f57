//! Version-history retention policies, and the one definition of what they keep (see
//! [`RetentionPolicy`]).
use serde::{Deserialize, Serialize};
use std::time::Duration;
use strata_core::Timestamp;

use crate::mvcc::Entry;

/// How much version history of a run to keep. The newest version of every key is always
/// kept, and so is every version an open snapshot can still read.
///
/// # What a policy keeps
///
/// A policy looks at a key's *version chain*: every entry of the key, oldest first,
/// **deletes (tombstones) included**. A delete is a version like any other: it counts
/// towards `KeepLast(n)` and it can be the newest version `KeepFor` always keeps.
/// [`RetentionPolicy::retained_from`] returns the index of the oldest entry the policy
/// keeps; every entry from there on is retained, every older one is hidden.
///
/// The same function decides both sides:
///
/// - **At read time** (`history`, `get_at` in the primitives) it is applied to the chain
///   as the reader's snapshot sees it, so a policy holds exactly even before garbage
///   collection has run. The lists readers get leave deletes out, so `KeepLast(3)` over
///   `put, put, delete, put` lists two values.
/// - **In garbage collection**
///   ([`MvccMap::gc_range_pinned`](crate::MvccMap::gc_range_pinned)) it is applied to
///   the chain as each possible reader sees it (each open snapshot, and any reader at
///   the visible version or later); only entries no reader retains, and no reader sees
///   as its current value, are dropped.
///
/// What one reader retains is a suffix of the chain it sees, and collection never drops
/// an entry of it, so a reader gets the same answers whether or not (and however often)
/// collection ran before it, provided the clock does not go backwards. A policy is not
/// retroactive in the other direction: loosening it does not bring back versions a
/// stricter one let collection drop.
///
/// Counting deletes is what lets retention free them: under `KeepLast(1)` a deleted
/// key has no retained value, and its chain disappears once no snapshot can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RetentionPolicy {
    /// Keep every version (the default).
    #[default]
    KeepAll,
    /// Keep the newest `n` versions of each key, deletes included (`KeepLast(0)`
    /// behaves like `KeepLast(1)`).
    KeepLast(usize),
    /// Keep versions written within this duration before "now", plus the newest
    /// version (which may be a delete).
    KeepFor(Duration),
}

impl RetentionPolicy {
    /// The index in `chain` (a key's entries, oldest first, as one snapshot sees them)
    /// of the oldest entry this policy retains at `now`: `chain[i..]` is retained,
    /// `chain[..i]` hidden. Always keeps the newest entry; `0` for an empty chain.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use strata_core::Timestamp;
    /// use strata_storage::{Entry, RetentionPolicy};
    /// let e = |v: u64, live: bool| Entry {
    ///    version: v,
    ///    timestamp: Timestamp(v),
    ///    value: live.then(|| Arc::from(&b"x"[..])),
    /// };
    /// let chain = [e(1, true), e(2, true), e(3, false), e(4, true)];
    /// // The delete at 3 is one of the two newest versions.
    /// assert_eq!(RetentionPolicy::KeepLast(2).retained_from(&chain, Timestamp(9)), 2);
    /// assert_eq!(RetentionPolicy::KeepAll.retained_from(&chain, Timestamp(9)), 0);
    /// ```
    pub fn retained_from(&self, chain: &[Entry], now: Timestamp) -> usize {
        let n = chain.len();
        if n == 0 {
            return 0;
        }
        match self {
            RetentionPolicy::KeepAll => 0,
            RetentionPolicy::KeepLast(k) => n.saturating_sub((*k).max(1)),
            RetentionPolicy::KeepFor(d) => {
                let cutoff = now.saturating_sub(*d);
                // Commit timestamps increase along a chain: the first entry inside the
                // window starts the retained part; the newest entry is always kept.
                chain
                    .iter()
                    .position(|e| e.timestamp >= cutoff)
                    .unwrap_or(n - 1)
                    .min(n - 1)
            }
        }
    }

    /// `true` for [`KeepAll`](RetentionPolicy::KeepAll), which never hides anything.
    pub fn keeps_all(&self) -> bool {
        matches!(self, RetentionPolicy::KeepAll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn e(v: u64, ts: u64, live: bool) -> Entry {
        Entry {
            version: v,
            timestamp: Timestamp(ts),
            value: live.then(|| Arc::from(&b"x"[..])),
        }
    }

    #[test]
    fn keep_last_counts_deletes_and_keeps_the_newest() {
        let chain = [e(1, 1, true), e(2, 2, false), e(3, 3, true)];
        let p = RetentionPolicy::KeepLast;
        assert_eq!(p(0).retained_from(&chain, Timestamp(0)), 2);
        assert_eq!(p(1).retained_from(&chain, Timestamp(0)), 2);
        assert_eq!(p(2).retained_from(&chain, Timestamp(0)), 1);
        assert_eq!(p(9).retained_from(&chain, Timestamp(0)), 0);
        assert_eq!(p(1).retained_from(&[], Timestamp(0)), 0);
    }

    #[test]
    fn keep_for_keeps_the_window_and_the_newest() {
        let chain = [e(1, 10, true), e(2, 20, true), e(3, 30, false)];
        let p = RetentionPolicy::KeepFor(Duration::from_micros(15));
        assert_eq!(p.retained_from(&chain, Timestamp(35)), 1);
        assert_eq!(p.retained_from(&chain, Timestamp(25)), 0);
        // Everything is older than the window: only the newest entry (a delete) stays.
        assert_eq!(p.retained_from(&chain, Timestamp(1_000)), 2);
    }
}
