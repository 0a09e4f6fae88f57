//! Torn tails and corruption, through the public API on real files.
//!
//! - A log cut at *every* byte offset inside its last record recovers the commits
//!   before it, and appending + reopening afterwards works.
//! - A single flipped bit *anywhere* in a strict log segment (every record's durable mark
//!   covers the record before it) is either refused with `Error::Storage` naming the file
//!   and the offset of the damaged record, or — in the last record, where damage is
//!   indistinguishable from a torn write — truncated away like a torn tail. In a log that
//!   was never fsynced, damage is an unsynced tail: truncated there. It never yields
//!   wrong data.
//! - A single flipped bit anywhere in a snapshot is refused with `Error::Storage` naming
//!   the file, except in the bytes the format documents as unchecked (reserved and
//!   informational fields), where the data read is still exactly right.
mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use common::put;
use strata_core::Error;
use strata_storage::{DurabilityMode, Storage, StorageOptions};

const SEG1: &str = "wal-00000000000000000001.log";

fn opts() -> StorageOptions {
    StorageOptions {
        durability: DurabilityMode::NoDurability,
        snapshot_on_close: false,
        ..StorageOptions::default()
    }
}

fn commit_n(s: &Storage, from: u64, to: u64) {
    for i in from..=to {
        let info = s
            .commit(
                vec![
                    put(format!("k{i:03}"), format!("v{i}")),
                    put("all", i.to_string()),
                ],
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(info.version, i);
    }
}

/// Writes `n` commits to a fresh directory; returns it and the offset of every record
/// boundary in the (single) log segment: `ends[0]` is the header end, `ends[i]` the end
/// of record `i`.
fn build_log(n: u64) -> (tempfile::TempDir, Vec<u64>) {
    build_log_in(n, DurabilityMode::NoDurability)
}

fn build_log_in(n: u64, durability: DurabilityMode) -> (tempfile::TempDir, Vec<u64>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let s = Storage::open(
        &dir,
        StorageOptions {
            durability,
            ..opts()
        },
    )
    .unwrap();
    commit_n(&s, 1, n);
    // Closing seals the segment: its file ends with its last record (no preallocation).
    s.close().unwrap();
    drop(s);
    let bytes = fs::read(dir.join(SEG1)).unwrap();
    // Walk the frames: 48-byte header, then 32-byte frame headers with payload_len first.
    let mut ends = vec![48u64];
    let mut pos = 48usize;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 32 + len;
        ends.push(pos as u64);
    }
    assert_eq!(ends.len() as u64, n + 1, "one frame per commit");
    assert_eq!(pos, bytes.len());
    (tmp, ends)
}

fn copy_db(from: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    fs::create_dir(&dir).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    (tmp, dir)
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 1 << bit;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
}

