//! Trace records of `Traced`: the oracle's exact format for memory calls, the same style
//! for everything else, non-hypervisor records, files.

use xg_ctrl::sim::{FaultRule, Simulator};
use xg_ctrl::trace::{Record, TraceSink, Traced};
use xg_ctrl::{
    AffinityKind, CreditParams, DomId, DomainConfig, DomainOps, E820Entry, Gfn, GuestMemory,
    HostOps, MemFlags, MemoryOps, PageOrder, PvOps, SystemCpuPolicy,
};

/// Lines as libxenguest's oracle writes them (from `sim_data/oracle`).
const ORACLE_POPULATE: &str = r#"{"seq":2,"call":"populate_physmap","domid":1,"nr_extents":4,"extent_order":9,"mem_flags":0,"pod":false,"exact_node":-1,"first_gpfn":512,"last_gpfn":2048,"gpfns_contiguous":true,"done":4,"rc":4}"#;
const ORACLE_EXACT: &str = r#"{"seq":229,"call":"populate_physmap_exact","domid":1,"nr_extents":1024,"extent_order":0,"mem_flags":131584,"pod":false,"exact_node":1,"first_gpfn":461824,"last_gpfn":462847,"gpfns_contiguous":true,"done":320,"rc":-1}"#;
const ORACLE_CLAIM: &str = r#"{"seq":0,"call":"claim_pages","domid":1,"nr_pages":1048544,"rc":-1}"#;
const ORACLE_POD: &str =
    r#"{"seq":0,"call":"set_pod_target","domid":1,"target_pages":524256,"rc":0}"#;

fn keys(r: &Record) -> Vec<String> {
    r.keys().map(str::to_owned).collect()
}

fn parse(line: &str) -> Record {
    TraceSink::read_jsonl(line.as_bytes()).unwrap().remove(0)
}

fn kinds(r: &Record) -> Vec<&'static str> {
    r.to_value()
        .as_object()
        .unwrap()
        .values()
        .map(|v| match v {
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "int",
            serde_json::Value::String(_) => "str",
            _ => "other",
        })
        .collect()
}

fn sim_with_guest() -> Traced<Simulator> {
    let sim = Simulator::default();
    sim.create_domain(DomId(1), &DomainConfig::default())
        .unwrap();
    sim.set_max_mem(DomId(1), 4 << 20).unwrap();
    Traced::new(sim, TraceSink::new())
}

#[test]
fn memory_records_have_the_oracles_fields_order_and_types() {
    let hv = sim_with_guest();
    let d = DomId(1);
    let o9: Vec<Gfn> = (0..4).map(|i| Gfn(512 + i * 512)).collect();
    hv.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &o9)
        .unwrap();
    let o0: Vec<Gfn> = (0..1024).map(|i| Gfn(461_824 + i)).collect();
    hv.populate_physmap_exact(d, PageOrder::ORDER_4K, MemFlags::exact_node(1), &o0)
        .unwrap();
    hv.claim_pages(d, 1_048_544).unwrap();
    hv.set_pod_target(d, 524_256).unwrap();
    let ours = hv.sink().records();
    for (ours, theirs) in ours
        .iter()
        .zip([ORACLE_POPULATE, ORACLE_EXACT, ORACLE_CLAIM, ORACLE_POD])
    {
        let theirs = parse(theirs);
        assert_eq!(keys(ours), keys(&theirs));
        assert_eq!(kinds(ours), kinds(&theirs));
    }
    // The first call is identical to the oracle's but for its seq.
    assert_eq!(
        ours[0].to_json_line().replacen("\"seq\":0", "\"seq\":2", 1),
        ORACLE_POPULATE
    );
    assert_eq!(ours[1].get("exact_node").unwrap(), 1);
    assert_eq!(ours[1].get("rc").unwrap(), 0);
    assert_eq!(ours[1].get("done").unwrap(), 1024);
}

