//! The [`PvOps`] implementation: populate with machine frames written back, foreign
//! maps by machine frame (what `IOCTL_PRIVCMD_MMAPBATCH_V2` takes for a PV domain), the
//! PV domctls and `MMUEXT_PIN_L*_TABLE`, and the reads and the vCPU reset of
//! `xc_domain_resume`'s PV path.

use xg_sys as sys;

use super::abi::xen_memory_reservation;
use super::buffer::Pod;
use super::domctl::Retry;
use super::foreign::{chunks, ForeignMapping, MAP_BATCH_FRAMES};
use super::memory::MAX_EXTENTS;
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::PvOps;
use crate::types::{conv, DomId, Errno, Gfn, MemFlags, Mfn, PageOrder};

/// `__HYPERVISOR_mmuext_op`.
const MMUEXT_OP: u64 = sys::__HYPERVISOR_mmuext_op as u64;

/// `struct mmuext_op` on x86_64: `cmd`, then the `arg1` and `arg2` unions.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MmuextOp {
    cmd: u32,
    pad: u32,
    arg1: u64,
    arg2: u64,
}

const _: () = assert!(std::mem::size_of::<MmuextOp>() == 24);
// SAFETY: a repr(C) struct of integers: every bit pattern is valid.
unsafe impl Pod for MmuextOp {}

/// `sizeof(vcpu_guest_context_any_t)`: the buffer `xc_vcpu_getcontext` bounces.
const VCPU_CONTEXT_SIZE: usize = 5168;

/// `struct xen_memory_domain`: the argument of `XENMEM_maximum_gpfn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MemoryDomain {
    domid: u16,
}

const _: () = assert!(std::mem::size_of::<MemoryDomain>() == 2);
// SAFETY: a repr(C) struct of one integer: every bit pattern is valid.
unsafe impl Pod for MemoryDomain {}

/// The frames `mfns[first..first + n]` as the gfn list of a foreign map.
fn frame_list(mfns: &[Mfn], first: u64, n: usize) -> Vec<Gfn> {
    let start = conv::u64_to_usize(first);
    mfns.iter().skip(start).take(n).map(|m| Gfn(m.0)).collect()
}

fn check_span(op: Op, mfns: &[Mfn], offset: u64, len: usize) -> Result<()> {
    let total = conv::usize_to_u64(mfns.len()) << 12;
    match offset.checked_add(conv::usize_to_u64(len)) {
        Some(end) if end <= total => Ok(()),
        _ => Err(Error::InvalidArgument {
            op,
            detail: format!(
                "{len} bytes at offset {offset:#x} exceed {} frames",
                mfns.len()
            ),
        }),
    }
}

impl PvOps for XenCtrl {
    fn populate_physmap_mfns(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<Vec<Mfn>> {
        const OP: Op = "memory_op populate_physmap";
        let nr_extents = conv::usize_to_u64(gfns.len());
        if nr_extents > MAX_EXTENTS {
            return Err(Error::InvalidArgument {
                op: OP,
                detail: format!("{nr_extents} extents exceed the limit of {MAX_EXTENTS}"),
            });
        }
        let frames: Vec<u64> = gfns.iter().map(|g| g.0).collect();
        let extents = self
            .privcmd
            .buf_slice(&frames)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut arg = self
            .privcmd
            .buf_zeroed::<xen_memory_reservation>(1)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        arg.update(0, |r| {
            r.extent_start.p = extents.handle();
            r.nr_extents = nr_extents;
            r.extent_order = u32::from(order.get());
            r.mem_flags = flags.0;
            r.domid = domid.0;
        });
        let done = self
            .privcmd
            .memory_op(sys::XENMEM_populate_physmap, arg.addr())
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let done = conv::u64_to_usize(done.min(nr_extents));
        // For a PV guest Xen replaces each done entry by the extent's first machine frame.
        Ok(extents.to_vec().into_iter().take(done).map(Mfn).collect())
    }

    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<()> {
        self.domctl(
            "domctl set_address_size",
            sys::XEN_DOMCTL_set_address_size,
            domid,
            Retry::Once,
            |u| u.address_size.size = bits,
        )
        .map(|_| ())
    }

    fn write_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, data: &[u8]) -> Result<()> {
        const OP: Op = "write machine frames";
        check_span(OP, mfns, offset, data.len())?;
        for chunk in chunks(OP, offset, data.len(), MAP_BATCH_FRAMES)? {
            let list = frame_list(mfns, chunk.first_gfn, chunk.frames);
            let map = ForeignMapping::map_gfns(&self.privcmd, domid, &list)?;
            map.write(chunk.offset, &data[chunk.data.clone()])?;
        }
        Ok(())
    }

