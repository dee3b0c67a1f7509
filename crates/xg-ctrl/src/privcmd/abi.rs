//! The Xen 4.17 payload types this backend issues, from the generated `xg_sys` bindings,
//! plus the one toolstack-only struct (`e820entry` of xenctrl.h) that Xen's public
//! headers do not carry.
//!
//! Requests are built in zeroed hypercall buffers and filled field by field, so padding
//! bytes handed to Xen are always zero.

use std::mem::size_of;

use super::buffer::Pod;

pub(crate) use xg_sys::{
    evtchn_alloc_unbound, multicall_entry, physdev_pci_device, xen_cpuid_leaf, xen_domctl,
    xen_domctl__bindgen_ty_1, xen_foreign_memory_map, xen_hvm_param, xen_memory_reservation,
    xen_msr_entry, xen_pod_target, xen_reserved_device_memory, xen_reserved_device_memory_map,
    xen_sysctl, xen_sysctl__bindgen_ty_1, xen_sysctl_cputopo, xen_sysctl_meminfo,
};

/// `struct e820entry` of tools/include/xenctrl.h (packed, 20 bytes).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct E820Entry {
    pub(crate) addr: u64,
    pub(crate) size: u64,
    pub(crate) kind: u32,
}

// The flag the ops module names is the header's.
const _: () = assert!(crate::ops::rdm::ALL == xg_sys::XENMEM_RDM_ALL);

// The interface versions this crate announces are the ones of the generated headers.
const _: () = assert!(crate::ops::DOMCTL_INTERFACE_VERSION == xg_sys::XEN_DOMCTL_INTERFACE_VERSION);
const _: () = assert!(crate::ops::SYSCTL_INTERFACE_VERSION == xg_sys::XEN_SYSCTL_INTERFACE_VERSION);
// So are the getdomaininfo flags DomainInfo decodes.
const _: () = {
    use crate::ops::dominf;
    assert!(dominf::DYING == xg_sys::XEN_DOMINF_dying);
    assert!(dominf::HVM_GUEST == xg_sys::XEN_DOMINF_hvm_guest);
    assert!(dominf::SHUTDOWN == xg_sys::XEN_DOMINF_shutdown);
    assert!(dominf::PAUSED == xg_sys::XEN_DOMINF_paused);
    assert!(dominf::HAP == xg_sys::XEN_DOMINF_hap);
    assert!(dominf::SHUTDOWN_SHIFT == xg_sys::XEN_DOMINF_shutdownshift);
    assert!(dominf::SHUTDOWN_MASK == xg_sys::XEN_DOMINF_shutdownmask);
};

macro_rules! pod_sized {
    ($($ty:ty = $size:expr),* $(,)?) => {$(
        const _: () = assert!(size_of::<$ty>() == $size);
        // SAFETY: a repr(C) struct (or union) of integers, integer arrays, raw pointers
        // (guest handles) and further such members: every bit pattern, including all
        // zeroes, is a valid value.
        unsafe impl Pod for $ty {}
    )*};
}

pod_sized! {
    xen_domctl = 144,
    xen_sysctl = 136,
    multicall_entry = 64,
    xen_memory_reservation = 32,
    xen_pod_target = 40,
    xen_reserved_device_memory_map = 24,
    xen_reserved_device_memory = 16,
    xen_foreign_memory_map = 24,
    xen_hvm_param = 16,
    evtchn_alloc_unbound = 8,
    xen_cpuid_leaf = 24,
    xen_msr_entry = 16,
    xen_sysctl_meminfo = 16,
    xen_sysctl_cputopo = 12,
    E820Entry = 20,
}
