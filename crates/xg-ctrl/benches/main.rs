//! Simulator throughput: extents per second by order, a whole 1 TiB guest layout, and a
//! badly fragmented 4 TiB host.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, MemoryOps, PageOrder};

const DOM: DomId = DomId(1);

fn fresh(mib_per_node: u64) -> Simulator {
    let sim = Simulator::new(&HostConfig::uniform(2, mib_per_node, 8)).expect("host");
    sim.create_domain(DOM, &DomainConfig::default())
        .expect("domain");
    sim.set_max_mem(DOM, u64::from(u32::MAX) * 4)
        .expect("max_mem");
    sim
}

fn populate(c: &mut Criterion) {
    let mut g = c.benchmark_group("populate_physmap");
    for (name, order, count) in [
        ("1GiB", PageOrder::ORDER_1G, 64u64),
        ("2MiB", PageOrder::ORDER_2M, 4096),
        ("4KiB", PageOrder::ORDER_4K, 65536),
    ] {
        let gfns: Vec<Gfn> = (0..count).map(|i| Gfn(i << order.get())).collect();
        g.throughput(Throughput::Elements(count));
        g.bench_function(name, |b| {
            b.iter_batched(
                || fresh(65536),
                |sim| {
                    let done = sim
                        .populate_physmap(DOM, order, MemFlags::NONE, &gfns)
                        .expect("populate");
                    assert_eq!(done as u64, count);
                    sim
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

/// meminit_hvm's calls for a 1 TiB guest (1 GiB where aligned, 4 x 2 MiB, 4 KiB) on a
/// 4 TiB host.
fn build_1tib(c: &mut Criterion) {
    let mut g = c.benchmark_group("meminit_layout");
    g.sample_size(10);
    g.bench_function("1TiB_guest_on_4TiB_host", |b| {
        b.iter_batched(
            || fresh(2 << 20),
            |sim| {
                let total: u64 = 1 << 28;
                let mut gfn = 0u64;
                let low: Vec<Gfn> = (0..0xa0).chain(0xc0..0x200).map(Gfn).collect();
                sim.populate_physmap_exact(DOM, PageOrder::ORDER_4K, MemFlags::NONE, &low)
                    .expect("low");
                gfn += 0x200;
                while gfn < total {
                    if gfn.is_multiple_of(1 << 18) && total - gfn >= 1 << 18 {
                        sim.populate_physmap(DOM, PageOrder::ORDER_1G, MemFlags::NONE, &[Gfn(gfn)])
                            .expect("1g");
                        gfn += 1 << 18;
                    } else {
                        // Up to 4 x 2 MiB, never across a 1 GiB boundary.
                        let n = ((gfn | ((1 << 18) - 1)) + 1 - gfn).min(2048) / 512;
                        let v: Vec<Gfn> = (0..n).map(|i| Gfn(gfn + i * 512)).collect();
                        sim.populate_physmap(DOM, PageOrder::ORDER_2M, MemFlags::NONE, &v)
                            .expect("2m");
                        gfn += n * 512;
                    }
                }
                sim
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

/// A 4 TiB host without a whole 1 GiB frame and 64 whole 2 MiB frames per node (18.9
/// million free chunks): created, then 64 Ki single pages taken on each node.
fn fragmented_4tib(c: &mut Criterion) {
    let mut cfg = HostConfig::uniform(4, 1 << 20, 8);
    for n in &mut cfg.nodes {
        n.free_1g = Some(0);
        n.free_2m = Some(64);
    }
    let mut g = c.benchmark_group("fragmented_4tib_host");
    g.bench_function("create", |b| {
        b.iter(|| Simulator::new(&cfg).expect("host"));
    });
    let gfns: Vec<Gfn> = (0..65536).map(Gfn).collect();
    g.throughput(Throughput::Elements(65536));
    g.bench_function("64Ki_pages", |b| {
        b.iter_batched(
            || {
                let sim = Simulator::new(&cfg).expect("host");
                sim.create_domain(DOM, &DomainConfig::default())
                    .expect("domain");
                sim.set_max_mem(DOM, u64::from(u32::MAX) * 4)
                    .expect("max_mem");
                sim
            },
            |sim| {
                let done = sim
                    .populate_physmap(DOM, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
                    .expect("populate");
                assert_eq!(done, gfns.len());
                sim
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, populate, build_1tib, fragmented_4tib);
criterion_main!(benches);
