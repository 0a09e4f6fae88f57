//! Snapshot files: the full multi-version state at one commit version.
//!
//! A snapshot is named `snap-<version>.snap` (20 decimal digits) and holds every version
//! chain as of commit `<version>`, sorted by key, in checksummed blocks with a sparse
//! index, so that a later version can read it in place through `mmap` instead of
//! loading it whole. Layout (integers little-endian):
//!
//! ```text
//! header (32 B): magic "STRATSNP" | format u32 (= 1) | reserved u32 | version u64 | key_count u64
//! blocks:        block_len u32 | crc32c(block_len ++ block) u32 | block
//!   block:       entries until ~64 KiB:
//!                key_len u32 | key | entry_count u32 |
//!                (version u64 | timestamp_us u64 | kind u8 (0 tombstone, 1 value) | [value_len u32 | value])*
//! index:         block_count u32 | (first_key_len u32 | first_key | offset u64 | len u32)*
//! footer (32 B): index_offset u64 | index_len u64 | index_crc32c u32 | block_count u32 | magic "STRATEND"
//! ```
//!
//! Written as `snap-<version>.snap.tmp`, synced, renamed into place, and the directory
//! synced: a crash at any point leaves either no snapshot or a complete one.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{Error, Result, Timestamp};

use crate::mvcc::{Chain, Entry, MvccMap};
use crate::vfs::{join, Vfs};
use crate::wal::io_err;

/// Magic bytes at the start of a snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"STRATSNP";
/// Magic bytes at the end of a snapshot.
pub const SNAPSHOT_END_MAGIC: &[u8; 8] = b"STRATEND";
/// Format version of snapshot files.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
const FOOTER_LEN: usize = 32;
const BLOCK_TARGET: usize = 64 * 1024;
const CHUNK_KEYS: usize = 4096;

pub(crate) fn snapshot_name(version: u64) -> String {
    format!("snap-{version:020}.snap")
}

pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

fn crc_block(block: &[u8]) -> u32 {
    let len = (block.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), block)
}

/// Writes the state visible at `version` and returns the snapshot's path. Reads the map
/// in chunks so that writers are never blocked for long.
pub(crate) fn write_snapshot(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
    map: &MvccMap,
    version: u64,
) -> Result<PathBuf> {
    let final_path = join(dir, &snapshot_name(version));
    let tmp_path = join(dir, &format!("{}.tmp", snapshot_name(version)));
    let _ = vfs.remove(&tmp_path);
    let file = vfs
        .open_append(&tmp_path)
        .map_err(|e| io_err(&tmp_path, e))?;
    let write = |b: &[u8]| file.append(b).map_err(|e| io_err(&tmp_path, e));

    let mut offset = HEADER_LEN as u64;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&version.to_le_bytes());
    // key_count is not known up front and is written as 0; readers ignore it.
    header.extend_from_slice(&0u64.to_le_bytes());
    write(&header)?;

    let mut index: Vec<(Box<[u8]>, u64, u32)> = Vec::new();
    let mut block = Vec::with_capacity(BLOCK_TARGET * 2);
    let mut first_key: Option<Box<[u8]>> = None;
    let mut out = Vec::with_capacity(BLOCK_TARGET * 2 + 8);
    let mut flush_block = |block: &mut Vec<u8>, first: &mut Option<Box<[u8]>>| -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        out.clear();
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc_block(block).to_le_bytes());
        out.extend_from_slice(block);
        write(&out)?;
        let key = first.take().unwrap_or_default();
        index.push((key, offset, out.len() as u32));
        offset += out.len() as u64;
        block.clear();
        Ok(())
    };

    let mut after: Option<Box<[u8]>> = None;
    loop {
        let chunk = map.chunk_after(after.as_deref(), version, CHUNK_KEYS);
        let Some((last, _)) = chunk.last() else { break };
        after = Some(last.clone());
        for (key, chain) in chunk {
            if first_key.is_none() {
                first_key = Some(key.clone());
            }
            block.extend_from_slice(&(key.len() as u32).to_le_bytes());
            block.extend_from_slice(&key);
            block.extend_from_slice(&(chain.len() as u32).to_le_bytes());
            for e in &chain {
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
            }
            if block.len() >= BLOCK_TARGET {
                flush_block(&mut block, &mut first_key)?;
            }
        }
    }
    flush_block(&mut block, &mut first_key)?;

    let mut idx = Vec::new();
    idx.extend_from_slice(&(index.len() as u32).to_le_bytes());
    for (k, off, len) in &index {
        idx.extend_from_slice(&(k.len() as u32).to_le_bytes());
        idx.extend_from_slice(k);
        idx.extend_from_slice(&off.to_le_bytes());
        idx.extend_from_slice(&len.to_le_bytes());
    }
    write(&idx)?;
    let mut footer = Vec::with_capacity(FOOTER_LEN);
    footer.extend_from_slice(&offset.to_le_bytes());
    footer.extend_from_slice(&(idx.len() as u64).to_le_bytes());
    footer.extend_from_slice(&crc32c::crc32c(&idx).to_le_bytes());
    footer.extend_from_slice(&(index.len() as u32).to_le_bytes());
    footer.extend_from_slice(SNAPSHOT_END_MAGIC);
    write(&footer)?;
    file.sync().map_err(|e| io_err(&tmp_path, e))?;
    drop(file);
    vfs.rename(&tmp_path, &final_path)
        .map_err(|e| io_err(&final_path, e))?;
    vfs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
    Ok(final_path)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A loaded snapshot: its version and its chains in key order.
