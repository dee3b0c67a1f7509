//! The pure part of the x86_64 PV builder: note checks, layout, page tables, start info.

use std::collections::HashMap;

use xg_guest::kernel::notes;
use xg_guest::kernel::test_kernel::Elf64Writer;
use xg_guest::kernel::{KernelElf, KernelError};
use xg_guest::pv::check::{pv_kernel, PvKernel};
use xg_guest::pv::layout::{page_tables, plan_pv, PvLayout, PAGE_RW};
use xg_guest::pv::start_info::{build_pv_start_info, PvStartInfo};

const VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;
const KVIRT: u64 = 0xFFFF_FFFF_8100_0000;

/// A Linux-like PV kernel: 6 MiB at physical 16 MiB, the usual notes.
fn linux_like(extra: &[(u32, &[u8])]) -> Vec<u8> {
    let mut w = Elf64Writer::new(KVIRT + 0x40)
        .load(KVIRT, 0x100_0000, &[0xCC; 0x2000], 0x5F_E000)
        .note("Xen", notes::GUEST_OS, b"linux\0")
        .note("Xen", notes::XEN_VERSION, b"xen-3.0\0")
        .note("Xen", notes::LOADER, b"generic\0")
        .note("Xen", notes::VIRT_BASE, &VIRT_BASE.to_le_bytes())
        .note("Xen", notes::PADDR_OFFSET, &0u64.to_le_bytes())
        .note("Xen", notes::ENTRY, &(KVIRT + 0x40).to_le_bytes())
        .note(
            "Xen",
            notes::HYPERCALL_PAGE,
            &(KVIRT + 0x1000).to_le_bytes(),
        )
        .note(
            "Xen",
            notes::FEATURES,
            b"!writable_page_tables|pae_pgdir_above_4gb\0",
        );
    for (t, d) in extra {
        w = w.note("Xen", *t, d);
    }
    w.build()
}

fn check(img: Vec<u8>) -> Result<PvKernel, KernelError> {
    pv_kernel(&KernelElf::parse(img)?)
}

#[test]
fn linux_like_kernel() {
    let k = check(linux_like(&[(
        notes::INIT_P2M,
        &0x80_0000_0000u64.to_le_bytes(),
    )]))
    .unwrap();
    assert_eq!(k.virt_base, VIRT_BASE);
    assert_eq!((k.kstart, k.kend), (KVIRT, KVIRT + 0x60_0000));
    assert_eq!(k.entry, KVIRT + 0x40);
    assert_eq!(k.hypercall_page, Some(KVIRT + 0x1000));
    assert_eq!(k.p2m_base, Some(0x80_0000_0000));
    assert_eq!(k.guest_type, "xen-3.0-x86_64");
}

#[test]
fn pv_note_errors() {
    let name = |r: Result<PvKernel, KernelError>| match r {
        Ok(_) => "accepted".to_owned(),
        Err(e) => format!("{e:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap()
            .to_owned(),
    };
    let only = |notes_: &[(u32, &[u8])]| {
        let mut w = Elf64Writer::new(KVIRT).load(KVIRT, 0x100_0000, &[0; 16], 0x1000);
        for (t, d) in notes_ {
            w = w.note("Xen", *t, d);
        }
        w.build()
    };
    let vb = VIRT_BASE.to_le_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no notes", only(&[]), "NoXenNotes"),
        (
            "not linux",
            only(&[(notes::GUEST_OS, b"plan9\0")]),
            "NotXenLoader",
        ),
        (
            "old xen",
            only(&[
                (notes::GUEST_OS, b"linux\0"),
                (notes::XEN_VERSION, b"xen-2.0\0"),
            ]),
            "XenVersion",
        ),
        (
            "paddr offset without virt base",
            only(&[
                (notes::GUEST_OS, b"linux\0"),
                (notes::XEN_VERSION, b"xen-3.0\0"),
                (notes::PADDR_OFFSET, &0u64.to_le_bytes()),
            ]),
            "PaddrOffsetWithoutVirtBase",
        ),
        (
            "entry outside",
            linux_like(&[(notes::ENTRY, &0x1000u64.to_le_bytes())]),
            "EntryOutOfBounds",
        ),
        (
            "p2m inside the kernel",
            linux_like(&[(notes::INIT_P2M, &(KVIRT + 0x1000).to_le_bytes())]),
            "P2mBaseInKernel",
        ),
        (
            "dom0 only",
            linux_like(&[(notes::FEATURES, b"!dom0\0")]),
            "Dom0Only",
        ),
        (
            "virt base above the kernel",
            only(&[
                (notes::GUEST_OS, b"linux\0"),
                (notes::XEN_VERSION, b"xen-3.0\0"),
                (notes::VIRT_BASE, &u64::MAX.to_le_bytes()),
            ]),
            "EntryOutOfBounds",
        ),
        ("good", linux_like(&[(notes::VIRT_BASE, &vb)]), "accepted"),
    ];
    for (what, img, want) in cases {
        assert_eq!(name(check(img)), want, "{what}");
    }
}

