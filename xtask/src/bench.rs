//! `cargo xtask bench`: every performance figure the project tracks, each next to a
//! baseline measured in the same run, as one report: a Markdown table and JSON, written
//! to `TARGET/bench-report.{md,json}` and printed.
//!
//! | figure | baseline | how |
//! |---|---|---|
//! | Xenstore: 40 reads pipelined | the same reads one at a time | `xg-store` example `pipeline-ratio` against the real C xenstored |
//! | populate_physmap calls per guest size (compat, batched) | libxenguest 4.17 | the libxenguest oracle (real `meminit_hvm`) and the `xg-guest` example `meminit_counts`, same layout |
//! | populate calls of a full build (batched) | the same build with `--populate compat` | `xenguest --trace` |
//! | full simulated build time, 4 GiB and 1 TiB (batched) | the compat build | the release `xenguest`, median of several runs |
//! | peak RSS of those builds | `xenguest --plan` of the same guest (no build) | `/usr/bin/time -f %M` |
//! | simulator throughput per extent order | a hypervisor that does nothing | `xg-ctrl` example `sim_throughput` |
//! | PVH and PV builds of a 32 MiB gzip kernel, 256 MiB guest | decompressing that kernel alone | `xg-build` example `kernel_builds`, medians |
//!
//! Everything is built once in release mode; on 2 cores the run takes a few minutes,
//! most of it compiling.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::dist::target_dir;
use crate::util::{cargo, ensure_debian_packages, run, stdout_of, workspace_root};

/// One line of the report.
#[derive(Debug, Clone)]
struct Figure {
    group: &'static str,
    name: String,
    value: f64,
    baseline_name: String,
    baseline: f64,
    unit: &'static str,
    /// How to read the ratio (value / baseline).
    reading: &'static str,
}

impl Figure {
    fn ratio(&self) -> f64 {
        if self.baseline == 0.0 {
            f64::NAN
        } else {
            self.value / self.baseline
        }
    }
}

/// Guest sizes (GiB) of the populate-call comparison.
const CALL_SIZES_GIB: &[u64] = &[1, 4, 64, 1024];
/// Runs per build timing (the median is reported).
const BUILD_RUNS: usize = 15;

