//! `cargo xtask xen-test`: our binaries on a real Xen 4.17, booted under QEMU.
//!
//! 1. The `xen-in-qemu` fixture (`<shared>/fixtures/xen-in-qemu`) builds the Xen
//!    hypervisor, the Debian dom0 kernel and its initramfs into `<target>/xen-in-qemu/fixture`
//!    (once; `build.sh` needs root for apt).
//! 2. `xenguest` and the `xg-realxen` test binaries are built as static x86_64 binaries.
//! 3. `xenguest` is appended to dom0's initramfs as `/opt/xg/bin/xenguest`.
//! 4. `run.sh` boots Xen + dom0 and runs each test binary in dom0 as root
//!    (`--include-ignored --test-threads=1`); its output streams through.
//! 5. The libtest results of all binaries are summed: the last line is `N passed, M failed`.
//!
//! See docs/REAL-XEN.md.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, workspace_root};

/// The target of the binaries carried into dom0 (Debian 12 x86_64, like the host).
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// Static binaries need nothing from dom0's (busybox) userland.
const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// Fixture build options: Debian's device model and hvmloader, for `xl create` of the
/// HVM guest the timing compares against; Debian's kernel and a busybox initramfs in
/// `/guest`, for the Linux PVH guest built by our `pvh_build`.
const FIXTURE_ENV: &[(&str, &str)] = &[("WITH_HVM_DM", "1"), ("WITH_LINUX_GUEST", "1")];
/// run.sh's default Xen command line plus `sched=credit`: XenServer's scheduler, the one
/// xenguest's weight/cap calls address (Xen 4.17 defaults to credit2).
const XEN_ARGS: &str = "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=1 \
                        loglvl=all guest_loglvl=all bootscrub=0 sched=credit";
/// Arguments for every test binary in dom0.
const PROBE_ARGS: &str = "--include-ignored --test-threads=1";
/// Where xenguest goes in dom0 (`xg_realxen::xenguest_path`).
const XENGUEST_IN_DOM0: &str = "opt/xg/bin/xenguest";
/// The crate whose test binaries run in dom0.
const TEST_CRATE: &str = "xg-realxen";

const USAGE: &str = "usage: cargo xtask xen-test [TEST_FILTER]";

/// The shared directory: `$XG_SHARED_DIR`, else `<workspace root>/../shared`.
fn shared_dir(root: &Path) -> PathBuf {
    std::env::var_os("XG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("..").join("shared"))
}

/// Cargo's target directory (`$CARGO_TARGET_DIR`, else `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

pub fn run_cmd(args: &[String]) -> Result<()> {
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        bail!("{USAGE}");
    }
    let filter = args.first().map(String::as_str);
    let root = workspace_root();
    let fixture = shared_dir(&root).join("fixtures").join("xen-in-qemu");
    if !fixture.join("run.sh").is_file() {
        bail!(
            "The xen-in-qemu fixture is not at {} (set XG_SHARED_DIR)",
            fixture.display()
        );
    }
    let out = target_dir(&root).join("xen-in-qemu");
    let started = Instant::now();

    let fixture_out = out.join("fixture");
    prepare_fixture(&fixture, &fixture_out)?;
    let t_fixture = started.elapsed();

    let (xenguest, tests) = build_binaries()?;
    let t_build = started.elapsed() - t_fixture;

    let run_dir = assemble(&out, &fixture_out, &xenguest)?;
    let summary = boot(&fixture, &run_dir, &tests, filter)?;
    let t_boot = started.elapsed() - t_fixture - t_build;

    println!("xen-test: per test:");
    for (bin, test, outcome) in &summary.outcomes {
        println!("  {outcome:<7} {bin}: {test}");
    }
    println!("xen-test: per test binary:");
    for p in &summary.probes {
        println!(
            "  {:<40} {} passed, {} failed{}",
            p.name,
            p.passed,
            p.failed,
            if p.has_result {
                ""
            } else {
                " (no libtest result: crashed?)"
            }
        );
    }
    for t in &summary.failed_tests {
        println!("  FAILED: {t}");
    }
    if !summary.reports.is_empty() {
        println!("xen-test: reports:");
        for r in &summary.reports {
            println!("  {r}");
        }
    }
    println!(
        "xen-test: fixture {:.0} s, cargo build {:.0} s, boot + tests {:.0} s, total {:.0} s",
        t_fixture.as_secs_f64(),
        t_build.as_secs_f64(),
        t_boot.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let (passed, failed) = summary.totals();
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        bail!("xen-test failed");
    }
    Ok(())
}

