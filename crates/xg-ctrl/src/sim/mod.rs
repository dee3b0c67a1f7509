//! A simulated Xen host: the default backend of `xenguest` for dry runs, planning and
//! teaching, and the hypervisor the builder's tests run against.
//!
//! [`Simulator`] implements every trait of [`crate::ops`]. It models:
//!
//! * NUMA nodes, each with Xen's buddy allocator (orders 0..=18, free lists of naturally
//!   aligned chunks, the highest-addressed piece of a split chunk handed out, merging on
//!   free). Cost grows with extents, not with memory.
//! * Node choice as Xen's `get_free_buddy`: `XENMEMF_exact_node` never falls back; else
//!   the requested node, else round-robin over the domain's node affinity after
//!   `last_alloc_node` (the affinity follows vCPU hard/soft affinity until set
//!   explicitly), then the other nodes. Zones and scrubbing are not modelled.
//! * Claims (one global counter, the claim gate, consumed by allocations), `max_mem`
//!   (E2BIG/EPERM inside the allocation, so populate returns a short count), PoD entries
//!   and the PoD cache of `set_pod_target`, `decrease_reservation`.
//! * Guest memory: only written frames are stored; access to a gfn that is not populated
//!   fails like a foreign map does (EINVAL); a PoD gfn is populated on write from the cache.
//! * The knobs of the libxenguest oracle ([`config::OracleModel`]) and fault injection.
//!
//! Deviations, all deliberate: populating over an already-populated gfn stops the call
//! (Xen would replace the entry), no DMA zone, PoD demand-population works in 4 KiB pages,
//! reading a PoD gfn returns zeros without populating it.

pub mod buddy;
pub mod config;
pub mod cpu;
mod domain;
pub mod fault;
mod host;
pub mod p2m;
mod pv;
mod shutdown;
mod snapshot;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use config::{
    ExtentBudget, FaultRule, HostConfig, NodeConfig, OracleModel, PciDeviceConfig, Placement,
};
pub use domain::PvState;
pub use snapshot::{DomainSnapshot, ExtentCount, GfnRange, HostSnapshot, NodeSnapshot, RangeKind};

use crate::error::{Error, Result};
use crate::ops::{
    AffinityKind, CpuPolicy, CreditParams, DomainConfig, DomainInfo, DomainOps, E820Entry,
    GuestMemory, HostOps, MemoryOps, NodeMemory, NumaInfo, PciDev, PhysInfo, ReservedRegion,
    SystemCpuPolicy, XenVersion,
};
use crate::types::{DomId, Gfn, MemFlags, PageOrder, PAGE_SHIFT, PAGE_SIZE};

use buddy::pages;
use domain::{Domain, FRAME};
use fault::Faults;
use host::{Extent, Machine, MAX_NUMNODES};
use p2m::{Backing, Frame, Removed};

/// Guest frames above this are rejected (Xen's 52-bit physical address width).
pub const MAX_GFN: u64 = 1 << 40;
/// Largest `nr_extents` of a memory op (`UINT_MAX >> MEMOP_EXTENT_SHIFT`).
pub const MAX_NR_EXTENTS: usize = 0x3FF_FFFF;
/// `HVM_NR_PARAMS` of Xen 4.17.
pub const HVM_NR_PARAMS: u32 = 39;
/// First domid Xen reserves (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
/// `HVM_MAX_VCPUS`.
pub const HVM_MAX_VCPUS: u32 = 128;

const EPERM: i32 = libc::EPERM;
const ESRCH: i32 = libc::ESRCH;
const ENOMEM: i32 = libc::ENOMEM;
const EEXIST: i32 = libc::EEXIST;
const EINVAL: i32 = libc::EINVAL;
const ENOSPC: i32 = libc::ENOSPC;

/// One p2m run as `(first gfn, order, extents, node)`; `node` is `None` for PoD entries.
pub type P2mRun = (u64, u8, u64, Option<u32>);

/// A simulated Xen 4.17 host. All methods take `&self`; the state sits behind a mutex.
#[derive(Debug)]
pub struct Simulator {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    cfg: HostConfig,
    machine: Machine,
    domains: BTreeMap<u16, Domain>,
    faults: Faults,
}

fn op_err(op: &'static str, errno: i32) -> Error {
    Error::hypercall(op, errno)
}

impl Default for Simulator {
    /// The default host (`hosts/default.toml`).
    fn default() -> Self {
        Simulator::new(&HostConfig::default()).unwrap_or_else(|_| {
            // The embedded description is checked by a unit test; this cannot happen.
            Simulator::new(&HostConfig::uniform(2, 65536, 8))
                .unwrap_or_else(|_| unreachable!("uniform hosts are valid"))
        })
    }
}

impl Simulator {
    /// A host as `cfg` describes it, with dom0 running.
    pub fn new(cfg: &HostConfig) -> Result<Simulator> {
        let machine = Machine::new(cfg)?;
        let mut faults = Faults::default();
        for rule in &cfg.faults {
            faults.add(rule.clone())?;
        }
        let used: u64 = machine.host_used.iter().map(|u| u.1).sum();
        let dom0_cfg = DomainConfig {
            hvm: false,
            hap: false,
            max_vcpus: u32::try_from(machine.cpu_node.len()).unwrap_or(1),
            ..DomainConfig::default()
        };
        let mut dom0 = Domain::new(
            &dom0_cfg,
            machine.cpu_node.len(),
            machine.all_nodes_mask(),
            used,
            cpu::system_policy(SystemCpuPolicy::PvDefault),
            BTreeMap::new(),
        );
        dom0.is_dom0 = true;
        dom0.paused = false;
        dom0.tot_pages = used;
        let mut domains = BTreeMap::new();
        domains.insert(0, dom0);
        log::debug!(
            "sim: host {:?}: {} nodes, {} pages, {} free",
            cfg.name,
            machine.nodes.len(),
            machine.total_pages,
            machine.total_avail()
        );
        Ok(Simulator {
            state: Mutex::new(State {
                cfg: cfg.clone(),
                machine,
                domains,
                faults,
            }),
        })
    }