pub fn run_cmd(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("cargo xtask bench takes no arguments (got '{a}')");
    }
    let started = Instant::now();
    let target = target_dir();
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "xenguest-cli",
        "--package",
        "xg-store",
        "--package",
        "xg-guest",
        "--package",
        "xg-ctrl",
        "--package",
        "xg-build",
        "--bin",
        "xenguest",
        "--example",
        "pipeline-ratio",
        "--example",
        "meminit_counts",
        "--example",
        "sim_throughput",
        "--example",
        "kernel_builds",
    ]))?;
    let release = target.join("release");
    let examples = release.join("examples");

    let mut figures = Vec::new();
    figures.extend(xenstore(&examples.join("pipeline-ratio"))?);
    figures.extend(populate_calls(&examples.join("meminit_counts"), &target)?);
    figures.extend(builds(&release.join("xenguest"))?);
    figures.extend(simulator(&examples.join("sim_throughput"))?);
    figures.extend(kernel_builds(&examples.join("kernel_builds"))?);

    let machine = machine()?;
    let md = markdown(&machine, &figures, started.elapsed().as_secs_f64());
    let report = json!({
        "machine": machine,
        "seconds": started.elapsed().as_secs_f64(),
        "figures": figures.iter().map(|f| json!({
            "group": f.group,
            "name": f.name,
            "value": f.value,
            "unit": f.unit,
            "baseline_name": f.baseline_name,
            "baseline": f.baseline,
            "ratio": f.ratio(),
            "reading": f.reading,
        })).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&target)?;
    std::fs::write(target.join("bench-report.md"), &md)?;
    std::fs::write(
        target.join("bench-report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    print!("{md}");
    println!("{}", serde_json::to_string(&report)?);
    eprintln!(
        "xtask: wrote {} and {}",
        target.join("bench-report.md").display(),
        target.join("bench-report.json").display()
    );
    Ok(())
}

fn num(v: &Value, key: &str) -> Result<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .with_context(|| format!("no number '{key}' in {v}"))
}

fn xenstore(example: &Path) -> Result<Vec<Figure>> {
    let out = stdout_of(Command::new(example).args(["40", "200"]))?;
    let v: Value = serde_json::from_str(out.trim()).context("pipeline-ratio printed no JSON")?;
    Ok(vec![Figure {
        group: "Xenstore (C xenstored)",
        name: format!("{} reads pipelined", num(&v, "reads")?),
        value: num(&v, "pipelined_us")?,
        baseline_name: "the same reads one at a time".into(),
        baseline: num(&v, "sequential_us")?,
        unit: "µs",
        reading: "below 1: pipelining is faster",
    }])
}

/// Builds the oracle and counts its populate calls for `mib` (optionally failing 1 GiB
/// extents, like the example's "1 GiB fail" host).
fn oracle_calls(oracle: &Path, scratch: &Path, mib: u64, fail_1g: bool) -> Result<u64> {
    let trace = scratch.join(format!("oracle-{mib}-{fail_1g}.jsonl"));
    let mut cmd = Command::new(oracle);
    cmd.args(["--mem-mib", &mib.to_string()])
        .env("ORACLE_TRACE", &trace)
        .stdout(Stdio::null());
    if fail_1g {
        cmd.env("ORACLE_FAIL_ORDER", "18");
    }
    run(&mut cmd)?;
    let text = std::fs::read_to_string(&trace)?;
    Ok(text
        .lines()
        .filter(|l| l.contains("\"call\":\"populate_physmap"))
        .count()
        .try_into()?)
}

/// `| 4 GiB | all succeed | compat | batched | skip |` rows of meminit_counts.
fn example_calls(table: &str, gib: u64, host: &str) -> Result<(u64, u64)> {
    let prefix = format!("| {gib} GiB | {host} |");
    let line = table
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("meminit_counts printed no row '{prefix}'"))?;
    let cells: Vec<u64> = line[prefix.len()..]
        .split('|')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    ensure!(cells.len() >= 2, "bad meminit_counts row {line}");
    Ok((cells[0], cells[1]))
}

