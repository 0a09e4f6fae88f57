//! Log segments written through a shared memory map: a commit's record reaches the
//! operating system with a `memcpy`, not a `write(2)` (except the records that land in
//! the page the last sync wrote back, on Linux, see below).
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
//! there are at most one and a half steps of zeros (the next step is allocated when the
//! appends come within half a step of the allocated end).
//!
//! # Why the pages ahead are faulted in by another thread
//!
//! The first store into each page of the mapping takes a page fault of about 10 µs (a
//! page-cache page allocated and zeroed, the file system's `page_mkwrite`): about 0.4 µs
//! per 162-byte commit, a sixth of a `no_durability` put through the facade. So the
//! step allocated ahead is handed to a process-wide `strata-prefault` thread that
//! faults its pages in writable (`MADV_POPULATE_WRITE`) before the appends reach them
//! ([`prefault`]); the bytes do not change, and where the kernel lacks the advice the
//! copies fault the pages in themselves as before. Measured in `docs/benchmarks.md`
//! ("Single puts through the facade").
//!
//! # Why records in the page the last sync wrote back are written with `pwrite`
//!
//! A sync writes the mapped pages back and the kernel write-protects them again, so the
//! next store into the same page takes a page fault (the file system's `page_mkwrite`)
//! before it can dirty the page once more (and the next sync must write-protect it
//! again, which flushes the TLB of every core running the process). A strict commit
//! syncs every record, so every one of its copies would pay that. So an append that
//! lands in the page holding the last synced byte hands the bytes to `pwrite(2)` (the
//! same page cache, coherent with the mapping), and copies through the mapping
//! otherwise: buffered and `no_durability` commits, which sync rarely, keep their
//! syscall-free copy after the rest of that one page. Not only the first append after
//! a sync: strict commits from several threads write a few records between two syncs,
//! and copying all but the first of them cost 4 threads about a sixth of their commits
//! (`docs/benchmarks.md`, "Strict commits from several threads"). Only on
//! Linux (and Android): there `msync(MS_SYNC)` of a range is `fsync` of that file range
//! (`vfs_fsync_range`), which writes back every dirty page in it however it was
//! dirtied. Elsewhere a partial-range `msync` may only clean the mapping's own pages
//! (FreeBSD), or `write(2)` and the mapping may not even share a cache (OpenBSD), so
//! every record is copied through the mapping. Measured
//! on this project's machine (ext4, 2,000 single-key strict commits through the facade,
//! seven interleaved rounds): median 10,659 commits/s with the copy, 11,352 with
//! `pwrite` (`docs/benchmarks.md`, "Strict commits").
//!
//! This is the one module of the crate with `unsafe` code: the copy into the mapping
//! (appends are serialized by the caller and always within the mapped, allocated
//! capacity of a file that nobody truncates while it is written), `madvise` (read-ahead
//! hints and the prefault of the log's pages ahead), the
//! CPU's prefetch hint ([`prefetch`]), and handing the C allocator's free pages back to
//! the kernel after a flush ([`ReleaseFreeHeap`]).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::sync::mpsc;
use std::sync::Arc;

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
    /// Shared with the prefault thread's jobs, which keep the mapping alive while they
    /// run (see [`prefault`]).
    map: Arc<MmapRaw>,
    map_len: u64,
    /// Bytes of the file allocated so far (its length). Changed only by the appender.
    allocated: AtomicU64,
    /// The allocated length at which allocating the next step *ahead* last failed (a
    /// full disk): not tried again until an append needs that step, so that each commit
    /// of the half step before it does not retry `fallocate`. `u64::MAX`: none failed.
    ahead_failed_at: AtomicU64,
    /// Next write offset. Written only by the (serialized) appender; shared with the
    /// prefault thread's jobs, which skip the pages the appends already reached.
    pos: Arc<AtomicU64>,
    /// Offset up to which everything is synced.
    synced: Mutex<u64>,
    /// A copy of `synced` that `append` reads without waiting for a sync in progress
    /// (which holds the mutex): when the append lands in the page holding the last
    /// synced byte, that page was written back and the bytes go through `pwrite` (see
    /// the module doc and [`in_synced_page`]).
    synced_to: AtomicU64,
    /// Appends that went through `pwrite` (tests check both paths are taken).
    #[cfg(test)]
    pwrites: AtomicU64,
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
        let map = Arc::new(MmapOptions::new().len(map_len as usize).map_raw(&file)?);
        Ok(MappedFile {
            map,
            map_len,
            allocated: AtomicU64::new(len),
            ahead_failed_at: AtomicU64::new(u64::MAX),
            pos: Arc::new(AtomicU64::new(pos)),
            // Nothing counts as synced yet: what is below `pos` may have been written by
            // an earlier process and still be only in the page cache.
            synced: Mutex::new(0),
            synced_to: AtomicU64::new(0),
            #[cfg(test)]
            pwrites: AtomicU64::new(0),
            file,
        })
    }
}

