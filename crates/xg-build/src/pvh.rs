//! `-mode pvh_build`: xenguest's `stub_xc_hvm_build(is_pvh = true)` (spec §5.1).
//!
//! Order, as the C code: `get_flags`, `hvm_safety_check`, vCPUs and TSC, the size limits
//! from `/mh/limits` (`get_image_max_size`), `xc_dom_kernel_file` (size check, gzip),
//! `xc_dom_module_file` per module (size check), `xc_dom_boot_xen_init`,
//! `xc_dom_parse_image` (bzImage payloads, a `PHYS32_ENTRY` note is required),
//! `pvh_setup_mem` (no PCI passthrough; the fixed 256 MiB hole; meminit without a device
//! model), `xenguest_dom_load_acpi` (its domain-info query; tables of [`xg_guest::acpi`]),
//! `pvh_setup_e820` and `xc_domain_set_memory_map`, the image
//! ([`xg_guest::kernel::pvh`]), the params without the hvm_info page, and the CPUID policy.
//!
//! Xenstore writes: `get_flags` runs `hvmloader_flag` for `platform/acpi`, `acpi_s4` and
//! `acpi_s3` in the PVH build too, so the same fix-ups as an HVM build are written, in
//! the same order. Like the HVM build, they are written in one transaction at the end
//! (xenguest writes each at once outside a transaction): nobody reads them before the
//! domain runs, and a failed build leaves no partial keys behind.
//!
//! Decisions: without `platform/featureset` the guest gets the HVM default featureset,
//! not the PV one xenguest's `construct_cpuid_policy(hvm = !is_pvh)` picks (spec §4.6,
//! "latent bug, reproduce or fix deliberately"): on Xen 4.17 the PV set hides PGE and a
//! PVH Linux triple-faults setting CR4.PGE (docs/REAL-XEN.md, scenario 3). xapi always
//! writes `platform/featureset`, so XenServer builds see no difference.
//! A kernel or module that cannot be used is reported as `xenguest: <fn>: [<code>]
//! <reason>` with the code of libxenguest's last error: 4 (`XC_OUT_OF_MEMORY`) for a file
//! over its size limit, 1 (`XC_INTERNAL_ERROR`) for an empty file, 2
//! (`XC_INVALID_KERNEL`) otherwise. Upstream libxenguest lists at most two modules in the
//! start info, so a third module fails the build (`xc_dom_boot_image`) although the
//! command line accepts ten. A limit key whose value the C parse misreads (text after
//! the number, no digits, overflow, a minus sign) is used as C uses it, with a warning.

use std::time::Duration;

use serde::Serialize;
use xg_ctrl::{CpuPolicy, DomId, Hypervisor};
use xg_guest::acpi::{self, AcpiConfig, AcpiTables};
use xg_guest::compat::{check_compat, xen_init, HVM_GUEST_TYPE};
use xg_guest::kernel::pvh::{build_pvh_image, PvhImageInputs, PvhImageOutcome, PvhModule};
use xg_guest::kernel::{
    self, Compression, KernelElf, KernelError, KernelFormat, PvhKernel, XenNotes,
};
use xg_guest::layout::{pvh_layout, PvhLayout};
use xg_guest::meminit::{self, MeminitConfig, MeminitReport, Strategy};
use xg_store::{Store, TxId};

use crate::cparse;
use crate::error::{BuildError, Step};
use crate::flags::Flags;
use crate::hvm::{
    commit_xenstore, construct_cpuid, domain_flags, guest_error, set_platform_params,
    set_time_offset, PlatformParams, Timer,
};
use crate::mem;
use crate::safety;
use crate::vcpus::{self, VcpuConfig};

