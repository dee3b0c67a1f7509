//! The derives and impls the generator asks bindgen for, exercised on real types.

use xg_sys::*;

#[test]
fn default_is_all_zero() {
    let domctl = xen_domctl::default();
    assert_eq!(domctl.cmd, 0);
    assert_eq!(domctl.domain, 0);
    // SAFETY: every variant of the union is plain data; reading the bytes of a zeroed
    // union through one of them is defined.
    let handle = unsafe { domctl.u.getdomaininfo.handle };
    assert_eq!(handle, [0u8; 16]);
    assert_eq!(xen_memory_reservation::default().nr_extents, 0);
    assert!(xen_memory_reservation::default().extent_start.p.is_null());
}

#[test]
fn debug_of_a_struct_with_a_union_names_its_fields() {
    let domctl = xen_domctl {
        cmd: XEN_DOMCTL_getdomaininfo,
        interface_version: XEN_DOMCTL_INTERFACE_VERSION,
        domain: 7,
        ..Default::default()
    };
    let text = format!("{domctl:?}");
    assert!(text.contains("cmd: 5"), "{text}");
    assert!(text.contains("interface_version: 21"), "{text}");
    assert!(text.contains("domain: 7"), "{text}");
}

#[test]
fn plain_structs_compare_and_copy() {
    let a = xen_pod_target {
        target_pages: 1024,
        domid: DOMID_SELF,
        ..Default::default()
    };
    let b = a;
    assert_eq!(a, b);
    assert_ne!(a, xen_pod_target::default());
    let text = format!("{a:?}");
    assert!(text.contains("target_pages: 1024"), "{text}");
}
