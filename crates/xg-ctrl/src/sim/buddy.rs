//! The free memory of one NUMA node as Xen keeps it: per-order free lists of naturally
//! aligned chunks, split on allocation (the highest-addressed piece is handed out) and
//! merged with their buddy on free.
//!
//! Cost grows with the number of chunks, never with the amount of memory: a free 1 GiB
//! chunk is one set entry.

use std::collections::BTreeSet;

/// Xen's largest buddy order on x86.
pub const MAX_ORDER: u8 = 18;
const LISTS: usize = MAX_ORDER as usize + 1;

/// Free lists of one node covering machine frames `[start, end)`.
#[derive(Debug, Clone)]
pub struct Buddy {
    start: u64,
    end: u64,
    free: [BTreeSet<u64>; LISTS],
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
        self.free.get(usize::from(order)).map_or(0, BTreeSet::len)
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
                || !self.free[usize::from(order)].remove(&buddy)
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
            self.free[usize::from(o)].contains(&base)
        })
    }

    /// Every free chunk as `(mfn, order)`, in address order per order.
    pub fn free_chunks(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        (0..=MAX_ORDER).flat_map(move |o| self.free[usize::from(o)].iter().map(move |&m| (m, o)))
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
