//! Test support: an in-memory, fault-injecting file system.
//!
//! [`FaultyVfs`] implements [`Vfs`] with the crash model of a real disk (SQLite's
//! `test6.c` model): file data is durable only up to the last `sync`, and directory
//! entries (creations, renames, removals) only after the directory is synced.
//! [`FaultyVfs::power_loss`] throws away everything not durable. Unsynced bytes do not
//! only vanish as a suffix: the file may end anywhere after its synced length, and each
//! unsynced 4 KiB page up to there is independently kept, zeroed (an unwritten extent) or
//! filled with garbage (a torn sector) — so a later page may survive an earlier one.
//! Files written in place ([`Vfs::create_preallocated`]) lose unsynced overwrites by
//! 512-byte sector: each keeps its new bytes, gets its durable bytes back (the zeros of a
//! fresh preallocation), or has the bytes being changed garbled; bytes that were synced
//! are never damaged.
//! [`FaultyVfs::fail_sync_after`] makes a chosen `sync` fail and
//! [`FaultyVfs::set_capacity`] makes appends fail with `ENOSPC` once the disk is full.
//! Storage opened on it runs exactly the production log and snapshot code.
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::vfs::{Vfs, VfsFile};

#[derive(Default)]
struct MemFile {
    data: Vec<u8>,
    synced_len: usize,
    /// Pages below `synced_len` overwritten since the last sync, with their durable
    /// content (what a power loss may bring back).
    dirty: std::collections::BTreeMap<usize, Vec<u8>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Live namespace: path -> file id.
    names: HashMap<PathBuf, u64>,
    /// Namespace as of the last directory sync, per directory.
    durable_names: HashMap<PathBuf, HashMap<PathBuf, u64>>,
    files: HashMap<u64, MemFile>,
    dirs: Vec<PathBuf>,
    /// Directories whose entry in their parent is durable (synced), and roots.
    durable_dirs: Vec<PathBuf>,
    generation: u64,
    syncs: u64,
    fail_sync_at: Option<u64>,
    /// How long the failing sync takes before it reports its error (outside the lock).
    fail_sync_delay: std::time::Duration,
    /// How long every file `sync` sleeps before it syncs (see `set_sync_delay`).
    sync_delay: std::time::Duration,
    capacity: Option<u64>,
    read_hook: Option<ReadHook>,
}

/// Changes what [`Vfs::read`] returns for a path (see [`FaultyVfs::set_read_hook`]).
pub type ReadHook = Arc<dyn Fn(&Path, &mut Vec<u8>) + Send + Sync>;

/// An in-memory file system with a power-loss model. Clones share the same files.
#[derive(Clone, Default)]
pub struct FaultyVfs {
    state: Arc<Mutex<State>>,
}

struct FaultyFile {
    state: Arc<Mutex<State>>,
    id: u64,
    generation: u64,
    /// For a preallocated file: the next write offset (writes overwrite in place) and
    /// the most bytes it may hold.
    pos: Option<(Mutex<usize>, usize)>,
}

fn gone() -> io::Error {
    io::Error::other("file handle invalidated by a simulated power loss")
}

impl State {
    /// Bytes held by files that have a name.
    fn used(&self) -> u64 {
        let mut ids: Vec<u64> = self.names.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .filter_map(|id| self.files.get(id))
            .map(|f| f.data.len() as u64)
            .sum()
    }

