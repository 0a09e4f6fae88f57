//! Snapshot files: the full multi-version state at one commit version.
//!
//! A snapshot is named `snap-<version>.snap` (20 decimal digits) and holds every version
//! of every key as of commit `<version>`, sorted by key and then by version, in
//! checksummed blocks with a sparse index, so that a later version can read it in place
//! (memory-mapped) instead of loading it whole. Since format 2 a block holds *entries*
//! (one version of one key), not whole version chains: a key's history spans as many
//! blocks as it needs, so no key becomes unwritable however long its history grows, and
//! every length field is bounded by the per-value limit. Layout (integers
//! little-endian):
//!
//! ```text
//! header (32 B): magic "STRATSNP" | format u32 (= 2) | reserved u32 | version u64 |
//!                reserved u32 | crc32c(header bytes 0..28) u32
//! blocks:        block_len u32 | crc32c(block_len ++ block) u32 | block
//!   block:       entries, until the block reaches 64 KiB:
//!                key_len u32 (0xFFFF_FFFF: the same key as the previous entry of this
//!                block) | [key] | version u64 | timestamp_us u64 |
//!                kind u8 (0 tombstone, 1 value) | [value_len u32 | value]
//! index:         (first_key_len u32 | first_key | offset u64 | len u32)* , one per block
//! footer (48 B): index_offset u64 | index_len u64 | index_crc32c u32 | reserved u32 |
//!                block_count u64 | entry_count u64 | magic "STRATEND"
//! ```
//!
//! The limits are checked on write and on read alike: a key of at most
//! `MAX_STORED_KEY_BYTES`, a value of at most `MAX_STORED_VALUE_BYTES`, so a block is at
//! most 64 KiB plus one entry. Readers also check that keys are strictly increasing and
//! versions increasing within a key, and that no version exceeds the snapshot's.
//!
//! **Writing.** The snapshot is written as `snap-<version>.snap.tmp`, fsynced, read back
//! and verified (every checksum, the order, the counts), and only then renamed into place
//! and the directory fsynced. A crash at any point leaves either no new snapshot (the
//! temporary file is deleted on the next open) or a complete, verified one; a snapshot
//! that fails verification is never renamed, so it can never shadow the previous one.
//!
//! Format 1 snapshots (StrataDB v0.1: whole chains per block, 32-byte footer) are still
//! read, so that an existing database opens; the next checkpoint writes format 2.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::limits::{MAX_STORED_KEY_BYTES, MAX_STORED_VALUE_BYTES};
use strata_core::{Error, Result, Timestamp};

use crate::filter::{Filter, FilterBuilder};
#[cfg(test)]
use crate::mvcc::MvccMap;
use crate::mvcc::{Chain, Entry, KeyChain};
use crate::vfs::{join, Vfs};
use crate::wal::{io_err, le_u32, le_u64};

/// Magic bytes at the start of a snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"STRATSNP";
/// Magic bytes at the end of a snapshot.
pub const SNAPSHOT_END_MAGIC: &[u8; 8] = b"STRATEND";
/// Format version of the sorted files (runs) this build writes: 3 adds the optional key
/// filter (see [`crate::filter`]) to format 2, whose files are still read.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;
const FORMAT_V1: u32 = 1;
const FORMAT_V2: u32 = 2;
const HEADER_LEN: usize = 32;
const FOOTER_LEN: usize = 48;
const V1_FOOTER_LEN: usize = 32;
pub(crate) const BLOCK_TARGET: usize = 64 * 1024;
/// Largest block a reader accepts: the target plus one entry of the largest key and value.
const MAX_BLOCK_LEN: usize = BLOCK_TARGET + MAX_STORED_KEY_BYTES + MAX_STORED_VALUE_BYTES + 64;
const SAME_KEY: u32 = u32::MAX;
#[cfg(test)]
const CHUNK_KEYS: usize = 4096;

pub(crate) fn snapshot_name(version: u64) -> String {
    format!("snap-{version:020}.snap")
}

/// The version encoded in a snapshot file name, if `name` is one.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `true` for the temporary file of an unfinished snapshot (the only files besides its
/// own that storage deletes on open).
pub(crate) fn is_snapshot_temp(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .is_some_and(|n| parse_snapshot_name(n).is_some())
}

