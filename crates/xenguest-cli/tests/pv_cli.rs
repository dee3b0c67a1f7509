//! `-mode linux_build` through the binary on the simulator, with the argv xenopsd uses.

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

/// xenopsd's linux_build command line.
fn pv_args<'a>(image: &'a str, ramdisk: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        "linux_build",
        "-domid",
        "5",
        "-image",
        image,
        "-cmdline",
        "root=/dev/xvda1 console=hvc0",
        "-ramdisk",
        ramdisk,
        "-features",
        "",
        "-flags",
        "0",
        "-store_port",
        "1",
        "-console_port",
        "2",
        "-mem_max_mib",
        "256",
        "-mem_start_mib",
        "128",
    ];
    v.extend_from_slice(extra);
    v
}

fn result_fields(out: &Output) -> (u64, u64, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
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
    let (rd, t) = (rd.to_str().unwrap(), trace.to_str().unwrap());
    let out = xenguest(&pv_args("/nonexistent/vmlinuz", rd, &["--trace", t]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = xenguest(&pv_args("/nonexistent/vmlinuz", "", &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result_fields(&out).2, "x86_64-abi");
}

#[test]
fn linux_build_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing ramdisk file.
    let out = xenguest(&pv_args("/nonexistent/vmlinuz", "/nonexistent/initrd", &[]));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "error:xenguest: xc_dom_module_file: [2] No such file or directory\n"
    );
    // A kernel that is not an image.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = xenguest(&pv_args(bad.to_str().unwrap(), "", &[]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("error:xenguest: xc_dom_"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A kernel without PV notes (the PVH test kernel).
    let pvh = dir.path().join("pvh");
    std::fs::write(&pvh, xg_guest::kernel::test_kernel::test_pvh_kernel()).unwrap();
    let out = xenguest(&pv_args(pvh.to_str().unwrap(), "", &[]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("error:xenguest: xc_dom_parse_image: [2] "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // -ramdisk is required.
    let mut args = pv_args("/nonexistent/vmlinuz", "", &[]);
    let i = args.iter().position(|a| *a == "-ramdisk").unwrap();
    args.drain(i..i + 2);
    let out = xenguest(&args);
    assert!(!out.status.success());
}
