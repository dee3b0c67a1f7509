//! `-mode pvh_build` through the binary on the simulator.

mod common;

use common::{text, two_modules, Build};

/// xenopsd's pvh_build command line, the control channel on stdin and stdout.
fn pvh_build(image: &str) -> Build {
    Build::pvh(image).control_fds(1, 0)
}

#[test]
fn builtin_test_kernel_with_modules() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let out = pvh_build("/nonexistent/vmlinuz")
        .args(&two_modules(dir.path()))
        .args(&["--trace", trace.to_str().unwrap()])
        .run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
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
    let k = k.to_str().unwrap();
    let out = pvh_build(k).run();
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");

    let bad = dir.path().join("hvmloader");
    std::fs::write(&bad, xg_guest::firmware::builtin_test_firmware()).unwrap();
    let out = pvh_build(bad.to_str().unwrap()).run();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: xc_dom_parse_image: [2] Not a Xen-ELF image: no Xen ELF notes found\n"
    );

    let out = pvh_build(k)
        .args(&["-pci_passthrough", "0000:01:00.0", "--force"])
        .run();
    assert_eq!(
        text(&out.stdout),
        "error:PCI passthrough not supported under PVH\n"
    );
    let out = pvh_build(k).args(&["-module", "/nonexistent/m"]).run();
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: xc_dom_module_file: [2] No such file or directory\n"
    );
}
