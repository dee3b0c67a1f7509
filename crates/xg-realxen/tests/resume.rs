//! Scenario: `xenguest -mode resume_slow --backend privcmd` on a real Xen. A PVH guest
//! built by our `pvh_build` suspends itself (`SCHEDOP_shutdown(SHUTDOWN_suspend)`, the
//! call a guest makes when xenopsd asks it to suspend); the resume must leave Xen
//! reporting it running, and the guest must come back from its hypercall with 0 (the
//! "slow" resume: the guest believes it woke up in a new domain). A 64-bit PV guest
//! built by our `linux_build` does what a PV kernel does before it suspends (p2m
//! published in the shared info page, the start info's ring frames turned into pfns,
//! the start info's machine frame in `rdx`); the resume must turn the frames back and
//! let it run on to power itself off. Also what Xen answers for a domain that is not
//! suspended, a missing one and an unbuilt PV one. Runs in dom0
//! (`cargo xtask xen-test resume`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use xg_ctrl::ops::dominf;
use xg_ctrl::{DomId, DomainConfig, DomainOps, Mfn, PvOps, XenCtrl};
use xg_guest::firmware::Elf32Writer;
use xg_guest::kernel::notes;
use xg_guest::kernel::test_kernel::{pv_kernel_with, TEST_PV_VIRT_BASE};
use xg_realxen::build::{linux_build, pvh_build, result_frames, result_line, PvImage, PvhImage};
use xg_realxen::cmd::{parse_xl_list, run, xl, Finished};
use xg_realxen::console::{self, Outcome};
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

/// Where the PV kernel maps its shared info page: the third page of its segment (bss).
const PV_SHARED_INFO_PAGE: u64 = 0x2000;
/// `__HYPERVISOR_update_va_mapping`, `__HYPERVISOR_sched_op`: their stubs in the
/// hypercall page (the kernel's second page), 32 bytes each.
const UPDATE_VA_MAPPING: u64 = 0x1000 + 14 * 32;
const SCHED_OP: u64 = 0x1000 + 29 * 32;
/// `vcpu_guest_context.user_regs.rdx` (x86_64).
const CONTEXT_RDX: usize = 616;
/// `start_info.store_mfn`, `start_info.console.domU.mfn` (x86_64).
const START_INFO_STORE: u64 = 56;
const START_INFO_CONSOLE: u64 = 72;

/// `rel32` of a call or rip-relative operand ending at `next` that reaches `target`
/// (both offsets in the kernel's segment).
fn rel32(target: u64, next: usize) -> [u8; 4] {
    let d = i64::try_from(target).unwrap() - i64::try_from(next).unwrap();
    i32::try_from(d).unwrap().to_le_bytes()
}

