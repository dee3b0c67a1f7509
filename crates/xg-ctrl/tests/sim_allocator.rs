//! Allocator semantics of the simulator: buddy invariants, claims, max_mem, partial
//! counts, fragmentation, NUMA placement, PoD, destroy.

use proptest::prelude::*;
use xg_ctrl::sim::{ExtentBudget, ExtentCount, HostConfig, NodeConfig, Simulator};
use xg_ctrl::{
    AffinityKind, DomId, DomainConfig, DomainOps, Error, Gfn, GuestMemory, MemFlags, MemoryOps,
    PageOrder,
};

const O0: PageOrder = PageOrder::ORDER_4K;
const O9: PageOrder = PageOrder::ORDER_2M;
const O18: PageOrder = PageOrder::ORDER_1G;

fn gfns(first: u64, n: u64, order: PageOrder) -> Vec<Gfn> {
    (0..n).map(|i| Gfn(first + (i << order.get()))).collect()
}

/// A domain with `max_mib` of max_mem.
fn guest(sim: &Simulator, domid: u16, max_mib: u64) -> DomId {
    let d = sim
        .create_domain(
            DomId(domid),
            &DomainConfig {
                max_vcpus: 4,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    sim.set_max_mem(d, max_mib * 1024).unwrap();
    d
}

fn host(nodes: Vec<NodeConfig>) -> Simulator {
    let mut cfg = HostConfig::uniform(1, 1024, 4);
    cfg.nodes = nodes;
    Simulator::new(&cfg).unwrap()
}

fn node_mib(mib: u64, cpus: u32) -> NodeConfig {
    NodeConfig::new(mib, cpus)
}

fn extents_on(sim: &Simulator, d: DomId, order: u8, node: u32) -> u64 {
    sim.domain_snapshot(d)
        .unwrap()
        .extents
        .iter()
        .filter(|e| e.order == order && e.node == Some(node))
        .map(|e| e.count)
        .sum()
}

#[test]
fn default_host_is_two_nodes_and_consistent() {
    let sim = Simulator::default();
    let h = sim.host_snapshot();
    assert_eq!(h.nodes.len(), 2);
    assert_eq!(h.total_pages, 2 * (64 << 18));
    // Broken 1 GiB frames cost one page each.
    assert_eq!(h.free_pages + h.host_used_pages, h.total_pages);
    assert_eq!(h.nodes[0].free_chunks[18], 52);
    assert_eq!(h.nodes[1].free_chunks[18], 56);
    sim.check_invariants().unwrap();
}

#[test]
fn max_mem_e2big_gives_a_short_count_mid_call() {
    let sim = host(vec![node_mib(1024, 4)]);
    let d = guest(&sim, 1, 0);
    sim.set_max_mem(d, 1000 * 4).unwrap();
    // 512 pages fit under 1000, the second extent would not (E2BIG inside Xen).
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 4, O9))
            .unwrap(),
        1
    );
    let err = sim
        .populate_physmap_exact(d, O9, MemFlags::NONE, &gfns(512, 2, O9))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Partial {
                requested: 2,
                done: 0,
                order: 9,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::EBUSY));
    // 4 KiB pages still fit up to the limit, exactly.
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(512, 600, O0))
            .unwrap(),
        488
    );
    let info = sim.domain_info(d).unwrap();
    assert_eq!((info.tot_pages, info.max_pages), (1000, 1000));
    // Lowering max_mem below tot_pages is allowed; then nothing more fits (EPERM).
    sim.set_max_mem(d, 4 * 4).unwrap();
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(2000, 1, O0))
            .unwrap(),
        0
    );
    sim.check_invariants().unwrap();
}

#[test]
fn populate_rejects_bad_arguments_with_zero() {
    let sim = host(vec![node_mib(1024, 4)]);
    let d = guest(&sim, 1, 512);
    // Unknown domain, node beyond MAX_NUMNODES, gfn beyond the address width.
    assert_eq!(
        sim.populate_physmap(DomId(9), O0, MemFlags::NONE, &gfns(0, 1, O0))
            .unwrap(),
        0
    );
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::node(64), &gfns(0, 1, O0))
            .unwrap(),
        0
    );
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &[Gfn(1 << 40)])
            .unwrap(),
        0
    );
    // PoD on a PV domain.
    let pv = sim
        .create_domain(
            DomId(2),
            &DomainConfig {
                hvm: false,
                hap: false,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    sim.set_max_mem(pv, 1024).unwrap();
    assert_eq!(
        sim.populate_physmap(pv, O0, MemFlags::NONE.with_pod(), &gfns(0, 1, O0))
            .unwrap(),
        0
    );
    // Populating over a populated gfn stops the call.
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(0, 2, O0))
            .unwrap(),
        2
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 1, O9))
            .unwrap(),
        0
    );
    assert_eq!(sim.domain_info(d).unwrap().tot_pages, 2);
}

