//! The human summary of a build, printed on stderr.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use xg_build::HvmBuildOutcome;

/// What the summary shows.
pub struct Context<'a> {
    /// The build.
    pub outcome: &'a HvmBuildOutcome,
    /// Which firmware loader was used.
    pub firmware: &'a str,
    /// `sim` or `privcmd`.
    pub backend: &'a str,
    /// `memory` or `socket`.
    pub store: &'a str,
    /// Wall time of the whole build.
    pub total: Duration,
    /// Where the SVG went.
    pub memory_map: Option<&'a Path>,
    /// Where the trace went.
    pub trace: Option<&'a Path>,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Renders the summary.
pub fn render(c: &Context<'_>) -> String {
    let o = c.outcome;
    let l = &o.layout;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "xenguest: HVM build of domain {} done in {} (backend {}, store {})",
        o.domid,
        ms(c.total),
        c.backend,
        c.store
    );
    let _ = writeln!(s, "  firmware     {}", c.firmware);
    let sysfw = match &o.system_firmware {
        xg_build::mem::SystemFirmware::Bios => "BIOS (hvmloader built-in)".to_owned(),
        xg_build::mem::SystemFirmware::Ovmf { path, bytes } => {
            format!("UEFI: {} ({bytes} bytes)", path.display())
        }
    };
    let _ = writeln!(s, "  system fw    {sysfw}");
    let _ = writeln!(
        s,
        "  memory       {} MiB, target {} MiB{}{}",
        l.total_pages >> 8,
        l.target_pages >> 8,
        if l.is_pod() {
            " (populate-on-demand)"
        } else {
            ""
        },
        match o.meminit_config.vnode_to_pnode.first() {
            Some(n) if *n != u32::MAX => format!(", all on physical node {n}"),
            _ if o.meminit_config.claim_enabled => ", claimed".to_owned(),
            _ => String::new(),
        }
    );
    let _ = writeln!(
        s,
        "  vCPUs        {} ({} online)",
        o.flags.vcpus, o.flags.vcpus_current
    );
    let _ = writeln!(s, "  layout");
    let rows = [
        ("MMIO needed", l.mmio_total),
        ("MMIO hole", l.mmio_size),
        ("mmio_start", l.mmio_start),
        ("lowmem_end", l.lowmem_end),
        ("highmem_end", l.highmem_end),
        ("RMRR overlap", l.rmrr_overlap),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "    {k:<14} {v:>#18x}");
    }
    let _ = writeln!(s, "  e820");
    for e in xg_build::hvm::e820_lines(&l.e820) {
        let _ = writeln!(s, "    {e}");
    }
    let st = o.meminit.stats;
    let _ = writeln!(
        s,
        "  pages        4 KiB: {:#x}   2 MiB: {:#x}   1 GiB: {:#x}   ({} populate calls)",
        st.pages_4k, st.pages_2m, st.pages_1g, o.meminit.populate_calls
    );
    let _ = writeln!(s, "  xenstore");
    for (k, v) in &o.xenstore_writes {
        let _ = writeln!(s, "    {k} = {v}");
    }
    let _ = writeln!(s, "  stages");
    for (name, d) in &o.timings {
        let _ = writeln!(s, "    {name:<36} {:>12}", ms(*d));
    }
    if let Some(p) = c.memory_map {
        let _ = writeln!(s, "  memory map   {}", p.display());
    }
    if let Some(p) = c.trace {
        let _ = writeln!(s, "  trace        {}", p.display());
    }
    let _ = writeln!(s, "  result       {}", o.result_line().trim_end());
    s
}
