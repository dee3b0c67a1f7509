//! Scenario: `xenguest -mode resume_slow --backend privcmd` on a real Xen. A PVH guest
//! built by our `pvh_build` suspends itself (`SCHEDOP_shutdown(SHUTDOWN_suspend)`, the
//! call a guest makes when xenopsd asks it to suspend); the resume must leave Xen
//! reporting it running, and the guest must come back from its hypercall with 0 (the
//! "slow" resume: the guest believes it woke up in a new domain). Also what Xen answers
//! for a domain that is not suspended, a missing one and a PV one. Runs in dom0
//! (`cargo xtask xen-test resume`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use xg_ctrl::ops::dominf;
use xg_ctrl::{DomId, DomainConfig, DomainOps, XenCtrl};
use xg_guest::firmware::Elf32Writer;
use xg_guest::kernel::notes;
use xg_realxen::build::{pvh_build, result_line, PvhImage};
use xg_realxen::cmd::{parse_xl_list, run, xl, Finished};
use xg_realxen::console;
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, GuestSpec};
use xg_realxen::{dom0_handles, report, xenguest_path};

/// Load and entry address of the suspending kernel.
const BASE: u32 = 0x10_0000;
/// Where its messages start (the code is shorter).
const MESSAGES: u32 = BASE + 0x200;
/// Where the `struct sched_shutdown` argument goes (in the segment's zeroed tail).
const SHUTDOWN_ARG: u32 = BASE + 0x800;
const SUSPENDING: &str = "xg-resume: suspending";
const RETURNED_0: &str = "xg-resume: suspend returned 0";
const RETURNED_OTHER: &str = "xg-resume: suspend returned non-zero";
/// `SHUTDOWN_suspend`.
const SHUTDOWN_SUSPEND: u32 = 2;

/// Writes the NUL-terminated string at `addr` to port 0xE9 (Xen's console).
fn print(c: &mut Vec<u8>, addr: u32) {
    c.push(0xBE); // mov esi, addr
    c.extend_from_slice(&addr.to_le_bytes());
    c.extend_from_slice(&[0x66, 0xBA, 0xE9, 0x00]); // mov dx, 0xe9
    c.push(0xAC); // lodsb
    c.extend_from_slice(&[0x84, 0xC0]); // test al, al
    c.extend_from_slice(&[0x74, 0x03]); // jz past the loop
    c.push(0xEE); // out dx, al
    c.extend_from_slice(&[0xEB, 0xF8]); // jmp lodsb
}