#[test]
fn misaligned_extents_are_counted_and_accessible() {
    let sim = host(vec![node_mib(1024, 4)]);
    let d = guest(&sim, 1, 64);
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &[Gfn(3)])
            .unwrap(),
        1
    );
    let snap = sim.domain_snapshot(d).unwrap();
    assert_eq!(snap.misaligned_extents, 1);
    assert!(sim.mfn_of(d, Gfn(3 + 511)).is_some());
    assert!(sim.mfn_of(d, Gfn(3 + 512)).is_none());
    assert_eq!(sim.decrease_reservation(d, O0, &[Gfn(100)]).unwrap(), 1);
    sim.check_invariants().unwrap();
}

#[test]
fn claims_reserve_memory_against_other_domains() {
    let sim = host(vec![node_mib(64, 2)]);
    let free = sim.free_pages();
    let a = guest(&sim, 1, 64);
    let b = guest(&sim, 2, 64);
    let claim = 10_000;
    sim.claim_pages(a, claim).unwrap();
    assert_eq!(sim.host_snapshot().outstanding_claims, claim);
    // B gets everything but the claim, one page at a time, and then nothing.
    let want = free - claim;
    let got = sim
        .populate_physmap(b, O0, MemFlags::NONE, &gfns(0, want + 5, O0))
        .unwrap();
    assert_eq!(got as u64, want);
    // A's allocations succeed and consume the claim.
    assert_eq!(
        sim.populate_physmap(a, O9, MemFlags::NONE, &gfns(0, 19, O9))
            .unwrap(),
        19
    );
    assert_eq!(
        sim.domain_info(a).unwrap().outstanding_pages,
        claim - 19 * 512
    );
    let rest = claim - 19 * 512;
    assert_eq!(
        sim.populate_physmap(a, O0, MemFlags::NONE, &gfns(1 << 20, rest, O0))
            .unwrap() as u64,
        rest
    );
    assert_eq!(sim.free_pages(), 0);
    assert_eq!(sim.host_snapshot().outstanding_claims, 0);
    sim.check_invariants().unwrap();
}

#[test]
fn claim_errors_follow_xen() {
    let sim = host(vec![node_mib(64, 2)]);
    let free = sim.free_pages();
    let d = guest(&sim, 1, 1024);
    let errno = |r: Result<(), Error>| r.unwrap_err().errno();
    assert_eq!(errno(sim.claim_pages(DomId(77), 10)), Some(libc::EINVAL));
    assert_eq!(
        errno(sim.claim_pages(d, 1024 * 256 + 1)),
        Some(libc::EINVAL),
        "above max_pages"
    );
    assert_eq!(errno(sim.claim_pages(d, free + 1)), Some(libc::ENOMEM));
    sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(0, 100, O0))
        .unwrap();
    assert_eq!(
        errno(sim.claim_pages(d, 100)),
        Some(libc::EINVAL),
        "not above tot_pages"
    );
    sim.claim_pages(d, 1100).unwrap();
    assert_eq!(sim.domain_info(d).unwrap().outstanding_pages, 1000);
    assert_eq!(
        errno(sim.claim_pages(d, 2000)),
        Some(libc::EINVAL),
        "one claim at a time"
    );
    sim.claim_pages(d, 0).unwrap();
    assert_eq!(sim.physinfo_outstanding(), 0);
    sim.claim_pages(d, 2000).unwrap();
    sim.destroy(d).unwrap();
    assert_eq!(sim.physinfo_outstanding(), 0, "destroy drops the claim");
}

trait Outstanding {
    fn physinfo_outstanding(&self) -> u64;
}

impl Outstanding for Simulator {
    fn physinfo_outstanding(&self) -> u64 {
        use xg_ctrl::HostOps;
        self.physinfo().unwrap().outstanding_pages
    }
}

