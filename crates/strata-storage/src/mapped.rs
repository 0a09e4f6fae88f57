//! Log segments written through a shared memory map: a commit's record reaches the
//! operating system with a `memcpy`, not a `write(2)`.
//!
//! # Why
//!
//! Every durability mode promises that an acknowledged commit survives a *process*
//! crash, so each record must be in the kernel's page cache before `commit` returns. A
//! `write(2)` per commit was the largest cost of a buffered commit. Bytes copied into a
//! `MAP_SHARED` mapping of the file are in the page cache the moment the copy ends, and
//! a process crash does not take them. `sync` is `msync(MS_SYNC)` over the range written
//! since the last sync (on Linux the same write-back and journal commit as `fdatasync`
//! of that range).
//!
//! # Why it cannot `SIGBUS`
//!
//! A store into a mapped page the file system cannot back (a hole on a full disk, or past
//! the end of the file) kills the process with `SIGBUS`. So every byte is allocated with
//! `fallocate` *before* it is written through the mapping (ahead of the writes, a step
//! at a time): a full disk is an `ENOSPC` error from that append, never a signal, and
//! nothing was written. The storage truncates a segment (to seal it, or at close) only
//! once nothing writes to it any more. Allocating a step at a time (not the whole
//! segment up front) keeps what a crash leaves to scan small: after the last record
//! there is at most one step of zeros.
//!
//! This is the one module of the crate with `unsafe` code: the copy into the mapping
//! (appends are serialized by the caller and always within the mapped, allocated
//! capacity of a file that nobody truncates while it is written), `madvise`, and the
//! CPU's prefetch hint ([`prefetch`]).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;

use crate::vfs::{VfsFile, PREALLOCATION_STEP};

/// A file written at increasing offsets through a shared mapping, allocated ahead of
/// the writes in steps of [`PREALLOCATION_STEP`].
///
/// The mapping covers `map_len` bytes from the start (the segment's size) although the
/// file is shorter: pages past the end of the file are never touched, because `append`
/// first extends the allocation (`fallocate`) over every byte it is about to write.
pub(crate) struct MappedFile {
    map: MmapRaw,
    map_len: u64,
    /// Bytes of the file allocated so far (its length). Changed only by the appender.
    allocated: AtomicU64,
    /// Next write offset. Written only by the (serialized) appender.
    pos: AtomicU64,
    /// Offset up to which everything is synced.
    synced: Mutex<u64>,
    file: File,
}

impl MappedFile {
    /// Maps `map_len` bytes of `file` (keeping what it holds); the next append writes at
    /// `pos`.
    pub(crate) fn new(file: File, pos: u64, map_len: u64) -> io::Result<MappedFile> {
        let len = file.metadata()?.len();
        let map_len = map_len.max(len).max(pos);
        // A raw mapping: creating it is safe, every access goes through `append` below.
        // The file is ours (owner-only, in the locked database directory); nothing
        // truncates it below what `append` allocated while it is written (the storage
        // seals a segment only after it stopped writing to it).
        let map = MmapOptions::new().len(map_len as usize).map_raw(&file)?;
        Ok(MappedFile {
            map,
            map_len,
            allocated: AtomicU64::new(len),
            pos: AtomicU64::new(pos),
            // Nothing counts as synced yet: what is below `pos` may have been written by
            // an earlier process and still be only in the page cache.
            synced: Mutex::new(0),
            file,
        })
    }
}

