//! The privcmd backend against a real Xen. Every test needs `/dev/xen/privcmd` and root
//! in dom0, so they are ignored by default. Run them inside the Xen-in-QEMU fixture:
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+crt-static" cargo test -p xg-ctrl --release --no-run \
//!     --target x86_64-unknown-linux-gnu --test privcmd_xen
//! PROBE_ARGS="--ignored --test-threads=1" xen-in-qemu/run.sh OUT target/.../privcmd_xen-<hash>
//! ```

// A test binary reports through its output.
#![allow(clippy::print_stdout)]

use xg_ctrl::{
    AffinityKind, CpuPolicy, DomId, DomainConfig, DomainOps, E820Entry, Error, Gfn, GuestMemory,
    HostOps, MemFlags, MemoryOps, PageOrder, SystemCpuPolicy, XenCtrl,
};

/// `HVM_PARAM_STORE_EVTCHN`, a parameter any domain may have set.
const HVM_PARAM_STORE_EVTCHN: u32 = 2;

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn reads_version_and_host() {
    let xc = XenCtrl::open().unwrap();
    let v = xc.xen_version().unwrap();
    println!("{v:?}, buffers never fault: {}", xc.buffers_never_fault());
    assert!(v.major >= 4, "{v:?}");
    assert!(v.capabilities.contains("x86_64"), "{v:?}");
    let p = xc.physinfo().unwrap();
    println!("{p:?}");
    assert!(p.nr_cpus >= 1 && p.total_pages > 0 && p.free_pages <= p.total_pages);
    let n = xc.numainfo().unwrap();
    println!("{n:?}");
    assert!(!n.nodes.is_empty());
    assert_eq!(n.distance.len(), n.nodes.len() * n.nodes.len());
    assert_eq!(
        n.cpu_to_node.len(),
        usize::try_from(p.max_cpu_id).unwrap() + 1
    );
    let host = xc.system_cpu_policy(SystemCpuPolicy::Host).unwrap();
    println!(
        "host policy: {} leaves, {} MSRs",
        host.leaves.len(),
        host.msrs.len()
    );
    assert!(host.leaves.iter().any(|l| l.leaf == 0));
}

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn dom0_info_and_missing_domain() {
    let xc = XenCtrl::open().unwrap();
    let info = xc.domain_info(DomId::DOM0).unwrap();
    assert_eq!(info.domid, DomId::DOM0);
    assert!(info.tot_pages > 0);
    let err = xc.domain_info(DomId(0x7FEF)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ESRCH), "{err:?}");
}

