//! Scenario 4: PV guests built by `xenguest -mode linux_build --backend privcmd` run on a
//! real Xen: our tiny PV test kernel (`xg_guest::kernel::test_kernel`) runs on the page
//! tables, start info and hypercall page we built and powers itself off, and Debian's
//! Linux kernel with the fixture's busybox initramfs as ramdisk boots as a 64-bit PV guest
//! to its `/init`, with its console and Xenstore served by dom0's xenconsoled and
//! xenstored. Runs in dom0 (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use xg_ctrl::DomainOps;
use xg_realxen::build::{build_compared, KernelBuild, PvImage};
use xg_realxen::console::{self, Outcome};
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, GuestSpec};
use xg_realxen::{dom0_handles, linux, report};

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
    let (xc, xs) = dom0_handles();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let built = build_compared(&xc, d, name, &spec, &build);
    xc.unpause(d).expect("unpause");
    // The kernel's only way out is SCHEDOP_shutdown through the hypercall page we had Xen
    // fill: poweroff if its start info has the right magic, reboot if not; a fault on our
    // page tables or context crashes the domain instead.
    let w = console::wait_for(&xc, d, name, &["never printed"], Duration::from_secs(30));
    assert_eq!(
        w.outcome,
        Outcome::ShutDown(0),
        "{name}: expected a poweroff; Xen's console: {:#?}",
        console::xen_console_of(d, 30)
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

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn debian_linux_reaches_init_as_pv_guest() {
    linux::require_images();
    let name = "xg-linux-pv";
    let build = KernelBuild::Pv(PvImage {
        kernel: linux::BZIMAGE.to_owned(),
        ramdisk: Some(linux::INITRD.to_owned()),
        cmdline: "console=hvc0 rdinit=/init".to_owned(),
    });
    let mut spec = GuestSpec::small_pv(256, 1);
    let (xc, xs) = dom0_handles();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let at = linux::boot_to_init(&xc, &xs, d, name, &mut spec, &build);
    for l in at.waited.tail(12) {
        println!("console: {l}");
    }
    // A PV kernel powers off by hypercall: the /init's poweroff must end the domain.
    let off = console::wait_for(&xc, d, name, &["never printed"], Duration::from_secs(60));
    assert_eq!(
        off.outcome,
        Outcome::ShutDown(0),
        "{name}: poweroff after /init"
    );
    report(&linux::report_line(
        name,
        "linux_build",
        &at,
        &format!(", poweroff {:.2} s later", off.elapsed.as_secs_f64()),
    ));
    let _ = xs.release(u32::from(d.0));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}
