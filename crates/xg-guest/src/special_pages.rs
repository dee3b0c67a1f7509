//! Special pages below the end of the special region (`alloc_magic_pages_hvm` in
//! `xg_dom_x86.c`): xenstore, console, ioreq, paging/access/sharing rings, the identity
//! page table, and the ioreq-server pages of a guest with a device model.

use xg_ctrl::{DomId, Gfn, Hypervisor, MemFlags, PageOrder, PAGE_SHIFT};

use crate::error::SetupError;

/// HVM parameter numbers (`xen/include/public/hvm/params.h`).
pub mod param {
    /// `HVM_PARAM_STORE_PFN`.
    pub const STORE_PFN: u32 = 1;
    /// `HVM_PARAM_STORE_EVTCHN`.
    pub const STORE_EVTCHN: u32 = 2;
    /// `HVM_PARAM_IOREQ_PFN`.
    pub const IOREQ_PFN: u32 = 5;
    /// `HVM_PARAM_BUFIOREQ_PFN`.
    pub const BUFIOREQ_PFN: u32 = 6;
    /// `HVM_PARAM_IDENT_PT`.
    pub const IDENT_PT: u32 = 12;
    /// `HVM_PARAM_CONSOLE_PFN`.
    pub const CONSOLE_PFN: u32 = 17;
    /// `HVM_PARAM_CONSOLE_EVTCHN`.
    pub const CONSOLE_EVTCHN: u32 = 18;
    /// `HVM_PARAM_PAGING_RING_PFN`.
    pub const PAGING_RING_PFN: u32 = 27;
    /// `HVM_PARAM_MONITOR_RING_PFN`.
    pub const MONITOR_RING_PFN: u32 = 28;
    /// `HVM_PARAM_SHARING_RING_PFN`.
    pub const SHARING_RING_PFN: u32 = 29;
    /// `HVM_PARAM_IOREQ_SERVER_PFN`.
    pub const IOREQ_SERVER_PFN: u32 = 32;
    /// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`.
    pub const NR_IOREQ_SERVER_PAGES: u32 = 33;
}

/// `X86_HVM_END_SPECIAL_REGION` (tools/include/xenguest.h).
pub const END_SPECIAL_REGION: u64 = 0xFF000;
/// `X86_HVM_NR_SPECIAL_PAGES`.
pub const NR_SPECIAL_PAGES: u64 = 8;
/// `NR_IOREQ_SERVER_PAGES`.
pub const NR_IOREQ_SERVER_PAGES: u64 = 8;

/// `SPECIALPAGE_PAGING`.
pub const SPECIALPAGE_PAGING: u64 = 0;
/// `SPECIALPAGE_ACCESS`.
pub const SPECIALPAGE_ACCESS: u64 = 1;
/// `SPECIALPAGE_SHARING`.
pub const SPECIALPAGE_SHARING: u64 = 2;
/// `SPECIALPAGE_BUFIOREQ`.
pub const SPECIALPAGE_BUFIOREQ: u64 = 3;
/// `SPECIALPAGE_XENSTORE`.
pub const SPECIALPAGE_XENSTORE: u64 = 4;
/// `SPECIALPAGE_IOREQ`.
pub const SPECIALPAGE_IOREQ: u64 = 5;
/// `SPECIALPAGE_IDENT_PT`.
pub const SPECIALPAGE_IDENT_PT: u64 = 6;
/// `SPECIALPAGE_CONSOLE`.
pub const SPECIALPAGE_CONSOLE: u64 = 7;

/// `special_pfn(x)`: 0xfeff8 + x.
pub const fn special_pfn(x: u64) -> u64 {
    END_SPECIAL_REGION - NR_SPECIAL_PAGES + x
}

/// `ioreq_server_pfn(x)`: 0xfeff0 + x.
pub const fn ioreq_server_pfn(x: u64) -> u64 {
    special_pfn(0) - NR_IOREQ_SERVER_PAGES + x
}

/// The xenstore ring frame (1044476).
pub const XENSTORE_PFN: u64 = special_pfn(SPECIALPAGE_XENSTORE);
/// The console ring frame (1044479).
pub const CONSOLE_PFN: u64 = special_pfn(SPECIALPAGE_CONSOLE);
/// The identity page table frame.
pub const IDENT_PT_PFN: u64 = special_pfn(SPECIALPAGE_IDENT_PT);

/// The special-page HVM params in the order libxenguest sets them, with their values.
pub const fn special_page_params() -> [(u32, u64); 7] {
    [
        (param::STORE_PFN, special_pfn(SPECIALPAGE_XENSTORE)),
        (param::BUFIOREQ_PFN, special_pfn(SPECIALPAGE_BUFIOREQ)),
        (param::IOREQ_PFN, special_pfn(SPECIALPAGE_IOREQ)),
        (param::CONSOLE_PFN, special_pfn(SPECIALPAGE_CONSOLE)),
        (param::PAGING_RING_PFN, special_pfn(SPECIALPAGE_PAGING)),
        (param::MONITOR_RING_PFN, special_pfn(SPECIALPAGE_ACCESS)),
        (param::SHARING_RING_PFN, special_pfn(SPECIALPAGE_SHARING)),
    ]
}

