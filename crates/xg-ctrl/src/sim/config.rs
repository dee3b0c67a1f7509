//! Host descriptions for the simulator (TOML, see `hosts/default.toml`).
//!
//! A host is a list of NUMA nodes plus the knobs of the libxenguest oracle's hypervisor
//! model, so one configuration can run through both (see [`OracleModel`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ops::{PciDev, ReservedRegion};

use super::buddy::MAX_ORDER;

/// The host the `xenguest` binary simulates by default: 2 nodes x 64 GiB, 16 CPUs,
/// lightly fragmented.
pub const DEFAULT_HOST_TOML: &str = include_str!("../../hosts/default.toml");

/// Pages of one 1 GiB frame.
pub const PAGES_1G: u64 = 1 << 18;
/// Pages of one 2 MiB frame.
pub const PAGES_2M: u64 = 1 << 9;
/// Size in pages of an "unlimited" node of an oracle-compatible host (16 TiB).
pub const UNLIMITED_NODE_PAGES: u64 = 1 << 32;
/// Nodes of an oracle-compatible host when fewer are listed (unlisted ones are unlimited).
pub const ORACLE_MIN_NODES: usize = 4;
/// Most CPUs a host may have (the largest `NR_CPUS` Xen's Kconfig allows).
pub const MAX_CPUS: u64 = 4095;

/// How an allocation without an exact node picks its node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Xen's `get_free_buddy`: the requested node, else round-robin over the domain's node
    /// affinity starting after `last_alloc_node`, then any other node.
    #[default]
    Xen,
    /// The oracle's rule: the first node (lowest id) with room, ignoring affinity.
    FirstFit,
}

/// One NUMA node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node RAM in MiB (or give `memory_pages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Node RAM in 4 KiB pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pages: Option<u64>,
    /// Free RAM in MiB at start (default: all of it); the rest counts as used by Xen and
    /// other domains and sits at the top of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_mib: Option<u64>,
    /// Free RAM in pages at start (instead of `free_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_pages: Option<u64>,
    /// Physical CPUs of this node (numbered consecutively across nodes).
    #[serde(default)]
    pub cpus: u32,
    /// Fragmentation: at most this many free 1 GiB frames stay whole; every other 1 GiB
    /// frame of free memory loses its first page (used), so it only offers chunks of order
    /// 17 and below. Default: all whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_1g: Option<u64>,
    /// Fragmentation: at most this many free 2 MiB frames outside whole 1 GiB chunks stay
    /// whole; every other one loses its first page, so only 4 KiB..1 MiB chunks remain.
    /// Default: all whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_2m: Option<u64>,
    /// The node only serves requests naming it with `XENMEMF_exact_node` (the oracle's
    /// unlisted nodes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_only: bool,
}

impl NodeConfig {
    /// A node of `memory_mib` MiB, all free, with `cpus` CPUs.
    pub fn new(memory_mib: u64, cpus: u32) -> NodeConfig {
        NodeConfig {
            memory_mib: Some(memory_mib),
            cpus,
            ..NodeConfig::default()
        }
    }

    /// Node size in pages.
    pub fn memory_pages(&self) -> Result<u64> {
        match (self.memory_mib, self.memory_pages) {
            (Some(mib), None) => mib
                .checked_mul(256)
                .ok_or_else(|| host_err("node memory_mib too large")),
            (None, Some(p)) => Ok(p),
            _ => Err(host_err(
                "each node needs exactly one of memory_mib and memory_pages",
            )),
        }
    }

    /// Free pages at start, before fragmentation holes.
    pub fn free_pages(&self) -> Result<u64> {
        let mem = self.memory_pages()?;
        let free = match (self.free_mib, self.free_pages) {
            (None, None) => mem,
            (Some(mib), None) => mib
                .checked_mul(256)
                .ok_or_else(|| host_err("node free_mib too large"))?,
            (None, Some(p)) => p,
            (Some(_), Some(_)) => return Err(host_err("give free_mib or free_pages, not both")),
        };
        if free > mem {
            return Err(host_err("a node has more free memory than memory"));
        }
        Ok(free)
    }
}

