//! The machine side of the simulator: NUMA nodes with their buddy allocators, the
//! global claim counter, the oracle's knobs, and the layout of free memory at start.

use super::buddy::{Buddy, MAX_ORDER};

/// Order of a 1 GiB frame.
const ORDER_1G: u8 = 18;
/// Order of a 2 MiB frame.
const ORDER_2M: u8 = 9;
use super::config::{HostConfig, Placement, PAGES_1G, PAGES_2M};
use crate::error::Result;
use crate::types::MemFlags;

/// `MAX_NUMNODES` of Xen on x86.
pub const MAX_NUMNODES: u32 = 64;

/// One NUMA node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Free memory.
    pub buddy: Buddy,
    /// Its CPUs.
    pub cpus: Vec<u32>,
    /// Pages of RAM.
    pub memory_pages: u64,
    /// Only serves exact-node requests.
    pub exact_only: bool,
}

/// A successful allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Node it came from.
    pub node: u32,
    /// First machine frame.
    pub mfn: u64,
    /// Order.
    pub order: u8,
}

/// Machine state shared by all domains.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Nodes by id.
    pub nodes: Vec<Node>,
    /// Node of each CPU.
    pub cpu_node: Vec<u32>,
    /// Pages of RAM on the host.
    pub total_pages: u64,
    /// Sum of `d.outstanding_pages` over all domains.
    pub outstanding_claims: u64,
    /// Node choice policy.
    pub placement: Placement,
    /// Orders that always fail.
    pub fail_orders: [bool; MAX_ORDER as usize + 1],
    /// Extents per order that may still succeed (`None` = unlimited).
    pub budgets: [Option<u64>; MAX_ORDER as usize + 1],
    /// Machine frames used at start (by Xen, dom0 and fragmentation holes).
    pub host_used: HostUsed,
}

/// Machine frames used at start, as groups of equally spaced spans: the holes of a
/// million broken frames are one entry.
#[derive(Debug, Clone, Default)]
pub struct HostUsed {
    groups: Vec<UsedGroup>,
}

/// `count` spans of `pages` frames, `stride` frames apart, the first at `start`.
#[derive(Debug, Clone, Copy)]
struct UsedGroup {
    start: u64,
    pages: u64,
    count: u64,
    stride: u64,
}

impl HostUsed {
    /// Records the frames `[start, start + pages)`.
    pub fn push(&mut self, start: u64, pages: u64) {
        self.push_every(start, pages, 1, pages);
    }

    /// Records `count` spans of `pages` frames, `stride` frames apart.
    pub fn push_every(&mut self, start: u64, pages: u64, count: u64, stride: u64) {
        if count > 0 && pages > 0 {
            self.groups.push(UsedGroup {
                start,
                pages,
                count,
                stride,
            });
        }
    }

    /// Every span as `(first frame, frames)`, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.groups
            .iter()
            .flat_map(|g| (0..g.count).map(move |k| (g.start + k * g.stride, g.pages)))
    }
}

impl Machine {
    /// Lays out the host described by `cfg`.
    pub fn new(cfg: &HostConfig) -> Result<Machine> {
        cfg.validate()?;
        let mut nodes = Vec::with_capacity(cfg.nodes.len());
        let mut cpu_node = Vec::new();
        let mut host_used = HostUsed::default();
        let mut start = 0u64;
        let mut total = 0u64;
        for (id, nc) in cfg.nodes.iter().enumerate() {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            let mem = nc.memory_pages()?;
            let free = nc.free_pages()?;
            let end = start + mem;
            let mut buddy = Buddy::new(start, end);
            lay_out_free(
                &mut buddy,
                &mut host_used,
                start,
                start + free,
                nc.free_1g,
                nc.free_2m,
            );
            if free < mem {
                host_used.push(start + free, mem - free);
            }
            let first_cpu = u32::try_from(cpu_node.len()).unwrap_or(u32::MAX);
            let cpus: Vec<u32> = (first_cpu..first_cpu + nc.cpus).collect();
            cpu_node.extend(cpus.iter().map(|_| id));
            nodes.push(Node {
                buddy,
                cpus,
                memory_pages: mem,
                exact_only: nc.exact_only,
            });
            total += mem;
            // The next node starts on a 1 GiB boundary so chunks never span nodes.
            start = end.div_ceil(PAGES_1G) * PAGES_1G;
        }
        let mut fail_orders = [false; MAX_ORDER as usize + 1];
        for &o in &cfg.fail_orders {
            fail_orders[usize::from(o)] = true;
        }
        let mut budgets = [None; MAX_ORDER as usize + 1];
        for b in &cfg.extent_budget {
            budgets[usize::from(b.order)] = Some(b.count);
        }
        Ok(Machine {
            nodes,
            cpu_node,
            total_pages: total,
            outstanding_claims: 0,
            placement: cfg.placement,
            fail_orders,
            budgets,
            host_used,
        })
    }

