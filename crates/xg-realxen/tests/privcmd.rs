//! Scenario 1: the privcmd backend against a real Xen 4.17, cross-checked with Debian's
//! `xl` where both can see the same thing. Runs in dom0 (`cargo xtask xen-test`); on any
//! other machine these tests are ignored.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xg_ctrl::{
    AffinityKind, CreditParams, DomId, DomainConfig, DomainOps, Gfn, GuestMemory, HostOps,
    MemFlags, MemoryOps, PageOrder, XenCtrl,
};
use xg_realxen::cmd::{key_values, parse_xl_list, xl};
use xg_realxen::domain::Guard;

const EINVAL: i32 = 22;
const ENOMEM: i32 = 12;
const ESRCH: i32 = 3;

fn xc() -> XenCtrl {
    assert!(xg_realxen::in_dom0(), "not in dom0 of a real Xen");
    XenCtrl::open().expect("open privcmd")
}

fn xl_info() -> BTreeMap<String, String> {
    key_values(&xl(&["info"]).expect("xl info"))
}

fn num(kv: &BTreeMap<String, String>, key: &str) -> u64 {
    kv.get(key)
        .unwrap_or_else(|| panic!("xl info has no {key}"))
        .split(['.', ' '])
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("xl info {key} = {:?}", kv[key]))
}

fn hvm_domain(xc: &XenCtrl, vcpus: u32) -> Guard<'_> {
    let config = DomainConfig {
        max_vcpus: vcpus,
        ..DomainConfig::default()
    };
    let domid = xc.create_domain(DomId(0), &config).expect("createdomain");
    let guard = Guard::new(xc, domid);
    xc.set_max_vcpus(domid, vcpus).expect("max_vcpus");
    guard
}

