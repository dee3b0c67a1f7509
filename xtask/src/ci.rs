//! `cargo xtask ci`: the whole check sequence `.ci/run` executes.

use anyhow::Result;

use crate::util::{cargo, ensure_debian_packages, run, workspace_root};

/// System packages the test suite needs: libclang + Xen headers for the codegen check,
/// the real xenstored daemons and tools, Debian's libxenguest for the oracle, gcc for the
/// C golden-value programs and fixture shims.
pub const TEST_PACKAGES: &[&str] = &[
    "libclang-dev",
    "libxen-dev",
    "xen-utils-4.17",
    "xenstore-utils",
    "libxenmisc4.17",
    "gcc",
    "libc6-dev",
    "python3",
    // cargo xtask dist: rpmbuild and rpm -qlp; groff renders the man page in its test.
    "rpm",
    "groff-base",
    // xg-guest tests/kernel_lzo.rs: lzo bzImage payloads made by the real tool.
    "lzop",
];

/// Packages the main job can use: Debian's hvmloader lives in xen-utils-4.17.
pub const DEMO_PACKAGES: &[&str] = &["xen-utils-4.17"];

pub fn run_ci_steps() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps"]))?;
    run(cargo().args(["test", "--workspace"]))?;
    // The packages: build the .deb/.rpm/tarball, install the .deb, run it, remove it.
    crate::dist::ci_check()?;
    run(cargo().args(["bench", "--workspace", "--no-run"]))?;
    // Last: our binaries on a real Xen 4.17 under QEMU (a few minutes, needs root).
    crate::xen_test::run_cmd(&[])?;
    Ok(())
}

pub fn run_cmd(_args: &[String]) -> Result<()> {
    ensure_debian_packages(TEST_PACKAGES)?;
    run_ci_steps()?;
    eprintln!("xtask: ci passed");
    Ok(())
}

pub fn demo(args: &[String]) -> Result<()> {
    // Debian's hvmloader is optional: without it the build uses the built-in test firmware.
    if let Err(e) = ensure_debian_packages(DEMO_PACKAGES) {
        eprintln!("xtask: {e:#}; continuing with the built-in firmware");
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    std::fs::create_dir_all(&target)?;
    run(cargo()
        .current_dir(&root)
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "xenguest-cli",
            "--bin",
            "xenguest",
            "--",
        ])
        .args([
            "-mode",
            "hvm_build",
            "-domid",
            "1",
            "-mem_max_mib",
            "4096",
            "-mem_start_mib",
            "4096",
        ])
        .args([
            "-store_port",
            "1",
            "-console_port",
            "2",
            "-image",
            "/usr/lib/xen-4.17/boot/hvmloader",
        ])
        // Two vCPUs and a picture of the guest's memory next to the build output.
        .args([
            "--platform",
            "vcpu/number=2",
            "--platform",
            "vcpu/current=2",
        ])
        .arg("--memory-map")
        .arg(target.join("xenguest-demo-memory-map.svg"))
        .args(args))?;
    Ok(())
}
