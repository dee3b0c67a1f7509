//! Test support shared by the meminit and oracle tests: the oracle driver's options, the
//! oracle README's case table, and runs of our `meminit_hvm` on the simulator configured
//! like the oracle's hypervisor model.
#![allow(dead_code)]

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;
use xg_ctrl::sim::{OracleModel, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps};
use xg_guest::meminit::{meminit_hvm, MeminitConfig, MeminitReport, Strategy};

/// The guest's domid in every run (the oracle's default).
pub const DOMID: DomId = DomId(1);

/// Parses the oracle's environment notation (`ORACLE_FAIL_ORDER=18,9 ...`).
pub fn model(pairs: &[(&str, &str)]) -> OracleModel {
    OracleModel::from_vars(|k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("valid oracle environment")
}

/// A run of populated extents: (first gfn, order, extents, node; `None` = PoD).
pub type Run = (u64, u8, u64, Option<u32>);

/// Sorts runs by gfn and merges neighbours, so equal maps compare equal however the
/// simulator split them.
pub fn normalise(mut runs: Vec<Run>) -> Vec<Run> {
    runs.sort_unstable();
    let mut out: Vec<Run> = Vec::with_capacity(runs.len());
    for r in runs {
        if let Some(last) = out.last_mut() {
            if last.1 == r.1 && last.3 == r.3 && last.0 + (last.2 << last.1) == r.0 {
                last.2 += r.2;
                continue;
            }
        }
        out.push(r);
    }
    out
}

/// What one run of our `meminit_hvm` left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The report, or the error's message and errno.
    pub result: Result<MeminitReport, (String, Option<i32>)>,
    /// Hypervisor-call records (empty unless traced).
    pub records: Vec<Value>,
    /// The domain's final p2m, normalised.
    pub p2m: Vec<Run>,
    /// RAM pages, PoD entries and the outstanding claim of the domain.
    pub totals: (u64, u64, u64),
}

fn new_sim(model: &OracleModel) -> Simulator {
    let sim = Simulator::oracle_compatible(model).expect("oracle-compatible host");
    sim.create_domain(DOMID, &DomainConfig::default())
        .expect("domain 1");
    sim
}

fn outcome(
    sim: &Simulator,
    result: Result<MeminitReport, xg_guest::meminit::MeminitError>,
    records: Vec<Value>,
) -> Outcome {
    sim.check_invariants().expect("simulator invariants");
    let snap = sim.domain_snapshot(DOMID).expect("domain exists");
    Outcome {
        result: result.map_err(|e| (e.to_string(), e.errno())),
        records,
        p2m: normalise(sim.p2m_runs(DOMID).expect("domain exists")),
        totals: (snap.ram_pages, snap.pod_entries, snap.outstanding_pages),
    }
}

/// Runs our `meminit_hvm` on a fresh oracle-compatible simulator.
pub fn run_sim(
    model: &OracleModel,
    cfg: &MeminitConfig,
    strategy: Strategy,
    traced: bool,
) -> Outcome {
    let sim = new_sim(model);
    if traced {
        let hv = Traced::new(sim, TraceSink::new());
        let result = meminit_hvm(&hv, DOMID, cfg, strategy);
        let records = hv
            .sink()
            .hypercalls()
            .iter()
            .map(|r| r.to_value())
            .collect();
        outcome(hv.inner(), result, records)
    } else {
        let result = meminit_hvm(&sim, DOMID, cfg, strategy);
        outcome(&sim, result, Vec::new())
    }
}

/// The oracle driver's options (README "Driver options").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OracleArgs {
    pub mem_mib: u64,
    pub lowmem_end_mib: Option<u64>,
    pub highmem_end_mib: Option<u64>,
    pub mmio_start_mib: Option<u64>,
    pub vnodes: u32,
    pub pnodes: Vec<u32>,
    pub claim: bool,
    pub target_mib: Option<u64>,
    pub vga_hole_pages: Option<u64>,
    pub no_device_model: bool,
    pub total_pages: Option<u64>,
}

const MIB: u64 = 1 << 20;
const FOUR_GIB: u64 = 1 << 32;

