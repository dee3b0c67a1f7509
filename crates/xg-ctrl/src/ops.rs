//! The operations the domain builder needs, as traits both backends implement.
//!
//! [`Hypervisor`] bundles them; the builder is generic over `impl Hypervisor`.
//! Methods take `&self`: the privcmd backend needs no mutation and the simulator keeps
//! its state behind a lock, so one handle can be shared by the stages of a build.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::{DomId, Gfn, MemFlags, Mfn, PageOrder};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17, which this build speaks.
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// Host facts from `XEN_SYSCTL_physinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysInfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Online CPUs.
    pub nr_cpus: u32,
    /// Highest CPU id.
    pub max_cpu_id: u32,
    /// Online NUMA nodes.
    pub nr_nodes: u32,
    /// Highest node id.
    pub max_node_id: u32,
    /// CPU frequency in kHz.
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*` bits.
    pub capabilities: u32,
    /// Total pages of host RAM.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages still to be scrubbed.
    pub scrub_pages: u64,
    /// Pages claimed by domains but not yet allocated.
    pub outstanding_pages: u64,
    /// Highest machine frame.
    pub max_mfn: u64,
}

impl PhysInfo {
    /// `xc_get_cpumap_size`: bytes of a CPU bitmap.
    pub fn cpumap_size(&self) -> usize {
        crate::types::conv::u64_to_usize((u64::from(self.max_cpu_id) + 1).div_ceil(8))
    }

    /// `xc_get_nodemap_size`: bytes of a node bitmap.
    pub fn nodemap_size(&self) -> usize {
        crate::types::conv::u64_to_usize((u64::from(self.max_node_id) + 1).div_ceil(8))
    }
}

/// Memory of one NUMA node from `XEN_SYSCTL_numainfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMemory {
    /// Node size in bytes.
    pub memsize: u64,
    /// Free bytes.
    pub memfree: u64,
}

/// NUMA topology from `XEN_SYSCTL_numainfo` and `cputopoinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaInfo {
    /// Memory per node.
    pub nodes: Vec<NodeMemory>,
    /// Distance matrix, `distance[i * nodes.len() + j]`.
    pub distance: Vec<u32>,
    /// Node of each CPU (`u32::MAX` for an offline CPU).
    pub cpu_to_node: Vec<u32>,
}

/// The version of the hypervisor (`XENVER_version` and `XENVER_capabilities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XenVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// `XENVER_extraversion`, e.g. `".7"`.
    pub extra: String,
    /// Space-separated guest types, e.g. `"xen-3.0-x86_64 hvm-3.0-x86_32 ..."`.
    pub capabilities: String,
}

/// What a new domain is (the subset of `xen_domctl_createdomain` a builder test needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainConfig {
    /// HVM container (HVM or PVH guest) rather than PV.
    pub hvm: bool,
    /// Hardware-assisted paging.
    pub hap: bool,
    /// Maximum vCPUs.
    pub max_vcpus: u32,
    /// Maximum event channel port.
    pub max_evtchn_port: u32,
    /// Maximum grant frames.
    pub max_grant_frames: u32,
    /// Maximum maptrack frames.
    pub max_maptrack_frames: u32,
    /// Domain handle (UUID bytes).
    pub handle: [u8; 16],
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            hvm: true,
            hap: true,
            max_vcpus: 1,
            max_evtchn_port: 1023,
            max_grant_frames: 64,
            max_maptrack_frames: 1024,
            handle: [0; 16],
        }
    }
}

/// `XEN_DOMINF_*` flags.
pub mod dominf {
    /// Domain is being destroyed.
    pub const DYING: u32 = 1 << 0;
    /// HVM container.
    pub const HVM_GUEST: u32 = 1 << 1;
    /// Shut down.
    pub const SHUTDOWN: u32 = 1 << 2;
    /// Paused.
    pub const PAUSED: u32 = 1 << 3;
    /// Hardware-assisted paging.
    pub const HAP: u32 = 1 << 8;
    /// Where the `SHUTDOWN_*` reason of a shut-down domain sits in the flags.
    pub const SHUTDOWN_SHIFT: u32 = 16;
    /// Its width.
    pub const SHUTDOWN_MASK: u32 = 0xFF;
}

