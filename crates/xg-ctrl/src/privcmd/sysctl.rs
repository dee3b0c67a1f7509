//! `__HYPERVISOR_sysctl`, `xen_version` and the [`HostOps`] implementation.

use xg_sys as sys;

use super::abi::{
    xen_cpuid_leaf, xen_msr_entry, xen_sysctl, xen_sysctl__bindgen_ty_1, xen_sysctl_cputopo,
    xen_sysctl_meminfo,
};
use super::buffer::HypercallBuf;
use super::domctl::interface_error;
use super::hypercall::nr;
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::{
    CpuPolicy, CpuidLeaf, HostOps, MsrEntry, NodeMemory, NumaInfo, PhysInfo, SystemCpuPolicy,
    XenVersion, SYSCTL_INTERFACE_VERSION,
};
use crate::types::conv;

/// `xen_extraversion_t` length.
const EXTRAVERSION_LEN: usize = 16;
/// `xen_capabilities_info_t` length.
const CAPABILITIES_LEN: usize = 1024;

/// Reads a union member of a sysctl reply.
macro_rules! member {
    ($reply:expr, $field:ident) => {
        // SAFETY: every member of the sysctl union is plain data (Pod) for which any bit
        // pattern is valid; Xen filled the member this command uses.
        unsafe { $reply.u.$field }
    };
}

fn buffer_error(op: Op) -> impl Fn(crate::types::Errno) -> Error {
    move |e| Error::hypercall(op, e.0)
}

impl XenCtrl {
    /// Issues one sysctl whose union `fill` sets up in a zeroed buffer; returns Xen's
    /// copy of the sysctl.
    pub(crate) fn sysctl(
        &self,
        op: Op,
        command: u32,
        fill: impl FnOnce(&mut xen_sysctl__bindgen_ty_1),
    ) -> Result<xen_sysctl> {
        let mut buf = self
            .privcmd
            .buf_zeroed::<xen_sysctl>(1)
            .map_err(buffer_error(op))?;
        buf.update(0, |s| {
            s.cmd = command;
            s.interface_version = SYSCTL_INTERFACE_VERSION;
            fill(&mut s.u);
        });
        let outcome = self.privcmd.hypercall(nr::SYSCTL, [buf.addr(), 0, 0, 0, 0]);
        log::trace!("sysctl {op}: {outcome:?}");
        outcome.map_err(|e| interface_error(op, SYSCTL_INTERFACE_VERSION, e))?;
        Ok(buf.read().unwrap_or_default())
    }

    fn xen_version_string(&self, op: Op, sub: u32, len: usize) -> Result<String> {
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(len)
            .map_err(buffer_error(op))?;
        self.privcmd
            .hypercall(nr::XEN_VERSION, [u64::from(sub), buf.addr(), 0, 0, 0])
            .map_err(|e| Error::hypercall(op, e.0))?;
        let mut bytes = buf.to_vec();
        if let Some(end) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(end);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Copies the first `nr_leaves`/`nr_msrs` entries of policy buffers into a [`CpuPolicy`].
pub(crate) fn policy_from_buffers(
    leaves: &HypercallBuf<'_, xen_cpuid_leaf>,
    nr_leaves: u32,
    msrs: &HypercallBuf<'_, xen_msr_entry>,
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
            .hypercall(
                nr::XEN_VERSION,
                [u64::from(sys::XENVER_version), 0, 0, 0, 0],
            )
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let v = u32::try_from(v).unwrap_or(0);
        Ok(XenVersion {
            major: v >> 16,
            minor: v & 0xFFFF,
            extra: self.xen_version_string(
                "xen_version extraversion",
                sys::XENVER_extraversion,
                EXTRAVERSION_LEN,
            )?,
            capabilities: self.xen_version_string(
                "xen_version capabilities",
                sys::XENVER_capabilities,
                CAPABILITIES_LEN,
            )?,
        })
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let reply = self.sysctl("sysctl physinfo", sys::XEN_SYSCTL_physinfo, |_| {})?;
        let p = member!(reply, physinfo);
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
        // NULL handles: Xen reports the number of nodes (as libxl_get_numainfo asks).
        let sizing = self.sysctl(OP, sys::XEN_SYSCTL_numainfo, |_| {})?;
        let num_nodes = member!(sizing, numainfo).num_nodes;
        let n = conv::u64_to_usize(u64::from(num_nodes));
        let meminfo = self
            .privcmd
            .buf_zeroed::<xen_sysctl_meminfo>(n)
            .map_err(buffer_error(OP))?;
        let distance = self
            .privcmd
            .buf_zeroed::<u32>(n.saturating_mul(n))
            .map_err(buffer_error(OP))?;
        let reply = self.sysctl(OP, sys::XEN_SYSCTL_numainfo, |u| {
            u.numainfo.num_nodes = num_nodes;
            u.numainfo.meminfo.p = meminfo.handle();
            u.numainfo.distance.p = distance.handle();
        })?;
        let got = conv::u64_to_usize(u64::from(member!(reply, numainfo).num_nodes)).min(n);
        let nodes = (0..got)
            .filter_map(|i| meminfo.get(i))
            .map(|m| NodeMemory {
                memsize: m.memsize,
                memfree: m.memfree,
            })
            .collect();
        // Xen lays the matrix out with the returned node count as row length.
        let distance = (0..got * got).filter_map(|i| distance.get(i)).collect();

        let sizing = self.sysctl(TOPO_OP, sys::XEN_SYSCTL_cputopoinfo, |_| {})?;
        let num_cpus = member!(sizing, cputopoinfo).num_cpus;
        let ncpus = conv::u64_to_usize(u64::from(num_cpus));
        let topo = self
            .privcmd
            .buf_zeroed::<xen_sysctl_cputopo>(ncpus)
            .map_err(buffer_error(TOPO_OP))?;
        let reply = self.sysctl(TOPO_OP, sys::XEN_SYSCTL_cputopoinfo, |u| {
            u.cputopoinfo.num_cpus = num_cpus;
            u.cputopoinfo.cputopo.p = topo.handle();
        })?;
        let cpus = conv::u64_to_usize(u64::from(member!(reply, cputopoinfo).num_cpus)).min(ncpus);
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
        let sizing = self.sysctl(OP, sys::XEN_SYSCTL_get_cpu_policy, |u| {
            u.cpu_policy.index = index;
        })?;
        let sizing = member!(sizing, cpu_policy);
        let leaves = self
            .privcmd
            .buf_zeroed::<xen_cpuid_leaf>(conv::u64_to_usize(u64::from(sizing.nr_leaves)))
            .map_err(buffer_error(OP))?;
        let msrs = self
            .privcmd
            .buf_zeroed::<xen_msr_entry>(conv::u64_to_usize(u64::from(sizing.nr_msrs)))
            .map_err(buffer_error(OP))?;
        let reply = self.sysctl(OP, sys::XEN_SYSCTL_get_cpu_policy, |u| {
            u.cpu_policy.index = index;
            u.cpu_policy.nr_leaves = sizing.nr_leaves;
            u.cpu_policy.nr_msrs = sizing.nr_msrs;
            u.cpu_policy.leaves.p = leaves.handle();
            u.cpu_policy.msrs.p = msrs.handle();
        })?;
        let got = member!(reply, cpu_policy);
        Ok(policy_from_buffers(
            &leaves,
            got.nr_leaves,
            &msrs,
            got.nr_msrs,
        ))
    }
}