/// A 32-bit PVH kernel that prints [`SUSPENDING`], makes `HYPERVISOR_sched_op(
/// SCHEDOP_shutdown, {SHUTDOWN_suspend})` with VMCALL (Intel) or VMMCALL (others), then
/// prints whether the call returned 0 and spins.
fn suspending_kernel() -> Vec<u8> {
    let mut msgs = Vec::new();
    let mut at = Vec::new();
    for m in [SUSPENDING, RETURNED_0, RETURNED_OTHER] {
        at.push(MESSAGES + u32::try_from(msgs.len()).unwrap());
        msgs.extend_from_slice(m.as_bytes());
        msgs.extend_from_slice(b"\n\0");
    }
    let mut c = Vec::new();
    print(&mut c, at[0]);
    c.extend_from_slice(&[0x31, 0xC0]); // xor eax, eax
    c.extend_from_slice(&[0x0F, 0xA2]); // cpuid: ebx = "Genu" on Intel
    c.extend_from_slice(&[0x81, 0xFB]); // cmp ebx, "Genu"
    c.extend_from_slice(b"Genu");
    // The moves keep the flags of the comparison.
    c.extend_from_slice(&[0xC7, 0x05]); // mov dword [SHUTDOWN_ARG], SHUTDOWN_suspend
    c.extend_from_slice(&SHUTDOWN_ARG.to_le_bytes());
    c.extend_from_slice(&SHUTDOWN_SUSPEND.to_le_bytes());
    c.push(0xB8); // mov eax, __HYPERVISOR_sched_op
    c.extend_from_slice(&29u32.to_le_bytes());
    c.push(0xBB); // mov ebx, SCHEDOP_shutdown
    c.extend_from_slice(&2u32.to_le_bytes());
    c.push(0xB9); // mov ecx, SHUTDOWN_ARG
    c.extend_from_slice(&SHUTDOWN_ARG.to_le_bytes());
    c.extend_from_slice(&[0x75, 0x05]); // jne vmmcall
    c.extend_from_slice(&[0x0F, 0x01, 0xC1]); // vmcall
    c.extend_from_slice(&[0xEB, 0x03]); // jmp after
    c.extend_from_slice(&[0x0F, 0x01, 0xD9]); // vmmcall
    c.extend_from_slice(&[0x85, 0xC0]); // after: test eax, eax
    let mut ok = Vec::new();
    print(&mut ok, at[1]);
    let mut other = Vec::new();
    print(&mut other, at[2]);
    // jnz over the "returned 0" print and its jmp to the spin.
    c.extend_from_slice(&[0x75, u8::try_from(ok.len() + 2).unwrap()]);
    c.extend_from_slice(&ok);
    c.extend_from_slice(&[0xEB, u8::try_from(other.len()).unwrap()]);
    c.extend_from_slice(&other);
    // Spin rather than `cli; hlt`: Xen powers off an HVM domain whose every vCPU halts
    // with interrupts off, and the domain must stay running after the resume.
    c.extend_from_slice(&[0xF3, 0x90]); // pause
    c.extend_from_slice(&[0xEB, 0xFC]); // jmp pause
    let code_len = usize::try_from(MESSAGES - BASE).unwrap();
    assert!(c.len() <= code_len, "code overlaps the messages");
    c.resize(code_len, 0x90);
    c.extend_from_slice(&msgs);
    Elf32Writer::new(BASE)
        .load(BASE, &c, 0x1000)
        .note("Xen", notes::GUEST_OS, b"xenguest-rs-resume-test\0")
        .note("Xen", notes::PHYS32_ENTRY, &BASE.to_le_bytes())
        .build()
}

/// `xenguest -mode resume_slow` as xenopsd runs it (control fd 1 is the pipe read here).
fn resume_slow(domid: u16) -> Finished {
    let prog = xenguest_path().display().to_string();
    run(
        &prog,
        &[
            "-controloutfd",
            "1",
            "-controlinfd",
            "0",
            "-mode",
            "resume_slow",
            "-domid",
            &domid.to_string(),
            "--backend",
            "privcmd",
        ],
    )
    .expect("run xenguest")
}

fn flags(xc: &XenCtrl, d: DomId) -> u32 {
    xc.domain_info(d).expect("getdomaininfo").flags
}

fn xl_state(d: DomId) -> String {
    let list = xl(&["list"]).expect("xl list");
    parse_xl_list(&list)
        .into_iter()
        .find(|r| r.domid == u32::from(d.0))
        .map(|r| r.state)
        .unwrap_or_default()
}

