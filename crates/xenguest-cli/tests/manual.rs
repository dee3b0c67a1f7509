//! The manual page `xenguest --man` prints: its text (snapshot) and that groff renders
//! it without a warning.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xenguest");

fn man_source() -> String {
    let out = Command::new(BIN).arg("--man").output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_page_source() {
    insta::assert_snapshot!(man_source());
}

/// Renders with groff (Debian's groff-base, in the CI package list) with every warning
/// enabled; a roff mistake in the generator shows up as a warning or a missing section.
#[test]
fn groff_renders_it_without_warnings() {
    if Command::new("groff").arg("--version").output().is_err() {
        eprintln!("groff is not installed: only the structural tests ran");
        return;
    }
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(man_source().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "OUTPUT",
        "EXIT STATUS",
        "FILES",
        "ENVIRONMENT",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            text.lines().any(|l| l == heading),
            "{heading} missing from the rendered page"
        );
    }
    assert!(text.contains("xenguest - the Xen domain builder run by xenopsd"));
    // Options copy as typed: ASCII hyphen-minus, not a Unicode minus or hyphen.
    assert!(text.contains("-mem_start_mib S"), "{text}");
    assert!(text.contains("XENSTORED_PATH"));
}
