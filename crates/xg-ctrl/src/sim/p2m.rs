//! A domain's physical-to-machine map, kept as runs of equal extents so its size grows
//! with the number of distinct populate calls, not with guest memory.
//!
//! Extents that cannot merge into one run (neighbours on different nodes) are stored as
//! a `Cycle` (submodule `cycle`): on a fragmented host meminit's 4 KiB extents go
//! round-robin over the nodes and each node hands out frames at a fixed spacing (one piece of every broken
//! 2 MiB frame, then two, ...), so the frames repeat a short pattern of lanes, each an
//! arithmetic progression. A cycle is only storage: [`P2m::runs`] still yields one run
//! per extent, exactly the runs of the plain map, so every lookup and listing is
//! unchanged (`tests/sim_p2m.rs` checks it against the plain map).

mod cycle;

use std::collections::BTreeMap;

use super::buddy::pages;
use cycle::Cycle;

/// What backs a run of extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// RAM on `node`; extent `k` of the run starts at machine frame `mfn + k * step`.
    Ram {
        /// Physical node.
        node: u32,
        /// Machine frame of the first extent.
        mfn: u64,
        /// Machine frames from one extent to the next (meaningless for one extent).
        step: i64,
    },
    /// Populate-on-demand entries (no memory yet).
    Pod,
}

/// `count` extents of `2^order` pages at consecutive gfns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Extents in the run.
    pub count: u64,
    /// Their order.
    pub order: u8,
    /// What backs them.
    pub backing: Backing,
}

impl Run {
    /// Pages covered.
    pub fn pages(&self) -> u64 {
        self.count << self.order
    }

    /// Machine frame of extent `k` (RAM runs only).
    pub fn mfn_of(&self, k: u64) -> Option<u64> {
        match self.backing {
            Backing::Ram { mfn, step, .. } => {
                let k = i64::try_from(k).ok()?;
                Some(mfn.wrapping_add_signed(step.wrapping_mul(k)))
            }
            Backing::Pod => None,
        }
    }

    fn sub_run(&self, k: u64, count: u64) -> Run {
        let backing = match self.backing {
            Backing::Ram { node, step, .. } => Backing::Ram {
                node,
                mfn: self.mfn_of(k).unwrap_or(0),
                step,
            },
            Backing::Pod => Backing::Pod,
        };
        Run {
            count,
            order: self.order,
            backing,
        }
    }
}

/// What one guest frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// RAM at machine frame `mfn` on `node`.
    Ram {
        /// Machine frame.
        mfn: u64,
        /// Physical node.
        node: u32,
    },
    /// A PoD entry.
    Pod,
}

/// Memory handed back by [`P2m::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// A naturally aligned machine chunk to free.
    Ram {
        /// Physical node.
        node: u32,
        /// First machine frame.
        mfn: u64,
        /// Chunk order.
        order: u8,
    },
    /// PoD entries dropped.
    Pod {
        /// Pages.
        pages: u64,
    },
}

/// Splits `[from, to)` into maximal naturally aligned chunks (max order 18).
pub fn aligned_chunks(from: u64, to: u64) -> impl Iterator<Item = (u64, u8)> {
    let mut cur = from;
    std::iter::from_fn(move || {
        if cur >= to {
            return None;
        }
        let mut order = super::buddy::MAX_ORDER;
        while order > 0 && (!cur.is_multiple_of(pages(order)) || cur + pages(order) > to) {
            order -= 1;
        }
        let chunk = (cur, order);
        cur += pages(order);
        Some(chunk)
    })
}

/// One stored entry: a plain run, or extents that are each their own run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Run(Run),
    Cycle(Cycle),
}

impl Entry {
    fn pages(&self) -> u64 {
        match self {
            Entry::Run(r) => r.pages(),
            Entry::Cycle(c) => c.pages(),
        }
    }

    /// Runs of the plain map it stands for.
    fn run_count(&self) -> u64 {
        match self {
            Entry::Run(_) => 1,
            Entry::Cycle(c) => c.count(),
        }
    }

