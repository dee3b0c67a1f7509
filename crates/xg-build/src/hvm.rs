//! `-mode hvm_build`: the whole HVM build in xenguest's order (spec §6).
//!
//! Each stage is a small function returning data; [`build_hvm`] strings them together
//! and times them. Xenstore writes of the build (the `hvmloader_flag` fix-ups, the vGPU
//! VRAM keys, `vm-data/mmio-hole-size`) are collected and written in one transaction at
//! the very end: nobody reads them before xenopsd unpauses the domain after the build,
//! and a failed build then leaves no partial keys behind. A claim (`-mem_pnode`) never
//! outlives `meminit_hvm`, which releases it on success and on error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use xg_ctrl::{CpuPolicy, DomId, DomainInfo, E820Entry, Hypervisor};
use xg_guest::hvm_info::HvmInfoTable;
use xg_guest::layout::HvmLayout;
use xg_guest::meminit::{self, MeminitConfig, MeminitReport, Strategy};
use xg_guest::setup::{self, ModuleInput, SetupInputs, SetupOutcome};
use xg_store::{Request, Store, TxId};

use crate::error::{BuildError, ErrorKind, Step};
use crate::flags::{self, Flags};
use crate::mem::{self, PopulatedRun, SystemFirmware};
use crate::pci::{self, PciHost, PciInputs, RmrrSource};
use crate::safety;
use crate::vcpus::{self, VcpuConfig};

/// HVM params xenguest sets itself (public/hvm/params.h).
pub mod param {
    /// `HVM_PARAM_VIRIDIAN`.
    pub const VIRIDIAN: u32 = 9;
    /// `HVM_PARAM_HPET_ENABLED`.
    pub const HPET_ENABLED: u32 = 11;
    /// `HVM_PARAM_TRIPLE_FAULT_REASON`.
    pub const TRIPLE_FAULT_REASON: u32 = 31;
    /// `HVM_PARAM_X87_FIP_WIDTH`.
    pub const X87_FIP_WIDTH: u32 = 36;
    /// `SHUTDOWN_crash`.
    pub const SHUTDOWN_CRASH: u64 = 3;
}

/// Everything `-mode hvm_build` is asked to do.
#[derive(Debug, Clone)]
pub struct HvmBuildRequest {
    /// `-domid`.
    pub domid: DomId,
    /// `-mem_max_mib`.
    pub mem_max_mib: u64,
    /// `-mem_start_mib`.
    pub mem_start_mib: u64,
    /// The firmware loader image (hvmloader) as read from `-image`.
    pub firmware: Vec<u8>,
    /// The iPXE ROM module (`"ipxe"`), when present on this host.
    pub ipxe: Option<Vec<u8>>,
    /// `OVMF_PATH` (UEFI guests).
    pub ovmf_path: PathBuf,
    /// `-store_port`.
    pub store_evtchn: u32,
    /// `-store_domid`.
    pub store_domid: DomId,
    /// `-console_port`.
    pub console_evtchn: u32,
    /// `-console_domid`.
    pub console_domid: DomId,
    /// `-vgpu`.
    pub vgpu: bool,
    /// `-force`.
    pub force: bool,
    /// `-pci_passthrough` (given, even empty, matters for the safety check).
    pub pci_passthrough: Option<String>,
    /// `-mem_pnode`: all guest RAM on this physical node.
    pub mem_pnode: Option<u32>,
    /// How populate calls are issued.
    pub strategy: Strategy,
}

impl HvmBuildRequest {
    /// A request with xenguest's defaults: dom0 backends, ports 0, no devices.
    pub fn new(domid: DomId, mem_max_mib: u64, mem_start_mib: u64, firmware: Vec<u8>) -> Self {
        HvmBuildRequest {
            domid,
            mem_max_mib,
            mem_start_mib,
            firmware,
            ipxe: None,
            ovmf_path: PathBuf::from(mem::OVMF_PATH),
            store_evtchn: 0,
            store_domid: DomId::DOM0,
            console_evtchn: 0,
            console_domid: DomId::DOM0,
            vgpu: false,
            force: false,
            pci_passthrough: None,
            mem_pnode: None,
            strategy: Strategy::Compat,
        }
    }
}

