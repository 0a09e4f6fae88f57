//! The write-ahead log: segmented files of framed commit records.
//!
//! # Why the frames look like this
//!
//! After a crash, recovery must decide, for the first byte range of the newest segment
//! that does not hold a valid record, whether it is an **unsynced tail** (the machine lost
//! power before those bytes reached the disk: drop them) or **damage to synced data** (a
//! record that was acknowledged as durable is unreadable: refuse to open and say where).
//! A power loss does not only cut a suffix: the disk may keep a later page of the unsynced
//! tail and lose an earlier one, or leave zeros where the file grew. And user values are
//! arbitrary bytes, so a value may contain something that looks like a record.
//!
//! Three fields in every frame make that decision sound and linear, following SQLite's
//! WAL salts and RocksDB's recyclable log records:
//!
//! - the segment's random **salt** (in the header and inside every frame's checksums):
//!   bytes of another segment — an old copy, or a log file stored as a user value — never
//!   validate here;
//! - the record's commit **version**: records of a segment are dense and increasing, so a
//!   frame is only accepted where the next version is expected, and stale bytes of older
//!   records (even with the right salt) never pass for new ones;
//! - the **durable mark**: the newest version known to be fsynced when the frame was
//!   written.
//!
//! Recovery walks frames by position (never searching inside a valid record). At the
//! first position `G` where the expected version `e` has no valid frame it scans the rest
//! of the segment once for valid frames of later versions. If one of them carries a
//! durable mark `>= e`, version `e` had been fsynced before that frame was written, so the
//! bytes at `G` are damaged synced data: open fails with an error naming the file and the
//! offset. Otherwise nothing from `G` on was ever known durable, so it is an unsynced tail:
//! it is truncated (after a warning) before anything new is appended. Sealed segments
//! (every segment but the newest) were fsynced before the next one was created, so any
//! invalid byte in them is damage. The argument, case by case, is in `docs/durability.md`.
//!
//! # Layout (integers little-endian)
//!
//! A segment is named `wal-<base>.log`, where `<base>` (20 decimal digits) is the version
//! of its first record. Header, 48 bytes:
//!
//! ```text
//! 0  magic "STRATWAL"                 8
//! 8  format u32 (= 2)                 4
//! 12 salt u32 (random per segment)    4
//! 16 base version u64                 8   must equal the file name's
//! 24 previous segment's length u64    8   its exact valid length when this one was
//!                                         created (0 for the first segment)
//! 32 reserved (zero)                  12
//! 44 crc32c(bytes 0..44) u32          4
//! ```
//!
//! Then frames, one per commit, each a 32-byte header and the payload (a
//! [`crate::record`]):
//!
//! ```text
//! 0  payload_len u32                  4   at most MAX_COMMIT_BYTES
//! 4  kind u8 (1 = commit)             1
//! 5  reserved (zero)                  3
//! 8  version u64                      8   the commit version (equal to the payload's)
//! 16 durable u64                      8   newest version fsynced when this was written
//! 24 header_crc u32                   4   crc32c(salt ++ bytes 0..24)
//! 28 frame_crc u32                    4   crc32c continued from header_crc over the payload
//! ```
//!
//! Format 1 segments (StrataDB v0.1) are still read, by [`legacy`], so that an existing
//! database opens; new records always go to a format-2 segment.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{Error, Result};
use tracing::warn;

use crate::vfs::{join, Vfs, VfsFile};

pub(crate) mod legacy;
mod reader;

pub(crate) use reader::holds_no_record;
pub use reader::{scan_segment, SegmentScan, SegmentSummary};

/// Magic bytes at the start of every log segment.
pub const WAL_MAGIC: &[u8; 8] = b"STRATWAL";
/// Format version of the log segments this build writes.
pub const WAL_FORMAT_VERSION: u32 = 2;
/// Size of a segment header.
pub const WAL_HEADER_LEN: usize = 48;
/// Size of a frame header.
pub const FRAME_HEADER_LEN: usize = 32;
/// Frame kind of a commit record.
pub const FRAME_COMMIT: u8 = 1;
/// Largest payload a frame may carry: the commit limit, the same on write and on read.
pub const MAX_FRAME_PAYLOAD: usize = strata_core::limits::MAX_COMMIT_BYTES;

pub(crate) fn segment_name(base: u64) -> String {
    format!("wal-{base:020}.log")
}