    /// The host described by a TOML file.
    pub fn from_file(path: &Path) -> Result<Simulator> {
        Simulator::new(&HostConfig::from_file(path)?)
    }

    /// A host configured like the libxenguest oracle (see
    /// [`HostConfig::oracle_compatible`]).
    pub fn oracle_compatible(model: &OracleModel) -> Result<Simulator> {
        Simulator::new(&HostConfig::oracle_compatible(model))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state after counting the call for fault injection.
    fn call<T>(&self, op: &'static str, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut st = self.lock();
        st.faults.on_call(op)?;
        f(&mut st)
    }

    /// The host description in use.
    pub fn config(&self) -> HostConfig {
        self.lock().cfg.clone()
    }

    /// Adds a fault rule at run time.
    pub fn inject_fault(&self, rule: FaultRule) -> Result<()> {
        self.lock().faults.add(rule)
    }

    /// Calls of `op` so far (faulted ones included).
    pub fn calls(&self, op: &str) -> u64 {
        self.lock().faults.calls(op)
    }

    /// The state of a domain, `None` if it does not exist.
    pub fn domain_snapshot(&self, domid: DomId) -> Option<DomainSnapshot> {
        let st = self.lock();
        let d = st.domains.get(&domid.0)?;
        Some(snapshot_of(domid.0, d))
    }

    /// A domain's p2m as runs `(first gfn, order, extents, node)` in gfn order, `node`
    /// `None` for PoD entries; `None` if the domain does not exist. Read-only, for
    /// comparing the final gfn -> (order, node) maps of two builds.
    pub fn p2m_runs(&self, domid: DomId) -> Option<Vec<P2mRun>> {
        let st = self.lock();
        let d = st.domains.get(&domid.0)?;
        Some(
            d.p2m
                .runs()
                .map(|(gfn, run)| {
                    let node = match run.backing {
                        p2m::Backing::Ram { node, .. } => Some(node),
                        p2m::Backing::Pod => None,
                    };
                    (gfn, run.order, run.count, node)
                })
                .collect(),
        )
    }

    /// The state of the host.
    pub fn host_snapshot(&self) -> HostSnapshot {
        let st = self.lock();
        let m = &st.machine;
        HostSnapshot {
            total_pages: m.total_pages,
            free_pages: m.total_avail(),
            host_used_pages: m.host_used.iter().map(|u| u.1).sum(),
            outstanding_claims: m.outstanding_claims,
            nodes: m
                .nodes
                .iter()
                .map(|n| NodeSnapshot {
                    memory_pages: n.memory_pages,
                    free_pages: n.buddy.avail(),
                    free_chunks: (0..=buddy::MAX_ORDER).map(|o| n.buddy.chunks(o)).collect(),
                    cpus: n.cpus.clone(),
                })
                .collect(),
            domains: st.domains.keys().copied().collect(),
        }
    }

    /// Free pages of the whole host.
    pub fn free_pages(&self) -> u64 {
        self.lock().machine.total_avail()
    }

    /// Free pages per node.
    pub fn node_free_pages(&self) -> Vec<u64> {
        self.lock()
            .machine
            .nodes
            .iter()
            .map(|n| n.buddy.avail())
            .collect()
    }

    /// The machine frame behind `gfn`, `None` for holes and PoD entries.
    pub fn mfn_of(&self, domid: DomId, gfn: Gfn) -> Option<u64> {
        let st = self.lock();
        match st.domains.get(&domid.0)?.p2m.lookup(gfn.0)? {
            Frame::Ram { mfn, .. } => Some(mfn),
            Frame::Pod => None,
        }
    }

    /// Checks the allocator invariants: every machine frame is in exactly one place (a
    /// free chunk, a domain's p2m or PoD cache, or the host's used memory), no frame is
    /// outside its node, and the page counters agree with the structures. Returns a
    /// description of the first violation.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let st = self.lock();
        let m = &st.machine;
        let mut spans: Vec<(u64, u64, &'static str)> = Vec::new();
        for n in &m.nodes {
            for (mfn, order) in n.buddy.free_chunks() {
                if mfn < n.buddy.start() || mfn + pages(order) > n.buddy.end() {
                    return Err(format!("free chunk {mfn:#x}/{order} outside its node"));
                }
                if mfn % pages(order) != 0 {
                    return Err(format!("free chunk {mfn:#x}/{order} misaligned"));
                }
                spans.push((mfn, pages(order), "free"));
            }
        }
        spans.extend(m.host_used.iter().map(|(s, n)| (s, n, "host")));
        let mut claims = 0;
        for (id, d) in &st.domains {
            let mut charged = 0;
            for (_, run) in d.p2m.runs() {
                if let Backing::Ram { mfn, step, .. } = run.backing {
                    let size = i64::try_from(pages(run.order)).unwrap_or(i64::MAX);
                    if run.count > 1 && step.abs() == size {
                        // Extents back to back in machine memory: one span.
                        let last = run.mfn_of(run.count - 1).unwrap_or(0);
                        spans.push((mfn.min(last), run.pages(), "domain"));
                    } else {
                        for k in 0..run.count {
                            let mfn = run.mfn_of(k).unwrap_or(0);
                            spans.push((mfn, pages(run.order), "domain"));
                        }
                    }
                    charged += run.pages();
                }
            }
            for &(_, mfn, order) in &d.pod_cache {
                spans.push((mfn, pages(order), "pod cache"));
                charged += pages(order);
            }
            if !d.is_dom0 && charged != d.tot_pages {
                return Err(format!(
                    "domain {id}: tot_pages {} but {charged} pages mapped or cached",
                    d.tot_pages
                ));
            }
            if charged != d.p2m.ram_pages() + d.pod_cache_pages && !d.is_dom0 {
                return Err(format!("domain {id}: page counters disagree"));
            }
            claims += d.outstanding_pages;
        }
        if claims != m.outstanding_claims {
            return Err(format!(
                "outstanding claims {} but domains hold {claims}",
                m.outstanding_claims
            ));
        }
        spans.sort_unstable_by_key(|s| s.0);
        let mut end = 0;
        let mut sum = 0;
        for &(s, n, what) in &spans {
            if s < end {
                return Err(format!("frame {s:#x} ({what}) is in two places"));
            }
            end = s + n;
            sum += n;
        }
        if sum != m.total_pages {
            return Err(format!(
                "{sum} pages accounted for, host has {}",
                m.total_pages
            ));
        }
        Ok(())
    }
}

fn cpu_list(map: &[bool]) -> Vec<u32> {
    map.iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect()
}

fn snapshot_of(domid: u16, d: &Domain) -> DomainSnapshot {
    let mut counts: BTreeMap<(u8, Option<u32>), u64> = BTreeMap::new();
    let mut populated: Vec<GfnRange> = Vec::new();
    for (gfn, run) in d.p2m.runs() {
        let (node, kind) = match run.backing {
            Backing::Ram { node, .. } => (Some(node), RangeKind::Ram),
            Backing::Pod => (None, RangeKind::Pod),
        };
        *counts.entry((run.order, node)).or_insert(0) += run.count;
        match populated.last_mut() {
            Some(last) if last.kind == kind && last.start + last.pages == gfn => {
                last.pages += run.pages();
            }
            _ => populated.push(GfnRange {
                start: gfn,
                pages: run.pages(),
                kind,
            }),
        }
    }
    DomainSnapshot {
        domid,
        hvm: d.config.hvm,
        hap: d.config.hap,
        paused: d.paused,
        max_vcpus: d.max_vcpus,
        tot_pages: d.tot_pages,
        max_pages: d.max_pages,
        outstanding_pages: d.outstanding_pages,
        ram_pages: d.p2m.ram_pages(),
        pod_entries: d.p2m.pod_pages(),
        pod_cache_pages: d.pod_cache_pages,
        pod_target: d.pod_target,
        extents: counts
            .into_iter()
            .map(|((order, node), count)| ExtentCount { order, node, count })
            .collect(),
        populated,
        misaligned_extents: d.misaligned_extents,
        memory_map: d.memory_map.clone(),
        hvm_params: d.hvm_params.clone(),
        vcpu_hard_affinity: d.hard.iter().map(|m| cpu_list(m)).collect(),
        vcpu_soft_affinity: d.soft.iter().map(|m| cpu_list(m)).collect(),
        node_affinity: (0..64u32)
            .filter(|n| d.node_affinity & (1u64 << n) != 0)
            .collect(),
        node_affinity_auto: d.node_affinity_auto,
        last_alloc_node: d.last_alloc_node,
        sched: d.sched,
        tsc_mode: d.tsc_mode,
        time_offset: d.time_offset,
        cpu_policy: d.cpu_policy.clone(),
        hvm_records: d
            .hvm_records
            .iter()
            .map(|(&(t, i), b)| (t, i, b.len()))
            .collect(),
        written_frames: crate::types::conv::usize_to_u64(d.frames.len()),
    }
}

/// Allocates one extent for `d`: the oracle's knobs, the claim gate, `assign_pages`'
/// max_pages checks, then the node search. Charges the domain and consumes its claim.
fn alloc_for(m: &mut Machine, d: &mut Domain, order: u8, flags: MemFlags) -> Option<Extent> {
    if m.knob_refuses(order) {
        return None;
    }
    let n = pages(order);
    if m.outstanding_claims + n > m.claimable_avail() && d.outstanding_pages < n {
        log::trace!("sim: claim gate refuses order {order}");
        return None;
    }
    if d.tot_pages > d.max_pages {
        log::trace!("sim: assign_pages EPERM: over max_pages");
        return None;
    }
    if n > d.max_pages - d.tot_pages {
        log::trace!("sim: assign_pages E2BIG: over-allocation");
        return None;
    }
    let e = m.take(order, flags, d.node_affinity, d.last_alloc_node)?;
    m.spend_budget(order);
    d.tot_pages += n;
    let consumed = d.outstanding_pages.min(n);
    d.outstanding_pages -= consumed;
    m.outstanding_claims -= consumed;
    d.last_alloc_node = e.node;
    Some(e)
}

impl State {
    fn dom(&mut self, op: &'static str, domid: DomId) -> Result<&mut Domain> {
        self.domains.get_mut(&domid.0).ok_or(op_err(op, ESRCH))
    }

