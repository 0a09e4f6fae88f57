//! The write-ahead log: segmented files of framed commit records.
//!
//! A segment is named `wal-<base>.log`, where `<base>` (20 decimal digits) is the first
//! commit version it may contain. It starts with a 16-byte header:
//!
//! ```text
//! magic "STRATWAL" (8 B) | format version u32 LE (= 1) | reserved u32 (0)
//! ```
//!
//! followed by frames, one per committed transaction:
//!
//! ```text
//! payload_len u32 LE | crc32c(payload_len bytes ++ payload) u32 LE | payload
//! ```
//!
//! The payload is a [`crate::record`]. The checksum covers the length, so a torn or
//! garbled length is detected like a garbled payload.
//!
//! **Recovery rule.** Frames are read in order. At the first frame that is incomplete or
//! fails its checksum, the reader looks for any valid frame after it: if there is one,
//! the log is corrupt and open fails naming the file and offset (never skipped, never
//! wiped); if there is none, it is a torn tail left by a crash, which is truncated away
//! (with a warning) before anything new is appended. Only the last segment may have a
//! torn tail.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{Error, Result};

use crate::record::{decode_payload, CommitRecord};
use crate::vfs::{join, Vfs, VfsFile};

/// Magic bytes at the start of every log segment.
pub const WAL_MAGIC: &[u8; 8] = b"STRATWAL";
/// Format version of log segments.
pub const WAL_FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const WAL_HEADER_LEN: usize = 16;
/// Size of a frame's length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame may carry (guards recovery against a garbled length).
pub const MAX_FRAME_PAYLOAD: usize = 1 << 30;

pub(crate) fn segment_name(base: u64) -> String {
    format!("wal-{base:020}.log")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn header() -> [u8; WAL_HEADER_LEN] {
    let mut h = [0u8; WAL_HEADER_LEN];
    h[..8].copy_from_slice(WAL_MAGIC);
    h[8..12].copy_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    h
}

/// Frames a payload.
pub(crate) fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Tries to read one frame at `pos`; returns the payload range on success.
fn frame_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let hdr = buf.get(pos..pos + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let start = pos + FRAME_HEADER_LEN;
    let payload = buf.get(start..start + len)?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&hdr[..4]), payload);
    (actual == crc).then_some((start, start + len))
}

/// What reading one segment produced.
#[derive(Debug)]
pub(crate) struct SegmentContents {
    pub records: Vec<CommitRecord>,
    /// Length of the valid prefix of the file.
    pub valid_len: usize,
    /// `true` when bytes after `valid_len` must be truncated (a torn tail).
    pub torn: bool,
}

/// Parses a segment file's bytes. `is_last` allows a torn tail.
pub(crate) fn read_segment(path: &Path, buf: &[u8], is_last: bool) -> Result<SegmentContents> {
    let name = path.display();
    if buf.len() < WAL_HEADER_LEN {
        // A crash while creating the segment: only acceptable for the last one, and only
        // if what is there is a prefix of a valid header.
        if is_last && header().starts_with(buf) {
            return Ok(SegmentContents {
                records: Vec::new(),
                valid_len: 0,
                torn: true,
            });
        }
        return Err(Error::Storage(format!(
            "log segment {name} has a truncated header"
        )));
    }
    if &buf[..8] != WAL_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB log segment (bad magic)"
        )));
    }
    let fmt = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if fmt != WAL_FORMAT_VERSION {
        return Err(Error::Storage(format!(
            "log segment {name} has format version {fmt}; this build reads version {WAL_FORMAT_VERSION}"
        )));
    }
    let mut pos = WAL_HEADER_LEN;
    let mut records = Vec::new();
    while pos < buf.len() {
        match frame_at(buf, pos) {
            Some((start, end)) => {
                let rec = decode_payload(&buf[start..end]).map_err(|e| {
                    Error::Storage(format!(
                        "log segment {name}: bad record at offset {pos}: {e}"
                    ))
                })?;
                records.push(rec);
                pos = end;
            }
            None => {
                let later_valid = (pos + 1..buf.len()).any(|p| frame_at(buf, p).is_some());
                if later_valid || !is_last {
                    return Err(Error::Storage(format!(
                        "log segment {name} is corrupt at offset {pos}: a record fails its \
                         checksum{}",
                        if later_valid {
                            " and valid records follow it"
                        } else {
                            ""
                        }
                    )));
                }
                return Ok(SegmentContents {
                    records,
                    valid_len: pos,
                    torn: true,
                });
            }
        }
    }
    Ok(SegmentContents {
        records,
        valid_len: pos,
        torn: false,
    })
}

/// Appends frames to the current segment and rolls to new ones.
pub(crate) struct WalWriter {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    file: Arc<dyn VfsFile>,
    base: u64,
    len: u64,
    segment_size: u64,
    /// Bytes appended since the last snapshot (drives snapshot scheduling).
    pub bytes_since_snapshot: u64,
    scratch: Vec<u8>,
}