/// Walks the page tables like the MMU: va -> mfn.
fn walk(
    frames: &HashMap<u64, Vec<u64>>,
    m2p: &HashMap<u64, u64>,
    l4_pfn: u64,
    va: u64,
) -> Option<(u64, u64)> {
    let mut pfn = l4_pfn;
    for level in (0..4).rev() {
        let idx = usize::try_from((va >> (12 + 9 * level)) & 511).unwrap();
        let e = frames.get(&pfn)?[idx];
        if e & 1 == 0 {
            return None;
        }
        let mfn = (e & 0x000F_FFFF_FFFF_F000) >> 12;
        if level == 0 {
            return Some((mfn, e & 0xFFF));
        }
        pfn = *m2p.get(&mfn)?;
    }
    None
}

fn check_mapping(l: &PvLayout) {
    const MFN_BASE: u64 = 0x40_0000;
    let p2m: Vec<u64> = (0..l.p2m_size).map(|p| p + MFN_BASE).collect();
    let frames: HashMap<u64, Vec<u64>> = page_tables(l, &p2m).unwrap().into_iter().collect();
    let m2p: HashMap<u64, u64> = (0..l.p2m_size).map(|p| (p + MFN_BASE, p)).collect();
    let l4 = l.maps[0].lvls[3].pfn;
    assert_eq!(l4, l.pgtables.pfn, "L4 is the first page-table frame");
    let total_tables: u64 = l.maps.iter().map(|m| m.area.pgtables).sum();
    assert_eq!(frames.len(), usize::try_from(total_tables).unwrap());
    // The kernel mapping: every page of [virt_base, virt_pgtab_end) at its pfn.
    let mut va = l.virt_base;
    while va < l.virt_pgtab_end {
        let (mfn, prot) = walk(&frames, &m2p, l4, va).unwrap_or_else(|| panic!("{va:#x} unmapped"));
        let pfn = (va - l.virt_base) >> 12;
        assert_eq!(mfn, pfn + MFN_BASE, "{va:#x}");
        let is_table = pfn >= l.pgtables.pfn && pfn < l.pgtables.pfn + l.pgtables.pages;
        assert_eq!(prot & PAGE_RW == 0, is_table, "{va:#x} rw");
        va += 0x1000 * 7;
    }
    assert!(walk(&frames, &m2p, l4, l.virt_pgtab_end).is_none());
    // The separate p2m mapping, if any.
    if l.maps.len() == 2 {
        let m = &l.maps[1];
        assert_eq!(m.area.from, l.p2m.vstart);
        let mapped = (m.area.to - m.area.from + 1) >> 12;
        assert_eq!(mapped + m.area.pgtables, l.p2m.pages);
        for i in 0..mapped {
            let va = l.p2m.vstart + i * 0x1000;
            let (mfn, _) = walk(&frames, &m2p, l4, va).unwrap();
            assert_eq!(mfn, l.p2m.pfn + i + MFN_BASE, "p2m page {i}");
        }
    }
}

#[test]
fn layout_in_kernel_p2m() {
    let k = check(linux_like(&[])).unwrap();
    let l = plan_pv(&k, 512 << 8, Some(4 << 20)).unwrap();
    insta::assert_snapshot!("pv_layout_512m_ramdisk", l.to_string());
    assert_eq!(l.kernel.vstart, KVIRT);
    assert_eq!(l.kernel.pfn, 0x1000);
    assert_eq!(l.maps.len(), 1);
    check_mapping(&l);
}

