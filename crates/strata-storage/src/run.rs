//! Sorted runs: immutable, checksummed files of versions, read in place.
//!
//! A run holds every entry (one version of one key) of a range of commit versions,
//! sorted by key and then by ascending version, in blocks of about [`RUN_BLOCK_TARGET`]
//! bytes with a sparse index of each block's first key and a key filter. It is the
//! snapshot file format (see [`crate::snapshot`], format 3; format 2, without the
//! filter, is still read) written from a flushed memtable or from the
//! merge of older runs, named `run-<id>.sst` and listed by the manifest
//! ([`crate::manifest`]).
//!
//! # Reading in place
//!
//! Opening a run maps the file ([`Vfs::map_readonly`]) and checks only what is small:
//! the header, the footer, the index (its checksum, and that every block lies inside
//! the file in order) and the last block (for the run's last key). The index is decoded
//! once into memory: per block its offset, length, where its first key lies in the
//! mapped index, and the 16 bytes of that key after the prefix all keys of the run share
//! (so a lookup's binary search mostly compares integers) — about 48 bytes per 4 KiB
//! block. Blocks are read where they lie in the mapping, their checksum verified the
//! first time each is read after open, so damage is an error naming the file and
//! offset, never a wrong answer. A point lookup first asks the run's key filter
//! ([`crate::filter`], format 3; one cache line) whether the key may be there at all —
//! a run that does not hold it then costs nothing more, about 99 times in 100 — and
//! otherwise costs a binary search of the index and the decoding of one block (a key
//! whose history outgrew a block spans several, which the index shows as equal first
//! keys). Pages of the file are the OS page cache's: they are read from disk when
//! touched and count as file-backed, not anonymous, memory.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::limits::{MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::{Error, Result, Timestamp};

use crate::filter::Filter;
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

/// A block as the index describes it. The first key is not copied: it stays in the
/// mapped index section (`key_at..key_at + key_len`), so opening a run allocates one
/// small entry per block and nothing per key byte. Its head is in [`HeadIndex`].
struct BlockRef {
    key_at: usize,
    key_len: u32,
    len: u32,
    offset: usize,
}

/// Heads in a window of [`HeadIndex`]'s array per head of its small array.
const HEAD_STRIDE: usize = 64;

/// The heads of a run's blocks (the 16 bytes of each block's first key after the run's
/// common prefix, see [`key_head`]), laid out for a search with few cache misses: all
/// of them in one array (four to a cache line), and every [`HEAD_STRIDE`]th again in a
/// small array (16 bytes per 256 KiB of run) that stays cached between searches. A
/// search reads the small array, then one window of 64 heads (about five cache lines),
/// where a binary search over a run's whole index read about fourteen lines spread
/// over it, most of them from memory (a fifth of a short listing over four runs).
#[derive(Debug, Default)]
struct HeadIndex {
    all: Vec<u128>,
    top: Vec<u128>,
}

impl HeadIndex {
    fn new(all: Vec<u128>) -> HeadIndex {
        let top = all.iter().step_by(HEAD_STRIDE).copied().collect();
        HeadIndex { all, top }
    }

    /// The number of leading heads for which `pred` holds (it must hold for a prefix
    /// of them), as `<[u128]>::partition_point` would count it.
    #[inline]
    fn partition_point(&self, pred: impl Fn(u128) -> bool) -> usize {
        // `top[t]` is `all[t * HEAD_STRIDE]`: the answer lies after the last of them
        // for which `pred` holds, before the next one.
        let t = self.top.partition_point(|&h| pred(h));
        if t == 0 {
            return 0;
        }
        let lo = (t - 1) * HEAD_STRIDE + 1;
        let hi = (t * HEAD_STRIDE).min(self.all.len());
        lo + self.all[lo..hi].partition_point(|&h| pred(h))
    }

    /// Bytes of memory it takes.
    fn memory(&self) -> usize {
        (self.all.len() + self.top.len()) * std::mem::size_of::<u128>()
    }
}

