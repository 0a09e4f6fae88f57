//! Range reads at the edges: empty and inverted bounds, single-key ranges.
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::Arc;

use strata_concurrency::{Transaction, TransactionManager};
use strata_storage::Storage;

fn k(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn v(s: &str) -> Arc<[u8]> {
    Arc::from(s.as_bytes())
}

fn setup() -> TransactionManager {
    let m = TransactionManager::new(Storage::ephemeral());
    let mut t = m.begin();
    for key in ["a", "b", "c"] {
        t.put(k(key), v("1"));
    }
    t.commit().unwrap();
    m
}

type Range = (Bound<&'static [u8]>, Bound<&'static [u8]>);

fn scan_both(t: &mut Transaction, (start, end): Range) -> (usize, usize) {
    (
        t.scan_range(start, end, None).len(),
        t.scan_range_rev(start, end, None).len(),
    )
}

/// Regression: inverted bounds, or equal bounds with one excluded, used to reach
/// `BTreeMap::range`, which panics on them. They are empty ranges.
#[test]
fn empty_and_inverted_ranges_are_empty_not_a_panic() {
    let m = setup();
    let empty: [Range; 5] = [
        (Included(b"c"), Excluded(b"a")),
        (Included(b"c"), Included(b"a")),
        (Excluded(b"b"), Excluded(b"b")),
        (Included(b"b"), Excluded(b"b")),
        (Excluded(b"b"), Included(b"b")),
    ];
    for range in empty {
        // With and without own writes inside the key space.
        let mut t = m.begin();
        assert_eq!(scan_both(&mut t, range), (0, 0), "{range:?}");
        t.put(k("b"), v("mine"));
        t.put(k("bb"), v("mine"));
        assert_eq!(scan_both(&mut t, range), (0, 0), "{range:?}");
        // A concurrent write anywhere does not conflict with an empty range...
        let mut other = m.begin();
        other.put(k("b"), v("other"));
        other.put(k("a"), v("other"));
        other.commit().unwrap();
        // ...and commit validation does not trip over it either.
        assert!(t.commit().unwrap().is_some(), "{range:?}");
    }
}

#[test]
fn single_key_and_unbounded_ranges_are_read_and_validated() {
    let m = setup();
    let ranges: [Range; 3] = [
        (Included(b"b"), Included(b"b")),
        (Excluded(b"a"), Excluded(b"c")),
        (Unbounded, Unbounded),
    ];
    for range in ranges {
        let mut t = m.begin();
        let (fwd, rev) = scan_both(&mut t, range);
        assert_eq!(fwd, rev);
        assert!(fwd >= 1, "{range:?}");
        let mut other = m.begin();
        other.put(k("b"), v("changed"));
        other.commit().unwrap();
        t.put(k("out"), v("x"));
        assert!(t.commit().unwrap_err().is_conflict(), "{range:?}");
    }
}

/// `list_prefix_keys` hands over exactly the keys `scan_prefix_keys` lists, with their
/// versions: from the snapshot alone, and merged with the transaction's own writes and
/// deletes under the prefix; with and without a limit.
#[test]
fn listing_keys_key_by_key_matches_the_keys_only_scan() {
    let m = TransactionManager::new(Storage::ephemeral());
    let mut t = m.begin();
    for i in 0..50 {
        t.put(k(&format!("p:{i:02}")), v("x"));
    }
    t.put(k("q:00"), v("x"));
    t.commit().unwrap();
    let check = |t: &mut Transaction| {
        for limit in [None, Some(0), Some(1), Some(10), Some(100)] {
            let mut listed = Vec::new();
            t.list_prefix_keys(b"p:", limit, &mut |key, e| {
                listed.push((key.into(), e.version))
            });
            let scanned: Vec<(Box<[u8]>, u64)> = t
                .scan_prefix_keys(b"p:", limit)
                .into_iter()
                .map(|(key, e)| (key, e.version))
                .collect();
            assert_eq!(listed, scanned, "{limit:?}");
        }
    };
    let mut t = m.begin();
    check(&mut t);
    t.put(k("p:05x"), v("new"));
    t.delete(k("p:07"));
    check(&mut t);
    let mut listed = 0;
    t.list_prefix_keys(b"p:", None, &mut |_, _| listed += 1);
    assert_eq!(listed, 50);
}
