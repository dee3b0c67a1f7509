//! The hypercall part of libxenguest's x86_64 PV builder: `meminit_pv` (populate with
//! the machine frames Xen returns), `xc_dom_build_image` (kernel, ramdisk, p2m list,
//! zeroed magic pages) and `xc_dom_boot_image` (page tables, start info, hypercall page,
//! `bootlate_pv`: pin the L4 table and initialise the shared info page, then the boot
//! vCPU), and `xc_dom_gnttab_init` with machine frames.
//!
//! Frames are written by machine frame number ([`PvOps::write_machine`](xg_ctrl::PvOps::write_machine)), as
//! libxenguest maps a PV guest's segments; one call per segment.

use std::fmt;

use xg_ctrl::{DomId, Gfn, MemFlags, Mfn, PageOrder, PvHypervisor, PAGE_SIZE};

use super::check::PvKernel;
use super::layout::{page_tables, plan_pv, PvLayout};
use super::start_info::{build_pv_start_info, PvStartInfo, SIF_MOD_START_PFN};
use super::vcpu::boot_context;
use super::PvError;
use crate::gnttab::{seed, seed_entries, GrantEntry};
use crate::kernel::KernelElf;

/// `SUPERPAGE_BATCH_SIZE`: 2 MiB extents per populate call.
pub const SUPERPAGE_BATCH: u64 = 512;
/// 4 KiB pages per `populate_physmap_exact` call (`1024 * 1024`).
pub const SMALL_BATCH: u64 = 1024 * 1024;
/// `XEN_LEGACY_MAX_VCPUS`: vcpu_info slots of the shared info page.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// `sizeof(struct vcpu_info)` on x86_64.
pub const VCPU_INFO_SIZE: usize = 64;
/// `sizeof(struct shared_info)` on x86_64: 32 vcpu_info, the event-channel bitmaps,
/// the wallclock and `arch_shared_info`.
pub const SHARED_INFO_SIZE: usize = 3136;
/// The guest type and address size libxenguest's `x86_compat` sets.
pub const ADDRESS_SIZE: u32 = 64;

const PAGE: usize = xg_ctrl::types::conv::u64_to_usize(PAGE_SIZE);

/// Why a PV image cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PvImageError {
    /// A hypervisor call failed.
    #[error("{step} failed")]
    Hypervisor {
        /// What was being done.
        step: &'static str,
        /// The failure.
        #[source]
        source: xg_ctrl::Error,
    },
    /// Xen gave fewer pages than asked for.
    #[error("Failed allocation of PV guest memory ({done} of {wanted} pages at pfn {pfn:#x})")]
    Populate {
        /// First pfn of the failed batch.
        pfn: u64,
        /// Pages asked for.
        wanted: u64,
        /// Pages given.
        done: u64,
    },
    /// The layout does not fit.
    #[error("PV layout")]
    Layout(#[from] PvError),
    /// The guest has no pages.
    #[error("A PV guest needs memory")]
    NoMemory,
}

fn step<T>(step: &'static str, r: xg_ctrl::Result<T>) -> Result<T, PvImageError> {
    r.map_err(|source| PvImageError::Hypervisor { step, source })
}

/// What `meminit_pv` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvMemory {
    /// `pv_p2m`: machine frame of each pfn.
    pub p2m: Vec<u64>,
    /// 2 MiB extents Xen gave.
    pub superpages: u64,
    /// 4 KiB pages populated one by one.
    pub small_pages: u64,
}

