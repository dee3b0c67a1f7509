//! Guest setup against the simulator: everything read back from guest memory, HVM params,
//! the grant table and the HVM context after `build_image`.

mod setup_support;

use setup_support::*;
use xg_ctrl::sim::{FaultRule, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainOps, GuestMemory};
use xg_guest::elf::HvmFirmware;
use xg_guest::error::SetupError;
use xg_guest::firmware::builtin_test_firmware;
use xg_guest::hvm_info::{patch_hvm_info, read_hvm_info, HvmInfoTable, HVM_INFO_PADDR};
use xg_guest::setup::{build_image, check_image, plan_image, ModuleInput, SetupOutcome};
use xg_guest::special_pages::{param, special_pfn, CONSOLE_PFN, IDENT_PT_PFN, XENSTORE_PFN};
use xg_guest::start_info::START_MAGIC;
use xg_guest::vcpu::{cpu_off, records, TYPE_CPU};

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Every loadable segment is in guest memory at its physical address, bss zeroed.
fn assert_firmware_loaded(sim: &Simulator, image: &[u8]) {
    let fw = HvmFirmware::parse(image).unwrap();
    for seg in fw.segments() {
        let got = read(sim, seg.paddr, usize::try_from(seg.memsz).unwrap());
        let filesz = usize::try_from(seg.filesz).unwrap();
        assert_eq!(
            &got[..filesz],
            fw.file_bytes(seg),
            "segment {} bytes",
            seg.index
        );
        assert!(
            got[filesz..].iter().all(|b| *b == 0),
            "segment {} bss",
            seg.index
        );
    }
}

fn build(sim: &Simulator, image: &[u8]) -> SetupOutcome {
    build_image(sim, DOMID, &inputs(image)).unwrap()
}

#[test]
fn builtin_firmware_is_loaded_and_entered() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    check_image(&sim, &image).unwrap();
    let out = build(&sim, &image);
    assert_firmware_loaded(&sim, &image);

    // The boot vCPU starts at the entry with rbx = start info.
    let blob = sim.hvm_context(DOMID).unwrap();
    let cpu = records(&blob)
        .unwrap()
        .into_iter()
        .find(|r| r.typecode == TYPE_CPU && r.instance == 0)
        .unwrap();
    let c = &blob[cpu.offset..cpu.offset + cpu.length];
    assert_eq!(u64_at(c, cpu_off::RIP), 0x10_0000);
    assert_eq!(u64_at(c, cpu_off::RBX), out.start_info.paddr);
    assert_eq!(u64_at(c, cpu_off::CR0), 0x11);
    assert_eq!(u64_at(c, cpu_off::DR7), 0x400);
    assert_eq!(u32_at(c, cpu_off::CS_ARBYTES), 0xC9B);
    assert_eq!(u32_at(c, cpu_off::TR_LIMIT), 0x67);
}

#[test]
fn debian_hvmloader_segments_land_at_their_addresses() {
    let Ok(image) = std::fs::read(DEBIAN_HVMLOADER) else {
        eprintln!("skipped: {DEBIAN_HVMLOADER} not installed (package xen-utils-4.17)");
        return;
    };
    let sim = sim_with_guest(2);
    check_image(&sim, &image).unwrap();
    let out = build(&sim, &image);
    assert_eq!(out.plan.kernel.vstart, 0x10_0000);
    assert_eq!(out.plan.entry, 0x10_0000);
    assert_firmware_loaded(&sim, &image);
}

