//! x86_64 PV layout: the virtual-and-physical bump allocator of `xc_dom_alloc_segment`
//! with `virt_alloc_end` starting at `virt_base`, and `count_pgtables` /
//! `setup_pgtables_pv` of `xg_dom_x86.c` for four-level page tables.

use std::fmt;

use serde::Serialize;

use super::check::PvKernel;
use super::PvError;

const PAGE_SHIFT: u32 = 12;
const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
const LEVEL_SHIFT: u32 = 9;
const LEVELS: usize = 4;
/// `bits_to_mask(VIRT_BITS_X86_64)`.
pub const VADDR_MASK: u64 = (1 << 48) - 1;
/// `_PAGE_PRESENT|_PAGE_RW|_PAGE_ACCESSED`: L1 entries.
pub const PROT_L1: u64 = 0x23;
/// `... |_PAGE_DIRTY|_PAGE_USER`: L2-L4 entries.
pub const PROT_UPPER: u64 = 0x67;
/// `_PAGE_RW`.
pub const PAGE_RW: u64 = 0x2;
/// `sizeof(xen_pfn_t)` of a 64-bit guest.
const SIZEOF_PFN: u64 = 8;

fn mask(bits: u32) -> u64 {
    (1u64 << bits) - 1
}

/// A placed segment (`struct xc_dom_seg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvSegment {
    /// Name.
    pub name: String,
    /// Virtual start.
    pub vstart: u64,
    /// Virtual end (`vstart + size`).
    pub vend: u64,
    /// First pfn.
    pub pfn: u64,
    /// Pages.
    pub pages: u64,
}

/// One level of a mapping (`struct xc_dom_x86_mapping_lvl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Level {
    /// First virtual address covered.
    pub from: u64,
    /// Last virtual address covered.
    pub to: u64,
    /// First pfn (of the tables; for the area, of the mapped frames).
    pub pfn: u64,
    /// Tables at this level.
    pub pgtables: u64,
}

/// An initial mapping (`struct xc_dom_x86_mapping`): `lvls[0]` are L1 tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The mapped area; `pgtables` is the total of its tables.
    pub area: Level,
    /// Per level, L1 first.
    pub lvls: [Level; LEVELS],
}

struct Alloc {
    virt_end: u64,
    pfn_end: u64,
    total: u64,
}

impl Alloc {
    fn chk(&mut self, name: &str, pages: u64) -> Result<(), PvError> {
        if pages > self.total || self.pfn_end > self.total || pages > self.total - self.pfn_end {
            return Err(PvError::TooLarge {
                name: name.to_owned(),
                pages,
                used: self.pfn_end,
                total: self.total,
            });
        }
        self.pfn_end += pages;
        self.virt_end = self
            .virt_end
            .checked_add(pages * PAGE_SIZE)
            .ok_or(PvError::Overflow { at: self.virt_end })?;
        Ok(())
    }

    fn pad(&mut self, boundary: u64) -> Result<(), PvError> {
        if !boundary.is_multiple_of(PAGE_SIZE) || boundary < self.virt_end {
            return Err(PvError::BadBoundary {
                boundary,
                cursor: self.virt_end,
            });
        }
        self.chk("padding", (boundary - self.virt_end) / PAGE_SIZE)
    }

    fn segment(&mut self, name: &str, start: u64, size: u64) -> Result<PvSegment, PvError> {
        if start != 0 {
            self.pad(start)?;
        }
        let pages = size.div_ceil(PAGE_SIZE);
        let vstart = self.virt_end;
        let pfn = self.pfn_end;
        self.chk(name, pages)?;
        Ok(PvSegment {
            name: name.to_owned(),
            vstart,
            vend: vstart + size,
            pfn,
            pages,
        })
    }

    fn page(&mut self, name: &str) -> Result<u64, PvError> {
        let pfn = self.pfn_end;
        self.chk(name, 1)?;
        Ok(pfn)
    }
}

/// `count_pgtables`: the tables needed to map `[from, to]` at pfn `pfn`, given the
/// mappings made before (they share upper-level tables).
pub fn count_pgtables(
    maps: &[Mapping],
    from: u64,
    to: u64,
    pfn: u64,
    pfn_alloc_end: u64,
    p2m_size: u64,
) -> Result<Mapping, PvError> {
    if maps.len() >= 2 {
        return Err(PvError::OverlappingMappings);
    }
    let end = pfn + ((to.wrapping_sub(from)) >> PAGE_SHIFT);
    if end >= p2m_size {
        return Err(PvError::MappingTooLarge { end, p2m_size });
    }
    if maps.iter().any(|m| from < m.area.to && to > m.area.from) {
        return Err(PvError::OverlappingMappings);
    }
    let mut map = Mapping::default();
    map.area.from = from & VADDR_MASK;
    map.area.to = to & VADDR_MASK;
    for l in (0..LEVELS).rev() {
        map.lvls[l].pfn = pfn_alloc_end + map.area.pgtables;
        if l == LEVELS - 1 {
            if maps.is_empty() {
                map.lvls[l].from = 0;
                map.lvls[l].to = VADDR_MASK;
                map.lvls[l].pgtables = 1;
                map.area.pgtables += 1;
            }
            continue;
        }
        let bits = PAGE_SHIFT + (u32::try_from(l).unwrap_or(0) + 1) * LEVEL_SHIFT;
        let m = mask(bits);
        let mut lv = Level {
            from: map.area.from & !m,
            to: map.area.to | m,
            pfn: map.lvls[l].pfn,
            pgtables: 0,
        };
        for cmp in maps {
            let c = cmp.lvls[l];
            if c.from == c.to {
                continue;
            }
            if lv.from >= c.from && lv.to <= c.to {
                lv.from = 0;
                lv.to = 0;
                break;
            }
            if lv.from >= c.from && lv.from <= c.to {
                lv.from = c.to + 1;
            }
            if lv.to >= c.from && lv.to <= c.to {
                lv.to = c.from - 1;
            }
        }
        if lv.from < lv.to {
            lv.pgtables = ((lv.to - lv.from) >> bits) + 1;
        }
        map.area.pgtables += lv.pgtables;
        map.lvls[l] = lv;
    }
    Ok(map)
}