pub(crate) fn crc_block(block: &[u8]) -> u32 {
    let len = (block.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), block)
}

fn header(version: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes the state visible at `version`, verifies it and renames it into place; returns
/// the snapshot's path and size. Reads the map in chunks so that writers are never
/// blocked for long. On failure the temporary file is removed and no snapshot changed.
/// (Snapshots are no longer written by the storage, whose flushes write runs; tests use
/// it to build databases of the previous layout.)
#[cfg(test)]
pub(crate) fn write_snapshot(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    map: &MvccMap,
    version: u64,
) -> Result<(PathBuf, u64)> {
    let mut after: Option<Box<[u8]>> = None;
    let mut next = || -> Result<Option<Vec<KeyChain>>> {
        let chunk = map.chunk_after(after.as_deref(), version, CHUNK_KEYS);
        Ok(chunk.last().map(|(last, _)| last.clone()).map(|last| {
            after = Some(last);
            chunk
        }))
    };
    let w = write_sorted_file(
        vfs,
        dir,
        &snapshot_name(version),
        version,
        BLOCK_TARGET,
        None,
        &mut next,
    )?;
    Ok((w.path, w.size))
}

/// What [`write_sorted_file`] wrote.
pub(crate) struct WrittenFile {
    pub path: PathBuf,
    pub size: u64,
    pub entries: u64,
}

/// The source of a sorted file: the next chunk of `(key, chain)` in ascending key order
/// (chains ascending by version), `None` at the end.
pub(crate) type ChunkSource<'a> = dyn FnMut() -> Result<Option<Vec<KeyChain>>> + 'a;

/// Writes a sorted file (a snapshot or a run) named `name` in `dir` from `next`, as
/// `name.tmp`: fsynced, read back and verified, then renamed into place and the
/// directory fsynced. On failure the temporary file is removed and nothing changed.
/// With `filter_keys` (at least the number of distinct keys `next` yields), the file
/// gets a key filter sized for that many (see [`crate::filter`]).
pub(crate) fn write_sorted_file(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    name: &str,
    version: u64,
    block_target: usize,
    filter_keys: Option<u64>,
    next: &mut ChunkSource<'_>,
) -> Result<WrittenFile> {
    let final_path = join(dir, name);
    let tmp_path = join(dir, &format!("{name}.tmp"));
    let filter = filter_keys.and_then(FilterBuilder::new);
    let result =
        write_verified(vfs, &tmp_path, version, block_target, filter, next).and_then(|w| {
            vfs.rename(&tmp_path, &final_path)
                .map_err(|e| io_err(&final_path, e))?;
            vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
            Ok(w)
        });
    match result {
        Ok((size, entries)) => Ok(WrittenFile {
            path: final_path,
            size,
            entries,
        }),
        Err(e) => {
            let _ = vfs.remove(&tmp_path);
            Err(e)
        }
    }
}

fn write_verified(
    vfs: &Arc<dyn Vfs>,
    tmp_path: &Path,
    version: u64,
    block_target: usize,
    mut filter: Option<FilterBuilder>,
    next: &mut ChunkSource<'_>,
) -> Result<(u64, u64)> {
    let file = vfs
        .create_empty(tmp_path)
        .map_err(|e| io_err(tmp_path, e))?;
    let write = |b: &[u8]| file.append(b).map_err(|e| io_err(tmp_path, e));
    write(&header(version))?;

    let mut offset = HEADER_LEN as u64;
    let mut index = Vec::new();
    let mut block_count = 0u64;
    let mut entry_count = 0u64;
    let mut block = Vec::with_capacity(BLOCK_TARGET * 2);
    let mut block_first: Option<Box<[u8]>> = None;
    let mut prev_key: Option<Box<[u8]>> = None;
    let mut out = Vec::with_capacity(BLOCK_TARGET * 2 + 8);
    let mut flush_block = |block: &mut Vec<u8>,
                           first: &mut Option<Box<[u8]>>,
                           prev: &mut Option<Box<[u8]>>|
     -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        out.clear();
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc_block(block).to_le_bytes());
        out.extend_from_slice(block);
        write(&out)?;
        let key = first.take().unwrap_or_default();
        index.extend_from_slice(&(key.len() as u32).to_le_bytes());
        index.extend_from_slice(&key);
        index.extend_from_slice(&offset.to_le_bytes());
        index.extend_from_slice(&(out.len() as u32 - 8).to_le_bytes());
        offset += out.len() as u64;
        block_count += 1;
        block.clear();
        *prev = None;
        Ok(())
    };

    while let Some(chunk) = next()? {
        for (key, chain) in chunk {
            if key.len() > MAX_STORED_KEY_BYTES {
                return Err(Error::Storage(format!(
                    "cannot snapshot a key of {} bytes (limit {MAX_STORED_KEY_BYTES})",
                    key.len()
                )));
            }
            if let Some(f) = filter.as_mut() {
                f.add(&key);
            }
            for e in &chain {
                if block_first.is_none() {
                    block_first = Some(key.clone());
                }
                if prev_key.as_deref() == Some(&key[..]) {
                    block.extend_from_slice(&SAME_KEY.to_le_bytes());
                } else {
                    block.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    block.extend_from_slice(&key);
                    prev_key = Some(key.clone());
                }
                block.extend_from_slice(&e.version.to_le_bytes());
                block.extend_from_slice(&e.timestamp.0.to_le_bytes());
                match &e.value {
                    None => block.push(0),
                    Some(v) => {
                        block.push(1);
                        block.extend_from_slice(&(v.len() as u32).to_le_bytes());
                        block.extend_from_slice(v);
                    }
                }
                entry_count += 1;
                if block.len() >= block_target {
                    flush_block(&mut block, &mut block_first, &mut prev_key)?;
                }
            }
        }
    }
    flush_block(&mut block, &mut block_first, &mut prev_key)?;
    // The key filter, between the blocks and the index (its length in the footer).
    let mut filter_len = 0u32;
    if let Some(f) = filter {
        let section = f.finish(offset);
        filter_len = u32::try_from(section.len())
            .map_err(|_| Error::Internal(format!("a key filter of {} bytes", section.len())))?;
        write(&section)?;
        offset += section.len() as u64;
    }
    write(&index)?;
    let mut footer = Vec::with_capacity(FOOTER_LEN);
    footer.extend_from_slice(&offset.to_le_bytes());
    footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
    footer.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
    footer.extend_from_slice(&filter_len.to_le_bytes());
    footer.extend_from_slice(&block_count.to_le_bytes());
    footer.extend_from_slice(&entry_count.to_le_bytes());
    footer.extend_from_slice(SNAPSHOT_END_MAGIC);
    write(&footer)?;
    file.sync().map_err(|e| io_err(tmp_path, e))?;
    drop(file);
    // Read back what the disk holds, and check it before anything can depend on it
    // (mapped, not read into memory: a run can be larger than memory).
    let mapped = vfs
        .map_readonly(tmp_path)
        .map_err(|e| io_err(tmp_path, e))?;
    let bytes: &[u8] = (*mapped).as_ref();
    let (read_version, entries) = verify_snapshot(tmp_path, bytes)?;
    if read_version != version || entries != entry_count {
        return Err(Error::Storage(format!(
            "snapshot {} reads back as version {read_version} with {entries} entries, but \
             version {version} with {entry_count} entries was written",
            tmp_path.display()
        )));
    }
    Ok((bytes.len() as u64, entry_count))
}