impl OracleArgs {
    /// A guest of `mem_mib` with all defaults.
    pub fn mib(mem_mib: u64) -> OracleArgs {
        OracleArgs {
            mem_mib,
            ..OracleArgs::default()
        }
    }

    /// The driver command line.
    pub fn cli(&self) -> Vec<String> {
        let mut a = vec!["--mem-mib".to_string(), self.mem_mib.to_string()];
        let mut opt = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                a.push(name.into());
                a.push(v.to_string());
            }
        };
        opt("--lowmem-end-mib", self.lowmem_end_mib);
        opt("--highmem-end-mib", self.highmem_end_mib);
        opt("--mmio-start-mib", self.mmio_start_mib);
        opt("--target-mib", self.target_mib);
        opt("--vga-hole-pages", self.vga_hole_pages);
        opt("--total-pages", self.total_pages);
        if self.vnodes > 0 {
            a.push("--vnodes".into());
            a.push(self.vnodes.to_string());
        }
        if !self.pnodes.is_empty() {
            a.push("--pnodes".into());
            a.push(
                self.pnodes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if self.claim {
            a.push("--claim".into());
        }
        if self.no_device_model {
            a.push("--no-device-model".into());
        }
        a
    }

    /// The `MeminitConfig` the driver builds (libxl defaults for what is not given).
    pub fn config(&self) -> xg_guest::meminit::MeminitConfig {
        use xg_guest::layout;
        let mem = self.mem_mib * MIB;
        let mmio_start = self
            .mmio_start_mib
            .map_or(FOUR_GIB - 0x1000_0000, |m| m * MIB);
        let lowmem_end = self.lowmem_end_mib.map_or(mem.min(mmio_start), |m| m * MIB);
        let highmem_end = self.highmem_end_mib.map_or(
            if mem > mmio_start {
                FOUR_GIB + (mem - mmio_start)
            } else {
                0
            },
            |m| m * MIB,
        );
        let device_model = !self.no_device_model;
        let mmio_size = FOUR_GIB - mmio_start;
        let (vmemranges, vnode_to_pnode) = if self.vnodes > 0 {
            let split = layout::even_vnode_split_mib(self.mem_mib, self.vnodes);
            let ranges =
                layout::vnuma_vmemranges(&split, lowmem_end, mmio_start, mmio_size).unwrap();
            let map = (0..self.vnodes)
                .map(|i| self.pnodes.get(i as usize).copied().unwrap_or(i))
                .collect();
            (ranges, map)
        } else {
            (Vec::new(), Vec::new())
        };
        xg_guest::meminit::MeminitConfig {
            total_pages: self.total_pages.unwrap_or(self.mem_mib << 8),
            target_pages: self.target_mib.unwrap_or(self.mem_mib) << 8,
            lowmem_end,
            highmem_end,
            mmio_start,
            mmio_size,
            device_model,
            vga_hole_size: self
                .vga_hole_pages
                .unwrap_or(if device_model { 0x20 } else { 0 }),
            claim_enabled: self.claim,
            vmemranges,
            vnode_to_pnode,
        }
    }
}

