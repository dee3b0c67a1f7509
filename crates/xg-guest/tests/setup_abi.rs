//! The byte offsets and numbers guest setup writes, checked against the generated Xen 4.17
//! ABI in xg-sys (bindgen output of Debian's headers).

use std::mem::{offset_of, size_of};

use xg_guest::{gnttab, hvm_info, special_pages, start_info, vcpu};
use xg_sys as x;

#[test]
fn hvm_hw_cpu_offsets() {
    use vcpu::cpu_off::*;
    assert_eq!(size_of::<x::hvm_hw_cpu>(), vcpu::CPU_LEN);
    let fields = [
        (RBX, offset_of!(x::hvm_hw_cpu, rbx)),
        (RIP, offset_of!(x::hvm_hw_cpu, rip)),
        (CR0, offset_of!(x::hvm_hw_cpu, cr0)),
        (DR6, offset_of!(x::hvm_hw_cpu, dr6)),
        (DR7, offset_of!(x::hvm_hw_cpu, dr7)),
        (CS_LIMIT, offset_of!(x::hvm_hw_cpu, cs_limit)),
        (DS_LIMIT, offset_of!(x::hvm_hw_cpu, ds_limit)),
        (ES_LIMIT, offset_of!(x::hvm_hw_cpu, es_limit)),
        (SS_LIMIT, offset_of!(x::hvm_hw_cpu, ss_limit)),
        (TR_LIMIT, offset_of!(x::hvm_hw_cpu, tr_limit)),
        (CS_BASE, offset_of!(x::hvm_hw_cpu, cs_base)),
        (DS_BASE, offset_of!(x::hvm_hw_cpu, ds_base)),
        (ES_BASE, offset_of!(x::hvm_hw_cpu, es_base)),
        (SS_BASE, offset_of!(x::hvm_hw_cpu, ss_base)),
        (TR_BASE, offset_of!(x::hvm_hw_cpu, tr_base)),
        (CS_ARBYTES, offset_of!(x::hvm_hw_cpu, cs_arbytes)),
        (DS_ARBYTES, offset_of!(x::hvm_hw_cpu, ds_arbytes)),
        (ES_ARBYTES, offset_of!(x::hvm_hw_cpu, es_arbytes)),
        (SS_ARBYTES, offset_of!(x::hvm_hw_cpu, ss_arbytes)),
        (TR_ARBYTES, offset_of!(x::hvm_hw_cpu, tr_arbytes)),
    ];
    for (ours, xen) in fields {
        assert_eq!(ours, xen);
    }
    assert_eq!(size_of::<x::hvm_save_descriptor>(), vcpu::DESCRIPTOR_SIZE);
    assert_eq!(size_of::<x::hvm_save_header>(), vcpu::HEADER_LEN);
    assert_eq!(size_of::<x::hvm_hw_mtrr>(), vcpu::MTRR_LEN);
    assert_eq!(
        offset_of!(x::hvm_hw_mtrr, msr_mtrr_def_type),
        vcpu::MTRR_DEF_TYPE_OFF
    );
}

#[test]
fn start_info_layout() {
    assert_eq!(
        size_of::<x::hvm_start_info>() as u64,
        start_info::START_INFO_SIZE
    );
    assert_eq!(
        size_of::<x::hvm_modlist_entry>() as u64,
        start_info::MODLIST_ENTRY_SIZE
    );
    assert_eq!(
        size_of::<x::hvm_memmap_table_entry>() as u64,
        start_info::MEMMAP_ENTRY_SIZE
    );
    assert_eq!(offset_of!(x::hvm_start_info, nr_modules), 12);
    assert_eq!(offset_of!(x::hvm_start_info, modlist_paddr), 16);
    assert_eq!(offset_of!(x::hvm_start_info, cmdline_paddr), 24);
    assert_eq!(offset_of!(x::hvm_start_info, rsdp_paddr), 32);
    assert_eq!(offset_of!(x::hvm_start_info, memmap_paddr), 40);
    assert_eq!(offset_of!(x::hvm_start_info, memmap_entries), 48);
    assert_eq!(offset_of!(x::hvm_modlist_entry, cmdline_paddr), 16);
    assert_eq!(offset_of!(x::hvm_memmap_table_entry, type_), 16);
    assert_eq!(x::XEN_HVM_START_MAGIC_VALUE, start_info::START_MAGIC);
}

