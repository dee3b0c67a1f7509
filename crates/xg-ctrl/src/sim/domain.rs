//! One simulated domain: accounting, p2m, PoD, guest memory contents and the settings a
//! builder makes.

use std::collections::BTreeMap;

use crate::ops::{CpuPolicy, CreditParams, DomainConfig, E820Entry};
use crate::types::PAGE_SIZE;

use super::p2m::P2m;

/// Bytes of one frame.
pub const FRAME: usize = crate::types::conv::u64_to_usize(PAGE_SIZE);

/// A simulated domain.
#[derive(Debug, Clone)]
pub struct Domain {
    /// How it was created.
    pub config: DomainConfig,
    /// vCPUs.
    pub max_vcpus: u32,
    /// Pages charged to it (p2m RAM plus the PoD cache).
    pub tot_pages: u64,
    /// `max_mem` in pages.
    pub max_pages: u64,
    /// Claimed pages not yet allocated.
    pub outstanding_pages: u64,
    /// Paused?
    pub paused: bool,
    /// The control domain (not built, not destroyable).
    pub is_dom0: bool,
    /// Node affinity mask.
    pub node_affinity: u64,
    /// Node affinity follows vCPU affinity.
    pub node_affinity_auto: bool,
    /// Last node an allocation came from.
    pub last_alloc_node: u32,
    /// Hard affinity per vCPU, one bool per CPU.
    pub hard: Vec<Vec<bool>>,
    /// Soft affinity per vCPU.
    pub soft: Vec<Vec<bool>>,
    /// Credit scheduler parameters.
    pub sched: CreditParams,
    /// TSC mode.
    pub tsc_mode: u32,
    /// Time offset in seconds.
    pub time_offset: i32,
    /// HVM params that were set (or defaulted).
    pub hvm_params: BTreeMap<u32, u64>,
    /// CPU policy.
    pub cpu_policy: CpuPolicy,
    /// HVM save records by (typecode, instance), END excluded.
    pub hvm_records: BTreeMap<(u16, u16), Vec<u8>>,
    /// `XENMEM_set_memory_map`.
    pub memory_map: Option<Vec<E820Entry>>,
    /// Guest physical memory map.
    pub p2m: P2m,
    /// PoD cache chunks `(node, mfn, order)`.
    pub pod_cache: Vec<(u32, u64, u8)>,
    /// Pages in the PoD cache.
    pub pod_cache_pages: u64,
    /// Last PoD target set.
    pub pod_target: Option<u64>,
    /// Contents of frames written so far (only those).
    pub frames: BTreeMap<u64, Box<[u8; FRAME]>>,
    /// First grant-table frame.
    pub grant_frame: Box<[u8; FRAME]>,
    /// Extents populated at gfns not aligned to their order.
    pub misaligned_extents: u64,
    /// PV state (machine-frame index, shared info, vCPU contexts, pins).
    pub pv: PvState,
    /// Unbound event channels: port → the domain allowed to bind it.
    pub unbound_evtchns: BTreeMap<u32, u16>,
    /// The `SHUTDOWN_*` code once the domain has shut down (its vCPUs stopped until a
    /// resume or destroy); `None` while it runs.
    pub shutdown_code: Option<u8>,
}

/// What a PV build leaves in a domain besides its memory.
#[derive(Debug, Clone)]
pub struct PvState {
    /// Extents by first machine frame: `(first gfn, order)`. Entries may be stale after a
    /// decrease_reservation; lookups check them against the p2m.
    pub m2p: BTreeMap<u64, (u64, u8)>,
    /// The shared info page.
    pub shared_info: Box<[u8; FRAME]>,
    /// `XEN_DOMCTL_setvcpucontext` contexts by vCPU.
    pub vcpu_contexts: BTreeMap<u32, Vec<u8>>,
    /// Machine frame given to `XEN_DOMCTL_hypercall_init`.
    pub hypercall_page: Option<u64>,
    /// `(level, mfn)` of each pinned table.
    pub pinned: Vec<(u32, u64)>,
    /// `XEN_DOMCTL_set_address_size`.
    pub address_size: Option<u32>,
}

