//! `hvm_build_setup_mem` (§4.4, §4.5): PCI inputs, the layout arithmetic, firmware
//! selection, the `meminit_hvm` configuration, and recording what was populated.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use xg_ctrl::{DomId, E820Entry, Gfn, HostOps, MemFlags, MemoryOps, PageOrder};
use xg_guest::layout::{self, HvmLayout, HvmLayoutInput, LayoutError};
use xg_guest::meminit::MeminitConfig;

use crate::error::{BuildError, ErrorKind, Step};
use crate::pci::PciInputs;

/// `OVMF_PATH` of the XS-8 build.
pub const OVMF_PATH: &str = "/usr/share/edk2/OVMF-release.fd";

/// Builds the layout input from the command line and the PCI facts.
pub fn layout_input(
    mem_max_mib: u64,
    mem_start_mib: u64,
    vgpu: bool,
    pci: &PciInputs,
) -> HvmLayoutInput {
    HvmLayoutInput {
        mem_max_mib,
        mem_start_mib,
        pci_bar_total: pci.bar_bytes(),
        mxgpu: pci.mxgpu(),
        vgpu,
        rmrr: pci
            .devices
            .iter()
            .map(|d| {
                d.rmrr
                    .iter()
                    .map(|e| layout::RmrrEntry {
                        start_pfn: e.start_pfn,
                        nr_pages: e.nr_pages,
                    })
                    .collect()
            })
            .collect(),
    }
}

/// The layout, with xenguest's fatal messages for its failures.
pub fn compute_layout(input: &HvmLayoutInput) -> Result<HvmLayout, BuildError> {
    layout::hvm_layout(input).map_err(|e| {
        let message = match &e {
            LayoutError::TooManyRmrrDevices { limit } => {
                format!("Error: hit limit of {limit} RMRR devices for domain")
            }
            LayoutError::TooManyE820Entries => {
                "Error: too many E820 reserved entries for domain".to_owned()
            }
            LayoutError::VramReservedRegion => {
                "Error: failed to allocate VRAM reserved region".to_owned()
            }
            other => format!("Error: {other}"),
        };
        BuildError::refused(Step::SetupMem, message, libc::EINVAL)
    })
}

/// The Xenstore writes of the memory setup, relative to the domain path, in order.
pub fn layout_xenstore_writes(layout: &HvmLayout) -> Vec<(String, String)> {
    let mut w = Vec::new();
    if let Some(v) = layout.vram_reserved_addr {
        w.push(("vm-data/vram-reserved-addr".to_owned(), format!("{v:x}")));
        w.push((
            "vm-data/vram-reserved-size".to_owned(),
            layout::VRAM_RESERVED_SIZE.to_string(),
        ));
    }
    w.push((
        "vm-data/mmio-hole-size".to_owned(),
        layout.mmio_size.to_string(),
    ));
    w
}

/// The system firmware chosen by `hvmloader/bios`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SystemFirmware {
    /// BIOS: hvmloader's built-in ROMBIOS/SeaBIOS, no module.
    Bios,
    /// UEFI: OVMF from this file.
    Ovmf {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
}

/// `hvm_load_firmware_module`: picks and reads the system firmware. `ovmf_path` is
/// `OVMF_PATH` (configurable for tests).
pub fn load_system_firmware(
    bios: Option<&str>,
    ovmf_override: Option<&str>,
    ovmf_path: &Path,
) -> Result<(SystemFirmware, Option<Vec<u8>>), BuildError> {
    let fatal = |first: Option<String>, errno: i32| {
        let mut message = first.map(|l| format!("{l}\n")).unwrap_or_default();
        message.push_str(&format!(
            "xenguest: Failed to load firmware module: {}",
            crate::error::strerror(errno)
        ));
        BuildError::refused(Step::SetupMem, message, errno)
    };
    match bios {
        None | Some("") => return Ok((SystemFirmware::Bios, None)),
        Some("ovmf") => {}
        Some(other) => {
            return Err(fatal(
                Some(format!("Unsupported bios type '{other}'")),
                libc::ENOTSUP,
            ))
        }
    }
    let path = match ovmf_override {
        None => ovmf_path.to_path_buf(),
        Some(name) if name.contains('/') => {
            return Err(fatal(
                Some(format!(
                    "ovmf-override key '{name}' must be a filename, not a path"
                )),
                libc::EINVAL,
            ))
        }
        Some(name) => ovmf_path
            .parent()
            .unwrap_or_else(|| Path::new("/"))
            .join(name),
    };
    let data =
        read_nofollow(&path).map_err(|e| fatal(None, e.raw_os_error().unwrap_or(libc::EIO)))?;
    log::info!("Loaded OVMF from {}", path.display());
    let bytes = u64::try_from(data.len()).unwrap_or(u64::MAX);
    Ok((SystemFirmware::Ovmf { path, bytes }, Some(data)))
}

