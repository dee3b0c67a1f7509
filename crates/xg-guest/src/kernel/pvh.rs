//! The PVH part of `xc_dom_build_image` and `xc_dom_boot_image`: the kernel at its
//! physical address, the modules after it, the ACPI modules at their fixed addresses,
//! then the HVM special pages, start info (command line, RSDP, modules), the boot vCPU at
//! `PHYS32_ENTRY` and the grant-table seed, all through the HVM code with
//! `device_model = false`.

use std::fmt;

use xg_ctrl::{DomId, Gfn, Hypervisor, MemFlags, PageOrder, PAGE_SHIFT, PAGE_SIZE};

use crate::error::SetupError;
use crate::gnttab::GrantEntry;
use crate::layout::{AcpiModule, FOUR_GIB};
use crate::segments::{Segment, SegmentAllocator};
use crate::setup::{seed_grant_table, set_evtchn_params, step, write_grants, write_pages};
use crate::special_pages::{finish_special_pages, populate_special_pages, SpecialPages};
use crate::start_info::{
    build_start_info, start_info_size, ListedModule, StartInfo, StartInfoParams,
};
use crate::vcpu::setup_boot_vcpu;

use super::{KernelElf, PvhKernel};

/// A module to load, already decompressed, with its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhModule {
    /// Bytes.
    pub data: Vec<u8>,
    /// Command line (`""` when none was given).
    pub cmdline: String,
}

/// Everything the PVH image build needs.
#[derive(Debug, Clone)]
pub struct PvhImageInputs<'a> {
    /// The parsed kernel.
    pub elf: &'a KernelElf,
    /// Its PVH placement and entry.
    pub kernel: PvhKernel,
    /// Modules in order.
    pub modules: &'a [PvhModule],
    /// ACPI modules with their bytes (RSDP first).
    pub acpi: Vec<(AcpiModule, &'a [u8])>,
    /// `dom->total_pages`.
    pub total_pages: u64,
    /// End of low RAM.
    pub lowmem_end: u64,
    /// End of high RAM.
    pub highmem_end: u64,
    /// Start of the MMIO hole.
    pub mmio_start: u64,
    /// `dom->max_vcpus`.
    pub max_vcpus: u32,
    /// Kernel command line.
    pub cmdline: Option<String>,
    /// Console event channel.
    pub console_evtchn: u32,
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Console backend domain.
    pub console_domid: DomId,
    /// Xenstore backend domain.
    pub store_domid: DomId,
}

/// Where everything went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhImagePlan {
    /// Kernel segment.
    pub kernel: Segment,
    /// Entry point.
    pub entry: u64,
    /// Module segments and command lines.
    pub modules: Vec<(Segment, String)>,
    /// The start-info segment.
    pub start_info: Segment,
}

impl fmt::Display for PvhImagePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.kernel)?;
        for (s, c) in &self.modules {
            writeln!(f, "{s} cmdline={c:?}")?;
        }
        writeln!(f, "{}", self.start_info)?;
        write!(f, "entry {:#x}", self.entry)
    }
}

/// What the PVH image build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhImageOutcome {
    /// Placement.
    pub plan: PvhImagePlan,
    /// ACPI frames populated (those outside guest RAM).
    pub acpi_populated: Vec<u64>,
    /// Console and xenstore frames.
    pub special: SpecialPages,
    /// The start info as written.
    pub start_info: StartInfo,
    /// The boot vCPU context.
    pub vcpu_context: Vec<u8>,
    /// Grant entries seeded.
    pub grants: Vec<GrantEntry>,
}

