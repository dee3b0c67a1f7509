//! Our libxenctrl: typed Xen control operations for the domain builder.
//!
//! Two backends implement the [`Hypervisor`] traits: the privcmd backend talks to a real
//! Xen through `/dev/xen/privcmd`, and the simulator models a Xen host in memory so the
//! builder runs (and is tested) on any Linux machine.
//!
//! # Walkthrough
//!
//! Everything the builder needs from Xen is a method of one of the traits that
//! [`Hypervisor`] bundles ([`DomainOps`], [`MemoryOps`], ...). Code written against
//! them runs unchanged on the simulator and on a real Xen:
//!
//! ```
//! use xg_ctrl::sim::Simulator;
//! use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, MemoryOps, PageOrder};
//!
//! # fn main() -> xg_ctrl::Result<()> {
//! // The built-in simulated host (a TOML host file gives another: Simulator::from_file).
//! let xen = Simulator::default();
//! let dom = DomId(1);
//! xen.create_domain(dom, &DomainConfig { hvm: true, hap: true, ..DomainConfig::default() })?;
//! xen.set_max_mem(dom, 64 << 10)?; // KiB
//!
//! // Eight 2 MiB extents at guest frames 0, 512, 1024, ...: Xen's populate_physmap.
//! let gfns: Vec<Gfn> = (0..8).map(|i| Gfn(i * 512)).collect();
//! let done = xen.populate_physmap(dom, PageOrder::ORDER_2M, MemFlags::NONE, &gfns)?;
//! assert_eq!(done, 8);
//! # Ok(())
//! # }
//! ```
//!
//! In dom0 the same calls go to Xen through `/dev/xen/privcmd` (needs root and Xen):
//!
//! ```no_run
//! use xg_ctrl::{DomId, DomainOps, XenCtrl};
//!
//! # fn main() -> xg_ctrl::Result<()> {
//! let xen = XenCtrl::open()?;
//! let info = xen.domain_info(DomId(0))?;
//! println!("dom0: {info:?}");
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`Error`]s that keep the failed operation ([`Op`]) and Xen's errno; the
//! [`trace`] module records every call as a JSON line (`xenguest --trace`).
#![deny(missing_docs)]

pub mod alloc_probe;
pub mod error;
pub mod ops;
pub mod privcmd;
pub mod sim;
pub mod trace;
pub mod types;

pub use error::{Error, Op, Result};
pub use ops::*;
pub use privcmd::XenCtrl;
pub use types::{DomId, Errno, Gfn, MemFlags, Mfn, PageOrder, Pfn, PAGE_SHIFT, PAGE_SIZE};
