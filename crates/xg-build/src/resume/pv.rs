//! The PV part of `xc_domain_resume_any` (Xen 4.17 `xg_resume.c`): the guest width,
//! the guest's p2m (`xc_core_arch_map_p2m`, `xg_core_x86.c`), vCPU 0's `edx` (the
//! machine frame of the start info page the guest passed to its suspend hypercall), the
//! start info's Xenstore and console frames turned back from pfns into machine frames,
//! and a reset of every secondary vCPU. The caller then issues
//! `XEN_DOMCTL_resumedomain`.
//!
//! libxenguest maps frames and reads them through the mapping; here each mapping is a
//! [`PvOps::read_machine`] or [`PvOps::write_machine`] of the same frames, so a failed
//! mapping shows up as a failed read or write, reported with the C message of the step.

use xg_ctrl::{DomId, DomainInfo, Mfn, PvOps, PAGE_SIZE};

const PAGE: usize = xg_ctrl::types::conv::u64_to_usize(PAGE_SIZE);

/// Offsets of one guest width's structures (`xen/foreign/x86_{32,64}.h`).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Bytes of a guest `unsigned long` / `xen_pfn_t`.
    width: usize,
    /// `shared_info.arch.max_pfn` (not read here: Xen answers `maximum_gpfn` from it).
    pfn_to_mfn_frame_list_list: usize,
    /// `shared_info.arch.p2m_cr3`.
    p2m_cr3: usize,
    /// `shared_info.arch.p2m_vaddr`.
    p2m_vaddr: usize,
    /// `start_info.store_mfn`.
    store_mfn: usize,
    /// `start_info.console.domU.mfn`.
    console_mfn: usize,
    /// `vcpu_guest_context.user_regs.edx` / `rdx`.
    edx: usize,
}

const X86_64: Layout = Layout {
    width: 8,
    pfn_to_mfn_frame_list_list: 3096,
    p2m_cr3: 3112,
    p2m_vaddr: 3120,
    store_mfn: 56,
    console_mfn: 72,
    edx: 616,
};

const X86_32: Layout = Layout {
    width: 4,
    pfn_to_mfn_frame_list_list: 2320,
    p2m_cr3: 2328,
    p2m_vaddr: 2332,
    store_mfn: 44,
    console_mfn: 52,
    edx: 524,
};

/// `GET_FIELD` of a `width`-byte little-endian field at `at` of `bytes` (0 past the end).
fn get(bytes: &[u8], at: usize, width: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at + width) {
        b[..width].copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// The steps whose failure libxenguest reports, with its messages (the text after
/// `[1] ` on xenguest's error line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvStep {
    /// `xc_domain_get_guest_width` (`PERROR`, so errno follows on the error line).
    GuestWidth,
    /// Mapping the shared info frame.
    SharedInfo,
    /// `xc_core_arch_map_p2m`.
    P2m,
    /// `xc_vcpu_getcontext(0)`.
    VcpuContext,
    /// Mapping the start info frame (read and write here).
    StartInfo,
    /// `xc_vcpu_setcontext(i, NULL)` of a secondary vCPU.
    ResetVcpu,
}

impl std::fmt::Display for PvStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PvStep::GuestWidth => "Could not get domain width",
            PvStep::SharedInfo => "Couldn't map shared info",
            PvStep::P2m => "Couldn't map p2m table",
            PvStep::VcpuContext => "Could not get vcpu context",
            PvStep::StartInfo => "Couldn't map start_info",
            PvStep::ResetVcpu => "Couldn't reset vcpu state",
        })
    }
}