/// `XEN_DOMCTL_getdomaininfo` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// The domain.
    pub domid: DomId,
    /// `XEN_DOMINF_*` flags (see [`dominf`]).
    pub flags: u32,
    /// Pages allocated to the domain.
    pub tot_pages: u64,
    /// `max_mem` in pages.
    pub max_pages: u64,
    /// Claimed and not yet allocated pages.
    pub outstanding_pages: u64,
    /// Frame of the shared info page.
    pub shared_info_frame: u64,
    /// vCPUs online.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id.
    pub max_vcpu_id: u32,
    /// CPU pool.
    pub cpupool: u32,
}

impl DomainInfo {
    /// HVM container?
    pub fn is_hvm(&self) -> bool {
        self.flags & dominf::HVM_GUEST != 0
    }

    /// Hardware-assisted paging?
    pub fn is_hap(&self) -> bool {
        self.flags & dominf::HAP != 0
    }

    /// The `SHUTDOWN_*` reason (0 poweroff, 1 reboot, 2 suspend, 3 crash, 4 watchdog,
    /// 5 soft reset) once the domain has shut down.
    pub fn shutdown_reason(&self) -> Option<u32> {
        (self.flags & dominf::SHUTDOWN != 0)
            .then_some((self.flags >> dominf::SHUTDOWN_SHIFT) & dominf::SHUTDOWN_MASK)
    }
}

/// Credit scheduler parameters (`xen_domctl_sched_credit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditParams {
    /// Relative weight (default 256).
    pub weight: u16,
    /// Cap in percent of one pCPU, 0 = uncapped.
    pub cap: u16,
}

/// One `e820entry` handed to `XENMEM_set_memory_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub kind: u32,
}

/// e820 types.
pub mod e820 {
    /// Usable RAM.
    pub const RAM: u32 = 1;
    /// Reserved.
    pub const RESERVED: u32 = 2;
    /// ACPI tables.
    pub const ACPI: u32 = 3;
    /// `E820MAX`.
    pub const MAX_ENTRIES: usize = 128;
}

/// A PCI device as Xen names it (`physdev_pci_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PciDev {
    /// Segment.
    pub seg: u16,
    /// Bus.
    pub bus: u8,
    /// Device and function, `(device << 3) | function`.
    pub devfn: u8,
}

impl std::fmt::Display for PciDev {
    /// `SSSS:BB:DD.F`, as sysfs and Xen print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.seg,
            self.bus,
            self.devfn >> 3,
            self.devfn & 7
        )
    }
}

/// One reserved device memory region (`xen_reserved_device_memory`): guest frames a
/// device may reach by DMA behind the guest's back (an ACPI RMRR), so the guest layout
/// must keep them out of RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedRegion {
    /// First frame.
    pub start_pfn: u64,
    /// Number of frames.
    pub nr_pages: u64,
}

/// `XENMEM_RDM_*` flags of `XENMEM_reserved_device_memory_map`.
pub mod rdm {
    /// `XENMEM_RDM_ALL`: every region of the host, whatever device is named.
    pub const ALL: u32 = 1;
}

/// One CPUID leaf of a policy (`xen_cpuid_leaf_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuidLeaf {
    /// Leaf.
    pub leaf: u32,
    /// Subleaf, `u32::MAX` when the leaf has none.
    pub subleaf: u32,
    /// EAX.
    pub a: u32,
    /// EBX.
    pub b: u32,
    /// ECX.
    pub c: u32,
    /// EDX.
    pub d: u32,
}

/// One MSR of a policy (`xen_msr_entry_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsrEntry {
    /// MSR index.
    pub idx: u32,
    /// Flags (0).
    pub flags: u32,
    /// Value.
    pub val: u64,
}

/// A CPU policy in its serialised form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuPolicy {
    /// CPUID leaves.
    pub leaves: Vec<CpuidLeaf>,
    /// MSRs.
    pub msrs: Vec<MsrEntry>,
}

