//! 64-bit PV guests (`-mode linux_build`): libxenguest's x86_64 PV builder.
//!
//! * [`check::pv_kernel`]: `elf_xen_parse(hvm = false)` and the loader's checks.
//! * [`layout::plan_pv`]: `xc_dom_build_image`'s allocations for x86_64 PV (kernel,
//!   ramdisk, p2m list, start info, xenstore, console, page tables, boot stack, the
//!   separate p2m mapping of `INIT_P2M`), with `count_pgtables`.
//! * [`layout::page_tables`]: the contents of the initial page tables for a pfn→mfn
//!   map (`setup_pgtables_pv`).
//! * [`start_info::build_pv_start_info`]: the `start_info` page (`start_info_x86_64`).
//! * [`vcpu::boot_context`]: the boot vCPU context (`vcpu_x86_64`).
//! * [`image::meminit_pv`] and [`image::build_pv_image`]: the hypercall part
//!   (populate with machine frames, segments written by MFN, page tables, start info,
//!   hypercall page, L4 pin, shared info, boot vCPU, grant seed with MFNs), on a
//!   [`xg_ctrl::PvHypervisor`].

pub mod check;
pub mod image;
pub mod layout;
pub mod start_info;
pub mod vcpu;

/// Why a PV layout cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PvError {
    /// Not enough guest pages for a segment.
    #[error("Segment {name} too large ({pages:#x} pages, {used:#x} of {total:#x} used)")]
    TooLarge {
        /// Segment name.
        name: String,
        /// Pages asked for.
        pages: u64,
        /// Pages used.
        used: u64,
        /// Guest pages.
        total: u64,
    },
    /// A boundary is unaligned or below the cursor.
    #[error("Segment boundary {boundary:#x} is unaligned or below {cursor:#x}")]
    BadBoundary {
        /// Requested start.
        boundary: u64,
        /// Current virtual end.
        cursor: u64,
    },
    /// The initial mapping needs more frames than the guest has.
    #[error("Not enough memory for the initial mapping ({end:#x} > {p2m_size:#x})")]
    MappingTooLarge {
        /// Last pfn mapped.
        end: u64,
        /// Guest pages.
        p2m_size: u64,
    },
    /// Two mappings overlap.
    #[error("Overlapping initial mappings")]
    OverlappingMappings,
    /// A pfn without an mfn in the p2m.
    #[error("Page frame {pfn:#x} has no machine frame")]
    NoMachineFrame {
        /// The pfn.
        pfn: u64,
    },
    /// An address computation overflowed.
    #[error("Virtual address arithmetic overflows at {at:#x}")]
    Overflow {
        /// Where.
        at: u64,
    },
}
