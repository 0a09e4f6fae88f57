//! One graph walk over a forked collection: the parent's HNSW graph and the fork's own,
//! joined by links between them.
//!
//! A forked collection's index holds only the vectors the fork wrote; its parent's index
//! holds the rest, as of the fork and after (see `vectors.rs`, `Base`). Searching both
//! graphs one after the other costs two walks, and a walk costs about its candidate list
//! (`ef`) whatever the graph's size: a fork that changed a tenth of its parent searched
//! at about 0.7× the speed of the unforked collection, a third of it in the second walk.
//!
//! A [`Bridge`] lets one walk serve both. It is copy-on-write in spirit: nothing of the
//! parent's graph is copied or changed (a fork stays O(1), and the parent keeps changing
//! freely); the fork keeps, next to its own graph,
//!
//! - **up-links**: for each own node, the parent's graph nodes nearest to it (found by a
//!   walk of the parent's graph when the own node is linked) — only those at least as
//!   similar as its farthest own neighbor: inside a cluster of the fork's own, far from
//!   every parent vector, they would only cost distances;
//! - **down-links**: the reverse edges, unfiltered — for a parent node, the nearest own
//!   nodes that found it among theirs, at most [`DOWN_MAX`] — kept in a map, since the
//!   parent's adjacency lists are not the fork's to change; they lead a walk into the
//!   fork's own regions;
//! - **hidden**: the parent's nodes the fork overwrote or deleted (by key).
//!
//! [`search`] then walks one beam over both id spaces from the parent's entry point: a
//! parent node's neighbors are its adjacency plus its down-links, an own node's are its
//! up-links plus its adjacency in the fork's graph (only the first `M` entries when it
//! has up-links: the rest are farther than the parent nodes around). Hidden parent nodes
//! (and those the caller hides: keys the parent changed after the fork), and deleted
//! nodes, are walked through, for connectivity, but never returned.
//!
//! Measured (`cargo bench -p stratadb --bench vector_fork`, 100,000 × 384, a fork that
//! changed 10 %): fork QPS / unforked 0.71 with two walks, 0.85 with one; each choice
//! above (the up-link filter, the own-list cut, one entry point instead of a second
//! descent into the own graph, hidden nodes competing for the beam) removed a few per
//! cent of the distances computed; recall@10 stayed 1.000 (`docs/vectors.md`).
//!
//! Links are by internal id, so a bridge is valid only for the
//! [`CollectionIndex::generation`](crate::index::CollectionIndex::generation)s of the two
//! indexes it was made for: a compaction of either renumbers ids, and the bridge is made
//! again ([`Bridge::build`]); meanwhile searches use the two walks.
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use strata_core::Result;

use crate::exact::{Scored, TopK};
use crate::hnsw::{parallel_map, HnswIndex};

/// Parent nodes each own node links up to.
pub(crate) const UP_LINKS: usize = 8;
/// Own nodes a parent node links down to (the nearest that chose it).
pub(crate) const DOWN_MAX: usize = 4;
/// Candidate list of the parent walk that finds an own node's up-links.
const LINK_EF: usize = 48;
/// Marks an own node's id in the walk's combined id space.
const OWN: u32 = 1 << 31;

/// A multiplicative hasher for `u32` keys: the down-link map is probed once per parent
/// node a search expands, and its keys are graph ids, not attacker-chosen strings, so
/// SipHash's protection buys nothing there.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// The own nodes a parent node links down to, with their similarity to it (to keep the
/// nearest when full).
#[derive(Default, Clone)]
struct Down {
    ids: Vec<u32>,
    sims: Vec<f32>,
}

/// The links between a forked collection's own graph and its parent's. See the
/// [module documentation](self).
pub(crate) struct Bridge {
    /// Generation of the parent's index the ids of `up`, `down` and `hidden` refer to.
    base_generation: u64,
    /// Generation of the fork's own index the own ids refer to.
    own_generation: u64,
    /// Own id → parent ids (empty for own ids never linked).
    up: Vec<Vec<u32>>,
    /// Parent id → own ids.
    down: IdMap<Down>,
    /// Parent ids the fork hides, as a bit set.
    hidden: Vec<u64>,
}