/// `meminit_pv` without vNUMA or claims (xenguest sets neither): `x86_compat` sets the
/// address size, then 2 MiB extents in batches of 512 (a short batch is fine), the rest
/// in 4 KiB pages, each extent list holding pfns that Xen replaces by machine frames,
/// and on success `claim_pages(0)`, as libxenguest always does. Compared call by call
/// with the real libxenguest 4.17 by `tests/oracle_pv.rs`.
pub fn meminit_pv<H: PvHypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    total_pages: u64,
) -> Result<PvMemory, PvImageError> {
    if total_pages == 0 {
        return Err(PvImageError::NoMemory);
    }
    step(
        "Setting the guest address size",
        hv.set_address_size(domid, ADDRESS_SIZE),
    )?;
    let n = xg_ctrl::types::conv::u64_to_usize(total_pages);
    let mut p2m: Vec<u64> = (0..total_pages).collect();
    let per_super = 1u64 << 9;
    let mut super_left = total_pages >> 9;
    let mut pfn = 0u64;
    let mut superpages = 0;
    while super_left > 0 {
        let count = super_left.min(SUPERPAGE_BATCH);
        super_left -= count;
        let gfns: Vec<Gfn> = (0..count).map(|j| Gfn(pfn + j * per_super)).collect();
        let mfns = step(
            "Populating PV guest memory",
            hv.populate_physmap_mfns(domid, PageOrder::ORDER_2M, MemFlags::NONE, &gfns),
        )?;
        for m in &mfns {
            for k in 0..per_super {
                p2m[xg_ctrl::types::conv::u64_to_usize(pfn)] = m.0 + k;
                pfn += 1;
            }
        }
        superpages += xg_ctrl::types::conv::usize_to_u64(mfns.len());
    }
    let small_pages = total_pages - pfn;
    while pfn < total_pages {
        let count = (total_pages - pfn).min(SMALL_BATCH);
        let gfns: Vec<Gfn> = (pfn..pfn + count).map(Gfn).collect();
        let mfns = step(
            "Populating PV guest memory",
            hv.populate_physmap_mfns(domid, PageOrder::ORDER_4K, MemFlags::NONE, &gfns),
        )?;
        let done = xg_ctrl::types::conv::usize_to_u64(mfns.len());
        if done != count {
            return Err(PvImageError::Populate {
                pfn,
                wanted: count,
                done,
            });
        }
        for (i, m) in mfns.iter().enumerate() {
            p2m[xg_ctrl::types::conv::u64_to_usize(pfn) + i] = m.0;
        }
        pfn += count;
    }
    // libxenguest ends a successful meminit_pv by cancelling any claim, claim mode or
    // not, and ignores the result (error returns above skip it, as there).
    if let Err(e) = hv.claim_pages(domid, 0) {
        log::warn!("meminit_pv: cancelling the claim of domain {domid} failed: {e}");
    }
    debug_assert_eq!(p2m.len(), n);
    Ok(PvMemory {
        p2m,
        superpages,
        small_pages,
    })
}

/// Everything the image build needs.
#[derive(Debug, Clone)]
pub struct PvImageInputs<'a> {
    /// The parsed kernel.
    pub elf: &'a KernelElf,
    /// Its PV placement.
    pub kernel: PvKernel,
    /// The ramdisk, decompressed.
    pub ramdisk: Option<&'a [u8]>,
    /// Kernel command line.
    pub cmdline: Option<String>,
    /// `dom->flags` (`-flags`), copied to the start info.
    pub flags: u32,
    /// Console event channel.
    pub console_evtchn: u32,
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Console backend domain.
    pub console_domid: DomId,
    /// Xenstore backend domain.
    pub store_domid: DomId,
}

/// What the image build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvImageOutcome {
    /// Where everything went.
    pub layout: PvLayout,
    /// Machine frame of the xenstore page.
    pub store_mfn: u64,
    /// Machine frame of the console page.
    pub console_mfn: u64,
    /// Machine frame of the shared info page.
    pub shared_info_mfn: u64,
    /// Machine frame of the L4 table (pinned, in `cr3`).
    pub l4_mfn: u64,
    /// Machine frame given to `hypercall_init`, when the kernel has a hypercall page.
    pub hypercall_mfn: Option<u64>,
    /// The start info as written.
    pub start_info: PvStartInfo,
    /// The boot vCPU context.
    pub vcpu_context: Vec<u8>,
    /// Page-table frames written.
    pub pgtable_frames: usize,
    /// Grant entries seeded.
    pub grants: Vec<GrantEntry>,
}

impl fmt::Display for PvImageOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.layout)?;
        writeln!(
            f,
            "store mfn {:#x}, console mfn {:#x}, shared info mfn {:#x}, L4 mfn {:#x}, hypercall mfn {:?}",
            self.store_mfn, self.console_mfn, self.shared_info_mfn, self.l4_mfn, self.hypercall_mfn
        )?;
        writeln!(f, "{} page-table frames", self.pgtable_frames)?;
        for g in &self.grants {
            writeln!(
                f,
                "gnt[{}] flags {} domid {} frame {:#x}",
                g.index, g.flags, g.domid, g.frame
            )?;
        }
        Ok(())
    }
}

