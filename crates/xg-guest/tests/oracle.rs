//! Differential test against the REAL libxenguest 4.17 (`meminit_hvm` recorded by the
//! oracle in `<shared>/fixtures/libxenguest-oracle`): the README's case table plus random
//! configurations must give identical call traces, record by record.
//!
//! Skips (with a message) when the oracle cannot be built, except under `CI=true`.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod meminit_common;
mod oracle_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use meminit_common::{random_case, readme_cases, run_sim, OracleArgs};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;
use xg_ctrl::sim::OracleModel;
use xg_guest::meminit::Strategy;

/// The fixture's HVM driver, built once per test process.
fn oracle() -> Option<&'static Path> {
    static ORACLE: OnceLock<Option<PathBuf>> = OnceLock::new();
    ORACLE
        .get_or_init(|| oracle_fixture::built_fixture().map(|out| out.join("meminit-oracle")))
        .as_deref()
}

/// Runs the oracle; returns (hypervisor-call records, vmemrange records, result record).
fn run_oracle(
    bin: &Path,
    host: &OracleModel,
    args: &OracleArgs,
    trace: &Path,
) -> (Vec<Value>, Vec<Value>, Value) {
    let status = Command::new(bin)
        .args(args.cli())
        .arg("--trace")
        .arg(trace)
        .envs(host.to_vars())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run oracle");
    let text = std::fs::read_to_string(trace).expect("oracle trace");
    let mut calls = Vec::new();
    let mut ranges = Vec::new();
    let mut result = Value::Null;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("oracle JSON");
        match v["call"].as_str() {
            Some("config") => {}
            Some("vmemrange") => ranges.push(v),
            Some("result") => result = v,
            _ => calls.push(v),
        }
    }
    assert_eq!(status.success(), result["rc"] == 0, "exit status vs rc");
    (calls, ranges, result)
}

/// Runs ours on the oracle-compatible simulator and compares with the oracle, record by
/// record. Returns the number of records.
fn compare(bin: &Path, name: &str, host: &OracleModel, args: &OracleArgs) -> usize {
    let trace = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oracle-{name}.jsonl"));
    let (want, ranges, result) = run_oracle(bin, host, args, &trace);
    let cfg = args.config();
    // Our vNUMA range builder against libxl's (as the driver runs it).
    assert_eq!(ranges.len(), cfg.vmemranges.len(), "{name}: vmemranges");
    for (w, r) in ranges.iter().zip(&cfg.vmemranges) {
        assert_eq!(
            (w["start"].as_u64(), w["end"].as_u64(), w["nid"].as_u64()),
            (Some(r.start), Some(r.end), Some(u64::from(r.nid))),
            "{name}: vmemrange"
        );
    }
    let ours = run_sim(host, &cfg, Strategy::Compat, true);
    let got = &ours.records;
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(
            w,
            g,
            "{name}: record {i} differs\nargs: {:?}\nenv: {:?}",
            args.cli(),
            host.to_vars()
        );
    }
    assert_eq!(
        want.len(),
        got.len(),
        "{name}: trace lengths differ ({:?} {:?})",
        args.cli(),
        host.to_vars()
    );

    let rc = ours.result;
    let (populated, pod, claim) = ours.totals;
    assert_eq!(
        result["rc"] == 0,
        rc.is_ok(),
        "{name}: rc {result} vs {rc:?}"
    );
    assert_eq!(
        result["populated_pages"], populated,
        "{name}: populated pages"
    );
    assert_eq!(result["pod_pages"], pod, "{name}: PoD pages");
    assert_eq!(
        result["outstanding_claim"], claim,
        "{name}: outstanding claim"
    );
    assert_eq!(
        result["overlap_pages"], 0,
        "{name}: libxenguest populated a page twice"
    );
    if let Ok(report) = rc {
        assert_eq!(result["p2m_size"], report.p2m_size, "{name}: p2m_size");
    }
    got.len()
}

#[test]
fn readme_case_table_matches_libxenguest() {
    let Some(bin) = oracle() else { return };
    for (name, host, args) in readme_cases() {
        let calls = compare(bin, name, &host, &args);
        println!("{name}: {calls} identical records");
    }
}

#[test]
fn random_configurations_match_libxenguest() {
    let Some(bin) = oracle() else { return };
    let mut rng = SmallRng::seed_from_u64(0x05ee_d417);
    let cases: Vec<_> = (0..220).map(|i| (i, random_case(&mut rng))).collect();
    // Two workers: the oracle and the simulator are single-threaded.
    std::thread::scope(|scope| {
        for part in cases.chunks(cases.len().div_ceil(2)) {
            scope.spawn(move || {
                for (i, (host, args)) in part {
                    let t = std::time::Instant::now();
                    let calls = compare(bin, &format!("random-{i}"), host, args);
                    println!(
                        "random-{i}: {calls} identical records in {:?}: {:?} {:?}",
                        t.elapsed(),
                        args.cli(),
                        host.to_vars()
                    );
                }
            });
        }
    });
}
