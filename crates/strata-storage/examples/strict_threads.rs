//! Strict commits from several threads on the real disk.
//!
//! ```text
//! cargo run --release -p strata-storage --example strict_threads -- [THREADS] [COMMITS] [ROUNDS]
//! ```
//!
//! Each round opens a fresh strict storage in a temporary directory and commits
//! `COMMITS` single-key writes (24-byte keys, 100-byte values) spread over `THREADS`
//! threads (default 4, 8,000 commits, 3 rounds), and prints commits per second.
use std::sync::Arc;
use std::time::Instant;

use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args.get(1).map_or(4, |n| n.parse().expect("THREADS"));
    let commits: u64 = args.get(2).map_or(8_000, |n| n.parse().expect("COMMITS"));
    let rounds: u64 = args.get(3).map_or(3, |n| n.parse().expect("ROUNDS"));
    let value: Arc<[u8]> = Arc::from(vec![0xABu8; 100].as_slice());
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(
            dir.path(),
            StorageOptions {
                durability: DurabilityMode::Strict,
                snapshot_on_close: false,
                ..StorageOptions::default()
            },
        )
        .expect("open");
        let t = Instant::now();
        std::thread::scope(|scope| {
            for th in 0..threads {
                let (s, value) = (s.clone(), value.clone());
                scope.spawn(move || {
                    for i in (th..commits).step_by(threads as usize) {
                        let mut key = vec![0u8; 24];
                        key[..8].copy_from_slice(&i.to_be_bytes());
                        let w = vec![Write {
                            key: key.into(),
                            value: Some(value.clone()),
                        }];
                        s.commit(w, |_| Ok(())).expect("commit");
                    }
                });
            }
        });
        let rate = commits as f64 / t.elapsed().as_secs_f64();
        println!("round {round}: {threads} threads, {rate:.0} commits/s");
    }
}