/// `PVH_MODULE_MAX`: modules the command line accepts.
pub const PVH_MODULE_MAX: usize = 10;
/// Xenstore key of the kernel size limit.
pub const KERNEL_LIMIT_KEY: &str = "/mh/limits/pv-kernel-max_size";
/// Xenstore key of the module (ramdisk) size limit.
pub const MODULE_LIMIT_KEY: &str = "/mh/limits/pv-ramdisk-max_size";
/// `XC_INTERNAL_ERROR`: libxenguest's last-error code for an empty file.
pub const XC_INTERNAL_ERROR: i32 = 1;
/// `XC_INVALID_KERNEL`, the code of libxenguest's last error for a bad image.
pub const XC_INVALID_KERNEL: i32 = 2;
/// `XC_OUT_OF_MEMORY`: libxenguest's last-error code for a file over its size limit
/// (`xc_dom_malloc_filemap`).
pub const XC_OUT_OF_MEMORY: i32 = 4;

/// Everything `-mode pvh_build` is asked to do.
#[derive(Debug, Clone)]
pub struct PvhBuildRequest {
    /// `-domid`.
    pub domid: DomId,
    /// `-mem_max_mib`.
    pub mem_max_mib: u64,
    /// `-mem_start_mib`.
    pub mem_start_mib: u64,
    /// The bytes of `-image`.
    pub kernel: Vec<u8>,
    /// First `-cmdline`.
    pub cmdline: Option<String>,
    /// `-module` files' bytes with their command lines (already bound, `""` if none).
    pub modules: Vec<(Vec<u8>, String)>,
    /// `-store_port`.
    pub store_evtchn: u32,
    /// `-store_domid`.
    pub store_domid: DomId,
    /// `-console_port`.
    pub console_evtchn: u32,
    /// `-console_domid`.
    pub console_domid: DomId,
    /// `-force`.
    pub force: bool,
    /// `-pci_passthrough` (refused for PVH).
    pub pci_passthrough: Option<String>,
    /// How populate calls are issued.
    pub strategy: Strategy,
}

impl PvhBuildRequest {
    /// A request with xenguest's defaults: dom0 backends, ports 0, no modules.
    pub fn new(domid: DomId, mem_max_mib: u64, mem_start_mib: u64, kernel: Vec<u8>) -> Self {
        PvhBuildRequest {
            domid,
            mem_max_mib,
            mem_start_mib,
            kernel,
            cmdline: None,
            modules: Vec::new(),
            store_evtchn: 0,
            store_domid: DomId::DOM0,
            console_evtchn: 0,
            console_domid: DomId::DOM0,
            force: false,
            pci_passthrough: None,
            strategy: Strategy::Compat,
        }
    }
}

/// The kernel as parsed.
#[derive(Debug, Clone, Serialize)]
pub struct KernelSummary {
    /// How it was packaged.
    pub format: KernelFormat,
    /// ELF class.
    pub is64: bool,
    /// Placement and entry.
    pub pvh: PvhKernel,
    /// Its Xen notes.
    pub notes: XenNotes,
}

/// What `hvm_build_set_params(is_pvh = true)` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvhParams {
    /// HVM_PARAM_VIRIDIAN, when set.
    pub viridian: Option<u64>,
    /// HVM_PARAM_HPET_ENABLED.
    pub hpet: u64,
    /// HVM_PARAM_X87_FIP_WIDTH, when set.
    pub x87_fip_width: Option<u64>,
    /// Time offset in seconds.
    pub time_offset: i32,
}