fn read_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// The `meminit_hvm` configuration: xenguest's (no claim, no vNUMA) unless `-mem_pnode`
/// asks for all memory on one physical node, which adds a claim and binds the single
/// vnode to that node with `XENMEMF_exact_node`. Populate-on-demand guests get the claim
/// only (libxenguest refuses vNUMA ranges with PoD, and PoD pages are allocated later by
/// Xen anyway).
pub fn meminit_config(layout: &HvmLayout, mem_pnode: Option<u32>) -> MeminitConfig {
    let mut cfg = MeminitConfig::from_hvm_layout(layout);
    if let Some(node) = mem_pnode {
        cfg.claim_enabled = true;
        if !cfg.is_pod() {
            cfg.vmemranges = layout::default_vmemranges(layout.lowmem_end, layout.highmem_end);
            cfg.vnode_to_pnode = vec![node];
        }
    }
    cfg
}

/// Checks that physical node `node` exists and has the memory the build will claim.
pub fn check_pnode<H: HostOps + ?Sized>(hv: &H, node: u32, pages: u64) -> Result<(), BuildError> {
    let info = hv
        .numainfo()
        .map_err(|e| BuildError::xen(Step::SetupMem, e))?;
    let Some(n) = usize::try_from(node).ok().and_then(|i| info.nodes.get(i)) else {
        return Err(BuildError::refused(
            Step::SetupMem,
            format!(
                "NUMA node {node} does not exist (the host has {})",
                info.nodes.len()
            ),
            libc::EINVAL,
        ));
    };
    let need = pages.saturating_mul(xg_ctrl::PAGE_SIZE);
    if n.memfree < need {
        return Err(BuildError::refused(
            Step::SetupMem,
            format!(
                "NUMA node {node} has {} MiB free, the guest needs {} MiB",
                n.memfree >> 20,
                need >> 20
            ),
            libc::ENOMEM,
        ));
    }
    Ok(())
}

/// A run of guest frames populated with one extent order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PopulatedRun {
    /// First frame.
    pub gfn: u64,
    /// Frames.
    pub pages: u64,
    /// Extent order.
    pub order: u8,
    /// Populate-on-demand (no memory behind it yet).
    pub pod: bool,
    /// Physical node requested (`XENMEMF_exact_node`), if any.
    pub node: Option<u32>,
}

/// A [`MemoryOps`] wrapper that records which frames were populated with which order,
/// merging adjacent runs (so a 1 TiB guest is a handful of runs).
#[derive(Debug)]
pub struct Recording<'a, M: ?Sized> {
    inner: &'a M,
    runs: Mutex<Vec<PopulatedRun>>,
}

impl<'a, M: ?Sized> Recording<'a, M> {
    /// Wraps `inner`.
    pub fn new(inner: &'a M) -> Self {
        Recording {
            inner,
            runs: Mutex::new(Vec::new()),
        }
    }

    /// The runs recorded, in call order.
    pub fn runs(&self) -> Vec<PopulatedRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, order: PageOrder, flags: MemFlags, gfns: &[Gfn], done: usize) {
        let Ok(mut runs) = self.runs.lock() else {
            return;
        };
        let pages_per = order.pages();
        for g in gfns.iter().take(done) {
            let run = PopulatedRun {
                gfn: g.0,
                pages: pages_per,
                order: order.get(),
                pod: flags.is_pod(),
                node: flags.get_node(),
            };
            match runs.last_mut() {
                Some(last)
                    if last.order == run.order
                        && last.pod == run.pod
                        && last.node == run.node
                        && last.gfn + last.pages == run.gfn =>
                {
                    last.pages += run.pages;
                }
                _ => runs.push(run),
            }
        }
    }
}

impl<M: MemoryOps + ?Sized> MemoryOps for Recording<'_, M> {
    fn populate_physmap(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> xg_ctrl::Result<usize> {
        let done = self.inner.populate_physmap(domid, order, flags, gfns)?;
        self.record(order, flags, gfns, done);
        Ok(done)
    }

    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> xg_ctrl::Result<()> {
        self.inner
            .populate_physmap_exact(domid, order, flags, gfns)?;
        self.record(order, flags, gfns, gfns.len());
        Ok(())
    }

    fn decrease_reservation(
        &self,
        domid: DomId,
        order: PageOrder,
        gfns: &[Gfn],
    ) -> xg_ctrl::Result<usize> {
        self.inner.decrease_reservation(domid, order, gfns)
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> xg_ctrl::Result<()> {
        self.inner.claim_pages(domid, pages)
    }

    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> xg_ctrl::Result<()> {
        self.inner.set_pod_target(domid, target_pages)
    }

    fn set_memory_map(&self, domid: DomId, map: &[E820Entry]) -> xg_ctrl::Result<()> {
        self.inner.set_memory_map(domid, map)
    }

    fn reserved_device_memory_map(
        &self,
        flags: u32,
        dev: xg_ctrl::PciDev,
        max_entries: u32,
    ) -> xg_ctrl::Result<Vec<xg_ctrl::ReservedRegion>> {
        self.inner
            .reserved_device_memory_map(flags, dev, max_entries)
    }
}

/// Maps a meminit failure to the `xc_dom_boot_mem_init` step.
pub fn meminit_error(e: xg_guest::meminit::MeminitError) -> BuildError {
    BuildError {
        step: Step::BootMemInit,
        kind: ErrorKind::Guest(Box::new(e)),
    }
}
