//! Domain control, guest memory and fault injection of the simulator.

use xg_ctrl::sim::cpu::{parse_hvm_context, save};
use xg_ctrl::sim::{FaultRule, HostConfig, Simulator};
use xg_ctrl::{
    CreditParams, DomId, DomainConfig, DomainOps, E820Entry, Error, Gfn, GuestMemory, HostOps,
    MemFlags, MemoryOps, PageOrder, SystemCpuPolicy,
};

fn hvm_guest(sim: &Simulator, vcpus: u32, mib: u64) -> DomId {
    let d = sim
        .create_domain(
            DomId(0),
            &DomainConfig {
                max_vcpus: vcpus,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    sim.set_max_mem(d, mib * 1024).unwrap();
    let gfns: Vec<Gfn> = (0..mib / 2).map(|i| Gfn(i * 512)).collect();
    sim.populate_physmap_exact(d, PageOrder::ORDER_2M, MemFlags::NONE, &gfns)
        .unwrap();
    d
}

#[test]
fn host_queries() {
    let sim = Simulator::default();
    let v = sim.xen_version().unwrap();
    assert_eq!((v.major, v.minor), (4, 17));
    assert!(v.capabilities.split(' ').any(|c| c == "hvm-3.0-x86_32"));
    let p = sim.physinfo().unwrap();
    assert_eq!(
        (p.nr_cpus, p.nr_nodes, p.max_cpu_id, p.max_node_id),
        (16, 2, 15, 1)
    );
    assert_eq!(p.cpumap_size(), 2);
    assert_eq!(p.total_pages, 128 << 18);
    assert_eq!(p.free_pages, sim.free_pages());
    let n = sim.numainfo().unwrap();
    assert_eq!(n.nodes.len(), 2);
    assert_eq!(n.nodes[0].memsize, 64 << 30);
    assert_eq!(n.distance, vec![10, 21, 21, 10]);
    assert_eq!(&n.cpu_to_node[6..10], &[0, 0, 1, 1]);
    let host = sim.system_cpu_policy(SystemCpuPolicy::Host).unwrap();
    let hvm = sim.system_cpu_policy(SystemCpuPolicy::HvmDefault).unwrap();
    for leaf in [1, 7, 0xd, 0x8000_0001, 0x8000_0007, 0x8000_0008] {
        assert!(host.leaves.iter().any(|l| l.leaf == leaf), "leaf {leaf:#x}");
    }
    let l1 = |p: &xg_ctrl::CpuPolicy| p.leaves.iter().find(|l| l.leaf == 1).unwrap().c;
    assert_eq!(l1(&host) >> 31, 0);
    assert_eq!(l1(&hvm) >> 31, 1, "guests see the hypervisor bit");
}

#[test]
fn domain_lifecycle_and_errors() {
    let sim = Simulator::default();
    let errno = |e: Error| e.errno();
    let cfg = DomainConfig {
        max_vcpus: 2,
        ..DomainConfig::default()
    };
    let d = sim.create_domain(DomId(0), &cfg).unwrap();
    assert_eq!(d, DomId(1), "Xen picks the lowest free domid");
    assert_eq!(
        errno(sim.create_domain(d, &cfg).unwrap_err()),
        Some(libc::EEXIST)
    );
    assert_eq!(
        errno(sim.create_domain(DomId(0x7FF0), &cfg).unwrap_err()),
        Some(libc::EINVAL)
    );
    let bad = DomainConfig {
        max_vcpus: 0,
        ..cfg.clone()
    };
    assert_eq!(
        errno(sim.create_domain(DomId(3), &bad).unwrap_err()),
        Some(libc::EINVAL)
    );
    let info = sim.domain_info(d).unwrap();
    assert!(info.is_hvm() && info.is_hap());
    assert_eq!(
        info.flags & xg_ctrl::dominf::PAUSED,
        xg_ctrl::dominf::PAUSED
    );
    assert_eq!(
        (info.max_pages, info.tot_pages, info.max_vcpu_id),
        (0, 0, 1)
    );
    assert_eq!(
        errno(sim.domain_info(DomId(42)).unwrap_err()),
        Some(libc::ESRCH)
    );
    assert_eq!(
        errno(sim.set_max_vcpus(d, 3).unwrap_err()),
        Some(libc::EINVAL)
    );
    sim.set_max_vcpus(d, 2).unwrap();
    sim.unpause(d).unwrap();
    assert!(!sim.domain_snapshot(d).unwrap().paused);
    sim.destroy(d).unwrap();
    assert!(sim.domain_snapshot(d).is_none());
    assert_eq!(errno(sim.set_max_mem(d, 1).unwrap_err()), Some(libc::ESRCH));
    // dom0 exists and cannot be built into.
    assert!(!sim.domain_info(DomId(0)).unwrap().is_hvm());
}

#[test]
fn settings_are_kept_and_validated() {
    let sim = Simulator::default();
    let d = hvm_guest(&sim, 2, 16);
    assert_eq!(
        sim.sched_credit_get(d).unwrap(),
        CreditParams {
            weight: 256,
            cap: 0
        }
    );
    sim.sched_credit_set(
        d,
        CreditParams {
            weight: 512,
            cap: 50,
        },
    )
    .unwrap();
    // weight 0 and cap 0xFFFF leave the value unchanged.
    sim.sched_credit_set(
        d,
        CreditParams {
            weight: 0,
            cap: u16::MAX,
        },
    )
    .unwrap();
    assert_eq!(
        sim.sched_credit_get(d).unwrap(),
        CreditParams {
            weight: 512,
            cap: 50
        }
    );
    sim.set_tsc_info(d, 2).unwrap();
    assert_eq!(
        sim.set_tsc_info(d, 3).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    sim.set_time_offset(d, -3600).unwrap();
    // HPET is on by default; unknown params are EINVAL.
    assert_eq!(sim.hvm_param(d, 11).unwrap(), 1);
    sim.set_hvm_param(d, 1, 0xfeffc).unwrap();
    assert_eq!(sim.hvm_param(d, 1).unwrap(), 0xfeffc);
    assert_eq!(sim.hvm_param(d, 2).unwrap(), 0);
    assert_eq!(
        sim.set_hvm_param(d, 39, 1).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    let map = [E820Entry {
        addr: 0,
        size: 0xa0000,
        kind: xg_ctrl::e820::RAM,
    }];
    sim.set_memory_map(d, &map).unwrap();
    let too_many = vec![map[0]; 129];
    assert_eq!(
        sim.set_memory_map(d, &too_many).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    let s = sim.domain_snapshot(d).unwrap();
    assert_eq!(s.memory_map.as_deref(), Some(&map[..]));
    assert_eq!((s.tsc_mode, s.time_offset), (2, -3600));
    assert_eq!(s.hvm_params.get(&1), Some(&0xfeffc));
    // PV domains have no HVM params or context.
    let pv = sim
        .create_domain(
            DomId(9),
            &DomainConfig {
                hvm: false,
                hap: false,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    assert_eq!(
        sim.hvm_param(pv, 1).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(sim.hvm_context(pv).unwrap_err().errno(), Some(libc::EINVAL));
}

#[test]
fn cpu_policy_is_audited() {
    let sim = Simulator::default();
    let d = hvm_guest(&sim, 1, 4);
    let mut p = sim.domain_cpu_policy(d).unwrap();
    assert_eq!(
        p,
        sim.system_cpu_policy(SystemCpuPolicy::HvmDefault).unwrap()
    );
    // Dropping a feature is fine.
    p.leaves.iter_mut().find(|l| l.leaf == 7).unwrap().b &= !(1 << 5);
    sim.set_domain_cpu_policy(d, &p).unwrap();
    assert_eq!(sim.domain_cpu_policy(d).unwrap(), p);
    // Adding one the host lacks is not.
    p.leaves.iter_mut().find(|l| l.leaf == 7).unwrap().c |= 1 << 30;
    assert_eq!(
        sim.set_domain_cpu_policy(d, &p).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}

#[test]
fn hvm_context_records_round_trip() {
    let sim = Simulator::default();
    let d = hvm_guest(&sim, 2, 4);
    let blob = sim.hvm_context(d).unwrap();
    let recs = parse_hvm_context(&blob).unwrap();
    let codes: Vec<(u16, u16)> = recs.iter().map(|r| (r.typecode, r.instance)).collect();
    assert_eq!(
        codes,
        vec![(1, 0), (2, 0), (2, 1), (14, 0), (14, 1), (0, 0)]
    );
    assert_eq!(recs[1].body.len(), save::CPU_LEN);
    assert_eq!(recs[3].body.len(), save::MTRR_LEN);
    // Set a new CPU record for vCPU 0 (as vcpu_hvm does: header, CPU, END) and read back.
    let mut cpu0 = recs[1].body.to_vec();
    cpu0[640..648].copy_from_slice(&0x1000u64.to_le_bytes());
    let mut new = Vec::new();
    for (code, inst, body) in [
        (1u16, 0u16, recs[0].body),
        (2, 0, &cpu0[..]),
        (0, 0, &[][..]),
    ] {
        new.extend_from_slice(&code.to_le_bytes());
        new.extend_from_slice(&inst.to_le_bytes());
        new.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        new.extend_from_slice(body);
    }
    sim.set_hvm_context(d, &new).unwrap();
    let back = sim.hvm_context(d).unwrap();
    assert_eq!(back.len(), blob.len());
    let recs = parse_hvm_context(&back).unwrap();
    assert_eq!(recs[1].body, &cpu0[..]);
    // Truncated blobs, wrong record sizes and vCPUs out of range are EINVAL.
    assert_eq!(
        sim.set_hvm_context(d, &new[..new.len() - 1])
            .unwrap_err()
            .errno(),
        Some(libc::EINVAL)
    );
    let mut bad = new.clone();
    bad[8 + 24 + 2] = 7; // CPU record for vCPU 7
    assert_eq!(
        sim.set_hvm_context(d, &bad).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
}

#[test]
fn guest_memory_reads_back_what_was_written() {
    let sim = Simulator::default();
    let d = hvm_guest(&sim, 1, 4);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    sim.write_guest(d, 0x1ff0, &data).unwrap();
    let mut buf = vec![0u8; data.len()];
    sim.read_guest(d, 0x1ff0, &mut buf).unwrap();
    assert_eq!(buf, data);
    // Untouched memory reads as zeros; only written frames are stored.
    let mut z = [1u8; 16];
    sim.read_guest(d, 0x10_0000, &mut z).unwrap();
    assert_eq!(z, [0; 16]);
    assert_eq!(sim.domain_snapshot(d).unwrap().written_frames, 4);
    sim.clear_guest_pages(d, &[Gfn(2)]).unwrap();
    sim.read_guest(d, 0x2000, &mut z).unwrap();
    assert_eq!(z, [0; 16]);
    // Beyond the populated 4 MiB the frame cannot be mapped.
    let err = sim.write_guest(d, 0x3f_fffe, b"abcd").unwrap_err();
    match err {
        Error::ForeignMap { domid, gfn, source } => {
            assert_eq!((domid, gfn, source.get()), (d, Gfn(0x400), libc::EINVAL));
        }
        other => panic!("{other:?}"),
    }
    let mut last = [0u8; 2];
    sim.read_guest(d, 0x3f_fffe, &mut last).unwrap();
    assert_eq!(last, [0, 0], "a failed write writes nothing");
    assert_eq!(
        sim.read_guest(DomId(99), 0, &mut z).unwrap_err().errno(),
        Some(libc::ESRCH)
    );
    // After decrease_reservation the frame is gone with its contents.
    sim.decrease_reservation(d, PageOrder::ORDER_4K, &[Gfn(1)])
        .unwrap();
    assert!(sim.read_guest(d, 0x1ff0, &mut z).is_err());
    // Grant table frame 0.
    sim.write_grant_table(d, 8, &[1, 2, 3, 4]).unwrap();
    let mut g = [0u8; 6];
    sim.read_grant_table(d, 7, &mut g).unwrap();
    assert_eq!(g, [0, 1, 2, 3, 4, 0]);
    assert!(sim.write_grant_table(d, 4095, &[1, 2]).is_err());
}

#[test]
fn faults_are_injected_on_the_nth_call() {
    let sim = Simulator::default();
    let d = hvm_guest(&sim, 1, 4);
    sim.set_max_mem(d, 8 * 1024).unwrap();
    sim.inject_fault(FaultRule {
        op: "populate_physmap".into(),
        nth: 2,
        times: 2,
        errno: libc::EFAULT,
    })
    .unwrap();
    let one = |g: u64| sim.populate_physmap(d, PageOrder::ORDER_4K, MemFlags::NONE, &[Gfn(g)]);
    assert_eq!(one(0x10000).unwrap(), 1);
    assert_eq!(one(0x10001).unwrap_err().errno(), Some(libc::EFAULT));
    assert_eq!(one(0x10002).unwrap_err().errno(), Some(libc::EFAULT));
    assert_eq!(one(0x10003).unwrap(), 1);
    assert_eq!(sim.calls("populate_physmap"), 4);
    assert!(sim
        .inject_fault(FaultRule {
            op: "no_such_op".into(),
            nth: 1,
            times: 1,
            errno: 1
        })
        .is_err());

    // From a host description.
    let text = format!(
        "{}\n[[fault]]\nop = \"claim_pages\"\nnth = 1\nerrno = {}\n",
        xg_ctrl::sim::config::DEFAULT_HOST_TOML,
        libc::EIO
    );
    let sim = Simulator::new(&HostConfig::from_toml(&text).unwrap()).unwrap();
    let d = hvm_guest(&sim, 1, 4);
    sim.set_max_mem(d, 64 * 1024).unwrap();
    let err = sim.claim_pages(d, 4096).unwrap_err();
    assert!(matches!(
        err,
        Error::Hypercall {
            op: "claim_pages",
            ..
        }
    ));
    assert_eq!(err.errno(), Some(libc::EIO));
    sim.claim_pages(d, 4096).unwrap();
}

#[test]
fn host_files_load_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(
        &path,
        "[[node]]\nmemory_mib = 2048\ncpus = 4\nfree_1g = 1\n",
    )
    .unwrap();
    let sim = Simulator::from_file(&path).unwrap();
    let h = sim.host_snapshot();
    assert_eq!(h.nodes[0].free_chunks[18], 1);
    assert_eq!(h.total_pages, 2048 * 256);
    let err = Simulator::from_file(&dir.path().join("missing.toml")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }));
    std::fs::write(&path, "[[node]]\nmemory_mib = 1\n").unwrap();
    assert!(matches!(
        Simulator::from_file(&path).unwrap_err(),
        Error::HostConfig { .. }
    ));
}

#[test]
fn shipped_host_files_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let sim =
                Simulator::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            sim.check_invariants().unwrap();
            n += 1;
        }
    }
    assert!(n >= 4);
    let oracle = HostConfig::from_file(&dir.join("oracle-default.toml")).unwrap();
    let built = HostConfig::oracle_compatible(&xg_ctrl::sim::OracleModel::default());
    assert_eq!(oracle.nodes, built.nodes);
    assert_eq!(
        (oracle.placement, oracle.pod_cache, oracle.initial_max_kib),
        (built.placement, built.pod_cache, built.initial_max_kib)
    );
    // The fragmented host has no 1 GiB chunk and 64 whole 2 MiB frames per node.
    let sim = Simulator::from_file(&dir.join("fragmented.toml")).unwrap();
    for node in sim.host_snapshot().nodes {
        assert_eq!(node.free_chunks[18], 0);
        assert_eq!(
            node.free_chunks[9..]
                .iter()
                .enumerate()
                .map(|(i, c)| c << i)
                .sum::<usize>(),
            64
        );
    }
}

#[test]
fn unbound_event_channels_take_the_lowest_free_ports_up_to_the_limit() {
    let sim = Simulator::default();
    let d = sim
        .create_domain(
            DomId(0),
            &DomainConfig {
                max_evtchn_port: 2,
                ..DomainConfig::default()
            },
        )
        .unwrap();
    assert_eq!(sim.alloc_unbound_evtchn(d, DomId(0)).unwrap(), 1);
    assert_eq!(sim.alloc_unbound_evtchn(d, DomId(0)).unwrap(), 2);
    let full = sim.alloc_unbound_evtchn(d, DomId(0)).unwrap_err();
    assert_eq!(full.errno(), Some(libc::ENOSPC));
    let missing = sim.alloc_unbound_evtchn(DomId(77), DomId(0)).unwrap_err();
    assert_eq!(missing.errno(), Some(libc::ESRCH));
}
