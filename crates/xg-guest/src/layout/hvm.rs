//! The HVM layout of XenServer's `hvm_build_setup_mem` (xenguest spec §4.4).

use xg_ctrl::{e820, E820Entry};

use super::{
    LayoutError, DEFAULT_MMIO_SIZE, FOUR_GIB, LOW_RAM_E820_START, MAX_RMRR_DEVICES, MIB,
    MXGPU_MIN_MMIO_SIZE, VRAM_RESERVED_ADDR_INIT, VRAM_RESERVED_SIZE,
};

/// One reserved device memory region (`xen_reserved_device_memory`), in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmrrEntry {
    /// First machine (= guest) frame of the region.
    pub start_pfn: u64,
    /// Pages in the region.
    pub nr_pages: u64,
}

/// What the HVM layout is computed from. The caller gathers the device facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HvmLayoutInput {
    /// `-mem_max_mib`: guest RAM.
    pub mem_max_mib: u64,
    /// `-mem_start_mib`: initial allocation (PoD target when smaller).
    pub mem_start_mib: u64,
    /// Sum of the BAR sizes of all passed-through devices (first 7 `resource` lines each).
    pub pci_bar_total: u64,
    /// A passed-through device is an AMD MxGPU (vendor 0x1002, device 0x692f).
    pub mxgpu: bool,
    /// An NVIDIA vGPU is attached (`-vgpu`).
    pub vgpu: bool,
    /// Reserved device memory per passed-through device, in `-pci_passthrough` order.
    /// Devices without regions may be present as empty lists.
    pub rmrr: Vec<Vec<RmrrEntry>>,
}

/// The layout xenguest hands to libxenguest and Xen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvmLayout {
    /// MMIO space the devices need, including the 256 MiB base.
    pub mmio_total: u64,
    /// Size of the MMIO hole below 4 GiB (written to `vm-data/mmio-hole-size`).
    pub mmio_size: u64,
    /// Start of the MMIO hole.
    pub mmio_start: u64,
    /// End of RAM below the hole (bytes).
    pub lowmem_end: u64,
    /// End of RAM above 4 GiB (bytes; 4 GiB when there is none).
    pub highmem_end: u64,
    /// RAM moved above 4 GiB because RMRR regions overlapped low RAM.
    pub rmrr_overlap: u64,
    /// `dom->total_pages` (`mem_max_mib << 8`).
    pub total_pages: u64,
    /// `dom->target_pages` (`mem_start_mib << 8`).
    pub target_pages: u64,
    /// The e820 in xenguest's push order (not sorted).
    pub e820: Vec<E820Entry>,
    /// Start of the vGPU VRAM reservation, when a vGPU is attached.
    pub vram_reserved_addr: Option<u64>,
}

impl HvmLayout {
    /// Whether the build is populate-on-demand (`target_pages < total_pages`).
    pub fn is_pod(&self) -> bool {
        self.target_pages < self.total_pages
    }
}

fn ram(addr: u64, size: u64) -> E820Entry {
    E820Entry {
        addr,
        size,
        kind: e820::RAM,
    }
}

fn reserved(addr: u64, size: u64) -> E820Entry {
    E820Entry {
        addr,
        size,
        kind: e820::RESERVED,
    }
}

/// The MMIO hole size: a power of two that fits `mmio_total`, at most 2 GiB, and at least
/// 2 GiB with an MxGPU. Returns `(mmio_total, mmio_size)`.
fn mmio_hole(input: &HvmLayoutInput) -> (u64, u64) {
    let mut total = DEFAULT_MMIO_SIZE.saturating_add(input.pci_bar_total);
    let mut size = DEFAULT_MMIO_SIZE;
    if input.vgpu {
        total = total.saturating_add(size);
        size <<= 1;
    }
    // The C loop stops when doubling would reach 4 GiB (a 32-bit wrap to 0).
    while size < total && !(size << 1).is_multiple_of(FOUR_GIB) {
        size <<= 1;
    }
    if input.mxgpu && size < MXGPU_MIN_MMIO_SIZE {
        size = MXGPU_MIN_MMIO_SIZE;
    }
    (total, size)
}