impl WalWriter {
    /// Creates a new, empty segment whose first record will have version `base`.
    pub fn create(vfs: Arc<dyn Vfs>, dir: &Path, base: u64, segment_size: u64) -> Result<Self> {
        let path = join(dir, &segment_name(base));
        let file = vfs.open_append(&path).map_err(|e| io_err(&path, e))?;
        file.append(&header()).map_err(|e| io_err(&path, e))?;
        file.sync().map_err(|e| io_err(&path, e))?;
        vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
        Ok(WalWriter {
            vfs,
            dir: dir.to_path_buf(),
            file,
            base,
            len: WAL_HEADER_LEN as u64,
            segment_size,
            bytes_since_snapshot: 0,
            scratch: Vec::new(),
        })
    }

    /// Continues appending to an existing segment whose valid length is `len`.
    pub fn reopen(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        base: u64,
        len: u64,
        segment_size: u64,
    ) -> Result<Self> {
        let path = join(dir, &segment_name(base));
        let file = vfs.open_append(&path).map_err(|e| io_err(&path, e))?;
        Ok(WalWriter {
            vfs,
            dir: dir.to_path_buf(),
            file,
            base,
            len,
            segment_size,
            bytes_since_snapshot: 0,
            scratch: Vec::new(),
        })
    }

    /// The file records are currently appended to (for syncing outside the commit lock).
    pub fn current_file(&self) -> Arc<dyn VfsFile> {
        self.file.clone()
    }

    /// Base version of the current segment.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Appends one framed record with the given version. Rolls to a new segment first
    /// when the current one is full; `sync_on_roll` makes the old one durable first.
    pub fn append(&mut self, version: u64, payload: &[u8], sync_on_roll: bool) -> Result<()> {
        let framed = (FRAME_HEADER_LEN + payload.len()) as u64;
        if self.len > WAL_HEADER_LEN as u64 && self.len + framed > self.segment_size {
            self.roll(version, sync_on_roll)?;
        }
        self.scratch.clear();
        frame(payload, &mut self.scratch);
        let path = join(&self.dir, &segment_name(self.base));
        self.file
            .append(&self.scratch)
            .map_err(|e| io_err(&path, e))?;
        self.len += framed;
        self.bytes_since_snapshot += framed;
        Ok(())
    }

    /// Starts a new segment at `base`. With `sync_old`, the old segment is synced first,
    /// so that everything before `base` is durable.
    pub fn roll(&mut self, base: u64, sync_old: bool) -> Result<()> {
        if sync_old {
            let old = join(&self.dir, &segment_name(self.base));
            self.file.sync().map_err(|e| io_err(&old, e))?;
        }
        if base == self.base {
            return Ok(());
        }
        let next = WalWriter::create(self.vfs.clone(), &self.dir, base, self.segment_size)?;
        self.file = next.file;
        self.base = base;
        self.len = next.len;
        Ok(())
    }
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("I/O error on {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Write;
    use crate::record::{encode_payload, patch_header};
    use strata_core::Timestamp;

    fn segment_with(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = header().to_vec();
        let mut ends = Vec::new();
        for v in 1..=n {
            let mut p = encode_payload(&[Write {
                key: format!("key{v}").into_bytes().into(),
                value: Some(Arc::from(&b"value"[..])),
            }]);
            patch_header(&mut p, v, Timestamp(v));
            frame(&p, &mut buf);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn torn_tail_at_every_offset_recovers_the_prefix() {
        let (buf, ends) = segment_with(5);
        let last_start = ends[3];
        for cut in last_start..buf.len() {
            let c = read_segment(Path::new("x"), &buf[..cut], true).unwrap();
            assert_eq!(c.records.len(), 4, "cut at {cut}");
            assert_eq!(c.valid_len, last_start);
            assert_eq!(c.torn, cut != last_start);
        }
        let full = read_segment(Path::new("x"), &buf, true).unwrap();
        assert_eq!(full.records.len(), 5);
        assert!(!full.torn);
    }

    #[test]
    fn flipped_bit_in_the_middle_is_corruption() {
        let (mut buf, ends) = segment_with(5);
        buf[ends[1] + 12] ^= 0x10;
        let err = read_segment(Path::new("seg"), &buf, true).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("seg") && msg.contains(&format!("offset {}", ends[1])),
            "{msg}"
        );
    }

    #[test]
    fn torn_tail_in_a_sealed_segment_is_corruption() {
        let (buf, _) = segment_with(3);
        assert!(read_segment(Path::new("x"), &buf[..buf.len() - 1], false).is_err());
    }

    #[test]
    fn bad_header() {
        let (mut buf, _) = segment_with(1);
        buf[0] = b'X';
        assert!(read_segment(Path::new("x"), &buf, true).is_err());
        let (mut buf, _) = segment_with(1);
        buf[8] = 9;
        assert!(read_segment(Path::new("x"), &buf, true)
            .unwrap_err()
            .to_string()
            .contains("format version 9"));
        assert!(
            read_segment(Path::new("x"), &header()[..5], true)
                .unwrap()
                .torn
        );
    }
}