fn mfns_of(p2m: &[u64], pfn: u64, pages: u64) -> Result<Vec<Mfn>, PvImageError> {
    let start = usize::try_from(pfn).map_err(|_| PvError::NoMachineFrame { pfn })?;
    let n = usize::try_from(pages).map_err(|_| PvError::NoMachineFrame { pfn })?;
    p2m.get(start..start.saturating_add(n))
        .filter(|s| s.len() == n)
        .map(|s| s.iter().map(|&m| Mfn(m)).collect())
        .ok_or(PvImageError::Layout(PvError::NoMachineFrame {
            pfn: pfn + pages,
        }))
}

fn mfn_at(p2m: &[u64], pfn: u64) -> Result<u64, PvImageError> {
    Ok(mfns_of(p2m, pfn, 1)?[0].0)
}

/// Writes `data` zero-padded to `pages` frames starting at `pfn`.
fn write_segment<H: PvHypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    p2m: &[u64],
    what: &'static str,
    pfn: u64,
    pages: u64,
    data: &[u8],
) -> Result<(), PvImageError> {
    if pages == 0 {
        return Ok(());
    }
    let mfns = mfns_of(p2m, pfn, pages)?;
    let mut buf = vec![0u8; mfns.len() * PAGE];
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    step(what, hv.write_machine(domid, &mfns, 0, &buf))
}

/// The kernel segment's bytes: each loadable ELF segment at `p_paddr - pstart`, bss zero
/// (`elf_load_binary` into the zeroed segment).
fn kernel_bytes(elf: &KernelElf, size: usize) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    for seg in &elf.segments {
        let bytes = elf.file_bytes(seg);
        let at = seg.paddr.wrapping_sub(elf.pstart);
        if let Ok(at) = usize::try_from(at) {
            if let Some(dst) = buf.get_mut(at..at.saturating_add(bytes.len())) {
                dst.copy_from_slice(bytes);
            }
        }
    }
    buf
}

/// The shared info page as `shared_info_x86_64` leaves it: zeroed, every legacy
/// vcpu_info's `evtchn_upcall_mask` set.
pub fn shared_info_bytes() -> Vec<u8> {
    let mut b = vec![0u8; SHARED_INFO_SIZE];
    for i in 0..LEGACY_MAX_VCPUS {
        b[i * VCPU_INFO_SIZE + 1] = 1;
    }
    b
}