/// `true` for the temporary name a segment is created under (see
/// `WalWriter::create_with_capacity`); open deletes such files.
pub(crate) fn is_segment_temp(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .is_some_and(|n| parse_segment_name(n).is_some())
}

/// The base version encoded in a segment file name, if `name` is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The fields of a format-2 segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Random per segment; mixed into every frame checksum.
    pub salt: u32,
    /// Version of the first record.
    pub base: u64,
    /// Exact valid length of the previous segment when this one was created (0 if none).
    pub prev_len: u64,
}

impl SegmentHeader {
    /// Encodes the header with its checksum.
    pub fn encode(&self) -> [u8; WAL_HEADER_LEN] {
        let mut h = [0u8; WAL_HEADER_LEN];
        h[..8].copy_from_slice(WAL_MAGIC);
        h[8..12].copy_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.salt.to_le_bytes());
        h[16..24].copy_from_slice(&self.base.to_le_bytes());
        h[24..32].copy_from_slice(&self.prev_len.to_le_bytes());
        let crc = crc32c::crc32c(&h[..44]);
        h[44..48].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a format-2 header whose magic, format and checksum are right.
    pub fn decode(buf: &[u8]) -> Option<SegmentHeader> {
        let h = buf.get(..WAL_HEADER_LEN)?;
        if &h[..8] != WAL_MAGIC || le_u32(h, 8)? != WAL_FORMAT_VERSION {
            return None;
        }
        if crc32c::crc32c(&h[..44]) != le_u32(h, 44)? || h[32..44].iter().any(|&b| b != 0) {
            return None;
        }
        Some(SegmentHeader {
            salt: le_u32(h, 12)?,
            base: le_u64(h, 16)?,
            prev_len: le_u64(h, 24)?,
        })
    }
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn header_crc(salt: u32, hdr: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &hdr[..24])
}

/// Appends one framed commit record to `out`.
pub fn encode_frame(salt: u32, version: u64, durable: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(FRAME_COMMIT);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&durable.to_le_bytes());
    let hcrc = header_crc(salt, &out[start..start + 24]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    let fcrc = crc32c::crc32c_append(hcrc, payload);
    out.extend_from_slice(&fcrc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A frame header that passed its checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub len: usize,
    pub version: u64,
    pub durable: u64,
    pub header_crc: u32,
    pub frame_crc: u32,
}

/// Decodes the frame header at `pos` if it is plausible for a version in
/// `min_version..=max_version` and its salted checksum is right. The cheap field checks
/// come first, so that scanning arbitrary bytes costs a few loads per position.
pub(crate) fn frame_header_at(
    buf: &[u8],
    pos: usize,
    salt: u32,
    min_version: u64,
    max_version: u64,
) -> Option<FrameHeader> {
    let h = buf.get(pos..pos.checked_add(FRAME_HEADER_LEN)?)?;
    let version = le_u64(h, 8)?;
    if version < min_version || version > max_version {
        return None;
    }
    let durable = le_u64(h, 16)?;
    if h[4] != FRAME_COMMIT || h[5..8] != [0, 0, 0] || durable >= version {
        return None;
    }
    let len = le_u32(h, 0)? as usize;
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let hcrc = le_u32(h, 24)?;
    if header_crc(salt, h) != hcrc {
        return None;
    }
    Some(FrameHeader {
        len,
        version,
        durable,
        header_crc: hcrc,
        frame_crc: le_u32(h, 28)?,
    })
}

/// The payload of the frame whose header is `hdr` at `pos`, if complete and intact.
pub(crate) fn frame_payload<'a>(buf: &'a [u8], pos: usize, hdr: &FrameHeader) -> Option<&'a [u8]> {
    let start = pos + FRAME_HEADER_LEN;
    let payload = buf.get(start..start.checked_add(hdr.len)?)?;
    (crc32c::crc32c_append(hdr.header_crc, payload) == hdr.frame_crc).then_some(payload)
}

/// A fresh random salt: clock, address-space and process entropy through a mixer. Salts
/// need to differ between segments, not to be secret.
fn new_salt() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// Why an append failed, and whether the log is still consistent.
#[derive(Debug)]
pub(crate) struct AppendError {
    pub error: Error,
    /// `true` when the log could not be restored to its state before the append (a
    /// partial frame may remain): the storage must be poisoned.
    pub fatal: bool,
}

