//! The summary of `-mode pvh_build`.

use xg_build::PvhBuildOutcome;
use xg_guest::special_pages::{special_pfn, NR_SPECIAL_PAGES};

use super::{
    cmdline, cpu_policy, e820, ending, field, headline, hex_rows, meminit_pages, memory_notes,
    mib_pages, ring, row, section, stages, vcpus, xenstore_writes, Channel, Input, Run,
};

/// What the PVH summary shows.
#[derive(Debug)]
pub struct Context<'a> {
    /// The build.
    pub outcome: &'a PvhBuildOutcome,
    /// The `-image` read.
    pub kernel: &'a Input,
    /// The kernel command line.
    pub cmdline: Option<&'a str>,
    /// The `-module` files read, in order.
    pub modules: &'a [Input],
    /// The xenstore ring's channel.
    pub store: Channel,
    /// The console ring's channel.
    pub console: Channel,
    /// How the build ran.
    pub run: Run<'a>,
}

/// `Some(v)` as a number, `None` as `unset`.
fn or_unset(v: Option<u64>) -> String {
    v.map_or_else(|| "unset".to_owned(), |v| v.to_string())
}

/// Renders the summary.
pub fn render(c: &Context<'_>) -> String {
    let o = c.outcome;
    let l = &o.layout;
    let k = &o.kernel;
    let mut s = String::new();
    headline(&mut s, "PVH", o.domid, &c.run);
    field(&mut s, "kernel", c.kernel);
    field(
        &mut s,
        "format",
        format_args!(
            "{:?}, ELF{}, loaded {:#x}-{:#x}",
            k.format,
            if k.is64 { 64 } else { 32 },
            k.pvh.kstart,
            k.pvh.kend
        ),
    );
    field(
        &mut s,
        "entry",
        format_args!("{:#x} (PHYS32_ENTRY)", k.pvh.entry),
    );
    cmdline(&mut s, "cmdline", c.cmdline);
    for (i, (m, (seg, mcmd))) in c.modules.iter().zip(&o.image.plan.modules).enumerate() {
        field(
            &mut s,
            &format!("module {i}"),
            format_args!(
                "{m}, loaded {} bytes, cmdline {mcmd:?}",
                seg.vend - seg.vstart
            ),
        );
    }
    field(
        &mut s,
        "memory",
        format_args!(
            "{}, target {} MiB{}",
            mib_pages(l.total_pages),
            l.target_pages >> 8,
            memory_notes(l.target_pages < l.total_pages, &o.meminit_config)
        ),
    );
    vcpus(&mut s, &o.flags);
    section(&mut s, "layout");
    hex_rows(
        &mut s,
        &[
            ("MMIO hole", l.mmio_size),
            ("mmio_start", l.mmio_start),
            ("lowmem_end", l.lowmem_end),
            ("highmem_end", l.highmem_end),
        ],
    );
    e820(&mut s, &l.e820);
    meminit_pages(&mut s, &o.meminit);
    section(&mut s, "image");
    for line in o.image.plan.to_string().lines() {
        row(&mut s, line);
    }
    field(
        &mut s,
        "special",
        format_args!(
            "pfn {:#x}-{:#x} ({NR_SPECIAL_PAGES} pages)",
            special_pfn(0),
            special_pfn(NR_SPECIAL_PAGES - 1)
        ),
    );
    ring(&mut s, "xenstore", "pfn", o.store_pfn, c.store);
    ring(&mut s, "console", "pfn", o.console_pfn, c.console);
    let p = &o.params;
    field(
        &mut s,
        "hvm params",
        format_args!(
            "HPET {}, viridian {}, x87 FIP width {}, time offset {} s",
            p.hpet,
            or_unset(p.viridian),
            or_unset(p.x87_fip_width),
            p.time_offset
        ),
    );
    let acpi = &o.acpi;
    let tables: Vec<&str> = acpi.placed.iter().map(|(sig, _, _)| sig.as_str()).collect();
    field(
        &mut s,
        "acpi",
        format_args!(
            "RSDP at {:#x}, {} ({} bytes), {} frame(s) populated",
            acpi.modules()[0].guest_addr,
            tables.join(" "),
            acpi.used,
            o.image.acpi_populated.len()
        ),
    );
    cpu_policy(&mut s, &o.cpu_policy, &o.flags, "HVM default");
    xenstore_writes(&mut s, &o.xenstore_writes);
    stages(&mut s, &o.timings);
    ending(&mut s, &c.run, &o.result_line());
    s
}
