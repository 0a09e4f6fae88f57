//! Key filters of sorted runs: "is this key possibly in the run?" without reading it.
//!
//! # The idea
//!
//! A point lookup reads layers newest first and stops at the first that holds the key.
//! Without a filter, every run that does *not* hold the key still costs a search of its
//! index and the decoding of a block — on a database of five runs about two and a half
//! blocks per read, each a chain of cache misses through 4 KiB of mapped file, which
//! was most of a random read's time. A filter answers "certainly absent" for most of
//! those runs from one cache line.
//!
//! The filter is a *blocked Bloom filter*: an array of 512-bit (64-byte) blocks; a key
//! hashes ([`key_hash`]) to one block and sets [`PROBES`] bits inside it, so a lookup
//! touches one cache line. With [`BITS_PER_KEY`] bits per key about 1 % of absent keys
//! pass (a false positive costs only the block read the filter would have saved); a
//! key present always passes: there are no false negatives, which is what correctness
//! rests on, so the filter is checksummed like everything else a reader trusts.
//!
//! # Layout (in a run file, between the last block and the index; format 3)
//!
//! ```text
//! probes u32 | block_count u32 | chunk_count u32 |
//! crc32c(the 12 bytes before ++ the chunk checksums) u32 |
//! chunk_crc u32 × chunk_count | zero padding to a 64-byte file offset |
//! bits: block_count × 64 bytes
//! ```
//!
//! The bits are checksummed in chunks of [`CHUNK_BLOCKS`] blocks (64 KiB): opening a
//! run checks only the small header, and each chunk is verified the first time a
//! lookup reads it, as blocks are.
use std::sync::atomic::{AtomicU64, Ordering};

use strata_core::{Error, Result};

use crate::wal::le_u32;

/// Bits of filter per key.
pub const BITS_PER_KEY: usize = 10;
/// Bits set (and tested) per key, all in the key's block.
pub const PROBES: u32 = 6;
/// Bytes of one filter block (one cache line).
const BLOCK_BYTES: usize = 64;
/// Filter blocks per checksummed chunk (64 KiB).
pub const CHUNK_BLOCKS: usize = 1024;
/// Bytes of the filter header before the chunk checksums.
const HEADER_BYTES: usize = 16;
/// Most filter blocks a run may have (a filter stays far below 4 GiB).
const MAX_BLOCKS: usize = 1 << 26;

