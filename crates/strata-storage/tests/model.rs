//! Model-based test: random puts, deletes, reads at old versions, history and prefix
//! scans, checkpoints and reopens, against a `BTreeMap<(key, version), value>` model.
//!
//! Two systems run the same operations: an ephemeral storage (never reopened) and a
//! `Strict` storage on the fault-injecting VFS with tiny log segments and snapshot
//! threshold, which a `Reopen` op crashes (process crash or power loss — `Strict`
//! loses nothing either way) and reopens from its files.
mod common;

use std::collections::BTreeMap;

use common::Crashable;
use proptest::prelude::*;
use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

/// Keys chosen to stress ordering and prefixes: the empty key, shared prefixes, 0xff.
const KEYS: &[&[u8]] = &[b"", b"a", b"ab", b"abc", b"b", b"ba", b"\xff", b"\xff\xff"];
const PREFIXES: &[&[u8]] = &[b"", b"a", b"ab", b"b", b"\xff", b"z"];

#[derive(Debug, Clone)]
enum Op {
    /// (key index, value): `None` deletes; `Some(n)` puts `n % 40` bytes (may be empty).
    Commit(Vec<(usize, Option<u8>)>),
    Get {
        key: usize,
        back: u64,
    },
    History {
        key: usize,
        back: u64,
        before: Option<u64>,
        limit: Option<usize>,
    },
    Scan {
        prefix: usize,
        back: u64,
        limit: Option<usize>,
    },
    Checkpoint,
    Reopen {
        power_loss: bool,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        8 => prop::collection::vec((key.clone(), prop::option::weighted(0.75, any::<u8>())), 1..4)
            .prop_map(Op::Commit),
        4 => (key.clone(), 0u64..25).prop_map(|(key, back)| Op::Get { key, back }),
        2 => (key, 0u64..25, prop::option::of(0u64..40), prop::option::of(1usize..4))
            .prop_map(|(key, back, before, limit)| Op::History { key, back, before, limit }),
        2 => (0..PREFIXES.len(), 0u64..25, prop::option::of(1usize..4))
            .prop_map(|(prefix, back, limit)| Op::Scan { prefix, back, limit }),
        1 => Just(Op::Checkpoint),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(power_loss, seed)| Op::Reopen { power_loss, seed }),
    ]
}

type Val = Option<Vec<u8>>;

#[derive(Default)]
struct Model {
    cells: BTreeMap<(Vec<u8>, u64), Val>,
    last: u64,
}

impl Model {
    fn commit(&mut self, writes: &[(Vec<u8>, Val)]) -> u64 {
        self.last += 1;
        for (k, v) in writes {
            self.cells.insert((k.clone(), self.last), v.clone());
        }
        self.last
    }
    fn chain(&self, key: &[u8], snapshot: u64) -> impl DoubleEndedIterator<Item = (u64, &Val)> {
        self.cells
            .range((key.to_vec(), 0)..=(key.to_vec(), snapshot))
            .map(|((_, v), val)| (*v, val))
    }
    fn get(&self, key: &[u8], snapshot: u64) -> Option<(u64, Vec<u8>)> {
        let (v, val) = self.chain(key, snapshot).next_back()?;
        val.clone().map(|x| (v, x))
    }
    fn history(
        &self,
        key: &[u8],
        snapshot: u64,
        before: Option<u64>,
        limit: Option<usize>,
    ) -> Vec<(u64, Val)> {
        self.chain(key, snapshot)
            .rev()
            .filter(|(v, _)| before.is_none_or(|b| *v < b))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(v, val)| (v, val.clone()))
            .collect()
    }
    fn scan(
        &self,
        prefix: &[u8],
        snapshot: u64,
        limit: Option<usize>,
    ) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
        let mut keys: Vec<&Vec<u8>> = self.cells.keys().map(|(k, _)| k).collect();
        keys.dedup();
        keys.into_iter()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.get(k, snapshot).map(|(v, x)| (k.clone(), v, x)))
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    }
}

