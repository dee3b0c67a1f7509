//! Marshalling tests of the whole call path with the ioctl substituted (see `mock`).

// Test fixtures convert between libc's signed offsets and our addresses freely.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::cell::RefCell;
use std::rc::Rc;

use libc::c_int;

use super::abi::multicall_entry as MulticallEntry;
use super::abi::E820Entry as RawE820;
use super::hypercall::nr;
use super::ioctl::{PrivcmdHypercall, PrivcmdMmapBatchV2, PrivcmdMmapResource};
use super::ioctl::{IOCTL_PRIVCMD_MMAPBATCH_V2, IOCTL_PRIVCMD_MMAP_RESOURCE};
use super::mock::{self, peek, peek_bytes, poke, u16_at, u32_at, u64_at};
use super::XenCtrl;
use crate::error::Error;
use crate::ops::*;
use crate::types::{DomId, Gfn, MemFlags, PageOrder};

/// A handle whose "privcmd" is /dev/zero: ioctls go to the mock, and mmap of the fd
/// gives shared memory that the MMAPBATCH mock replaces with frames of a memfd.
fn ctrl() -> XenCtrl {
    let xc = XenCtrl::open_at("/dev/zero", None).unwrap();
    // 16 CPUs, 2 nodes: cpumap 2 bytes, nodemap 1 byte, without a physinfo round trip.
    xc.host_sizes.set((2, 1)).unwrap();
    xc
}

type Calls = Rc<RefCell<Vec<PrivcmdHypercall>>>;

fn recorder() -> Calls {
    Rc::new(RefCell::new(Vec::new()))
}

/// The bytes of the 144-byte domctl of a recorded call.
fn domctl_bytes(call: &PrivcmdHypercall) -> Vec<u8> {
    assert_eq!(call.op, nr::DOMCTL);
    // SAFETY: arg[0] is the domctl hypercall buffer, alive during the call.
    unsafe { peek_bytes(call.arg[0], 144) }
}

#[test]
fn populate_physmap_is_a_one_entry_multicall() {
    let xc = ctrl();
    let seen = Rc::new(RefCell::new(None));
    let seen2 = seen.clone();
    let _g = mock::on_hypercall(move |call| {
        assert_eq!(call.op, nr::MULTICALL);
        assert_eq!(call.arg[1], 1, "one entry");
        // SAFETY: arg[0] is the bounced multicall entry.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.op, 12);
        assert_eq!(entry.args[0], 6);
        // SAFETY: args[1] is the bounced reservation (32 bytes).
        let res = unsafe { peek_bytes(entry.args[1], 32) };
        let extent_start = u64_at(&res, 0);
        // SAFETY: extent_start is the bounced gfn array of nr_extents entries.
        let gfns: Vec<u64> = (0..u64_at(&res, 8))
            .map(|i| unsafe { peek::<u64>(extent_start + 8 * i) })
            .collect();
        *seen2.borrow_mut() = Some((res, gfns));
        // SAFETY: writing the result field of the live entry, as Xen does.
        unsafe { poke(call.arg[0] + 8, 3u64) };
        Ok(0)
    });
    let gfns = [Gfn(0x100), Gfn(0x300), Gfn(0x500), Gfn(0x700)];
    let done = xc
        .populate_physmap(
            DomId(7),
            PageOrder::ORDER_2M,
            MemFlags::exact_node(1),
            &gfns,
        )
        .unwrap();
    assert_eq!(done, 3);
    let (res, sent) = seen.borrow_mut().take().unwrap();
    assert_eq!(u64_at(&res, 8), 4, "nr_extents");
    assert_eq!(u32_at(&res, 16), 9, "extent_order");
    assert_eq!(u32_at(&res, 20), (2 << 8) | (1 << 17), "mem_flags");
    assert_eq!(u16_at(&res, 24), 7, "domid");
    assert_eq!(sent, vec![0x100, 0x300, 0x500, 0x700]);
}

fn answer_multicall(result: u64) -> mock::Guard {
    mock::on_hypercall(move |call| {
        assert_eq!(call.op, nr::MULTICALL);
        // SAFETY: result field of the live multicall entry.
        unsafe { poke(call.arg[0] + 8, result) };
        Ok(0)
    })
}

