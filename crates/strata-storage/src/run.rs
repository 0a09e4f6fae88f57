//! Sorted runs: immutable, checksummed files of versions, read in place.
//!
//! A run holds every entry (one version of one key) of a range of commit versions,
//! sorted by key and then by ascending version, in blocks of about [`RUN_BLOCK_TARGET`]
//! bytes with a sparse index of each block's first key. It is the snapshot file format
//! (see [`crate::snapshot`], format 2) written from a flushed memtable or from the
//! merge of older runs, named `run-<id>.sst` and listed by the manifest
//! ([`crate::manifest`]).
//!
//! # Reading in place
//!
//! Opening a run maps the file ([`Vfs::map_readonly`]) and checks only what is small:
//! the header, the footer and the index (its checksum, and that every block lies inside
//! the file in order). The index is decoded once into memory (one key per block: a few
//! MiB for a gigabyte of data). Blocks are read where they lie in the mapping, their
//! checksum verified on every read, so damage is an error naming the file and offset,
//! never a wrong answer. A point lookup costs a binary search of the index and the
//! decoding of one block (a key whose history outgrew a block spans several, which the
//! index shows as equal first keys). Pages of the file are the OS page cache's: they
//! are read from disk when touched and count as file-backed, not anonymous, memory.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::limits::{MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::{Error, Result, Timestamp};

use crate::mvcc::{Entry, KeyChain};
use crate::snapshot::{self, SNAPSHOT_END_MAGIC, SNAPSHOT_MAGIC};
use crate::vfs::{FileBytes, Vfs};
use crate::wal::{io_err, le_u32, le_u64};

/// Target size of a run's blocks: small, so that a point lookup decodes little.
pub const RUN_BLOCK_TARGET: usize = 4 * 1024;

const HEADER_LEN: usize = 32;
const FOOTER_LEN: usize = 48;
const SAME_KEY: u32 = u32::MAX;
const MAX_BLOCK_LEN: usize =
    snapshot::BLOCK_TARGET + MAX_STORED_KEY_BYTES + MAX_STORED_VALUE_BYTES + 64;

/// The file name of run `id`.
pub(crate) fn run_name(id: u64) -> String {
    format!("run-{id:020}.sst")
}

/// The id in a run file name, if `name` is one.
pub(crate) fn parse_run_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("run-")?.strip_suffix(".sst")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `true` for the temporary file of an unfinished run.
pub(crate) fn is_run_temp(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .is_some_and(|n| parse_run_name(n).is_some())
}

struct BlockRef {
    first_key: Box<[u8]>,
    offset: usize,
    len: usize,
}

/// One open run. Cheap to share (`Arc<Run>`); the mapping lives as long as the run.
pub struct Run {
    id: u64,
    path: PathBuf,
    bytes: FileBytes,
    index: Vec<BlockRef>,
    max_version: u64,
    entries: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("blocks", &self.index.len())
            .field("entries", &self.entries)
            .finish()
    }
}

/// An entry as it lies in a block: borrowed key and value.
pub(crate) struct RawEntry<'a> {
    pub key: &'a [u8],
    pub version: u64,
    pub timestamp: u64,
    pub value: Option<&'a [u8]>,
}

impl RawEntry<'_> {
    pub(crate) fn to_entry(&self) -> Entry {
        Entry {
            version: self.version,
            timestamp: Timestamp(self.timestamp),
            value: self.value.map(Arc::from),
        }
    }
}

impl Run {
    /// Maps run `id` at `path` and checks its header, footer and index.
    pub(crate) fn open(vfs: &Arc<dyn Vfs>, path: &Path, id: u64) -> Result<Run> {
        let bytes = vfs.map_readonly(path).map_err(|e| io_err(path, e))?;
        Run::from_bytes(path, id, bytes)
    }