#[test]
fn fragmentation_makes_superpages_fail_while_4k_succeed() {
    let frag = |free_1g, free_2m| NodeConfig {
        free_1g,
        free_2m,
        ..node_mib(4096, 2)
    };
    let sim = host(vec![frag(Some(0), None)]);
    let d = guest(&sim, 1, 4096);
    assert_eq!(
        sim.populate_physmap(d, O18, MemFlags::NONE, &gfns(0, 1, O18))
            .unwrap(),
        0
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 4, O9))
            .unwrap(),
        4
    );

    let sim = host(vec![frag(Some(0), Some(3))]);
    let d = guest(&sim, 1, 4096);
    assert_eq!(
        sim.populate_physmap(d, O18, MemFlags::NONE, &gfns(0, 1, O18))
            .unwrap(),
        0
    );
    // Only three whole 2 MiB frames exist: the fourth extent fails mid-call.
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 8, O9))
            .unwrap(),
        3
    );
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(1 << 20, 4096, O0))
            .unwrap(),
        4096
    );
    sim.check_invariants().unwrap();
}

#[test]
fn knobs_fail_orders_and_budgets() {
    let mut cfg = HostConfig::uniform(1, 8192, 4);
    cfg.fail_orders = vec![18];
    cfg.extent_budget = vec![ExtentBudget { order: 9, count: 6 }];
    let sim = Simulator::new(&cfg).unwrap();
    let d = guest(&sim, 1, 8192);
    assert_eq!(
        sim.populate_physmap(d, O18, MemFlags::NONE, &gfns(0, 1, O18))
            .unwrap(),
        0
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 4, O9))
            .unwrap(),
        4
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(2048, 4, O9))
            .unwrap(),
        2
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(8192, 1, O9))
            .unwrap(),
        0
    );
}

#[test]
fn exact_node_never_falls_back() {
    let small = NodeConfig {
        free_pages: Some(100),
        ..node_mib(1024, 2)
    };
    let sim = host(vec![small, node_mib(1024, 2)]);
    let d = guest(&sim, 1, 1024);
    let before = sim.node_free_pages();
    let n = sim
        .populate_physmap(d, O0, MemFlags::exact_node(0), &gfns(0, 200, O0))
        .unwrap();
    assert_eq!(n, 100);
    assert_eq!(sim.node_free_pages(), vec![0, before[1]]);
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::exact_node(5), &gfns(1000, 1, O0))
            .unwrap(),
        0
    );
    // Without the exact flag the same request moves on to node 1.
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::node(0), &gfns(1000, 10, O0))
            .unwrap(),
        10
    );
    assert_eq!(extents_on(&sim, d, 0, 1), 10);
}

#[test]
fn round_robin_over_nodes_without_affinity() {
    let sim = host(vec![
        node_mib(1024, 2),
        node_mib(1024, 2),
        node_mib(1024, 2),
    ]);
    let d = guest(&sim, 1, 1024);
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 9, O9))
            .unwrap(),
        9
    );
    // last_alloc_node starts at 0, so the rotation begins at node 1.
    for node in 0..3 {
        assert_eq!(extents_on(&sim, d, 9, node), 3, "node {node}");
    }
    let snap = sim.domain_snapshot(d).unwrap();
    assert_eq!(snap.last_alloc_node, 0);
    assert_eq!(
        sim.mfn_of(d, Gfn(0)).unwrap() >> 18,
        1,
        "first extent on node 1"
    );
}

#[test]
fn vcpu_affinity_steers_allocations() {
    let sim = host(vec![node_mib(256, 2), node_mib(256, 2)]);
    let d = guest(&sim, 1, 1024);
    // CPUs 2 and 3 are node 1.
    for v in 0..4 {
        let eff = sim
            .set_vcpu_affinity(d, v, AffinityKind::Hard, &[0b1100])
            .unwrap();
        assert_eq!(eff, vec![0b1100]);
    }
    let snap = sim.domain_snapshot(d).unwrap();
    assert_eq!(snap.node_affinity, vec![1]);
    assert!(snap.node_affinity_auto);
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(0, 6, O9))
            .unwrap(),
        6
    );
    assert_eq!(extents_on(&sim, d, 9, 1), 6);
    // An explicit node affinity wins over the vCPU-derived one, and node 1 is used only
    // once node 0 is full.
    sim.set_node_affinity(d, &[0b01]).unwrap();
    assert!(!sim.domain_snapshot(d).unwrap().node_affinity_auto);
    let n0 = sim.node_free_pages()[0];
    let want = n0 + 512;
    assert_eq!(
        sim.populate_physmap(d, O0, MemFlags::NONE, &gfns(1 << 20, want, O0))
            .unwrap() as u64,
        want
    );
    assert_eq!(sim.node_free_pages()[0], 0);
    assert_eq!(extents_on(&sim, d, 0, 1), 512);
    // A full mask returns to automatic mode.
    sim.set_node_affinity(d, &[0b11]).unwrap();
    assert_eq!(sim.domain_snapshot(d).unwrap().node_affinity, vec![1]);
    assert_eq!(
        sim.set_node_affinity(d, &[0b100]).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    sim.check_invariants().unwrap();
}

