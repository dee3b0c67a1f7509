//! `__HYPERVISOR_sysctl`, `xen_version` and the [`HostOps`] implementation.

use std::mem::size_of;
use std::ptr;

use super::abi::{self, XenSysctl, SYSCTL_PAYLOAD};
use super::buffer::{HypercallBuf, Pod};
use super::domctl::domctl_error;
use super::hypercall::nr;
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::{
    CpuPolicy, CpuidLeaf, HostOps, MsrEntry, NodeMemory, NumaInfo, PhysInfo, SystemCpuPolicy,
    XenVersion, SYSCTL_INTERFACE_VERSION,
};
use crate::types::conv;

/// `XEN_SYSCTL_*` command numbers.
pub(crate) mod cmd {
    pub(crate) const PHYSINFO: u32 = 3;
    pub(crate) const CPUTOPOINFO: u32 = 16;
    pub(crate) const NUMAINFO: u32 = 17;
    pub(crate) const GET_CPU_POLICY: u32 = 29;
}

/// `XENVER_*` sub-commands.
pub(crate) mod xenver {
    pub(crate) const VERSION: u64 = 0;
    pub(crate) const EXTRAVERSION: u64 = 1;
    pub(crate) const CAPABILITIES: u64 = 3;
    /// `xen_extraversion_t` length.
    pub(crate) const EXTRAVERSION_LEN: usize = 16;
    /// `xen_capabilities_info_t` length.
    pub(crate) const CAPABILITIES_LEN: usize = 1024;
}

impl XenCtrl {
    /// Issues one sysctl with `payload` as its union member, copied back afterwards.
    pub(crate) fn sysctl<P: Pod>(&self, op: Op, command: u32, payload: &mut P) -> Result<()> {
        const { assert!(size_of::<P>() <= SYSCTL_PAYLOAD) };
        let mut u = [0u8; SYSCTL_PAYLOAD];
        // SAFETY: `P` is Pod without implicit padding and fits in `u` (checked above).
        unsafe {
            ptr::copy_nonoverlapping(
                ptr::from_ref(payload).cast::<u8>(),
                u.as_mut_ptr(),
                size_of::<P>(),
            );
        }
        let request = XenSysctl {
            cmd: command,
            interface_version: SYSCTL_INTERFACE_VERSION,
            u,
        };
        let buf = self
            .privcmd
            .buf_value(&request)
            .map_err(|e| Error::hypercall(op, e.0))?;
        let outcome = self.privcmd.hypercall(nr::SYSCTL, [buf.addr(), 0, 0, 0, 0]);
        let reply = buf.read().unwrap_or(request);
        // SAFETY: `reply.u` holds `SYSCTL_PAYLOAD >= size_of::<P>()` bytes and every bit
        // pattern is a valid `P`.
        *payload = unsafe { ptr::read_unaligned(reply.u.as_ptr().cast::<P>()) };
        log::trace!("sysctl {op}: {outcome:?}");
        outcome
            .map(|_| ())
            .map_err(|e| domctl_error(op, SYSCTL_INTERFACE_VERSION, e))
    }

    fn xen_version_string(&self, op: Op, sub: u64, len: usize) -> Result<String> {
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(len)
            .map_err(|e| Error::hypercall(op, e.0))?;
        self.privcmd
            .hypercall(nr::XEN_VERSION, [sub, buf.addr(), 0, 0, 0])
            .map_err(|e| Error::hypercall(op, e.0))?;
        let mut bytes = buf.to_vec();
        if let Some(end) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(end);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn physinfo_raw(&self) -> Result<abi::Physinfo> {
        let mut info = abi::Physinfo::default();
        self.sysctl("sysctl physinfo", cmd::PHYSINFO, &mut info)?;
        Ok(info)
    }
}

/// Copies the first `nr_leaves`/`nr_msrs` entries of policy buffers into a [`CpuPolicy`].
pub(crate) fn policy_from_buffers(
    leaves: &HypercallBuf<'_, abi::CpuidLeaf>,
    nr_leaves: u32,
    msrs: &HypercallBuf<'_, abi::MsrEntry>,
    nr_msrs: u32,
) -> CpuPolicy {
    let take_leaves = conv::u64_to_usize(u64::from(nr_leaves)).min(leaves.count());
    let take_msrs = conv::u64_to_usize(u64::from(nr_msrs)).min(msrs.count());
    CpuPolicy {
        leaves: (0..take_leaves)
            .filter_map(|i| leaves.get(i))
            .map(|l| CpuidLeaf {
                leaf: l.leaf,
                subleaf: l.subleaf,
                a: l.a,
                b: l.b,
                c: l.c,
                d: l.d,
            })
            .collect(),
        msrs: (0..take_msrs)
            .filter_map(|i| msrs.get(i))
            .map(|m| MsrEntry {
                idx: m.idx,
                flags: m.flags,
                val: m.val,
            })
            .collect(),
    }
}

impl HostOps for XenCtrl {
    fn xen_version(&self) -> Result<XenVersion> {
        const OP: Op = "xen_version";
        let v = self
            .privcmd
            .hypercall(nr::XEN_VERSION, [xenver::VERSION, 0, 0, 0, 0])
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let v = u32::try_from(v).unwrap_or(0);
        Ok(XenVersion {
            major: v >> 16,
            minor: v & 0xFFFF,
            extra: self.xen_version_string(
                "xen_version extraversion",
                xenver::EXTRAVERSION,
                xenver::EXTRAVERSION_LEN,
            )?,
            capabilities: self.xen_version_string(
                "xen_version capabilities",
                xenver::CAPABILITIES,
                xenver::CAPABILITIES_LEN,
            )?,
        })
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let p = self.physinfo_raw()?;
        Ok(PhysInfo {
            threads_per_core: p.threads_per_core,
            cores_per_socket: p.cores_per_socket,
            nr_cpus: p.nr_cpus,
            max_cpu_id: p.max_cpu_id,
            nr_nodes: p.nr_nodes,
            max_node_id: p.max_node_id,
            cpu_khz: p.cpu_khz,
            capabilities: p.capabilities,
            total_pages: p.total_pages,
            free_pages: p.free_pages,
            scrub_pages: p.scrub_pages,
            outstanding_pages: p.outstanding_pages,
            max_mfn: p.max_mfn,
        })
    }

