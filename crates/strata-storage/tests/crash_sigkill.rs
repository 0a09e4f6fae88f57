//! Crash tests with real processes, killed with SIGKILL.
//!
//! The test binary re-executes itself as a child (`crash_child`, ignored, which does
//! nothing unless `STRATA_CRASH_CHILD` names a directory). The child opens the storage
//! and commits numbered transactions in a loop from one or more threads; each
//! transaction writes `r<round>/t<thread>/n<seq>/{a,b,c}` (all with the same value) and
//! the shared key `hot`, and once `commit` has returned the child prints
//! `ACK <version> <txn>` to stdout. The parent kills the child after a random delay,
//! collects the acknowledged lines, reopens, and checks:
//!
//! - no acknowledged commit is lost, in *every* mode: records reach the OS before a
//!   commit returns, and a process kill (unlike a power loss) loses nothing the OS has;
//! - the recovered state is a prefix of the commit order: exactly versions `1..=last`,
//!   each one complete transaction (all three keys or none), nothing newer;
//! - versions recovered earlier keep their transactions across later rounds;
//! - after the last kill new commits continue at `last + 1`, and a second reopen sees
//!   them, also after a torn tail was appended to the log by the test.
//!
//! Replay with `STRATA_CRASH_SEED=<seed>`.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{put, Rng};
use strata_core::Error;
use strata_storage::{
    DurabilityMode, Storage, StorageOptions, Write, DEFAULT_SEGMENT_SIZE,
    DEFAULT_SNAPSHOT_THRESHOLD,
};

const CHILD_ENV: &str = "STRATA_CRASH_CHILD";

/// Serializes the tests that spawn children with those that reopen right after a drop.
/// A child forked by another test thread briefly shares every open file description of
/// this process (until its `exec` closes them), the lock file's included, so the
/// `flock` can outlive our own close by that instant.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    mode: &'static str,
    threads: usize,
    /// Small log segments and snapshot threshold: rolls and background snapshots
    /// (and so segment deletion) happen all the time, and kills land inside them.
    small: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "strict, 1 writer",
        mode: "strict",
        threads: 1,
        small: false,
    },
    Scenario {
        name: "strict, 4 writers, small segments",
        mode: "strict",
        threads: 4,
        small: true,
    },
    Scenario {
        name: "buffered, 1 writer",
        mode: "buffered",
        threads: 1,
        small: false,
    },
    Scenario {
        name: "buffered, 4 writers, small segments",
        mode: "buffered",
        threads: 4,
        small: true,
    },
    Scenario {
        name: "no_durability, 1 writer, small segments",
        mode: "none",
        threads: 1,
        small: true,
    },
    Scenario {
        name: "no_durability, 4 writers",
        mode: "none",
        threads: 4,
        small: false,
    },
];

fn options(mode: &str, small: bool) -> StorageOptions {
    let durability = match mode {
        "strict" => DurabilityMode::Strict,
        "buffered" => DurabilityMode::default(),
        "none" => DurabilityMode::NoDurability,
        other => panic!("unknown mode {other}"),
    };
    StorageOptions {
        durability,
        segment_size: if small {
            16 << 10
        } else {
            DEFAULT_SEGMENT_SIZE
        },
        snapshot_threshold: if small {
            48 << 10
        } else {
            DEFAULT_SNAPSHOT_THRESHOLD
        },
        ..StorageOptions::default()
    }
}

fn txn_id(round: u64, thread: usize, n: u64) -> String {
    format!("r{round:04}/t{thread}/n{n:09}")
}

