//! Marshalling tests of the whole call path with the ioctl substituted (see `mock`).

// Test fixtures convert between libc's signed offsets and our addresses freely.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod domctl;
mod foreign;
mod host;
mod memory;
mod pv;

use std::cell::RefCell;
use std::rc::Rc;

use super::hypercall::nr;
use super::ioctl::PrivcmdHypercall;
use super::mock::{self, peek_bytes, poke};
use super::XenCtrl;

/// A handle whose "privcmd" is /dev/zero: ioctls go to the mock, and mmap of the fd
/// gives shared memory that the MMAPBATCH mock replaces with frames of a memfd.
pub(super) fn ctrl() -> XenCtrl {
    let xc = XenCtrl::open_at("/dev/zero", None).unwrap();
    // 16 CPUs, 2 nodes: cpumap 2 bytes, nodemap 1 byte, without a physinfo round trip.
    xc.host_sizes.set((2, 1)).unwrap();
    xc
}

pub(super) type Calls = Rc<RefCell<Vec<PrivcmdHypercall>>>;

pub(super) fn recorder() -> Calls {
    Rc::new(RefCell::new(Vec::new()))
}

/// The bytes of the 144-byte domctl of a recorded call.
pub(super) fn domctl_bytes(call: &PrivcmdHypercall) -> Vec<u8> {
    assert_eq!(call.op, nr::DOMCTL);
    // SAFETY: arg[0] is the domctl hypercall buffer, alive during the call.
    unsafe { peek_bytes(call.arg[0], 144) }
}

pub(super) fn answer_multicall(result: u64) -> mock::Guard {
    mock::on_hypercall(move |call| {
        assert_eq!(call.op, nr::MULTICALL);
        // SAFETY: result field of the live multicall entry.
        unsafe { poke(call.arg[0] + 8, result) };
        Ok(0)
    })
}

pub(super) fn answer_then<T>(result: u64, f: impl FnOnce() -> T) -> T {
    let _g = answer_multicall(result);
    f()
}