/// Everything a successful PVH build did.
#[derive(Debug, Clone)]
pub struct PvhBuildOutcome {
    /// The domain built.
    pub domid: DomId,
    /// `dom->xenstore_pfn`.
    pub store_pfn: u64,
    /// `dom->console_pfn`.
    pub console_pfn: u64,
    /// get_flags.
    pub flags: Flags,
    /// configure_vcpus.
    pub vcpus: VcpuConfig,
    /// Kernel and module size limits used.
    pub limits: (u64, u64),
    /// What the C parse of the limit keys silently did to their values.
    pub limit_warnings: Vec<String>,
    /// The kernel.
    pub kernel: KernelSummary,
    /// The layout and e820.
    pub layout: PvhLayout,
    /// The ACPI tables.
    pub acpi: AcpiTables,
    /// meminit configuration.
    pub meminit_config: MeminitConfig,
    /// meminit result.
    pub meminit: MeminitReport,
    /// The image.
    pub image: PvhImageOutcome,
    /// Params set.
    pub params: PvhParams,
    /// The CPU policy set.
    pub cpu_policy: CpuPolicy,
    /// Xenstore writes (relative to the domain path), in order: the `hvmloader_flag`
    /// fix-ups.
    pub xenstore_writes: Vec<(String, String)>,
    /// Time per stage.
    pub timings: Vec<(&'static str, Duration)>,
}

impl PvhBuildOutcome {
    /// The control-channel line: `result:<store_pfn> <console_pfn>\n`.
    pub fn result_line(&self) -> String {
        format!("result:{} {}\n", self.store_pfn, self.console_pfn)
    }
}

/// A failed libxenguest image call as xenguest reports it: `failwith_oss_xc(<fn>)` with
/// the last error's `code` and our text for its message.
fn image_error(step: Step, code: i32, message: impl std::fmt::Display) -> BuildError {
    BuildError::refused(
        step,
        format!("xenguest: {}: [{code}] {message}", step.c_name()),
        libc::EINVAL,
    )
}

/// A bad kernel or module as xenguest reports it.
fn kernel_error(step: Step, e: &KernelError) -> BuildError {
    let code = match e {
        KernelError::FileTooLarge { .. } | KernelError::ModuleTooLarge { .. } => XC_OUT_OF_MEMORY,
        _ => XC_INVALID_KERNEL,
    };
    image_error(step, code, e)
}

/// A size limit as `get_image_max_size` determined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageLimit {
    /// The limit in bytes.
    pub value: u64,
    /// The key's value, `None` when it was absent or unreadable.
    pub raw: Option<String>,
    /// What the C parse silently did to the value, when it did something.
    pub warning: Option<String>,
}

/// `get_image_max_size`'s arithmetic on the value of `key` (`None` = `xs_read` returned
/// NULL): `errno = 0; strtoull(value, NULL, 0)`, ERANGE gives 0, and 0 means
/// `XC_DOM_DECOMPRESS_MAX`. So text after the number is ignored, a value without digits
/// is the default, a minus sign wraps (`"-1"` is no limit at all) and a leading 0 makes
/// it octal. Every such misread is logged as a warning naming the key, its value and the
/// limit used.
pub fn parse_limit(key: &str, raw: Option<&str>) -> ImageLimit {
    let Some(raw) = raw else {
        log::info!("{key} not set: limit {:#x} bytes", kernel::DECOMPRESS_MAX);
        return ImageLimit {
            value: kernel::DECOMPRESS_MAX,
            raw: None,
            warning: None,
        };
    };
    let parsed = cparse::strtoull_or_zero(raw, 0);
    let value = match parsed.value {
        0 => kernel::DECOMPRESS_MAX,
        v => v,
    };
    // As for the platform keys (flags.rs), every silent misread is worth a warning, a
    // leading 0 making the number octal included.
    let warning = parsed.quirk.map(|q| {
        format!(
            "limit key {key}={raw:?}: {}; limit {value:#x} bytes",
            q.describe()
        )
    });
    match &warning {
        Some(w) => log::warn!("WARNING: {w}"),
        None if parsed.value == 0 => log::info!(
            "{key} is 0: default limit {:#x} bytes",
            kernel::DECOMPRESS_MAX
        ),
        None => log::info!("{key}: limit {value:#x} bytes"),
    }
    ImageLimit {
        value,
        raw: Some(raw.to_owned()),
        warning,
    }
}

/// `get_image_max_size`: reads `key` (absolute) and parses it with [`parse_limit`].
pub fn image_max_size<S: Store + ?Sized>(store: &S, key: &str) -> Result<ImageLimit, BuildError> {
    let v = match store.read_opt(TxId::NONE, key) {
        Ok(v) => v,
        // xenguest's xs_read returns NULL on any daemon error: no limit set. A broken
        // connection still fails the build.
        Err(e @ xg_store::Error::Daemon { .. }) => {
            log::warn!("Reading {key} failed ({e}): no limit");
            None
        }
        Err(e) => return Err(BuildError::store(Step::GetFlags, e)),
    };
    // The C string ends at the first NUL.
    let raw = v.map(|b| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    });
    Ok(parse_limit(key, raw.as_deref()))
}