    fn nr_cpus(&self) -> usize {
        self.machine.cpu_node.len()
    }

    fn populate(&mut self, domid: DomId, order: PageOrder, flags: MemFlags, gfns: &[Gfn]) -> usize {
        self.populate_into(domid, order, flags, gfns, None)
    }

    /// [`State::populate`], pushing the first machine frame of each extent to `mfns`.
    fn populate_into(
        &mut self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
        mut mfns: Option<&mut Vec<u64>>,
    ) -> usize {
        let order = order.get();
        if gfns.len() > MAX_NR_EXTENTS || flags.get_node().is_some_and(|n| n >= MAX_NUMNODES) {
            return 0;
        }
        let State {
            machine, domains, ..
        } = self;
        let Some(d) = domains.get_mut(&domid.0) else {
            return 0;
        };
        let pod = flags.is_pod();
        if d.is_dom0 || (pod && !d.config.hvm) {
            return 0;
        }
        let n = pages(order);
        for (i, gfn) in gfns.iter().enumerate() {
            let g = gfn.0;
            if g >= MAX_GFN || MAX_GFN - g < n || d.p2m.overlaps(g, n) {
                return i;
            }
            if pod {
                d.p2m.insert_pod(g, order);
            } else {
                let Some(e) = alloc_for(machine, d, order, flags) else {
                    return i;
                };
                d.p2m.insert_ram(g, order, e.node, e.mfn);
                if !d.config.hvm {
                    d.pv.m2p.insert(e.mfn, (g, order));
                }
                if let Some(out) = mfns.as_deref_mut() {
                    out.push(e.mfn);
                }
            }
            if g % n != 0 {
                d.misaligned_extents += 1;
            }
        }
        gfns.len()
    }