#[test]
fn negative_multicall_result_is_an_errno() {
    let xc = ctrl();
    let _g = answer_multicall((-i64::from(libc::ENOMEM)) as u64);
    let err = xc
        .populate_physmap(DomId(1), PageOrder::ORDER_4K, MemFlags::NONE, &[Gfn(1)])
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOMEM));
    assert!(matches!(
        err,
        Error::Hypercall {
            op: "memory_op populate_physmap",
            ..
        }
    ));
}

#[test]
fn short_exact_populate_is_partial() {
    let xc = ctrl();
    let _g = answer_multicall(1);
    let err = xc
        .populate_physmap_exact(
            DomId(1),
            PageOrder::ORDER_4K,
            MemFlags::NONE,
            &[Gfn(5), Gfn(6)],
        )
        .unwrap_err();
    match err {
        Error::Partial {
            requested,
            done,
            order,
            first_gfn,
        } => {
            assert_eq!((requested, done, order, first_gfn), (2, 1, 0, Gfn(5)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        answer_then(2, || xc.populate_physmap_exact(
            DomId(1),
            PageOrder::ORDER_4K,
            MemFlags::NONE,
            &[Gfn(5), Gfn(6)]
        ))
        .ok(),
        Some(())
    );
}

fn answer_then<T>(result: u64, f: impl FnOnce() -> T) -> T {
    let _g = answer_multicall(result);
    f()
}

#[test]
fn multicall_ioctl_failure_keeps_errno() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|_| Err(libc::EPERM));
    let err = xc
        .decrease_reservation(DomId(1), PageOrder::ORDER_4K, &[Gfn(1)])
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EPERM));
}

#[test]
fn claim_pages_sends_null_extents_and_accepts_enosys() {
    let xc = ctrl();
    let seen = recorder();
    let seen2 = seen.clone();
    let _g = mock::on_hypercall(move |call| {
        seen2.borrow_mut().push(call);
        // SAFETY: the live multicall entry and the reservation it points to.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.args[0], 24);
        // SAFETY: the address comes from the request under test and is live during the call.
        let res = unsafe { peek_bytes(entry.args[1], 32) };
        assert_eq!(u64_at(&res, 0), 0, "extent_start NULL");
        assert_eq!(u64_at(&res, 8), 0x4_0000, "nr_extents = pages");
        assert_eq!(u32_at(&res, 16), 0);
        assert_eq!(u32_at(&res, 20), 0);
        assert_eq!(u16_at(&res, 24), 3);
        // SAFETY: result field of the live entry.
        unsafe { poke(call.arg[0] + 8, (-i64::from(libc::ENOSYS)) as u64) };
        Ok(0)
    });
    xc.claim_pages(DomId(3), 0x4_0000).unwrap();
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn claim_pages_other_errors_fail() {
    let xc = ctrl();
    let _g = answer_multicall((-i64::from(libc::ENOMEM)) as u64);
    assert_eq!(
        xc.claim_pages(DomId(3), 1).unwrap_err().errno(),
        Some(libc::ENOMEM)
    );
}

#[test]
fn set_pod_target_layout() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        // SAFETY: live multicall entry and its 40-byte xen_pod_target.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.args[0], 16);
        // SAFETY: the address comes from the request under test and is live during the call.
        let t = unsafe { peek_bytes(entry.args[1], 40) };
        assert_eq!(u64_at(&t, 0), 0x1234);
        assert_eq!(u16_at(&t, 32), 9);
        Ok(0)
    });
    xc.set_pod_target(DomId(9), 0x1234).unwrap();
}

#[test]
fn set_memory_map_sends_packed_e820() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        // SAFETY: live entry, its xen_foreign_memory_map and the e820 array.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.args[0], 13);
        // SAFETY: the address comes from the request under test and is live during the call.
        let m = unsafe { peek_bytes(entry.args[1], 24) };
        assert_eq!(u16_at(&m, 0), 4);
        assert_eq!(u32_at(&m, 8), 2);
        // SAFETY: the address comes from the request under test and is live during the call.
        let e = unsafe { peek_bytes(u64_at(&m, 16), 40) };
        assert_eq!(u64_at(&e, 0), 0);
        assert_eq!(u64_at(&e, 8), 0xA0000);
        assert_eq!(u32_at(&e, 16), 1);
        assert_eq!(u64_at(&e, 20), 0x10_0000, "second entry starts at byte 20");
        assert_eq!(u64_at(&e, 28), 0x3FF0_0000);
        assert_eq!(u32_at(&e, 36), 1);
        Ok(0)
    });
    let map = [
        E820Entry {
            addr: 0,
            size: 0xA0000,
            kind: e820::RAM,
        },
        E820Entry {
            addr: 0x10_0000,
            size: 0x3FF0_0000,
            kind: e820::RAM,
        },
    ];
    xc.set_memory_map(DomId(4), &map).unwrap();
    assert_eq!(std::mem::size_of::<RawE820>(), 20);
}

