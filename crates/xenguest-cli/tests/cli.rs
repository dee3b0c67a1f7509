//! The `xenguest` binary: its help, its argv errors, the control-channel protocol and
//! what it prints where.

mod common;

use std::fmt::Write;
use std::process::{Command, Stdio};

use common::{text, xenguest, BIN};

/// Base argv of an HVM build on the simulator with a firmware path that does not exist
/// (so the built-in test firmware is used on every machine).
const BUILD: &[&str] = &[
    "-mode",
    "hvm_build",
    "-domid",
    "2",
    "-mem_max_mib",
    "1024",
    "-mem_start_mib",
    "1024",
    "-store_port",
    "1",
    "-console_port",
    "2",
    "-image",
    "/nonexistent/hvmloader",
];

fn with(extra: &[&str]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = BUILD.to_vec();
    for e in extra {
        v.push(Box::leak(e.to_string().into_boxed_str()));
    }
    v
}

#[test]
fn help() {
    let out = xenguest(["--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn supports() {
    let out = xenguest(["-supports", "migration-v2"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "true\n".into())
    );
    let out = xenguest(["--supports=x"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "false\n".into())
    );
}

#[test]
fn argv_errors() {
    let cases: &[&[&str]] = &[
        &["-bogus"],
        &["-domid", "12x"],
        &["-domid"],
        &["-force=yes"],
        &["-mode", "pv_build"],
        &["-domid", "1"],
        &["-mode", "hvm_build", "-domid", "1"],
        &["-mode", "save", "-domid", "1", "-fd", "0"],
        &[
            "-mode",
            "pvh_build",
            "-domid",
            "1",
            "-mem_max_mib",
            "1",
            "-mem_start_mib",
            "1",
            "-image",
            "k",
            "-cmdline",
            "",
            "-features",
            "",
            "-store_port",
            "1",
            "-console_port",
            "2",
        ],
        &["-mode", "test"],
        &["-controloutfd", "77", "-mode", "hvm_build"],
        &["--backend", "kvm"],
        &["--populate=fast"],
        &["--platform", "novalue"],
    ];
    let mut all = String::new();
    for argv in cases {
        let out = xenguest(*argv);
        assert_eq!(out.status.code(), Some(1), "{argv:?}");
        assert!(out.stdout.is_empty(), "{argv:?} wrote to stdout");
        let _ = writeln!(all, "$ xenguest {}\n{}", argv.join(" "), text(&out.stderr));
    }
    insta::assert_snapshot!(all);
}

#[test]
fn bad_platform_values() {
    let cases: &[&[&str]] = &[
        &[
            "--platform",
            "vcpu/number=4",
            "--platform",
            "cores-per-socket=3",
        ],
        &["--platform", "featureset=1fcbfbff-xyz"],
        &["--platform", "hvmloader/bios=seabios"],
        &[
            "-mem_max_mib",
            "2048",
            "-mem_start_mib",
            "1024",
            "-pci_passthrough",
            "0000:01:00.0",
        ],
        &["--platform", "nested-virt=1", "-mem_start_mib", "512"],
    ];
    let mut all = String::new();
    for extra in cases {
        let out = xenguest(with(extra));
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(out.stdout.is_empty());
        let _ = writeln!(
            all,
            "$ xenguest ... {}\n{}",
            extra.join(" "),
            text(&out.stderr)
        );
    }
    insta::assert_snapshot!(all);
}

#[test]
fn misread_values_are_warnings_not_errors() {
    let out = xenguest(with(&[
        "-q",
        "--platform",
        "vcpu/weight=70000",
        "--platform",
        "tsc_mode=1 ",
    ]));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    let out = xenguest(with(&[
        "--platform",
        "vcpu/weight=70000",
        "--platform",
        "acpi=yes",
    ]));
    let err = text(&out.stderr);
    assert!(err.contains("WARNING: platform key platform/vcpu/weight=\"70000\": too large for the field, truncated"), "{err}");
    assert!(
        err.contains("WARNING: platform key platform/acpi=\"yes\": rewritten to \"0\""),
        "{err}"
    );
}

#[test]
fn result_on_stdout_without_control_fd() {
    let out = xenguest(BUILD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("built-in test firmware (/nonexistent/hvmloader not found)"),
        "{err}"
    );
    assert!(err.contains("pages        4 KiB: 0x200"), "{err}");
    assert!(err.contains("result       result:1044476 1044479"), "{err}");
}

/// Runs xenguest with fd 3 = a pipe we read (the shell's stdout), xenguest's own stdout
/// to a file that must stay empty.
fn with_control_fd(extra: &[&str]) -> (Option<i32>, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let stdout_file = dir.path().join("stdout");
    let mut args = vec!["-controloutfd", "3", "-controlinfd", "0"];
    args.extend_from_slice(extra);
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec 3>&1; exec \"$@\" >\"$XG_STDOUT\"")
        .arg("sh")
        .arg(BIN)
        .args(&args)
        .env("XG_STDOUT", &stdout_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        text(&out.stdout),
        std::fs::read_to_string(&stdout_file).unwrap(),
        text(&out.stderr),
    )
}

#[test]
fn control_channel_result() {
    let (code, control, stdout, stderr) = with_control_fd(BUILD);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(control, "result:1044476 1044479\n");
    assert_eq!(stdout, "");
}

#[test]
fn control_channel_errors() {
    let (code, control, stdout, _) = with_control_fd(&with(&["--platform", "featureset=zz"]));
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    let lines: Vec<&str> = control.lines().collect();
    assert_eq!(lines[0], "error:Bad 'zz' in featureset");
    assert!(
        lines[1].starts_with("error:xenguest: construct_cpuid_policy: ["),
        "{control}"
    );
    assert_eq!(lines.len(), 2);
    let (code, control, _, _) = with_control_fd(&["-bogus"]);
    assert_eq!(
        (code, control.as_str()),
        (Some(1), "error:xenguest: invalid command line '-bogus'\n")
    );
}

#[test]
fn plan_is_json_on_stdout() {
    let out = xenguest(with(&["--plan", "-vgpu"]));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mmio_size"], "0x20000000");
    assert_eq!(v["populate"]["populate_calls"], 130);
    assert_eq!(v["xenstore_writes"][0][0], "vm-data/vram-reserved-addr");
}

#[test]
fn trace_and_memory_map_files() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let svg = dir.path().join("m.svg");
    let out = xenguest(with(&[
        "-q",
        "--trace",
        trace.to_str().unwrap(),
        "--memory-map",
        svg.to_str().unwrap(),
        "--populate",
        "batched",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = std::fs::read_to_string(&trace).unwrap();
    assert!(t
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(t.contains("\"call\":\"populate_physmap\""));
    assert!(t.contains("\"call\":\"xs_write\""));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<?xml"));
    assert_eq!(text(&out.stderr), "", "-q leaves stderr empty");
}

#[test]
fn privcmd_backend_without_xen() {
    if std::path::Path::new("/dev/xen/privcmd").exists() {
        return; // a real dom0: covered by the privcmd backend's own tests
    }
    let out = xenguest(with(&["--backend", "privcmd"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.ends_with("xenguest: Failed to open xc interface\n"),
        "{err}"
    );
}

#[test]
fn debuglog_gets_info_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("debug.log");
    let out = xenguest(with(&["-q", "-debuglog", log.to_str().unwrap()]));
    assert!(out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("Created HVM domain 2: 1 vCPUs, 1024 MiB"),
        "{text}"
    );
    assert!(
        text.contains("Final lower MMIO hole size is 0x10000000"),
        "{text}"
    );
    assert!(text.contains("All done"), "{text}");
}

#[allow(clippy::print_stderr)]
#[test]
fn socket_store_with_the_simulator() {
    use xg_store::fixture::{required_by_ci, Daemon, Flavour};
    use xg_store::{Store, TxId};
    let d = match Daemon::start(Flavour::C) {
        Ok(d) => d,
        Err(e) if e.is_missing() && !required_by_ci() => {
            eprintln!("skipping: the xenstored fixture is not available ({e})");
            return;
        }
        Err(e) => panic!("starting xenstored: {e:?}"),
    };
    let out = Command::new(BIN)
        .args(with(&[
            "-q",
            "--store",
            "socket",
            "--platform",
            "vcpu/number=2",
            "-vgpu",
        ]))
        .env("XENSTORED_PATH", d.socket())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    let c = d.client().unwrap();
    let read = |k: &str| text(&c.read(TxId::NONE, &format!("/local/domain/2/{k}")).unwrap());
    assert_eq!(read("vm-data/mmio-hole-size"), "536870912");
    assert_eq!(read("vm-data/vram-reserved-addr"), "fb000000");
    assert_eq!(read("platform/vcpu/number"), "2");
}

#[test]
fn platform_file_seeds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("platform");
    std::fs::write(
        &f,
        "# a VM's platform keys\nvcpu/number=6\ncores-per-socket = 4\n",
    )
    .unwrap();
    let out = xenguest(with(&["--platform-file", f.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Bad cores/socket setting: 4 (nr vcpus 6)"));
    std::fs::write(&f, "vcpu/number=8\ncores-per-socket=4\n").unwrap();
    let out = xenguest(with(&["--platform-file", f.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("vCPUs        8 (1 online)"));
}
