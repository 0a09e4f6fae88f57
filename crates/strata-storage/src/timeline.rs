//! The timeline: when each version was committed, for reads "as of a time".
//!
//! # Why it exists
//!
//! Every stored version carries its commit timestamp, but nothing maps a *time* back
//! to the versions: to read the database as it stood at 10:42 one needs the newest
//! version committed at or before 10:42, and to judge a time to live in a view of
//! version `v` one needs the time `v` was committed. Commit timestamps never go back
//! (a commit takes `max(now, previous)` under the commit lock), so both questions are
//! a binary search in the sequence of `(version, timestamp)` pairs of every commit.
//! The timeline keeps that sequence, exactly, in a few bytes per commit.
//!
//! # Design
//!
//! Each commit notes its pair under a short lock of its own (never while a file is
//! written). Pairs are packed into **chunks** of up to [`CHUNK_ENTRIES`] commits, delta
//! and varint encoded: consecutive commits cost 2–5 bytes each. A storage in memory
//! keeps its chunks in memory. A storage on disk appends them to the file `TIMELINE`
//! when it flushes its memtable, and only up to the flushed version — the versions the
//! log no longer needs — so the file never names a version that a crash could take
//! back. The file is fsynced **before** the manifest that retires those log records
//! is written, and the manifest records the file's valid length
//! ([`crate::Manifest::timeline_len`]): bytes past it belong to a flush whose manifest
//! never landed, are ignored, and are cut off by the next flush; the versions they
//! held are still in the log and come back from its replay.
//!
//! The file is read only when a time lookup first needs it (opening stays O(1)), whole
//! and kept in memory from then on (its size is the number of commits × a few bytes).
//!
//! A database created before the timeline existed has no pairs for its older commits:
//! the timeline records the version it **starts at**, and a lookup earlier than its
//! first pair says it does not know rather than guess.
//!
//! Layout (`docs/storage-format.md`):
//!
//! ```text
//! header (32 B): magic "STRATATL" | format u32 (= 1) | crc32c(bytes 0..12, 16..32) u32 |
//!                starts_at u64 | reserved u64
//! chunk:         magic "TLCK" | count u32 | body_len u32 | crc32c u32 |
//!                first_version u64 | first_ts_us u64 | last_version u64 | last_ts_us u64 |
//!                body: (varint(version - previous) varint(ts - previous)) * (count - 1)
//! ```
//!
//! A chunk's checksum covers its header (without the checksum) and its body.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use strata_core::{Error, Result, Timestamp};
use tracing::{debug, warn};

use crate::vfs::{join, Vfs};
use crate::wal::{io_err, le_u32, le_u64};

/// The timeline's file name.
pub const TIMELINE_NAME: &str = "TIMELINE";
/// Magic bytes at the start of the timeline file.
pub const TIMELINE_MAGIC: &[u8; 8] = b"STRATATL";
/// Format version of the timeline files this build writes and reads.
pub const TIMELINE_FORMAT_VERSION: u32 = 1;
/// Magic bytes at the start of every chunk.
const CHUNK_MAGIC: &[u8; 4] = b"TLCK";
/// Most commits in one chunk.
pub const CHUNK_ENTRIES: usize = 4096;
const FILE_HEADER_LEN: usize = 32;
const CHUNK_HEADER_LEN: usize = 48;

/// One commit: its version and its timestamp (µs since the Unix epoch).
type Pair = (u64, u64);

/// A sealed chunk: its bounds and its encoded bytes (header included).
#[derive(Clone)]
struct Chunk {
    first: Pair,
    last: Pair,
    bytes: Arc<[u8]>,
}

