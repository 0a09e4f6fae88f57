//! Replays the fuzzing corpora (`fuzz/corpus/<target>/`) through the fuzz targets' own
//! bodies, so that every input the fuzzer ever kept, crashing inputs included, is checked
//! on every `cargo test` in a few seconds, without libFuzzer.
//!
//! The target bodies live in `fuzz/src/lib.rs` and are compiled into this test through
//! `#[path]`: one source, no dependency on the fuzz workspace. See `fuzz/README.md`.
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/lib.rs"]
mod harness;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `body` on every file of the target's corpus, naming the file that fails.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| body(&bytes)).is_err() {
            panic!("fuzz target {target} fails on {}", file.display());
        }
    }
}

#[test]
fn codec_corpus() {
    replay("codec", harness::codec);
}

#[test]
fn wal_segment_corpus() {
    replay("wal_segment", harness::wal_segment);
}

#[test]
fn snapshot_corpus() {
    replay("snapshot", harness::snapshot);
}

#[test]
fn vector_index_corpus() {
    replay("vector_index", harness::vector_index);
}

#[test]
fn json_path_corpus() {
    replay("json_path", harness::json_path);
}

#[test]
fn search_filter_corpus() {
    replay("search_filter", harness::search_filter);
}
