//! `cargo xtask`: project automation (codegen, ci, demo).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod codegen;
mod dist;
mod fuzz;
mod oracle;
mod util;
mod xen_test;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                 install missing system packages, then fmt, clippy, doc, test,
                     bench --no-run, xen-test
  codegen [--check]  regenerate crates/xg-sys/src/x86_64/bindings.rs (--check: fail if stale)
  bench              measure every tracked figure against its baseline; writes
                     target/bench-report.{md,json} (README: Benchmarks)
  demo               build a 4 GiB HVM guest on the simulator (the README's main job)
  dist [--prefix DIR] [--bindir DIR] [--out DIR] [--no-rpm]
                     release build, tarball, .deb and .rpm (binary in /usr/libexec/xen/bin)
  fuzz [--seconds N] [--iters N] [--seed S] [TARGET...]
                     long release-mode runs of the fuzz targets (fuzz/targets/), with
                     inputs/s per target (docs/RELIABILITY.md)
  oracle [hvm|pv] [FILTER]
                     compare our meminit_hvm / meminit_pv with the real libxenguest
                     4.17, call by call
  xen-test [FILTER]  boot Xen 4.17 + a Debian dom0 under QEMU and run our xenguest and
                     the xg-realxen tests there (needs root; see docs/REAL-XEN.md)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "bench" => bench::run_cmd(rest),
        "ci" => ci::run_cmd(rest),
        "codegen" => codegen::run_cmd(rest),
        "demo" => ci::demo(rest),
        "dist" => dist::run_cmd(rest),
        "fuzz" => fuzz::run_cmd(rest),
        "oracle" => oracle::run_cmd(rest),
        "xen-test" => xen_test::run_cmd(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command '{other}'")
        }
    }
}