/// Which system-wide CPU policy to read (`XEN_SYSCTL_cpu_policy_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemCpuPolicy {
    /// What the hardware offers.
    Raw = 0,
    /// What Xen uses.
    Host = 1,
    /// Maximum for PV guests.
    PvMax = 2,
    /// Maximum for HVM guests.
    HvmMax = 3,
    /// Default for PV guests.
    PvDefault = 4,
    /// Default for HVM guests.
    HvmDefault = 5,
}

/// Which vCPU affinity to set (`XEN_VCPUAFFINITY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityKind {
    /// Hard affinity: where the vCPU may run.
    Hard,
    /// Soft affinity: where it prefers to run.
    Soft,
}

/// Host and hypervisor queries.
pub trait HostOps {
    /// `xen_version`: version and capabilities.
    fn xen_version(&self) -> Result<XenVersion>;
    /// `XEN_SYSCTL_physinfo`.
    fn physinfo(&self) -> Result<PhysInfo>;
    /// `XEN_SYSCTL_numainfo` + `cputopoinfo`.
    fn numainfo(&self) -> Result<NumaInfo>;
    /// `XEN_SYSCTL_get_cpu_policy`.
    fn system_cpu_policy(&self, which: SystemCpuPolicy) -> Result<CpuPolicy>;
}

/// Domain control (domctl and hvm_op).
pub trait DomainOps {
    /// `XEN_DOMCTL_createdomain`; `domid` 0 lets Xen choose.
    fn create_domain(&self, domid: DomId, config: &DomainConfig) -> Result<DomId>;
    /// `XEN_DOMCTL_getdomaininfo` for exactly `domid` (ESRCH when it does not exist).
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo>;
    /// `XEN_DOMCTL_max_vcpus`.
    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<()>;
    /// `XEN_DOMCTL_max_mem`.
    fn set_max_mem(&self, domid: DomId, max_kib: u64) -> Result<()>;
    /// `XEN_DOMCTL_unpausedomain`.
    fn unpause(&self, domid: DomId) -> Result<()>;
    /// `XEN_DOMCTL_destroydomain`.
    fn destroy(&self, domid: DomId) -> Result<()>;
    /// `XEN_DOMCTL_resumedomain` (Xen's `domain_resume`): clears the shutdown state of a
    /// domain that shut down (typically `SHUTDOWN_suspend`) and lets the vCPUs the
    /// shutdown stopped run again; a pause by the toolstack stays. A domain that is not
    /// shut down is left as it is (success). EINVAL for the calling domain itself,
    /// ESRCH when the domain does not exist.
    fn resume_domain(&self, domid: DomId) -> Result<()>;
    /// `XEN_DOMCTL_setvcpuaffinity` with one map; returns the effective map.
    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpumap: &[u8],
    ) -> Result<Vec<u8>>;
    /// `XEN_DOMCTL_getvcpuaffinity`.
    fn vcpu_affinity(&self, domid: DomId, vcpu: u32, kind: AffinityKind) -> Result<Vec<u8>>;
    /// `XEN_DOMCTL_setnodeaffinity`.
    fn set_node_affinity(&self, domid: DomId, nodemap: &[u8]) -> Result<()>;
    /// `XEN_DOMCTL_getnodeaffinity`.
    fn node_affinity(&self, domid: DomId) -> Result<Vec<u8>>;
    /// Credit scheduler `getinfo`.
    fn sched_credit_get(&self, domid: DomId) -> Result<CreditParams>;
    /// Credit scheduler `putinfo`.
    fn sched_credit_set(&self, domid: DomId, params: CreditParams) -> Result<()>;
    /// `XEN_DOMCTL_settscinfo` (mode, elapsed 0, khz 0, incarnation 0 as xenguest does).
    fn set_tsc_info(&self, domid: DomId, tsc_mode: u32) -> Result<()>;
    /// `XEN_DOMCTL_settimeoffset` in seconds.
    fn set_time_offset(&self, domid: DomId, seconds: i32) -> Result<()>;
    /// `HVMOP_set_param`.
    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()>;
    /// `HVMOP_get_param`.
    fn hvm_param(&self, domid: DomId, param: u32) -> Result<u64>;
    /// `EVTCHNOP_alloc_unbound` (`xc_evtchn_alloc_unbound`): a new event channel of
    /// `domid` that `remote` may bind to; returns its port. The toolstack allocates the
    /// Xenstore and console channels this way before it runs the domain builder.
    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32>;
    /// `XEN_DOMCTL_get_cpu_policy`.
    fn domain_cpu_policy(&self, domid: DomId) -> Result<CpuPolicy>;
    /// `XEN_DOMCTL_set_cpu_policy`.
    fn set_domain_cpu_policy(&self, domid: DomId, policy: &CpuPolicy) -> Result<()>;
    /// `XEN_DOMCTL_gethvmcontext`: the whole HVM save blob (descriptors + records).
    fn hvm_context(&self, domid: DomId) -> Result<Vec<u8>>;
    /// `XEN_DOMCTL_sethvmcontext`.
    fn set_hvm_context(&self, domid: DomId, blob: &[u8]) -> Result<()>;
}

