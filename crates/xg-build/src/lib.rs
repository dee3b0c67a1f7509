//! xenguest's build modes: reading the platform keys, configuring vCPUs and building
//! HVM guests on any [`xg_ctrl::Hypervisor`] with any [`xg_store::Store`].
//!
//! [`build_hvm`] runs `-mode hvm_build` in XenServer's order (xenguest spec §6):
//! [`flags::get_flags`] (one pipelined Xenstore batch, a second one for the per-vCPU
//! affinity keys), [`safety::hvm_safety_check`], [`vcpus::configure_vcpus`] and
//! [`vcpus::configure_tsc`], image checks, `hvm_build_setup_mem` ([`pci`], [`mem`]: the
//! layout of [`xg_guest::layout`], firmware selection, [`xg_guest::meminit`], the memory
//! map), guest setup ([`xg_guest::setup`]), [`hvm::set_params`],
//! [`hvm::cpuid_policy`], and finally one Xenstore transaction with every key the build
//! writes. Each stage returns data; the [`HvmBuildOutcome`] keeps it all. A failure is a
//! [`BuildError`] naming the step with xenguest's function name and rendering
//! xenguest's exact `error:` text ([`BuildError::wire_lines`]).
//!
//! # Decisions
//!
//! * **`-mem_pnode N`** (xenopsd sends it after claiming the VM's memory on one NUMA
//!   node; no xenguest source defines it): all guest RAM is allocated on physical node
//!   `N`. The build checks that the node exists and has the memory free, claims the
//!   target (`XENMEM_claim_pages`; Xen 4.17 claims are host-wide, the node check makes
//!   up for that) and binds the guest's single vnode to `N`, so every RAM populate call
//!   carries `XENMEMF_exact_node(N)`. The 0xa0 low pages and the special pages keep
//!   libxenguest's node-less calls. meminit releases the claim on success and failure.
//!   Populate-on-demand guests get the claim only: libxenguest refuses vNUMA ranges with
//!   PoD, and PoD memory is allocated by Xen later.
//! * **RMRRs** come from an [`pci::RmrrSource`]. The traits have no
//!   `XENMEM_reserved_device_memory_map` (and the simulator no RMRRs), so
//!   [`pci::SysfsRmrr`] reads `<sysfs root>/bus/pci/devices/<sbdf>/reserved_device_memory`
//!   (hex `<start_pfn> <nr_pages>` lines), a file only test fixtures have. On a real host
//!   devices therefore have no RMRRs until a backend implements the hypercall.
//! * **Xenstore writes** (the `hvmloader_flag` fix-ups of `platform/acpi*`, the vGPU VRAM
//!   keys, `vm-data/mmio-hole-size`) are collected and written in one transaction at the
//!   end. xenguest writes them as it goes, but nothing reads them before xenopsd
//!   unpauses the domain after the build, and a failed build leaves no partial keys.
//! * **Non-fatal C errors** (the MxGPU probe's unreadable `vendor`/`device` files) are
//!   warnings in the log, not `error:` lines: xenopsd would fail the build on them.
//! * **Values the C parsers misread** (trailing garbage, octal, overflow, truncation to
//!   the C field, `hvmloader_flag` rewrites) are parsed exactly like the C code and
//!   logged as `WARNING: platform key <key>=<value>: ...`.
//! * **iPXE** is added as module `"ipxe"` when the caller provides it (the CLI reads
//!   `/usr/share/ipxe/ipxe.bin` if present); xenguest fails without it, we build without.
//! * **Sizes**: more than 128 (`HVM_MAX_VCPUS`) vCPUs are clamped with a warning; the C
//!   code would overflow the hvm_info table.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cparse;
pub mod error;
pub mod flags;
pub mod hvm;
pub mod mem;
pub mod pci;
pub mod plan;
pub mod pvh;
pub mod safety;
pub mod svg;
#[cfg(test)]
mod testing;
pub mod toolstack;
pub mod vcpus;
pub mod xstrace;

pub use error::{BuildError, ErrorKind, Step};
pub use flags::{get_flags, Flags};
pub use hvm::{build_hvm, HvmBuildOutcome, HvmBuildRequest};
pub use pci::PciHost;
pub use pvh::{build_pvh, PvhBuildOutcome, PvhBuildRequest};
pub use xg_guest::meminit::Strategy;
