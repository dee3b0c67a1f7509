//! Guest physical memory layout: where RAM, the MMIO hole and reserved regions go.
//!
//! Pure arithmetic, no hypercalls. The caller (xg-build) reads sysfs and the hypervisor and
//! hands over plain numbers; these functions reproduce XenServer's `hvm_build_setup_mem`
//! and `pvh_setup_mem`/`pvh_setup_e820`, and the vNUMA range builder of libxl.

mod error;
mod hvm;
mod pvh;
mod vnuma;

pub use error::LayoutError;
pub use hvm::{hvm_layout, HvmLayout, HvmLayoutInput, RmrrEntry};
pub use pvh::{pvh_layout, AcpiModule, PvhLayout};
pub use vnuma::{
    default_vmemranges, even_vnode_split_mib, vnuma_vmemranges, VmemRange, NUMA_NO_NODE,
};

/// 4 GiB: where high RAM starts.
pub const FOUR_GIB: u64 = 1 << 32;
/// 1 MiB in bytes.
pub const MIB: u64 = 1 << 20;
/// `HVM_BELOW_4G_MMIO_LENGTH`: the default MMIO hole below 4 GiB (256 MiB).
pub const DEFAULT_MMIO_SIZE: u64 = 0x1000_0000;
/// Low RAM in the e820 starts at 1 MiB; hvmloader owns what is below.
pub const LOW_RAM_E820_START: u64 = 0x10_0000;
/// `VRAM_RESERVED_ADDR_INIT`: highest candidate for the vGPU VRAM reservation.
pub const VRAM_RESERVED_ADDR_INIT: u64 = 0xFB00_0000;
/// `VRAM_RESERVED_SIZE`: 16 MiB reserved for vGPU VRAM.
pub const VRAM_RESERVED_SIZE: u64 = 0x0100_0000;
/// Smallest MMIO hole when an AMD MxGPU (S7150x2) is passed through.
pub const MXGPU_MIN_MMIO_SIZE: u64 = 0x8000_0000;
/// `MAX_RMRR_DEVICES`: the number of devices with reserved memory that stops the build.
pub const MAX_RMRR_DEVICES: usize = 128;

/// `mem_mib` MiB in 4 KiB pages (`xc_dom_mem_init`: `mem_mib << 8`).
pub const fn mib_to_pages(mib: u64) -> u64 {
    mib << 8
}