/// Where everything of a PV guest goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvLayout {
    /// `virt_base`.
    pub virt_base: u64,
    /// The kernel.
    pub kernel: PvSegment,
    /// The ramdisk (module 0), if any.
    pub ramdisk: Option<PvSegment>,
    /// The p2m list (`phys2mach`); with `INIT_P2M` at `p2m_base` with its own tables.
    pub p2m: PvSegment,
    /// `start_info_pfn`.
    pub start_info_pfn: u64,
    /// `xenstore_pfn`.
    pub xenstore_pfn: u64,
    /// `console_pfn`.
    pub console_pfn: u64,
    /// The page-table frames of the kernel mapping.
    pub pgtables: PvSegment,
    /// `bootstack_pfn`.
    pub bootstack_pfn: u64,
    /// `virt_pgtab_end`: the kernel mapping covers `[virt_base, virt_pgtab_end)`.
    pub virt_pgtab_end: u64,
    /// The mappings (kernel first, then the p2m mapping).
    pub maps: Vec<Mapping>,
    /// `p2m_size` (= total pages).
    pub p2m_size: u64,
    /// Pages allocated in the end.
    pub pfn_alloc_end: u64,
}

impl fmt::Display for PvLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seg = |f: &mut fmt::Formatter<'_>, s: &PvSegment| {
            writeln!(
                f,
                "{:<12} {:#018x} -> {:#018x} (pfn {:#x} + {:#x} pages)",
                s.name, s.vstart, s.vend, s.pfn, s.pages
            )
        };
        seg(f, &self.kernel)?;
        if let Some(r) = &self.ramdisk {
            seg(f, r)?;
        }
        seg(f, &self.p2m)?;
        writeln!(
            f,
            "start info pfn {:#x}, xenstore pfn {:#x}, console pfn {:#x}, boot stack pfn {:#x}",
            self.start_info_pfn, self.xenstore_pfn, self.console_pfn, self.bootstack_pfn
        )?;
        seg(f, &self.pgtables)?;
        writeln!(f, "virt_pgtab_end {:#x}", self.virt_pgtab_end)?;
        for (i, m) in self.maps.iter().enumerate() {
            writeln!(
                f,
                "map{i} {:#x}-{:#x} pfn {:#x}: {} tables",
                m.area.from, m.area.to, m.area.pfn, m.area.pgtables
            )?;
            for (l, lv) in m.lvls.iter().enumerate().rev() {
                writeln!(
                    f,
                    "  L{} {:#x}-{:#x} first pfn {:#x}, {} table(s)",
                    l + 1,
                    lv.from,
                    lv.to,
                    lv.pfn,
                    lv.pgtables
                )?;
            }
        }
        write!(
            f,
            "pfn_alloc_end {:#x} of {:#x}",
            self.pfn_alloc_end, self.p2m_size
        )
    }
}

