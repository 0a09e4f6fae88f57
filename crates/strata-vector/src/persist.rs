//! Index files: a collection's in-memory index written to disk so that reopening a
//! database loads it instead of rebuilding the HNSW graph from the records.
//!
//! An index file is a cache: the vector records are the source of truth. A file that is
//! missing, unreadable, corrupted, of another format version or of another incarnation of
//! the collection (`created_version` differs) is ignored and the index rebuilt. A valid
//! file is reconciled with the records on load (see `Vectors::open`). The byte layout is
//! documented in `docs/storage-format.md` ("Vector index files").
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_core::{Error, Result, RunId};

use std::sync::Arc;

use crate::arena::{FileMap, FloatSection, SECTION_ALIGN};
use crate::index::CollectionIndex;

/// Magic bytes opening every index file.
pub const MAGIC: &[u8; 8] = b"STRATVIX";
/// The index file format this build writes (the graph's vectors in a section of their
/// own, mapped and read in place).
pub const FORMAT_VERSION: u32 = 2;
/// The earlier format (vectors inline in the graph), still read.
pub const FORMAT_VERSION_INLINE: u32 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 40;

/// Suffix of index files.
pub const EXTENSION: &str = "vidx";

/// The directory holding the index files of a database in `dir`.
pub fn root(dir: &Path) -> PathBuf {
    dir.join("vectors")
}

/// Collection names up to this many bytes are spelled out in hex in their index file's
/// name (as earlier builds did for every name, so their files keep loading); longer
/// names, up to the 1 KiB key limit, are hashed so that the file name stays far below
/// every file system's 255-byte limit.
pub const MAX_HEX_NAME_BYTES: usize = 64;