#[test]
fn soft_affinity_narrows_the_node_affinity() {
    let sim = host(vec![node_mib(1024, 2), node_mib(1024, 2)]);
    let d = guest(&sim, 1, 1024);
    let eff = sim
        .set_vcpu_affinity(d, 0, AffinityKind::Soft, &[0b0001])
        .unwrap();
    assert_eq!(eff, vec![0b0001]);
    assert_eq!(
        sim.domain_snapshot(d).unwrap().node_affinity,
        vec![0, 1],
        "other vCPUs are soft-unpinned"
    );
    for v in 1..4 {
        sim.set_vcpu_affinity(d, v, AffinityKind::Soft, &[0b0010])
            .unwrap();
    }
    assert_eq!(sim.domain_snapshot(d).unwrap().node_affinity, vec![0]);
    assert_eq!(
        sim.set_vcpu_affinity(d, 4, AffinityKind::Hard, &[1])
            .unwrap_err()
            .errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        sim.set_vcpu_affinity(d, 0, AffinityKind::Hard, &[0])
            .unwrap_err()
            .errno(),
        Some(libc::EINVAL)
    );
}

#[test]
fn pod_target_accounting() {
    let sim = host(vec![node_mib(1024, 2)]);
    let d = guest(&sim, 1, 16);
    let pv = sim
        .create_domain(
            DomId(2),
            &DomainConfig {
                hvm: false,
                hap: false,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    assert_eq!(
        sim.set_pod_target(pv, 10).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        sim.set_pod_target(d, 16 * 256 + 1).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        sim.set_pod_target(DomId(9), 1).unwrap_err().errno(),
        Some(libc::ESRCH)
    );
    // Before populating: the cache is filled to the target, 2 MiB chunks first.
    sim.set_pod_target(d, 1000).unwrap();
    let s = sim.domain_snapshot(d).unwrap();
    assert_eq!(
        (s.pod_cache_pages, s.tot_pages, s.pod_target),
        (1000, 1000, Some(1000))
    );
    let n = sim
        .populate_physmap(d, O9, MemFlags::NONE.with_pod(), &gfns(0, 8, O9))
        .unwrap();
    assert_eq!(n, 8);
    let s = sim.domain_snapshot(d).unwrap();
    assert_eq!((s.pod_entries, s.ram_pages), (4096, 0));
    assert_eq!(
        s.extents,
        vec![ExtentCount {
            order: 9,
            node: None,
            count: 8
        }]
    );
    // Touching a PoD page populates it from the cache.
    sim.write_guest(d, 0x1234, b"pod").unwrap();
    let s = sim.domain_snapshot(d).unwrap();
    assert_eq!(
        (s.pod_entries, s.ram_pages, s.pod_cache_pages, s.tot_pages),
        (4095, 1, 999, 1000)
    );
    let mut buf = [0u8; 3];
    sim.read_guest(d, 0x1234, &mut buf).unwrap();
    assert_eq!(&buf, b"pod");
    sim.check_invariants().unwrap();
    // Releasing PoD entries needs no memory back.
    assert_eq!(sim.decrease_reservation(d, O9, &[Gfn(512)]).unwrap(), 1);
    assert_eq!(sim.domain_snapshot(d).unwrap().pod_entries, 4095 - 512);
    // Memory comes back on destroy, cache included.
    let free_before = sim.free_pages();
    sim.destroy(d).unwrap();
    assert_eq!(sim.free_pages(), free_before + 1000);
    sim.check_invariants().unwrap();
}

#[test]
fn pod_cache_falls_back_to_4k_and_fails_with_enomem() {
    let small = NodeConfig {
        free_pages: Some(700),
        ..node_mib(64, 2)
    };
    let sim = host(vec![small]);
    let d = guest(&sim, 1, 64);
    assert_eq!(
        sim.set_pod_target(d, 800).unwrap_err().errno(),
        Some(libc::ENOMEM)
    );
    let s = sim.domain_snapshot(d).unwrap();
    assert_eq!(
        s.pod_cache_pages, 700,
        "what could be allocated stays in the cache"
    );
    assert_eq!(sim.free_pages(), 0);
    sim.check_invariants().unwrap();
}

#[test]
fn destroy_returns_memory_and_merges_chunks() {
    let sim = Simulator::default();
    let before = sim.host_snapshot();
    let d = guest(&sim, 5, 8192);
    sim.claim_pages(d, 8192 * 256).unwrap();
    assert_eq!(
        sim.populate_physmap(d, O18, MemFlags::NONE, &gfns(1 << 18, 4, O18))
            .unwrap(),
        4
    );
    assert_eq!(
        sim.populate_physmap(d, O9, MemFlags::NONE, &gfns(512, 100, O9))
            .unwrap(),
        100
    );
    sim.populate_physmap_exact(d, O0, MemFlags::NONE, &gfns(0, 512, O0))
        .unwrap();
    sim.decrease_reservation(d, O0, &gfns(5, 3, O0)).unwrap();
    assert!(sim.free_pages() < before.free_pages);
    sim.check_invariants().unwrap();
    sim.destroy(d).unwrap();
    let after = sim.host_snapshot();
    assert_eq!(after, before, "free lists are exactly as before the build");
    assert_eq!(sim.destroy(d).unwrap_err().errno(), Some(libc::ESRCH));
    assert_eq!(
        sim.destroy(DomId(0)).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}

#[derive(Debug, Clone)]
enum Step {
    Populate {
        dom: u16,
        order: u8,
        count: u64,
        at: u64,
        flags: u8,
    },
    Decrease {
        dom: u16,
        order: u8,
        at: u64,
        count: u64,
    },
    Claim {
        dom: u16,
        pages: u64,
    },
    MaxMem {
        dom: u16,
        mib: u64,
    },
    Destroy {
        dom: u16,
    },
    PodTarget {
        dom: u16,
        pages: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let dom = 1u16..4;
    let order = prop_oneof![Just(0u8), Just(1), Just(4), Just(9), Just(10), Just(18)];
    prop_oneof![
        4 => (dom.clone(), order.clone(), 1u64..40, 0u64..2048, 0u8..6)
            .prop_map(|(dom, order, count, at, flags)| Step::Populate { dom, order, count, at, flags }),
        2 => (dom.clone(), order, 0u64..2048, 1u64..20)
            .prop_map(|(dom, order, at, count)| Step::Decrease { dom, order, at, count }),
        1 => (dom.clone(), 0u64..100_000).prop_map(|(dom, pages)| Step::Claim { dom, pages }),
        1 => (dom.clone(), 0u64..600).prop_map(|(dom, mib)| Step::MaxMem { dom, mib }),
        1 => dom.clone().prop_map(|dom| Step::Destroy { dom }),
        1 => (dom, 0u64..60_000).prop_map(|(dom, pages)| Step::PodTarget { dom, pages }),
    ]
}

fn flags_of(code: u8) -> MemFlags {
    match code {
        0 => MemFlags::NONE,
        1 => MemFlags::node(0),
        2 => MemFlags::node(1),
        3 => MemFlags::exact_node(0),
        4 => MemFlags::exact_node(1),
        _ => MemFlags::NONE.with_pod(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the sequence of calls: no machine frame is in two places, free plus
    /// allocated equals the host's memory, tot_pages matches what is mapped, claims add up.
    #[test]
    fn allocator_invariants_hold(steps in prop::collection::vec(step(), 1..60)) {
        let frag = |free_1g, free_2m| NodeConfig { free_1g, free_2m, free_mib: Some(250), ..node_mib(256, 2) };
        let sim = host(vec![frag(Some(0), Some(40)), frag(None, None)]);
        let free0 = sim.free_pages();
        for s in steps {
            let d = |dom: u16| {
                let id = DomId(dom);
                if sim.domain_info(id).is_err() {
                    sim.create_domain(id, &DomainConfig { max_vcpus: 2, ..DomainConfig::default() }).unwrap();
                    sim.set_max_mem(id, 512 * 1024).unwrap();
                }
                id
            };
            match s {
                Step::Populate { dom, order, count, at, flags } => {
                    let id = d(dom);
                    let order = PageOrder::new(order).unwrap();
                    let first = (at << 9) & !(order.pages() - 1);
                    let before = sim.domain_info(id).unwrap().tot_pages;
                    let done = sim.populate_physmap(id, order, flags_of(flags), &gfns(first, count, order)).unwrap();
                    prop_assert!(done as u64 <= count);
                    let after = sim.domain_info(id).unwrap().tot_pages;
                    if !flags_of(flags).is_pod() {
                        prop_assert_eq!(after - before, done as u64 * order.pages());
                    }
                }
                Step::Decrease { dom, order, at, count } => {
                    let id = d(dom);
                    let order = PageOrder::new(order).unwrap();
                    let first = (at << 9) & !(order.pages() - 1);
                    sim.decrease_reservation(id, order, &gfns(first, count, order)).unwrap();
                }
                Step::Claim { dom, pages } => { let _ = sim.claim_pages(d(dom), pages); }
                Step::MaxMem { dom, mib } => sim.set_max_mem(d(dom), mib * 1024).unwrap(),
                Step::Destroy { dom } => { let _ = sim.destroy(DomId(dom)); }
                Step::PodTarget { dom, pages } => { let _ = sim.set_pod_target(d(dom), pages); }
            }
            if let Err(e) = sim.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
        for dom in 1..4 {
            let _ = sim.destroy(DomId(dom));
        }
        prop_assert_eq!(sim.free_pages(), free0);
        prop_assert_eq!(sim.host_snapshot().outstanding_claims, 0);
    }
}

/// A 4 GiB guest laid out as meminit_hvm does (4 KiB below 2 MiB without the VGA hole,
/// 1 GiB where aligned outside the MMIO hole, else 4 x 2 MiB), on the default host:
/// where every extent went, and what the host has left.
#[test]
fn four_gib_guest_on_the_default_host() {
    let sim = Simulator::default();
    let d = guest(&sim, 1, 4096);
    let total: u64 = 4096 << 8;
    let (mmio_start, mmio_end): (u64, u64) = (0xF0000, 0x100000);
    let highmem_end = mmio_end + (total - mmio_start);
    let low: Vec<Gfn> = (0..0xa0).chain(0xc0..0x200).map(Gfn).collect();
    sim.populate_physmap_exact(d, O0, MemFlags::NONE, &low)
        .unwrap();
    for (start, end) in [(0x200, mmio_start), (mmio_end, highmem_end)] {
        let mut gfn = start;
        while gfn < end {
            if gfn.is_multiple_of(1 << 18) && end - gfn >= 1 << 18 {
                assert_eq!(
                    sim.populate_physmap(d, O18, MemFlags::NONE, &[Gfn(gfn)])
                        .unwrap(),
                    1
                );
                gfn += 1 << 18;
            } else {
                let n = ((gfn | ((1 << 18) - 1)) + 1)
                    .min(end)
                    .saturating_sub(gfn)
                    .min(2048)
                    / 512;
                let v = gfns(gfn, n, O9);
                assert_eq!(
                    sim.populate_physmap(d, O9, MemFlags::NONE, &v).unwrap(),
                    v.len()
                );
                gfn += n * 512;
            }
        }
    }
    let snap = sim.domain_snapshot(d).unwrap();
    assert_eq!(snap.ram_pages, total - 0x20);
    let host = sim.host_snapshot();
    let view = serde_json::json!({
        "extents": snap.extents,
        "populated": snap.populated,
        "last_alloc_node": snap.last_alloc_node,
        "host_free_pages": host.free_pages,
        "node_free_pages": host.nodes.iter().map(|n| n.free_pages).collect::<Vec<_>>(),
        "node_free_1g_chunks": host.nodes.iter().map(|n| n.free_chunks[18]).collect::<Vec<_>>(),
        "first_mfns": ([0u64, 0x200, 0x40000, 0x100000].map(|g| sim.mfn_of(d, Gfn(g)))),
    });
    insta::assert_json_snapshot!("four_gib_default_host", view);
    sim.check_invariants().unwrap();
}