    fn numainfo(&self) -> Result<NumaInfo> {
        const OP: Op = "sysctl numainfo";
        const TOPO_OP: Op = "sysctl cputopoinfo";
        // NULL handles: Xen reports the number of nodes (libxl_get_numainfo does the same).
        let mut sizing = abi::NumaInfo::default();
        self.sysctl(OP, cmd::NUMAINFO, &mut sizing)?;
        let n = conv::u64_to_usize(u64::from(sizing.num_nodes));
        let meminfo = self
            .privcmd
            .buf_zeroed::<abi::MemInfo>(n)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let distance = self
            .privcmd
            .buf_zeroed::<u32>(n.saturating_mul(n))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut req = abi::NumaInfo {
            num_nodes: sizing.num_nodes,
            _pad: 0,
            meminfo: meminfo.addr(),
            distance: distance.addr(),
        };
        self.sysctl(OP, cmd::NUMAINFO, &mut req)?;
        let got = conv::u64_to_usize(u64::from(req.num_nodes)).min(n);
        let nodes = (0..got)
            .filter_map(|i| meminfo.get(i))
            .map(|m| NodeMemory {
                memsize: m.memsize,
                memfree: m.memfree,
            })
            .collect();
        // Xen lays the matrix out with the returned node count as row length.
        let distance = (0..got * got).filter_map(|i| distance.get(i)).collect();

        let mut topo_sizing = abi::CpuTopoInfo::default();
        self.sysctl(TOPO_OP, cmd::CPUTOPOINFO, &mut topo_sizing)?;
        let ncpus = conv::u64_to_usize(u64::from(topo_sizing.num_cpus));
        let topo = self
            .privcmd
            .buf_zeroed::<abi::CpuTopo>(ncpus)
            .map_err(|e| Error::hypercall(TOPO_OP, e.0))?;
        let mut topo_req = abi::CpuTopoInfo {
            num_cpus: topo_sizing.num_cpus,
            _pad: 0,
            cputopo: topo.addr(),
        };
        self.sysctl(TOPO_OP, cmd::CPUTOPOINFO, &mut topo_req)?;
        let cpus = conv::u64_to_usize(u64::from(topo_req.num_cpus)).min(ncpus);
        let cpu_to_node = (0..cpus)
            .filter_map(|i| topo.get(i))
            .map(|t| t.node)
            .collect();
        Ok(NumaInfo {
            nodes,
            distance,
            cpu_to_node,
        })
    }

    fn system_cpu_policy(&self, which: SystemCpuPolicy) -> Result<CpuPolicy> {
        const OP: Op = "sysctl get_cpu_policy";
        let index = which as u32;
        let mut sizing = abi::SysctlCpuPolicy {
            index,
            ..abi::SysctlCpuPolicy::default()
        };
        self.sysctl(OP, cmd::GET_CPU_POLICY, &mut sizing)?;
        let leaves = self
            .privcmd
            .buf_zeroed::<abi::CpuidLeaf>(conv::u64_to_usize(u64::from(sizing.nr_leaves)))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let msrs = self
            .privcmd
            .buf_zeroed::<abi::MsrEntry>(conv::u64_to_usize(u64::from(sizing.nr_msrs)))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut req = abi::SysctlCpuPolicy {
            index,
            nr_leaves: sizing.nr_leaves,
            nr_msrs: sizing.nr_msrs,
            _rsvd: 0,
            leaves: leaves.addr(),
            msrs: msrs.addr(),
        };
        self.sysctl(OP, cmd::GET_CPU_POLICY, &mut req)?;
        Ok(policy_from_buffers(
            &leaves,
            req.nr_leaves,
            &msrs,
            req.nr_msrs,
        ))
    }
}