    pub(crate) fn from_bytes(path: &Path, id: u64, bytes: FileBytes) -> Result<Run> {
        let buf: &[u8] = (*bytes).as_ref();
        let name = path.display();
        let corrupt = |what: String| Error::Storage(format!("run {name} is corrupt: {what}"));
        if buf.len() < HEADER_LEN + FOOTER_LEN || &buf[..8] != SNAPSHOT_MAGIC {
            return Err(Error::Storage(format!(
                "{name} is not a StrataDB run (bad magic at offset 0)"
            )));
        }
        if le_u32(buf, 8) != Some(snapshot::SNAPSHOT_FORMAT_VERSION) {
            return Err(Error::Storage(format!(
                "run {name} has format version {}; this build reads version {}",
                le_u32(buf, 8).unwrap_or(0),
                snapshot::SNAPSHOT_FORMAT_VERSION
            )));
        }
        if le_u32(buf, 28) != Some(crc32c::crc32c(&buf[..28])) {
            return Err(corrupt("header at offset 0 fails its checksum".into()));
        }
        let max_version = le_u64(buf, 16).unwrap_or(0);
        let f = buf.len() - FOOTER_LEN;
        if &buf[f + 40..] != SNAPSHOT_END_MAGIC {
            return Err(corrupt(format!(
                "missing end marker at offset {} (incomplete file)",
                f + 40
            )));
        }
        let footer = |at: usize| le_u64(buf, f + at).unwrap_or(u64::MAX);
        let (index_off, index_len) = (footer(0), footer(8));
        let index_crc = le_u32(buf, f + 16).unwrap_or(0);
        let (block_count, entries) = (footer(24), footer(32));
        let index_bytes = usize::try_from(index_off)
            .ok()
            .zip(usize::try_from(index_len).ok())
            .filter(|(o, l)| o.checked_add(*l) == Some(f) && *o >= HEADER_LEN)
            .and_then(|(o, l)| buf.get(o..o + l))
            .ok_or_else(|| corrupt(format!("index at offset {index_off} is out of bounds")))?;
        if crc32c::crc32c(index_bytes) != index_crc {
            return Err(corrupt(format!(
                "index at offset {index_off} fails its checksum"
            )));
        }
        let mut index = Vec::with_capacity(usize::try_from(block_count).unwrap_or(0).min(1 << 24));
        let mut ip = 0usize;
        let mut expect = HEADER_LEN;
        while ip < index_bytes.len() {
            let bad = || {
                corrupt(format!(
                    "index entry at offset {} is malformed",
                    index_off as usize + ip
                ))
            };
            let kl = le_u32(index_bytes, ip).ok_or_else(bad)? as usize;
            if kl > MAX_STORED_KEY_BYTES {
                return Err(bad());
            }
            let key = index_bytes.get(ip + 4..ip + 4 + kl).ok_or_else(bad)?;
            let off = le_u64(index_bytes, ip + 4 + kl).ok_or_else(bad)?;
            let len = le_u32(index_bytes, ip + 12 + kl).ok_or_else(bad)? as usize;
            // Blocks follow each other from the header to the index, in key order.
            if off != expect as u64
                || len > MAX_BLOCK_LEN
                || expect + 8 + len > index_off as usize
                || index.last().is_some_and(|b: &BlockRef| *b.first_key > *key)
            {
                return Err(bad());
            }
            index.push(BlockRef {
                first_key: key.into(),
                offset: expect,
                len,
            });
            expect += 8 + len;
            ip += 16 + kl;
        }
        if expect != index_off as usize || index.len() as u64 != block_count {
            return Err(corrupt(format!(
                "the footer counts {block_count} blocks, the index lists {}",
                index.len()
            )));
        }
        Ok(Run {
            id,
            path: path.to_path_buf(),
            bytes,
            index,
            max_version,
            entries,
        })
    }