/// The oracle README's case table: (name, env, driver args).
pub fn readme_cases() -> Vec<(&'static str, OracleModel, OracleArgs)> {
    let m = OracleArgs::mib;
    let env = model;
    vec![
        ("256mib", env(&[]), m(256)),
        ("1gib", env(&[]), m(1024)),
        ("4gib-default-mmio", env(&[]), m(4096)),
        (
            "8gib-2vnodes",
            env(&[]),
            OracleArgs {
                vnodes: 2,
                ..m(8192)
            },
        ),
        ("1tib", env(&[]), m(1048576)),
        ("odd-1023mib", env(&[]), m(1023)),
        ("odd-4097mib", env(&[]), m(4097)),
        (
            "odd-6001mib-mmio2049",
            env(&[]),
            OracleArgs {
                mmio_start_mib: Some(2049),
                ..m(6001)
            },
        ),
        (
            "all-1g-fail-8gib",
            env(&[("ORACLE_FAIL_ORDER", "18")]),
            m(8192),
        ),
        (
            "all-2m-fail-4gib",
            env(&[("ORACLE_FAIL_ORDER", "9")]),
            m(4096),
        ),
        (
            "no-superpages-1gib",
            env(&[("ORACLE_FAIL_ORDER", "18,9")]),
            m(1024),
        ),
        (
            "claim-on-4gib",
            env(&[]),
            OracleArgs {
                claim: true,
                ..m(4096)
            },
        ),
        (
            "claim-fail-4gib",
            env(&[("ORACLE_CLAIM_FAIL", "1")]),
            OracleArgs {
                claim: true,
                ..m(4096)
            },
        ),
        (
            "pod-4gib-target2gib",
            env(&[]),
            OracleArgs {
                target_mib: Some(2048),
                ..m(4096)
            },
        ),
        (
            "fragmented-4gib",
            env(&[("ORACLE_FRAGMENT", "18:1,9:6")]),
            m(4096),
        ),
        ("oom-1gib", env(&[("ORACLE_FREE_PAGES", "200000")]), m(1024)),
        (
            "explicit-layout-2gib",
            env(&[]),
            OracleArgs {
                lowmem_end_mib: Some(2048),
                highmem_end_mib: Some(0),
                mmio_start_mib: Some(3072),
                ..m(2048)
            },
        ),
        (
            "xenguest-style-pod-8gib",
            env(&[]),
            OracleArgs {
                target_mib: Some(6144),
                vga_hole_pages: Some(0),
                ..m(8192)
            },
        ),
        (
            "pvh-no-dm-2gib",
            env(&[]),
            OracleArgs {
                no_device_model: true,
                ..m(2048)
            },
        ),
        (
            "vnuma-pod-rejected",
            env(&[]),
            OracleArgs {
                vnodes: 2,
                target_mib: Some(2048),
                ..m(4096)
            },
        ),
        (
            "layout-mismatch",
            env(&[]),
            OracleArgs {
                lowmem_end_mib: Some(3072),
                highmem_end_mib: Some(4608),
                mmio_start_mib: Some(3840),
                ..m(4096)
            },
        ),
    ]
}

/// A folded line of a call summary: `calls` populate calls of one shape and outcome
/// over contiguous gfns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    calls: u64,
    call: String,
    nr: u64,
    order: u64,
    flags: u64,
    status: String,
    first: u64,
    last: u64,
}

impl Group {
    fn end(&self) -> u64 {
        self.last + (1u64 << self.order) - 1
    }
    fn shape(&self) -> String {
        format!(
            "{} {} x order {} flags {:#07x} {}",
            self.call, self.nr, self.order, self.flags, self.status
        )
    }
}

enum Item {
    Populate(Group),
    Other(String),
}