/// What went wrong inside a step (logged; the error line names the step only, as
/// libxenguest's last error is the step's message).
#[derive(Debug, thiserror::Error)]
pub enum PvCause {
    /// A hypervisor call failed.
    #[error("Hypervisor call failed")]
    Hypervisor(#[from] xg_ctrl::Error),
    /// Xen reported an address size other than 32 or 64 bits.
    #[error("Unexpected guest address size of {bits} bits")]
    Width {
        /// The size.
        bits: u32,
    },
    /// `xc_domain_nr_gpfns` is below the domain's pages.
    #[error("p2m_size < nr_pages -1 ({p2m_size:x} < {nr_pages:x})")]
    P2mSize {
        /// Highest gfn + 1.
        p2m_size: u64,
        /// `tot_pages`.
        nr_pages: u64,
    },
    /// The guest's `p2m_vaddr` range is not a valid guest range (ERANGE).
    #[error("Bad virtual p2m address range {start:#x}-{end:#x}")]
    VirtualRange {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
    /// A page-table entry of the p2m list's mapping is empty (ERANGE).
    #[error(
        "Bad mfn {mfn:#x} during page table walk for vaddr {vaddr:#x} at level {level} of p2m list"
    )]
    BadMfn {
        /// The frame found.
        mfn: u64,
        /// Virtual address of the entry.
        vaddr: u64,
        /// Page-table level.
        level: u32,
    },
    /// The p2m mapping would have no frames (libxenguest's map of 0 pages fails).
    #[error("The p2m of {p2m_size} entries needs no frame to map")]
    NoFrames {
        /// The p2m size after the page-table walk.
        p2m_size: u64,
    },
    /// An index outside the frames mapped (libxenguest would read outside its mapping).
    #[error("{what} index {index:#x} is outside the {len} entries mapped")]
    OutOfMapping {
        /// Which table.
        what: &'static str,
        /// The index.
        index: u64,
        /// Entries mapped.
        len: usize,
    },
}

/// What the PV part found and changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvResumed {
    /// Guest width in bytes (8 or 4).
    pub guest_width: u32,
    /// Entries of the p2m that was mapped.
    pub p2m_size: u64,
    /// Whether the p2m was found through `p2m_cr3` (linear list) or the frame list tree.
    pub p2m_list: bool,
    /// Machine frame of the start info page (vCPU 0's `edx`).
    pub start_info_mfn: u64,
    /// Xenstore ring: the pfn the guest left and the machine frame written back.
    pub store: (u64, u64),
    /// Console ring: pfn and machine frame.
    pub console: (u64, u64),
    /// Secondary vCPUs reset (`1..=max_vcpu_id`).
    pub vcpus_reset: u32,
}

/// A failed step.
#[derive(Debug, thiserror::Error)]
#[error("{step}")]
pub struct PvError {
    /// The step.
    pub step: PvStep,
    /// Why.
    #[source]
    pub cause: PvCause,
}

impl PvError {
    /// The errno of a failed hypervisor call, if that is the cause.
    pub fn errno(&self) -> Option<i32> {
        match &self.cause {
            PvCause::Hypervisor(e) => e.errno(),
            _ => None,
        }
    }
}

fn at<T>(step: PvStep) -> impl Fn(T) -> PvError
where
    PvCause: From<T>,
{
    move |e| PvError {
        step,
        cause: PvCause::from(e),
    }
}

fn read<H: PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
    mfns: &[u64],
    len: usize,
) -> xg_ctrl::Result<Vec<u8>> {
    let frames: Vec<Mfn> = mfns.iter().map(|&m| Mfn(m)).collect();
    let mut buf = vec![0u8; len];
    hv.read_machine(domid, &frames, 0, &mut buf)?;
    Ok(buf)
}

