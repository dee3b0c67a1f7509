//! The spec's test vectors T1-T10 (xenguest spec §7), each as a whole build on the
//! simulator: layout, e820 and the Xenstore writes, checked value by value and
//! snapshotted together.

mod common;

use std::fmt::Write;

use common::{layout_text, run, Dev, Scenario};
use xg_ctrl::e820::{RAM, RESERVED};

const G: u64 = 1 << 30;

struct Vector {
    name: &'static str,
    mem: u64,
    vgpu: bool,
    bars: &'static [u64],
    mxgpu: bool,
    rmrr: &'static [(u64, u64)],
    mmio_total: u64,
    hole: u64,
    mmio_start: u64,
    lowmem_end: u64,
    highmem_end: u64,
    e820: &'static [(u32, u64, u64)],
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "T1",
        mem: 1024,
        vgpu: false,
        bars: &[],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x1000_0000,
        hole: 0x1000_0000,
        mmio_start: 0xF000_0000,
        lowmem_end: 0x4000_0000,
        highmem_end: 0x1_0000_0000,
        e820: &[(RAM, 0x10_0000, 0x3FF0_0000)],
    },
    Vector {
        name: "T2",
        mem: 3840,
        vgpu: false,
        bars: &[],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x1000_0000,
        hole: 0x1000_0000,
        mmio_start: 0xF000_0000,
        lowmem_end: 0xF000_0000,
        highmem_end: 0x1_0000_0000,
        e820: &[(RAM, 0x10_0000, 0xEFF0_0000)],
    },
    Vector {
        name: "T3",
        mem: 4096,
        vgpu: false,
        bars: &[],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x1000_0000,
        hole: 0x1000_0000,
        mmio_start: 0xF000_0000,
        lowmem_end: 0xF000_0000,
        highmem_end: 0x1_1000_0000,
        e820: &[
            (RAM, 0x10_0000, 0xEFF0_0000),
            (RAM, 0x1_0000_0000, 0x1000_0000),
        ],
    },
    Vector {
        name: "T4",
        mem: 16384,
        vgpu: false,
        bars: &[],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x1000_0000,
        hole: 0x1000_0000,
        mmio_start: 0xF000_0000,
        lowmem_end: 0xF000_0000,
        highmem_end: 0x4_1000_0000,
        e820: &[
            (RAM, 0x10_0000, 0xEFF0_0000),
            (RAM, 0x1_0000_0000, 0x3_1000_0000),
        ],
    },
    Vector {
        name: "T5",
        mem: 8192,
        vgpu: true,
        bars: &[],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x2000_0000,
        hole: 0x2000_0000,
        mmio_start: 0xE000_0000,
        lowmem_end: 0xE000_0000,
        highmem_end: 0x2_2000_0000,
        e820: &[
            (RAM, 0x10_0000, 0xDFF0_0000),
            (RAM, 0x1_0000_0000, 0x1_2000_0000),
            (RESERVED, 0xFB00_0000, 0x100_0000),
        ],
    },
    Vector {
        name: "T6",
        mem: 4096,
        vgpu: false,
        bars: &[0x100_0000, 0x1000_0000, 0x200_0000, 0, 0, 0, 0x8_0000],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x2308_0000,
        hole: 0x4000_0000,
        mmio_start: 0xC000_0000,
        lowmem_end: 0xC000_0000,
        highmem_end: 0x1_4000_0000,
        e820: &[
            (RAM, 0x10_0000, 0xBFF0_0000),
            (RAM, 0x1_0000_0000, 0x4000_0000),
        ],
    },
    Vector {
        name: "T7",
        mem: 4096,
        vgpu: true,
        bars: &[0x3000_0000],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x5000_0000,
        hole: 0x8000_0000,
        mmio_start: 0x8000_0000,
        lowmem_end: 0x8000_0000,
        highmem_end: 0x1_8000_0000,
        e820: &[
            (RAM, 0x10_0000, 0x7FF0_0000),
            (RAM, 0x1_0000_0000, 0x8000_0000),
            (RESERVED, 0xFB00_0000, 0x100_0000),
        ],
    },
    Vector {
        name: "T8",
        mem: 4096,
        vgpu: false,
        bars: &[0x2_0000_0000],
        mxgpu: false,
        rmrr: &[],
        mmio_total: 0x2_1000_0000,
        hole: 0x8000_0000,
        mmio_start: 0x8000_0000,
        lowmem_end: 0x8000_0000,
        highmem_end: 0x1_8000_0000,
        e820: &[
            (RAM, 0x10_0000, 0x7FF0_0000),
            (RAM, 0x1_0000_0000, 0x8000_0000),
        ],
    },
    Vector {
        name: "T9",
        mem: 4096,
        vgpu: false,
        bars: &[0x100_0000],
        mxgpu: true,
        rmrr: &[],
        mmio_total: 0x1100_0000,
        hole: 0x8000_0000,
        mmio_start: 0x8000_0000,
        lowmem_end: 0x8000_0000,
        highmem_end: 0x1_8000_0000,
        e820: &[
            (RAM, 0x10_0000, 0x7FF0_0000),
            (RAM, 0x1_0000_0000, 0x8000_0000),
        ],
    },
    Vector {
        name: "T10",
        mem: 4096,
        vgpu: false,
        bars: &[0x1000],
        mxgpu: false,
        rmrr: &[(0xBF800, 0x800)],
        mmio_total: 0x1000_1000,
        hole: 0x4080_0000,
        mmio_start: 0xBF80_0000,
        lowmem_end: 0xBF80_0000,
        highmem_end: 0x1_4080_0000,
        e820: &[
            (RAM, 0x10_0000, 0xBF70_0000),
            (RESERVED, 0xBF80_0000, 0x80_0000),
            (RAM, 0x1_0000_0000, 0x4080_0000),
        ],
    },
];

