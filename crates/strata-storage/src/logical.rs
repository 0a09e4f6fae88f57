//! Reads as callers see them: the physical layers ([`Tree`]) plus the lineage of forked
//! runs ([`crate::lineage`]).
//!
//! A key of a run that is not a fork is read from the tree directly. A key of a fork is
//! read level by level — the run itself at the reader's snapshot, then each ancestor at
//! the fork version (clamped to the snapshot) — and the first level holding an entry
//! at or before its version decides, a tombstone meaning "absent". A scan inside one
//! forked run merges one stream per level in key order with the same rule.
use std::ops::Bound;

use strata_core::{Result, RunId};

use crate::key::prefix_successor;
use crate::lineage::{rekey, run_of, Lineage, Presence};
use crate::mvcc::{is_empty_range, Entry, ListedKey};
use crate::tree::{visible_at, Merge, Tree};

/// The live entry of `key` at `snapshot`, through the lineage; `prepare` gives fork
/// levels without an own-key set one (see [`Lineage::levels_for`]).
pub(crate) fn get(
    tree: &Tree,
    lineage: &Lineage,
    key: &[u8],
    snapshot: u64,
    prepare: impl FnOnce() -> Result<()>,
) -> Result<Option<Entry>> {
    let Some(run) = run_of(key).filter(|r| lineage.parent_of(r).is_some()) else {
        return tree.get(key, snapshot);
    };
    let (mut levels, unknown) = lineage.levels_for(&run, snapshot, &key[16..]);
    if unknown {
        prepare()?;
        levels = lineage.levels_for(&run, snapshot, &key[16..]).0;
    }
    for (level, at) in levels {
        let found = if level == run {
            tree.get_entry(key, at)?
        } else {
            tree.get_entry(&rekey(key, &level), at)?
        };
        if let Some(e) = found {
            return Ok(Some(e).filter(|e| !e.is_tombstone()));
        }
    }
    Ok(None)
}

/// Versions of `key` at `snapshot`, newest first, tombstones included, through the
/// lineage: the run's own, then each ancestor's up to its fork version.
pub(crate) fn history(
    tree: &Tree,
    lineage: &Lineage,
    key: &[u8],
    snapshot: u64,
    before: Option<u64>,
    limit: Option<usize>,
) -> Result<Vec<Entry>> {
    let Some(run) = run_of(key).filter(|r| lineage.parent_of(r).is_some()) else {
        return tree.history(key, snapshot, before, limit);
    };
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (level, at) in lineage.ancestry(&run, snapshot) {
        if out.len() >= limit {
            break;
        }
        if lineage.presence(&level, &key[16..]) == Presence::Absent {
            continue;
        }
        let k = rekey(key, &level);
        let part = tree.history(&k, at, before, Some(limit - out.len()))?;
        // Each level's versions are older than the level before's (a child writes only
        // after its fork), so appending keeps the newest-first order.
        out.extend(part);
    }
    Ok(out)
}

/// How a [`scan`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ScanMode {
    /// Newest key first.
    pub reverse: bool,
    /// Entries from sorted runs without their values (see `Merge::keys_only`).
    pub keys_only: bool,
}

/// Calls `sink` with the live keys in `[start, end)` at `snapshot`, in key order, at
/// most `limit` (see [`Tree::list_keys`]), through the lineage when the range lies
/// inside one forked run (then by way of [`scan`]).
pub(crate) fn list_keys(
    tree: &Tree,
    lineage: &Lineage,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    snapshot: u64,
    limit: Option<usize>,
    sink: &mut dyn FnMut(&[u8], ListedKey),
) -> Result<()> {
    if single_run(start, end).is_none_or(|run| lineage.parent_of(&run).is_none()) {
        return tree.list_keys(start, end, snapshot, limit, sink);
    }
    let mode = ScanMode {
        keys_only: true,
        ..ScanMode::default()
    };
    for (k, e) in scan(tree, lineage, start, end, snapshot, limit, mode)? {
        let (version, timestamp) = (e.version, e.timestamp);
        sink(&k, ListedKey { version, timestamp });
    }
    Ok(())
}

