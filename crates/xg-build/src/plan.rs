//! The memory plan of an HVM build without building it (`xenguest --plan`): layout, e820,
//! meminit configuration, the populate calls libxenguest would make if every superpage
//! allocation succeeds, and the Xenstore writes.

use std::collections::BTreeMap;

use serde::Serialize;
use xg_ctrl::E820Entry;
use xg_guest::layout::HvmLayout;
use xg_guest::meminit::{Answer, MeminitConfig, MeminitPlan, Step as MStep};

use crate::error::BuildError;
use crate::mem;
use crate::pci::{self, PciHost, PciInputs, RmrrSource};

/// One e820 entry, readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct E820Line {
    /// RAM, RESERVED, ACPI.
    pub kind: &'static str,
    /// Start, hex.
    pub addr: String,
    /// Size, hex.
    pub size: String,
}

impl From<&E820Entry> for E820Line {
    fn from(e: &E820Entry) -> Self {
        E820Line {
            kind: match e.kind {
                xg_ctrl::e820::RAM => "RAM",
                xg_ctrl::e820::RESERVED => "RESERVED",
                xg_ctrl::e820::ACPI => "ACPI",
                _ => "OTHER",
            },
            addr: format!("{:#x}", e.addr),
            size: format!("{:#x}", e.size),
        }
    }
}

/// Populate calls of one extent order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrderCalls {
    /// Hypercalls.
    pub calls: u64,
    /// Extents.
    pub extents: u64,
}

/// The calls meminit makes when every allocation succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PopulateSummary {
    /// Claim pages, when claiming.
    pub claim_pages: Option<u64>,
    /// PoD target, when PoD.
    pub pod_target_pages: Option<u64>,
    /// Populate hypercalls.
    pub populate_calls: u64,
    /// Per extent order (0, 9, 18).
    pub by_order: BTreeMap<u8, OrderCalls>,
    /// libxenguest's 4 KiB page counter (includes the VGA hole).
    pub pages_4k: u64,
    /// 2 MiB extents.
    pub pages_2m: u64,
    /// 1 GiB extents.
    pub pages_1g: u64,
}

/// Replays the meminit plan assuming every call succeeds fully.
pub fn predict_populate(cfg: &MeminitConfig) -> PopulateSummary {
    let mut s = PopulateSummary::default();
    let mut plan = MeminitPlan::new(cfg);
    while let Some(step) = plan.step() {
        let answer = match step {
            MStep::Claim { pages } => {
                s.claim_pages = Some(pages);
                Answer::Done(0)
            }
            MStep::SetPodTarget { pages } => {
                s.pod_target_pages = Some(pages);
                Answer::Done(0)
            }
            MStep::Populate(call) => {
                s.populate_calls += 1;
                let o = s.by_order.entry(call.order.get()).or_default();
                o.calls += 1;
                o.extents += call.nr_extents;
                Answer::Done(call.nr_extents)
            }
            MStep::ReleaseClaim => Answer::Done(0),
        };
        plan.complete(answer);
    }
    let st = plan.stats();
    s.pages_4k = st.pages_4k;
    s.pages_2m = st.pages_2m;
    s.pages_1g = st.pages_1g;
    s
}

/// The whole memory plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    /// `-mem_max_mib`.
    pub mem_max_mib: u64,
    /// `-mem_start_mib`.
    pub mem_start_mib: u64,
    /// Populate-on-demand.
    pub pod: bool,
    /// `-mem_pnode`.
    pub mem_pnode: Option<u32>,
    /// PCI inputs.
    pub pci: PciInputs,
    /// MMIO space needed.
    pub mmio_total: String,
    /// MMIO hole size.
    pub mmio_size: String,
    /// MMIO hole start.
    pub mmio_start: String,
    /// End of low RAM.
    pub lowmem_end: String,
    /// End of high RAM.
    pub highmem_end: String,
    /// RAM moved up by RMRRs.
    pub rmrr_overlap: String,
    /// `total_pages`.
    pub total_pages: u64,
    /// `target_pages`.
    pub target_pages: u64,
    /// vGPU VRAM reservation.
    pub vram_reserved_addr: Option<String>,
    /// The e820 in push order.
    pub e820: Vec<E820Line>,
    /// Predicted populate calls.
    pub populate: PopulateSummary,
    /// Xenstore writes of the memory setup (relative to the domain path).
    pub xenstore_writes: Vec<(String, String)>,
}

/// Builds the plan from a layout.
pub fn memory_plan(
    layout: &HvmLayout,
    pci: PciInputs,
    mem_max_mib: u64,
    mem_start_mib: u64,
    mem_pnode: Option<u32>,
) -> MemoryPlan {
    let cfg = mem::meminit_config(layout, mem_pnode);
    MemoryPlan {
        mem_max_mib,
        mem_start_mib,
        pod: layout.is_pod(),
        mem_pnode,
        pci,
        mmio_total: format!("{:#x}", layout.mmio_total),
        mmio_size: format!("{:#x}", layout.mmio_size),
        mmio_start: format!("{:#x}", layout.mmio_start),
        lowmem_end: format!("{:#x}", layout.lowmem_end),
        highmem_end: format!("{:#x}", layout.highmem_end),
        rmrr_overlap: format!("{:#x}", layout.rmrr_overlap),
        total_pages: layout.total_pages,
        target_pages: layout.target_pages,
        vram_reserved_addr: layout.vram_reserved_addr.map(|v| format!("{v:#x}")),
        e820: layout.e820.iter().map(E820Line::from).collect(),
        populate: predict_populate(&cfg),
        xenstore_writes: mem::layout_xenstore_writes(layout),
    }
}

/// The plan of an HVM build: reads the PCI facts and computes the layout, nothing else.
pub fn plan_hvm<R: RmrrSource>(
    pci_host: &PciHost<R>,
    mem_max_mib: u64,
    mem_start_mib: u64,
    vgpu: bool,
    pci_passthrough: Option<&str>,
    mem_pnode: Option<u32>,
) -> Result<MemoryPlan, BuildError> {
    let pci = match pci_passthrough {
        Some(list) => pci::pci_inputs(pci_host, list)?,
        None => PciInputs::default(),
    };
    let layout = mem::compute_layout(&mem::layout_input(mem_max_mib, mem_start_mib, vgpu, &pci))?;
    Ok(memory_plan(
        &layout,
        pci,
        mem_max_mib,
        mem_start_mib,
        mem_pnode,
    ))
}