/// What `hvm_build_set_params` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamsOutcome {
    /// The hvm_info table as patched.
    #[serde(skip)]
    pub hvm_info: HvmInfoTable,
    /// HVM_PARAM_VIRIDIAN, when set.
    pub viridian: Option<u64>,
    /// HVM_PARAM_HPET_ENABLED.
    pub hpet: u64,
    /// HVM_PARAM_X87_FIP_WIDTH, when set.
    pub x87_fip_width: Option<u64>,
    /// Time offset in seconds.
    pub time_offset: i32,
}

/// Everything a successful build did.
#[derive(Debug, Clone)]
pub struct HvmBuildOutcome {
    /// The domain built.
    pub domid: DomId,
    /// `dom->xenstore_pfn`: the first number of the result line.
    pub store_pfn: u64,
    /// `dom->console_pfn`: the second number.
    pub console_pfn: u64,
    /// get_flags.
    pub flags: Flags,
    /// configure_vcpus.
    pub vcpus: VcpuConfig,
    /// PCI inputs.
    pub pci: PciInputs,
    /// The layout.
    pub layout: HvmLayout,
    /// Chosen system firmware.
    pub system_firmware: SystemFirmware,
    /// meminit configuration.
    pub meminit_config: MeminitConfig,
    /// meminit result.
    pub meminit: MeminitReport,
    /// What was populated, merged into runs.
    pub populated: Vec<PopulatedRun>,
    /// Guest setup (segments, special pages, start info, grants).
    pub setup: SetupOutcome,
    /// hvm_build_set_params.
    pub params: ParamsOutcome,
    /// The CPU policy set.
    pub cpu_policy: CpuPolicy,
    /// Xenstore writes (relative to the domain path), in order.
    pub xenstore_writes: Vec<(String, String)>,
    /// Time per stage.
    pub timings: Vec<(&'static str, Duration)>,
}

impl HvmBuildOutcome {
    /// The control-channel line: `result:<store> <console>\n`.
    pub fn result_line(&self) -> String {
        format!("result:{} {}\n", self.store_pfn, self.console_pfn)
    }
}

/// The time each build step took, lap by lap.
pub(crate) struct Timer {
    last: Instant,
    pub(crate) timings: Vec<(&'static str, Duration)>,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            last: Instant::now(),
            timings: Vec::new(),
        }
    }

    pub(crate) fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.timings.push((name, now - self.last));
        self.last = now;
    }
}

/// Reads the domain's info (`xc_domain_getinfo`).
pub fn domain_info<H: Hypervisor + ?Sized>(hv: &H, domid: DomId) -> Result<DomainInfo, BuildError> {
    hv.domain_info(domid)
        .map_err(|e| BuildError::xen(Step::DomainGetInfo, e))
}

/// Maps a guest-setup error to the libxenguest step it belongs to.
fn setup_error(e: xg_guest::error::SetupError) -> BuildError {
    use xg_guest::error::SetupError as S;
    let step = match &e {
        S::Hypervisor { step, .. } => {
            let s = step.to_ascii_lowercase();
            if s.contains("xen capabilities") {
                // xen_version is xc_dom_boot_xen_init's hypercall.
                Step::BootXenInit
            } else if s.contains("grant") {
                Step::GnttabInit
            } else if s.contains("evtchn")
                || s.contains("start info")
                || s.contains("hvm_info")
                || s.contains("vcpu")
                || s.contains("context")
                || s.contains("domain info")
            {
                Step::BootImage
            } else {
                Step::BuildImage
            }
        }
        S::GuestTypeUnsupported { .. } => Step::BootXenInit,
        S::Elf(_) => Step::ParseImage,
        S::TooManyVcpus { .. } | S::HvmContext { .. } => Step::BootImage,
        _ => Step::BuildImage,
    };
    guest_error(step, e)
}

