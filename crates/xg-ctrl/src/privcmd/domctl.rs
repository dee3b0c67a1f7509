//! `__HYPERVISOR_domctl` and the [`DomainOps`] implementation.

use xg_sys as sys;

use super::abi::{xen_cpuid_leaf, xen_domctl, xen_domctl__bindgen_ty_1, xen_msr_entry};
use super::hypercall::nr;
use super::{hvm, XenCtrl};
use crate::error::{Error, Op, Result};
use crate::ops::{
    AffinityKind, CpuPolicy, CreditParams, DomainConfig, DomainInfo, DomainOps,
    DOMCTL_INTERFACE_VERSION,
};
use crate::types::{conv, DomId, Errno};

/// `XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI`: what libxl gives an HVM guest.
pub(crate) const EMU_HVM: u32 = sys::XEN_X86_EMU_ALL & !sys::XEN_X86_EMU_VPCI;
/// `XEN_DOMCTL_GRANT_version(1)`: grant table v1, which every Xen accepts.
pub(crate) const GRANT_OPTS_V1: u32 = 1 & sys::XEN_DOMCTL_GRANT_version_mask;
/// `XEN_VCPUAFFINITY_HARD` (a macro the bindings do not carry).
pub(crate) const VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `XEN_VCPUAFFINITY_SOFT`.
pub(crate) const VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// "No error" for err_leaf/err_subleaf/err_msr (`~0u`, as libxenguest presets them).
pub(crate) const NO_ERROR_INDEX: u32 = u32::MAX;

/// Extra attempts on EFAULT for read-only domctls when buffers may fault
/// (libxenctrl's `do_domctl_retry_efault`).
const EFAULT_RETRIES: u32 = 2;

/// Whether a domctl may be reissued after EFAULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Issue once (libxenctrl `do_domctl`).
    Once,
    /// Up to two more times when hypercall buffers are not device-backed
    /// (`do_domctl_retry_efault`); only for queries that change nothing.
    Efault,
}

/// EACCES from a domctl or sysctl means Xen speaks another interface version.
pub(crate) fn interface_error(op: Op, compiled: u32, errno: Errno) -> Error {
    if errno.0 == libc::EACCES {
        Error::InterfaceVersion { op, compiled }
    } else {
        Error::hypercall(op, errno.0)
    }
}

fn buffer_error(op: Op) -> impl Fn(Errno) -> Error {
    move |e| Error::hypercall(op, e.0)
}

impl XenCtrl {
    /// Issues one domctl whose union `fill` sets up in a zeroed buffer. Returns the
    /// outcome and Xen's copy of the domctl, which is read back even on failure
    /// (`set_cpu_policy` reports the offending leaf there).
    pub(crate) fn domctl_reply(
        &self,
        op: Op,
        command: u32,
        domid: DomId,
        retry: Retry,
        fill: impl FnOnce(&mut xen_domctl__bindgen_ty_1),
    ) -> (Result<()>, xen_domctl) {
        let mut buf = match self.privcmd.buf_zeroed::<xen_domctl>(1) {
            Ok(buf) => buf,
            Err(e) => return (Err(Error::hypercall(op, e.0)), xen_domctl::default()),
        };
        buf.update(0, |d| {
            d.cmd = command;
            d.interface_version = DOMCTL_INTERFACE_VERSION;
            d.domain = domid.0;
            fill(&mut d.u);
        });
        let retries = match retry {
            Retry::Efault if !self.privcmd.buffers().never_faults() => EFAULT_RETRIES,
            _ => 0,
        };
        let mut attempt = 0;
        let outcome = loop {
            match self.privcmd.hypercall(nr::DOMCTL, [buf.addr(), 0, 0, 0, 0]) {
                Err(Errno(libc::EFAULT)) if attempt < retries => attempt += 1,
                other => break other,
            }
        };
        log::trace!("domctl {op} d{domid}: {outcome:?}");
        let reply = buf.read().unwrap_or_default();
        let outcome = outcome
            .map(|_| ())
            .map_err(|e| interface_error(op, DOMCTL_INTERFACE_VERSION, e));
        (outcome, reply)
    }

