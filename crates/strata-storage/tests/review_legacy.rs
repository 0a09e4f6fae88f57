//! Review of the format-1 (v0.1) upgrade path: recovery still decides "torn tail or
//! corruption" for a v0.1 segment with v0.1's forward search for any later valid frame
//! (`src/wal/legacy.rs`), which issue 11 item 1 measured as superlinear and showed to be
//! fooled by user bytes. A v0.1 database that crashed mid-append is exactly the database
//! being upgraded, so both failures land on the upgrade path.
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata_storage::wal::{scan_segment, SegmentScan};

/// v0.1 segment header: magic, format 1, reserved.
fn v1_header() -> Vec<u8> {
    let mut h = b"STRATWAL".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

fn v1_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

fn payload(version: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![1u8];
    p.extend_from_slice(&version.to_le_bytes());
    p.extend_from_slice(&version.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p.push(1);
    p.extend_from_slice(&(key.len() as u32).to_le_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(&(value.len() as u32).to_le_bytes());
    p.extend_from_slice(value);
    p
}

fn scan(buf: &[u8]) -> strata_core::Result<(u64, Vec<u64>)> {
    let mut seen = Vec::new();
    let s = scan_segment(Path::new("wal-v1.log"), buf, 1, true, &mut |r| {
        seen.push(r.version);
        Ok(())
    })?;
    match s {
        SegmentScan::Segment(s) => Ok((s.valid_len, seen)),
        SegmentScan::TornCreation => Ok((0, seen)),
    }
}

/// A v0.1 database whose last record stores a copy of its own log (a backup taken by an
/// agent, say) and was torn by the crash: the copy's frames validate in v0.1's forward
/// search, so the torn tail is reported as corruption and the upgraded database does not
/// open. The frames in the copy are of versions already read (1), which a record after a
/// damaged one can never be.
#[test]
fn review_v1_torn_record_holding_a_copy_of_the_log_is_a_torn_tail() {
    let mut buf = v1_header();
    v1_frame(&payload(1, b"a", b"first"), &mut buf);
    let good = buf.len();
    let copy = buf.clone();
    let mut value = vec![0xAB; 100];
    value.extend_from_slice(&copy);
    value.extend_from_slice(&[0xCD; 100]);
    v1_frame(&payload(2, b"backup", &value), &mut buf);
    // The crash tore record 2 after the embedded copy.
    let torn = &buf[..buf.len() - 50];
    let r = scan(torn);
    assert!(
        r.is_ok(),
        "a torn v0.1 record holding a log copy makes the database refuse to open: {:?}",
        r.err()
    );
    let (valid_len, seen) = r.unwrap();
    assert_eq!(seen, vec![1]);
    assert_eq!(valid_len as usize, good);
}

/// A v0.1 database torn in a 4 MiB binary value whose bytes read as plausible frame
/// lengths (here u32 words of 256 KiB, as in quantized embeddings or offsets tables): the
/// forward search computes a checksum over hundreds of KiB at every position, so open
/// takes far longer than reading 4 MiB (minutes; it is quadratic in the tail size).
#[test]
fn review_v1_torn_tail_is_read_in_linear_time() {
    let mut buf = v1_header();
    v1_frame(&payload(1, b"a", b"first"), &mut buf);
    let words: Vec<u8> = std::iter::repeat_n(0x0004_0000u32.to_le_bytes(), 1 << 20)
        .flatten()
        .collect();
    v1_frame(&payload(2, b"big", &words), &mut buf);
    buf.truncate(buf.len() - 1);
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(scan(&buf).map(|(_, seen)| seen));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => assert_eq!(r.unwrap(), vec![1]),
        Err(_) => panic!(
            "reading a v0.1 segment with a torn 4 MiB record took more than {:?}",
            started.elapsed()
        ),
    }
}