/// Whether `append` writes the records landing in the page the last sync wrote back with
/// `pwrite` (see the module doc: only where a range `msync` is known to write back pages
/// dirtied by `write(2)`).
const PWRITE_AFTER_SYNC: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Whether an append at `pos` lands in the page holding the last synced byte (everything
/// below `synced_to` is synced, and `synced_to <= pos` always: `pos` only grows and
/// never rolls back below the synced end). An append at `pos == synced_to` on a page
/// boundary starts a page the sync did not write back, so it is copied. That page was written back by the
/// sync and is write-protected until a store faults it writable again; every later
/// append into it goes through `pwrite` too, so the page is never stored into through
/// the mapping and keeps not needing the fault. Strict commits from several threads
/// write a few records between two syncs, all typically in that page (see the module
/// doc).
fn in_synced_page(synced_to: u64, pos: u64) -> bool {
    synced_to > 0 && (synced_to - 1) / page_size() == pos / page_size()
}

/// The system's page size, read once (4 KiB where it cannot be read).
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: `sysconf` only reads a system constant.
            let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if n > 0 {
                return n as u64;
            }
        }
        4096
    })
}

/// Writes all of `buf` at `offset` (positioned writes, the file offset untouched).
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        // Not called: `append` writes through the mapping on these platforms.
        let _ = (file, buf, offset);
        Err(io::ErrorKind::Unsupported.into())
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

/// How close to the end of its allocated length an append may come before the next
/// step is allocated and handed to the prefault thread: half a step, room for a few
/// thousand commits while the thread faults the step's pages in.
const ALLOCATE_AHEAD: u64 = PREALLOCATION_STEP / 2;

/// A range of a log segment's mapping to fault in, writable, ahead of the appends.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct PrefaultJob {
    map: Arc<MmapRaw>,
    /// The segment's write offset: pages below it are left alone (see [`prefault`]).
    pos: Arc<AtomicU64>,
    from: u64,
    to: u64,
}

