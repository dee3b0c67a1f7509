//! Scenario 3: PVH guests built by `xenguest -mode pvh_build --backend privcmd` run on a
//! real Xen: our own tiny PVH test kernel (`xg_guest::kernel::test_kernel`) prints its
//! banner and checks the start info, and Debian's Linux kernel (with a busybox initramfs as
//! module) boots as a PVH guest to its `/init`, with its console and Xenstore served by
//! dom0's xenconsoled and xenstored. Runs in dom0 (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use xg_ctrl::{DomainOps, HostOps, XenCtrl};
use xg_realxen::build::{build_compared, KernelBuild, PvhImage};
use xg_realxen::console;
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, GuestSpec};
use xg_realxen::{dom0_handles, linux, report};

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn our_pvh_test_kernel_runs() {
    use xg_guest::kernel::test_kernel::{
        test_pvh_kernel, TEST_KERNEL_BANNER, TEST_KERNEL_START_INFO_OK,
    };
    let name = "xg-pvh-test";
    let path = std::env::temp_dir().join("xg-pvh-test-kernel.elf");
    std::fs::write(&path, test_pvh_kernel()).expect("write the test kernel");
    let banner = String::from_utf8_lossy(TEST_KERNEL_BANNER)
        .trim()
        .to_owned();
    let magic_ok = String::from_utf8_lossy(TEST_KERNEL_START_INFO_OK)
        .trim()
        .to_owned();
    let build = KernelBuild::Pvh(PvhImage {
        kernel: path.display().to_string(),
        cmdline: "hello from xen-test".to_owned(),
        modules: Vec::new(),
    });
    let spec = GuestSpec::small(32, 1);
    let (xc, xs) = dom0_handles();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let built = build_compared(&xc, d, name, &spec, &build);
    report(&format!(
        "{name}: pvh_build on Xen {:.1} ms, {}",
        built.elapsed.as_secs_f64() * 1e3,
        built.result
    ));
    let t = Instant::now();
    xc.unpause(d).expect("unpause");
    let needles = [banner.as_str(), magic_ok.as_str()];
    match console::wait_xen_console(d, &needles, Duration::from_secs(30)) {
        Ok(lines) => {
            for l in lines.iter().rev().take(4).rev() {
                println!("{l}");
            }
            report(&format!(
                "{name}: {} memory calls = simulator, tot_pages {}; {needles:?} on Xen's console {:.2} s after unpause",
                built.memory_calls,
                built.tot_pages,
                t.elapsed().as_secs_f64()
            ));
        }
        Err(lines) => {
            let tail: Vec<&String> = lines.iter().rev().take(30).collect();
            panic!("no {needles:?}; the guest's last lines: {tail:#?}");
        }
    }
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}

/// xapi always writes `platform/featureset` (the VM's CPU features); do the same with
/// Xen's HVM default. Without it xenguest's pvh_build takes the *PV* featureset (the C
/// xenguest's `hvm = !is_pvh` quirk, reproduced): PGE is then hidden and Linux's
/// `mov %rcx,%cr4` setting CR4.PGE in startup_64 triple-faults.
fn hvm_default_featureset(xc: &XenCtrl) -> String {
    let hvm_default = xc
        .system_cpu_policy(xg_ctrl::SystemCpuPolicy::HvmDefault)
        .expect("HVM default CPU policy");
    let words: Vec<String> = xg_guest::cpuid::policy_to_featureset(&hvm_default)
        .iter()
        .map(|w| format!("{w:08x}"))
        .collect();
    words.join("-")
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn debian_linux_reaches_init_as_pvh_guest() {
    linux::require_images();
    let name = "xg-linux-pvh";
    // hvc0 is the console ring xenconsoled serves; earlyprintk=xen (port 0xE9, into Xen's
    // console) stays on so `xl dmesg` shows how far a failed boot got.
    let build = KernelBuild::Pvh(PvhImage {
        kernel: linux::BZIMAGE.to_owned(),
        cmdline: "console=hvc0 earlyprintk=xen,keep rdinit=/init".to_owned(),
        modules: vec![(linux::INITRD.to_owned(), String::new())],
    });
    let (xc, xs) = dom0_handles();
    let mut spec = GuestSpec::small(256, 1);
    spec.platform
        .push(("featureset".to_owned(), hvm_default_featureset(&xc)));
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let at = linux::boot_to_init(&xc, &xs, d, name, &mut spec, &build);
    for l in at.waited.tail(12) {
        println!("console: {l}");
    }
    // The /init then asks for a poweroff, which a PVH Linux does not carry out (no ACPI
    // sleep registers, no Xen poweroff hook for PVH; the same under xl, see
    // docs/REAL-XEN.md): the guest must simply still be running, neither shut down nor
    // crashed.
    assert_eq!(
        linux::shutdown_reason(&xc, d),
        None,
        "{name}: shut down early"
    );
    report(&linux::report_line(name, "pvh_build", &at, ""));
    let _ = xs.release(u32::from(d.0));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}
