//! `resume_slow` on the simulator: a built HVM guest that suspended itself runs again;
//! a built PV guest that suspended itself gets its start info's ring frames back as
//! machine frames, its secondary vCPUs reset and runs again (its p2m found through the
//! linear list or the frame list tree); failures give xenguest's error lines.

use xg_build::{resume_slow, toolstack, HvmBuildRequest, PciHost, ResumeError};
use xg_ctrl::ops::dominf;
use xg_ctrl::sim::{FaultRule, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps};
use xg_store::MemStore;

const SHUTDOWN_SUSPEND: u8 = 2;

/// An HVM guest built by `build_hvm` and unpaused, as xenopsd leaves it.
fn built_hvm_guest(sim: &Simulator) -> DomId {
    let store = MemStore::new();
    let dom = DomId(3);
    toolstack::build_pre(sim, &store, dom, 256).unwrap();
    let req = HvmBuildRequest::new(dom, 256, 256, xg_guest::firmware::builtin_test_firmware());
    xg_build::build_hvm(sim, &store, &PciHost::at("/nonexistent-sysfs"), &req).unwrap();
    sim.unpause(dom).unwrap();
    dom
}

fn create(sim: &Simulator, hvm: bool) -> DomId {
    sim.create_domain(
        DomId(0),
        &DomainConfig {
            hvm,
            hap: hvm,
            ..DomainConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn a_suspended_hvm_guest_runs_again() {
    let sim = Simulator::default();
    let dom = built_hvm_guest(&sim);
    sim.guest_shutdown(dom, SHUTDOWN_SUSPEND).unwrap();
    let pages = sim.domain_info(dom).unwrap().tot_pages;

    let sink = TraceSink::new();
    let traced = Traced::new(sim, sink.clone());
    let r = resume_slow(&traced, dom).unwrap();
    let sim = traced.into_inner();
    assert!(r.hvm());
    assert_eq!(r.shutdown_reason(), Some(2));
    assert_eq!(r.result_line(), "result:0 0\n");

    let after = sim.domain_info(dom).unwrap();
    assert_eq!(after.shutdown_reason(), None);
    assert_eq!(
        after.flags & (dominf::SHUTDOWN | dominf::PAUSED),
        0,
        "running"
    );
    assert_eq!(after.tot_pages, pages, "memory untouched");
    // libxenguest's HVM path: getdomaininfo, then resumedomain, nothing else.
    let calls: Vec<String> = sink
        .values()
        .iter()
        .map(|v| format!("{} rc={}", v["call"].as_str().unwrap(), v["rc"]))
        .collect();
    assert_eq!(calls, ["domain_info rc=0", "resume_domain rc=0"]);
}

#[test]
fn a_domain_that_is_not_shut_down_is_left_as_it_is() {
    let sim = Simulator::default();
    let dom = create(&sim, true);
    let before = sim.domain_info(dom).unwrap();
    let r = resume_slow(&sim, dom).unwrap();
    assert_eq!(r.shutdown_reason(), None);
    let after = sim.domain_info(dom).unwrap();
    assert_eq!(after, before);
    assert_ne!(
        after.flags & dominf::PAUSED,
        0,
        "the toolstack's pause stays"
    );
}

#[test]
fn a_missing_domain_fails_like_libxenguest() {
    let sim = Simulator::default();
    let err = resume_slow(&sim, DomId(9)).unwrap_err();
    assert!(matches!(err, ResumeError::DomainInfo(_)));
    assert_eq!(
        err.wire_line(),
        "xenguest: xc_domain_resume: [1] Could not get domain info (3 = No such process)\n"
    );
}

#[test]
fn dom0_and_failed_resumes_report_errno() {
    let sim = Simulator::default();
    // dom0 is PV in the simulator and publishes no p2m: the p2m step fails first
    // (dom0's shared info says max_pfn 0, below its pages).
    let err = resume_slow(&sim, DomId(0)).unwrap_err();
    assert!(matches!(err, ResumeError::Pv(_)), "{err:?}");

    let dom = create(&sim, true);
    sim.guest_shutdown(dom, SHUTDOWN_SUSPEND).unwrap();
    sim.inject_fault(FaultRule {
        op: "resume_domain".into(),
        nth: 1,
        times: 1,
        errno: libc::EPERM,
    })
    .unwrap();
    let err = resume_slow(&sim, dom).unwrap_err();
    assert!(matches!(err, ResumeError::Resume(_)));
    assert_eq!(
        err.wire_line(),
        "xenguest: xc_domain_resume: [1] Operation not permitted\n"
    );
    assert_eq!(sim.domain_info(dom).unwrap().shutdown_reason(), Some(2));

    sim.inject_fault(FaultRule {
        op: "domain_info".into(),
        nth: sim.calls("domain_info") + 1,
        times: 1,
        errno: libc::EACCES,
    })
    .unwrap();
    assert_eq!(
        resume_slow(&sim, dom).unwrap_err().wire_line(),
        "xenguest: xc_domain_resume: [1] Could not get domain info (13 = Permission denied)\n"
    );
    // And once Xen lets it, the same domain resumes.
    resume_slow(&sim, dom).unwrap();
    assert_eq!(sim.domain_info(dom).unwrap().shutdown_reason(), None);
}