    /// The run's id (its file name).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        (*self.bytes).as_ref().len() as u64
    }

    /// Entries (versions) it holds.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The newest version it may hold (its header's version).
    pub fn max_version(&self) -> u64 {
        self.max_version
    }

    /// Bytes of memory its index takes (an estimate).
    pub(crate) fn index_bytes(&self) -> u64 {
        self.index
            .iter()
            .map(|b| b.first_key.len() as u64 + 48)
            .sum()
    }

    /// Number of blocks.
    pub(crate) fn block_count(&self) -> usize {
        self.index.len()
    }

    /// Block `i`, its checksum verified.
    fn block(&self, i: usize) -> Result<&[u8]> {
        let b = &self.index[i];
        let buf: &[u8] = (*self.bytes).as_ref();
        let stored_len = le_u32(buf, b.offset).unwrap_or(0) as usize;
        let stored = le_u32(buf, b.offset + 4).unwrap_or(0);
        let block = &buf[b.offset + 8..b.offset + 8 + b.len];
        if stored_len != b.len || snapshot::crc_block(block) != stored {
            return Err(Error::Storage(format!(
                "run {} is corrupt: block at offset {} fails its checksum",
                self.path.display(),
                b.offset
            )));
        }
        Ok(block)
    }

    /// Decodes block `i`, calling `f` for each entry in order; `f` returns `false` to
    /// stop early.
    pub(crate) fn for_each_in_block<'a>(
        &'a self,
        i: usize,
        mut f: impl FnMut(RawEntry<'a>) -> bool,
    ) -> Result<()> {
        let block = self.block(i)?;
        let offset = self.index[i].offset;
        let mut p = 0usize;
        let mut key: &[u8] = &[];
        let mut first = true;
        while p < block.len() {
            let start = p;
            let bad = || {
                Error::Storage(format!(
                    "run {} is corrupt: block at offset {offset}: entry at byte {start} is \
                     malformed",
                    self.path.display()
                ))
            };
            let kl = le_u32(block, p).ok_or_else(bad)?;
            p += 4;
            if kl == SAME_KEY {
                if first {
                    return Err(bad());
                }
            } else {
                let kl = kl as usize;
                if kl > MAX_STORED_KEY_BYTES {
                    return Err(bad());
                }
                key = block.get(p..p + kl).ok_or_else(bad)?;
                p += kl;
            }
            first = false;
            let version = le_u64(block, p).ok_or_else(bad)?;
            let timestamp = le_u64(block, p + 8).ok_or_else(bad)?;
            let kind = *block.get(p + 16).ok_or_else(bad)?;
            p += 17;
            let value = match kind {
                0 => None,
                1 => {
                    let vl = le_u32(block, p).ok_or_else(bad)? as usize;
                    if vl > MAX_STORED_VALUE_BYTES {
                        return Err(bad());
                    }
                    let v = block.get(p + 4..p + 4 + vl).ok_or_else(bad)?;
                    p += 4 + vl;
                    Some(v)
                }
                _ => return Err(bad()),
            };
            if version == 0 || version > self.max_version {
                return Err(bad());
            }
            if !f(RawEntry {
                key,
                version,
                timestamp,
                value,
            }) {
                break;
            }
        }
        Ok(())
    }

    /// The blocks that may hold entries of `key`: from the last block starting before
    /// it to the last block starting at or before it.
    fn blocks_of(&self, key: &[u8]) -> std::ops::Range<usize> {
        let end = self.index.partition_point(|b| &*b.first_key <= key);
        if end == 0 {
            return 0..0;
        }
        let start = self
            .index
            .partition_point(|b| &*b.first_key < key)
            .saturating_sub(1);
        start..end
    }

    /// Every entry of `key` in this run, ascending versions.
    pub(crate) fn chain(&self, key: &[u8]) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for i in self.blocks_of(key) {
            self.for_each_in_block(i, |e| {
                if e.key == key {
                    out.push(e.to_entry());
                    true
                } else {
                    e.key < key
                }
            })?;
        }
        Ok(out)
    }

    /// The newest entry of `key` with `version <= snapshot` (tombstones included).
    pub(crate) fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Entry>> {
        // The newest entries are in the last blocks: search from there.
        for i in self.blocks_of(key).rev() {
            let mut candidate: Option<RawEntry<'_>> = None;
            self.for_each_in_block(i, |e| {
                if e.key == key {
                    if e.version <= snapshot {
                        candidate = Some(e);
                    }
                    true
                } else {
                    e.key < key
                }
            })?;
            if let Some(c) = candidate {
                return Ok(Some(c.to_entry()));
            }
        }
        Ok(None)
    }

    /// The index of the first block that may hold keys at or after `key`.
    pub(crate) fn seek(&self, key: &[u8]) -> usize {
        self.index
            .partition_point(|b| &*b.first_key < key)
            .saturating_sub(1)
    }

    /// The index of the last block that may hold keys at or before `key`.
    pub(crate) fn seek_rev(&self, key: &[u8]) -> Option<usize> {
        self.index
            .partition_point(|b| &*b.first_key <= key)
            .checked_sub(1)
    }

    /// Verifies every block of the run (checksums, order, limits); returns the number
    /// of entries. Used by `verify`.
    pub fn verify(&self) -> Result<u64> {
        let mut n = 0u64;
        let mut prev: Option<(Vec<u8>, u64)> = None;
        let mut err: Option<Error> = None;
        for i in 0..self.index.len() {
            let first = &self.index[i].first_key;
            let mut at_first = true;
            self.for_each_in_block(i, |e| {
                if at_first && e.key != &**first {
                    err = Some(Error::Storage(format!(
                        "run {} is corrupt: block {i} does not start with its indexed key",
                        self.path.display()
                    )));
                    return false;
                }
                at_first = false;
                let ok = prev
                    .as_ref()
                    .is_none_or(|(k, v)| match k.as_slice().cmp(e.key) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => *v < e.version,
                        std::cmp::Ordering::Greater => false,
                    });
                if !ok {
                    err = Some(Error::Storage(format!(
                        "run {} is corrupt: block {i}: entry of version {} is out of order",
                        self.path.display(),
                        e.version
                    )));
                    return false;
                }
                prev = Some((e.key.to_vec(), e.version));
                n += 1;
                true
            })?;
            if let Some(e) = err.take() {
                return Err(e);
            }
        }
        if n != self.entries {
            return Err(Error::Storage(format!(
                "run {} is corrupt: the footer counts {} entries, the blocks hold {n}",
                self.path.display(),
                self.entries
            )));
        }
        Ok(n)
    }
}

