//! `-mode linux_build` through the binary on the simulator, with the argv xenopsd uses.

mod common;

use std::process::Output;

use common::{text, Build};

/// xenopsd's linux_build command line, the control channel on stdin and stdout.
fn linux_build(image: &str) -> Build {
    Build::pv(image).control_fds(1, 0)
}

fn result_fields(out: &Output) -> (u64, u64, String) {
    let text = text(&out.stdout);
    let rest = text.strip_prefix("result:").expect(&text);
    let f: Vec<&str> = rest.trim_end_matches('\n').split(' ').collect();
    assert_eq!(f.len(), 3, "{text:?}");
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].to_owned(),
    )
}

#[test]
fn linux_build_with_ramdisk_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let rd = dir.path().join("initrd");
    std::fs::write(&rd, vec![0x5Au8; 12_345]).unwrap();
    let trace = dir.path().join("trace.jsonl");
    let out = linux_build("/nonexistent/vmlinuz")
        .ramdisk(rd.to_str().unwrap())
        .args(&["--trace", trace.to_str().unwrap()])
        .run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (store, console, protocol) = result_fields(&out);
    assert_eq!(protocol, "x86_64-abi");
    // Adjacent machine frames in this layout: xenstore, then console.
    assert_eq!(console, store + 1);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(trace.contains("\"call\":\"pin_table\""), "L4 pinned");
    assert!(trace.contains("\"call\":\"set_vcpu_context\""));
    assert!(
        trace.contains("\"len\":16384,"),
        "ramdisk segment (4 pages)"
    );
    assert!(trace.contains("\"call\":\"create_domain\",\"domid\":5,\"hvm\":false"));
}

#[test]
fn linux_build_without_ramdisk() {
    let out = linux_build("/nonexistent/vmlinuz").run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(result_fields(&out).2, "x86_64-abi");
}

#[test]
fn linux_build_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing ramdisk file.
    let out = linux_build("/nonexistent/vmlinuz")
        .ramdisk("/nonexistent/initrd")
        .run();
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stdout),
        "error:xenguest: xc_dom_module_file: [2] No such file or directory\n"
    );
    // A kernel that is not an image.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = linux_build(bad.to_str().unwrap()).run();
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("error:xenguest: xc_dom_"), "{stdout}");
    // A kernel without PV notes (the PVH test kernel).
    let pvh = dir.path().join("pvh");
    std::fs::write(&pvh, xg_guest::kernel::test_kernel::test_pvh_kernel()).unwrap();
    let out = linux_build(pvh.to_str().unwrap()).run();
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("error:xenguest: xc_dom_parse_image: [2] "),
        "{stdout}"
    );
    // -ramdisk is required.
    let args = linux_build("/nonexistent/vmlinuz")
        .without("-ramdisk")
        .argv();
    assert!(!args.iter().any(|a| a == "-ramdisk"));
    let out = common::xenguest(&args);
    assert!(!out.status.success());
}