/// The 64-bit hash of a key that filters use. Part of the file format: it must never
/// change (a changed hash would turn present keys into "absent" ones). A multiply-xorshift
/// over the key's 8-byte little-endian words, then a final avalanche.
pub fn key_hash(key: &[u8]) -> u64 {
    const M: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(M) ^ 0x243F_6A88_85A3_08D3;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(M);
        h ^= h >> 29;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(M);
        h ^= h >> 29;
    }
    // The finalizer of MurmurHash3 (fmix64).
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// The block of hash `h` among `blocks`, and the bit positions (0..512) it sets there.
#[inline]
fn locate(h: u64, blocks: usize) -> (usize, impl Iterator<Item = usize>) {
    // The high half picks the block (multiply-shift, no division); the low half, mixed
    // again, gives nine bits per probe.
    let block = (((h >> 32) * blocks as u64) >> 32) as usize;
    let mut g = (h as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bits = (0..PROBES).map(move |_| {
        let bit = (g >> 55) as usize;
        g = g.rotate_left(9);
        bit
    });
    (block, bits)
}

/// Builds the filter of a run being written, sized for at most `keys` keys.
pub(crate) struct FilterBuilder {
    blocks: usize,
    bits: Vec<u8>,
}

impl FilterBuilder {
    /// A builder for up to `keys` distinct keys (`None` when a filter would exceed its
    /// limit: the run is then written without one).
    pub(crate) fn new(keys: u64) -> Option<FilterBuilder> {
        let bits = usize::try_from(keys).ok()?.checked_mul(BITS_PER_KEY)?;
        let blocks = bits.div_ceil(BLOCK_BYTES * 8).max(1);
        (blocks <= MAX_BLOCKS).then(|| FilterBuilder {
            blocks,
            bits: vec![0u8; blocks * BLOCK_BYTES],
        })
    }

    /// Adds a key.
    pub(crate) fn add(&mut self, key: &[u8]) {
        let (block, bits) = locate(key_hash(key), self.blocks);
        let b = &mut self.bits[block * BLOCK_BYTES..(block + 1) * BLOCK_BYTES];
        for bit in bits {
            b[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// The filter section written at file offset `at`.
    pub(crate) fn finish(self, at: u64) -> Vec<u8> {
        let chunks = self.blocks.div_ceil(CHUNK_BLOCKS);
        let mut head = Vec::with_capacity(HEADER_BYTES + 4 * chunks);
        head.extend_from_slice(&PROBES.to_le_bytes());
        head.extend_from_slice(&(self.blocks as u32).to_le_bytes());
        head.extend_from_slice(&(chunks as u32).to_le_bytes());
        let chunk_crcs: Vec<u8> = self
            .bits
            .chunks(CHUNK_BLOCKS * BLOCK_BYTES)
            .flat_map(|c| crc32c::crc32c(c).to_le_bytes())
            .collect();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head[..12]), &chunk_crcs);
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&chunk_crcs);
        let bits_at = bits_offset(at, chunks);
        head.resize((bits_at - at) as usize, 0);
        head.extend_from_slice(&self.bits);
        head
    }
}

/// The file offset of the bits of a filter starting at `at` with `chunks` chunks: after
/// the header and the chunk checksums, rounded up to 64 bytes (a block is one cache
/// line of the mapping, which starts on a page).
fn bits_offset(at: u64, chunks: usize) -> u64 {
    (at + (HEADER_BYTES + 4 * chunks) as u64).next_multiple_of(BLOCK_BYTES as u64)
}

/// A filter as it lies in a mapped run: where its bits are, and which chunks were
/// verified.
pub(crate) struct Filter {
    /// File offset of the bits.
    bits_at: usize,
    blocks: usize,
    /// File offset of the chunk checksums.
    crcs_at: usize,
    /// One bit per chunk: its checksum was verified.
    verified: Vec<AtomicU64>,
}

impl Filter {
    /// Parses and checks the header of the filter in `buf[start..end]` (the run's
    /// bytes); `corrupt` makes the error naming the file.
    pub(crate) fn parse(
        buf: &[u8],
        start: usize,
        end: usize,
        corrupt: impl Fn(String) -> Error,
    ) -> Result<Filter> {
        let bad = |what: &str| corrupt(format!("key filter at offset {start}: {what}"));
        let probes = le_u32(buf, start).ok_or_else(|| bad("truncated header"))?;
        let blocks = le_u32(buf, start + 4).ok_or_else(|| bad("truncated header"))? as usize;
        let chunks = le_u32(buf, start + 8).ok_or_else(|| bad("truncated header"))? as usize;
        let crc = le_u32(buf, start + 12).ok_or_else(|| bad("truncated header"))?;
        if probes != PROBES || blocks == 0 || blocks > MAX_BLOCKS {
            return Err(bad("unknown parameters"));
        }
        if chunks != blocks.div_ceil(CHUNK_BLOCKS) {
            return Err(bad("chunk count does not match the block count"));
        }
        let crcs_at = start + HEADER_BYTES;
        let crcs = buf
            .get(crcs_at..crcs_at + 4 * chunks)
            .filter(|_| crcs_at + 4 * chunks <= end)
            .ok_or_else(|| bad("truncated chunk checksums"))?;
        if crc32c::crc32c_append(crc32c::crc32c(&buf[start..start + 12]), crcs) != crc {
            return Err(bad("header fails its checksum"));
        }
        let bits_at = bits_offset(start as u64, chunks) as usize;
        if bits_at + blocks * BLOCK_BYTES != end {
            return Err(bad("its length does not match its block count"));
        }
        // The padding is zero, so that every byte of the file is checked.
        if buf[crcs_at + 4 * chunks..bits_at].iter().any(|&b| b != 0) {
            return Err(bad("padding is not zero"));
        }
        Ok(Filter {
            bits_at,
            blocks,
            crcs_at,
            verified: (0..chunks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        })
    }

    /// Bytes of memory it takes.
    pub(crate) fn memory(&self) -> usize {
        self.verified.len() * 8
    }

    /// Checks chunk `c` of the filter in `buf`, once.
    fn verify_chunk(&self, buf: &[u8], c: usize) -> std::result::Result<(), usize> {
        let (word, bit) = (c / 64, 1u64 << (c % 64));
        if self.verified[word].load(Ordering::Acquire) & bit != 0 {
            return Ok(());
        }
        let from = self.bits_at + c * CHUNK_BLOCKS * BLOCK_BYTES;
        let to = (from + CHUNK_BLOCKS * BLOCK_BYTES).min(self.bits_at + self.blocks * BLOCK_BYTES);
        let stored = le_u32(buf, self.crcs_at + 4 * c).ok_or(from)?;
        if buf.get(from..to).map(crc32c::crc32c) != Some(stored) {
            return Err(from);
        }
        self.verified[word].fetch_or(bit, Ordering::AcqRel);
        Ok(())
    }

    /// Asks the CPU for the cache line that [`may_contain`](Self::may_contain) of hash
    /// `h` will read, and for the word recording whether its chunk was verified: a
    /// point lookup over several runs prefetches every run's line first, so that their
    /// misses overlap instead of adding up.
    pub(crate) fn prefetch(&self, buf: &[u8], h: u64) {
        let (block, _) = locate(h, self.blocks);
        let at = self.bits_at + block * BLOCK_BYTES;
        if let Some(b) = buf.get(at..at + BLOCK_BYTES) {
            crate::mapped::prefetch(b);
        }
        let word = block / CHUNK_BLOCKS / 64;
        if let Some(w) = self.verified.get(word..word + 1) {
            crate::mapped::prefetch(w);
        }
    }

    /// `false` if a key of hash `h` is certainly not in the run; `Err(offset)` if the
    /// chunk to read fails its checksum.
    pub(crate) fn may_contain(&self, buf: &[u8], h: u64) -> std::result::Result<bool, usize> {
        let (block, mut bits) = locate(h, self.blocks);
        self.verify_chunk(buf, block / CHUNK_BLOCKS)?;
        let at = self.bits_at + block * BLOCK_BYTES;
        let b = buf.get(at..at + BLOCK_BYTES).ok_or(at)?;
        Ok(bits.all(|bit| b[bit / 8] & (1 << (bit % 8)) != 0))
    }

    /// Verifies every chunk (a whole-file check).
    pub(crate) fn verify_all(&self, buf: &[u8]) -> std::result::Result<(), usize> {
        (0..self.blocks.div_ceil(CHUNK_BLOCKS)).try_for_each(|c| self.verify_chunk(buf, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: &[Vec<u8>], at: u64) -> (Vec<u8>, Filter) {
        let mut b = FilterBuilder::new(keys.len() as u64).unwrap();
        for k in keys {
            b.add(k);
        }
        let mut file = vec![0u8; at as usize];
        file.extend(b.finish(at));
        let end = file.len();
        let f = Filter::parse(&file, at as usize, end, Error::Storage).unwrap();
        (file, f)
    }

    #[test]
    fn prefetching_is_a_hint_that_changes_no_answer() {
        let keys: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| format!("k{i}").into_bytes())
            .collect();
        let (file, f) = build(&keys, 64);
        for k in &keys {
            let h = key_hash(k);
            f.prefetch(&file, h);
            assert_eq!(f.may_contain(&file, h), Ok(true));
        }
        // A buffer shorter than the filter says (never passed by a run, which checks
        // the length on open): the hint is skipped, nothing panics.
        for h in [0, u64::MAX, 0x8000_0000_0000_0000] {
            f.prefetch(&file[..80], h);
        }
    }

    #[test]
    fn present_keys_always_pass_and_absent_ones_rarely() {
        let keys: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("key:{i:08}").into_bytes())
            .collect();
        let (file, f) = build(&keys, 1234);
        for k in &keys {
            assert_eq!(f.may_contain(&file, key_hash(k)), Ok(true));
        }
        let passed = (0..20_000u32)
            .filter(|i| {
                let k = format!("other:{i:08}").into_bytes();
                f.may_contain(&file, key_hash(&k)).unwrap()
            })
            .count();
        // About 1 % expected; 3 % would mean a broken hash or layout.
        assert!(passed < 600, "{passed} false positives in 20,000");
    }

    #[test]
    fn the_hash_is_the_documented_one() {
        // Part of the file format: changing it makes existing runs answer wrongly.
        assert_eq!(key_hash(b""), key_hash(b""));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_eq!(key_hash(b"strata"), 0xa1e4_82f6_bc8a_4762);
    }

    #[test]
    fn damage_is_found_in_the_header_and_in_a_chunk() {
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let (mut file, f) = build(&keys, 100);
        let end = file.len();
        // A flipped bit among the bits: the chunk holding it fails when read.
        file[end - 10] ^= 1;
        let last_block = f.blocks - 1;
        let hit = keys
            .iter()
            .map(|k| key_hash(k))
            .find(|&h| locate(h, f.blocks).0 / CHUNK_BLOCKS == last_block / CHUNK_BLOCKS)
            .unwrap();
        assert!(f.may_contain(&file, hit).is_err());
        assert!(f.verify_all(&file).is_err());
        // A flipped bit in the header.
        file[105] ^= 1;
        assert!(Filter::parse(&file, 100, end, Error::Storage).is_err());
    }
}