#[test]
fn special_pages_params_and_identity_table() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    let out = build(&sim, &image);
    assert_eq!(
        (out.special.console_pfn, out.special.xenstore_pfn),
        (CONSOLE_PFN, XENSTORE_PFN)
    );

    let expect = [
        (param::STORE_PFN, 0xfeffc),
        (param::BUFIOREQ_PFN, 0xfeffb),
        (param::IOREQ_PFN, 0xfeffd),
        (param::CONSOLE_PFN, 0xfefff),
        (param::PAGING_RING_PFN, 0xfeff8),
        (param::MONITOR_RING_PFN, 0xfeff9),
        (param::SHARING_RING_PFN, 0xfeffa),
        (param::IOREQ_SERVER_PFN, 0xfeff0),
        (param::NR_IOREQ_SERVER_PAGES, 8),
        (param::IDENT_PT, 0xfeffe000),
        (param::CONSOLE_EVTCHN, 3),
        (param::STORE_EVTCHN, 4),
    ];
    for (p, v) in expect {
        assert_eq!(sim.hvm_param(DOMID, p).unwrap(), v, "param {p}");
    }

    // All special and ioreq-server pages are zero, except the identity page table.
    for pfn in (0xfeff0..0xff000).filter(|p| *p != IDENT_PT_PFN) {
        assert!(
            read(&sim, pfn << 12, 4096).iter().all(|b| *b == 0),
            "pfn {pfn:#x}"
        );
    }
    let pt = read(&sim, IDENT_PT_PFN << 12, 4096);
    for i in 0..1024u32 {
        assert_eq!(
            u32_at(&pt, usize::try_from(i).unwrap() * 4),
            (i << 22) | 0xE7
        );
    }
    assert_eq!(special_pfn(6), IDENT_PT_PFN);
}

#[test]
fn hvm_info_table_and_xenguest_patch() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(4);
    let out = build(&sim, &image);
    let t = read_hvm_info(&sim, DOMID).unwrap();
    assert_eq!(Some(t), out.hvm_info);
    assert!(t.checksum_ok());
    assert_eq!(&t.signature, b"HVM INFO");
    assert_eq!((t.length, t.apic_mode, t.nr_vcpus), (48, 1, 1));
    assert_eq!(t.low_mem_pgend, 0x8000);
    assert_eq!(t.high_mem_pgend, 0x100000);
    assert_eq!(t.reserved_mem_pgstart, 0xfeff0);
    assert_eq!(t.vcpu_online, [0xFF; 16]);
    // The rest of page 0x9F is zero.
    let page = read(&sim, 0x9F000, 4096);
    assert!(page[..0x800].iter().all(|b| *b == 0));
    assert!(page[0x800 + 48..].iter().all(|b| *b == 0));

    let patched = patch_hvm_info(&sim, DOMID, 1, 4, 2).unwrap();
    let raw = read(&sim, HVM_INFO_PADDR, 48);
    assert_eq!(
        raw.iter().fold(0u8, |s, b| s.wrapping_add(*b)),
        0,
        "byte sum"
    );
    let back = HvmInfoTable::from_bytes(&raw.try_into().unwrap());
    assert_eq!(back, patched);
    assert_eq!(back.nr_vcpus, 4);
    assert_eq!(back.vcpu_online[0], 0x03);
    assert!(back.vcpu_online[1..].iter().all(|b| *b == 0));
}

