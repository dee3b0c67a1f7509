//! `__HYPERVISOR_hvm_op` parameter access.

use super::abi::HvmParam;
use super::hypercall::{nr, Privcmd};
use crate::error::{Error, Op, Result};
use crate::types::DomId;

/// `HVMOP_set_param`.
pub(crate) const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub(crate) const HVMOP_GET_PARAM: u64 = 1;

fn param_op(privcmd: &Privcmd, op: Op, hvmop: u64, param: HvmParam) -> Result<HvmParam> {
    let buf = privcmd
        .buf_value(&param)
        .map_err(|e| Error::hypercall(op, e.0))?;
    privcmd
        .hypercall(nr::HVM_OP, [hvmop, buf.addr(), 0, 0, 0])
        .map_err(|e| Error::hypercall(op, e.0))?;
    Ok(buf.read().unwrap_or(param))
}

/// `xc_hvm_param_set`.
pub(crate) fn set_param(privcmd: &Privcmd, domid: DomId, index: u32, value: u64) -> Result<()> {
    let param = HvmParam {
        domid: domid.0,
        _pad: 0,
        index,
        value,
    };
    param_op(privcmd, "hvm_op set_param", HVMOP_SET_PARAM, param).map(|_| ())
}

/// `xc_hvm_param_get`.
pub(crate) fn get_param(privcmd: &Privcmd, domid: DomId, index: u32) -> Result<u64> {
    let param = HvmParam {
        domid: domid.0,
        _pad: 0,
        index,
        value: 0,
    };
    Ok(param_op(privcmd, "hvm_op get_param", HVMOP_GET_PARAM, param)?.value)
}
