//! Fuzz target `json_path`: see `strata_fuzz::json_path` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::json_path(data));
