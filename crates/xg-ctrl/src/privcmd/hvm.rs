//! `__HYPERVISOR_hvm_op` parameter access.

use xg_sys as sys;

use super::abi::xen_hvm_param;
use super::hypercall::{nr, Privcmd};
use crate::error::{Error, Op, Result};
use crate::types::DomId;

fn param_op(privcmd: &Privcmd, op: Op, hvmop: u32, param: xen_hvm_param) -> Result<xen_hvm_param> {
    let buf = privcmd
        .buf_value(&param)
        .map_err(|e| Error::hypercall(op, e.0))?;
    privcmd
        .hypercall(nr::HVM_OP, [u64::from(hvmop), buf.addr(), 0, 0, 0])
        .map_err(|e| Error::hypercall(op, e.0))?;
    Ok(buf.read().unwrap_or(param))
}

fn param(domid: DomId, index: u32, value: u64) -> xen_hvm_param {
    xen_hvm_param {
        domid: domid.0,
        pad: 0,
        index,
        value,
    }
}

/// `xc_hvm_param_set`.
pub(crate) fn set_param(privcmd: &Privcmd, domid: DomId, index: u32, value: u64) -> Result<()> {
    let p = param(domid, index, value);
    param_op(privcmd, "hvm_op set_param", sys::HVMOP_set_param, p).map(|_| ())
}

/// `xc_hvm_param_get`.
pub(crate) fn get_param(privcmd: &Privcmd, domid: DomId, index: u32) -> Result<u64> {
    let p = param(domid, index, 0);
    Ok(param_op(privcmd, "hvm_op get_param", sys::HVMOP_get_param, p)?.value)
}
