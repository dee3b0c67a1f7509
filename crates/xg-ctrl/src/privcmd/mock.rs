//! Test double of the raw ioctl (vm-memory style compile-time substitution).
//!
//! `ioctl::sys_ioctl` resolves to [`sys_ioctl`] here under `cfg(test)`. A test installs
//! a handler for the current thread; the handler sees each request number and argument
//! pointer, can read the argument and the buffers it points to (all live memory of this
//! process), write results back, and answer with a return value or an errno.

use std::cell::RefCell;
use std::ptr;

use libc::{c_int, c_ulong, c_void};

use super::ioctl::{PrivcmdHypercall, IOCTL_PRIVCMD_HYPERCALL};

/// Answers one ioctl: `Ok(return value)` or `Err(errno)`.
pub(crate) type Handler = Box<dyn FnMut(c_ulong, *mut c_void) -> Result<c_int, c_int>>;

thread_local! {
    static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
}

/// Replaces the handler of this thread until the guard drops.
pub(crate) fn install(
    handler: impl FnMut(c_ulong, *mut c_void) -> Result<c_int, c_int> + 'static,
) -> Guard {
    HANDLER.with(|h| *h.borrow_mut() = Some(Box::new(handler)));
    Guard
}

/// Installs a handler for `IOCTL_PRIVCMD_HYPERCALL` only (others fail with ENOTTY).
pub(crate) fn on_hypercall(
    mut handler: impl FnMut(PrivcmdHypercall) -> Result<c_int, c_int> + 'static,
) -> Guard {
    install(move |request, arg| {
        if request != IOCTL_PRIVCMD_HYPERCALL {
            return Err(libc::ENOTTY);
        }
        // SAFETY: the code under test passes a live `PrivcmdHypercall` with this request.
        let call = unsafe { ptr::read(arg.cast::<PrivcmdHypercall>()) };
        handler(call)
    })
}

/// Removes the handler on drop.
#[derive(Debug)]
pub(crate) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        HANDLER.with(|h| *h.borrow_mut() = None);
    }
}

/// The substituted `ioctl`.
///
/// # Safety
///
/// Same contract as the real one; the installed handler dereferences `arg`.
pub(crate) unsafe fn sys_ioctl(_fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let outcome = HANDLER.with(|h| match h.borrow_mut().as_mut() {
        Some(handler) => handler(request, arg),
        None => Err(libc::ENOTTY),
    });
    match outcome {
        Ok(rc) => rc,
        Err(errno) => {
            // SAFETY: `__errno_location` returns this thread's errno slot.
            unsafe { *libc::__errno_location() = errno };
            -1
        }
    }
}

/// Reads a `T` the code under test placed at user address `addr`.
///
/// # Safety
///
/// `addr` must point to a live, readable `T` (a hypercall buffer of the call in flight).
pub(crate) unsafe fn peek<T: Copy>(addr: u64) -> T {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::read_unaligned(crate::types::conv::u64_to_usize(addr) as *const T) }
}

/// Writes a `T` at user address `addr`, as Xen would.
///
/// # Safety
///
/// `addr` must point to live, writable memory of at least `size_of::<T>()` bytes.
pub(crate) unsafe fn poke<T: Copy>(addr: u64, value: T) {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::write_unaligned(crate::types::conv::u64_to_usize(addr) as *mut T, value) }
}

/// Reads `len` bytes at `addr`.
///
/// # Safety
///
/// `addr..addr+len` must be live, readable memory.
pub(crate) unsafe fn peek_bytes(addr: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SAFETY: guaranteed by the caller; `out` is a fresh allocation.
    unsafe {
        ptr::copy_nonoverlapping(
            crate::types::conv::u64_to_usize(addr) as *const u8,
            out.as_mut_ptr(),
            len,
        )
    };
    out
}

/// Little-endian field readers over a byte image of a request.
pub(crate) fn u16_at(bytes: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(bytes[off..off + 2].try_into().unwrap())
}

pub(crate) fn u32_at(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap())
}

pub(crate) fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
}
