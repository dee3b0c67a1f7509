//! The boot vCPU of a 64-bit PV guest (`vcpu_x86_64` in `xg_dom_x86.c`): the
//! `vcpu_guest_context` bytes for `XEN_DOMCTL_setvcpucontext`.

use super::check::PvKernel;
use super::layout::PvLayout;

/// `sizeof(struct vcpu_guest_context)` on x86_64.
pub const CONTEXT_SIZE: usize = 5168;
/// Offset of `flags`.
pub const FLAGS: usize = 512;
/// Offset of `user_regs`.
pub const USER_REGS: usize = 520;
/// Offset of `kernel_ss`.
pub const KERNEL_SS: usize = 4968;
/// Offset of `kernel_sp`.
pub const KERNEL_SP: usize = 4976;
/// Offset of `ctrlreg`.
pub const CTRLREG: usize = 4984;
/// Offset of `debugreg`.
pub const DEBUGREG: usize = 5048;

/// Offsets inside `struct cpu_user_regs` (x86_64).
pub mod regs {
    /// `rsi`.
    pub const RSI: usize = 104;
    /// `rip`.
    pub const RIP: usize = 128;
    /// `cs`.
    pub const CS: usize = 136;
    /// `rflags`.
    pub const RFLAGS: usize = 144;
    /// `rsp`.
    pub const RSP: usize = 152;
    /// `ss`.
    pub const SS: usize = 160;
    /// `es`.
    pub const ES: usize = 168;
    /// `ds`.
    pub const DS: usize = 176;
    /// `fs`.
    pub const FS: usize = 184;
    /// `gs`.
    pub const GS: usize = 192;
}

/// `FLAT_KERNEL_CS` (x86_64): `FLAT_RING3_CS64`.
pub const FLAT_KERNEL_CS: u16 = 0xE033;
/// `FLAT_KERNEL_DS` / `FLAT_KERNEL_SS` (x86_64): `FLAT_RING3_DS64`.
pub const FLAT_KERNEL_DS: u16 = 0xE02B;
/// `VGCF_in_kernel | VGCF_online`.
pub const VGCF_IN_KERNEL_ONLINE: u64 = (1 << 2) | (1 << 5);
/// `X86_DR6_DEFAULT`.
pub const DR6_DEFAULT: u64 = 0xFFFF_0FF0;
/// `X86_DR7_DEFAULT`.
pub const DR7_DEFAULT: u64 = 0x400;

/// The boot context: `rip` = entry, `rsp` above the boot stack page, `rsi` = start
/// info (virtual), interrupts enabled, flat kernel segments, `cr3` = the machine frame
/// `l4_mfn` of the top-level page table.
pub fn boot_context(k: &PvKernel, l: &PvLayout, l4_mfn: u64) -> Vec<u8> {
    let mut b = vec![0u8; CONTEXT_SIZE];
    let put64 = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let put16 = |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let r = USER_REGS;
    let rsp = l.virt_base + ((l.bootstack_pfn + 1) << 12);
    put64(&mut b, r + regs::RIP, k.entry);
    put64(&mut b, r + regs::RSP, rsp);
    put64(
        &mut b,
        r + regs::RSI,
        l.virt_base + (l.start_info_pfn << 12),
    );
    put64(&mut b, r + regs::RFLAGS, 1 << 9);
    put64(&mut b, DEBUGREG + 6 * 8, DR6_DEFAULT);
    put64(&mut b, DEBUGREG + 7 * 8, DR7_DEFAULT);
    put64(&mut b, FLAGS, VGCF_IN_KERNEL_ONLINE);
    put64(&mut b, CTRLREG + 3 * 8, l4_mfn << 12);
    for seg in [regs::DS, regs::ES, regs::FS, regs::GS, regs::SS] {
        put16(&mut b, r + seg, FLAT_KERNEL_DS);
    }
    put16(&mut b, r + regs::CS, FLAT_KERNEL_CS);
    put64(&mut b, KERNEL_SS, u64::from(FLAT_KERNEL_DS));
    put64(&mut b, KERNEL_SP, rsp);
    b
}