    fn read_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, buf: &mut [u8]) -> Result<()> {
        const OP: Op = "read machine frames";
        check_span(OP, mfns, offset, buf.len())?;
        for chunk in chunks(OP, offset, buf.len(), MAP_BATCH_FRAMES)? {
            let list = frame_list(mfns, chunk.first_gfn, chunk.frames);
            // Read-only, as libxenguest maps what it reads: Xen refuses a writable
            // mapping of a PV guest's page tables (resume_slow walks them).
            let map = ForeignMapping::map_gfns_read_only(&self.privcmd, domid, &list)?;
            map.read(chunk.offset, &mut buf[chunk.data.clone()])?;
        }
        Ok(())
    }

    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &[u8]) -> Result<()> {
        const OP: Op = "domctl setvcpucontext";
        let buf = self
            .privcmd
            .buf_slice(context)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_setvcpucontext,
            domid,
            Retry::Once,
            |u| {
                u.vcpucontext.vcpu = vcpu;
                u.vcpucontext.ctxt.p = buf.handle().cast();
            },
        )
        .map(|_| ())
    }

    fn hypercall_init(&self, domid: DomId, mfn: Mfn) -> Result<()> {
        self.domctl(
            "domctl hypercall_init",
            sys::XEN_DOMCTL_hypercall_init,
            domid,
            Retry::Once,
            |u| u.hypercall_init.gmfn = mfn.0,
        )
        .map(|_| ())
    }

    fn address_size(&self, domid: DomId) -> Result<u32> {
        let reply = self.domctl(
            "domctl get_address_size",
            sys::XEN_DOMCTL_get_address_size,
            domid,
            Retry::Once,
            |_| {},
        )?;
        // SAFETY: every member of the domctl union is plain data for which any bit
        // pattern is valid; Xen filled `address_size`.
        Ok(unsafe { reply.u.address_size }.size)
    }

    fn maximum_gpfn(&self, domid: DomId) -> Result<u64> {
        const OP: Op = "memory_op maximum_gpfn";
        let mut arg = self
            .privcmd
            .buf_zeroed::<MemoryDomain>(1)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        arg.update(0, |m| m.domid = domid.0);
        let rc = self.privcmd.memory_op(sys::XENMEM_maximum_gpfn, arg.addr());
        log::trace!("memory_op maximum_gpfn d{domid}: {rc:?}");
        rc.map_err(|e| Error::hypercall(OP, e.0))
    }

    fn vcpu_context(&self, domid: DomId, vcpu: u32) -> Result<Vec<u8>> {
        const OP: Op = "domctl getvcpucontext";
        let buf = self
            .privcmd
            .buf_zeroed::<u8>(VCPU_CONTEXT_SIZE)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        self.domctl(
            OP,
            sys::XEN_DOMCTL_getvcpucontext,
            domid,
            Retry::Once,
            |u| {
                u.vcpucontext.vcpu = vcpu;
                u.vcpucontext.ctxt.p = buf.handle().cast();
            },
        )?;
        Ok(buf.to_vec())
    }

    fn reset_vcpu(&self, domid: DomId, vcpu: u32) -> Result<()> {
        // A NULL context handle asks Xen for vcpu_reset.
        self.domctl(
            "domctl setvcpucontext",
            sys::XEN_DOMCTL_setvcpucontext,
            domid,
            Retry::Once,
            |u| u.vcpucontext.vcpu = vcpu,
        )
        .map(|_| ())
    }

    fn pin_table(&self, domid: DomId, level: u32, mfn: Mfn) -> Result<()> {
        const OP: Op = "mmuext_op pin table";
        let op = MmuextOp {
            cmd: level,
            arg1: mfn.0,
            ..MmuextOp::default()
        };
        let buf = self
            .privcmd
            .buf_value(&op)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        // mmuext_op(ops, count = 1, pdone = NULL, foreigndom = domid).
        let rc = self
            .privcmd
            .hypercall(MMUEXT_OP, [buf.addr(), 1, 0, u64::from(domid.0), 0]);
        log::trace!("mmuext_op pin level {level} mfn {mfn} d{domid}: {rc:?}");
        rc.map(|_| ()).map_err(|Errno(e)| Error::hypercall(OP, e))
    }
}