/// Hands `from..to` of `map` (just allocated) to the process's prefault thread, which
/// faults its pages in writable (`MADV_POPULATE_WRITE`) before the appends reach them.
///
/// Why: the first store into a page of a file mapping costs a page fault of about 10 µs
/// (a page-cache page allocated and zeroed, the file system's `page_mkwrite`), about
/// 0.4 µs per 162-byte commit, paid on the committing thread. Only a hint: where the
/// kernel lacks `MADV_POPULATE_WRITE` (before Linux 5.14), or the thread cannot be
/// started, the copies fault the pages in themselves, as before. It changes no byte
/// (the pages are the file's allocated zeros) and raises no signal: a range the file
/// no longer backs (a segment cut short at seal) makes `madvise` fail, which is ignored.
///
/// The queue is bounded (a full queue leaves the step to the copies), and a process
/// made by `fork` starts its own thread rather than feed the parent's queue, which no
/// thread drains in the child.
///
/// The thread works in chunks and skips the pages the appends already reached (`pos`):
/// faulting in a page written and synced meanwhile would mark it dirty again (same
/// bytes, one more write-back). Only the step allocated *ahead* is handed over, half a
/// step before the appends need it; the step an append needs at once is its own.
fn prefault(map: &Arc<MmapRaw>, pos: &Arc<AtomicU64>, from: u64, to: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
        /// The thread's queue, with the process that started it: a child made by
        /// `fork` inherits the queue but not the thread, and starts its own.
        static JOBS: Mutex<Option<(u32, mpsc::SyncSender<PrefaultJob>)>> = Mutex::new(None);
        /// Jobs waiting at most: past it a step is left to the copies (and no mapping is
        /// kept alive by a queue nobody drains).
        const QUEUED_JOBS: usize = 32;
        if UNSUPPORTED.load(Ordering::Relaxed) || to <= from {
            return;
        }
        // Never wait for the lock: in a child made by `fork` while another thread held
        // it, it stays held for good. The step is then left to the copies.
        let Some(mut jobs) = JOBS.try_lock() else {
            return;
        };
        let pid = std::process::id();
        if jobs.as_ref().is_none_or(|(owner, _)| *owner != pid) {
            // A parent's sender is forgotten, not dropped: dropping it would touch the
            // channel's internals, which a thread of the parent may have held at `fork`.
            if let Some(parent) = jobs.take() {
                std::mem::forget(parent);
            }
            let (tx, rx) = mpsc::sync_channel::<PrefaultJob>(QUEUED_JOBS);
            let started = std::thread::Builder::new()
                .name("strata-prefault".into())
                .spawn(move || {
                    for job in rx {
                        if !populate_ahead_of_writes(&job) {
                            UNSUPPORTED.store(true, Ordering::Relaxed);
                        }
                    }
                });
            if started.is_err() {
                return;
            }
            *jobs = Some((pid, tx));
        }
        if let Some((_, tx)) = jobs.as_ref() {
            let _ = tx.try_send(PrefaultJob {
                map: Arc::clone(map),
                pos: Arc::clone(pos),
                from,
                to,
            });
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (map, pos, from, to);
}

/// Faults in `job`'s range a chunk at a time, each from past the page the appends have
/// reached; `false` when the kernel does not know the advice.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_ahead_of_writes(job: &PrefaultJob) -> bool {
    let mut at = job.from;
    while at < job.to {
        // Past the page the appends reached, on a boundary of every page size.
        let written = job.pos.load(Ordering::Acquire).div_ceil(PREFAULT_CHUNK) * PREFAULT_CHUNK;
        let start = at.max(written).div_ceil(PREFAULT_CHUNK) * PREFAULT_CHUNK;
        if start >= job.to {
            break;
        }
        let end = (start + PREFAULT_CHUNK).min(job.to);
        if !populate_write(&job.map, start, end) {
            return false;
        }
        at = end;
    }
    true
}

/// The prefault thread's unit of work and alignment: 64 KiB, a multiple of every page
/// size Linux uses (4, 16 and 64 KiB), so `madvise` never sees an unaligned start.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PREFAULT_CHUNK: u64 = 64 * 1024;

