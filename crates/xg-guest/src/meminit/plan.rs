//! `meminit_hvm` as a lazy plan: a state machine that names the next hypervisor call and
//! is told its result. It holds a few integers, never an array of gfns, so a 2 TiB guest
//! costs as little memory as a 1 MiB one.
//!
//! The transitions follow libxenguest 4.17 `meminit_hvm` (tools/libs/guest/xg_dom_x86.c)
//! statement by statement, including its unsigned wrap-arounds.

use xg_ctrl::{Gfn, MemFlags, PageOrder};

use super::MeminitConfig;
use crate::layout::{VmemRange, FOUR_GIB, NUMA_NO_NODE};

/// Pages populated first when there is a device model: gfns 0..0xa0 (640 KiB).
pub const LOW_PAGES: u64 = 0xA0;
/// First gfn after the VGA hole (0xa0..0xc0 is never populated with a device model).
pub const VGA_HOLE_END: u64 = 0xC0;
/// Pages in a 1 GiB extent.
pub const PAGES_1G: u64 = 1 << 18;
/// Pages in a 2 MiB extent.
pub const PAGES_2M: u64 = 1 << 9;
/// The 2 MiB/4 KiB stages handle at most this many pages per iteration (8 MiB).
pub const CHUNK_2M_PAGES: u64 = PAGES_2M * 4;

/// Which libxenctrl call a populate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `xc_domain_populate_physmap`: a short count is not an error.
    Populate,
    /// `xc_domain_populate_physmap_exact`: a short count is EBUSY.
    PopulateExact,
}

/// One `XENMEM_populate_physmap` request. Extent `i` starts at `first_gfn + (i << order)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PopulateCall {
    /// Plain or `_exact`.
    pub kind: CallKind,
    /// Extent order.
    pub order: PageOrder,
    /// `XENMEMF_*` flags.
    pub flags: MemFlags,
    /// First gfn of the first extent.
    pub first_gfn: u64,
    /// Number of extents.
    pub nr_extents: u64,
}

impl PopulateCall {
    /// The first gfn of extent `i`.
    pub fn gfn(&self, i: u64) -> Gfn {
        Gfn(self.first_gfn + (i << self.order.get()))
    }

    /// Pages covered by all extents.
    pub fn pages(&self) -> u64 {
        self.nr_extents << self.order.get()
    }
}

/// A hypervisor call the plan wants made next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `xc_domain_claim_pages(pages)`.
    Claim {
        /// Pages to claim.
        pages: u64,
    },
    /// `xc_domain_set_pod_target(pages)`.
    SetPodTarget {
        /// The target.
        pages: u64,
    },
    /// A populate call.
    Populate(PopulateCall),
    /// `xc_domain_claim_pages(0)`: always the last call, on success and error.
    ReleaseClaim,
}

/// The result of a step as libxenguest sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The call returned; for populates, this many extents were done.
    Done(u64),
    /// The call failed (a negative return).
    Failed,
}

/// Page counters of `meminit_hvm` (its `PHYSICAL MEMORY ALLOCATION` log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PageStats {
    /// `stat_normal_pages`: 4 KiB pages, including the 0x20 VGA-hole pages with a device
    /// model (counted although never populated) but not the 0xa0 low pages.
    pub pages_4k: u64,
    /// `stat_2mb_pages`: 2 MiB extents.
    pub pages_2m: u64,
    /// `stat_1gb_pages`: 1 GiB extents.
    pub pages_1g: u64,
}

/// Why the plan ended in error (the executor adds the hypercall error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// vNUMA ranges with PoD.
    VnumaWithPod,
    /// Range sum differs from `total_pages`.
    PagesMismatch {
        /// Pages in the ranges.
        ranges_pages: u64,
        /// `total_pages`.
        total_pages: u64,
    },
    /// A range's vnode has no `vnode_to_pnode` entry.
    UnknownVnode {
        /// Range index.
        index: usize,
        /// The vnode.
        vnode: u32,
        /// Mapped vnodes.
        nr_vnodes: usize,
    },
    /// gfns below 0xa0 are outside the ranges.
    LowMemoryUncovered,
    /// The claim failed.
    Claim {
        /// Pages asked for.
        pages: u64,
    },
    /// The PoD target could not be set.
    PodTarget {
        /// Target asked for.
        pages: u64,
    },
    /// The 0xa0 low pages came back short or failed.
    LowMemory {
        /// The call.
        call: PopulateCall,
        /// Extents done, `None` when the call failed outright.
        done: Option<u64>,
    },
    /// A 4 KiB populate came back short or failed.
    Populate {
        /// The call.
        call: PopulateCall,
        /// Extents done, `None` when the call failed outright.
        done: Option<u64>,
    },
}

