//! Extents of one order at consecutive gfns whose frames repeat a pattern: extent `k`
//! lies in lane `k % lanes`, and each lane is a node plus an arithmetic progression of
//! machine frames. The period is found greedily: the shortest one that fits what was
//! appended so far, re-fitted while the cycle is short.

/// Longest period looked for: 4 nodes x 16 pieces per broken frame.
pub const MAX_LANES: usize = 64;
/// A cycle is re-fitted while it holds fewer extents than this (two rounds of the
/// longest period).
const REFIT_BELOW: u64 = 2 * 64;

/// One lane: its extents are at `mfn`, `mfn + step`, `mfn + 2 * step`, ... on `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lane {
    node: u32,
    mfn: u64,
    /// Meaningless while the lane holds one extent.
    step: i64,
}

impl Lane {
    fn at(&self, round: u64) -> u64 {
        let round = i64::try_from(round).unwrap_or(i64::MAX);
        self.mfn.wrapping_add_signed(self.step.wrapping_mul(round))
    }
}

/// `count` extents of `2^order` pages, each its own run of the plain map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    count: u64,
    order: u8,
    /// Never more lanes than extents, at least two extents.
    lanes: Vec<Lane>,
}

fn lane_count(lanes: &[Lane]) -> u64 {
    u64::try_from(lanes.len()).unwrap_or(u64::MAX)
}

fn index(k: u64) -> usize {
    usize::try_from(k).unwrap_or(usize::MAX)
}

impl Cycle {
    /// Two extents of `order`: `(node, mfn)` each.
    pub fn pair(order: u8, a: (u32, u64), b: (u32, u64)) -> Cycle {
        let lane = |(node, mfn)| Lane { node, mfn, step: 0 };
        Cycle {
            count: 2,
            order,
            lanes: vec![lane(a), lane(b)],
        }
    }

    /// Extents stored.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their order.
    pub fn order(&self) -> u8 {
        self.order
    }

    /// Pages covered.
    pub fn pages(&self) -> u64 {
        self.count << self.order
    }

    /// `(node, mfn)` of extent `k < count`.
    pub fn extent(&self, k: u64) -> (u32, u64) {
        let n = lane_count(&self.lanes);
        let lane = &self.lanes[index(k % n)];
        (lane.node, lane.at(k / n))
    }

    /// The extent that would follow with the current lanes matches `(node, mfn)`.
    fn continues(&mut self, node: u32, mfn: u64) -> bool {
        let n = lane_count(&self.lanes);
        let round = self.count / n;
        let lane = &mut self.lanes[index(self.count % n)];
        if lane.node != node {
            return false;
        }
        if round == 1 {
            lane.step = mfn.wrapping_sub(lane.mfn).cast_signed();
            return true;
        }
        lane.at(round) == mfn
    }

    /// Appends an extent; `false` (and unchanged) if no period up to [`MAX_LANES`] fits.
    pub fn push(&mut self, node: u32, mfn: u64) -> bool {
        if self.continues(node, mfn) {
            self.count += 1;
            return true;
        }
        let first = self.lanes.len() + 1;
        if self.count + 1 > REFIT_BELOW || first > MAX_LANES {
            return false;
        }
        let mut seq: Vec<(u32, u64)> = (0..self.count).map(|k| self.extent(k)).collect();
        seq.push((node, mfn));
        for n in first..=MAX_LANES.min(seq.len()) {
            if let Some(c) = Cycle::fit(self.order, &seq, n) {
                *self = c;
                return true;
            }
        }
        false
    }

    /// `seq` as a cycle of `n` lanes, if it is one.
    fn fit(order: u8, seq: &[(u32, u64)], n: usize) -> Option<Cycle> {
        let (starts, rest) = seq.split_at(n.min(seq.len()));
        let lanes: Vec<Lane> = starts
            .iter()
            .map(|&(node, mfn)| Lane { node, mfn, step: 0 })
            .collect();
        let mut c = Cycle {
            count: lane_count(&lanes),
            order,
            lanes,
        };
        for &(node, mfn) in rest {
            if !c.continues(node, mfn) {
                return None;
            }
            c.count += 1;
        }
        Some(c)
    }

    /// Removes the last extent (the cycle must hold more than two).
    pub fn pop(&mut self) {
        self.count -= 1;
        self.lanes.truncate(index(self.count));
    }

    /// Extents `[k, k + count)` as a cycle (`count >= 2`), lanes renumbered from `k`.
    pub fn slice(&self, k: u64, count: u64) -> Cycle {
        let n = lane_count(&self.lanes);
        let lanes = (k..k + count.min(n))
            .map(|i| {
                let lane = &self.lanes[index(i % n)];
                Lane {
                    node: lane.node,
                    mfn: lane.at(i / n),
                    step: lane.step,
                }
            })
            .collect();
        Cycle {
            count,
            order: self.order,
            lanes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_round_robin_lanes_and_refits_the_period() {
        // Four nodes, each handing out two pieces of a frame, then the next frame.
        let seq: Vec<(u32, u64)> = (0..400u64)
            .map(|k| {
                let node = u32::try_from(k % 4).unwrap();
                let per_node = k / 4;
                let frame = per_node / 2;
                let mfn = (u64::from(node) << 30) + frame * 512 + 3 - per_node % 2;
                (node, mfn)
            })
            .collect();
        let mut c = Cycle::pair(0, seq[0], seq[1]);
        for &(node, mfn) in &seq[2..] {
            assert!(c.push(node, mfn));
        }
        assert_eq!(c.lanes.len(), 8);
        for (k, &e) in (0u64..).zip(&seq) {
            assert_eq!(c.extent(k), e, "extent {k}");
        }
        let s = c.slice(13, 100);
        for k in 0..100 {
            assert_eq!(s.extent(k), seq[index(13 + k)]);
        }
        assert!(!c.push(9, 0), "node 9 fits no period any more");
        assert_eq!(c.count(), 400);
    }
}