/// `xc_domain_resume_any` from the guest width to the last vCPU reset, for the PV
/// domain `info` describes.
pub fn resume_pv<H: PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
    info: &DomainInfo,
) -> Result<PvResumed, PvError> {
    let bits = hv.address_size(domid).map_err(at(PvStep::GuestWidth))?;
    let l = match bits / 8 {
        8 => X86_64,
        4 => X86_32,
        _ => {
            return Err(PvError {
                step: PvStep::GuestWidth,
                cause: PvCause::Width { bits },
            })
        }
    };
    let shinfo =
        read(hv, domid, &[info.shared_info_frame], PAGE).map_err(at(PvStep::SharedInfo))?;
    let p2m = map_p2m(hv, domid, info, &l, &shinfo).map_err(at(PvStep::P2m))?;
    let ctxt = hv.vcpu_context(domid, 0).map_err(at(PvStep::VcpuContext))?;
    let start_info_mfn = get(&ctxt, l.edx, l.width);

    let start_info = read(hv, domid, &[start_info_mfn], PAGE).map_err(at(PvStep::StartInfo))?;
    let store_pfn = get(&start_info, l.store_mfn, l.width);
    let console_pfn = get(&start_info, l.console_mfn, l.width);
    let lookup = |pfn: u64| {
        p2m.entry(pfn).ok_or(PvError {
            step: PvStep::StartInfo,
            cause: PvCause::OutOfMapping {
                what: "p2m",
                index: pfn,
                len: p2m.len(),
            },
        })
    };
    let store_mfn = lookup(store_pfn)?;
    let console_mfn = lookup(console_pfn)?;
    log::info!(
        "d{domid}: start info at mfn {start_info_mfn:#x}: store pfn {store_pfn:#x} -> mfn \
         {store_mfn:#x}, console pfn {console_pfn:#x} -> mfn {console_mfn:#x}"
    );
    for (offset, value) in [(l.store_mfn, store_mfn), (l.console_mfn, console_mfn)] {
        let bytes = value.to_le_bytes();
        hv.write_machine(
            domid,
            &[Mfn(start_info_mfn)],
            xg_ctrl::types::conv::usize_to_u64(offset),
            &bytes[..l.width],
        )
        .map_err(at(PvStep::StartInfo))?;
    }

    for vcpu in 1..=info.max_vcpu_id {
        hv.reset_vcpu(domid, vcpu).map_err(at(PvStep::ResetVcpu))?;
    }
    Ok(PvResumed {
        guest_width: bits / 8,
        p2m_size: p2m.size,
        p2m_list: p2m.list,
        start_info_mfn,
        store: (store_pfn, store_mfn),
        console: (console_pfn, console_mfn),
        vcpus_reset: info.max_vcpu_id,
    })
}

/// The guest's p2m as mapped: its frames' bytes, read as `width`-byte entries.
struct P2m {
    bytes: Vec<u8>,
    width: usize,
    size: u64,
    list: bool,
}

impl P2m {
    fn len(&self) -> usize {
        self.bytes.len() / self.width
    }

    /// Entry `pfn` of the mapping (libxenguest indexes it unchecked).
    fn entry(&self, pfn: u64) -> Option<u64> {
        let i = usize::try_from(pfn).ok()?;
        let at = i.checked_mul(self.width)?;
        self.bytes
            .get(at..at + self.width)
            .map(|_| get(&self.bytes, at, self.width))
    }
}

/// `xc_core_arch_map_p2m`: the p2m size from `XENMEM_maximum_gpfn`, the frames of the
/// p2m from the linear list (`p2m_cr3` set) or the frame list tree, then those frames.
fn map_p2m<H: PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
    info: &DomainInfo,
    l: &Layout,
    shinfo: &[u8],
) -> Result<P2m, PvCause> {
    let mut p2m_size = hv.maximum_gpfn(domid)? + 1;
    if p2m_size < info.tot_pages {
        return Err(PvCause::P2mSize {
            p2m_size,
            nr_pages: info.tot_pages,
        });
    }
    let p2m_cr3 = get(shinfo, l.p2m_cr3, l.width);
    let (frames, p2m_frames) = if p2m_cr3 != 0 {
        let vaddr = get(shinfo, l.p2m_vaddr, l.width);
        list_frames(hv, domid, l, vaddr, p2m_cr3, &mut p2m_size)?
    } else {
        let fll = get(shinfo, l.pfn_to_mfn_frame_list_list, l.width);
        tree_frames(hv, domid, l, fll, p2m_size)?
    };
    let n = xg_ctrl::types::conv::u64_to_usize(p2m_frames);
    if n == 0 {
        return Err(PvCause::NoFrames { p2m_size });
    }
    let list = frames.get(..n).ok_or(PvCause::OutOfMapping {
        what: "p2m frame list",
        index: p2m_frames - 1,
        len: frames.len(),
    })?;
    let bytes = read(hv, domid, list, n * PAGE)?;
    log::debug!(
        "d{domid}: p2m of {p2m_size} entries in {n} frames ({})",
        if p2m_cr3 != 0 {
            "linear list"
        } else {
            "frame list tree"
        }
    );
    Ok(P2m {
        bytes,
        width: l.width,
        size: p2m_size,
        list: p2m_cr3 != 0,
    })
}