#[test]
fn start_info_lists_firmware_and_ipxe() {
    let image = builtin_test_firmware();
    let ovmf: Vec<u8> = (0..3 * 4096 + 17u32)
        .map(|i| u8::try_from(i * 7 % 251).unwrap())
        .collect();
    let ipxe: Vec<u8> = (0..5000u32)
        .map(|i| u8::try_from(i % 13 + 1).unwrap())
        .collect();
    let sim = sim_with_guest(2);
    let mut inp = inputs(&image);
    inp.system_firmware = Some(&ovmf);
    inp.modules.push(ModuleInput {
        data: &ipxe,
        cmdline: Some("ipxe".into()),
    });
    let out = build_image(&sim, DOMID, &inp).unwrap();

    let si = read(&sim, out.start_info.paddr, out.start_info.bytes.len());
    assert_eq!(si, out.start_info.bytes);
    assert_eq!(u32_at(&si, 0), START_MAGIC);
    assert_eq!(u32_at(&si, 4), 1);
    assert_eq!(u32_at(&si, 12), 2, "nr_modules");
    let modlist = usize::try_from(u64_at(&si, 16) - out.start_info.paddr).unwrap();
    let names = [("firmware", &ovmf), ("ipxe", &ipxe)];
    for (i, (name, data)) in names.iter().enumerate() {
        let e = modlist + 32 * i;
        let (paddr, size, cmd) = (u64_at(&si, e), u64_at(&si, e + 8), u64_at(&si, e + 16));
        assert_eq!(size, u64::try_from(data.len()).unwrap());
        assert_eq!(&read(&sim, paddr, data.len()), *data, "{name} bytes");
        assert_eq!(
            read(&sim, cmd, name.len() + 1),
            [name.as_bytes(), &[0]].concat()
        );
        assert!(paddr + size <= MMIO_START);
    }
    // Firmware right after the kernel image, iPXE after it, start info last.
    let fw_seg = out.plan.system_firmware.as_ref().unwrap();
    assert_eq!(fw_seg.pfn, out.plan.kernel.pfn + out.plan.kernel.pages);
    assert_eq!(out.plan.modules[0].0.pfn, fw_seg.pfn + 4);
    assert_eq!(out.plan.start_info.pfn, out.plan.modules[0].0.pfn + 2);
}

#[test]
fn grant_entries_seeded() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    let mut inp = inputs(&image);
    inp.store_domid = DomId(3);
    build_image(&sim, DOMID, &inp).unwrap();
    let mut g = [0u8; 16];
    sim.read_grant_table(DOMID, 0, &mut g).unwrap();
    // {flags=GTF_permit_access, domid, frame}
    assert_eq!(g[..8], [1, 0, 0, 0, 0xff, 0xef, 0x0f, 0]);
    assert_eq!(g[8..], [1, 0, 3, 0, 0xfc, 0xef, 0x0f, 0]);
}

#[test]
fn setup_plan_and_trace_snapshots() {
    let image = builtin_test_firmware();
    let ipxe = vec![0x55u8; 4097];
    let sim = sim_with_guest(2);
    let traced = Traced::new(sim, TraceSink::new());
    let mut inp = inputs(&image);
    inp.modules.push(ModuleInput {
        data: &ipxe,
        cmdline: Some("ipxe".into()),
    });
    let out = build_image(&traced, DOMID, &inp).unwrap();
    insta::assert_snapshot!("setup_outcome", out.to_string());
    let trace: Vec<String> = traced
        .sink()
        .hypercalls()
        .iter()
        .map(|r| r.to_json_line())
        .collect();
    insta::assert_snapshot!("setup_trace", trace.join("\n"));
}

#[test]
fn plan_rejects_firmware_in_mmio_hole() {
    // A 64 KiB image at 0xEFFF0000 ends inside a hole starting at 0xF0000000.
    let image = xg_guest::firmware::Elf32Writer::new(0xEFFF_0000)
        .load(0xEFFF_0000, &[0xF4], 0x2_0000)
        .build();
    let fw = HvmFirmware::parse(&image).unwrap();
    let mut inp = inputs(&image);
    inp.total_pages = 1 << 20;
    assert!(matches!(
        plan_image(&fw, &inp),
        Err(SetupError::InMmioHole {
            end: 0xF001_0001,
            ..
        })
    ));
    // A system firmware module that would cross mmio_start is refused too.
    let image = builtin_test_firmware();
    let big = vec![1u8; 0x100_0000];
    let mut inp = inputs(&image);
    inp.mmio_start = 0x100_0000;
    inp.system_firmware = Some(&big);
    let fw = HvmFirmware::parse(&image).unwrap();
    assert!(matches!(
        plan_image(&fw, &inp),
        Err(SetupError::InMmioHole { .. })
    ));
}

