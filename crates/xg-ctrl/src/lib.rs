//! Our libxenctrl: typed Xen control operations for the domain builder.
//!
//! Two backends implement the [`Hypervisor`] traits: the privcmd backend talks to a real
//! Xen through `/dev/xen/privcmd`, and the simulator models a Xen host in memory so the
//! builder runs (and is tested) on any Linux machine.

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
