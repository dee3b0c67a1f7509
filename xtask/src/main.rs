//! `cargo xtask`: project automation (codegen, ci, demo).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ci;
mod codegen;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                 install missing system packages, then fmt, clippy, doc, test, bench --no-run
  codegen [--check]  regenerate crates/xg-sys/src/x86_64/bindings.rs (--check: fail if stale)
  demo               build a 4 GiB HVM guest on the simulator (the README's main job)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "ci" => ci::run_cmd(rest),
        "codegen" => codegen::run_cmd(rest),
        "demo" => ci::demo(rest),
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