#[test]
fn image_larger_than_guest_is_refused() {
    let image = builtin_test_firmware();
    let mut inp = inputs(&image);
    inp.total_pages = 0x100; // 1 MiB: only the padding below the image fits.
    let fw = HvmFirmware::parse(&image).unwrap();
    assert!(matches!(plan_image(&fw, &inp), Err(SetupError::Segment(_))));
}

#[test]
fn evtchn_param_failure_is_fatal() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    // Calls of set_hvm_param: 7 special + 2 ioreq + IDENT_PT = 10; CONSOLE_EVTCHN is 11th.
    sim.inject_fault(FaultRule {
        op: "set_hvm_param".into(),
        nth: 11,
        times: 1,
        errno: libc_einval(),
    })
    .unwrap();
    let err = build_image(&sim, DOMID, &inputs(&image)).unwrap_err();
    assert_eq!(err.to_string(), "Setting HVM_PARAM_CONSOLE_EVTCHN failed");
    match err {
        SetupError::Hypervisor { source, .. } => assert_eq!(source.errno(), Some(22)),
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn ignored_param_failure_does_not_stop_setup() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    sim.inject_fault(FaultRule {
        op: "set_hvm_param".into(),
        nth: 1,
        times: 1,
        errno: libc_einval(),
    })
    .unwrap();
    build_image(&sim, DOMID, &inputs(&image)).unwrap();
    assert_eq!(sim.hvm_param(DOMID, param::STORE_PFN).unwrap(), 0);
}

#[test]
fn special_page_population_failure_is_fatal() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(2);
    sim.inject_fault(FaultRule {
        op: "populate_physmap_exact".into(),
        nth: 2, // the first was the guest's RAM
        times: 1,
        errno: 12,
    })
    .unwrap();
    let err = build_image(&sim, DOMID, &inputs(&image)).unwrap_err();
    assert_eq!(err.to_string(), "Allocating special pages failed");
}

fn libc_einval() -> i32 {
    22
}

#[test]
fn without_device_model_pvh_style() {
    let image = builtin_test_firmware();
    let sim = sim_with_guest(3);
    let mut inp = inputs(&image);
    inp.device_model = false;
    inp.max_vcpus = 3;
    inp.cmdline = Some("console=hvc0 root=/dev/xvda1".into());
    let out = build_image(&sim, DOMID, &inp).unwrap();

    // No hvm_info page, no ioreq-server pages or params.
    assert_eq!(out.hvm_info, None);
    assert!(read(&sim, HVM_INFO_PADDR, 48).iter().all(|b| *b == 0));
    assert_eq!(sim.hvm_param(DOMID, param::IOREQ_SERVER_PFN).unwrap(), 0);
    assert!(
        sim.read_guest(DOMID, 0xfeff0 << 12, &mut [0u8; 8]).is_err(),
        "not populated"
    );

    // The kernel command line follows the start info, rounded up to 8 bytes.
    let si = read(&sim, out.start_info.paddr, out.start_info.bytes.len());
    assert_eq!(u64_at(&si, 24), out.start_info.paddr + 56);
    assert_eq!(&si[56..56 + 29], b"console=hvc0 root=/dev/xvda1\0");
    assert_eq!(u64_at(&si, 16), 0, "no modules");

    // Every vCPU got write-back MTRRs with the default type enabled.
    let blob = sim.hvm_context(DOMID).unwrap();
    let mtrrs: Vec<_> = records(&blob)
        .unwrap()
        .into_iter()
        .filter(|r| r.typecode == xg_guest::vcpu::TYPE_MTRR)
        .collect();
    assert_eq!(mtrrs.len(), 3);
    for r in mtrrs {
        let off = r.offset + xg_guest::vcpu::MTRR_DEF_TYPE_OFF;
        assert_eq!(u64_at(&blob, off), 0x806, "vCPU {}", r.instance);
    }
}