/// The 16 bytes of `key` after its first `skip` (zero-padded), as a big-endian integer:
/// comparing two heads orders two keys that share their first `skip` bytes, except that
/// equal heads need the rest of the keys compared. Sixteen, not eight: the common
/// prefix of a run is often only the run id (a run holding several primitives), and
/// the next eight bytes — the primitive tag and the first seven of the user key — are
/// then the same for every block of a key group (`user:0001…`), so each seek in a
/// listing of such a group compared the keys themselves, in the mapped index (a cache
/// miss each: 11 % of a 100-key listing over four runs).
#[inline]
fn key_head(key: &[u8], skip: usize) -> u128 {
    let mut b = [0u8; 16];
    let rest = key.get(skip..).unwrap_or(&[]);
    let n = rest.len().min(16);
    b[..n].copy_from_slice(&rest[..n]);
    u128::from_be_bytes(b)
}

/// Orders two keys that share their first `skip` bytes.
#[inline]
fn cmp_after(a: &[u8], b: &[u8], skip: usize, a_head: u128, b_head: u128) -> std::cmp::Ordering {
    match a_head.cmp(&b_head) {
        std::cmp::Ordering::Equal => cmp_bytes(&a[skip.min(a.len())..], &b[skip.min(b.len())..]),
        o => o,
    }
}