/// A loaded snapshot: its version and its chains in key order.
pub(crate) struct LoadedSnapshot {
    pub version: u64,
    pub chains: Vec<(Box<[u8]>, Chain)>,
}

/// Reads and fully verifies a snapshot file (format 1 or 2).
pub(crate) fn read_snapshot(path: &Path, buf: &[u8]) -> Result<LoadedSnapshot> {
    let mut chains: Vec<(Box<[u8]>, Chain)> = Vec::new();
    let version = if format_of(path, buf)? == FORMAT_V1 {
        for_each_block_v1(path, buf, |pos, block| {
            decode_block_v1(block, &mut chains).ok_or_else(|| malformed(path, pos))
        })?
    } else {
        let (version, _) = for_each_entry(path, buf, |key, entry| {
            match chains.last_mut() {
                Some((k, chain)) if **k == *key => chain.push(entry),
                _ => chains.push((key.into(), smallvec::smallvec![entry])),
            }
            Ok(())
        })?;
        version
    };
    Ok(LoadedSnapshot { version, chains })
}

/// Verifies every checksum, length, order and count of a snapshot without building the
/// map. Returns its version and number of entries (versions).
pub fn verify_snapshot(path: &Path, buf: &[u8]) -> Result<(u64, u64)> {
    if format_of(path, buf)? == FORMAT_V1 {
        let mut entries = 0u64;
        let mut chains = Vec::new();
        let v = for_each_block_v1(path, buf, |pos, block| {
            chains.clear();
            decode_block_v1(block, &mut chains).ok_or_else(|| malformed(path, pos))?;
            entries += chains.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
            Ok(())
        })?;
        return Ok((v, entries));
    }
    for_each_entry(path, buf, |_, _| Ok(()))
}