#[test]
fn domctl_header_and_max_mem_payload() {
    let xc = ctrl();
    let seen = recorder();
    let seen2 = seen.clone();
    let _g = mock::on_hypercall(move |call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 11, "XEN_DOMCTL_max_mem");
        assert_eq!(u32_at(&d, 4), 0x15, "interface version");
        assert_eq!(u16_at(&d, 8), 12);
        assert_eq!(u64_at(&d, 16), 4 << 20);
        seen2.borrow_mut().push(call);
        Ok(0)
    });
    xc.set_max_mem(DomId(12), 4 << 20).unwrap();
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn domctl_eacces_is_an_interface_version_mismatch() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|_| Err(libc::EACCES));
    let err = xc.unpause(DomId(1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InterfaceVersion {
                op: "domctl unpausedomain",
                compiled: 0x15
            }
        ),
        "{err:?}"
    );
    let err = xc.physinfo().unwrap_err();
    assert!(matches!(
        err,
        Error::InterfaceVersion {
            op: "sysctl physinfo",
            ..
        }
    ));
}

#[test]
fn getdomaininfo_for_the_next_domain_is_esrch() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 5);
        let asked = u16_at(&d, 8);
        // Xen 4.17: the next existing domain (id 5) answers, and rewrites the domain field.
        let answer = asked.max(5);
        // SAFETY: writing into the live 144-byte domctl buffer.
        unsafe {
            poke(call.arg[0] + 8, answer);
            poke(call.arg[0] + 16, answer);
            poke(call.arg[0] + 20, 1u32 << 1 | 1 << 8);
            poke(call.arg[0] + 24, 0x1000u64);
            poke(call.arg[0] + 32, 0x2000u64);
            poke(call.arg[0] + 16 + 64, 2u32);
            poke(call.arg[0] + 16 + 68, 1u32);
        }
        Ok(0)
    });
    let err = xc.domain_info(DomId(3)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ESRCH));
    let info = xc.domain_info(DomId(5)).unwrap();
    assert_eq!(info.domid, DomId(5));
    assert!(info.is_hvm() && info.is_hap());
    assert_eq!((info.tot_pages, info.max_pages), (0x1000, 0x2000));
    assert_eq!((info.nr_online_vcpus, info.max_vcpu_id), (2, 1));
}

#[test]
fn efault_is_retried_twice_for_queries_only() {
    let xc = ctrl();
    let calls = Rc::new(RefCell::new(0));
    let calls2 = calls.clone();
    let _g = mock::on_hypercall(move |_| {
        *calls2.borrow_mut() += 1;
        Err(libc::EFAULT)
    });
    assert_eq!(
        xc.domain_info(DomId(1)).unwrap_err().errno(),
        Some(libc::EFAULT)
    );
    assert_eq!(*calls.borrow(), 3, "one call and two retries");
    *calls.borrow_mut() = 0;
    assert_eq!(
        xc.set_max_vcpus(DomId(1), 2).unwrap_err().errno(),
        Some(libc::EFAULT)
    );
    assert_eq!(*calls.borrow(), 1, "no retry for a command");
}

#[test]
fn eintr_and_eagain_are_retried_with_a_bound() {
    let xc = ctrl();
    let calls = Rc::new(RefCell::new(0));
    let calls2 = calls.clone();
    let _g = mock::on_hypercall(move |_| {
        *calls2.borrow_mut() += 1;
        match *calls2.borrow() {
            1 => Err(libc::EINTR),
            2 => Err(libc::EAGAIN),
            _ => Ok(0),
        }
    });
    xc.set_max_vcpus(DomId(1), 2).unwrap();
    assert_eq!(*calls.borrow(), 3);
    drop(_g);
    let calls = Rc::new(RefCell::new(0));
    let calls2 = calls.clone();
    let _g = mock::on_hypercall(move |_| {
        *calls2.borrow_mut() += 1;
        Err(libc::EINTR)
    });
    assert_eq!(
        xc.set_max_vcpus(DomId(1), 2).unwrap_err().errno(),
        Some(libc::EINTR)
    );
    assert_eq!(*calls.borrow(), 1 + super::hypercall::TRANSIENT_RETRIES);
}

