//! Support for the tests that run inside dom0 of a real Xen.
//!
//! The tests in `tests/` are `#[ignore]`d, so an ordinary `cargo test` only lists them.
//! `cargo xtask xen-test` builds them as static binaries, boots Xen 4.17 with a Debian
//! dom0 under QEMU (the `xen-in-qemu` fixture) and runs them there with
//! `--include-ignored`; see docs/REAL-XEN.md.
//!
//! Modules: [`build`] runs our `xenguest` like xenopsd, [`cmd`] runs Debian's tools (`xl`, `xenstore-*`) and parses their output,
//! [`console`] reads guest consoles from xenconsoled's logs,
//! [`domain`] creates domains the way xenopsd does (before and after the build) and destroys them on drop,
//! [`linux`] boots Debian's kernel to its `/init` with our builders,
//! [`trace`] reads our hypercall traces and reduces them to what two backends must agree on.
//!
//! # Walkthrough
//!
//! A test in dom0 creates a domain the way xenopsd does, builds it with our binary
//! through privcmd, and compares the result line (needs a real Xen, hence `no_run`):
//!
//! ```no_run
//! use xg_realxen::{build, domain, in_dom0};
//!
//! assert!(in_dom0(), "run me with cargo xtask xen-test");
//! let xc = xg_ctrl::XenCtrl::open().unwrap();
//! let xs = xg_store::Client::open().unwrap();
//! let spec = domain::GuestSpec::small(256, 1);
//! let domid = domain::create_like_xenopsd(&xc, &xs, "xg-doc", &spec).unwrap();
//! let _destroy_on_drop = domain::Guard::new(&xc, domid);
//! let run = build::hvm_build_privcmd(domid.0, &spec, None).unwrap();
//! assert_eq!(build::result_line(&run.stdout), Some("result:1044476 1044479"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod build;
pub mod cmd;
pub mod console;
pub mod domain;
pub mod linux;
pub mod trace;

use std::path::PathBuf;

/// Whether this process runs in the control domain of a real Xen (`control_d` in
/// `/proc/xen/capabilities` and a privcmd device).
pub fn in_dom0() -> bool {
    let caps = std::fs::read_to_string("/proc/xen/capabilities").unwrap_or_default();
    caps.contains("control_d") && std::path::Path::new(xg_ctrl::privcmd::PRIVCMD_PATH).exists()
}

/// The privcmd and Xenstore handles of a test in dom0.
///
/// # Panics
/// Outside dom0 of a real Xen, or when either cannot be opened (a test helper).
pub fn dom0_handles() -> (xg_ctrl::XenCtrl, xg_store::Client) {
    assert!(in_dom0(), "not in dom0 of a real Xen");
    (
        xg_ctrl::XenCtrl::open().expect("open privcmd"),
        xg_store::Client::open().expect("connect to xenstored"),
    )
}

/// Where `cargo xtask xen-test` puts our `xenguest` in dom0 (`XG_XENGUEST` overrides).
pub fn xenguest_path() -> PathBuf {
    std::env::var_os("XG_XENGUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/xg/bin/xenguest"))
}

/// Debian's hvmloader, as xenopsd passes it to xenguest.
pub const HVMLOADER: &str = "/usr/lib/xen-4.17/boot/hvmloader";

/// Message of the `#[ignore]` attribute every test here carries.
pub const IGNORE_REASON: &str = "needs dom0 of a real Xen: run `cargo xtask xen-test`";

/// Writes `XG-REPORT: <line>` straight to stderr, past libtest's output capture, so the
/// line shows (and `cargo xtask xen-test` repeats it in its summary) whether the test
/// passes or fails.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "XG-REPORT: {line}");
}
