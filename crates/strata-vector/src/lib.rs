//! # strata-vector
//!
//! In-memory vector search for StrataDB collections: distance metrics and kernels
//! ([`distance`]), metadata filters ([`filter`]), exact brute-force search ([`exact`]),
//! an HNSW graph with tombstones, filtered traversal and serialization ([`hnsw`]), and a
//! per-collection index that maps keys to ids and chooses a search strategy ([`index`]),
//! and the index files that let a database reopen without rebuilding it ([`persist`]).
//!
//! See `docs/vectors.md` for the design, the score formulas and measured performance.
#![deny(missing_docs)]
// The one exception, `distance::simd`, calls AVX2 kernels after run-time detection and
// issues prefetch hints; each `unsafe` block there carries its safety argument.
#![deny(unsafe_code)]

pub mod distance;
pub mod exact;
pub mod filter;
pub mod hnsw;
pub mod index;
pub mod persist;
pub mod synthetic;
pub mod vectors;

pub use distance::DistanceMetric;
pub use exact::ExactIndex;
pub use filter::SearchFilter;
pub use hnsw::{HnswIndex, HnswParams};
pub use index::{CollectionConfig, CollectionIndex, SearchStrategy, VectorIndex};
pub use vectors::{CollectionInfo, IndexSource, PendingIndexOp, VectorData, VectorMatch, Vectors};
