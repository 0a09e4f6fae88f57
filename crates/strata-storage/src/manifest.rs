//! The manifest: which sorted runs hold the database's flushed versions.
//!
//! One small file, `MANIFEST`, replaced atomically (written as `MANIFEST.tmp`, fsynced,
//! renamed, directory fsynced) whenever a flush adds a run or a compaction replaces
//! runs. It is the single point where a flush or a compaction takes effect: before the
//! rename the old manifest (and the log) describe the database, after it the new one
//! does, and a crash in between leaves only files the next open deletes as unlisted.
//!
//! ```text
//! header (48 B): magic "STRATMAN" | format u32 (= 1) | run_count u32 |
//!                flushed_through u64 | last_timestamp_us u64 | next_run_id u64 |
//!                timeline_len u64
//! runs:          (id u64 | min_version u64 | max_version u64 | entries u64 |
//!                 bytes u64) * run_count, newest first
//! trailer:       crc32c(every byte before it) u32
//! ```
//!
//! `flushed_through` is the newest version held by the runs: the log records up to it
//! are no longer needed, and recovery replays only the ones after it. `timeline_len` is
//! the valid length of the `TIMELINE` file (see [`crate::timeline`]; 0: none yet — the
//! field was reserved and written as 0 before the timeline existed). Runs hold
//! disjoint version ranges, newest first, so that for any key the first run (in that
//! order) holding a version visible to a reader holds the version it sees.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{Error, Result, Timestamp};

use crate::vfs::{join, Vfs};
use crate::wal::{io_err, le_u32, le_u64};

/// The manifest's file name.
pub const MANIFEST_NAME: &str = "MANIFEST";
const TEMP_NAME: &str = "MANIFEST.tmp";
/// Magic bytes at the start of a manifest.
pub const MANIFEST_MAGIC: &[u8; 8] = b"STRATMAN";
/// Format version of the manifests this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 48;
const RUN_LEN: usize = 40;
/// Most runs a manifest may list (far above what compaction lets accumulate).
const MAX_RUNS: usize = 1 << 16;

/// One run as the manifest lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunMeta {
    /// The run's id: its file is `run-<id>.sst`.
    pub id: u64,
    /// Lowest version it may hold.
    pub min_version: u64,
    /// Newest version it may hold.
    pub max_version: u64,
    /// Entries (versions) it holds.
    pub entries: u64,
    /// Size of its file.
    pub bytes: u64,
}

/// The decoded manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Newest version held by the runs.
    pub flushed_through: u64,
    /// Newest commit timestamp held by the runs.
    pub last_timestamp: Timestamp,
    /// The id the next run gets.
    pub next_run_id: u64,
    /// The live runs, newest first.
    pub runs: Vec<RunMeta>,
    /// Valid bytes of the timeline file (see [`crate::timeline`]); 0 if none.
    pub timeline_len: u64,
}

