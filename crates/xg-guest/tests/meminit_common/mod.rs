//! Test support shared by the meminit and oracle tests: the oracle driver's options, the
//! oracle README's case table, and runs of our `meminit_hvm` on the simulator configured
//! like the oracle's hypervisor model.
#![allow(dead_code)]

use serde_json::Value;
use xg_ctrl::sim::{OracleModel, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps};
use xg_guest::meminit::{meminit_hvm, MeminitConfig, MeminitReport, Strategy};

/// The guest's domid in every run (the oracle's default).
pub const DOMID: DomId = DomId(1);

/// Parses the oracle's environment notation (`ORACLE_FAIL_ORDER=18,9 ...`).
pub fn model(pairs: &[(&str, &str)]) -> OracleModel {
    OracleModel::from_vars(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
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
    sim.create_domain(DOMID, &DomainConfig::default()).expect("domain 1");
    sim
}

fn outcome(sim: &Simulator, result: Result<MeminitReport, xg_guest::meminit::MeminitError>, records: Vec<Value>) -> Outcome {
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
pub fn run_sim(model: &OracleModel, cfg: &MeminitConfig, strategy: Strategy, traced: bool) -> Outcome {
    let sim = new_sim(model);
    if traced {
        let hv = Traced::new(sim, TraceSink::new());
        let result = meminit_hvm(&hv, DOMID, cfg, strategy);
        let records = hv.sink().hypercalls().iter().map(|r| r.to_value()).collect();
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
pub fn readme_cases() -> Vec<(&'static str, OracleModel, OracleArgs)> {
    let m = OracleArgs::mib;
    let env = model;
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
