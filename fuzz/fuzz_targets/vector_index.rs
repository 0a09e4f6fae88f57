//! Fuzz target `vector_index`: see `strata_fuzz::vector_index` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::vector_index(data));
