//! Whole version chains in and out: the storage side of export and exact restore.
//!
//! An export needs every key's full history — tombstones included, which no reader
//! returns — and an exact restore needs to put those histories back with their original
//! versions and timestamps, which the commit path (that always assigns the next version
//! and the current time) cannot do.
//!
//! - [`Storage::for_each_chain`] streams the chains in key order, copying a bounded
//!   chunk at a time under the map's read lock, with the snapshot pinned so that garbage
//!   collection cannot remove what is being read.
//! - [`Storage::restore_chains`] loads chains into an **empty** storage and makes them
//!   durable as one sorted run at the restored version. Writing the log would need one
//!   record per version, dense from 1, which a history thinned by retention does not
//!   have; a run has no such constraint and is what recovery starts from anyway. On
//!   disk, chains in ascending key order (an export's) are written straight into the
//!   run a chunk at a time, so memory stays flat; a key out of order sends what was
//!   written, and the rest, through the memtable instead, flushed at the end. Until the
//!   manifest listing the run is written nothing is durable: a crash mid-restore
//!   leaves the empty database it started from.
use std::sync::atomic::Ordering;

use strata_core::{Error, Result, Timestamp};

use crate::mvcc::Entry;
use crate::storage::{RunRestore, Storage};

/// How many chains [`Storage::for_each_chain`] copies per lock acquisition.
const CHUNK: usize = 1024;

/// What [`Storage::restore_chains`] loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Keys restored.
    pub keys: u64,
    /// Versions (entries, tombstones included) restored.
    pub entries: u64,
    /// The storage's version after the restore.
    pub version: u64,
}

