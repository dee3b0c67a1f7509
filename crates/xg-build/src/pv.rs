//! `-mode linux_build`: xenguest's `stub_xc_linux_build`, a 64-bit PV guest (spec §5.2).
//!
//! Order: `get_flags`, `configure_vcpus`, `configure_tsc`, the size limits from
//! `/mh/limits`, kernel and ramdisk, `xc_dom_boot_xen_init` + `xc_dom_parse_image`
//! (the PV notes, [`xg_guest::pv::check`]), `xc_dom_mem_init(-mem_start_mib)` and
//! `meminit_pv`, then the image and boot ([`xg_guest::pv::image`]), the grant seed with
//! machine frames, and the CPUID policy with `hvm = false`. No safety checks, no layout,
//! no Xenstore writes, no HVM params.
//!
//! The result line carries machine frames and the guest ABI:
//! `result:<store_mfn> <console_mfn> x86_64-abi`.
//!
//! Decisions: `-features` is accepted and ignored (xenopsd passes `""`; libxenguest would
//! parse it into required features the kernel must support); the protocol is derived
//! from the address size this build sets (64 bits, `x86_64-abi`) instead of asking Xen
//! with `XEN_DOMCTL_get_address_size`; populate calls of the 4 KiB tail go through
//! `populate_physmap_mfns` and are checked for completeness (libxenctrl's `_exact`).

use std::time::Duration;

use xg_ctrl::{CpuPolicy, DomId, PvHypervisor};
use xg_guest::compat::{check_compat, xen_init};
use xg_guest::kernel::{self, KernelElf, KernelError, KernelFormat};
use xg_guest::pv::check::{pv_kernel, PvKernel};
use xg_guest::pv::image::{build_pv_image, meminit_pv, PvImageError, PvImageInputs};
use xg_guest::pv::image::{PvImageOutcome, PvMemory};
use xg_store::Store;

use crate::error::{BuildError, Step};
use crate::flags::Flags;
use crate::hvm::{commit_xenstore, construct_cpuid, domain_flags, guest_error, Timer};
use crate::pvh::{read_limit, KERNEL_LIMIT_KEY, MODULE_LIMIT_KEY, XC_INVALID_KERNEL};
use crate::vcpus::{self, VcpuConfig};

/// The guest type of a 64-bit PV kernel.
pub const PV_GUEST_TYPE: &str = "xen-3.0-x86_64";
/// `xc_domain_get_native_protocol` of a 64-bit PV guest.
pub const PROTOCOL_X86_64: &str = "x86_64-abi";

/// Everything `-mode linux_build` is asked to do.
#[derive(Debug, Clone)]
pub struct PvBuildRequest {
    /// `-domid`.
    pub domid: DomId,
    /// `-mem_max_mib` (required, unused: xenopsd sets the limit itself).
    pub mem_max_mib: u64,
    /// `-mem_start_mib`: the guest's pages.
    pub mem_start_mib: u64,
    /// The bytes of `-image`.
    pub kernel: Vec<u8>,
    /// The bytes of `-ramdisk` (`None` when the option is `""`).
    pub ramdisk: Option<Vec<u8>>,
    /// `-cmdline`.
    pub cmdline: Option<String>,
    /// `-features` (ignored).
    pub features: String,
    /// `-flags`: `start_info.flags`.
    pub flags: u32,
    /// `-store_port`.
    pub store_evtchn: u32,
    /// `-store_domid`.
    pub store_domid: DomId,
    /// `-console_port`.
    pub console_evtchn: u32,
    /// `-console_domid`.
    pub console_domid: DomId,
}

impl PvBuildRequest {
    /// A request with xenguest's defaults: dom0 backends, ports 0, no ramdisk.
    pub fn new(domid: DomId, mem_max_mib: u64, mem_start_mib: u64, kernel: Vec<u8>) -> Self {
        PvBuildRequest {
            domid,
            mem_max_mib,
            mem_start_mib,
            kernel,
            ramdisk: None,
            cmdline: None,
            features: String::new(),
            flags: 0,
            store_evtchn: 0,
            store_domid: DomId::DOM0,
            console_evtchn: 0,
            console_domid: DomId::DOM0,
        }
    }
}

