//! The readable summary each build mode prints on standard error, from runs of the binary
//! on the simulator. Times are masked; everything else is deterministic.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xenguest");

fn xenguest(args: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

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

const HVM: &[&str] = &[
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

#[test]
fn masking_keeps_everything_but_times() {
    assert_eq!(
        mask_times("done in 3.157 ms (x)\n    a          12.010 ms\n1.5 ms 7 ms"),
        "done in <ms> (x)\n    a <ms>\n1.5 ms 7 ms"
    );
}

#[test]
fn hvm_summary() {
    let out = xenguest(&argv(HVM));
    assert_eq!(text(&out.stdout), "result:1044476 1044479\n");
    insta::assert_snapshot!(summary_of(&out, None));
}

#[test]
fn hvm_summary_with_pod_vgpu_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let svg = dir.path().join("m.svg");
    let mut args = argv(HVM);
    args.extend(argv(&[
        "-mem_start_mib",
        "768",
        "-vgpu",
        "--platform",
        "vcpu/number=2",
        "--trace",
        trace.to_str().unwrap(),
        "--memory-map",
        svg.to_str().unwrap(),
    ]));
    let out = xenguest(&args);
    insta::assert_snapshot!(summary_of(&out, Some(dir.path())));
}