/// Entries of `width` bytes in a page.
fn fpp(l: &Layout) -> u64 {
    PAGE_SIZE / xg_ctrl::types::conv::usize_to_u64(l.width)
}

fn entries(bytes: &[u8], width: usize, n: usize) -> Vec<u64> {
    (0..n).map(|i| get(bytes, i * width, width)).collect()
}

/// `xc_core_arch_map_p2m_tree_rw`: the frame list list page names the frame list
/// pages, which name the p2m frames. Returns those frames and how many to map.
fn tree_frames<H: PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
    l: &Layout,
    fll_mfn: u64,
    p2m_size: u64,
) -> Result<(Vec<u64>, u64), PvCause> {
    let fpp = fpp(l);
    let fll_entries = p2m_size.div_ceil(fpp * fpp);
    let fl_entries = p2m_size.div_ceil(fpp);
    let fll_page = read(hv, domid, &[fll_mfn], PAGE)?;
    let fll = entries(&fll_page, l.width, PAGE / l.width);
    let n_fll = xg_ctrl::types::conv::u64_to_usize(fll_entries);
    let fl_mfns = fll.get(..n_fll).ok_or(PvCause::OutOfMapping {
        what: "p2m frame list list",
        index: fll_entries.saturating_sub(1),
        len: fll.len(),
    })?;
    let fl_bytes = read(hv, domid, fl_mfns, n_fll * PAGE)?;
    let frames = entries(
        &fl_bytes,
        l.width,
        xg_ctrl::types::conv::u64_to_usize(fl_entries),
    );
    Ok((frames, fl_entries))
}

fn is_canonical(vaddr: u64) -> bool {
    let v = vaddr.cast_signed();
    (v >> 47) == (v >> 63)
}

/// Hypervisor-reserved virtual ranges of 64-bit and 32-bit PV guests.
const HYPERVISOR_VIRT_64: (u64, u64) = (0xFFFF_8000_0000_0000, 0xFFFF_87FF_FFFF_FFFF);
const HYPERVISOR_VIRT_32: (u64, u64) = (0xF580_0000, 0xFFFF_FFFF);