#[test]
fn createdomain_payload_and_returned_domid() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 1);
        assert_eq!(u16_at(&d, 8), 0);
        let u = &d[16..];
        assert_eq!(&u[4..20], &[0xAB; 16], "handle");
        assert_eq!(u32_at(u, 20), 0b11, "CDF_hvm | CDF_hap");
        assert_eq!(u32_at(u, 28), 4, "max_vcpus");
        assert_eq!(u32_at(u, 32), 1023);
        assert_eq!(u32_at(u, 36), 64);
        assert_eq!(u32_at(u, 40), 1024);
        assert_eq!(u32_at(u, 44), 1, "grant v1");
        assert_eq!(u32_at(u, 56), 0x3FF, "emulation flags");
        // SAFETY: domain field of the live domctl.
        unsafe { poke(call.arg[0] + 8, 42u16) };
        Ok(0)
    });
    let config = DomainConfig {
        max_vcpus: 4,
        handle: [0xAB; 16],
        ..DomainConfig::default()
    };
    assert_eq!(xc.create_domain(DomId(0), &config).unwrap(), DomId(42));
}

#[test]
fn vcpu_affinity_sends_one_map_and_returns_the_effective_one() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 9);
        let u = &d[16..];
        assert_eq!(u32_at(u, 0), 1, "vcpu");
        assert_eq!(u32_at(u, 4), 2, "XEN_VCPUAFFINITY_SOFT");
        assert_eq!(u64_at(u, 8), 0, "no hard map");
        assert_eq!(u32_at(u, 32), 16, "nr_bits = cpumap bytes * 8");
        let map = u64_at(u, 24);
        // SAFETY: the bounced 2-byte cpumap.
        assert_eq!(unsafe { peek_bytes(map, 2) }, vec![0xFF, 0x01]);
        // Xen writes back the effective mask.
        // SAFETY: the address comes from the request under test and is live during the call.
        unsafe { poke(map, [0x0Fu8, 0x00]) };
        Ok(0)
    });
    let eff = xc
        .set_vcpu_affinity(DomId(2), 1, AffinityKind::Soft, &[0xFF, 0x01])
        .unwrap();
    assert_eq!(eff, vec![0x0F, 0x00]);
    let err = xc
        .set_vcpu_affinity(DomId(2), 1, AffinityKind::Hard, &[0, 0, 1])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }));
}

#[test]
fn node_affinity_and_credit_layouts() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        let u = &d[16..];
        match u32_at(&d, 0) {
            68 => {
                assert_eq!(u32_at(u, 8), 8);
                // SAFETY: bounced nodemap.
                assert_eq!(unsafe { peek_bytes(u64_at(u, 0), 1) }, vec![0b10]);
            }
            16 => {
                assert_eq!(u32_at(u, 0), 5, "credit");
                if u32_at(u, 4) == 0 {
                    assert_eq!((u16_at(u, 8), u16_at(u, 10)), (512, 50));
                } else {
                    assert_eq!(u32_at(u, 4), 1);
                    // SAFETY: credit.weight/cap of the live domctl.
                    unsafe { poke(call.arg[0] + 24, [256u16, 0]) };
                }
            }
            other => panic!("unexpected domctl {other}"),
        }
        Ok(0)
    });
    xc.set_node_affinity(DomId(2), &[0b10]).unwrap();
    xc.sched_credit_set(
        DomId(2),
        CreditParams {
            weight: 512,
            cap: 50,
        },
    )
    .unwrap();
    assert_eq!(
        xc.sched_credit_get(DomId(2)).unwrap(),
        CreditParams {
            weight: 256,
            cap: 0
        }
    );
}

