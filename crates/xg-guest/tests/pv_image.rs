//! The 64-bit PV image on the simulator: meminit_pv with machine frames, then the
//! p2m list, start info, page tables (walked), shared info, vCPU, pin and grant seed read
//! back by machine frame.

use xg_ctrl::sim::Simulator;
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, GuestMemory, Mfn, PvOps};
use xg_guest::kernel::test_kernel::{
    test_pv_kernel, test_pv_kernel_code, TEST_PV_HYPERCALL_PAGE, TEST_PV_VIRT_BASE,
};
use xg_guest::kernel::{open_kernel, KernelElf};
use xg_guest::pv::check::pv_kernel;
use xg_guest::pv::image::{
    build_pv_image, meminit_pv, shared_info_bytes, PvImageError, PvImageInputs, PvImageOutcome,
    PvMemory,
};
use xg_guest::pv::layout::PROT_UPPER;
use xg_guest::pv::vcpu::{regs, CTRLREG, USER_REGS};

const D: DomId = DomId(1);

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn pv_sim(mib: u64) -> Simulator {
    let hv = Simulator::default();
    let cfg = DomainConfig {
        hvm: false,
        hap: false,
        max_vcpus: 2,
        ..DomainConfig::default()
    };
    assert_eq!(hv.create_domain(D, &cfg).unwrap(), D);
    hv.set_max_mem(D, mib << 10).unwrap();
    hv
}

fn build(hv: &Simulator, mib: u64, ramdisk: Option<&[u8]>) -> (PvMemory, PvImageOutcome) {
    let (bytes, _) = open_kernel(&test_pv_kernel(), 1 << 30).unwrap();
    let elf = KernelElf::parse(bytes).unwrap();
    let kernel = pv_kernel(&elf).unwrap();
    let mem = meminit_pv(hv, D, mib << 8).unwrap();
    let inputs = PvImageInputs {
        elf: &elf,
        kernel,
        ramdisk,
        cmdline: Some("console=hvc0 root=/dev/xvda1".into()),
        flags: 0,
        console_evtchn: 2,
        store_evtchn: 1,
        console_domid: DomId(0),
        store_domid: DomId(0),
    };
    let out = build_pv_image(hv, D, &inputs, &mem.p2m).unwrap();
    (mem, out)
}

fn page(hv: &Simulator, mfn: u64) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    hv.read_machine(D, &[Mfn(mfn)], 0, &mut b).unwrap();
    b
}

/// Walks the four levels from `l4_mfn` for `va`; returns the final mfn.
fn walk(hv: &Simulator, l4_mfn: u64, va: u64) -> u64 {
    let mut mfn = l4_mfn;
    for level in (0..4).rev() {
        let idx = usize::try_from((va >> (12 + 9 * level)) & 511).unwrap();
        let e = u64_at(&page(hv, mfn), idx * 8);
        assert_ne!(e & 1, 0, "va {va:#x} not present at level {}", level + 1);
        if level > 0 {
            assert_eq!(e & 0xFFF, PROT_UPPER);
        }
        mfn = (e >> 12) & ((1 << 40) - 1);
    }
    mfn
}

#[test]
fn meminit_uses_superpages_and_returns_machine_frames() {
    let hv = pv_sim(33);
    let mem = meminit_pv(&hv, D, 33 << 8).unwrap();
    assert_eq!(mem.superpages, 16);
    assert_eq!(mem.small_pages, 256);
    assert_eq!(mem.p2m.len(), 33 << 8);
    for (pfn, &mfn) in mem.p2m.iter().enumerate() {
        let pfn = u64::try_from(pfn).unwrap();
        assert_eq!(hv.mfn_of(D, Gfn(pfn)), Some(mfn), "pfn {pfn:#x}");
    }
    assert_eq!(hv.pv_state(D).unwrap().address_size, Some(64));
}

#[test]
fn meminit_short_memory_fails() {
    let hv = pv_sim(4);
    let e = meminit_pv(&hv, D, 5 << 8).unwrap_err();
    assert!(matches!(e, PvImageError::Populate { .. }), "{e:?}");
    assert!(matches!(meminit_pv(&hv, D, 0), Err(PvImageError::NoMemory)));
}

