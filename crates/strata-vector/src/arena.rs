//! The vector arena: where an index keeps the full-precision components of its vectors,
//! either in its own memory or read in place from its index file.
//!
//! A collection's vectors are by far the largest thing it holds (1,000,000 × 384 `f32`
//! are 1.43 GiB). Once an index file has been written, every vector it holds is on
//! disk, byte for byte as in memory; so after a file is written (and when one is
//! loaded) the arena maps the file's vector section and drops its own copy. Those
//! vectors are then the operating system's page cache (`RssFile`, shared, reclaimable
//! and read back from disk on demand) instead of the process's anonymous memory: a
//! collection larger than memory still searches, at the speed of the disk for the
//! vectors that were evicted. An int8 collection walks its graph on codes held in
//! memory and reads `f32` vectors only to re-rank the few best candidates.
//!
//! The arena is split at a slot: slots below `mapped_slots` are read from the mapping,
//! the others from `owned`. Ids of a graph are only ever appended (they are reused only
//! by compaction, which rebuilds the arena), so new vectors go to `owned` and the
//! mapped part never changes. Writing a mapped slot (an exact collection overwrites in
//! place) first copies the mapped part into memory ([`VectorArena::materialize`]).
//!
//! On-disk components are little-endian `f32`; on a big-endian host the section is
//! copied (and byte-swapped) instead of mapped.
#![allow(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::sync::Arc;

/// Byte alignment of the vector section in an index file (a cache line; `f32` needs 4).
pub(crate) const SECTION_ALIGN: usize = 64;

/// A read-only mapping of an index file.
///
/// Safety argument for the `unsafe` here: `memmap2::Mmap::map` is unsafe because the
/// mapped bytes could change (or the file shrink, raising `SIGBUS`) under the reader.
/// Index files are written to a temporary file, renamed into place and never written
/// or truncated again; replacing or deleting one unlinks it, which keeps a mapped
/// inode alive. Another program editing a database's files is outside the contract, as
/// it is for every embedded database (the storage's sorted runs make the same argument).
pub(crate) struct FileMap(memmap2::Mmap);

impl FileMap {
    /// Maps `file` for one sequential pass (the checksum) before random reads: the
    /// kernel reads ahead while the file is checked; [`Self::advise_random`] afterwards.
    pub(crate) fn sequential(file: &File) -> std::io::Result<FileMap> {
        // SAFETY: see the type's documentation: the file is immutable while mapped.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(FileMap(map))
    }

    /// Maps a file just written (its pages are in the page cache) for random reads,
    /// with every page table entry set up now (`MAP_POPULATE`): otherwise the searches
    /// right after a checkpoint would take one page fault per 4 KiB page they touch
    /// first (random advice turns the kernel's fault-around off), which measured 23 %
    /// fewer queries per second at 1,000,000 × 384 than with the vectors in memory.
    pub(crate) fn populated(file: &File) -> std::io::Result<FileMap> {
        // SAFETY: see the type's documentation: the file is immutable while mapped.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        let map = FileMap(map);
        map.advise_random();
        Ok(map)
    }

    /// Graph walks read scattered vectors: no read-ahead around each fault.
    pub(crate) fn advise_random(&self) {
        #[cfg(unix)]
        let _ = self.0.advise(memmap2::Advice::Random);
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `floats` little-endian `f32` at `offset` of a mapping, read as `&[f32]`.
#[derive(Clone)]
struct MappedFloats {
    map: Arc<FileMap>,
    offset: usize,
    floats: usize,
}

impl MappedFloats {
    #[inline]
    fn as_slice(&self) -> &[f32] {
        let bytes = &self.map.bytes()[self.offset..self.offset + self.floats * 4];
        // SAFETY: `MappedFloats::new` checked that the range lies in the mapping and
        // starts 4-byte aligned (the mapping starts on a page boundary and the offset
        // is a multiple of 4), and that the host is little-endian, so the bytes are
        // valid `f32`s (every bit pattern is) laid out as the file stores them. The
        // slice borrows `self`, which holds the mapping alive.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.floats) }
    }

    fn new(map: Arc<FileMap>, offset: usize, floats: usize) -> Option<MappedFloats> {
        let end = floats.checked_mul(4)?.checked_add(offset)?;
        let aligned =
            (map.bytes().as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<f32>());
        (cfg!(target_endian = "little") && end <= map.bytes().len() && aligned).then_some(
            MappedFloats {
                map,
                offset,
                floats,
            },
        )
    }
}

/// The floats of an index file's vector section, before the index that owns them
/// gives them a dimension: mapped where the host allows, else copied.
pub(crate) struct FloatSection(Section);

enum Section {
    Mapped(MappedFloats),
    Owned(Vec<f32>),
}

impl FloatSection {
    /// `floats` components at `offset` of `map`, copied when they cannot be mapped (a
    /// big-endian host); `None` when the range does not lie in the mapping.
    pub(crate) fn from_map(
        map: &Arc<FileMap>,
        offset: usize,
        floats: usize,
    ) -> Option<FloatSection> {
        let end = floats.checked_mul(4)?.checked_add(offset)?;
        let bytes = map.bytes().get(offset..end)?;
        Some(match MappedFloats::new(map.clone(), offset, floats) {
            Some(m) => FloatSection(Section::Mapped(m)),
            None => FloatSection::copied(bytes),
        })
    }

    /// A copy of little-endian `f32` bytes (`bytes.len()` a multiple of 4).
    pub(crate) fn copied(bytes: &[u8]) -> FloatSection {
        FloatSection(Section::Owned(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    /// Number of components.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Section::Mapped(m) => m.floats,
            Section::Owned(v) => v.len(),
        }
    }
}

/// Vectors of `dim` components by slot: the first `mapped_slots` read from a mapped
/// index file, the rest held in memory. See the [module documentation](self).
#[derive(Clone)]
pub(crate) struct VectorArena {
    dim: usize,
    mapped: Option<MappedFloats>,
    mapped_slots: usize,
    owned: Vec<f32>,
}

impl fmt::Debug for VectorArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorArena")
            .field("dim", &self.dim)
            .field("mapped_slots", &self.mapped_slots)
            .field("owned_slots", &(self.owned.len() / self.dim.max(1)))
            .finish()
    }
}

impl VectorArena {
    /// An empty arena of `dim`-component vectors, all in memory.
    pub(crate) fn new(dim: usize) -> VectorArena {
        VectorArena {
            dim,
            mapped: None,
            mapped_slots: 0,
            owned: Vec::new(),
        }
    }

