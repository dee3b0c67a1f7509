//! The compact free lists (progressions of identically broken frames) against the
//! plain representation they replaced: a reference buddy allocator with one sorted set
//! per order, laid out frame by frame exactly as the simulator used to. On random
//! fragmented hosts and random request sequences both must hand out the same frames, in
//! the same order, with the same counts per order.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use xg_ctrl::sim::buddy::{pages, Buddy, MAX_ORDER};
use xg_ctrl::sim::{HostConfig, NodeConfig, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, MemoryOps, PageOrder};

const PAGES_1G: u64 = 1 << 18;
const PAGES_2M: u64 = 1 << 9;

/// The allocator as it was: one sorted set of chunk addresses per order.
#[derive(Debug, Clone)]
struct RefBuddy {
    start: u64,
    end: u64,
    free: Vec<BTreeSet<u64>>,
    avail: u64,
}

impl RefBuddy {
    fn new(start: u64, end: u64) -> RefBuddy {
        RefBuddy {
            start,
            end,
            free: vec![BTreeSet::new(); usize::from(MAX_ORDER) + 1],
            avail: 0,
        }
    }

    fn add_free_range(&mut self, from: u64, to: u64) {
        let mut cur = from.max(self.start);
        let to = to.min(self.end);
        while cur < to {
            let mut order = MAX_ORDER;
            while order > 0 && (!cur.is_multiple_of(pages(order)) || cur + pages(order) > to) {
                order -= 1;
            }
            self.free[usize::from(order)].insert(cur);
            self.avail += pages(order);
            cur += pages(order);
        }
    }

    fn alloc(&mut self, order: u8) -> Option<u64> {
        let mut found = (order..=MAX_ORDER).find(|&o| !self.free[usize::from(o)].is_empty())?;
        let mut mfn = self.free[usize::from(found)].pop_first()?;
        while found > order {
            found -= 1;
            self.free[usize::from(found)].insert(mfn);
            mfn += pages(found);
        }
        self.avail -= pages(order);
        Some(mfn)
    }

    fn free(&mut self, mfn: u64, order: u8) {
        self.avail += pages(order);
        let (mut mfn, mut order) = (mfn, order);
        while order < MAX_ORDER {
            let buddy = mfn ^ pages(order);
            if buddy < self.start
                || buddy + pages(order) > self.end
                || !self.free[usize::from(order)].remove(&buddy)
            {
                break;
            }
            mfn = mfn.min(buddy);
            order += 1;
        }
        self.free[usize::from(order)].insert(mfn);
    }

    fn counts(&self) -> Vec<usize> {
        self.free.iter().map(BTreeSet::len).collect()
    }

    fn chunks(&self) -> Vec<(u64, u8)> {
        (0..=MAX_ORDER)
            .flat_map(|o| self.free[usize::from(o)].iter().map(move |&m| (m, o)))
            .collect()
    }
}

/// The old host layout, frame by frame; returns the node and the pages of its holes.
fn ref_layout(start: u64, end: u64, free: u64, n: &NodeConfig) -> (RefBuddy, u64) {
    let mut b = RefBuddy::new(start, end);
    let mut holes = 0;
    let to = start + free;
    let mut whole_1g = n.free_1g.unwrap_or(u64::MAX);
    let mut whole_2m = n.free_2m;
    let mut cur = start;
    while cur + PAGES_1G <= to {
        if whole_1g > 0 {
            whole_1g -= 1;
            b.add_free_range(cur, cur + PAGES_1G);
        } else {
            holes += 1;
            ref_fill_2m(&mut b, &mut holes, cur + 1, cur + PAGES_1G, &mut whole_2m);
        }
        cur += PAGES_1G;
    }
    ref_fill_2m(&mut b, &mut holes, cur, to, &mut whole_2m);
    (b, holes)
}