/// Appends frames to the newest segment and creates new segments. Used under the commit
/// lock; syncing is the caller's business (see `Storage`), so that every fsync of the log
/// goes through one gate.
pub(crate) struct WalWriter {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    header: SegmentHeader,
    len: u64,
    /// Most bytes the current file may hold (its mapping's length).
    capacity: u64,
    segment_size: u64,
    /// Bytes appended since the last snapshot (drives snapshot scheduling).
    pub bytes_since_snapshot: u64,
    scratch: Vec<u8>,
}

impl WalWriter {
    /// Creates a new, empty segment whose first record will have version `base`, with
    /// `segment_size` bytes preallocated; its header, length and directory entry are
    /// durable when this returns. On failure the partial file is removed (best effort)
    /// and nothing else changed.
    pub fn create(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        base: u64,
        prev_len: u64,
        segment_size: u64,
    ) -> Result<Self> {
        Self::create_with_capacity(vfs, dir, base, prev_len, segment_size, segment_size)
            .map_err(|e| e.error)
    }

    /// [`create`](Self::create) with a given capacity, telling whether a failure is
    /// fatal: when the partial file could not be removed durably (its directory entry may
    /// already be durable, for a failed directory fsync says nothing about what reached
    /// the disk), the current segment must not receive more records — a power loss could
    /// bring back a successor that says where it ended.
    fn create_with_capacity(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        base: u64,
        prev_len: u64,
        segment_size: u64,
        capacity: u64,
    ) -> std::result::Result<Self, AppendError> {
        let path = join(dir, &segment_name(base));
        let header = SegmentHeader {
            salt: new_salt(),
            base,
            prev_len,
        };
        let capacity = capacity.max(WAL_HEADER_LEN as u64);
        // Created under a temporary name and renamed only once its header is durable:
        // another thread's directory fsync (a flush renaming its run) may make the new
        // name durable at any moment, and a durable segment name must never point at a
        // header a power loss can still damage.
        let tmp = join(dir, &format!("{}.tmp", segment_name(base)));
        let created = (|| {
            let file = vfs.create_preallocated(&tmp, capacity)?;
            file.append(&header.encode())?;
            file.sync()?;
            vfs.rename(&tmp, &path)?;
            vfs.sync_dir(dir)?;
            Ok::<_, std::io::Error>(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = vfs.remove(&tmp);
                let cleaned = vfs.remove(&path).and_then(|()| vfs.sync_dir(dir));
                let fatal = match cleaned {
                    Ok(()) => false,
                    // Nothing was created.
                    Err(ce) if ce.kind() == std::io::ErrorKind::NotFound => false,
                    Err(ce) => {
                        warn!(file = %path.display(), error = %ce,
                            "cannot remove a segment whose creation failed");
                        true
                    }
                };
                return Err(AppendError {
                    error: io_err(&path, e),
                    fatal,
                });
            }
        };
        Ok(WalWriter {
            vfs,
            dir: dir.to_path_buf(),
            file,
            path,
            header,
            len: WAL_HEADER_LEN as u64,
            capacity,
            segment_size,
            bytes_since_snapshot: 0,
            scratch: Vec::new(),
        })
    }

    /// Continues appending to an existing format-2 segment whose valid length is `len`.
    pub fn reopen(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        header: SegmentHeader,
        len: u64,
        segment_size: u64,
    ) -> Result<Self> {
        let path = join(dir, &segment_name(header.base));
        let capacity = segment_size.max(len);
        let file = vfs
            .open_preallocated(&path, len, capacity)
            .map_err(|e| io_err(&path, e))?;
        Ok(WalWriter {
            vfs,
            dir: dir.to_path_buf(),
            file,
            path,
            header,
            len,
            capacity,
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
        self.header.base
    }

    /// `true` when a record of `payload_len` bytes does not fit the current segment:
    /// it already holds records and would grow past the segment size, or the record is
    /// larger than what the file can hold (a record larger than a segment gets one of
    /// its own).
    pub fn needs_roll(&self, payload_len: usize) -> bool {
        let framed = (FRAME_HEADER_LEN + payload_len) as u64;
        (self.len > WAL_HEADER_LEN as u64 && self.len + framed > self.segment_size)
            || self.len + framed > self.capacity
    }

    /// Switches to a new segment starting at `base`, with room for a first record of
    /// `payload_len` bytes. The caller has fsynced the current one. The new segment is
    /// created first — if that fails nothing changed and appends continue in the current
    /// segment — and only then is the current one cut to its exact length (a sealed
    /// segment holds nothing after its last record). A failure to cut it is fatal: a
    /// mapped file may not be written again once its length is in doubt. (A crash
    /// between the two steps leaves an empty newest segment, which recovery removes.)
    pub fn start_segment(
        &mut self,
        base: u64,
        payload_len: usize,
    ) -> std::result::Result<(), AppendError> {
        let capacity = self
            .segment_size
            .max((WAL_HEADER_LEN + FRAME_HEADER_LEN + payload_len) as u64);
        if base == self.header.base {
            // The segment holds no record yet. If the record does not fit its mapping,
            // map the same file again, larger: its content stays, nothing is allocated
            // here (a full disk fails the append that follows, which is rolled back), so
            // a failure changes nothing.
            if self.len + (FRAME_HEADER_LEN + payload_len) as u64 <= self.capacity {
                return Ok(());
            }
            let file = self
                .vfs
                .open_preallocated(&self.path, self.len, capacity)
                .map_err(|e| AppendError {
                    error: io_err(&self.path, e),
                    fatal: false,
                })?;
            self.file = file;
            self.capacity = capacity;
            return Ok(());
        }
        let next = WalWriter::create_with_capacity(
            self.vfs.clone(),
            &self.dir,
            base,
            self.len,
            self.segment_size,
            capacity,
        )?;
        self.seal()
            .map_err(|error| AppendError { error, fatal: true })?;
        self.file = next.file;
        self.path = next.path;
        self.header = next.header;
        self.len = next.len;
        self.capacity = next.capacity;
        Ok(())
    }

    /// Cuts the current segment's file to the bytes written (its preallocated rest is
    /// freed) and makes that durable. Nothing is written to this segment afterwards
    /// unless it is reopened.
    pub fn seal(&mut self) -> Result<()> {
        self.vfs
            .truncate(&self.path, self.len)
            .map_err(|e| io_err(&self.path, e))
    }

    /// Appends one framed record. If the write fails, the file is rolled back to its
    /// length before the append (see [`VfsFile::rollback`]), so the log stays a clean
    /// sequence of frames and later appends may succeed (a full disk that gets space
    /// again); only if that rollback fails too is the error fatal.
    pub fn append(
        &mut self,
        version: u64,
        durable: u64,
        payload: &[u8],
    ) -> std::result::Result<(), AppendError> {
        self.scratch.clear();
        encode_frame(
            self.header.salt,
            version,
            durable,
            payload,
            &mut self.scratch,
        );
        if let Err(e) = self.file.append(&self.scratch) {
            let error = io_err(&self.path, e);
            let fatal = match self.file.rollback(self.len) {
                Ok(()) => false,
                Err(te) => {
                    warn!(file = %self.path.display(), error = %te,
                        "cannot truncate a failed append away");
                    true
                }
            };
            return Err(AppendError { error, fatal });
        }
        let framed = self.scratch.len() as u64;
        self.len += framed;
        self.bytes_since_snapshot += framed;
        Ok(())
    }
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("I/O error on {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = SegmentHeader {
            salt: 0xdead_beef,
            base: 42,
            prev_len: 4096,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        for i in 0..WAL_HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x04;
            assert_eq!(SegmentHeader::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(SegmentHeader::decode(&[0; WAL_HEADER_LEN]), None);
    }

    #[test]
    fn names() {
        assert_eq!(parse_segment_name(&segment_name(7)), Some(7));
        assert_eq!(parse_segment_name("wal-7.log"), None);
        assert_eq!(parse_segment_name("wal-0000000000000000000x.log"), None);
    }

    #[test]
    fn frame_checks_salt_version_and_payload() {
        let mut buf = Vec::new();
        encode_frame(7, 10, 9, b"payload", &mut buf);
        let h = frame_header_at(&buf, 0, 7, 10, 10).unwrap();
        assert_eq!(frame_payload(&buf, 0, &h), Some(&b"payload"[..]));
        assert!(frame_header_at(&buf, 0, 8, 10, 10).is_none(), "other salt");
        assert!(
            frame_header_at(&buf, 0, 7, 11, 20).is_none(),
            "stale version"
        );
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        let h = frame_header_at(&bad, 0, 7, 10, 10).unwrap();
        assert!(frame_payload(&bad, 0, &h).is_none());
        assert!(frame_payload(&buf[..buf.len() - 1], 0, &h).is_none());
    }
}