/// A cursor over a run's key chains in key order (or reverse key order), one block
/// decoded at a time.
pub(crate) struct RunCursor {
    run: Arc<Run>,
    reverse: bool,
    /// Next block to decode (forward), or the block before the next one (reverse).
    next_block: Option<usize>,
    /// Decoded entries of the current block not yet consumed, in iteration order.
    pending: std::collections::VecDeque<(Box<[u8]>, Entry)>,
    /// Skip keys before (forward) or after (reverse) this one.
    bound: std::ops::Bound<Box<[u8]>>,
}

impl RunCursor {
    pub(crate) fn new(
        run: Arc<Run>,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
        reverse: bool,
    ) -> RunCursor {
        use std::ops::Bound;
        let (next_block, bound) = if !reverse {
            let b = match start {
                Bound::Included(k) | Bound::Excluded(k) => Some(run.seek(k)),
                Bound::Unbounded => Some(0),
            };
            (b.filter(|&b| b < run.block_count()), start.map(Box::from))
        } else {
            let b = match end {
                Bound::Included(k) | Bound::Excluded(k) => run.seek_rev(k),
                Bound::Unbounded => run.block_count().checked_sub(1),
            };
            (b, end.map(Box::from))
        };
        RunCursor {
            run,
            reverse,
            next_block,
            pending: Default::default(),
            bound,
        }
    }

    fn in_bound(&self, key: &[u8]) -> bool {
        use std::ops::Bound;
        match (&self.bound, self.reverse) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(b), false) => key >= &**b,
            (Bound::Excluded(b), false) => key > &**b,
            (Bound::Included(b), true) => key <= &**b,
            (Bound::Excluded(b), true) => key < &**b,
        }
    }

    fn fill(&mut self) -> Result<bool> {
        while self.pending.is_empty() {
            let Some(i) = self.next_block else {
                return Ok(false);
            };
            self.next_block = if self.reverse {
                i.checked_sub(1)
            } else {
                Some(i + 1).filter(|&n| n < self.run.block_count())
            };
            let mut decoded: Vec<(Box<[u8]>, Entry)> = Vec::new();
            let mut last_key: Option<Box<[u8]>> = None;
            let run = self.run.clone();
            run.for_each_in_block(i, |e| {
                if self.in_bound(e.key) {
                    let key = match &last_key {
                        Some(k) if **k == *e.key => k.clone(),
                        _ => {
                            let k: Box<[u8]> = e.key.into();
                            last_key = Some(k.clone());
                            k
                        }
                    };
                    decoded.push((key, e.to_entry()));
                }
                true
            })?;
            if self.reverse {
                decoded.reverse();
            }
            self.pending.extend(decoded);
        }
        Ok(true)
    }

    /// The next key and its whole chain in this run (ascending versions).
    pub(crate) fn next_chain(&mut self) -> Result<Option<KeyChain>> {
        if !self.fill()? {
            return Ok(None);
        }
        let Some((key, first)) = self.pending.pop_front() else {
            return Ok(None);
        };
        let mut chain = vec![first];
        loop {
            if !self.fill()? {
                break;
            }
            match self.pending.front() {
                Some((k, _)) if *k == key => {
                    if let Some((_, e)) = self.pending.pop_front() {
                        chain.push(e);
                    }
                }
                _ => break,
            }
        }
        if self.reverse {
            chain.reverse();
        }
        Ok(Some((key, chain)))
    }
}
