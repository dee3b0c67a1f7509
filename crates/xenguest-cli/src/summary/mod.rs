//! The human summary of a build, printed on stderr: one renderer per mode ([`hvm`],
//! [`pvh`], [`pv`]) built from the shared lines of this module, so every mode reads
//! the same way: a headline, `name  value` fields, indented sections, the stage
//! timings, the files written and the result line.

pub mod hvm;
pub mod pv;
pub mod pvh;

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use xg_build::Flags;
use xg_ctrl::{CpuPolicy, DomId, E820Entry};
use xg_guest::meminit::{MeminitConfig, MeminitReport};

/// How a build ran, whatever its mode.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
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

/// A file the build read (kernel, module, ramdisk): how to name it and its size.
#[derive(Debug, Clone)]
pub struct Input {
    /// The path, or what was used instead.
    pub label: String,
    /// Bytes read.
    pub bytes: u64,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} bytes", self.label, self.bytes)
    }
}

/// A ring's event channel and the domain at its other end.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// `-store_port` or `-console_port`.
    pub port: u32,
    /// `-store_domid` or `-console_domid`.
    pub backend: DomId,
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// `xenguest: <MODE> build of domain N done in T (backend B, store S)`.
pub fn headline(s: &mut String, mode: &str, domid: DomId, run: &Run<'_>) {
    let _ = writeln!(
        s,
        "xenguest: {mode} build of domain {domid} done in {} (backend {}, store {})",
        ms(run.total),
        run.backend,
        run.store
    );
}

/// A `  name         value` line.
pub fn field(s: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "  {name:<12} {value}");
}

/// A section title; its rows follow with [`row`].
pub fn section(s: &mut String, name: &str) {
    let _ = writeln!(s, "  {name}");
}

/// A row of a section.
pub fn row(s: &mut String, value: impl std::fmt::Display) {
    let _ = writeln!(s, "    {value}");
}

/// Rows of right-aligned hexadecimal addresses and sizes.
pub fn hex_rows(s: &mut String, rows: &[(&str, u64)]) {
    for (k, v) in rows {
        row(s, format_args!("{k:<14} {v:>#18x}"));
    }
}

/// The `e820` section.
pub fn e820(s: &mut String, map: &[E820Entry]) {
    section(s, "e820");
    for e in xg_build::hvm::e820_lines(map) {
        row(s, e);
    }
}

/// `N (M online)`.
pub fn vcpus(s: &mut String, flags: &Flags) {
    field(
        s,
        "vCPUs",
        format_args!("{} ({} online)", flags.vcpus, flags.vcpus_current),
    );
}

/// What follows the memory size of an HVM or PVH guest: populate-on-demand, then
/// where the memory lives (`-mem_pnode`) or that it was claimed.
pub fn memory_notes(pod: bool, cfg: &MeminitConfig) -> String {
    let mut s = String::new();
    if pod {
        s.push_str(" (populate-on-demand)");
    }
    match cfg.vnode_to_pnode.first() {
        Some(n) if *n != u32::MAX => {
            let _ = write!(s, ", all on physical node {n}");
        }
        _ if cfg.claim_enabled => s.push_str(", claimed"),
        _ => {}
    }
    s
}

/// `512 MiB (0x20000 pages)`.
pub fn mib_pages(pages: u64) -> String {
    format!("{} MiB ({pages:#x} pages)", pages >> 8)
}

/// The `pages` line: extents populated by size, then an optional note.
pub fn page_counts(s: &mut String, counts: &[(&str, u64)], note: Option<String>) {
    let mut v = counts
        .iter()
        .map(|(size, n)| format!("{size}: {n:#x}"))
        .collect::<Vec<_>>()
        .join("   ");
    if let Some(n) = note {
        let _ = write!(v, "   ({n})");
    }
    field(s, "pages", v);
}

/// The `pages` line of `meminit_hvm` (HVM and PVH).
pub fn meminit_pages(s: &mut String, m: &MeminitReport) {
    let st = m.stats;
    page_counts(
        s,
        &[
            ("4 KiB", st.pages_4k),
            ("2 MiB", st.pages_2m),
            ("1 GiB", st.pages_1g),
        ],
        Some(format!("{} populate calls", m.populate_calls)),
    );
}