#[test]
fn tsc_and_time_offset_layouts() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        match u32_at(&d, 0) {
            60 => assert_eq!(
                &d[16..40],
                &[2, 0, 0, 0]
                    .iter()
                    .chain([0u8; 20].iter())
                    .copied()
                    .collect::<Vec<_>>()[..]
            ),
            24 => assert_eq!(u64_at(&d, 16), (-3600i64) as u64),
            other => panic!("unexpected domctl {other}"),
        }
        Ok(0)
    });
    xc.set_tsc_info(DomId(1), 2).unwrap();
    xc.set_time_offset(DomId(1), -3600).unwrap();
}

#[test]
fn hvm_param_get_and_set() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::HVM_OP);
        // SAFETY: the bounced xen_hvm_param.
        let p = unsafe { peek_bytes(call.arg[1], 16) };
        assert_eq!(u16_at(&p, 0), 6);
        assert_eq!(u32_at(&p, 4), 1, "HVM_PARAM_STORE_PFN");
        match call.arg[0] {
            0 => assert_eq!(u64_at(&p, 8), 0xFEFFF),
            // SAFETY: the address comes from the request under test and is live during the call.
            1 => unsafe { poke(call.arg[1] + 8, 0xFEFFEu64) },
            other => panic!("hvmop {other}"),
        }
        Ok(0)
    });
    xc.set_hvm_param(DomId(6), 1, 0xFEFFF).unwrap();
    assert_eq!(xc.hvm_param(DomId(6), 1).unwrap(), 0xFEFFE);
}

#[test]
fn set_cpu_policy_presets_error_indices() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 83);
        let u = &d[16..];
        assert_eq!((u32_at(u, 0), u32_at(u, 4)), (1, 1));
        assert_eq!(
            (u32_at(u, 24), u32_at(u, 28), u32_at(u, 32)),
            (u32::MAX, u32::MAX, u32::MAX)
        );
        // SAFETY: the bounced leaf and MSR arrays.
        let leaf = unsafe { peek_bytes(u64_at(u, 8), 24) };
        assert_eq!(
            (u32_at(&leaf, 0), u32_at(&leaf, 4), u32_at(&leaf, 20)),
            (7, 0, 0xD)
        );
        // SAFETY: the address comes from the request under test and is live during the call.
        let msr = unsafe { peek_bytes(u64_at(u, 16), 16) };
        assert_eq!((u32_at(&msr, 0), u64_at(&msr, 8)), (0x10A, 0x55));
        // SAFETY: err_leaf of the live domctl.
        unsafe { poke(call.arg[0] + 16 + 24, 7u32) };
        Err(libc::EINVAL)
    });
    let policy = CpuPolicy {
        leaves: vec![CpuidLeaf {
            leaf: 7,
            subleaf: 0,
            a: 1,
            b: 2,
            c: 3,
            d: 0xD,
        }],
        msrs: vec![MsrEntry {
            idx: 0x10A,
            flags: 0,
            val: 0x55,
        }],
    };
    let err = xc.set_domain_cpu_policy(DomId(1), &policy).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    match err {
        Error::CpuPolicyRejected {
            domid,
            err_leaf,
            err_subleaf,
            err_msr,
            ..
        } => {
            assert_eq!(
                (domid, err_leaf, err_subleaf, err_msr),
                (DomId(1), 7, u32::MAX, u32::MAX)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn get_cpu_policy_and_hvm_context_size_first() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        let base = call.arg[0] + 16;
        let u = &d[16..];
        // SAFETY: all pokes go to the live domctl or to the buffers it names.
        unsafe {
            match u32_at(&d, 0) {
                82 if u64_at(u, 8) == 0 => poke(base, [3u32, 2]),
                82 => {
                    assert_eq!((u32_at(u, 0), u32_at(u, 4)), (3, 2));
                    poke(u64_at(u, 8), [0xDu32, 1, 10, 11, 12, 13]);
                    poke(u64_at(u, 16), (0xCEu32, 0u32, 9u64));
                    poke(base, [1u32, 1]);
                }
                33 if u64_at(u, 8) == 0 => poke(base, 100u32),
                33 => {
                    assert_eq!(u32_at(u, 0), 100);
                    poke(u64_at(u, 8), [0x5Au8; 60]);
                    poke(base, 60u32);
                }
                other => panic!("unexpected domctl {other}"),
            }
        }
        Ok(0)
    });
    let p = xc.domain_cpu_policy(DomId(1)).unwrap();
    assert_eq!(
        p.leaves,
        vec![CpuidLeaf {
            leaf: 0xD,
            subleaf: 1,
            a: 10,
            b: 11,
            c: 12,
            d: 13
        }]
    );
    assert_eq!(
        p.msrs,
        vec![MsrEntry {
            idx: 0xCE,
            flags: 0,
            val: 9
        }]
    );
    assert_eq!(xc.hvm_context(DomId(1)).unwrap(), vec![0x5A; 60]);
}