/// Orders two byte strings like `<[u8]>::cmp`, eight bytes at a time. Keys are short
/// (tens of bytes), where a call to the C library's `memcmp` cost more than the
/// comparison itself (12 % of a point read's profile).
#[inline]
pub(crate) fn cmp_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    let (mut ca, mut cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (x, y) = (be_u64(x), be_u64(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// A big-endian integer of an 8-byte chunk.
#[inline]
fn be_u64(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(chunk);
    u64::from_be_bytes(b)
}

/// One open run. Cheap to share (`Arc<Run>`); the mapping lives as long as the run.
pub struct Run {
    id: u64,
    path: PathBuf,
    bytes: FileBytes,
    index: Vec<BlockRef>,
    /// The blocks' heads, for searches.
    heads: HeadIndex,
    /// One bit per block: its checksum was verified (see [`Run::block`]).
    verified: Vec<std::sync::atomic::AtomicU64>,
    /// The key filter (runs of format 3; see [`crate::filter`]).
    filter: Option<Filter>,
    /// Length of the prefix every key of the run shares (that of its first and last
    /// keys): lookups compare only what follows it.
    common: usize,
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
        // Format 2 runs (no key filter) are read as they are; compaction rewrites them.
        let format = le_u32(buf, 8).unwrap_or(0);
        if format != 2 && format != snapshot::SNAPSHOT_FORMAT_VERSION {
            return Err(Error::Storage(format!(
                "run {name} has format version {format}; this build reads versions 2 and {}",
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
        // Format 3: the key filter lies between the last block and the index.
        let filter_len = if format == snapshot::SNAPSHOT_FORMAT_VERSION {
            le_u32(buf, f + 20).unwrap_or(0) as usize
        } else {
            0
        };
        let blocks_end = (index_off as usize)
            .checked_sub(filter_len)
            .filter(|&e| e >= HEADER_LEN)
            .ok_or_else(|| corrupt(format!("key filter of {filter_len} bytes is out of bounds")))?;
        let filter = if filter_len > 0 {
            Some(Filter::parse(buf, blocks_end, index_off as usize, corrupt)?)
        } else {
            None
        };
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
            let previous = index
                .last()
                .map(|b: &BlockRef| &buf[b.key_at..b.key_at + b.key_len as usize]);
            if off != expect as u64
                || len > MAX_BLOCK_LEN
                || expect + 8 + len > blocks_end
                || previous.is_some_and(|p| p > key)
            {
                return Err(bad());
            }
            index.push(BlockRef {
                key_at: index_off as usize + ip + 4,
                key_len: kl as u32,
                offset: expect,
                len: len as u32,
            });
            expect += 8 + len;
            ip += 16 + kl;
        }
        if expect != blocks_end || index.len() as u64 != block_count {
            return Err(corrupt(format!(
                "the footer counts {block_count} blocks, the index lists {}",
                index.len()
            )));
        }
        let verified = (0..index.len().div_ceil(64))
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let mut run = Run {
            id,
            path: path.to_path_buf(),
            bytes,
            index,
            heads: HeadIndex::default(),
            verified,
            filter,
            common: 0,
            max_version,
            entries,
        };
        // The common prefix of all keys is that of the first and the last (sorted keys);
        // the last is read from the last block (which is verified on the way).
        if let Some(last_block) = run.index.len().checked_sub(1) {
            let mut last_key: Vec<u8> = Vec::new();
            run.for_each_in_block(last_block, |e| {
                last_key.clear();
                last_key.extend_from_slice(e.key);
                true
            })?;
            let first = run.first_key(0);
            run.common = first
                .iter()
                .zip(&last_key)
                .take_while(|(a, b)| a == b)
                .count();
            let buf: &[u8] = (*run.bytes).as_ref();
            let common = run.common;
            let heads = run
                .index
                .iter()
                .map(|b| key_head(&buf[b.key_at..b.key_at + b.key_len as usize], common));
            run.heads = HeadIndex::new(heads.collect());
        }
        Ok(run)
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

    /// Bytes of memory its index takes.
    pub(crate) fn index_bytes(&self) -> u64 {
        let filter = self.filter.as_ref().map_or(0, Filter::memory);
        (self.index.len() * std::mem::size_of::<BlockRef>()
            + self.heads.memory()
            + self.verified.len() * 8
            + filter) as u64
    }

    /// The first key of block `i`.
    pub(crate) fn first_key_of(&self, i: usize) -> &[u8] {
        self.first_key(i)
    }

    /// The first key of block `i` (in the mapped index).
    fn first_key(&self, i: usize) -> &[u8] {
        let b = &self.index[i];
        let buf: &[u8] = (*self.bytes).as_ref();
        &buf[b.key_at..b.key_at + b.key_len as usize]
    }

    /// Number of blocks.
    pub(crate) fn block_count(&self) -> usize {
        self.index.len()
    }

    /// Block `i`, its length and checksum verified. A block is verified the first time
    /// it is read after the run is opened (one bit per block remembers it): the mapped
    /// file never changes, and verifying 4 KiB on every read was a quarter of the cost
    /// of a point read. Damage that appears later, under an open run, is found by the
    /// next open or by `strata verify`.
    /// Asks the kernel to read blocks `blocks` (a range of block indexes) ahead of a
    /// scan. The mapping is advised `Random` for point lookups, so without this a scan
    /// of a cold run faults one page at a time (a full export of a 944 MB run: 23 s
    /// cold against 6 s warm). Only a hint: errors are ignored.
    pub(crate) fn read_ahead(&self, blocks: std::ops::Range<usize>) {
        let (Some(first), Some(last)) = (
            self.index.get(blocks.start),
            blocks.end.checked_sub(1).and_then(|i| self.index.get(i)),
        ) else {
            return;
        };
        let buf: &[u8] = (*self.bytes).as_ref();
        let end = (last.offset + 8 + last.len as usize).min(buf.len());
        if first.offset >= end {
            return;
        }
        crate::mapped::advise_will_need(&buf[first.offset..end]);
    }

    /// The index of the first block at or after `from` (forward) or at or before it
    /// (reverse) such that the blocks in between span about `bytes`.
    pub(crate) fn blocks_spanning(&self, from: usize, bytes: usize, reverse: bool) -> usize {
        let Some(start) = self.index.get(from) else {
            return from;
        };
        if reverse {
            let floor = start.offset.saturating_sub(bytes);
            // At least one block further, so that a window always moves on.
            self.index[..=from]
                .partition_point(|b| b.offset < floor)
                .min(from.saturating_sub(1))
        } else {
            let ceil = start.offset.saturating_add(bytes);
            self.index
                .partition_point(|b| b.offset < ceil)
                .max(from + 1)
        }
    }

    fn block(&self, i: usize) -> Result<&[u8]> {
        use std::sync::atomic::Ordering;
        let b = &self.index[i];
        let buf: &[u8] = (*self.bytes).as_ref();
        let len = b.len as usize;
        let block = &buf[b.offset + 8..b.offset + 8 + len];
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.verified[word].load(Ordering::Acquire) & bit != 0 {
            return Ok(block);
        }
        let stored_len = le_u32(buf, b.offset).unwrap_or(0) as usize;
        let stored = le_u32(buf, b.offset + 4).unwrap_or(0);
        if stored_len != len || snapshot::crc_block(block) != stored {
            return Err(Error::Storage(format!(
                "run {} is corrupt: block at offset {} fails its checksum",
                self.path.display(),
                b.offset
            )));
        }
        self.verified[word].fetch_or(bit, Ordering::AcqRel);
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
        // (`block` checks this block only once; decoding bounds-checks every entry.)
        let mut p = 0usize;
        let mut key: Option<&'a [u8]> = None;
        while p < block.len() {
            let (e, next) = self.decode_entry(i, block, p, key)?;
            key = Some(e.key);
            p = next;
            if !f(e) {
                break;
            }
        }
        Ok(())
    }

    /// Decodes the entry at byte `p` of block `i` (`block`, as [`block`](Self::block)
    /// returned it); `key` is the key of the previous entry of the block (`None` for
    /// its first). Returns the entry and the byte after it. Every length and field is
    /// bounds-checked: a malformed entry is an error naming the file and offset.
    #[inline]
    fn decode_entry<'a>(
        &self,
        i: usize,
        block: &'a [u8],
        p: usize,
        key: Option<&'a [u8]>,
    ) -> Result<(RawEntry<'a>, usize)> {
        let start = p;
        let bad = || {
            Error::Storage(format!(
                "run {} is corrupt: block at offset {}: entry at byte {start} is malformed",
                self.path.display(),
                self.index[i].offset
            ))
        };
        let mut p = p;
        let kl = le_u32(block, p).ok_or_else(bad)?;
        p += 4;
        let key = if kl == SAME_KEY {
            key.ok_or_else(bad)?
        } else {
            let kl = kl as usize;
            if kl > MAX_STORED_KEY_BYTES {
                return Err(bad());
            }
            let k = block.get(p..p + kl).ok_or_else(bad)?;
            p += kl;
            k
        };
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
        Ok((
            RawEntry {
                key,
                version,
                timestamp,
                value,
            },
            p,
        ))
    }

    /// The blocks that may hold entries of `key`: from the last block starting before
    /// it to the last block starting at or before it.
    fn blocks_of(&self, key: &[u8]) -> std::ops::Range<usize> {
        if self.index.is_empty() {
            return 0..0;
        }
        let common = self.common;
        if key.len() < common || key[..common] != self.first_key(0)[..common] {
            // Every key of the run starts with that prefix: this one is outside it.
            return 0..0;
        }
        let end = self.partition_by(key, std::cmp::Ordering::is_le);
        if end == 0 {
            return 0..0;
        }
        // One search: the blocks before `end` that start with the key itself (a long
        // history) and the one before them, which may hold its oldest versions.
        let mut start = end - 1;
        while start > 0 && self.first_key(start) == key {
            start -= 1;
        }
        start..end
    }

    /// `false` if `key` is certainly not in this run (its key filter says so); `true`
    /// if it may be, or the run has no filter. A filter chunk that fails its checksum
    /// is an error naming the file and offset, as a damaged block is.
    pub(crate) fn may_contain(&self, key: &[u8]) -> Result<bool> {
        self.may_contain_hashed(crate::filter::key_hash(key))
    }

    /// [`may_contain`](Self::may_contain) of a key whose [`key_hash`] is `h`.
    ///
    /// [`key_hash`]: crate::filter::key_hash
    fn may_contain_hashed(&self, h: u64) -> Result<bool> {
        let Some(filter) = &self.filter else {
            return Ok(true);
        };
        let buf: &[u8] = (*self.bytes).as_ref();
        filter.may_contain(buf, h).map_err(|at| {
            Error::Storage(format!(
                "run {} is corrupt: key filter chunk at offset {at} fails its checksum",
                self.path.display()
            ))
        })
    }

    /// `true` if the run has a key filter.
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// Every entry of `key` in this run, ascending versions.
    pub(crate) fn chain(&self, key: &[u8]) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if !self.may_contain(key)? {
            return Ok(out);
        }
        let (common, head) = (self.common, key_head(key, self.common));
        for i in self.blocks_of(key) {
            self.for_each_in_block(i, |e| {
                match cmp_after(e.key, key, common, key_head(e.key, common), head) {
                    std::cmp::Ordering::Equal => {
                        out.push(e.to_entry());
                        true
                    }
                    o => o == std::cmp::Ordering::Less,
                }
            })?;
        }
        Ok(out)
    }

    /// Asks the CPU for the line of the key filter a lookup of a key whose
    /// [`key_hash`] is `h` reads (see [`Tree::get_entry`]).
    ///
    /// [`key_hash`]: crate::filter::key_hash
    /// [`Tree::get_entry`]: crate::tree::Tree::get_entry
    pub(crate) fn prefetch_filter(&self, h: u64) {
        if let Some(filter) = &self.filter {
            filter.prefetch((*self.bytes).as_ref(), h);
        }
    }

    /// The newest entry of `key` with `version <= snapshot` (tombstones included);
    /// `h` is the key's [`key_hash`], computed once for all runs by the caller.
    ///
    /// [`key_hash`]: crate::filter::key_hash
    pub(crate) fn get_hashed(&self, key: &[u8], h: u64, snapshot: u64) -> Result<Option<Entry>> {
        if !self.may_contain_hashed(h)? {
            return Ok(None);
        }
        // The newest entries are in the last blocks: search from there.
        let (common, head) = (self.common, key_head(key, self.common));
        for i in self.blocks_of(key).rev() {
            let mut candidate: Option<RawEntry<'_>> = None;
            self.for_each_in_block(i, |e| {
                match cmp_after(e.key, key, common, key_head(e.key, common), head) {
                    std::cmp::Ordering::Equal => {
                        if e.version <= snapshot {
                            candidate = Some(e);
                        }
                        true
                    }
                    o => o == std::cmp::Ordering::Less,
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
        self.partition_by(key, std::cmp::Ordering::is_lt)
            .saturating_sub(1)
    }

    /// The number of leading blocks whose first key `k` satisfies `keep(k.cmp(key))`
    /// (which must hold for a prefix of the blocks, and for every block whose first key
    /// is smaller than `key`, never for one whose first key is larger). Compares the
    /// blocks' heads ([`HeadIndex`]) first: the mapped index is read only for blocks
    /// whose head ties with the key's (each read there is a cache miss).
    fn partition_by(&self, key: &[u8], keep: impl Fn(std::cmp::Ordering) -> bool) -> usize {
        let common = self.common;
        let in_run = !self.index.is_empty()
            && key.len() >= common
            && key[..common] == self.first_key(0)[..common];
        let (mut lo, mut hi) = (0usize, self.index.len());
        if in_run {
            // Blocks with a smaller head start before the key, those with a larger one
            // after it; only those with an equal head need their keys compared.
            let h = key_head(key, common);
            lo = self.heads.partition_point(|x| x < h);
            hi = if self.heads.all.get(lo) == Some(&h) {
                self.heads.partition_point(|x| x <= h)
            } else {
                lo
            };
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let o = cmp_bytes(self.first_key(mid), key);
            if keep(o) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Asks the CPU for the window of heads a [`seek`](Self::seek) of `key` will search
    /// (the first step of [`SeekSteps`]).
    fn prefetch_heads(&self, key: &[u8]) {
        let common = self.common;
        if self.index.is_empty()
            || key.len() < common
            || key[..common] != self.first_key(0)[..common]
        {
            return;
        }
        let h = key_head(key, common);
        let t = self.heads.top.partition_point(|&x| x < h).max(1);
        let lo = (t - 1) * HEAD_STRIDE;
        let hi = (t * HEAD_STRIDE).min(self.heads.all.len());
        crate::mapped::prefetch(&self.heads.all[lo..hi]);
    }

    /// Asks the CPU for what reading block `i` first touches in memory: its index
    /// entry and its verified bit (the second step of [`SeekSteps`]).
    fn prefetch_block_ref(&self, i: usize) {
        if let Some(b) = self.index.get(i..i + 1) {
            crate::mapped::prefetch(b);
            crate::mapped::prefetch(&self.verified[i / 64..i / 64 + 1]);
        }
    }

    /// Asks the CPU for the bytes of block `i` (the last step of [`SeekSteps`]).
    fn prefetch_block(&self, i: usize) {
        if let Some(b) = self.index.get(i) {
            let buf: &[u8] = (*self.bytes).as_ref();
            let end = (b.offset + 8 + (b.len as usize).min(PREFETCH_BLOCK_BYTES)).min(buf.len());
            crate::mapped::prefetch(&buf[b.offset.min(end)..end]);
        }
    }

    /// The index of the last block that may hold keys at or before `key`.
    pub(crate) fn seek_rev(&self, key: &[u8]) -> Option<usize> {
        self.partition_by(key, std::cmp::Ordering::is_le)
            .checked_sub(1)
    }

    /// Verifies every block of the run (checksums, order, limits); returns the number
    /// of entries. Used by `verify`.
    pub fn verify(&self) -> Result<u64> {
        if let Some(f) = &self.filter {
            f.verify_all((*self.bytes).as_ref()).map_err(|at| {
                Error::Storage(format!(
                    "run {} is corrupt: key filter chunk at offset {at} fails its checksum",
                    self.path.display()
                ))
            })?;
        }
        let mut n = 0u64;
        let mut prev: Option<(Vec<u8>, u64)> = None;
        let mut err: Option<Error> = None;
        for i in 0..self.index.len() {
            let first = self.first_key(i);
            let mut at_first = true;
            self.for_each_in_block(i, |e| {
                if at_first && e.key != first {
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
                let new_key = prev.as_ref().is_none_or(|(k, _)| k.as_slice() != e.key);
                if new_key && !matches!(self.may_contain(e.key), Ok(true)) {
                    err = Some(Error::Storage(format!(
                        "run {} is corrupt: block {i}: a key is missing from the key filter",
                        self.path.display()
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

/// How far ahead of a scan a run cursor asks the kernel to read, at most (see
/// [`Run::read_ahead`]).
const READ_AHEAD_BYTES: usize = 2 << 20;

/// The first read-ahead window of a cursor; each next one is twice as large, up to
/// [`READ_AHEAD_BYTES`].
const FIRST_READ_AHEAD_BYTES: usize = 64 << 10;

/// Blocks a run cursor reads before it starts asking for read-ahead. Most scans are
/// short (a listing of a hundred keys spans a few blocks per run), and advising a range
/// makes the kernel walk its pages in the page cache even when they are all cached:
/// advising [`READ_AHEAD_BYTES`] at the first block of every cursor was most of the
/// time of a 100-key listing over five runs (5,000 listings/s). So a scan asks for
/// nothing at first, then for windows growing from [`FIRST_READ_AHEAD_BYTES`]: what it
/// asks for stays proportional to what it reads.
const READ_AHEAD_AFTER_BLOCKS: usize = 4;

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
    /// Stop at keys after (forward) or before (reverse) this one.
    stop: std::ops::Bound<Box<[u8]>>,
    /// Blocks before this index (forward; after it, reverse) were asked for ahead.
    read_ahead_to: Option<usize>,
    /// Blocks decoded so far (see [`READ_AHEAD_AFTER_BLOCKS`]).
    blocks_read: usize,
    /// Bytes of the last read-ahead window asked for (0: none yet).
    window: usize,
    /// Set by [`keys_only`](Self::keys_only): the value every live entry gets instead
    /// of a copy of its own.
    no_value: Option<Arc<[u8]>>,
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
        let stop = if reverse { start } else { end }.map(Box::from);
        RunCursor {
            run,
            reverse,
            next_block,
            pending: Default::default(),
            bound,
            stop,
            read_ahead_to: None,
            blocks_read: 0,
            window: 0,
            no_value: None,
        }
    }

    /// Makes the cursor hand out entries without their values: a live entry's value is
    /// empty (whether it is a value or a delete, its version and its timestamp are
    /// kept). For listings of keys, which then copy no value out of the run.
    pub(crate) fn keys_only(&mut self) {
        self.no_value = Some(Arc::from(&[][..]));
    }

    fn in_bound(&self, key: &[u8]) -> bool {
        use std::ops::Bound;
        match (&self.bound, self.reverse) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(b), false) => cmp_bytes(key, b).is_ge(),
            (Bound::Excluded(b), false) => cmp_bytes(key, b).is_gt(),
            (Bound::Included(b), true) => cmp_bytes(key, b).is_le(),
            (Bound::Excluded(b), true) => cmp_bytes(key, b).is_lt(),
        }
    }

    /// `true` once `key` lies past the far end of the range.
    fn past_stop(&self, key: &[u8]) -> bool {
        use std::ops::Bound;
        match (&self.stop, self.reverse) {
            (Bound::Unbounded, _) => false,
            (Bound::Included(b), false) => cmp_bytes(key, b).is_gt(),
            (Bound::Excluded(b), false) => cmp_bytes(key, b).is_ge(),
            (Bound::Included(b), true) => cmp_bytes(key, b).is_lt(),
            (Bound::Excluded(b), true) => cmp_bytes(key, b).is_le(),
        }
    }

    /// Keeps the kernel reading blocks ahead of block `i`, in windows: a scan past the
    /// last window's second half asks for the next one, twice as large (up to
    /// [`READ_AHEAD_BYTES`]).
    fn read_ahead(&mut self, i: usize) {
        let half = self.window / RUN_BLOCK_TARGET / 2;
        let due = match self.read_ahead_to {
            None => true,
            Some(to) if self.reverse => i < to.saturating_add(half),
            Some(to) => i + half >= to,
        };
        if !due {
            return;
        }
        self.window = (self.window * 2).clamp(FIRST_READ_AHEAD_BYTES, READ_AHEAD_BYTES);
        let from = self.read_ahead_to.unwrap_or(i);
        let to = self.run.blocks_spanning(from, self.window, self.reverse);
        if self.reverse {
            self.run.read_ahead(to..from + 1);
        } else {
            self.run.read_ahead(from..to);
        }
        self.read_ahead_to = Some(to);
    }

    fn fill(&mut self) -> Result<bool> {
        while self.pending.is_empty() {
            let Some(i) = self.next_block else {
                return Ok(false);
            };
            self.blocks_read += 1;
            if self.blocks_read > READ_AHEAD_AFTER_BLOCKS {
                self.read_ahead(i);
            }
            self.next_block = if self.reverse {
                i.checked_sub(1)
            } else {
                Some(i + 1).filter(|&n| n < self.run.block_count())
            };
            // Decoded straight into `pending` (empty here; taken out so that the
            // closure can read the cursor's bounds): no buffer per block.
            let mut pending = std::mem::take(&mut self.pending);
            let run = self.run.clone();
            let mut past = false;
            run.for_each_in_block(i, |e| {
                if !self.reverse && self.past_stop(e.key) {
                    // Forward, keys only grow: nothing further is in range.
                    past = true;
                    return false;
                }
                if self.in_bound(e.key) && (!self.reverse || !self.past_stop(e.key)) {
                    let entry = match &self.no_value {
                        None => e.to_entry(),
                        Some(empty) => Entry {
                            version: e.version,
                            timestamp: Timestamp(e.timestamp),
                            value: e.value.map(|_| empty.clone()),
                        },
                    };
                    pending.push_back((e.key.into(), entry));
                }
                true
            })?;
            if past {
                self.next_block = None;
            }
            if self.reverse {
                pending.make_contiguous().reverse();
                if pending.is_empty() && self.next_block.is_some() {
                    // Reverse: this block lay wholly before the range's start; so does
                    // every earlier one.
                    if self.past_stop(run.first_key_of(i)) {
                        self.next_block = None;
                    }
                }
            }
            self.pending = pending;
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
                Some((k, _)) if cmp_bytes(k, &key).is_eq() => {
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

/// A forward cursor over a run's entries that borrows them from the mapped file: no
/// allocation per entry. For short listings of keys ([`crate::tree::Tree`]'s keys-only
/// scan), where the owning [`RunCursor`] allocated a key and a chain per entry.
pub(crate) struct RawCursor<'a> {
    run: &'a Run,
    /// The block being read, its index, and the byte of the next entry in it.
    block: &'a [u8],
    block_no: usize,
    p: usize,
    /// The entry under the cursor (`None` at the end of the run).
    cur: Option<RawEntry<'a>>,
}

/// How much of a block [`SeekSteps`] asks for: its start, from where the seek decodes
/// it (the CPU's own prefetcher follows a sequential decoding); asking for all of it
/// (64 lines per run) filled the CPU's queue of misses and stalled.
const PREFETCH_BLOCK_BYTES: usize = 512;

/// Seeks of one key in several runs, made together: each seek is a chain of dependent
/// cache misses (the window of heads, then the block's index entry, then the block), and
/// taking every run's step before any run's next one lets the misses of different runs
/// overlap instead of adding up. A listing seeks in every run; over four runs, made one
/// after the other, the seeks were the larger part of a 100-key listing.
pub(crate) struct SeekSteps;

impl SeekSteps {
    /// The block [`RawCursor::seek`] would start from in each of `runs` for `key`.
    pub(crate) fn blocks(runs: &[&Run], key: &[u8]) -> smallvec::SmallVec<[usize; 8]> {
        for r in runs {
            r.prefetch_heads(key);
        }
        let blocks: smallvec::SmallVec<[usize; 8]> = runs.iter().map(|r| r.seek(key)).collect();
        for (r, &b) in runs.iter().zip(&blocks) {
            r.prefetch_block_ref(b);
        }
        for (r, &b) in runs.iter().zip(&blocks) {
            r.prefetch_block(b);
        }
        blocks
    }
}

impl<'a> RawCursor<'a> {
    /// A cursor on the first entry of `run` with a key at or after `start` (`None`:
    /// the run's first entry), found from block `block_no`, which must be what
    /// `run.seek(start)` returns (0 without `start`; see [`SeekSteps`]).
    pub(crate) fn seek_from(
        run: &'a Run,
        start: Option<&[u8]>,
        block_no: usize,
    ) -> Result<RawCursor<'a>> {
        let mut c = RawCursor {
            run,
            block: &[],
            block_no,
            p: 0,
            cur: None,
        };
        if c.block_no < run.block_count() {
            c.block = run.block(c.block_no)?;
            c.advance()?;
            if let Some(k) = start {
                while c.cur.as_ref().is_some_and(|e| cmp_bytes(e.key, k).is_lt()) {
                    c.advance()?;
                }
            }
        }
        Ok(c)
    }

    /// The entry under the cursor.
    pub(crate) fn current(&self) -> Option<&RawEntry<'a>> {
        self.cur.as_ref()
    }

    /// Moves to the next entry (across blocks).
    #[inline]
    pub(crate) fn advance(&mut self) -> Result<()> {
        while self.p >= self.block.len() {
            let next = self.block_no + 1;
            if next >= self.run.block_count() {
                self.cur = None;
                return Ok(());
            }
            self.block_no = next;
            self.block = self.run.block(next)?;
            self.p = 0;
            self.cur = None;
        }
        // The previous entry's key, for a `SAME_KEY` entry: only within one block.
        let prev = if self.p == 0 {
            None
        } else {
            self.cur.as_ref().map(|e| e.key)
        };
        let (e, next) = self
            .run
            .decode_entry(self.block_no, self.block, self.p, prev)?;
        self.p = next;
        self.cur = Some(e);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_index_partitions_as_a_slice_does() {
        for n in [0usize, 1, 2, 63, 64, 65, 127, 128, 129, 700] {
            // Non-decreasing, with runs of equal heads (blocks of one long key).
            let all: Vec<u128> = (0..n as u128).map(|i| (i / 3) * 7).collect();
            let index = HeadIndex::new(all.clone());
            let top = all.last().copied().unwrap_or(0) + 9;
            for probe in 0..=top {
                let below = |x: u128| x < probe;
                let upto = |x: u128| x <= probe;
                assert_eq!(
                    index.partition_point(below),
                    all.partition_point(|&x| below(x)),
                    "{n} heads, < {probe}"
                );
                assert_eq!(
                    index.partition_point(upto),
                    all.partition_point(|&x| upto(x)),
                    "{n} heads, <= {probe}"
                );
            }
        }
    }

    #[test]
    fn heads_tell_apart_keys_that_share_their_first_fifteen_bytes_after_the_prefix() {
        let skip = 16;
        let key = |user: &[u8]| [&[0u8; 16][..], user].concat();
        // A tag and "p00042:" then an id: equal in their first eight bytes.
        let (a, b) = (key(b"\x01p00042:00000001"), key(b"\x01p00042:00000002"));
        assert!(key_head(&a, skip) < key_head(&b, skip));
        // A prefix of a key (the start of a listing) has the smaller head.
        assert!(key_head(&key(b"\x01p00042:"), skip) < key_head(&a, skip));
        // Shorter than the prefix: zero.
        assert_eq!(key_head(b"abc", skip), 0);
        assert_eq!(
            cmp_after(&a, &b, skip, key_head(&a, skip), key_head(&b, skip)),
            std::cmp::Ordering::Less
        );
    }
}
