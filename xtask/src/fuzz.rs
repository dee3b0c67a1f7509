//! `cargo xtask fuzz`: long runs of the fuzz targets on the stable toolchain.
//!
//! Each target in `fuzz/targets/` has a runner test in `crates/*/tests/fuzz_*.rs` (a
//! smoke run of a few thousand inputs is part of `cargo test`). This command builds
//! those tests in release mode and runs each target for `--seconds N` (or `--iters N`),
//! then prints one line per target: inputs, inputs per second, slowest input, largest
//! single allocation. With a nightly toolchain and cargo-fuzz, `cargo fuzz run <target>`
//! in `fuzz/` runs the same `check` functions coverage-guided.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::cargo;

/// `(target, crate, test file)`: where each target's runner lives.
pub const TARGETS: &[(&str, &str, &str)] = &[
    ("xs_wire", "xg-store", "fuzz_xenstore"),
    ("xs_text", "xg-store", "fuzz_xenstore"),
    ("xs_replies", "xg-store", "fuzz_xenstore"),
    ("platform", "xg-build", "fuzz_platform"),
    ("get_flags", "xg-build", "fuzz_platform"),
    ("pci_sysfs", "xg-build", "fuzz_platform"),
    ("elf_image", "xg-guest", "fuzz_elf"),
    ("host_toml", "xg-ctrl", "fuzz_host"),
    ("argv", "xenguest-cli", "fuzz_argv"),
];

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N | --iters N] [--seed S] [TARGET...]";

struct Options {
    budget: (&'static str, String),
    seed: Option<String>,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        budget: ("XG_FUZZ_SECONDS", "60".to_owned()),
        seed: None,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().context(USAGE);
        match a.as_str() {
            "--seconds" => o.budget = ("XG_FUZZ_SECONDS", value()?),
            "--iters" => o.budget = ("XG_FUZZ_ITERS", value()?),
            "--seed" => o.seed = Some(value()?),
            t if TARGETS.iter().any(|(n, ..)| *n == t) => o.targets.push(t.to_owned()),
            other => bail!("unknown fuzz argument '{other}'\n{USAGE}"),
        }
    }
    if o.budget.1.parse::<f64>().is_err() {
        bail!("{} must be a number\n{USAGE}", o.budget.0);
    }
    Ok(o)
}

/// Runs the targets named in `args` (all by default) and prints the summary.
pub fn run_cmd(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let chosen: Vec<&(&str, &str, &str)> = TARGETS
        .iter()
        .filter(|(n, ..)| o.targets.is_empty() || o.targets.iter().any(|t| t == n))
        .collect();
    let mut summary = Vec::new();
    for (name, krate, file) in chosen {
        eprintln!("xtask: fuzzing {name} ({}={})", o.budget.0, o.budget.1);
        let mut cmd = cargo();
        cmd.args(["test", "--release", "-p", krate, "--test", file])
            .arg(format!("fuzz_{name}"))
            .args(["--", "--exact", "--nocapture", "--test-threads=1"])
            .arg(format!("fuzz_{name}"))
            .env(o.budget.0, &o.budget.1);
        if let Some(seed) = &o.seed {
            cmd.env("XG_FUZZ_SEED", seed);
        }
        let line = run_capturing(&mut cmd, name)?;
        summary.push(line);
    }
    println!("{}", summary.join("\n"));
    Ok(())
}

/// Runs the test, echoing its output, and returns its `fuzz <name>:` report line.
fn run_capturing(cmd: &mut Command, name: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("Starting {cmd:?} failed"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprint!("{stdout}{stderr}");
        bail!("fuzz target {name} failed ({})", out.status);
    }
    let prefix = format!("fuzz {name}:");
    stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .with_context(|| format!("{name} printed no report line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let o = a(&["--seconds", "5", "xs_wire", "argv"]).unwrap();
        assert_eq!(o.budget, ("XG_FUZZ_SECONDS", "5".to_owned()));
        assert_eq!(o.targets, ["xs_wire", "argv"]);
        assert_eq!(a(&["--iters", "10"]).unwrap().budget.0, "XG_FUZZ_ITERS");
        assert!(a(&["--seconds", "x"]).is_err());
        assert!(a(&["nonsense"]).is_err());
        assert!(a(&["--seconds"]).is_err());
    }

    #[test]
    fn every_target_file_has_a_runner() {
        let root = crate::util::workspace_root();
        for (name, krate, file) in TARGETS {
            assert!(
                root.join(format!("fuzz/targets/{name}.rs")).is_file(),
                "{name}"
            );
            let runner =
                std::fs::read_to_string(root.join(format!("crates/{krate}/tests/{file}.rs")))
                    .unwrap();
            assert!(runner.contains(&format!("fn fuzz_{name}()")), "{name}");
        }
    }
}
