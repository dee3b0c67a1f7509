//! Test support shared by the meminit and oracle tests: a host model with the oracle's
//! semantics that records oracle-format trace records and the populated extents.
#![allow(dead_code)]

use std::cell::RefCell;

use serde_json::{json, Value};
use xg_ctrl::{DomId, E820Entry, Gfn, MemFlags, MemoryOps, PageOrder};

/// The oracle's hypervisor model (README "Hypervisor model").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostModel {
    /// Free pages per node; empty = unlimited.
    pub free_pages: Vec<u64>,
    /// Orders that always fail.
    pub fail_orders: Vec<u8>,
    /// (order, extents that may still succeed).
    pub fragment: Vec<(u8, u64)>,
    /// Non-zero claims fail.
    pub claim_fail: bool,
    /// set_pod_target fails.
    pub pod_fail: bool,
}

impl HostModel {
    /// The environment variables that configure the oracle the same way.
    pub fn env(&self) -> Vec<(String, String)> {
        let join = |v: Vec<String>| v.join(",");
        let mut env = Vec::new();
        if !self.free_pages.is_empty() {
            env.push((
                "ORACLE_FREE_PAGES".into(),
                join(self.free_pages.iter().map(u64::to_string).collect()),
            ));
        }
        if !self.fail_orders.is_empty() {
            env.push((
                "ORACLE_FAIL_ORDER".into(),
                join(self.fail_orders.iter().map(u8::to_string).collect()),
            ));
        }
        if !self.fragment.is_empty() {
            env.push((
                "ORACLE_FRAGMENT".into(),
                join(self.fragment.iter().map(|(o, c)| format!("{o}:{c}")).collect()),
            ));
        }
        if self.claim_fail {
            env.push(("ORACLE_CLAIM_FAIL".into(), "1".into()));
        }
        if self.pod_fail {
            env.push(("ORACLE_POD_FAIL".into(), "1".into()));
        }
        env
    }

    /// Parses the oracle's environment notation (`ORACLE_FAIL_ORDER=18,9 ...`).
    pub fn from_env(pairs: &[(&str, &str)]) -> HostModel {
        let mut m = HostModel::default();
        for (k, v) in pairs {
            let items = v.split(',').filter(|s| !s.is_empty());
            match *k {
                "ORACLE_FREE_PAGES" => m.free_pages = items.map(|s| s.parse().unwrap()).collect(),
                "ORACLE_FAIL_ORDER" => m.fail_orders = items.map(|s| s.parse().unwrap()).collect(),
                "ORACLE_FRAGMENT" => {
                    m.fragment = items
                        .map(|s| {
                            let (o, c) = s.split_once(':').unwrap();
                            (o.parse().unwrap(), c.parse().unwrap())
                        })
                        .collect()
                }
                "ORACLE_CLAIM_FAIL" => m.claim_fail = *v == "1",
                "ORACLE_POD_FAIL" => m.pod_fail = *v == "1",
                other => panic!("unknown oracle env {other}"),
            }
        }
        m
    }
}

/// A run of populated extents: (first gfn, order, extents, exact node or -1, PoD). Runs
/// keep the map small: a 2 TiB guest of 4 KiB pages is a handful of runs.
pub type Extent = (u64, u8, u64, i64, bool);

/// Sorts runs by gfn and merges neighbours, so equal maps compare equal however they
/// were built.
pub fn normalise(mut runs: Vec<Extent>) -> Vec<Extent> {
    runs.sort_unstable();
    let mut out: Vec<Extent> = Vec::with_capacity(runs.len());
    for r in runs {
        if let Some(last) = out.last_mut() {
            if last.1 == r.1 && last.3 == r.3 && last.4 == r.4 && last.0 + (last.2 << last.1) == r.0 {
                last.2 += r.2;
                continue;
            }
        }
        out.push(r);
    }
    out
}

fn push_run(runs: &mut Vec<Extent>, gfn: u64, order: u8, node: i64, pod: bool) {
    if let Some(last) = runs.last_mut() {
        if last.1 == order && last.3 == node && last.4 == pod && last.0 + (last.2 << order) == gfn {
            last.2 += 1;
            return;
        }
    }
    runs.push((gfn, order, 1, node, pod));
}

#[derive(Debug, Default)]
struct State {
    node_free: Vec<Option<u64>>,
    budget: Vec<Option<u64>>,
    seq: u64,
    trace: Vec<Value>,
    extents: Vec<Extent>,
    populated_pages: u64,
    pod_pages: u64,
    outstanding_claim: u64,
    record_trace: bool,
}