/// A cheap fingerprint of the fixture's scripts and our build options, so a changed
/// fixture or option rebuilds it.
fn fixture_stamp(fixture: &Path) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in ["build.sh", "dom0-init.sh", "xenprobe.c", "hvm.cfg"] {
        let data = fs::read(fixture.join(f))
            .with_context(|| format!("Reading {}", fixture.join(f).display()))?;
        for b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let opts: Vec<String> = FIXTURE_ENV
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok(format!("{h:016x} {}\n", opts.join(" ")))
}

/// Runs the fixture's `build.sh` unless its outputs are there and were built from the same
/// scripts with the same options.
fn prepare_fixture(fixture: &Path, out: &Path) -> Result<()> {
    let stamp_path = out.join(".xen-test-stamp");
    let stamp = fixture_stamp(fixture)?;
    let complete = ["xen", "vmlinux", "dom0-initrd.gz"]
        .iter()
        .all(|f| out.join(f).is_file());
    if complete && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        eprintln!("xtask: xen-in-qemu fixture up to date in {}", out.display());
        return Ok(());
    }
    fs::create_dir_all(out).with_context(|| format!("Creating {}", out.display()))?;
    let mut cmd = Command::new(fixture.join("build.sh"));
    cmd.arg(out).envs(FIXTURE_ENV.iter().copied());
    crate::util::run(&mut cmd).context(
        "Building the xen-in-qemu fixture failed (build.sh needs root and Debian 12's archives)",
    )?;
    fs::write(&stamp_path, stamp).with_context(|| format!("Writing {}", stamp_path.display()))?;
    Ok(())
}

fn static_cargo() -> Command {
    let mut c = cargo();
    let var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        TARGET.to_uppercase().replace('-', "_")
    );
    c.env(var, STATIC_RUSTFLAGS);
    c
}

/// Builds xenguest and the test binaries (release, static); returns their paths.
fn build_binaries() -> Result<(PathBuf, Vec<PathBuf>)> {
    let xenguest = cargo_executables(static_cargo().args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--package",
        "xenguest-cli",
        "--bin",
        "xenguest",
    ]))?
    .into_iter()
    .find(|(kind, _)| kind == "bin")
    .map(|(_, p)| p)
    .context("cargo built no xenguest binary")?;
    let tests: Vec<PathBuf> = cargo_executables(static_cargo().args([
        "test",
        "--release",
        "--no-run",
        "--target",
        TARGET,
        "--package",
        TEST_CRATE,
    ]))?
    .into_iter()
    .filter(|(kind, _)| kind == "test")
    .map(|(_, p)| p)
    .collect();
    if tests.is_empty() {
        bail!("cargo built no test binaries for {TEST_CRATE}");
    }
    Ok((xenguest, tests))
}

/// Runs a cargo build with `--message-format=json-render-diagnostics` and returns the
/// (target kind, executable) of every executable artifact.
fn cargo_executables(cmd: &mut Command) -> Result<Vec<(String, PathBuf)>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    eprintln!("xtask: running {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("Starting {cmd:?} failed"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let kind = v["target"]["kind"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        found.push((kind, PathBuf::from(exe)));
    }
    Ok(found)
}

