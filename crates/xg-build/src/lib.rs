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
//! # Walkthrough
//!
//! What `xenguest -mode hvm_build` does on the simulator, in library calls: the
//! toolstack's part ([`toolstack::build_pre`]: create the domain and its Xenstore
//! directory), then the build, then the line xenopsd reads:
//!
//! ```
//! use xg_build::{build_hvm, toolstack, HvmBuildRequest, PciHost};
//! use xg_ctrl::sim::Simulator;
//! use xg_ctrl::DomId;
//! use xg_store::{MemStore, Store, TxId};
//!
//! let xen = Simulator::default();
//! let store = MemStore::new();
//! let dom = DomId(1);
//! // xenopsd writes the platform keys before it runs xenguest.
//! let path = store.get_domain_path(1).unwrap();
//! store
//!     .write(TxId::NONE, &toolstack::platform_key(&path, "vcpu/number"), b"2")
//!     .unwrap();
//! toolstack::build_pre(&xen, &store, dom, 1024).unwrap();
//!
//! let firmware = xg_guest::firmware::builtin_test_firmware();
//! let request = HvmBuildRequest::new(dom, 1024, 1024, firmware);
//! let no_devices = PciHost::at("/nonexistent-sysfs");
//! let outcome = build_hvm(&xen, &store, &no_devices, &request).unwrap();
//! assert_eq!(outcome.result_line(), "result:1044476 1044479\n");
//! assert_eq!(outcome.params.hvm_info.nr_vcpus, 2);
//! ```
//!
//! On a real host the same function takes [`xg_ctrl::XenCtrl`] and a
//! [`xg_store::Client`]; [`plan::plan_hvm`] computes the layout without building.
//! [`pvh::build_pvh`] and [`pv::build_pv`] are the kernel-loading modes;
//! [`bench_support`] makes the compressed kernels their benchmarks build.
//! [`resume::resume_slow`] is `-mode resume_slow`, the resume after a failed suspend.
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
//! * **RMRRs** come from an [`pci::RmrrSource`]; the CLI uses [`pci::XenRmrr`] on both
//!   backends, which asks `XENMEM_reserved_device_memory_map` (flags 0, the device's
//!   seg/bus/devfn) the way xenguest's `get_rdm` does: a call with no room, then one
//!   with room for the count Xen returned with ENOBUFS. The simulator answers from the
//!   `[[pci_device]]` lists of its host file. As in xenguest, a failed call means "no
//!   RMRRs" for that device (logged as a warning naming the call, with its errno), and
//!   the 128th device with RMRRs (`MAX_RMRR_DEVICES`) fails the build.
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

pub mod bench_support;
pub mod cparse;
pub mod error;
pub mod flags;
pub mod hvm;
pub mod mem;
pub mod pci;
pub mod plan;
pub mod pv;
pub mod pvh;
pub mod resume;
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
pub use pv::{build_pv, PvBuildOutcome, PvBuildRequest};
pub use pvh::{build_pvh, PvhBuildOutcome, PvhBuildRequest};
pub use resume::{resume_slow, ResumeError, Resumed};
pub use xg_guest::meminit::Strategy;
