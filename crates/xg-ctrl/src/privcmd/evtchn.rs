//! `__HYPERVISOR_event_channel_op`: the one command a domain builder's toolstack needs.

use xg_sys as sys;

use super::abi::evtchn_alloc_unbound;
use super::hypercall::{nr, Privcmd};
use crate::error::{Error, Op, Result};
use crate::types::DomId;

/// `xc_evtchn_alloc_unbound`: Xen fills in the new port of `domid`.
pub(crate) fn alloc_unbound(privcmd: &Privcmd, domid: DomId, remote: DomId) -> Result<u32> {
    const OP: Op = "event_channel_op alloc_unbound";
    let request = evtchn_alloc_unbound {
        dom: domid.0,
        remote_dom: remote.0,
        port: 0,
    };
    let buf = privcmd
        .buf_value(&request)
        .map_err(|e| Error::hypercall(OP, e.0))?;
    privcmd
        .hypercall(
            nr::EVENT_CHANNEL_OP,
            [u64::from(sys::EVTCHNOP_alloc_unbound), buf.addr(), 0, 0, 0],
        )
        .map_err(|e| Error::hypercall(OP, e.0))?;
    // A one-element buffer always has element 0.
    Ok(buf.read().map_or(0, |reply| reply.port))
}