impl Storage {
    /// Calls `f` with every key's version chain as of `snapshot` (entries with
    /// `version <= snapshot`, oldest first, tombstones included), in key order. Keys
    /// with no entry at `snapshot` are skipped. Memory use is bounded by one chunk of
    /// chains, whatever the size of the database. Stops at the first error of `f`.
    pub fn for_each_chain(
        &self,
        snapshot: u64,
        mut f: impl FnMut(&[u8], &[Entry]) -> Result<()>,
    ) -> Result<()> {
        let _pin = self.pin();
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let layers = self.inner.tree.layers();
            let chunk = self
                .inner
                .tree
                .chunk_after(&layers, after.as_deref(), snapshot, CHUNK)?;
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            let last = last.clone();
            for (key, chain) in &chunk {
                f(key, chain)?;
            }
            after = Some(last);
        }
    }

    /// Restores chains exactly — versions, timestamps, tombstones — into an empty
    /// storage, then sets its version to `version` (which must be at least every
    /// restored entry's version) and, for a storage on disk, writes a snapshot so that
    /// the restore is durable.
    ///
    /// Fails with [`Error::ConstraintViolation`] if the storage has ever committed
    /// anything (a restore never rewrites history), or if a chain is empty, not in
    /// ascending version order, or newer than `version`. An error from `chains` or from
    /// validation leaves the storage poisoned (nothing was made durable; reopen it to
    /// get the empty database back).
    pub fn restore_chains<I>(&self, version: u64, chains: I) -> Result<RestoreReport>
    where
        I: IntoIterator<Item = Result<(Box<[u8]>, Vec<Entry>)>>,
    {
        {
            let c = self.inner.commit.lock();
            if c.next_version != 1 || self.inner.tree.key_count()? != 0 {
                return Err(Error::ConstraintViolation(format!(
                    "an exact restore needs an empty database, but this one is at version {}",
                    c.next_version - 1
                )));
            }
        }
        let mut chains = chains.into_iter();
        let mut report = RestoreReport {
            version,
            ..RestoreReport::default()
        };
        let mut last_ts = Timestamp(0);
        // Every restored commit's time, for the timeline (16 bytes per entry, beside
        // the entries themselves in the memtable).
        let mut times: Vec<(u64, Timestamp)> = Vec::new();
        let mut first: Option<(Box<[u8]>, Vec<Entry>)> = None;
        if self.streams_restores() && version > 0 {
            // Sorted input (an export's) goes straight into a run: flat memory.
            match self.restore_into_run(version, &mut chains, |k, c| check_chain(k, c, version)) {
                Ok(RunRestore::Done(r)) => return Ok(r),
                Ok(RunRestore::OutOfOrder {
                    report: r,
                    next,
                    times: t,
                    last_ts: l,
                }) => {
                    report = r;
                    times = t;
                    last_ts = l;
                    first = Some(next);
                }
                Err(e) => {
                    self.poison(format!("a restore failed half-way: {e}"));
                    return Err(e);
                }
            }
        }
        {
            let mut c = self.inner.commit.lock();
            // The lock was released since the check above (and a streamed prefix was
            // loaded without it): a commit that landed meanwhile would be overwritten.
            if c.next_version != 1 {
                let e = Error::ConstraintViolation(format!(
                    "an exact restore needs an empty database, but version {} was \
                     committed during it",
                    c.next_version - 1
                ));
                if first.is_some() {
                    self.poison(format!("a restore failed half-way: {e}"));
                }
                return Err(e);
            }
            let loaded = (|| {
                for item in first.take().map(Ok).into_iter().chain(chains) {
                    let (key, chain) = item?;
                    check_chain(&key, &chain, version)?;
                    for e in &chain {
                        last_ts = last_ts.max(e.timestamp);
                        times.push((e.version, e.timestamp));
                    }
                    let n = chain.len() as u64;
                    if !self
                        .inner
                        .tree
                        .with_active(|m| m.insert_chain(key.clone(), chain))
                    {
                        return Err(Error::ConstraintViolation(format!(
                            "key {key:02x?} appears twice"
                        )));
                    }
                    report.entries += n;
                    report.keys += 1;
                }
                Ok(())
            })();
            if let Err(e) = loaded {
                self.poison(format!("a restore failed half-way: {e}"));
                return Err(e);
            }
            self.inner
                .lineage
                .replace(crate::storage::load_lineage(&self.inner.tree)?);
            self.note_restored_times(times, version);
            if version == 0 {
                return Ok(report);
            }
            c.next_version = version + 1;
            c.last_ts = c.last_ts.max(last_ts);
            // Every key may have changed: before the restore is visible (see
            // `Storage::last_write_to`, which caches of run records rely on).
            self.note_every_primitive_written(version);
            self.inner.applied.store(version, Ordering::Release);
            self.inner.visible.store(version, Ordering::Release);
            if let Some(d) = self.inner.disk.as_ref() {
                // The checkpoint below makes it durable (and says so).
                d.sync.lock().written = version;
            }
        }
        self.checkpoint()?;
        Ok(report)
    }
}

