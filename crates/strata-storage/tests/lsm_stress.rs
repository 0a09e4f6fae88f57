//! The layered store against a model: many small flushes and compactions (in the
//! background and explicit), reads of every kind compared with a plain map after each
//! step, and after reopening.
use std::collections::BTreeMap;
use std::sync::Arc;

use strata_storage::testing::FaultyVfs;
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

type Model = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn opts(fs: &FaultyVfs, threshold: u64) -> StorageOptions {
    StorageOptions {
        durability: DurabilityMode::NoDurability,
        snapshot_threshold: threshold,
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

fn check(s: &Storage, model: &Model, ctx: &str) {
    let last = s.visible_version();
    for (k, chain) in model {
        let got: Vec<(u64, Option<Vec<u8>>)> = s
            .history(k, u64::MAX, None, None)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.version, e.value.map(|v| v.to_vec())))
            .collect();
        assert_eq!(&got, chain, "{ctx}: history of {k:?}");
        // A point read at a few snapshots.
        for at in [last, last / 2, chain[0].0] {
            let want = chain
                .iter()
                .rev()
                .find(|(v, _)| *v <= at)
                .and_then(|(_, x)| x.clone());
            let got = s
                .get(k, at)
                .unwrap()
                .and_then(|e| e.value.map(|v| v.to_vec()));
            assert_eq!(got, want, "{ctx}: get {k:?} at {at}");
        }
    }
    for at in [last, last / 3] {
        let want: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter_map(|(k, c)| {
                c.iter()
                    .rev()
                    .find(|(v, _)| *v <= at)
                    .and_then(|(_, x)| x.clone())
                    .map(|x| (k.clone(), x))
            })
            .collect();
        let got: Vec<(Vec<u8>, Vec<u8>)> = s
            .scan_prefix(b"", at, None)
            .unwrap()
            .into_iter()
            .map(|(k, e)| (k.to_vec(), e.value.unwrap().to_vec()))
            .collect();
        assert_eq!(got, want, "{ctx}: scan at {at}");
        let mut rev: Vec<(Vec<u8>, Vec<u8>)> = s
            .scan_range_rev(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                at,
                None,
            )
            .unwrap()
            .into_iter()
            .map(|(k, e)| (k.to_vec(), e.value.unwrap().to_vec()))
            .collect();
        rev.reverse();
        assert_eq!(rev, want, "{ctx}: reverse scan at {at}");
        if want.len() > 3 {
            let got = s.scan_prefix(b"", at, Some(3)).unwrap();
            assert_eq!(got.len(), 3);
        }
    }
}

#[test]
fn layered_reads_match_a_model_through_flushes_compactions_and_reopens() {
    let fs = FaultyVfs::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut model: Model = BTreeMap::new();
    let mut s = Storage::open("/db", opts(&fs, 2_000)).unwrap();
    for step in 0..1_500u64 {
        let n = 1 + rng.below(4);
        let mut writes = Vec::new();
        for _ in 0..n {
            let k = format!("k{:03}", rng.below(120)).into_bytes();
            let v =
                (rng.below(5) != 0).then(|| vec![rng.below(256) as u8; rng.below(300) as usize]);
            writes.retain(|w: &Write| *w.key != *k);
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
            0..=2 => s.checkpoint().unwrap(),
            3 => {
                s.compact(rng.below(2) == 0).unwrap();
            }
            4 => {
                s.close().unwrap();
                drop(s);
                s = Storage::open("/db", opts(&fs, 2_000)).unwrap();
            }
            _ => {}
        }
        if step % 50 == 0 {
            check(&s, &model, &format!("step {step}"));
        }
    }
    check(&s, &model, "end");
    assert!(s.run_count() >= 1);
    s.close().unwrap();
    drop(s);
    let s = Storage::open("/db", opts(&fs, 2_000)).unwrap();
    check(&s, &model, "reopened");
    assert_eq!(s.key_count().unwrap(), model.len());
}