fn value(s: &Storage, k: &str) -> Option<String> {
    s.get(k.as_bytes(), s.visible_version())
        .unwrap()
        .and_then(|e| e.value)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// Exactly commits `1..=n` are there.
fn assert_commits(s: &Storage, n: u64, total: u64) {
    assert_eq!(s.visible_version(), n);
    for i in 1..=total {
        let got = value(s, &format!("k{i:03}"));
        assert_eq!(got.is_some(), i <= n, "k{i:03} with {n} commits recovered");
    }
    if n > 0 {
        assert_eq!(value(s, "all"), Some(n.to_string()));
        assert_eq!(s.history(b"all", n, None, None).unwrap().len() as u64, n);
    }
}

#[test]
fn torn_last_record_at_every_offset() {
    let n = 12;
    let (tmp, ends) = build_log(n);
    let (start, end) = (ends[n as usize - 1], ends[n as usize]);
    for cut in start..end {
        let (_t, dir) = copy_db(&tmp.path().join("db"));
        let seg = dir.join(SEG1);
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let s = Storage::open(&dir, opts()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(
            s.recovery_report().torn_bytes_truncated,
            cut - start,
            "cut {cut}"
        );
        assert_commits(&s, n - 1, n);
        // The torn bytes are gone from the file before anything is appended (what
        // follows the last record is the segment's fresh, zeroed preallocation).
        let after = fs::read(&seg).unwrap();
        assert!(after.len() as u64 >= start);
        assert!(after[start as usize..].iter().all(|&b| b == 0), "cut {cut}");
        let info = s
            .commit(vec![put("after", format!("cut{cut}"))], |_| Ok(()))
            .unwrap();
        assert_eq!(info.version, n);
        drop(s);
        let s = Storage::open(&dir, opts()).unwrap();
        assert_eq!(s.recovery_report().torn_bytes_truncated, 0);
        assert_eq!(s.visible_version(), n);
        assert_eq!(value(&s, "after"), Some(format!("cut{cut}")));
        assert_eq!(value(&s, &format!("k{n:03}")), None);
    }
}

#[test]
fn flipped_bit_anywhere_in_the_log() {
    let n = 6;
    let (tmp, ends) = build_log_in(n, DurabilityMode::Strict);
    let len = ends[n as usize];
    let dir = tmp.path().join("db");
    let seg = dir.join(SEG1);
    let original = fs::read(&seg).unwrap();
    for offset in 0..len {
        let bit = (offset % 8) as u8;
        flip_bit(&seg, offset, bit);
        let res = Storage::open(&dir, opts());
        // 1-based number of the record the byte is in (0: the segment header).
        let record = ends.iter().rposition(|&e| e <= offset).map_or(0, |i| i + 1);
        let ctx = format!("bit {bit} of byte {offset} (record {record})");
        if offset < 8 {
            let err = res.err().unwrap_or_else(|| panic!("{ctx}: opened"));
            assert!(err.to_string().contains("bad magic"), "{ctx}: {err}");
        } else if offset < 12 {
            let err = res.err().unwrap_or_else(|| panic!("{ctx}: opened"));
            assert!(err.to_string().contains("format version"), "{ctx}: {err}");
        } else if offset < 48 {
            // Salt, base, previous length, reserved bytes: all under the header checksum.
            let err = res.err().unwrap_or_else(|| panic!("{ctx}: opened"));
            assert!(
                err.to_string().contains("corrupt at offset 0"),
                "{ctx}: {err}"
            );
        } else if (record as u64) < n {
            // Damage followed by a record written after it was durable is corruption,
            // never a torn tail.
            let err = res.err().unwrap_or_else(|| panic!("{ctx}: opened"));
            let Error::Storage(msg) = &err else {
                panic!("{ctx}: {err:?}")
            };
            let at = ends[record - 1];
            assert!(
                msg.contains(SEG1) && msg.contains(&format!("corrupt at offset {at}")),
                "{ctx}: {msg}"
            );
        } else {
            // Damage in the last record cannot be told from a torn write.
            let s = res.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(
                s.recovery_report().torn_bytes_truncated,
                len - ends[n as usize - 1]
            );
            assert_commits(&s, n - 1, n);
        }
        // Undo the damage (and any truncation) for the next offset.
        if fs::metadata(&seg).unwrap().len() == len {
            flip_bit(&seg, offset, bit);
        } else {
            fs::write(&seg, &original).unwrap();
        }
    }
}

#[test]
fn flipped_bit_in_the_middle_record_names_file_and_offset() {
    let n = 9;
    let (tmp, ends) = build_log_in(n, DurabilityMode::Strict);
    let mid = n as usize / 2;
    let at = ends[mid];
    let (_t, dir) = copy_db(&tmp.path().join("db"));
    flip_bit(&dir.join(SEG1), at + (ends[mid + 1] - at) / 2, 3);
    let err = Storage::open(&dir, opts()).err().unwrap();
    let Error::Storage(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains(&dir.join(SEG1).display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    // Nothing was changed by the failed open: still refused, file untouched.
    assert_eq!(
        fs::metadata(dir.join(SEG1)).unwrap().len(),
        ends[n as usize]
    );
    assert!(Storage::open(&dir, opts()).is_err());
}

/// In a log that was never fsynced no record proves that an earlier one was durable:
/// damage in the middle is where a power loss cut the unsynced tail, and everything from
/// there on is truncated (with the bytes counted in the report).
#[test]
fn damage_in_a_never_synced_log_is_an_unsynced_tail() {
    let n = 9;
    let (tmp, ends) = build_log(n);
    let (_t, dir) = copy_db(&tmp.path().join("db"));
    let mid = 4usize;
    flip_bit(&dir.join(SEG1), ends[mid] + 40, 2);
    let s = Storage::open(&dir, opts()).unwrap();
    assert_eq!(
        s.recovery_report().torn_bytes_truncated,
        ends[n as usize] - ends[mid]
    );
    assert_commits(&s, mid as u64, n);
}

/// With small segments: damage at the end of a sealed (not last) segment is corruption
/// (only the last segment may have a torn tail), and a missing segment is a gap.
#[test]
fn sealed_segment_damage_and_missing_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let o = StorageOptions {
        segment_size: 300,
        ..opts()
    };
    let s = Storage::open(&dir, o.clone()).unwrap();
    commit_n(&s, 1, 40);
    drop(s);
    let mut segs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 4, "{segs:?}");

    let (_t, copy) = copy_db(&dir);
    let first = copy.join(segs[0].file_name().unwrap());
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let msg = Storage::open(&copy, o.clone()).err().unwrap().to_string();
    assert!(
        msg.contains(&first.display().to_string()) && msg.contains("corrupt"),
        "{msg}"
    );

    let (_t, copy) = copy_db(&dir);
    fs::remove_file(copy.join(segs[1].file_name().unwrap())).unwrap();
    let msg = Storage::open(&copy, o.clone()).err().unwrap().to_string();
    assert!(msg.contains("records are missing"), "{msg}");

    // Intact, everything is there.
    let s = Storage::open(&dir, o).unwrap();
    assert_commits(&s, 40, 40);
}

fn snapshot_db() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let s = Storage::open(&dir, opts()).unwrap();
    commit_n(&s, 1, 30);
    s.checkpoint().unwrap();
    commit_n(&s, 31, 33);
    drop(s);
    let snap = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .unwrap();
    assert!(snap.ends_with("run-00000000000000000001.sst"));
    let s = Storage::open(&dir, opts()).unwrap();
    assert_eq!(s.recovery_report().snapshot_version, 30);
    assert_commits(&s, 33, 33);
    (tmp, snap)
}

/// Every read of the database, or the first error one of them returns.
fn read_everything(s: &Storage, total: u64) -> strata_core::Result<()> {
    let at = s.visible_version();
    for i in 1..=total {
        s.get(format!("k{i:03}").as_bytes(), at)?;
    }
    s.history(b"all", at, None, None)?;
    s.scan_prefix(b"", at, None)?;
    Ok(())
}

#[test]
fn flipped_bit_anywhere_in_a_run() {
    // A run is read in place: open checks its header, footer and index, every read
    // checks the blocks it touches. A flipped bit anywhere is an error naming the file,
    // at open or at the first read of the damaged block, never a wrong answer.
    let (tmp, snap) = snapshot_db();
    let dir = tmp.path().join("db");
    let len = fs::metadata(&snap).unwrap().len();
    let name = snap.file_name().unwrap().to_string_lossy().into_owned();
    // Every byte is checked: since format 3 the footer's formerly reserved word is the
    // key filter's length. (A run of format 2 leaves that word unchecked.)
    let unchecked = |_: u64| false;
    let original = fs::read(&snap).unwrap();
    for offset in 0..len {
        let bit = (offset % 8) as u8;
        flip_bit(&snap, offset, bit);
        let res = Storage::open(&dir, opts());
        let ctx = format!("bit {bit} of run byte {offset}");
        if unchecked(offset) {
            let s = res.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_commits(&s, 33, 33);
        } else {
            let err = match res {
                Err(e) => e,
                Ok(s) => read_everything(&s, 33)
                    .err()
                    .unwrap_or_else(|| panic!("{ctx}: opened and read back")),
            };
            let Error::Storage(msg) = &err else {
                panic!("{ctx}: {err:?}")
            };
            assert!(msg.contains(&name), "{ctx}: {msg}");
        }
        flip_bit(&snap, offset, bit); // undo
    }
    assert_eq!(fs::read(&snap).unwrap(), original);
}

#[test]
fn truncated_or_wrong_run_is_a_clear_error() {
    let (tmp, snap) = snapshot_db();
    let dir = tmp.path().join("db");
    let name = snap.file_name().unwrap().to_string_lossy().into_owned();
    let len = fs::metadata(&snap).unwrap().len();
    for cut in [0, 10, 40, len / 2, len - 1] {
        let (_t, copy) = copy_db(&dir);
        fs::OpenOptions::new()
            .write(true)
            .open(copy.join(&name))
            .unwrap()
            .set_len(cut)
            .unwrap();
        let msg = Storage::open(&copy, opts()).err().unwrap().to_string();
        assert!(
            msg.contains(&name) && msg.contains("run"),
            "cut {cut}: {msg}"
        );
    }
    // Not a run at all.
    let (_t, copy) = copy_db(&dir);
    fs::write(copy.join(&name), vec![b'x'; 200]).unwrap();
    let msg = Storage::open(&copy, opts()).err().unwrap().to_string();
    assert!(msg.contains("not a StrataDB run"), "{msg}");
    // A run the manifest lists is missing.
    let (_t, copy) = copy_db(&dir);
    fs::remove_file(copy.join(&name)).unwrap();
    let msg = Storage::open(&copy, opts()).err().unwrap().to_string();
    assert!(msg.contains("missing") && msg.contains(&name), "{msg}");
    // A damaged manifest.
    let (_t, copy) = copy_db(&dir);
    flip_bit(&copy.join("MANIFEST"), 20, 3);
    let msg = Storage::open(&copy, opts()).err().unwrap().to_string();
    assert!(msg.contains("MANIFEST") && msg.contains("corrupt"), "{msg}");
    // A leftover temporary snapshot from a crash is ignored and removed.
    let (_t, copy) = copy_db(&dir);
    let tmp_name = format!("{name}.tmp");
    fs::write(copy.join(&tmp_name), b"half a snapshot").unwrap();
    let s = Storage::open(&copy, opts()).unwrap();
    assert_commits(&s, 33, 33);
    assert!(!copy.join(&tmp_name).exists());
}
