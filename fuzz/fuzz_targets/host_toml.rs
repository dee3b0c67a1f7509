//! cargo-fuzz entry point of `fuzz/targets/host_toml.rs`.
#![no_main]

#[path = "../targets/host_toml.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