/// Makes `out/run`: the fixture's Xen and kernel, and its initramfs with a second cpio
/// archive appended that carries xenguest (the kernel unpacks concatenated archives).
fn assemble(out: &Path, fixture_out: &Path, xenguest: &Path) -> Result<PathBuf> {
    let run_dir = out.join("run");
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir).with_context(|| format!("Removing {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir)?;
    for f in ["xen", "vmlinux", "qemu"] {
        let src = fixture_out.join(f);
        if src.exists() {
            std::os::unix::fs::symlink(&src, run_dir.join(f))
                .with_context(|| format!("Linking {}", src.display()))?;
        }
    }
    let extras = out.join("extras");
    if extras.exists() {
        fs::remove_dir_all(&extras)?;
    }
    let dest = extras.join(XENGUEST_IN_DOM0);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(xenguest, &dest).with_context(|| format!("Copying {}", xenguest.display()))?;
    let archive = out.join("extras.cpio.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -H newc -o --quiet | gzip -1 > \"$0\"")
        .arg(&archive)
        .current_dir(&extras)
        .status()
        .context("Starting cpio failed")?;
    if !status.success() {
        bail!("Packing {} failed with {status}", extras.display());
    }
    let mut initrd = fs::read(fixture_out.join("dom0-initrd.gz"))?;
    initrd.extend(fs::read(&archive)?);
    fs::write(run_dir.join("dom0-initrd.gz"), initrd)?;
    Ok(run_dir)
}

/// What one test binary reported.
#[derive(Debug, Default)]
struct Probe {
    name: String,
    passed: u64,
    failed: u64,
    /// Whether libtest's `test result:` line was seen.
    has_result: bool,
    /// Whether dom0's init counted the binary as failed.
    failed_probe: bool,
}

#[derive(Debug, Default)]
struct Summary {
    probes: Vec<Probe>,
    /// Per test: (binary, test, outcome word as libtest prints it).
    outcomes: Vec<(String, String, String)>,
    /// A test whose "test NAME ... " line has not got its outcome yet (output written past
    /// libtest's capture, or Xen's console, can come in between).
    pending: Option<String>,
    failed_tests: Vec<String>,
    reports: Vec<String>,
    setup_failures: u64,
    /// run.sh's own result line was seen (dom0 reported).
    dom0_reported: bool,
}

impl Summary {
    /// (passed, failed): libtest's counts, plus one failure per binary that died without
    /// a result, per failed setup step, and for a dom0 that never reported.
    fn totals(&self) -> (u64, u64) {
        let passed = self.probes.iter().map(|p| p.passed).sum();
        let mut failed: u64 = self.probes.iter().map(|p| p.failed).sum();
        failed += self
            .probes
            .iter()
            .filter(|p| p.failed_probe && (!p.has_result || p.failed == 0))
            .count() as u64;
        failed += self.setup_failures;
        if !self.dom0_reported {
            failed += 1;
        }
        (passed, failed)
    }

    fn current(&mut self) -> Option<&mut Probe> {
        self.probes.last_mut()
    }

    fn outcome(&mut self, word: &str) -> bool {
        if !matches!(word, "ok" | "FAILED" | "ignored") {
            return false;
        }
        let Some(test) = self.pending.take() else {
            return false;
        };
        let bin = self.current().map(|p| p.name.clone()).unwrap_or_default();
        self.outcomes.push((bin, test, word.to_owned()));
        true
    }

    /// Reads one line of run.sh's output (timestamp prefix removed).
    fn read_line(&mut self, line: &str) {
        if let Some((name, rest)) = line
            .strip_prefix("test ")
            .and_then(|r| r.split_once(" ... "))
        {
            self.pending = Some(name.to_owned());
            if let Some(word) = rest.split_whitespace().last() {
                self.outcome(word);
            }
        } else if self.pending.is_some() {
            // The pending test's outcome may come on a line of its own.
            self.outcome(line.trim());
        }
        if let Some((_, rest)) = line.split_once("XG-REPORT: ") {
            // Written past libtest's capture, so it may follow "test name ... " on a line.
            self.reports.push(rest.to_owned());
        }
        if let Some(rest) = line.strip_prefix("XENTEST: + probe ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            self.probes.push(Probe {
                name: name.to_owned(),
                ..Probe::default()
            });
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            let counts = parse_libtest_counts(rest);
            if let Some(p) = self.current() {
                p.passed += counts.0;
                p.failed += counts.1;
                p.has_result = true;
            }
        } else if let Some(rest) = line.strip_prefix("---- ") {
            if let Some(name) = rest.strip_suffix(" stdout ----") {
                let bin = self.current().map(|p| p.name.clone()).unwrap_or_default();
                self.failed_tests.push(format!("{bin}: {name}"));
            }
        } else if line.starts_with("XENTEST: FAILED: setup") {
            self.setup_failures += 1;
        } else if line.starts_with("XENTEST: FAILED: probe") {
            if let Some(p) = self.current() {
                p.failed_probe = true;
            }
        } else if line.starts_with("XENTEST: RESULT:") {
            self.dom0_reported = true;
        }
    }
}

