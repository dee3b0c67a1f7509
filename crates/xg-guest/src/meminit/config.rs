//! The inputs of `meminit_hvm`: the fields of `struct xc_dom_image` it reads.

use crate::layout::{HvmLayout, PvhLayout, VmemRange};

/// What `meminit_hvm` is asked to do. Field names follow `struct xc_dom_image`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeminitConfig {
    /// `total_pages`: guest RAM in 4 KiB pages, including the VGA hole.
    pub total_pages: u64,
    /// `target_pages`: balloon target; smaller than `total_pages` means PoD.
    pub target_pages: u64,
    /// `lowmem_end` in bytes.
    pub lowmem_end: u64,
    /// `highmem_end` in bytes (at most 4 GiB means no high RAM).
    pub highmem_end: u64,
    /// `mmio_start` in bytes.
    pub mmio_start: u64,
    /// `mmio_size` in bytes.
    pub mmio_size: u64,
    /// `device_model`: an emulator owns the VGA hole (HVM); false for PVH.
    pub device_model: bool,
    /// `vga_hole_size` in pages, subtracted from claim and PoD target. libxl uses 0x20,
    /// XenServer's xenguest leaves it 0.
    pub vga_hole_size: u64,
    /// `claim_enabled`: claim the target before allocating.
    pub claim_enabled: bool,
    /// `vmemranges`; empty means the default ranges from `lowmem_end`/`highmem_end`.
    pub vmemranges: Vec<VmemRange>,
    /// `vnode_to_pnode`, indexed by a range's `nid`; `NUMA_NO_NODE` for unbound vnodes.
    pub vnode_to_pnode: Vec<u32>,
}

impl MeminitConfig {
    /// What XenServer's xenguest passes for an HVM guest: device model, no claim, no vNUMA,
    /// `vga_hole_size` 0.
    pub fn from_hvm_layout(layout: &HvmLayout) -> MeminitConfig {
        MeminitConfig {
            total_pages: layout.total_pages,
            target_pages: layout.target_pages,
            lowmem_end: layout.lowmem_end,
            highmem_end: layout.highmem_end,
            mmio_start: layout.mmio_start,
            mmio_size: layout.mmio_size,
            device_model: true,
            ..MeminitConfig::default()
        }
    }

    /// What xenguest passes for a PVH guest: no device model, no claim, no vNUMA.
    pub fn from_pvh_layout(layout: &PvhLayout) -> MeminitConfig {
        MeminitConfig {
            total_pages: layout.total_pages,
            target_pages: layout.target_pages,
            lowmem_end: layout.lowmem_end,
            highmem_end: layout.highmem_end,
            mmio_start: layout.mmio_start,
            mmio_size: layout.mmio_size,
            device_model: false,
            ..MeminitConfig::default()
        }
    }

    /// Whether the build is populate-on-demand (`total_pages > target_pages`).
    pub fn is_pod(&self) -> bool {
        self.total_pages > self.target_pages
    }
}