impl Chunk {
    fn encode(pairs: &[Pair]) -> Chunk {
        debug_assert!(!pairs.is_empty() && pairs.len() <= CHUNK_ENTRIES);
        let first = pairs[0];
        let last = pairs[pairs.len() - 1];
        let mut body = Vec::with_capacity(pairs.len() * 3);
        for w in pairs.windows(2) {
            put_varint(&mut body, w[1].0 - w[0].0);
            put_varint(&mut body, w[1].1 - w[0].1);
        }
        let mut b = Vec::with_capacity(CHUNK_HEADER_LEN + body.len());
        b.extend_from_slice(CHUNK_MAGIC);
        b.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        b.extend_from_slice(&(body.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for v in [first.0, first.1, last.0, last.1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&body);
        let crc = chunk_crc(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        Chunk {
            first,
            last,
            bytes: b.into(),
        }
    }

    /// Checks the chunk that starts `b` and returns it with its length, or why not.
    fn decode_at(b: &[u8]) -> std::result::Result<(Chunk, usize), String> {
        if b.len() < CHUNK_HEADER_LEN {
            return Err(format!("{} bytes, shorter than a chunk header", b.len()));
        }
        if &b[..4] != CHUNK_MAGIC {
            return Err("no chunk magic".into());
        }
        let u32_at = |at| le_u32(b, at).unwrap_or(0);
        let u64_at = |at| le_u64(b, at).unwrap_or(0);
        let count = u32_at(4) as usize;
        let len = CHUNK_HEADER_LEN + u32_at(8) as usize;
        if count == 0 || count > CHUNK_ENTRIES || b.len() < len {
            return Err(format!(
                "a chunk of {count} commits and {len} bytes does not fit"
            ));
        }
        if u32_at(12) != chunk_crc(&b[..len]) {
            return Err("checksum does not match".into());
        }
        let chunk = Chunk {
            first: (u64_at(16), u64_at(24)),
            last: (u64_at(32), u64_at(40)),
            bytes: Arc::from(&b[..len]),
        };
        let pairs = chunk.pairs().ok_or("its body does not decode")?;
        if pairs.len() != count || pairs.last() != Some(&chunk.last) {
            return Err("its body does not match its header".into());
        }
        Ok((chunk, len))
    }

    /// The chunk's pairs (`None` if its body is malformed).
    fn pairs(&self) -> Option<Vec<Pair>> {
        let b = &self.bytes[CHUNK_HEADER_LEN..];
        let count = le_u32(&self.bytes, 4)? as usize;
        let mut out = Vec::with_capacity(count);
        out.push(self.first);
        let mut at = 0;
        let mut cur = self.first;
        while at < b.len() {
            let dv = get_varint(b, &mut at)?;
            let dt = get_varint(b, &mut at)?;
            if dv == 0 {
                return None;
            }
            cur = (cur.0.checked_add(dv)?, cur.1.checked_add(dt)?);
            out.push(cur);
        }
        Some(out)
    }
}

fn chunk_crc(b: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&b[..12]);
    crc32c::crc32c_append(crc, &b[16..])
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn file_header(starts_at: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(FILE_HEADER_LEN);
    b.extend_from_slice(TIMELINE_MAGIC);
    b.extend_from_slice(&TIMELINE_FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&starts_at.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..12]), &b[16..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// What a timeline file holds (see [`parse`]).
pub(crate) struct FileContents {
    pub starts_at: u64,
    chunks: Vec<Chunk>,
    /// Commits in the file.
    pub commits: u64,
}

impl FileContents {
    /// The first and the last commit's versions.
    pub(crate) fn versions(&self) -> Option<(u64, u64)> {
        Some((self.chunks.first()?.first.0, self.chunks.last()?.last.0))
    }
}

/// Reads and checks the first `len` bytes of the timeline file at `path` (see
/// [`parse`]).
pub(crate) fn read_file(vfs: &Arc<dyn Vfs>, path: &Path, len: u64) -> Result<FileContents> {
    let all = vfs.read(path).map_err(|e| io_err(path, e))?;
    let Some(b) = usize::try_from(len).ok().and_then(|l| all.get(..l)) else {
        return Err(Error::Storage(format!(
            "timeline {} is {} bytes long, shorter than the {len} bytes the manifest \
             lists",
            path.display(),
            all.len()
        )));
    };
    parse(path, b)
}

/// Checks the valid bytes `b` of the timeline file at `path`: the header and every
/// chunk, in order, with versions and times that never go back. Errors name the file
/// and the offset.
pub(crate) fn parse(path: &Path, b: &[u8]) -> Result<FileContents> {
    let name = path.display();
    if b.len() < FILE_HEADER_LEN || &b[..8] != TIMELINE_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB timeline (bad magic at offset 0)"
        )));
    }
    let format = le_u32(b, 8).unwrap_or(0);
    if format != TIMELINE_FORMAT_VERSION {
        return Err(Error::Storage(format!(
            "timeline {name} has format version {format}; this build reads version \
             {TIMELINE_FORMAT_VERSION}"
        )));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..12]), &b[16..FILE_HEADER_LEN]);
    if le_u32(b, 12) != Some(crc) {
        return Err(Error::Storage(format!(
            "timeline {name} is corrupt: header checksum at offset 12 does not match"
        )));
    }
    let starts_at = le_u64(b, 16).unwrap_or(0);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut commits = 0;
    let mut at = FILE_HEADER_LEN;
    while at < b.len() {
        let (chunk, n) = Chunk::decode_at(&b[at..]).map_err(|why| {
            Error::Storage(format!(
                "timeline {name} is corrupt: chunk at offset {at}: {why}"
            ))
        })?;
        if let Some(prev) = chunks.last() {
            if chunk.first.0 <= prev.last.0 || chunk.first.1 < prev.last.1 {
                return Err(Error::Storage(format!(
                    "timeline {name} is corrupt: chunk at offset {at} goes back in version \
                     or time"
                )));
            }
        }
        commits += le_u32(&chunk.bytes, 4).unwrap_or(0) as u64;
        chunks.push(chunk);
        at += n;
    }
    Ok(FileContents {
        starts_at,
        chunks,
        commits,
    })
}