#[test]
fn set_hvm_context_bounces_the_blob() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 34);
        assert_eq!(u32_at(&d, 16), 5);
        // SAFETY: the bounced blob.
        assert_eq!(unsafe { peek_bytes(u64_at(&d, 24), 5) }, b"hello");
        Ok(0)
    });
    xc.set_hvm_context(DomId(1), b"hello").unwrap();
}

#[test]
fn xen_version_reads_three_subops() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::XEN_VERSION);
        // SAFETY: the bounced string buffers of 16 and 1024 bytes.
        unsafe {
            match call.arg[0] {
                0 => return Ok(4 << 16 | 17),
                1 => poke(call.arg[1], *b".7\0\0"),
                3 => poke(call.arg[1], *b"xen-3.0-x86_64 hvm-3.0-x86_64\0"),
                other => panic!("xenver {other}"),
            }
        }
        Ok(0)
    });
    let v = xc.xen_version().unwrap();
    assert_eq!((v.major, v.minor, v.extra.as_str()), (4, 17, ".7"));
    assert_eq!(v.capabilities, "xen-3.0-x86_64 hvm-3.0-x86_64");
}

#[test]
fn physinfo_and_numainfo() {
    let xc = XenCtrl::open_at("/dev/zero", None).unwrap();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::SYSCTL);
        // SAFETY: the bounced 136-byte sysctl.
        let s = unsafe { peek_bytes(call.arg[0], 136) };
        assert_eq!(u32_at(&s, 4), 0x15);
        let base = call.arg[0] + 8;
        let u = &s[8..];
        // SAFETY: pokes into the live sysctl or the arrays it names.
        unsafe {
            match u32_at(&s, 0) {
                3 => {
                    poke(base, [2u32, 4, 8, 15, 2, 1, 2_400_000, 3]);
                    poke(base + 40, [0x10_0000u64, 0x8_0000, 0, 7, 0x20_0000]);
                }
                17 if u64_at(u, 8) == 0 => poke(base, 2u32),
                17 => {
                    poke(u64_at(u, 8), [1u64 << 30, 1 << 29, 1 << 30, 1 << 28]);
                    poke(u64_at(u, 16), [10u32, 20, 20, 10]);
                }
                16 if u64_at(u, 8) == 0 => poke(base, 2u32),
                16 => poke(u64_at(u, 8), [0u32, 0, 0, 1, 0, 1]),
                other => panic!("sysctl {other}"),
            }
        }
        Ok(0)
    });
    let p = xc.physinfo().unwrap();
    assert_eq!(
        (p.threads_per_core, p.nr_cpus, p.max_cpu_id, p.max_node_id),
        (2, 8, 15, 1)
    );
    assert_eq!(
        (p.cpu_khz, p.capabilities, p.total_pages, p.free_pages),
        (2_400_000, 3, 0x10_0000, 0x8_0000)
    );
    assert_eq!((p.outstanding_pages, p.max_mfn), (7, 0x20_0000));
    assert_eq!(xc.host_sizes().unwrap(), (2, 1));
    let n = xc.numainfo().unwrap();
    assert_eq!(
        n.nodes[1],
        NodeMemory {
            memsize: 1 << 30,
            memfree: 1 << 28
        }
    );
    assert_eq!(n.distance, vec![10, 20, 20, 10]);
    assert_eq!(n.cpu_to_node, vec![0, 1]);
}

