//! The free memory of one NUMA node as Xen keeps it: per-order free lists of naturally
//! aligned chunks, split on allocation (the highest-addressed piece is handed out) and
//! merged with their buddy on free.
//!
//! Cost grows with the number of operations done, never with the amount of memory: a
//! free 1 GiB chunk is one entry, and each free list is a [`ChunkSet`] of evenly spaced
//! runs, so the pieces of a million identically broken frames (a 2 MiB frame that lost
//! its first page offers one chunk of each order 0..=8, at the same offset in every
//! frame) are one progression per order ([`Buddy::add_broken_frames`]). Taking a chunk
//! shortens a progression; freeing one extends or splits one. Every observable result
//! (which chunk an allocation returns, counts per order, merges) is that of plain sorted
//! sets: the free lists behave as sets, only their storage differs. At worst (frees
//! scattered with no common spacing) a list costs one entry per chunk, as a set would.
//!
//! Measured (`examples/sim_fragmented.rs`, release build): a 4 TiB host (4 x 1 TiB
//! nodes, `free_1g = 0`, `free_2m = 64`, 18.9 million free chunks) took 2.2 s and
//! 421 MiB to create with one sorted set per order; it now takes under 1 ms and 2 MiB, and
//! handing out all 18.9 million chunks and taking them back peaks at 10 MiB instead of
//! 429 MiB (more in `hosts/README.md`).

mod chunk_set;

pub use chunk_set::ChunkSet;

/// Xen's largest buddy order on x86.
pub const MAX_ORDER: u8 = 18;
const LISTS: usize = MAX_ORDER as usize + 1;

/// Free lists of one node covering machine frames `[start, end)`.
#[derive(Debug, Clone)]
pub struct Buddy {
    start: u64,
    end: u64,
    free: [ChunkSet; LISTS],
    avail: u64,
}

/// Pages in a chunk of `order`.
pub const fn pages(order: u8) -> u64 {
    1u64 << order
}

impl Buddy {
    /// An allocator for `[start, end)` with nothing free yet.
    pub fn new(start: u64, end: u64) -> Buddy {
        Buddy {
            start,
            end,
            free: Default::default(),
            avail: 0,
        }
    }

    /// First frame of the node.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last frame of the node.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Free pages.
    pub fn avail(&self) -> u64 {
        self.avail
    }

    /// Free chunks of exactly `order`.
    pub fn chunks(&self, order: u8) -> usize {
        self.free.get(usize::from(order)).map_or(0, ChunkSet::len)
    }

    /// Whether a chunk of at least `order` is free.
    pub fn has_chunk(&self, order: u8) -> bool {
        (order..=MAX_ORDER).any(|o| self.chunks(o) > 0)
    }

    /// Free pages that sit in chunks of at least `order` (what an allocation of `order`
    /// could still use).
    pub fn pages_in_chunks_of(&self, order: u8) -> u64 {
        (order..=MAX_ORDER)
            .map(|o| crate::types::conv::usize_to_u64(self.chunks(o)) * pages(o))
            .sum()
    }

