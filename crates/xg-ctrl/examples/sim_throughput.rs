//! Simulator throughput: populate_physmap extents and guest pages per second for each
//! extent order, next to the same calls on a hypervisor that does nothing (the floor
//! of the `MemoryOps` call path), printed as one line of JSON.
//!
//! `cargo run --release -p xg-ctrl --example sim_throughput [ROUNDS]`
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps, E820Entry, Gfn, MemFlags, MemoryOps, PageOrder};

const DOM: DomId = DomId(1);

/// Grants every extent and remembers nothing.
#[derive(Debug)]
struct NoOp;

impl MemoryOps for NoOp {
    fn populate_physmap(
        &self,
        _: DomId,
        _: PageOrder,
        _: MemFlags,
        g: &[Gfn],
    ) -> xg_ctrl::Result<usize> {
        Ok(std::hint::black_box(g).len())
    }
    fn populate_physmap_exact(
        &self,
        _: DomId,
        _: PageOrder,
        _: MemFlags,
        _: &[Gfn],
    ) -> xg_ctrl::Result<()> {
        Ok(())
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

fn fresh() -> Simulator {
    // Two nodes of 1 TiB: room for the largest guest below in any extent size.
    let sim = Simulator::new(&HostConfig::uniform(2, 1 << 20, 8)).expect("host");
    sim.create_domain(DOM, &DomainConfig::default())
        .expect("domain");
    sim.set_max_mem(DOM, u64::from(u32::MAX) * 4)
        .expect("max_mem");
    sim
}

/// Populates `pages` in calls of `per_call` extents of `order`; returns the time.
fn fill(ops: &dyn MemoryOps, pages: u64, order: PageOrder, per_call: u64) -> Duration {
    let extents = pages >> order.get();
    let mut gfns = Vec::new();
    let start = Instant::now();
    let mut next = 0u64;
    while next < extents {
        gfns.clear();
        let n = per_call.min(extents - next);
        gfns.extend((next..next + n).map(|i| Gfn(i << order.get())));
        let done = ops
            .populate_physmap(DOM, order, MemFlags::NONE, &gfns)
            .expect("populate");
        assert_eq!(u64::try_from(done).ok(), Some(n));
        next += n;
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64().max(1e-9)
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let mut rows = Vec::new();
    // Call sizes as meminit_hvm makes them (one 1 GiB extent, four 2 MiB, 512 x 4 KiB),
    // over guests big enough to time (1 TiB, 64 GiB, 4 GiB).
    for (name, order, per_call, gib) in [
        ("1GiB", PageOrder::ORDER_1G, 1u64, 1024u64),
        ("2MiB", PageOrder::ORDER_2M, 4, 64),
        ("4KiB", PageOrder::ORDER_4K, 512, 4),
    ] {
        let pages = gib << 18;
        let extents = pages >> order.get();
        let (mut sim_t, mut noop_t) = (Vec::new(), Vec::new());
        for _ in 0..rounds.max(1) {
            let sim = fresh();
            sim_t.push(fill(&sim, pages, order, per_call));
            noop_t.push(fill(&NoOp, pages, order, per_call));
        }
        let (sim, noop) = (median(sim_t), median(noop_t));
        rows.push(format!(
            "{{\"order\":\"{name}\",\"extents\":{extents},\"calls\":{},\"sim_s\":{sim:.6},\
             \"noop_s\":{noop:.6},\"sim_extents_per_s\":{:.0},\"sim_pages_per_s\":{:.0},\
             \"noop_extents_per_s\":{:.0}}}",
            extents.div_ceil(per_call),
            extents as f64 / sim,
            pages as f64 / sim,
            extents as f64 / noop
        ));
    }
    println!("[{}]", rows.join(","));
}