fn txn_writes(id: &str) -> Vec<Write> {
    let mut w: Vec<Write> = ["a", "b", "c"]
        .iter()
        .map(|s| put(format!("{id}/{s}"), id))
        .collect();
    w.push(put("hot", id));
    w
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The child process: commits until killed. Does nothing when run as a normal test.
#[test]
#[ignore = "child process of the SIGKILL crash tests; does nothing when run directly"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode: String = env("STRATA_CRASH_MODE").unwrap();
    let threads: usize = env("STRATA_CRASH_THREADS").unwrap();
    let round: u64 = env("STRATA_CRASH_ROUND").unwrap();
    let small = std::env::var("STRATA_CRASH_SMALL").is_ok();
    let s = Storage::open(&dir, options(&mode, small)).unwrap();
    say(&format!("READY {}", s.visible_version()));
    if std::env::var("STRATA_CRASH_HOLD").is_ok() {
        // Just hold the directory lock until killed.
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for n in 0.. {
                    if Instant::now() > deadline {
                        // The parent is gone: never outlive it for long.
                        std::process::exit(4);
                    }
                    let id = txn_id(round, t, n);
                    let info = s.commit(txn_writes(&id), |_| Ok(())).unwrap();
                    say(&format!("ACK {} {id}", info.version));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// One line to stdout, flushed; exits if the parent is gone.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(5);
    }
}

fn spawn_child(
    dir: &Path,
    sc: &Scenario,
    round: u64,
    hold: bool,
) -> (Child, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "crash_child", "--nocapture", "--ignored"])
        .env(CHILD_ENV, dir)
        .env("STRATA_CRASH_MODE", sc.mode)
        .env("STRATA_CRASH_THREADS", sc.threads.to_string())
        .env("STRATA_CRASH_ROUND", round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if sc.small {
        cmd.env("STRATA_CRASH_SMALL", "1");
    }
    if hold {
        cmd.env("STRATA_CRASH_HOLD", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Finds `READY`/`ACK` wherever the test harness put them on a line.
fn tagged<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|i| &line[i + tag.len()..])
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child ended on its own ({status}) before it was killed"
    );
}

/// Runs one child, kills it after a random delay, and returns the acknowledged commits.
fn run_and_kill(
    dir: &Path,
    sc: &Scenario,
    round: u64,
    rng: &mut Rng,
    may_kill_early: bool,
) -> Vec<(u64, String)> {
    let (mut child, rx) = spawn_child(dir, sc, round, false);
    let mut early_acks = Vec::new();
    if may_kill_early && rng.chance(1, 6) {
        // Kill during start-up or recovery.
        std::thread::sleep(Duration::from_millis(rng.below(25)));
    } else {
        // Wait for the first acknowledged commit, then kill at a random point.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = tagged(&line, "ACK ") {
                        early_acks.push(rest.to_owned());
                        break;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("child never acknowledged a commit: {e:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
    }
    kill(&mut child);
    // The pipe keeps everything the child wrote before it died.
    let lines = early_acks.into_iter().chain(
        rx.iter()
            .filter_map(|line| tagged(&line, "ACK ").map(str::to_owned)),
    );
    lines
        .map(|rest| {
            let (v, id) = rest.split_once(' ').unwrap();
            (v.parse().unwrap(), id.to_owned())
        })
        .collect()
}

/// Checks the recovered state; returns version -> transaction id (exactly `1..=last`).
fn verify(
    s: &Storage,
    acks: &[(u64, String)],
    known: &BTreeMap<u64, String>,
    ctx: &str,
) -> BTreeMap<u64, String> {
    let last = s.visible_version();
    assert_eq!(s.recovery_report().last_version, last, "{ctx}");
    // Group the transaction keys; every one must be complete and consistent.
    let mut txns: BTreeMap<String, Vec<(String, u64, Vec<u8>)>> = BTreeMap::new();
    for (k, e) in s.scan_prefix(b"r", u64::MAX, None).unwrap() {
        let k = String::from_utf8(k.to_vec()).unwrap();
        let (id, part) = k.rsplit_once('/').unwrap();
        let value = e.value.unwrap().to_vec();
        txns.entry(id.to_owned())
            .or_default()
            .push((part.to_owned(), e.version, value));
    }
    let mut by_version = BTreeMap::new();
    for (id, parts) in &txns {
        let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"], "{ctx}: {id} is partly visible");
        let v = parts[0].1;
        for (part, pv, value) in parts {
            assert_eq!(*pv, v, "{ctx}: {id}/{part} has another version");
            assert_eq!(value.as_slice(), id.as_bytes(), "{ctx}: {id}/{part} value");
        }
        assert!(
            by_version.insert(v, id.clone()).is_none(),
            "{ctx}: version {v} twice"
        );
    }
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "{ctx}: recovered versions are not exactly 1..={last}"
    );
    // `hot` was written by every transaction: its history is the commit order.
    let hot = s.history(b"hot", u64::MAX, None, None).unwrap();
    assert_eq!(hot.len() as u64, last, "{ctx}: history of hot");
    for e in &hot {
        assert_eq!(
            e.value.as_deref(),
            Some(by_version[&e.version].as_bytes()),
            "{ctx}"
        );
    }
    for (v, id) in acks {
        assert_eq!(
            by_version.get(v),
            Some(id),
            "{ctx}: acknowledged commit {v} ({id}) lost (recovered up to {last})"
        );
    }
    for (v, id) in known {
        assert_eq!(
            by_version.get(v),
            Some(id),
            "{ctx}: earlier recovered {v} changed"
        );
    }
    by_version
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("wal-") && n.ends_with(".log")
        })
        .collect();
    segs.sort();
    segs.pop().expect("no log segment")
}

