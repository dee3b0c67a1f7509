//! `resume_slow` of a PV guest on the simulator: a guest built by `build_pv` suspends
//! the way a PV kernel does (its p2m published in the shared info page, the start
//! info's Xenstore and console frames turned into pfns, `rdx` = the start info's
//! machine frame, `SHUTDOWN_suspend`), then libxenguest's PV path turns the frames
//! back, resets the secondary vCPUs and resumes it. Every call of the resume is also
//! made to fail once, and the error line names its step.

use xg_build::pv::{build_pv, PvBuildOutcome, PvBuildRequest};
use xg_build::resume::stand_in::{suspend_pv_guest, P2mAnchor};
use xg_build::{resume_slow, toolstack, ResumeError};
use xg_ctrl::ops::dominf;
use xg_ctrl::sim::{FaultRule, HostConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainOps, Mfn, PvOps};
use xg_guest::kernel::test_kernel::test_pv_kernel;
use xg_store::{MemStore, Store, TxId};

const DOM: DomId = DomId(7);
const SHUTDOWN_SUSPEND: u8 = 2;
const MEM_MIB: u64 = 32;

/// `shared_info.arch.p2m_vaddr` of a 64-bit guest.
const P2M_VADDR: u64 = 3120;
/// `start_info.store_mfn`, `start_info.console.domU.mfn`.
const SI_STORE: u64 = 56;
const SI_CONSOLE: u64 = 72;
/// `vcpu_guest_context.user_regs.rdx`.
const CTX_RDX: usize = 616;

struct Guest {
    sim: Simulator,
    built: PvBuildOutcome,
}

