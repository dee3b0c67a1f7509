//! One free list: a set of chunk addresses stored as arithmetic progressions.
//!
//! A fragmented host has millions of free chunks of one order at a fixed distance from
//! each other (the same piece of every broken frame). Such a list is one progression
//! `start, start + stride, ...` instead of millions of entries. Progressions never
//! overlap in span (`start..=last`), so the smallest element is the smallest start and the
//! progression holding an address is the one starting at or before it. Taking an element
//! from the middle splits its progression; adding one in a gap splits the progression
//! around it; adding one right after (or before) a progression with the same spacing
//! extends it. The number of progressions therefore grows with the operations done on
//! the set, never with the number of elements.

use std::collections::BTreeMap;

/// A progression: `count` elements `start + k * stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progression {
    /// Distance between elements (meaningless for one element).
    stride: u64,
    /// Elements, at least one.
    count: u64,
}

impl Progression {
    fn last(self, start: u64) -> u64 {
        start + (self.count - 1) * self.stride
    }

    /// Whether `x` (at or after `start`) is an element.
    fn holds(self, start: u64, x: u64) -> bool {
        x <= self.last(start) && (x == start || (x - start).is_multiple_of(self.stride))
    }
}

/// A set of `u64` addresses, compact when they come in evenly spaced runs.
#[derive(Debug, Clone, Default)]
pub struct ChunkSet {
    /// Progressions by first element; spans pairwise disjoint.
    runs: BTreeMap<u64, Progression>,
    len: usize,
}

impl ChunkSet {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Progressions stored (what the set costs).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The progression whose span holds `x`, if any.
    fn around(&self, x: u64) -> Option<(u64, Progression)> {
        let (&start, &p) = self.runs.range(..=x).next_back()?;
        (x <= p.last(start)).then_some((start, p))
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.around(x).is_some_and(|(s, p)| p.holds(s, x))
    }

    /// Removes and returns the smallest element.
    pub fn pop_first(&mut self) -> Option<u64> {
        let (start, p) = self.runs.pop_first()?;
        if p.count > 1 {
            self.runs.insert(
                start + p.stride,
                Progression {
                    count: p.count - 1,
                    ..p
                },
            );
        }
        self.len -= 1;
        Some(start)
    }

    /// Removes `x`; whether it was there.
    pub fn remove(&mut self, x: u64) -> bool {
        let Some((start, p)) = self.around(x).filter(|&(s, p)| p.holds(s, x)) else {
            return false;
        };
        self.runs.remove(&start);
        let before = if x == start {
            0
        } else {
            (x - start) / p.stride
        };
        if before > 0 {
            self.runs.insert(start, Progression { count: before, ..p });
        }
        let after = p.count - before - 1;
        if after > 0 {
            self.runs
                .insert(x + p.stride, Progression { count: after, ..p });
        }
        self.len -= 1;
        true
    }

    /// Adds `x`, which must not be in the set; whether it was added.
    pub fn insert(&mut self, x: u64) -> bool {
        if let Some((start, p)) = self.around(x) {
            if p.holds(start, x) {
                return false;
            }
            // `x` falls in a gap of this progression: cut it around `x`.
            let before = (x - start) / p.stride + 1;
            self.runs.insert(start, Progression { count: before, ..p });
            self.runs.insert(
                start + before * p.stride,
                Progression {
                    count: p.count - before,
                    ..p
                },
            );
            self.runs.insert(
                x,
                Progression {
                    stride: 1,
                    count: 1,
                },
            );
            self.len += 1;
            return true;
        }
        self.len += 1;
        // No element lies strictly between the neighbours' spans and `x`, so joining `x`
        // to one of them keeps the spans disjoint.
        if let Some((&start, p)) = self.runs.range_mut(..x).next_back() {
            let gap = x - p.last(start);
            if p.count == 1 || p.stride == gap {
                p.stride = gap;
                p.count += 1;
                return true;
            }
        }
        if let Some((&next, &p)) = self.runs.range(x..).next() {
            let gap = next - x;
            if p.count == 1 || p.stride == gap {
                self.runs.remove(&next);
                self.runs.insert(
                    x,
                    Progression {
                        stride: gap,
                        count: p.count + 1,
                    },
                );
                return true;
            }
        }
        self.runs.insert(
            x,
            Progression {
                stride: 1,
                count: 1,
            },
        );
        true
    }

    /// Adds `count` elements `start + k * stride` (`stride > 0`), none of them in the
    /// set yet.
    pub fn insert_progression(&mut self, start: u64, stride: u64, count: u64) {
        if count == 0 {
            return;
        }
        let p = Progression { stride, count };
        let last = p.last(start);
        let clear = self
            .runs
            .range(..=last)
            .next_back()
            .is_none_or(|(&s, q)| q.last(s) < start);
        if clear && stride > 0 {
            self.runs.insert(start, p);
            self.len += usize::try_from(count).unwrap_or(usize::MAX);
        } else {
            // Interleaved with elements already there (never the case for a host's
            // initial layout): element by element.
            for k in 0..count {
                self.insert(start + k * stride);
            }
        }
    }

    /// Elements in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs
            .iter()
            .flat_map(|(&s, p)| (0..p.count).map(move |k| s + k * p.stride))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A tiny deterministic generator (xorshift) so the test needs no crate.
    fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut s = seed | 1;
        move |n| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % n
        }
    }

    #[test]
    fn behaves_as_a_set_and_stays_small_for_runs() {
        for seed in 1..40 {
            let mut r = rng(seed);
            let mut set = ChunkSet::default();
            let mut model = BTreeSet::new();
            let stride = 1 + r(16);
            let n = r(200);
            set.insert_progression(7, stride, n);
            model.extend((0..n).map(|k| 7 + k * stride));
            for _ in 0..2000 {
                let x = r(7 + 200 * 16 + 10);
                match r(4) {
                    0 => assert_eq!(set.insert(x), model.insert(x), "insert {x}"),
                    1 => assert_eq!(set.remove(x), model.remove(&x), "remove {x}"),
                    2 => assert_eq!(set.pop_first(), model.pop_first()),
                    _ => assert_eq!(set.contains(x), model.contains(&x), "contains {x}"),
                }
                assert_eq!(set.len(), model.len());
            }
            assert!(set.iter().eq(model.iter().copied()));
        }
    }

    #[test]
    fn evenly_spaced_inserts_make_one_progression() {
        let mut set = ChunkSet::default();
        for k in 0..1000 {
            set.insert(5 + 512 * k);
        }
        assert_eq!((set.len(), set.runs()), (1000, 1));
        for k in (0..1000).rev() {
            assert!(set.remove(5 + 512 * k));
        }
        assert!(set.is_empty());
        set.insert_progression(1, 512, 1 << 30);
        assert_eq!(set.runs(), 1);
        assert!(set.contains(1 + 512 * 12345) && !set.contains(2 + 512 * 12345));
        assert!(set.remove(1 + 512 * 12345));
        assert_eq!(set.runs(), 2);
        assert!(set.insert(1 + 512 * 12345));
        assert_eq!(set.runs(), 2);
        assert_eq!(set.len(), 1 << 30);
    }

    #[test]
    fn overlapping_progression_falls_back_to_elements() {
        let mut set = ChunkSet::default();
        set.insert_progression(0, 4, 10);
        set.insert_progression(2, 4, 10);
        assert_eq!(set.len(), 20);
        assert!(set.iter().eq((0..20).map(|k| k * 2)));
    }
}