fn run_scenario(sc: &Scenario, kills: u64, fresh_every: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut total_acks = 0;
    let mut dir = PathBuf::new();
    let mut known = BTreeMap::new();
    for round in 0..kills {
        if round % fresh_every == 0 {
            dir = tmp.path().join(format!("db{round}"));
            known.clear();
        }
        let ctx = format!("{} round {round} seed {seed}", sc.name);
        // The last round always commits before it is killed.
        let acks = run_and_kill(&dir, sc, round, &mut rng, round + 1 < kills);
        total_acks += acks.len();
        if !dir.exists() {
            continue; // killed before it created anything
        }
        let s = Storage::open(&dir, options(sc.mode, sc.small))
            .unwrap_or_else(|e| panic!("{ctx}: reopen after SIGKILL failed: {e}"));
        known = verify(&s, &acks, &known, &ctx);
        drop(s);
    }
    assert!(
        total_acks > 0,
        "{}: no commit was ever acknowledged",
        sc.name
    );

    // Continue after the last kill, over a torn tail the test adds to the log.
    let ctx = format!("{} continuation seed {seed}", sc.name);
    let mut torn = 0;
    if dir.exists() && rng.chance(2, 3) {
        let seg = last_segment(&dir);
        let garbage: Vec<u8> = (0..1 + rng.below(40))
            .map(|_| rng.next_u64() as u8)
            .collect();
        torn = garbage.len() as u64;
        fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
    }
    let s = Storage::open(&dir, options(sc.mode, sc.small)).unwrap();
    assert!(s.recovery_report().torn_bytes_truncated >= torn, "{ctx}");
    let mut known = verify(&s, &[], &known, &ctx);
    let last = s.visible_version();
    let mut acks = Vec::new();
    for n in 0..5 {
        let id = txn_id(kills, 0, n);
        let info = s.commit(txn_writes(&id), |_| Ok(())).unwrap();
        assert_eq!(info.version, last + 1 + n, "{ctx}: versions must continue");
        acks.push((info.version, id));
    }
    drop(s);
    let s = Storage::open(&dir, options(sc.mode, sc.small)).unwrap();
    assert_eq!(s.recovery_report().torn_bytes_truncated, 0, "{ctx}");
    known = verify(&s, &acks, &known, &ctx);
    assert_eq!(known.len() as u64, last + 5);
    eprintln!(
        "{}: {kills} kills, {total_acks} acknowledged commits, all recovered",
        sc.name
    );
}

fn run_all(kills: u64, fresh_every: u64) {
    let _serial = serial();
    let seed = common::seed_from_env("STRATA_CRASH_SEED");
    eprintln!("seed {seed} (replay with STRATA_CRASH_SEED={seed})");
    for (i, sc) in SCENARIOS.iter().enumerate() {
        run_scenario(sc, kills, fresh_every, seed.wrapping_add(i as u64));
    }
}

