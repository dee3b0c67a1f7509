//! Runs a [`MeminitPlan`] against a hypervisor, call by call (`compat`) or batched.

use log::{debug, info, trace};
use xg_ctrl::{DomId, Gfn, MemoryOps, PageOrder};

use super::plan::{Answer, CallKind, Failure, MeminitPlan, PageStats, PopulateCall, Step};
use super::{MeminitConfig, MeminitError};

/// How populate calls are issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Exactly libxenguest's calls: one call per 1 GiB extent, at most 4 × 2 MiB or
    /// 2048 × 4 KiB per call.
    #[default]
    Compat,
    /// The same extents requested in the same order at the same gfns as `Compat`, but
    /// consecutive requests of one order and flag set travel in one call of up to
    /// [`MAX_BATCH_EXTENTS`] extents. A short return is fed back call by call, so every
    /// fallback matches `Compat`; any hypervisor that answers extent by extent gives both
    /// strategies the same answers.
    Batched,
    /// Like `Batched`, but once a superpage of some order and flag set has failed, later
    /// superpages of that order and flag set are not asked for again: they go straight to
    /// the fallback `Compat` would use after their failure. Same final map as `Compat`
    /// when superpage failures are lasting (no memory is freed during the build), with
    /// far fewer calls on fragmented hosts.
    BatchedSkipFailed,
}

impl Strategy {
    fn batches(self) -> bool {
        self != Strategy::Compat
    }
}

/// Most extents in one batched call (512 KiB of gfns; libxenguest's PV path passes up
/// to 2^20 per call).
pub const MAX_BATCH_EXTENTS: usize = 1 << 16;

/// What a successful `meminit_hvm` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeminitReport {
    /// libxenguest's page counters.
    pub stats: PageStats,
    /// `dom->p2m_size`.
    pub p2m_size: u64,
    /// `XENMEM_populate_physmap` hypercalls made (plain and `_exact`).
    pub populate_calls: u64,
}

/// Populates the guest's memory as libxenguest's `meminit_hvm` does. The claim is
/// released at the end on success and on error.
pub fn meminit_hvm<M: MemoryOps + ?Sized>(
    ops: &M,
    domid: DomId,
    cfg: &MeminitConfig,
    strategy: Strategy,
) -> Result<MeminitReport, MeminitError> {
    info!(
        "meminit_hvm: domain {domid}, {:#x} pages, target {:#x}, {strategy:?}",
        cfg.total_pages, cfg.target_pages
    );
    let mut run = Runner {
        ops,
        domid,
        gfns: Vec::new(),
        last_error: None,
        populate_calls: 0,
        failed: Vec::new(),
        skip_failed: strategy == Strategy::BatchedSkipFailed,
    };
    let mut plan = MeminitPlan::new(cfg);
    while let Some(step) = plan.step() {
        match step {
            Step::Populate(call) if strategy.batches() => run.batch(&mut plan, call),
            _ => {
                let answer = run.single(step);
                plan.complete(answer);
            }
        }
    }
    let report = |stats| MeminitReport {
        stats,
        p2m_size: plan.p2m_size(),
        populate_calls: run.populate_calls,
    };
    match plan.outcome() {
        Some(Ok(stats)) => {
            debug!(
                "PHYSICAL MEMORY ALLOCATION: 4KB {:#x}, 2MB {:#x}, 1GB {:#x}, {} populate calls",
                stats.pages_4k, stats.pages_2m, stats.pages_1g, run.populate_calls
            );
            Ok(report(stats))
        }
        Some(Err(failure)) => Err(run.error(failure)),
        // The loop only ends when the plan is finished.
        None => Err(run.error(Failure::LowMemoryUncovered)),
    }
}

struct Runner<'o, M: ?Sized> {
    ops: &'o M,
    domid: DomId,
    /// The one gfn buffer, reused; never longer than a batch.
    gfns: Vec<Gfn>,
    /// The error of the last failed call, for the typed error.
    last_error: Option<xg_ctrl::Error>,
    populate_calls: u64,
    /// (order, flags) of superpages that failed, for `BatchedSkipFailed`.
    failed: Vec<(PageOrder, xg_ctrl::MemFlags)>,
    skip_failed: bool,
}

/// A compat call inside a batch: sent, or skipped as a known failure.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Sent(PopulateCall),
    Skipped(PopulateCall),
}

