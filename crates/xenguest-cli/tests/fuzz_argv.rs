//! Stable-toolchain fuzz runs of `fuzz/targets/{argv}.rs` (see `fuzz/harness.rs`):
//! a smoke run in `cargo test`, a long one with `cargo xtask fuzz --seconds N`.
#![allow(clippy::print_stderr)]

#[path = "../../../fuzz/targets/argv.rs"]
mod argv;
#[path = "../../../fuzz/harness.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

#[test]
fn fuzz_argv() {
    let target = harness::Target {
        name: argv::NAME,
        max_len: argv::MAX_LEN,
        dict: argv::DICT,
        alloc_cap: argv::alloc_cap,
    };
    let report = harness::run(&target, &argv::seeds(), argv::check);
    assert!(report.inputs > 0);
}