/// The sealed chunks of a storage on disk, once read.
enum Persisted {
    /// Not read yet: `len` valid bytes (from the manifest), starting at `starts_at` if
    /// the file is still to be created.
    Unread,
    Read {
        starts_at: u64,
        chunks: Vec<Chunk>,
    },
}

struct State {
    /// Where the file is (`None` for a storage in memory).
    file: Option<PathBuf>,
    /// Valid bytes of the file (0: no file yet).
    file_len: u64,
    persisted: Persisted,
    /// The version the timeline starts at, for a new file (see the module docs).
    starts_at_if_new: u64,
    /// Sealed chunks not in the file (all of them for a storage in memory).
    sealed: Vec<Chunk>,
    /// The newest commits, not yet in a chunk.
    pending: Vec<Pair>,
}

/// The timeline of one storage (see the module docs).
pub(crate) struct Timeline {
    state: Mutex<State>,
}

/// What [`Timeline::version_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePoint {
    /// The newest version committed at or before the time (0: before every commit).
    Version(u64),
    /// The time is before the first commit the timeline knows, and the database has
    /// older commits (it was created before the timeline existed).
    Unknown {
        /// The first version the timeline knows.
        starts_at: u64,
    },
}

impl Timeline {
    /// A timeline for a storage in memory: it starts with the first commit.
    pub(crate) fn in_memory() -> Timeline {
        Timeline::new(None, 0, 1)
    }

    /// A timeline kept in `dir`, whose first `file_len` bytes are valid (from the
    /// manifest); `next_version` is the first version not yet flushed, where a new
    /// file starts.
    pub(crate) fn on_disk(dir: &Path, file_len: u64, next_version: u64) -> Timeline {
        Timeline::new(Some(join(dir, TIMELINE_NAME)), file_len, next_version)
    }

    fn new(file: Option<PathBuf>, file_len: u64, starts_at_if_new: u64) -> Timeline {
        Timeline {
            state: Mutex::new(State {
                file,
                file_len,
                persisted: Persisted::Unread,
                starts_at_if_new,
                sealed: Vec::new(),
                pending: Vec::new(),
            }),
        }
    }

    /// Notes a commit. Versions must increase and times must not go back (both hold
    /// for commits, which take both under the commit lock).
    pub(crate) fn note(&self, version: u64, ts: Timestamp) {
        let mut s = self.state.lock();
        // Chunks store deltas: a pair out of order would make them undecodable. The
        // callers never note one; if a bug did, the pair is dropped (or its time raised
        // to the previous one) rather than the timeline damaged.
        let mut ts = ts.0;
        if let Some(&(last_v, last_ts)) = s.pending.last().or(s.sealed.last().map(|c| &c.last)) {
            if version <= last_v {
                warn!(
                    version,
                    last_v, "a commit time out of version order, not noted"
                );
                return;
            }
            ts = ts.max(last_ts);
        }
        s.pending.push((version, ts));
        if s.pending.len() == CHUNK_ENTRIES {
            let chunk = Chunk::encode(&s.pending);
            s.pending.clear();
            s.sealed.push(chunk);
        }
    }

