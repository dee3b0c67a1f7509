//! cargo-fuzz entry point of `fuzz/targets/pci_sysfs.rs`.
#![no_main]

#[path = "../targets/pci_sysfs.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::check(data));
