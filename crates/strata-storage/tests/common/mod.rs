//! Helpers shared by the integration tests: a small deterministic RNG, write builders,
//! and a crash "fence" around [`FaultyVfs`].
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use strata_storage::testing::FaultyVfs;
use strata_storage::vfs::{Vfs, VfsFile};
use strata_storage::Write;

/// splitmix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `true` with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A seed from `var` if set (to replay a failure), else from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(s) => s.parse().expect("seed must be a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42),
    }
}

pub fn put(k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> Write {
    Write {
        key: k.as_ref().into(),
        value: Some(Arc::from(v.as_ref())),
    }
}

pub fn del(k: impl AsRef<[u8]>) -> Write {
    Write {
        key: k.as_ref().into(),
        value: None,
    }
}

/// A [`FaultyVfs`] whose crashes also *fence off* every handle given out before them.
///
/// `FaultyVfs::power_loss` invalidates open files, but directory operations (list,
/// rename, remove, create) of a storage instance that is still alive — say a background
/// snapshot thread — would keep going after the "crash" and change the post-crash
/// file system, which no real power loss allows (the process dies with the machine).
/// Each [`Crashable::vfs`] handle carries the epoch it was made in; a crash bumps the
/// epoch under a write lock, atomically with the power loss, and every later operation
/// through an older handle fails.
#[derive(Clone, Default)]
pub struct Crashable {
    pub fs: FaultyVfs,
    epoch: Arc<RwLock<u64>>,
}

impl Crashable {
    pub fn new() -> Self {
        Self::default()
    }
    /// A file system handle for one storage instance (one "boot").
    pub fn vfs(&self) -> Arc<dyn Vfs> {
        Arc::new(Fenced {
            fs: self.fs.clone(),
            gate: self.epoch.clone(),
            epoch: *self.epoch.read().unwrap(),
        })
    }
    /// Power loss: everything not synced may be lost; the running instance is dead.
    pub fn power_loss(&self, seed: u64) {
        let mut e = self.epoch.write().unwrap();
        *e += 1;
        self.fs.power_loss(seed);
    }
    /// Process crash: nothing written to the OS is lost; the running instance is dead.
    pub fn process_crash(&self) {
        let mut e = self.epoch.write().unwrap();
        *e += 1;
        self.fs.process_crash();
    }
}

struct Fenced {
    fs: FaultyVfs,
    gate: Arc<RwLock<u64>>,
    epoch: u64,
}

struct FencedFile {
    file: Arc<dyn VfsFile>,
    gate: Arc<RwLock<u64>>,
    epoch: u64,
}

fn dead() -> io::Error {
    io::Error::other("this instance died in a simulated crash")
}

macro_rules! fenced {
    ($self:ident, $op:expr) => {{
        let g = $self.gate.read().unwrap();
        if *g != $self.epoch {
            return Err(dead());
        }
        $op
    }};
}

impl VfsFile for FencedFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        fenced!(self, self.file.append(buf))
    }
    fn sync(&self) -> io::Result<()> {
        fenced!(self, self.file.sync())
    }
    fn rollback(&self, len: u64) -> io::Result<()> {
        fenced!(self, self.file.rollback(len))
    }
}

impl Vfs for Fenced {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fenced!(self, self.fs.create_dir_all(path))
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        fenced!(self, {
            let file = self.fs.open_append(path)?;
            Ok(Arc::new(FencedFile {
                file,
                gate: self.gate.clone(),
                epoch: self.epoch,
            }) as Arc<dyn VfsFile>)
        })
    }
    fn create_empty(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        fenced!(self, {
            let file = self.fs.create_empty(path)?;
            Ok(Arc::new(FencedFile {
                file,
                gate: self.gate.clone(),
                epoch: self.epoch,
            }) as Arc<dyn VfsFile>)
        })
    }
    fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }
    fn create_preallocated(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn VfsFile>> {
        fenced!(self, {
            let file = self.fs.create_preallocated(path, capacity)?;
            Ok(Arc::new(FencedFile {
                file,
                gate: self.gate.clone(),
                epoch: self.epoch,
            }) as Arc<dyn VfsFile>)
        })
    }
    fn open_preallocated(
        &self,
        path: &Path,
        pos: u64,
        capacity: u64,
    ) -> io::Result<Arc<dyn VfsFile>> {
        fenced!(self, {
            let file = self.fs.open_preallocated(path, pos, capacity)?;
            Ok(Arc::new(FencedFile {
                file,
                gate: self.gate.clone(),
                epoch: self.epoch,
            }) as Arc<dyn VfsFile>)
        })
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fenced!(self, self.fs.read(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        fenced!(self, self.fs.list(dir))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fenced!(self, self.fs.rename(from, to))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fenced!(self, self.fs.remove(path))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        fenced!(self, self.fs.truncate(path, len))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fenced!(self, self.fs.sync_dir(dir))
    }
}

/// A file system that cuts the power right before its `crash_at`-th mutating operation
/// (append, sync, create, rename, remove, truncate, directory sync; 1-based), which then
/// fails like every later one. With `crash_at = u64::MAX` it only counts: run a
/// deterministic workload once to learn how many operations it makes, then crash at
/// each of them in turn.
#[derive(Clone)]
pub struct CrashAt {
    inner: Arc<dyn Vfs>,
    crash: Crashable,
    ops: Arc<std::sync::atomic::AtomicU64>,
    crash_at: u64,
    seed: u64,
}

impl CrashAt {
    pub fn new(crash: &Crashable, crash_at: u64, seed: u64) -> Self {
        CrashAt {
            inner: crash.vfs(),
            crash: crash.clone(),
            ops: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            crash_at,
            seed,
        }
    }
    /// Mutating operations made (or attempted) so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn step(&self) -> io::Result<()> {
        let n = self.ops.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.crash_at {
            self.crash.power_loss(self.seed);
        }
        if n >= self.crash_at {
            return Err(dead());
        }
        Ok(())
    }
}

struct CrashAtFile {
    file: Arc<dyn VfsFile>,
    owner: CrashAt,
}

impl VfsFile for CrashAtFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.owner.step()?;
        self.file.append(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.owner.step()?;
        self.file.sync()
    }
    fn rollback(&self, len: u64) -> io::Result<()> {
        self.owner.step()?;
        self.file.rollback(len)
    }
}

impl Vfs for CrashAt {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.create_dir_all(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let file = self.inner.open_append(path)?;
        Ok(Arc::new(CrashAtFile {
            file,
            owner: self.clone(),
        }))
    }
    fn create_empty(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        self.step()?;
        let file = self.inner.create_empty(path)?;
        Ok(Arc::new(CrashAtFile {
            file,
            owner: self.clone(),
        }))
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn create_preallocated(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn VfsFile>> {
        self.step()?;
        let file = self.inner.create_preallocated(path, capacity)?;
        Ok(Arc::new(CrashAtFile {
            file,
            owner: self.clone(),
        }))
    }
    fn open_preallocated(
        &self,
        path: &Path,
        pos: u64,
        capacity: u64,
    ) -> io::Result<Arc<dyn VfsFile>> {
        let file = self.inner.open_preallocated(path, pos, capacity)?;
        Ok(Arc::new(CrashAtFile {
            file,
            owner: self.clone(),
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.remove(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.step()?;
        self.inner.truncate(path, len)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step()?;
        self.inner.sync_dir(dir)
    }
}
