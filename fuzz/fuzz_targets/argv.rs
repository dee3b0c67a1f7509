//! cargo-fuzz entry point of `fuzz/targets/argv.rs`.
#![no_main]

#[path = "../targets/argv.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
