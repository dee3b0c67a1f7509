//! The summary of `-mode hvm_build`.

use xg_build::HvmBuildOutcome;

use super::{
    e820, ending, field, headline, hex_rows, meminit_pages, memory_notes, section, stages, vcpus,
    xenstore_writes, Run,
};

/// What the HVM summary shows.
#[derive(Debug)]
pub struct Context<'a> {
    /// The build.
    pub outcome: &'a HvmBuildOutcome,
    /// Which firmware loader was used.
    pub firmware: &'a str,
    /// How the build ran.
    pub run: Run<'a>,
}

/// Renders the summary.
pub fn render(c: &Context<'_>) -> String {
    let o = c.outcome;
    let l = &o.layout;
    let mut s = String::new();
    headline(&mut s, "HVM", o.domid, &c.run);
    field(&mut s, "firmware", c.firmware);
    let sysfw = match &o.system_firmware {
        xg_build::mem::SystemFirmware::Bios => "BIOS (hvmloader built-in)".to_owned(),
        xg_build::mem::SystemFirmware::Ovmf { path, bytes } => {
            format!("UEFI: {} ({bytes} bytes)", path.display())
        }
    };
    field(&mut s, "system fw", sysfw);
    field(
        &mut s,
        "memory",
        format_args!(
            "{} MiB, target {} MiB{}",
            l.total_pages >> 8,
            l.target_pages >> 8,
            memory_notes(l.is_pod(), &o.meminit_config)
        ),
    );
    vcpus(&mut s, &o.flags);
    section(&mut s, "layout");
    hex_rows(
        &mut s,
        &[
            ("MMIO needed", l.mmio_total),
            ("MMIO hole", l.mmio_size),
            ("mmio_start", l.mmio_start),
            ("lowmem_end", l.lowmem_end),
            ("highmem_end", l.highmem_end),
            ("RMRR overlap", l.rmrr_overlap),
        ],
    );
    e820(&mut s, &l.e820);
    meminit_pages(&mut s, &o.meminit);
    xenstore_writes(&mut s, &o.xenstore_writes);
    stages(&mut s, &o.timings);
    ending(&mut s, &c.run, &o.result_line());
    s
}
