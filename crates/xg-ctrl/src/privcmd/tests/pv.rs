//! PV requests: populate with machine frames written back, setvcpucontext,
//! hypercall_init, set_address_size, MMUEXT_PIN_L4_TABLE.

use super::*;
use crate::ops::*;
use crate::privcmd::abi::multicall_entry as MulticallEntry;
use crate::privcmd::mock::{self, peek, peek_bytes, poke, u16_at, u32_at, u64_at};
use crate::types::{DomId, Gfn, MemFlags, Mfn, PageOrder};

#[test]
fn populate_returns_the_frames_xen_wrote_back() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::MULTICALL);
        // SAFETY: arg[0] is the bounced multicall entry.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        // SAFETY: args[1] is the bounced reservation (32 bytes).
        let res = unsafe { peek_bytes(entry.args[1], 32) };
        let extents = u64_at(&res, 0);
        assert_eq!(u64_at(&res, 8), 3);
        // Xen: two extents done, their first machine frames replace the gfns.
        // SAFETY: entries 0 and 1 of the live extent array, then the result field.
        unsafe {
            poke(extents, 0xA00u64);
            poke(extents + 8, 0xC00u64);
            poke(call.arg[0] + 8, 2u64);
        }
        Ok(0)
    });
    let mfns = xc
        .populate_physmap_mfns(
            DomId(3),
            PageOrder::ORDER_2M,
            MemFlags::NONE,
            &[Gfn(0), Gfn(512), Gfn(1024)],
        )
        .unwrap();
    assert_eq!(mfns, vec![Mfn(0xA00), Mfn(0xC00)]);
}

#[test]
fn pv_domctl_payloads() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u16_at(&d, 8), 9, "domain");
        match u32_at(&d, 0) {
            12 => {
                // setvcpucontext: vcpu, then the handle of the bounced context.
                assert_eq!(u32_at(&d, 16), 1);
                // SAFETY: the bounced context bytes.
                assert_eq!(unsafe { peek_bytes(u64_at(&d, 24), 4) }, b"ctx!");
            }
            22 => assert_eq!(u64_at(&d, 16), 0x1234, "hypercall_init gmfn"),
            35 => assert_eq!(u32_at(&d, 16), 64, "address size"),
            other => panic!("unexpected domctl {other}"),
        }
        Ok(0)
    });
    xc.set_vcpu_context(DomId(9), 1, b"ctx!").unwrap();
    xc.hypercall_init(DomId(9), Mfn(0x1234)).unwrap();
    xc.set_address_size(DomId(9), 64).unwrap();
}

#[test]
fn pin_l4_is_one_mmuext_op_for_the_foreign_domain() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, 26, "__HYPERVISOR_mmuext_op");
        assert_eq!(call.arg[1], 1, "count");
        assert_eq!(call.arg[2], 0, "pdone");
        assert_eq!(call.arg[3], 4, "foreigndom");
        // SAFETY: the bounced 24-byte mmuext_op.
        let op = unsafe { peek_bytes(call.arg[0], 24) };
        assert_eq!(u32_at(&op, 0), 3, "MMUEXT_PIN_L4_TABLE");
        assert_eq!(u64_at(&op, 8), 0xBEEF);
        Ok(0)
    });
    xc.pin_table(DomId(4), pin::L4_TABLE, Mfn(0xBEEF)).unwrap();
}

#[test]
fn address_size_is_read_back_from_the_domctl() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 36, "XEN_DOMCTL_get_address_size");
        assert_eq!(u16_at(&d, 8), 7, "domain");
        // SAFETY: u.address_size.size of the live domctl buffer.
        unsafe { poke(call.arg[0] + 16, 32u32) };
        Ok(0)
    });
    assert_eq!(xc.address_size(DomId(7)).unwrap(), 32);
}

#[test]
fn getvcpucontext_bounces_a_whole_context_out() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 13, "XEN_DOMCTL_getvcpucontext");
        assert_eq!(u32_at(&d, 16), 0, "vcpu");
        let ctxt = u64_at(&d, 24);
        assert_ne!(ctxt, 0, "a context buffer");
        // SAFETY: user_regs.rdx and the last byte of the 5168-byte bounce buffer.
        unsafe {
            poke(ctxt + 616, 0x1234_5678u64);
            poke(ctxt + 5167, 0xEEu8);
        }
        Ok(0)
    });
    let ctx = xc.vcpu_context(DomId(3), 0).unwrap();
    assert_eq!(ctx.len(), 5168);
    assert_eq!(u64_at(&ctx, 616), 0x1234_5678);
    assert_eq!(ctx[5167], 0xEE);
}

#[test]
fn reset_vcpu_is_setvcpucontext_with_a_null_handle() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 12, "XEN_DOMCTL_setvcpucontext");
        assert_eq!(u16_at(&d, 8), 5, "domain");
        assert_eq!(u32_at(&d, 16), 2, "vcpu");
        assert_eq!(u64_at(&d, 24), 0, "NULL context");
        Err(libc::EINVAL)
    });
    assert_eq!(xc.reset_vcpu(DomId(5), 2).unwrap_err().errno(), Some(22));
}

#[test]
fn maximum_gpfn_is_a_memory_op_on_the_domid() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::MULTICALL);
        // SAFETY: arg[0] is the bounced multicall entry.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.args[0], 14, "XENMEM_maximum_gpfn");
        // SAFETY: args[1] is the bounced 2-byte xen_memory_domain.
        let arg = unsafe { peek_bytes(entry.args[1], 2) };
        assert_eq!(u16_at(&arg, 0), 6);
        // SAFETY: the result field of the live entry.
        unsafe { poke(call.arg[0] + 8, 0x3FFu64) };
        Ok(0)
    });
    assert_eq!(xc.maximum_gpfn(DomId(6)).unwrap(), 0x3FF);
}