fn ref_fill_2m(b: &mut RefBuddy, holes: &mut u64, from: u64, to: u64, budget: &mut Option<u64>) {
    let Some(budget) = budget else {
        b.add_free_range(from, to);
        return;
    };
    let mut cur = from;
    let head_end = from.div_ceil(PAGES_2M) * PAGES_2M;
    if head_end > cur {
        b.add_free_range(cur, head_end.min(to));
        cur = head_end;
    }
    let whole = (to.saturating_sub(cur) / PAGES_2M).min(*budget);
    *budget -= whole;
    b.add_free_range(cur, cur + whole * PAGES_2M);
    cur += whole * PAGES_2M;
    while cur + PAGES_2M <= to {
        *holes += 1;
        b.add_free_range(cur + 1, cur + PAGES_2M);
        cur += PAGES_2M;
    }
    b.add_free_range(cur, to);
}

/// The reference nodes of `cfg` and the pages of all holes and used memory.
fn ref_host(cfg: &HostConfig) -> (Vec<RefBuddy>, u64) {
    let mut start = 0;
    let mut used = 0;
    let mut nodes = Vec::new();
    for n in &cfg.nodes {
        let mem = n.memory_pages().unwrap();
        let free = n.free_pages().unwrap();
        let (b, holes) = ref_layout(start, start + mem, free, n);
        used += holes + (mem - free);
        nodes.push(b);
        start = (start + mem).div_ceil(PAGES_1G) * PAGES_1G;
    }
    (nodes, used)
}

fn node_strategy() -> impl Strategy<Value = NodeConfig> {
    (
        (1u64..=3, 0u64..PAGES_1G),
        0u64..=100,
        proptest::option::weighted(0.8, 0u64..=2),
        proptest::option::weighted(0.8, prop_oneof![Just(0u64), 0u64..=700]),
    )
        .prop_map(|((gib, extra), free_pct, free_1g, free_2m)| {
            let mem = gib * PAGES_1G + extra;
            NodeConfig {
                memory_mib: None,
                memory_pages: Some(mem),
                free_pages: Some(mem * free_pct / 100),
                free_1g,
                free_2m,
                ..NodeConfig::new(0, 2)
            }
        })
}

/// One request: populate `count` extents of `order` on `node`, or give back extent
/// number `pick` (modulo what the domain holds) of the earlier ones.
#[derive(Debug, Clone)]
enum Op {
    Populate { node: usize, order: u8, count: u64 },
    Release { pick: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, prop_oneof![Just(0u8), Just(1), Just(3), Just(8), Just(9), Just(10), Just(17), Just(18)], 1u64..200)
            .prop_map(|(node, order, count)| Op::Populate { node, order, count }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
    ]
}

