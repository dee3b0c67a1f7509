//! The readable summary each build mode prints on standard error, from runs of the binary
//! on the simulator. Times are masked; everything else is deterministic.

mod common;

use std::path::Path;
use std::process::Output;

use common::{text, two_modules, Build};

/// Replaces every `<whitespace><digits>.<3 digits> ms` by ` <ms>`: the column padding
/// in front of a time depends on its width.
fn mask_times(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = time_at(b, i) {
            out.push_str(" <ms>");
            i = end;
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The end of a ` 12.345 ms` starting at `i` (one or more spaces first), if there is one.
fn time_at(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    if j == i {
        return None;
    }
    let digits = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == digits || b.get(j) != Some(&b'.') {
        return None;
    }
    j += 1;
    let frac = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j - frac != 3 || !b[j..].starts_with(b" ms") {
        return None;
    }
    Some(j + 3)
}

/// The stderr of a successful run with times masked and `dir` shown as `<tmp>`.
fn summary_of(out: &Output, dir: Option<&Path>) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut s = mask_times(&text(&out.stderr));
    if let Some(d) = dir {
        s = s.replace(d.to_str().unwrap(), "<tmp>");
    }
    s
}

#[test]
fn masking_keeps_everything_but_times() {
    assert_eq!(
        mask_times("done in 3.157 ms (x)\n    a          12.010 ms\n1.5 ms 7 ms"),
        "done in <ms> (x)\n    a <ms>\n1.5 ms 7 ms"
    );
}

#[test]
fn hvm_summary() {
    let out = Build::hvm().run();
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    insta::assert_snapshot!(summary_of(&out, None));
}

#[test]
fn hvm_summary_with_pod_vgpu_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let svg = dir.path().join("m.svg");
    let out = Build::hvm()
        .args(&[
            "-mem_start_mib",
            "768",
            "-vgpu",
            "--platform",
            "vcpu/number=2",
            "--trace",
            trace.to_str().unwrap(),
            "--memory-map",
            svg.to_str().unwrap(),
        ])
        .run();
    insta::assert_snapshot!(summary_of(&out, Some(dir.path())));
}

/// `data` as a gzip file of stored (uncompressed) deflate blocks: its size does not
/// depend on a compressor's version.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(c.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

/// CRC-32 of gzip's trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[test]
fn gzip_stored_is_gzip() {
    // The CRC-32 check value, and the gzip of "" every encoder with stored blocks writes.
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        gzip_stored(b""),
        [31, 139, 8, 0, 0, 0, 0, 0, 0, 255, 1, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn pvh_summary_builtin_kernel_with_modules_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let out = Build::pvh("/nonexistent/vmlinuz")
        .args(&two_modules(dir.path()))
        .args(&[
            "--platform",
            "vcpu/number=2",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .run();
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    insta::assert_snapshot!(summary_of(&out, Some(dir.path())));
}

#[test]
fn pvh_summary_of_a_gzip_bzimage_and_a_gzip_module() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("vmlinuz");
    let m = dir.path().join("initrd.gz");
    let elf = xg_guest::kernel::test_kernel::test_pvh_kernel();
    std::fs::write(
        &k,
        xg_guest::kernel::bzimage::wrap_payload(&gzip_stored(&elf)),
    )
    .unwrap();
    std::fs::write(&m, gzip_stored(&[0xA5; 10_000])).unwrap();
    let out = Build::pvh(k.to_str().unwrap())
        .args(&[
            "-module",
            m.to_str().unwrap(),
            "--platform",
            "featureset=00000001-00000000",
        ])
        .run();
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    let s = summary_of(&out, Some(dir.path()));
    assert!(s.contains("  format       BzImage(Gzip), ELF32,"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn pv_summary_with_ramdisk() {
    let dir = tempfile::tempdir().unwrap();
    let rd = dir.path().join("initrd");
    std::fs::write(&rd, vec![0x5Au8; 12_345]).unwrap();
    let out = Build::pv("/nonexistent/vmlinuz")
        .ramdisk(rd.to_str().unwrap())
        .args(&["--platform", "pae=1", "--platform", "nx=1"])
        .run();
    assert_eq!(text(&out.stdout), "result:31457863 31457864 x86_64-abi\n");
    insta::assert_snapshot!(summary_of(&out, Some(dir.path())));
}

#[test]
fn pv_summary_of_a_gzip_kernel_without_ramdisk() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("vmlinuz.gz");
    let elf = xg_guest::kernel::test_kernel::test_pv_kernel();
    std::fs::write(&k, gzip_stored(&elf)).unwrap();
    let out = Build::pv(k.to_str().unwrap())
        .args(&["--platform", "pae=1", "-store_domid", "7"])
        .run();
    let s = summary_of(&out, Some(dir.path()));
    assert!(s.contains("  format       GzipElf, ELF64,"), "{s}");
    assert!(s.contains("  ramdisk      (none)\n"), "{s}");
    assert!(
        s.contains("    xenstore     mfn 0x1e00243, event channel 1, backend domain 7\n"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn quiet_leaves_only_the_result_line() {
    let pvh = Build::pvh("/nonexistent/vmlinuz").args(&["-q"]).run();
    let pv = Build::pv("/nonexistent/vmlinuz").args(&["--quiet"]).run();
    let hvm = Build::hvm().args(&["-q"]).run();
    for (out, result) in [
        (&pvh, "result:1044476 1044479\n"),
        (&pv, "result:31457859 31457860 x86_64-abi\n"),
        (&hvm, "result:1044476 1044479\n"),
    ] {
        assert!(out.status.success());
        assert_eq!(text(&out.stdout), result);
        assert_eq!(text(&out.stderr), "", "-q leaves stderr empty");
    }
    // Without -q the summary goes to stderr, never to the result's stdout.
    let pvh = Build::pvh("/nonexistent/vmlinuz").run();
    assert_eq!(text(&pvh.stdout), "result:1044476 1044479\n");
    assert!(text(&pvh.stderr).contains("xenguest: PVH build of domain 3 done in "));
    let pv = Build::pv("/nonexistent/vmlinuz").run();
    assert_eq!(text(&pv.stdout), "result:31457859 31457860 x86_64-abi\n");
    assert!(text(&pv.stderr).contains("xenguest: PV build of domain 5 done in "));
}
