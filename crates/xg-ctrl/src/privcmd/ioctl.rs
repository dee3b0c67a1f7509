//! Linux privcmd uapi: ioctl request numbers and argument structs.
//!
//! These come from Linux `include/uapi/xen/privcmd.h`, not from Xen's public headers, so
//! they are written here by hand (the bindings crate only carries Xen's ABI). Sizes are
//! asserted at compile time and checked against the installed C header in
//! `tests/privcmd_abi.rs`.

use std::mem::size_of;

use libc::{c_int, c_ulong, c_void};

const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_SIZEMASK: usize = (1 << 14) - 1;

/// `_IOC_NONE`: privcmd declares every ioctl without a direction.
pub const IOC_NONE: u32 = 0;

/// The ioctl "type" letter of privcmd.
pub const PRIVCMD_IOCTL_TYPE: u8 = b'P';

/// `_IOC(dir, type, nr, size)` of Linux `asm-generic/ioctl.h`.
///
/// Fails to compile (const panic) when `size` does not fit the 14-bit size field.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> c_ulong {
    assert!(size <= IOC_SIZEMASK, "ioctl argument too large");
    assert!(dir < 4, "ioctl direction has two bits");
    // Lossless: `size` was just checked to fit in 14 bits.
    #[allow(clippy::cast_possible_truncation)]
    let size = size as u32;
    let v = (dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
        | (size << IOC_SIZESHIFT);
    v as c_ulong
}

/// A privcmd request: `_IOC(_IOC_NONE, 'P', nr, sizeof(T))`.
pub const fn privcmd_ioc<T>(nr: u8) -> c_ulong {
    ioc(IOC_NONE, PRIVCMD_IOCTL_TYPE, nr, size_of::<T>())
}

/// `struct privcmd_hypercall`: hypercall number and up to five arguments.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivcmdHypercall {
    /// `__HYPERVISOR_*` number.
    pub op: u64,
    /// Arguments (pointers are user virtual addresses).
    pub arg: [u64; 5],
}

/// `struct privcmd_mmapbatch_v2`: map `num` foreign frames at `addr`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PrivcmdMmapBatchV2 {
    /// Number of frames.
    pub num: u32,
    /// Foreign domain.
    pub dom: u16,
    /// Start of a VMA previously mmap()ed on the privcmd fd.
    pub addr: u64,
    /// `num` guest frame numbers (`xen_pfn_t`).
    pub arr: *const u64,
    /// `num` per-frame error codes written by the kernel (0 or a negative errno).
    pub err: *mut c_int,
}

/// `struct privcmd_mmap_resource`: map frames of a Xen resource (`XENMEM_acquire_resource`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivcmdMmapResource {
    /// Domain owning the resource.
    pub dom: u16,
    /// `XENMEM_resource_*` type.
    pub ty: u32,
    /// Resource id (e.g. `XENMEM_resource_grant_table_id_shared`).
    pub id: u32,
    /// First frame of the resource.
    pub idx: u32,
    /// Number of frames.
    pub num: u64,
    /// Start of a VMA previously mmap()ed on the privcmd fd.
    pub addr: u64,
}

/// `struct privcmd_dm_op_buf`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PrivcmdDmOpBuf {
    /// Buffer start.
    pub uptr: *mut c_void,
    /// Buffer size.
    pub size: usize,
}

/// `struct privcmd_dm_op`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PrivcmdDmOp {
    /// Target domain.
    pub dom: u16,
    /// Number of buffers.
    pub num: u16,
    /// Buffers.
    pub ubufs: *const PrivcmdDmOpBuf,
}

const _: () = assert!(size_of::<PrivcmdHypercall>() == 48);
const _: () = assert!(size_of::<PrivcmdMmapBatchV2>() == 32);
const _: () = assert!(size_of::<PrivcmdMmapResource>() == 32);
const _: () = assert!(size_of::<PrivcmdDmOp>() == 16);
const _: () = assert!(size_of::<PrivcmdDmOpBuf>() == 16);
const _: () = assert!(std::mem::offset_of!(PrivcmdMmapBatchV2, addr) == 8);
const _: () = assert!(std::mem::offset_of!(PrivcmdMmapBatchV2, err) == 24);
const _: () = assert!(std::mem::offset_of!(PrivcmdMmapResource, num) == 16);
const _: () = assert!(std::mem::offset_of!(PrivcmdMmapResource, addr) == 24);

/// `IOCTL_PRIVCMD_HYPERCALL`.
pub const IOCTL_PRIVCMD_HYPERCALL: c_ulong = privcmd_ioc::<PrivcmdHypercall>(0);
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`.
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: c_ulong = privcmd_ioc::<PrivcmdMmapBatchV2>(4);
/// `IOCTL_PRIVCMD_DM_OP`.
pub const IOCTL_PRIVCMD_DM_OP: c_ulong = privcmd_ioc::<PrivcmdDmOp>(5);
/// `IOCTL_PRIVCMD_RESTRICT` (argument: a `domid_t`).
pub const IOCTL_PRIVCMD_RESTRICT: c_ulong = privcmd_ioc::<u16>(6);
/// `IOCTL_PRIVCMD_MMAP_RESOURCE`.
pub const IOCTL_PRIVCMD_MMAP_RESOURCE: c_ulong = privcmd_ioc::<PrivcmdMmapResource>(7);

/// The raw `ioctl(2)` on a privcmd fd. Unit tests swap in a recording stub
/// (`super::mock::sys_ioctl`) so the whole marshalling path runs without Xen.
///
/// # Safety
///
/// `arg` must point to a live argument of the type `request` expects, and every pointer
/// inside that argument must be valid for what the kernel and Xen do with it (read,
/// write, or map) for the duration of the call.
#[cfg(not(test))]
pub(crate) unsafe fn sys_ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    // SAFETY: the caller guarantees `arg` and the pointers it contains are valid for
    // `request`; `fd` is an open descriptor owned by the caller.
    unsafe { libc::ioctl(fd, request, arg) }
}

#[cfg(test)]
pub(crate) use super::mock::sys_ioctl;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_linux_uapi() {
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
        assert_eq!(IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007);
        assert_eq!(IOCTL_PRIVCMD_DM_OP, 0x0010_5005);
        assert_eq!(IOCTL_PRIVCMD_RESTRICT, 0x0002_5006);
    }

    #[test]
    fn ioc_encodes_each_field() {
        // _IOWR('P', 1, 8) style value: dir 3, type 'P', nr 1, size 8.
        assert_eq!(ioc(3, b'P', 1, 8), 0xC008_5001);
        assert_eq!(ioc(IOC_NONE, b'A', 0xFF, 0), 0x41FF);
    }
}