/// The domain's Xenstore path and its `get_flags`.
pub(crate) fn domain_flags<H, S>(
    hv: &H,
    store: &S,
    domid: DomId,
    vgpu: bool,
) -> Result<(String, Flags), BuildError>
where
    H: Hypervisor + ?Sized,
    S: Store + ?Sized,
{
    let domain_path = store
        .get_domain_path(u32::from(domid.0))
        .map_err(|e| BuildError::store(Step::GetFlags, e))?;
    let info = domain_info(hv, domid)?;
    let flags = flags::get_flags(store, &domain_path, &info, vgpu)?;
    Ok((domain_path, flags))
}

/// A guest-side failure, filed under the libxenguest step it happened in.
pub(crate) fn guest_error(
    step: Step,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BuildError {
    BuildError {
        step,
        kind: ErrorKind::Guest(Box::new(e)),
    }
}

/// The platform HVM params HVM and PVH guests both get.
pub(crate) struct PlatformParams {
    pub(crate) viridian: Option<u64>,
    pub(crate) hpet: u64,
    pub(crate) x87_fip_width: Option<u64>,
}

/// Sets viridian, HPET, the triple-fault reason and the x87 FIP width, in
/// `hvm_build_set_params` order; as in C, none of them failing is fatal.
pub(crate) fn set_platform_params<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<PlatformParams, BuildError> {
    let viridian = flags.viridian_mask();
    if let Some(mask) = viridian {
        if let Err(e) = hv.set_hvm_param(domid, param::VIRIDIAN, mask) {
            log::warn!("Setting HVM_PARAM_VIRIDIAN to {mask:#x} failed: {e}");
        }
    }
    let hpet = u64::from_ne_bytes(i64::from(flags.hpet).to_ne_bytes());
    if let Err(e) = hv.set_hvm_param(domid, param::HPET_ENABLED, hpet) {
        log::warn!("Setting HVM_PARAM_HPET_ENABLED failed: {e}");
    }
    if let Err(e) = hv.set_hvm_param(domid, param::TRIPLE_FAULT_REASON, param::SHUTDOWN_CRASH) {
        log::warn!("Setting HVM_PARAM_TRIPLE_FAULT_REASON failed: {e}");
    }
    let mut x87 = None;
    if flags.x87_fip_width != 0 {
        // As C: a failed read leaves `old` at 0, so the width is set anyway, and whether
        // the set worked is not checked.
        let current = hv
            .hvm_param(domid, param::X87_FIP_WIDTH)
            .unwrap_or_else(|e| {
                log::warn!("Reading HVM_PARAM_X87_FIP_WIDTH failed: {e}");
                0
            });
        if current == 0 {
            let w = u64::from(flags.x87_fip_width);
            match hv.set_hvm_param(domid, param::X87_FIP_WIDTH, w) {
                Ok(()) => x87 = Some(w),
                Err(e) => log::warn!("Setting HVM_PARAM_X87_FIP_WIDTH to {w} failed: {e}"),
            }
        } else {
            log::info!("HVM_PARAM_X87_FIP_WIDTH already {current}, left alone");
        }
    }
    Ok(PlatformParams {
        viridian,
        hpet,
        x87_fip_width: x87,
    })
}

/// `xc_domain_set_time_offset` with `platform/timeoffset` (truncated, with a warning,
/// when it does not fit); returns the offset set. The last step of HVM and PVH params.
pub(crate) fn set_time_offset<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<i32, BuildError> {
    let time_offset = truncated_time_offset(flags);
    if i64::from(time_offset) != flags.timeoffset {
        log::warn!(
            "WARNING: platform key platform/timeoffset={}: too large for the hypercall, truncated to {time_offset}",
            flags.timeoffset
        );
    }
    hv.set_time_offset(domid, time_offset)
        .map_err(|e| BuildError::xen(Step::SetParams, e))?;
    Ok(time_offset)
}

/// `platform/timeoffset` as `xc_domain_set_time_offset` takes it: an int32_t, so the
/// int64 is truncated.
fn truncated_time_offset(flags: &Flags) -> i32 {
    let low = u32::try_from(u64::from_ne_bytes(flags.timeoffset.to_ne_bytes()) & 0xFFFF_FFFF)
        .unwrap_or(0);
    i32::from_ne_bytes(low.to_ne_bytes())
}

/// `construct_cpuid_policy` with the flags' CPUID inputs.
pub(crate) fn construct_cpuid<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
    hvm_default: bool,
    cores_per_socket: u32,
) -> Result<CpuPolicy, BuildError> {
    let inputs = xg_guest::cpuid::CpuidInputs {
        featureset: flags.featureset.clone(),
        hvm_default,
        nx: flags.nx != 0,
        pae: flags.pae != 0,
        nomigrate: flags.nomigrate != 0,
        nested_virt: flags.nested_virt != 0,
        cores_per_socket,
    };
    xg_guest::cpuid::construct_cpuid_policy(hv, domid, &inputs)
        .map_err(|e| guest_error(Step::CpuidPolicy, e))
}

