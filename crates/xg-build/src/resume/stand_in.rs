//! The guest's side of a PV suspend, for the simulator and tests: what a 64-bit PV
//! kernel has done by the time the toolstack runs `resume_slow`.
//!
//! At boot it published its p2m in the shared info page (`arch.max_pfn` and either the
//! linear list, `p2m_cr3` + `p2m_vaddr`, or the frame list tree,
//! `pfn_to_mfn_frame_list_list`); in `xen_pre_suspend` it turned the start info's
//! Xenstore and console frames into pfns; then it called
//! `SCHEDOP_shutdown(SHUTDOWN_suspend)` with the start info's machine frame as the
//! third argument (`rdx`), which vCPU 0's saved registers keep. The shutdown itself is
//! the backend's business (`Simulator::guest_shutdown`).

use xg_ctrl::{DomId, Mfn, PvOps};

use crate::pv::PvBuildOutcome;

/// `shared_info.arch.max_pfn` (x86_64).
const MAX_PFN: u64 = 3088;
/// `shared_info.arch.pfn_to_mfn_frame_list_list`.
const FRAME_LIST_LIST: u64 = 3096;
/// `shared_info.arch.p2m_cr3`.
const P2M_CR3: u64 = 3112;
/// `shared_info.arch.p2m_vaddr`.
const P2M_VADDR: u64 = 3120;
/// `start_info.store_mfn`.
const START_INFO_STORE: u64 = 56;
/// `start_info.console.domU.mfn`.
const START_INFO_CONSOLE: u64 = 72;
/// `vcpu_guest_context.user_regs.rdx`.
const CONTEXT_RDX: usize = 616;

/// How the guest publishes its p2m.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2mAnchor {
    /// `p2m_cr3` + `p2m_vaddr`: the linear list as the boot page tables map it (what
    /// Linux does).
    LinearList,
    /// `pfn_to_mfn_frame_list_list`: the two top frames of the guest's memory become
    /// the frame list (the p2m's frames) and the frame list list (that frame).
    Tree,
}

fn put<H: PvOps + ?Sized>(hv: &H, domid: DomId, mfn: u64, at: u64, v: u64) -> xg_ctrl::Result<()> {
    hv.write_machine(domid, &[Mfn(mfn)], at, &v.to_le_bytes())
}

fn mfn_of(p2m: &[u64], pfn: u64) -> xg_ctrl::Result<u64> {
    usize::try_from(pfn)
        .ok()
        .and_then(|i| p2m.get(i).copied())
        .ok_or_else(|| xg_ctrl::Error::InvalidArgument {
            op: "guest suspend",
            detail: format!("pfn {pfn:#x} is outside the guest's p2m"),
        })
}

/// Does, for the guest `built` by `build_pv`, what its kernel does before the
/// suspend hypercall (see the module documentation). Returns the start info's machine
/// frame.
pub fn suspend_pv_guest<H: PvOps + ?Sized>(
    hv: &H,
    built: &PvBuildOutcome,
    anchor: P2mAnchor,
) -> xg_ctrl::Result<u64> {
    let (domid, img) = (built.domid, &built.image);
    let l = &img.layout;
    let p2m = &built.memory.p2m;
    let si = img.shared_info_mfn;
    put(hv, domid, si, MAX_PFN, l.p2m_size)?;
    match anchor {
        P2mAnchor::LinearList => {
            put(hv, domid, si, P2M_CR3, img.l4_mfn << 12)?;
            put(hv, domid, si, P2M_VADDR, l.p2m.vstart)?;
        }
        P2mAnchor::Tree => {
            let top = xg_ctrl::types::conv::usize_to_u64(p2m.len());
            let fl = mfn_of(p2m, top.wrapping_sub(1))?;
            let fll = mfn_of(p2m, top.wrapping_sub(2))?;
            let mut list = Vec::new();
            for i in 0..l.p2m_size.div_ceil(512) {
                list.extend(mfn_of(p2m, l.p2m.pfn + i)?.to_le_bytes());
            }
            hv.write_machine(domid, &[Mfn(fl)], 0, &list)?;
            put(hv, domid, fll, 0, fl)?;
            put(hv, domid, si, FRAME_LIST_LIST, fll)?;
        }
    }
    let start_info = mfn_of(p2m, l.start_info_pfn)?;
    put(hv, domid, start_info, START_INFO_STORE, l.xenstore_pfn)?;
    put(hv, domid, start_info, START_INFO_CONSOLE, l.console_pfn)?;
    let mut ctx = hv.vcpu_context(domid, 0)?;
    if let Some(rdx) = ctx.get_mut(CONTEXT_RDX..CONTEXT_RDX + 8) {
        rdx.copy_from_slice(&start_info.to_le_bytes());
    }
    hv.set_vcpu_context(domid, 0, &ctx)?;
    Ok(start_info)
}