pub(crate) struct LoadedSnapshot {
    pub version: u64,
    pub chains: Vec<(Box<[u8]>, Chain)>,
}

/// Reads and fully verifies a snapshot file.
/// Checks a snapshot's header, footer, index and every block checksum, calling
/// `on_block(offset, block)` for each verified block. Returns the snapshot's version.
fn for_each_block(
    path: &Path,
    buf: &[u8],
    mut on_block: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<u64> {
    let name = path.display();
    let corrupt = |what: &str| Error::Storage(format!("snapshot {name} is corrupt: {what}"));
    if buf.len() < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt("file too short"));
    }
    if &buf[..8] != SNAPSHOT_MAGIC {
        return Err(Error::Storage(format!(
            "{name} is not a StrataDB snapshot (bad magic)"
        )));
    }
    let fmt = le_u32(buf, 8).unwrap_or(0);
    if fmt != SNAPSHOT_FORMAT_VERSION {
        return Err(Error::Storage(format!(
            "snapshot {name} has format version {fmt}; this build reads version {SNAPSHOT_FORMAT_VERSION}"
        )));
    }
    let version = le_u64(buf, 16).ok_or_else(|| corrupt("header"))?;
    let f = buf.len() - FOOTER_LEN;
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

/// Reads and fully verifies a snapshot file.
pub(crate) fn read_snapshot(path: &Path, buf: &[u8]) -> Result<LoadedSnapshot> {
    let mut chains = Vec::new();
    let version = for_each_block(path, buf, |pos, block| {
        decode_block(block, &mut chains).ok_or_else(|| {
            Error::Storage(format!(
                "snapshot {} is corrupt: block at offset {pos} is malformed",
                path.display()
            ))
        })
    })?;
    Ok(LoadedSnapshot { version, chains })
}

/// Verifies every checksum of a snapshot without decoding its entries (used right
/// after writing one, before deleting what it replaces). Returns its version.
pub(crate) fn verify_snapshot(path: &Path, buf: &[u8]) -> Result<u64> {
    for_each_block(path, buf, |_, _| Ok(()))
}

fn decode_block(b: &[u8], out: &mut Vec<(Box<[u8]>, Chain)>) -> Option<()> {
    let mut p = 0;
    while p < b.len() {
        let klen = le_u32(b, p)? as usize;
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
        let path = write_snapshot(&vfs, dir, &map, 2500).unwrap();
        let bytes = vfs.read(&path).unwrap();
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
}
