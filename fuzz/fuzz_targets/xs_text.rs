//! cargo-fuzz entry point of `fuzz/targets/xs_text.rs`.
#![no_main]

#[path = "../targets/xs_text.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