impl Bridge {
    /// An empty bridge for indexes of these generations.
    pub(crate) fn new(base_generation: u64, own_generation: u64) -> Self {
        Bridge {
            base_generation,
            own_generation,
            up: Vec::new(),
            down: IdMap::default(),
            hidden: Vec::new(),
        }
    }

    /// A bridge linking every live node of `own` into `base`, hiding `hide` (parent ids).
    pub(crate) fn build(
        base: &HnswIndex,
        base_generation: u64,
        own: &HnswIndex,
        own_generation: u64,
        hide: impl IntoIterator<Item = u32>,
    ) -> Result<Self> {
        let mut b = Bridge::new(base_generation, own_generation);
        for id in hide {
            b.hide(id);
        }
        let ids: Vec<u32> = own.store().live_ids().collect();
        b.link(base, own, &ids)?;
        Ok(b)
    }

    /// Whether the bridge's ids still mean what they meant for indexes of these
    /// generations.
    pub(crate) fn valid_for(&self, base_generation: u64, own_generation: u64) -> bool {
        self.base_generation == base_generation && self.own_generation == own_generation
    }

    /// Hides parent node `id` from searches (the fork overwrote or deleted its key).
    pub(crate) fn hide(&mut self, id: u32) {
        let (w, bit) = (id as usize / 64, id % 64);
        if self.hidden.len() <= w {
            self.hidden.resize(w + 1, 0);
        }
        self.hidden[w] |= 1 << bit;
    }

