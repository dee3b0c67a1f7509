//! Scenario 4: PV guests built by `xenguest -mode linux_build --backend privcmd` run on a
//! real Xen: our tiny PV test kernel (`xg_guest::kernel::test_kernel`) runs on the page
//! tables, start info and hypercall page we built and powers itself off, and Debian's
//! Linux kernel with the fixture's busybox initramfs as ramdisk boots as a 64-bit PV guest
//! to its `/init`, with its console and Xenstore served by dom0's xenconsoled and
//! xenstored. Runs in dom0 (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use xg_ctrl::{DomainOps, XenCtrl};
use xg_realxen::build::{build_compared, KernelBuild, PvImage};
use xg_realxen::cmd::xl;
use xg_realxen::console::{self, Outcome};
use xg_realxen::domain::{
    alloc_ports, create_like_xenopsd, remove_store, start_like_xenopsd, Guard, GuestSpec,
};
use xg_realxen::report;
use xg_store::{Client, Store, TxId};

fn setup() -> (XenCtrl, Client) {
    assert!(xg_realxen::in_dom0(), "not in dom0 of a real Xen");
    (
        XenCtrl::open().expect("open privcmd"),
        Client::open().expect("connect to xenstored"),
    )
}

/// Xen's console lines of domain `domid` (the last 30), for failure messages.
fn xen_console_of(domid: u16) -> Vec<String> {
    let dmesg = xl(&["dmesg"]).unwrap_or_default();
    let prefix = format!("(d{domid})");
    let lines: Vec<String> = dmesg
        .lines()
        .filter(|l| l.contains(&prefix))
        .map(str::to_owned)
        .collect();
    lines[lines.len().saturating_sub(30)..].to_vec()
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn our_pv_test_kernel_powers_off() {
    let name = "xg-pv-test";
    let path = std::env::temp_dir().join("xg-pv-test-kernel.elf");
    std::fs::write(&path, xg_guest::kernel::test_kernel::test_pv_kernel())
        .expect("write the test kernel");
    let build = KernelBuild::Pv(PvImage {
        kernel: path.display().to_string(),
        ramdisk: None,
        cmdline: "hello from xen-test".to_owned(),
    });
    let spec = GuestSpec::small_pv(32, 1);
    let (xc, xs) = setup();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let built = build_compared(&xc, d, name, &spec, &build);
    xc.unpause(d).expect("unpause");
    // The kernel's only way out is SCHEDOP_shutdown(poweroff) through the hypercall page
    // we had Xen fill; a fault on our page tables or context crashes the domain instead.
    let w = console::wait_for(&xc, d, name, &["never printed"], Duration::from_secs(30));
    assert_eq!(
        w.outcome,
        Outcome::ShutDown(0),
        "{name}: expected a poweroff; Xen's console: {:#?}",
        xen_console_of(d.0)
    );
    report(&format!(
        "{name}: linux_build on Xen {:.1} ms, {}; {} memory calls = simulator, tot_pages {}; \
         poweroff {:.2} s after unpause",
        built.elapsed.as_secs_f64() * 1e3,
        built.result,
        built.memory_calls,
        built.tot_pages,
        w.elapsed.as_secs_f64()
    ));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}

/// Debian's kernel (bzImage with an xz payload) and the fixture's busybox initramfs
/// (`WITH_LINUX_GUEST=1`), whose `/init` prints `DOMU-UP` and powers the guest off.
const LINUX_BZIMAGE: &str = "/guest/vmlinuz";
const LINUX_INITRD: &str = "/guest/domu-initrd.gz";
const INIT_BANNER: &str = "DOMU-UP";

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn debian_linux_reaches_init_as_pv_guest() {
    for f in [LINUX_BZIMAGE, LINUX_INITRD] {
        assert!(
            Path::new(f).exists(),
            "{f} missing (fixture without WITH_LINUX_GUEST=1?)"
        );
    }
    let name = "xg-linux-pv";
    let build = KernelBuild::Pv(PvImage {
        kernel: LINUX_BZIMAGE.to_owned(),
        ramdisk: Some(LINUX_INITRD.to_owned()),
        cmdline: "console=hvc0 rdinit=/init".to_owned(),
    });
    let mut spec = GuestSpec::small_pv(256, 1);
    let (xc, xs) = setup();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let ports = alloc_ports(&xc, d, &mut spec).expect("allocate event channels");
    let built = build_compared(&xc, d, name, &spec, &build);
    start_like_xenopsd(&xs, d, ports, built.frames.0, built.frames.1)
        .expect("introduce the domain");
    xc.unpause(d).expect("unpause");
    let w = console::wait_for(&xc, d, name, &[INIT_BANNER], Duration::from_secs(120));
    for l in w.tail(12) {
        println!("console: {l}");
    }
    assert_eq!(
        w.outcome,
        Outcome::Seen,
        "{name}: no {INIT_BANNER} on the console after {:.1} s; console: {:#?}; Xen's console: {:#?}",
        w.elapsed.as_secs_f64(),
        w.tail(40),
        xen_console_of(d.0)
    );
    // Linux's xenbus announces the shutdown requests it handles under control/: the
    // guest reached xenstored through the ring and port we handed over.
    let feature = xs
        .read_opt(
            TxId::NONE,
            &format!("/local/domain/{}/control/feature-poweroff", d.0),
        )
        .expect("read control/feature-poweroff");
    assert_eq!(
        feature.as_deref(),
        Some(&b"1"[..]),
        "{name}: the guest wrote no control/feature-poweroff"
    );
    let up = w.elapsed;
    let off = console::wait_for(&xc, d, name, &["never printed"], Duration::from_secs(60));
    assert_eq!(
        off.outcome,
        Outcome::ShutDown(0),
        "{name}: poweroff after /init"
    );
    report(&format!(
        "{name}: linux_build {:.1} ms, {}; {} memory calls = simulator; ports store {} console {}; \
         /init on hvc0 {:.2} s after unpause, poweroff {:.2} s later",
        built.elapsed.as_secs_f64() * 1e3,
        built.result,
        built.memory_calls,
        ports.store,
        ports.console,
        up.as_secs_f64(),
        off.elapsed.as_secs_f64()
    ));
    let _ = xs.release(u32::from(d.0));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}