    /// Replaces what was noted since the file's valid length (a read-only storage
    /// refreshing from its writer).
    pub(crate) fn reset(&self, file_len: u64, next_version: u64, pairs: &[(u64, Timestamp)]) {
        let fresh = Timeline::new(
            self.state.lock().file.clone(),
            file_len,
            next_version.max(1),
        );
        for (v, t) in pairs {
            fresh.note(*v, *t);
        }
        *self.state.lock() = fresh.state.into_inner();
    }

    /// Makes every commit up to `through` durable in the file, which must hold no
    /// commit newer than the log has made durable. Returns the file's new valid length,
    /// for the manifest. Callers serialize calls (the flush lock).
    pub(crate) fn persist_through(&self, vfs: &Arc<dyn Vfs>, through: u64) -> Result<u64> {
        let (path, mut file_len, mut starts_at_if_new, pairs) = {
            let s = self.state.lock();
            let Some(path) = s.file.clone() else {
                return Ok(0);
            };
            let mut pairs = Vec::new();
            for c in &s.sealed {
                if c.first.0 > through {
                    break;
                }
                pairs.extend(c.pairs().unwrap_or_default());
            }
            pairs.extend(s.pending.iter().copied());
            pairs.retain(|p| p.0 <= through);
            (path, s.file_len, s.starts_at_if_new, pairs)
        };
        if pairs.is_empty() {
            return Ok(file_len);
        }
        // A timeline file someone deleted must not stop every flush: a new one starts
        // here, and times before it are unknown (lookups say so).
        let restarted = file_len > 0 && !vfs.exists(&path);
        if restarted {
            warn!(
                file = %path.display(),
                starts_at = pairs[0].0,
                "the timeline file is missing: a new one starts, earlier commit times are lost"
            );
            file_len = 0;
            starts_at_if_new = pairs[0].0;
        }
        let chunks: Vec<Chunk> = pairs.chunks(CHUNK_ENTRIES).map(Chunk::encode).collect();
        let mut bytes = Vec::new();
        if file_len == 0 {
            bytes.extend_from_slice(&file_header(starts_at_if_new));
        }
        for c in &chunks {
            bytes.extend_from_slice(&c.bytes);
        }
        let file = if file_len == 0 {
            let f = vfs.create_empty(&path).map_err(|e| io_err(&path, e))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
            f
        } else {
            // Bytes past the valid length belong to a flush whose manifest never
            // landed: their commits came back from the log and are in `pairs`.
            vfs.truncate(&path, file_len)
                .map_err(|e| io_err(&path, e))?;
            vfs.open_append(&path).map_err(|e| io_err(&path, e))?
        };
        file.append(&bytes).map_err(|e| io_err(&path, e))?;
        file.sync().map_err(|e| io_err(&path, e))?;
        let new_len = file_len + bytes.len() as u64;
        debug!(
            commits = pairs.len(),
            bytes = bytes.len(),
            "timeline appended"
        );

        let mut s = self.state.lock();
        s.file_len = new_len;
        if file_len == 0 {
            if restarted {
                s.starts_at_if_new = starts_at_if_new;
            }
            let starts_at = s.starts_at_if_new;
            s.persisted = Persisted::Read {
                starts_at,
                chunks: Vec::new(),
            };
        }
        if let Persisted::Read { chunks: read, .. } = &mut s.persisted {
            read.extend(chunks);
        }
        // Drop what the file now holds from memory (later commits stay).
        let sealed = std::mem::take(&mut s.sealed);
        let mut rest: Vec<Pair> = Vec::new();
        let mut kept = Vec::new();
        for c in sealed {
            if c.last.0 <= through {
                continue;
            }
            if c.first.0 > through {
                kept.push(c);
            } else {
                rest.extend(
                    c.pairs()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.0 > through),
                );
            }
        }
        if !rest.is_empty() {
            // Only the first kept chunk can straddle `through`: re-seal its newer part.
            kept.insert(0, Chunk::encode(&rest));
        }
        s.sealed = kept;
        s.pending.retain(|p| p.0 > through);
        Ok(new_len)
    }

    /// Reads the file, if that is still to do. A damaged file is an error for the
    /// lookup that needed it, not for the storage.
    fn load(&self, vfs: Option<&Arc<dyn Vfs>>) -> Result<()> {
        // A flush may append (and drop the flushed commits from memory) while the file
        // is read: then the read is stale and is made again, since returning with the
        // file still unread would answer as if it held no commit at all.
        loop {
            if self.try_load(vfs)? {
                return Ok(());
            }
        }
    }

    /// One attempt of [`load`](Self::load): `false` if a flush changed the file's valid
    /// length meanwhile.
    fn try_load(&self, vfs: Option<&Arc<dyn Vfs>>) -> Result<bool> {
        let (path, len) = {
            let s = self.state.lock();
            match (&s.persisted, &s.file) {
                (Persisted::Read { .. }, _) | (_, None) => return Ok(true),
                (Persisted::Unread, Some(path)) => (path.clone(), s.file_len),
            }
        };
        let contents = if len == 0 {
            None
        } else {
            let Some(vfs) = vfs else {
                return Err(Error::Internal(
                    "a timeline on disk without its files".into(),
                ));
            };
            Some(
                read_file(vfs, &path, len)
                    .inspect_err(|e| warn!(error = %e, "timeline unreadable"))?,
            )
        };
        let mut s = self.state.lock();
        if !matches!(s.persisted, Persisted::Unread) {
            return Ok(true);
        }
        if s.file_len != len {
            return Ok(false);
        }
        s.persisted = match contents {
            Some(c) => Persisted::Read {
                starts_at: c.starts_at,
                chunks: c.chunks,
            },
            None => Persisted::Read {
                starts_at: s.starts_at_if_new,
                chunks: Vec::new(),
            },
        };
        Ok(true)
    }

    /// The commit time of `version`: the timestamp of the newest commit at or before it
    /// (exact when `version` is a commit's). `None` if the timeline does not reach back
    /// to it.
    pub(crate) fn commit_time(
        &self,
        vfs: Option<&Arc<dyn Vfs>>,
        version: u64,
    ) -> Result<Option<Timestamp>> {
        self.load(vfs)?;
        let s = self.state.lock();
        let found = s.find(|p| p.0 <= version);
        Ok(found.map(|p| Timestamp(p.1)))
    }

    /// The newest version committed at or before `ts`.
    pub(crate) fn version_at(
        &self,
        vfs: Option<&Arc<dyn Vfs>>,
        ts: Timestamp,
    ) -> Result<TimePoint> {
        self.load(vfs)?;
        let s = self.state.lock();
        if let Some(p) = s.find(|p| p.1 <= ts.0) {
            return Ok(TimePoint::Version(p.0));
        }
        let starts_at = s.starts_at();
        Ok(if starts_at <= 1 {
            TimePoint::Version(0)
        } else {
            TimePoint::Unknown { starts_at }
        })
    }
}

