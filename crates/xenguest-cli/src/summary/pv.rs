//! The summary of `-mode linux_build` (64-bit PV).

use xg_build::PvBuildOutcome;
use xg_ctrl::PAGE_SHIFT;
use xg_guest::pv::layout::{PvLayout, PvSegment};

use super::{
    cmdline, cpu_policy, ending, field, headline, hex_rows, mib_pages, page_counts, ring, row,
    section, stages, vcpus, xenstore_writes, Channel, Input, Run,
};

/// What the PV summary shows.
#[derive(Debug)]
pub struct Context<'a> {
    /// The build.
    pub outcome: &'a PvBuildOutcome,
    /// The `-image` read.
    pub kernel: &'a Input,
    /// The kernel command line.
    pub cmdline: Option<&'a str>,
    /// The `-ramdisk` read, if one was given.
    pub ramdisk: Option<&'a Input>,
    /// The xenstore ring's channel.
    pub store: Channel,
    /// The console ring's channel.
    pub console: Channel,
    /// How the build ran.
    pub run: Run<'a>,
}

/// `0x1000`, `none` for `None`.
fn hex_or_none(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:#x}"))
}

/// A row of the virtual layout: a segment or a page, at its virtual address.
struct Placed {
    name: String,
    vstart: u64,
    vend: Option<u64>,
    pfn: u64,
    pages: u64,
}

impl Placed {
    fn segment(s: &PvSegment) -> Placed {
        Placed {
            name: s.name.clone(),
            vstart: s.vstart,
            vend: Some(s.vend),
            pfn: s.pfn,
            pages: s.pages,
        }
    }

    /// A single page of the kernel mapping, which maps pfn 0 at `virt_base`.
    fn page(name: &str, l: &PvLayout, pfn: u64) -> Placed {
        Placed {
            name: name.to_owned(),
            vstart: l.virt_base.wrapping_add(pfn << PAGE_SHIFT),
            vend: None,
            pfn,
            pages: 1,
        }
    }
}

/// The layout's segments and pages in allocation (pfn) order.
fn virtual_layout(s: &mut String, l: &PvLayout) {
    let mut placed: Vec<Placed> = [Some(&l.kernel), l.ramdisk.as_ref(), Some(&l.p2m)]
        .into_iter()
        .flatten()
        .chain([&l.pgtables])
        .map(Placed::segment)
        .collect();
    placed.extend([
        Placed::page("start info", l, l.start_info_pfn),
        Placed::page("xenstore", l, l.xenstore_pfn),
        Placed::page("console", l, l.console_pfn),
        Placed::page("boot stack", l, l.bootstack_pfn),
    ]);
    placed.sort_by_key(|p| p.pfn);
    section(s, "virtual layout");
    for p in &placed {
        let virt = match p.vend {
            Some(end) => format!("{:#018x}-{end:#018x}", p.vstart),
            None => format!("{:#018x}", p.vstart),
        };
        row(
            s,
            format_args!(
                "{:<14} {virt:<37} pfn {:#x} + {:#x}",
                p.name, p.pfn, p.pages
            ),
        );
    }
    hex_rows(
        s,
        &[
            ("virt_pgtab_end", l.virt_pgtab_end),
            ("pfn_alloc_end", l.pfn_alloc_end),
            ("p2m_size", l.p2m_size),
        ],
    );
}

/// Renders the summary.
pub fn render(c: &Context<'_>) -> String {
    let o = c.outcome;
    let k = &o.kernel;
    let img = &o.image;
    let si = &img.start_info;
    let mut s = String::new();
    headline(&mut s, "PV", o.domid, &c.run);
    field(&mut s, "kernel", c.kernel);
    field(
        &mut s,
        "format",
        format_args!(
            "{:?}, ELF{}, guest type {}, protocol {}",
            o.format,
            if o.is64 { 64 } else { 32 },
            k.guest_type,
            o.protocol
        ),
    );
    field(
        &mut s,
        "entry",
        format_args!(
            "{:#x}, virt base {:#x}, loaded {:#x}-{:#x}, hypercall page {}",
            k.entry,
            k.virt_base,
            k.kstart,
            k.kend,
            hex_or_none(k.hypercall_page)
        ),
    );
    cmdline(&mut s, "cmdline", c.cmdline);
    match (c.ramdisk, &img.layout.ramdisk) {
        (Some(r), Some(seg)) => field(
            &mut s,
            "ramdisk",
            format_args!("{r}, loaded {} bytes", seg.vend - seg.vstart),
        ),
        (Some(r), None) => field(&mut s, "ramdisk", r),
        (None, _) => field(&mut s, "ramdisk", "(none)"),
    }
    field(&mut s, "memory", mib_pages(si.nr_pages));
    vcpus(&mut s, &o.flags);
    virtual_layout(&mut s, &img.layout);
    page_counts(
        &mut s,
        &[
            ("4 KiB", o.memory.small_pages),
            ("2 MiB", o.memory.superpages),
        ],
        None,
    );
    field(
        &mut s,
        "start info",
        format_args!(
            "flags {:#x}, shared info at machine address {:#x}",
            si.flags, si.shared_info
        ),
    );
    section(&mut s, "frames");
    ring(&mut s, "xenstore", "mfn", o.store_mfn, c.store);
    ring(&mut s, "console", "mfn", o.console_mfn, c.console);
    row(
        &mut s,
        format_args!("{:<12} mfn {:#x}", "shared info", img.shared_info_mfn),
    );
    row(
        &mut s,
        format_args!(
            "{:<12} mfn {:#x}, pinned, {} page-table frames",
            "L4 table", img.l4_mfn, img.pgtable_frames
        ),
    );
    row(
        &mut s,
        format_args!("{:<12} mfn {}", "hypercall", hex_or_none(img.hypercall_mfn)),
    );
    cpu_policy(&mut s, &o.cpu_policy, &o.flags, "PV default");
    xenstore_writes(&mut s, &o.xenstore_writes);
    stages(&mut s, &o.timings);
    ending(&mut s, &c.run, &o.result_line());
    s
}
