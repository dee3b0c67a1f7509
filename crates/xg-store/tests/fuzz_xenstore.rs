//! Stable-toolchain fuzz runs of `fuzz/targets/{xs_wire,xs_text,xs_replies}.rs` (see `fuzz/harness.rs`):
//! a smoke run in `cargo test`, a long one with `cargo xtask fuzz --seconds N`.
#![allow(clippy::print_stderr)]

#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/targets/xs_replies.rs"]
mod xs_replies;
#[path = "../../../fuzz/targets/xs_text.rs"]
mod xs_text;
#[path = "../../../fuzz/targets/xs_wire.rs"]
mod xs_wire;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

#[test]
fn fuzz_xs_wire() {
    let target = harness::Target {
        name: xs_wire::NAME,
        max_len: xs_wire::MAX_LEN,
        dict: xs_wire::DICT,
        alloc_cap: xs_wire::alloc_cap,
    };
    let report = harness::run(&target, &xs_wire::seeds(), xs_wire::check);
    assert!(report.inputs > 0);
}

#[test]
fn fuzz_xs_text() {
    let target = harness::Target {
        name: xs_text::NAME,
        max_len: xs_text::MAX_LEN,
        dict: xs_text::DICT,
        alloc_cap: xs_text::alloc_cap,
    };
    let report = harness::run(&target, &xs_text::seeds(), xs_text::check);
    assert!(report.inputs > 0);
}

#[test]
fn fuzz_xs_replies() {
    let target = harness::Target {
        name: xs_replies::NAME,
        max_len: xs_replies::MAX_LEN,
        dict: xs_replies::DICT,
        alloc_cap: xs_replies::alloc_cap,
    };
    let report = harness::run(&target, &xs_replies::seeds(), xs_replies::check);
    assert!(report.inputs > 0);
}