/// Renders hypervisor-call records one fact per line: consecutive populate calls of the
/// same shape and outcome over contiguous gfns fold into one line, and so do repeated
/// pairs (a failed superpage call followed by its 4 KiB fallback).
pub fn summarise_calls(records: &[Value]) -> String {
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let mut items: Vec<Item> = Vec::new();
    for r in records {
        let call = r["call"].as_str().unwrap_or("?").to_owned();
        if !call.starts_with("populate_physmap") {
            let detail = match call.as_str() {
                "claim_pages" => format!("nr_pages {}", u(r, "nr_pages")),
                "set_pod_target" => format!("target_pages {}", u(r, "target_pages")),
                _ => String::new(),
            };
            items.push(Item::Other(format!("{call} {detail} rc {}", r["rc"])));
            continue;
        }
        let (nr, order, flags) = (u(r, "nr_extents"), u(r, "extent_order"), u(r, "mem_flags"));
        let done = u(r, "done");
        let mut status = if done == nr {
            "ok".to_owned()
        } else if done == 0 {
            "failed".to_owned()
        } else {
            format!("partial {done}/{nr}")
        };
        let contiguous = r["gpfns_contiguous"].as_bool().unwrap_or(false);
        if !contiguous {
            status.push_str(" (gfns not contiguous)");
        }
        let (first, last) = (u(r, "first_gpfn"), u(r, "last_gpfn"));
        if let Some(Item::Populate(g)) = items.last_mut() {
            if contiguous
                && g.call == call
                && g.nr == nr
                && g.order == order
                && g.flags == flags
                && g.status == status
                && first == g.end() + 1
            {
                g.calls += 1;
                g.last = last;
                continue;
            }
        }
        items.push(Item::Populate(Group {
            calls: 1,
            call,
            nr,
            order,
            flags,
            status,
            first,
            last,
        }));
    }

    let mut out = String::new();
    let mut i = 0;
    while i < items.len() {
        // A run of repeated single-call pairs?
        if let (Some(Item::Populate(a)), Some(Item::Populate(b))) = (items.get(i), items.get(i + 1))
        {
            if a.calls == 1 && b.calls == 1 {
                let mut reps = 1;
                let mut end = b.end();
                while let (Some(Item::Populate(c)), Some(Item::Populate(d))) =
                    (items.get(i + 2 * reps), items.get(i + 2 * reps + 1))
                {
                    if c.calls == 1
                        && d.calls == 1
                        && c.shape() == a.shape()
                        && d.shape() == b.shape()
                        && c.first == end + 1
                    {
                        end = d.end();
                        reps += 1;
                    } else {
                        break;
                    }
                }
                if reps >= 2 {
                    out.push_str(&format!(
                        "{reps:>5} x [{}; {}] gfn {:#x}-{end:#x}\n",
                        a.shape(),
                        b.shape(),
                        a.first
                    ));
                    i += 2 * reps;
                    continue;
                }
            }
        }
        match &items[i] {
            Item::Populate(g) => out.push_str(&format!(
                "{:>5} x {:<22} {:>4} x order {:<2} flags {:#07x} gfn {:#x}-{:#x} {}\n",
                g.calls,
                g.call,
                g.nr,
                g.order,
                g.flags,
                g.first,
                g.end(),
                g.status
            )),
            Item::Other(line) => out.push_str(&format!("    1 x {line}\n")),
        }
        i += 1;
    }
    out
}

/// Renders a final p2m: extents per (order, node) and the populated ranges.
pub fn summarise_p2m(runs: &[Run]) -> String {
    use std::collections::BTreeMap;
    let mut per: BTreeMap<(u8, Option<u32>), u64> = BTreeMap::new();
    for &(_, order, count, node) in runs {
        *per.entry((order, node)).or_default() += count;
    }
    let mut out = String::new();
    for ((order, node), count) in per {
        let node = node.map_or("pod".to_owned(), |n| format!("node {n}"));
        out.push_str(&format!("  order {order:<2} {node}: {count} extents\n"));
    }
    // Ranges of populated gfns regardless of order.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &(gfn, order, count, _) in runs {
        let end = gfn + (count << order);
        match ranges.last_mut() {
            Some(last) if last.1 == gfn => last.1 = end,
            _ => ranges.push((gfn, end)),
        }
    }
    for (s, e) in ranges {
        out.push_str(&format!("  gfn {s:#x}-{:#x}\n", e - 1));
    }
    out
}

