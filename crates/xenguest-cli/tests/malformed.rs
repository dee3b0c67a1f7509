//! Malformed inputs, one table: command lines, platform values, firmware images, host
//! description files, platform files and sysfs files, each with the exact `error:` lines
//! and exit status the `xenguest` binary gives. Also a few injected hypercall failures
//! through a `--host` file, to check the whole process (exit 1, one `error:` line naming
//! the step) and not just the library.
//!
//! The table is snapshotted: a changed message is a change of xenguest's wire protocol
//! (xenopsd logs these texts) and must be reviewed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xenguest");

/// An HVM build on the simulator; the firmware path is replaced per case.
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
    "-q",
];

/// Files the cases point at, in one temporary directory.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let fw = xg_guest::firmware::builtin_test_firmware();
        let put = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).unwrap();
        put("empty.img", b"");
        put("text.img", b"this is not an ELF file\n");
        put("half.img", &fw[..fw.len() / 2]);
        put("header-only.img", &fw[..52]);
        let mut elf64 = fw.clone();
        elf64[4] = 2; // EI_CLASS = ELFCLASS64 on a 32-bit body
        put("elf64.img", &elf64);
        let mut big_endian = fw.clone();
        big_endian[5] = 2; // EI_DATA = ELFDATA2MSB
        put("big-endian.img", &big_endian);
        let mut no_phdrs = fw;
        no_phdrs[44] = 0; // e_phnum = 0
        no_phdrs[45] = 0;
        put("no-phdrs.img", &no_phdrs);
        put("bad.toml", b"[[node]\nmemory_mib = 1024\n");
        put("no-nodes.toml", b"name = \"empty\"\n");
        put(
            "unknown-op.toml",
            b"[[node]]\nmemory_mib = 4096\ncpus = 2\n[[fault]]\nop = \"frobnicate\"\nnth = 1\nerrno = 5\n",
        );
        put(
            "unknown-key.toml",
            b"[[node]]\nmemory_mib = 4096\ncpus = 2\ncolour = \"blue\"\n",
        );
        put("small.toml", b"[[node]]\nmemory_mib = 512\ncpus = 2\n");
        for (name, op, nth, errno) in [
            ("fail-low-populate.toml", "populate_physmap_exact", 1, 12),
            ("fail-time-offset.toml", "set_time_offset", 1, 3),
            ("fail-cpu-policy.toml", "set_domain_cpu_policy", 1, 22),
            ("fail-affinity.toml", "set_vcpu_affinity", 1, 3),
        ] {
            put(
                name,
                format!(
                    "[[node]]\nmemory_mib = 4096\ncpus = 4\n[[fault]]\nop = \"{op}\"\nnth = {nth}\nerrno = {errno}\n"
                )
                .as_bytes(),
            );
        }
        put(
            "platform-bad-line.txt",
            b"vcpu/number=2\nthis line has no equals\n",
        );
        // PCI passthrough: sysfs trees with broken files.
        let dev = |tree: &str| {
            let d = dir.path().join(tree).join("bus/pci/devices/0000:03:00.0");
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        std::fs::write(dev("sysfs-garbage").join("resource"), b"garbage\n").unwrap();
        dev("sysfs-missing");
        std::fs::write(
            dev("sysfs-short").join("resource"),
            b"0x00000000e0000000 0x00000000e0ffffff\n",
        )
        .unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// One case: a name and the argv after the base build argv (or instead of it).
struct Case {
    what: &'static str,
    argv: Vec<String>,
}

fn build(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = BUILD.iter().map(|s| (*s).to_owned()).collect();
    v.push("-image".into());
    v.push("/nonexistent/hvmloader".into());
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn image(path: &str) -> Vec<String> {
    let mut v: Vec<String> = BUILD.iter().map(|s| (*s).to_owned()).collect();
    v.push("-image".into());
    v.push(path.to_owned());
    v
}

fn raw(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| (*s).to_owned()).collect()
}

fn cases(f: &Files) -> Vec<Case> {
    let c = |what, argv| Case { what, argv };
    let p = |n: &str| f.path(n);
    vec![
        // --- command line
        c("unknown option", raw(&["-bogus"])),
        c("option missing its value", raw(&["-domid"])),
        c("integer with trailing garbage", raw(&["-domid", "12x"])),
        c(
            "integer out of int range (truncated like C)",
            build(&["-domid", "99999999999"]),
        ),
        c("value given to a flag", raw(&["-force=yes"])),
        c("unknown mode", raw(&["-mode", "pv_build"])),
        c("ambiguous prefix", raw(&["-mem", "1"])),
        c("domid 0", build(&["-domid", "0"])),
        c("reserved domid", build(&["-domid", "32752"])),
        c("negative memory", build(&["-mem_max_mib", "-5"])),
        c("zero start memory", build(&["-mem_start_mib", "0"])),
        c(
            "event channel -1 (the unset value)",
            build(&["-store_port", "-1"]),
        ),
        c("negative event channel", build(&["-console_port", "-7"])),
        c("negative backend domain", build(&["-console_domid", "-2"])),
        c("negative NUMA node", build(&["-mem_pnode", "-1"])),
        c("NUMA node that does not exist", build(&["-mem_pnode", "9"])),
        c("unknown populate strategy", build(&["--populate", "fast"])),
        c("unknown backend", build(&["--backend", "qemu"])),
        c("unknown store", build(&["--store", "etcd"])),
        // --- platform values
        c(
            "platform key without '='",
            build(&["--platform", "novalue"]),
        ),
        c(
            "bad featureset word",
            build(&["--platform", "featureset=1fcbfbff-xyz"]),
        ),
        c(
            "unsupported bios",
            build(&["--platform", "hvmloader/bios=seabios"]),
        ),
        c(
            "cores-per-socket not dividing vCPUs",
            build(&[
                "--platform",
                "vcpu/number=4",
                "--platform",
                "cores-per-socket=3",
            ]),
        ),
        c(
            "nested virtualisation with PoD",
            build(&["--platform", "nested-virt=1", "-mem_start_mib", "512"]),
        ),
        c(
            "PCI passthrough with PoD",
            build(&["-pci_passthrough", "", "-mem_start_mib", "512"]),
        ),
        c(
            "ovmf-override with a path",
            build(&[
                "--platform",
                "hvmloader/bios=ovmf",
                "--platform",
                "ovmf-override=../../etc/shadow",
            ]),
        ),
        c(
            "ovmf-override naming a missing file",
            build(&[
                "--platform",
                "hvmloader/bios=ovmf",
                "--platform",
                "ovmf-override=OVMF-missing.fd",
            ]),
        ),
        c(
            "affinity mask with no CPU",
            build(&["--platform", "vcpu/0/affinity=0000"]),
        ),
        c(
            "TSC mode out of range",
            build(&["--platform", "tsc_mode=7"]),
        ),
        c(
            "platform file with a bad line",
            build(&["--platform-file", &p("platform-bad-line.txt")]),
        ),
        c(
            "missing platform file",
            build(&["--platform-file", &p("no-such-file.txt")]),
        ),
        // --- firmware images
        c("empty image", image(&p("empty.img"))),
        c("text file as image", image(&p("text.img"))),
        c("truncated image", image(&p("half.img"))),
        c("ELF header only", image(&p("header-only.img"))),
        c("64-bit ELF class", image(&p("elf64.img"))),
        c("big-endian ELF", image(&p("big-endian.img"))),
        c("ELF without program headers", image(&p("no-phdrs.img"))),
        c("directory as image", image(&f.root().display().to_string())),
        // --- host description files
        c(
            "host file with a TOML syntax error",
            build(&["--host", &p("bad.toml")]),
        ),
        c(
            "host file without nodes",
            build(&["--host", &p("no-nodes.toml")]),
        ),
        c(
            "host file with an unknown fault operation",
            build(&["--host", &p("unknown-op.toml")]),
        ),
        c(
            "host file with an unknown key",
            build(&["--host", &p("unknown-key.toml")]),
        ),
        c("missing host file", build(&["--host", &p("no-such.toml")])),
        c(
            "host too small for the guest",
            build(&["--host", &p("small.toml")]),
        ),
        // --- sysfs files of passed-through devices
        c(
            "PCI resource file with garbage",
            build(&[
                "-pci_passthrough",
                "0000:03:00.0",
                "--sysfs-root",
                &p("sysfs-garbage"),
            ]),
        ),
        c(
            "PCI resource file missing",
            build(&[
                "-pci_passthrough",
                "0000:03:00.0",
                "--sysfs-root",
                &p("sysfs-missing"),
            ]),
        ),
        c(
            "PCI resource line with two fields",
            build(&[
                "-pci_passthrough",
                "0000:03:00.0",
                "--sysfs-root",
                &p("sysfs-short"),
            ]),
        ),
        // --- injected hypercall failures (the whole process)
        c(
            "low-memory populate fails (ENOMEM)",
            build(&["--host", &p("fail-low-populate.toml")]),
        ),
        c(
            "time offset fails (ESRCH)",
            build(&["--host", &p("fail-time-offset.toml")]),
        ),
        c(
            "CPU policy refused (EINVAL)",
            build(&["--host", &p("fail-cpu-policy.toml")]),
        ),
        c(
            "vCPU affinity fails (ESRCH)",
            build(&[
                "--host",
                &p("fail-affinity.toml"),
                "--platform",
                "vcpu/0/affinity=1",
            ]),
        ),
    ]
}

/// Runs one case with fd 3 as the control channel (xenopsd's `-controloutfd`): exit
/// status, the `error:` lines written there, and stderr.
fn outcome(argv: &[String]) -> (Option<i32>, Vec<String>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec 3>&1; exec \"$@\" >/dev/null")
        .arg("sh")
        .arg(BIN)
        .args(["-controloutfd", "3", "-controlinfd", "0"])
        .args(argv)
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let control = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = control
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    (
        out.status.code(),
        errors,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_inputs_get_exact_errors() {
    let files = Files::new();
    let root = files.root().display().to_string();
    let cases = cases(&files);
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut table = String::new();
    for case in &cases {
        let (code, errors, stderr) = outcome(&case.argv);
        assert_eq!(
            code,
            Some(1),
            "{}: expected exit 1, got {code:?}; errors {errors:?}; stderr {stderr}",
            case.what
        );
        assert!(
            !errors.is_empty(),
            "{}: no error line; stderr {stderr}",
            case.what
        );
        assert!(
            !stderr.contains("panicked"),
            "{}: panicked: {stderr}",
            case.what
        );
        let _ = writeln!(table, "{}", case.what);
        for e in errors {
            let _ = writeln!(table, "    {}", e.replace(&root, "<tmp>"));
        }
    }
    insta::assert_snapshot!(table);
}

/// Every injected failure is reported once, on the control channel, with the step.
#[test]
fn injected_failures_name_the_step() {
    let files = Files::new();
    for (host, step) in [
        ("fail-low-populate.toml", "xc_dom_boot_mem_init: [12]"),
        ("fail-time-offset.toml", "hvm_build_params: [3]"),
        ("fail-cpu-policy.toml", "construct_cpuid_policy: [22]"),
    ] {
        let argv = build(&["--host", &files.path(host)]);
        let (code, errors, _) = outcome(&argv);
        assert_eq!(code, Some(1), "{host}");
        assert_eq!(errors.len(), 1, "{host}: {errors:?}");
        assert!(
            errors[0].starts_with(&format!("error:xenguest: {step}")),
            "{host}: {errors:?}"
        );
    }
}
