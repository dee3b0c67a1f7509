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
