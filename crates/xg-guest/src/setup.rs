//! Guest setup after memory population: libxenguest's `xc_dom_build_image`,
//! `xc_dom_boot_image` and `xc_dom_gnttab_init` for an HVM (hvmloader) guest.
//!
//! Order for the build orchestration (xenguest's `-mode hvm_build`, spec §6):
//!
//! 1. [`check_image`] — `xc_dom_boot_xen_init` + `xc_dom_parse_image` + compat check,
//!    before memory setup.
//! 2. memory layout and `meminit_hvm` ([`crate::meminit`]).
//! 3. [`build_image`] — loads the firmware image, system firmware and modules; special
//!    pages and their params; identity page table; start info; hvm_info table (device
//!    model only); `CONSOLE_EVTCHN`/`STORE_EVTCHN`; the boot vCPU; grant-table seeding.
//!    [`plan_image`] is its pure placement step, for snapshots and dry runs.
//! 4. xenguest's `hvm_build_set_params`: [`crate::hvm_info::patch_hvm_info`] (HVM only),
//!    then the remaining params (viridian, HPET, ...; in xg-build).
//! 5. [`crate::cpuid::construct_cpuid_policy`] last.

use std::fmt;

use xg_ctrl::{DomId, E820Entry, Hypervisor, XenVersion};

use crate::compat::{check_compat, xen_init, HVM_GUEST_TYPE};
use crate::elf::HvmFirmware;
use crate::error::SetupError;
use crate::gnttab::{seed, seed_entries, GrantEntry};
use crate::hvm_info::{write_hvm_info, HvmInfoTable};
use crate::segments::{Segment, SegmentAllocator};
use crate::special_pages::{finish_special_pages, param, populate_special_pages, SpecialPages};
use crate::start_info::{
    build_start_info, start_info_size, ListedModule, StartInfo, StartInfoParams,
};
use crate::vcpu::setup_boot_vcpu;

/// A module handed to the guest (`xc_dom_module_file`), e.g. iPXE with cmdline `"ipxe"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInput<'a> {
    /// The module's bytes (placed as they are; gzip modules are not decompressed).
    pub data: &'a [u8],
    /// Its command line (hvmloader looks modules up by it).
    pub cmdline: Option<String>,
}

/// Everything guest setup needs besides the hypervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInputs<'a> {
    /// The HVM firmware ELF image (hvmloader), libxenguest's "kernel".
    pub firmware: &'a [u8],
    /// System firmware module (OVMF for UEFI guests), listed as `"firmware"`.
    pub system_firmware: Option<&'a [u8]>,
    /// Further modules in order (xenguest: iPXE).
    pub modules: Vec<ModuleInput<'a>>,
    /// Guest pages (`total_pages`, `mem_max_mib << 8`).
    pub total_pages: u64,
    /// End of RAM below 4 GiB (bytes).
    pub lowmem_end: u64,
    /// End of RAM above 4 GiB (bytes; 4 GiB or 0 when there is none).
    pub highmem_end: u64,
    /// Start of the MMIO hole below 4 GiB.
    pub mmio_start: u64,
    /// HVM with a device model (true) or PVH (false).
    pub device_model: bool,
    /// vCPUs of the domain (`dom->max_vcpus`).
    pub max_vcpus: u32,
    /// Kernel command line (PVH only).
    pub cmdline: Option<String>,
    /// Memory map listed in the start info (`dom->e820`; empty for xenguest).
    pub memmap: Vec<E820Entry>,
    /// Console event channel port.
    pub console_evtchn: u32,
    /// Xenstore event channel port.
    pub store_evtchn: u32,
    /// Console backend domain.
    pub console_domid: DomId,
    /// Xenstore backend domain.
    pub store_domid: DomId,
}

impl<'a> SetupInputs<'a> {
    /// Inputs of an HVM guest with a device model, one vCPU, backends in dom0, event
    /// channel ports 0 and no modules.
    pub fn hvm(
        firmware: &'a [u8],
        total_pages: u64,
        lowmem_end: u64,
        highmem_end: u64,
        mmio_start: u64,
    ) -> Self {
        SetupInputs {
            firmware,
            system_firmware: None,
            modules: Vec::new(),
            total_pages,
            lowmem_end,
            highmem_end,
            mmio_start,
            device_model: true,
            max_vcpus: 1,
            cmdline: None,
            memmap: Vec::new(),
            console_evtchn: 0,
            store_evtchn: 0,
            console_domid: DomId::DOM0,
            store_domid: DomId::DOM0,
        }
    }
}

/// Where everything goes in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// The firmware image's segment.
    pub kernel: Segment,
    /// Entry point.
    pub entry: u64,
    /// System firmware module.
    pub system_firmware: Option<Segment>,
    /// Modules with their command lines.
    pub modules: Vec<(Segment, Option<String>)>,
    /// The start-info segment.
    pub start_info: Segment,
}