/// `ORDER:COUNT` of the oracle's `ORACLE_FRAGMENT`: only `count` extents of `order`
/// succeed, machine-wide, over the life of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtentBudget {
    /// Extent order.
    pub order: u8,
    /// Extents of that order that may still succeed.
    pub count: u64,
}

/// Fails chosen calls of one operation with an errno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Operation name as in the trace (`"populate_physmap"`, `"set_max_mem"`, ...).
    pub op: String,
    /// The first call to fail, counting calls of `op` from 1.
    pub nth: u64,
    /// How many consecutive calls fail from `nth` on.
    #[serde(default = "one")]
    pub times: u64,
    /// The errno the call fails with.
    pub errno: i32,
}

/// A PCI device of the host that has reserved device memory (ACPI RMRRs), as
/// `XENMEM_reserved_device_memory_map` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciDeviceConfig {
    /// The device, `SSSS:BB:DD.F` (hex) or `BB:DD.F`.
    pub sbdf: String,
    /// Its regions as `[start_pfn, nr_pages]`, in the order Xen reports them. A region
    /// listed for several devices is one RMRR shared by them.
    #[serde(default)]
    pub rmrrs: Vec<[u64; 2]>,
}

impl PciDeviceConfig {
    /// The device address.
    pub fn dev(&self) -> Result<PciDev> {
        parse_sbdf(&self.sbdf).ok_or_else(|| Error::HostConfig {
            detail: format!("pci_device sbdf {:?} is not SSSS:BB:DD.F (hex)", self.sbdf),
        })
    }

    /// Its regions.
    pub fn regions(&self) -> Vec<ReservedRegion> {
        self.rmrrs
            .iter()
            .map(|&[start_pfn, nr_pages]| ReservedRegion {
                start_pfn,
                nr_pages,
            })
            .collect()
    }
}

/// Parses `SSSS:BB:DD.F` or `BB:DD.F` (hex fields, device below 32, function below 8).
fn parse_sbdf(text: &str) -> Option<PciDev> {
    let (rest, func) = text.rsplit_once('.')?;
    let mut parts: Vec<&str> = rest.split(':').collect();
    if parts.len() == 2 {
        parts.insert(0, "0");
    }
    let [seg, bus, dev] = parts[..] else {
        return None;
    };
    let hex = |t: &str| {
        (!t.is_empty() && t.len() <= 4 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u16::from_str_radix(t, 16).ok())
            .flatten()
    };
    let seg = hex(seg)?;
    let bus = u8::try_from(hex(bus)?).ok()?;
    let dev = u8::try_from(hex(dev)?).ok().filter(|&d| d < 32)?;
    let func = u8::try_from(hex(func)?).ok().filter(|&f| f < 8)?;
    Some(PciDev {
        seg,
        bus,
        devfn: (dev << 3) | func,
    })
}

fn one() -> u64 {
    1
}

fn default_cpu_khz() -> u32 {
    2_600_000
}

fn default_threads() -> u32 {
    2
}

/// A simulated Xen host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Free-form name (shown in logs).
    #[serde(default)]
    pub name: String,
    /// CPU frequency in kHz.
    #[serde(default = "default_cpu_khz")]
    pub cpu_khz: u32,
    /// Threads per core.
    #[serde(default = "default_threads")]
    pub threads_per_core: u32,
    /// Node choice for allocations without an exact node.
    #[serde(default)]
    pub placement: Placement,
    /// The NUMA nodes, node 0 first.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeConfig>,
    /// Extent orders that always fail (`ORACLE_FAIL_ORDER`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_orders: Vec<u8>,
    /// Machine-wide extent budgets per order (`ORACLE_FRAGMENT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extent_budget: Vec<ExtentBudget>,
    /// Every non-zero claim fails with ENOMEM (`ORACLE_CLAIM_FAIL`).
    #[serde(default)]
    pub claim_fail: bool,
    /// `set_pod_target` fails with ENOMEM (`ORACLE_POD_FAIL`).
    #[serde(default)]
    pub pod_fail: bool,
    /// `set_pod_target` allocates the PoD cache, as Xen does (the oracle does not).
    #[serde(default = "yes")]
    pub pod_cache: bool,
    /// `max_mem` of a new domain in KiB (Xen: 0 until the toolstack sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_max_kib: Option<u64>,
    /// Injected failures.
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRule>,
    /// PCI devices with reserved device memory (RMRRs); devices not listed have none.
    #[serde(default, rename = "pci_device", skip_serializing_if = "Vec::is_empty")]
    pub pci_devices: Vec<PciDeviceConfig>,
}