impl Manifest {
    /// The encoded file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + RUN_LEN * self.runs.len() + 4);
        b.extend_from_slice(MANIFEST_MAGIC);
        b.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.runs.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.flushed_through.to_le_bytes());
        b.extend_from_slice(&self.last_timestamp.0.to_le_bytes());
        b.extend_from_slice(&self.next_run_id.to_le_bytes());
        b.extend_from_slice(&self.timeline_len.to_le_bytes());
        for r in &self.runs {
            for v in [r.id, r.min_version, r.max_version, r.entries, r.bytes] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a manifest read from `path`.
    pub fn decode(path: &Path, b: &[u8]) -> Result<Manifest> {
        let name = path.display();
        let corrupt = |what: String| Error::Storage(format!("manifest {name} is corrupt: {what}"));
        if b.len() < 12 || &b[..8] != MANIFEST_MAGIC {
            return Err(Error::Storage(format!(
                "{name} is not a StrataDB manifest (bad magic at offset 0)"
            )));
        }
        let format = le_u32(b, 8).unwrap_or(0);
        if format != MANIFEST_FORMAT_VERSION {
            return Err(Error::Storage(format!(
                "manifest {name} has format version {format}; this build reads version \
                 {MANIFEST_FORMAT_VERSION}"
            )));
        }
        let count = le_u32(b, 12).unwrap_or(0) as usize;
        if count > MAX_RUNS || b.len() != HEADER_LEN + count * RUN_LEN + 4 {
            return Err(corrupt(format!(
                "it lists {count} runs but is {} bytes long",
                b.len()
            )));
        }
        let body = b.len() - 4;
        if le_u32(b, body) != Some(crc32c::crc32c(&b[..body])) {
            return Err(corrupt(format!("checksum at offset {body} does not match")));
        }
        let u = |at: usize| le_u64(b, at).unwrap_or(0);
        let mut runs = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEADER_LEN + i * RUN_LEN;
            runs.push(RunMeta {
                id: u(at),
                min_version: u(at + 8),
                max_version: u(at + 16),
                entries: u(at + 24),
                bytes: u(at + 32),
            });
        }
        let m = Manifest {
            flushed_through: u(16),
            last_timestamp: Timestamp(u(24)),
            next_run_id: u(32),
            runs,
            timeline_len: u(40),
        };
        // Newest first, disjoint, below the flushed version, ids below the next id.
        let ordered = m
            .runs
            .windows(2)
            .all(|w| w[1].max_version < w[0].min_version);
        let sane = m.runs.iter().all(|r| {
            r.min_version <= r.max_version
                && r.max_version <= m.flushed_through
                && r.id < m.next_run_id
        });
        if !ordered || !sane {
            return Err(corrupt(
                "its runs overlap or lie beyond its flushed version".into(),
            ));
        }
        Ok(m)
    }

    /// Reads the manifest of `dir`, if there is one.
    pub fn read(vfs: &Arc<dyn Vfs>, dir: &Path) -> Result<Option<Manifest>> {
        let path = join(dir, MANIFEST_NAME);
        if !vfs.exists(&path) {
            return Ok(None);
        }
        let bytes = vfs.read(&path).map_err(|e| io_err(&path, e))?;
        Manifest::decode(&path, &bytes).map(Some)
    }

    /// Replaces the manifest of `dir` with this one, atomically and durably. On error,
    /// says whether the new manifest may nevertheless have taken effect (the rename was
    /// attempted: a failed rename or directory fsync leaves the outcome unknown), in
    /// which case the caller must stop writing (poison) rather than carry on from the
    /// old manifest.
    pub(crate) fn write(
        &self,
        vfs: &Arc<dyn Vfs>,
        dir: &Path,
    ) -> std::result::Result<PathBuf, ManifestWriteError> {
        let tmp = join(dir, TEMP_NAME);
        let path = join(dir, MANIFEST_NAME);
        let before_rename = (|| {
            let f = vfs.create_empty(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.append(&self.encode()).map_err(|e| io_err(&tmp, e))?;
            f.sync().map_err(|e| io_err(&tmp, e))
        })();
        if let Err(error) = before_rename {
            let _ = vfs.remove(&tmp);
            return Err(ManifestWriteError {
                error,
                maybe_applied: false,
            });
        }
        vfs.rename(&tmp, &path)
            .map_err(|e| io_err(&path, e))
            .and_then(|()| vfs.sync_dir(dir).map_err(|e| io_err(dir, e)))
            .map_err(|error| ManifestWriteError {
                error,
                maybe_applied: true,
            })?;
        Ok(path)
    }
}

/// A failed [`Manifest::write`].
pub(crate) struct ManifestWriteError {
    pub error: Error,
    /// The rename was attempted: the new manifest may be the one on disk.
    pub maybe_applied: bool,
}

/// `true` for the manifest's temporary file.
pub(crate) fn is_manifest_temp(name: &str) -> bool {
    name == TEMP_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            flushed_through: 90,
            last_timestamp: Timestamp(1234),
            next_run_id: 7,
            runs: vec![
                RunMeta {
                    id: 6,
                    min_version: 51,
                    max_version: 90,
                    entries: 40,
                    bytes: 4000,
                },
                RunMeta {
                    id: 3,
                    min_version: 1,
                    max_version: 50,
                    entries: 50,
                    bytes: 5000,
                },
            ],
            timeline_len: 321,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let m = sample();
        let b = m.encode();
        let p = Path::new("/db/MANIFEST");
        assert_eq!(Manifest::decode(p, &b).unwrap(), m);
        for at in 0..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 0x10;
            assert!(Manifest::decode(p, &bad).is_err(), "flip at {at}");
        }
        assert!(Manifest::decode(p, &b[..b.len() - 1]).is_err());
    }

    #[test]
    fn overlapping_runs_are_refused() {
        let mut m = sample();
        m.runs[1].max_version = 60;
        let err = Manifest::decode(Path::new("M"), &m.encode()).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
    }
}