fn sut_get(s: &Storage, key: &[u8], snapshot: u64) -> Option<(u64, Vec<u8>)> {
    s.get(key, snapshot).unwrap().map(|e| {
        (
            e.version,
            e.value.expect("get never returns a tombstone").to_vec(),
        )
    })
}

fn sut_history(
    s: &Storage,
    key: &[u8],
    snapshot: u64,
    before: Option<u64>,
    limit: Option<usize>,
) -> Vec<(u64, Val)> {
    s.history(key, snapshot, before, limit)
        .unwrap()
        .into_iter()
        .map(|e| (e.version, e.value.map(|x| x.to_vec())))
        .collect()
}

fn sut_scan(
    s: &Storage,
    prefix: &[u8],
    snapshot: u64,
    limit: Option<usize>,
) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
    s.scan_prefix(prefix, snapshot, limit)
        .unwrap()
        .into_iter()
        .map(|(k, e)| (k.to_vec(), e.version, e.value.unwrap().to_vec()))
        .collect()
}

struct Disk {
    crash: Crashable,
    storage: Storage,
}

impl Disk {
    fn options(crash: &Crashable) -> StorageOptions {
        StorageOptions {
            durability: DurabilityMode::Strict,
            segment_size: 256,
            snapshot_threshold: 1024,
            vfs: crash.vfs(),
            lock_directory: false,
            ..StorageOptions::default()
        }
    }
    fn new() -> Disk {
        let crash = Crashable::new();
        let storage = Storage::open("/db", Self::options(&crash)).unwrap();
        Disk { crash, storage }
    }
    fn reopen(&mut self, power_loss: bool, seed: u64) {
        if power_loss {
            self.crash.power_loss(seed);
        } else {
            self.crash.process_crash();
        }
        self.storage = Storage::open("/db", Self::options(&self.crash)).unwrap();
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let eph = Storage::ephemeral();
    let mut disk = Disk::new();
    for op in ops {
        let systems = [&eph, &disk.storage];
        match op {
            Op::Commit(ws) => {
                let writes: Vec<(Vec<u8>, Val)> = ws
                    .iter()
                    .map(|&(k, v)| (KEYS[k].to_vec(), v.map(|n| vec![n; n as usize % 40])))
                    .collect();
                let version = model.commit(&writes);
                for s in systems {
                    let w: Vec<Write> = writes
                        .iter()
                        .map(|(k, v)| Write {
                            key: k.as_slice().into(),
                            value: v.as_deref().map(Into::into),
                        })
                        .collect();
                    let info = s.commit(w, |_| Ok(())).unwrap();
                    prop_assert_eq!(info.version, version);
                    prop_assert_eq!(s.visible_version(), version);
                }
            }
            Op::Get { key, back } => {
                let snap = model.last.saturating_sub(back);
                let want = model.get(KEYS[key], snap);
                for s in systems {
                    prop_assert_eq!(sut_get(s, KEYS[key], snap), want.clone());
                }
            }
            Op::History {
                key,
                back,
                before,
                limit,
            } => {
                let snap = model.last.saturating_sub(back);
                let want = model.history(KEYS[key], snap, before, limit);
                for s in systems {
                    prop_assert_eq!(sut_history(s, KEYS[key], snap, before, limit), want.clone());
                }
            }
            Op::Scan {
                prefix,
                back,
                limit,
            } => {
                let snap = model.last.saturating_sub(back);
                let want = model.scan(PREFIXES[prefix], snap, limit);
                for s in systems {
                    prop_assert_eq!(sut_scan(s, PREFIXES[prefix], snap, limit), want.clone());
                }
            }
            Op::Checkpoint => {
                for s in systems {
                    s.checkpoint().unwrap();
                }
            }
            Op::Reopen { power_loss, seed } => {
                disk.reopen(power_loss, seed);
                let s = &disk.storage;
                prop_assert_eq!(s.visible_version(), model.last);
                // The whole history of every key survived.
                for k in KEYS {
                    prop_assert_eq!(
                        sut_history(s, k, u64::MAX, None, None),
                        model.history(k, u64::MAX, None, None)
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn storage_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    #[ignore = "long: many more model cases (CI runs --ignored in release)"]
    fn storage_matches_the_model_long(ops in prop::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