fn check_host(sim: &Simulator, nodes: &[RefBuddy], used: u64) {
    let h = sim.host_snapshot();
    assert_eq!(h.host_used_pages, used);
    for (snap, r) in h.nodes.iter().zip(nodes) {
        assert_eq!(snap.free_pages, r.avail);
        assert_eq!(snap.free_chunks, r.counts());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whole simulator: same layout, same frames for every extent (exact-node requests,
    /// so placement is not what is compared), same counts after every step.
    #[test]
    fn simulator_hands_out_the_reference_frames(
        node_cfgs in proptest::collection::vec(node_strategy(), 1..=3),
        ops in proptest::collection::vec(op_strategy(), 1..40),
    ) {
        let mut cfg = HostConfig::uniform(1, 1024, 2);
        cfg.nodes = node_cfgs;
        let sim = Simulator::new(&cfg).unwrap();
        let (mut nodes, used) = ref_host(&cfg);
        check_host(&sim, &nodes, used);
        let d = sim.create_domain(DomId(1), &DomainConfig::default()).unwrap();
        sim.set_max_mem(d, 64 << 20).unwrap();
        // gfn -> (node, order, mfn) of every extent the domain holds.
        let mut held: BTreeMap<u64, (usize, u8, u64)> = BTreeMap::new();
        let mut next_gfn = 0u64;
        for op in ops {
            match op {
                Op::Populate { node, order, count } => {
                    let node = node % nodes.len();
                    next_gfn = next_gfn.div_ceil(pages(order)) * pages(order);
                    let gfns: Vec<Gfn> =
                        (0..count).map(|k| Gfn(next_gfn + k * pages(order))).collect();
                    let flags = MemFlags::exact_node(u32::try_from(node).unwrap());
                    let done = sim
                        .populate_physmap(d, PageOrder::new(order).unwrap(), flags, &gfns)
                        .unwrap();
                    let mut expect = 0;
                    for g in &gfns {
                        let Some(mfn) = nodes[node].alloc(order) else { break };
                        expect += 1;
                        prop_assert_eq!(sim.mfn_of(d, *g), Some(mfn), "gfn {:#x}", g.0);
                        held.insert(g.0, (node, order, mfn));
                    }
                    prop_assert_eq!(done, expect);
                    next_gfn += count * pages(order);
                }
                Op::Release { pick } => {
                    if held.is_empty() {
                        continue;
                    }
                    let (&gfn, &(node, order, mfn)) = held.iter().nth(pick % held.len()).unwrap();
                    held.remove(&gfn);
                    let po = PageOrder::new(order).unwrap();
                    prop_assert_eq!(sim.decrease_reservation(d, po, &[Gfn(gfn)]).unwrap(), 1);
                    nodes[node].free(mfn, order);
                }
            }
            check_host(&sim, &nodes, used);
        }
        sim.check_invariants().unwrap();
        sim.destroy(d).unwrap();
        for (_, &(node, order, mfn)) in held.iter().rev() {
            nodes[node].free(mfn, order);
        }
        check_host(&sim, &nodes, used);
        sim.check_invariants().unwrap();
    }

    /// The buddy alone: frames broken in runs, then random allocations and frees in any
    /// order; the same chunk comes back each time and the free chunks are identical.
    #[test]
    fn buddy_with_broken_runs_matches_reference(
        frame_order in prop_oneof![Just(9u8), Just(18), 1u8..=12],
        count in 1u64..40,
        steps in proptest::collection::vec((any::<bool>(), 0u8..=10, any::<usize>()), 1..300),
    ) {
        let size = pages(frame_order);
        let end = (count + 1) * size + 3;
        let mut b = Buddy::new(0, end);
        let mut r = RefBuddy::new(0, end);
        b.add_broken_frames(size, count, frame_order);
        b.add_free_range(0, 2);
        for k in 1..=count {
            r.add_free_range(k * size + 1, (k + 1) * size);
        }
        r.add_free_range(0, 2);
        let mut out: Vec<(u64, u8)> = Vec::new();
        for (take, order, pick) in steps {
            if take || out.is_empty() {
                let got = b.alloc(order);
                prop_assert_eq!(got, r.alloc(order));
                if let Some(m) = got {
                    out.push((m, order));
                }
            } else {
                let (m, o) = out.swap_remove(pick % out.len());
                b.free(m, o);
                r.free(m, o);
            }
            prop_assert_eq!(b.avail(), r.avail);
            let counts: Vec<usize> = (0..=MAX_ORDER).map(|o| b.chunks(o)).collect();
            prop_assert_eq!(counts, r.counts());
        }
        prop_assert_eq!(b.free_chunks().collect::<Vec<_>>(), r.chunks());
        // Storage never exceeds the plain sets (plus the progressions laid out).
        let plain: usize = r.counts().iter().sum();
        prop_assert!(b.stored_runs() <= plain + usize::from(frame_order));
    }
}

/// The case this representation is for: a 1 TiB node without a whole 2 MiB frame is
/// laid out, filled page by page at its start and emptied again with the same results
/// as the reference, and stores a handful of progressions, not millions of chunks.
#[test]
fn big_fragmented_node_stays_small() {
    let node = NodeConfig {
        free_1g: Some(0),
        free_2m: Some(0),
        ..NodeConfig::new(1 << 20, 2)
    };
    let mut cfg = HostConfig::uniform(1, 1024, 2);
    cfg.nodes = vec![node];
    let sim = Simulator::new(&cfg).unwrap();
    let h = sim.host_snapshot();
    // 2^19 broken 2 MiB frames, one chunk of each order 0..=8 in every one.
    assert_eq!(h.host_used_pages, 1 << 19);
    assert_eq!(h.nodes[0].free_chunks[..9], [1 << 19; 9]);
    assert!(h.nodes[0].free_chunks[9..].iter().all(|&c| c == 0));

    let mut b = Buddy::new(0, 1 << 28);
    b.add_broken_frames(0, 1 << 19, 9);
    assert_eq!(b.stored_runs(), 9);
    let mut taken = Vec::new();
    for _ in 0..10_000 {
        taken.push(b.alloc(0).unwrap());
    }
    assert_eq!(taken[..3], [1, 513, 1025]);
    for (i, &m) in taken.iter().enumerate().rev() {
        if i % 2 == 0 {
            b.free(m, 0);
        }
    }
    assert!(b.stored_runs() < 20, "{} runs", b.stored_runs());
    assert_eq!(b.chunks(0), (1 << 19) - 5_000);
}

/// A 4 TiB host with no whole 1 GiB frame and 64 whole 2 MiB frames per node: 18.9
/// million free chunks, laid out in no time (the plain sets took seconds and 400 MiB in
/// a release build), with the counts of the frame-by-frame layout.
#[test]
fn four_tib_fragmented_host_is_cheap_and_counts_match() {
    let mut cfg = HostConfig::uniform(4, 1 << 20, 8);
    for n in &mut cfg.nodes {
        n.free_1g = Some(0);
        n.free_2m = Some(64);
    }
    let sim = Simulator::new(&cfg).unwrap();
    let h = sim.host_snapshot();
    // Per node: GiB 0 keeps 64 whole 2 MiB frames after its broken first one (chunks of
    // orders 9 (twice) and 10..=14); every other 2 MiB frame is broken.
    let broken = 1 + (PAGES_1G / PAGES_2M - 65) + 1023 * (PAGES_1G / PAGES_2M);
    assert_eq!(h.host_used_pages, 4 * broken);
    let mut per_order = vec![usize::try_from(broken).unwrap(); 9];
    per_order.extend([2, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    for n in &h.nodes {
        assert_eq!(n.free_chunks, per_order);
        assert_eq!(n.free_pages, (1 << 28) - broken);
    }
    // Round-robin over the nodes, lowest chunk of each first: order 9 exists (whole
    // frames), then the single pages of the broken frames.
    let d = sim
        .create_domain(DomId(1), &DomainConfig::default())
        .unwrap();
    sim.set_max_mem(d, 64 << 20).unwrap();
    let gfns: Vec<Gfn> = (0..8).map(|k| Gfn(k << 9)).collect();
    assert_eq!(
        sim.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &gfns)
            .unwrap(),
        8
    );
    let gfns: Vec<Gfn> = (0..8).map(|k| Gfn((1 << 20) + k)).collect();
    assert_eq!(
        sim.populate_physmap(d, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
            .unwrap(),
        8
    );
    let mfns: Vec<u64> = gfns.iter().map(|g| sim.mfn_of(d, *g).unwrap()).collect();
    let node = |n: u64| n << 28;
    // Eight 2 MiB extents went round the four nodes twice from node 1 on, so the pages
    // start at node 1 again; each node's second page is in its first broken frame after
    // the 64 whole ones.
    let expect: Vec<u64> = [1, 33281]
        .iter()
        .flat_map(|&off| [1, 2, 3, 0].map(|n| node(n) + off))
        .collect();
    assert_eq!(mfns, expect);
}