/// `xc_core_arch_map_p2m_list_rw`: walks the guest's page tables from `p2m_cr3` down
/// to the L1 entries that map the linear p2m list at `vaddr`. At level 2 it shrinks
/// the p2m to the entries before the last change of L1 table, as libxenguest does (the
/// guest maps the unused tail of its p2m space with one repeated table). Returns the
/// p2m frames and how many to map; `p2m_size` may shrink.
fn list_frames<H: PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
    l: &Layout,
    vaddr: u64,
    p2m_cr3: u64,
    p2m_size: &mut u64,
) -> Result<(Vec<u64>, u64), PvCause> {
    let fpp = fpp(l);
    let mut p2m_frames = (*p2m_size - 1) / fpp + 1;
    let end_of = |frames: u64| {
        vaddr
            .wrapping_add(frames.wrapping_mul(PAGE_SIZE))
            .wrapping_sub(1)
    };
    let mut p2m_end = end_of(p2m_frames);
    let bad_range = |end: u64| PvCause::VirtualRange { start: vaddr, end };
    let (mask, n_levels, root) = if l.width == 8 {
        let (hv_start, hv_end) = HYPERVISOR_VIRT_64;
        if !is_canonical(vaddr)
            || !is_canonical(p2m_end)
            || p2m_end < vaddr
            || (vaddr <= hv_end && p2m_end > hv_start)
        {
            return Err(bad_range(p2m_end));
        }
        (0x0000_FFFF_FFFF_FFFFu64, 4u32, p2m_cr3 >> 12)
    } else {
        let mask = 0xFFFF_FFFFu64;
        let (hv_start, hv_end) = HYPERVISOR_VIRT_32;
        // xen_cr3_to_pfn of a PAE guest: the frame number is folded into 32 bits.
        let root = if p2m_cr3 & !mask != 0 {
            u64::MAX
        } else {
            ((p2m_cr3 >> 12) | (p2m_cr3 << 20)) & mask
        };
        if vaddr > mask
            || p2m_end > mask
            || p2m_end < vaddr
            || (vaddr <= hv_end && p2m_end > hv_start)
        {
            return Err(bad_range(p2m_end));
        }
        (mask, 3, root)
    };

    let mut mfns = vec![root];
    let mut off = 0u64;
    let mut saved_mfn = 0u64;
    let (mut idx_start, mut idx_end, mut saved_idx) = (0u64, 0u64, 0u64);
    for level in (1..=n_levels).rev() {
        let n_pages = idx_end.wrapping_sub(idx_start).wrapping_add(1);
        let n = usize::try_from(n_pages)
            .ok()
            .filter(|&n| n <= mfns.len())
            .ok_or(PvCause::OutOfMapping {
                what: "p2m page table list",
                index: n_pages,
                len: mfns.len(),
            })?;
        let bytes = read(hv, domid, &mfns[..n], n * PAGE)?;
        let ptes = entries(&bytes, 8, n * PAGE / 8);
        let shift = level * 9 + 3;
        idx_start = (vaddr.wrapping_sub(off) & mask) >> shift;
        idx_end = (p2m_end.wrapping_sub(off) & mask) >> shift;
        let mut next = Vec::new();
        let mut idx = idx_start;
        while idx <= idx_end {
            let pte = usize::try_from(idx).ok().and_then(|i| ptes.get(i)).ok_or(
                PvCause::OutOfMapping {
                    what: "p2m page table",
                    index: idx,
                    len: ptes.len(),
                },
            )?;
            let mfn = (pte & 0x000F_FFFF_FFFF_F000) >> 12;
            if mfn == 0 {
                return Err(PvCause::BadMfn {
                    mfn,
                    vaddr: off.wrapping_add(idx << shift),
                    level,
                });
            }
            next.push(mfn);
            if level == 2 && mfn != saved_mfn {
                saved_mfn = mfn;
                saved_idx = idx - idx_start;
            }
            idx += 1;
        }
        if level == 2 {
            // libxenguest compares the relative index with the absolute end.
            if saved_idx == idx_end {
                saved_idx += 1;
            }
            let max_pfn = (saved_idx << 9).wrapping_mul(fpp);
            if max_pfn < *p2m_size {
                *p2m_size = max_pfn;
                p2m_frames = p2m_size.div_ceil(fpp);
                p2m_end = end_of(p2m_frames);
                idx_end = idx_start + saved_idx;
            }
        }
        mfns = next;
        off = vaddr & ((mask >> shift) << shift);
    }
    Ok((mfns, p2m_frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_at_the_guest_width() {
        let mut b = vec![0u8; 16];
        b[4..12].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(get(&b, 4, 8), 0x1122_3344_5566_7788);
        assert_eq!(get(&b, 4, 4), 0x5566_7788);
        assert_eq!(get(&b, 12, 8), 0, "past the end");
    }

    #[test]
    fn step_messages_are_libxenguests() {
        assert_eq!(PvStep::P2m.to_string(), "Couldn't map p2m table");
        assert_eq!(PvStep::ResetVcpu.to_string(), "Couldn't reset vcpu state");
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0xFFFF_FFFF_8000_0000));
        assert!(is_canonical(0x0000_7FFF_FFFF_FFFF));
        assert!(!is_canonical(0x0000_8000_0000_0000));
    }
}
