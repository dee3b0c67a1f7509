//! Scenario 3: PVH guests built by `xenguest -mode pvh_build --backend privcmd` run on a
//! real Xen: our own tiny PVH test kernel (`xg_guest::kernel::test_kernel`) prints its
//! banner and checks the start info, and Debian's Linux kernel (with a busybox initramfs as
//! module) boots as a PVH guest to its `/init`, with its console and Xenstore served by
//! dom0's xenconsoled and xenstored. Runs in dom0 (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::{Duration, Instant};

use xg_ctrl::{DomainOps, HostOps, XenCtrl};
use xg_realxen::build::{build_compared, KernelBuild, PvhImage};
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

/// Waits up to `timeout` for every needle in `xl dmesg`; returns the guest's lines.
fn wait_dmesg(domid: u16, needles: &[&str], timeout: Duration) -> Result<Vec<String>, Vec<String>> {
    let prefix = format!("(d{domid})");
    let start = Instant::now();
    loop {
        let text = xl(&["dmesg"]).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&prefix))
            .map(str::to_owned)
            .collect();
        if needles.iter().all(|n| lines.iter().any(|l| l.contains(n))) {
            return Ok(lines);
        }
        if start.elapsed() > timeout {
            return Err(lines);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

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
    let (xc, xs) = setup();
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
    match wait_dmesg(d.0, &needles, Duration::from_secs(30)) {
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

/// Debian's kernel as shipped (bzImage; its payload is xz with the x86 BCJ filter) and the
/// fixture's busybox initramfs (`WITH_LINUX_GUEST=1`), whose `/init` prints `DOMU-UP` and
/// powers the guest off.
const LINUX_BZIMAGE: &str = "/guest/vmlinuz";
const LINUX_INITRD: &str = "/guest/domu-initrd.gz";
/// What the fixture's guest `/init` prints.
const INIT_BANNER: &str = "DOMU-UP";

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
    for f in [LINUX_BZIMAGE, LINUX_INITRD] {
        assert!(
            Path::new(f).exists(),
            "{f} missing (fixture without WITH_LINUX_GUEST=1?)"
        );
    }
    let name = "xg-linux-pvh";
    // hvc0 is the console ring xenconsoled serves; earlyprintk=xen (port 0xE9, into Xen's
    // console) stays on so `xl dmesg` shows how far a failed boot got.
    let build = KernelBuild::Pvh(PvhImage {
        kernel: LINUX_BZIMAGE.to_owned(),
        cmdline: "console=hvc0 earlyprintk=xen,keep rdinit=/init".to_owned(),
        modules: vec![(LINUX_INITRD.to_owned(), String::new())],
    });
    let (xc, xs) = setup();
    let mut spec = GuestSpec::small(256, 1);
    spec.platform
        .push(("featureset".to_owned(), hvm_default_featureset(&xc)));
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
    if w.outcome != Outcome::Seen {
        let dmesg = xl(&["dmesg"]).unwrap_or_default();
        let prefix = format!("(d{})", d.0);
        let guest: Vec<&str> = dmesg.lines().filter(|l| l.contains(&prefix)).collect();
        panic!(
            "{name}: no {INIT_BANNER} on the console ({:?} after {:.1} s); Xen's console: {:#?}",
            w.outcome,
            w.elapsed.as_secs_f64(),
            &guest[guest.len().saturating_sub(30)..]
        );
    }
    // The /init then asks for a poweroff, which a PVH guest cannot do here (its FADT is
    // hardware-reduced and no ACPI sleep register exists, as with libxl's tables): the
    // domain keeps running until it is destroyed. Reaching /init is what is checked.
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
    let info = xc.domain_info(d).expect("getdomaininfo");
    assert_eq!(info.shutdown_reason(), None, "{name}: shut down early");
    report(&format!(
        "{name}: pvh_build {:.1} ms, {}; {} memory calls = simulator; ports store {} console {}; \
         /init on hvc0 (xenconsoled, xenstored) {:.2} s after unpause",
        built.elapsed.as_secs_f64() * 1e3,
        built.result,
        built.memory_calls,
        ports.store,
        ports.console,
        w.elapsed.as_secs_f64()
    ));
    let _ = xs.release(u32::from(d.0));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}
