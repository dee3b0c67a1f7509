//! xenguest's build modes: reading the platform keys, configuring vCPUs and building
//! HVM guests on any [`xg_ctrl::Hypervisor`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cparse;
pub mod error;
pub mod flags;
pub mod hvm;
pub mod mem;
pub mod pci;
pub mod plan;
pub mod safety;
pub mod svg;
pub mod toolstack;
pub mod xstrace;
#[cfg(test)]
mod testing;
pub mod vcpus;

pub use error::{BuildError, ErrorKind, Step};
pub use flags::{get_flags, Flags};
pub use hvm::{build_hvm, HvmBuildOutcome, HvmBuildRequest};
pub use pci::PciHost;
pub use xg_guest::meminit::Strategy;