#[test]
fn image_reads_back() {
    let hv = pv_sim(64);
    let ramdisk: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let (mem, out) = build(&hv, 64, Some(&ramdisk));
    let p2m = &mem.p2m;
    let l = &out.layout;
    let mfn = |pfn: u64| p2m[usize::try_from(pfn).unwrap()];

    // Kernel code at the kernel's first frame.
    let code = test_pv_kernel_code();
    assert_eq!(&page(&hv, mfn(l.kernel.pfn))[..code.len()], &code[..]);
    // The ramdisk.
    let rd = l.ramdisk.as_ref().unwrap();
    let mfns: Vec<Mfn> = (rd.pfn..rd.pfn + rd.pages).map(|p| Mfn(mfn(p))).collect();
    let mut back = vec![0u8; ramdisk.len()];
    hv.read_machine(D, &mfns, 0, &mut back).unwrap();
    assert_eq!(back, ramdisk);

    // The p2m list, read by guest frame.
    let mut list = vec![0u8; p2m.len() * 8];
    hv.read_guest(D, l.p2m.pfn << 12, &mut list).unwrap();
    for (i, m) in p2m.iter().enumerate() {
        assert_eq!(u64_at(&list, i * 8), *m);
    }

    // Start info.
    let si = page(&hv, mfn(l.start_info_pfn));
    assert_eq!(&si[..15], b"xen-3.0-x86_64\0");
    assert_eq!(u64_at(&si, 32), 64 << 8, "nr_pages");
    assert_eq!(u64_at(&si, 40), out.shared_info_mfn << 12);
    assert_eq!(u64_at(&si, 56), mfn(l.xenstore_pfn), "store_mfn");
    assert_eq!(u64_at(&si, 64) & 0xFFFF_FFFF, 1, "store_evtchn");
    assert_eq!(u64_at(&si, 72), mfn(l.console_pfn), "console mfn");
    assert_eq!(u64_at(&si, 80) & 0xFFFF_FFFF, 2, "console_evtchn");
    assert_eq!(u64_at(&si, 88), l.pgtables.vstart, "pt_base");
    assert_eq!(u64_at(&si, 96), l.pgtables.pages, "nr_pt_frames");
    assert_eq!(u64_at(&si, 104), l.p2m.vstart, "mfn_list");
    assert_eq!(u64_at(&si, 112), rd.vstart, "mod_start");
    assert_eq!(u64_at(&si, 120), 10_000, "mod_len");
    assert_eq!(&si[128..157], b"console=hvc0 root=/dev/xvda1\0");
    assert_eq!(out.store_mfn, mfn(l.xenstore_pfn));
    assert_eq!(out.console_mfn, mfn(l.console_pfn));

    // Page tables: every page of the initial mapping translates to its frame, and the
    // tables themselves are mapped read-only.
    assert_eq!(out.l4_mfn, mfn(l.pgtables.pfn));
    for pfn in (0..l.pfn_alloc_end).step_by(7) {
        assert_eq!(walk(&hv, out.l4_mfn, l.virt_base + (pfn << 12)), mfn(pfn));
    }
    let l1 = l.maps[0].lvls[0];
    let va = l.pgtables.vstart;
    let idx = usize::try_from((va >> 12) & 511).unwrap();
    let pte = u64_at(&page(&hv, mfn(l1.pfn)), idx * 8);
    assert_eq!(pte & 0x2, 0, "page tables are mapped read-only");
    assert_eq!(walk(&hv, out.l4_mfn, TEST_PV_VIRT_BASE), mfn(0));

    // bootlate: pin, shared info, vCPU, hypercall page.
    let st = hv.pv_state(D).unwrap();
    assert_eq!(st.pinned, vec![(3, out.l4_mfn)]);
    assert_eq!(&st.shared_info[..3136], &shared_info_bytes()[..]);
    assert_eq!(st.shared_info[1], 1);
    assert_eq!(st.shared_info[64 + 1], 1);
    let hyper = mfn((TEST_PV_HYPERCALL_PAGE - TEST_PV_VIRT_BASE) >> 12);
    assert_eq!(st.hypercall_page, Some(hyper));
    assert_eq!(out.hypercall_mfn, Some(hyper));
    let ctx = &st.vcpu_contexts[&0];
    assert_eq!(ctx.len(), 5168);
    assert_eq!(u64_at(ctx, USER_REGS + regs::RIP), TEST_PV_VIRT_BASE);
    assert_eq!(
        u64_at(ctx, USER_REGS + regs::RSI),
        l.virt_base + (l.start_info_pfn << 12)
    );
    assert_eq!(u64_at(ctx, CTRLREG + 3 * 8), out.l4_mfn << 12);

    // Grant entries name machine frames.
    let mut g = [0u8; 16];
    hv.read_grant_table(D, 0, &mut g).unwrap();
    assert_eq!(
        u64::from(u32::from_le_bytes(g[4..8].try_into().unwrap())),
        out.console_mfn & 0xFFFF_FFFF
    );
    assert_eq!(
        u64::from(u32::from_le_bytes(g[12..16].try_into().unwrap())),
        out.store_mfn & 0xFFFF_FFFF
    );
    hv.check_invariants().unwrap();
}

#[test]
fn image_without_ramdisk_and_layout_snapshot() {
    let hv = pv_sim(32);
    let (_, out) = build(&hv, 32, None);
    assert!(out.layout.ramdisk.is_none());
    let si = page(&hv, out.start_info.store_mfn);
    assert!(si.iter().all(|&b| b == 0), "xenstore page is zeroed");
    insta::assert_snapshot!("pv_layout_32m", out.layout.to_string());
}

#[test]
fn machine_access_outside_the_domain_fails() {
    let hv = pv_sim(8);
    meminit_pv(&hv, D, 8 << 8).unwrap();
    assert!(hv.write_machine(D, &[Mfn(1)], 0, b"x").is_err());
    assert!(hv.pin_table(D, 3, Mfn(1)).is_err());
    // HVM domains have no PV operations.
    let hvm = DomId(2);
    hv.create_domain(hvm, &DomainConfig::default()).unwrap();
    assert!(hv.set_address_size(hvm, 64).is_err());
}