/// The file name of a collection's index: `<hex(name)>.vidx` for names of at most
/// [`MAX_HEX_NAME_BYTES`] bytes (at most 133 characters), else
/// `h<hex(SHA-256(name)[..16])>.vidx` (38 characters; `h` is not a hex digit, so the two
/// forms never meet). The full name is stored in the file and checked on load, so even a
/// hash collision can only make an index be rebuilt, never load another collection's
/// index; `Vectors::persist_indexes` also refuses to write two collections to one file.
pub fn file_name(name: &str) -> String {
    use sha2::Digest;
    let mut out = String::with_capacity(2 * MAX_HEX_NAME_BYTES + 6);
    if name.len() <= MAX_HEX_NAME_BYTES {
        push_hex(&mut out, name.as_bytes());
    } else {
        out.push('h');
        let digest = sha2::Sha256::digest(name.as_bytes());
        push_hex(&mut out, &digest[..16]);
    }
    out.push('.');
    out.push_str(EXTENSION);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

/// `true` for the names of files this module writes: index files and their temporary
/// files. Only those are ever removed from an index directory.
pub fn is_own_file(file_name: &str) -> bool {
    let stem = file_name
        .strip_suffix(".tmp")
        .unwrap_or(file_name)
        .strip_suffix(EXTENSION)
        .and_then(|s| s.strip_suffix('.'));
    stem.is_some_and(|s| {
        let hex = s.strip_prefix('h').unwrap_or(s);
        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Removes the index files (ours only) of `run`, then its directory if that leaves it
/// empty, durably.
pub fn remove_run_files(dir: &Path, run: &RunId) -> std::io::Result<()> {
    let root = root(dir);
    let run_dir = root.join(run.to_string());
    let files = match std::fs::read_dir(&run_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for f in files {
        let f = f?;
        let name = f.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| is_own_file(n) || n.ends_with(".tmp"));
        if ours {
            std::fs::remove_file(f.path())?;
        }
    }
    sync_dir(&run_dir)?;
    if std::fs::remove_dir(&run_dir).is_ok() {
        sync_dir(&root)?;
    }
    Ok(())
}

/// `<dir>/vectors/<run uuid>/<file_name(name)>`.
pub fn file_path(dir: &Path, run: &RunId, name: &str) -> PathBuf {
    root(dir).join(run.to_string()).join(file_name(name))
}

/// What an index file holds besides the index.
pub(crate) struct FileContents {
    pub created_version: u64,
    pub applied: HashMap<String, u64>,
    pub index: CollectionIndex,
}

/// An index file encoded up to its vector section: what [`write_file`] writes.
pub(crate) struct EncodedFile {
    /// The header and payload before the vector section, padding included; the
    /// header's checksum is filled in by [`write_file`].
    head: Vec<u8>,
    /// Vector slots to write after `head`, from the index's arena.
    arena_slots: usize,
    dim: usize,
}

impl EncodedFile {
    /// Bytes of the whole file.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.arena_slots * self.dim * 4
    }
}

/// Encodes an index file (format 2): everything but the graph's vectors, which
/// [`write_file`] streams from the index after these bytes.
pub(crate) fn encode_file(
    run: &RunId,
    name: &str,
    created_version: u64,
    applied: &HashMap<std::sync::Arc<str>, u64>,
    index: &CollectionIndex,
) -> Result<EncodedFile> {
    let (index_bytes, arena_slots) = index.encode(false)?;
    let dim = index.dimension();
    let applied_bytes: usize = applied.keys().map(|k| k.len() + 12).sum();
    let mut out = Vec::with_capacity(
        HEADER_LEN + 40 + name.len() + applied_bytes + index_bytes.len() + SECTION_ALIGN,
    );
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u64(&mut out, created_version);
    put_u64(&mut out, applied.values().copied().max().unwrap_or(0));
    put_u64(&mut out, 0); // payload length, patched below
    put_u32(&mut out, 0); // checksum, filled in by `write_file`
    out.extend_from_slice(run.as_bytes());
    put_str(&mut out, name)?;
    put_u64(&mut out, applied.len() as u64);
    // Sorted, so that equal states give equal files.
    let mut pairs: Vec<(&std::sync::Arc<str>, &u64)> = applied.iter().collect();
    pairs.sort_unstable();
    for (k, v) in pairs {
        put_str(&mut out, k)?;
        put_u64(&mut out, *v);
    }
    put_u64(&mut out, index_bytes.len() as u64);
    out.extend_from_slice(&index_bytes);
    let floats = arena_slots as u64 * dim as u64;
    put_u64(&mut out, floats);
    // The vector section starts at a multiple of 64 bytes of the file, so that it can
    // be mapped and read in place as `f32`s.
    out.resize(out.len().next_multiple_of(SECTION_ALIGN), 0);
    let payload_len = (out.len() - HEADER_LEN) as u64 + floats * 4;
    out[28..36].copy_from_slice(&payload_len.to_le_bytes());
    Ok(EncodedFile {
        head: out,
        arena_slots,
        dim,
    })
}

/// An index file in memory, vector section included (tests and tools).
#[cfg(test)]
pub(crate) fn encode_file_bytes(
    run: &RunId,
    name: &str,
    created_version: u64,
    applied: &HashMap<std::sync::Arc<str>, u64>,
    index: &CollectionIndex,
) -> Result<Vec<u8>> {
    let file = encode_file(run, name, created_version, applied, index)?;
    let mut out = file.head.clone();
    for v in index.vector_arena().iter().take(file.arena_slots) {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..36]), &out[HEADER_LEN..]);
    out[36..40].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// An index file written to its temporary path, not yet renamed into place.
pub(crate) struct WrittenFile {
    file: std::fs::File,
    tmp: PathBuf,
    path: PathBuf,
    /// Where the vector section starts, and its length in `f32`s.
    section: (usize, usize),
}

/// Writes `encoded` and then the vectors of `index` to `path`'s temporary file,
/// computing the checksum on the way (the vectors are streamed from the arena, never
/// copied into one buffer). [`WrittenFile::install`] makes it durable and puts it in
/// place; the caller may drop its lock on the index in between.
pub(crate) fn write_file(
    path: &Path,
    encoded: &EncodedFile,
    index: &CollectionIndex,
) -> std::io::Result<WrittenFile> {
    use std::io::{Seek, SeekFrom};
    let dir = path.parent().expect("index files live in a directory");
    create_dir_all_private(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(&tmp)?;
    let head = &encoded.head;
    let mut crc = crc32c::crc32c_append(crc32c::crc32c(&head[..36]), &head[HEADER_LEN..]);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
    w.write_all(head)?;
    let mut chunk = Vec::with_capacity(encoded.dim * 4);
    for v in index.vector_arena().iter().take(encoded.arena_slots) {
        chunk.clear();
        for x in v {
            chunk.extend_from_slice(&x.to_le_bytes());
        }
        crc = crc32c::crc32c_append(crc, &chunk);
        w.write_all(&chunk)?;
    }
    w.flush()?;
    drop(w);
    (&file).seek(SeekFrom::Start(36))?;
    (&file).write_all(&crc.to_le_bytes())?;
    Ok(WrittenFile {
        file,
        tmp,
        path: path.to_path_buf(),
        section: (head.len(), encoded.arena_slots * encoded.dim),
    })
}

impl WrittenFile {
    /// Fsyncs the file (with `sync`), renames it over its path, fsyncs the directory
    /// (with `sync`). With `sync` false the file is a cache the records can always
    /// rebuild, and its checksum rejects whatever a power loss leaves of it.
    pub(crate) fn install(self, sync: bool) -> std::io::Result<InstalledFile> {
        if sync {
            self.file.sync_all()?;
        }
        std::fs::rename(&self.tmp, &self.path)?;
        if sync {
            sync_dir(self.path.parent().expect("index files live in a directory"))?;
        }
        Ok(InstalledFile {
            file: self.file,
            section: self.section,
        })
    }
}

/// An index file in place, still open.
pub(crate) struct InstalledFile {
    file: std::fs::File,
    section: (usize, usize),
}

impl InstalledFile {
    /// Its vector section, mapped for the index it was written from to read in place
    /// (`None` without one, or if it cannot be mapped).
    pub(crate) fn map_section(&self) -> Option<FloatSection> {
        let (offset, floats) = self.section;
        if floats == 0 {
            return None;
        }
        let map = FileMap::populated(&self.file).ok()?;
        FloatSection::from_map(&Arc::new(map), offset, floats)
    }
}

/// Decodes and checks an index file written for `run`/`name`. With `map` (the mapping
/// `bytes` come from) the vector section is read in place, else it is copied. Files of
/// format 1 (vectors inline) are read too.
pub(crate) fn decode_file(
    bytes: &[u8],
    map: Option<&Arc<FileMap>>,
    run: &RunId,
    name: &str,
) -> Result<FileContents> {
    let bad = |what: &str| Error::Serialization(format!("vector index file: {what}"));
    if bytes.len() < HEADER_LEN {
        return Err(bad("truncated header"));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let mut h = ByteReader::new(&bytes[8..HEADER_LEN]);
    let version = h.u32()?;
    if version != FORMAT_VERSION && version != FORMAT_VERSION_INLINE {
        return Err(bad(&format!(
            "format version {version}; this build reads {FORMAT_VERSION_INLINE} and {FORMAT_VERSION}"
        )));
    }
    let created_version = h.u64()?;
    let _max_applied = h.u64()?;
    let payload_len = h.u64()?;
    let stored_crc = h.u32()?;
    if payload_len != (bytes.len() - HEADER_LEN) as u64 {
        return Err(bad("payload length differs from the file size"));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..36]), &bytes[HEADER_LEN..]);
    if crc != stored_crc {
        return Err(bad("checksum mismatch"));
    }
    let mut r = ByteReader::new(&bytes[HEADER_LEN..]);
    if r.take(16)? != run.as_bytes() {
        return Err(bad("written for another run"));
    }
    if r.str()? != name {
        return Err(bad("written for another collection"));
    }
    let count = r.u64()?;
    // Each entry takes at least 12 bytes: reject absurd counts before allocating.
    if count > (r.remaining() / 12) as u64 {
        return Err(bad("applied-version count exceeds the data"));
    }
    let mut applied = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let k = r.str()?.to_owned();
        let v = r.u64()?;
        applied.insert(k, v);
    }
    let len = r.u64()?;
    if version == FORMAT_VERSION_INLINE {
        if len != r.remaining() as u64 {
            return Err(bad("index length differs from the data"));
        }
        let index = CollectionIndex::from_bytes(r.take(len as usize)?)?;
        return Ok(FileContents {
            created_version,
            applied,
            index,
        });
    }
    if len > r.remaining() as u64 {
        return Err(bad("index length exceeds the data"));
    }
    let index_bytes = r.take(len as usize)?;
    let floats = r.u64()?;
    let offset = (bytes.len() - r.remaining()).next_multiple_of(SECTION_ALIGN);
    let section_len = (bytes.len() as u64).checked_sub(offset as u64);
    if section_len.is_none() || section_len != floats.checked_mul(4) {
        return Err(bad("vector section length differs from the data"));
    }
    let floats = floats as usize;
    let section = match (floats, map) {
        (0, _) => None,
        (_, Some(m)) => Some(
            FloatSection::from_map(m, offset, floats)
                .ok_or_else(|| bad("vector section outside the mapping"))?,
        ),
        (_, None) => Some(FloatSection::copied(&bytes[offset..])),
    };
    let index = CollectionIndex::decode(index_bytes, section)?;
    Ok(FileContents {
        created_version,
        applied,
        index,
    })
}

/// Checks an index file written for `run`/`name` (header, checksum, contents) without
/// keeping it; returns the number of vectors it holds. Used by `strata verify`.
pub fn check_file(bytes: &[u8], run: &RunId, name: &str) -> Result<u64> {
    decode_file(bytes, None, run, name).map(|f| f.index.len() as u64)
}

/// The collection name of an index file name (`<hex(name)>.vidx`), if it is one.
pub fn collection_of_file_name(file_name: &str) -> Option<String> {
    let hex = file_name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn create_dir_all_private(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Fsyncs a directory (so that renames and removals in it are durable).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

pub(crate) fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// A `u32` length then the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let len = u32::try_from(b.len())
        .map_err(|_| Error::Serialization("field longer than 4 GiB".into()))?;
    put_u32(out, len);
    out.extend_from_slice(b);
    Ok(())
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    put_bytes(out, s.as_bytes())
}

/// Bounds-checked little-endian reads; every error is a `Serialization` error.
pub(crate) struct ByteReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        ByteReader { b, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Error::Serialization("vector index: truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| Error::Serialization("vector index: string is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::DistanceMetric;
    use crate::filter::SearchFilter;
    use crate::index::CollectionConfig;
    use proptest::prelude::*;
    use std::io::Write;
    use strata_core::Value;

    fn v(n: usize, dim: usize) -> Vec<f32> {
        (0..dim)
            .map(|i| ((n * 31 + i * 7) % 97) as f32 / 97.0 - 0.5 + (n % 5) as f32 * 0.01)
            .collect()
    }

    fn meta(n: usize) -> Option<Value> {
        n.is_multiple_of(2).then(|| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("g".to_string(), Value::Int((n % 4) as i64));
            Value::Object(m.into_iter().collect())
        })
    }

    /// An index with updates and deletes: exact (`n` small) or with a graph.
    fn index(n: usize, threshold: usize) -> CollectionIndex {
        let mut c = CollectionConfig::new(6, DistanceMetric::Cosine);
        c.exact_threshold = threshold;
        let mut ix = CollectionIndex::new(c).unwrap();
        for i in 0..n {
            ix.upsert(&format!("k{i}"), &v(i, 6), meta(i)).unwrap();
        }
        for i in (0..n).step_by(9) {
            ix.delete(&format!("k{i}"));
        }
        for i in (1..n).step_by(11) {
            ix.upsert(&format!("k{i}"), &v(i + 1000, 6), meta(i + 1))
                .unwrap();
        }
        ix
    }

    fn results(ix: &CollectionIndex) -> Vec<Vec<(String, f32)>> {
        let f = SearchFilter::eq("g", 2i64);
        (0..8)
            .flat_map(|q| {
                [
                    ix.search(&v(q + 500, 6), 7, None).unwrap(),
                    ix.search(&v(q + 500, 6), 7, Some(&f)).unwrap(),
                ]
            })
            .collect()
    }

    #[test]
    fn collection_index_round_trips() {
        for (n, threshold) in [(0, 2000), (40, 2000), (300, 100)] {
            let ix = index(n, threshold);
            assert_eq!(ix.hnsw().is_some(), n == 300);
            let back = CollectionIndex::from_bytes(&ix.to_bytes().unwrap()).unwrap();
            assert_eq!(back.len(), ix.len());
            assert_eq!(back.config(), ix.config());
            assert_eq!(results(&back), results(&ix));
            let a: Vec<_> = ix.iter().collect();
            let b: Vec<_> = back.iter().collect();
            assert_eq!(a, b);
            assert_eq!(back.to_bytes().unwrap(), ix.to_bytes().unwrap());
        }
    }

    /// The bytes an earlier build wrote (format 1: the vectors inline in the graph).
    fn encode_file_v1(
        run: &RunId,
        name: &str,
        created_version: u64,
        applied: &HashMap<std::sync::Arc<str>, u64>,
        index: &CollectionIndex,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        put_u32(&mut out, FORMAT_VERSION_INLINE);
        put_u64(&mut out, created_version);
        put_u64(&mut out, applied.values().copied().max().unwrap_or(0));
        put_u64(&mut out, 0);
        put_u32(&mut out, 0);
        out.extend_from_slice(run.as_bytes());
        put_str(&mut out, name).unwrap();
        put_u64(&mut out, applied.len() as u64);
        for (k, v) in applied {
            put_str(&mut out, k).unwrap();
            put_u64(&mut out, *v);
        }
        let index_bytes = index.to_bytes().unwrap();
        put_u64(&mut out, index_bytes.len() as u64);
        out.extend_from_slice(&index_bytes);
        let payload_len = (out.len() - HEADER_LEN) as u64;
        out[28..36].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..36]), &out[HEADER_LEN..]);
        out[36..40].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn mapped(bytes: &[u8]) -> Arc<FileMap> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Arc::new(FileMap::sequential(&f).unwrap())
    }

    #[test]
    fn file_round_trips_and_checks_its_owner() {
        let run = RunId::from_bytes([7; 16]);
        for (n, threshold) in [(40, 2000), (300, 100)] {
            let ix = index(n, threshold);
            let applied: HashMap<std::sync::Arc<str>, u64> = (0..n as u64)
                .map(|i| (format!("k{i}").into(), i + 10))
                .collect();
            let bytes = encode_file_bytes(&run, "coll", 5, &applied, &ix).unwrap();
            assert_eq!(&bytes[..8], MAGIC);
            assert_eq!(
                u64::from_le_bytes(bytes[20..28].try_into().unwrap()),
                n as u64 + 9
            );
            let map = mapped(&bytes);
            let old = encode_file_v1(&run, "coll", 5, &applied, &ix);
            for (what, f) in [
                ("copied", decode_file(&bytes, None, &run, "coll").unwrap()),
                (
                    "mapped",
                    decode_file(map.bytes(), Some(&map), &run, "coll").unwrap(),
                ),
                ("format 1", decode_file(&old, None, &run, "coll").unwrap()),
            ] {
                assert_eq!(f.created_version, 5, "{what}");
                assert_eq!(f.applied.len(), applied.len(), "{what}");
                for (k, v) in &applied {
                    assert_eq!(f.applied.get(&**k), Some(v), "{what}");
                }
                assert_eq!(results(&f.index), results(&ix), "{what}");
                assert_eq!(
                    f.index.to_bytes().unwrap(),
                    ix.to_bytes().unwrap(),
                    "{what}"
                );
                // Only a graph's vectors are read in place, and only from a mapping.
                let in_place = what == "mapped" && n == 300;
                assert_eq!(f.index.mapped_bytes() > 0, in_place, "{what}");
            }
            assert!(decode_file(&bytes, None, &run, "other").is_err());
            assert!(decode_file(&bytes, None, &RunId::DEFAULT, "coll").is_err());
            for at in [0, 8, 12, 20, 28, 36, 40, bytes.len() / 2, bytes.len() - 1] {
                let mut b = bytes.clone();
                b[at] ^= 0x10;
                assert!(decode_file(&b, None, &run, "coll").is_err(), "flip at {at}");
            }
            assert!(decode_file(&bytes[..bytes.len() - 1], None, &run, "coll").is_err());
        }
        assert_eq!(
            file_path(Path::new("/d"), &run, "a/b"),
            PathBuf::from(format!("/d/vectors/{run}/612f62.vidx"))
        );
    }

    /// The vector section starts 64-byte aligned in the file and holds every slot of
    /// the graph, whatever the lengths of the name and keys before it.
    #[test]
    fn the_vector_section_is_aligned_and_whole() {
        let run = RunId::from_bytes([3; 16]);
        let ix = index(300, 100);
        for name in ["c", "co", "col", "coll5"] {
            let applied = HashMap::new();
            let f = encode_file(&run, name, 1, &applied, &ix).unwrap();
            assert_eq!(f.head.len() % SECTION_ALIGN, 0, "{name}");
            assert_eq!(f.arena_slots, ix.hnsw().unwrap().encoded_slots());
            let bytes = encode_file_bytes(&run, name, 1, &applied, &ix).unwrap();
            assert_eq!(bytes.len(), f.len());
        }
    }

    /// A file ending right after a `floats` count too large to be a length is an
    /// error, not a panic (checked without a mapping, as `strata verify` reads files).
    #[test]
    fn a_huge_section_count_without_the_section_is_an_error() {
        let run = RunId::from_bytes([5; 16]);
        let ix = index(300, 100);
        let applied = HashMap::new();
        let head = encode_file(&run, "c", 1, &applied, &ix).unwrap().head;
        let floats_at = 40 + 16 + 4 + 1 + 8 + 8 + ix.encode(false).unwrap().0.len();
        for floats in [u64::MAX, u64::MAX / 4 + 1, 1 << 62] {
            let mut b = head[..floats_at].to_vec();
            b.extend_from_slice(&floats.to_le_bytes());
            let payload_len = (b.len() - HEADER_LEN) as u64;
            b[28..36].copy_from_slice(&payload_len.to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..36]), &b[HEADER_LEN..]);
            b[36..40].copy_from_slice(&crc.to_le_bytes());
            let e = decode_file(&b, None, &run, "c").err().expect("an error");
            assert!(e.to_string().contains("vector section"), "{e}");
        }
    }

    /// A section the index does not account for (too short, too long) is an error.
    #[test]
    fn a_section_of_the_wrong_length_is_rejected() {
        let run = RunId::from_bytes([4; 16]);
        let ix = index(300, 100);
        let applied = HashMap::new();
        let bytes = encode_file_bytes(&run, "c", 1, &applied, &ix).unwrap();
        // Dropping the last vector and fixing length and checksum: still an error.
        let dim = 6;
        let mut short = bytes[..bytes.len() - dim * 4].to_vec();
        let payload_len = (short.len() - HEADER_LEN) as u64;
        short[28..36].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&short[..36]), &short[HEADER_LEN..]);
        short[36..40].copy_from_slice(&crc.to_le_bytes());
        let e = decode_file(&short, None, &run, "c").err().unwrap();
        assert!(e.to_string().contains("vector section"), "{e}");
    }

    #[test]
    fn long_names_get_bounded_file_names() {
        let at_limit = "x".repeat(MAX_HEX_NAME_BYTES);
        assert_eq!(
            file_name(&at_limit),
            format!("{}.vidx", "78".repeat(MAX_HEX_NAME_BYTES))
        );
        let long = "y".repeat(1024);
        let f = file_name(&long);
        assert_eq!(f.len(), 38, "{f}");
        assert!(f.starts_with('h') && f.ends_with(".vidx"), "{f}");
        assert_ne!(f, file_name(&"y".repeat(1023)));
        for name in [at_limit.as_str(), long.as_str(), "a"] {
            assert!(is_own_file(&file_name(name)));
            assert!(is_own_file(&format!("{}.tmp", file_name(name))));
        }
        for foreign in [
            "notes.tmp",
            "x.tmp",
            "a.vidx.bak",
            ".vidx",
            "zz.vidx",
            "README",
        ] {
            assert!(!is_own_file(foreign), "{foreign}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Arbitrary damage with a recomputed (valid) checksum is an error, never a panic
        /// or a huge allocation.
        #[test]
        fn damaged_index_bytes_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let ix = index(40, 2000);
            let mut b = ix.to_bytes().unwrap();
            for (at, x) in edits {
                let at = at % b.len();
                b[at] = x;
            }
            let cut = cut % (b.len() + 1);
            let _ = CollectionIndex::from_bytes(&b[..cut]);
            let _ = CollectionIndex::from_bytes(&b);
        }
    }
}