    /// Adds the frames `[from, to)` as free memory, as maximal aligned chunks, without
    /// merging with neighbours already free (used to build the initial state).
    pub fn add_free_range(&mut self, from: u64, to: u64) {
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

    /// Adds `count` frames of `frame_order` starting at `first` (aligned, inside the node,
    /// not free yet) that each lost their first page: the same free chunks as
    /// `add_free_range(f + 1, f + 2^frame_order)` for every frame `f`, stored as one
    /// progression per order.
    pub fn add_broken_frames(&mut self, first: u64, count: u64, frame_order: u8) {
        let frame_order = frame_order.min(MAX_ORDER);
        let size = pages(frame_order);
        let inside = first >= self.start
            && count <= self.end.saturating_sub(first) / size
            && first.is_multiple_of(size);
        if !inside || frame_order == 0 {
            // Not the layout this is meant for: frame by frame, clipped to the node.
            for k in 0..count {
                let Some(f) = k.checked_mul(size).and_then(|o| first.checked_add(o)) else {
                    break;
                };
                self.add_free_range(f.saturating_add(1), f.saturating_add(size));
            }
            return;
        }
        for o in 0..frame_order {
            self.free[usize::from(o)].insert_progression(
                first + pages(o),
                pages(frame_order),
                count,
            );
        }
        self.avail += count * (pages(frame_order) - 1);
    }

    /// Free-list entries stored (what the allocator costs in memory).
    pub fn stored_runs(&self) -> usize {
        self.free.iter().map(ChunkSet::runs).sum()
    }

    /// Takes a chunk of `order`: the lowest-addressed chunk of the smallest order that
    /// fits is split, lower halves go back, and the highest-addressed piece is returned.
    pub fn alloc(&mut self, order: u8) -> Option<u64> {
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

    /// Returns a naturally aligned chunk, merging it with free buddies of the same order.
    pub fn free(&mut self, mfn: u64, order: u8) {
        self.avail += pages(order);
        let (mut mfn, mut order) = (mfn, order);
        while order < MAX_ORDER {
            let buddy = mfn ^ pages(order);
            if buddy < self.start
                || buddy + pages(order) > self.end
                || !self.free[usize::from(order)].remove(buddy)
            {
                break;
            }
            mfn = mfn.min(buddy);
            order += 1;
        }
        self.free[usize::from(order)].insert(mfn);
    }

    /// Whether frame `mfn` is inside some free chunk (for invariant checks).
    pub fn is_free(&self, mfn: u64) -> bool {
        (0..=MAX_ORDER).any(|o| {
            let base = mfn & !(pages(o) - 1);
            self.free[usize::from(o)].contains(base)
        })
    }

    /// Every free chunk as `(mfn, order)`, in address order per order.
    pub fn free_chunks(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        (0..=MAX_ORDER).flat_map(move |o| self.free[usize::from(o)].iter().map(move |m| (m, o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_hands_out_highest_piece_and_free_merges() {
        let mut b = Buddy::new(0, 1 << 18);
        b.add_free_range(0, 1 << 18);
        assert_eq!(b.chunks(18), 1);
        let m = b.alloc(0).unwrap();
        assert_eq!(m, (1 << 18) - 1);
        for o in 0..18 {
            assert_eq!(b.chunks(o), 1, "order {o}");
        }
        assert_eq!(b.avail(), (1 << 18) - 1);
        b.free(m, 0);
        assert_eq!(b.chunks(18), 1);
        assert_eq!(b.chunks(0), 0);
        assert_eq!(b.avail(), 1 << 18);
    }

    #[test]
    fn broken_frames_are_the_same_chunks_as_ranges() {
        for (frame_order, first, count) in [(9u8, 0u64, 7u64), (18, 1 << 18, 3), (9, 1 << 9, 1)] {
            let end = 1 << 21;
            let mut runs = Buddy::new(0, end);
            let mut ranges = Buddy::new(0, end);
            runs.add_broken_frames(first, count, frame_order);
            for k in 0..count {
                let f = first + k * pages(frame_order);
                ranges.add_free_range(f + 1, f + pages(frame_order));
            }
            assert!(runs.free_chunks().eq(ranges.free_chunks()));
            assert_eq!(runs.avail(), ranges.avail());
            assert!(runs.stored_runs() <= usize::from(frame_order));
            while let Some(m) = ranges.alloc(3) {
                assert_eq!(runs.alloc(3), Some(m));
            }
            assert_eq!(runs.alloc(3), None);
        }
    }

    #[test]
    fn unaligned_range_becomes_aligned_chunks() {
        let mut b = Buddy::new(0, 1 << 19);
        b.add_free_range(1, 1 << 10);
        assert_eq!(b.avail(), (1 << 10) - 1);
        for (m, o) in b.free_chunks() {
            assert_eq!(m % pages(o), 0);
        }
        assert!(!b.has_chunk(10));
        assert!(b.has_chunk(9));
    }
}