    fn free_removed(machine: &mut Machine, d: &mut Domain, removed: &[Removed]) {
        for r in removed {
            if let Removed::Ram { node, mfn, order } = *r {
                machine.give_back(node, mfn, order);
                d.tot_pages -= pages(order);
            }
        }
    }

    /// Makes `gfn` RAM if it is a PoD entry (from the cache, else a fresh page).
    fn demand_populate(&mut self, domid: DomId, gfn: u64) -> Result<()> {
        let State {
            machine, domains, ..
        } = self;
        let map_err = || Error::ForeignMap {
            domid,
            gfn: Gfn(gfn),
            source: crate::types::Errno(EINVAL),
        };
        let d = domains.get_mut(&domid.0).ok_or_else(map_err)?;
        match d.p2m.lookup(gfn) {
            Some(Frame::Ram { .. }) => return Ok(()),
            Some(Frame::Pod) => {}
            None => return Err(map_err()),
        }
        let (node, mfn) = if let Some((node, mfn, order)) = d.pod_cache.pop() {
            // Use the last page of the chunk; keep the rest in the cache.
            let page = mfn + pages(order) - 1;
            for (m, o) in p2m::aligned_chunks(mfn, page) {
                d.pod_cache.push((node, m, o));
            }
            d.pod_cache_pages -= 1;
            (node, page)
        } else {
            let e = alloc_for(machine, d, 0, MemFlags::NONE).ok_or_else(map_err)?;
            (e.node, e.mfn)
        };
        d.p2m.remove(gfn, 1).ok_or_else(map_err)?;
        d.p2m.insert_ram(gfn, 0, node, mfn);
        Ok(())
    }

    /// Checks that every frame of `[paddr, paddr + len)` can be mapped; PoD frames are
    /// populated when `populate` is set.
    fn map_frames(
        &mut self,
        op: &'static str,
        domid: DomId,
        paddr: u64,
        len: usize,
        populate: bool,
    ) -> Result<()> {
        let d = self.dom(op, domid)?;
        if d.is_dom0 {
            return Err(op_err(op, EPERM));
        }
        let len = crate::types::conv::usize_to_u64(len);
        if len == 0 {
            return Ok(());
        }
        let end = paddr
            .checked_add(len - 1)
            .ok_or_else(|| op_err(op, EINVAL))?;
        let (first, last) = (paddr >> PAGE_SHIFT, end >> PAGE_SHIFT);
        let mut pod = Vec::new();
        for g in first..=last {
            match d.p2m.lookup(g) {
                Some(Frame::Ram { .. }) => {}
                Some(Frame::Pod) => pod.push(g),
                None => {
                    return Err(Error::ForeignMap {
                        domid,
                        gfn: Gfn(g),
                        source: crate::types::Errno(EINVAL),
                    })
                }
            }
        }
        if populate {
            for g in pod {
                self.demand_populate(domid, g)?;
            }
        }
        Ok(())
    }
}

impl HostOps for Simulator {
    fn xen_version(&self) -> Result<XenVersion> {
        self.call("xen_version", |_| {
            Ok(XenVersion {
                major: 4,
                minor: 17,
                extra: ".7-sim".to_owned(),
                capabilities: "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"
                    .to_owned(),
            })
        })
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        self.call("physinfo", |st| {
            let m = &st.machine;
            let nr_cpus = u32::try_from(m.cpu_node.len()).unwrap_or(u32::MAX);
            let nr_nodes = m.nr_nodes();
            let threads = st.cfg.threads_per_core;
            let per_socket = m.nodes.first().map_or(1, |n| n.cpus.len());
            let per_socket = u32::try_from(per_socket).unwrap_or(1).max(1);
            Ok(PhysInfo {
                threads_per_core: threads,
                cores_per_socket: (per_socket / threads).max(1),
                nr_cpus,
                max_cpu_id: nr_cpus.saturating_sub(1),
                nr_nodes,
                max_node_id: nr_nodes.saturating_sub(1),
                cpu_khz: st.cfg.cpu_khz,
                // hvm | pv | directio | hap | shadow
                capabilities: 0x1f,
                total_pages: m.total_pages,
                free_pages: m.total_avail(),
                scrub_pages: 0,
                outstanding_pages: m.outstanding_claims,
                max_mfn: m
                    .nodes
                    .last()
                    .map_or(0, |n| n.buddy.end().saturating_sub(1)),
            })
        })
    }

