//! Fuzz target `search_filter`: see `strata_fuzz::search_filter` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::search_filter(data));
