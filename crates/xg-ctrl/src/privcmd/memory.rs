//! `__HYPERVISOR_memory_op` and the [`MemoryOps`] implementation.

use super::abi::{self, MemoryReservation};
use super::buffer::Pod;
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::{E820Entry, MemoryOps};
use crate::types::{conv, DomId, Errno, Gfn, MemFlags, PageOrder};

/// `XENMEM_*` sub-operations.
pub(crate) mod xenmem {
    pub(crate) const DECREASE_RESERVATION: u32 = 1;
    pub(crate) const POPULATE_PHYSMAP: u32 = 6;
    pub(crate) const SET_MEMORY_MAP: u32 = 13;
    pub(crate) const SET_POD_TARGET: u32 = 16;
    pub(crate) const CLAIM_PAGES: u32 = 24;
}

/// The largest `nr_extents` Xen accepts: the upper bits of `cmd` carry the continuation
/// index (`MEMOP_EXTENT_SHIFT` = 6).
pub(crate) const MAX_EXTENTS: u64 = (u32::MAX >> 6) as u64;

impl XenCtrl {
    /// `xc_memory_op`: bounces `arg`, issues the call, returns the non-negative result.
    fn memory_op<T: Pod>(&self, op: Op, cmd: u32, arg: &T) -> Result<u64> {
        let buf = self
            .privcmd
            .buf_value(arg)
            .map_err(|e| Error::hypercall(op, e.0))?;
        let result = self.privcmd.memory_op(cmd, buf.addr());
        log::trace!("memory_op {op}: {result:?}");
        result.map_err(|e| Error::hypercall(op, e.0))
    }

    /// increase/decrease_reservation and populate_physmap share one argument shape.
    fn reservation_op(
        &self,
        op: Op,
        cmd: u32,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<usize> {
        let nr_extents = conv::usize_to_u64(gfns.len());
        if nr_extents > MAX_EXTENTS {
            return Err(Error::InvalidArgument {
                op,
                detail: format!("{nr_extents} extents exceed the limit of {MAX_EXTENTS}"),
            });
        }
        let frames: Vec<u64> = gfns.iter().map(|g| g.0).collect();
        let extents = self
            .privcmd
            .buf_slice(&frames)
            .map_err(|e| Error::hypercall(op, e.0))?;
        let reservation = MemoryReservation {
            extent_start: extents.addr(),
            nr_extents,
            extent_order: u32::from(order.get()),
            mem_flags: flags.0,
            domid: domid.0,
            _pad: [0; 6],
        };
        let done = self.memory_op(op, cmd, &reservation)?;
        Ok(conv::u64_to_usize(done.min(nr_extents)))
    }
}

impl MemoryOps for XenCtrl {
    fn populate_physmap(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<usize> {
        self.reservation_op(
            "memory_op populate_physmap",
            xenmem::POPULATE_PHYSMAP,
            domid,
            order,
            flags,
            gfns,
        )
    }

    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<()> {
        let done = self.populate_physmap(domid, order, flags, gfns)?;
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
    }

    fn decrease_reservation(&self, domid: DomId, order: PageOrder, gfns: &[Gfn]) -> Result<usize> {
        self.reservation_op(
            "memory_op decrease_reservation",
            xenmem::DECREASE_RESERVATION,
            domid,
            order,
            MemFlags::NONE,
            gfns,
        )
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        let reservation = MemoryReservation {
            extent_start: 0,
            nr_extents: pages,
            extent_order: 0,
            mem_flags: 0,
            domid: domid.0,
            _pad: [0; 6],
        };
        match self.memory_op("memory_op claim_pages", xenmem::CLAIM_PAGES, &reservation) {
            // A hypervisor without claims: libxenctrl treats this as success.
            Err(Error::Hypercall {
                source: Errno(libc::ENOSYS),
                ..
            }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> Result<()> {
        let target = abi::PodTarget {
            target_pages,
            domid: domid.0,
            ..abi::PodTarget::default()
        };
        self.memory_op("memory_op set_pod_target", xenmem::SET_POD_TARGET, &target)
            .map(|_| ())
    }

    fn set_memory_map(&self, domid: DomId, map: &[E820Entry]) -> Result<()> {
        const OP: Op = "memory_op set_memory_map";
        let entries: Vec<abi::E820Entry> = map
            .iter()
            .map(|e| abi::E820Entry {
                addr: e.addr,
                size: e.size,
                kind: e.kind,
            })
            .collect();
        let nr_entries = u32::try_from(entries.len()).map_err(|_| Error::InvalidArgument {
            op: OP,
            detail: format!("{} e820 entries", entries.len()),
        })?;
        let buf = self
            .privcmd
            .buf_slice(&entries)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let fmap = abi::ForeignMemoryMap {
            domid: domid.0,
            nr_entries,
            buffer: buf.addr(),
            ..abi::ForeignMemoryMap::default()
        };
        self.memory_op(OP, xenmem::SET_MEMORY_MAP, &fmap)
            .map(|_| ())
    }
}