    fn numainfo(&self) -> Result<NumaInfo> {
        self.call("numainfo", |st| {
            let m = &st.machine;
            let n = m.nodes.len();
            Ok(NumaInfo {
                nodes: m
                    .nodes
                    .iter()
                    .map(|node| NodeMemory {
                        memsize: node.memory_pages * PAGE_SIZE,
                        memfree: node.buddy.avail() * PAGE_SIZE,
                    })
                    .collect(),
                distance: (0..n * n)
                    .map(|i| if i / n == i % n { 10 } else { 21 })
                    .collect(),
                cpu_to_node: m.cpu_node.clone(),
            })
        })
    }

    fn system_cpu_policy(&self, which: SystemCpuPolicy) -> Result<CpuPolicy> {
        self.call("system_cpu_policy", |_| Ok(cpu::system_policy(which)))
    }
}

fn bitmap_to_bools(map: &[u8], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

fn bools_to_bitmap(bits: &[bool], bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    for (i, _) in bits.iter().enumerate().filter(|(_, on)| **on) {
        if let Some(b) = out.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }
    out
}

impl DomainOps for Simulator {
    fn create_domain(&self, domid: DomId, config: &DomainConfig) -> Result<DomId> {
        const OP: &str = "create_domain";
        self.call(OP, |st| {
            if domid.0 >= DOMID_FIRST_RESERVED
                || config.max_vcpus == 0
                || (config.hvm && config.max_vcpus > HVM_MAX_VCPUS)
                || (config.hap && !config.hvm)
            {
                return Err(op_err(OP, EINVAL));
            }
            let id = if domid.0 == 0 {
                (1..DOMID_FIRST_RESERVED)
                    .find(|i| !st.domains.contains_key(i))
                    .ok_or(op_err(OP, ENOSPC))?
            } else if st.domains.contains_key(&domid.0) {
                return Err(op_err(OP, EEXIST));
            } else {
                domid.0
            };
            let policy = cpu::system_policy(if config.hvm {
                SystemCpuPolicy::HvmDefault
            } else {
                SystemCpuPolicy::PvDefault
            });
            let leaf1_eax = policy
                .leaves
                .iter()
                .find(|l| l.leaf == 1)
                .map_or(0, |l| l.a);
            let mut records = BTreeMap::new();
            if config.hvm {
                let blob = cpu::initial_hvm_context(config.max_vcpus, leaf1_eax, st.cfg.cpu_khz);
                for r in cpu::parse_hvm_context(&blob).unwrap_or_default() {
                    if r.typecode != cpu::save::END {
                        records.insert((r.typecode, r.instance), r.body.to_vec());
                    }
                }
            }
            let max_pages = st
                .cfg
                .initial_max_kib
                .map_or(0, |k| (k >> 2).min(u64::from(u32::MAX)));
            let d = Domain::new(
                config,
                st.nr_cpus(),
                st.machine.all_nodes_mask(),
                max_pages,
                policy,
                records,
            );
            st.domains.insert(id, d);
            log::debug!("sim: created domain {id}");
            Ok(DomId(id))
        })
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        const OP: &str = "domain_info";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            let mut flags = 0;
            if d.config.hvm {
                flags |= crate::ops::dominf::HVM_GUEST;
            }
            if d.config.hap {
                flags |= crate::ops::dominf::HAP;
            }
            if d.paused {
                flags |= crate::ops::dominf::PAUSED;
            }
            flags |= shutdown::info_flags(d);
            Ok(DomainInfo {
                domid,
                flags,
                tot_pages: d.tot_pages,
                max_pages: d.max_pages,
                outstanding_pages: d.outstanding_pages,
                shared_info_frame: pv::shared_info_frame(domid),
                nr_online_vcpus: d.max_vcpus,
                max_vcpu_id: d.max_vcpus.saturating_sub(1),
                cpupool: 0,
            })
        })
    }

    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<()> {
        const OP: &str = "set_max_vcpus";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if max == 0 || max > d.config.max_vcpus {
                return Err(op_err(OP, EINVAL));
            }
            d.max_vcpus = max;
            Ok(())
        })
    }

    fn set_max_mem(&self, domid: DomId, max_kib: u64) -> Result<()> {
        const OP: &str = "set_max_mem";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            d.max_pages = (max_kib >> 2).min(u64::from(u32::MAX));
            Ok(())
        })
    }

    fn unpause(&self, domid: DomId) -> Result<()> {
        const OP: &str = "unpause";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if d.is_dom0 {
                return Err(op_err(OP, EINVAL));
            }
            d.paused = false;
            Ok(())
        })
    }

    fn resume_domain(&self, domid: DomId) -> Result<()> {
        self.call("resume_domain", |st| shutdown::resume(st, domid))
    }

    fn destroy(&self, domid: DomId) -> Result<()> {
        const OP: &str = "destroy";
        self.call(OP, |st| {
            if st.dom(OP, domid)?.is_dom0 {
                return Err(op_err(OP, EINVAL));
            }
            let Some(mut d) = st.domains.remove(&domid.0) else {
                return Err(op_err(OP, ESRCH));
            };
            let m = &mut st.machine;
            let runs: Vec<(u64, u64)> = d.p2m.runs().map(|(g, r)| (g, r.pages())).collect();
            for (g, n) in runs {
                if let Some(removed) = d.p2m.remove(g, n) {
                    State::free_removed(m, &mut d, &removed);
                }
            }
            for (node, mfn, order) in std::mem::take(&mut d.pod_cache) {
                m.give_back(node, mfn, order);
            }
            m.outstanding_claims -= d.outstanding_pages;
            log::debug!("sim: destroyed domain {domid}");
            Ok(())
        })
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpumap: &[u8],
    ) -> Result<Vec<u8>> {
        const OP: &str = "set_vcpu_affinity";
        self.call(OP, |st| {
            let n = st.nr_cpus();
            let bytes = n.div_ceil(8);
            let cpu_node = st.machine.cpu_node.clone();
            let all_nodes = st.machine.all_nodes_mask();
            let d = st.dom(OP, domid)?;
            let v = usize::try_from(vcpu).map_err(|_| op_err(OP, EINVAL))?;
            if vcpu >= d.max_vcpus || v >= d.hard.len() {
                return Err(op_err(OP, EINVAL));
            }
            let want = bitmap_to_bools(cpumap, n);
            let effective = match kind {
                AffinityKind::Hard => {
                    if !want.iter().any(|&b| b) {
                        return Err(op_err(OP, EINVAL));
                    }
                    d.hard[v] = want.clone();
                    want
                }
                AffinityKind::Soft => {
                    d.soft[v] = want.clone();
                    want.iter().zip(&d.hard[v]).map(|(s, h)| *s && *h).collect()
                }
            };
            d.recompute_node_affinity(&cpu_node, all_nodes);
            Ok(bools_to_bitmap(&effective, bytes))
        })
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32, kind: AffinityKind) -> Result<Vec<u8>> {
        const OP: &str = "vcpu_affinity";
        self.call(OP, |st| {
            let bytes = st.nr_cpus().div_ceil(8);
            let d = st.dom(OP, domid)?;
            let v = usize::try_from(vcpu).map_err(|_| op_err(OP, EINVAL))?;
            let maps = match kind {
                AffinityKind::Hard => &d.hard,
                AffinityKind::Soft => &d.soft,
            };
            let map = maps.get(v).ok_or(op_err(OP, EINVAL))?;
            Ok(bools_to_bitmap(map, bytes))
        })
    }

    fn set_node_affinity(&self, domid: DomId, nodemap: &[u8]) -> Result<()> {
        const OP: &str = "set_node_affinity";
        self.call(OP, |st| {
            let all = st.machine.all_nodes_mask();
            let nr = st.machine.nodes.len();
            let cpu_node = st.machine.cpu_node.clone();
            let want = bitmap_to_bools(nodemap, nr)
                .iter()
                .enumerate()
                .filter(|(_, on)| **on)
                .fold(0u64, |m, (i, _)| m | (1u64 << i));
            let d = st.dom(OP, domid)?;
            if want & all == 0 {
                return Err(op_err(OP, EINVAL));
            }
            if want & all == all {
                d.node_affinity_auto = true;
                d.recompute_node_affinity(&cpu_node, all);
            } else {
                d.node_affinity_auto = false;
                d.node_affinity = want & all;
            }
            Ok(())
        })
    }

    fn node_affinity(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: &str = "node_affinity";
        self.call(OP, |st| {
            let nr = st.machine.nodes.len();
            let d = st.dom(OP, domid)?;
            let bits: Vec<bool> = (0..nr)
                .map(|i| d.node_affinity & (1u64 << i) != 0)
                .collect();
            Ok(bools_to_bitmap(&bits, nr.div_ceil(8)))
        })
    }

    fn sched_credit_get(&self, domid: DomId) -> Result<CreditParams> {
        const OP: &str = "sched_credit_get";
        self.call(OP, |st| Ok(st.dom(OP, domid)?.sched))
    }

    fn sched_credit_set(&self, domid: DomId, params: CreditParams) -> Result<()> {
        const OP: &str = "sched_credit_set";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if params.weight != 0 {
                d.sched.weight = params.weight;
            }
            if params.cap != u16::MAX {
                d.sched.cap = params.cap;
            }
            Ok(())
        })
    }

    fn set_tsc_info(&self, domid: DomId, tsc_mode: u32) -> Result<()> {
        const OP: &str = "set_tsc_info";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            // TSC_MODE_DEFAULT, ALWAYS_EMULATE, NEVER_EMULATE.
            if tsc_mode > 2 {
                return Err(op_err(OP, EINVAL));
            }
            d.tsc_mode = tsc_mode;
            Ok(())
        })
    }

    fn set_time_offset(&self, domid: DomId, seconds: i32) -> Result<()> {
        const OP: &str = "set_time_offset";
        self.call(OP, |st| {
            st.dom(OP, domid)?.time_offset = seconds;
            Ok(())
        })
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        const OP: &str = "set_hvm_param";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if !d.config.hvm || param >= HVM_NR_PARAMS {
                return Err(op_err(OP, EINVAL));
            }
            d.hvm_params.insert(param, value);
            Ok(())
        })
    }

    fn hvm_param(&self, domid: DomId, param: u32) -> Result<u64> {
        const OP: &str = "hvm_param";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if !d.config.hvm || param >= HVM_NR_PARAMS {
                return Err(op_err(OP, EINVAL));
            }
            Ok(d.hvm_params.get(&param).copied().unwrap_or(0))
        })
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        const OP: &str = "alloc_unbound_evtchn";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            // Port 0 is reserved; Xen hands out the lowest free port up to the domain's
            // max_evtchn_port.
            let port = (1..=d.config.max_evtchn_port)
                .find(|p| !d.unbound_evtchns.contains_key(p))
                .ok_or(op_err(OP, ENOSPC))?;
            d.unbound_evtchns.insert(port, remote.0);
            Ok(port)
        })
    }

    fn domain_cpu_policy(&self, domid: DomId) -> Result<CpuPolicy> {
        const OP: &str = "domain_cpu_policy";
        self.call(OP, |st| Ok(st.dom(OP, domid)?.cpu_policy.clone()))
    }

    fn set_domain_cpu_policy(&self, domid: DomId, policy: &CpuPolicy) -> Result<()> {
        const OP: &str = "set_domain_cpu_policy";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            let max = cpu::system_policy(if d.config.hvm {
                SystemCpuPolicy::HvmMax
            } else {
                SystemCpuPolicy::PvMax
            });
            if let Err((leaf, subleaf)) = cpu::audit(policy, &max) {
                log::debug!("sim: cpu policy rejected at leaf {leaf:#x}/{subleaf:#x}");
                return Err(op_err(OP, EINVAL));
            }
            d.cpu_policy = policy.clone();
            Ok(())
        })
    }

    fn hvm_context(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: &str = "hvm_context";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if !d.config.hvm {
                return Err(op_err(OP, EINVAL));
            }
            Ok(d.hvm_context_blob())
        })
    }

    fn set_hvm_context(&self, domid: DomId, blob: &[u8]) -> Result<()> {
        const OP: &str = "set_hvm_context";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if !d.config.hvm {
                return Err(op_err(OP, EINVAL));
            }
            let records = cpu::parse_hvm_context(blob).ok_or(op_err(OP, EINVAL))?;
            for r in &records {
                let per_vcpu_len = match r.typecode {
                    cpu::save::CPU => Some(cpu::save::CPU_LEN),
                    cpu::save::MTRR => Some(cpu::save::MTRR_LEN),
                    _ => None,
                };
                if let Some(len) = per_vcpu_len {
                    if r.body.len() != len || u32::from(r.instance) >= d.max_vcpus {
                        return Err(op_err(OP, EINVAL));
                    }
                }
            }
            for r in records {
                if r.typecode != cpu::save::END {
                    d.hvm_records
                        .insert((r.typecode, r.instance), r.body.to_vec());
                }
            }
            Ok(())
        })
    }
}

