//! Fuzz target `codec`: see `strata_fuzz::codec` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_fuzz::codec(data));