/// Computes the HVM layout exactly as `hvm_build_setup_mem` does.
pub fn hvm_layout(input: &HvmLayoutInput) -> Result<HvmLayout, LayoutError> {
    let devices: Vec<&Vec<RmrrEntry>> = input.rmrr.iter().filter(|d| !d.is_empty()).collect();
    if devices.len() >= MAX_RMRR_DEVICES {
        return Err(LayoutError::TooManyRmrrDevices {
            limit: MAX_RMRR_DEVICES,
        });
    }
    if input.mem_max_mib == 0 {
        return Err(LayoutError::ZeroMemory);
    }
    let too_large = LayoutError::TooLarge {
        mib: input.mem_max_mib,
    };
    let mem_bytes = input
        .mem_max_mib
        .checked_mul(MIB)
        .filter(|b| b.checked_add(FOUR_GIB).is_some())
        .ok_or(too_large.clone())?;
    let target_pages = input
        .mem_start_mib
        .checked_mul(256)
        .ok_or(LayoutError::TooLarge {
            mib: input.mem_start_mib,
        })?;

    let (mmio_total, mut mmio_size) = mmio_hole(input);
    let mut mmio_start = FOUR_GIB - mmio_size;
    let mut lowmem_end = mem_bytes;
    let mut highmem_end = FOUR_GIB;
    if lowmem_end > mmio_start {
        highmem_end = FOUR_GIB + (lowmem_end - mmio_start);
        lowmem_end = mmio_start;
    }

    // A 1 MiB guest has an empty low RAM entry; smaller cannot be asked for in MiB.
    let mut e820 = vec![ram(LOW_RAM_E820_START, lowmem_end - LOW_RAM_E820_START)];
    let limit = e820::MAX_ENTRIES - 2;
    let mut overlap = 0u64;
    for device in &devices {
        for entry in device.iter() {
            if e820.len() >= limit {
                break;
            }
            let addr = entry.start_pfn.checked_shl(12).unwrap_or(u64::MAX);
            let size = entry.nr_pages.checked_shl(12).unwrap_or(u64::MAX);
            e820.push(reserved(addr, size));
            if addr < lowmem_end {
                overlap += lowmem_end - addr;
                lowmem_end = addr;
            }
        }
    }
    if e820.len() == limit {
        return Err(LayoutError::TooManyE820Entries);
    }
    if lowmem_end < LOW_RAM_E820_START {
        return Err(LayoutError::RmrrBelowLowRam { addr: lowmem_end });
    }
    e820[0].size -= overlap;
    highmem_end = highmem_end.checked_add(overlap).ok_or(too_large)?;
    mmio_size += overlap;
    mmio_start -= overlap;
    if highmem_end > FOUR_GIB {
        e820.push(ram(FOUR_GIB, highmem_end - FOUR_GIB));
    }

    let vram_reserved_addr = if input.vgpu {
        let addr = vram_slot(&e820, mmio_start)?;
        e820.push(reserved(addr, VRAM_RESERVED_SIZE));
        Some(addr)
    } else {
        None
    };

    Ok(HvmLayout {
        mmio_total,
        mmio_size,
        mmio_start,
        lowmem_end,
        highmem_end,
        rmrr_overlap: overlap,
        total_pages: super::mib_to_pages(input.mem_max_mib),
        target_pages,
        e820,
        vram_reserved_addr,
    })
}

/// Searches downwards from [`VRAM_RESERVED_ADDR_INIT`] for a 16 MiB slot inside the MMIO
/// hole that no e820 entry touches.
fn vram_slot(map: &[E820Entry], mmio_start: u64) -> Result<u64, LayoutError> {
    let mut addr = VRAM_RESERVED_ADDR_INIT;
    while addr >= mmio_start {
        let clashes = map
            .iter()
            .any(|e| addr + VRAM_RESERVED_SIZE > e.addr && addr < e.addr.saturating_add(e.size));
        if !clashes {
            return Ok(addr);
        }
        addr = match addr.checked_sub(VRAM_RESERVED_SIZE) {
            Some(a) => a,
            None => break,
        };
    }
    Err(LayoutError::VramReservedRegion)
}