/// Live entries in `[start, end)` at `snapshot`, in key order (or reverse), at most
/// `limit`, through the lineage when the range lies inside one forked run.
pub(crate) fn scan(
    tree: &Tree,
    lineage: &Lineage,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    snapshot: u64,
    limit: Option<usize>,
    mode: ScanMode,
) -> Result<Vec<(Box<[u8]>, Entry)>> {
    let ScanMode { reverse, keys_only } = mode;
    let levels = match single_run(start, end) {
        Some(run) if lineage.parent_of(&run).is_some() => lineage.ancestry(&run, snapshot),
        _ => return tree.scan_with(start, end, snapshot, limit, reverse, keys_only),
    };
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 || is_empty_range(start, end) {
        return Ok(out);
    }
    let layers = tree.layers();
    let run = levels[0].0;
    let mut streams = Vec::with_capacity(levels.len());
    for (level, at) in &levels {
        let (s, e) = (move_bound(start, &run, level), move_bound(end, &run, level));
        let (rs, re) = (rest_bound(&s), rest_bound(&e));
        if lineage.presence_in(level, bref(&rs), bref(&re)) == Presence::Absent {
            continue;
        }
        let mut merge = Merge::new(&layers, bref(&s), bref(&e), reverse, *at);
        if keys_only {
            merge.keys_only();
        }
        streams.push(LevelStream {
            merge,
            at: *at,
            peeked: None,
        });
    }
    loop {
        for s in streams.iter_mut() {
            s.fill()?;
        }
        // The next key (its part after the run id) over all levels.
        let mut best: Option<Box<[u8]>> = None;
        for s in &streams {
            if let Some((k, _)) = &s.peeked {
                let rest = &k[16..];
                let better = match &best {
                    None => true,
                    Some(b) if reverse => rest > &**b,
                    Some(b) => rest < &**b,
                };
                if better {
                    best = Some(rest.into());
                }
            }
        }
        let Some(rest) = best else {
            return Ok(out);
        };
        // The nearest level holding an entry of the key decides; the others' copies
        // of it are consumed.
        let mut decided: Option<Option<Entry>> = None;
        for s in streams.iter_mut() {
            if s.peeked.as_ref().is_some_and(|(k, _)| k[16..] == *rest) {
                if let Some((_, seen)) = s.peeked.take() {
                    if decided.is_none() {
                        if let Some(e) = seen {
                            decided = Some((!e.is_tombstone()).then_some(e));
                        }
                    }
                }
            }
        }
        if let Some(Some(e)) = decided {
            let mut k = Vec::with_capacity(16 + rest.len());
            k.extend_from_slice(run.as_bytes());
            k.extend_from_slice(&rest);
            out.push((k.into(), e));
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
}

/// One level of a forked scan: its layers merged, each key with the entry visible at
/// the level's version (`None`: the key has only newer versions there).
struct LevelStream {
    merge: Merge,
    at: u64,
    peeked: Option<(Box<[u8]>, Option<Entry>)>,
}

impl LevelStream {
    fn fill(&mut self) -> Result<()> {
        if self.peeked.is_none() {
            if let Some((k, chain)) = self.merge.next()? {
                let seen = visible_at(&chain, self.at).cloned();
                self.peeked = Some((k, seen));
            }
        }
        Ok(())
    }
}

fn bref(b: &Bound<Box<[u8]>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The run whose keyspace contains the whole range, if one does.
pub(crate) fn single_run(start: Bound<&[u8]>, end: Bound<&[u8]>) -> Option<RunId> {
    let s = match start {
        Bound::Included(k) | Bound::Excluded(k) => k,
        Bound::Unbounded => return None,
    };
    let run = run_of(s)?;
    let inside = |e: &[u8]| {
        e.get(..16) == Some(run.as_bytes())
            || prefix_successor(run.as_bytes()).as_deref() == Some(e)
    };
    match end {
        Bound::Included(e) => (e.get(..16) == Some(run.as_bytes())).then_some(run),
        Bound::Excluded(e) => inside(e).then_some(run),
        Bound::Unbounded => None,
    }
}

/// A bound on whole keys as a bound on their part after the run id (a bound shorter
/// than a run id is the end of the run: unbounded).
fn rest_bound(b: &Bound<Box<[u8]>>) -> Bound<Box<[u8]>> {
    match b {
        Bound::Included(k) if k.len() >= 16 => Bound::Included(k[16..].into()),
        Bound::Excluded(k) if k.len() >= 16 => Bound::Excluded(k[16..].into()),
        _ => Bound::Unbounded,
    }
}

/// Up to `max` keys (after the run id) with any entry in `[start, end)`, in the
/// physical layers.
pub(crate) fn own_keys(
    tree: &Tree,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    max: usize,
) -> Result<Vec<Box<[u8]>>> {
    let mut out = Vec::new();
    if is_empty_range(start, end) {
        return Ok(out);
    }
    let layers = tree.layers();
    let mut merge = Merge::new(&layers, start, end, false, u64::MAX);
    while let Some((k, _)) = merge.next()? {
        out.push(k[16..].into());
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// A bound of a range inside `from`'s keyspace, moved to `to`'s.
fn move_bound(b: Bound<&[u8]>, from: &RunId, to: &RunId) -> Bound<Box<[u8]>> {
    let moved = |k: &[u8]| -> Option<Box<[u8]>> {
        if k.len() >= 16 {
            return Some(rekey(k, to));
        }
        // The end of the whole run: the successor of its id.
        debug_assert_eq!(prefix_successor(from.as_bytes()).as_deref(), Some(k));
        prefix_successor(to.as_bytes()).map(Box::from)
    };
    match b {
        Bound::Included(k) => moved(k).map_or(Bound::Unbounded, Bound::Included),
        Bound::Excluded(k) => moved(k).map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The entries of keys in `[start, end)` visible at `snapshot` in the physical layers
/// only (no lineage), deletes included, in key order.
pub(crate) fn scan_own(
    tree: &Tree,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    snapshot: u64,
) -> Result<Vec<(Box<[u8]>, Entry)>> {
    let mut out = Vec::new();
    if is_empty_range(start, end) {
        return Ok(out);
    }
    let layers = tree.layers();
    let mut merge = Merge::new(&layers, start, end, false, snapshot);
    while let Some((k, chain)) = merge.next()? {
        if let Some(e) = visible_at(&chain, snapshot) {
            out.push((k, e.clone()));
        }
    }
    Ok(out)
}
