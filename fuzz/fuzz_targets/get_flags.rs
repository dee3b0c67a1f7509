//! cargo-fuzz entry point of `fuzz/targets/get_flags.rs`.
#![no_main]

#[path = "../targets/get_flags.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