fn yes() -> bool {
    true
}

fn host_err(detail: &str) -> Error {
    Error::HostConfig {
        detail: detail.to_owned(),
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig::from_toml(DEFAULT_HOST_TOML)
            .unwrap_or_else(|_| HostConfig::uniform(2, 65536, 8))
    }
}

impl HostConfig {
    /// `nodes` nodes of `mib_per_node` MiB and `cpus_per_node` CPUs, all free, unfragmented.
    pub fn uniform(nodes: usize, mib_per_node: u64, cpus_per_node: u32) -> HostConfig {
        HostConfig {
            name: format!("{nodes}x{mib_per_node}MiB"),
            cpu_khz: default_cpu_khz(),
            threads_per_core: default_threads(),
            placement: Placement::Xen,
            nodes: (0..nodes)
                .map(|_| NodeConfig::new(mib_per_node, cpus_per_node))
                .collect(),
            fail_orders: Vec::new(),
            extent_budget: Vec::new(),
            claim_fail: false,
            pod_fail: false,
            pod_cache: true,
            initial_max_kib: None,
            faults: Vec::new(),
            pci_devices: Vec::new(),
        }
    }

    /// Parses a TOML host description and checks it.
    pub fn from_toml(text: &str) -> Result<HostConfig> {
        let cfg: HostConfig = toml::from_str(text).map_err(|e| Error::HostConfig {
            detail: e.message().to_owned(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML host description from a file.
    pub fn from_file(path: &Path) -> Result<HostConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        HostConfig::from_toml(&text)
    }

    /// The description as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::HostConfig {
            detail: e.to_string(),
        })
    }

