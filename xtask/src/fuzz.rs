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
    ("kernel_image", "xg-guest", "fuzz_elf"),
    ("host_toml", "xg-ctrl", "fuzz_host"),
    ("argv", "xenguest-cli", "fuzz_argv"),
];

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--iters N] [--seed S] [TARGET...]";

struct Options {
    /// `XG_FUZZ_SECONDS` and `XG_FUZZ_ITERS`: whichever limit comes first ends a run.
    seconds: Option<String>,
    iters: Option<String>,
    seed: Option<String>,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: None,
        iters: None,
        seed: None,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().context(USAGE);
        match a.as_str() {
            "--seconds" => o.seconds = Some(value()?),
            "--iters" => o.iters = Some(value()?),
            "--seed" => o.seed = Some(value()?),
            t if TARGETS.iter().any(|(n, ..)| *n == t) => o.targets.push(t.to_owned()),
            other => bail!("unknown fuzz argument '{other}'\n{USAGE}"),
        }
    }
    if o.seconds.is_none() && o.iters.is_none() {
        o.seconds = Some("60".to_owned());
    }
    if o.seconds
        .as_ref()
        .is_some_and(|s| s.parse::<f64>().is_err())
        || o.iters.as_ref().is_some_and(|s| s.parse::<u64>().is_err())
    {
        bail!("--seconds and --iters take numbers\n{USAGE}");
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
        eprintln!("xtask: fuzzing {name}");
        let mut cmd = cargo();
        cmd.args(["test", "--release", "-p", krate, "--test", file])
            .arg(format!("fuzz_{name}"))
            .args(["--", "--exact", "--nocapture", "--test-threads=1"])
            .arg(format!("fuzz_{name}"));
        if let Some(s) = &o.seconds {
            cmd.env("XG_FUZZ_SECONDS", s);
        }
        if let Some(n) = &o.iters {
            cmd.env("XG_FUZZ_ITERS", n);
        }
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
        assert_eq!(o.seconds.as_deref(), Some("5"));
        assert_eq!(o.iters, None);
        assert_eq!(o.targets, ["xs_wire", "argv"]);
        let o = a(&["--iters", "10"]).unwrap();
        assert_eq!((o.seconds, o.iters.as_deref()), (None, Some("10")));
        assert_eq!(a(&[]).unwrap().seconds.as_deref(), Some("60"));
        assert!(a(&["--iters", "1e3"]).is_err());
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
