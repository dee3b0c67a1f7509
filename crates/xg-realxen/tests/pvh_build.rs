//! Scenario 3: PVH guests built by `xenguest -mode pvh_build --backend privcmd` run on a
//! real Xen: our own tiny PVH test kernel (`xg_guest::kernel::test_kernel`) prints its
//! banner and checks the start info, and Debian's Linux kernel (with a busybox initramfs as
//! module) boots as a PVH guest until it needs Xenstore. Runs in dom0
//! (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xg_ctrl::{DomainOps, HostOps, XenCtrl};
use xg_realxen::build::{pvh_build, result_line, PvhImage};
use xg_realxen::cmd::xl;
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, HvmSpec};
use xg_realxen::report;
use xg_realxen::trace::{memory_effect, read};
use xg_store::Client;

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

/// Builds `image` into a fresh domain on Xen and on the simulator, checks the result line
/// and that both made the same memory calls, then unpauses the guest and waits for
/// `needles` on Xen's console.
fn build_and_run(
    name: &str,
    spec: &HvmSpec,
    image: &PvhImage,
    needles: &[&str],
    timeout: Duration,
) {
    let (xc, xs) = setup();
    let d = create_like_xenopsd(&xc, &xs, name, spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let real_trace = std::env::temp_dir().join(format!("{name}-xen.jsonl"));
    let real = pvh_build("privcmd", d.0, spec, image, Some(&real_trace)).expect("run xenguest");
    println!("stdout: {}\nstderr: {}", real.stdout, real.stderr);
    assert!(
        real.success(),
        "pvh_build failed: {:?}\n{}",
        real.status,
        real.stderr
    );
    let result = result_line(&real.stdout).expect("result line").to_owned();
    report(&format!(
        "{name}: pvh_build on Xen {:.1} ms, {result}",
        real.elapsed.as_secs_f64() * 1e3
    ));

    let sim_trace = std::env::temp_dir().join(format!("{name}-sim.jsonl"));
    let sim = pvh_build("sim", d.0, spec, image, Some(&sim_trace)).expect("run on sim");
    assert!(sim.success(), "sim pvh_build failed: {}", sim.stderr);
    assert_eq!(result_line(&sim.stdout), Some(result.as_str()));
    let real_fx = memory_effect(&read(&real_trace).expect("xen trace"));
    let sim_fx = memory_effect(&read(&sim_trace).expect("sim trace"));
    if let Some(i) = (0..real_fx.calls.len().max(sim_fx.calls.len()))
        .find(|&i| real_fx.calls.get(i) != sim_fx.calls.get(i))
    {
        panic!(
            "memory call {i} differs:\n  xen: {:?}\n  sim: {:?}",
            real_fx.calls.get(i),
            sim_fx.calls.get(i)
        );
    }
    let info = xc.domain_info(d).expect("getdomaininfo");
    assert_eq!(info.tot_pages, sim_fx.pages_added, "tot_pages vs simulator");

    let t = Instant::now();
    xc.unpause(d).expect("unpause");
    match wait_dmesg(d.0, needles, timeout) {
        Ok(lines) => {
            for l in lines.iter().rev().take(4).rev() {
                println!("{l}");
            }
            report(&format!(
                "{name}: {} memory calls = simulator, tot_pages {}; {needles:?} on the console {:.2} s after unpause",
                real_fx.calls.len(),
                info.tot_pages,
                t.elapsed().as_secs_f64()
            ));
        }
        Err(lines) => {
            let tail: Vec<&String> = lines.iter().rev().take(30).collect();
            panic!("no {needles:?} after {timeout:?}; the guest's last lines: {tail:#?}");
        }
    }
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn our_pvh_test_kernel_runs() {
    use xg_guest::kernel::test_kernel::{
        test_pvh_kernel, TEST_KERNEL_BANNER, TEST_KERNEL_START_INFO_OK,
    };
    let path = std::env::temp_dir().join("xg-pvh-test-kernel.elf");
    std::fs::write(&path, test_pvh_kernel()).expect("write the test kernel");
    let banner = String::from_utf8_lossy(TEST_KERNEL_BANNER)
        .trim()
        .to_owned();
    let magic_ok = String::from_utf8_lossy(TEST_KERNEL_START_INFO_OK)
        .trim()
        .to_owned();
    let image = PvhImage {
        kernel: path.display().to_string(),
        cmdline: "hello from xen-test".to_owned(),
        modules: Vec::new(),
    };
    build_and_run(
        "xg-pvh-test",
        &HvmSpec::small(32, 1),
        &image,
        &[&banner, &magic_ok],
        Duration::from_secs(30),
    );
}

/// Debian's kernel as shipped (bzImage; its payload is xz with the x86 BCJ filter) and the
/// fixture's busybox initramfs (`WITH_LINUX_GUEST=1`).
const LINUX_BZIMAGE: &str = "/guest/vmlinuz";
const LINUX_INITRD: &str = "/guest/domu-initrd.gz";

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn debian_linux_boots_as_pvh_guest() {
    for f in [LINUX_BZIMAGE, LINUX_INITRD] {
        assert!(
            Path::new(f).exists(),
            "{f} missing (fixture without WITH_LINUX_GUEST=1?)"
        );
    }
    // The console ring has no backend (no event channel was allocated, nothing reads
    // it): with hvc0 as a console the kernel would spin once the ring is full. So the
    // console is the (dummy) VT and the kernel's messages go through port 0xE9 (the kept
    // earlyprintk=xen boot console of a PVH guest), which Xen shows in its console.
    //
    // What is checked: the kernel was entered through its PVH entry point with our start
    // info ("Booting kernel on Xen PVH"), found our e820 and the initramfs module
    // ("Freeing initrd memory"), and got as far as xenbus. It does not reach /init: like
    // xenopsd it would need event channels allocated for the store and console and the
    // domain introduced to xenstored after the build, which this test's toolstack part
    // does not do, so the guest waits for Xenstore forever.
    let image = PvhImage {
        kernel: LINUX_BZIMAGE.to_owned(),
        cmdline: "console=tty0 earlyprintk=xen,keep rdinit=/init".to_owned(),
        modules: vec![(
            PathBuf::from(LINUX_INITRD).display().to_string(),
            String::new(),
        )],
    };
    // xapi always writes platform/featureset (the VM's CPU features); do the same with
    // Xen's HVM default. Without it xenguest's pvh_build takes the *PV* featureset (the
    // C xenguest's `hvm = !is_pvh` quirk, reproduced): PGE is then hidden and Linux's
    // `mov %rcx,%cr4` setting CR4.PGE in startup_64 triple-faults.
    let (xc, _) = setup();
    let hvm_default = xc
        .system_cpu_policy(xg_ctrl::SystemCpuPolicy::HvmDefault)
        .expect("HVM default CPU policy");
    let featureset: Vec<String> = xg_guest::cpuid::policy_to_featureset(&hvm_default)
        .iter()
        .map(|w| format!("{w:08x}"))
        .collect();
    let mut spec = HvmSpec::small(256, 1);
    spec.platform
        .push(("featureset".to_owned(), featureset.join("-")));
    build_and_run(
        "xg-linux-pvh",
        &spec,
        &image,
        &[
            "Booting kernel on Xen PVH",
            "Freeing initrd memory",
            "xenbus: request irq failed",
        ],
        Duration::from_secs(90),
    );
}
