//! xenguest's build modes: reading the platform keys, configuring vCPUs and building
//! HVM guests on any [`xg_ctrl::Hypervisor`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cparse;
pub mod error;
pub mod flags;
pub mod pci;
pub mod safety;
#[cfg(test)]
mod testing;
pub mod vcpus;

pub use error::{BuildError, ErrorKind, Step};
pub use flags::{get_flags, Flags};