fn malformed(path: &Path, pos: usize) -> Error {
    Error::Storage(format!(
        "snapshot {} is corrupt: block at offset {pos} is malformed",
        path.display()
    ))
}

fn format_of(path: &Path, buf: &[u8]) -> Result<u32> {
    let name = path.display();
    if buf.len() < 12 || &buf[..8] != SNAPSHOT_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB snapshot (bad magic at offset 0)"
        )));
    }
    match le_u32(buf, 8) {
        Some(f @ (FORMAT_V1 | FORMAT_V2 | SNAPSHOT_FORMAT_VERSION)) => Ok(f),
        other => Err(Error::Storage(format!(
            "snapshot {name} has format version {}; this build reads versions {FORMAT_V1} \
             to {SNAPSHOT_FORMAT_VERSION}",
            other.unwrap_or(0)
        ))),
    }
}

/// Checks a format-2 snapshot's header, footer, index, every block and every entry,
/// calling `on_entry(key, entry)` in order. Returns its version and entry count.
fn for_each_entry(
    path: &Path,
    buf: &[u8],
    mut on_entry: impl FnMut(&[u8], Entry) -> Result<()>,
) -> Result<(u64, u64)> {
    for_each_entry_ref(path, buf, |key, version, timestamp, value| {
        on_entry(
            key,
            Entry {
                version,
                timestamp,
                value: value.map(Arc::from),
            },
        )
    })
}