/// Allocates the file's blocks from its current length up to `len` (zeros), so that
/// stores through a mapping never fault on a full disk: an `ENOSPC` is returned here.
fn allocate(file: &File, from: u64, len: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(file, FallocateFlags::empty(), from, len - from) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    // No fallocate on this file system: write real zeros.
    use std::io::{Seek, SeekFrom, Write};
    let mut f = file;
    f.seek(SeekFrom::Start(from))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = len - from;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

impl VfsFile for MappedFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let pos = self.pos.load(Ordering::Acquire);
        let end = pos
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.map_len)
            .ok_or_else(|| io::Error::other("write past the end of a mapped segment"))?;
        let allocated = self.allocated.load(Ordering::Acquire);
        if end > allocated {
            let want = end
                .div_ceil(PREALLOCATION_STEP)
                .saturating_mul(PREALLOCATION_STEP)
                .min(self.map_len);
            // Nothing is written if this fails (a full disk): the caller may retry.
            allocate(&self.file, allocated, want)?;
            self.allocated.store(want, Ordering::Release);
        }
        // SAFETY: `pos..end` lies inside the mapping and inside the file's allocated
        // length (both checked above), so the store cannot fault; appends are serialized
        // by the caller (the commit lock), so no other thread writes these bytes, and
        // `sync` only asks the kernel to write them back.
        unsafe {
            std::ptr::copy_nonoverlapping(
                buf.as_ptr(),
                self.map.as_mut_ptr().add(pos as usize),
                buf.len(),
            );
        }
        self.pos.store(end, Ordering::Release);
        Ok(())
    }

    fn rollback(&self, len: u64) -> io::Result<()> {
        // A failed append wrote nothing (it allocates before the copy).
        if len > self.pos.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "rollback past the written end of a segment",
            ));
        }
        self.pos.store(len, Ordering::Release);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let end = self.pos.load(Ordering::Acquire);
        let mut synced = self.synced.lock();
        if end > *synced {
            // `msync(MS_SYNC)`: the range's dirty pages and (on Linux, as `fdatasync`)
            // the metadata needed to read them back, such as a grown length.
            self.map
                .flush_range(*synced as usize, (end - *synced) as usize)?;
            *synced = end;
        }
        Ok(())
    }
}

/// A read-only shared mapping of an immutable file (a sorted run), read in place.
///
/// Safety argument for the one `unsafe` call: `memmap2::Mmap::map` is unsafe because the
/// mapped bytes could change (or the file shrink, raising `SIGBUS`) under the reader. The
/// storage maps only files it wrote, fsynced, verified and renamed into place, never
/// writes or truncates them again, and deletes them only by unlinking (which keeps the
/// mapped inode alive). Another program editing a database's files is outside the
/// contract, as it is for every embedded database.
pub(crate) struct ReadOnlyMap(memmap2::Mmap);

impl ReadOnlyMap {
    pub(crate) fn new(file: &File) -> io::Result<ReadOnlyMap> {
        // SAFETY: see the type's documentation: the file is immutable while mapped.
        let map = unsafe { MmapOptions::new().map(file)? };
        // Point lookups touch a few scattered blocks: no read-ahead of the whole file.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(ReadOnlyMap(map))
    }

    /// A mapping to be read once from start to end (a whole-file check): the kernel
    /// reads ahead and drops pages behind. With the point lookups' `Random` advice, a
    /// cold file would be read one page per fault — measured on a 944 MB run, 17.5 s
    /// against 0.4 s warm.
    pub(crate) fn sequential(file: &File) -> io::Result<ReadOnlyMap> {
        // SAFETY: see the type's documentation: the file is immutable while mapped.
        let map = unsafe { MmapOptions::new().map(file)? };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(ReadOnlyMap(map))
    }
}

impl AsRef<[u8]> for ReadOnlyMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `madvise(MADV_WILLNEED)` over the pages holding `bytes` (see [`crate::run::Run::read_ahead`]).
#[cfg(unix)]
pub(crate) fn advise_will_need(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let start = bytes.as_ptr() as usize;
    let aligned = start & !(PAGE - 1);
    let len = bytes.len() + (start - aligned);
    // SAFETY: `madvise` with `MADV_WILLNEED` only schedules reads of pages already
    // mapped into this process (the run's mapping, or a heap buffer holding a file read
    // whole); it changes no memory and no mapping, and its error (e.g. for a range that
    // starts before a heap buffer's first page) is ignored.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_WILLNEED);
    }
}

#[cfg(not(unix))]
pub(crate) fn advise_will_need(_bytes: &[u8]) {}

/// Asks the CPU to bring the cache lines holding `items` into its caches (a hint:
/// nothing waits for them). Lookups in several runs are chains of dependent cache
/// misses, one chain per run; asking for the next step of every chain before taking
/// any of them makes the misses of different runs overlap (see
/// `crate::tree::list_keys`).
#[inline]
pub(crate) fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = items.as_ptr().cast::<i8>();
        let len = std::mem::size_of_val(items);
        for off in (0..len).step_by(64) {
            // SAFETY: `_mm_prefetch` is a hint that never faults and changes no memory;
            // the address is inside `items`, a live slice, in any case. SSE, the
            // feature it requires, is part of every x86-64 CPU.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}
