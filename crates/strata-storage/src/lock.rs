//! One writer per directory.
//!
//! `open` takes an exclusive advisory lock (`flock`) on `<dir>/LOCK`. The kernel drops
//! it when the process dies, so there is never a stale lock after `kill -9`; a second
//! open of the same directory, from this process or another, fails at once.
//!
//! The holder writes its process id into the file, so that a refused open can say who
//! holds it ([`lock_holder`]); the id is informative only, the lock is the `flock`.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use strata_core::{Error, Result};

/// Name of the lock file inside a database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds the directory lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`, failing with [`Error::Storage`] if another handle holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|e| {
            Error::Storage(format!("cannot open lock file {}: {e}", path.display()))
        })?;
        match file.try_lock() {
            Ok(()) => {
                record_pid(&file);
                Ok(DirLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(Error::Storage(match lock_holder(dir) {
                Some(pid) => format!(
                    "database {} is already open (locked by another handle or process; \
                     database is in use by process {pid})",
                    dir.display()
                ),
                None => format!(
                    "database {} is already open (locked by another handle or process)",
                    dir.display()
                ),
            })),
            Err(TryLockError::Error(e)) => Err(Error::Storage(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Best effort: a failure to record the pid only makes [`lock_holder`] say less.
fn record_pid(mut file: &File) {
    use std::io::{Seek, Write};
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
}

/// The process id recorded in `dir`'s lock file by its last holder, if any. Only
/// meaningful while the lock is held (after a crash it names a dead process).
pub fn lock_holder(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(LOCK_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
        let pid = std::process::id();
        assert_eq!(lock_holder(dir.path()), Some(pid));
        assert!(err.to_string().contains(&format!("process {pid}")), "{err}");
        drop(a);
        DirLock::acquire(dir.path()).unwrap();
    }
}
