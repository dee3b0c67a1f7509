//! cargo-fuzz entry point of `fuzz/targets/kernel_image.rs`.
#![no_main]

#[path = "../targets/kernel_image.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
