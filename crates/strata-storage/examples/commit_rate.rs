//! Single-key commits through `strata-storage` alone, without fsync.
//!
//! ```text
//! cargo run --release -p strata-storage --example commit_rate -- [MODE] [COMMITS] [ROUNDS]
//! ```
//!
//! `MODE` is `buffered` (default) or `no_durability`; `COMMITS` defaults to 1,000,000
//! (24-byte keys in random order, 100-byte values) and `ROUNDS` to 3. Each round opens a
//! fresh storage in a temporary directory and prints commits per second of wall time and
//! per CPU-second of the committing thread; the difference is time the thread spent
//! off its core (waiting for room in the memtable, preempted by background work).
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_storage::{DurabilityMode, Storage, StorageOptions, Write};

/// CPU time of the calling thread (zero where it cannot be read).
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

/// CPU time of the calling thread.
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes the timespec it is given.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map_or("buffered", String::as_str) {
        "buffered" => DurabilityMode::default(),
        "no_durability" => DurabilityMode::NoDurability,
        other => panic!("unknown mode {other}: buffered or no_durability"),
    };
    let commits: u64 = args
        .get(2)
        .map_or(1_000_000, |n| n.parse().expect("COMMITS"));
    let rounds: u64 = args.get(3).map_or(3, |n| n.parse().expect("ROUNDS"));
    let value: Arc<[u8]> = Arc::from(vec![0xABu8; 100].as_slice());
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(
            dir.path(),
            StorageOptions {
                durability: mode,
                snapshot_on_close: false,
                ..StorageOptions::default()
            },
        )
        .expect("open");
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ round;
        let (wall, cpu) = (Instant::now(), thread_cpu());
        for _ in 0..commits {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut key = vec![0u8; 24];
            key[..8].copy_from_slice(&rng.to_be_bytes());
            let w = vec![Write {
                key: key.into(),
                value: Some(value.clone()),
            }];
            s.commit(w, |_| Ok(())).expect("commit");
        }
        let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
        println!(
            "round {round}: {:.0} commits/s wall, {:.0} per CPU-second of the committing thread",
            commits as f64 / wall.as_secs_f64(),
            commits as f64 / cpu.as_secs_f64()
        );
    }
}
