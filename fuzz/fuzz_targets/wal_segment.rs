//! Fuzz target `wal_segment`: see `strata_fuzz::wal_segment` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::wal_segment(data));