impl<M: MemoryOps + ?Sized> Runner<'_, M> {
    /// Makes one call exactly as libxenguest does.
    fn single(&mut self, step: Step) -> Answer {
        let result = match step {
            Step::Claim { pages } => self.ops.claim_pages(self.domid, pages).map(|()| 0),
            Step::SetPodTarget { pages } => self.ops.set_pod_target(self.domid, pages).map(|()| 0),
            Step::ReleaseClaim => {
                // Its result is ignored, as in libxenguest.
                if let Err(e) = self.ops.claim_pages(self.domid, 0) {
                    debug!("Releasing the claim failed: {e}");
                }
                return Answer::Done(0);
            }
            Step::Populate(call) => {
                self.fill(std::iter::once(call));
                self.issue(call.kind, call.order, call.flags)
            }
        };
        match result {
            Ok(done) => Answer::Done(done),
            Err(e) => {
                let answer = match &e {
                    xg_ctrl::Error::Partial { done, .. } => {
                        Answer::Done(u64::try_from(*done).unwrap_or(0))
                    }
                    _ => Answer::Failed,
                };
                self.last_error = Some(e);
                answer
            }
        }
    }

    fn fill(&mut self, calls: impl Iterator<Item = PopulateCall>) {
        self.gfns.clear();
        for call in calls {
            self.gfns.extend((0..call.nr_extents).map(|i| call.gfn(i)));
        }
    }

    fn issue(
        &mut self,
        kind: CallKind,
        order: PageOrder,
        flags: xg_ctrl::MemFlags,
    ) -> xg_ctrl::Result<u64> {
        self.populate_calls += 1;
        trace!(
            "populate {kind:?} {} x order {order} flags {:#x} at {}",
            self.gfns.len(),
            flags.0,
            self.gfns.first().copied().unwrap_or(Gfn(0))
        );
        let gfns = &self.gfns[..];
        match kind {
            CallKind::Populate => self
                .ops
                .populate_physmap(self.domid, order, flags, gfns)
                .map(xg_ctrl::types::conv::usize_to_u64),
            CallKind::PopulateExact => self
                .ops
                .populate_physmap_exact(self.domid, order, flags, gfns)
                .map(|()| xg_ctrl::types::conv::usize_to_u64(gfns.len())),
        }
    }

    fn known_failure(&self, call: &PopulateCall) -> bool {
        self.skip_failed
            && call.kind == CallKind::Populate
            && self.failed.contains(&(call.order, call.flags))
    }

    /// Merges the compat calls that follow `first` (same order and flags) into one
    /// `populate_physmap`, then feeds the result back call by call.
    fn batch(&mut self, plan: &mut MeminitPlan<'_>, first: PopulateCall) {
        if self.known_failure(&first) {
            trace!(
                "skipping order {} at gfn {:#x}: failed before",
                first.order,
                first.first_gfn
            );
            plan.complete(Answer::Done(0));
            return;
        }
        // Look ahead on a clone, assuming every call succeeds in full.
        let mut ahead = plan.clone();
        let mut slots: Vec<Slot> = Vec::new();
        let mut extents = 0u64;
        let limit = xg_ctrl::types::conv::usize_to_u64(MAX_BATCH_EXTENTS);
        while let Some(Step::Populate(call)) = ahead.step() {
            if self.known_failure(&call) {
                slots.push(Slot::Skipped(call));
                ahead.complete(Answer::Done(0));
                continue;
            }
            let fits = extents + call.nr_extents <= limit;
            if call.order != first.order || call.flags != first.flags || !(fits || extents == 0) {
                break;
            }
            extents += call.nr_extents;
            slots.push(Slot::Sent(call));
            ahead.complete(Answer::Done(call.nr_extents));
        }
        // Skipped calls after the last sent one belong to the next batch.
        while matches!(slots.last(), Some(Slot::Skipped(_))) {
            slots.pop();
        }
        self.fill(slots.iter().filter_map(|s| match s {
            Slot::Sent(c) => Some(*c),
            Slot::Skipped(_) => None,
        }));
        let done = match self.issue(CallKind::Populate, first.order, first.flags) {
            Ok(done) => done,
            Err(e) => {
                // The first merged call gets the failure; the plan decides what follows.
                self.last_error = Some(e);
                plan.complete(Answer::Failed);
                return;
            }
        };
        let mut offset = 0u64;
        for slot in slots {
            let call = match slot {
                Slot::Skipped(call) => {
                    debug_assert_eq!(plan.step(), Some(Step::Populate(call)));
                    plan.complete(Answer::Done(0));
                    continue;
                }
                Slot::Sent(call) => call,
            };
            debug_assert_eq!(plan.step(), Some(Step::Populate(call)));
            let got = done.saturating_sub(offset).min(call.nr_extents);
            plan.complete(Answer::Done(got));
            if got < call.nr_extents {
                if call.kind == CallKind::Populate {
                    self.failed.push((call.order, call.flags));
                }
                // What libxenctrl reports for a short `_exact` call.
                self.last_error = Some(xg_ctrl::Error::Partial {
                    requested: xg_ctrl::types::conv::u64_to_usize(call.nr_extents),
                    done: xg_ctrl::types::conv::u64_to_usize(got),
                    order: call.order.get(),
                    first_gfn: Gfn(call.first_gfn),
                });
                return;
            }
            offset += call.nr_extents;
        }
    }

    fn error(&mut self, failure: Failure) -> MeminitError {
        let mut source = || {
            self.last_error
                .take()
                .unwrap_or_else(|| xg_ctrl::Error::hypercall("memory_op", libc_eio()))
        };
        match failure {
            Failure::VnumaWithPod => MeminitError::VnumaWithPod,
            Failure::PagesMismatch {
                ranges_pages,
                total_pages,
            } => MeminitError::PagesMismatch {
                ranges_pages,
                total_pages,
            },
            Failure::UnknownVnode {
                index,
                vnode,
                nr_vnodes,
            } => MeminitError::UnknownVnode {
                index,
                vnode,
                nr_vnodes,
            },
            Failure::LowMemoryUncovered => MeminitError::LowMemoryUncovered,
            Failure::Claim { pages } => MeminitError::Claim {
                pages,
                source: source(),
            },
            Failure::PodTarget { pages } => MeminitError::PodTarget {
                pages,
                source: source(),
            },
            Failure::LowMemory { .. } => MeminitError::LowMemory { source: source() },
            Failure::Populate { call, .. } => MeminitError::Populate {
                gfn: call.first_gfn,
                count: call.nr_extents,
                source: source(),
            },
        }
    }
}

/// EIO, for the (unreachable) case of a failure without a recorded error.
const fn libc_eio() -> i32 {
    5
}
