//! The narrow file-system seam the log and snapshot code write through.
//!
//! Production uses [`OsVfs`]. Tests use [`crate::testing::FaultyVfs`], which keeps files
//! in memory, can fail a chosen `sync`, and can simulate a power loss that drops every
//! write not yet synced — running exactly the same log and snapshot code.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file that is only ever appended to.
pub trait VfsFile: Send + Sync {
    /// Appends all of `buf`. Callers serialize appends; `sync` may run concurrently.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Undoes a failed append: the next append goes to offset `len` again (a plain file
    /// is truncated to `len` and synced; a preallocated one may keep bytes of the failed
    /// record past `len` until the next append overwrites them — never acknowledged, they
    /// fail their checksum). Callers serialize it with appends. The default cannot and
    /// says so.
    fn rollback(&self, len: u64) -> io::Result<()> {
        let _ = len;
        Err(io::Error::other("this file cannot undo a failed append"))
    }
}

/// The file-system operations storage needs, and nothing more.
pub trait Vfs: Send + Sync {
    /// Creates a directory and its parents (owner-only on Unix).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file for appending, creating it (owner-only) if missing.
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Creates an empty file (owner-only) for appending, truncating one that exists.
    fn create_empty(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// `true` if a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Creates (truncating any existing file) an empty file for writing at increasing
    /// offsets, of at most `capacity` bytes. Each `append` first allocates the blocks it
    /// will write (in steps of [`PREALLOCATION_STEP`], zero-filled), so a full disk fails
    /// the append without writing anything; appends past `capacity` fail the same way.
    /// Log segments use it: writes need no syscall where the implementation maps the
    /// file. The default falls back to [`Vfs::create_empty`].
    fn create_preallocated(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn VfsFile>> {
        let _ = capacity;
        self.create_empty(path)
    }
    /// Opens an existing file like [`Vfs::create_preallocated`], keeping its content, with
    /// the next write at `pos` (zeros or nothing after it), of at most `capacity` bytes.
    /// The default truncates the file to `pos` and falls back to [`Vfs::open_append`].
    fn open_preallocated(
        &self,
        path: &Path,
        pos: u64,
        capacity: u64,
    ) -> io::Result<Arc<dyn VfsFile>> {
        let _ = capacity;
        // Nothing after `pos` may stay: an append must land right after the last record.
        self.truncate(path, pos)?;
        self.open_append(path)
    }
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The bytes of an immutable file, for reading in place: the real file system maps
    /// it (`mmap`, read-only), so its pages are the OS page cache's and are read only
    /// when touched. The caller promises nobody changes the file while it is mapped
    /// (sorted runs are never written after they are renamed into place). The default
    /// reads the whole file.
    fn map_readonly(&self, path: &Path) -> io::Result<FileBytes> {
        Ok(Arc::new(self.read(path)?))
    }
    /// File names (not paths) in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Truncates a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The bytes of a file read in place (see [`Vfs::map_readonly`]).
pub type FileBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// The unit in which a log segment's file is allocated ahead of the writes (1 MiB): a
/// crash leaves at most one and a half of it in zeros after the last record (the next
/// step is allocated when the writes come within half a step of the allocated end).
pub const PREALLOCATION_STEP: u64 = 1 << 20;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsVfs;

struct OsFile(File);

impl VfsFile for OsFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn rollback(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
}

fn owner_only(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

impl Vfs for OsVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let f = owner_only(OpenOptions::new().create(true).append(true)).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }
    fn create_empty(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let f = owner_only(OpenOptions::new().create(true).append(true)).open(path)?;
        f.set_len(0)?;
        Ok(Arc::new(OsFile(f)))
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn create_preallocated(&self, path: &Path, capacity: u64) -> io::Result<Arc<dyn VfsFile>> {
        let f = owner_only(OpenOptions::new().read(true).write(true).create(true))
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(crate::mapped::MappedFile::new(f, 0, capacity)?))
    }
    fn open_preallocated(
        &self,
        path: &Path,
        pos: u64,
        capacity: u64,
    ) -> io::Result<Arc<dyn VfsFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(crate::mapped::MappedFile::new(f, pos, capacity)?))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<FileBytes> {
        let f = File::open(path)?;
        if f.metadata()?.len() == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        Ok(Arc::new(crate::mapped::ReadOnlyMap::new(&f)?))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(dir)? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }
}

/// `dir/name` as a path.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