#[test]
fn spec_test_vectors() {
    let mut all = String::new();
    for v in VECTORS {
        let mut sc = Scenario::new(v.mem);
        let dir = sc.devices(&[Dev {
            sbdf: "0000:05:00.0",
            bars: v.bars,
            vendor: if v.mxgpu { 0x1002 } else { 0x10de },
            device: if v.mxgpu { 0x692f } else { 0x1234 },
            rmrr: v.rmrr,
        }]);
        sc.vgpu = v.vgpu;
        if !v.bars.is_empty() {
            sc.pci = Some("0000:05:00.0".into());
        }
        let (r, store) = run(&sc, Some(dir.path()));
        let o = r
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        let l = &o.layout;
        let got = (
            l.mmio_total,
            l.mmio_size,
            l.mmio_start,
            l.lowmem_end,
            l.highmem_end,
        );
        let want = (
            v.mmio_total,
            v.hole,
            v.mmio_start,
            v.lowmem_end,
            v.highmem_end,
        );
        assert_eq!(got, want, "{}", v.name);
        let e820: Vec<(u32, u64, u64)> = l.e820.iter().map(|e| (e.kind, e.addr, e.size)).collect();
        assert_eq!(e820, v.e820, "{}", v.name);
        // Invariants of §7.
        let high = l.highmem_end.saturating_sub(4 * G);
        assert_eq!(l.lowmem_end + high, v.mem << 20, "{}", v.name);
        assert_eq!(l.target_pages, v.mem * 256);
        assert_eq!(o.result_line(), "result:1044476 1044479\n");
        // Xenstore: the hole size in decimal, the vGPU keys.
        let dump = store.dump();
        let p = &r.domain_path;
        assert!(
            dump.contains(&format!("{p}/vm-data/mmio-hole-size = \"{}\"", v.hole)),
            "{}: {dump}",
            v.name
        );
        assert_eq!(
            dump.contains("vram-reserved-addr = \"fb000000\""),
            v.vgpu,
            "{}",
            v.name
        );
        assert_eq!(
            dump.contains("vram-reserved-size = \"16777216\""),
            v.vgpu,
            "{}",
            v.name
        );
        // The memory map handed to Xen is the layout's e820, in push order.
        let _ = writeln!(all, "== {} (M={} vgpu={})", v.name, v.mem, v.vgpu);
        all.push_str(&layout_text(o));
        for (k, val) in &o.xenstore_writes {
            let _ = writeln!(all, "xs {k} = {val}");
        }
    }
    insta::assert_snapshot!(all);
}
