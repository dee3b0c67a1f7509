//! Cost of a badly fragmented simulated host: a 4 TiB host (4 nodes x 1 TiB) with no
//! whole 1 GiB frame and 64 whole 2 MiB frames per node is created, then one domain takes
//! every free page of it (each node in turn, largest chunks first), then gives it all back.
//! Prints the time of each step and the peak resident set as one line of JSON.
//!
//! `cargo run --release -p xg-ctrl --example sim_fragmented [TIB_PER_NODE]`
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::time::Instant;

use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, MemoryOps, PageOrder};

const DOM: DomId = DomId(1);
/// Extents per populate call.
const BATCH: u64 = 4096;

/// Peak resident set of this process in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let tib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let mut cfg = HostConfig::uniform(4, tib << 20, 8);
    for n in &mut cfg.nodes {
        n.free_1g = Some(0);
        n.free_2m = Some(64);
    }
    let start = Instant::now();
    let sim = Simulator::new(&cfg).expect("host");
    let created = start.elapsed();
    let rss_created = peak_rss_kib();
    let free = sim.free_pages();

    sim.create_domain(DOM, &DomainConfig::default())
        .expect("domain");
    sim.set_max_mem(DOM, u64::from(u32::MAX) * 4)
        .expect("max_mem");
    let start = Instant::now();
    let (mut gfn, mut extents, mut calls) = (0u64, 0u64, 0u64);
    for node in 0..4 {
        let flags = MemFlags::exact_node(node);
        for order in (0..=18u8).rev() {
            let po = PageOrder::new(order).expect("order");
            loop {
                let gfns: Vec<Gfn> = (0..BATCH).map(|i| Gfn(gfn + (i << order))).collect();
                let done = sim
                    .populate_physmap(DOM, po, flags, &gfns)
                    .expect("populate");
                let done = u64::try_from(done).expect("count");
                calls += 1;
                extents += done;
                gfn += done << order;
                if done < BATCH {
                    break;
                }
            }
        }
    }
    let filled = start.elapsed();
    assert_eq!(sim.free_pages(), 0, "every free page taken");
    let rss_filled = peak_rss_kib();
    let start = Instant::now();
    sim.destroy(DOM).expect("destroy");
    let destroyed = start.elapsed();
    assert_eq!(sim.free_pages(), free, "everything back");
    println!(
        "{{\"host_tib\":{},\"free_pages\":{free},\"create_s\":{:.3},\"rss_after_create_kib\":\
         {rss_created},\"extents\":{extents},\"calls\":{calls},\"fill_s\":{:.3},\
         \"rss_after_fill_kib\":{rss_filled},\"destroy_s\":{:.3},\"peak_rss_kib\":{}}}",
        4 * tib,
        created.as_secs_f64(),
        filled.as_secs_f64(),
        destroyed.as_secs_f64(),
        peak_rss_kib()
    );
}