/// The memory ranges being populated: the default two, or the caller's.
#[derive(Debug, Clone, Copy)]
enum Ranges<'a> {
    Default([VmemRange; 2], usize),
    Given(&'a [VmemRange]),
}

impl Ranges<'_> {
    fn as_slice(&self) -> &[VmemRange] {
        match self {
            Ranges::Default(r, n) => &r[..*n],
            Ranges::Given(r) => r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Validate,
    Claim,
    AwaitClaim { pages: u64 },
    PodTarget,
    AwaitPod { pages: u64 },
    LowPages,
    AwaitLow,
    RangeStart,
    Iterate,
    Await1G { count: u64 },
    Stage2M { count: u64 },
    Await2M { count: u64 },
    Stage4K { count: u64 },
    Await4K { count: u64 },
    Release,
    AwaitRelease,
    Finished,
}

/// The lazy plan of `meminit_hvm`. Drive it with [`MeminitPlan::step`] and
/// [`MeminitPlan::complete`] until `step` returns `None`, then read
/// [`MeminitPlan::outcome`]. Cloning is cheap (the batched executor looks ahead on a
/// clone).
#[derive(Debug, Clone)]
pub struct MeminitPlan<'a> {
    cfg: &'a MeminitConfig,
    ranges: Ranges<'a>,
    vnode_to_pnode: &'a [u32],
    base_flags: MemFlags,
    state: State,
    pending: Option<Step>,
    range_idx: usize,
    cur: u64,
    end: u64,
    cur_pfn: u64,
    flags: MemFlags,
    stats: PageStats,
    p2m_size: u64,
    failure: Option<Failure>,
}

/// `vnode_to_pnode` of the default layout: one vnode, not bound.
const UNBOUND: [u32; 1] = [NUMA_NO_NODE];