impl MemoryOps for Simulator {
    fn populate_physmap(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<usize> {
        self.call("populate_physmap", |st| {
            Ok(st.populate(domid, order, flags, gfns))
        })
    }

    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<()> {
        self.call("populate_physmap_exact", |st| {
            let done = st.populate(domid, order, flags, gfns);
            if done == gfns.len() {
                Ok(())
            } else {
                Err(Error::Partial {
                    requested: gfns.len(),
                    done,
                    order: order.get(),
                    first_gfn: gfns.first().copied().unwrap_or(Gfn(0)),
                })
            }
        })
    }

    fn decrease_reservation(&self, domid: DomId, order: PageOrder, gfns: &[Gfn]) -> Result<usize> {
        self.call("decrease_reservation", |st| {
            if gfns.len() > MAX_NR_EXTENTS {
                return Ok(0);
            }
            let State {
                machine, domains, ..
            } = st;
            let Some(d) = domains.get_mut(&domid.0) else {
                return Ok(0);
            };
            let n = pages(order.get());
            for (i, gfn) in gfns.iter().enumerate() {
                let Some(removed) = d.p2m.remove(gfn.0, n) else {
                    return Ok(i);
                };
                State::free_removed(machine, d, &removed);
                let keys: Vec<u64> = d.frames.range(gfn.0..gfn.0 + n).map(|(&k, _)| k).collect();
                for k in keys {
                    d.frames.remove(&k);
                }
            }
            Ok(gfns.len())
        })
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        const OP: &str = "claim_pages";
        self.call(OP, |st| {
            if pages != 0 && st.cfg.claim_fail {
                return Err(op_err(OP, ENOMEM));
            }
            let State {
                machine, domains, ..
            } = st;
            let d = domains.get_mut(&domid.0).ok_or(op_err(OP, EINVAL))?;
            if pages == 0 {
                machine.outstanding_claims -= d.outstanding_pages;
                d.outstanding_pages = 0;
                return Ok(());
            }
            if d.outstanding_pages != 0 || pages <= d.tot_pages || pages > d.max_pages {
                return Err(op_err(OP, EINVAL));
            }
            let claim = pages - d.tot_pages;
            let avail = machine
                .claimable_avail()
                .saturating_sub(machine.outstanding_claims);
            if claim > avail {
                return Err(op_err(OP, ENOMEM));
            }
            d.outstanding_pages = claim;
            machine.outstanding_claims += claim;
            Ok(())
        })
    }

    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> Result<()> {
        const OP: &str = "set_pod_target";
        self.call(OP, |st| {
            if st.cfg.pod_fail {
                return Err(op_err(OP, ENOMEM));
            }
            let pod_cache = st.cfg.pod_cache;
            let State {
                machine, domains, ..
            } = st;
            let d = domains.get_mut(&domid.0).ok_or(op_err(OP, ESRCH))?;
            if !d.config.hvm || target_pages > d.max_pages {
                return Err(op_err(OP, EINVAL));
            }
            d.pod_target = Some(target_pages);
            if !pod_cache {
                return Ok(());
            }
            // p2m_pod_set_mem_target.
            let populated = d.tot_pages - d.pod_cache_pages;
            if populated > 0 && d.p2m.pod_pages() == 0 {
                return Ok(());
            }
            if target_pages < d.tot_pages {
                return Ok(());
            }
            let mut cache_target = target_pages - populated;
            if populated > 0 {
                cache_target = cache_target.min(d.p2m.pod_pages());
            }
            // p2m_pod_set_cache_target: grow with 2 MiB chunks, 4 KiB when short.
            while d.pod_cache_pages < cache_target {
                let want = if cache_target - d.pod_cache_pages >= 512 {
                    9
                } else {
                    0
                };
                let e = alloc_for(machine, d, want, MemFlags::NONE).or_else(|| {
                    if want > 0 {
                        alloc_for(machine, d, 0, MemFlags::NONE)
                    } else {
                        None
                    }
                });
                let Some(e) = e else {
                    return Err(op_err(OP, ENOMEM));
                };
                d.pod_cache.push((e.node, e.mfn, e.order));
                d.pod_cache_pages += pages(e.order);
            }
            while d.pod_cache_pages > cache_target {
                let Some((node, mfn, order)) = d.pod_cache.pop() else {
                    break;
                };
                machine.give_back(node, mfn, order);
                d.pod_cache_pages -= pages(order);
                d.tot_pages -= pages(order);
            }
            Ok(())
        })
    }

    fn set_memory_map(&self, domid: DomId, map: &[E820Entry]) -> Result<()> {
        const OP: &str = "set_memory_map";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if map.len() > crate::ops::e820::MAX_ENTRIES {
                return Err(op_err(OP, EINVAL));
            }
            d.memory_map = Some(map.to_vec());
            Ok(())
        })
    }

    fn reserved_device_memory_map(
        &self,
        flags: u32,
        dev: PciDev,
        max_entries: u32,
    ) -> Result<Vec<ReservedRegion>> {
        const OP: &str = "reserved_device_memory_map";
        self.call(OP, |st| {
            if flags & !crate::ops::rdm::ALL != 0 {
                return Err(op_err(OP, EINVAL));
            }
            let regions = st
                .cfg
                .reserved_regions(dev, flags & crate::ops::rdm::ALL != 0);
            let needed = u32::try_from(regions.len()).unwrap_or(u32::MAX);
            if needed > max_entries {
                return Err(Error::TooSmall { op: OP, needed });
            }
            Ok(regions)
        })
    }
}