#[test]
fn short_and_failed_populates() {
    let hv = sim_with_guest();
    let d = DomId(1);
    hv.inner().set_max_mem(d, 1024 * 4).unwrap();
    let gfns: Vec<Gfn> = (0..3).map(|i| Gfn(i * 512)).collect();
    assert_eq!(
        hv.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &gfns)
            .unwrap(),
        2
    );
    let gfns: Vec<Gfn> = (0..600).map(|i| Gfn(4096 + i)).collect();
    assert!(hv
        .populate_physmap_exact(d, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
        .is_err());
    hv.inner()
        .inject_fault(FaultRule {
            op: "populate_physmap".into(),
            nth: 2,
            times: 1,
            errno: libc::EFAULT,
        })
        .unwrap();
    assert!(hv
        .populate_physmap(
            d,
            PageOrder::ORDER_4K,
            MemFlags::NONE.with_pod(),
            &[Gfn(9000), Gfn(9002)]
        )
        .is_err());
    let lines = hv.sink().lines();
    assert!(
        lines[0].ends_with(r#""gpfns_contiguous":true,"done":2,"rc":2}"#),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(r#""done":0,"rc":-1}"#), "{}", lines[1]);
    assert!(
        lines[2].contains(r#""mem_flags":65536,"pod":true,"exact_node":-1,"first_gpfn":9000,"last_gpfn":9002,"gpfns_contiguous":false,"done":0,"rc":-1,"errno":14}"#),
        "{}",
        lines[2]
    );
}

#[test]
fn other_records_do_not_advance_seq() {
    let hv = sim_with_guest();
    let sink = hv.sink().clone();
    sink.record_other("config", vec![("mem_mib", serde_json::json!(256))]);
    hv.xen_version().unwrap();
    sink.record_other(
        "xs_write",
        vec![("path", serde_json::json!("/local/domain/1/name"))],
    );
    hv.set_max_mem(DomId(1), 1024).unwrap();
    let recs = sink.records();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0].to_json_line(), r#"{"call":"config","mem_mib":256}"#);
    assert_eq!(recs[1].seq(), Some(0));
    assert_eq!(recs[2].seq(), None);
    assert_eq!(recs[3].seq(), Some(1));
    assert_eq!(sink.hypercalls().len(), 2);
    assert_eq!(sink.next_seq(), 2);
}

#[test]
fn trace_files_stream_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    {
        let sink = TraceSink::create(&path).unwrap();
        let hv = Traced::new(Simulator::default(), sink.clone());
        hv.create_domain(DomId(3), &DomainConfig::default())
            .unwrap();
        hv.set_hvm_param(DomId(3), 99, 1).unwrap_err();
        sink.flush().unwrap();
        let on_disk = TraceSink::read_jsonl(
            std::fs::File::open(&path)
                .map(std::io::BufReader::new)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk, sink.records());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with("\"rc\":-1,\"errno\":22}\n"), "{text}");
    // A streaming-only sink keeps nothing in memory.
    let streamed = TraceSink::streaming(Vec::new());
    streamed.record_call("x", Vec::<(String, serde_json::Value)>::new());
    assert!(streamed.records().is_empty());
}

#[test]
fn every_operation_is_traced() {
    let hv = Traced::new(Simulator::default(), TraceSink::new());
    let cfg = DomainConfig {
        max_vcpus: 2,
        ..DomainConfig::default()
    };
    let d = hv.create_domain(DomId(0), &cfg).unwrap();
    hv.xen_version().unwrap();
    hv.physinfo().unwrap();
    hv.numainfo().unwrap();
    hv.system_cpu_policy(SystemCpuPolicy::HvmMax).unwrap();
    hv.domain_info(d).unwrap();
    hv.set_max_vcpus(d, 2).unwrap();
    hv.set_max_mem(d, 16384).unwrap();
    hv.set_vcpu_affinity(d, 0, AffinityKind::Hard, &[0xff, 0])
        .unwrap();
    hv.vcpu_affinity(d, 0, AffinityKind::Soft).unwrap();
    hv.set_node_affinity(d, &[1]).unwrap();
    hv.node_affinity(d).unwrap();
    hv.sched_credit_set(
        d,
        CreditParams {
            weight: 512,
            cap: 0,
        },
    )
    .unwrap();
    hv.sched_credit_get(d).unwrap();
    hv.set_tsc_info(d, 0).unwrap();
    hv.set_time_offset(d, 0).unwrap();
    hv.set_hvm_param(d, 1, 2).unwrap();
    hv.hvm_param(d, 1).unwrap();
    let p = hv.domain_cpu_policy(d).unwrap();
    hv.set_domain_cpu_policy(d, &p).unwrap();
    let ctx = hv.hvm_context(d).unwrap();
    hv.set_hvm_context(d, &ctx).unwrap();
    hv.claim_pages(d, 2048).unwrap();
    let gfns: Vec<Gfn> = (0..4).map(|i| Gfn(i * 512)).collect();
    hv.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &gfns)
        .unwrap();
    hv.populate_physmap_exact(d, PageOrder::ORDER_4K, MemFlags::NONE, &[Gfn(4096)])
        .unwrap();
    hv.decrease_reservation(d, PageOrder::ORDER_4K, &[Gfn(4096)])
        .unwrap();
    hv.set_pod_target(d, 2048).unwrap();
    hv.set_memory_map(
        d,
        &[E820Entry {
            addr: 0,
            size: 8 << 20,
            kind: 1,
        }],
    )
    .unwrap();
    hv.write_guest(d, 0x1000, b"hello").unwrap();
    let mut buf = [0u8; 5];
    hv.read_guest(d, 0x1000, &mut buf).unwrap();
    hv.clear_guest_pages(d, &[Gfn(1)]).unwrap();
    hv.write_grant_table(d, 0, &[1, 0, 0, 0]).unwrap();
    hv.read_grant_table(d, 0, &mut buf[..4]).unwrap();
    hv.claim_pages(d, 0).unwrap();
    hv.unpause(d).unwrap();
    hv.destroy(d).unwrap();
    // The PV operations, on a PV domain.
    let pv = hv
        .create_domain(
            DomId(0),
            &DomainConfig {
                hvm: false,
                hap: false,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    hv.set_max_mem(pv, 8 << 10).unwrap();
    hv.set_address_size(pv, 64).unwrap();
    let mfns = hv
        .populate_physmap_mfns(pv, PageOrder::ORDER_4K, MemFlags::NONE, &[Gfn(0), Gfn(1)])
        .unwrap();
    assert_eq!(mfns.len(), 2);
    hv.write_machine(pv, &mfns, 0xFFE, b"span").unwrap();
    let mut back = [0u8; 4];
    hv.read_machine(pv, &mfns, 0xFFE, &mut back).unwrap();
    assert_eq!(&back, b"span");
    hv.set_vcpu_context(pv, 0, &[0u8; 16]).unwrap();
    hv.hypercall_init(pv, mfns[1]).unwrap();
    hv.pin_table(pv, xg_ctrl::pin::L4_TABLE, mfns[0]).unwrap();
    // What xc_domain_resume reads of a PV guest, and its vCPU reset.
    assert_eq!(hv.address_size(pv).unwrap(), 64);
    assert_eq!(hv.maximum_gpfn(pv).unwrap(), 0);
    assert_eq!(hv.vcpu_context(pv, 0).unwrap().len(), 5168);
    hv.reset_vcpu(pv, 0).unwrap();
    // A host query: this host has no RMRRs, so the counting call succeeds alone.
    let dev = xg_ctrl::PciDev {
        seg: 0,
        bus: 3,
        devfn: 0,
    };
    assert_eq!(hv.reserved_device_memory(0, dev).unwrap(), vec![]);
    // A domain that has not shut down: resuming it changes nothing and succeeds.
    hv.resume_domain(pv).unwrap();
    let calls: Vec<String> = hv
        .sink()
        .records()
        .iter()
        .map(|r| r.call().unwrap().to_owned())
        .collect();
    for op in xg_ctrl::sim::fault::OP_NAMES {
        assert!(calls.iter().any(|c| c == op), "{op} not traced");
    }
    insta::assert_snapshot!("every_operation", hv.sink().lines().join("\n"));
}