#[test]
fn layout_with_init_p2m() {
    let k = check(linux_like(&[
        (notes::INIT_P2M, &0x80_0000_0000u64.to_le_bytes()),
        (notes::MOD_START_PFN, &1u32.to_le_bytes()),
    ]))
    .unwrap();
    let l = plan_pv(&k, 2048 << 8, Some(16 << 20)).unwrap();
    insta::assert_snapshot!("pv_layout_2g_init_p2m", l.to_string());
    assert_eq!(l.maps.len(), 2);
    assert_eq!(l.p2m.vstart, 0x80_0000_0000);
    // The unmapped ramdisk comes after the mapped area.
    let r = l.ramdisk.as_ref().unwrap();
    assert_eq!(r.vstart, l.virt_pgtab_end);
    check_mapping(&l);
}

#[test]
fn too_small_a_guest() {
    let k = check(linux_like(&[])).unwrap();
    assert!(plan_pv(&k, 0x800, None).is_err());
}

#[test]
fn start_info_bytes() {
    let b = build_pv_start_info(&PvStartInfo {
        magic: "xen-3.0-x86_64".into(),
        nr_pages: 0x20000,
        shared_info: 0x1234_5000,
        flags: 0,
        store_mfn: 0x4_1000,
        store_evtchn: 5,
        console_mfn: 0x4_1001,
        console_evtchn: 6,
        pt_base: KVIRT + 0x80_0000,
        nr_pt_frames: 6,
        mfn_list: KVIRT + 0x60_0000,
        mod_start: KVIRT + 0x70_0000,
        mod_len: 0x40_0000,
        cmdline: Some("root=/dev/xvda1 ro".into()),
        first_p2m_pfn: 0,
        nr_p2m_frames: 0,
    });
    assert_eq!(b.len(), 1168);
    assert_eq!(&b[..15], b"xen-3.0-x86_64\0");
    assert_eq!(u64::from_le_bytes(b[56..64].try_into().unwrap()), 0x4_1000);
    assert_eq!(u64::from_le_bytes(b[72..80].try_into().unwrap()), 0x4_1001);
    assert_eq!(&b[128..147], b"root=/dev/xvda1 ro\0");
    let long = build_pv_start_info(&PvStartInfo {
        cmdline: Some("x".repeat(5000)),
        ..Default::default()
    });
    assert_eq!(long[128 + 1022], b'x');
    assert_eq!(long[128 + 1023], 0, "cmdline truncated to 1023 bytes");
}

#[test]
fn vcpu_context_layout_matches_the_abi() {
    use std::mem::{offset_of, size_of};
    use xg_guest::pv::vcpu::*;
    type C = xg_sys::vcpu_guest_context;
    assert_eq!(size_of::<C>(), CONTEXT_SIZE);
    assert_eq!(offset_of!(C, flags), FLAGS);
    assert_eq!(offset_of!(C, user_regs), USER_REGS);
    assert_eq!(offset_of!(C, kernel_ss), KERNEL_SS);
    assert_eq!(offset_of!(C, kernel_sp), KERNEL_SP);
    assert_eq!(offset_of!(C, ctrlreg), CTRLREG);
    assert_eq!(offset_of!(C, debugreg), DEBUGREG);
    assert_eq!(size_of::<xg_sys::cpu_user_regs>(), 200);
    assert_eq!(size_of::<xg_sys::start_info>(), 1168);

    let k = check(linux_like(&[])).unwrap();
    let l = plan_pv(&k, 512 << 8, None).unwrap();
    let b = boot_context(&k, &l, 0x1234);
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(u64_at(USER_REGS + regs::RIP), KVIRT + 0x40);
    assert_eq!(
        u64_at(USER_REGS + regs::RSP),
        VIRT_BASE + ((l.bootstack_pfn + 1) << 12)
    );
    assert_eq!(
        u64_at(USER_REGS + regs::RSI),
        VIRT_BASE + (l.start_info_pfn << 12)
    );
    assert_eq!(u64_at(CTRLREG + 24), 0x1234 << 12);
    assert_eq!(u64_at(KERNEL_SP), u64_at(USER_REGS + regs::RSP));
    assert_eq!(u64_at(FLAGS), 0x24);
}