impl GuestMemory for Simulator {
    fn write_guest(&self, domid: DomId, paddr: u64, data: &[u8]) -> Result<()> {
        const OP: &str = "write_guest";
        self.call(OP, |st| {
            st.map_frames(OP, domid, paddr, data.len(), true)?;
            let d = st.dom(OP, domid)?;
            let mut addr = paddr;
            let mut rest = data;
            while !rest.is_empty() {
                let off = crate::types::conv::u64_to_usize(addr % PAGE_SIZE);
                let n = rest.len().min(FRAME - off);
                let frame = d
                    .frames
                    .entry(addr >> PAGE_SHIFT)
                    .or_insert_with(|| Box::new([0; FRAME]));
                frame[off..off + n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                addr += crate::types::conv::usize_to_u64(n);
            }
            Ok(())
        })
    }

    fn read_guest(&self, domid: DomId, paddr: u64, buf: &mut [u8]) -> Result<()> {
        const OP: &str = "read_guest";
        self.call(OP, |st| {
            st.map_frames(OP, domid, paddr, buf.len(), false)?;
            let d = st.dom(OP, domid)?;
            let mut addr = paddr;
            let mut pos = 0;
            while pos < buf.len() {
                let off = crate::types::conv::u64_to_usize(addr % PAGE_SIZE);
                let n = (buf.len() - pos).min(FRAME - off);
                match d.frames.get(&(addr >> PAGE_SHIFT)) {
                    Some(frame) => buf[pos..pos + n].copy_from_slice(&frame[off..off + n]),
                    None => buf[pos..pos + n].fill(0),
                }
                pos += n;
                addr += crate::types::conv::usize_to_u64(n);
            }
            Ok(())
        })
    }

    fn clear_guest_pages(&self, domid: DomId, gfns: &[Gfn]) -> Result<()> {
        const OP: &str = "clear_guest_pages";
        self.call(OP, |st| {
            for g in gfns {
                let addr = g.0.checked_mul(PAGE_SIZE).ok_or(op_err(OP, EINVAL))?;
                st.map_frames(OP, domid, addr, FRAME, true)?;
            }
            let d = st.dom(OP, domid)?;
            for g in gfns {
                d.frames.remove(&g.0);
            }
            Ok(())
        })
    }

    fn write_grant_table(&self, domid: DomId, offset: u64, data: &[u8]) -> Result<()> {
        const OP: &str = "write_grant_table";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            let start = usize::try_from(offset).map_err(|_| op_err(OP, EINVAL))?;
            let end = start.checked_add(data.len()).ok_or(op_err(OP, EINVAL))?;
            let dst = d
                .grant_frame
                .get_mut(start..end)
                .ok_or(op_err(OP, EINVAL))?;
            dst.copy_from_slice(data);
            Ok(())
        })
    }

    fn read_grant_table(&self, domid: DomId, offset: u64, buf: &mut [u8]) -> Result<()> {
        const OP: &str = "read_grant_table";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            let start = usize::try_from(offset).map_err(|_| op_err(OP, EINVAL))?;
            let end = start.checked_add(buf.len()).ok_or(op_err(OP, EINVAL))?;
            let src = d.grant_frame.get(start..end).ok_or(op_err(OP, EINVAL))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }
}
