//! The PVH image on the simulator: kernel, modules, ACPI tables, start info and vCPU,
//! read back from guest memory; ACPI table checksums and layout.

mod setup_support;

use setup_support::*;
use xg_ctrl::{DomainOps, E820Entry};
use xg_guest::acpi::{build_pvh_tables, AcpiConfig, INFO_ADDR, RSDP_ADDR, TABLES_ADDR};
use xg_guest::kernel::pvh::{build_pvh_image, PvhImageInputs, PvhModule};
use xg_guest::kernel::test_kernel::{test_pvh_kernel, TEST_KERNEL_BASE};
use xg_guest::kernel::{open_kernel, KernelElf};
use xg_guest::layout::pvh_layout;
use xg_guest::special_pages::{CONSOLE_PFN, XENSTORE_PFN};
use xg_guest::start_info::START_MAGIC;
use xg_guest::vcpu::{cpu_off, records, TYPE_CPU};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
}

/// Finds a table by its guest address in the arena.
fn table(tables: &[u8], addr: u64) -> &[u8] {
    let off = usize::try_from(addr - TABLES_ADDR).unwrap();
    let len = usize::try_from(u32_at(tables, off + 4)).unwrap();
    &tables[off..off + len]
}

#[test]
fn acpi_tables_are_linked_and_checksummed() {
    let t = build_pvh_tables(&AcpiConfig {
        nr_vcpus: 4,
        vcpus_online: 2,
        apic_mode: 1,
    })
    .unwrap();
    let names: Vec<&str> = t.placed.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["FACS", "DSDT", "FACP(1.0)", "FACP", "APIC", "XSDT", "RSDT"]
    );
    assert_eq!(t.placed[0].1, TABLES_ADDR, "FACS first, 64-byte aligned");
    assert_eq!(t.tables.len(), 4096);

    // RSDP: both checksums, pointers.
    let r = &t.rsdp;
    assert_eq!(&r[..8], b"RSD PTR ");
    assert_eq!(sum(&r[..20]), 0);
    assert_eq!(sum(&r[..36]), 0);
    assert_eq!(r[15], 2);
    let xsdt = table(&t.tables, u64_at(r, 24));
    let rsdt = table(&t.tables, u64::from(u32_at(r, 16)));
    assert_eq!(&xsdt[..4], b"XSDT");
    assert_eq!(&rsdt[..4], b"RSDT");
    assert_eq!(xsdt.len(), 36 + 16);
    assert_eq!(rsdt.len(), 36 + 8);
    for tb in [xsdt, rsdt] {
        assert_eq!(sum(tb), 0);
    }
    let fadt = table(&t.tables, u64_at(xsdt, 36));
    let fadt10 = table(&t.tables, u64::from(u32_at(rsdt, 36)));
    assert_eq!((&fadt[..4], fadt.len(), fadt[8]), (&b"FACP"[..], 268, 5));
    assert_eq!((fadt10.len(), fadt10[8]), (116, 1));
    assert_eq!(sum(fadt), 0);
    assert_eq!(sum(fadt10), 0);
    // table_flags = 0: no PM timer, buttons as fixed features absent, no VGA/CMOS RTC.
    assert_eq!(u32_at(fadt, 76), 0);
    assert_eq!(u32_at(fadt, 112) & 0x30, 0x30);
    assert_eq!(u16::from_le_bytes([fadt[109], fadt[110]]), 0x24);
    let dsdt = table(&t.tables, u64_at(fadt, 140));
    assert_eq!(&dsdt[..4], b"DSDT");
    assert_eq!(sum(dsdt), 0);
    assert_eq!(u64::from(u32_at(fadt, 36)), TABLES_ADDR);
    // Four Processor objects PR00..PR03.
    for n in ["PR00", "PR01", "PR02", "PR03"] {
        assert!(dsdt.windows(4).any(|w| w == n.as_bytes()), "{n}");
    }

    let madt = table(&t.tables, u64_at(xsdt, 44));
    assert_eq!(&madt[..4], b"APIC");
    assert_eq!(sum(madt), 0);
    assert_eq!(madt.len(), 44 + 4 * 8);
    assert_eq!(u32_at(madt, 36), 0xFEE0_0000);
    let lapics: Vec<(u8, u8, u32)> = (0..4)
        .map(|i| {
            (
                madt[44 + 8 * i + 2],
                madt[44 + 8 * i + 3],
                u32_at(madt, 44 + 8 * i + 4),
            )
        })
        .collect();
    assert_eq!(lapics, [(0, 0, 1), (1, 2, 1), (2, 4, 0), (3, 6, 0)]);
    // acpi_info: nr_cpus and the MADT pointers.
    assert_eq!(u16::from_le_bytes([t.info[2], t.info[3]]), 4);
    assert_eq!(u64::from(u32_at(&t.info, 12)), u64_at(xsdt, 44) + 9);
    assert_eq!(u64::from(u32_at(&t.info, 16)), u64_at(xsdt, 44) + 44);
}