    /// An arena over a file's vector section; `None` when its length is not a whole
    /// number of `dim`-component vectors.
    pub(crate) fn from_section(dim: usize, section: FloatSection) -> Option<VectorArena> {
        if dim == 0 || !section.len().is_multiple_of(dim) {
            return None;
        }
        let slots = section.len() / dim;
        Some(match section.0 {
            Section::Mapped(m) => VectorArena {
                dim,
                mapped: Some(m),
                mapped_slots: slots,
                owned: Vec::new(),
            },
            Section::Owned(owned) => VectorArena {
                dim,
                mapped: None,
                mapped_slots: 0,
                owned,
            },
        })
    }

    /// Components per vector.
    pub(crate) fn dimension(&self) -> usize {
        self.dim
    }

    /// Number of slots (vector positions) the arena holds.
    pub(crate) fn slots(&self) -> usize {
        self.mapped_slots + self.owned.len() / self.dim
    }

    /// The vector of slot `idx` (which must be below [`Self::slots`]).
    #[inline]
    pub(crate) fn get(&self, idx: usize) -> &[f32] {
        if idx < self.mapped_slots {
            let all = match &self.mapped {
                Some(m) => m.as_slice(),
                None => &[],
            };
            &all[idx * self.dim..(idx + 1) * self.dim]
        } else {
            let start = (idx - self.mapped_slots) * self.dim;
            &self.owned[start..start + self.dim]
        }
    }

    /// Overwrites slot `idx` (below [`Self::slots`]); a mapped slot first brings the
    /// mapped part into memory.
    pub(crate) fn set(&mut self, idx: usize, vector: &[f32]) {
        if idx < self.mapped_slots {
            self.materialize();
        }
        let start = (idx - self.mapped_slots) * self.dim;
        self.owned[start..start + self.dim].copy_from_slice(vector);
    }

    /// Grows the arena to `slots` slots (new ones zeroed); never shrinks it.
    pub(crate) fn grow_to(&mut self, slots: usize) {
        if slots > self.slots() {
            self.owned
                .resize((slots - self.mapped_slots) * self.dim, 0.0);
        }
    }

    /// Copies the mapped part into memory and drops the mapping.
    pub(crate) fn materialize(&mut self) {
        if let Some(m) = self.mapped.take() {
            tracing::debug!(
                slots = self.mapped_slots,
                "vector arena: mapped vectors copied into memory"
            );
            let mut all = Vec::with_capacity(m.floats + self.owned.len());
            all.extend_from_slice(m.as_slice());
            all.append(&mut self.owned);
            self.owned = all;
            self.mapped_slots = 0;
        }
    }

    /// Replaces the arena by the slots `keep` lists, in that order, all in memory.
    pub(crate) fn rebuild(&mut self, keep: impl Iterator<Item = usize>) {
        let mut owned = Vec::new();
        for idx in keep {
            owned.extend_from_slice(self.get(idx));
        }
        owned.shrink_to_fit();
        *self = VectorArena {
            dim: self.dim,
            mapped: None,
            mapped_slots: 0,
            owned,
        };
    }