    /// Free pages on all nodes.
    pub fn total_avail(&self) -> u64 {
        self.nodes.iter().map(|n| n.buddy.avail()).sum()
    }

    /// Free pages that claims and the claim gate count: nodes serving any request (all
    /// nodes, except the oracle's exact-only ones).
    pub fn claimable_avail(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| !n.exact_only)
            .map(|n| n.buddy.avail())
            .sum()
    }

    /// Number of nodes.
    pub fn nr_nodes(&self) -> u32 {
        u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }

    /// Bitmask of nodes serving non-exact requests.
    pub fn online_mask(&self) -> u64 {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.exact_only)
            .fold(0, |m, (i, _)| m | (1u64 << i))
    }

    /// Bitmask of every node.
    pub fn all_nodes_mask(&self) -> u64 {
        if self.nodes.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.nodes.len()) - 1
        }
    }

    /// Whether the oracle's knobs forbid an extent of `order` right now.
    pub fn knob_refuses(&self, order: u8) -> bool {
        let i = usize::from(order);
        self.fail_orders[i] || self.budgets[i] == Some(0)
    }

    /// Counts a successful extent against the budgets.
    pub fn spend_budget(&mut self, order: u8) {
        if let Some(b) = &mut self.budgets[usize::from(order)] {
            *b = b.saturating_sub(1);
        }
    }

    fn try_node(&mut self, node: u32, order: u8) -> Option<Extent> {
        let n = self.nodes.get_mut(usize::try_from(node).ok()?)?;
        let mfn = n.buddy.alloc(order)?;
        Some(Extent { node, mfn, order })
    }

    /// Finds and takes a chunk of `order` following Xen's `get_free_buddy` (or the
    /// oracle's first fit). `affinity` is the domain's node affinity mask and
    /// `last_alloc_node` its last node.
    pub fn take(
        &mut self,
        order: u8,
        flags: MemFlags,
        affinity: u64,
        last_alloc_node: u32,
    ) -> Option<Extent> {
        let requested = flags.get_node();
        if let (true, Some(node)) = (flags.is_exact(), requested) {
            return self.try_node(node, order);
        }
        let online = self.online_mask();
        if self.placement == Placement::FirstFit {
            let found = (0..self.nr_nodes()).find(|&n| {
                online & (1 << n) != 0 && self.nodes[n as usize].buddy.has_chunk(order)
            })?;
            return self.try_node(found, order);
        }
        let mut mask = if online & affinity != 0 {
            online & affinity
        } else {
            online
        };
        let mut node = match requested {
            Some(n) => n,
            None => cycle_node(last_alloc_node, mask)?,
        };
        let mut first = node;
        let mut retried = false;
        // Every step visits a new node or switches masks, so this ends; the bound is a guard.
        for _ in 0..(4 * MAX_NUMNODES) {
            if let Some(e) = self.try_node(node, order) {
                return Some(e);
            }
            if node >= MAX_NUMNODES || mask & (1u64 << node) == 0 {
                node = first_node(mask)?;
                first = node;
                continue;
            }
            node = next_node(node, mask).or_else(|| first_node(mask))?;
            if node == first {
                if retried {
                    return None;
                }
                retried = true;
                mask = online & !mask;
                node = first_node(mask)?;
                first = node;
            }
        }
        None
    }

    /// Returns a chunk to its node.
    pub fn give_back(&mut self, node: u32, mfn: u64, order: u8) {
        if let Some(n) = usize::try_from(node)
            .ok()
            .and_then(|i| self.nodes.get_mut(i))
        {
            n.buddy.free(mfn, order);
        }
    }
}

fn first_node(mask: u64) -> Option<u32> {
    (mask != 0).then(|| mask.trailing_zeros())
}

fn next_node(node: u32, mask: u64) -> Option<u32> {
    let above = mask.checked_shr(node + 1).unwrap_or(0);
    (above != 0).then(|| node + 1 + above.trailing_zeros())
}