/// A [`MemoryOps`] with the oracle's model and recording.
#[derive(Debug)]
pub struct ModelHost {
    model: HostModel,
    state: RefCell<State>,
}

impl ModelHost {
    /// A host; `record_trace` keeps the JSON records (off for huge property runs).
    pub fn new(model: HostModel, record_trace: bool) -> ModelHost {
        let mut budget = vec![None; 64];
        for (o, c) in &model.fragment {
            budget[usize::from(*o)] = Some(*c);
        }
        let node_free = model.free_pages.iter().map(|&n| Some(n)).collect();
        ModelHost {
            model,
            state: RefCell::new(State {
                node_free,
                budget,
                record_trace,
                ..State::default()
            }),
        }
    }

    /// The trace records so far.
    pub fn trace(&self) -> Vec<Value> {
        self.state.borrow().trace.clone()
    }

    /// The populated extents as normalised runs.
    pub fn extents(&self) -> Vec<Extent> {
        normalise(self.state.borrow().extents.clone())
    }

    /// (populated pages, PoD pages, outstanding claim).
    pub fn totals(&self) -> (u64, u64, u64) {
        let s = self.state.borrow();
        (s.populated_pages, s.pod_pages, s.outstanding_claim)
    }

    fn alloc(&self, s: &mut State, order: u8, exact: Option<u32>) -> bool {
        let pages = 1u64 << order;
        if self.model.fail_orders.contains(&order) {
            return false;
        }
        if s.budget[usize::from(order)] == Some(0) {
            return false;
        }
        match exact {
            Some(node) => {
                let node = node as usize;
                if let Some(Some(free)) = s.node_free.get(node).copied() {
                    if free < pages {
                        return false;
                    }
                    s.node_free[node] = Some(free - pages);
                }
            }
            None if !s.node_free.is_empty() => {
                let mut ok = false;
                for slot in s.node_free.iter_mut() {
                    match slot {
                        None => {
                            ok = true;
                            break;
                        }
                        Some(free) if *free >= pages => {
                            *free -= pages;
                            ok = true;
                            break;
                        }
                        Some(_) => {}
                    }
                }
                if !ok {
                    return false;
                }
            }
            None => {}
        }
        if let Some(b) = s.budget[usize::from(order)].as_mut() {
            *b -= 1;
        }
        true
    }

    fn populate(&self, exact_call: bool, order: PageOrder, flags: MemFlags, gfns: &[Gfn]) -> usize {
        let mut s = self.state.borrow_mut();
        let order = order.get();
        let pod = flags.is_pod();
        let exact = if flags.is_exact() { flags.get_node() } else { None };
        let mut done = 0;
        for g in gfns {
            if !pod && !self.alloc(&mut s, order, exact) {
                break;
            }
            push_run(&mut s.extents, g.0, order, exact.map_or(-1, i64::from), pod);
            if pod {
                s.pod_pages += 1 << order;
            } else {
                s.populated_pages += 1 << order;
            }
            done += 1;
        }
        if s.record_trace {
            let first = gfns.first().map_or(0, |g| g.0);
            let last = gfns.last().map_or(0, |g| g.0);
            let contiguous = gfns
                .iter()
                .enumerate()
                .all(|(i, g)| g.0 == first + ((i as u64) << order));
            let rc: i64 = if exact_call {
                if done == gfns.len() {
                    0
                } else {
                    -1
                }
            } else {
                done as i64
            };
            let seq = s.seq;
            s.seq += 1;
            s.trace.push(json!({
                "seq": seq,
                "call": if exact_call { "populate_physmap_exact" } else { "populate_physmap" },
                "domid": 1,
                "nr_extents": gfns.len(),
                "extent_order": order,
                "mem_flags": flags.0,
                "pod": pod,
                "exact_node": exact.map_or(-1, i64::from),
                "first_gpfn": first,
                "last_gpfn": last,
                "gpfns_contiguous": contiguous,
                "done": done,
                "rc": rc,
            }));
        } else {
            s.seq += 1;
        }
        done
    }
}

