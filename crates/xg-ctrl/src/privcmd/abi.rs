//! Payload layouts of the Xen 4.17 hypercalls this backend issues (x86_64).
//!
//! Written from xen/include/public/{domctl,sysctl,memory,hvm/hvm_op}.h of Xen 4.17 with
//! C field names; every size is asserted at compile time and every offset is compared
//! with the installed headers by compiling a C program in the tests below. Guest handles
//! (`XEN_GUEST_HANDLE_64`) are plain `u64` user addresses here.

use std::mem::size_of;

use super::buffer::Pod;

/// Fixed part of `struct xen_domctl` before the union.
pub(crate) const DOMCTL_HEADER: usize = 16;
/// Size of the `u` union of `struct xen_domctl`.
pub(crate) const DOMCTL_PAYLOAD: usize = 128;
/// Fixed part of `struct xen_sysctl` before the union.
pub(crate) const SYSCTL_HEADER: usize = 8;
/// Size of the `u` union of `struct xen_sysctl`.
pub(crate) const SYSCTL_PAYLOAD: usize = 128;

/// `struct xen_domctl`, with the union kept as bytes.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XenDomctl {
    pub(crate) cmd: u32,
    pub(crate) interface_version: u32,
    pub(crate) domain: u16,
    pub(crate) _pad: [u8; 6],
    pub(crate) u: [u8; DOMCTL_PAYLOAD],
}

/// `struct xen_sysctl`, with the union kept as bytes.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XenSysctl {
    pub(crate) cmd: u32,
    pub(crate) interface_version: u32,
    pub(crate) u: [u8; SYSCTL_PAYLOAD],
}

/// `struct xen_domctl_createdomain` (4.17 layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CreateDomain {
    pub(crate) ssidref: u32,
    pub(crate) handle: [u8; 16],
    pub(crate) flags: u32,
    pub(crate) iommu_opts: u32,
    pub(crate) max_vcpus: u32,
    pub(crate) max_evtchn_port: u32,
    pub(crate) max_grant_frames: i32,
    pub(crate) max_maptrack_frames: i32,
    pub(crate) grant_opts: u32,
    pub(crate) vmtrace_size: u32,
    pub(crate) cpupool_id: u32,
    /// `xen_arch_domainconfig.emulation_flags`.
    pub(crate) emulation_flags: u32,
    /// `xen_arch_domainconfig.misc_flags`.
    pub(crate) misc_flags: u32,
}

/// `struct xen_domctl_getdomaininfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GetDomainInfo {
    pub(crate) domain: u16,
    pub(crate) _pad: u16,
    pub(crate) flags: u32,
    pub(crate) tot_pages: u64,
    pub(crate) max_pages: u64,
    pub(crate) outstanding_pages: u64,
    pub(crate) shr_pages: u64,
    pub(crate) paged_pages: u64,
    pub(crate) shared_info_frame: u64,
    pub(crate) cpu_time: u64,
    pub(crate) nr_online_vcpus: u32,
    pub(crate) max_vcpu_id: u32,
    pub(crate) ssidref: u32,
    pub(crate) handle: [u8; 16],
    pub(crate) cpupool: u32,
    pub(crate) gpaddr_bits: u8,
    pub(crate) _pad2: [u8; 7],
    pub(crate) emulation_flags: u32,
    pub(crate) misc_flags: u32,
}

/// `struct xen_domctl_max_mem`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MaxMem {
    pub(crate) max_memkb: u64,
}

/// `struct xen_domctl_max_vcpus`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MaxVcpus {
    pub(crate) max: u32,
}

/// `struct xenctl_bitmap`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct XenctlBitmap {
    pub(crate) bitmap: u64,
    pub(crate) nr_bits: u32,
    pub(crate) _pad: u32,
}

/// `struct xen_domctl_vcpuaffinity`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct VcpuAffinity {
    pub(crate) vcpu: u32,
    pub(crate) flags: u32,
    pub(crate) cpumap_hard: XenctlBitmap,
    pub(crate) cpumap_soft: XenctlBitmap,
}

/// `struct xen_domctl_nodeaffinity`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeAffinity {
    pub(crate) nodemap: XenctlBitmap,
}

/// `struct xen_domctl_scheduler_op` with the credit member of the union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedulerOp {
    pub(crate) sched_id: u32,
    pub(crate) cmd: u32,
    /// `u.credit.weight`.
    pub(crate) weight: u16,
    /// `u.credit.cap`.
    pub(crate) cap: u16,
    pub(crate) _rest: [u8; 12],
}

/// `struct xen_domctl_cpu_policy`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DomctlCpuPolicy {
    pub(crate) nr_leaves: u32,
    pub(crate) nr_msrs: u32,
    pub(crate) leaves: u64,
    pub(crate) msrs: u64,
    pub(crate) err_leaf: u32,
    pub(crate) err_subleaf: u32,
    pub(crate) err_msr: u32,
    pub(crate) _pad: u32,
}

/// `struct xen_domctl_tsc_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TscInfo {
    pub(crate) tsc_mode: u32,
    pub(crate) gtsc_khz: u32,
    pub(crate) incarnation: u32,
    pub(crate) pad: u32,
    pub(crate) elapsed_nsec: u64,
}