/// Memory operations (`__HYPERVISOR_memory_op`).
pub trait MemoryOps {
    /// `XENMEM_populate_physmap`: returns the number of extents done, which is short
    /// when Xen ran out (never an errno once Xen started). Each gfn is the first frame of
    /// an extent of `order`.
    fn populate_physmap(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<usize>;
    /// `xc_domain_populate_physmap_exact`: all extents or [`crate::Error::Partial`] (EBUSY).
    /// Traced as its own call, as libxenctrl's is.
    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<()>;
    /// `XENMEM_decrease_reservation`: returns extents released.
    fn decrease_reservation(&self, domid: DomId, order: PageOrder, gfns: &[Gfn]) -> Result<usize>;
    /// `XENMEM_claim_pages`; 0 releases the claim.
    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()>;
    /// `XENMEM_set_pod_target`.
    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> Result<()>;
    /// `XENMEM_set_memory_map`.
    fn set_memory_map(&self, domid: DomId, map: &[E820Entry]) -> Result<()>;

    /// `xc_reserved_device_memory_map`: one `XENMEM_reserved_device_memory_map` call
    /// with room for `max_entries` regions; `flags` is 0 (the regions of `dev`) or
    /// [`rdm::ALL`]. Returns the regions when they fit (none is success too). When Xen
    /// has more it fails with [`crate::Error::TooSmall`] (ENOBUFS) carrying the count
    /// it needs. Unknown flags: EINVAL.
    ///
    /// The default answers ENOSYS, as a Xen built without passthrough support does, so
    /// test doubles that never pass devices through need not implement it.
    fn reserved_device_memory_map(
        &self,
        flags: u32,
        dev: PciDev,
        max_entries: u32,
    ) -> Result<Vec<ReservedRegion>> {
        let _ = (flags, dev, max_entries);
        Err(crate::Error::hypercall(
            "memory_op reserved_device_memory_map",
            libc::ENOSYS,
        ))
    }

    /// The reserved regions of `dev` the way xenguest's `get_rdm` asks for them: a first
    /// call with no room, which succeeds when there are none and otherwise fails with
    /// ENOBUFS and the count, then a second call with room for that count. An error of
    /// either call is returned as it is.
    fn reserved_device_memory(&self, flags: u32, dev: PciDev) -> Result<Vec<ReservedRegion>> {
        match self.reserved_device_memory_map(flags, dev, 0) {
            Err(crate::Error::TooSmall { needed, .. }) => {
                self.reserved_device_memory_map(flags, dev, needed)
            }
            other => other,
        }
    }
}

/// Safe access to guest memory through foreign mappings. No slice over guest memory is
/// ever handed out: bytes are copied in and out.
pub trait GuestMemory {
    /// Copies `data` into the guest at physical address `paddr`.
    fn write_guest(&self, domid: DomId, paddr: u64, data: &[u8]) -> Result<()>;
    /// Copies guest memory at `paddr` into `buf`.
    fn read_guest(&self, domid: DomId, paddr: u64, buf: &mut [u8]) -> Result<()>;
    /// Zeroes whole guest frames.
    fn clear_guest_pages(&self, domid: DomId, gfns: &[Gfn]) -> Result<()>;
    /// Writes `data` at byte `offset` of the guest's first shared grant-table frame
    /// (mapped with `XENMEM_acquire_resource`, as `xc_dom_gnttab_seed` does).
    fn write_grant_table(&self, domid: DomId, offset: u64, data: &[u8]) -> Result<()>;
    /// Reads bytes of the first shared grant-table frame.
    fn read_grant_table(&self, domid: DomId, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// Everything a domain builder needs from a hypervisor.
pub trait Hypervisor: HostOps + DomainOps + MemoryOps + GuestMemory {}

impl<T: HostOps + DomainOps + MemoryOps + GuestMemory> Hypervisor for T {}

/// Page-table levels `MMUEXT_PIN_L*_TABLE` pins (x86: `MMUEXT_PIN_L1_TABLE` = 0 … L4 = 3).
pub mod pin {
    /// `MMUEXT_PIN_L4_TABLE`: the top level of a 64-bit PV guest.
    pub const L4_TABLE: u32 = 3;
}

/// What only PV guests need: the machine frames Xen gives them, access to frames by
/// machine number, the boot vCPU context, the hypercall page and pinned page tables.
///
/// A separate trait so backends and test wrappers of [`Hypervisor`] that never build PV
/// guests need not implement it.
pub trait PvOps {
    /// `XENMEM_populate_physmap` for a PV guest: Xen writes the first machine frame of
    /// each extent done back into the extent list; those are returned (fewer than
    /// `gfns` when Xen ran out).
    fn populate_physmap_mfns(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<Vec<Mfn>>;
    /// `XEN_DOMCTL_set_address_size` (64 for a 64-bit PV guest).
    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<()>;
    /// Copies `data` to byte `offset` of the machine frames `mfns` mapped one after the
    /// other (a foreign map by MFN, as PV guests are mapped; the shared info frame too).
    fn write_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, data: &[u8]) -> Result<()>;
    /// Copies bytes from the machine frames `mfns`, mapped one after the other.
    fn read_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, buf: &mut [u8]) -> Result<()>;
    /// `XEN_DOMCTL_setvcpucontext` with a `vcpu_guest_context` (x86_64 layout).
    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &[u8]) -> Result<()>;
    /// `XEN_DOMCTL_hypercall_init`: Xen fills the hypercall page at machine frame `mfn`.
    fn hypercall_init(&self, domid: DomId, mfn: Mfn) -> Result<()>;
    /// `__HYPERVISOR_mmuext_op` `MMUEXT_PIN_L*_TABLE` (`level` from [`pin`]) of the
    /// page table at `mfn`, for `domid` (the foreign domain).
    fn pin_table(&self, domid: DomId, level: u32, mfn: Mfn) -> Result<()>;
    /// `XEN_DOMCTL_get_address_size`: 64 or 32 (a compat guest) for a PV domain,
    /// EOPNOTSUPP for an HVM container (`xc_domain_get_guest_width` divides by 8).
    fn address_size(&self, domid: DomId) -> Result<u32>;
    /// `XENMEM_maximum_gpfn`: the highest guest frame. For a PV domain Xen answers
    /// from the `arch.max_pfn` the guest wrote in its shared info page, minus one (0
    /// while the guest has written nothing there); `xc_domain_nr_gpfns` adds one.
    fn maximum_gpfn(&self, domid: DomId) -> Result<u64>;
    /// `XEN_DOMCTL_getvcpucontext`: the `vcpu_guest_context` of `vcpu` (x86_64 layout,
    /// 5168 bytes; a 32-bit PV guest's compat layout at the start). EINVAL for a vCPU
    /// that does not exist, ENODATA for one that was never initialised.
    fn vcpu_context(&self, domid: DomId, vcpu: u32) -> Result<Vec<u8>>;
    /// `XEN_DOMCTL_setvcpucontext` with a NULL context (`xc_vcpu_setcontext(…, NULL)`):
    /// Xen's `vcpu_reset` takes `vcpu` down and uninitialised. EINVAL for a vCPU that
    /// does not exist or for the calling domain.
    fn reset_vcpu(&self, domid: DomId, vcpu: u32) -> Result<()>;
}

/// A hypervisor that can also build PV guests.
pub trait PvHypervisor: Hypervisor + PvOps {}

impl<T: Hypervisor + PvOps> PvHypervisor for T {}
