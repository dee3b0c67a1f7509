//! cargo-fuzz entry point of `fuzz/targets/xs_replies.rs`.
#![no_main]

#[path = "../targets/xs_replies.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
