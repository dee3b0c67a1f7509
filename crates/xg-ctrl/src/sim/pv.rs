//! The PV operations of the simulator: machine frames come from the p2m the populate
//! calls built (a PV domain's gfn is its pfn), indexed by machine frame; the shared info
//! page is a frame of its own at `shared_info_frame`.
//!
//! The reads a resume makes (`address_size`, `maximum_gpfn`, `vcpu_context`) answer
//! from that state; `reset_vcpu` forgets a vCPU's context, as `vcpu_reset` leaves the
//! vCPU uninitialised.

use super::buddy::pages;
use super::domain::{Domain, FRAME};
use super::p2m::Frame;
use super::{op_err, PvState, Simulator, State, EINVAL, EPERM};
use crate::error::{Error, Result};
use crate::ops::{pin, PvOps};
use crate::types::{conv, DomId, Errno, Gfn, MemFlags, Mfn, PageOrder, PAGE_SIZE};

/// The machine frame the simulator reports as a domain's shared info page.
pub(crate) fn shared_info_frame(domid: DomId) -> u64 {
    0xfee00 + u64::from(domid.0)
}

/// `sizeof(struct vcpu_guest_context)` on x86_64: what `getvcpucontext` copies out.
const VCPU_CONTEXT_SIZE: usize = 5168;
/// Offset of `arch.max_pfn` in the shared info page of a 64-bit guest.
const MAX_PFN_64: usize = 3088;
/// Offset of `arch.max_pfn` in the shared info page of a 32-bit guest.
const MAX_PFN_32: usize = 2316;
/// `EOPNOTSUPP`.
const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;
/// `ENODATA`.
const ENODATA: i32 = libc::ENODATA;

/// The guest's address size as `get_address_size` reports it: 64 unless the domain
/// was switched to 32.
fn width(d: &Domain) -> u32 {
    d.pv.address_size.unwrap_or(64)
}

/// Xen's `domain_get_maximum_gpfn`: an HVM container's highest mapped frame, a PV
/// guest's `arch.max_pfn` (what it wrote in its shared info) minus one, 0 when unset.
fn maximum_gpfn_of(d: &Domain) -> u64 {
    if d.config.hvm {
        return d
            .p2m
            .runs()
            .last()
            .map_or(0, |(gfn, run)| gfn + run.pages() - 1);
    }
    let si = &d.pv.shared_info;
    let max_pfn = if width(d) == 32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&si[MAX_PFN_32..MAX_PFN_32 + 4]);
        u64::from(u32::from_le_bytes(b))
    } else {
        let mut b = [0u8; 8];
        b.copy_from_slice(&si[MAX_PFN_64..MAX_PFN_64 + 8]);
        u64::from_le_bytes(b)
    };
    max_pfn.max(1) - 1
}

/// Where a machine frame of `d` lives.
enum Place {
    /// A guest frame (its gfn).
    Guest(u64),
    /// The shared info page.
    SharedInfo,
}

fn place(d: &Domain, domid: DomId, mfn: u64) -> Option<Place> {
    if let Some((&first, &(gfn, order))) = d.pv.m2p.range(..=mfn).next_back() {
        let off = mfn - first;
        if off < pages(order) {
            let g = gfn + off;
            if let Some(Frame::Ram { mfn: m, .. }) = d.p2m.lookup(g) {
                if m == mfn {
                    return Some(Place::Guest(g));
                }
            }
        }
    }
    (mfn == shared_info_frame(domid)).then_some(Place::SharedInfo)
}

fn pv_domain<'a>(st: &'a mut State, op: &'static str, domid: DomId) -> Result<&'a mut Domain> {
    let d = st.dom(op, domid)?;
    if d.is_dom0 {
        return Err(op_err(op, EPERM));
    }
    if d.config.hvm {
        return Err(op_err(op, EINVAL));
    }
    Ok(d)
}

fn map_error(domid: DomId, mfn: u64) -> Error {
    Error::ForeignMap {
        domid,
        gfn: Gfn(mfn),
        source: Errno(EINVAL),
    }
}

/// Visits `(frame index, byte offset in frame, range of the data)` for `len` bytes at
/// `offset` of `nr` frames.
fn spans(
    op: &'static str,
    nr: usize,
    offset: u64,
    len: usize,
) -> Result<Vec<(usize, usize, std::ops::Range<usize>)>> {
    let total = conv::usize_to_u64(nr) * PAGE_SIZE;
    let end = offset
        .checked_add(conv::usize_to_u64(len))
        .filter(|&e| e <= total)
        .ok_or(op_err(op, EINVAL))?;
    let mut out = Vec::new();
    let mut at = offset;
    let mut pos = 0;
    while at < end {
        let frame = conv::u64_to_usize(at / PAGE_SIZE);
        let off = conv::u64_to_usize(at % PAGE_SIZE);
        let n = (len - pos).min(FRAME - off);
        out.push((frame, off, pos..pos + n));
        pos += n;
        at += conv::usize_to_u64(n);
    }
    Ok(out)
}

impl Simulator {
    /// The PV state of `domid` (contexts, pins, shared info, …).
    pub fn pv_state(&self, domid: DomId) -> Option<PvState> {
        self.lock().domains.get(&domid.0).map(|d| d.pv.clone())
    }
}

