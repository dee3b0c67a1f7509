//! Reading our JSON Lines hypercall traces (`xenguest --trace`) and reducing a build's
//! trace to what two backends must agree on: the memory it populated, the e820 it set,
//! the HVM params it wrote.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Reading a trace failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("Reading trace {path} failed")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not JSON.
    #[error("Line {line} of trace {path} is not JSON")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// All records of a trace file, in order.
pub fn read(path: &Path) -> Result<Vec<Value>, TraceError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
        path: name.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| TraceError::Parse {
                path: name.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

fn u64_of(r: &Value, key: &str) -> u64 {
    r.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn call_of(r: &Value) -> &str {
    r.get("call").and_then(Value::as_str).unwrap_or("")
}

/// Only hypervisor calls (records with a `seq`).
pub fn hypercalls(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r.get("seq").is_some()).collect()
}

/// The calls named `name`.
pub fn calls<'a>(records: &'a [Value], name: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| call_of(r) == name).collect()
}

/// One populate call, without the domain id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Populate {
    /// `populate_physmap` or `populate_physmap_exact`.
    pub call: String,
    /// Extents asked for.
    pub nr_extents: u64,
    /// Their order.
    pub order: u64,
    /// `XENMEMF_*` flags.
    pub mem_flags: u64,
    /// First gfn of the list.
    pub first_gpfn: u64,
    /// Last gfn of the list.
    pub last_gpfn: u64,
    /// Extents done.
    pub done: u64,
}

/// Calls that change a domain's memory or HVM params: a build on the simulator and the
/// same build on Xen must make these identically (after [`normalise`]).
pub const MEMORY_CALLS: &[&str] = &[
    "populate_physmap",
    "populate_physmap_exact",
    "populate_physmap_mfns",
    "decrease_reservation",
    "claim_pages",
    "set_pod_target",
    "set_memory_map",
    "set_hvm_param",
    "write_guest",
    "clear_guest_pages",
];

/// A call without what differs between two runs of the same build: `seq` (other calls
/// may interleave), `domid`, and the machine frames Xen picked (`first_mfn`).
pub fn normalise(r: &Value) -> Value {
    match r {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "seq" | "domid" | "new_domid" | "first_mfn"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a build did to a domain's memory, comparable across backends and domids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEffect {
    /// Every populate call in order.
    pub populates: Vec<Populate>,
    /// Pages the populate calls added (`sum done << order`, PoD calls excluded) minus
    /// pages released by `decrease_reservation`.
    pub pages_added: u64,
    /// The last successful `set_memory_map` call, normalised.
    pub memory_map: Option<Value>,
    /// The last value written to each HVM param by a successful `set_hvm_param`.
    pub hvm_params: BTreeMap<u64, u64>,
    /// The [`MEMORY_CALLS`] in order, normalised.
    pub calls: Vec<Value>,
}

fn ok(r: &Value) -> bool {
    r.get("rc")
        .and_then(Value::as_i64)
        .is_some_and(|rc| rc >= 0)
}

/// Reduces a build's trace to its [`MemoryEffect`].
pub fn memory_effect(records: &[Value]) -> MemoryEffect {
    let mut populates = Vec::new();
    let mut added: u64 = 0;
    let mut released: u64 = 0;
    let mut memory_map = None;
    let mut hvm_params = BTreeMap::new();
    let mut calls = Vec::new();
    for r in hypercalls(records) {
        let name = call_of(r);
        if MEMORY_CALLS.contains(&name) {
            calls.push(normalise(r));
        }
        match name {
            c @ ("populate_physmap" | "populate_physmap_exact" | "populate_physmap_mfns") => {
                let p = Populate {
                    call: c.to_owned(),
                    nr_extents: u64_of(r, "nr_extents"),
                    order: u64_of(r, "extent_order"),
                    mem_flags: u64_of(r, "mem_flags"),
                    first_gpfn: u64_of(r, "first_gpfn"),
                    last_gpfn: u64_of(r, "last_gpfn"),
                    done: u64_of(r, "done"),
                };
                let pod = r.get("pod").and_then(Value::as_bool).unwrap_or(false)
                    || p.mem_flags & u64::from(xg_ctrl::MemFlags::POPULATE_ON_DEMAND) != 0;
                if !pod {
                    added += p.done << p.order.min(63);
                }
                populates.push(p);
            }
            "decrease_reservation" if ok(r) => {
                released += u64_of(r, "rc") << u64_of(r, "extent_order").min(63);
            }
            "set_memory_map" if ok(r) => memory_map = Some(normalise(r)),
            "set_hvm_param" if ok(r) => {
                hvm_params.insert(u64_of(r, "param"), u64_of(r, "value"));
            }
            _ => {}
        }
    }
    MemoryEffect {
        populates,
        pages_added: added.saturating_sub(released),
        memory_map,
        hvm_params,
        calls,
    }
}

/// HVM params whose value names an event channel: xenopsd allocates them per domain, so
/// they may differ between two builds.
pub const PER_DOMAIN_PARAMS: &[u64] = &[2, 18];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effect_of_a_small_trace() {
        let lines = [
            r#"{"seq":0,"call":"populate_physmap_exact","domid":3,"nr_extents":160,"extent_order":0,"mem_flags":0,"pod":false,"exact_node":-1,"first_gpfn":0,"last_gpfn":159,"gpfns_contiguous":true,"done":160,"rc":0}"#,
            r#"{"seq":1,"call":"populate_physmap","domid":3,"nr_extents":2,"extent_order":9,"mem_flags":0,"pod":false,"exact_node":-1,"first_gpfn":512,"last_gpfn":1024,"gpfns_contiguous":true,"done":2,"rc":2}"#,
            r#"{"call":"xs_write","path":"x"}"#,
            r#"{"seq":2,"call":"set_hvm_param","domid":3,"param":1,"value":1044476,"rc":0}"#,
            r#"{"seq":3,"call":"set_hvm_param","domid":3,"param":9,"value":1,"rc":-1,"errno":22}"#,
        ];
        let recs: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let e = memory_effect(&recs);
        assert_eq!(e.populates.len(), 2);
        assert_eq!(e.pages_added, 160 + 1024);
        assert_eq!(e.hvm_params.get(&1), Some(&1_044_476));
        assert_eq!(e.hvm_params.get(&9), None, "failed calls are not effects");
        assert_eq!(hypercalls(&recs).len(), 4);
    }
}