/// The ioreq-server params (device model only), in order.
pub const fn ioreq_server_params() -> [(u32, u64); 2] {
    [
        (param::IOREQ_SERVER_PFN, ioreq_server_pfn(0)),
        (param::NR_IOREQ_SERVER_PAGES, NR_IOREQ_SERVER_PAGES),
    ]
}

/// `HVM_PARAM_IDENT_PT`'s value: a byte address.
pub const IDENT_PT_PARAM: u64 = IDENT_PT_PFN << PAGE_SHIFT;

/// The identity page table: a 32-bit non-PAE page directory of 1024 4 MiB superpages,
/// each `(i << 22) | PRESENT|RW|USER|ACCESSED|DIRTY|PSE`.
pub fn identity_page_table() -> Vec<u8> {
    const FLAGS: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40 | 0x80;
    (0u32..1024)
        .flat_map(|i| ((i << 22) | FLAGS).to_le_bytes())
        .collect()
}

/// The special pages as placed (`dom->console_pfn`, `dom->xenstore_pfn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialPages {
    /// Console ring frame.
    pub console_pfn: u64,
    /// Xenstore ring frame.
    pub xenstore_pfn: u64,
}

fn gfns(first: u64, n: u64) -> Vec<Gfn> {
    (first..first + n).map(Gfn).collect()
}

/// Populates and clears the special pages and sets their params (first half of
/// `alloc_magic_pages_hvm`). Param errors are ignored, as libxenguest ignores them.
pub fn populate_special_pages<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    device_model: bool,
) -> Result<(), SetupError> {
    let special = gfns(special_pfn(0), NR_SPECIAL_PAGES);
    hv.populate_physmap_exact(domid, PageOrder::ORDER_4K, MemFlags::NONE, &special)
        .map_err(|source| SetupError::Hypervisor {
            step: "Allocating special pages",
            source,
        })?;
    hv.clear_guest_pages(domid, &special)
        .map_err(|source| SetupError::Hypervisor {
            step: "Clearing special pages",
            source,
        })?;
    for (p, v) in special_page_params() {
        set_param_ignoring_errors(hv, domid, p, v);
    }
    if device_model {
        let ioreq = gfns(ioreq_server_pfn(0), NR_IOREQ_SERVER_PAGES);
        hv.populate_physmap_exact(domid, PageOrder::ORDER_4K, MemFlags::NONE, &ioreq)
            .map_err(|source| SetupError::Hypervisor {
                step: "Allocating ioreq server pages",
                source,
            })?;
        hv.clear_guest_pages(domid, &ioreq)
            .map_err(|source| SetupError::Hypervisor {
                step: "Clearing ioreq server pages",
                source,
            })?;
        for (p, v) in ioreq_server_params() {
            set_param_ignoring_errors(hv, domid, p, v);
        }
    }
    Ok(())
}

/// Writes the identity page table, sets `HVM_PARAM_IDENT_PT`, and clears the console and
/// xenstore pages again (second half of `alloc_magic_pages_hvm`, after the start-info
/// segment is placed).
pub fn finish_special_pages<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
) -> Result<SpecialPages, SetupError> {
    hv.write_guest(domid, IDENT_PT_PFN << PAGE_SHIFT, &identity_page_table())
        .map_err(|source| SetupError::Hypervisor {
            step: "Writing the identity page table",
            source,
        })?;
    set_param_ignoring_errors(hv, domid, param::IDENT_PT, IDENT_PT_PARAM);
    // libxenguest ignores these two results as well.
    for pfn in [CONSOLE_PFN, XENSTORE_PFN] {
        if let Err(e) = hv.clear_guest_pages(domid, &[Gfn(pfn)]) {
            log::warn!("clearing special page {pfn:#x} failed: {e}");
        }
    }
    Ok(SpecialPages {
        console_pfn: CONSOLE_PFN,
        xenstore_pfn: XENSTORE_PFN,
    })
}

pub(crate) fn set_param_ignoring_errors<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    param: u32,
    value: u64,
) {
    if let Err(e) = hv.set_hvm_param(domid, param, value) {
        log::warn!("setting HVM param {param} to {value:#x} failed (ignored): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_numbers() {
        assert_eq!(special_pfn(0), 0xfeff8);
        assert_eq!(XENSTORE_PFN, 1_044_476);
        assert_eq!(CONSOLE_PFN, 1_044_479);
        assert_eq!(ioreq_server_pfn(0), 0xfeff0);
        assert_eq!(IDENT_PT_PARAM, 0xfeffe000);
    }

    #[test]
    fn identity_table_entries() {
        let pt = identity_page_table();
        assert_eq!(pt.len(), 4096);
        let pde = |i: usize| u32::from_le_bytes(pt[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(pde(0), 0xE7);
        assert_eq!(pde(1), 0x0040_00E7);
        assert_eq!(pde(1023), 0xFFC0_00E7);
    }
}