/// The limit in bytes of [`image_max_size`].
pub fn read_limit<S: Store + ?Sized>(store: &S, key: &str) -> Result<u64, BuildError> {
    image_max_size(store, key).map(|l| l.value)
}

/// `xc_dom_kernel_file`: the file-size check against the kernel limit and, for a gzip
/// file, the decompression (`xc_dom_try_gunzip`). Returns the opened kernel, or `None`
/// when `xc_dom_parse_image` opens it (bzImage, plain ELF, or a gzip file whose output
/// exceeds the limit: libxenguest then keeps the compressed blob, which no loader takes).
pub fn kernel_file(image: &[u8], cap: u64) -> Result<Option<(Vec<u8>, KernelFormat)>, BuildError> {
    let len = xg_ctrl::types::conv::usize_to_u64(image.len());
    if len == 0 {
        return Err(image_error(
            Step::KernelFile,
            XC_INTERNAL_ERROR,
            "Kernel image is empty",
        ));
    }
    if len > cap {
        return Err(kernel_error(
            Step::KernelFile,
            &KernelError::FileTooLarge { len, cap },
        ));
    }
    if Compression::detect(image) != Some(Compression::Gzip) {
        return Ok(None);
    }
    match kernel::open_kernel(image, cap) {
        Ok(k) => Ok(Some(k)),
        Err(KernelError::DecompressedTooLarge { .. }) => Ok(None),
        Err(e) => Err(kernel_error(Step::KernelFile, &e)),
    }
}

/// `xc_dom_module_file` for module `index`: the file-size check against the module limit;
/// the gzip decompression libxenguest does later (`xc_dom_build_image`) cannot fail once
/// the raw file fits, so it is done here too.
pub fn module_file(index: usize, data: &[u8], cap: u64) -> Result<Vec<u8>, BuildError> {
    let len = xg_ctrl::types::conv::usize_to_u64(data.len());
    if len == 0 {
        return Err(image_error(
            Step::ModuleFile,
            XC_INTERNAL_ERROR,
            format!("Module {index} is empty"),
        ));
    }
    if len > cap {
        return Err(kernel_error(
            Step::ModuleFile,
            &KernelError::ModuleTooLarge { index, len, cap },
        ));
    }
    kernel::open_module(index, data, cap).map_err(|e| kernel_error(Step::ModuleFile, &e))
}

/// `xc_dom_boot_xen_init` + `xc_dom_parse_image`: checks Xen runs HVM containers, opens
/// the kernel if [`kernel_file`] did not, and parses it for PVH.
pub fn parse_kernel<H: Hypervisor + ?Sized>(
    hv: &H,
    image: &[u8],
    opened: Option<(Vec<u8>, KernelFormat)>,
    cap: u64,
) -> Result<(KernelElf, KernelSummary), BuildError> {
    let version = xen_init(hv).map_err(|e| guest_error(Step::BootXenInit, e))?;
    let (bytes, format) = match opened {
        Some(k) => k,
        None => kernel::open_kernel(image, cap).map_err(|e| kernel_error(Step::ParseImage, &e))?,
    };
    let elf = KernelElf::parse(bytes).map_err(|e| kernel_error(Step::ParseImage, &e))?;
    let pvh = elf.pvh().map_err(|e| kernel_error(Step::ParseImage, &e))?;
    check_compat(&version, HVM_GUEST_TYPE).map_err(|e| guest_error(Step::ParseImage, e))?;
    log::info!(
        "PVH kernel ({format:?}, ELF{}): {:#x}-{:#x}, entry {:#x}",
        if elf.is64 { 64 } else { 32 },
        pvh.kstart,
        pvh.kend,
        pvh.entry
    );
    let summary = KernelSummary {
        format,
        is64: elf.is64,
        pvh,
        notes: elf.notes.clone(),
    };
    Ok((elf, summary))
}