fn u64_at(sim: &Simulator, mfn: u64, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    sim.read_machine(DOM, &[Mfn(mfn)], offset, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn put(sim: &Simulator, mfn: u64, offset: u64, v: u64) {
    sim.write_machine(DOM, &[Mfn(mfn)], offset, &v.to_le_bytes())
        .unwrap();
}

/// A 2-vCPU PV guest built by `build_pv`, unpaused, both vCPUs up.
fn built_pv_guest() -> Guest {
    let sim = Simulator::new(&HostConfig::uniform(1, 16384, 4)).unwrap();
    let store = MemStore::new();
    let path = store.get_domain_path(u32::from(DOM.0)).unwrap();
    for (k, v) in [("vcpu/number", "2"), ("vcpu/current", "2")] {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .unwrap();
    }
    toolstack::build_pre_as(&sim, &store, DOM, MEM_MIB, false).unwrap();
    let req = PvBuildRequest::new(DOM, MEM_MIB, MEM_MIB, test_pv_kernel());
    let built = build_pv(&sim, &store, &req).unwrap();
    sim.unpause(DOM).unwrap();
    // The guest brings its second vCPU up (VCPUOP_initialise).
    sim.set_vcpu_context(DOM, 1, &built.image.vcpu_context)
        .unwrap();
    Guest { sim, built }
}

/// The guest's suspend: its kernel's work (`suspend_pv_guest`), then its
/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`.
fn suspend(g: &Guest, anchor: P2mAnchor) {
    let si = suspend_pv_guest(&g.sim, &g.built, anchor).unwrap();
    assert_eq!(si, start_info_mfn(g));
    g.sim.guest_shutdown(DOM, SHUTDOWN_SUSPEND).unwrap();
}

fn start_info_mfn(g: &Guest) -> u64 {
    g.built.memory.p2m[usize::try_from(g.built.image.layout.start_info_pfn).unwrap()]
}

#[test]
fn a_suspended_pv_guest_gets_its_frames_back_and_runs() {
    for anchor in [P2mAnchor::LinearList, P2mAnchor::Tree] {
        let g = built_pv_guest();
        suspend(&g, anchor);
        let si = start_info_mfn(&g);
        assert_eq!(
            u64_at(&g.sim, si, SI_STORE),
            g.built.image.layout.xenstore_pfn
        );

        let sink = TraceSink::new();
        let traced = Traced::new(g.sim, sink.clone());
        let r = resume_slow(&traced, DOM).unwrap();
        let sim = traced.into_inner();
        assert!(!r.hvm());
        assert_eq!(r.shutdown_reason(), Some(2));
        assert_eq!(r.result_line(), "result:0 0\n");
        let pv = r.pv.as_ref().unwrap();
        assert_eq!(pv.guest_width, 8);
        assert_eq!(pv.p2m_list, anchor == P2mAnchor::LinearList, "{anchor:?}");
        assert_eq!(pv.start_info_mfn, si);
        assert_eq!(pv.vcpus_reset, 1);
        assert_eq!(pv.p2m_size, g.built.image.layout.p2m_size, "{anchor:?}");
        assert_eq!(pv.p2m_size, MEM_MIB << 8);

        // The start info names machine frames again, the ones the build gave.
        assert_eq!(u64_at(&sim, si, SI_STORE), g.built.store_mfn, "{anchor:?}");
        assert_eq!(u64_at(&sim, si, SI_CONSOLE), g.built.console_mfn);
        assert_eq!(
            pv.store,
            (g.built.image.layout.xenstore_pfn, g.built.store_mfn)
        );
        // Running, vCPU 0 as it suspended, vCPU 1 down and uninitialised.
        let after = sim.domain_info(DOM).unwrap();
        assert_eq!(after.flags & (dominf::SHUTDOWN | dominf::PAUSED), 0);
        assert_eq!(
            sim.vcpu_context(DOM, 0).unwrap()[CTX_RDX..CTX_RDX + 8],
            si.to_le_bytes()
        );
        assert_eq!(
            sim.vcpu_context(DOM, 1).unwrap_err().errno(),
            Some(libc::ENODATA)
        );

        let calls: Vec<String> = sink
            .values()
            .iter()
            .map(|v| v["call"].as_str().unwrap().to_owned())
            .collect();
        let walk = match anchor {
            // L4, L3, L2 and L1 tables, then the p2m frames.
            P2mAnchor::LinearList => 5,
            // Frame list list, frame list, then the p2m frames.
            P2mAnchor::Tree => 3,
        };
        let mut want = vec![
            "domain_info",
            "address_size",
            "read_machine",
            "maximum_gpfn",
        ];
        want.extend(std::iter::repeat_n("read_machine", walk));
        want.extend([
            "vcpu_context",
            "read_machine",
            "write_machine",
            "write_machine",
            "reset_vcpu",
            "resume_domain",
        ]);
        assert_eq!(calls, want, "{anchor:?}");
    }
}

/// The C library's text of `errno`, as xenguest prints it.
fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    text.split(" (os error").next().unwrap().to_owned()
}

/// The step each call of the resume belongs to, as xenguest's error line names it.
fn expected_line(op: &str, nth_read: usize, walk_reads: usize, errno: i32) -> String {
    let step = match op {
        "domain_info" => {
            return format!(
                "xenguest: xc_domain_resume: [1] Could not get domain info ({errno} = {})\n",
                strerror(errno)
            )
        }
        "address_size" => {
            return format!(
                "xenguest: xc_domain_resume: [1] Could not get domain width ({errno} = {})\n",
                strerror(errno)
            )
        }
        "resume_domain" => {
            return format!(
                "xenguest: xc_domain_resume: [{errno}] {}\n",
                strerror(errno)
            )
        }
        "read_machine" if nth_read == 1 => "Couldn't map shared info",
        "read_machine" if nth_read <= 1 + walk_reads => "Couldn't map p2m table",
        "read_machine" | "write_machine" => "Couldn't map start_info",
        "maximum_gpfn" => "Couldn't map p2m table",
        "vcpu_context" => "Could not get vcpu context",
        "reset_vcpu" => "Couldn't reset vcpu state",
        other => panic!("unexpected call {other}"),
    };
    format!("xenguest: xc_domain_resume: [1] {step}\n")
}

#[test]
fn every_call_of_the_resume_fails_with_its_steps_message() {
    for anchor in [P2mAnchor::LinearList, P2mAnchor::Tree] {
        let walk = if anchor == P2mAnchor::LinearList {
            5
        } else {
            3
        };
        let mut calls = vec![
            "domain_info",
            "address_size",
            "read_machine",
            "maximum_gpfn",
        ];
        calls.extend(std::iter::repeat_n("read_machine", walk));
        calls.extend([
            "vcpu_context",
            "read_machine",
            "write_machine",
            "write_machine",
            "reset_vcpu",
            "resume_domain",
        ]);
        let mut seen = std::collections::BTreeMap::<&str, u64>::new();
        for op in calls {
            let nth = seen.entry(op).or_insert(0);
            *nth += 1;
            let g = built_pv_guest();
            suspend(&g, anchor);
            let before = g.sim.calls(op);
            g.sim
                .inject_fault(FaultRule {
                    op: op.into(),
                    nth: before + *nth,
                    times: 1,
                    errno: libc::EIO,
                })
                .unwrap();
            let err = resume_slow(&g.sim, DOM).unwrap_err();
            let nth_read = usize::try_from(*nth).unwrap();
            assert_eq!(
                err.wire_line(),
                expected_line(op, nth_read, walk, libc::EIO),
                "{anchor:?}: call {nth} of {op}"
            );
            // Nothing resumed: the domain is still shut down for suspend.
            let info = g.sim.domain_info(DOM).unwrap();
            assert_eq!(info.shutdown_reason(), Some(2), "{op} #{nth}");
        }
    }
}

#[test]
fn a_guest_that_published_no_p2m_is_not_resumed() {
    let g = built_pv_guest();
    // Suspended without publishing anything: max_pfn 0, so p2m_size 1 < nr_pages.
    g.sim.guest_shutdown(DOM, SHUTDOWN_SUSPEND).unwrap();
    let err = resume_slow(&g.sim, DOM).unwrap_err();
    assert_eq!(
        err.wire_line(),
        "xenguest: xc_domain_resume: [1] Couldn't map p2m table\n"
    );
    let ResumeError::Pv(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        e.cause.to_string().starts_with("p2m_size < nr_pages"),
        "{}",
        e.cause
    );
    assert_eq!(g.sim.calls("resume_domain"), 0);
}

#[test]
fn a_bad_page_table_entry_is_erange_in_the_walk() {
    let g = built_pv_guest();
    suspend(&g, P2mAnchor::LinearList);
    // A p2m_vaddr no page table maps: the walk finds an empty entry.
    put(
        &g.sim,
        g.built.image.shared_info_mfn,
        P2M_VADDR,
        0x7F00_0000_0000,
    );
    let err = resume_slow(&g.sim, DOM).unwrap_err();
    let ResumeError::Pv(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        e.cause
            .to_string()
            .starts_with("Bad mfn 0x0 during page table walk"),
        "{}",
        e.cause
    );
    assert_eq!(
        err.wire_line(),
        "xenguest: xc_domain_resume: [1] Couldn't map p2m table\n"
    );
}

/// A 32-bit PV guest laid out by hand (there is no 32-bit builder): 8 pages, the p2m
/// in page 5 as 4-byte entries, published through the frame list tree (page 6 the
/// frame list, page 7 the frame list list), the start info in page 0 naming pfns 1 and
/// 2, and `edx` the start info's machine frame.
#[test]
fn a_32_bit_guest_is_read_at_its_width() {
    use xg_ctrl::{DomainConfig, Gfn, MemFlags, PageOrder};
    let sim = Simulator::default();
    let cfg = DomainConfig {
        hvm: false,
        hap: false,
        max_vcpus: 1,
        ..DomainConfig::default()
    };
    sim.create_domain(DOM, &cfg).unwrap();
    sim.set_max_mem(DOM, 1024).unwrap();
    sim.set_address_size(DOM, 32).unwrap();
    let gfns: Vec<Gfn> = (0..8).map(Gfn).collect();
    let mfns: Vec<u64> = sim
        .populate_physmap_mfns(DOM, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
        .unwrap()
        .into_iter()
        .map(|m| m.0)
        .collect();
    let u32s = |v: &[u64]| -> Vec<u8> {
        v.iter()
            .flat_map(|&x| u32::try_from(x).unwrap().to_le_bytes())
            .collect()
    };
    let write = |pfn: usize, at: u64, bytes: &[u8]| {
        sim.write_machine(DOM, &[Mfn(mfns[pfn])], at, bytes)
            .unwrap();
    };
    write(5, 0, &u32s(&mfns));
    write(6, 0, &u32s(&[mfns[5]]));
    write(7, 0, &u32s(&[mfns[6]]));
    write(0, 44, &u32s(&[1])); // store_mfn, as a pfn
    write(0, 52, &u32s(&[2])); // console.domU.mfn, as a pfn
    let si = Mfn(sim.domain_info(DOM).unwrap().shared_info_frame);
    sim.write_machine(DOM, &[si], 2316, &u32s(&[8])).unwrap();
    sim.write_machine(DOM, &[si], 2320, &u32s(&[mfns[7]]))
        .unwrap();
    let mut ctx = vec![0u8; 2800];
    ctx[524..528].copy_from_slice(&u32s(&[mfns[0]]));
    sim.set_vcpu_context(DOM, 0, &ctx).unwrap();
    sim.guest_shutdown(DOM, SHUTDOWN_SUSPEND).unwrap();

    let r = resume_slow(&sim, DOM).unwrap();
    let pv = r.pv.unwrap();
    assert_eq!(pv.guest_width, 4);
    assert!(!pv.p2m_list);
    assert_eq!(pv.p2m_size, 8);
    assert_eq!(pv.store, (1, mfns[1]));
    assert_eq!(pv.console, (2, mfns[2]));
    let mut b = [0u8; 16];
    sim.read_machine(DOM, &[Mfn(mfns[0])], 44, &mut b).unwrap();
    assert_eq!(b[..4], u32s(&[mfns[1]])[..], "store_mfn, 4 bytes");
    assert_eq!(b[4..8], [0; 4], "store_evtchn untouched");
    assert_eq!(b[8..12], u32s(&[mfns[2]])[..], "console mfn, 4 bytes");
    assert_eq!(sim.domain_info(DOM).unwrap().shutdown_reason(), None);
}
