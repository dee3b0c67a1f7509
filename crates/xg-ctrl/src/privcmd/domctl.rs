//! `__HYPERVISOR_domctl` and the [`DomainOps`] implementation.

use std::mem::size_of;
use std::ptr;

use super::abi::{self, XenDomctl, DOMCTL_PAYLOAD};
use super::buffer::Pod;
use super::hypercall::nr;
use super::{hvm, XenCtrl};
use crate::error::{Error, Op, Result};
use crate::ops::{
    AffinityKind, CpuPolicy, CreditParams, DomainConfig, DomainInfo, DomainOps,
    DOMCTL_INTERFACE_VERSION,
};
use crate::types::{conv, DomId, Errno};

/// `XEN_DOMCTL_*` command numbers (identical in 4.17 and 4.20).
pub(crate) mod cmd {
    pub(crate) const CREATEDOMAIN: u32 = 1;
    pub(crate) const DESTROYDOMAIN: u32 = 2;
    pub(crate) const UNPAUSEDOMAIN: u32 = 4;
    pub(crate) const GETDOMAININFO: u32 = 5;
    pub(crate) const SETVCPUAFFINITY: u32 = 9;
    pub(crate) const MAX_MEM: u32 = 11;
    pub(crate) const MAX_VCPUS: u32 = 15;
    pub(crate) const SCHEDULER_OP: u32 = 16;
    pub(crate) const SETTIMEOFFSET: u32 = 24;
    pub(crate) const GETVCPUAFFINITY: u32 = 25;
    pub(crate) const GETHVMCONTEXT: u32 = 33;
    pub(crate) const SETHVMCONTEXT: u32 = 34;
    pub(crate) const SETTSCINFO: u32 = 60;
    pub(crate) const SETNODEAFFINITY: u32 = 68;
    pub(crate) const GETNODEAFFINITY: u32 = 69;
    pub(crate) const GET_CPU_POLICY: u32 = 82;
    pub(crate) const SET_CPU_POLICY: u32 = 83;
}

