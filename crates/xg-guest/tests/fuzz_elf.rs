//! Stable-toolchain fuzz runs of `fuzz/targets/{elf_image,kernel_image}.rs` (see `fuzz/harness.rs`):
//! a smoke run in `cargo test`, a long one with `cargo xtask fuzz --seconds N`.
#![allow(clippy::print_stderr)]

#[path = "../../../fuzz/targets/elf_image.rs"]
mod elf_image;
#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/targets/kernel_image.rs"]
mod kernel_image;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

#[test]
fn fuzz_elf_image() {
    let target = harness::Target {
        name: elf_image::NAME,
        max_len: elf_image::MAX_LEN,
        dict: elf_image::DICT,
        alloc_cap: elf_image::alloc_cap,
    };
    let report = harness::run(&target, &elf_image::seeds(), elf_image::check);
    assert!(report.inputs > 0);
}

#[test]
fn fuzz_kernel_image() {
    let target = harness::Target {
        name: kernel_image::NAME,
        max_len: kernel_image::MAX_LEN,
        dict: kernel_image::DICT,
        alloc_cap: kernel_image::alloc_cap,
    };
    let report = harness::run(&target, &kernel_image::seeds(), kernel_image::check);
    assert!(report.inputs > 0);
}