    /// Reads the first `section.len() / dim` slots from `section` from now on, dropping
    /// the memory they held. The section must hold exactly the vectors of those slots
    /// (it was just written from this arena). Returns `false`, changing nothing, when
    /// it does not cover a whole number of the arena's slots or is not mapped.
    pub(crate) fn adopt(&mut self, section: FloatSection) -> bool {
        let Section::Mapped(m) = section.0 else {
            return false;
        };
        if !m.floats.is_multiple_of(self.dim) {
            return false;
        }
        let slots = m.floats / self.dim;
        // A shorter section would leave mapped slots uncovered; the old mapping (an
        // earlier file) holds the same vectors for the slots both cover.
        if slots < self.mapped_slots || slots > self.slots() {
            return false;
        }
        let now_mapped = (slots - self.mapped_slots) * self.dim;
        self.owned = self.owned[now_mapped..].to_vec();
        self.mapped = Some(m);
        self.mapped_slots = slots;
        true
    }

    /// Bytes of vectors held in the process's memory.
    pub(crate) fn owned_bytes(&self) -> usize {
        self.owned.capacity() * 4
    }

    /// Bytes of vectors read from a mapped file.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.mapped_slots * self.dim * 4
    }

    /// Iterates over every slot's vector in order (for writing a file).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[f32]> + '_ {
        (0..self.slots()).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn map_of(floats: &[f32], lead: usize) -> Arc<FileMap> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![0u8; lead]).unwrap();
        for x in floats {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
        Arc::new(FileMap::sequential(&f).unwrap())
    }

    #[test]
    fn mapped_and_owned_slots_read_and_write_alike() {
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let map = map_of(&data, 64);
        let section = FloatSection::from_map(&map, 64, 12).unwrap();
        let mut a = VectorArena::from_section(3, section).unwrap();
        assert_eq!(a.slots(), 4);
        assert_eq!(a.owned_bytes(), 0);
        assert_eq!(a.mapped_bytes(), 48);
        assert_eq!(a.get(2), &[6.0, 7.0, 8.0]);
        a.grow_to(6);
        a.set(5, &[1.0, 2.0, 3.0]);
        assert_eq!(a.get(4), &[0.0; 3]);
        assert_eq!(a.get(5), &[1.0, 2.0, 3.0]);
        assert_eq!(a.mapped_bytes(), 48, "appending leaves the mapping alone");
        // Overwriting a mapped slot copies the mapping into memory first.
        a.set(1, &[9.0, 9.0, 9.0]);
        assert_eq!(a.mapped_bytes(), 0);
        assert_eq!(a.get(1), &[9.0; 3]);
        assert_eq!(a.get(3), &[9.0, 10.0, 11.0]);
        assert_eq!(a.get(5), &[1.0, 2.0, 3.0]);
        a.rebuild([5, 0].into_iter());
        assert_eq!(a.slots(), 2);
        assert_eq!(a.get(0), &[1.0, 2.0, 3.0]);
        assert_eq!(a.get(1), &[0.0, 1.0, 2.0]);
    }

    #[test]
    fn adopt_swaps_the_written_prefix_for_the_mapping() {
        let mut a = VectorArena::new(2);
        a.grow_to(3);
        for i in 0..3 {
            a.set(i, &[i as f32, -(i as f32)]);
        }
        let written: Vec<f32> = a.iter().take(2).flatten().copied().collect();
        let map = map_of(&written, 0);
        assert!(a.adopt(FloatSection::from_map(&map, 0, 4).unwrap()));
        assert_eq!(a.mapped_bytes(), 16);
        assert_eq!(a.owned_bytes(), 8);
        let all: Vec<f32> = a.iter().flatten().copied().collect();
        assert_eq!(all, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
        // A section longer than the arena, or not whole vectors, is refused.
        assert!(!a.adopt(FloatSection::from_map(&map, 0, 3).unwrap()));
        let mut small = VectorArena::new(2);
        assert!(!small.adopt(FloatSection::from_map(&map, 0, 4).unwrap()));
        // A copied section is not adopted (nothing would be saved).
        assert!(!a.adopt(FloatSection::copied(&[0u8; 16])));
    }

    #[test]
    fn misaligned_or_short_sections_are_rejected_or_copied() {
        let data = [1.0f32, 2.0];
        let map = map_of(&data, 2);
        // Offset 2 is not 4-byte aligned: copied instead of mapped.
        let s = FloatSection::from_map(&map, 2, 2).unwrap();
        assert!(FloatSection::from_map(&map, 4, 3).is_none(), "past the end");
        assert!(matches!(s.0, Section::Owned(_)));
        let a = VectorArena::from_section(2, s).unwrap();
        assert_eq!(a.get(0), &[1.0, 2.0]);
        assert!(VectorArena::from_section(3, FloatSection::copied(&[0u8; 8])).is_none());
    }
}