fn errno(e: &xg_ctrl::Error) -> Option<i32> {
    e.errno()
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn xen_version_matches_xl_info() {
    let xc = xc();
    let v = xc.xen_version().expect("xen_version");
    let info = xl_info();
    println!(
        "ours: {}.{}{} caps {:?}",
        v.major, v.minor, v.extra, v.capabilities
    );
    assert_eq!((v.major, v.minor), (4, 17));
    assert_eq!(u64::from(v.major), num(&info, "xen_major"));
    assert_eq!(u64::from(v.minor), num(&info, "xen_minor"));
    assert_eq!(v.extra, info["xen_extra"]);
    assert_eq!(v.capabilities.trim(), info["xen_caps"]);
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn physinfo_matches_xl_info() {
    let xc = xc();
    let p = xc.physinfo().expect("physinfo");
    let info = xl_info();
    println!("ours: {p:?}");
    assert_eq!(u64::from(p.nr_cpus), num(&info, "nr_cpus"));
    assert_eq!(u64::from(p.max_cpu_id), num(&info, "max_cpu_id"));
    assert_eq!(u64::from(p.nr_nodes), num(&info, "nr_nodes"));
    assert_eq!(
        u64::from(p.cores_per_socket),
        num(&info, "cores_per_socket")
    );
    assert_eq!(
        u64::from(p.threads_per_core),
        num(&info, "threads_per_core")
    );
    assert_eq!(u64::from(p.cpu_khz / 1000), num(&info, "cpu_mhz"));
    assert_eq!(p.total_pages / 256, num(&info, "total_memory"));
    assert_eq!(p.outstanding_pages / 256, num(&info, "outstanding_claims"));
    // Free memory moves a little as dom0 runs; xl's reading was taken after ours.
    let free_xl = num(&info, "free_memory");
    assert!(
        (p.free_pages / 256).abs_diff(free_xl) <= 2,
        "free: ours {} MiB, xl {free_xl} MiB",
        p.free_pages / 256
    );
    let virt_caps: Vec<&str> = info["virt_caps"].split_whitespace().collect();
    for (bit, name) in [(1u32, "hvm"), (2, "pv"), (8, "hap"), (16, "shadow")] {
        assert_eq!(
            p.capabilities & bit != 0,
            virt_caps.contains(&name),
            "capability {name}: ours {:#x}, xl virt_caps {virt_caps:?}",
            p.capabilities
        );
    }
    assert!(
        p.capabilities & 1 != 0 && p.capabilities & 8 != 0,
        "HVM with HAP"
    );
}

/// One row of `xl info -n`'s `numa_info`: (memsize MiB, memfree MiB, distances).
type XlNode = (u64, u64, Vec<u64>);

/// `xl info -n`: the `cpu_topology` rows (core, socket, node) and `numa_info` rows.
fn xl_numa() -> (Vec<[u64; 3]>, Vec<XlNode>) {
    let text = xl(&["info", "-n"]).expect("xl info -n");
    let mut cpus = Vec::new();
    let mut nodes = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with("cpu_topology") {
            section = "cpu";
            continue;
        }
        if line.starts_with("numa_info") {
            section = "numa";
            continue;
        }
        let Some((idx, rest)) = line.trim().split_once(':') else {
            section = "";
            continue;
        };
        if idx.trim().parse::<u64>().is_err() {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        match section {
            "cpu" if f.len() >= 3 => cpus.push([f[0], f[1], f[2]]),
            "numa" if f.len() >= 3 => nodes.push((f[0], f[1], f[2..].to_vec())),
            _ => {}
        }
    }
    (cpus, nodes)
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn numainfo_matches_xl_info_n() {
    let xc = xc();
    let n = xc.numainfo().expect("numainfo");
    let (cpus, nodes) = xl_numa();
    println!("ours: {n:?}\nxl: cpus {cpus:?} nodes {nodes:?}");
    assert!(!nodes.is_empty(), "xl info -n printed no nodes");
    assert_eq!(n.nodes.len(), nodes.len());
    for (i, (ours, theirs)) in n.nodes.iter().zip(&nodes).enumerate() {
        assert_eq!(ours.memsize >> 20, theirs.0, "node {i} memsize MiB");
        let d: Vec<u64> = n.distance[i * n.nodes.len()..(i + 1) * n.nodes.len()]
            .iter()
            .map(|&x| u64::from(x))
            .collect();
        assert_eq!(d, theirs.2, "node {i} distances");
    }
    let ours: Vec<u64> = n.cpu_to_node.iter().map(|&x| u64::from(x)).collect();
    let theirs: Vec<u64> = cpus.iter().map(|c| c[2]).collect();
    assert_eq!(ours, theirs, "cpu to node");
}

fn xl_row(domid: DomId) -> xg_realxen::cmd::XlListRow {
    let text = xl(&["list", &domid.0.to_string()]).expect("xl list");
    parse_xl_list(&text)
        .into_iter()
        .find(|r| r.domid == u32::from(domid.0))
        .unwrap_or_else(|| panic!("xl list has no domain {domid}:\n{text}"))
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn create_populate_each_order_and_destroy() {
    let xc = xc();
    let dom = hvm_domain(&xc, 2);
    let d = dom.domid();
    let info = xc.domain_info(d).expect("getdomaininfo");
    println!("created {d}: {info:?}");
    assert!(info.is_hvm() && info.is_hap(), "flags {:#x}", info.flags);
    assert_ne!(
        info.flags & xg_ctrl::dominf::PAUSED,
        0,
        "a new domain is paused"
    );
    assert_eq!(info.max_vcpu_id, 1);
    assert_eq!(info.tot_pages, 0);
    let row = xl_row(d);
    assert_eq!(
        row.state.chars().nth(2),
        Some('p'),
        "xl state {}",
        row.state
    );
    assert_eq!(row.vcpus, info.nr_online_vcpus);

    // max_mem 8 MiB; Xen reports it in pages.
    xc.set_max_mem(d, 8 * 1024).expect("max_mem");
    assert_eq!(xc.domain_info(d).unwrap().max_pages, 2048);

    // Orders 0, 1, 2, 4 and 9, each at a suitably aligned gfn.
    let order = |o| PageOrder::new(o).unwrap();
    let singles: Vec<Gfn> = (0..16).map(Gfn).collect();
    assert_eq!(
        xc.populate_physmap(d, order(0), MemFlags::NONE, &singles)
            .unwrap(),
        16
    );
    let mut expect_pages = 16;
    for (o, gfn) in [(1u8, 0x20u64), (2, 0x40), (4, 0x80), (9, 0x200)] {
        let t = Instant::now();
        let done = xc
            .populate_physmap(d, order(o), MemFlags::NONE, &[Gfn(gfn)])
            .unwrap_or_else(|e| panic!("populate order {o}: {e:?}"));
        println!("order {o} at {gfn:#x}: done {done} in {:?}", t.elapsed());
        assert_eq!(done, 1, "order {o}");
        expect_pages += 1u64 << o;
        assert_eq!(xc.domain_info(d).unwrap().tot_pages, expect_pages);
    }
    // populate_physmap_exact of several 4K extents.
    let more: Vec<Gfn> = (0x400..0x500).map(Gfn).collect();
    xc.populate_physmap_exact(d, order(0), MemFlags::NONE, &more)
        .expect("populate exact");
    expect_pages += 0x100;
    // Past max_mem: Xen stops early and reports a short count, not an error.
    let big: Vec<Gfn> = (0x1000..0x1000 + 2048).map(Gfn).collect();
    let done = xc
        .populate_physmap(d, order(0), MemFlags::NONE, &big)
        .expect("populate past max_mem is a short count");
    println!(
        "2048 pages with {} left under max_mem: done {done}",
        2048 - expect_pages
    );
    assert_eq!(u64::try_from(done).unwrap(), 2048 - expect_pages);
    expect_pages = 2048;
    let exact = xc.populate_physmap_exact(d, order(0), MemFlags::NONE, &[Gfn(0x3000)]);
    assert_eq!(
        exact.as_ref().err().and_then(errno),
        Some(16),
        "exact short is EBUSY"
    );
    // A 1 GiB extent: Xen must find an aligned free GiB; with 1.5 GiB of machine RAM it
    // cannot, which is a short count (0) again.
    xc.set_max_mem(d, 2 * 1024 * 1024).expect("max_mem 2 GiB");
    let done = xc
        .populate_physmap(d, PageOrder::ORDER_1G, MemFlags::NONE, &[Gfn(0x40000)])
        .expect("order 18 populate");
    println!("order 18: done {done}");
    assert!(done <= 1);
    expect_pages += u64::try_from(done).unwrap() << 18;
    let info = xc.domain_info(d).unwrap();
    assert_eq!(info.tot_pages, expect_pages);
    assert_eq!(xl_row(d).mem_mib, info.tot_pages * 4 / 1024, "xl list Mem");

    // decrease_reservation gives pages back.
    let released = xc
        .decrease_reservation(d, order(0), &[Gfn(0x400), Gfn(0x401)])
        .expect("decrease_reservation");
    assert_eq!(released, 2);
    assert_eq!(xc.domain_info(d).unwrap().tot_pages, expect_pages - 2);

    xc.destroy(d).expect("destroy");
    wait_gone(&xc, d);
    assert!(
        xl(&["list", &d.0.to_string()]).is_err(),
        "xl still lists {d}"
    );
}

fn wait_gone(xc: &XenCtrl, d: DomId) {
    let start = Instant::now();
    loop {
        match xc.domain_info(d) {
            Err(e) if errno(&e) == Some(ESRCH) => return,
            Err(e) => panic!("getdomaininfo after destroy: {e:?}"),
            Ok(i) => {
                assert_ne!(
                    i.flags & xg_ctrl::dominf::DYING,
                    0,
                    "destroyed but not dying"
                );
                assert!(start.elapsed() < Duration::from_secs(10), "{d} still dying");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn claims() {
    let xc = xc();
    let dom = hvm_domain(&xc, 1);
    let d = dom.domid();
    xc.set_max_mem(d, 16 * 1024).expect("max_mem");
    let before = xc.physinfo().unwrap().outstanding_pages;
    xc.claim_pages(d, 2048).expect("claim");
    assert_eq!(xc.domain_info(d).unwrap().outstanding_pages, 2048);
    assert_eq!(xc.physinfo().unwrap().outstanding_pages, before + 2048);
    assert_eq!(num(&xl_info(), "outstanding_claims"), (before + 2048) / 256);
    // One claim per domain.
    let again = xc.claim_pages(d, 1024);
    assert_eq!(
        again.as_ref().err().and_then(errno),
        Some(EINVAL),
        "{again:?}"
    );
    // Allocations consume the claim.
    let gfns: Vec<Gfn> = (0..256).map(Gfn).collect();
    xc.populate_physmap_exact(d, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
        .unwrap();
    assert_eq!(xc.domain_info(d).unwrap().outstanding_pages, 2048 - 256);
    xc.claim_pages(d, 0).expect("release claim");
    assert_eq!(xc.domain_info(d).unwrap().outstanding_pages, 0);
    assert_eq!(xc.physinfo().unwrap().outstanding_pages, before);
    // Above max_mem: EINVAL; above free memory: ENOMEM.
    let over = xc.claim_pages(d, 8192);
    assert_eq!(
        over.as_ref().err().and_then(errno),
        Some(EINVAL),
        "{over:?}"
    );
    xc.set_max_mem(d, 64 * 1024 * 1024).unwrap();
    let huge = xc.claim_pages(d, 16 * 1024 * 1024);
    assert_eq!(
        huge.as_ref().err().and_then(errno),
        Some(ENOMEM),
        "{huge:?}"
    );
}

/// `xl vcpu-list D`: (vcpu, hard, soft) affinity columns.
fn xl_affinity(d: DomId) -> Vec<(u32, String, String)> {
    let text = xl(&["vcpu-list", &d.0.to_string()]).expect("xl vcpu-list");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (left, soft) = l.rsplit_once(" / ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let n = f.len();
            // ... ID VCPU CPU State Time(s) Hard
            let vcpu = f.get(n.checked_sub(5)?)?.parse().ok()?;
            Some((vcpu, f[n - 1].to_owned(), soft.trim().to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn vcpu_and_node_affinity() {
    let xc = xc();
    let p = xc.physinfo().unwrap();
    assert!(p.nr_cpus >= 2, "run.sh gives Xen 2 CPUs");
    let dom = hvm_domain(&xc, 2);
    let d = dom.domid();
    let size = p.cpumap_size();
    let mut only1 = vec![0u8; size];
    only1[0] = 0b10;
    let eff = xc
        .set_vcpu_affinity(d, 0, AffinityKind::Hard, &only1)
        .expect("set hard affinity");
    assert_eq!(eff, only1, "effective map");
    assert_eq!(xc.vcpu_affinity(d, 0, AffinityKind::Hard).unwrap(), only1);
    let rows = xl_affinity(d);
    println!("xl vcpu-list: {rows:?}");
    assert_eq!(rows[0].1, "1", "xl sees hard affinity cpu 1");
    assert_eq!(rows[1].1, "all");
    // And the other way round: xl pins, we read.
    xl(&["vcpu-pin", &d.0.to_string(), "1", "0"]).expect("xl vcpu-pin");
    let mut only0 = vec![0u8; size];
    only0[0] = 0b01;
    assert_eq!(xc.vcpu_affinity(d, 1, AffinityKind::Hard).unwrap(), only0);
    // Soft affinity.
    xc.set_vcpu_affinity(d, 1, AffinityKind::Soft, &only1)
        .expect("soft affinity");
    assert_eq!(xc.vcpu_affinity(d, 1, AffinityKind::Soft).unwrap(), only1);
    assert_eq!(xl_affinity(d)[1].2, "1", "xl sees soft affinity cpu 1");
    // Node affinity: one node on this host.
    let nodes = xc.node_affinity(d).expect("get node affinity");
    println!("node affinity {nodes:02x?}");
    assert_eq!(nodes.first().map(|b| b & 1), Some(1));
    let mut node0 = vec![0u8; p.nodemap_size()];
    node0[0] = 1;
    xc.set_node_affinity(d, &node0).expect("set node affinity");
    assert_eq!(xc.node_affinity(d).unwrap()[0] & 1, 1);
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn impossible_affinity_is_a_clean_error() {
    let xc = xc();
    let p = xc.physinfo().unwrap();
    let dom = hvm_domain(&xc, 1);
    let d = dom.domid();
    // Only a CPU this host does not have.
    let mut nowhere = vec![0u8; p.cpumap_size()];
    let cpu = usize::try_from(p.max_cpu_id).unwrap() + 1;
    if cpu / 8 < nowhere.len() {
        nowhere[cpu / 8] = 1 << (cpu % 8);
    }
    let r = xc.set_vcpu_affinity(d, 0, AffinityKind::Hard, &nowhere);
    println!("affinity to cpu {cpu}: {r:?}");
    assert_eq!(r.as_ref().err().and_then(errno), Some(EINVAL));
    // A vCPU the domain does not have.
    let mut all = vec![0u8; p.cpumap_size()];
    all[0] = 0b11;
    let r = xc.set_vcpu_affinity(d, 5, AffinityKind::Hard, &all);
    assert_eq!(r.as_ref().err().and_then(errno), Some(EINVAL), "{r:?}");
    // The domain is untouched and can be destroyed.
    assert_eq!(xl_affinity(d)[0].1, "all");
    xc.destroy(d).expect("destroy");
    wait_gone(&xc, d);
}

/// `xl sched-credit -d D`: (weight, cap).
fn xl_credit(d: DomId) -> (u16, u16) {
    let text = xl(&["sched-credit", "-d", &d.0.to_string()]).expect("xl sched-credit");
    let row = text.lines().nth(1).unwrap_or_default();
    let f: Vec<&str> = row.split_whitespace().collect();
    let n = f.len();
    assert!(n >= 3, "xl sched-credit: {text}");
    (f[n - 2].parse().unwrap(), f[n - 1].parse().unwrap())
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn credit_scheduler_params() {
    let xc = xc();
    let sched = xl_info()["xen_scheduler"].clone();
    assert_eq!(
        sched, "credit",
        "xen-test boots Xen with sched=credit, as XenServer does"
    );
    let dom = hvm_domain(&xc, 1);
    let d = dom.domid();
    let p = xc.sched_credit_get(d).expect("credit get");
    assert_eq!(
        p,
        CreditParams {
            weight: 256,
            cap: 0
        }
    );
    assert_eq!(xl_credit(d), (256, 0));
    xc.sched_credit_set(
        d,
        CreditParams {
            weight: 512,
            cap: 50,
        },
    )
    .expect("credit set");
    assert_eq!(xl_credit(d), (512, 50));
    xl(&[
        "sched-credit",
        "-d",
        &d.0.to_string(),
        "-w",
        "128",
        "-c",
        "10",
    ])
    .expect("xl set");
    assert_eq!(
        xc.sched_credit_get(d).unwrap(),
        CreditParams {
            weight: 128,
            cap: 10
        }
    );
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn hvm_params_tsc_and_time_offset() {
    let xc = xc();
    let dom = hvm_domain(&xc, 1);
    let d = dom.domid();
    for (param, value) in [
        (xg_sys_param::HPET_ENABLED, 0u64),
        (xg_sys_param::HPET_ENABLED, 1),
        (xg_sys_param::TRIPLE_FAULT_REASON, 3),
        (xg_sys_param::STORE_EVTCHN, 7),
        (xg_sys_param::CONSOLE_EVTCHN, 8),
        (xg_sys_param::STORE_PFN, 0xfeffc),
        (xg_sys_param::TIMER_MODE, 1),
    ] {
        xc.set_hvm_param(d, param, value)
            .unwrap_or_else(|e| panic!("set param {param}: {e:?}"));
        assert_eq!(xc.hvm_param(d, param).unwrap(), value, "param {param}");
    }
    let bad = xc.set_hvm_param(d, 1000, 1);
    assert_eq!(bad.as_ref().err().and_then(errno), Some(EINVAL), "{bad:?}");
    xc.set_tsc_info(d, 0).expect("settscinfo");
    xc.set_time_offset(d, -3600).expect("settimeoffset");
}

/// The HVM param numbers used here (Xen's public/hvm/params.h).
mod xg_sys_param {
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    pub const TIMER_MODE: u32 = 10;
    pub const HPET_ENABLED: u32 = 11;
    pub const CONSOLE_EVTCHN: u32 = 18;
    pub const TRIPLE_FAULT_REASON: u32 = 31;
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn foreign_mapping_read_back() {
    let xc = xc();
    let dom = hvm_domain(&xc, 1);
    let d = dom.domid();
    xc.set_max_mem(d, 4 * 1024).unwrap();
    xc.populate_physmap(d, PageOrder::ORDER_2M, MemFlags::NONE, &[Gfn(0x200)])
        .unwrap();
    // 8 KiB + a bit, starting 8 bytes before a page boundary: three frames.
    let data: Vec<u8> = (0..8200u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
    let paddr = 0x200000 + 0xff8;
    xc.write_guest(d, paddr, &data).expect("write_guest");
    let mut back = vec![0u8; data.len()];
    xc.read_guest(d, paddr, &mut back).expect("read_guest");
    assert_eq!(back, data);
    // A second handle sees the same bytes (no caching in ours).
    let other = XenCtrl::open().unwrap();
    let mut again = vec![0u8; 16];
    other.read_guest(d, paddr + 4096, &mut again).unwrap();
    assert_eq!(&again[..], &data[4096..4112]);
    xc.clear_guest_pages(d, &[Gfn(0x201)]).expect("clear");
    xc.read_guest(d, 0x201000, &mut again).unwrap();
    assert_eq!(again, vec![0u8; 16]);
    // A frame the domain does not have is a mapping error, not a crash.
    let r = xc.read_guest(d, 0x10_0000_0000, &mut again);
    println!("unpopulated frame: {r:?}");
    assert!(matches!(r, Err(xg_ctrl::Error::ForeignMap { .. })), "{r:?}");
}