#[test]
fn hvm_info_layout() {
    assert_eq!(size_of::<x::hvm_info_table>(), hvm_info::HVM_INFO_SIZE);
    let t = hvm_info::HvmInfoTable::libxenguest(0x1000_0000, 0x1_0000_0000).to_bytes();
    let u32_at = |o: usize| u32::from_le_bytes(t[o..o + 4].try_into().unwrap());
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    assert_eq!(sum, 0);
    assert_ne!(t[offset_of!(x::hvm_info_table, checksum)], 0);
    assert_eq!(&t[..8], b"HVM INFO");
    assert_eq!(u32_at(offset_of!(x::hvm_info_table, length)), 48);
    assert_eq!(t[offset_of!(x::hvm_info_table, apic_mode)], 1);
    assert_eq!(u32_at(offset_of!(x::hvm_info_table, nr_vcpus)), 1);
    assert_eq!(
        u32_at(offset_of!(x::hvm_info_table, low_mem_pgend)),
        0x10000
    );
    assert_eq!(
        u32_at(offset_of!(x::hvm_info_table, reserved_mem_pgstart)),
        0xfeff0
    );
    assert_eq!(
        u32_at(offset_of!(x::hvm_info_table, high_mem_pgend)),
        0x100000
    );
    assert_eq!(offset_of!(x::hvm_info_table, vcpu_online), 32);
    assert_eq!(u64::from(x::HVM_INFO_PFN), hvm_info::HVM_INFO_PFN);
    assert_eq!(u64::from(x::HVM_INFO_OFFSET), hvm_info::HVM_INFO_OFFSET);
}

#[test]
fn grant_entry_and_params() {
    assert_eq!(size_of::<x::grant_entry_v1>() as u64, gnttab::ENTRY_V1_SIZE);
    assert_eq!(offset_of!(x::grant_entry_v1, domid), 2);
    assert_eq!(offset_of!(x::grant_entry_v1, frame), 4);
    assert_eq!(x::GTF_permit_access, gnttab::GTF_PERMIT_ACCESS);
    assert_eq!(x::GNTTAB_RESERVED_CONSOLE, gnttab::RESERVED_CONSOLE);
    assert_eq!(x::GNTTAB_RESERVED_XENSTORE, gnttab::RESERVED_XENSTORE);

    use special_pages::param as p;
    let params = [
        (p::STORE_PFN, x::HVM_PARAM_STORE_PFN),
        (p::STORE_EVTCHN, x::HVM_PARAM_STORE_EVTCHN),
        (p::IOREQ_PFN, x::HVM_PARAM_IOREQ_PFN),
        (p::BUFIOREQ_PFN, x::HVM_PARAM_BUFIOREQ_PFN),
        (p::IDENT_PT, x::HVM_PARAM_IDENT_PT),
        (p::CONSOLE_PFN, x::HVM_PARAM_CONSOLE_PFN),
        (p::CONSOLE_EVTCHN, x::HVM_PARAM_CONSOLE_EVTCHN),
        (p::PAGING_RING_PFN, x::HVM_PARAM_PAGING_RING_PFN),
        (p::MONITOR_RING_PFN, x::HVM_PARAM_MONITOR_RING_PFN),
        (p::SHARING_RING_PFN, x::HVM_PARAM_SHARING_RING_PFN),
        (p::IOREQ_SERVER_PFN, x::HVM_PARAM_IOREQ_SERVER_PFN),
        (p::NR_IOREQ_SERVER_PAGES, x::HVM_PARAM_NR_IOREQ_SERVER_PAGES),
    ];
    for (ours, xen) in params {
        assert_eq!(ours, xen);
    }
}
