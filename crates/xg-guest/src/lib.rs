//! Our libxenguest for HVM guests: memory layout, `meminit_hvm`, and guest setup.
//!
//! Order of a build: [`setup::check_image`] (Xen capabilities, firmware image), then
//! [`layout`] and [`meminit`] (populate RAM), then [`setup::build_image`] (firmware,
//! special pages, start info, hvm_info, vCPU, grants), then
//! [`hvm_info::patch_hvm_info`] and [`cpuid::construct_cpuid_policy`]. See [`setup`].
//! PVH guests take [`kernel`] images and [`acpi`] tables instead of hvmloader.
//!
//! # Walkthrough
//!
//! Populate the RAM of a 4 GiB HVM guest with libxl's default layout (256 MiB MMIO
//! hole below 4 GiB, VGA hole), first with exactly libxenguest's calls, then batched.
//! Any [`xg_ctrl::MemoryOps`] will do; here the simulator:
//!
//! ```
//! use xg_ctrl::sim::Simulator;
//! use xg_ctrl::{DomId, DomainConfig, DomainOps};
//! use xg_guest::meminit::{meminit_hvm, MeminitConfig, Strategy};
//!
//! let mem: u64 = 4 << 30;
//! let mmio_start: u64 = 0xF000_0000;
//! let cfg = MeminitConfig {
//!     total_pages: mem >> 12,
//!     target_pages: mem >> 12,
//!     lowmem_end: mmio_start,
//!     highmem_end: (1 << 32) + mem - mmio_start,
//!     mmio_start,
//!     mmio_size: (1 << 32) - mmio_start,
//!     device_model: true,
//!     vga_hole_size: 0x20,
//!     ..MeminitConfig::default()
//! };
//! for (strategy, calls) in [(Strategy::Compat, 260), (Strategy::Batched, 4)] {
//!     let xen = Simulator::default();
//!     let dom = DomId(1);
//!     xen.create_domain(dom, &DomainConfig { hvm: true, hap: true, ..DomainConfig::default() })
//!         .unwrap();
//!     xen.set_max_mem(dom, (mem >> 10) + 1024).unwrap();
//!     let report = meminit_hvm(&xen, dom, &cfg, strategy).unwrap();
//!     assert_eq!(report.populate_calls, calls); // 260: libxenguest 4.17's count
//! }
//! ```
//!
//! [`layout`] computes XenServer's `hvm_build_setup_mem` inputs (MMIO hole, lowmem and
//! highmem ends) from the guest size and its PCI devices; [`setup::build_image`] then
//! loads the firmware and fills the special pages.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod layout;
pub mod meminit;

pub mod acpi;
pub mod compat;
pub mod cpuid;
pub mod elf;
pub mod error;
pub mod firmware;
pub mod gnttab;
pub mod hvm_info;
pub mod kernel;
pub mod pv;
pub mod segments;
pub mod setup;
pub mod special_pages;
pub mod start_info;
pub mod vcpu;