/// The command line as given, `(none)` without one.
pub fn cmdline(s: &mut String, name: &str, c: Option<&str>) {
    match c {
        Some(c) => field(s, name, format_args!("{c:?}")),
        None => field(s, name, "(none)"),
    }
}

/// A ring page: its frame (`pfn` or `mfn`), event channel and backend domain.
pub fn ring(s: &mut String, name: &str, frame_kind: &str, frame: u64, ch: Channel) {
    row(
        s,
        format_args!(
            "{name:<12} {frame_kind} {frame:#x}, event channel {}, backend domain {}",
            ch.port, ch.backend
        ),
    );
}

/// The CPU policy set: vendor, size, and where the featureset came from.
pub fn cpu_policy(s: &mut String, p: &CpuPolicy, flags: &Flags, default: &str) {
    let vendor = p
        .leaves
        .iter()
        .find(|l| l.leaf == 0)
        .map(|l| {
            let bytes: Vec<u8> = [l.b, l.d, l.c]
                .iter()
                .flat_map(|r| r.to_le_bytes())
                .collect();
            String::from_utf8_lossy(&bytes)
                .trim_matches('\0')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown vendor".to_owned());
    let source = if flags.featureset.is_some() {
        "platform/featureset"
    } else {
        default
    };
    field(
        s,
        "cpu policy",
        format_args!(
            "{vendor}, {} CPUID leaves, {} MSRs; featureset {source}, nx {}, pae {}",
            p.leaves.len(),
            p.msrs.len(),
            flags.nx,
            flags.pae
        ),
    );
}

/// The `xenstore` section: the keys the build wrote under the domain's path.
pub fn xenstore_writes(s: &mut String, writes: &[(String, String)]) {
    section(s, "xenstore");
    for (k, v) in writes {
        row(s, format_args!("{k} = {v}"));
    }
}

/// The `stages` section: each lap of the build.
pub fn stages(s: &mut String, timings: &[(&'static str, Duration)]) {
    section(s, "stages");
    for (name, d) in timings {
        row(s, format_args!("{name:<36} {:>12}", ms(*d)));
    }
}

/// The files written and the result line, the summary's last lines.
pub fn ending(s: &mut String, run: &Run<'_>, result_line: &str) {
    if let Some(p) = run.memory_map {
        field(s, "memory map", p.display());
    }
    if let Some(p) = run.trace {
        field(s, "trace", p.display());
    }
    field(s, "result", result_line.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_line_up() {
        let mut s = String::new();
        field(&mut s, "kernel", "k");
        field(&mut s, "memory map", "m");
        section(&mut s, "e820");
        hex_rows(&mut s, &[("mmio_start", 0xf000_0000)]);
        assert_eq!(
            s,
            "  kernel       k\n  memory map   m\n  e820\n    mmio_start             0xf0000000\n"
        );
    }

    #[test]
    fn page_counts_with_and_without_note() {
        let mut s = String::new();
        page_counts(&mut s, &[("4 KiB", 0x200), ("2 MiB", 1)], None);
        page_counts(&mut s, &[("4 KiB", 0)], Some("3 populate calls".into()));
        assert_eq!(
            s,
            "  pages        4 KiB: 0x200   2 MiB: 0x1\n  pages        4 KiB: 0x0   (3 populate calls)\n"
        );
    }

    #[test]
    fn memory_notes_name_pod_node_and_claim() {
        let mut cfg = MeminitConfig {
            total_pages: 0x40000,
            target_pages: 0x30000,
            lowmem_end: 0,
            highmem_end: 0,
            mmio_start: 0,
            mmio_size: 0,
            device_model: false,
            vga_hole_size: 0,
            claim_enabled: false,
            vmemranges: Vec::new(),
            vnode_to_pnode: Vec::new(),
        };
        assert_eq!(memory_notes(false, &cfg), "");
        cfg.claim_enabled = true;
        assert_eq!(memory_notes(true, &cfg), " (populate-on-demand), claimed");
        cfg.vnode_to_pnode = vec![1];
        assert_eq!(memory_notes(false, &cfg), ", all on physical node 1");
    }
}