/// `ok. 10 passed; 0 failed; ...` → (10, 0).
fn parse_libtest_counts(s: &str) -> (u64, u64) {
    let mut passed = 0;
    let mut failed = 0;
    for part in s.split([';', '.']) {
        let mut w = part.split_whitespace();
        if let (Some(n), Some(what)) = (w.next(), w.next()) {
            match (n.parse::<u64>(), what) {
                (Ok(n), "passed") => passed = n,
                (Ok(n), "failed") => failed = n,
                _ => {}
            }
        }
    }
    (passed, failed)
}

/// A run.sh output line without its `[ secs.cs] ` timestamp.
fn strip_timestamp(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((ts, rest)) if ts.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

/// Boots Xen + dom0 with the test binaries and streams run.sh's output.
fn boot(
    fixture: &Path,
    run_dir: &Path,
    tests: &[PathBuf],
    filter: Option<&str>,
) -> Result<Summary> {
    let mut probe_args = PROBE_ARGS.to_owned();
    if let Some(f) = filter {
        probe_args.push(' ');
        probe_args.push_str(f);
    }
    let mut cmd = Command::new(fixture.join("run.sh"));
    cmd.arg(run_dir)
        .args(tests)
        .env("PROBE_ARGS", &probe_args)
        .env(
            "XEN_ARGS",
            std::env::var("XEN_ARGS").unwrap_or_else(|_| XEN_ARGS.to_owned()),
        )
        .stdout(Stdio::piped());
    eprintln!("xtask: running {cmd:?}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("Starting {cmd:?} failed"))?;
    let stdout = child.stdout.take().context("run.sh has no stdout")?;
    let mut summary = Summary::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("Reading run.sh's output")?;
        println!("{line}");
        summary.read_line(strip_timestamp(&line));
    }
    let status = child.wait().context("Waiting for run.sh")?;
    eprintln!("xtask: run.sh exited with {status}");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_run() {
        let out = "\
[  18.61] XENTEST: + probe privcmd-2451c22a8c2c3d7b --include-ignored --test-threads=1
[  18.73] running 10 tests
[  19.29] test claims ... ok
[  19.68] test create_populate_each_order_and_destroy ... (XEN) d0v0 Over-allocation for d2: 2049 > 2048
[  20.48] ok
[  26.04] test result: ok. 10 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 7.34s
[  26.18] XENTEST: ok: probe privcmd-2451c22a8c2c3d7b
[  26.19] XENTEST: + probe hvm_build-0123 --include-ignored --test-threads=1
[  27.00] test timing ... XG-REPORT: ratio 0.5
[  27.05] FAILED
[  27.10] ---- timing stdout ----
[  27.20] test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
[  27.30] XENTEST: FAILED: probe hvm_build-0123 (rc=101)
[  27.40] XENTEST: + probe failures-0123 --include-ignored --test-threads=1
[  27.50] XENTEST: FAILED: probe failures-0123 (rc=139)
[  27.60] XENTEST: RESULT: 1 passed, 2 failed";
        let mut s = Summary::default();
        for l in out.lines() {
            s.read_line(strip_timestamp(l));
        }
        assert_eq!(s.probes.len(), 3);
        assert_eq!(s.reports, vec!["ratio 0.5".to_owned()]);
        assert_eq!(s.failed_tests, vec!["hvm_build-0123: timing".to_owned()]);
        let outcomes: Vec<String> = s
            .outcomes
            .iter()
            .map(|(b, t, o)| format!("{o} {b}: {t}"))
            .collect();
        assert_eq!(
            outcomes,
            [
                "ok privcmd-2451c22a8c2c3d7b: claims",
                "ok privcmd-2451c22a8c2c3d7b: create_populate_each_order_and_destroy",
                "FAILED hvm_build-0123: timing",
            ]
        );
        // 11 passed; 1 failed test + 1 crashed binary.
        assert_eq!(s.totals(), (11, 2));
    }

    #[test]
    fn no_report_from_dom0_is_a_failure() {
        let s = Summary::default();
        assert_eq!(s.totals(), (0, 1));
    }

    #[test]
    fn timestamps_are_stripped() {
        assert_eq!(strip_timestamp("[   5.01] XENTEST: x"), "XENTEST: x");
        assert_eq!(strip_timestamp("[x] y"), "[x] y");
    }
}