impl fmt::Display for PvhImageOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.plan)?;
        writeln!(
            f,
            "acpi frames populated: {}",
            self.acpi_populated
                .iter()
                .map(|g| format!("{g:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        write_pages(f, &self.special, &self.start_info)?;
        writeln!(f, "vcpu context {} bytes", self.vcpu_context.len())?;
        write_grants(f, &self.grants)
    }
}

fn below_mmio(seg: &Segment, mmio_start: u64) -> Result<(), SetupError> {
    if seg.vend > mmio_start {
        return Err(SetupError::InMmioHole {
            name: seg.name.clone(),
            end: seg.vend,
            mmio_start,
        });
    }
    Ok(())
}

/// Places kernel, modules and the start info (pure).
pub fn plan_pvh_image(inputs: &PvhImageInputs<'_>) -> Result<PvhImagePlan, SetupError> {
    let mut alloc = SegmentAllocator::new(inputs.total_pages);
    let k = &inputs.kernel;
    let kernel = alloc.alloc("kernel", k.kstart, k.kend - k.kstart)?;
    below_mmio(&kernel, inputs.mmio_start)?;
    let mut modules = Vec::new();
    for (i, m) in inputs.modules.iter().enumerate() {
        let len = xg_ctrl::types::conv::usize_to_u64(m.data.len());
        let s = alloc.alloc(&format!("module{i}"), 0, len)?;
        below_mmio(&s, inputs.mmio_start)?;
        modules.push((s, m.cmdline.clone()));
    }
    let size = start_info_size(false, inputs.cmdline.as_deref(), 0);
    let start_info = alloc.alloc("HVM start info", 0, size)?;
    below_mmio(&start_info, inputs.mmio_start)?;
    Ok(PvhImagePlan {
        kernel,
        entry: k.entry,
        modules,
        start_info,
    })
}

fn is_ram(gfn: u64, lowmem_end: u64, highmem_end: u64) -> bool {
    let addr = gfn << PAGE_SHIFT;
    addr < lowmem_end || (addr >= FOUR_GIB && addr < highmem_end)
}

/// `xc_dom_load_acpi`: populates, one frame at a time, the frames of each ACPI module
/// that are not guest RAM and copies the bytes. When Xen refuses a frame (the domain is at
/// its maximum), the last RAM frame is given up for it, as libxenguest's
/// `populate_acpi_pages` does with `XENMAPSPACE_gmfn` (here: `decrease_reservation` of
/// that frame, then populate). Frames already RAM (the RSDP's) are written in place:
/// libxenguest would populate them again, which Xen answers by replacing the page.
fn load_acpi<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    inputs: &PvhImageInputs<'_>,
) -> Result<Vec<u64>, SetupError> {
    let mut populated = Vec::new();
    let first_high = FOUR_GIB >> PAGE_SHIFT;
    let mut low_end = inputs.lowmem_end >> PAGE_SHIFT;
    let mut high_end = if inputs.highmem_end > FOUR_GIB {
        inputs.highmem_end >> PAGE_SHIFT
    } else {
        0
    };
    for (m, data) in &inputs.acpi {
        if m.length == 0 {
            continue;
        }
        let first = m.guest_addr >> PAGE_SHIFT;
        let pages = (m.length + (m.guest_addr & (PAGE_SIZE - 1))).div_ceil(PAGE_SIZE);
        for gfn in first..first + pages {
            if is_ram(gfn, inputs.lowmem_end, inputs.highmem_end) {
                continue;
            }
            let target = [Gfn(gfn)];
            let done = step(
                "Populating ACPI pages",
                hv.populate_physmap(domid, PageOrder::ORDER_4K, MemFlags::NONE, &target),
            )?;
            if done != 1 {
                // Give up the last RAM frame for this one.
                let victim = if high_end != 0 {
                    high_end -= 1;
                    let v = high_end;
                    if high_end == first_high {
                        high_end = 0;
                    }
                    v
                } else {
                    low_end = low_end.saturating_sub(1);
                    low_end
                };
                log::warn!(
                    "d{domid}: no room for ACPI frame {gfn:#x}, using RAM frame {victim:#x}"
                );
                step(
                    "Releasing a RAM frame for ACPI",
                    hv.decrease_reservation(domid, PageOrder::ORDER_4K, &[Gfn(victim)]),
                )?;
                step(
                    "Populating ACPI pages",
                    hv.populate_physmap_exact(domid, PageOrder::ORDER_4K, MemFlags::NONE, &target),
                )?;
            }
            step("Clearing ACPI pages", hv.clear_guest_pages(domid, &target))?;
            populated.push(gfn);
        }
        step(
            "Copying ACPI tables",
            hv.write_guest(domid, m.guest_addr, data),
        )?;
    }
    Ok(populated)
}

/// Builds and boots the PVH image in libxenguest's order.
pub fn build_pvh_image<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    inputs: &PvhImageInputs<'_>,
) -> Result<PvhImageOutcome, SetupError> {
    let plan = plan_pvh_image(inputs)?;
    log::debug!("d{domid} PVH image plan:\n{plan}");

    // xc_dom_build_image: kernel, modules, ACPI.
    step(
        "Clearing the kernel segment",
        hv.clear_guest_pages(domid, &plan.kernel.gfns()),
    )?;
    step("Loading the kernel", inputs.elf.load(hv, domid, 0))?;
    for ((seg, _), m) in plan.modules.iter().zip(inputs.modules) {
        step(
            "Clearing a module segment",
            hv.clear_guest_pages(domid, &seg.gfns()),
        )?;
        step(
            "Copying a module",
            hv.write_guest(domid, seg.vstart, &m.data),
        )?;
    }
    let acpi_populated = load_acpi(hv, domid, inputs)?;

    // alloc_magic_pages_hvm without a device model.
    populate_special_pages(hv, domid, false)?;
    step(
        "Clearing the start info",
        hv.clear_guest_pages(domid, &plan.start_info.gfns()),
    )?;
    let special = finish_special_pages(hv, domid)?;

    // xc_dom_boot_image.
    step("Reading domain info", hv.domain_info(domid))?;
    let modules = plan
        .modules
        .iter()
        .map(|(s, c)| ListedModule {
            paddr: s.vstart,
            size: s.vend - s.vstart,
            cmdline: Some(c.clone()),
        })
        .collect();
    let rsdp_paddr = inputs.acpi.first().map(|(m, _)| m.guest_addr).unwrap_or(0);
    let start_info = build_start_info(&StartInfoParams {
        paddr: plan.start_info.paddr(),
        device_model: false,
        cmdline: inputs.cmdline.clone(),
        rsdp_paddr,
        modules,
        memmap: Vec::new(),
    })?;
    step(
        "Writing the start info",
        hv.write_guest(domid, start_info.paddr, &start_info.bytes),
    )?;
    set_evtchn_params(hv, domid, inputs.console_evtchn, inputs.store_evtchn)?;
    let vcpu_context = setup_boot_vcpu(
        hv,
        domid,
        plan.entry,
        plan.start_info.paddr(),
        false,
        inputs.max_vcpus,
    )?;

    // xc_dom_gnttab_init.
    let grants = seed_grant_table(
        hv,
        domid,
        &special,
        inputs.console_domid,
        inputs.store_domid,
    )?;

    Ok(PvhImageOutcome {
        plan,
        acpi_populated,
        special,
        start_info,
        vcpu_context,
        grants,
    })
}
