//! `__HYPERVISOR_memory_op` and the [`MemoryOps`] implementation.

use xg_sys as sys;

use super::abi::{
    self, physdev_pci_device, xen_foreign_memory_map, xen_memory_reservation, xen_pod_target,
    xen_reserved_device_memory, xen_reserved_device_memory_map,
};
use super::buffer::Pod;
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::{E820Entry, MemoryOps, PciDev, ReservedRegion};
use crate::types::{conv, DomId, Errno, Gfn, MemFlags, PageOrder};

/// The largest `nr_extents` Xen accepts: the upper bits of `cmd` carry the continuation
/// index (`MEMOP_EXTENT_SHIFT` = 6).
pub(crate) const MAX_EXTENTS: u64 = (u32::MAX >> 6) as u64;

impl XenCtrl {
    /// `xc_memory_op`: builds the argument in a zeroed hypercall buffer with `fill`,
    /// issues the call, returns the non-negative result.
    fn memory_op<T: Pod>(&self, op: Op, cmd: u32, fill: impl FnOnce(&mut T)) -> Result<u64> {
        let mut buf = self
            .privcmd
            .buf_zeroed::<T>(1)
            .map_err(|e| Error::hypercall(op, e.0))?;
        buf.update(0, fill);
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
        let done = self.memory_op(op, cmd, |r: &mut xen_memory_reservation| {
            r.extent_start.p = extents.handle();
            r.nr_extents = nr_extents;
            r.extent_order = u32::from(order.get());
            r.mem_flags = flags.0;
            r.domid = domid.0;
        })?;
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
            sys::XENMEM_populate_physmap,
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
            sys::XENMEM_decrease_reservation,
            domid,
            order,
            MemFlags::NONE,
            gfns,
        )
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        let op = "memory_op claim_pages";
        // extent_start stays NULL, order and flags 0.
        let result = self.memory_op(
            op,
            sys::XENMEM_claim_pages,
            |r: &mut xen_memory_reservation| {
                r.nr_extents = pages;
                r.domid = domid.0;
            },
        );
        match result {
            // A hypervisor without claims: libxenctrl treats this as success.
            Err(Error::Hypercall {
                source: Errno(libc::ENOSYS),
                ..
            }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> Result<()> {
        let op = "memory_op set_pod_target";
        self.memory_op(op, sys::XENMEM_set_pod_target, |t: &mut xen_pod_target| {
            t.target_pages = target_pages;
            t.domid = domid.0;
        })
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
        self.memory_op(
            OP,
            sys::XENMEM_set_memory_map,
            |m: &mut xen_foreign_memory_map| {
                m.domid = domid.0;
                m.map.nr_entries = nr_entries;
                m.map.buffer.p = buf.handle().cast();
            },
        )
        .map(|_| ())
    }

    fn reserved_device_memory_map(
        &self,
        flags: u32,
        dev: PciDev,
        max_entries: u32,
    ) -> Result<Vec<ReservedRegion>> {
        const OP: Op = "memory_op reserved_device_memory_map";
        let room = conv::u64_to_usize(u64::from(max_entries));
        let entries = self
            .privcmd
            .buf_zeroed::<xen_reserved_device_memory>(room)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        let mut map = self
            .privcmd
            .buf_zeroed::<xen_reserved_device_memory_map>(1)
            .map_err(|e| Error::hypercall(OP, e.0))?;
        map.update(0, |m| {
            m.flags = flags;
            m.nr_entries = max_entries;
            // libxenctrl bounces a NULL array as NULL: the counting call hands Xen none.
            if max_entries > 0 {
                m.buffer.p = entries.handle();
            }
            m.dev.pci = physdev_pci_device {
                seg: dev.seg,
                bus: dev.bus,
                devfn: dev.devfn,
            };
        });
        let result = self
            .privcmd
            .memory_op(sys::XENMEM_reserved_device_memory_map, map.addr());
        // Xen writes the map back on success and on failure: nr_entries is its count.
        let count = map.read().map_or(0, |m| m.nr_entries);
        log::trace!("memory_op {OP} for {dev}: {result:?}, {count} entries");
        match result {
            Ok(_) => Ok(entries
                .to_vec()
                .into_iter()
                .take(conv::u64_to_usize(u64::from(count)))
                .map(|e| ReservedRegion {
                    start_pfn: e.start_pfn,
                    nr_pages: e.nr_pages,
                })
                .collect()),
            Err(Errno(libc::ENOBUFS)) => Err(Error::TooSmall {
                op: OP,
                needed: count,
            }),
            Err(e) => Err(Error::hypercall(OP, e.0)),
        }
    }
}
