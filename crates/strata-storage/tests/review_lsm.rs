//! Review of the LSM change: reads across layers (bounded scans, reverse scans, limits,
//! first_newer_in_range, changed_since) against a model, with a frozen memtable left by
//! a failed flush, and targeted tests for suspected bugs.
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::Vfs;
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

type Model = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn opts(fs: &FaultyVfs) -> StorageOptions {
    StorageOptions {
        durability: DurabilityMode::NoDurability,
        snapshot_threshold: u64::MAX / 4,
        memtable_size: u64::MAX / 4,
        segment_size: 64 * 1024,
        vfs: Arc::new(fs.clone()),
        lock_directory: false,
        ..StorageOptions::default()
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KEYS: &[&[u8]] = &[
    b"", b"a", b"a\0", b"ab", b"abc", b"abd", b"b", b"b\xff", b"ba", b"c", b"cc", b"d",
];

fn bound<'a>(rng: &mut Rng) -> Bound<&'a [u8]> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(KEYS[rng.below(KEYS.len() as u64) as usize]),
        _ => Bound::Excluded(KEYS[rng.below(KEYS.len() as u64) as usize]),
    }
}

fn in_range(k: &[u8], start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    (match start {
        Bound::Included(s) => k >= s,
        Bound::Excluded(s) => k > s,
        Bound::Unbounded => true,
    }) && (match end {
        Bound::Included(e) => k <= e,
        Bound::Excluded(e) => k < e,
        Bound::Unbounded => true,
    })
}

fn check(s: &Storage, model: &Model, rng: &mut Rng, ctx: &str) {
    let last = s.visible_version();
    for _ in 0..60 {
        let start = bound(rng);
        let end = bound(rng);
        let at = if last == 0 { 0 } else { 1 + rng.below(last) };
        let limit = match rng.below(3) {
            0 => None,
            _ => Some(rng.below(5) as usize),
        };
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| in_range(k, start, end))
            .filter_map(|(k, c)| {
                c.iter()
                    .rev()
                    .find(|(v, _)| *v <= at)
                    .and_then(|(_, x)| x.clone())
                    .map(|x| (k.clone(), x))
            })
            .collect();
        let conv = |v: Vec<(Box<[u8]>, strata_storage::Entry)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            v.into_iter()
                .map(|(k, e)| (k.to_vec(), e.value.unwrap().to_vec()))
                .collect()
        };
        let got = conv(s.scan_range(start, end, at, limit).unwrap());
        let fwd: Vec<_> = want
            .iter()
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        assert_eq!(
            got, fwd,
            "{ctx}: scan {start:?}..{end:?} at {at} limit {limit:?}"
        );
        let got = conv(s.scan_range_rev(start, end, at, limit).unwrap());
        want.reverse();
        let rev: Vec<_> = want
            .iter()
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        assert_eq!(
            got, rev,
            "{ctx}: rev scan {start:?}..{end:?} at {at} limit {limit:?}"
        );

        // first_newer_in_range
        let since = rng.below(last + 1);
        let got = s.tree().first_newer_in_range(start, end, since).unwrap();
        let any = model
            .iter()
            .any(|(k, c)| in_range(k, start, end) && c.last().unwrap().0 > since);
        match &got {
            None => assert!(
                !any,
                "{ctx}: first_newer {start:?}..{end:?} since {since}: missed"
            ),
            Some(k) => {
                let c = model.get(&k.to_vec());
                assert!(
                    in_range(k, start, end) && c.is_some_and(|c| c.last().unwrap().0 > since),
                    "{ctx}: first_newer {start:?}..{end:?} since {since}: wrong key {k:?}"
                );
            }
        }
    }
    for k in KEYS {
        let chain = model.get(*k);
        let latest = chain.map_or(0, |c| c.last().unwrap().0);
        for since in [0, latest.saturating_sub(1), latest, last / 2] {
            assert_eq!(
                s.tree().changed_since(k, since).unwrap(),
                latest > since,
                "{ctx}: changed_since {k:?} {since}"
            );
        }
        let got: Vec<(u64, Option<Vec<u8>>)> = s
            .history(k, u64::MAX, None, None)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.version, e.value.map(|v| v.to_vec())))
            .collect();
        assert_eq!(&got, chain.unwrap_or(&Vec::new()), "{ctx}: history {k:?}");
    }
}

/// Bounded forward and reverse scans with limits, first_newer_in_range and
/// changed_since, across the active memtable, a frozen memtable (left by a flush that
/// failed verification), and runs whose chains span several blocks.
#[test]
fn review_bounded_reads_match_model_across_all_layers() {
    let fs = FaultyVfs::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut model: Model = BTreeMap::new();
    let mut s = Storage::open("/db", opts(&fs)).unwrap();
    for step in 0..1200u64 {
        let mut writes: Vec<Write> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let k = KEYS[rng.below(KEYS.len() as u64) as usize].to_vec();
            let v =
                (rng.below(5) != 0).then(|| vec![rng.below(256) as u8; rng.below(900) as usize]);
            writes.retain(|w| *w.key != *k);
            writes.push(Write {
                key: k.into(),
                value: v.map(|v| Arc::from(v.as_slice())),
            });
        }
        let info = s.commit(writes.clone(), |_| Ok(())).unwrap();
        for w in writes {
            model
                .entry(w.key.to_vec())
                .or_default()
                .push((info.version, w.value.map(|v| v.to_vec())));
        }
        match rng.below(100) {
            0..=3 => s.checkpoint().unwrap(),
            4 => {
                s.compact(rng.below(2) == 0).unwrap();
            }
            5 => {
                // A flush whose run fails verification leaves a frozen memtable.
                fs.set_read_hook(Some(Arc::new(|p: &std::path::Path, b: &mut Vec<u8>| {
                    if p.to_string_lossy().ends_with(".sst.tmp") && b.len() > 40 {
                        b[36] ^= 1;
                    }
                })));
                let r = s.checkpoint();
                fs.set_read_hook(None);
                if r.is_err() {
                    assert!(format!("{:?}", s.tree()).contains("frozen: true"));
                    check(&s, &model, &mut rng, &format!("step {step} frozen"));
                }
            }
            6 => {
                s.close().unwrap();
                drop(s);
                s = Storage::open("/db", opts(&fs)).unwrap();
            }
            _ => {}
        }
        if step % 40 == 0 {
            check(&s, &model, &mut rng, &format!("step {step}"));
        }
    }
    check(&s, &model, &mut rng, "end");
}

