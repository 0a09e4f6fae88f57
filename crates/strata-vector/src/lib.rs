//! # strata-vector
//!
//! In-memory vector search for StrataDB collections: distance metrics and kernels
//! ([`distance`]), metadata filters ([`filter`]), exact brute-force search ([`exact`]),
//! an HNSW graph with tombstones, filtered traversal and serialization ([`hnsw`]), and a
//! per-collection index that maps keys to ids and chooses a search strategy ([`index`]),
//! and the index files that let a database reopen without rebuilding it ([`persist`]),
//! whose vector sections the indexes then read in place (`arena`).
//!
//! See `docs/vectors.md` for the design, the score formulas and measured performance.
#![deny(missing_docs)]
// The two exceptions: `distance::simd` calls AVX2 kernels after run-time detection and
// issues prefetch hints, and `arena` maps index files and reads their vector sections as
// `f32`s; each `unsafe` block there carries its safety argument.
#![deny(unsafe_code)]

mod arena;
mod bridge;
pub mod distance;
pub mod exact;
pub mod filter;
pub mod hnsw;
pub mod index;
pub mod persist;
pub mod quantized;
pub mod synthetic;
pub mod vectors;

pub use distance::DistanceMetric;
pub use exact::ExactIndex;
pub use filter::SearchFilter;
pub use hnsw::{HnswIndex, HnswParams};
pub use index::{
    post_filter_ef, CollectionConfig, CollectionIndex, SearchStrategy, VectorIndex,
    INT8_EF_CONSTRUCTION, INT8_EF_SEARCH,
};
pub use quantized::Quantization;
pub use vectors::{
    CollectionInfo, CollectionOptions, IndexSource, PendingIndexOp, VectorData, VectorMatch,
    Vectors, MAX_UNPERSISTED_VECTORS,
};

/// Opening the vector primitive over an engine and the hooks the `stratadb` facade needs
/// (applying a transaction's index changes, observing how an index was loaded). Not part
/// of the user-facing API: users get [`Vectors`] as `stratadb::Strata::vectors`, whose
/// documentation does not include this module, so the engine and index internals stay
/// out of it.
pub mod internal {
    use std::sync::Arc;

    use strata_core::{Result, RunId};
    use strata_primitives::Engine;

    use crate::{IndexSource, PendingIndexOp, Vectors};

    /// Opens the primitive. Each collection's index is loaded from its index file when
    /// a valid one exists for this incarnation of the collection, then reconciled with
    /// the records (changes after the file was written are replayed); otherwise it is
    /// rebuilt from the records. A bad index file is logged and ignored, never an error.
    pub fn open(engine: Arc<Engine>) -> Result<Vectors> {
        Vectors::open(engine)
    }

    /// Applies the index changes of a transaction committed at `version`.
    pub fn apply(vectors: &Vectors, ops: Vec<PendingIndexOp>, version: u64) {
        vectors.apply(ops, version)
    }

    /// How the index of a collection was obtained, or `None` if the collection has no
    /// index (it does not exist).
    pub fn index_source(vectors: &Vectors, run: &RunId, name: &str) -> Option<IndexSource> {
        vectors.index_source(run, name)
    }

    /// Whether a forked collection's searches walk its own graph and its parent's as one
    /// (they are bridged); `false` for any other collection, and for forked collections
    /// that search with two walks (small, filtered, forks of forks, bridge not made yet).
    pub fn is_bridged(vectors: &Vectors, run: &RunId, name: &str) -> bool {
        vectors.is_bridged(run, name)
    }

    /// The working copy a collection's index compares (loading the index), or `None`
    /// when the collection does not exist.
    pub fn index_quantization(
        vectors: &Vectors,
        run: &RunId,
        name: &str,
    ) -> Option<crate::Quantization> {
        vectors.index_quantization(run, name)
    }

    /// A collection's index memory (loading the index): the bytes it holds in the
    /// process's memory, and the bytes of vectors it reads in place from its mapped
    /// index file; `None` when the collection does not exist.
    pub fn index_memory(vectors: &Vectors, run: &RunId, name: &str) -> Option<(usize, usize)> {
        vectors.index_memory(run, name)
    }

    /// Number of collection indexes loaded so far (they load on first use).
    pub fn loaded_indexes(vectors: &Vectors) -> usize {
        vectors.loaded_indexes()
    }
}