/// `madvise(MADV_POPULATE_WRITE)` over `start..to` (`start` aligned to
/// [`PREFAULT_CHUNK`]); `false` when the kernel does not know the advice (nothing will
/// be prefaulted again in this process).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_write(map: &MmapRaw, start: u64, to: u64) -> bool {
    let end = to.min(map.len() as u64);
    if end <= start {
        return true;
    }
    // SAFETY: `start..end` lies inside the mapping (`end <= map.len()`), which the job's
    // `Arc` keeps alive. `MADV_POPULATE_WRITE` writes no byte: it only faults the pages
    // in as a store would, and where the file does not back a page it fails with an
    // error instead of raising `SIGBUS`.
    let r = unsafe {
        libc::madvise(
            map.as_mut_ptr().add(start as usize).cast::<libc::c_void>(),
            (end - start) as usize,
            libc::MADV_POPULATE_WRITE,
        )
    };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
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
        } else if end + ALLOCATE_AHEAD > allocated
            && allocated < self.map_len
            && self.ahead_failed_at.load(Ordering::Relaxed) != allocated
        {
            // Within half a step of the allocated end: allocate the next step now and
            // have its pages faulted in off this thread, so that the copies into it do
            // not each take a page fault. This append needs none of it, so a failure
            // (a full disk) is left to the append that does.
            let want = allocated
                .saturating_add(PREALLOCATION_STEP)
                .min(self.map_len);
            if allocate(&self.file, allocated, want).is_ok() {
                self.allocated.store(want, Ordering::Release);
                prefault(&self.map, &self.pos, allocated, want);
            } else {
                self.ahead_failed_at.store(allocated, Ordering::Relaxed);
            }
        }
        if PWRITE_AFTER_SYNC
            && pos > 0
            && in_synced_page(self.synced_to.load(Ordering::Acquire), pos)
        {
            // `pos` lies in the page the last sync wrote back, which is write-protected
            // again, so a store would fault (see the module doc). A failed or
            // short write leaves `pos` where it was and possibly part of the record past
            // it: never acknowledged, it fails its checksum, and the next append writes
            // over it (recovery cuts it off as an unsynced tail after a crash).
            write_all_at(&self.file, buf, pos)?;
            #[cfg(test)]
            self.pwrites.fetch_add(1, Ordering::Relaxed);
        } else {
            // SAFETY: `pos..end` lies inside the mapping and inside the file's allocated
            // length (both checked above), so the store cannot raise `SIGBUS` (it may
            // take an ordinary page fault); appends are
            // serialized by the caller (the commit lock), so no other thread writes these
            // bytes, and `sync` only asks the kernel to write them back.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    buf.as_ptr(),
                    self.map.as_mut_ptr().add(pos as usize),
                    buf.len(),
                );
            }
        }
        self.pos.store(end, Ordering::Release);
        Ok(())
    }

    fn rollback(&self, len: u64) -> io::Result<()> {
        // A failed append advanced nothing; a failed `pwrite` may have left part of its
        // record past `len`, which the next append writes over.
        if len > self.pos.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "rollback past the written end of a segment",
            ));
        }
        // Bytes already synced are never rolled back (the log only undoes the append that
        // failed): going below them would let the next `sync` skip what overwrites them.
        if len < *self.synced.lock() {
            return Err(io::Error::other(
                "rollback below the synced end of a segment",
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
            self.synced_to.store(end, Ordering::Release);
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

/// Returns the C allocator's free pages to the operating system (glibc's
/// `malloc_trim`): [`release`](Self::release) does it now, dropping the value does it
/// then (a checkpoint holds one for its whole length, so that every way out of it
/// releases what it freed).
///
/// A memtable is made of many small allocations (one per version: a vector record is
/// about 1.6 KiB); freeing them leaves free chunks inside the allocator's heaps, which
/// glibc gives back on its own only from the top of the main heap. So a process that
/// flushed its memtable kept that memory anonymous and resident: measured through the
/// facade, 200,000 int8 vectors held 203 MiB after a checkpoint, 161 MiB after a trim
/// (`docs/vectors.md`, "Memory"). A trim takes a few milliseconds on a heap of hundreds
/// of MiB (measured 3–20 ms after 32 MiB memtable flushes of vector records), far less
/// on a small one. Other C libraries and allocators return memory themselves; there
/// this does nothing.
pub(crate) struct ReleaseFreeHeap;

impl ReleaseFreeHeap {
    /// Returns the free pages now.
    pub(crate) fn release(&self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `malloc_trim` only returns free pages of glibc's heaps to the kernel
        // (`madvise(MADV_DONTNEED)` on whole free pages, `sbrk` at the top); it takes
        // each arena's lock, touches no allocated memory, and its result (whether
        // anything was released) is not needed.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

impl Drop for ReleaseFreeHeap {
    fn drop(&mut self) {
        self.release();
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Record `i` of a test: 1 to `max_len` nonzero bytes, sizes that straddle pages at
    /// varying offsets.
    fn record(i: u32, max_len: usize) -> Vec<u8> {
        let len = 1 + (i as usize * 7919) % max_len;
        (0..len).map(|j| (i as usize + j) as u8 | 1).collect()
    }

    /// A new, empty segment file of `capacity` bytes in a temporary directory (kept
    /// alive by the returned guard), mapped.
    fn segment(capacity: u64) -> (tempfile::TempDir, std::path::PathBuf, MappedFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mapped = MappedFile::new(file, 0, capacity).unwrap();
        (dir, path, mapped)
    }

    /// The allocation runs up to a step ahead of the appends (the prefault thread
    /// faults that step in), never past the mapping; the file holds exactly the bytes
    /// appended, followed by zeros only, so prefaulting changed no byte.
    #[test]
    fn allocation_runs_a_step_ahead_and_prefaulting_changes_no_byte() {
        let capacity = 2 * PREALLOCATION_STEP + 4096;
        let (_dir, path, mapped) = segment(capacity);
        let mut expected = Vec::new();
        let (mut i, mut ahead) = (0u32, 0u32);
        while (expected.len() as u64) + 5000 <= capacity {
            let record = record(i, 5000);
            mapped.append(&record).unwrap();
            expected.extend_from_slice(&record);
            let allocated = mapped.allocated.load(Ordering::Acquire);
            let pos = expected.len() as u64;
            assert!(
                allocated >= pos && allocated <= capacity,
                "{allocated} for {pos}"
            );
            assert!(allocated - pos <= PREALLOCATION_STEP + ALLOCATE_AHEAD);
            if allocated >= pos + ALLOCATE_AHEAD {
                ahead += 1;
            }
            i += 1;
        }
        assert!(
            ahead > i / 2,
            "allocated ahead after {ahead} of {i} appends"
        );
        mapped.sync().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(
            on_disk.len() as u64,
            mapped.allocated.load(Ordering::Acquire)
        );
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
        // Past the mapping: refused, nothing written.
        assert!(mapped.append(&[1u8; 8192]).is_err());
    }

    /// The step allocated ahead is faulted in by the prefault thread before any append
    /// reaches it: pages far past the last append (beyond any read-ahead of the copies'
    /// own faults) come into the page cache, which allocating alone does not do.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_step_allocated_ahead_is_faulted_in() {
        if cachestat(std::path::Path::new("/proc/self/exe"), 0, 0).is_none() {
            return; // no `cachestat` (Linux before 6.5): nothing to observe with
        }
        let (_dir, path, mapped) = segment(4 * PREALLOCATION_STEP);
        let mut i = 0u32;
        while mapped.allocated.load(Ordering::Acquire) <= PREALLOCATION_STEP {
            mapped.append(&record(i, 3000)).unwrap();
            i += 1;
        }
        // The second step's last half: half a megabyte past the appends at least.
        let (from, len) = (
            PREALLOCATION_STEP + PREALLOCATION_STEP / 2,
            PREALLOCATION_STEP / 2,
        );
        let mut cached = 0;
        for _ in 0..300 {
            cached = cachestat(&path, from, len).unwrap().0;
            if cached * 4096 >= len {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            cached * 4096,
            len,
            "pages of the step ahead in the page cache"
        );
    }

    /// Appends through both paths (the copy into the mapping between syncs, `pwrite`
    /// right after one), across page and allocation-step boundaries: the file holds
    /// exactly the bytes appended, in order, and a rolled-back record is written over.
    #[test]
    fn appends_after_syncs_and_between_them_land_in_order() {
        let (_dir, path, mapped) = segment(3 * PREALLOCATION_STEP);
        let mut expected = Vec::new();
        let mut i = 0u32;
        while (expected.len() as u64) < 2 * PREALLOCATION_STEP + 10_000 {
            let record = record(i, 5000);
            mapped.append(&record).unwrap();
            expected.extend_from_slice(&record);
            // Sync after most records (the next append goes through `pwrite`), and let
            // some run of records between syncs (copies into the mapping).
            if i % 5 != 3 {
                mapped.sync().unwrap();
            }
            if i % 11 == 10 {
                // A rolled-back record is overwritten by the next append.
                let before = expected.len() as u64;
                mapped.append(&[0xEE; 300]).unwrap();
                mapped.rollback(before).unwrap();
            }
            i += 1;
        }
        mapped.sync().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.len() as u64 >= expected.len() as u64);
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        // Synced bytes are never rolled back: the next sync would skip their overwrite.
        assert!(mapped.rollback(0).is_err());
        assert!(mapped.rollback(expected.len() as u64 + 1).is_err());
    }

    /// Dirty or under-writeback pages among the file's first `len` bytes (`cachestat(2)`,
    /// Linux 6.5+), or `None` where the call is missing: a sync must leave none in what
    /// was written, whichever path wrote it. (Pages past it may be dirty: the prefault
    /// thread faults the step allocated ahead in writable.)
    #[cfg(target_os = "linux")]
    fn unsynced_pages(path: &std::path::Path, len: u64) -> Option<u64> {
        cachestat(path, 0, len).map(|(_, unsynced)| unsynced)
    }

    /// Pages of `off..off + len` in the page cache, and those dirty or under write-back
    /// (`cachestat(2)`, Linux 6.5+; `None` where it is missing).
    #[cfg(target_os = "linux")]
    fn cachestat(path: &std::path::Path, off: u64, len: u64) -> Option<(u64, u64)> {
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            cache: u64,
            dirty: u64,
            writeback: u64,
            evicted: u64,
            recently_evicted: u64,
        }
        use std::os::fd::AsRawFd;
        let f = File::open(path).ok()?;
        let range = Range { off, len };
        let mut stat = Stat::default();
        // SAFETY: both pointers are to live, correctly laid out structs.
        let rc = unsafe { libc::syscall(451, f.as_raw_fd(), &range, &mut stat, 0) };
        (rc == 0).then_some((stat.cache, stat.dirty + stat.writeback))
    }
    #[cfg(not(target_os = "linux"))]
    fn unsynced_pages(_: &std::path::Path, _: u64) -> Option<u64> {
        None
    }

    /// Both paths are taken, every sync leaves no dirty page behind (the page cache is
    /// what `std::fs::read` sees, so comparing bytes alone cannot tell a missed sync),
    /// and the bytes read through the mapping and through `read(2)` agree.
    #[test]
    fn every_sync_writes_back_what_either_path_wrote() {
        let (_dir, path, mapped) = segment(2 * PREALLOCATION_STEP);
        let mut expected = Vec::new();
        let mut checked = 0;
        for i in 0..600u32 {
            let record = record(i, 3000);
            mapped.append(&record).unwrap();
            expected.extend_from_slice(&record);
            if i % 5 != 3 {
                mapped.sync().unwrap();
                if let Some(n) = unsynced_pages(&path, expected.len() as u64) {
                    assert_eq!(n, 0, "dirty pages left after sync {i}");
                    checked += 1;
                }
            }
        }
        if PWRITE_AFTER_SYNC {
            assert!(
                mapped.pwrites.load(Ordering::Relaxed) > 0,
                "pwrite path never taken"
            );
        }
        assert!(
            mapped.pwrites.load(Ordering::Relaxed) < 600,
            "mapping path never taken"
        );
        // SAFETY: no append runs; the range was written above.
        let through_map =
            unsafe { std::slice::from_raw_parts(mapped.map.as_ptr(), expected.len()) };
        assert_eq!(through_map, &expected[..]);
        assert_eq!(
            &std::fs::read(&path).unwrap()[..expected.len()],
            &expected[..]
        );
        // Where `cachestat` exists (Linux 6.5+), every sync was checked.
        assert!(checked == 0 || checked == 480, "{checked} syncs checked");
    }

    /// Every append into the page the last sync wrote back goes through `pwrite` (not
    /// only the first one after the sync: strict commits from several threads write a
    /// few records per sync); appends in a later page are copies again.
    #[test]
    fn appends_into_the_page_a_sync_wrote_back_go_through_pwrite() {
        let page = page_size();
        assert!(!in_synced_page(0, 100), "nothing synced yet");
        assert!(in_synced_page(100, 100));
        assert!(in_synced_page(100, page - 1));
        assert!(
            !in_synced_page(100, page),
            "the next page was not written back"
        );
        assert!(
            !in_synced_page(page, page),
            "a page the sync did not write back"
        );
        assert!(!in_synced_page(page, page + 10));
        assert!(in_synced_page(page + 1, page + 10));

        let (_dir, path, mapped) = segment(4 * PREALLOCATION_STEP);
        let mut expected = Vec::new();
        let mut append = |bytes: Vec<u8>| {
            mapped.append(&bytes).unwrap();
            expected.extend_from_slice(&bytes);
        };
        append(vec![1; 100]);
        mapped.sync().unwrap();
        let before = mapped.pwrites.load(Ordering::Relaxed);
        for i in 0..5u8 {
            append(vec![i | 1; 200]);
        }
        let in_page = mapped.pwrites.load(Ordering::Relaxed) - before;
        // Up to the next page and beyond it, without a sync in between.
        let to_next = page - mapped.pos.load(Ordering::Acquire) % page;
        append(vec![3; to_next as usize + 300]);
        append(vec![5; 300]);
        let later = mapped.pwrites.load(Ordering::Relaxed) - before - in_page;
        if PWRITE_AFTER_SYNC {
            assert_eq!(in_page, 5, "appends into the synced page");
            // The record that starts in the synced page and runs into the next one is
            // written with `pwrite`; the one wholly past it is copied.
            assert_eq!(later, 1);
        } else {
            assert_eq!(in_page + later, 0);
        }
        mapped.sync().unwrap();
        assert_eq!(
            &std::fs::read(&path).unwrap()[..expected.len()],
            &expected[..]
        );
        if let Some(n) = unsynced_pages(&path, expected.len() as u64) {
            assert_eq!(n, 0);
        }
    }

    /// A syncer thread syncing back to back while records are appended (the strict
    /// mode's shape): the bytes land in order and the last sync leaves nothing dirty.
    #[test]
    fn appends_racing_a_syncer_land_in_order() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let (_dir, path, mapped) = segment(2 * PREALLOCATION_STEP);
        let mapped = Arc::new(mapped);
        let done = Arc::new(AtomicBool::new(false));
        let syncer = {
            let (m, d) = (mapped.clone(), done.clone());
            std::thread::spawn(move || {
                while !d.load(Ordering::Acquire) {
                    m.sync().unwrap();
                    assert!(m.synced_to.load(Ordering::Acquire) <= m.pos.load(Ordering::Acquire));
                }
            })
        };
        let mut expected = Vec::new();
        for i in 0..3000u32 {
            let record = record(i, 400);
            mapped.append(&record).unwrap();
            expected.extend_from_slice(&record);
            if i % 4 == 0 {
                // Let the syncer catch up now and then, so the next append takes `pwrite`
                // while the syncer keeps calling `sync` (bounded: it may never catch up).
                let want = mapped.pos.load(Ordering::Acquire);
                for _ in 0..10_000 {
                    if mapped.synced_to.load(Ordering::Acquire) >= want {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
        done.store(true, Ordering::Release);
        syncer.join().unwrap();
        mapped.sync().unwrap();
        if PWRITE_AFTER_SYNC {
            assert!(
                mapped.pwrites.load(Ordering::Relaxed) > 0,
                "pwrite path never taken"
            );
        }
        if let Some(n) = unsynced_pages(&path, expected.len() as u64) {
            assert_eq!(n, 0);
        }
        assert_eq!(
            &std::fs::read(&path).unwrap()[..expected.len()],
            &expected[..]
        );
    }
}
