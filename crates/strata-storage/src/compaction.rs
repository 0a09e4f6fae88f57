//! Compaction policy: which sorted runs to merge.
//!
//! Every flush adds a run the size of the memtable. Left alone, runs would pile up and
//! every point lookup that misses the memtable would search all of them. Merging all
//! runs at every flush would keep one run but rewrite the whole database each time.
//!
//! The rule here is the *binary counter* of the logarithmic method: the newest runs are
//! merged as soon as the run just older than them is no larger than their total. Runs
//! then grow roughly geometrically from newest to oldest, so a database of `N` flushes
//! keeps at most about `log2(N) + 1` runs, and every byte is rewritten about
//! `log2(N)` times over its life (the write amplification, reported by the
//! `compaction` log event as bytes read and written). As a backstop, the newest runs
//! are merged whenever more than [`MAX_RUNS`] exist.
//!
//! The comparison is strict on purpose. Counting an older run up to 1.5× the newer ones'
//! total as "no larger" (size-tiered buckets) was measured: it left 3 runs instead of 4
//! after a 1,000,000-key load (listings 13 % faster), but at 10,000,000 keys its merges
//! were larger, and the flush thread, which runs them, let the memtable grow for their
//! whole length: `close` after the load took 4.9 s instead of 0.23 s, with 400 MB more
//! resident. Fewer runs need merges that run beside the flushes and writes that slow down
//! while merges catch up (`docs/benchmarks.md`, "Compaction: nearly equal runs").
//!
//! A merge keeps every version that someone may still read, deletes included
//! ([`crate::Storage::compact`]): garbage collection drops hidden versions from the
//! memtable before it is flushed, and a merge drops the versions that retention hides
//! *after* they reached a run — through the retention policies of the layer above
//! ([`crate::Storage::set_retention_hook`]) — unless an open snapshot or a fork of the
//! run still reads them; purged runs keep only what a pinned reader sees. Retention and
//! purges therefore free disk at the next merge that takes the runs holding them (all
//! runs at an explicit full compaction).
use crate::manifest::RunMeta;

/// Most runs kept before the newest ones are merged regardless of their sizes.
pub const MAX_RUNS: usize = 12;

/// How many of the newest runs (`runs` is newest first) to merge now: 0 or 1 means none.
pub(crate) fn pick(runs: &[RunMeta]) -> usize {
    if runs.len() < 2 {
        return 0;
    }
    let mut total = runs[0].bytes;
    let mut n = 1;
    while n < runs.len() && runs[n].bytes <= total {
        total += runs[n].bytes;
        n += 1;
    }
    if n < 2 && runs.len() > MAX_RUNS {
        n = runs.len() - MAX_RUNS + 1;
    }
    if n < 2 {
        0
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(runs: &[u64]) -> Vec<RunMeta> {
        runs.iter()
            .enumerate()
            .map(|(i, &bytes)| RunMeta {
                id: i as u64,
                min_version: 0,
                max_version: 0,
                entries: 0,
                bytes,
            })
            .collect()
    }

    #[test]
    fn binary_counter() {
        assert_eq!(pick(&sizes(&[10])), 0);
        assert_eq!(pick(&sizes(&[10, 10])), 2);
        assert_eq!(pick(&sizes(&[10, 20])), 0);
        assert_eq!(pick(&sizes(&[10, 10, 20])), 3);
        assert_eq!(pick(&sizes(&[10, 10, 40])), 2);
    }

    #[test]
    fn simulated_flushes_keep_few_runs_and_bounded_rewrites() {
        let mut runs: Vec<u64> = Vec::new();
        let mut written = 0u64;
        let flushes = 1000u64;
        let mut most = 0;
        for _ in 0..flushes {
            runs.insert(0, 1);
            written += 1;
            loop {
                let n = pick(&sizes(&runs));
                if n < 2 {
                    break;
                }
                let merged: u64 = runs[..n].iter().sum();
                written += merged;
                runs.drain(..n);
                runs.insert(0, merged);
            }
            most = most.max(runs.len());
        }
        // log2(1000) ≈ 10.
        assert!(most <= 11, "{most} runs");
        let amplification = written as f64 / flushes as f64;
        assert!(amplification <= 12.0, "write amplification {amplification}");
    }
}