fn populate_calls(example: &Path, target: &Path) -> Result<Vec<Figure>> {
    let shared = std::env::var_os("XG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    let fixture = shared.join("fixtures/libxenguest-oracle");
    let out = target.join("bench-oracle");
    run(Command::new("bash")
        .arg(fixture.join("build.sh"))
        .arg(&out)
        .stdout(Stdio::null()))?;
    let oracle = out.join("meminit-oracle");
    let table = stdout_of(&mut Command::new(example))?;
    let mut figs = Vec::new();
    for (fail_1g, host) in [(false, "all succeed"), (true, "1 GiB fail")] {
        for &gib in CALL_SIZES_GIB {
            let theirs = oracle_calls(&oracle, &out, gib << 10, fail_1g)?;
            let (compat, batched) = example_calls(&table, gib, host)?;
            for (strategy, ours) in [("compat", compat), ("batched", batched)] {
                figs.push(Figure {
                    group: "populate_physmap calls (meminit_hvm)",
                    name: format!("{gib} GiB, {host}, {strategy}"),
                    value: ours as f64,
                    baseline_name: "libxenguest 4.17 (oracle)".into(),
                    baseline: theirs as f64,
                    unit: "calls",
                    reading: if strategy == "compat" {
                        "1: the same calls as libxenguest"
                    } else {
                        "below 1: fewer hypercalls"
                    },
                });
            }
        }
    }
    Ok(figs)
}

/// argv of a simulated build of `mib` MiB on the 4 TiB host.
fn build_argv(mib: u64) -> Vec<String> {
    let host = workspace_root().join("crates/xg-ctrl/hosts/big-4tib.toml");
    let mib = mib.to_string();
    [
        "-mode",
        "hvm_build",
        "-domid",
        "1",
        "-mem_max_mib",
        &mib,
        "-mem_start_mib",
        &mib,
        "-store_port",
        "1",
        "-console_port",
        "2",
        "-image",
        "/nonexistent/hvmloader",
        "-q",
        "--host",
        &host.to_string_lossy(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Median build time (ms) of `runs` runs of `bin argv`, as xenguest's summary reports
/// it ("done in X ms": the build itself, without process start and exit).
fn median_build_ms(bin: &Path, argv: &[String], runs: usize) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let out = Command::new(bin)
            .args(argv.iter().filter(|a| *a != "-q"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success(),
            "{} {argv:?} failed: {err}",
            bin.display()
        );
        times.push(summary_ms(&err).with_context(|| format!("no build time in: {err}"))?);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The build time of xenguest's summary line `... done in 0.817 ms (...)`.
fn summary_ms(stderr: &str) -> Option<f64> {
    let rest = stderr.split(" done in ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Peak RSS (KiB) of one run, from `/usr/bin/time -f %M`.
fn peak_rss_kib(bin: &Path, argv: &[String]) -> Result<f64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("Starting /usr/bin/time failed")?;
    ensure!(out.status.success(), "{} {argv:?} failed", bin.display());
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("/usr/bin/time printed no peak RSS: {err}"))
}

fn trace_populates(bin: &Path, argv: &[String], trace: &Path) -> Result<f64> {
    let mut full = argv.to_vec();
    full.push("--trace".into());
    full.push(trace.to_string_lossy().into_owned());
    run(Command::new(bin).args(&full).stdout(Stdio::null()))?;
    let text = std::fs::read_to_string(trace)?;
    Ok(text
        .lines()
        .filter(|l| l.contains("\"call\":\"populate_physmap"))
        .count() as f64)
}

fn builds(bin: &Path) -> Result<Vec<Figure>> {
    ensure_debian_packages(&["time"])?;
    let scratch = target_dir().join("bench-builds");
    std::fs::create_dir_all(&scratch)?;
    let mut figs = Vec::new();
    for (mib, label) in [(4096u64, "4 GiB"), (1 << 20, "1 TiB")] {
        let base = build_argv(mib);
        let with = |extra: &[&str]| {
            let mut v = base.clone();
            v.extend(extra.iter().map(|s| (*s).to_owned()));
            v
        };
        let compat = with(&["--populate", "compat"]);
        let batched = with(&["--populate", "batched"]);
        let plan = with(&["--plan"]);
        figs.push(Figure {
            group: "full simulated build (release xenguest)",
            name: format!("{label} populate calls, batched"),
            value: trace_populates(bin, &batched, &scratch.join("batched.jsonl"))?,
            baseline_name: "--populate compat".into(),
            baseline: trace_populates(bin, &compat, &scratch.join("compat.jsonl"))?,
            unit: "calls",
            reading: "below 1: fewer hypercalls",
        });
        figs.push(Figure {
            group: "full simulated build (release xenguest)",
            name: format!("{label} build time, batched"),
            value: median_build_ms(bin, &batched, BUILD_RUNS)?,
            baseline_name: "--populate compat".into(),
            baseline: median_build_ms(bin, &compat, BUILD_RUNS)?,
            unit: "ms",
            reading: "below 1: faster (median of 15 builds, in-process time)",
        });
        figs.push(Figure {
            group: "full simulated build (release xenguest)",
            name: format!("{label} peak RSS, compat build"),
            value: peak_rss_kib(bin, &compat)?,
            baseline_name: "--plan (no build)".into(),
            baseline: peak_rss_kib(bin, &plan)?,
            unit: "KiB",
            reading: "memory the build adds over the bare process",
        });
    }
    Ok(figs)
}

fn simulator(example: &Path) -> Result<Vec<Figure>> {
    let out = stdout_of(Command::new(example).arg("3"))?;
    let rows: Vec<Value> = serde_json::from_str(out.trim()).context("sim_throughput JSON")?;
    let mut figs = Vec::new();
    for r in rows {
        let order = r.get("order").and_then(Value::as_str).unwrap_or("?");
        figs.push(Figure {
            group: "simulator populate_physmap throughput",
            name: format!("{order} extents/s ({} calls)", num(&r, "calls")?),
            value: num(&r, "sim_extents_per_s")?,
            baseline_name: "no-op hypervisor, same calls".into(),
            baseline: num(&r, "noop_extents_per_s")?,
            unit: "extents/s",
            reading: "share of the bare call path's rate",
        });
    }
    Ok(figs)
}

fn kernel_builds(example: &Path) -> Result<Vec<Figure>> {
    let out = stdout_of(&mut Command::new(example))?;
    let v: Value = serde_json::from_str(out.trim()).context("kernel_builds JSON")?;
    let mib = num(&v, "kernel_bytes")? / f64::from(1u32 << 20);
    let gunzip = num(&v, "gunzip_ms")?;
    [("pvh_build", "PVH"), ("linux_build", "PV")]
        .iter()
        .map(|(key, label)| -> Result<Figure> {
            Ok(Figure {
                group: "kernel builds (simulator, 256 MiB guest)",
                name: format!("{label} build of a {mib:.0} MiB gzip kernel"),
                value: num(&v, &format!("{key}_ms"))?,
                baseline_name: "gunzip of the same image alone".into(),
                baseline: gunzip,
                unit: "ms",
                reading: "1.0 = the build costs no more than decompressing",
            })
        })
        .collect::<Result<Vec<_>>>()
}

fn machine() -> Result<Value> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let date = stdout_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))?;
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(json!({
        "date": date.trim(),
        "nproc": nproc,
        "cpu": cpu,
        "ram_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "commit": commit,
    }))
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 1e6 {
        format!("{:.3e}", v)
    } else if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "n/a".into()
    } else if r != 0.0 && r < 0.01 {
        format!("{r:.2e}")
    } else {
        format!("{r:.3}")
    }
}

fn markdown(machine: &Value, figures: &[Figure], seconds: f64) -> String {
    let s = |k: &str| {
        machine.get(k).map_or(String::new(), |v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let mut md = String::new();
    let _ = writeln!(md, "# xenguest benchmark report\n");
    let _ = writeln!(
        md,
        "{} · {} CPUs ({}) · {} GiB RAM · commit {} · {seconds:.0} s including the build\n",
        s("date"),
        s("nproc"),
        s("cpu"),
        s("ram_gib"),
        s("commit")
    );
    let _ = writeln!(
        md,
        "| group | figure | value | baseline | baseline value | ratio | reading |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for f in figures {
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {} | {} {} | {} | {} |",
            f.group,
            f.name,
            fmt_num(f.value),
            f.unit,
            f.baseline_name,
            fmt_num(f.baseline),
            f.unit,
            fmt_ratio(f.ratio()),
            f.reading
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminit_counts_rows() {
        let table =
            "| guest | host | compat | batched | batched-skip-failed |\n|---|---|---|---|---|\n\
                     | 4 GiB | all succeed | 261 | 5 | 5 |\n| 4 GiB | 1 GiB fail | 300 | 7 | 6 |\n";
        assert_eq!(example_calls(table, 4, "all succeed").unwrap(), (261, 5));
        assert_eq!(example_calls(table, 4, "1 GiB fail").unwrap(), (300, 7));
        assert!(example_calls(table, 1, "all succeed").is_err());
    }

    #[test]
    fn reads_the_summary_build_time() {
        let err = "xenguest: HVM build of domain 1 done in 0.817 ms (backend sim, store memory)\n";
        assert_eq!(summary_ms(err), Some(0.817));
        assert_eq!(summary_ms("xenguest: failed\n"), None);
        assert_eq!(fmt_ratio(0.0003128), "3.13e-4");
        assert_eq!(fmt_ratio(0.5), "0.500");
    }

    #[test]
    fn ratio_and_table_row() {
        let f = Figure {
            group: "g",
            name: "n".into(),
            value: 5.0,
            baseline_name: "b".into(),
            baseline: 261.0,
            unit: "calls",
            reading: "r",
        };
        assert!((f.ratio() - 5.0 / 261.0).abs() < 1e-12);
        let md = markdown(&json!({"date": "d", "nproc": 2}), &[f], 1.0);
        assert!(
            md.contains("| g | n | 5 calls | b | 261 calls | 0.019 | r |"),
            "{md}"
        );
        assert!(md.contains("d · 2 CPUs"));
    }
}