#[test]
fn open_at_missing_device_reports_path_and_errno() {
    let err = XenCtrl::open_at("/nonexistent/xen/privcmd", None).unwrap_err();
    match &err {
        Error::Open { path, source } => {
            assert_eq!(path, std::path::Path::new("/nonexistent/xen/privcmd"));
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.to_string(), "Opening /nonexistent/xen/privcmd failed");
    // A missing hypercall device is fine; an unopenable one is not.
    let xc = XenCtrl::open_at("/dev/zero", Some(std::path::Path::new("/nonexistent/hc"))).unwrap();
    assert!(!xc.buffers_never_fault());
    let err = XenCtrl::open_at("/dev/zero", Some(std::path::Path::new("/proc/self"))).unwrap_err();
    assert!(matches!(err, Error::Open { .. }));
}

#[test]
fn open_without_xen_names_the_primary_device() {
    if std::path::Path::new(super::PRIVCMD_PATH).exists()
        || std::path::Path::new(super::PRIVCMD_FALLBACK_PATH).exists()
    {
        return; // A Xen host: covered by the ignored tests in tests/privcmd_xen.rs.
    }
    match XenCtrl::open().unwrap_err() {
        Error::Open { path, source } => {
            assert_eq!(path, std::path::Path::new("/dev/xen/privcmd"));
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---- foreign mappings ----

/// Fake guest RAM: a memfd of `pages` pages; MMAPBATCH maps its pages over the VMA.
struct FakeGuest {
    fd: std::os::fd::OwnedFd,
    pages: u64,
}

impl FakeGuest {
    fn new(pages: u64) -> FakeGuest {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create with a static name; the fd is owned from here on.
        let raw = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sizing our own memfd.
        assert_eq!(
            // SAFETY: the address comes from the request under test and is live during the call.
            unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), (pages * 4096) as i64) },
            0
        );
        FakeGuest { fd, pages }
    }

    fn raw(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Maps frame `gfn` at `addr` like privcmd would.
    fn map_frame(&self, addr: u64, gfn: u64) {
        // SAFETY: `addr` is a page inside the VMA the code under test reserved.
        let p = unsafe {
            libc::mmap(
                addr as usize as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.raw(),
                (gfn * 4096) as i64,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
    }

    fn read(&self, paddr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: pread into our own buffer.
        let n = unsafe { libc::pread(self.raw(), out.as_mut_ptr().cast(), len, paddr as i64) };
        assert_eq!(n, len as isize);
        out
    }

    fn write(&self, paddr: u64, data: &[u8]) {
        // SAFETY: pwrite from our own buffer.
        let n = unsafe { libc::pwrite(self.raw(), data.as_ptr().cast(), data.len(), paddr as i64) };
        assert_eq!(n, data.len() as isize);
    }
}

/// Serves MMAPBATCH_V2 from `guest`; frames in `bad` fail with -EINVAL, frames in
/// `paged` report -ENOENT the first `paged_rounds` times. Records batch sizes.
fn serve_guest(
    guest: Rc<FakeGuest>,
    bad: Vec<u64>,
    paged: Vec<u64>,
    paged_rounds: u32,
    batches: Rc<RefCell<Vec<u32>>>,
) -> mock::Guard {
    let mut rounds = 0;
    mock::install(move |request, arg| {
        assert_eq!(request, IOCTL_PRIVCMD_MMAPBATCH_V2);
        // SAFETY: the live argument of the code under test.
        let b: PrivcmdMmapBatchV2 = unsafe { std::ptr::read(arg.cast()) };
        batches.borrow_mut().push(b.num);
        let mut any_paged = false;
        for i in 0..b.num as usize {
            // SAFETY: `arr`/`err` have `num` elements (the contract under test).
            let gfn = unsafe { *b.arr.add(i) };
            let err: c_int = if bad.contains(&gfn) || gfn >= guest.pages {
                -libc::EINVAL
            } else if paged.contains(&gfn) && rounds < paged_rounds {
                any_paged = true;
                -libc::ENOENT
            } else {
                guest.map_frame(b.addr + 4096 * i as u64, gfn);
                0
            };
            // SAFETY: as above.
            unsafe { *b.err.add(i) = err };
        }
        if any_paged {
            rounds += 1;
            return Err(libc::ENOENT);
        }
        Ok(0)
    })
}

#[test]
fn guest_copies_cross_pages_and_batches() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(1100));
    let batches = Rc::new(RefCell::new(Vec::new()));
    let _g = serve_guest(guest.clone(), vec![], vec![], 0, batches.clone());
    // 1030 pages starting mid-page: needs two batches (1024 + 7 frames).
    let data: Vec<u8> = (0..1030 * 4096).map(|i| (i % 251) as u8).collect();
    let paddr = 0x10 * 4096 + 0x800;
    xc.write_guest(DomId(3), paddr, &data).unwrap();
    assert_eq!(*batches.borrow(), vec![1024, 7]);
    assert_eq!(guest.read(paddr, data.len()), data);
    let mut back = vec![0u8; data.len()];
    xc.read_guest(DomId(3), paddr, &mut back).unwrap();
    assert_eq!(back, data);
    // clear_guest_pages zeroes exactly the named frames.
    guest.write(0x20 * 4096, &[0xEE; 3 * 4096]);
    xc.clear_guest_pages(DomId(3), &[Gfn(0x20), Gfn(0x22)])
        .unwrap();
    assert_eq!(guest.read(0x20 * 4096, 4096), vec![0; 4096]);
    assert_eq!(guest.read(0x21 * 4096, 4096), vec![0xEE; 4096]);
    assert_eq!(guest.read(0x22 * 4096, 4096), vec![0; 4096]);
}

#[test]
fn per_frame_errors_name_the_frame() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(64));
    let _g = serve_guest(
        guest,
        vec![0x11],
        vec![],
        0,
        Rc::new(RefCell::new(Vec::new())),
    );
    let err = xc
        .write_guest(DomId(3), 0x10 * 4096, &[1u8; 3 * 4096])
        .unwrap_err();
    match err {
        Error::ForeignMap { domid, gfn, source } => {
            assert_eq!((domid, gfn, source.0), (DomId(3), Gfn(0x11), libc::EINVAL));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn paged_out_frames_are_retried() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(64));
    let batches = Rc::new(RefCell::new(Vec::new()));
    let _g = serve_guest(guest.clone(), vec![], vec![0x12, 0x13], 2, batches.clone());
    xc.write_guest(DomId(3), 0x10 * 4096, &[7u8; 5 * 4096])
        .unwrap();
    // The full batch, then twice only the run of two paged frames.
    assert_eq!(*batches.borrow(), vec![5, 2, 2]);
    assert_eq!(guest.read(0x12 * 4096, 8192), vec![7u8; 8192]);
}

#[test]
fn mmapbatch_ioctl_failure_is_a_hypercall_error() {
    let xc = ctrl();
    let _g = mock::install(|_, _| Err(libc::EPERM));
    let err = xc.write_guest(DomId(3), 0, &[1]).unwrap_err();
    assert!(matches!(
        err,
        Error::Hypercall {
            op: "privcmd mmapbatch_v2",
            ..
        }
    ));
    assert_eq!(err.errno(), Some(libc::EPERM));
}

#[test]
fn grant_table_goes_through_mmap_resource() {
    let xc = ctrl();
    let gnttab = Rc::new(FakeGuest::new(1));
    let g2 = gnttab.clone();
    let _g = mock::install(move |request, arg| {
        assert_eq!(request, IOCTL_PRIVCMD_MMAP_RESOURCE);
        // SAFETY: the live argument.
        let r: PrivcmdMmapResource = unsafe { std::ptr::read(arg.cast()) };
        assert_eq!((r.dom, r.ty, r.id, r.idx, r.num), (5, 1, 0, 0, 1));
        g2.map_frame(r.addr, 0);
        Ok(0)
    });
    xc.write_grant_table(DomId(5), 8, &[1, 2, 3, 4]).unwrap();
    assert_eq!(gnttab.read(8, 4), vec![1, 2, 3, 4]);
    let mut buf = [0u8; 4];
    xc.read_grant_table(DomId(5), 8, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3, 4]);
    let err = xc.write_grant_table(DomId(5), 4094, &[0; 4]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }));
}

#[test]
fn chunking_respects_batch_and_page_offsets() {
    use super::foreign::{chunks, Chunk};
    let c = chunks("t", 0x1800, 0x3000, 2).unwrap();
    assert_eq!(
        c,
        vec![
            Chunk {
                first_gfn: 1,
                frames: 2,
                offset: 0x800,
                data: 0..0x1800
            },
            Chunk {
                first_gfn: 3,
                frames: 2,
                offset: 0,
                data: 0x1800..0x3000
            },
        ]
    );
    let one = chunks("t", 0xFFF, 2, 1024).unwrap();
    assert_eq!(
        one,
        vec![Chunk {
            first_gfn: 0,
            frames: 2,
            offset: 0xFFF,
            data: 0..2
        }]
    );
    assert!(chunks("t", 0, 0, 2).unwrap().is_empty());
    assert!(chunks("t", u64::MAX, 2, 2).is_err());
}