    /// Checks the description for values the simulator cannot model.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(host_err("a host needs at least one node"));
        }
        if self.nodes.len() > 64 {
            return Err(host_err("at most 64 nodes (MAX_NUMNODES)"));
        }
        for n in &self.nodes {
            n.free_pages()?;
            if n.memory_pages()? > (1u64 << 36) {
                return Err(host_err("a node of more than 256 TiB"));
            }
        }
        if self.nodes.iter().all(|n| n.cpus == 0) {
            return Err(host_err("a host needs at least one CPU"));
        }
        // Xen's NR_CPUS goes up to 4095; dom0's affinity maps grow with the square.
        if self.nodes.iter().map(|n| u64::from(n.cpus)).sum::<u64>() > MAX_CPUS {
            return Err(host_err("at most 4095 CPUs (Xen's largest NR_CPUS)"));
        }
        if self.nodes.iter().all(|n| n.exact_only) {
            return Err(host_err("at least one node must serve non-exact requests"));
        }
        if self.fail_orders.iter().any(|&o| o > MAX_ORDER)
            || self.extent_budget.iter().any(|b| b.order > MAX_ORDER)
        {
            return Err(host_err("extent orders go up to 18"));
        }
        if self.threads_per_core == 0 {
            return Err(host_err("threads_per_core must be at least 1"));
        }
        for f in &self.faults {
            super::fault::check_op_name(&f.op)?;
            if f.nth == 0 {
                return Err(host_err("fault nth counts from 1"));
            }
        }
        let mut devs = std::collections::BTreeSet::new();
        for d in &self.pci_devices {
            if !devs.insert(d.dev()?) {
                return Err(Error::HostConfig {
                    detail: format!("pci_device {:?} is listed twice", d.sbdf),
                });
            }
        }
        Ok(())
    }

    /// The reserved regions `XENMEM_reserved_device_memory_map` reports: those of `dev`,
    /// or with `all` every distinct region of the host once, in order of first listing
    /// (Xen walks its RMRR units and reports each for its first matching device).
    /// Regions of no pages are left out, as Xen does.
    pub fn reserved_regions(&self, dev: PciDev, all: bool) -> Vec<ReservedRegion> {
        let mut out: Vec<ReservedRegion> = Vec::new();
        for d in &self.pci_devices {
            if !all && d.dev().ok() != Some(dev) {
                continue;
            }
            for r in d.regions() {
                if r.nr_pages != 0 && !(all && out.contains(&r)) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// A host that behaves like the libxenguest oracle's model (see [`OracleModel`]):
    /// listed nodes hold exactly their free pages, unlisted nodes (up to
    /// [`ORACLE_MIN_NODES`]) are unlimited and only serve exact-node requests when nodes
    /// are listed, an extent without an exact node takes the first node with room, new
    /// domains may allocate without `max_mem`, and `set_pod_target` allocates no cache.
    ///
    /// Free memory starts 1 GiB-aligned at each node's start, so "the node has a free
    /// chunk of order k" and "the node has 2^k free pages" agree for the way meminit
    /// allocates (small pieces come from the smallest chunks first).
    pub fn oracle_compatible(model: &OracleModel) -> HostConfig {
        let listed = model.free_pages.len();
        let total = listed.max(ORACLE_MIN_NODES);
        let nodes = (0..total)
            .map(|i| match model.free_pages.get(i) {
                Some(&free) => NodeConfig {
                    memory_pages: Some(free.div_ceil(PAGES_1G).max(1) * PAGES_1G),
                    free_pages: Some(free),
                    cpus: 4,
                    ..NodeConfig::default()
                },
                None => NodeConfig {
                    memory_pages: Some(UNLIMITED_NODE_PAGES),
                    cpus: 4,
                    exact_only: listed > 0,
                    ..NodeConfig::default()
                },
            })
            .collect();
        HostConfig {
            name: "oracle-compatible".to_owned(),
            cpu_khz: default_cpu_khz(),
            threads_per_core: default_threads(),
            placement: Placement::FirstFit,
            nodes,
            fail_orders: model.fail_orders.clone(),
            extent_budget: model
                .fragment
                .iter()
                .map(|&(order, count)| ExtentBudget { order, count })
                .collect(),
            claim_fail: model.claim_fail,
            pod_fail: model.pod_fail,
            pod_cache: false,
            initial_max_kib: Some(u64::from(u32::MAX) * 4),
            faults: Vec::new(),
            pci_devices: Vec::new(),
        }
    }
}

/// The knobs of the libxenguest oracle's hypervisor model (its `ORACLE_*` environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleModel {
    /// `ORACLE_FREE_PAGES`: free pages per listed node.
    pub free_pages: Vec<u64>,
    /// `ORACLE_FAIL_ORDER`: orders that always fail.
    pub fail_orders: Vec<u8>,
    /// `ORACLE_FRAGMENT`: `(order, count)` machine-wide budgets.
    pub fragment: Vec<(u8, u64)>,
    /// `ORACLE_CLAIM_FAIL`.
    pub claim_fail: bool,
    /// `ORACLE_POD_FAIL`.
    pub pod_fail: bool,
}

impl OracleModel {
    /// Reads the model from `ORACLE_*` variables through `get` (e.g. `std::env::var`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<OracleModel> {
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let num = |t: &str| -> Result<u64> {
            t.parse::<u64>()
                .map_err(|_| host_err("ORACLE_* values must be decimal numbers"))
        };
        let order = |t: &str| -> Result<u8> {
            u8::try_from(num(t)?)
                .ok()
                .filter(|&o| o <= MAX_ORDER)
                .ok_or_else(|| host_err("ORACLE_* orders go up to 18"))
        };
        let flag = |name: &str| {
            get(name)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|v| v != 0)
        };
        let mut model = OracleModel {
            claim_fail: flag("ORACLE_CLAIM_FAIL"),
            pod_fail: flag("ORACLE_POD_FAIL"),
            ..OracleModel::default()
        };
        for t in list("ORACLE_FREE_PAGES") {
            model.free_pages.push(num(&t)?);
        }
        for t in list("ORACLE_FAIL_ORDER") {
            model.fail_orders.push(order(&t)?);
        }
        for t in list("ORACLE_FRAGMENT") {
            let (o, c) = t
                .split_once(':')
                .ok_or_else(|| host_err("ORACLE_FRAGMENT entries are ORDER:COUNT"))?;
            model.fragment.push((order(o)?, num(c)?));
        }
        Ok(model)
    }

    /// Reads the model from this process's environment.
    pub fn from_env() -> Result<OracleModel> {
        OracleModel::from_vars(|k| std::env::var(k).ok())
    }

    /// The model as `ORACLE_*` variables, to run the oracle with the same configuration.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        let join = |v: Vec<String>| v.join(",");
        let mut vars = Vec::new();
        if !self.free_pages.is_empty() {
            vars.push((
                "ORACLE_FREE_PAGES".to_owned(),
                join(self.free_pages.iter().map(u64::to_string).collect()),
            ));
        }
        if !self.fail_orders.is_empty() {
            vars.push((
                "ORACLE_FAIL_ORDER".to_owned(),
                join(self.fail_orders.iter().map(u8::to_string).collect()),
            ));
        }
        if !self.fragment.is_empty() {
            vars.push((
                "ORACLE_FRAGMENT".to_owned(),
                join(
                    self.fragment
                        .iter()
                        .map(|(o, c)| format!("{o}:{c}"))
                        .collect(),
                ),
            ));
        }
        if self.claim_fail {
            vars.push(("ORACLE_CLAIM_FAIL".to_owned(), "1".to_owned()));
        }
        if self.pod_fail {
            vars.push(("ORACLE_POD_FAIL".to_owned(), "1".to_owned()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_host_parses() {
        let cfg = HostConfig::from_toml(DEFAULT_HOST_TOML).unwrap();
        assert_eq!(cfg.nodes.len(), 2);
        assert_eq!(cfg.nodes.iter().map(|n| n.cpus).sum::<u32>(), 16);
        assert_eq!(HostConfig::default(), cfg);
    }

    #[test]
    fn toml_round_trip() {
        let cfg = HostConfig::oracle_compatible(&OracleModel {
            free_pages: vec![200_000],
            fail_orders: vec![18],
            fragment: vec![(9, 6)],
            claim_fail: true,
            pod_fail: false,
        });
        let text = cfg.to_toml().unwrap();
        assert_eq!(HostConfig::from_toml(&text).unwrap(), cfg);
    }

    #[test]
    fn oracle_vars_parse_and_print() {
        let vars = [
            ("ORACLE_FREE_PAGES", "100,200"),
            ("ORACLE_FAIL_ORDER", "18,9"),
            ("ORACLE_FRAGMENT", "18:1,9:6"),
            ("ORACLE_CLAIM_FAIL", "1"),
        ];
        let m = OracleModel::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
        assert_eq!(m.free_pages, vec![100, 200]);
        assert_eq!(m.fail_orders, vec![18, 9]);
        assert_eq!(m.fragment, vec![(18, 1), (9, 6)]);
        assert!(m.claim_fail && !m.pod_fail);
        let back = m.to_vars();
        assert_eq!(
            back[2],
            ("ORACLE_FRAGMENT".to_owned(), "18:1,9:6".to_owned())
        );
        assert!(OracleModel::from_vars(|_| Some("x".to_owned())).is_err());
    }

    #[test]
    fn bad_hosts_are_rejected() {
        assert!(HostConfig::from_toml("node = []").is_err());
        assert!(
            HostConfig::from_toml("[[node]]\nmemory_mib = 10\nfree_mib = 11\ncpus = 1").is_err()
        );
        assert!(HostConfig::from_toml("[[node]]\nmemory_mib = 10\ncpus = 1\nbogus = 1").is_err());
        assert!(HostConfig::from_toml(
            "[[node]]\nmemory_mib = 10\ncpus = 1\n[[fault]]\nop = \"nope\"\nnth = 1\nerrno = 5"
        )
        .is_err());
    }
}
