//! `-mode resume_slow` through the binary: xenguest's argv rules, the `result:0 0` line
//! of `write_status(0, 0, NULL)` and the `error:` lines of `failwith_oss_xc`.

use std::path::Path;
use std::process::{Command, Output};

fn xenguest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenguest"))
        .args(args)
        .output()
        .unwrap()
}

/// xenopsd's command line, the control channel on stdout.
fn resume(extra: &[&str]) -> Output {
    let mut args = vec!["-controloutfd", "1", "-mode", "resume_slow"];
    args.extend_from_slice(extra);
    xenguest(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A host file: the small default host with `faults` (TOML `[[fault]]` tables).
fn host_with(dir: &Path, faults: &str) -> String {
    let p = dir.join("host.toml");
    std::fs::write(
        &p,
        format!("name = \"resume test\"\n[[node]]\nmemory_mib = 4096\ncpus = 4\n{faults}"),
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn resumes_and_writes_result_0_0() {
    let out = resume(&["-domid", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"result:0 0\n", "byte for byte");

    // Without a control fd the line goes to standard output too.
    let out = xenguest(&["-mode", "resume_slow", "-domid", "5"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"result:0 0\n");

    // Options of other modes are accepted and ignored, as the C parser does.
    let out = resume(&["-domid", "7", "-mem_max_mib", "1024", "-store_port", "3"]);
    assert_eq!(text(&out.stdout), "result:0 0\n");
}

#[test]
fn domid_is_required_and_checked() {
    let out = resume(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: missing command line options\n"
    );
    for bad in ["0", "32752", "-5", "70000"] {
        let out = resume(&["-domid", bad]);
        assert_eq!(out.status.code(), Some(1), "domid {bad}");
        assert_eq!(
            text(&out.stdout),
            format!("error:xenguest: invalid domid {bad}\n")
        );
    }
}

#[test]
fn hypervisor_failures_are_failwith_lines() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(
        dir.path(),
        "[[fault]]\nop = \"resume_domain\"\nnth = 1\nerrno = 1\n",
    );
    let out = resume(&["-domid", "5", "--host", &host]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: xc_domain_resume: [1] Operation not permitted\n"
    );

    let host = host_with(
        dir.path(),
        "[[fault]]\nop = \"domain_info\"\nnth = 1\nerrno = 3\n",
    );
    let out = resume(&["-domid", "5", "--host", &host]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: xc_domain_resume: [1] Could not get domain info (3 = No such process)\n"
    );
}

#[test]
fn the_trace_shows_libxenguests_two_calls() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let out = resume(&["-domid", "9", "--trace", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls: Vec<&str> = lines.iter().filter_map(|v| v["call"].as_str()).collect();
    assert_eq!(calls, ["domain_info", "resume_domain"]);
    // The simulator's stand-in had shut down for suspend (code 2, XEN_DOMINF_shutdown).
    let flags = lines[0]["flags"].as_u64().unwrap();
    assert_eq!(
        flags & (1 << 2 | 0xff << 16),
        1 << 2 | 2 << 16,
        "{flags:#x}"
    );
    assert_eq!(lines[1]["domid"], 9);
    assert_eq!(lines[1]["rc"], 0);
}

#[test]
fn privcmd_without_xen_fails_to_open() {
    if Path::new("/dev/xen/privcmd").exists() {
        return; // dom0: the real-Xen scenario covers this backend.
    }
    let out = resume(&["-domid", "5", "--backend", "privcmd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: Failed to open xc interface\n"
    );
}

/// The trace of a PV resume, call names in order.
fn pv_trace(dir: &Path, extra: &[&str]) -> (Output, Vec<serde_json::Value>) {
    let trace = dir.join("pv.jsonl");
    let mut args = vec![
        "-domid",
        "6",
        "--sim-guest",
        "pv",
        "--trace",
        trace.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = resume(&args);
    let lines = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

#[test]
fn a_suspended_pv_guest_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (out, lines) = pv_trace(dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"result:0 0\n", "byte for byte");
    let calls: Vec<&str> = lines.iter().filter_map(|v| v["call"].as_str()).collect();
    assert_eq!(
        calls,
        [
            "domain_info",
            "address_size",
            "read_machine", // shared info
            "maximum_gpfn",
            "read_machine", // L4, L3, L2 and L1 tables of the p2m list
            "read_machine",
            "read_machine",
            "read_machine",
            "read_machine", // the p2m
            "vcpu_context",
            "read_machine", // start info
            "write_machine",
            "write_machine",
            "reset_vcpu",
            "resume_domain",
        ]
    );
    // The stand-in shut down for suspend; the width is 64 bits; vCPU 1 is reset.
    let flags = lines[0]["flags"].as_u64().unwrap();
    assert_eq!(flags & (1 << 1 | 1 << 2 | 0xff << 16), 1 << 2 | 2 << 16);
    assert_eq!(lines[1]["size"], 64);
    assert_eq!(lines[13]["vcpu"], 1);
    // The two writes put 8-byte machine frames at store_mfn and console.domU.mfn.
    assert_eq!(lines[11]["offset"], 56);
    assert_eq!(lines[12]["offset"], 72);
    assert_eq!(lines[11]["len"], 8);
}

#[test]
fn pv_failures_name_libxenguests_step() {
    let dir = tempfile::tempdir().unwrap();
    for (op, nth, line) in [
        (
            "address_size",
            1,
            "error:xenguest: xc_domain_resume: [1] Could not get domain width (13 = Permission denied)\n",
        ),
        (
            "maximum_gpfn",
            1,
            "error:xenguest: xc_domain_resume: [1] Couldn't map p2m table\n",
        ),
        (
            "vcpu_context",
            2, // the first is the stand-in's own suspend
            "error:xenguest: xc_domain_resume: [1] Could not get vcpu context\n",
        ),
        (
            "reset_vcpu",
            1,
            "error:xenguest: xc_domain_resume: [1] Couldn't reset vcpu state\n",
        ),
    ] {
        let host = host_with(
            dir.path(),
            &format!("[[fault]]\nop = \"{op}\"\nnth = {nth}\nerrno = 13\n"),
        );
        let (out, _) = pv_trace(dir.path(), &["--host", &host]);
        assert_eq!(out.status.code(), Some(1), "{op}");
        assert_eq!(text(&out.stdout), line, "{op}");
    }
}