    /// Run `k` of it, with its first gfn (`start` is the entry's).
    fn run(&self, start: u64, k: u64) -> (u64, Run) {
        match self {
            Entry::Run(r) => (start, *r),
            Entry::Cycle(c) => {
                let (node, mfn) = c.extent(k);
                (start + (k << c.order()), single(c.order(), node, mfn))
            }
        }
    }
}

/// A run of one RAM extent.
fn single(order: u8, node: u32, mfn: u64) -> Run {
    Run {
        count: 1,
        order,
        backing: Backing::Ram { node, mfn, step: 0 },
    }
}

/// Extents `[k, k + count)` of cycle `c` as an entry.
fn cycle_part(c: &Cycle, k: u64, count: u64) -> Entry {
    if count == 1 {
        let (node, mfn) = c.extent(k);
        Entry::Run(single(c.order(), node, mfn))
    } else {
        Entry::Cycle(c.slice(k, count))
    }
}

/// The runs of a [`P2m`] in gfn order.
#[derive(Debug)]
pub struct Runs<'a> {
    entries: std::collections::btree_map::Iter<'a, u64, Entry>,
    /// The entry being expanded and its next and end run.
    current: Option<(u64, &'a Entry, u64, u64)>,
}

impl Iterator for Runs<'_> {
    type Item = (u64, Run);

    fn next(&mut self) -> Option<(u64, Run)> {
        loop {
            if let Some((start, e, k, n)) = &mut self.current {
                if *k < *n {
                    *k += 1;
                    return Some(e.run(*start, *k - 1));
                }
            }
            let (&start, e) = self.entries.next()?;
            self.current = Some((start, e, 0, e.run_count()));
        }
    }

    fn last(mut self) -> Option<(u64, Run)> {
        if let Some((&start, e)) = self.entries.next_back() {
            return Some(e.run(start, e.run_count() - 1));
        }
        let (start, e, k, n) = self.current?;
        (k < n).then(|| e.run(start, n - 1))
    }
}

/// The p2m: entries keyed by their first gfn, never overlapping.
#[derive(Debug, Clone, Default)]
pub struct P2m {
    entries: BTreeMap<u64, Entry>,
    ram_pages: u64,
    pod_pages: u64,
}

impl P2m {
    /// Pages backed by RAM.
    pub fn ram_pages(&self) -> u64 {
        self.ram_pages
    }

    /// Outstanding PoD entries (pages).
    pub fn pod_pages(&self) -> u64 {
        self.pod_pages
    }