/// `XEN_DOMCTL_CDF_hvm`.
pub(crate) const CDF_HVM: u32 = 1 << 0;
/// `XEN_DOMCTL_CDF_hap`.
pub(crate) const CDF_HAP: u32 = 1 << 1;
/// `XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI`: what libxl gives an HVM guest.
pub(crate) const EMU_HVM: u32 = 0x3FF;
/// `XEN_DOMCTL_GRANT_version(1)`: grant table v1 is accepted by every Xen.
pub(crate) const GRANT_OPTS_V1: u32 = 1;
/// `XEN_VCPUAFFINITY_HARD`.
pub(crate) const VCPUAFFINITY_HARD: u32 = 1;
/// `XEN_VCPUAFFINITY_SOFT`.
pub(crate) const VCPUAFFINITY_SOFT: u32 = 2;
/// `XEN_SCHEDULER_CREDIT`.
pub(crate) const SCHEDULER_CREDIT: u32 = 5;
/// `XEN_DOMCTL_SCHEDOP_putinfo`.
pub(crate) const SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`.
pub(crate) const SCHEDOP_GETINFO: u32 = 1;
/// `XEN_CPUID_NO_SUBLEAF`, also "no error" for err_leaf/err_subleaf/err_msr.
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
    /// (`do_domctl_retry_efault`; only for queries that change nothing).
    Efault,
}

/// Copies `payload` into the first bytes of a zeroed union.
fn encode<P: Pod>(payload: &P) -> [u8; DOMCTL_PAYLOAD] {
    const { assert!(size_of::<P>() <= DOMCTL_PAYLOAD) };
    let mut u = [0u8; DOMCTL_PAYLOAD];
    // SAFETY: `P` is Pod without implicit padding and fits in `u` (checked above).
    unsafe {
        ptr::copy_nonoverlapping(
            ptr::from_ref(payload).cast::<u8>(),
            u.as_mut_ptr(),
            size_of::<P>(),
        );
    }
    u
}

/// Reads a `P` from the start of a union.
fn decode<P: Pod>(u: &[u8; DOMCTL_PAYLOAD]) -> P {
    const { assert!(size_of::<P>() <= DOMCTL_PAYLOAD) };
    // SAFETY: `u` holds at least `size_of::<P>()` bytes and every bit pattern is a valid
    // `P`; read_unaligned because the array has alignment 1.
    unsafe { ptr::read_unaligned(u.as_ptr().cast::<P>()) }
}

impl XenCtrl {
    /// Issues one domctl with `payload` as its union member; the payload is copied back
    /// (even on failure, so err_leaf & co. are visible) and the domain field returned.
    pub(crate) fn domctl<P: Pod>(
        &self,
        op: Op,
        command: u32,
        domid: DomId,
        payload: &mut P,
        retry: Retry,
    ) -> Result<DomId> {
        let request = XenDomctl {
            cmd: command,
            interface_version: DOMCTL_INTERFACE_VERSION,
            domain: domid.0,
            _pad: [0; 6],
            u: encode(payload),
        };
        let buf = self
            .privcmd
            .buf_value(&request)
            .map_err(|e| Error::hypercall(op, e.0))?;
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
        let reply = buf.read().unwrap_or(request);
        *payload = decode(&reply.u);
        log::trace!("domctl {op} d{domid}: {outcome:?}");
        match outcome {
            Ok(_) => Ok(DomId(reply.domain)),
            Err(e) => Err(domctl_error(op, DOMCTL_INTERFACE_VERSION, e)),
        }
    }

    /// A domctl whose only payload is what the caller passes and that returns nothing.
    fn domctl_simple<P: Pod>(
        &self,
        op: Op,
        command: u32,
        domid: DomId,
        mut payload: P,
    ) -> Result<()> {
        self.domctl(op, command, domid, &mut payload, Retry::Once)
            .map(|_| ())
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

/// EACCES from a domctl or sysctl means Xen speaks another interface version.
pub(crate) fn domctl_error(op: Op, compiled: u32, errno: Errno) -> Error {
    if errno.0 == libc::EACCES {
        Error::InterfaceVersion { op, compiled }
    } else {
        Error::hypercall(op, errno.0)
    }
}

/// `map` resized to `size` bytes; bits beyond the host's CPUs/nodes are an error.
fn fit_bitmap(op: Op, map: &[u8], size: usize) -> Result<Vec<u8>> {
    if map.iter().skip(size).any(|&b| b != 0) {
        return Err(Error::InvalidArgument {
            op,
            detail: format!("bitmap has bits beyond the host's {} bytes", size),
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

impl DomainOps for XenCtrl {
    fn create_domain(&self, domid: DomId, config: &DomainConfig) -> Result<DomId> {
        const OP: Op = "domctl createdomain";
        let int = |what: &str, v: u32| {
            i32::try_from(v).map_err(|_| Error::InvalidArgument {
                op: OP,
                detail: format!("{what} {v} is too large"),
            })
        };
        let mut flags = 0;
        if config.hvm {
            flags |= CDF_HVM;
            if config.hap {
                flags |= CDF_HAP;
            }
        }
        let mut payload = abi::CreateDomain {
            handle: config.handle,
            flags,
            max_vcpus: config.max_vcpus,
            max_evtchn_port: config.max_evtchn_port,
            max_grant_frames: int("max_grant_frames", config.max_grant_frames)?,
            max_maptrack_frames: int("max_maptrack_frames", config.max_maptrack_frames)?,
            grant_opts: GRANT_OPTS_V1,
            emulation_flags: if config.hvm { EMU_HVM } else { 0 },
            ..abi::CreateDomain::default()
        };
        // Xen writes the new domain's id into `domain`.
        self.domctl(OP, cmd::CREATEDOMAIN, domid, &mut payload, Retry::Once)
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        const OP: Op = "domctl getdomaininfo";
        let mut info = abi::GetDomainInfo::default();
        self.domctl(OP, cmd::GETDOMAININFO, domid, &mut info, Retry::Efault)?;
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
        self.domctl_simple(
            "domctl max_vcpus",
            cmd::MAX_VCPUS,
            domid,
            abi::MaxVcpus { max },
        )
    }

    fn set_max_mem(&self, domid: DomId, max_kib: u64) -> Result<()> {
        self.domctl_simple(
            "domctl max_mem",
            cmd::MAX_MEM,
            domid,
            abi::MaxMem { max_memkb: max_kib },
        )
    }

    fn unpause(&self, domid: DomId) -> Result<()> {
        self.domctl_simple(
            "domctl unpausedomain",
            cmd::UNPAUSEDOMAIN,
            domid,
            abi::MaxMem::default(),
        )
    }

    fn destroy(&self, domid: DomId) -> Result<()> {
        self.domctl_simple(
            "domctl destroydomain",
            cmd::DESTROYDOMAIN,
            domid,
            abi::MaxMem::default(),
        )
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
        let buf = self
            .privcmd
            .buf_slice(&map)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = affinity_payload(vcpu, kind, buf.addr(), bits(OP, size)?);
        self.domctl(OP, cmd::SETVCPUAFFINITY, domid, &mut payload, Retry::Once)?;
        Ok(buf.to_vec())
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32, kind: AffinityKind) -> Result<Vec<u8>> {
        const OP: Op = "domctl getvcpuaffinity";
        let size = self.cpumap_bytes()?;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(size)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = affinity_payload(vcpu, kind, buf.addr(), bits(OP, size)?);
        self.domctl(OP, cmd::GETVCPUAFFINITY, domid, &mut payload, Retry::Efault)?;
        Ok(buf.to_vec())
    }

    fn set_node_affinity(&self, domid: DomId, nodemap: &[u8]) -> Result<()> {
        const OP: Op = "domctl setnodeaffinity";
        let size = self.nodemap_bytes()?;
        let map = fit_bitmap(OP, nodemap, size)?;
        let buf = self
            .privcmd
            .buf_slice(&map)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let payload = abi::NodeAffinity {
            nodemap: abi::XenctlBitmap {
                bitmap: buf.addr(),
                nr_bits: bits(OP, size)?,
                _pad: 0,
            },
        };
        self.domctl_simple(OP, cmd::SETNODEAFFINITY, domid, payload)
    }

    fn node_affinity(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: Op = "domctl getnodeaffinity";
        let size = self.nodemap_bytes()?;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(size)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = abi::NodeAffinity {
            nodemap: abi::XenctlBitmap {
                bitmap: buf.addr(),
                nr_bits: bits(OP, size)?,
                _pad: 0,
            },
        };
        self.domctl(OP, cmd::GETNODEAFFINITY, domid, &mut payload, Retry::Efault)?;
        Ok(buf.to_vec())
    }

    fn sched_credit_get(&self, domid: DomId) -> Result<CreditParams> {
        let mut payload = abi::SchedulerOp {
            sched_id: SCHEDULER_CREDIT,
            cmd: SCHEDOP_GETINFO,
            ..abi::SchedulerOp::default()
        };
        self.domctl(
            "domctl scheduler_op getinfo",
            cmd::SCHEDULER_OP,
            domid,
            &mut payload,
            Retry::Efault,
        )?;
        Ok(CreditParams {
            weight: payload.weight,
            cap: payload.cap,
        })
    }

    fn sched_credit_set(&self, domid: DomId, params: CreditParams) -> Result<()> {
        let payload = abi::SchedulerOp {
            sched_id: SCHEDULER_CREDIT,
            cmd: SCHEDOP_PUTINFO,
            weight: params.weight,
            cap: params.cap,
            _rest: [0; 12],
        };
        self.domctl_simple(
            "domctl scheduler_op putinfo",
            cmd::SCHEDULER_OP,
            domid,
            payload,
        )
    }

    fn set_tsc_info(&self, domid: DomId, tsc_mode: u32) -> Result<()> {
        let payload = abi::TscInfo {
            tsc_mode,
            ..abi::TscInfo::default()
        };
        self.domctl_simple("domctl settscinfo", cmd::SETTSCINFO, domid, payload)
    }

    fn set_time_offset(&self, domid: DomId, seconds: i32) -> Result<()> {
        let payload = abi::SetTimeOffset {
            time_offset_seconds: i64::from(seconds),
        };
        self.domctl_simple("domctl settimeoffset", cmd::SETTIMEOFFSET, domid, payload)
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        hvm::set_param(&self.privcmd, domid, param, value)
    }

    fn hvm_param(&self, domid: DomId, param: u32) -> Result<u64> {
        hvm::get_param(&self.privcmd, domid, param)
    }

    fn domain_cpu_policy(&self, domid: DomId) -> Result<CpuPolicy> {
        const OP: Op = "domctl get_cpu_policy";
        // NULL arrays: Xen reports the maximum counts.
        let mut sizes = abi::DomctlCpuPolicy::default();
        self.domctl(OP, cmd::GET_CPU_POLICY, domid, &mut sizes, Retry::Efault)?;
        let leaves = self
            .privcmd
            .buf_zeroed::<abi::CpuidLeaf>(conv::u64_to_usize(u64::from(sizes.nr_leaves)))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let msrs = self
            .privcmd
            .buf_zeroed::<abi::MsrEntry>(conv::u64_to_usize(u64::from(sizes.nr_msrs)))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = abi::DomctlCpuPolicy {
            nr_leaves: sizes.nr_leaves,
            nr_msrs: sizes.nr_msrs,
            leaves: leaves.addr(),
            msrs: msrs.addr(),
            ..abi::DomctlCpuPolicy::default()
        };
        self.domctl(OP, cmd::GET_CPU_POLICY, domid, &mut payload, Retry::Efault)?;
        Ok(super::sysctl::policy_from_buffers(
            &leaves,
            payload.nr_leaves,
            &msrs,
            payload.nr_msrs,
        ))
    }

    fn set_domain_cpu_policy(&self, domid: DomId, policy: &CpuPolicy) -> Result<()> {
        const OP: Op = "domctl set_cpu_policy";
        let leaves: Vec<abi::CpuidLeaf> = policy
            .leaves
            .iter()
            .map(|l| abi::CpuidLeaf {
                leaf: l.leaf,
                subleaf: l.subleaf,
                a: l.a,
                b: l.b,
                c: l.c,
                d: l.d,
            })
            .collect();
        let msrs: Vec<abi::MsrEntry> = policy
            .msrs
            .iter()
            .map(|m| abi::MsrEntry {
                idx: m.idx,
                flags: m.flags,
                val: m.val,
            })
            .collect();
        let leaves_buf = self
            .privcmd
            .buf_slice(&leaves)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let msrs_buf = self
            .privcmd
            .buf_slice(&msrs)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = abi::DomctlCpuPolicy {
            nr_leaves: u32_arg(OP, "leaf count", leaves.len())?,
            nr_msrs: u32_arg(OP, "MSR count", msrs.len())?,
            leaves: leaves_buf.addr(),
            msrs: msrs_buf.addr(),
            err_leaf: NO_ERROR_INDEX,
            err_subleaf: NO_ERROR_INDEX,
            err_msr: NO_ERROR_INDEX,
            _pad: 0,
        };
        let result = self.domctl(OP, cmd::SET_CPU_POLICY, domid, &mut payload, Retry::Once);
        if result.is_err() {
            log::debug!(
                "{OP} d{domid} rejected: err_leaf {:#x} err_subleaf {:#x} err_msr {:#x}",
                payload.err_leaf,
                payload.err_subleaf,
                payload.err_msr
            );
        }
        result.map(|_| ())
    }

    fn hvm_context(&self, domid: DomId) -> Result<Vec<u8>> {
        const OP: Op = "domctl gethvmcontext";
        // A NULL buffer asks for the size.
        let mut sizing = abi::HvmContext::default();
        self.domctl(OP, cmd::GETHVMCONTEXT, domid, &mut sizing, Retry::Efault)?;
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(conv::u64_to_usize(u64::from(sizing.size)))
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut payload = abi::HvmContext {
            size: sizing.size,
            _pad: 0,
            buffer: buf.addr(),
        };
        self.domctl(OP, cmd::GETHVMCONTEXT, domid, &mut payload, Retry::Efault)?;
        let mut blob = buf.to_vec();
        blob.truncate(conv::u64_to_usize(u64::from(payload.size)));
        Ok(blob)
    }

    fn set_hvm_context(&self, domid: DomId, blob: &[u8]) -> Result<()> {
        const OP: Op = "domctl sethvmcontext";
        let buf = self
            .privcmd
            .buf_slice(blob)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let payload = abi::HvmContext {
            size: u32_arg(OP, "context size", blob.len())?,
            _pad: 0,
            buffer: buf.addr(),
        };
        self.domctl_simple(OP, cmd::SETHVMCONTEXT, domid, payload)
    }
}

fn affinity_payload(vcpu: u32, kind: AffinityKind, addr: u64, nr_bits: u32) -> abi::VcpuAffinity {
    let map = abi::XenctlBitmap {
        bitmap: addr,
        nr_bits,
        _pad: 0,
    };
    match kind {
        AffinityKind::Hard => abi::VcpuAffinity {
            vcpu,
            flags: VCPUAFFINITY_HARD,
            cpumap_hard: map,
            cpumap_soft: abi::XenctlBitmap::default(),
        },
        AffinityKind::Soft => abi::VcpuAffinity {
            vcpu,
            flags: VCPUAFFINITY_SOFT,
            cpumap_hard: abi::XenctlBitmap::default(),
            cpumap_soft: map,
        },
    }
}