/// `hvm_build_set_params` (§4.7, xenguest's part).
pub fn set_params<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<ParamsOutcome, BuildError> {
    let apic = u8::from_ne_bytes([flags.apic.to_ne_bytes()[0]]);
    let nr_vcpus = u32::try_from(flags.vcpus.max(0)).unwrap_or(0);
    let current = u32::try_from(flags.vcpus_current.clamp(0, flags::HVM_MAX_VCPUS)).unwrap_or(0);
    let hvm_info = xg_guest::hvm_info::patch_hvm_info(hv, domid, apic, nr_vcpus, current)
        .map_err(|e| guest_error(Step::SetParams, e))?;
    let PlatformParams {
        viridian,
        hpet,
        x87_fip_width: x87,
    } = set_platform_params(hv, domid, flags)?;
    let time_offset = set_time_offset(hv, domid, flags)?;
    Ok(ParamsOutcome {
        hvm_info,
        viridian,
        hpet,
        x87_fip_width: x87,
        time_offset,
    })
}

/// `construct_cpuid_policy(hvm = true)`.
pub fn cpuid_policy<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<CpuPolicy, BuildError> {
    construct_cpuid(hv, domid, flags, true, flags.cores_per_socket)
}

/// Writes `writes` (relative to `domain_path`) in one transaction, retried on EAGAIN.
pub fn commit_xenstore<S: Store + ?Sized>(
    store: &S,
    domain_path: &str,
    writes: &[(String, String)],
) -> Result<(), BuildError> {
    if writes.is_empty() {
        return Ok(());
    }
    let reqs: Vec<Request> = writes
        .iter()
        .map(|(k, v)| Request::Write(format!("{domain_path}/{k}"), v.as_bytes().to_vec()))
        .collect();
    xg_store::transaction(store, |tx: TxId| {
        for r in store.submit(tx, &reqs)? {
            r?;
        }
        Ok(())
    })
    .map_err(|e| BuildError::store(Step::XenstoreCommit, e))
}

