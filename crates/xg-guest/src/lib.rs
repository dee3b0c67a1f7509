//! Our libxenguest for HVM guests: memory layout, `meminit_hvm`, and guest setup.
#![forbid(unsafe_code)]

pub mod layout;
pub mod meminit;

pub mod compat;
pub mod cpuid;
pub mod elf;
pub mod error;
pub mod firmware;
pub mod gnttab;
pub mod hvm_info;
pub mod segments;
pub mod setup;
pub mod special_pages;
pub mod start_info;
pub mod vcpu;