/// `hvm_build_set_params(is_pvh = true)`: as HVM without the hvm_info page.
pub fn set_params<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<PvhParams, BuildError> {
    let PlatformParams {
        viridian,
        hpet,
        x87_fip_width: x87,
    } = set_platform_params(hv, domid, flags)?;
    let time_offset = set_time_offset(hv, domid, flags)?;
    Ok(PvhParams {
        viridian,
        hpet,
        x87_fip_width: x87,
        time_offset,
    })
}

/// `construct_cpuid_policy` for a PVH guest: xenguest passes `hvm = false`, which only
/// matters without `platform/featureset`; then we use the HVM default (see the module
/// docs).
pub fn cpuid_policy<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<CpuPolicy, BuildError> {
    if flags.featureset.is_none() {
        log::info!(
            "No featureset provided - using the HVM default (xenguest would use the PV one, which PVH Linux cannot boot with)"
        );
    }
    construct_cpuid(hv, domid, flags, true, flags.cores_per_socket)
}

/// The ACPI inputs from the flags (`hvm_info` fields of §4.7 step 1).
pub fn acpi_config(flags: &Flags) -> AcpiConfig {
    let max = i32::try_from(acpi::MAX_VCPUS).unwrap_or(i32::MAX);
    let nr = u32::try_from(flags.vcpus.clamp(1, max)).unwrap_or(1);
    let online =
        u32::try_from(flags.vcpus_current.clamp(0, flags.vcpus.clamp(1, max))).unwrap_or(0);
    AcpiConfig {
        nr_vcpus: nr,
        vcpus_online: online,
        apic_mode: u8::from_ne_bytes([flags.apic.to_ne_bytes()[0]]),
    }
}

/// Maps an image-build failure to the libxenguest step.
fn setup_error(e: xg_guest::error::SetupError) -> BuildError {
    use xg_guest::error::SetupError as S;
    let step = match &e {
        S::Hypervisor { step, .. } => {
            let s = step.to_ascii_lowercase();
            if s.contains("grant") {
                Step::GnttabInit
            } else if s.contains("evtchn")
                || s.contains("start info")
                || s.contains("vcpu")
                || s.contains("context")
                || s.contains("domain info")
            {
                Step::BootImage
            } else {
                Step::BuildImage
            }
        }
        S::TooManyModules { .. } | S::ModuleCmdlineTooLong { .. } => Step::BootImage,
        S::TooManyVcpus { .. } | S::HvmContext { .. } => Step::BootImage,
        _ => Step::BuildImage,
    };
    guest_error(step, e)
}