impl ImagePlan {
    /// The modules as the start info lists them: system firmware as `"firmware"` first.
    pub fn listed_modules(&self) -> Vec<ListedModule> {
        let fw = self.system_firmware.iter().map(|s| ListedModule {
            paddr: s.vstart,
            size: s.vend - s.vstart,
            cmdline: Some("firmware".into()),
        });
        let mods = self.modules.iter().map(|(s, c)| ListedModule {
            paddr: s.vstart,
            size: s.vend - s.vstart,
            cmdline: c.clone(),
        });
        fw.chain(mods).collect()
    }
}

impl fmt::Display for ImagePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.kernel)?;
        if let Some(s) = &self.system_firmware {
            writeln!(f, "{s}")?;
        }
        for (s, c) in &self.modules {
            writeln!(f, "{s} cmdline={}", c.as_deref().unwrap_or("-"))?;
        }
        writeln!(f, "{}", self.start_info)?;
        write!(f, "entry {:#x}", self.entry)
    }
}

fn below_mmio(seg: &Segment, mmio_start: u64) -> Result<(), SetupError> {
    if seg.vstart > mmio_start || seg.vend > mmio_start {
        return Err(SetupError::InMmioHole {
            name: seg.name.clone(),
            end: seg.vend,
            mmio_start,
        });
    }
    Ok(())
}

/// Places the firmware image, system firmware, modules and start info (the segment
/// allocations of `xc_dom_build_image`, `modules_init` and `alloc_magic_pages_hvm`). Pure.
pub fn plan_image(fw: &HvmFirmware<'_>, inputs: &SetupInputs<'_>) -> Result<ImagePlan, SetupError> {
    let mut alloc = SegmentAllocator::new(inputs.total_pages);
    let kernel = alloc.alloc("kernel", fw.pstart(), fw.pend() - fw.pstart())?;
    // Stricter than libxenguest, which would fail later mapping unpopulated frames.
    below_mmio(&kernel, inputs.mmio_start)?;
    let system_firmware = match inputs.system_firmware {
        Some(data) if !data.is_empty() => {
            let s = alloc.alloc("System Firmware module", 0, crate::firmware::len64(data))?;
            below_mmio(&s, inputs.mmio_start)?;
            Some(s)
        }
        _ => None,
    };
    let mut modules = Vec::new();
    for (i, m) in inputs.modules.iter().enumerate() {
        let s = alloc.alloc(&format!("module{i}"), 0, crate::firmware::len64(m.data))?;
        below_mmio(&s, inputs.mmio_start)?;
        modules.push((s, m.cmdline.clone()));
    }
    let si_size = start_info_size(
        inputs.device_model,
        inputs.cmdline.as_deref(),
        inputs.memmap.len(),
    );
    let start_info = alloc.alloc("HVM start info", 0, si_size)?;
    Ok(ImagePlan {
        kernel,
        entry: fw.entry(),
        system_firmware,
        modules,
        start_info,
    })
}

/// What guest setup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupOutcome {
    /// Segment placement.
    pub plan: ImagePlan,
    /// Console and xenstore ring frames (the numbers xenguest prints).
    pub special: SpecialPages,
    /// The start info as written.
    pub start_info: StartInfo,
    /// The hvm_info table as libxenguest wrote it (device model only).
    pub hvm_info: Option<HvmInfoTable>,
    /// The boot vCPU's context as set.
    pub vcpu_context: Vec<u8>,
    /// Grant entries seeded.
    pub grants: Vec<GrantEntry>,
}

impl fmt::Display for SetupOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.plan)?;
        write_pages(f, &self.special, &self.start_info)?;
        if let Some(t) = &self.hvm_info {
            writeln!(
                f,
                "hvm_info low_mem_pgend {:#x} high_mem_pgend {:#x} reserved_mem_pgstart {:#x} checksum {:#04x}",
                t.low_mem_pgend, t.high_mem_pgend, t.reserved_mem_pgstart, t.checksum
            )?;
        }
        writeln!(f, "vcpu context {} bytes", self.vcpu_context.len())?;
        write_grants(f, &self.grants)
    }
}

/// The special pages and start info lines of a set-up's summary.
pub(crate) fn write_pages(
    f: &mut fmt::Formatter<'_>,
    special: &SpecialPages,
    start_info: &StartInfo,
) -> fmt::Result {
    writeln!(
        f,
        "console_pfn {:#x} xenstore_pfn {:#x}",
        special.console_pfn, special.xenstore_pfn
    )?;
    writeln!(
        f,
        "start_info {:#x} modules {} modlist {:#x} memmap {:#x}",
        start_info.paddr, start_info.nr_modules, start_info.modlist_paddr, start_info.memmap_paddr
    )
}