/// Everything a successful PV build did.
#[derive(Debug, Clone)]
pub struct PvBuildOutcome {
    /// The domain built.
    pub domid: DomId,
    /// Machine frame of the xenstore page.
    pub store_mfn: u64,
    /// Machine frame of the console page.
    pub console_mfn: u64,
    /// `xc_domain_get_native_protocol`.
    pub protocol: &'static str,
    /// get_flags.
    pub flags: Flags,
    /// configure_vcpus.
    pub vcpus: VcpuConfig,
    /// Kernel and ramdisk size limits used.
    pub limits: (u64, u64),
    /// How the kernel was packaged.
    pub format: KernelFormat,
    /// ELF class of the kernel: 64-bit.
    pub is64: bool,
    /// The kernel's PV placement.
    pub kernel: PvKernel,
    /// meminit_pv.
    pub memory: PvMemory,
    /// The image.
    pub image: PvImageOutcome,
    /// The CPU policy set.
    pub cpu_policy: CpuPolicy,
    /// Xenstore writes (relative to the domain path), in order: the `hvmloader_flag`
    /// rewrites of `platform/acpi`, `acpi_s4`, `acpi_s3`.
    pub xenstore_writes: Vec<(String, String)>,
    /// Time per stage.
    pub timings: Vec<(&'static str, Duration)>,
}

impl PvBuildOutcome {
    /// The control-channel line: `result:<store_mfn> <console_mfn> <protocol>\n`.
    pub fn result_line(&self) -> String {
        format!(
            "result:{} {} {}\n",
            self.store_mfn, self.console_mfn, self.protocol
        )
    }
}

fn kernel_error(step: Step, e: &KernelError) -> BuildError {
    BuildError::refused(
        step,
        format!("xenguest: {}: [{XC_INVALID_KERNEL}] {e}", step.c_name()),
        libc::EINVAL,
    )
}

/// The libxenguest step a failure of the image belongs to.
fn image_error(e: PvImageError) -> BuildError {
    let step = match &e {
        PvImageError::Hypervisor { step, .. } => {
            let s = step.to_ascii_lowercase();
            if s.contains("grant") {
                Step::GnttabInit
            } else if s.contains("loading") || s.contains("p2m list") || s.contains("magic") {
                Step::BuildImage
            } else {
                Step::BootImage
            }
        }
        _ => Step::BuildImage,
    };
    guest_error(step, e)
}

/// Parses the kernel for a 64-bit PV guest and checks Xen runs them.
pub fn parse_pv_kernel<H: PvHypervisor + ?Sized>(
    hv: &H,
    image: &[u8],
    cap: u64,
) -> Result<(KernelElf, KernelFormat, PvKernel), BuildError> {
    let version = xen_init(hv).map_err(|e| guest_error(Step::BootXenInit, e))?;
    let (bytes, format) =
        kernel::open_kernel(image, cap).map_err(|e| kernel_error(Step::KernelFile, &e))?;
    let elf = KernelElf::parse(bytes).map_err(|e| kernel_error(Step::ParseImage, &e))?;
    let pv = pv_kernel(&elf).map_err(|e| kernel_error(Step::ParseImage, &e))?;
    check_compat(&version, PV_GUEST_TYPE).map_err(|e| guest_error(Step::ParseImage, e))?;
    log::info!(
        "PV kernel ({format:?}): {:#x}-{:#x}, entry {:#x}, virt_base {:#x}",
        pv.kstart,
        pv.kend,
        pv.entry,
        pv.virt_base
    );
    Ok((elf, format, pv))
}

/// `construct_cpuid_policy(hvm = false, restore = false)` with cores-per-socket 0.
pub fn cpuid_policy<H: PvHypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    flags: &Flags,
) -> Result<CpuPolicy, BuildError> {
    construct_cpuid(hv, domid, flags, false, 0)
}

/// Runs the whole PV build of `req` on `hv`, reading `store`.
pub fn build_pv<H, S>(hv: &H, store: &S, req: &PvBuildRequest) -> Result<PvBuildOutcome, BuildError>
where
    H: PvHypervisor + ?Sized,
    S: Store + ?Sized,
{
    let domid = req.domid;
    let mut t = Timer::new();
    let (domain_path, flags) = domain_flags(hv, store, domid, false)?;
    if !req.features.is_empty() {
        log::warn!("-features {:?} ignored", req.features);
    }
    let kernel_cap = read_limit(store, KERNEL_LIMIT_KEY)?;
    let module_cap = read_limit(store, MODULE_LIMIT_KEY)?;
    let vcpus = vcpus::configure_vcpus(hv, domid, &flags)?;
    vcpus::configure_tsc(hv, domid, &flags)?;
    t.lap("get_flags + configure_vcpus");

    let (elf, format, kernel) = parse_pv_kernel(hv, &req.kernel, kernel_cap)?;
    let ramdisk = match &req.ramdisk {
        Some(data) => Some(
            kernel::open_module(0, data, module_cap)
                .map_err(|e| kernel_error(Step::ModuleFile, &e))?,
        ),
        None => None,
    };
    t.lap("parse_image");

    let total_pages = req.mem_start_mib << 8;
    let memory =
        meminit_pv(hv, domid, total_pages).map_err(|e| guest_error(Step::BootMemInit, e))?;
    t.lap("meminit_pv");

    let inputs = PvImageInputs {
        elf: &elf,
        kernel: kernel.clone(),
        ramdisk: ramdisk.as_deref(),
        cmdline: req.cmdline.clone(),
        flags: req.flags,
        console_evtchn: req.console_evtchn,
        store_evtchn: req.store_evtchn,
        console_domid: req.console_domid,
        store_domid: req.store_domid,
    };
    let image = build_pv_image(hv, domid, &inputs, &memory.p2m).map_err(image_error)?;
    t.lap("build_image + boot_image + gnttab");

    if flags.pae == 0 {
        // As in C, a missing or false platform/pae clears PAE; Xen then drops long mode
        // too (PAE is a prerequisite of LM), and a 64-bit kernel faults on its first
        // wrmsr of a segment base.
        log::warn!(
            "WARNING: platform key platform/pae is off: Xen hides long mode from the guest, a 64-bit PV kernel will not boot"
        );
    }
    let cpu_policy = cpuid_policy(hv, domid, &flags)?;
    t.lap("cpuid");

    // C's get_flags rewrites platform/acpi* with hvmloader_flag for PV guests too; like
    // the HVM and PVH builds, the rewrites go in one transaction once the build worked.
    let xenstore_writes = flags.fixups.clone();
    commit_xenstore(store, &domain_path, &xenstore_writes)?;
    t.lap("xenstore commit");

    Ok(PvBuildOutcome {
        domid,
        store_mfn: image.store_mfn,
        console_mfn: image.console_mfn,
        protocol: PROTOCOL_X86_64,
        flags,
        vcpus,
        limits: (kernel_cap, module_cap),
        format,
        is64: elf.is64,
        kernel,
        memory,
        image,
        cpu_policy,
        xenstore_writes,
        timings: t.timings,
    })
}
