//! An SVG picture of the guest physical memory map after a build: RAM by vnode and page
//! size, populate-on-demand RAM, holes (VGA, MMIO), reserved e820 ranges (RMRR, vGPU
//! VRAM), the special and ioreq-server pages, the hvm_info page and the firmware
//! segments. One band per region in address order (scaled by the logarithm of its size,
//! so 4 KiB pages and 1 TiB of RAM both stay visible); regions inside RAM are indented.

use std::fmt::Write;

use xg_guest::special_pages::{
    ioreq_server_pfn, special_pfn, NR_IOREQ_SERVER_PAGES, NR_SPECIAL_PAGES,
};

use crate::hvm::HvmBuildOutcome;

/// What a band shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// Populated RAM of one extent order.
    Ram {
        /// Extent order (0, 9, 18).
        order: u8,
        /// Populate-on-demand.
        pod: bool,
    },
    /// A hole: never populated (VGA, MMIO, the gap below 1 MiB).
    Hole,
    /// An e820 RESERVED range.
    Reserved,
    /// Special or ioreq-server pages.
    Special,
    /// A firmware segment or the start info.
    Firmware,
    /// The hvm_info table page.
    HvmInfo,
}

/// One band of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What it is.
    pub kind: RegionKind,
    /// Its label.
    pub label: String,
    /// Drawn inside a larger region.
    pub nested: bool,
}

fn size_text(bytes: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];
    for (name, shift) in UNITS {
        if bytes >= 1u64 << shift && (bytes.is_multiple_of(1u64 << shift) || shift <= 20) {
            let whole = bytes >> shift;
            let frac = bytes & ((1u64 << shift) - 1);
            return if frac == 0 {
                format!("{whole} {name}")
            } else {
                // One decimal is enough to tell sizes apart in a picture.
                let tenth = (frac * 10) >> shift;
                format!("{whole}.{tenth} {name}")
            };
        }
    }
    format!("{bytes} B")
}

fn order_text(order: u8) -> &'static str {
    match order {
        0 => "4 KiB pages",
        9 => "2 MiB pages",
        18 => "1 GiB pages",
        _ => "pages",
    }
}

/// The regions of the map, in address order.
pub fn regions(o: &HvmBuildOutcome) -> Vec<Region> {
    let mut out = Vec::new();
    let vnode = |node: Option<u32>| match node {
        Some(n) => format!("vnode 0 on pnode {n}"),
        None => "vnode 0".to_owned(),
    };
    for r in &o.populated {
        if r.gfn >= special_pfn(0) - NR_IOREQ_SERVER_PAGES && r.gfn < special_pfn(NR_SPECIAL_PAGES)
        {
            continue; // the special pages get their own band
        }
        let start = r.gfn << 12;
        let end = (r.gfn + r.pages) << 12;
        out.push(Region {
            start,
            end,
            kind: RegionKind::Ram {
                order: r.order,
                pod: r.pod,
            },
            label: format!(
                "RAM {}{}, {}",
                order_text(r.order),
                if r.pod { " (populate-on-demand)" } else { "" },
                vnode(r.node)
            ),
            nested: false,
        });
    }
    let l = &o.layout;
    out.push(Region {
        start: 0xA_0000,
        end: 0xC_0000,
        kind: RegionKind::Hole,
        label: "VGA hole".to_owned(),
        nested: false,
    });
    out.push(Region {
        start: l.mmio_start,
        end: 1 << 32,
        kind: RegionKind::Hole,
        label: "MMIO hole".to_owned(),
        nested: false,
    });
    for e in &l.e820 {
        if e.kind == xg_ctrl::e820::RESERVED {
            let what = if Some(e.addr) == l.vram_reserved_addr {
                "vGPU VRAM reserved"
            } else {
                "RMRR reserved"
            };
            out.push(Region {
                start: e.addr,
                end: e.addr + e.size,
                kind: RegionKind::Reserved,
                label: what.to_owned(),
                nested: e.addr >= l.mmio_start && e.addr < 1 << 32,
            });
        }
    }
    out.push(Region {
        start: ioreq_server_pfn(0) << 12,
        end: ioreq_server_pfn(NR_IOREQ_SERVER_PAGES) << 12,
        kind: RegionKind::Special,
        label: "ioreq server pages".to_owned(),
        nested: true,
    });
    out.push(Region {
        start: special_pfn(0) << 12,
        end: special_pfn(NR_SPECIAL_PAGES) << 12,
        kind: RegionKind::Special,
        label: format!(
            "special pages (xenstore {:#x}, console {:#x})",
            o.store_pfn, o.console_pfn
        ),
        nested: true,
    });
    out.push(Region {
        start: xg_guest::hvm_info::HVM_INFO_PFN << 12,
        end: (xg_guest::hvm_info::HVM_INFO_PFN + 1) << 12,
        kind: RegionKind::HvmInfo,
        label: "hvm_info table".to_owned(),
        nested: true,
    });
    let plan = &o.setup.plan;
    let mut segs = vec![(&plan.kernel, "firmware loader (hvmloader)".to_owned())];
    if let Some(s) = &plan.system_firmware {
        segs.push((s, "system firmware (OVMF)".to_owned()));
    }
    for (s, c) in &plan.modules {
        segs.push((s, format!("module {}", c.as_deref().unwrap_or("-"))));
    }
    segs.push((&plan.start_info, "HVM start info".to_owned()));
    for (s, name) in segs {
        out.push(Region {
            start: s.vstart,
            end: s.vend.max(s.vstart + 1),
            kind: RegionKind::Firmware,
            label: name,
            nested: true,
        });
    }
    out.sort_by_key(|r| (r.start, u8::from(r.nested), u64::MAX - r.end));
    out
}