    fn sync_counts(&mut self) -> io::Result<()> {
        self.syncs += 1;
        if self.fail_sync_at == Some(self.syncs) {
            return Err(io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

impl VfsFile for FaultyFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.generation != self.generation {
            return Err(gone());
        }
        if let Some((pos, max_len)) = &self.pos {
            let mut pos = pos.lock();
            let end = *pos + buf.len();
            if end > *max_len {
                return Err(io::Error::other(
                    "write past the end of a preallocated file",
                ));
            }
            let len = s.files.get(&self.id).ok_or_else(gone)?.data.len();
            if end > len {
                // Allocate ahead, a step at a time, as the real one does; a full disk
                // fails here, before anything is written.
                let step = crate::vfs::PREALLOCATION_STEP as usize;
                let want = end.div_ceil(step).saturating_mul(step).min(*max_len);
                if let Some(cap) = s.capacity {
                    if s.used() + (want - len) as u64 > cap {
                        return Err(no_space());
                    }
                }
                s.files
                    .get_mut(&self.id)
                    .ok_or_else(gone)?
                    .data
                    .resize(want, 0);
            }
            let f = s.files.get_mut(&self.id).ok_or_else(gone)?;
            // Remember the durable content of every synced page this overwrites.
            let mut page = *pos / PAGE_SIZE;
            while page * PAGE_SIZE < end.min(f.synced_len) {
                let start = page * PAGE_SIZE;
                let stop = ((page + 1) * PAGE_SIZE).min(f.synced_len);
                let old = f.data[start..stop].to_vec();
                f.dirty.entry(page).or_insert(old);
                page += 1;
            }
            f.data[*pos..end].copy_from_slice(buf);
            *pos = end;
            return Ok(());
        }
        // A full disk takes what fits, then fails: a write(2) may be partial.
        let room = match s.capacity {
            Some(cap) => cap.saturating_sub(s.used()) as usize,
            None => usize::MAX,
        };
        let f = s.files.get_mut(&self.id).ok_or_else(gone)?;
        if buf.len() > room {
            f.data.extend_from_slice(&buf[..room]);
            return Err(no_space());
        }
        f.data.extend_from_slice(buf);
        Ok(())
    }
    fn rollback(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.generation != self.generation {
            return Err(gone());
        }
        if let Some((pos, _)) = &self.pos {
            *pos.lock() = len as usize;
            return Ok(());
        }
        s.sync_counts()?;
        let f = s.files.get_mut(&self.id).ok_or_else(gone)?;
        f.data.truncate(len as usize);
        f.synced_len = f.data.len();
        f.dirty.clear();
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let delay = self.state.lock().sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut s = self.state.lock();
        if s.generation != self.generation {
            return Err(gone());
        }
        if let Err(e) = s.sync_counts() {
            // A slow failing fsync: other operations go on meanwhile, as on a disk.
            let delay = s.fail_sync_delay;
            drop(s);
            std::thread::sleep(delay);
            return Err(e);
        }
        let f = s.files.get_mut(&self.id).ok_or_else(gone)?;
        f.synced_len = f.data.len();
        f.dirty.clear();
        Ok(())
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}

/// Size of the pages a power loss keeps, zeroes or garbles independently.
pub const PAGE_SIZE: usize = 4096;
/// Size of the sectors of an overwritten page that a power loss tears independently.
pub const SECTOR_SIZE: usize = 512;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn lose_unsynced(f: &mut MemFile, rng: &mut u64) {
    // Overwritten synced pages. Synced bytes never change (the sector-atomicity, or
    // "powersafe overwrite", assumption every log makes): each 512-byte sector of a
    // dirty page keeps its new bytes or gets its durable ones back, and in a torn
    // sector the bytes that were being changed may be garbage.
    for (page, old) in std::mem::take(&mut f.dirty) {
        let start = page * PAGE_SIZE;
        for (i, old_sector) in old.chunks(SECTOR_SIZE).enumerate() {
            let at = start + i * SECTOR_SIZE;
            let sector = &mut f.data[at..at + old_sector.len()];
            match splitmix(rng) % 5 {
                0 | 1 => {}
                2 | 3 => sector.copy_from_slice(old_sector),
                _ => {
                    for (b, o) in sector.iter_mut().zip(old_sector) {
                        if b != o {
                            *b = splitmix(rng) as u8;
                        }
                    }
                }
            }
        }
    }
    let unsynced = f.data.len() - f.synced_len;
    if unsynced == 0 {
        return;
    }
    let keep = (splitmix(rng) % (unsynced as u64 + 1)) as usize;
    let end = f.synced_len + keep;
    f.data.truncate(end);
    if splitmix(rng) % 2 == 1 {
        // Page mode: every unsynced page up to the new end is kept, zeroed or garbled.
        let mut page_start = f.synced_len;
        while page_start < end {
            let page_end = ((page_start / PAGE_SIZE) + 1) * PAGE_SIZE;
            let page_end = page_end.min(end);
            match splitmix(rng) % 4 {
                0 | 1 => {}
                2 => f.data[page_start..page_end].fill(0),
                _ => {
                    for b in &mut f.data[page_start..page_end] {
                        *b = splitmix(rng) as u8;
                    }
                }
            }
            page_start = page_end;
        }
    }
    f.synced_len = f.data.len();
}

impl FaultyVfs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`-th `sync` from now (1 = the next one) fail with an I/O error.
    /// Returns that sync's number as [`sync_count`](Self::sync_count) will show it
    /// (read under the same lock: background syncs cannot slip in between).
    pub fn fail_sync_after(&self, n: u64) -> u64 {
        self.fail_sync_after_delay(n, std::time::Duration::ZERO)
    }

    /// Like [`fail_sync_after`](Self::fail_sync_after), but the failing file `sync`
    /// first takes `delay` (without blocking other operations): room for another thread
    /// to sync meanwhile, as a checkpoint might while a commit's fsync is failing.
    pub fn fail_sync_after_delay(&self, n: u64, delay: std::time::Duration) -> u64 {
        let mut s = self.state.lock();
        let at = s.syncs + n;
        s.fail_sync_at = Some(at);
        s.fail_sync_delay = delay;
        at
    }

    /// Makes every file `sync` take `delay` first (without blocking other operations),
    /// like a slow disk, then sync what was written by then: for tests of timing, not
    /// of what a power loss keeps.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.state.lock().sync_delay = delay;
    }

    /// Makes every [`Vfs::read`] pass the bytes through `hook` (`None`: as stored),
    /// e.g. to damage what is read back of some files.
    pub fn set_read_hook(&self, hook: Option<ReadHook>) {
        self.state.lock().read_hook = hook;
    }

    /// Limits the bytes all named files may hold together (`None`: unlimited). An append
    /// past the limit writes what fits and fails with `ENOSPC`; removing or truncating
    /// files frees space.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    /// Bytes held by named files.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used()
    }

    /// Number of successful or failed syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Simulates a power loss: every open handle becomes invalid, directory entries roll
    /// back to their last synced state, and each file keeps its synced bytes while its
    /// unsynced bytes are damaged as chosen by `seed`: half of the time a random prefix of
    /// them survives (a torn append), otherwise the file ends at a random length past its
    /// synced one and every unsynced page up to there is kept, zeroed or garbled
    /// independently.
    pub fn power_loss(&self, seed: u64) {
        let mut s = self.state.lock();
        let mut rng = seed;
        s.generation += 1;
        // A directory survives if its own entry and every ancestor's are durable.
        let durable_dirs = s.durable_dirs.clone();
        s.dirs.retain(|d| {
            d.ancestors()
                .all(|a| a.as_os_str().is_empty() || durable_dirs.contains(&a.to_path_buf()))
        });
        let dirs = s.dirs.clone();
        s.durable_names.retain(|d, _| dirs.contains(d));
        let mut names = HashMap::new();
        for entries in s.durable_names.values() {
            names.extend(entries.iter().map(|(p, id)| (p.clone(), *id)));
        }
        s.names = names;
        let live: Vec<u64> = s.names.values().copied().collect();
        s.files.retain(|id, _| live.contains(id));
        let mut ids: Vec<u64> = s.files.keys().copied().collect();
        ids.sort_unstable(); // deterministic for a seed
        for id in ids {
            let Some(f) = s.files.get_mut(&id) else {
                continue;
            };
            lose_unsynced(f, &mut rng);
        }
    }

    /// Simulates a process crash: nothing written to the OS is lost.
    pub fn process_crash(&self) {
        self.state.lock().generation += 1;
    }

    /// The current length of a file, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<usize> {
        let s = self.state.lock();
        s.names
            .get(path)
            .and_then(|id| s.files.get(id))
            .map(|f| f.data.len())
    }

    /// Overwrites one byte of a file (to simulate corruption).
    pub fn corrupt_byte(&self, path: &Path, offset: usize, xor: u8) -> io::Result<()> {
        let mut s = self.state.lock();
        let id = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let f = s.files.get_mut(&id).ok_or_else(gone)?;
        let b = f
            .data
            .get_mut(offset)
            .ok_or_else(|| io::Error::other("offset past end"))?;
        *b ^= xor;
        Ok(())
    }
}

impl Vfs for FaultyVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        let mut chain: Vec<&Path> = path.ancestors().collect();
        chain.reverse();
        for d in chain {
            if d.as_os_str().is_empty() || s.dirs.iter().any(|x| x == d) {
                continue;
            }
            s.dirs.push(d.to_path_buf());
            if d.parent().is_none_or(|p| p.as_os_str().is_empty()) {
                s.durable_dirs.push(d.to_path_buf());
            }
        }
        Ok(())
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.state.lock();
        let id = match s.names.get(path) {
            Some(id) => *id,
            None => {
                s.next_id += 1;
                let id = s.next_id;
                s.files.insert(id, MemFile::default());
                s.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            id,
            generation: s.generation,
            pos: None,
        }))
    }
    fn create_empty(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.state.lock();
        // A new inode under the name: a power loss before the directory sync brings back
        // whatever the name held before (or nothing).
        s.next_id += 1;
        let id = s.next_id;
        s.files.insert(id, MemFile::default());
        s.names.insert(path.to_path_buf(), id);
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            id,
            generation: s.generation,
            pos: None,
        }))
    }
    fn create_preallocated(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn VfsFile>> {
        let mut s = self.state.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.files.insert(id, MemFile::default());
        s.names.insert(path.to_path_buf(), id);
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            id,
            generation: s.generation,
            pos: Some((Mutex::new(0), capacity as usize)),
        }))
    }
    fn open_preallocated(
        &self,
        path: &Path,
        pos: u64,
        capacity: u64,
    ) -> io::Result<Arc<dyn VfsFile>> {
        let s = self.state.lock();
        let id = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = s.files.get(&id).map_or(0, |f| f.data.len());
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            id,
            generation: s.generation,
            pos: Some((Mutex::new(pos as usize), (capacity as usize).max(len))),
        }))
    }
    fn exists(&self, path: &Path) -> bool {
        let s = self.state.lock();
        s.names.contains_key(path) || s.dirs.iter().any(|d| d == path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state.lock();
        let id = s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let mut bytes = s.files.get(id).map(|f| f.data.clone()).unwrap_or_default();
        if let Some(hook) = s.read_hook.clone() {
            drop(s);
            hook(path, &mut bytes);
        }
        Ok(bytes)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state.lock();
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        let id = s
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.names.insert(to.to_path_buf(), id);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.names
            .remove(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(())
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        s.sync_counts()?;
        let id = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let f = s.files.get_mut(&id).ok_or_else(gone)?;
        f.data.truncate(len as usize);
        // `truncate` also syncs (the real one ends with an fsync).
        f.synced_len = f.data.len();
        f.dirty.clear();
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.sync_counts()?;
        let entries: HashMap<PathBuf, u64> = s
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        s.durable_names.insert(dir.to_path_buf(), entries);
        let children: Vec<PathBuf> = s
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(dir))
            .cloned()
            .collect();
        for c in children {
            if !s.durable_dirs.contains(&c) {
                s.durable_dirs.push(c);
            }
        }
        Ok(())
    }
}