#[test]
fn one_vcpu_without_apic_has_no_madt() {
    let t = build_pvh_tables(&AcpiConfig {
        nr_vcpus: 1,
        vcpus_online: 1,
        apic_mode: 0,
    })
    .unwrap();
    assert!(!t.placed.iter().any(|p| p.0 == "APIC"));
    assert!(build_pvh_tables(&AcpiConfig {
        nr_vcpus: 129,
        vcpus_online: 1,
        apic_mode: 1
    })
    .is_err());
}

/// T11 of xenguest.md §7 (M = 4096) with the real ACPI module sizes.
#[test]
fn e820_t11() {
    let t = build_pvh_tables(&AcpiConfig {
        nr_vcpus: 2,
        vcpus_online: 2,
        apic_mode: 1,
    })
    .unwrap();
    let l = pvh_layout(4096, 4096, &t.modules()).unwrap();
    let e = |addr, size, kind| E820Entry { addr, size, kind };
    assert_eq!(
        l.e820,
        vec![
            e(0, 0xF000_0000, 1),
            e(0xFF000, 0x1000, 3),
            e(0xFC00_0000, 0x1000, 3),
            e(0xFC00_1000, 0x1000, 3),
            e(0x1_0000_0000, 0x1000_0000, 1),
        ]
    );
    assert_eq!(
        (l.mmio_start, l.lowmem_end, l.highmem_end),
        (0xF000_0000, 0xF000_0000, 0x1_1000_0000)
    );
}

#[test]
fn pvh_image_on_the_simulator() {
    let sim = sim_with_guest(2);
    let (bytes, _) = open_kernel(&test_pvh_kernel(), 1 << 30).unwrap();
    let elf = KernelElf::parse(bytes).unwrap();
    let kernel = elf.pvh().unwrap();
    let acpi = build_pvh_tables(&AcpiConfig {
        nr_vcpus: 2,
        vcpus_online: 2,
        apic_mode: 1,
    })
    .unwrap();
    let modules = vec![
        PvhModule {
            data: b"first module".to_vec(),
            cmdline: "one".into(),
        },
        PvhModule {
            data: vec![7u8; 5000],
            cmdline: String::new(),
        },
    ];
    let inputs = PvhImageInputs {
        elf: &elf,
        kernel,
        modules: &modules,
        acpi: acpi.module_data().to_vec(),
        total_pages: GUEST_PAGES,
        lowmem_end: GUEST_PAGES << 12,
        highmem_end: 1 << 32,
        mmio_start: MMIO_START,
        max_vcpus: 2,
        cmdline: Some("console=hvc0 earlyprintk=xen".into()),
        console_evtchn: 3,
        store_evtchn: 4,
        console_domid: xg_ctrl::DomId::DOM0,
        store_domid: xg_ctrl::DomId::DOM0,
    };
    let out = build_pvh_image(&sim, DOMID, &inputs).unwrap();
    insta::assert_snapshot!("pvh_image_outcome", out.to_string());
    assert_eq!(
        (out.special.xenstore_pfn, out.special.console_pfn),
        (XENSTORE_PFN, CONSOLE_PFN)
    );

    // Kernel bytes at 1 MiB, modules after it.
    let code = read(&sim, u64::from(TEST_KERNEL_BASE), 4);
    assert_eq!(code[0], 0xBE);
    assert_eq!(
        read(&sim, out.plan.modules[0].0.vstart, 12),
        b"first module"
    );
    // ACPI modules in place.
    assert_eq!(read(&sim, RSDP_ADDR, 36), acpi.rsdp[..36]);
    assert_eq!(read(&sim, INFO_ADDR, 64), acpi.info[..64]);
    assert_eq!(read(&sim, TABLES_ADDR, acpi.tables.len()), acpi.tables);
    assert_eq!(out.acpi_populated, vec![0xFC000, 0xFC001]);

    // Start info: magic, cmdline, RSDP, two modules with their command lines.
    let si = read(&sim, out.start_info.paddr, out.start_info.bytes.len());
    assert_eq!(si, out.start_info.bytes);
    assert_eq!(u32_at(&si, 0), START_MAGIC);
    assert_eq!(u32_at(&si, 12), 2);
    assert_eq!(u64_at(&si, 32), RSDP_ADDR);
    let cl = usize::try_from(u64_at(&si, 24) - out.start_info.paddr).unwrap();
    assert_eq!(&si[cl..cl + 29], b"console=hvc0 earlyprintk=xen\0");
    let ml = usize::try_from(u64_at(&si, 16) - out.start_info.paddr).unwrap();
    assert_eq!(u64_at(&si, ml), out.plan.modules[0].0.vstart);
    assert_eq!(u64_at(&si, ml + 8), 12);
    assert_eq!(u64_at(&si, ml + 32 + 8), 5000);
    let c0 = usize::try_from(u64_at(&si, ml + 16) - out.start_info.paddr).unwrap();
    assert_eq!(&si[c0..c0 + 4], b"one\0");
    insta::assert_snapshot!("pvh_start_info_bytes", hex(&si[..ml + 64]));

    // The boot vCPU enters the kernel with rbx = start info.
    let blob = sim.hvm_context(DOMID).unwrap();
    let cpu = records(&blob)
        .unwrap()
        .into_iter()
        .find(|r| r.typecode == TYPE_CPU && r.instance == 0)
        .unwrap();
    let body = &blob[cpu.offset..cpu.offset + cpu.length];
    assert_eq!(u64_at(body, cpu_off::RIP), u64::from(TEST_KERNEL_BASE));
    assert_eq!(u64_at(body, cpu_off::RBX), out.start_info.paddr);
}