#[test]
fn sigkill_loses_no_acknowledged_commit_and_recovers_a_prefix() {
    run_all(5, 5);
}

#[test]
#[ignore = "long: 100 kills per scenario (CI runs --ignored in release)"]
fn sigkill_loses_no_acknowledged_commit_and_recovers_a_prefix_long() {
    run_all(100, 10);
}

#[test]
fn second_open_of_an_open_directory_fails() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let s = Storage::open(&dir, options("strict", false)).unwrap();
    s.commit(txn_writes("r0000/t0/n000000000"), |_| Ok(()))
        .unwrap();
    let err = Storage::open(&dir, options("strict", false)).err().unwrap();
    assert!(
        matches!(&err, Error::Storage(m) if m.contains("already open")),
        "{err:?}"
    );
    // The failed open changed nothing.
    assert_eq!(s.visible_version(), 1);
    drop(s);
    let s = Storage::open(&dir, options("strict", false)).unwrap();
    assert_eq!(s.visible_version(), 1);
}

#[test]
fn lock_of_a_killed_process_is_not_stale() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let sc = SCENARIOS[0];
    let (mut child, rx) = spawn_child(&dir, &sc, 0, true);
    let line = rx
        .iter()
        .find(|l| tagged(l, "READY ").is_some())
        .expect("child never became ready");
    assert!(line.contains("READY 0"));
    // Another process holds it.
    let err = Storage::open(&dir, options("strict", false)).err().unwrap();
    assert!(
        matches!(&err, Error::Storage(m) if m.contains("already open")),
        "{err:?}"
    );
    kill(&mut child);
    // The kernel dropped the lock with the process: no stale lock.
    let s = Storage::open(&dir, options("strict", false)).unwrap();
    assert_eq!(s.visible_version(), 0);
    assert!(dir.join(strata_storage::LOCK_FILE).exists());
}

#[test]
fn files_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("db");
    let s = Storage::open(&dir, options("strict", false)).unwrap();
    for n in 0..10 {
        s.commit(txn_writes(&txn_id(0, 0, n)), |_| Ok(())).unwrap();
    }
    s.checkpoint().unwrap();
    s.commit(txn_writes(&txn_id(0, 0, 10)), |_| Ok(())).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "database directory");
    assert_eq!(
        mode(&tmp.path().join("a")),
        0o700,
        "created parent directory"
    );
    let mut seen = Vec::new();
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(mode(&p), 0o600, "{name}");
        seen.push(name);
    }
    seen.sort();
    assert!(seen.iter().any(|n| n == "LOCK"), "{seen:?}");
    assert!(seen.iter().any(|n| n.starts_with("run-")), "{seen:?}");
    assert!(seen.iter().any(|n| n == "MANIFEST"), "{seen:?}");
    assert!(seen.iter().any(|n| n.starts_with("wal-")), "{seen:?}");
}

/// Dropping the last handle releases the directory at once, in every mode: neither
/// the Buffered flusher nor a background snapshot in flight keeps the storage (and its
/// lock) alive after the drop returns.
#[test]
fn drop_then_reopen_at_once_in_every_mode() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    for mode in ["strict", "buffered", "none"] {
        for small in [false, true] {
            let dir = tmp.path().join(format!("{mode}-{small}"));
            // With small segments, each round writes past the snapshot threshold, so a
            // background snapshot is usually running when the handle is dropped.
            let per_round = if small { 60 } else { 1 };
            let mut version = 0;
            for i in 0..8u64 {
                let s = Storage::open(&dir, options(mode, small))
                    .unwrap_or_else(|e| panic!("{mode}: reopen {i} right after drop: {e}"));
                assert_eq!(s.visible_version(), version);
                let extra = s.clone();
                for j in 0..per_round {
                    s.commit(vec![put(format!("k{i}/{j}"), [1u8; 900])], |_| Ok(()))
                        .unwrap();
                }
                version += per_round;
                // Let the flusher settle into its wait.
                std::thread::sleep(Duration::from_millis(2));
                drop(extra);
                drop(s);
            }
        }
    }
}
