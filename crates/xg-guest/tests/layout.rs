//! The HVM/PVH layout against the xenguest spec's test vectors T1-T11, its invariants,
//! the fatal paths, and the vNUMA range builder.

use proptest::prelude::*;
use xg_ctrl::{e820, E820Entry};
use xg_guest::layout::{
    default_vmemranges, even_vnode_split_mib, hvm_layout, pvh_layout, vnuma_vmemranges, AcpiModule,
    HvmLayoutInput, LayoutError, RmrrEntry, VmemRange,
};

const G: u64 = 1 << 30;

fn ram(addr: u64, size: u64) -> E820Entry {
    E820Entry {
        addr,
        size,
        kind: e820::RAM,
    }
}
fn res(addr: u64, size: u64) -> E820Entry {
    E820Entry {
        addr,
        size,
        kind: e820::RESERVED,
    }
}
fn acpi(addr: u64, size: u64) -> E820Entry {
    E820Entry {
        addr,
        size,
        kind: e820::ACPI,
    }
}

fn input(mem: u64) -> HvmLayoutInput {
    HvmLayoutInput {
        mem_max_mib: mem,
        mem_start_mib: mem,
        ..HvmLayoutInput::default()
    }
}

/// (name, input, mmio_total, mmio_size, mmio_start, lowmem_end, highmem_end, e820, vram)
#[allow(clippy::type_complexity)]
fn vectors() -> Vec<(
    &'static str,
    HvmLayoutInput,
    u64,
    u64,
    u64,
    u64,
    u64,
    Vec<E820Entry>,
    Option<u64>,
)> {
    vec![
        (
            "T1",
            input(1024),
            0x1000_0000,
            0x1000_0000,
            0xF000_0000,
            0x4000_0000,
            0x1_0000_0000,
            vec![ram(0x10_0000, 0x3FF0_0000)],
            None,
        ),
        (
            "T2",
            input(3840),
            0x1000_0000,
            0x1000_0000,
            0xF000_0000,
            0xF000_0000,
            0x1_0000_0000,
            vec![ram(0x10_0000, 0xEFF0_0000)],
            None,
        ),
        (
            "T3",
            input(4096),
            0x1000_0000,
            0x1000_0000,
            0xF000_0000,
            0xF000_0000,
            0x1_1000_0000,
            vec![ram(0x10_0000, 0xEFF0_0000), ram(0x1_0000_0000, 0x1000_0000)],
            None,
        ),
        (
            "T4",
            input(16384),
            0x1000_0000,
            0x1000_0000,
            0xF000_0000,
            0xF000_0000,
            0x4_1000_0000,
            vec![
                ram(0x10_0000, 0xEFF0_0000),
                ram(0x1_0000_0000, 0x3_1000_0000),
            ],
            None,
        ),
        (
            "T5",
            HvmLayoutInput {
                vgpu: true,
                ..input(8192)
            },
            0x2000_0000,
            0x2000_0000,
            0xE000_0000,
            0xE000_0000,
            0x2_2000_0000,
            vec![
                ram(0x10_0000, 0xDFF0_0000),
                ram(0x1_0000_0000, 0x1_2000_0000),
                res(0xFB00_0000, 0x100_0000),
            ],
            Some(0xFB00_0000),
        ),
        (
            "T6",
            HvmLayoutInput {
                pci_bar_total: 0x1308_0000,
                ..input(4096)
            },
            0x2308_0000,
            0x4000_0000,
            0xC000_0000,
            0xC000_0000,
            0x1_4000_0000,
            vec![ram(0x10_0000, 0xBFF0_0000), ram(0x1_0000_0000, 0x4000_0000)],
            None,
        ),
        (
            "T7",
            HvmLayoutInput {
                pci_bar_total: 0x3000_0000,
                vgpu: true,
                ..input(4096)
            },
            0x5000_0000,
            0x8000_0000,
            0x8000_0000,
            0x8000_0000,
            0x1_8000_0000,
            vec![
                ram(0x10_0000, 0x7FF0_0000),
                ram(0x1_0000_0000, 0x8000_0000),
                res(0xFB00_0000, 0x100_0000),
            ],
            Some(0xFB00_0000),
        ),
        (
            "T8",
            HvmLayoutInput {
                pci_bar_total: 0x2_0000_0000,
                ..input(4096)
            },
            0x2_1000_0000,
            0x8000_0000,
            0x8000_0000,
            0x8000_0000,
            0x1_8000_0000,
            vec![ram(0x10_0000, 0x7FF0_0000), ram(0x1_0000_0000, 0x8000_0000)],
            None,
        ),
        (
            "T9",
            HvmLayoutInput {
                pci_bar_total: 0x0100_0000,
                mxgpu: true,
                ..input(4096)
            },
            0x1100_0000,
            0x8000_0000,
            0x8000_0000,
            0x8000_0000,
            0x1_8000_0000,
            vec![ram(0x10_0000, 0x7FF0_0000), ram(0x1_0000_0000, 0x8000_0000)],
            None,
        ),
        (
            "T10",
            HvmLayoutInput {
                pci_bar_total: 0x1000,
                rmrr: vec![vec![RmrrEntry {
                    start_pfn: 0xBF800,
                    nr_pages: 0x800,
                }]],
                ..input(4096)
            },
            0x1000_1000,
            0x4080_0000,
            0xBF80_0000,
            0xBF80_0000,
            0x1_4080_0000,
            vec![
                ram(0x10_0000, 0xBF70_0000),
                res(0xBF80_0000, 0x80_0000),
                ram(0x1_0000_0000, 0x4080_0000),
            ],
            None,
        ),
    ]
}

