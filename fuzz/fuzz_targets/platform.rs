//! cargo-fuzz entry point of `fuzz/targets/platform.rs`.
#![no_main]

#[path = "../targets/platform.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