fn wait_for_suspend(xc: &XenCtrl, d: DomId, timeout: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if xc.domain_info(d).expect("getdomaininfo").shutdown_reason() == Some(SHUTDOWN_SUSPEND) {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn resume_slow_lets_a_suspended_pvh_guest_run_again() {
    let name = "xg-resume";
    let path = std::env::temp_dir().join("xg-resume-kernel.elf");
    std::fs::write(&path, suspending_kernel()).expect("write the kernel");
    let spec = GuestSpec::small(32, 1);
    let (xc, xs) = dom0_handles();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let image = PvhImage {
        kernel: path.display().to_string(),
        cmdline: String::new(),
        modules: Vec::new(),
    };
    let built = pvh_build("privcmd", d.0, &spec, &image, None).expect("run xenguest");
    assert!(built.success(), "pvh_build: {}", built.stderr);
    assert!(result_line(&built.stdout).is_some(), "{}", built.stdout);

    // Built but not started: nothing to resume; Xen succeeds and the domain stays paused.
    let idle = resume_slow(d.0);
    assert!(idle.success(), "{}\n{}", idle.stdout, idle.stderr);
    assert_eq!(idle.stdout, "result:0 0\n");
    let f = flags(&xc, d);
    assert_ne!(f & dominf::PAUSED, 0, "{f:#x}");
    assert_eq!(f & dominf::SHUTDOWN, 0, "{f:#x}");

    xc.unpause(d).expect("unpause");
    let Some(suspended_after) = wait_for_suspend(&xc, d, Duration::from_secs(30)) else {
        panic!(
            "no suspend; the guest's console: {:#?}",
            console::xen_console_of(d, 20)
        );
    };
    let f = flags(&xc, d);
    assert_eq!(f & dominf::PAUSED, 0, "{f:#x}");
    let state = xl_state(d);
    assert!(state.contains('s'), "xl list state {state:?}");
    println!("suspended: flags {f:#x}, xl state {state}");

    let resumed = resume_slow(d.0);
    assert!(resumed.success(), "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(resumed.stdout, "result:0 0\n", "write_status(0, 0, NULL)");
    let f = flags(&xc, d);
    assert_eq!(
        f & (dominf::SHUTDOWN | dominf::PAUSED),
        0,
        "running after the resume: {f:#x}"
    );
    let t = Instant::now();
    match console::wait_xen_console(d, &[RETURNED_0], Duration::from_secs(30)) {
        Ok(lines) => {
            assert!(
                !lines.iter().any(|l| l.contains(RETURNED_OTHER)),
                "{lines:#?}"
            );
            for l in lines.iter().rev().take(3).rev() {
                println!("{l}");
            }
        }
        Err(lines) => panic!("the guest did not run on after the resume: {lines:#?}"),
    }
    let state = xl_state(d);
    assert!(
        !state.contains('s') && !state.contains('p'),
        "xl list state {state:?}"
    );
    report(&format!(
        "{name}: suspended {:.2} s after unpause; resume_slow {:.1} ms; \"{RETURNED_0}\" on \
         Xen's console {:.2} s later; xl state afterwards {state}",
        suspended_after.as_secs_f64(),
        resumed.elapsed.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64()
    ));
    drop(dom);
    remove_store(&xs, d).expect("remove xenstore dir");
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn resume_slow_errors_on_real_xen() {
    let (xc, _xs) = dom0_handles();
    // A domain id nobody uses: Xen 4.17 answers getdomaininfo with ESRCH (or the next
    // domain, which the backend turns into ESRCH).
    let missing = resume_slow(32000);
    assert_eq!(missing.status, Some(1));
    assert_eq!(
        missing.stdout,
        "error:xenguest: xc_domain_resume: [1] Could not get domain info (3 = No such process)\n"
    );

    // A PV domain created without a build has published no p2m: its shared info says
    // max_pfn 0 and no frame list, so libxenguest's p2m map (of machine frame 0, which
    // the domain does not own) fails and the domain is left as it is.
    let pv = xc
        .create_domain(
            DomId(0),
            &DomainConfig {
                hvm: false,
                hap: false,
                ..DomainConfig::default()
            },
        )
        .expect("create a PV domain");
    let guard = Guard::new(&xc, pv);
    let before = flags(&xc, pv);
    let refused = resume_slow(pv.0);
    assert_eq!(refused.status, Some(1));
    assert_eq!(
        refused.stdout, "error:xenguest: xc_domain_resume: [1] Couldn't map p2m table\n",
        "{}",
        refused.stderr
    );
    assert_eq!(flags(&xc, pv), before);
    drop(guard);
    report(&format!(
        "resume_slow errors: missing domain and unbuilt PV domain {} answered as expected",
        pv.0
    ));
}

/// Runs everywhere: the kernel is a PVH image entered at [`BASE`], its code stays clear
/// of its messages, and the shutdown argument lies in the zeroed tail of its segment.
#[test]
fn suspending_kernel_is_a_pvh_image() {
    let image = suspending_kernel();
    let elf = xg_guest::kernel::KernelElf::parse(image.clone()).expect("an ELF image");
    let pvh = elf.pvh().expect("a PVH kernel");
    assert_eq!(pvh.entry, u64::from(BASE));
    assert!(u64::from(SHUTDOWN_ARG) + 4 <= pvh.kend, "{pvh:?}");
    let text = String::from_utf8_lossy(&image);
    for m in [SUSPENDING, RETURNED_0, RETURNED_OTHER] {
        assert!(text.contains(&format!("{m}\n\0")), "{m}");
    }
    if let Some(dump) = std::env::var_os("XG_DUMP_RESUME_KERNEL") {
        std::fs::write(dump, &image).unwrap();
    }
}