/// A random configuration in the ranges the brief asks for.
pub fn random_case(rng: &mut SmallRng) -> (OracleModel, OracleArgs) {
    // Log-uniform sizes from 1 MiB to 2 TiB, usually odd.
    let exp = rng.gen_range(0..=21u32);
    let mut mem_mib = (1u64 << exp)
        + if rng.gen_bool(0.6) {
            rng.gen_range(0..(1u64 << exp))
        } else {
            0
        };
    mem_mib = mem_mib.clamp(1, 2 << 20);
    let mut args = OracleArgs::mib(mem_mib);
    if rng.gen_bool(0.3) {
        // MMIO hole sizes xenguest produces, and odd ones.
        let hole_mib = if rng.gen_bool(0.7) {
            256u64 << rng.gen_range(0..=3u32)
        } else {
            rng.gen_range(1..=2048u64)
        };
        args.mmio_start_mib = Some(4096 - hole_mib);
    }
    let vnuma = rng.gen_bool(0.3);
    if vnuma {
        args.vnodes = rng.gen_range(1..=8);
        // The simulator has 4 nodes for exact-node requests (the oracle 64): name them
        // explicitly whenever identity would go beyond.
        if args.vnodes > 4 || rng.gen_bool(0.5) {
            args.pnodes = (0..args.vnodes)
                .map(|_| {
                    if rng.gen_bool(0.1) {
                        u32::MAX
                    } else {
                        rng.gen_range(0..4)
                    }
                })
                .collect();
        }
    }
    if rng.gen_bool(if vnuma { 0.05 } else { 0.25 }) {
        args.target_mib = Some(rng.gen_range(0..mem_mib.max(1)));
    }
    args.claim = rng.gen_bool(0.3);
    if rng.gen_bool(0.3) {
        args.vga_hole_pages = Some(0);
    }
    if rng.gen_bool(0.15) {
        args.no_device_model = true;
    }
    if rng.gen_bool(0.03) {
        args.total_pages = Some((mem_mib << 8) + rng.gen_range(1..512));
    }

    let mut host = OracleModel::default();
    // Failing superpages multiply the calls (129 per GiB without 1 GiB pages, 2 per 8 MiB
    // without 2 MiB pages): keep those guests at a size that keeps the test quick.
    let small = mem_mib <= 1 << 10;
    let medium = mem_mib <= 256 << 10;
    match rng.gen_range(0..10) {
        0 if medium => host.fail_orders = vec![18],
        1 if small => host.fail_orders = vec![9],
        2 if small => host.fail_orders = vec![18, 9],
        3 if medium => host.fragment = vec![(18, rng.gen_range(0..8))],
        4 if small => host.fragment = vec![(18, rng.gen_range(0..4)), (9, rng.gen_range(0..4000))],
        5 => {
            let nodes = rng.gen_range(1..=4);
            host.free_pages = (0..nodes)
                .map(|_| rng.gen_range(0..(mem_mib << 8).max(1) * 2))
                .collect();
        }
        _ => {}
    }
    host.claim_fail = rng.gen_bool(0.05);
    host.pod_fail = rng.gen_bool(0.05);
    (host, args)
}

/// One attempted extent run: (first gfn, order, flags, succeeded, extents).
pub type Attempt = (u64, u8, u32, bool, u64);

/// A [`xg_ctrl::MemoryOps`] wrapper that records every extent the hypervisor was asked
/// for, in request order, as runs: the extents done, then the one that failed (Xen stops
/// at the first failure). Two strategies that make the same attempts in the same order
/// get the same answers from any hypervisor that decides extent by extent.
#[derive(Debug)]
pub struct Recorder<H> {
    pub inner: H,
    attempts: std::cell::RefCell<Vec<Attempt>>,
    pub max_extents_per_call: std::cell::Cell<usize>,
}

impl<H> Recorder<H> {
    pub fn new(inner: H) -> Recorder<H> {
        Recorder {
            inner,
            attempts: Default::default(),
            max_extents_per_call: Default::default(),
        }
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.borrow().clone()
    }

    fn note(
        &self,
        order: xg_ctrl::PageOrder,
        flags: xg_ctrl::MemFlags,
        gfns: &[xg_ctrl::Gfn],
        done: usize,
    ) {
        self.max_extents_per_call
            .set(self.max_extents_per_call.get().max(gfns.len()));
        let mut a = self.attempts.borrow_mut();
        let order = order.get();
        for (i, g) in gfns.iter().enumerate().take(done + 1) {
            let ok = i < done;
            if let Some(last) = a.last_mut() {
                if last.1 == order
                    && last.2 == flags.0
                    && last.3 == ok
                    && last.0 + (last.4 << order) == g.0
                {
                    last.4 += 1;
                    continue;
                }
            }
            a.push((g.0, order, flags.0, ok, 1));
        }
    }
}

