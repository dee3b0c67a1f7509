//! The simulator's cost grows with extents, not memory: a 1 TiB guest on a 4 TiB host
//! is built in meminit's pattern quickly and with little memory.

use std::time::Instant;

use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, GuestMemory, MemFlags, MemoryOps, PageOrder};

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

#[test]
#[allow(clippy::print_stderr)]
fn one_tib_guest_on_a_four_tib_host() {
    let rss_before = peak_rss_kib();
    let start = Instant::now();
    let sim = Simulator::new(&HostConfig::uniform(4, 1 << 20, 16)).unwrap();
    let d = DomId(1);
    sim.create_domain(
        d,
        &DomainConfig {
            max_vcpus: 64,
            ..DomainConfig::default()
        },
    )
    .unwrap();
    sim.set_max_mem(d, 1 << 30).unwrap();
    let total: u64 = 1 << 28;
    sim.claim_pages(d, total - 0x20).unwrap();
    // meminit_hvm's pattern: low 4 KiB pages around the VGA hole, 1 GiB extents where
    // aligned, 4 x 2 MiB otherwise (the MMIO hole is ignored: all RAM is contiguous).
    let low: Vec<Gfn> = (0..0xa0).chain(0xc0..0x200).map(Gfn).collect();
    sim.populate_physmap_exact(d, PageOrder::ORDER_4K, MemFlags::NONE, &low)
        .unwrap();
    let mut gfn = 0x200u64;
    let mut calls = 1;
    while gfn < total {
        if gfn.is_multiple_of(1 << 18) {
            assert_eq!(
                sim.populate_physmap(d, PageOrder::ORDER_1G, MemFlags::NONE, &[Gfn(gfn)])
                    .unwrap(),
                1
            );
            gfn += 1 << 18;
        } else {
            // Up to 4 x 2 MiB, never across a 1 GiB boundary.
            let n = ((gfn | ((1 << 18) - 1)) + 1 - gfn).min(2048) / 512;
            let v: Vec<Gfn> = (0..n).map(|i| Gfn(gfn + i * 512)).collect();
            assert_eq!(
                sim.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &v)
                    .unwrap(),
                v.len()
            );
            gfn += n * 512;
        }
        calls += 1;
    }
    sim.claim_pages(d, 0).unwrap();
    sim.write_guest(d, 0x100000, &[0xaa; 8192]).unwrap();
    let elapsed = start.elapsed();
    let snap = sim.domain_snapshot(d).unwrap();
    assert_eq!(snap.ram_pages, total - 0x20);
    assert_eq!(snap.tot_pages, total - 0x20);
    // Round-robin over the 4 nodes.
    let on_node = |n| {
        snap.extents
            .iter()
            .filter(|e| e.order == 18 && e.node == Some(n))
            .map(|e| e.count)
            .sum::<u64>()
    };
    assert!((0..4).all(|n| on_node(n) >= 250), "{:?}", snap.extents);
    sim.check_invariants().unwrap();
    let rss_growth = peak_rss_kib().saturating_sub(rss_before);
    eprintln!(
        "1 TiB guest on a 4 TiB host: {calls} calls in {:.1} ms, peak RSS {} KiB (+{rss_growth} KiB)",
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
    assert!(rss_growth < 64 * 1024, "grew by {rss_growth} KiB");
    sim.destroy(d).unwrap();
    assert_eq!(sim.free_pages(), 4 << 28);
}
