//! memory_op requests: the multicall wrapper and each payload.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::error::Error;
use crate::ops::*;
use crate::privcmd::abi::multicall_entry as MulticallEntry;
use crate::privcmd::abi::E820Entry as RawE820;
use crate::privcmd::hypercall::nr;
use crate::privcmd::mock::{self, peek, peek_bytes, poke, u16_at, u32_at, u64_at};
use crate::types::{DomId, Gfn, MemFlags, PageOrder};

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
fn reserved_device_memory_counts_then_reads() {
    let xc = ctrl();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    let _g = mock::on_hypercall(move |call| {
        assert_eq!(call.op, nr::MULTICALL);
        // SAFETY: arg[0] is the bounced multicall entry.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        assert_eq!(entry.op, nr::MEMORY_OP);
        assert_eq!(entry.args[0], 27, "XENMEM_reserved_device_memory_map");
        // SAFETY: args[1] is the bounced 24-byte xen_reserved_device_memory_map.
        let m = unsafe { peek_bytes(entry.args[1], 24) };
        let room = u32_at(&m, 4);
        let buffer = u64_at(&m, 8);
        seen2.borrow_mut().push(m.clone());
        let result = if room < 2 {
            -i64::from(libc::ENOBUFS)
        } else {
            // SAFETY: the buffer has room for `room` 16-byte entries, as Xen assumes.
            unsafe {
                poke(buffer, [0xBF800u64, 0x800]);
                poke(buffer + 16, [0xC0000u64, 0x10]);
            }
            0
        };
        // SAFETY: Xen writes nr_entries back into the live map, then the result.
        unsafe {
            poke(entry.args[1] + 4, 2u32);
            poke(call.arg[0] + 8, result as u64);
        }
        Ok(0)
    });
    let dev = PciDev {
        seg: 1,
        bus: 3,
        devfn: (0x1f << 3) | 2,
    };
    let regions = xc.reserved_device_memory(0, dev).unwrap();
    assert_eq!(
        regions,
        vec![
            ReservedRegion {
                start_pfn: 0xBF800,
                nr_pages: 0x800
            },
            ReservedRegion {
                start_pfn: 0xC0000,
                nr_pages: 0x10
            },
        ]
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "a counting call, then the read");
    for (m, room) in seen.iter().zip([0u32, 2]) {
        assert_eq!(u32_at(m, 0), 0, "flags");
        assert_eq!(u32_at(m, 4), room, "nr_entries");
        assert_eq!(u16_at(m, 16), 1, "dev.pci.seg");
        assert_eq!(m[18], 3, "dev.pci.bus");
        assert_eq!(m[19], 0xfa, "dev.pci.devfn");
    }
    assert_eq!(
        u64_at(&seen[0], 8),
        0,
        "the counting call hands Xen no buffer"
    );
    assert_ne!(u64_at(&seen[1], 8), 0);
}

#[test]
fn reserved_device_memory_errors_keep_errno_and_count() {
    let xc = ctrl();
    let dev = PciDev {
        seg: 0,
        bus: 0,
        devfn: 0x10,
    };
    // No regions: the first call succeeds with a count of 0.
    assert_eq!(
        answer_then(0, || xc.reserved_device_memory(rdm::ALL, dev)).unwrap(),
        vec![]
    );
    let _g = mock::on_hypercall(|call| {
        // SAFETY: arg[0] is the live multicall entry.
        let entry: MulticallEntry = unsafe { peek(call.arg[0]) };
        // SAFETY: the entry's result and its map's nr_entries, written back as Xen does.
        unsafe {
            poke(entry.args[1] + 4, 5u32);
            poke(call.arg[0] + 8, (-i64::from(libc::ENOBUFS)) as u64);
        }
        Ok(0)
    });
    let err = xc.reserved_device_memory_map(0, dev, 1).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOBUFS));
    assert!(
        matches!(
            err,
            Error::TooSmall {
                op: "memory_op reserved_device_memory_map",
                needed: 5
            }
        ),
        "{err:?}"
    );
    drop(_g);
    let _g = answer_multicall((-i64::from(libc::ENOSYS)) as u64);
    let err = xc.reserved_device_memory(0, dev).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOSYS));
    assert_eq!(
        err.to_string(),
        "Hypercall memory_op reserved_device_memory_map failed"
    );
}