/// Checks a format-2 snapshot or run like [`for_each_entry`], handing each entry over
/// as slices of `buf` (key, version, timestamp, value or `None` for a deletion): no
/// allocation per entry, for a check that reads every byte of a large file.
pub(crate) fn for_each_entry_ref<'b>(
    path: &Path,
    buf: &'b [u8],
    mut on_entry: impl FnMut(&'b [u8], u64, Timestamp, Option<&'b [u8]>) -> Result<()>,
) -> Result<(u64, u64)> {
    let name = path.display();
    let corrupt = |what: String| Error::Storage(format!("snapshot {name} is corrupt: {what}"));
    if buf.len() < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt("file too short".into()));
    }
    if le_u32(buf, 28) != Some(crc32c::crc32c(&buf[..28])) {
        return Err(corrupt("header at offset 0 fails its checksum".into()));
    }
    let version = le_u64(buf, 16).unwrap_or(0);
    let f = buf.len() - FOOTER_LEN;
    if &buf[f + 40..] != SNAPSHOT_END_MAGIC {
        return Err(corrupt("missing end marker (incomplete file)".into()));
    }
    let footer = |at: usize| le_u64(buf, f + at).unwrap_or(u64::MAX);
    let (index_off, index_len) = (footer(0), footer(8));
    let index_crc = le_u32(buf, f + 16).unwrap_or(0);
    let (block_count, entry_count) = (footer(24), footer(32));
    let index = usize::try_from(index_off)
        .ok()
        .zip(usize::try_from(index_len).ok())
        .filter(|(o, l)| o.checked_add(*l) == Some(f) && *o >= HEADER_LEN)
        .and_then(|(o, l)| buf.get(o..o + l))
        .ok_or_else(|| corrupt(format!("index at offset {index_off} is out of bounds")))?;
    if crc32c::crc32c(index) != index_crc {
        return Err(corrupt(format!(
            "index at offset {index_off} fails its checksum"
        )));
    }
    let index_off = index_off as usize;
    // Format 3: the key filter lies between the blocks and the index.
    let filter_len = if le_u32(buf, 8) == Some(SNAPSHOT_FORMAT_VERSION) {
        le_u32(buf, f + 20).unwrap_or(0) as usize
    } else {
        0
    };
    let blocks_end = index_off
        .checked_sub(filter_len)
        .filter(|&e| e >= HEADER_LEN)
        .ok_or_else(|| corrupt(format!("key filter of {filter_len} bytes is out of bounds")))?;
    let filter = if filter_len > 0 {
        let filter = Filter::parse(buf, blocks_end, index_off, corrupt)?;
        filter.verify_all(buf).map_err(|at| {
            corrupt(format!(
                "key filter chunk at offset {at} fails its checksum"
            ))
        })?;
        Some(filter)
    } else {
        None
    };
    let mut pos = HEADER_LEN;
    let mut blocks = 0u64;
    let mut entries = 0u64;
    let mut ip = 0usize;
    let mut prev: Option<(&'b [u8], u64)> = None;
    while pos < blocks_end {
        let len = le_u32(buf, pos).unwrap_or(u32::MAX) as usize;
        let crc = le_u32(buf, pos + 4).unwrap_or(0);
        if len > MAX_BLOCK_LEN || pos + 8 + len > blocks_end {
            return Err(corrupt(format!(
                "block at offset {pos} has a bad length ({len} bytes)"
            )));
        }
        let block = &buf[pos + 8..pos + 8 + len];
        if crc_block(block) != crc {
            return Err(corrupt(format!("block at offset {pos} fails its checksum")));
        }
        // The index entry of this block must point here.
        let ik = le_u32(index, ip).map(|l| l as usize);
        let entry_ok = ik.and_then(|kl| {
            let off = le_u64(index, ip + 4 + kl)?;
            let l = le_u32(index, ip + 12 + kl)?;
            (off == pos as u64 && l as usize == len).then_some(ip + 16 + kl)
        });
        ip = entry_ok.ok_or_else(|| {
            corrupt(format!(
                "index entry of the block at offset {pos} does not match it"
            ))
        })?;
        let mut p = 0usize;
        let mut block_key: Option<&'b [u8]> = None;
        while p < block.len() {
            let entry_start = p;
            let bad = || {
                corrupt(format!(
                    "block at offset {pos}: entry at byte {entry_start} is malformed"
                ))
            };
            let klen = le_u32(block, p).ok_or_else(bad)?;
            p += 4;
            let key: &'b [u8] = if klen == SAME_KEY {
                block_key.ok_or_else(bad)?
            } else {
                let klen = klen as usize;
                if klen > MAX_STORED_KEY_BYTES {
                    return Err(bad());
                }
                let k = block.get(p..p + klen).ok_or_else(bad)?;
                p += klen;
                k
            };
            let v = le_u64(block, p).ok_or_else(bad)?;
            let ts = le_u64(block, p + 8).ok_or_else(bad)?;
            let kind = *block.get(p + 16).ok_or_else(bad)?;
            p += 17;
            let value = match kind {
                0 => None,
                1 => {
                    let vlen = le_u32(block, p).ok_or_else(bad)? as usize;
                    if vlen > MAX_STORED_VALUE_BYTES {
                        return Err(bad());
                    }
                    let val = block.get(p + 4..p + 4 + vlen).ok_or_else(bad)?;
                    p += 4 + vlen;
                    Some(val)
                }
                _ => return Err(bad()),
            };
            let in_order = match &prev {
                None => true,
                Some((pk, pv)) => match pk.cmp(&key) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => *pv < v,
                    std::cmp::Ordering::Greater => false,
                },
            };
            if !in_order || v > version || v == 0 {
                return Err(corrupt(format!(
                    "block at offset {pos}: entry of version {v} is out of order"
                )));
            }
            // Every key must pass the filter (a key it turned away would read as
            // absent).
            let new_key = prev.is_none_or(|(pk, _)| pk != key);
            if let (Some(fl), true) = (&filter, new_key) {
                if fl.may_contain(buf, crate::filter::key_hash(key)) != Ok(true) {
                    return Err(corrupt(format!(
                        "block at offset {pos}: a key is missing from the key filter"
                    )));
                }
            }
            on_entry(key, v, Timestamp(ts), value)?;
            entries += 1;
            prev = Some((key, v));
            block_key = Some(key);
        }
        blocks += 1;
        pos += 8 + len;
    }
    if pos != blocks_end || blocks != block_count || entries != entry_count || ip != index.len() {
        return Err(corrupt(format!(
            "the footer counts {block_count} blocks and {entry_count} entries, the file holds \
             {blocks} and {entries}"
        )));
    }
    Ok((version, entries))
}