/// `struct xen_domctl_settimeoffset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SetTimeOffset {
    pub(crate) time_offset_seconds: i64,
}

/// `struct xen_domctl_hvmcontext`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HvmContext {
    pub(crate) size: u32,
    pub(crate) _pad: u32,
    pub(crate) buffer: u64,
}

/// `xen_cpuid_leaf_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuidLeaf {
    pub(crate) leaf: u32,
    pub(crate) subleaf: u32,
    pub(crate) a: u32,
    pub(crate) b: u32,
    pub(crate) c: u32,
    pub(crate) d: u32,
}

/// `xen_msr_entry_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MsrEntry {
    pub(crate) idx: u32,
    pub(crate) flags: u32,
    pub(crate) val: u64,
}

/// `struct xen_sysctl_physinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Physinfo {
    pub(crate) threads_per_core: u32,
    pub(crate) cores_per_socket: u32,
    pub(crate) nr_cpus: u32,
    pub(crate) max_cpu_id: u32,
    pub(crate) nr_nodes: u32,
    pub(crate) max_node_id: u32,
    pub(crate) cpu_khz: u32,
    pub(crate) capabilities: u32,
    pub(crate) arch_capabilities: u32,
    pub(crate) pad: u32,
    pub(crate) total_pages: u64,
    pub(crate) free_pages: u64,
    pub(crate) scrub_pages: u64,
    pub(crate) outstanding_pages: u64,
    pub(crate) max_mfn: u64,
    pub(crate) hw_cap: [u32; 8],
}

/// `struct xen_sysctl_cputopoinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTopoInfo {
    pub(crate) num_cpus: u32,
    pub(crate) _pad: u32,
    pub(crate) cputopo: u64,
}

/// `struct xen_sysctl_cputopo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTopo {
    pub(crate) core: u32,
    pub(crate) socket: u32,
    pub(crate) node: u32,
}

/// `struct xen_sysctl_numainfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NumaInfo {
    pub(crate) num_nodes: u32,
    pub(crate) _pad: u32,
    pub(crate) meminfo: u64,
    pub(crate) distance: u64,
}

/// `struct xen_sysctl_meminfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemInfo {
    pub(crate) memsize: u64,
    pub(crate) memfree: u64,
}

/// `struct xen_sysctl_cpu_policy`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SysctlCpuPolicy {
    pub(crate) index: u32,
    pub(crate) nr_leaves: u32,
    pub(crate) nr_msrs: u32,
    pub(crate) _rsvd: u32,
    pub(crate) leaves: u64,
    pub(crate) msrs: u64,
}

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemoryReservation {
    pub(crate) extent_start: u64,
    pub(crate) nr_extents: u64,
    pub(crate) extent_order: u32,
    pub(crate) mem_flags: u32,
    pub(crate) domid: u16,
    pub(crate) _pad: [u8; 6],
}

/// `struct xen_pod_target`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PodTarget {
    pub(crate) target_pages: u64,
    pub(crate) tot_pages: u64,
    pub(crate) pod_cache_pages: u64,
    pub(crate) pod_entries: u64,
    pub(crate) domid: u16,
    pub(crate) _pad: [u8; 6],
}

/// `struct xen_foreign_memory_map`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ForeignMemoryMap {
    pub(crate) domid: u16,
    pub(crate) _pad: [u8; 6],
    /// `map.nr_entries`.
    pub(crate) nr_entries: u32,
    pub(crate) _pad2: u32,
    /// `map.buffer`.
    pub(crate) buffer: u64,
}

/// `struct e820entry` of tools/include/xenctrl.h (packed, 20 bytes).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct E820Entry {
    pub(crate) addr: u64,
    pub(crate) size: u64,
    pub(crate) kind: u32,
}

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HvmParam {
    pub(crate) domid: u16,
    pub(crate) _pad: u16,
    pub(crate) index: u32,
    pub(crate) value: u64,
}

const _: () = assert!(std::mem::offset_of!(XenDomctl, u) == DOMCTL_HEADER);
const _: () = assert!(std::mem::offset_of!(XenSysctl, u) == SYSCTL_HEADER);

macro_rules! pod_sized {
    ($($ty:ty = $size:expr),* $(,)?) => {$(
        const _: () = assert!(size_of::<$ty>() == $size);
        // SAFETY: repr(C) structs of integers and integer arrays with explicit padding
        // fields; every bit pattern is valid.
        unsafe impl Pod for $ty {}
    )*};
}

pod_sized! {
    XenDomctl = 144,
    XenSysctl = 136,
    CreateDomain = 64,
    GetDomainInfo = 112,
    MaxMem = 8,
    MaxVcpus = 4,
    XenctlBitmap = 16,
    VcpuAffinity = 40,
    NodeAffinity = 16,
    SchedulerOp = 24,
    DomctlCpuPolicy = 40,
    TscInfo = 24,
    SetTimeOffset = 8,
    HvmContext = 16,
    CpuidLeaf = 24,
    MsrEntry = 16,
    Physinfo = 112,
    CpuTopoInfo = 16,
    CpuTopo = 12,
    NumaInfo = 24,
    MemInfo = 16,
    SysctlCpuPolicy = 32,
    MemoryReservation = 32,
    PodTarget = 40,
    ForeignMemoryMap = 24,
    E820Entry = 20,
    HvmParam = 16,
}