impl MemoryOps for ModelHost {
    fn populate_physmap(
        &self,
        _domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> xg_ctrl::Result<usize> {
        Ok(self.populate(false, order, flags, gfns))
    }

    fn populate_physmap_exact(
        &self,
        _domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> xg_ctrl::Result<()> {
        let done = self.populate(true, order, flags, gfns);
        if done == gfns.len() {
            Ok(())
        } else {
            Err(xg_ctrl::Error::Partial {
                requested: gfns.len(),
                done,
                order: order.get(),
                first_gfn: gfns.first().copied().unwrap_or(Gfn(0)),
            })
        }
    }

    fn decrease_reservation(&self, _: DomId, _: PageOrder, _: &[Gfn]) -> xg_ctrl::Result<usize> {
        unimplemented!("meminit never releases memory")
    }

    fn claim_pages(&self, _domid: DomId, pages: u64) -> xg_ctrl::Result<()> {
        let mut s = self.state.borrow_mut();
        let total_free: Option<u64> = if s.node_free.is_empty() {
            None
        } else {
            s.node_free.iter().try_fold(0u64, |acc, n| n.map(|n| acc + n))
        };
        let fail = pages != 0 && (self.model.claim_fail || total_free.is_some_and(|t| pages > t));
        if pages == 0 {
            s.outstanding_claim = 0;
        } else if !fail {
            s.outstanding_claim = pages;
        }
        let seq = s.seq;
        s.seq += 1;
        if s.record_trace {
            s.trace.push(json!({"seq": seq, "call": "claim_pages", "domid": 1, "nr_pages": pages, "rc": if fail { -1 } else { 0 }}));
        }
        if fail {
            Err(xg_ctrl::Error::hypercall("claim_pages", 12))
        } else {
            Ok(())
        }
    }

    fn set_pod_target(&self, _domid: DomId, target_pages: u64) -> xg_ctrl::Result<()> {
        let mut s = self.state.borrow_mut();
        let fail = self.model.pod_fail;
        let seq = s.seq;
        s.seq += 1;
        if s.record_trace {
            s.trace.push(json!({"seq": seq, "call": "set_pod_target", "domid": 1, "target_pages": target_pages, "rc": if fail { -1 } else { 0 }}));
        }
        if fail {
            Err(xg_ctrl::Error::hypercall("set_pod_target", 12))
        } else {
            Ok(())
        }
    }

    fn set_memory_map(&self, _: DomId, _: &[E820Entry]) -> xg_ctrl::Result<()> {
        unimplemented!("meminit never sets the memory map")
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
            a.push(self.pnodes.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
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
        let mmio_start = self.mmio_start_mib.map_or(FOUR_GIB - 0x1000_0000, |m| m * MIB);
        let lowmem_end = self.lowmem_end_mib.map_or(mem.min(mmio_start), |m| m * MIB);
        let highmem_end = self.highmem_end_mib.map_or(
            if mem > mmio_start { FOUR_GIB + (mem - mmio_start) } else { 0 },
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
pub fn readme_cases() -> Vec<(&'static str, HostModel, OracleArgs)> {
    let m = OracleArgs::mib;
    let env = HostModel::from_env;
    vec![
        ("256mib", env(&[]), m(256)),
        ("1gib", env(&[]), m(1024)),
        ("4gib-default-mmio", env(&[]), m(4096)),
        ("8gib-2vnodes", env(&[]), OracleArgs { vnodes: 2, ..m(8192) }),
        ("1tib", env(&[]), m(1048576)),
        ("odd-1023mib", env(&[]), m(1023)),
        ("odd-4097mib", env(&[]), m(4097)),
        ("odd-6001mib-mmio2049", env(&[]), OracleArgs { mmio_start_mib: Some(2049), ..m(6001) }),
        ("all-1g-fail-8gib", env(&[("ORACLE_FAIL_ORDER", "18")]), m(8192)),
        ("all-2m-fail-4gib", env(&[("ORACLE_FAIL_ORDER", "9")]), m(4096)),
        ("no-superpages-1gib", env(&[("ORACLE_FAIL_ORDER", "18,9")]), m(1024)),
        ("claim-on-4gib", env(&[]), OracleArgs { claim: true, ..m(4096) }),
        ("claim-fail-4gib", env(&[("ORACLE_CLAIM_FAIL", "1")]), OracleArgs { claim: true, ..m(4096) }),
        ("pod-4gib-target2gib", env(&[]), OracleArgs { target_mib: Some(2048), ..m(4096) }),
        ("fragmented-4gib", env(&[("ORACLE_FRAGMENT", "18:1,9:6")]), m(4096)),
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
            OracleArgs { target_mib: Some(6144), vga_hole_pages: Some(0), ..m(8192) },
        ),
        ("pvh-no-dm-2gib", env(&[]), OracleArgs { no_device_model: true, ..m(2048) }),
        (
            "vnuma-pod-rejected",
            env(&[]),
            OracleArgs { vnodes: 2, target_mib: Some(2048), ..m(4096) },
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