impl State {
    fn starts_at(&self) -> u64 {
        match &self.persisted {
            Persisted::Read { starts_at, .. } => *starts_at,
            Persisted::Unread => self.starts_at_if_new,
        }
    }

    /// The newest pair satisfying `before`, a predicate true for a prefix of the
    /// timeline (pairs are ordered by version and by time alike).
    fn find(&self, before: impl Fn(&Pair) -> bool) -> Option<Pair> {
        if let Some(p) = self.pending.iter().rev().find(|p| before(p)) {
            return Some(*p);
        }
        let in_chunks = |chunks: &[Chunk]| -> Option<Pair> {
            let n = chunks.partition_point(|c| before(&c.first));
            let c = chunks.get(n.checked_sub(1)?)?;
            let pairs = c.pairs()?;
            let i = pairs.partition_point(|p| before(p));
            Some(pairs[i.checked_sub(1)?])
        };
        if let Some(p) = in_chunks(&self.sealed) {
            return Some(p);
        }
        match &self.persisted {
            Persisted::Read { chunks, .. } => in_chunks(chunks),
            Persisted::Unread => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyVfs;

    fn dir() -> PathBuf {
        PathBuf::from("/db")
    }

    #[test]
    fn varints_round_trip() {
        let mut b = Vec::new();
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            b.clear();
            put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(get_varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        assert_eq!(get_varint(&[0x80], &mut 0), None);
        assert_eq!(get_varint(&[0xff; 11], &mut 0), None);
    }

    #[test]
    fn lookups_in_memory_are_exact() {
        let t = Timeline::in_memory();
        assert_eq!(
            t.version_at(None, Timestamp(5)).unwrap(),
            TimePoint::Version(0)
        );
        // 10,000 commits, two per microsecond at times 1000, 1000, 1001, 1001, ...
        for v in 1..=10_000u64 {
            t.note(v, Timestamp(1000 + (v - 1) / 2));
        }
        assert_eq!(t.commit_time(None, 1).unwrap(), Some(Timestamp(1000)));
        assert_eq!(
            t.commit_time(None, 9_999).unwrap(),
            Some(Timestamp(1000 + 4_999))
        );
        assert_eq!(t.commit_time(None, 0).unwrap(), None);
        assert_eq!(
            t.version_at(None, Timestamp(999)).unwrap(),
            TimePoint::Version(0)
        );
        assert_eq!(
            t.version_at(None, Timestamp(1000)).unwrap(),
            TimePoint::Version(2)
        );
        assert_eq!(
            t.version_at(None, Timestamp(3047)).unwrap(),
            TimePoint::Version(4096)
        );
        assert_eq!(
            t.version_at(None, Timestamp(3048)).unwrap(),
            TimePoint::Version(4098)
        );
        assert_eq!(
            t.version_at(None, Timestamp(u64::MAX)).unwrap(),
            TimePoint::Version(10_000)
        );
        for v in (1..=10_000u64).step_by(37) {
            let ts = t.commit_time(None, v).unwrap().unwrap();
            let TimePoint::Version(at) = t.version_at(None, ts).unwrap() else {
                panic!()
            };
            assert!(at >= v && at <= v + 1, "{v}: {at}");
        }
    }

    #[test]
    fn gaps_between_versions_answer_with_the_commit_before() {
        let t = Timeline::in_memory();
        t.note(10, Timestamp(100));
        t.note(20, Timestamp(200));
        assert_eq!(t.commit_time(None, 15).unwrap(), Some(Timestamp(100)));
        assert_eq!(
            t.version_at(None, Timestamp(150)).unwrap(),
            TimePoint::Version(10)
        );
    }

    #[test]
    fn persisted_commits_are_read_back_and_a_torn_tail_is_cut() {
        let fs = Arc::new(FaultyVfs::new());
        let vfs: Arc<dyn Vfs> = fs.clone();
        vfs.create_dir_all(&dir()).unwrap();
        vfs.sync_dir(Path::new("/")).unwrap();
        let t = Timeline::on_disk(&dir(), 0, 1);
        for v in 1..=5000u64 {
            t.note(v, Timestamp(v * 10));
        }
        let len = t.persist_through(&vfs, 4500).unwrap();
        assert!(len > 0 && len < 5000 * 4, "{len}");
        // Commits after the flushed version stay in memory and still answer.
        assert_eq!(
            t.commit_time(Some(&vfs), 4999).unwrap(),
            Some(Timestamp(49_990))
        );

        // A flush whose manifest never landed appends more: its bytes are past `len`.
        let t2 = Timeline::on_disk(&dir(), len, 4501);
        for v in 4501..=5000u64 {
            t2.note(v, Timestamp(v * 10));
        }
        t2.persist_through(&vfs, 5000).unwrap();
        fs.power_loss(7);

        // Reopened with the old manifest's length: the log replays 4501.. again.
        let t3 = Timeline::on_disk(&dir(), len, 4501);
        for v in 4501..=4600u64 {
            t3.note(v, Timestamp(v * 10));
        }
        assert_eq!(
            t3.commit_time(Some(&vfs), 17).unwrap(),
            Some(Timestamp(170))
        );
        assert_eq!(
            t3.version_at(Some(&vfs), Timestamp(45_005)).unwrap(),
            TimePoint::Version(4500)
        );
        assert_eq!(
            t3.version_at(Some(&vfs), Timestamp(46_000)).unwrap(),
            TimePoint::Version(4600)
        );
        let len3 = t3.persist_through(&vfs, 4600).unwrap();
        let c = read_file(&vfs, &dir().join(TIMELINE_NAME), len3).unwrap();
        assert_eq!(c.commits, 4600);
        assert_eq!(c.starts_at, 1);
    }

    #[test]
    fn a_timeline_started_late_says_what_it_does_not_know() {
        let fs = Arc::new(FaultyVfs::new());
        let vfs: Arc<dyn Vfs> = fs.clone();
        vfs.create_dir_all(&dir()).unwrap();
        let t = Timeline::on_disk(&dir(), 0, 100);
        t.note(100, Timestamp(1000));
        assert_eq!(
            t.version_at(Some(&vfs), Timestamp(999)).unwrap(),
            TimePoint::Unknown { starts_at: 100 }
        );
        let len = t.persist_through(&vfs, 100).unwrap();
        let t = Timeline::on_disk(&dir(), len, 101);
        assert_eq!(
            t.version_at(Some(&vfs), Timestamp(999)).unwrap(),
            TimePoint::Unknown { starts_at: 100 }
        );
        assert_eq!(
            t.version_at(Some(&vfs), Timestamp(1000)).unwrap(),
            TimePoint::Version(100)
        );
    }

    #[test]
    fn damage_is_reported_with_file_and_offset() {
        let fs = Arc::new(FaultyVfs::new());
        let vfs: Arc<dyn Vfs> = fs.clone();
        vfs.create_dir_all(&dir()).unwrap();
        let t = Timeline::on_disk(&dir(), 0, 1);
        for v in 1..=10u64 {
            t.note(v, Timestamp(v));
        }
        let len = t.persist_through(&vfs, 10).unwrap();
        let path = dir().join(TIMELINE_NAME);
        fs.corrupt_byte(&path, FILE_HEADER_LEN + CHUNK_HEADER_LEN, 0xff)
            .unwrap();
        let err = read_file(&vfs, &path, len).err().unwrap().to_string();
        assert!(
            err.contains("offset 32") && err.contains("checksum"),
            "{err}"
        );
        let t = Timeline::on_disk(&dir(), len, 11);
        assert!(t.commit_time(Some(&vfs), 5).is_err());
    }

    #[test]
    fn a_deleted_timeline_file_restarts_instead_of_failing_flushes() {
        let fs = Arc::new(FaultyVfs::new());
        let vfs: Arc<dyn Vfs> = fs.clone();
        vfs.create_dir_all(&dir()).unwrap();
        let t = Timeline::on_disk(&dir(), 0, 1);
        for v in 1..=10u64 {
            t.note(v, Timestamp(v * 10));
        }
        let len = t.persist_through(&vfs, 10).unwrap();
        vfs.remove(&dir().join(TIMELINE_NAME)).unwrap();
        let t = Timeline::on_disk(&dir(), len, 11);
        for v in 11..=20u64 {
            t.note(v, Timestamp(v * 10));
        }
        let len = t.persist_through(&vfs, 20).unwrap();
        let t = Timeline::on_disk(&dir(), len, 21);
        assert_eq!(
            t.version_at(Some(&vfs), Timestamp(50)).unwrap(),
            TimePoint::Unknown { starts_at: 11 }
        );
        assert_eq!(t.commit_time(Some(&vfs), 15).unwrap(), Some(Timestamp(150)));
        assert_eq!(t.commit_time(Some(&vfs), 5).unwrap(), None);
    }

    #[test]
    fn a_pair_out_of_order_is_not_noted_and_times_never_go_back() {
        let t = Timeline::in_memory();
        t.note(5, Timestamp(100));
        t.note(4, Timestamp(50)); // dropped: the version goes back
        t.note(5, Timestamp(120)); // dropped: the same version again
        t.note(6, Timestamp(90)); // noted at 100: the time may not go back
        assert_eq!(t.commit_time(None, 6).unwrap(), Some(Timestamp(100)));
        assert_eq!(
            t.version_at(None, Timestamp(100)).unwrap(),
            TimePoint::Version(6)
        );
        assert_eq!(t.commit_time(None, 4).unwrap(), None);
        // Across a sealed chunk too, and the chunk still decodes.
        for v in 7..(7 + CHUNK_ENTRIES as u64) {
            t.note(v, Timestamp(200 + v));
        }
        t.note(3, Timestamp(1));
        t.note(10_000, Timestamp(5));
        assert_eq!(
            t.commit_time(None, 10_000).unwrap(),
            Some(Timestamp(200 + 6 + CHUNK_ENTRIES as u64))
        );
        assert_eq!(t.commit_time(None, 7).unwrap(), Some(Timestamp(207)));
    }
}