/// Runs the whole PVH build of `req` on `hv`, reading `store`.
pub fn build_pvh<H, S>(
    hv: &H,
    store: &S,
    req: &PvhBuildRequest,
) -> Result<PvhBuildOutcome, BuildError>
where
    H: Hypervisor + ?Sized,
    S: Store + ?Sized,
{
    let domid = req.domid;
    let mut t = Timer::new();
    let (domain_path, flags) = domain_flags(hv, store, domid, false)?;
    let pod = req.mem_start_mib < req.mem_max_mib;
    safety::hvm_safety_check(&flags, pod, req.pci_passthrough.is_some(), req.force)?;
    let vcpus = vcpus::configure_vcpus(hv, domid, &flags)?;
    vcpus::configure_tsc(hv, domid, &flags)?;
    t.lap("get_flags + configure_vcpus");

    // xc_dom_kernel_max_size, xc_dom_module_max_size.
    let kernel_limit = image_max_size(store, KERNEL_LIMIT_KEY)?;
    let module_limit = image_max_size(store, MODULE_LIMIT_KEY)?;
    let (kernel_cap, module_cap) = (kernel_limit.value, module_limit.value);
    let limit_warnings: Vec<String> = [kernel_limit.warning, module_limit.warning]
        .into_iter()
        .flatten()
        .collect();
    // xc_dom_kernel_file, xc_dom_module_file (before Xen is asked anything).
    let opened = kernel_file(&req.kernel, kernel_cap)?;
    if req.modules.len() > PVH_MODULE_MAX {
        return Err(BuildError::refused(
            Step::ModuleFile,
            format!("xenguest: too many modules (maximum {PVH_MODULE_MAX})"),
            libc::EINVAL,
        ));
    }
    let mut modules = Vec::with_capacity(req.modules.len());
    for (i, (data, cmdline)) in req.modules.iter().enumerate() {
        modules.push(PvhModule {
            data: module_file(i, data, module_cap)?,
            cmdline: cmdline.clone(),
        });
    }
    let (elf, kernel) = parse_kernel(hv, &req.kernel, opened, kernel_cap)?;
    t.lap("parse_image");

    // pvh_setup_mem.
    if req.pci_passthrough.is_some() {
        return Err(BuildError::refused(
            Step::PvhSetupMem,
            "PCI passthrough not supported under PVH",
            libc::EINVAL,
        ));
    }
    let acpi_cfg = acpi_config(&flags);
    let acpi = acpi::build_pvh_tables(&acpi_cfg).map_err(|e| guest_error(Step::LoadAcpi, e))?;
    let layout = pvh_layout(req.mem_max_mib, req.mem_start_mib, &acpi.modules())
        .map_err(|e| guest_error(Step::PvhSetupMem, e))?;
    log::info!(
        "PVH layout: MMIO hole {:#x} at {:#x}; lowmem_end {:#x}, highmem_end {:#x}",
        layout.mmio_size,
        layout.mmio_start,
        layout.lowmem_end,
        layout.highmem_end
    );
    let meminit_config = MeminitConfig::from_pvh_layout(&layout);
    let meminit = meminit::meminit_hvm(hv, domid, &meminit_config, req.strategy)
        .map_err(mem::meminit_error)?;
    t.lap("pvh_setup_mem");
    // xenguest_dom_load_acpi: init_acpi_config queries the domain before building the
    // tables (its answer is not used). The tables themselves were built above: the layout
    // needs their size, and building them cannot fail for a vCPU count get_flags allows.
    if let Err(e) = hv.domain_info(domid) {
        log::error!("getdomaininfo failed (rc=-1)");
        return Err(BuildError::xen(Step::LoadAcpi, e));
    }
    hv.set_memory_map(domid, &layout.e820)
        .map_err(|e| BuildError::xen(Step::SetMemoryMap, e))?;

    let inputs = PvhImageInputs {
        elf: &elf,
        kernel: kernel.pvh.clone(),
        modules: &modules,
        acpi: acpi.module_data().to_vec(),
        total_pages: layout.total_pages,
        lowmem_end: layout.lowmem_end,
        highmem_end: layout.highmem_end,
        mmio_start: layout.mmio_start,
        max_vcpus: acpi_cfg.nr_vcpus,
        cmdline: req.cmdline.clone(),
        console_evtchn: req.console_evtchn,
        store_evtchn: req.store_evtchn,
        console_domid: req.console_domid,
        store_domid: req.store_domid,
    };
    let image = build_pvh_image(hv, domid, &inputs).map_err(setup_error)?;
    t.lap("build_image + boot_image + gnttab");

    let params = set_params(hv, domid, &flags)?;
    let cpu_policy = cpuid_policy(hv, domid, &flags)?;
    t.lap("set_params + cpuid");

    let xenstore_writes = flags.fixups.clone();
    commit_xenstore(store, &domain_path, &xenstore_writes)?;
    t.lap("xenstore commit");

    Ok(PvhBuildOutcome {
        domid,
        store_pfn: image.special.xenstore_pfn,
        console_pfn: image.special.console_pfn,
        flags,
        vcpus,
        limits: (kernel_cap, module_cap),
        limit_warnings,
        kernel,
        layout,
        acpi,
        meminit_config,
        meminit,
        image,
        params,
        cpu_policy,
        xenstore_writes,
        timings: t.timings,
    })
}