/// Runs the whole HVM build of `req` on `hv`, reading and writing `store`, with PCI facts
/// from `pci_host`. Returns what it did, or the failing step.
pub fn build_hvm<H, S, R>(
    hv: &H,
    store: &S,
    pci_host: &PciHost<R>,
    req: &HvmBuildRequest,
) -> Result<HvmBuildOutcome, BuildError>
where
    H: Hypervisor + ?Sized,
    S: Store + ?Sized,
    R: RmrrSource,
{
    let domid = req.domid;
    let mut t = Timer::new();

    // get_flags, safety checks, vCPUs, TSC.
    let (domain_path, flags) = domain_flags(hv, store, domid, req.vgpu)?;
    let pod = req.mem_start_mib < req.mem_max_mib;
    safety::hvm_safety_check(&flags, pod, req.pci_passthrough.is_some(), req.force)?;
    let vcpus = vcpus::configure_vcpus(hv, domid, &flags)?;
    vcpus::configure_tsc(hv, domid, &flags)?;
    t.lap("get_flags + configure_vcpus");

    // xc_dom_boot_xen_init + xc_dom_parse_image.
    setup::check_image(hv, &req.firmware).map_err(setup_error)?;
    t.lap("parse_image");

    // hvm_build_setup_mem.
    let pci = match &req.pci_passthrough {
        Some(list) => pci::pci_inputs(pci_host, list)?,
        None => PciInputs::default(),
    };
    let layout = mem::compute_layout(&mem::layout_input(
        req.mem_max_mib,
        req.mem_start_mib,
        req.vgpu,
        &pci,
    ))?;
    log_layout(&layout);
    let (system_firmware, ovmf) = mem::load_system_firmware(
        flags.bios.as_deref(),
        flags.ovmf_override.as_deref(),
        &req.ovmf_path,
    )?;
    let meminit_config = mem::meminit_config(&layout, req.mem_pnode);
    if let Some(node) = req.mem_pnode {
        mem::check_pnode(hv, node, meminit_config.target_pages)?;
        log::info!("Allocating guest memory on physical node {node} (exact node, claimed)");
    }
    t.lap("setup_mem: layout");
    let recording = mem::Recording::new(hv);
    let meminit = meminit::meminit_hvm(&recording, domid, &meminit_config, req.strategy)
        .map_err(mem::meminit_error)?;
    let populated = recording.runs();
    t.lap("setup_mem: meminit_hvm");
    log::info!("Final lower MMIO hole size is {:#x}", layout.mmio_size);
    hv.set_memory_map(domid, &layout.e820)
        .map_err(|e| BuildError::xen(Step::SetMemoryMap, e))?;

    // xc_dom_build_image, xc_dom_boot_image, xc_dom_gnttab_init.
    let mut modules = Vec::new();
    if let Some(ipxe) = &req.ipxe {
        modules.push(ModuleInput {
            data: ipxe,
            cmdline: Some("ipxe".to_owned()),
        });
    }
    let inputs = SetupInputs {
        firmware: &req.firmware,
        system_firmware: ovmf.as_deref(),
        modules,
        total_pages: layout.total_pages,
        lowmem_end: layout.lowmem_end,
        highmem_end: layout.highmem_end,
        mmio_start: layout.mmio_start,
        device_model: true,
        max_vcpus: u32::try_from(flags.vcpus.max(1)).unwrap_or(1),
        cmdline: None,
        memmap: Vec::new(),
        console_evtchn: req.console_evtchn,
        store_evtchn: req.store_evtchn,
        console_domid: req.console_domid,
        store_domid: req.store_domid,
    };
    let setup = setup::build_image(hv, domid, &inputs).map_err(setup_error)?;
    t.lap("build_image + boot_image + gnttab");

    let params = set_params(hv, domid, &flags)?;
    let cpu_policy = cpuid_policy(hv, domid, &flags)?;
    t.lap("set_params + cpuid");

    let mut xenstore_writes = flags.fixups.clone();
    xenstore_writes.extend(mem::layout_xenstore_writes(&layout));
    commit_xenstore(store, &domain_path, &xenstore_writes)?;
    t.lap("xenstore commit");

    Ok(HvmBuildOutcome {
        domid,
        store_pfn: setup.special.xenstore_pfn,
        console_pfn: setup.special.console_pfn,
        flags,
        vcpus,
        pci,
        layout,
        system_firmware,
        meminit_config,
        meminit,
        populated,
        setup,
        params,
        cpu_policy,
        xenstore_writes,
        timings: t.timings,
    })
}

fn log_layout(l: &HvmLayout) {
    log::info!(
        "Calculated MMIO hole {:#x} at {:#x}; lowmem_end {:#x}, highmem_end {:#x}",
        l.mmio_size,
        l.mmio_start,
        l.lowmem_end,
        l.highmem_end
    );
    for e in &l.e820 {
        log::debug!("e820 {:#x} +{:#x} type {}", e.addr, e.size, e.kind);
    }
}

/// The e820 as a list of readable lines (for logs and snapshots).
pub fn e820_lines(e820: &[E820Entry]) -> Vec<String> {
    e820.iter()
        .map(|e| {
            let kind = match e.kind {
                xg_ctrl::e820::RAM => "RAM",
                xg_ctrl::e820::RESERVED => "RESERVED",
                xg_ctrl::e820::ACPI => "ACPI",
                _ => "OTHER",
            };
            format!("{kind} {:#x} +{:#x}", e.addr, e.size)
        })
        .collect()
}
