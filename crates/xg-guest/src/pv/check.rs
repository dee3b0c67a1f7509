//! `elf_xen_parse(hvm = false)`: the Xen notes a PV kernel needs and its virtual layout.

use serde::Serialize;

use crate::kernel::elf::{KernelElf, EM_X86_64};
use crate::kernel::notes::XENFEAT_DOM0;
use crate::kernel::KernelError;

/// A kernel checked for a 64-bit PV guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvKernel {
    /// `virt_base`.
    pub virt_base: u64,
    /// `virt_base - elf_paddr_offset`: added to a physical ELF address.
    pub virt_offset: u64,
    /// First virtual address of the kernel.
    pub kstart: u64,
    /// End of the kernel.
    pub kend: u64,
    /// Entry point (`ENTRY` note, else `e_entry`).
    pub entry: u64,
    /// Hypercall page, when the kernel asks for one.
    pub hypercall_page: Option<u64>,
    /// `INIT_P2M` when usable (below `virt_base`, page-aligned); the p2m list then gets
    /// its own mapping.
    pub p2m_base: Option<u64>,
    /// `MOD_START_PFN`: the ramdisk is not mapped, given by pfn.
    pub unmapped_initrd: bool,
    /// `dom->guest_type`.
    pub guest_type: &'static str,
}

fn starts(s: &Option<String>, prefix: &str) -> bool {
    s.as_deref().is_some_and(|v| v.starts_with(prefix))
}

/// The PV checks of libelf and `xc_dom_parse_elf_kernel` for an x86_64 kernel.
pub fn pv_kernel(elf: &KernelElf) -> Result<PvKernel, KernelError> {
    let n = &elf.notes;
    if n.count == 0 {
        return Err(KernelError::NoXenNotes);
    }
    if elf.machine != EM_X86_64 {
        return Err(KernelError::BadMachine {
            machine: elf.machine,
        });
    }
    if !starts(&n.loader, "generic") && !starts(&n.guest_os, "linux") {
        return Err(KernelError::NotXenLoader);
    }
    if !starts(&n.xen_version, "xen-3.0") {
        return Err(KernelError::XenVersion {
            version: n.xen_version.clone().unwrap_or_default(),
        });
    }
    if n.paddr_offset.is_some() && n.virt_base.is_none() {
        return Err(KernelError::PaddrOffsetWithoutVirtBase);
    }
    let virt_base = n.virt_base.unwrap_or(0);
    // Notes present: the paddr offset defaults to 0.
    let paddr_offset = n.paddr_offset.unwrap_or(0);
    let virt_offset = virt_base.wrapping_sub(paddr_offset);
    let kstart = elf.pstart.wrapping_add(virt_offset);
    let kend = elf.pend.wrapping_add(virt_offset);
    let entry = n.entry.unwrap_or(elf.e_entry);
    if kstart > kend || entry < kstart || entry > kend || virt_base > kstart {
        return Err(KernelError::EntryOutOfBounds {
            kstart,
            kend,
            entry,
        });
    }
    if let Some(p) = n.init_p2m {
        if p >= kstart && p < kend {
            return Err(KernelError::P2mBaseInKernel { p2m_base: p });
        }
    }
    if n.features_required & (1 << XENFEAT_DOM0) != 0 {
        return Err(KernelError::Dom0Only);
    }
    if !kstart.is_multiple_of(4096) {
        return Err(KernelError::UnalignedStart { pstart: kstart });
    }
    if let Some(h) = n.hypercall_page {
        if h < kstart || h >= kend || !h.is_multiple_of(4096) {
            return Err(KernelError::EntryOutOfBounds {
                kstart,
                kend,
                entry: h,
            });
        }
    }
    // xc_dom_build_image ignores an INIT_P2M at or above virt_base or unaligned.
    let p2m_base = n
        .init_p2m
        .filter(|p| *p < virt_base && p.is_multiple_of(4096));
    Ok(PvKernel {
        virt_base,
        virt_offset,
        kstart,
        kend,
        entry,
        hypercall_page: n.hypercall_page,
        p2m_base,
        unmapped_initrd: n.mod_start_pfn,
        guest_type: "xen-3.0-x86_64",
    })
}