#[test]
fn too_many_modules_for_the_start_info() {
    let sim = sim_with_guest(1);
    let (bytes, _) = open_kernel(&test_pvh_kernel(), 1 << 30).unwrap();
    let elf = KernelElf::parse(bytes).unwrap();
    let modules: Vec<PvhModule> = (0..3)
        .map(|i| PvhModule {
            data: vec![i; 10],
            cmdline: String::new(),
        })
        .collect();
    let inputs = PvhImageInputs {
        elf: &elf,
        kernel: elf.pvh().unwrap(),
        modules: &modules,
        acpi: Vec::new(),
        total_pages: GUEST_PAGES,
        lowmem_end: GUEST_PAGES << 12,
        highmem_end: 1 << 32,
        mmio_start: MMIO_START,
        max_vcpus: 1,
        cmdline: None,
        console_evtchn: 3,
        store_evtchn: 4,
        console_domid: xg_ctrl::DomId::DOM0,
        store_domid: xg_ctrl::DomId::DOM0,
    };
    let e = build_pvh_image(&sim, DOMID, &inputs).unwrap_err();
    assert!(
        matches!(
            e,
            xg_guest::error::SetupError::TooManyModules { count: 3, max: 2 }
        ),
        "{e:?}"
    );
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let h: Vec<String> = c.iter().map(|x| format!("{x:02x}")).collect();
            format!("{:04x}: {}", i * 16, h.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// At its memory limit the guest gives its last RAM frames to the ACPI tables, as
/// libxenguest's `populate_acpi_pages` does; the special pages then fail as in C.
#[test]
fn acpi_frames_come_from_the_end_of_ram_at_the_limit() {
    let sim = sim_with_guest(1);
    sim.set_max_mem(DOMID, GUEST_PAGES * 4).unwrap();
    let (bytes, _) = open_kernel(&test_pvh_kernel(), 1 << 30).unwrap();
    let elf = KernelElf::parse(bytes).unwrap();
    let acpi = build_pvh_tables(&AcpiConfig {
        nr_vcpus: 1,
        vcpus_online: 1,
        apic_mode: 1,
    })
    .unwrap();
    let inputs = PvhImageInputs {
        elf: &elf,
        kernel: elf.pvh().unwrap(),
        modules: &[],
        acpi: acpi.module_data().to_vec(),
        total_pages: GUEST_PAGES,
        lowmem_end: GUEST_PAGES << 12,
        highmem_end: 1 << 32,
        mmio_start: MMIO_START,
        max_vcpus: 1,
        cmdline: None,
        console_evtchn: 3,
        store_evtchn: 4,
        console_domid: xg_ctrl::DomId::DOM0,
        store_domid: xg_ctrl::DomId::DOM0,
    };
    let e = build_pvh_image(&sim, DOMID, &inputs).unwrap_err();
    assert!(
        matches!(e, xg_guest::error::SetupError::Hypervisor { .. }),
        "{e:?}"
    );
    assert_eq!(read(&sim, TABLES_ADDR, acpi.tables.len()), acpi.tables);
    assert_eq!(read(&sim, INFO_ADDR, 64), acpi.info[..64]);
    let mut buf = [0u8; 1];
    use xg_ctrl::GuestMemory;
    for gfn in [GUEST_PAGES - 1, GUEST_PAGES - 2] {
        assert!(
            sim.read_guest(DOMID, gfn << 12, &mut buf).is_err(),
            "frame {gfn:#x} given up"
        );
    }
    assert!(sim
        .read_guest(DOMID, (GUEST_PAGES - 3) << 12, &mut buf)
        .is_ok());
}