#[test]
fn spec_vectors_t1_to_t10() {
    for (name, inp, total, size, start, low, high, map, vram) in vectors() {
        let l = hvm_layout(&inp).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(l.mmio_total, total, "{name} mmio_total");
        assert_eq!(l.mmio_size, size, "{name} mmio_size");
        assert_eq!(l.mmio_start, start, "{name} mmio_start");
        assert_eq!(l.lowmem_end, low, "{name} lowmem_end");
        assert_eq!(l.highmem_end, high, "{name} highmem_end");
        assert_eq!(l.e820, map, "{name} e820");
        assert_eq!(l.vram_reserved_addr, vram, "{name} vram");
        check_invariants(&inp, &l);
    }
}

fn check_invariants(inp: &HvmLayoutInput, l: &xg_guest::layout::HvmLayout) {
    let high = l.highmem_end.saturating_sub(1 << 32);
    assert_eq!(
        l.lowmem_end + high,
        inp.mem_max_mib << 20,
        "RAM is preserved"
    );
    let before_rmrr = l.mmio_size - l.rmrr_overlap;
    assert!(before_rmrr.is_power_of_two() && (1 << 28..=1 << 31).contains(&before_rmrr));
    assert_eq!(l.mmio_start + l.mmio_size, 1 << 32);
    assert_eq!(l.target_pages, inp.mem_start_mib * 256);
    assert_eq!(l.is_pod(), inp.mem_start_mib < inp.mem_max_mib);
    let ram: u64 = l
        .e820
        .iter()
        .filter(|e| e.kind == e820::RAM)
        .map(|e| e.size)
        .sum();
    assert_eq!(
        ram + 0x10_0000,
        inp.mem_max_mib << 20,
        "e820 RAM + the first MiB"
    );
}