    #[inline]
    fn is_hidden(&self, id: u32) -> bool {
        self.hidden
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Whether own node `id` has up-links.
    pub(crate) fn is_linked(&self, id: u32) -> bool {
        self.up.get(id as usize).is_some_and(|l| !l.is_empty())
    }

    /// Links own nodes `ids` (live in `own`) to their nearest parent nodes, on the
    /// available cores.
    pub(crate) fn link(&mut self, base: &HnswIndex, own: &HnswIndex, ids: &[u32]) -> Result<()> {
        let threads = if ids.len() >= 64 {
            crate::hnsw::default_threads()
        } else {
            1
        };
        let m = own.params().m;
        let found: Vec<Result<(Vec<Scored>, f32)>> = parallel_map(ids.len(), threads, &|i| {
            let o = ids[i];
            let Some(v) = own.store().vector(o) else {
                return Ok((Vec::new(), 0.0));
            };
            let near = base.nearest_nodes(v, UP_LINKS, LINK_EF)?;
            // Up-links only to parent nodes that compete with the node's own neighbors:
            // inside a cluster of the fork's own (far from every parent vector) they would
            // only cost distances. (Down-links from all: they lead the walk there.)
            let list = own.neighbors(o, 0);
            let worst = if list.len() >= m {
                list.iter()
                    .map(|&n| own.store().sim_between(o, n))
                    .fold(f32::INFINITY, f32::min)
            } else {
                f32::NEG_INFINITY
            };
            Ok((near, worst))
        });
        for (&o, near) in ids.iter().zip(found) {
            let (near, worst) = near?;
            if self.up.len() <= o as usize {
                self.up.resize(o as usize + 1, Vec::new());
            }
            self.up[o as usize] = near
                .iter()
                .filter(|s| s.sim >= worst)
                .map(|s| s.id)
                .collect();
            for s in near {
                let d = self.down.entry(s.id).or_default();
                if d.ids.len() < DOWN_MAX {
                    d.ids.push(o);
                    d.sims.push(s.sim);
                } else if let Some((worst, &w)) =
                    d.sims.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))
                {
                    if s.sim > w {
                        d.ids[worst] = o;
                        d.sims[worst] = s.sim;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a hit of [`search`] lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// In the parent's index.
    Base,
    /// In the fork's own index.
    Own,
}

/// The `k` best nodes, as `(side, id, score)` best first, of one beam walk (candidate
/// list `ef`) over `base` and `own` joined by `bridge`: live own nodes, and live parent
/// nodes that neither the bridge nor `hidden` hides. Vectors not linked yet (either
/// graph's pending inserts) are scanned exactly, and a query that is bit-for-bit a stored
/// vector finds it, as in [`HnswIndex::search`]. Every node reached competes for the
/// `ef` places, visible or not, so fewer than `k` come back when hidden nodes crowd the
/// query's neighborhood (the caller then searches another way).
pub(crate) fn search(
    base: &HnswIndex,
    own: &HnswIndex,
    bridge: &Bridge,
    query: &[f32],
    k: usize,
    ef: usize,
    hidden: &dyn Fn(u32) -> bool,
) -> Result<Vec<(Side, u32, f32)>> {
    let qb = base.store().prepare(query)?;
    let qo = own.store().prepare(query)?;
    if k == 0 {
        return Ok(Vec::new());
    }
    let (bs, os) = (base.store(), own.store());
    let accept_base = |n: u32| bs.is_live(n) && !bridge.is_hidden(n) && !hidden(n);
    let ef = ef.max(k);
    let mut vb = base.visited();
    let mut vo = own.visited();
    vb.reset(base.slot_len());
    vo.reset(own.slot_len());
    let mut candidates: BinaryHeap<Scored> =
        BinaryHeap::with_capacity(ef.saturating_mul(2).min(4096));
    let mut results = TopK::new(ef);
    let own_take = own.params().m;
    let mut bound = f32::NEG_INFINITY;
    // The parent's entry point, reached by its greedy descent. Not the own graph's as
    // well: its descent cost 5 % of the search, and the down-links lead into a region of
    // the fork's own (tested with queries far from every parent vector).
    let mut entries = Vec::with_capacity(1);
    // (This walk compares full-precision vectors throughout, so the entry point's
    // similarity is taken exactly, whatever working copy the descent compared.)
    if base.entry_point().is_some() {
        let ep = base.descend(&qb, 0);
        vb.insert(ep.id);
        entries.push(Scored {
            sim: bs.sim(&qb, ep.id),
            id: ep.id,
        });
    } else if own.entry_point().is_some() {
        let ep = own.descend(&qo, 0);
        vo.insert(ep.id);
        entries.push(Scored {
            sim: os.sim(&qo, ep.id),
            id: ep.id | OWN,
        });
    }
    // Every node reached competes for the beam, hidden or not: a tenth of the parent
    // hidden by the fork would otherwise make the walk go on until `ef` visible nodes
    // are held (about 5 % more distances here). The visible ones are kept at the end; a
    // walk left with fewer than `k` is answered by the two walks instead.
    for e in entries {
        candidates.push(e);
        results.push(e);
    }
    if let Some(t) = results.threshold() {
        bound = t;
    }
    let mut batch: Vec<u32> = Vec::new();
    while let Some(c) = candidates.pop() {
        if c.sim < bound {
            break;
        }
        batch.clear();
        if c.id & OWN == 0 {
            for &n in base.neighbors(c.id, 0) {
                if vb.insert(n) {
                    batch.push(n);
                }
            }
            if let Some(d) = bridge.down.get(&c.id) {
                for &o in &d.ids {
                    if vo.insert(o) {
                        batch.push(o | OWN);
                    }
                }
            }
        } else {
            let o = c.id & !OWN;
            let up = bridge.up.get(o as usize).map_or(&[][..], Vec::as_slice);
            // Where the node has parent nodes among its nearest, those are walked, and its
            // own list only as far as its first `m` (the best, mostly): the rest are
            // farther than the parent nodes around. Among own nodes only, all of it.
            let take = if up.is_empty() { usize::MAX } else { own_take };
            for &n in own.neighbors(o, 0).iter().take(take) {
                if vo.insert(n) {
                    batch.push(n | OWN);
                }
            }
            for &n in up {
                if vb.insert(n) {
                    batch.push(n);
                }
            }
        }
        // Prefetch first, so the vectors' cache misses overlap (as in the plain walk).
        for &n in &batch {
            if n & OWN == 0 {
                bs.prefetch(n);
            } else {
                os.prefetch(n & !OWN);
            }
        }
        for &n in &batch {
            let sim = if n & OWN == 0 {
                bs.sim(&qb, n)
            } else {
                os.sim(&qo, n & !OWN)
            };
            if sim >= bound {
                let s = Scored { sim, id: n };
                candidates.push(s);
                results.push(s);
                if let Some(t) = results.threshold() {
                    bound = t;
                }
            }
        }
    }
    // Vectors not linked into either graph yet, unless the walk reached them already.
    let mut top = TopK::new(k);
    for s in results.into_sorted() {
        let ok = if s.id & OWN != 0 {
            os.is_live(s.id & !OWN)
        } else {
            accept_base(s.id)
        };
        if ok {
            top.push(s);
        }
    }
    for &n in base.pending_ids() {
        if accept_base(n) && vb.insert(n) {
            top.push(Scored {
                sim: bs.sim(&qb, n),
                id: n,
            });
        }
    }
    for &o in own.pending_ids() {
        if os.is_live(o) && vo.insert(o) {
            top.push(Scored {
                sim: os.sim(&qo, o),
                id: o | OWN,
            });
        }
    }
    let mut found = top.into_sorted();
    // A query that is a stored vector finds it even where the walk did not.
    let exact = [
        base.exact_match(query).filter(|&n| accept_base(n)),
        own.exact_match(query).map(|o| o | OWN),
    ];
    for id in exact.into_iter().flatten() {
        if !found.iter().any(|s| s.id == id) {
            let sim = if id & OWN == 0 {
                bs.sim(&qb, id)
            } else {
                os.sim(&qo, id & !OWN)
            };
            found.push(Scored { sim, id });
            found.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
    found.truncate(k);
    base.recycle(vb);
    own.recycle(vo);
    let metric = bs.metric();
    Ok(found
        .into_iter()
        .map(|s| {
            let side = if s.id & OWN == 0 {
                Side::Base
            } else {
                Side::Own
            };
            (side, s.id & !OWN, metric.raw_to_score(s.sim))
        })
        .collect())
}

/// Whether both graphs' ids leave the top bit free for [`search`]'s combined id space.
pub(crate) fn fits(base: &HnswIndex, own: &HnswIndex) -> bool {
    base.slot_len() < OWN as usize && own.slot_len() < OWN as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{CollectionConfig, CollectionIndex};
    use crate::DistanceMetric;

    /// A parent of 6,000 vectors and a fork that overwrote 600 of them (with copies of
    /// others), deleted 300, added 600 from the same distribution and 1,500 in a region
    /// far from every parent vector (shifted): recall@10 of the bridged walk against an
    /// exact scan of the fork's view, for queries in the shared region and in the far
    /// one, and hidden nodes never returned.
    #[test]
    fn one_walk_finds_the_forks_view_near_and_far_from_the_parent() {
        let (n, dim) = (6_000, 24);
        let vs = crate::synthetic::clustered(n + 700, dim, 7);
        let far: Vec<Vec<f32>> = crate::synthetic::clustered(1_560, dim, 4242)
            .into_iter()
            .map(|mut v| {
                for x in v.iter_mut().take(dim / 3) {
                    *x += 1.5;
                }
                v
            })
            .collect();
        let config = || CollectionConfig::new(dim, DistanceMetric::Cosine);
        let mut base = CollectionIndex::new(config()).unwrap();
        let items = (0..n).map(|i| (format!("v{i:05}"), vs[i].clone(), None));
        base.upsert_batch(items.collect(), 2).unwrap();
        let mut own = CollectionIndex::new(config()).unwrap();
        let mut items: Vec<_> = (0..600)
            .map(|i| (format!("v{:05}", i * 2), vs[i * 2 + 1].clone(), None))
            .collect();
        items.extend((0..600).map(|i| (format!("new{i:04}"), vs[n + i].clone(), None)));
        items.extend((0..1_500).map(|i| (format!("far{i:04}"), far[i].clone(), None)));
        own.upsert_batch(items, 2).unwrap();
        let deleted: Vec<String> = (0..300).map(|i| format!("v{:05}", n - 1 - i * 3)).collect();
        let hide: Vec<u32> = (0..600)
            .map(|i| format!("v{:05}", i * 2))
            .chain(deleted.iter().cloned())
            .filter_map(|k| base.id_of(&k))
            .collect();
        let (bh, oh) = (base.hnsw().unwrap(), own.hnsw().unwrap());
        assert!(fits(bh, oh));
        let bridge = Bridge::build(bh, 0, oh, 0, hide.iter().copied()).unwrap();
        assert!(bridge.valid_for(0, 0) && !bridge.valid_for(1, 0));
        // The fork's view, as (key, vector).
        let mut view: HashMap<String, Vec<f32>> = (0..n)
            .map(|i| (format!("v{i:05}"), vs[i].clone()))
            .collect();
        for k in &deleted {
            view.remove(k);
        }
        for (k, v, _) in own.iter() {
            view.insert(k.to_owned(), v.to_vec());
        }
        let key = |side: Side, id: u32| match side {
            Side::Base => base.key_of(id).unwrap().to_owned(),
            Side::Own => own.key_of(id).unwrap().to_owned(),
        };
        let cos = |a: &[f32], b: &[f32]| {
            let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            d / (na * nb)
        };
        for (what, queries) in [("shared", &vs[n + 600..]), ("far", &far[1_500..])] {
            let mut hits = 0;
            for q in queries {
                let mut exact: Vec<f32> = view.values().map(|v| cos(q, v)).collect();
                exact.sort_by(|a, b| b.total_cmp(a));
                let got = search(bh, oh, &bridge, q, 10, 64, &|_| false).unwrap();
                assert_eq!(got.len(), 10);
                for &(side, id, score) in &got {
                    let k = key(side, id);
                    let v = view.get(&k).unwrap_or_else(|| panic!("{k} is hidden"));
                    assert!(
                        (cos(q, v) - score).abs() < 1e-4,
                        "{k} scored as another vector"
                    );
                    if side == Side::Base {
                        assert!(!own.contains(&k), "{k}: the parent's copy of an own key");
                    }
                }
                hits += got.iter().filter(|g| g.2 >= exact[9] - 1e-5).count();
            }
            let recall = hits as f64 / (queries.len() * 10) as f64;
            assert!(recall >= 0.95, "{what} queries: recall@10 {recall}");
        }
        // A hidden parent vector is not returned even for its own vector (exact match),
        // nor is one the caller hides.
        for &id in hide.iter().take(50) {
            let v = bh.store().vector(id).unwrap().to_vec();
            let got = search(bh, oh, &bridge, &v, 3, 64, &|_| false).unwrap();
            assert!(!got.iter().any(|g| g.0 == Side::Base && g.1 == id));
        }
        let probe = base.id_of("v00001").unwrap();
        let v = bh.store().vector(probe).unwrap().to_vec();
        let top = search(bh, oh, &bridge, &v, 1, 64, &|_| false).unwrap();
        assert_eq!((top[0].0, top[0].1), (Side::Base, probe));
        let top = search(bh, oh, &bridge, &v, 1, 64, &|id| id == probe).unwrap();
        assert_ne!((top[0].0, top[0].1), (Side::Base, probe));
        assert!(search(bh, oh, &bridge, &v, 0, 64, &|_| false)
            .unwrap()
            .is_empty());
    }
}
