//! xen_version, sysctl and opening the devices.

use super::*;
use crate::error::Error;
use crate::ops::*;
use crate::privcmd::hypercall::nr;
use crate::privcmd::mock::{self, peek_bytes, poke, u32_at, u64_at};
use crate::privcmd::XenCtrl;

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
    if std::path::Path::new(crate::privcmd::PRIVCMD_PATH).exists()
        || std::path::Path::new(crate::privcmd::PRIVCMD_FALLBACK_PATH).exists()
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
