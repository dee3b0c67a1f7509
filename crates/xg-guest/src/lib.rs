//! Our libxenguest for HVM guests: memory layout, `meminit_hvm`, and guest setup.
//!
//! Order of a build: [`setup::check_image`] (Xen capabilities, firmware image), then
//! [`layout`] and [`meminit`] (populate RAM), then [`setup::build_image`] (firmware,
//! special pages, start info, hvm_info, vCPU, grants), then
//! [`hvm_info::patch_hvm_info`] and [`cpuid::construct_cpuid_policy`]. See [`setup`].
#![forbid(unsafe_code)]

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
