//! One writer per directory.
//!
//! `open` takes an exclusive advisory lock (`flock`) on `<dir>/LOCK`. The kernel drops
//! it when the process dies, so there is never a stale lock after `kill -9`; a second
//! open of the same directory, from this process or another, fails at once.
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
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Storage(format!(
                "database {} is already open (locked by another handle or process)",
                dir.display()
            ))),
            Err(TryLockError::Error(e)) => Err(Error::Storage(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
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
        drop(a);
        DirLock::acquire(dir.path()).unwrap();
    }
}
