//! The compact p2m (cycles of single extents) against the plain map it replaced: one
//! `BTreeMap` entry per run, merging an extent only into the run just before it. On
//! random populate / PoD / decrease sequences, with frames handed out round-robin over
//! nodes in evenly spaced lanes (as a fragmented host does) plus stray extents, both
//! must list the same runs, resolve every gfn alike and free the same chunks.

use std::collections::BTreeMap;

use proptest::prelude::*;
use xg_ctrl::sim::buddy::pages;
use xg_ctrl::sim::p2m::{aligned_chunks, Backing, Frame, P2m, Removed, Run};

/// The p2m as it was: runs keyed by first gfn.
#[derive(Default)]
struct PlainP2m {
    runs: BTreeMap<u64, Run>,
    ram_pages: u64,
    pod_pages: u64,
}

fn sub_run(r: &Run, k: u64, count: u64) -> Run {
    let backing = match r.backing {
        Backing::Ram { node, step, .. } => Backing::Ram {
            node,
            mfn: r.mfn_of(k).unwrap_or(0),
            step,
        },
        Backing::Pod => Backing::Pod,
    };
    Run {
        count,
        order: r.order,
        backing,
    }
}

fn one(order: u8, backing: Backing) -> Run {
    Run {
        count: 1,
        order,
        backing,
    }
}

impl PlainP2m {
    fn containing(&self, gfn: u64) -> Option<(u64, Run)> {
        let (&start, run) = self.runs.range(..=gfn).next_back()?;
        (gfn < start + run.pages()).then_some((start, *run))
    }

    fn overlaps(&self, gfn: u64, count: u64) -> bool {
        let end = gfn.saturating_add(count);
        self.runs
            .range(..end)
            .next_back()
            .is_some_and(|(&s, r)| s + r.pages() > gfn)
    }

    fn lookup(&self, gfn: u64) -> Option<Frame> {
        let (start, run) = self.containing(gfn)?;
        match run.backing {
            Backing::Pod => Some(Frame::Pod),
            Backing::Ram { node, .. } => {
                let k = (gfn - start) >> run.order;
                let offset = (gfn - start) & (pages(run.order) - 1);
                Some(Frame::Ram {
                    mfn: run.mfn_of(k)? + offset,
                    node,
                })
            }
        }
    }

    fn insert_ram(&mut self, gfn: u64, order: u8, node: u32, mfn: u64) {
        self.ram_pages += pages(order);
        if let Some((&s, prev)) = self.runs.range_mut(..gfn).next_back() {
            if s + prev.pages() == gfn && prev.order == order {
                if let Backing::Ram {
                    node: pn,
                    mfn: pm,
                    step,
                } = &mut prev.backing
                {
                    if *pn == node {
                        let delta = i64::try_from(mfn).ok().zip(i64::try_from(*pm).ok());
                        if prev.count == 1 {
                            if let Some((m, p)) = delta {
                                *step = m - p;
                                prev.count = 2;
                                return;
                            }
                        } else if prev.mfn_of(prev.count) == Some(mfn) {
                            prev.count += 1;
                            return;
                        }
                    }
                }
            }
        }
        self.runs
            .insert(gfn, one(order, Backing::Ram { node, mfn, step: 0 }));
    }

    fn insert_pod(&mut self, gfn: u64, order: u8) {
        self.pod_pages += pages(order);
        if let Some((&s, prev)) = self.runs.range_mut(..gfn).next_back() {
            if s + prev.pages() == gfn && prev.order == order && prev.backing == Backing::Pod {
                prev.count += 1;
                return;
            }
        }
        self.runs.insert(gfn, one(order, Backing::Pod));
    }

    fn remove(&mut self, gfn: u64, count: u64) -> Option<Vec<Removed>> {
        let end = gfn.checked_add(count)?;
        let mut cur = gfn;
        while cur < end {
            let (s, r) = self.containing(cur)?;
            cur = s + r.pages();
        }
        let mut out = Vec::new();
        cur = gfn;
        while cur < end {
            let (s, r) = self.containing(cur)?;
            self.runs.remove(&s);
            let rem_end = end.min(s + r.pages());
            let first = (cur - s) >> r.order;
            let last = (rem_end - 1 - s) >> r.order;
            if first > 0 {
                self.runs.insert(s, sub_run(&r, 0, first));
            }
            if last + 1 < r.count {
                let after = s + ((last + 1) << r.order);
                self.runs
                    .insert(after, sub_run(&r, last + 1, r.count - last - 1));
            }
            for k in first..=last {
                let ks = s + (k << r.order);
                let ke = ks + pages(r.order);
                let (a, b) = (cur.max(ks), rem_end.min(ke));
                let piece = sub_run(&r, k, 1);
                self.keep_piece(ks, &piece, ks, a);
                self.keep_piece(ks, &piece, b, ke);
                match piece.backing {
                    Backing::Ram { node, mfn, .. } => {
                        self.ram_pages -= b - a;
                        out.extend(
                            aligned_chunks(mfn + (a - ks), mfn + (b - ks))
                                .map(|(mfn, order)| Removed::Ram { node, mfn, order }),
                        );
                    }
                    Backing::Pod => {
                        self.pod_pages -= b - a;
                        out.push(Removed::Pod { pages: b - a });
                    }
                }
            }
            cur = rem_end;
        }
        Some(out)
    }

    fn keep_piece(&mut self, ks: u64, piece: &Run, from: u64, to: u64) {
        if from >= to {
            return;
        }
        match piece.backing {
            Backing::Ram { node, mfn, .. } => {
                for (m, order) in aligned_chunks(mfn + (from - ks), mfn + (to - ks)) {
                    let g = ks + (m - mfn);
                    self.runs.insert(
                        g,
                        one(
                            order,
                            Backing::Ram {
                                node,
                                mfn: m,
                                step: 0,
                            },
                        ),
                    );
                }
            }
            Backing::Pod => {
                for (g, order) in aligned_chunks(from, to) {
                    self.runs.insert(g, one(order, Backing::Pod));
                }
            }
        }
    }
}

