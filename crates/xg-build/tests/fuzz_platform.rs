//! Stable-toolchain fuzz runs of `fuzz/targets/{platform,get_flags,pci_sysfs}.rs` (see `fuzz/harness.rs`):
//! a smoke run in `cargo test`, a long one with `cargo xtask fuzz --seconds N`.
#![allow(clippy::print_stderr)]

#[path = "../../../fuzz/targets/get_flags.rs"]
mod get_flags;
#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/targets/pci_sysfs.rs"]
mod pci_sysfs;
#[path = "../../../fuzz/targets/platform.rs"]
mod platform;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

#[test]
fn fuzz_platform() {
    let target = harness::Target {
        name: platform::NAME,
        max_len: platform::MAX_LEN,
        dict: platform::DICT,
        alloc_cap: platform::alloc_cap,
    };
    let report = harness::run(&target, &platform::seeds(), platform::check);
    assert!(report.inputs > 0);
}

#[test]
fn fuzz_get_flags() {
    let target = harness::Target {
        name: get_flags::NAME,
        max_len: get_flags::MAX_LEN,
        dict: get_flags::DICT,
        alloc_cap: get_flags::alloc_cap,
    };
    let report = harness::run(&target, &get_flags::seeds(), get_flags::check);
    assert!(report.inputs > 0);
}

#[test]
fn fuzz_pci_sysfs() {
    let target = harness::Target {
        name: pci_sysfs::NAME,
        max_len: pci_sysfs::MAX_LEN,
        dict: pci_sysfs::DICT,
        alloc_cap: pci_sysfs::alloc_cap,
    };
    let report = harness::run(&target, &pci_sysfs::seeds(), pci_sysfs::check);
    assert!(report.inputs > 0);
}