impl PvOps for Simulator {
    fn populate_physmap_mfns(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<Vec<Mfn>> {
        self.call("populate_physmap_mfns", |st| {
            let mut out = Vec::with_capacity(gfns.len());
            st.populate_into(domid, order, flags, gfns, Some(&mut out));
            Ok(out.into_iter().map(Mfn).collect())
        })
    }

    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<()> {
        const OP: &str = "set_address_size";
        self.call(OP, |st| {
            let d = pv_domain(st, OP, domid)?;
            if bits != 32 && bits != 64 {
                return Err(op_err(OP, EINVAL));
            }
            d.pv.address_size = Some(bits);
            Ok(())
        })
    }

    fn write_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, data: &[u8]) -> Result<()> {
        const OP: &str = "write_machine";
        self.call(OP, |st| {
            let d = pv_domain(st, OP, domid)?;
            let places = mfns
                .iter()
                .map(|m| place(d, domid, m.0).ok_or_else(|| map_error(domid, m.0)))
                .collect::<Result<Vec<_>>>()?;
            for (i, off, range) in spans(OP, mfns.len(), offset, data.len())? {
                let frame = match places[i] {
                    Place::Guest(g) => d.frames.entry(g).or_insert_with(|| Box::new([0; FRAME])),
                    Place::SharedInfo => &mut d.pv.shared_info,
                };
                frame[off..off + range.len()].copy_from_slice(&data[range]);
            }
            Ok(())
        })
    }

    fn read_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, buf: &mut [u8]) -> Result<()> {
        const OP: &str = "read_machine";
        self.call(OP, |st| {
            let d = pv_domain(st, OP, domid)?;
            for (i, off, range) in spans(OP, mfns.len(), offset, buf.len())? {
                let m = mfns[i].0;
                let n = range.len();
                match place(d, domid, m).ok_or_else(|| map_error(domid, m))? {
                    Place::Guest(g) => match d.frames.get(&g) {
                        Some(f) => buf[range].copy_from_slice(&f[off..off + n]),
                        None => buf[range].fill(0),
                    },
                    Place::SharedInfo => {
                        buf[range].copy_from_slice(&d.pv.shared_info[off..off + n])
                    }
                }
            }
            Ok(())
        })
    }

    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &[u8]) -> Result<()> {
        const OP: &str = "set_vcpu_context";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if d.is_dom0 {
                return Err(op_err(OP, EPERM));
            }
            if vcpu >= d.max_vcpus || context.is_empty() {
                return Err(op_err(OP, EINVAL));
            }
            d.pv.vcpu_contexts.insert(vcpu, context.to_vec());
            Ok(())
        })
    }

    fn hypercall_init(&self, domid: DomId, mfn: Mfn) -> Result<()> {
        const OP: &str = "hypercall_init";
        self.call(OP, |st| {
            let d = pv_domain(st, OP, domid)?;
            match place(d, domid, mfn.0) {
                Some(Place::Guest(g)) => {
                    // Xen writes its hypercall stubs there: mark the page as written.
                    let f = d.frames.entry(g).or_insert_with(|| Box::new([0; FRAME]));
                    f[0] = 0xCC;
                    d.pv.hypercall_page = Some(mfn.0);
                    Ok(())
                }
                _ => Err(op_err(OP, EINVAL)),
            }
        })
    }

    fn address_size(&self, domid: DomId) -> Result<u32> {
        const OP: &str = "address_size";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if d.config.hvm {
                return Err(op_err(OP, EOPNOTSUPP));
            }
            Ok(width(d))
        })
    }

    fn maximum_gpfn(&self, domid: DomId) -> Result<u64> {
        const OP: &str = "maximum_gpfn";
        self.call(OP, |st| Ok(maximum_gpfn_of(st.dom(OP, domid)?)))
    }

    fn vcpu_context(&self, domid: DomId, vcpu: u32) -> Result<Vec<u8>> {
        const OP: &str = "vcpu_context";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            if vcpu >= d.max_vcpus {
                return Err(op_err(OP, EINVAL));
            }
            let mut ctx =
                d.pv.vcpu_contexts
                    .get(&vcpu)
                    .cloned()
                    .ok_or(op_err(OP, ENODATA))?;
            ctx.resize(VCPU_CONTEXT_SIZE.max(ctx.len()), 0);
            Ok(ctx)
        })
    }

    fn reset_vcpu(&self, domid: DomId, vcpu: u32) -> Result<()> {
        const OP: &str = "reset_vcpu";
        self.call(OP, |st| {
            let d = st.dom(OP, domid)?;
            // Xen refuses its caller's own domain (it cannot pause itself).
            if d.is_dom0 || vcpu >= d.max_vcpus {
                return Err(op_err(OP, EINVAL));
            }
            if d.pv.vcpu_contexts.remove(&vcpu).is_some() {
                log::debug!("sim: d{domid} vcpu {vcpu} reset (down, uninitialised)");
            }
            Ok(())
        })
    }

    fn pin_table(&self, domid: DomId, level: u32, mfn: Mfn) -> Result<()> {
        const OP: &str = "pin_table";
        self.call(OP, |st| {
            let d = pv_domain(st, OP, domid)?;
            if level > pin::L4_TABLE || !matches!(place(d, domid, mfn.0), Some(Place::Guest(_))) {
                return Err(op_err(OP, EINVAL));
            }
            d.pv.pinned.push((level, mfn.0));
            Ok(())
        })
    }
}
