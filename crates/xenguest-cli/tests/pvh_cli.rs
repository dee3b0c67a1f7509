//! `-mode pvh_build` through the binary on the simulator.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xenguest");

fn xenguest(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn pvh_args<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        "pvh_build",
        "-domid",
        "3",
        "-image",
        image,
        "-cmdline",
        "console=hvc0",
        "-features",
        "",
        "-flags",
        "0",
        "-store_port",
        "1",
        "-console_port",
        "2",
        "-mem_max_mib",
        "512",
        "-mem_start_mib",
        "512",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn builtin_test_kernel_with_modules() {
    let dir = tempfile::tempdir().unwrap();
    let m0 = dir.path().join("m0");
    let m1 = dir.path().join("m1");
    std::fs::write(&m0, b"module zero").unwrap();
    std::fs::write(&m1, vec![0u8; 9000]).unwrap();
    let trace = dir.path().join("trace.jsonl");
    let (m0, m1, t) = (
        m0.to_str().unwrap(),
        m1.to_str().unwrap(),
        trace.to_str().unwrap(),
    );
    let out = xenguest(&pvh_args(
        "/nonexistent/vmlinuz",
        &[
            "-module", m0, "-cmdline", "zero", "-module", m1, "--trace", t,
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "result:1044476 1044479\n"
    );
    // Both modules were written to the guest (11 and 9000 bytes).
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(trace.contains("\"len\":11,"), "module 0 write");
    assert!(trace.contains("\"len\":9000,"), "module 1 write");
}

#[test]
fn kernel_from_a_file_and_bad_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("vmlinuz");
    std::fs::write(&k, xg_guest::kernel::test_kernel::test_pvh_kernel()).unwrap();
    let out = xenguest(&pvh_args(k.to_str().unwrap(), &[]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "result:1044476 1044479\n"
    );

    let bad = dir.path().join("hvmloader");
    std::fs::write(&bad, xg_guest::firmware::builtin_test_firmware()).unwrap();
    let out = xenguest(&pvh_args(bad.to_str().unwrap(), &[]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "error:xenguest: xc_dom_parse_image: [2] Not a Xen-ELF image: no Xen ELF notes found\n"
    );

    let out = xenguest(&pvh_args(
        k.to_str().unwrap(),
        &["-pci_passthrough", "0000:01:00.0", "--force"],
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "error:PCI passthrough not supported under PVH\n"
    );
    let out = xenguest(&pvh_args(
        k.to_str().unwrap(),
        &["-module", "/nonexistent/m"],
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "error:xenguest: xc_dom_module_file: [2] No such file or directory\n"
    );
}