#[test]
fn t11_pvh() {
    let modules = [
        AcpiModule {
            guest_addr: 0xF_FFC0,
            length: 64,
        },
        AcpiModule {
            guest_addr: 0xFC00_0000,
            length: 4096,
        },
        AcpiModule {
            guest_addr: 0xFC00_1000,
            length: 3 * 4096,
        },
        AcpiModule {
            guest_addr: 0xFC01_0000,
            length: 0,
        },
    ];
    let l = pvh_layout(4096, 2048, &modules).unwrap();
    assert_eq!((l.mmio_size, l.mmio_start), (0x1000_0000, 0xF000_0000));
    assert_eq!((l.lowmem_end, l.highmem_end), (0xF000_0000, 0x1_1000_0000));
    assert_eq!((l.total_pages, l.target_pages), (4096 << 8, 2048 << 8));
    assert_eq!(
        l.e820,
        vec![
            ram(0, 0xF000_0000),
            acpi(0xFF000, 0x1000),
            acpi(0xFC00_0000, 0x1000),
            acpi(0xFC00_1000, 0x3000),
            ram(0x1_0000_0000, 0x1000_0000),
        ]
    );
    let small = pvh_layout(1024, 1024, &[]).unwrap();
    assert_eq!(small.e820, vec![ram(0, 0x4000_0000)]);
    assert_eq!(small.highmem_end, 1 << 32);
}

#[test]
fn fatal_paths() {
    let many = (0..128)
        .map(|i| {
            vec![RmrrEntry {
                start_pfn: 0xF0000 + i,
                nr_pages: 1,
            }]
        })
        .collect();
    assert_eq!(
        hvm_layout(&HvmLayoutInput {
            rmrr: many,
            ..input(4096)
        }),
        Err(LayoutError::TooManyRmrrDevices { limit: 128 })
    );
    // 124 devices are fine; empty device lists do not count.
    let ok: Vec<Vec<RmrrEntry>> = (0..124)
        .map(|i| {
            vec![RmrrEntry {
                start_pfn: 0xF0000 + i,
                nr_pages: 1,
            }]
        })
        .chain(std::iter::repeat_with(Vec::new).take(10))
        .collect();
    let l = hvm_layout(&HvmLayoutInput {
        rmrr: ok,
        ..input(2048)
    })
    .unwrap();
    assert_eq!(l.e820.len(), 125);
    // 125 entries fill the e820 (E820MAX - 2 with the low RAM entry).
    let entries = (0..125)
        .map(|i| RmrrEntry {
            start_pfn: 0xF0000 + i,
            nr_pages: 1,
        })
        .collect();
    assert_eq!(
        hvm_layout(&HvmLayoutInput {
            rmrr: vec![entries],
            ..input(2048)
        }),
        Err(LayoutError::TooManyE820Entries)
    );
    let entries = (0..124)
        .map(|i| RmrrEntry {
            start_pfn: 0xF0000 + i,
            nr_pages: 1,
        })
        .collect();
    assert!(hvm_layout(&HvmLayoutInput {
        rmrr: vec![entries],
        ..input(2048)
    })
    .is_ok());
    // vGPU with the whole hole taken by RMRRs.
    let blocker = vec![vec![RmrrEntry {
        start_pfn: 0xE0000,
        nr_pages: 0x1C000,
    }]];
    assert_eq!(
        hvm_layout(&HvmLayoutInput {
            vgpu: true,
            rmrr: blocker,
            ..input(2048)
        }),
        Err(LayoutError::VramReservedRegion)
    );
    assert_eq!(hvm_layout(&input(0)), Err(LayoutError::ZeroMemory));
    let low = vec![vec![RmrrEntry {
        start_pfn: 0x80,
        nr_pages: 1,
    }]];
    assert!(matches!(
        hvm_layout(&HvmLayoutInput {
            rmrr: low,
            ..input(1024)
        }),
        Err(LayoutError::RmrrBelowLowRam { .. })
    ));
}

#[test]
fn vram_slot_moves_below_an_rmrr() {
    let rmrr = vec![vec![RmrrEntry {
        start_pfn: 0xFB800,
        nr_pages: 0x10,
    }]];
    let l = hvm_layout(&HvmLayoutInput {
        vgpu: true,
        rmrr,
        ..input(2048)
    })
    .unwrap();
    assert_eq!(l.vram_reserved_addr, Some(0xFA00_0000));
    assert_eq!(l.e820.last(), Some(&res(0xFA00_0000, 0x100_0000)));
}

