//! Fuzz target `snapshot`: see `strata_fuzz::snapshot` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::snapshot(data));