    /// [`Self::domctl_reply`] for callers that need the reply only on success.
    pub(crate) fn domctl(
        &self,
        op: Op,
        command: u32,
        domid: DomId,
        retry: Retry,
        fill: impl FnOnce(&mut xen_domctl__bindgen_ty_1),
    ) -> Result<xen_domctl> {
        let (outcome, reply) = self.domctl_reply(op, command, domid, retry, fill);
        outcome.map(|()| reply)
    }

    /// The CPU bitmap size of this host (`xc_get_cpumap_size`), cached like libxenctrl.
    fn cpumap_bytes(&self) -> Result<usize> {
        Ok(self.host_sizes()?.0)
    }

    /// The node bitmap size of this host (`xc_get_nodemap_size`).
    fn nodemap_bytes(&self) -> Result<usize> {
        Ok(self.host_sizes()?.1)
    }
}

/// `map` resized to `size` bytes; set bits beyond the host's CPUs/nodes are an error.
fn fit_bitmap(op: Op, map: &[u8], size: usize) -> Result<Vec<u8>> {
    if map.iter().skip(size).any(|&b| b != 0) {
        return Err(Error::InvalidArgument {
            op,
            detail: format!("bitmap has bits beyond the host's {size} bytes"),
        });
    }
    let mut out = map.to_vec();
    out.resize(size, 0);
    Ok(out)
}

fn bits(op: Op, bytes: usize) -> Result<u32> {
    bytes
        .checked_mul(8)
        .and_then(|b| u32::try_from(b).ok())
        .ok_or_else(|| Error::InvalidArgument {
            op,
            detail: format!("bitmap of {bytes} bytes is too large"),
        })
}

fn u32_arg(op: Op, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidArgument {
        op,
        detail: format!("{what} {v} does not fit in 32 bits"),
    })
}

fn i32_arg(op: Op, what: &str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidArgument {
        op,
        detail: format!("{what} {v} is too large"),
    })
}

/// Reads a union member of a domctl reply.
macro_rules! member {
    ($reply:expr, $field:ident) => {
        // SAFETY: every member of the domctl union is plain data (Pod) for which any
        // bit pattern is valid; Xen filled the member this command uses.
        unsafe { $reply.u.$field }
    };
}

impl DomainOps for XenCtrl {
    fn create_domain(&self, domid: DomId, config: &DomainConfig) -> Result<DomId> {
        const OP: Op = "domctl createdomain";
        let max_grant_frames = i32_arg(OP, "max_grant_frames", config.max_grant_frames)?;
        let max_maptrack_frames = i32_arg(OP, "max_maptrack_frames", config.max_maptrack_frames)?;
        let mut flags = 0;
        if config.hvm {
            flags |= sys::XEN_DOMCTL_CDF_hvm;
            if config.hap {
                flags |= sys::XEN_DOMCTL_CDF_hap;
            }
        }
        let reply = self.domctl(OP, sys::XEN_DOMCTL_createdomain, domid, Retry::Once, |u| {
            u.createdomain.handle = config.handle;
            u.createdomain.flags = flags;
            u.createdomain.max_vcpus = config.max_vcpus;
            u.createdomain.max_evtchn_port = config.max_evtchn_port;
            u.createdomain.max_grant_frames = max_grant_frames;
            u.createdomain.max_maptrack_frames = max_maptrack_frames;
            u.createdomain.grant_opts = GRANT_OPTS_V1;
            u.createdomain.arch.emulation_flags = if config.hvm { EMU_HVM } else { 0 };
        })?;
        // Xen writes the new domain's id into `domain`.
        Ok(DomId(reply.domain))
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        const OP: Op = "domctl getdomaininfo";
        let reply = self.domctl(
            OP,
            sys::XEN_DOMCTL_getdomaininfo,
            domid,
            Retry::Efault,
            |_| {},
        )?;
        let info = member!(reply, getdomaininfo);
        // Xen 4.17 answers for the next existing domain when `domid` does not exist.
        if info.domain != domid.0 {
            return Err(Error::hypercall(OP, libc::ESRCH));
        }
        Ok(DomainInfo {
            domid: DomId(info.domain),
            flags: info.flags,
            tot_pages: info.tot_pages,
            max_pages: info.max_pages,
            outstanding_pages: info.outstanding_pages,
            shared_info_frame: info.shared_info_frame,
            nr_online_vcpus: info.nr_online_vcpus,
            max_vcpu_id: info.max_vcpu_id,
            cpupool: info.cpupool,
        })
    }

    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<()> {
        self.domctl(
            "domctl max_vcpus",
            sys::XEN_DOMCTL_max_vcpus,
            domid,
            Retry::Once,
            |u| {
                u.max_vcpus.max = max;
            },
        )
        .map(|_| ())
    }

