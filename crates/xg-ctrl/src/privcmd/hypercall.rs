//! Issuing hypercalls through `IOCTL_PRIVCMD_HYPERCALL`, and memory_op as a one-entry
//! multicall.

use std::os::fd::{AsRawFd, OwnedFd};

use libc::c_void;

use super::abi::multicall_entry;
use super::buffer::{BufferAllocator, HypercallBuf, Pod};
use super::ioctl::{sys_ioctl, PrivcmdHypercall, IOCTL_PRIVCMD_HYPERCALL};
use crate::types::Errno;

/// `__HYPERVISOR_*` numbers (xen/include/public/xen.h), as `privcmd_hypercall.op`.
// `From` is not const; widening u32 to u64 is lossless.
#[allow(clippy::cast_lossless)]
pub(crate) mod nr {
    pub(crate) const MEMORY_OP: u64 = xg_sys::__HYPERVISOR_memory_op as u64;
    pub(crate) const MULTICALL: u64 = xg_sys::__HYPERVISOR_multicall as u64;
    pub(crate) const XEN_VERSION: u64 = xg_sys::__HYPERVISOR_xen_version as u64;
    pub(crate) const HVM_OP: u64 = xg_sys::__HYPERVISOR_hvm_op as u64;
    pub(crate) const SYSCTL: u64 = xg_sys::__HYPERVISOR_sysctl as u64;
    pub(crate) const DOMCTL: u64 = xg_sys::__HYPERVISOR_domctl as u64;
    pub(crate) const EVENT_CHANNEL_OP: u64 = xg_sys::__HYPERVISOR_event_channel_op as u64;
}

/// How often an ioctl that failed with EINTR or EAGAIN is reissued.
///
/// libxencall (tools/libs/call/linux.c) reissues nothing: `osdep_hypercall` is a bare
/// ioctl, and Linux's privcmd never produces EINTR/EAGAIN itself because long Xen
/// operations continue inside Xen. Xen uses EAGAIN for "nothing done, try again", so a
/// short bounded retry is harmless and covers a signal-interrupted ioctl.
pub(crate) const TRANSIENT_RETRIES: u32 = 8;

/// The privcmd device and the hypercall-buffer allocator of one handle.
#[derive(Debug)]
pub(crate) struct Privcmd {
    fd: OwnedFd,
    buffers: BufferAllocator,
}

impl Privcmd {
    pub(crate) fn new(fd: OwnedFd, hypercall_device: Option<OwnedFd>) -> Privcmd {
        Privcmd {
            fd,
            buffers: BufferAllocator::new(hypercall_device),
        }
    }

    pub(crate) fn buffers(&self) -> &BufferAllocator {
        &self.buffers
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// A buffer holding a copy of `value`.
    pub(crate) fn buf_value<T: Pod>(&self, value: &T) -> Result<HypercallBuf<'_, T>, Errno> {
        HypercallBuf::from_value(&self.buffers, value)
    }

    /// A buffer holding a copy of `values`.
    pub(crate) fn buf_slice<T: Pod>(&self, values: &[T]) -> Result<HypercallBuf<'_, T>, Errno> {
        HypercallBuf::from_slice(&self.buffers, values)
    }

    /// A zeroed buffer of `count` values.
    pub(crate) fn buf_zeroed<T: Pod>(&self, count: usize) -> Result<HypercallBuf<'_, T>, Errno> {
        HypercallBuf::zeroed(&self.buffers, count)
    }

    /// One ioctl on the privcmd fd, with the bounded EINTR/EAGAIN retry.
    ///
    /// # Safety
    ///
    /// As [`sys_ioctl`]: `arg` and every pointer inside it must be valid for `request`.
    pub(crate) unsafe fn ioctl(
        &self,
        request: libc::c_ulong,
        arg: *mut c_void,
    ) -> Result<i32, Errno> {
        let mut attempt = 0;
        loop {
            // SAFETY: forwarded from the caller's contract; the fd is open for `self`'s life.
            let rc = unsafe { sys_ioctl(self.fd.as_raw_fd(), request, arg) };
            if rc >= 0 {
                return Ok(rc);
            }
            let err = Errno::last();
            if (err.0 == libc::EINTR || err.0 == libc::EAGAIN) && attempt < TRANSIENT_RETRIES {
                attempt += 1;
                log::trace!(
                    "privcmd ioctl {request:#x}: errno {} (retry {attempt})",
                    err.0
                );
                continue;
            }
            return Err(err);
        }
    }

    /// A hypercall with up to five arguments; the non-negative return value or the errno.
    pub(crate) fn hypercall(&self, op: u64, args: [u64; 5]) -> Result<i32, Errno> {
        let mut call = PrivcmdHypercall { op, arg: args };
        // SAFETY: `call` lives across the ioctl; the arguments are numbers or addresses of
        // hypercall buffers the callers keep alive until this returns.
        unsafe { self.ioctl(IOCTL_PRIVCMD_HYPERCALL, (&raw mut call).cast()) }
    }

    /// `xc_memory_op` on 64-bit Linux: `memory_op(cmd, arg)` issued as a one-entry
    /// multicall so the full `long` result survives the `int` ioctl return.
    /// Returns the (non-negative) result; results above `~0xfff` are negative errnos.
    pub(crate) fn memory_op(&self, cmd: u32, arg: u64) -> Result<u64, Errno> {
        let mut call = self.buf_zeroed::<multicall_entry>(1)?;
        call.update(0, |e| {
            e.op = nr::MEMORY_OP;
            e.args[0] = u64::from(cmd);
            e.args[1] = arg;
        });
        let rc = self.hypercall(nr::MULTICALL, [call.addr(), 1, 0, 0, 0])?;
        if rc != 0 {
            // libxc treats any non-zero multicall return as failure without errno; Xen
            // only returns 0 or a negative errno here, so this is not expected.
            return Err(Errno(libc::EIO));
        }
        let result = call.read().map_or(0, |e| e.result);
        decode_multicall_result(result)
    }
}

/// `multicall.result > ~0xfffUL` means `-errno`.
pub(crate) fn decode_multicall_result(result: u64) -> Result<u64, Errno> {
    if result > !0xfff_u64 {
        // The two's-complement negation of a value above !0xfff is at most 0xfff.
        let errno = i32::try_from(result.wrapping_neg()).unwrap_or(libc::EIO);
        Err(Errno(errno))
    } else {
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicall_results_above_minus_4096_are_errnos() {
        assert_eq!(decode_multicall_result(0), Ok(0));
        assert_eq!(decode_multicall_result(3), Ok(3));
        assert_eq!(decode_multicall_result(!0xfff), Ok(!0xfff));
        assert_eq!(
            decode_multicall_result(u64::MAX - 11), // -12
            Err(Errno(libc::ENOMEM))
        );
        assert_eq!(decode_multicall_result(u64::MAX), Err(Errno(1)));
    }
}