impl<'a> MeminitPlan<'a> {
    /// A plan for `cfg`. Nothing is checked yet: consistency errors come out as the
    /// plan's outcome after the claim release, as libxenguest does.
    pub fn new(cfg: &'a MeminitConfig) -> MeminitPlan<'a> {
        let (ranges, vnode_to_pnode) = if cfg.vmemranges.is_empty() {
            let low = VmemRange {
                start: 0,
                end: cfg.lowmem_end,
                flags: 0,
                nid: 0,
            };
            let high = VmemRange {
                start: FOUR_GIB,
                end: cfg.highmem_end,
                flags: 0,
                nid: 0,
            };
            let n = if cfg.highmem_end > FOUR_GIB { 2 } else { 1 };
            (Ranges::Default([low, high], n), &UNBOUND[..])
        } else {
            (Ranges::Given(&cfg.vmemranges), &cfg.vnode_to_pnode[..])
        };
        let base_flags = if cfg.is_pod() {
            MemFlags::NONE.with_pod()
        } else {
            MemFlags::NONE
        };
        let mut plan = MeminitPlan {
            cfg,
            ranges,
            vnode_to_pnode,
            base_flags,
            state: State::Validate,
            pending: None,
            range_idx: 0,
            cur: 0,
            end: 0,
            cur_pfn: 0,
            flags: base_flags,
            stats: PageStats::default(),
            p2m_size: 0,
            failure: None,
        };
        plan.advance();
        plan
    }

    /// The call to make next, `None` when the plan is finished.
    pub fn step(&self) -> Option<Step> {
        self.pending
    }

    /// Page counters so far.
    pub fn stats(&self) -> PageStats {
        self.stats
    }

    /// `dom->p2m_size`: the highest range end in pages (0 until validated).
    pub fn p2m_size(&self) -> u64 {
        self.p2m_size
    }

    /// After the last step: the counters, or why the build failed.
    pub fn outcome(&self) -> Option<Result<PageStats, Failure>> {
        if self.state != State::Finished {
            return None;
        }
        Some(match self.failure {
            Some(f) => Err(f),
            None => Ok(self.stats),
        })
    }

    /// Feeds the result of the pending step and moves to the next one. Ignored when
    /// nothing is pending.
    pub fn complete(&mut self, answer: Answer) {
        let Some(step) = self.pending.take() else {
            return;
        };
        self.state = match (self.state, step) {
            (State::AwaitClaim { pages }, _) => match answer {
                Answer::Done(_) => State::PodTarget,
                Answer::Failed => self.fail(Failure::Claim { pages }),
            },
            (State::AwaitPod { pages }, _) => match answer {
                Answer::Done(_) => State::LowPages,
                Answer::Failed => self.fail(Failure::PodTarget { pages }),
            },
            (State::AwaitLow, Step::Populate(call)) => match answer {
                Answer::Done(n) if n == call.nr_extents => State::RangeStart,
                Answer::Done(n) => self.fail(Failure::LowMemory {
                    call,
                    done: Some(n),
                }),
                Answer::Failed => self.fail(Failure::LowMemory { call, done: None }),
            },
            (State::Await1G { count }, Step::Populate(call)) => State::Stage2M {
                count: self.take_superpages(call, answer, count),
            },
            (State::Await2M { count }, Step::Populate(call)) => State::Stage4K {
                count: self.take_superpages(call, answer, count),
            },
            (State::Await4K { count }, Step::Populate(call)) => {
                self.cur = self.cur.wrapping_add(count);
                self.stats.pages_4k = self.stats.pages_4k.wrapping_add(count);
                match answer {
                    Answer::Done(n) if n == call.nr_extents => State::Iterate,
                    Answer::Done(n) => self.fail(Failure::Populate {
                        call,
                        done: Some(n),
                    }),
                    Answer::Failed => self.fail(Failure::Populate { call, done: None }),
                }
            }
            (State::AwaitRelease, _) => State::Finished,
            // Unreachable: every pending step is set together with its Await state.
            (state, _) => state,
        };
        self.advance();
    }

    /// Applies a superpage result: returns the pages of the chunk still to do.
    fn take_superpages(&mut self, call: PopulateCall, answer: Answer, count: u64) -> u64 {
        match answer {
            // Zero or negative results are silently ignored: the next stage falls back.
            Answer::Done(done) if done > 0 => {
                let done = done.min(call.nr_extents);
                if call.order == PageOrder::ORDER_1G {
                    self.stats.pages_1g += done;
                } else {
                    self.stats.pages_2m += done;
                }
                let pages = done << call.order.get();
                self.cur = self.cur.wrapping_add(pages);
                count - pages
            }
            _ => count,
        }
    }

    fn fail(&mut self, failure: Failure) -> State {
        self.failure = Some(failure);
        State::Release
    }

    fn populate(&mut self, kind: CallKind, order: PageOrder, flags: MemFlags, gfn: u64, nr: u64) {
        self.pending = Some(Step::Populate(PopulateCall {
            kind,
            order,
            flags,
            first_gfn: gfn,
            nr_extents: nr,
        }));
    }

    /// Runs internal transitions until a call is pending or the plan is finished.
    fn advance(&mut self) {
        loop {
            match self.state {
                State::Validate => {
                    self.state = match self.validate() {
                        Ok(()) => State::Claim,
                        Err(f) => self.fail(f),
                    };
                }
                State::Claim => {
                    if self.cfg.claim_enabled {
                        let pages = self.cfg.target_pages.wrapping_sub(self.cfg.vga_hole_size);
                        self.pending = Some(Step::Claim { pages });
                        self.state = State::AwaitClaim { pages };
                        return;
                    }
                    self.state = State::PodTarget;
                }
                State::PodTarget => {
                    if self.base_flags.is_pod() {
                        let pages = self.cfg.target_pages.wrapping_sub(self.cfg.vga_hole_size);
                        self.pending = Some(Step::SetPodTarget { pages });
                        self.state = State::AwaitPod { pages };
                        return;
                    }
                    self.state = State::LowPages;
                }
                State::LowPages => {
                    if self.cfg.device_model {
                        let flags = self.base_flags;
                        self.populate(
                            CallKind::PopulateExact,
                            PageOrder::ORDER_4K,
                            flags,
                            0,
                            LOW_PAGES,
                        );
                        self.state = State::AwaitLow;
                        return;
                    }
                    self.state = State::RangeStart;
                }
                State::RangeStart => self.state = self.start_range(),
                State::Iterate => self.state = self.iterate(),
                State::Stage2M { count } => self.state = self.stage_2m(count),
                State::Stage4K { count } => {
                    if count != 0 {
                        let (cur, flags) = (self.cur, self.flags);
                        self.populate(
                            CallKind::PopulateExact,
                            PageOrder::ORDER_4K,
                            flags,
                            cur,
                            count,
                        );
                        self.state = State::Await4K { count };
                    } else {
                        self.state = State::Iterate;
                    }
                }
                State::Release => {
                    self.pending = Some(Step::ReleaseClaim);
                    self.state = State::AwaitRelease;
                }
                State::Finished => {
                    self.pending = None;
                    return;
                }
                State::AwaitClaim { .. }
                | State::AwaitPod { .. }
                | State::AwaitLow
                | State::Await1G { .. }
                | State::Await2M { .. }
                | State::Await4K { .. }
                | State::AwaitRelease => return,
            }
        }
    }

    /// The consistency checks done before any call.
    fn validate(&mut self) -> Result<(), Failure> {
        if matches!(self.ranges, Ranges::Given(_)) && self.cfg.is_pod() {
            return Err(Failure::VnumaWithPod);
        }
        let ranges = self.ranges.as_slice();
        let mut pages = 0u64;
        let mut p2m_size = 0u64;
        for r in ranges {
            pages = pages.wrapping_add(r.end.wrapping_sub(r.start) >> 12);
            p2m_size = p2m_size.max(r.end >> 12);
        }
        if pages != self.cfg.total_pages {
            return Err(Failure::PagesMismatch {
                ranges_pages: pages,
                total_pages: self.cfg.total_pages,
            });
        }
        self.p2m_size = p2m_size;
        // libxenguest would read past vnode_to_pnode or use p2m entries of -1 here.
        for (index, r) in ranges.iter().enumerate() {
            let nid = usize::try_from(r.nid).unwrap_or(usize::MAX);
            if nid >= self.vnode_to_pnode.len() {
                return Err(Failure::UnknownVnode {
                    index,
                    vnode: r.nid,
                    nr_vnodes: self.vnode_to_pnode.len(),
                });
            }
        }
        if self.cfg.device_model {
            let covered = |pfn: u64| {
                ranges
                    .iter()
                    .any(|r| r.start >> 12 <= pfn && pfn < r.end >> 12)
            };
            if !(0..LOW_PAGES).all(covered) {
                return Err(Failure::LowMemoryUncovered);
            }
        }
        Ok(())
    }

    fn start_range(&mut self) -> State {
        let Some(&range) = self.ranges.as_slice().get(self.range_idx) else {
            return State::Release;
        };
        let vnode = usize::try_from(range.nid).unwrap_or(usize::MAX);
        let pnode = self
            .vnode_to_pnode
            .get(vnode)
            .copied()
            .unwrap_or(NUMA_NO_NODE);
        self.flags = if pnode != NUMA_NO_NODE {
            self.base_flags.union(MemFlags::exact_node(pnode))
        } else {
            self.base_flags
        };
        self.end = range.end >> 12;
        if range.start == 0 && self.cfg.device_model {
            self.cur = VGA_HOLE_END;
            self.stats.pages_4k = self.stats.pages_4k.wrapping_add(VGA_HOLE_END);
        } else {
            self.cur = range.start >> 12;
        }
        State::Iterate
    }

    /// The top of the `while` loop: clip to 1 GiB and try a 1 GiB extent.
    fn iterate(&mut self) -> State {
        if self.end <= self.cur {
            self.range_idx += 1;
            return State::RangeStart;
        }
        let mask = PAGES_1G - 1;
        let mut count = (self.end - self.cur).min(PAGES_1G);
        let cur_pfn = self.cur;
        self.cur_pfn = cur_pfn;
        if cur_pfn & mask != 0 && count > (cur_pfn.wrapping_neg() & mask) {
            count = cur_pfn.wrapping_neg() & mask;
        } else if count & mask != 0 && count > PAGES_1G {
            count &= !mask;
        }
        if (count | cur_pfn) & mask == 0 && !self.touches_mmio(cur_pfn << 12, PAGES_1G << 12) {
            let (cur, flags) = (self.cur, self.flags);
            self.populate(
                CallKind::Populate,
                PageOrder::ORDER_1G,
                flags,
                cur,
                count >> 18,
            );
            return State::Await1G { count };
        }
        State::Stage2M { count }
    }

    /// The 2 MiB stage: at most 8 MiB, clipped to 2 MiB boundaries.
    fn stage_2m(&mut self, mut count: u64) -> State {
        if count == 0 {
            return State::Stage4K { count };
        }
        let mask = PAGES_2M - 1;
        count = count.min(CHUNK_2M_PAGES);
        // cur_pfn is the value from the top of the iteration, as in the C code.
        let cur_pfn = self.cur_pfn;
        if cur_pfn & mask != 0 && count > (cur_pfn.wrapping_neg() & mask) {
            count = cur_pfn.wrapping_neg() & mask;
        } else if count & mask != 0 && count > PAGES_2M {
            count &= !mask;
        }
        if (count | cur_pfn) & mask == 0 {
            let (cur, flags) = (self.cur, self.flags);
            self.populate(
                CallKind::Populate,
                PageOrder::ORDER_2M,
                flags,
                cur,
                count >> 9,
            );
            return State::Await2M { count };
        }
        State::Stage4K { count }
    }

    /// `check_mmio_hole`, with C's unsigned wrap-around.
    fn touches_mmio(&self, start: u64, size: u64) -> bool {
        let (mmio_start, mmio_size) = (self.cfg.mmio_start, self.cfg.mmio_size);
        !(start.wrapping_add(size) <= mmio_start || start >= mmio_start.wrapping_add(mmio_size))
    }
}
