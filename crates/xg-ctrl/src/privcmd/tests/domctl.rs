//! domctl requests: header, payloads, error mapping and retries.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::error::Error;
use crate::ops::*;
use crate::privcmd::mock::{self, peek_bytes, poke, u16_at, u32_at, u64_at};
use crate::types::DomId;

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
    assert_eq!(
        *calls.borrow(),
        1 + crate::privcmd::hypercall::TRANSIENT_RETRIES
    );
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
fn unbound_event_channel_is_allocated_for_the_remote_domain() {
    let xc = ctrl();
    let _g = mock::on_hypercall(|call| {
        assert_eq!(call.op, nr::EVENT_CHANNEL_OP);
        assert_eq!(call.arg[0], 6, "EVTCHNOP_alloc_unbound");
        // SAFETY: the bounced evtchn_alloc_unbound.
        let p = unsafe { peek_bytes(call.arg[1], 8) };
        assert_eq!((u16_at(&p, 0), u16_at(&p, 2)), (9, 0));
        // SAFETY: the port field of the live request.
        unsafe { poke(call.arg[1] + 4, 3u32) };
        Ok(0)
    });
    assert_eq!(xc.alloc_unbound_evtchn(DomId(9), DomId(0)).unwrap(), 3);
}

#[test]
fn resumedomain_is_domctl_27_for_the_domain_and_keeps_its_errno() {
    let xc = ctrl();
    let seen = recorder();
    let seen2 = seen.clone();
    let _g = mock::on_hypercall(move |call| {
        let d = domctl_bytes(&call);
        assert_eq!(u32_at(&d, 0), 27, "XEN_DOMCTL_resumedomain");
        assert_eq!(u32_at(&d, 4), 0x15, "interface version");
        let domid = u16_at(&d, 8);
        assert!(d[16..].iter().all(|&b| b == 0), "no payload");
        seen2.borrow_mut().push(call);
        match domid {
            7 => Ok(0),
            0 => Err(libc::EINVAL),
            _ => Err(libc::ESRCH),
        }
    });
    xc.resume_domain(DomId(7)).unwrap();
    let err = xc.resume_domain(DomId(9)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ESRCH));
    assert!(err.to_string().contains("resumedomain"), "{err}");
    assert_eq!(
        xc.resume_domain(DomId(0)).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(seen.borrow().len(), 3, "issued once each, never retried");
}