/// A 64-bit PV kernel that suspends the way Linux does and checks the resume.
///
/// Entered with `rsi` = its start info (virtual), the PV boot ABI:
/// 1. `rbx` = start info, `r12` = its p2m (`mfn_list`), `r13` = the start info's
///    machine frame (`p2m[(rbx - virt_base) >> 12]`: the builder maps pfn `n` at
///    `virt_base + n * 4096`).
/// 2. Maps the shared info page (`start_info.shared_info`, a machine address) over its
///    third page with `update_va_mapping(va, maddr | P|RW|US|A|D, UVMF_INVLPG)`; a
///    failure is `ud2`, a crash.
/// 3. Publishes its p2m there as Linux does at boot: `arch.max_pfn` = `nr_pages`,
///    `arch.p2m_cr3` = the machine address of its L4 table (`pt_base`'s frame, through
///    the p2m), `arch.p2m_vaddr` = `mfn_list`.
/// 4. `xen_pre_suspend`: the start info's `store_mfn` and `console.domU.mfn` become pfns
///    through the read-only M2P Xen maps at `0xffff800000000000`; the machine frames are
///    kept in `rbp` and `r14`.
/// 5. `HYPERVISOR_sched_op(SCHEDOP_shutdown, &{SHUTDOWN_suspend}, start info mfn)`.
/// 6. After the resume: if the call returned 0 and both start info fields hold the
///    machine frames again, `SHUTDOWN_poweroff`; otherwise `SHUTDOWN_reboot`. Then spins.
///
/// `rbx`, `rbp` and `r12`–`r15` survive hypercalls (a debug Xen poisons only the
/// argument registers a hypercall takes).
fn pv_suspending_kernel() -> Vec<u8> {
    let mut c: Vec<u8> = Vec::new();
    c.extend_from_slice(&[0x48, 0x89, 0xF3]); // mov rbx, rsi
    c.extend_from_slice(&[0x4C, 0x8B, 0x63, 0x68]); // mov r12, [rbx + 104] (mfn_list)
    c.extend_from_slice(&[0x48, 0x89, 0xD8]); // mov rax, rbx
    c.extend_from_slice(&[0x48, 0x2D, 0x00, 0x00, 0x00, 0x80]); // sub rax, virt_base
    c.extend_from_slice(&[0x48, 0xC1, 0xE8, 0x0C]); // shr rax, 12
    c.extend_from_slice(&[0x4D, 0x8B, 0x2C, 0xC4]); // mov r13, [r12 + rax * 8]
    c.extend_from_slice(&[0x48, 0x8D, 0x3D]); // lea rdi, [rip + shared info page]
    c.extend_from_slice(&rel32(PV_SHARED_INFO_PAGE, c.len() + 4));
    c.extend_from_slice(&[0x48, 0x8B, 0x73, 0x28]); // mov rsi, [rbx + 40] (shared_info)
    c.extend_from_slice(&[0x48, 0x83, 0xCE, 0x67]); // or rsi, P|RW|US|A|D
    c.extend_from_slice(&[0xBA, 0x02, 0x00, 0x00, 0x00]); // mov edx, UVMF_INVLPG
    c.push(0xE8); // call update_va_mapping
    c.extend_from_slice(&rel32(UPDATE_VA_MAPPING, c.len() + 4));
    c.extend_from_slice(&[0x48, 0x85, 0xC0]); // test rax, rax
    c.extend_from_slice(&[0x74, 0x02]); // jz past the ud2
    c.extend_from_slice(&[0x0F, 0x0B]); // ud2
    c.extend_from_slice(&[0x4C, 0x8D, 0x35]); // lea r14, [rip + shared info page]
    c.extend_from_slice(&rel32(PV_SHARED_INFO_PAGE, c.len() + 4));
    c.extend_from_slice(&[0x48, 0x8B, 0x43, 0x20]); // mov rax, [rbx + 32] (nr_pages)
    c.extend_from_slice(&[0x49, 0x89, 0x86, 0x10, 0x0C, 0x00, 0x00]); // mov [r14 + 3088], rax (max_pfn)
    c.extend_from_slice(&[0x48, 0x8B, 0x43, 0x58]); // mov rax, [rbx + 88] (pt_base)
    c.extend_from_slice(&[0x48, 0x2D, 0x00, 0x00, 0x00, 0x80]); // sub rax, virt_base
    c.extend_from_slice(&[0x48, 0xC1, 0xE8, 0x0C]); // shr rax, 12
    c.extend_from_slice(&[0x49, 0x8B, 0x04, 0xC4]); // mov rax, [r12 + rax * 8]
    c.extend_from_slice(&[0x48, 0xC1, 0xE0, 0x0C]); // shl rax, 12
    c.extend_from_slice(&[0x49, 0x89, 0x86, 0x28, 0x0C, 0x00, 0x00]); // mov [r14 + 3112], rax (p2m_cr3)
    c.extend_from_slice(&[0x4D, 0x89, 0xA6, 0x30, 0x0C, 0x00, 0x00]); // mov [r14 + 3120], r12 (p2m_vaddr)
    c.extend_from_slice(&[0x49, 0xBF]); // mov r15, the M2P
    c.extend_from_slice(&0xFFFF_8000_0000_0000u64.to_le_bytes());
    c.extend_from_slice(&[0x48, 0x8B, 0x6B, 0x38]); // mov rbp, [rbx + 56] (store_mfn)
    c.extend_from_slice(&[0x49, 0x8B, 0x04, 0xEF]); // mov rax, [r15 + rbp * 8]
    c.extend_from_slice(&[0x48, 0x89, 0x43, 0x38]); // mov [rbx + 56], rax
    c.extend_from_slice(&[0x4C, 0x8B, 0x73, 0x48]); // mov r14, [rbx + 72] (console mfn)
    c.extend_from_slice(&[0x4B, 0x8B, 0x04, 0xF7]); // mov rax, [r15 + r14 * 8]
    c.extend_from_slice(&[0x48, 0x89, 0x43, 0x48]); // mov [rbx + 72], rax
    c.extend_from_slice(&[0x6A, 0x02]); // push SHUTDOWN_suspend (struct sched_shutdown)
    c.extend_from_slice(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
    c.extend_from_slice(&[0xBF, 0x02, 0x00, 0x00, 0x00]); // mov edi, SCHEDOP_shutdown
    c.extend_from_slice(&[0x4C, 0x89, 0xEA]); // mov rdx, r13 (start info mfn)
    c.push(0xE8); // call sched_op
    c.extend_from_slice(&rel32(SCHED_OP, c.len() + 4));
    c.push(0x59); // pop rcx
    c.extend_from_slice(&[0xBE, 0x01, 0x00, 0x00, 0x00]); // mov esi, SHUTDOWN_reboot
    c.extend_from_slice(&[0x48, 0x85, 0xC0]); // test rax, rax
    c.extend_from_slice(&[0x75, 0x0E]); // jnz shut (+4 +2 +4 +2 +2)
    c.extend_from_slice(&[0x48, 0x39, 0x6B, 0x38]); // cmp [rbx + 56], rbp
    c.extend_from_slice(&[0x75, 0x08]); // jne shut (+4 +2 +2)
    c.extend_from_slice(&[0x4C, 0x39, 0x73, 0x48]); // cmp [rbx + 72], r14
    c.extend_from_slice(&[0x75, 0x02]); // jne shut (+2)
    c.extend_from_slice(&[0x31, 0xF6]); // xor esi, esi (SHUTDOWN_poweroff)
    c.push(0x56); // shut: push rsi
    c.extend_from_slice(&[0x48, 0x89, 0xE6]); // mov rsi, rsp
    c.extend_from_slice(&[0xBF, 0x02, 0x00, 0x00, 0x00]); // mov edi, SCHEDOP_shutdown
    c.push(0xE8); // call sched_op
    c.extend_from_slice(&rel32(SCHED_OP, c.len() + 4));
    c.extend_from_slice(&[0xEB, 0xFE]); // jmp $
    assert!(c.len() <= 0x1000, "the code fits its page");
    c.resize(0x1000, 0xCC);
    // The hypercall page and the page the shared info is mapped over, as bss.
    pv_kernel_with(&c, 0x2000)
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

fn start_info_field(xc: &XenCtrl, d: DomId, start_info: u64, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    xc.read_machine(d, &[Mfn(start_info)], offset, &mut b)
        .expect("read the start info");
    u64::from_le_bytes(b)
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn resume_slow_gives_a_suspended_pv_guest_its_frames_back() {
    let name = "xg-resume-pv";
    let path = std::env::temp_dir().join("xg-resume-pv-kernel.elf");
    std::fs::write(&path, pv_suspending_kernel()).expect("write the kernel");
    // Two vCPUs: the resume resets the second (never brought up by this kernel).
    let spec = GuestSpec::small_pv(32, 2);
    let (xc, xs) = dom0_handles();
    let d = create_like_xenopsd(&xc, &xs, name, &spec).expect("create domain");
    let dom = Guard::new(&xc, d);
    let image = PvImage {
        kernel: path.display().to_string(),
        ramdisk: None,
        cmdline: String::new(),
    };
    let built = linux_build("privcmd", d.0, &spec, &image, None).expect("run xenguest");
    assert!(built.success(), "linux_build: {}", built.stderr);
    let (store_mfn, console_mfn) = result_line(&built.stdout)
        .and_then(result_frames)
        .unwrap_or_else(|| panic!("no result line: {}", built.stdout));

    xc.unpause(d).expect("unpause");
    let Some(suspended_after) = wait_for_suspend(&xc, d, Duration::from_secs(30)) else {
        panic!(
            "no suspend: flags {:#x}; Xen's console: {:#?}",
            flags(&xc, d),
            console::xen_console_of(d, 30)
        );
    };
    // What the kernel left for the toolstack: rdx names its start info, whose ring
    // fields now hold pfns.
    let ctx = xc.vcpu_context(d, 0).expect("getvcpucontext");
    let start_info = u64::from_le_bytes(ctx[CONTEXT_RDX..CONTEXT_RDX + 8].try_into().unwrap());
    let pages = spec.mem_mib << 8;
    let store_pfn = start_info_field(&xc, d, start_info, START_INFO_STORE);
    let console_pfn = start_info_field(&xc, d, start_info, START_INFO_CONSOLE);
    assert!(
        store_pfn < pages && console_pfn < pages && store_pfn != store_mfn,
        "start info {start_info:#x}: store {store_pfn:#x}, console {console_pfn:#x}"
    );
    println!(
        "suspended: start info mfn {start_info:#x}, store pfn {store_pfn:#x} (mfn \
         {store_mfn:#x}), console pfn {console_pfn:#x} (mfn {console_mfn:#x})"
    );

    let resumed = resume_slow(d.0);
    assert!(resumed.success(), "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(resumed.stdout, "result:0 0\n", "write_status(0, 0, NULL)");
    assert_eq!(
        start_info_field(&xc, d, start_info, START_INFO_STORE),
        store_mfn
    );
    assert_eq!(
        start_info_field(&xc, d, start_info, START_INFO_CONSOLE),
        console_mfn
    );
    // The kernel checks the same after its hypercall returned 0 and powers off; a wrong
    // frame or return value reboots it, a fault crashes it.
    let w = console::wait_for(&xc, d, name, &["never printed"], Duration::from_secs(30));
    assert_eq!(
        w.outcome,
        Outcome::ShutDown(0),
        "{name}: expected a poweroff after the resume; Xen's console: {:#?}",
        console::xen_console_of(d, 30)
    );
    report(&format!(
        "{name}: suspended {:.2} s after unpause (store pfn {store_pfn:#x}, console pfn \
         {console_pfn:#x}); resume_slow {:.1} ms put back mfns {store_mfn:#x} and \
         {console_mfn:#x}; the guest powered off {:.2} s later",
        suspended_after.as_secs_f64(),
        resumed.elapsed.as_secs_f64() * 1e3,
        w.elapsed.as_secs_f64()
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

/// Runs everywhere: the PV kernel is a PV image at the test kernel's virtual base whose
/// segment covers the hypercall page and the page the shared info is mapped over.
#[test]
fn pv_suspending_kernel_is_a_pv_image() {
    let image = pv_suspending_kernel();
    let elf = xg_guest::kernel::KernelElf::parse(image.clone()).expect("an ELF image");
    let pv = xg_guest::pv::check::pv_kernel(&elf).expect("a PV kernel");
    assert_eq!(pv.virt_base, TEST_PV_VIRT_BASE);
    assert_eq!(pv.entry, TEST_PV_VIRT_BASE);
    assert_eq!(pv.hypercall_page, Some(TEST_PV_VIRT_BASE + 0x1000));
    assert!(
        TEST_PV_VIRT_BASE + PV_SHARED_INFO_PAGE + 0x1000 <= pv.kend,
        "{pv:?}"
    );
    if let Some(dump) = std::env::var_os("XG_DUMP_PV_RESUME_KERNEL") {
        std::fs::write(dump, &image).unwrap();
    }
}