/// Destroys the domain when the test ends, passed or not.
struct Domain<'a>(&'a XenCtrl, DomId);

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(self.1);
    }
}

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn hvm_domain_lifecycle() {
    let xc = XenCtrl::open().unwrap();
    let config = DomainConfig {
        max_vcpus: 1,
        handle: *b"xg-ctrl-privcmd!",
        ..DomainConfig::default()
    };
    let domid = xc.create_domain(DomId(0), &config).unwrap();
    let _guard = Domain(&xc, domid);
    println!("created d{domid}");
    let info = xc.domain_info(domid).unwrap();
    assert!(info.is_hvm() && info.is_hap(), "{info:?}");
    assert_eq!(info.tot_pages, 0);

    xc.set_max_vcpus(domid, 1).unwrap();
    xc.set_max_mem(domid, 64 << 10).unwrap();
    assert_eq!(xc.domain_info(domid).unwrap().max_pages, 64 << 8);

    // Affinity: the effective map is what the host has online.
    let all = vec![0xFF; xc.physinfo().unwrap().cpumap_size()];
    let eff = xc
        .set_vcpu_affinity(domid, 0, AffinityKind::Hard, &all)
        .unwrap();
    assert_eq!(eff, xc.vcpu_affinity(domid, 0, AffinityKind::Hard).unwrap());
    assert_ne!(eff.iter().map(|b| b.count_ones()).sum::<u32>(), 0);
    xc.set_node_affinity(domid, &[1]).unwrap();
    assert_eq!(xc.node_affinity(domid).unwrap()[0] & 1, 1);

    // Credit is only accepted when the cpupool runs it (Xen 4.17 defaults to credit2).
    match xc.sched_credit_get(domid) {
        Ok(params) => {
            println!("credit: {params:?}");
            xc.sched_credit_set(domid, params).unwrap();
        }
        Err(e) => {
            println!("credit: {e:?}");
            assert_eq!(e.errno(), Some(libc::EINVAL), "{e:?}");
        }
    }
    xc.set_tsc_info(domid, 0).unwrap();
    xc.set_time_offset(domid, -3600).unwrap();
    xc.set_hvm_param(domid, HVM_PARAM_STORE_EVTCHN, 5).unwrap();
    assert_eq!(xc.hvm_param(domid, HVM_PARAM_STORE_EVTCHN).unwrap(), 5);

    // CPU policy and HVM context round trips.
    let policy = xc.domain_cpu_policy(domid).unwrap();
    assert!(!policy.leaves.is_empty());
    xc.set_domain_cpu_policy(domid, &policy).unwrap();
    let bogus = CpuPolicy {
        leaves: vec![xg_ctrl::CpuidLeaf {
            leaf: 0,
            subleaf: u32::MAX,
            a: 0xFFFF_FFFF,
            b: 0,
            c: 0,
            d: 0,
        }],
        msrs: vec![],
    };
    match xc.set_domain_cpu_policy(domid, &bogus) {
        Err(Error::CpuPolicyRejected { err_leaf, .. }) => {
            println!("bogus policy: err_leaf {err_leaf:#x}")
        }
        other => println!("bogus policy answered {other:?}"),
    }
    let ctx = xc.hvm_context(domid).unwrap();
    assert!(ctx.len() > 16);
    xc.set_hvm_context(domid, &ctx).unwrap();

    // Memory: claim, populate 4K and 2M extents, the exact variant, e820.
    xc.claim_pages(domid, 1024).unwrap();
    assert_eq!(xc.domain_info(domid).unwrap().outstanding_pages, 1024);
    let small: Vec<Gfn> = (0..16).map(Gfn).collect();
    assert_eq!(
        xc.populate_physmap(domid, PageOrder::ORDER_4K, MemFlags::NONE, &small)
            .unwrap(),
        16
    );
    xc.populate_physmap_exact(domid, PageOrder::ORDER_2M, MemFlags::NONE, &[Gfn(0x200)])
        .unwrap();
    assert_eq!(xc.domain_info(domid).unwrap().tot_pages, 16 + 512);
    xc.claim_pages(domid, 0).unwrap();
    // Beyond max_mem: Xen stops short, which the exact variant reports.
    let too_many: Vec<Gfn> = (0..64).map(|i| Gfn(0x1000 + i * 512)).collect();
    let err = xc
        .populate_physmap_exact(domid, PageOrder::ORDER_2M, MemFlags::NONE, &too_many)
        .unwrap_err();
    assert!(matches!(err, Error::Partial { .. }), "{err:?}");
    let map = [
        E820Entry {
            addr: 0,
            size: 0x9F000,
            kind: xg_ctrl::e820::RAM,
        },
        E820Entry {
            addr: 0x10_0000,
            size: 0x30_0000,
            kind: xg_ctrl::e820::RAM,
        },
    ];
    xc.set_memory_map(domid, &map).unwrap();

    // Guest memory through foreign mappings, across a page boundary and two extents.
    let data: Vec<u8> = (0..3 * 4096u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    xc.write_guest(domid, 0x0F_800, &data[..2048]).unwrap();
    xc.write_guest(domid, 0x1000 + 0x123, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    xc.read_guest(domid, 0x1000 + 0x123, &mut back).unwrap();
    assert_eq!(back, data);
    xc.clear_guest_pages(domid, &[Gfn(2)]).unwrap();
    xc.read_guest(domid, 0x2000, &mut back[..4096]).unwrap();
    assert_eq!(back[..4096], [0u8; 4096]);
    // An unpopulated frame cannot be mapped.
    let err = xc.write_guest(domid, 0x100 * 4096, &[1]).unwrap_err();
    println!("unpopulated frame: {err:?}");
    assert!(
        matches!(
            err,
            Error::ForeignMap {
                gfn: Gfn(0x100),
                ..
            }
        ),
        "{err:?}"
    );

    // Grant table frame 0 through XENMEM_acquire_resource.
    xc.write_grant_table(domid, 8, &[1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    let mut g = [0u8; 8];
    xc.read_grant_table(domid, 8, &mut g).unwrap();
    assert_eq!(g, [1, 0, 0, 0, 0, 0, 0, 0]);

    assert_eq!(
        xc.decrease_reservation(domid, PageOrder::ORDER_4K, &[Gfn(15)])
            .unwrap(),
        1
    );
    xc.destroy(domid).unwrap();
}

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn anonymous_locked_buffers_work() {
    // No hypercall-buffer device: buffers are MAP_LOCKED anonymous pages.
    let xc = XenCtrl::open_at(xg_ctrl::privcmd::PRIVCMD_PATH, None).unwrap();
    assert!(!xc.buffers_never_fault());
    assert_eq!(xc.xen_version().unwrap().major, 4);
    let cpus = xc.physinfo().unwrap().cpumap_size();
    assert_eq!(xc.domain_info(DomId::DOM0).unwrap().domid, DomId::DOM0);
    let map = xc
        .vcpu_affinity(DomId::DOM0, 0, AffinityKind::Hard)
        .unwrap();
    assert_eq!(map.len(), cpus);
    assert_ne!(map.iter().map(|b| b.count_ones()).sum::<u32>(), 0);
}

#[test]
#[ignore = "needs /dev/xen/privcmd (run in dom0 of a Xen host)"]
fn timings() {
    use std::time::Instant;
    for (name, xc) in [
        ("device buffers", XenCtrl::open().unwrap()),
        (
            "anonymous buffers",
            XenCtrl::open_at(xg_ctrl::privcmd::PRIVCMD_PATH, None).unwrap(),
        ),
    ] {
        let t = Instant::now();
        for _ in 0..1000 {
            xc.domain_info(DomId::DOM0).unwrap();
        }
        println!("{name}: getdomaininfo {:?}/call", t.elapsed() / 1000);
    }
    let xc = XenCtrl::open().unwrap();
    let domid = xc
        .create_domain(DomId(0), &DomainConfig::default())
        .unwrap();
    let _guard = Domain(&xc, domid);
    xc.set_max_mem(domid, 128 << 10).unwrap();
    let gfns: Vec<Gfn> = (0..16384).map(Gfn).collect();
    let t = Instant::now();
    xc.populate_physmap_exact(domid, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
        .unwrap();
    println!("populate_physmap 16384 x 4K: {:?}", t.elapsed());
    let data = vec![0xA5u8; 32 << 20];
    let t = Instant::now();
    xc.write_guest(domid, 0, &data).unwrap();
    println!("write_guest 32 MiB: {:?}", t.elapsed());
    let mut back = vec![0u8; 32 << 20];
    let t = Instant::now();
    xc.read_guest(domid, 0, &mut back).unwrap();
    println!("read_guest 32 MiB: {:?}", t.elapsed());
    assert!(back == data);
    let t = Instant::now();
    xc.clear_guest_pages(domid, &gfns[..8192]).unwrap();
    println!("clear_guest_pages 8192: {:?}", t.elapsed());
}
