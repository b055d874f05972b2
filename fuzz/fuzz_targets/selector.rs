//! Fuzz target `selector`: see fuzz/README.md. The checks live in
//! `tests/fuzz_support/mod.rs`, shared with `tests/fuzz_regressions.rs`.

#![no_main]

#[path = "../../tests/fuzz_support/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::selector(data));