/// Runs with the step of one-extent runs (which means nothing) cleared.
fn normalised(runs: impl Iterator<Item = (u64, Run)>) -> Vec<(u64, Run)> {
    runs.map(|(g, mut r)| {
        if let Backing::Ram { step, .. } = &mut r.backing {
            if r.count == 1 {
                *step = 0;
            }
        }
        (g, r)
    })
    .collect()
}

/// Guest frames the random operations touch.
const SPAN: u64 = 1 << 11;

#[derive(Debug, Clone)]
enum Op {
    /// `count` extents of `order` from `gfn` on, extent `k` on lane `k % lanes.len()`:
    /// lane `(node, base, step)` gives frame `base + step * (k / lanes)` (in extents);
    /// every `stray`-th extent (0: none) gets an unrelated frame instead.
    Stream {
        gfn: u64,
        order: u8,
        count: u64,
        lanes: Vec<(u32, u64, i64)>,
        stray: u64,
    },
    Pod {
        gfn: u64,
        order: u8,
        count: u64,
    },
    Remove {
        gfn: u64,
        count: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let lane = (
        0u32..4,
        0u64..1 << 20,
        prop_oneof![Just(1i64), Just(-1), Just(512), -8i64..8],
    );
    prop_oneof![
        4 => (0..SPAN, 0u8..3, 1u64..300, prop::collection::vec(lane, 1..12), prop_oneof![Just(0u64), 2u64..50])
            .prop_map(|(gfn, order, count, lanes, stray)| Op::Stream { gfn, order, count, lanes, stray }),
        1 => (0..SPAN, 0u8..3, 1u64..20).prop_map(|(gfn, order, count)| Op::Pod { gfn, order, count }),
        2 => (0..SPAN, 1u64..200).prop_map(|(gfn, count)| Op::Remove { gfn, count }),
    ]
}

fn check_same(p: &P2m, r: &PlainP2m) {
    assert_eq!(
        normalised(p.runs()),
        normalised(r.runs.iter().map(|(&g, r)| (g, *r)))
    );
    assert_eq!(
        normalised(p.runs().last().into_iter()),
        normalised(r.runs.iter().next_back().map(|(&g, r)| (g, *r)).into_iter())
    );
    assert_eq!((p.ram_pages(), p.pod_pages()), (r.ram_pages, r.pod_pages));
    for g in 0..SPAN + 1200 {
        assert_eq!(p.lookup(g), r.lookup(g), "gfn {g}");
    }
    assert!(p.stored_entries() <= r.runs.len());
}

fn apply(p: &mut P2m, r: &mut PlainP2m, op: &Op) {
    match op {
        Op::Stream {
            gfn,
            order,
            count,
            lanes,
            stray,
        } => {
            let n = u64::try_from(lanes.len()).unwrap();
            for k in 0..*count {
                let g = gfn + (k << order);
                let (node, base, step) = lanes[usize::try_from(k % n).unwrap()];
                let round = i64::try_from(k / n).unwrap();
                let mut ext = base.wrapping_add_signed(step * round) & ((1 << 24) - 1);
                if *stray != 0 && k % stray == stray - 1 {
                    ext = (ext * 7 + 13) & ((1 << 24) - 1);
                }
                let mfn = ext << order;
                let (a, b) = (p.overlaps(g, pages(*order)), r.overlaps(g, pages(*order)));
                assert_eq!(a, b);
                if !a {
                    p.insert_ram(g, *order, node, mfn);
                    r.insert_ram(g, *order, node, mfn);
                }
            }
        }
        Op::Pod { gfn, order, count } => {
            for k in 0..*count {
                let g = gfn + (k << order);
                let (a, b) = (p.overlaps(g, pages(*order)), r.overlaps(g, pages(*order)));
                assert_eq!(a, b);
                if !a {
                    p.insert_pod(g, *order);
                    r.insert_pod(g, *order);
                }
            }
        }
        Op::Remove { gfn, count } => {
            assert_eq!(p.remove(*gfn, *count), r.remove(*gfn, *count));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compact_p2m_is_the_plain_map(ops in prop::collection::vec(op(), 1..40)) {
        let mut p = P2m::default();
        let mut r = PlainP2m::default();
        for op in &ops {
            apply(&mut p, &mut r, op);
            check_same(&p, &r);
        }
    }
}

#[test]
fn round_robin_lanes_are_a_few_entries() {
    // Four nodes, each handing out the pieces of its broken 2 MiB frames in turn.
    let mut p = P2m::default();
    let mut r = PlainP2m::default();
    for k in 0..40_000u64 {
        let node = u32::try_from(k % 4).unwrap();
        let per_node = k / 4;
        let mfn = (u64::from(node) << 28) + (per_node / 4) * 512 + 7 - per_node % 4;
        p.insert_ram(k, 0, node, mfn);
        r.insert_ram(k, 0, node, mfn);
    }
    assert_eq!(r.runs.len(), 40_000);
    assert!(p.stored_entries() <= 2, "{} entries", p.stored_entries());
    check_same(&p, &r);
    // Cutting holes in the middle keeps both sides compact and equal.
    for g in [5u64, 1000, 1001, 20_000] {
        assert_eq!(p.remove(g, 3), r.remove(g, 3));
    }
    check_same(&p, &r);
    assert!(p.stored_entries() < 30, "{} entries", p.stored_entries());
}