    /// All runs in gfn order, as the plain map of runs would hold them.
    pub fn runs(&self) -> Runs<'_> {
        Runs {
            entries: self.entries.iter(),
            current: None,
        }
    }

    /// Entries stored (at most the number of runs).
    pub fn stored_entries(&self) -> usize {
        self.entries.len()
    }

    /// The run containing `gfn`, with its first gfn.
    fn containing(&self, gfn: u64) -> Option<(u64, Run)> {
        let (&start, e) = self.entries.range(..=gfn).next_back()?;
        if gfn >= start + e.pages() {
            return None;
        }
        Some(match e {
            Entry::Run(r) => (start, *r),
            Entry::Cycle(c) => e.run(start, (gfn - start) >> c.order()),
        })
    }

    /// Whether any frame of `[gfn, gfn + count)` is mapped.
    pub fn overlaps(&self, gfn: u64, count: u64) -> bool {
        let end = gfn.saturating_add(count);
        self.entries
            .range(..end)
            .next_back()
            .is_some_and(|(&s, e)| s + e.pages() > gfn)
    }

    /// What frame `gfn` is.
    pub fn lookup(&self, gfn: u64) -> Option<Frame> {
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

    /// Maps an extent of RAM (the caller checked [`P2m::overlaps`]). It joins the run
    /// before it when the plain map would merge them; otherwise it is a run of its own,
    /// stored in a cycle with its predecessors when they are single extents.
    pub fn insert_ram(&mut self, gfn: u64, order: u8, node: u32, mfn: u64) {
        self.ram_pages += pages(order);
        let Some((&s, prev)) = self.entries.range_mut(..gfn).next_back() else {
            self.entries
                .insert(gfn, Entry::Run(single(order, node, mfn)));
            return;
        };
        if s + prev.pages() != gfn {
            self.entries
                .insert(gfn, Entry::Run(single(order, node, mfn)));
            return;
        }
        match prev {
            Entry::Run(run) if run.order == order => {
                if Self::merge(run, node, mfn) {
                    return;
                }
                if run.count == 1 {
                    if let Backing::Ram {
                        node: pn, mfn: pm, ..
                    } = run.backing
                    {
                        *prev = Entry::Cycle(Cycle::pair(order, (pn, pm), (node, mfn)));
                        return;
                    }
                }
            }
            Entry::Cycle(c) if c.order() == order => {
                let last_gfn = gfn - pages(order);
                let (ln, lm) = c.extent(c.count() - 1);
                let mut last = single(order, ln, lm);
                if Self::merge(&mut last, node, mfn) {
                    // The plain map grows the last extent's run: it leaves the cycle.
                    if c.count() == 2 {
                        let (fnode, fmfn) = c.extent(0);
                        *prev = Entry::Run(single(order, fnode, fmfn));
                    } else {
                        c.pop();
                    }
                    self.entries.insert(last_gfn, Entry::Run(last));
                    return;
                }
                if c.push(node, mfn) {
                    return;
                }
            }
            _ => {}
        }
        self.entries
            .insert(gfn, Entry::Run(single(order, node, mfn)));
    }

    /// Extends RAM run `prev` by the extent `(node, mfn)` as the plain map does.
    fn merge(prev: &mut Run, node: u32, mfn: u64) -> bool {
        let Backing::Ram {
            node: pn,
            mfn: pm,
            step,
        } = &mut prev.backing
        else {
            return false;
        };
        if *pn != node {
            return false;
        }
        if prev.count == 1 {
            let delta = i64::try_from(mfn).ok().zip(i64::try_from(*pm).ok());
            if let Some((m, p)) = delta {
                *step = m - p;
                prev.count = 2;
                return true;
            }
            false
        } else if prev.mfn_of(prev.count) == Some(mfn) {
            prev.count += 1;
            true
        } else {
            false
        }
    }

    /// Marks an extent populate-on-demand (the caller checked [`P2m::overlaps`]).
    pub fn insert_pod(&mut self, gfn: u64, order: u8) {
        self.pod_pages += pages(order);
        if let Some((&s, Entry::Run(prev))) = self.entries.range_mut(..gfn).next_back() {
            if s + prev.pages() == gfn && prev.order == order && prev.backing == Backing::Pod {
                prev.count += 1;
                return;
            }
        }
        self.entries.insert(
            gfn,
            Entry::Run(Run {
                count: 1,
                order,
                backing: Backing::Pod,
            }),
        );
    }

    /// Stores the extents of cycles that meet `[from, to)` as plain runs, so that
    /// [`P2m::remove`] can cut them as it cuts any run.
    fn open_cycles(&mut self, from: u64, to: u64) {
        let mut cur = from;
        while cur < to {
            let Some((&s, e)) = self.entries.range(..=cur).next_back() else {
                return;
            };
            let end = s + e.pages();
            if end <= cur {
                return;
            }
            if let Entry::Cycle(c) = e {
                let c = c.clone();
                let first = (cur - s) >> c.order();
                let last = ((to.min(end) - 1 - s) >> c.order()).min(c.count() - 1);
                self.entries.remove(&s);
                if first > 0 {
                    self.entries.insert(s, cycle_part(&c, 0, first));
                }
                for k in first..=last {
                    let (node, mfn) = c.extent(k);
                    self.entries.insert(
                        s + (k << c.order()),
                        Entry::Run(single(c.order(), node, mfn)),
                    );
                }
                if last + 1 < c.count() {
                    self.entries.insert(
                        s + ((last + 1) << c.order()),
                        cycle_part(&c, last + 1, c.count() - last - 1),
                    );
                }
            }
            cur = end;
        }
    }

    /// Unmaps `[gfn, gfn + count)` if every frame of it is mapped; returns what to free.
    /// Extents only partly removed are split into aligned pieces.
    pub fn remove(&mut self, gfn: u64, count: u64) -> Option<Vec<Removed>> {
        let end = gfn.checked_add(count)?;
        let mut cur = gfn;
        while cur < end {
            let (s, r) = self.containing(cur)?;
            cur = s + r.pages();
        }
        self.open_cycles(gfn, end);
        let mut out = Vec::new();
        cur = gfn;
        while cur < end {
            let (s, r) = self.containing(cur)?;
            self.entries.remove(&s);
            let rem_end = end.min(s + r.pages());
            let first = (cur - s) >> r.order;
            let last = (rem_end - 1 - s) >> r.order;
            if first > 0 {
                self.entries.insert(s, Entry::Run(r.sub_run(0, first)));
            }
            if last + 1 < r.count {
                let after = s + ((last + 1) << r.order);
                self.entries
                    .insert(after, Entry::Run(r.sub_run(last + 1, r.count - last - 1)));
            }
            for k in first..=last {
                let ks = s + (k << r.order);
                let ke = ks + pages(r.order);
                let (a, b) = (cur.max(ks), rem_end.min(ke));
                let piece = r.sub_run(k, 1);
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

    /// Re-inserts `[from, to)` of the one-extent run `piece` starting at `ks`, as pieces
    /// aligned in machine frames (RAM) or guest frames (PoD).
    fn keep_piece(&mut self, ks: u64, piece: &Run, from: u64, to: u64) {
        if from >= to {
            return;
        }
        match piece.backing {
            Backing::Ram { node, mfn, .. } => {
                for (m, order) in aligned_chunks(mfn + (from - ks), mfn + (to - ks)) {
                    let g = ks + (m - mfn);
                    self.entries.insert(g, Entry::Run(single(order, node, m)));
                }
            }
            Backing::Pod => {
                for (g, order) in aligned_chunks(from, to) {
                    self.entries.insert(
                        g,
                        Entry::Run(Run {
                            count: 1,
                            order,
                            backing: Backing::Pod,
                        }),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_lookup() {
        let mut p = P2m::default();
        p.insert_ram(0, 9, 0, 1024);
        p.insert_ram(512, 9, 0, 512);
        p.insert_ram(1024, 9, 0, 0);
        assert_eq!(p.runs().count(), 1);
        assert_eq!(p.lookup(513), Some(Frame::Ram { mfn: 513, node: 0 }));
        assert_eq!(p.lookup(1535), Some(Frame::Ram { mfn: 511, node: 0 }));
        assert_eq!(p.lookup(1536), None);
        assert!(p.overlaps(1535, 10));
        assert!(!p.overlaps(1536, 10));
    }

    #[test]
    fn remove_splits_extents_and_returns_aligned_chunks() {
        let mut p = P2m::default();
        p.insert_ram(0, 9, 1, 4096);
        p.insert_pod(512, 9);
        let out = p.remove(1, 512).unwrap();
        assert_eq!(p.ram_pages(), 1);
        assert_eq!(p.pod_pages(), 511);
        let freed: u64 = out
            .iter()
            .map(|r| match r {
                Removed::Ram { order, mfn, .. } => {
                    assert_eq!(mfn % pages(*order), 0);
                    pages(*order)
                }
                Removed::Pod { pages } => *pages,
            })
            .sum();
        assert_eq!(freed, 512);
        assert_eq!(p.lookup(0), Some(Frame::Ram { mfn: 4096, node: 1 }));
        assert_eq!(p.lookup(1), None);
        assert_eq!(p.lookup(513), Some(Frame::Pod));
        assert!(p.remove(0, 2).is_none(), "gfn 1 is a hole");
    }
}