/// Checks a format-1 snapshot's header, footer, index and every block checksum, calling
/// `on_block(offset, block)` for each verified block. Returns the snapshot's version.
fn for_each_block_v1(
    path: &Path,
    buf: &[u8],
    mut on_block: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<u64> {
    let name = path.display();
    let corrupt = |what: &str| Error::Storage(format!("snapshot {name} is corrupt: {what}"));
    if buf.len() < HEADER_LEN + V1_FOOTER_LEN {
        return Err(corrupt("file too short"));
    }
    if &buf[..8] != SNAPSHOT_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB snapshot (bad magic)"
        )));
    }
    let version = le_u64(buf, 16).ok_or_else(|| corrupt("header"))?;
    let f = buf.len() - V1_FOOTER_LEN;
    if &buf[f + 24..] != SNAPSHOT_END_MAGIC {
        return Err(corrupt("missing end marker (incomplete file)"));
    }
    let index_off = le_u64(buf, f).ok_or_else(|| corrupt("footer"))? as usize;
    let index_len = le_u64(buf, f + 8).ok_or_else(|| corrupt("footer"))? as usize;
    let index_crc = le_u32(buf, f + 16).ok_or_else(|| corrupt("footer"))?;
    let index = buf
        .get(index_off..index_off.saturating_add(index_len))
        .filter(|_| index_off.saturating_add(index_len) == f)
        .ok_or_else(|| corrupt("index out of bounds"))?;
    if crc32c::crc32c(index) != index_crc {
        return Err(corrupt("index checksum mismatch"));
    }
    let mut pos = HEADER_LEN;
    while pos < index_off {
        let len = le_u32(buf, pos).ok_or_else(|| corrupt("block header"))? as usize;
        let crc = le_u32(buf, pos + 4).ok_or_else(|| corrupt("block header"))?;
        let block = buf
            .get(pos + 8..pos + 8 + len)
            .ok_or_else(|| corrupt(&format!("block at offset {pos} out of bounds")))?;
        if crc_block(block) != crc {
            return Err(corrupt(&format!(
                "block at offset {pos} fails its checksum"
            )));
        }
        on_block(pos, block)?;
        pos += 8 + len;
    }
    Ok(version)
}

