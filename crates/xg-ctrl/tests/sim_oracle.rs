//! The simulator configured like the libxenguest oracle answers the real library's calls
//! exactly as the oracle did, and `Traced` writes the oracle's records byte for byte.

use std::path::PathBuf;

use xg_ctrl::sim::{OracleModel, Simulator};
use xg_ctrl::trace::{Record, TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, MemoryOps, PageOrder};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sim_data/oracle")
        .join(name)
}

fn u(r: &Record, k: &str) -> u64 {
    r.get(k)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{k} in {r}"))
}

/// Replays the oracle trace `name` and returns (our lines, oracle lines).
fn replay(name: &str, model: OracleModel) {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let oracle = TraceSink::read_jsonl(text.as_bytes()).unwrap();
    let expected: Vec<&str> = text.lines().filter(|l| l.starts_with("{\"seq\"")).collect();

    let sim = Simulator::oracle_compatible(&model).unwrap();
    sim.create_domain(DomId(1), &DomainConfig::default())
        .unwrap();
    let hv = Traced::new(sim, TraceSink::new());
    for rec in oracle.iter().filter(|r| r.seq().is_some()) {
        let domid = DomId(u16::try_from(u(rec, "domid")).unwrap());
        match rec.call().unwrap() {
            call @ ("populate_physmap" | "populate_physmap_exact") => {
                let order = PageOrder::new(u8::try_from(u(rec, "extent_order")).unwrap()).unwrap();
                let first = u(rec, "first_gpfn");
                let nr = u(rec, "nr_extents");
                assert_eq!(rec.get("gpfns_contiguous").unwrap(), true);
                let gfns: Vec<Gfn> = (0..nr).map(|i| Gfn(first + (i << order.get()))).collect();
                let flags = MemFlags(u32::try_from(u(rec, "mem_flags")).unwrap());
                if call == "populate_physmap" {
                    let _ = hv.populate_physmap(domid, order, flags, &gfns);
                } else {
                    let _ = hv.populate_physmap_exact(domid, order, flags, &gfns);
                }
            }
            "claim_pages" => {
                let _ = hv.claim_pages(domid, u(rec, "nr_pages"));
            }
            "set_pod_target" => {
                let _ = hv.set_pod_target(domid, u(rec, "target_pages"));
            }
            other => panic!("unexpected call {other} in {name}"),
        }
    }
    let ours = hv.sink().lines();
    assert_eq!(ours.len(), expected.len(), "{name}: number of calls");
    for (i, (a, e)) in ours.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "{name}: call {i} differs");
    }
    let result = oracle.iter().find(|r| r.call() == Some("result")).unwrap();
    let snap = hv.inner().domain_snapshot(DomId(1)).unwrap();
    assert_eq!(
        snap.ram_pages,
        u(result, "populated_pages"),
        "{name}: populated pages"
    );
    assert_eq!(
        snap.pod_entries,
        u(result, "pod_pages"),
        "{name}: PoD pages"
    );
    hv.inner().check_invariants().unwrap();
}

#[test]
fn plain_256mib() {
    replay("256mib.jsonl", OracleModel::default());
}

#[test]
fn out_of_memory_mid_call() {
    replay(
        "oom-1gib.jsonl",
        OracleModel {
            free_pages: vec![200_000],
            ..OracleModel::default()
        },
    );
}

#[test]
fn fragment_budgets_run_out_mid_call() {
    replay(
        "fragmented-4gib.jsonl",
        OracleModel {
            fragment: vec![(18, 1), (9, 6)],
            ..OracleModel::default()
        },
    );
}

#[test]
fn claims() {
    replay("claim-on-4gib.jsonl", OracleModel::default());
    replay(
        "claim-fail-4gib.jsonl",
        OracleModel {
            claim_fail: true,
            ..OracleModel::default()
        },
    );
}

#[test]
fn populate_on_demand() {
    replay("pod-4gib-target2gib.jsonl", OracleModel::default());
    replay(
        "pod-fail.jsonl",
        OracleModel {
            pod_fail: true,
            ..OracleModel::default()
        },
    );
}

#[test]
fn exact_nodes_run_out_without_fallback() {
    replay(
        "2nodes-limited.jsonl",
        OracleModel {
            free_pages: vec![300_000, 200_000],
            ..OracleModel::default()
        },
    );
}

#[test]
fn first_node_with_room() {
    replay(
        "2nodes-firstfit.jsonl",
        OracleModel {
            free_pages: vec![100_000, 300_000],
            ..OracleModel::default()
        },
    );
}