/// The node after `node` in `mask`, wrapping (Xen's `cycle_node`).
fn cycle_node(node: u32, mask: u64) -> Option<u32> {
    next_node(node, mask).or_else(|| first_node(mask))
}

/// Fills `[from, to)` (1 GiB-aligned start) with free chunks, punching a one-page hole
/// into the 1 GiB and 2 MiB frames beyond the `free_1g` / `free_2m` limits. Runs of
/// identically broken frames go in as one [`Buddy::add_broken_frames`] each.
fn lay_out_free(
    buddy: &mut Buddy,
    used: &mut HostUsed,
    from: u64,
    to: u64,
    free_1g: Option<u64>,
    free_2m: Option<u64>,
) {
    let mut whole_1g = free_1g.unwrap_or(u64::MAX);
    let mut whole_2m = free_2m;
    let mut cur = from;
    while cur + PAGES_1G <= to {
        if whole_1g > 0 {
            whole_1g -= 1;
            buddy.add_free_range(cur, cur + PAGES_1G);
            cur += PAGES_1G;
            continue;
        }
        // Every 1 GiB frame from here on is broken.
        let frames = (to - cur) / PAGES_1G;
        match whole_2m {
            None => {
                buddy.add_broken_frames(cur, frames, ORDER_1G);
                used.push_every(cur, 1, frames, PAGES_1G);
                cur += frames * PAGES_1G;
            }
            Some(0) => {
                // Broken at its first page and with every 2 MiB frame broken: 512 broken
                // 2 MiB frames (the first one's hole is the 1 GiB frame's).
                let broken = frames * (PAGES_1G / PAGES_2M);
                buddy.add_broken_frames(cur, broken, ORDER_2M);
                used.push_every(cur, 1, broken, PAGES_2M);
                cur += frames * PAGES_1G;
            }
            Some(_) => {
                used.push(cur, 1);
                fill_2m(buddy, used, cur + 1, cur + PAGES_1G, &mut whole_2m);
                cur += PAGES_1G;
            }
        }
    }
    fill_2m(buddy, used, cur, to, &mut whole_2m);
}

/// Frees `[from, to)`; with a 2 MiB budget, whole 2 MiB frames beyond it lose their first
/// page.
fn fill_2m(buddy: &mut Buddy, used: &mut HostUsed, from: u64, to: u64, whole_2m: &mut Option<u64>) {
    let Some(budget) = whole_2m else {
        buddy.add_free_range(from, to);
        return;
    };
    let mut cur = from;
    let head_end = from.div_ceil(PAGES_2M) * PAGES_2M;
    if head_end > cur {
        buddy.add_free_range(cur, head_end.min(to));
        cur = head_end;
    }
    // Whole frames within the budget form one range.
    let frames = to.saturating_sub(cur) / PAGES_2M;
    let whole = frames.min(*budget);
    *budget -= whole;
    buddy.add_free_range(cur, cur + whole * PAGES_2M);
    cur += whole * PAGES_2M;
    let broken = to.saturating_sub(cur) / PAGES_2M;
    buddy.add_broken_frames(cur, broken, ORDER_2M);
    used.push_every(cur, 1, broken, PAGES_2M);
    cur += broken * PAGES_2M;
    buddy.add_free_range(cur, to);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::NodeConfig;

    #[test]
    fn node_cycling() {
        assert_eq!(cycle_node(0, 0b111), Some(1));
        assert_eq!(cycle_node(2, 0b111), Some(0));
        assert_eq!(cycle_node(0, 0b100), Some(2));
        assert_eq!(cycle_node(63, 1 << 63), Some(63));
        assert_eq!(cycle_node(0, 0), None);
    }

    #[test]
    fn fragmentation_limits_superpages() {
        let mut cfg = HostConfig::uniform(1, 8192, 4);
        cfg.nodes[0] = NodeConfig {
            memory_mib: Some(8192),
            cpus: 4,
            free_1g: Some(2),
            free_2m: Some(10),
            ..NodeConfig::default()
        };
        let m = Machine::new(&cfg).unwrap();
        let b = &m.nodes[0].buddy;
        assert_eq!(b.chunks(18), 2);
        // 10 whole 2 MiB frames in the first broken GiB merge into chunks of order >= 9.
        assert_eq!(b.pages_in_chunks_of(9) - 2 * PAGES_1G, 10 * PAGES_2M);
        let holes: u64 = m.host_used.iter().map(|u| u.1).sum();
        assert_eq!(b.avail() + holes, m.total_pages);
    }
}
