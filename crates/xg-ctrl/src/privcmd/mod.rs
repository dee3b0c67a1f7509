//! The real backend: Xen through Linux's privcmd driver (our libxencall, libxenctrl and
//! libxenforeignmemory in one handle).
//!
//! [`XenCtrl`] owns `/dev/xen/privcmd` and, when present, `/dev/xen/hypercall` for the
//! whole of its life. It implements [`crate::HostOps`], [`crate::DomainOps`],
//! [`crate::MemoryOps`] and [`crate::GuestMemory`].
//!
//! Design notes:
//! * Hypercall arguments live in page-backed buffer memory (the
//!   `/dev/xen/hypercall` device, else locked anonymous pages), built field by field in
//!   zeroed pages and read back after the call; single pages are cached like libxencall.
//! * memory_op goes through a one-entry multicall so results above `INT_MAX` survive.
//! * domctl/sysctl EACCES is [`Error::InterfaceVersion`]; read-only domctls are reissued
//!   on EFAULT when buffers may fault (libxenctrl's `do_domctl_retry_efault`).
//! * Guest memory is mapped in batches of at most [`MAP_BATCH_FRAMES`] frames, per-frame
//!   errors are read and paged-out frames retried; bytes are copied through raw pointers
//!   only, never through slices over guest memory.
//! * Unit tests swap the raw `ioctl` for a recording stub (`mock`), so every request is
//!   checked byte for byte without Xen; `tests/privcmd_xen.rs` runs the same calls on a
//!   real Xen.
//!
//! ```no_run
//! use xg_ctrl::{DomId, DomainOps, XenCtrl};
//! let xc = XenCtrl::open()?;
//! let info = xc.domain_info(DomId(1))?;
//! # Ok::<(), xg_ctrl::Error>(())
//! ```

mod abi;
mod buffer;
mod domctl;
mod evtchn;
mod foreign;
mod hvm;
mod hypercall;
pub mod ioctl;
mod memory;
mod pv;
mod sysctl;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::ops::HostOps;

pub use foreign::{MAP_BATCH_FRAMES, PAGED_RETRIES, PAGED_RETRY_DELAY};
use hypercall::Privcmd;

/// The privcmd device.
pub const PRIVCMD_PATH: &str = "/dev/xen/privcmd";
/// Where old kernels put it.
pub const PRIVCMD_FALLBACK_PATH: &str = "/proc/xen/privcmd";
/// The hypercall-buffer device (Linux 4.18 and later).
pub const HYPERCALL_PATH: &str = "/dev/xen/hypercall";

/// A handle on the hypervisor through privcmd.
#[derive(Debug)]
pub struct XenCtrl {
    privcmd: Privcmd,
    privcmd_path: PathBuf,
    /// (cpumap bytes, nodemap bytes), from physinfo on first use (libxenctrl caches too).
    host_sizes: OnceLock<(usize, usize)>,
}

// One handle may be shared by the stages of a build, across threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<XenCtrl>();
};

fn open_device(path: &Path) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOENT | libc::ENXIO | libc::ENODEV)
    )
}

impl XenCtrl {
    /// Opens `/dev/xen/privcmd` (falling back to `/proc/xen/privcmd` like libxencall) and
    /// `/dev/xen/hypercall` when it exists.
    pub fn open() -> Result<XenCtrl> {
        let primary = Path::new(PRIVCMD_PATH);
        let (fd, path) = match open_device(primary) {
            Ok(fd) => (fd, primary),
            Err(err) if is_missing(&err) => {
                let fallback = Path::new(PRIVCMD_FALLBACK_PATH);
                match open_device(fallback) {
                    Ok(fd) => (fd, fallback),
                    // Neither exists: report the device a reader would look for.
                    Err(e2) if is_missing(&e2) => {
                        return Err(Error::Open {
                            path: primary.to_path_buf(),
                            source: err,
                        })
                    }
                    Err(e2) => {
                        return Err(Error::Open {
                            path: fallback.to_path_buf(),
                            source: e2,
                        })
                    }
                }
            }
            Err(err) => {
                return Err(Error::Open {
                    path: primary.to_path_buf(),
                    source: err,
                })
            }
        };
        Self::with_fd(fd, path, Some(Path::new(HYPERCALL_PATH)))
    }

    /// Opens exactly `privcmd` (no fallback) and, if given, the hypercall-buffer device
    /// `hypercall`; a missing (ENOENT) buffer device means anonymous locked buffers.
    pub fn open_at(privcmd: impl AsRef<Path>, hypercall: Option<&Path>) -> Result<XenCtrl> {
        let path = privcmd.as_ref();
        let fd = open_device(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::with_fd(fd, path, hypercall)
    }

    fn with_fd(fd: OwnedFd, path: &Path, hypercall: Option<&Path>) -> Result<XenCtrl> {
        let buffers = match hypercall {
            None => None,
            Some(hpath) => match open_device(hpath) {
                Ok(fd) => Some(fd),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => None,
                Err(source) => {
                    return Err(Error::Open {
                        path: hpath.to_path_buf(),
                        source,
                    })
                }
            },
        };
        log::debug!(
            "opened {} ({} hypercall buffers)",
            path.display(),
            if buffers.is_some() {
                "device"
            } else {
                "locked anonymous"
            }
        );
        Ok(XenCtrl {
            privcmd: Privcmd::new(fd, buffers),
            privcmd_path: path.to_path_buf(),
            host_sizes: OnceLock::new(),
        })
    }

    /// The privcmd device this handle uses.
    pub fn privcmd_path(&self) -> &Path {
        &self.privcmd_path
    }

    /// Whether hypercall buffers come from `/dev/xen/hypercall` (they never fault).
    pub fn buffers_never_fault(&self) -> bool {
        self.privcmd.buffers().never_faults()
    }

    /// (cpumap bytes, nodemap bytes) of this host.
    pub(crate) fn host_sizes(&self) -> Result<(usize, usize)> {
        if let Some(&sizes) = self.host_sizes.get() {
            return Ok(sizes);
        }
        let info = self.physinfo()?;
        let sizes = (info.cpumap_size(), info.nodemap_size());
        // A racing thread may have stored the same values first; either is fine.
        let _ = self.host_sizes.set(sizes);
        Ok(sizes)
    }
}