/// The grant-table lines of a set-up's summary.
pub(crate) fn write_grants(f: &mut fmt::Formatter<'_>, grants: &[GrantEntry]) -> fmt::Result {
    for g in grants {
        writeln!(
            f,
            "gnt[{}] flags {} domid {} frame {:#x}",
            g.index, g.flags, g.domid, g.frame
        )?;
    }
    Ok(())
}

/// Before memory setup: read Xen's capabilities, parse the firmware image and check that
/// Xen runs `hvm-3.0-x86_32` guests.
pub fn check_image<H: Hypervisor + ?Sized>(
    hv: &H,
    firmware: &[u8],
) -> Result<XenVersion, SetupError> {
    let version = xen_init(hv)?;
    HvmFirmware::parse(firmware)?;
    check_compat(&version, HVM_GUEST_TYPE)?;
    Ok(version)
}

/// A failed hypervisor call, named by the step it was for.
pub(crate) fn step<T>(step: &'static str, r: xg_ctrl::Result<T>) -> Result<T, SetupError> {
    r.map_err(|source| SetupError::Hypervisor { step, source })
}

/// Tells the guest its console and Xenstore event channels.
pub(crate) fn set_evtchn_params<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    console_evtchn: u32,
    store_evtchn: u32,
) -> Result<(), SetupError> {
    step(
        "Setting HVM_PARAM_CONSOLE_EVTCHN",
        hv.set_hvm_param(domid, param::CONSOLE_EVTCHN, u64::from(console_evtchn)),
    )?;
    step(
        "Setting HVM_PARAM_STORE_EVTCHN",
        hv.set_hvm_param(domid, param::STORE_EVTCHN, u64::from(store_evtchn)),
    )?;
    Ok(())
}

/// `xc_dom_gnttab_init`: grants the console and Xenstore pages to their back-ends.
pub(crate) fn seed_grant_table<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    special: &SpecialPages,
    console_domid: DomId,
    store_domid: DomId,
) -> Result<Vec<GrantEntry>, SetupError> {
    let grants = seed_entries(
        domid,
        special.console_pfn,
        console_domid,
        special.xenstore_pfn,
        store_domid,
    );
    seed(hv, domid, &grants)?;
    Ok(grants)
}

fn place<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    seg: &Segment,
    data: Option<&[u8]>,
) -> Result<(), SetupError> {
    step(
        "Clearing a segment",
        hv.clear_guest_pages(domid, &seg.gfns()),
    )?;
    if let Some(d) = data {
        step("Copying a module", hv.write_guest(domid, seg.vstart, d))?;
    }
    Ok(())
}

/// Everything libxenguest does for an HVM guest after memory population, in its order.
pub fn build_image<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    inputs: &SetupInputs<'_>,
) -> Result<SetupOutcome, SetupError> {
    let fw = HvmFirmware::parse(inputs.firmware)?;
    let plan = plan_image(&fw, inputs)?;
    log::debug!("d{domid} image plan:\n{plan}");

    // xc_dom_build_image: kernel, its loader's modules, the builder's modules.
    place(hv, domid, &plan.kernel, None)?;
    step("Loading the firmware image", fw.load(hv, domid))?;
    if let (Some(seg), Some(data)) = (&plan.system_firmware, inputs.system_firmware) {
        place(hv, domid, seg, Some(data))?;
    }
    for ((seg, _), m) in plan.modules.iter().zip(&inputs.modules) {
        place(hv, domid, seg, Some(m.data))?;
    }
    // alloc_magic_pages_hvm.
    populate_special_pages(hv, domid, inputs.device_model)?;
    place(hv, domid, &plan.start_info, None)?;
    let special = finish_special_pages(hv, domid)?;

    // xc_dom_boot_image.
    step("Reading domain info", hv.domain_info(domid))?;
    let start_info = build_start_info(&StartInfoParams {
        paddr: plan.start_info.paddr(),
        device_model: inputs.device_model,
        cmdline: inputs.cmdline.clone(),
        rsdp_paddr: 0,
        modules: plan.listed_modules(),
        memmap: inputs.memmap.clone(),
    })?;
    step(
        "Writing the start info",
        hv.write_guest(domid, start_info.paddr, &start_info.bytes),
    )?;
    let hvm_info = if inputs.device_model {
        let t = HvmInfoTable::libxenguest(inputs.lowmem_end, inputs.highmem_end);
        write_hvm_info(hv, domid, &t)?;
        Some(t)
    } else {
        None
    };
    set_evtchn_params(hv, domid, inputs.console_evtchn, inputs.store_evtchn)?;
    let vcpu_context = setup_boot_vcpu(
        hv,
        domid,
        plan.entry,
        plan.start_info.paddr(),
        inputs.device_model,
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

    Ok(SetupOutcome {
        plan,
        special,
        start_info,
        hvm_info,
        vcpu_context,
        grants,
    })
}