/// `xc_dom_build_image` + `xc_dom_boot_image` + `xc_dom_gnttab_init` for a 64-bit PV
/// guest whose memory `meminit_pv` populated (`p2m`).
pub fn build_pv_image<H: PvHypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    inputs: &PvImageInputs<'_>,
    p2m: &[u64],
) -> Result<PvImageOutcome, PvImageError> {
    let k = &inputs.kernel;
    let total_pages = xg_ctrl::types::conv::usize_to_u64(p2m.len());
    let ramdisk_len = inputs
        .ramdisk
        .map(|r| xg_ctrl::types::conv::usize_to_u64(r.len()));
    let layout = plan_pv(k, total_pages, ramdisk_len)?;
    log::info!("PV layout:\n{layout}");

    // xc_dom_build_image: kernel, ramdisk, p2m list, zeroed start info / xenstore /
    // console pages.
    let ks = &layout.kernel;
    let kbuf = kernel_bytes(
        inputs.elf,
        xg_ctrl::types::conv::u64_to_usize(ks.pages) * PAGE,
    );
    write_segment(
        hv,
        domid,
        p2m,
        "Loading the kernel",
        ks.pfn,
        ks.pages,
        &kbuf,
    )?;
    if let (Some(seg), Some(data)) = (&layout.ramdisk, inputs.ramdisk) {
        write_segment(
            hv,
            domid,
            p2m,
            "Loading the ramdisk",
            seg.pfn,
            seg.pages,
            data,
        )?;
    }
    let list: Vec<u8> = p2m.iter().flat_map(|m| m.to_le_bytes()).collect();
    let list_pages = xg_ctrl::types::conv::usize_to_u64(list.len()).div_ceil(PAGE_SIZE);
    write_segment(
        hv,
        domid,
        p2m,
        "Writing the p2m list",
        layout.p2m.pfn,
        list_pages,
        &list,
    )?;
    for pfn in [layout.xenstore_pfn, layout.console_pfn] {
        write_segment(hv, domid, p2m, "Clearing a magic page", pfn, 1, &[])?;
    }

    // xc_dom_boot_image.
    let info = step("Reading the domain info", hv.domain_info(domid))?;
    let shared_info_mfn = info.shared_info_frame;
    let tables = page_tables(&layout, p2m)?;
    for (pfn, entries) in &tables {
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        write_segment(hv, domid, p2m, "Writing the page tables", *pfn, 1, &bytes)?;
    }
    write_segment(
        hv,
        domid,
        p2m,
        "Clearing the boot stack",
        layout.bootstack_pfn,
        1,
        &[],
    )?;

    let store_mfn = mfn_at(p2m, layout.xenstore_pfn)?;
    let console_mfn = mfn_at(p2m, layout.console_pfn)?;
    let mut si = PvStartInfo {
        magic: k.guest_type.to_owned(),
        nr_pages: total_pages,
        shared_info: shared_info_mfn << 12,
        flags: inputs.flags,
        store_mfn,
        store_evtchn: inputs.store_evtchn,
        console_mfn,
        console_evtchn: inputs.console_evtchn,
        pt_base: layout.pgtables.vstart,
        nr_pt_frames: layout.maps.first().map_or(0, |m| m.area.pgtables),
        mfn_list: layout.p2m.vstart,
        cmdline: inputs.cmdline.clone(),
        ..PvStartInfo::default()
    };
    if k.p2m_base.is_some() {
        si.first_p2m_pfn = layout.p2m.pfn;
        si.nr_p2m_frames = layout.p2m.pages;
    }
    if let (Some(seg), Some(data)) = (&layout.ramdisk, inputs.ramdisk) {
        si.mod_len = xg_ctrl::types::conv::usize_to_u64(data.len());
        if k.unmapped_initrd {
            si.mod_start = seg.pfn;
            si.flags |= SIF_MOD_START_PFN;
        } else {
            si.mod_start = seg.vstart;
        }
    }
    write_segment(
        hv,
        domid,
        p2m,
        "Writing the start info",
        layout.start_info_pfn,
        1,
        &build_pv_start_info(&si),
    )?;

    let mut hypercall_mfn = None;
    if let Some(h) = k.hypercall_page {
        let pfn = (h - k.virt_base) >> 12;
        let mfn = mfn_at(p2m, pfn)?;
        step(
            "Initialising the hypercall page",
            hv.hypercall_init(domid, Mfn(mfn)),
        )?;
        hypercall_mfn = Some(mfn);
    }

    // bootlate_pv: pin the top-level table, initialise the shared info page.
    let l4_mfn = mfn_at(p2m, layout.pgtables.pfn)?;
    step(
        "Pinning the L4 page table",
        hv.pin_table(domid, xg_ctrl::pin::L4_TABLE, Mfn(l4_mfn)),
    )?;
    step(
        "Initialising the shared info page",
        hv.write_machine(domid, &[Mfn(shared_info_mfn)], 0, &shared_info_bytes()),
    )?;

    let vcpu_context = boot_context(k, &layout, l4_mfn);
    step(
        "Setting the boot vcpu context",
        hv.set_vcpu_context(domid, 0, &vcpu_context),
    )?;

    // xc_dom_gnttab_init: a PV guest's grant entries name machine frames.
    let grants = seed_entries(
        domid,
        console_mfn,
        inputs.console_domid,
        store_mfn,
        inputs.store_domid,
    );
    seed(hv, domid, &grants).map_err(|e| match e {
        crate::error::SetupError::Hypervisor { step, source } => {
            PvImageError::Hypervisor { step, source }
        }
        other => PvImageError::Hypervisor {
            step: "Seeding the grant table",
            source: xg_ctrl::Error::InvalidArgument {
                op: "seed grant table",
                detail: other.to_string(),
            },
        },
    })?;

    Ok(PvImageOutcome {
        pgtable_frames: tables.len(),
        layout,
        store_mfn,
        console_mfn,
        shared_info_mfn,
        l4_mfn,
        hypercall_mfn,
        start_info: si,
        vcpu_context,
        grants,
    })
}
