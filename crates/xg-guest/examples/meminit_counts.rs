//! Populate hypercalls per guest size for each strategy, and the builder's peak memory.
//!
//! `cargo run --release -p xg-guest --example meminit_counts`
//!
//! The hypervisor here grants every extent except those of the orders listed in the
//! column header (like the oracle's `ORACLE_FAIL_ORDER`), so only the builder's own
//! memory shows up in VmHWM.
#![allow(clippy::print_stdout)]

use std::cell::Cell;

use xg_ctrl::{DomId, E820Entry, Gfn, MemFlags, MemoryOps, PageOrder};
use xg_guest::meminit::{meminit_hvm, MeminitConfig, Strategy};

/// Grants everything but the failing orders; counts calls.
#[derive(Debug, Default)]
struct Host {
    fail_orders: Vec<u8>,
    calls: Cell<u64>,
}

impl MemoryOps for Host {
    fn populate_physmap(
        &self,
        _: DomId,
        o: PageOrder,
        _: MemFlags,
        g: &[Gfn],
    ) -> xg_ctrl::Result<usize> {
        self.calls.set(self.calls.get() + 1);
        Ok(if self.fail_orders.contains(&o.get()) {
            0
        } else {
            g.len()
        })
    }
    fn populate_physmap_exact(
        &self,
        d: DomId,
        o: PageOrder,
        f: MemFlags,
        g: &[Gfn],
    ) -> xg_ctrl::Result<()> {
        self.populate_physmap(d, o, f, g).map(|_| ())
    }
    fn decrease_reservation(&self, _: DomId, _: PageOrder, _: &[Gfn]) -> xg_ctrl::Result<usize> {
        Ok(0)
    }
    fn claim_pages(&self, _: DomId, _: u64) -> xg_ctrl::Result<()> {
        Ok(())
    }
    fn set_pod_target(&self, _: DomId, _: u64) -> xg_ctrl::Result<()> {
        Ok(())
    }
    fn set_memory_map(&self, _: DomId, _: &[E820Entry]) -> xg_ctrl::Result<()> {
        Ok(())
    }
}

/// libxl's default HVM layout for `mib` MiB (256 MiB MMIO hole, device model, no claim).
fn config(mib: u64) -> MeminitConfig {
    let mem = mib << 20;
    let mmio_start = 0xF000_0000u64;
    MeminitConfig {
        total_pages: mib << 8,
        target_pages: mib << 8,
        lowmem_end: mem.min(mmio_start),
        highmem_end: if mem > mmio_start {
            (1 << 32) + mem - mmio_start
        } else {
            0
        },
        mmio_start,
        mmio_size: 0x1000_0000,
        device_model: true,
        vga_hole_size: 0x20,
        ..MeminitConfig::default()
    }
}

fn calls(mib: u64, fail: &[u8], strategy: Strategy) -> u64 {
    let host = Host {
        fail_orders: fail.to_vec(),
        ..Host::default()
    };
    let report = meminit_hvm(&host, DomId(1), &config(mib), strategy).expect("meminit");
    assert_eq!(report.populate_calls, host.calls.get());
    report.populate_calls
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let strategies = [
        Strategy::Compat,
        Strategy::Batched,
        Strategy::BatchedSkipFailed,
    ];
    println!("| guest | host | compat | batched | batched-skip-failed |");
    println!("|---|---|---|---|---|");
    for (fail, label) in [
        (&[][..], "all succeed"),
        (&[18][..], "1 GiB fail"),
        (&[9][..], "2 MiB fail"),
        (&[18, 9][..], "no superpages"),
    ] {
        for gib in [1u64, 4, 8, 64, 256, 1024] {
            if fail.contains(&9) && gib > 64 {
                continue;
            }
            let c: Vec<u64> = strategies
                .iter()
                .map(|&s| calls(gib << 10, fail, s))
                .collect();
            println!("| {gib} GiB | {label} | {} | {} | {} |", c[0], c[1], c[2]);
        }
    }

    let before = vm_hwm_kib().unwrap_or(0);
    for strategy in strategies {
        calls(1 << 20, &[], strategy);
        calls(1 << 20, &[18, 9], strategy);
    }
    let after = vm_hwm_kib().unwrap_or(0);
    println!(
        "\npeak RSS (VmHWM): {before} KiB before, {after} KiB after 1 TiB builds (all succeed and 4 KiB only), all strategies"
    );
}