fn check_chain(key: &[u8], chain: &[Entry], version: u64) -> Result<()> {
    let bad = |what: String| Error::ConstraintViolation(format!("key {key:02x?}: {what}"));
    if chain.is_empty() {
        return Err(bad("no versions".into()));
    }
    let mut prev = 0u64;
    for e in chain {
        if e.version <= prev {
            return Err(bad(format!(
                "versions must ascend and start at 1: {} after {prev}",
                e.version
            )));
        }
        if e.version > version {
            return Err(bad(format!(
                "version {} is newer than the restored version {version}",
                e.version
            )));
        }
        prev = e.version;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durability::{DurabilityMode, StorageOptions};
    use crate::mvcc::Write;
    use crate::testing::FaultyVfs;
    use std::sync::Arc;

    fn opts(fs: &FaultyVfs) -> StorageOptions {
        StorageOptions {
            durability: DurabilityMode::Strict,
            vfs: Arc::new(fs.clone()),
            lock_directory: false,
            ..StorageOptions::default()
        }
    }

    fn e(version: u64, ts: u64, v: Option<&str>) -> Entry {
        Entry {
            version,
            timestamp: Timestamp(ts),
            value: v.map(|s| Arc::from(s.as_bytes())),
        }
    }

    fn dump(s: &Storage) -> Vec<(Vec<u8>, Vec<Entry>)> {
        let mut out = Vec::new();
        s.for_each_chain(s.visible_version(), |k, c| {
            out.push((k.to_vec(), c.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// Caches of run records trust `last_write_to`: a restore (here through the
    /// memtable, an ephemeral storage) may write keys of any primitive, so it must
    /// raise all of them (it raised none before).
    #[test]
    fn a_restore_raises_the_last_write_of_every_primitive() {
        use crate::key::{encode_key, Primitive};
        let s = Storage::ephemeral();
        let run_record = encode_key(&strata_core::RunId::DEFAULT, Primitive::Run, b"r");
        let chains = vec![(run_record.into_boxed_slice(), vec![e(4, 10, Some("x"))])];
        s.restore_chains(6, chains.into_iter().map(Ok)).unwrap();
        for p in [
            Primitive::Run,
            Primitive::Kv,
            Primitive::Vector,
            Primitive::Ttl,
        ] {
            assert!(s.last_write_to(p) >= 6, "{p:?}: {}", s.last_write_to(p));
        }
    }

    #[test]
    fn restore_is_exact_and_survives_reopen() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let chains = vec![
            (b"a".to_vec(), vec![e(2, 10, Some("x")), e(7, 30, None)]),
            (b"b".to_vec(), vec![e(5, 20, Some("y"))]),
        ];
        let input = chains
            .iter()
            .map(|(k, c)| Ok((k.clone().into_boxed_slice(), c.clone())));
        let r = s.restore_chains(9, input).unwrap();
        assert_eq!((r.keys, r.entries, r.version), (2, 3, 9));
        assert_eq!(s.visible_version(), 9);
        assert_eq!(dump(&s), chains);
        // The next commit continues after the restored version.
        let w = Write {
            key: b"c".to_vec().into(),
            value: Some(Arc::from(&b"z"[..])),
        };
        assert_eq!(s.commit(vec![w], |_| Ok(())).unwrap().version, 10);
        drop(s);
        fs.process_crash();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert_eq!(s.visible_version(), 10);
        assert_eq!(&dump(&s)[..2], &chains[..]);
    }

    #[test]
    fn restore_refuses_a_used_database_and_bad_chains() {
        let s = Storage::ephemeral();
        let w = Write {
            key: b"k".to_vec().into(),
            value: None,
        };
        s.commit(vec![w], |_| Ok(())).unwrap();
        let err = s.restore_chains(5, Vec::new()).unwrap_err();
        assert!(matches!(err, Error::ConstraintViolation(_)), "{err}");

        let s = Storage::ephemeral();
        let bad = vec![Ok((
            b"k".to_vec().into_boxed_slice(),
            vec![e(3, 1, Some("a")), e(2, 1, Some("b"))],
        ))];
        assert!(s.restore_chains(5, bad).is_err());
        assert!(s.is_poisoned());

        let s = Storage::ephemeral();
        let newer = vec![Ok((b"k".to_vec().into_boxed_slice(), vec![e(9, 1, None)]))];
        assert!(s.restore_chains(5, newer).is_err());

        let s = Storage::ephemeral();
        let twice = vec![
            Ok((b"k".to_vec().into_boxed_slice(), vec![e(1, 1, None)])),
            Ok((b"k".to_vec().into_boxed_slice(), vec![e(2, 1, None)])),
        ];
        let err = s.restore_chains(5, twice).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    fn sorted_chains(n: usize) -> Vec<(Vec<u8>, Vec<Entry>)> {
        (0..n)
            .map(|i| {
                let v = 2 * i as u64 + 1;
                (
                    format!("k{i:06}").into_bytes(),
                    vec![e(v, 1000 + v, Some("x")), e(v + 1, 1001 + v, None)],
                )
            })
            .collect()
    }

    fn feed(
        chains: &[(Vec<u8>, Vec<Entry>)],
    ) -> impl Iterator<Item = Result<(Box<[u8]>, Vec<Entry>)>> + '_ {
        chains
            .iter()
            .map(|(k, c)| Ok((k.clone().into_boxed_slice(), c.clone())))
    }

    #[test]
    fn a_sorted_restore_on_disk_goes_straight_into_one_run() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let chains = sorted_chains(10_000);
        let r = s.restore_chains(20_000, feed(&chains)).unwrap();
        assert_eq!((r.keys, r.entries, r.version), (10_000, 20_000, 20_000));
        // Nothing went through the memtable: the run holds it all.
        let l = s.inner.tree.layers();
        assert_eq!(l.active.key_count(), 0);
        assert_eq!(l.runs.len(), 1);
        assert_eq!(s.visible_version(), 20_000);
        assert_eq!(dump(&s), chains);
        assert_eq!(s.commit_time(7).unwrap(), Some(Timestamp(1007)));
        let w = Write {
            key: b"z".to_vec().into(),
            value: Some(Arc::from(&b"after"[..])),
        };
        assert_eq!(s.commit(vec![w], |_| Ok(())).unwrap().version, 20_001);
        drop(s);
        // Durable when it returned: a power loss keeps the restore and the strict commit.
        fs.power_loss(3);
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert_eq!(s.visible_version(), 20_001);
        assert_eq!(&dump(&s)[..10_000], &chains[..]);
        assert_eq!(s.commit_time(20_000).unwrap(), Some(Timestamp(21_000)));
    }

    #[test]
    fn keys_out_of_order_fall_back_to_the_memtable() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let sorted = sorted_chains(5_000);
        // A sorted stretch long enough to be written, then one key out of order.
        let mut input = sorted[..4_500].to_vec();
        input.push(sorted[10].clone());
        input.splice(10..11, std::iter::empty());
        input.extend_from_slice(&sorted[4_500..]);
        let r = s.restore_chains(10_000, feed(&input)).unwrap();
        assert_eq!((r.keys, r.entries), (5_000, 10_000));
        assert_eq!(dump(&s), sorted);
        let names = crate::vfs::Vfs::list(&fs, std::path::Path::new("/db")).unwrap();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        drop(s);
        fs.power_loss(5);
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert_eq!(dump(&s), sorted);
        assert_eq!(s.commit_time(9_999).unwrap(), Some(Timestamp(10_999)));
    }

    #[test]
    fn a_key_twice_in_a_sorted_restore_is_refused() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let mut input = sorted_chains(100);
        input.insert(50, input[49].clone());
        let err = s.restore_chains(1_000, feed(&input)).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(s.is_poisoned());
        drop(s);
        // Nothing became durable: the database reopens empty.
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert_eq!(s.visible_version(), 0);
        assert!(dump(&s).is_empty());
    }

    #[test]
    fn a_restore_cut_by_a_failed_sync_and_a_power_loss_is_all_or_nothing() {
        let chains = sorted_chains(3_000);
        // The syncs a clean restore makes (run, timeline, manifest, log roll, directory).
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let before = fs.sync_count();
        s.restore_chains(6_000, feed(&chains)).unwrap();
        let total = fs.sync_count() - before;
        drop(s);
        assert!(total >= 4, "{total}");
        let (mut empty, mut whole) = (0, 0);
        for k in 1..=total {
            for seed in [1u64, 2] {
                let fs = FaultyVfs::new();
                let s = Storage::open("/db", opts(&fs)).unwrap();
                fs.fail_sync_after(k);
                let ok = s.restore_chains(6_000, feed(&chains)).is_ok();
                drop(s);
                fs.power_loss(seed * 1_000 + k);
                let s = Storage::open("/db", opts(&fs))
                    .unwrap_or_else(|e| panic!("sync {k}, seed {seed}: {e}"));
                let got = dump(&s);
                if got.is_empty() {
                    assert!(!ok, "sync {k}: an acknowledged restore was lost");
                    assert_eq!(s.visible_version(), 0);
                    empty += 1;
                } else {
                    assert_eq!(got, chains, "sync {k}, seed {seed}: a partial restore");
                    assert_eq!(s.visible_version(), 6_000);
                    assert_eq!(s.commit_time(6_000).unwrap(), Some(Timestamp(7_000)));
                    whole += 1;
                }
            }
        }
        // Both outcomes were reached: the cut points straddle the manifest.
        assert!(empty > 0 && whole > 0, "{empty} empty, {whole} whole");
    }

    /// Commit times a restore cannot know (an empty dump at a version above 0, or a
    /// dump whose first version is above 1: those commits left no record) are unknown,
    /// before and after a reopen alike, never "before every commit".
    #[test]
    fn times_before_the_first_restored_commit_are_unknown_before_and_after_reopen() {
        use crate::timeline::TimePoint;
        // An empty dump at version 5.
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        s.restore_chains(5, std::iter::empty()).unwrap();
        let unknown = TimePoint::Unknown { starts_at: 6 };
        assert_eq!(s.version_at_time(Timestamp(1)).unwrap(), unknown);
        drop(s);
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert_eq!(s.version_at_time(Timestamp(1)).unwrap(), unknown);
        drop(s);
        // A dump whose first version is 3 (versions 1 and 2 left no record), sorted
        // (streamed into a run) and out of order (loaded through the memtable).
        for reversed in [false, true] {
            let fs = FaultyVfs::new();
            let s = Storage::open("/db", opts(&fs)).unwrap();
            let mut chains: Vec<_> = (2..10).map(|i| chain(i).unwrap()).collect();
            if reversed {
                chains.reverse();
            }
            s.restore_chains(20, chains.into_iter().map(Ok)).unwrap();
            let check = |s: &Storage| {
                assert_eq!(
                    s.version_at_time(Timestamp(1000)).unwrap(),
                    TimePoint::Unknown { starts_at: 3 },
                    "reversed: {reversed}"
                );
                assert_eq!(
                    s.version_at_time(Timestamp(1002)).unwrap(),
                    TimePoint::Version(3)
                );
            };
            check(&s);
            drop(s);
            check(&Storage::open("/db", opts(&fs)).unwrap());
        }
    }

    fn chain(i: u64) -> Result<(Box<[u8]>, Vec<Entry>)> {
        Ok((
            format!("k{i:06}").into_bytes().into_boxed_slice(),
            vec![Entry {
                version: i + 1,
                timestamp: Timestamp(1000 + i),
                value: Some(Arc::from(&b"x"[..])),
            }],
        ))
    }

    /// A commit acknowledged while a streaming restore is under way (the restore holds
    /// no commit lock while it writes its run) must not be silently dropped: either the
    /// restore refuses, or the commit survives.
    #[test]
    fn a_commit_racing_a_streaming_restore_is_not_lost() {
        let fs = FaultyVfs::new();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        let mut committed = None;
        let input = (0..100u64).map(|i| {
            if i == 50 {
                let w = Write {
                    key: b"racer".to_vec().into(),
                    value: Some(Arc::from(&b"acked"[..])),
                };
                committed = Some(s.commit(vec![w], |_| Ok(())).unwrap().version);
            }
            chain(i)
        });
        let restored = s.restore_chains(1_000, input);
        assert!(committed.is_some());
        let racer_visible = |s: &Storage| {
            let mut found = false;
            s.for_each_chain(s.visible_version(), |k, _| {
                found |= k == b"racer";
                Ok(())
            })
            .unwrap();
            found
        };
        if restored.is_ok() {
            assert!(racer_visible(&s), "an acknowledged commit vanished");
        }
        drop(s);
        fs.process_crash();
        let s = Storage::open("/db", opts(&fs)).unwrap();
        assert!(
            racer_visible(&s),
            "an acknowledged commit was lost after reopen (restore ok: {})",
            restored.is_ok()
        );
    }
}