impl<H: xg_ctrl::MemoryOps> xg_ctrl::MemoryOps for Recorder<H> {
    fn populate_physmap(
        &self,
        domid: DomId,
        order: xg_ctrl::PageOrder,
        flags: xg_ctrl::MemFlags,
        gfns: &[xg_ctrl::Gfn],
    ) -> xg_ctrl::Result<usize> {
        let r = self.inner.populate_physmap(domid, order, flags, gfns);
        self.note(order, flags, gfns, *r.as_ref().unwrap_or(&0));
        r
    }

    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: xg_ctrl::PageOrder,
        flags: xg_ctrl::MemFlags,
        gfns: &[xg_ctrl::Gfn],
    ) -> xg_ctrl::Result<()> {
        let r = self.inner.populate_physmap_exact(domid, order, flags, gfns);
        let done = match &r {
            Ok(()) => gfns.len(),
            Err(xg_ctrl::Error::Partial { done, .. }) => *done,
            Err(_) => 0,
        };
        self.note(order, flags, gfns, done);
        r
    }

    fn decrease_reservation(
        &self,
        d: DomId,
        o: xg_ctrl::PageOrder,
        g: &[xg_ctrl::Gfn],
    ) -> xg_ctrl::Result<usize> {
        self.inner.decrease_reservation(d, o, g)
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> xg_ctrl::Result<()> {
        self.inner.claim_pages(domid, pages)
    }

    fn set_pod_target(&self, domid: DomId, pages: u64) -> xg_ctrl::Result<()> {
        self.inner.set_pod_target(domid, pages)
    }

    fn set_memory_map(&self, domid: DomId, map: &[xg_ctrl::E820Entry]) -> xg_ctrl::Result<()> {
        self.inner.set_memory_map(domid, map)
    }
}

/// Runs one strategy on a fresh simulator behind a [`Recorder`].
pub fn run_recorded(
    model: &OracleModel,
    cfg: &MeminitConfig,
    strategy: Strategy,
) -> (Outcome, Vec<Attempt>, usize) {
    let rec = Recorder::new(new_sim(model));
    let result = meminit_hvm(&rec, DOMID, cfg, strategy);
    let attempts = rec.attempts();
    let max = rec.max_extents_per_call.get();
    (outcome(&rec.inner, result, Vec::new()), attempts, max)
}

/// Runs compat, batched and batched-skip-failed on identical hosts. Batched must make
/// the same extent requests in the same order; all three must leave the same final p2m
/// and the same result. Returns the populate calls of each (0 on error).
pub fn assert_same(model: &OracleModel, cfg: &MeminitConfig, what: &str) -> [u64; 3] {
    let (a, attempts_a, max_a) = run_recorded(model, cfg, Strategy::Compat);
    assert!(max_a <= 2048, "{what}: compat call of {max_a} extents");
    let mut calls = [0; 3];
    calls[0] = a.result.as_ref().map_or(0, |r| r.populate_calls);
    for (i, strategy) in [Strategy::Batched, Strategy::BatchedSkipFailed]
        .into_iter()
        .enumerate()
    {
        let what = format!("{what} [{strategy:?}]");
        let (b, attempts_b, max_b) = run_recorded(model, cfg, strategy);
        assert!(
            max_b <= xg_guest::meminit::MAX_BATCH_EXTENTS,
            "{what}: batch of {max_b} extents"
        );
        if strategy == Strategy::Batched {
            assert_eq!(attempts_a, attempts_b, "{what}: attempted extents differ");
        }
        assert_eq!(a.p2m, b.p2m, "{what}: final p2m differs");
        assert_eq!(a.totals, b.totals, "{what}: RAM/PoD/claim totals differ");
        match (&a.result, &b.result) {
            (Ok(x), Ok(y)) => {
                assert_eq!(x.stats, y.stats, "{what}: page counters");
                assert_eq!(x.p2m_size, y.p2m_size, "{what}: p2m_size");
                assert!(
                    y.populate_calls <= x.populate_calls,
                    "{what}: more calls than compat"
                );
                calls[i + 1] = y.populate_calls;
            }
            (Err(x), Err(y)) => assert_eq!(x, y, "{what}: errors differ"),
            (x, y) => panic!("{what}: compat {x:?} vs {y:?}"),
        }
    }
    calls
}