fn put(k: &str, v: &str) -> Write {
    Write {
        key: k.as_bytes().into(),
        value: Some(Arc::from(v.as_bytes())),
    }
}

/// A compaction whose manifest was renamed into place but whose directory fsync failed
/// returns an error and leaves `next_run_id` unchanged in memory, although the manifest
/// on disk already lists the merged run under that id. The next flush reuses the id and
/// renames its own run over the file that on-disk manifest lists; if that flush does not
/// reach its manifest (here: the run cannot be reopened; equally a crash), the database
/// no longer opens.
#[test]
fn review_run_id_reused_after_manifest_write_failed_after_rename() {
    let fs = FaultyVfs::new();
    let s = Storage::open("/db", opts(&fs)).unwrap();
    for round in 0..2 {
        for i in 0..20 {
            s.commit(vec![put(&format!("k{i:02}"), &format!("v{round}"))], |_| {
                Ok(())
            })
            .unwrap();
        }
        s.checkpoint().unwrap();
    }
    assert_eq!(s.run_count(), 2);
    // Compaction: run file sync (1), its directory sync (2), manifest sync (3), the
    // directory sync after the manifest's rename (4) fails. Which manifest is on disk
    // is then unknown: the storage stops writing (poisoned) instead of carrying on
    // from the old one (which made the next flush reuse the run id and overwrite a
    // listed run).
    fs.fail_sync_after(4);
    let err = s.compact(true).unwrap_err();
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert!(s.is_poisoned());
    assert!(s.commit(vec![put("late", "x")], |_| Ok(())).is_err());
    drop(s);
    let s = Storage::open("/db", opts(&fs)).expect("reopen after an unknown manifest outcome");
    assert_eq!(
        s.get(b"k05", s.visible_version())
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some(&b"v1"[..])
    );
    // A flush whose run fails after its rename (before its manifest) gives up its id:
    // the next flush takes a new one and never renames over a file.
    s.commit(vec![put("late", "x")], |_| Ok(())).unwrap();
    fs.set_read_hook(Some(Arc::new(|p: &std::path::Path, b: &mut Vec<u8>| {
        if p.extension().is_some_and(|e| e == "sst") && !b.is_empty() {
            b[0] ^= 1;
        }
    })));
    assert!(s.checkpoint().is_err());
    fs.set_read_hook(None);
    let before: Vec<String> = fs.list(std::path::Path::new("/db")).unwrap();
    s.checkpoint().unwrap();
    let after: Vec<String> = fs.list(std::path::Path::new("/db")).unwrap();
    let new_runs: Vec<&String> = after
        .iter()
        .filter(|n| n.ends_with(".sst") && !before.contains(n))
        .collect();
    assert_eq!(new_runs.len(), 1, "{before:?} -> {after:?}");
    drop(s);
    let s = Storage::open("/db", opts(&fs)).expect("reopen after a failed flush");
    assert_eq!(
        s.get(b"k05", s.visible_version())
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some(&b"v1"[..])
    );
    assert!(s.get(b"late", s.visible_version()).unwrap().is_some());
}

/// `checkpoint` writes a frozen memtable left by a failed flush *before* checking that
/// the storage is writable: after `close()` (whose flush failed, and which released the
/// directory lock), a late `checkpoint()` on the old handle still writes a run and the
/// MANIFEST into a directory another instance now owns, reusing that instance's run id
/// and replacing its manifest: the other instance's flushed commits are lost.
#[test]
fn review_checkpoint_after_close_writes_into_a_directory_it_no_longer_owns() {
    let fs = FaultyVfs::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let locked = || StorageOptions {
        lock_directory: true,
        ..opts(&fs)
    };
    let s1 = Storage::open(&dir, locked()).unwrap();
    for i in 0..10 {
        s1.commit(vec![put(&format!("a{i}"), "1")], |_| Ok(()))
            .unwrap();
    }
    s1.checkpoint().unwrap();
    s1.commit(vec![put("b", "1")], |_| Ok(())).unwrap();
    // The flush of close() fails (its run does not verify): a frozen memtable remains.
    fs.set_read_hook(Some(Arc::new(|p: &std::path::Path, b: &mut Vec<u8>| {
        if p.to_string_lossy().ends_with(".sst.tmp") && b.len() > 40 {
            b[36] ^= 1;
        }
    })));
    assert!(s1.close().is_err());
    fs.set_read_hook(None);
    // The directory is free: another instance opens it, commits and flushes.
    let s2 = Storage::open(&dir, locked()).unwrap();
    s2.commit(vec![put("c", "2")], |_| Ok(())).unwrap();
    s2.checkpoint().unwrap();
    let c_version = s2.visible_version();
    // The closed handle must not touch the files any more.
    let late = s1.checkpoint();
    drop(s2);
    drop(s1);
    let s3 = Storage::open(&dir, locked()).expect("reopen");
    assert!(
        s3.get(b"c", c_version).unwrap().is_some(),
        "the commit flushed by the second instance is lost (late checkpoint: {late:?})"
    );
}