/// `xc_dom_build_image`'s allocations for an x86_64 PV guest of `total_pages`
/// (`-mem_start_mib << 8`) with a ramdisk of `ramdisk_len` bytes (already
/// decompressed).
pub fn plan_pv(
    k: &PvKernel,
    total_pages: u64,
    ramdisk_len: Option<u64>,
) -> Result<PvLayout, PvError> {
    let mut a = Alloc {
        virt_end: k.virt_base,
        pfn_end: 0,
        total: total_pages,
    };
    let p2m_size = total_pages;
    let kernel = a.segment("kernel", k.kstart, k.kend - k.kstart)?;
    let mut ramdisk = None;
    if let Some(len) = ramdisk_len.filter(|_| !k.unmapped_initrd) {
        ramdisk = Some(a.segment("module0", 0, len)?);
    }
    let p2m_alloc = (p2m_size * SIZEOF_PFN).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut p2m = None;
    if k.p2m_base.is_none() {
        p2m = Some(a.segment("phys2mach", 0, p2m_alloc)?);
    }
    let start_info_pfn = a.page("start info")?;
    let xenstore_pfn = a.page("xenstore")?;
    let console_pfn = a.page("console")?;

    // alloc_pgtables_pv: boot stack + 512 KiB padding, then grow to a fixed point.
    let extra = 1 + (512 * 1024) / PAGE_SIZE;
    let mut pages = extra;
    let mut maps: Vec<Mapping> = Vec::new();
    let (map, try_end) = loop {
        let try_end = a
            .virt_end
            .checked_add(pages * PAGE_SIZE)
            .ok_or(PvError::Overflow { at: a.virt_end })?
            | mask(22);
        let map = count_pgtables(&maps, k.virt_base, try_end, 0, a.pfn_end, p2m_size)?;
        pages = map.area.pgtables + extra;
        if a.virt_end + pages * PAGE_SIZE <= try_end + 1 {
            break (map, try_end);
        }
    };
    maps.push(map);
    let virt_pgtab_end = try_end + 1;
    let pgtables = a.segment("page tables", 0, map.area.pgtables * PAGE_SIZE)?;
    let bootstack_pfn = a.page("boot stack")?;
    a.pad(virt_pgtab_end)?;
    if let Some(len) = ramdisk_len.filter(|_| k.unmapped_initrd) {
        ramdisk = Some(a.segment("module0", 0, len)?);
    }
    let p2m = match (p2m, k.p2m_base) {
        (Some(p), _) => p,
        (None, Some(base)) => {
            let to = base + p2m_alloc - 1;
            let mut m = count_pgtables(&maps, base, to, a.pfn_end, a.pfn_end, p2m_size)?;
            m.area.pfn = a.pfn_end;
            for lv in &mut m.lvls {
                lv.pfn += p2m_alloc >> PAGE_SHIFT;
            }
            let size = p2m_alloc + (m.area.pgtables << PAGE_SHIFT);
            maps.push(m);
            let mut s = a.segment("phys2mach", 0, size)?;
            s.vstart = base;
            s.vend = base + size;
            s
        }
        (None, None) => unreachable_p2m()?,
    };
    Ok(PvLayout {
        virt_base: k.virt_base,
        kernel,
        ramdisk,
        p2m,
        start_info_pfn,
        xenstore_pfn,
        console_pfn,
        pgtables,
        bootstack_pfn,
        virt_pgtab_end,
        maps,
        p2m_size,
        pfn_alloc_end: a.pfn_end,
    })
}

fn unreachable_p2m() -> Result<PvSegment, PvError> {
    Err(PvError::Overflow { at: 0 })
}

/// `setup_pgtables_pv`: every page-table frame (pfn, 512 entries) for the pfn→mfn map
/// `p2m`, levels top-down as libxenguest fills them.
pub fn page_tables(layout: &PvLayout, p2m: &[u64]) -> Result<Vec<(u64, Vec<u64>)>, PvError> {
    let mfn = |pfn: u64| -> Result<u64, PvError> {
        usize::try_from(pfn)
            .ok()
            .and_then(|i| p2m.get(i).copied())
            .ok_or(PvError::NoMachineFrame { pfn })
    };
    let maps = &layout.maps;
    let prot = |l: usize, pfn: u64| -> u64 {
        if l > 0 {
            return PROT_UPPER;
        }
        for m in maps {
            let s = m.lvls[LEVELS - 1].pfn;
            if pfn >= s && pfn < s + m.area.pgtables {
                return PROT_L1 & !PAGE_RW;
            }
        }
        PROT_L1
    };
    let mut frames = Vec::new();
    for l in (0..LEVELS).rev() {
        for m1 in maps {
            let (from, to) = (m1.lvls[l].from, m1.lvls[l].to);
            let mut tables =
                vec![0u64; xg_ctrl::types::conv::u64_to_usize(m1.lvls[l].pgtables * 512)];
            if m1.lvls[l].pgtables == 0 {
                continue;
            }
            let shift = PAGE_SHIFT + u32::try_from(l).unwrap_or(0) * LEVEL_SHIFT;
            for m2 in maps {
                let lvl = if l > 0 { m2.lvls[l - 1] } else { m2.area };
                if l > 0 && lvl.pgtables == 0 {
                    continue;
                }
                if lvl.from >= to || lvl.to <= from {
                    continue;
                }
                let p_s = (from.max(lvl.from) - from) >> shift;
                let p_e = (to.min(lvl.to) - from) >> shift;
                let first_pfn = ((from.max(lvl.from) - lvl.from) >> shift) + lvl.pfn;
                for (pfn, p) in (first_pfn..).zip(p_s..=p_e) {
                    let slot = tables
                        .get_mut(xg_ctrl::types::conv::u64_to_usize(p))
                        .ok_or(PvError::Overflow { at: p })?;
                    *slot = (mfn(pfn)? << PAGE_SHIFT) | prot(l, pfn);
                }
            }
            for (i, chunk) in tables.chunks(512).enumerate() {
                frames.push((
                    m1.lvls[l].pfn + xg_ctrl::types::conv::usize_to_u64(i),
                    chunk.to_vec(),
                ));
            }
        }
    }
    Ok(frames)
}