    fn set_max_mem(&self, domid: DomId, max_kib: u64) -> Result<()> {
        self.domctl(
            "domctl max_mem",
            sys::XEN_DOMCTL_max_mem,
            domid,
            Retry::Once,
            |u| {
                u.max_mem.max_memkb = max_kib;
            },
        )
        .map(|_| ())
    }

    fn unpause(&self, domid: DomId) -> Result<()> {
        let op = "domctl unpausedomain";
        self.domctl(
            op,
            sys::XEN_DOMCTL_unpausedomain,
            domid,
            Retry::Once,
            |_| {},
        )
        .map(|_| ())
    }

    fn resume_domain(&self, domid: DomId) -> Result<()> {
        self.domctl(
            "domctl resumedomain",
            sys::XEN_DOMCTL_resumedomain,
            domid,
            Retry::Once,
            |_| {},
        )
        .map(|_| ())
    }

    fn destroy(&self, domid: DomId) -> Result<()> {
        let op = "domctl destroydomain";
        self.domctl(
            op,
            sys::XEN_DOMCTL_destroydomain,
            domid,
            Retry::Once,
            |_| {},
        )
        .map(|_| ())
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpumap: &[u8],
    ) -> Result<Vec<u8>> {
        const OP: Op = "domctl setvcpuaffinity";
        let size = self.cpumap_bytes()?;
        let map = fit_bitmap(OP, cpumap, size)?;
        let nr_bits = bits(OP, size)?;
        let buf = self.privcmd.buf_slice(&map).map_err(buffer_error(OP))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_setvcpuaffinity,
            domid,
            Retry::Once,
            |u| {
                fill_affinity(u, vcpu, kind, buf.handle(), nr_bits);
            },
        )?;
        // Xen rewrote the map with the effective affinity.
        Ok(buf.to_vec())
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32, kind: AffinityKind) -> Result<Vec<u8>> {
        const OP: Op = "domctl getvcpuaffinity";
        let size = self.cpumap_bytes()?;
        let nr_bits = bits(OP, size)?;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(size)
            .map_err(buffer_error(OP))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_getvcpuaffinity,
            domid,
            Retry::Efault,
            |u| {
                fill_affinity(u, vcpu, kind, buf.handle(), nr_bits);
            },
        )?;
        Ok(buf.to_vec())
    }

    fn set_node_affinity(&self, domid: DomId, nodemap: &[u8]) -> Result<()> {
        const OP: Op = "domctl setnodeaffinity";
        let size = self.nodemap_bytes()?;
        let map = fit_bitmap(OP, nodemap, size)?;
        let nr_bits = bits(OP, size)?;
        let buf = self.privcmd.buf_slice(&map).map_err(buffer_error(OP))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_setnodeaffinity,
            domid,
            Retry::Once,
            |u| {
                u.nodeaffinity.nodemap.bitmap.p = buf.handle();
                u.nodeaffinity.nodemap.nr_bits = nr_bits;
            },
        )
        .map(|_| ())
    }

    fn node_affinity(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: Op = "domctl getnodeaffinity";
        let size = self.nodemap_bytes()?;
        let nr_bits = bits(OP, size)?;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(size)
            .map_err(buffer_error(OP))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_getnodeaffinity,
            domid,
            Retry::Efault,
            |u| {
                u.nodeaffinity.nodemap.bitmap.p = buf.handle();
                u.nodeaffinity.nodemap.nr_bits = nr_bits;
            },
        )?;
        Ok(buf.to_vec())
    }

    fn sched_credit_get(&self, domid: DomId) -> Result<CreditParams> {
        let op = "domctl scheduler_op getinfo";
        let reply = self.domctl(
            op,
            sys::XEN_DOMCTL_scheduler_op,
            domid,
            Retry::Efault,
            |u| {
                u.scheduler_op.sched_id = sys::XEN_SCHEDULER_CREDIT;
                u.scheduler_op.cmd = sys::XEN_DOMCTL_SCHEDOP_getinfo;
            },
        )?;
        let sched = member!(reply, scheduler_op);
        // SAFETY: the scheduler union is plain data; Xen filled `credit` for sched_id CREDIT.
        let credit = unsafe { sched.u.credit };
        Ok(CreditParams {
            weight: credit.weight,
            cap: credit.cap,
        })
    }

    fn sched_credit_set(&self, domid: DomId, params: CreditParams) -> Result<()> {
        let op = "domctl scheduler_op putinfo";
        self.domctl(op, sys::XEN_DOMCTL_scheduler_op, domid, Retry::Once, |u| {
            u.scheduler_op.sched_id = sys::XEN_SCHEDULER_CREDIT;
            u.scheduler_op.cmd = sys::XEN_DOMCTL_SCHEDOP_putinfo;
            u.scheduler_op.u.credit.weight = params.weight;
            u.scheduler_op.u.credit.cap = params.cap;
        })
        .map(|_| ())
    }

    fn set_tsc_info(&self, domid: DomId, tsc_mode: u32) -> Result<()> {
        self.domctl(
            "domctl settscinfo",
            sys::XEN_DOMCTL_settscinfo,
            domid,
            Retry::Once,
            |u| {
                u.tsc_info.tsc_mode = tsc_mode;
            },
        )
        .map(|_| ())
    }

    fn set_time_offset(&self, domid: DomId, seconds: i32) -> Result<()> {
        let op = "domctl settimeoffset";
        self.domctl(op, sys::XEN_DOMCTL_settimeoffset, domid, Retry::Once, |u| {
            u.settimeoffset.time_offset_seconds = i64::from(seconds);
        })
        .map(|_| ())
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        hvm::set_param(&self.privcmd, domid, param, value)
    }

    fn hvm_param(&self, domid: DomId, param: u32) -> Result<u64> {
        hvm::get_param(&self.privcmd, domid, param)
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        super::evtchn::alloc_unbound(&self.privcmd, domid, remote)
    }

    fn domain_cpu_policy(&self, domid: DomId) -> Result<CpuPolicy> {
        const OP: Op = "domctl get_cpu_policy";
        // NULL arrays: Xen reports the maximum counts.
        let sizing = self.domctl(
            OP,
            sys::XEN_DOMCTL_get_cpu_policy,
            domid,
            Retry::Efault,
            |_| {},
        )?;
        let sizing = member!(sizing, cpu_policy);
        let leaves = self
            .privcmd
            .buf_zeroed::<xen_cpuid_leaf>(conv::u64_to_usize(u64::from(sizing.nr_leaves)))
            .map_err(buffer_error(OP))?;
        let msrs = self
            .privcmd
            .buf_zeroed::<xen_msr_entry>(conv::u64_to_usize(u64::from(sizing.nr_msrs)))
            .map_err(buffer_error(OP))?;
        let reply = self.domctl(
            OP,
            sys::XEN_DOMCTL_get_cpu_policy,
            domid,
            Retry::Efault,
            |u| {
                u.cpu_policy.nr_leaves = sizing.nr_leaves;
                u.cpu_policy.nr_msrs = sizing.nr_msrs;
                u.cpu_policy.leaves.p = leaves.handle();
                u.cpu_policy.msrs.p = msrs.handle();
            },
        )?;
        let got = member!(reply, cpu_policy);
        Ok(super::sysctl::policy_from_buffers(
            &leaves,
            got.nr_leaves,
            &msrs,
            got.nr_msrs,
        ))
    }

    fn set_domain_cpu_policy(&self, domid: DomId, policy: &CpuPolicy) -> Result<()> {
        const OP: Op = "domctl set_cpu_policy";
        let leaves: Vec<xen_cpuid_leaf> = policy
            .leaves
            .iter()
            .map(|l| xen_cpuid_leaf {
                leaf: l.leaf,
                subleaf: l.subleaf,
                a: l.a,
                b: l.b,
                c: l.c,
                d: l.d,
            })
            .collect();
        let msrs: Vec<xen_msr_entry> = policy
            .msrs
            .iter()
            .map(|m| xen_msr_entry {
                idx: m.idx,
                flags: m.flags,
                val: m.val,
            })
            .collect();
        let nr_leaves = u32_arg(OP, "leaf count", leaves.len())?;
        let nr_msrs = u32_arg(OP, "MSR count", msrs.len())?;
        let leaves_buf = self.privcmd.buf_slice(&leaves).map_err(buffer_error(OP))?;
        let msrs_buf = self.privcmd.buf_slice(&msrs).map_err(buffer_error(OP))?;
        let (outcome, reply) = self.domctl_reply(
            OP,
            sys::XEN_DOMCTL_set_cpu_policy,
            domid,
            Retry::Once,
            |u| {
                u.cpu_policy.nr_leaves = nr_leaves;
                u.cpu_policy.nr_msrs = nr_msrs;
                u.cpu_policy.leaves.p = leaves_buf.handle();
                u.cpu_policy.msrs.p = msrs_buf.handle();
                u.cpu_policy.err_leaf = NO_ERROR_INDEX;
                u.cpu_policy.err_subleaf = NO_ERROR_INDEX;
                u.cpu_policy.err_msr = NO_ERROR_INDEX;
            },
        );
        match outcome {
            // EACCES (interface version) and the like say nothing about the policy.
            Err(Error::Hypercall { source, .. }) => {
                let p = member!(reply, cpu_policy);
                Err(Error::CpuPolicyRejected {
                    domid,
                    err_leaf: p.err_leaf,
                    err_subleaf: p.err_subleaf,
                    err_msr: p.err_msr,
                    source,
                })
            }
            other => other,
        }
    }

    fn hvm_context(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: Op = "domctl gethvmcontext";
        // A NULL buffer asks for the size.
        let sizing = self.domctl(
            OP,
            sys::XEN_DOMCTL_gethvmcontext,
            domid,
            Retry::Efault,
            |_| {},
        )?;
        let size = member!(sizing, hvmcontext).size;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(conv::u64_to_usize(u64::from(size)))
            .map_err(buffer_error(OP))?;
        let reply = self.domctl(
            OP,
            sys::XEN_DOMCTL_gethvmcontext,
            domid,
            Retry::Efault,
            |u| {
                u.hvmcontext.size = size;
                u.hvmcontext.buffer.p = buf.handle();
            },
        )?;
        let mut blob = buf.to_vec();
        blob.truncate(conv::u64_to_usize(u64::from(
            member!(reply, hvmcontext).size,
        )));
        Ok(blob)
    }

    fn set_hvm_context(&self, domid: DomId, blob: &[u8]) -> Result<()> {
        const OP: Op = "domctl sethvmcontext";
        let size = u32_arg(OP, "context size", blob.len())?;
        let buf = self.privcmd.buf_slice(blob).map_err(buffer_error(OP))?;
        self.domctl(OP, sys::XEN_DOMCTL_sethvmcontext, domid, Retry::Once, |u| {
            u.hvmcontext.size = size;
            u.hvmcontext.buffer.p = buf.handle();
        })
        .map(|_| ())
    }
}

/// Only the requested map is named: Xen ignores the other one. (Union members are
/// written field by field: writes are safe, borrows of a member are not.)
fn fill_affinity(
    u: &mut xen_domctl__bindgen_ty_1,
    vcpu: u32,
    kind: AffinityKind,
    map: *mut u8,
    nr_bits: u32,
) {
    u.vcpuaffinity.vcpu = vcpu;
    match kind {
        AffinityKind::Hard => {
            u.vcpuaffinity.flags = VCPUAFFINITY_HARD;
            u.vcpuaffinity.cpumap_hard.bitmap.p = map;
            u.vcpuaffinity.cpumap_hard.nr_bits = nr_bits;
        }
        AffinityKind::Soft => {
            u.vcpuaffinity.flags = VCPUAFFINITY_SOFT;
            u.vcpuaffinity.cpumap_soft.bitmap.p = map;
            u.vcpuaffinity.cpumap_soft.nr_bits = nr_bits;
        }
    }
}
