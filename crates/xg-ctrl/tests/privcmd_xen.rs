//! The privcmd backend against a real Xen. Every test needs `/dev/xen/privcmd` and root
//! in dom0, so they are ignored by default; run them inside the Xen-in-QEMU fixture
//! with `cargo test -p xg-ctrl --test privcmd_xen -- --ignored`.

use xg_ctrl::{DomId, DomainOps, HostOps, XenCtrl};

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn reads_version_and_host() {
    let xc = XenCtrl::open().unwrap();
    let v = xc.xen_version().unwrap();
    assert!(v.major >= 4, "{v:?}");
    assert!(v.capabilities.contains("x86_64"), "{v:?}");
    let p = xc.physinfo().unwrap();
    assert!(p.nr_cpus >= 1 && p.total_pages > 0, "{p:?}");
    let n = xc.numainfo().unwrap();
    assert!(!n.nodes.is_empty());
    assert_eq!(n.distance.len(), n.nodes.len() * n.nodes.len());
}

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn dom0_info_and_missing_domain() {
    let xc = XenCtrl::open().unwrap();
    let info = xc.domain_info(DomId::DOM0).unwrap();
    assert_eq!(info.domid, DomId::DOM0);
    assert!(info.tot_pages > 0);
    let err = xc.domain_info(DomId(0x7FEF)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ESRCH));
}