#[test]
fn default_ranges() {
    assert_eq!(
        default_vmemranges(0xF000_0000, 0x1_1000_0000),
        vec![
            VmemRange {
                start: 0,
                end: 0xF000_0000,
                flags: 0,
                nid: 0
            },
            VmemRange {
                start: 1 << 32,
                end: 0x1_1000_0000,
                flags: 0,
                nid: 0
            },
        ]
    );
    assert_eq!(default_vmemranges(G, 1 << 32).len(), 1);
    assert_eq!(default_vmemranges(G, 0).len(), 1);
}

#[test]
fn vnuma_ranges_skip_the_hole() {
    // 8 GiB over 2 vnodes, default hole: node 0 gets 3.75 GiB low + 0.25 GiB high.
    let split = even_vnode_split_mib(8192, 2);
    assert_eq!(split, vec![4096, 4096]);
    let r = vnuma_vmemranges(&split, 0xF000_0000, 0xF000_0000, 0x1000_0000).unwrap();
    assert_eq!(
        r,
        vec![
            VmemRange {
                start: 0,
                end: 0xF000_0000,
                flags: 0,
                nid: 0
            },
            VmemRange {
                start: 1 << 32,
                end: 0x1_1000_0000,
                flags: 0,
                nid: 0
            },
            VmemRange {
                start: 0x1_1000_0000,
                end: 0x2_1000_0000,
                flags: 0,
                nid: 1
            },
        ]
    );
    assert_eq!(even_vnode_split_mib(1001, 3), vec![333, 333, 335]);
    assert!(even_vnode_split_mib(5, 0).is_empty());
}

proptest! {
    #[test]
    fn layout_invariants(mem in 1u64..=2 << 20, start_frac in 0u64..=100, bars in 0u64..=0x3_0000_0000,
                         vgpu: bool, mxgpu: bool, rmrr_pfn in 0x100u64..0xFFFFF, rmrr_pages in 1u64..0x1000,
                         with_rmrr: bool) {
        let inp = HvmLayoutInput {
            mem_max_mib: mem,
            mem_start_mib: mem * start_frac / 100,
            pci_bar_total: bars,
            vgpu,
            mxgpu,
            rmrr: if with_rmrr { vec![vec![RmrrEntry { start_pfn: rmrr_pfn, nr_pages: rmrr_pages }]] } else { vec![] },
        };
        match hvm_layout(&inp) {
            Ok(l) => {
                check_invariants(&inp, &l);
                if mxgpu { prop_assert!(l.mmio_size >= 0x8000_0000); }
                if let Some(v) = l.vram_reserved_addr {
                    prop_assert!(v >= l.mmio_start && v + 0x100_0000 <= 0xFB00_0000 + 0x100_0000);
                }
            }
            Err(LayoutError::VramReservedRegion | LayoutError::RmrrBelowLowRam { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn vnuma_ranges_cover_each_node(mem in 1u64..=1 << 20, k in 1u32..=8, hole_mib in 1u64..=2048) {
        let mmio_start = (1u64 << 32) - (hole_mib << 20);
        let lowmem_end = (mem << 20).min(mmio_start);
        let split = even_vnode_split_mib(mem, k);
        let ranges = vnuma_vmemranges(&split, lowmem_end, mmio_start, hole_mib << 20).unwrap();
        for (nid, mib) in split.iter().enumerate() {
            let bytes: u64 = ranges.iter().filter(|r| r.nid as usize == nid).map(|r| r.end - r.start).sum();
            prop_assert_eq!(bytes, mib << 20);
        }
        for w in ranges.windows(2) {
            prop_assert!(w[0].end <= w[1].start);
        }
        for r in &ranges {
            prop_assert!(r.end <= mmio_start || r.start >= 1 << 32, "range in the hole: {:?}", r);
        }
    }
}