impl Default for PvState {
    fn default() -> Self {
        PvState {
            m2p: BTreeMap::new(),
            shared_info: Box::new([0; FRAME]),
            vcpu_contexts: BTreeMap::new(),
            hypercall_page: None,
            pinned: Vec::new(),
            address_size: None,
        }
    }
}

impl Domain {
    /// A new domain as `createdomain` leaves it (paused, automatic node affinity).
    pub fn new(
        config: &DomainConfig,
        nr_cpus: usize,
        all_nodes: u64,
        max_pages: u64,
        cpu_policy: CpuPolicy,
        hvm_records: BTreeMap<(u16, u16), Vec<u8>>,
    ) -> Domain {
        let vcpus = usize::try_from(config.max_vcpus).unwrap_or(0);
        let mut hvm_params = BTreeMap::new();
        if config.hvm {
            // Set by hvm_domain_initialise: HPET on, a triple fault reboots.
            hvm_params.insert(11, 1);
            hvm_params.insert(31, 1);
        }
        Domain {
            config: config.clone(),
            max_vcpus: config.max_vcpus,
            tot_pages: 0,
            max_pages,
            outstanding_pages: 0,
            paused: true,
            is_dom0: false,
            node_affinity: all_nodes,
            node_affinity_auto: true,
            last_alloc_node: 0,
            hard: vec![vec![true; nr_cpus]; vcpus],
            soft: vec![vec![true; nr_cpus]; vcpus],
            sched: CreditParams {
                weight: 256,
                cap: 0,
            },
            tsc_mode: 0,
            time_offset: 0,
            hvm_params,
            cpu_policy,
            hvm_records,
            memory_map: None,
            p2m: P2m::default(),
            pod_cache: Vec::new(),
            pod_cache_pages: 0,
            pod_target: None,
            frames: BTreeMap::new(),
            grant_frame: Box::new([0; FRAME]),
            misaligned_extents: 0,
            pv: PvState::default(),
            unbound_evtchns: BTreeMap::new(),
            shutdown_code: None,
        }
    }

    /// Recomputes the automatic node affinity from the vCPU affinities: nodes of the CPUs
    /// in (union of hard) and (union of soft), or of the hard union alone if that is empty.
    pub fn recompute_node_affinity(&mut self, cpu_node: &[u32], all_nodes: u64) {
        if !self.node_affinity_auto {
            return;
        }
        let n = cpu_node.len();
        let union = |maps: &[Vec<bool>]| -> Vec<bool> {
            (0..n)
                .map(|c| maps.iter().any(|m| m.get(c).copied().unwrap_or(false)))
                .collect()
        };
        let hard = union(&self.hard);
        let soft = union(&self.soft);
        let both: Vec<bool> = hard.iter().zip(&soft).map(|(h, s)| *h && *s).collect();
        let cpus = if both.iter().any(|&b| b) { both } else { hard };
        let mask = cpus
            .iter()
            .zip(cpu_node)
            .filter(|(on, _)| **on)
            .fold(0u64, |m, (_, &node)| {
                m | 1u64.checked_shl(node).unwrap_or(0)
            });
        self.node_affinity = if mask == 0 { all_nodes } else { mask };
    }

    /// The HVM context blob: header, then records by type code and instance, then END.
    pub fn hvm_context_blob(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        for (&(typecode, instance), body) in &self.hvm_records {
            blob.extend_from_slice(&typecode.to_le_bytes());
            blob.extend_from_slice(&instance.to_le_bytes());
            blob.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_le_bytes());
            blob.extend_from_slice(body);
        }
        blob.extend_from_slice(&[0; 8]);
        blob
    }
}
