//! The error type of every hypercall-layer operation.

use std::path::PathBuf;

use crate::types::{DomId, Errno, Gfn};

/// A named operation, used in error messages and trace records.
pub type Op = &'static str;

/// Errors of the hypercall layer. errno values are kept as numbers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device node could not be opened.
    #[error("Opening {path} failed")]
    Open {
        /// The device path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A hypercall or ioctl failed with an errno.
    #[error("Hypercall {op} failed")]
    Hypercall {
        /// The operation, e.g. `"domctl max_mem"`.
        op: Op,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// Xen rejected a domctl/sysctl with EACCES: its interface version differs from ours.
    #[error("Hypervisor rejected {op}: interface version {compiled:#x} does not match this Xen")]
    InterfaceVersion {
        /// The operation.
        op: Op,
        /// The interface version this build sends.
        compiled: u32,
    },
    /// Xen's audit rejected a domain CPU policy (`XEN_DOMCTL_set_cpu_policy`). The
    /// indices name the offending CPUID leaf/subleaf or MSR; `0xffffffff` means "not this".
    #[error(
        "Hypervisor rejected the CPU policy of domain {domid}: leaf {err_leaf:#x} subleaf {err_subleaf:#x} msr {err_msr:#x}"
    )]
    CpuPolicyRejected {
        /// The domain.
        domid: DomId,
        /// `err_leaf`.
        err_leaf: u32,
        /// `err_subleaf`.
        err_subleaf: u32,
        /// `err_msr`.
        err_msr: u32,
        /// The errno of the domctl.
        #[source]
        source: Errno,
    },
    /// A guest frame could not be foreign-mapped.
    #[error("Mapping guest frame {gfn} of domain {domid} failed")]
    ForeignMap {
        /// The domain.
        domid: DomId,
        /// The frame.
        gfn: Gfn,
        /// The per-frame errno.
        #[source]
        source: Errno,
    },
    /// `populate_physmap_exact` got fewer extents than requested (libxenctrl: EBUSY).
    #[error(
        "Populating {requested} extents of order {order} at gfn {first_gfn} stopped after {done}"
    )]
    Partial {
        /// Extents asked for.
        requested: usize,
        /// Extents done.
        done: usize,
        /// Extent order.
        order: u8,
        /// First gfn of the request.
        first_gfn: Gfn,
    },
    /// Xen has more entries than the caller made room for (ENOBUFS); `needed` is the
    /// count Xen wrote back, to retry with.
    #[error("Hypercall {op} needs room for {needed} entries")]
    TooSmall {
        /// The operation.
        op: Op,
        /// Entries Xen has.
        needed: u32,
    },
    /// The caller passed an argument the operation cannot take.
    #[error("Invalid argument to {op}: {detail}")]
    InvalidArgument {
        /// The operation.
        op: Op,
        /// What was wrong.
        detail: String,
    },
    /// A simulated host description could not be used.
    #[error("Invalid host description: {detail}")]
    HostConfig {
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// The errno carried by this error, if any (`EBUSY` for [`Error::Partial`], as libxenctrl).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Hypercall { source, .. }
            | Error::ForeignMap { source, .. }
            | Error::CpuPolicyRejected { source, .. } => Some(source.0),
            Error::Open { source, .. } => source.raw_os_error(),
            Error::InterfaceVersion { .. } => Some(libc::EACCES),
            Error::Partial { .. } => Some(libc::EBUSY),
            Error::TooSmall { .. } => Some(libc::ENOBUFS),
            Error::InvalidArgument { .. } | Error::HostConfig { .. } => Some(libc::EINVAL),
        }
    }

    /// A hypercall error for `op` with `errno`.
    pub fn hypercall(op: Op, errno: i32) -> Error {
        Error::Hypercall {
            op,
            source: Errno(errno),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
