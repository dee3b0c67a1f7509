//! The PVH layout of XenServer's `pvh_setup_mem` and `pvh_setup_e820` (xenguest spec §5.1).

use xg_ctrl::{e820, E820Entry};

use super::{LayoutError, DEFAULT_MMIO_SIZE, FOUR_GIB, MIB};

/// One ACPI module handed to the guest (RSDP, info page, tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiModule {
    /// Guest physical address.
    pub guest_addr: u64,
    /// Length in bytes; empty modules get no e820 entry.
    pub length: u64,
}

/// The PVH layout: fixed 256 MiB MMIO hole, no device facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhLayout {
    /// Size of the MMIO hole (not written to Xenstore for PVH).
    pub mmio_size: u64,
    /// Start of the MMIO hole.
    pub mmio_start: u64,
    /// End of RAM below the hole (bytes).
    pub lowmem_end: u64,
    /// End of RAM above 4 GiB (bytes; 4 GiB when there is none).
    pub highmem_end: u64,
    /// `dom->total_pages`.
    pub total_pages: u64,
    /// `dom->target_pages`.
    pub target_pages: u64,
    /// The e820 in push order: low RAM from 0, the ACPI modules, high RAM.
    pub e820: Vec<E820Entry>,
}

/// Computes the PVH layout for `mem_max_mib`/`mem_start_mib` and the ACPI modules.
pub fn pvh_layout(
    mem_max_mib: u64,
    mem_start_mib: u64,
    acpi: &[AcpiModule],
) -> Result<PvhLayout, LayoutError> {
    if mem_max_mib == 0 {
        return Err(LayoutError::ZeroMemory);
    }
    let mem_bytes = mem_max_mib
        .checked_mul(MIB)
        .filter(|b| b.checked_add(FOUR_GIB).is_some())
        .ok_or(LayoutError::TooLarge { mib: mem_max_mib })?;
    let target_pages = mem_start_mib
        .checked_mul(256)
        .ok_or(LayoutError::TooLarge { mib: mem_start_mib })?;
    let mmio_size = DEFAULT_MMIO_SIZE;
    let mmio_start = FOUR_GIB - mmio_size;
    let (lowmem_end, highmem_end) = if mem_bytes > mmio_start {
        (mmio_start, FOUR_GIB + (mem_bytes - mmio_start))
    } else {
        (mem_bytes, FOUR_GIB)
    };

    let mut map = vec![E820Entry {
        addr: 0,
        size: lowmem_end,
        kind: e820::RAM,
    }];
    for module in acpi.iter().filter(|m| m.length != 0) {
        let offset = module.guest_addr & 0xFFF;
        map.push(E820Entry {
            addr: module.guest_addr & !0xFFF,
            size: module.length.saturating_add(offset),
            kind: e820::ACPI,
        });
    }
    if highmem_end > FOUR_GIB {
        map.push(E820Entry {
            addr: FOUR_GIB,
            size: highmem_end - FOUR_GIB,
            kind: e820::RAM,
        });
    }
    Ok(PvhLayout {
        mmio_size,
        mmio_start,
        lowmem_end,
        highmem_end,
        total_pages: super::mib_to_pages(mem_max_mib),
        target_pages,
        e820: map,
    })
}