fn fill(kind: RegionKind) -> &'static str {
    match kind {
        RegionKind::Ram { pod: true, .. } => "#d9c8f0",
        RegionKind::Ram { order: 18, .. } => "#2e7d32",
        RegionKind::Ram { order: 9, .. } => "#66bb6a",
        RegionKind::Ram { .. } => "#c5e1a5",
        RegionKind::Hole => "#eeeeee",
        RegionKind::Reserved => "#ef9a9a",
        RegionKind::Special => "#ffcc80",
        RegionKind::Firmware => "#90caf9",
        RegionKind::HvmInfo => "#fff59d",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the map as an SVG document.
pub fn memory_map(o: &HvmBuildOutcome) -> String {
    let regions = regions(o);
    let width = 960u64;
    let mut y = 60u64;
    let mut body = String::new();
    for r in &regions {
        let size = r.end.saturating_sub(r.start).max(1);
        // 14 px for a page, about 40 px for a terabyte.
        let h = 14 + u64::from(63 - size.leading_zeros()).saturating_sub(12);
        let x = if r.nested { 60 } else { 20 };
        let _ = writeln!(
            body,
            r##"<g><title>{title}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" stroke="#555" stroke-width="0.5"/><text x="{tx}" y="{ty}" font-size="11">{start:#012x}-{last:#012x}  {size}  {label}</text></g>"##,
            title = escape(&r.label),
            w = 260 - (x - 20),
            fill = fill(r.kind),
            tx = 300,
            ty = y + h / 2 + 4,
            start = r.start,
            last = r.end - 1,
            size = size_text(size),
            label = escape(&r.label),
        );
        y += h + 2;
    }
    let height = y + 20;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace">
<text x="20" y="24" font-size="15">Guest physical memory of domain {domid}: {mib} MiB, MMIO hole {hole} at {mmio:#x}</text>
<text x="20" y="44" font-size="11">green: RAM (dark 1 GiB, mid 2 MiB, light 4 KiB pages), violet: populate-on-demand, grey: holes, red: reserved, orange: special pages, blue: firmware, yellow: hvm_info</text>"#,
        domid = o.domid,
        mib = o.layout.total_pages >> 8,
        hole = size_text(o.layout.mmio_size),
        mmio = o.layout.mmio_start,
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_text(4096), "4 KiB");
        assert_eq!(size_text(1 << 40), "1 TiB");
        assert_eq!(size_text(0x3FF0_0000), "1023 MiB");
        assert_eq!(size_text(0x1_8000_0000), "6 GiB");
        assert_eq!(size_text(0x60000), "384 KiB");
    }
}