fn decode_block_v1(b: &[u8], out: &mut Vec<(Box<[u8]>, Chain)>) -> Option<()> {
    let mut p = 0;
    while p < b.len() {
        let klen = le_u32(b, p)? as usize;
        if klen > MAX_STORED_KEY_BYTES {
            return None;
        }
        let key: Box<[u8]> = b.get(p + 4..p + 4 + klen)?.into();
        p += 4 + klen;
        let n = le_u32(b, p)? as usize;
        p += 4;
        let mut chain = Chain::with_capacity(n.min(1024));
        for _ in 0..n {
            let version = le_u64(b, p)?;
            let ts = le_u64(b, p + 8)?;
            let kind = *b.get(p + 16)?;
            p += 17;
            let value = match kind {
                0 => None,
                1 => {
                    let vlen = le_u32(b, p)? as usize;
                    if vlen > MAX_STORED_VALUE_BYTES {
                        return None;
                    }
                    let v = Arc::from(b.get(p + 4..p + 4 + vlen)?);
                    p += 4 + vlen;
                    Some(v)
                }
                _ => return None,
            };
            chain.push(Entry {
                version,
                timestamp: Timestamp(ts),
                value,
            });
        }
        out.push((key, chain));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Write;
    use crate::testing::FaultyVfs;

    #[test]
    fn write_read_round_trip_and_corruption() {
        let fs = FaultyVfs::new();
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let map = MvccMap::new();
        for v in 1..=3000u64 {
            let key = format!("key{:05}", v % 1000).into_bytes();
            let value = (v % 7 != 0).then(|| Arc::from(vec![v as u8; 100].as_slice()));
            map.apply(
                v,
                Timestamp(v),
                &[Write {
                    key: key.into(),
                    value,
                }],
            );
        }
        let (path, size) = write_snapshot(&vfs, dir, &map, 2500).unwrap();
        let bytes = vfs.read(&path).unwrap();
        assert_eq!(size as usize, bytes.len());
        assert_eq!(verify_snapshot(&path, &bytes).unwrap(), (2500, 2500));
        let snap = read_snapshot(&path, &bytes).unwrap();
        assert_eq!(snap.version, 2500);
        assert_eq!(snap.chains.len(), 1000);
        let total: usize = snap.chains.iter().map(|(_, c)| c.len()).sum();
        assert_eq!(total, 2500);
        assert!(snap.chains.windows(2).all(|w| w[0].0 < w[1].0));
        for at in [HEADER_LEN + 20, bytes.len() / 2, bytes.len() - 40] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(read_snapshot(&path, &bad).is_err(), "flip at {at}");
        }
        assert!(read_snapshot(&path, &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_long_history_of_large_values_spans_blocks() {
        // 300 versions of one 256 KiB value: 75 MiB for one key, far past one block.
        let fs = FaultyVfs::new();
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let map = MvccMap::new();
        let big: Arc<[u8]> = Arc::from(vec![7u8; 256 * 1024].as_slice());
        for v in 1..=300u64 {
            map.apply(
                v,
                Timestamp(v),
                &[Write {
                    key: b"k".to_vec().into(),
                    value: Some(big.clone()),
                }],
            );
        }
        let (path, _) = write_snapshot(&vfs, dir, &map, 300).unwrap();
        let bytes = vfs.read(&path).unwrap();
        let snap = read_snapshot(&path, &bytes).unwrap();
        assert_eq!(snap.chains.len(), 1);
        assert_eq!(snap.chains[0].1.len(), 300);
        assert!(snap.chains[0]
            .1
            .windows(2)
            .all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let fs = FaultyVfs::new();
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let map = MvccMap::new();
        for v in 1..=40u64 {
            map.apply(
                v,
                Timestamp(v),
                &[Write {
                    key: format!("k{}", v % 9).into_bytes().into(),
                    value: (v % 5 != 0).then(|| Arc::from(&b"value"[..])),
                }],
            );
        }
        let (path, _) = write_snapshot(&vfs, dir, &map, 40).unwrap();
        let bytes = vfs.read(&path).unwrap();
        for at in 0..bytes.len() {
            // Reserved bytes are not meaningful; everything else must be checked.
            if (12..16).contains(&at) || (24..28).contains(&at) {
                continue;
            }
            let f = bytes.len() - FOOTER_LEN;
            if (f + 20..f + 24).contains(&at) {
                continue;
            }
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(
                read_snapshot(&path, &bad).is_err(),
                "flip at {at} not detected"
            );
        }
    }

    #[test]
    fn a_failed_write_leaves_no_snapshot_and_no_temp_file() {
        let fs = FaultyVfs::new();
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let dir = Path::new("/db");
        vfs.create_dir_all(dir).unwrap();
        let map = MvccMap::new();
        map.apply(
            1,
            Timestamp(1),
            &[Write {
                key: b"k".to_vec().into(),
                value: Some(Arc::from(vec![1u8; 10_000].as_slice())),
            }],
        );
        fs.set_capacity(Some(5_000));
        assert!(write_snapshot(&vfs, dir, &map, 1).is_err());
        assert!(vfs.list(dir).unwrap().is_empty(), "{:?}", vfs.list(dir));
        fs.set_capacity(None);
        write_snapshot(&vfs, dir, &map, 1).unwrap();
    }
}
