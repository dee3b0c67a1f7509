//! Read-only views of the simulator for tests, dry runs and teaching output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ops::{CpuPolicy, CreditParams, E820Entry};

/// Extents of one order on one node in a domain's p2m.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtentCount {
    /// Extent order.
    pub order: u8,
    /// Physical node (`None` for PoD entries).
    pub node: Option<u32>,
    /// Number of extents.
    pub count: u64,
}

/// What a range of guest frames is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeKind {
    /// Backed by RAM.
    Ram,
    /// Populate-on-demand.
    Pod,
}

/// A maximal range of guest frames of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GfnRange {
    /// First gfn.
    pub start: u64,
    /// Frames.
    pub pages: u64,
    /// Kind.
    pub kind: RangeKind,
}

/// The state of a domain after (or during) a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSnapshot {
    /// The domain.
    pub domid: u16,
    /// HVM container?
    pub hvm: bool,
    /// Hardware-assisted paging?
    pub hap: bool,
    /// Paused?
    pub paused: bool,
    /// vCPUs.
    pub max_vcpus: u32,
    /// Pages charged (RAM in the p2m plus the PoD cache).
    pub tot_pages: u64,
    /// `max_mem` in pages.
    pub max_pages: u64,
    /// Claimed, not yet allocated.
    pub outstanding_pages: u64,
    /// Guest frames backed by RAM.
    pub ram_pages: u64,
    /// Outstanding PoD entries.
    pub pod_entries: u64,
    /// Pages in the PoD cache.
    pub pod_cache_pages: u64,
    /// Last PoD target.
    pub pod_target: Option<u64>,
    /// RAM extents by order and node, PoD extents with `node: None`.
    pub extents: Vec<ExtentCount>,
    /// Populated guest frames as maximal ranges.
    pub populated: Vec<GfnRange>,
    /// Extents populated at gfns not aligned to their order.
    pub misaligned_extents: u64,
    /// `XENMEM_set_memory_map`, if set.
    pub memory_map: Option<Vec<E820Entry>>,
    /// HVM params (set ones and Xen's defaults).
    pub hvm_params: BTreeMap<u32, u64>,
    /// Hard affinity per vCPU as CPU lists.
    pub vcpu_hard_affinity: Vec<Vec<u32>>,
    /// Soft affinity per vCPU as CPU lists.
    pub vcpu_soft_affinity: Vec<Vec<u32>>,
    /// Node affinity as a node list.
    pub node_affinity: Vec<u32>,
    /// Node affinity follows vCPU affinity.
    pub node_affinity_auto: bool,
    /// Node of the last allocation.
    pub last_alloc_node: u32,
    /// Credit scheduler parameters.
    pub sched: CreditParams,
    /// TSC mode.
    pub tsc_mode: u32,
    /// Time offset in seconds.
    pub time_offset: i32,
    /// CPU policy.
    pub cpu_policy: CpuPolicy,
    /// HVM save records as `(typecode, instance, length)`.
    pub hvm_records: Vec<(u16, u16, usize)>,
    /// Guest frames with written contents.
    pub written_frames: u64,
}

/// One node of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Node RAM in pages.
    pub memory_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Free chunks per order 0..=18.
    pub free_chunks: Vec<usize>,
    /// CPUs.
    pub cpus: Vec<u32>,
}

/// The host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnapshot {
    /// RAM pages.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages used at start by Xen, dom0 and fragmentation holes.
    pub host_used_pages: u64,
    /// Sum of all claims.
    pub outstanding_claims: u64,
    /// Nodes.
    pub nodes: Vec<NodeSnapshot>,
    /// Existing domains (dom0 included).
    pub domains: Vec<u16>,
}
