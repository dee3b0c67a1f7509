//! Stable-toolchain fuzz runs of `fuzz/targets/{host_toml}.rs` (see `fuzz/harness.rs`):
//! a smoke run in `cargo test`, a long one with `cargo xtask fuzz --seconds N`.
#![allow(clippy::print_stderr)]

#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/targets/host_toml.rs"]
mod host_toml;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

#[test]
fn fuzz_host_toml() {
    let target = harness::Target {
        name: host_toml::NAME,
        max_len: host_toml::MAX_LEN,
        dict: host_toml::DICT,
        alloc_cap: host_toml::alloc_cap,
    };
    let report = harness::run(&target, &host_toml::seeds(), host_toml::check);
    assert!(report.inputs > 0);
}
