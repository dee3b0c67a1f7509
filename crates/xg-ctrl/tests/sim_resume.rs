//! Shutdown and resume in the simulator: what `XEN_DOMCTL_resumedomain` does to a
//! domain a guest's `SCHEDOP_shutdown` stopped.

use xg_ctrl::ops::dominf;
use xg_ctrl::sim::{FaultRule, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps};

const SHUTDOWN_SUSPEND: u8 = 2;

fn domain(sim: &Simulator, hvm: bool) -> DomId {
    sim.create_domain(
        DomId(0),
        &DomainConfig {
            hvm,
            hap: hvm,
            max_vcpus: 2,
            ..DomainConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn resume_clears_a_suspend_and_keeps_the_toolstack_pause() {
    let sim = Simulator::default();
    let d = domain(&sim, true);
    sim.unpause(d).unwrap();
    sim.guest_shutdown(d, SHUTDOWN_SUSPEND).unwrap();
    let info = sim.domain_info(d).unwrap();
    assert_eq!(info.shutdown_reason(), Some(2));
    assert_eq!(
        info.flags & (dominf::SHUTDOWN | dominf::PAUSED | 0xFF << 16),
        dominf::SHUTDOWN | 2 << 16,
        "shut down with code 2, not paused by the toolstack: {:#x}",
        info.flags
    );

    sim.resume_domain(d).unwrap();
    let info = sim.domain_info(d).unwrap();
    assert_eq!(info.shutdown_reason(), None);
    assert_eq!(info.flags & (dominf::SHUTDOWN | dominf::PAUSED), 0);
    assert!(info.is_hvm());

    // A paused domain that suspends stays paused by the toolstack after the resume.
    let p = domain(&sim, true);
    sim.guest_shutdown(p, SHUTDOWN_SUSPEND).unwrap();
    sim.resume_domain(p).unwrap();
    let info = sim.domain_info(p).unwrap();
    assert_eq!(info.shutdown_reason(), None);
    assert_ne!(info.flags & dominf::PAUSED, 0);
}

#[test]
fn the_first_shutdown_code_sticks_until_resumed() {
    let sim = Simulator::default();
    let d = domain(&sim, false);
    sim.guest_shutdown(d, SHUTDOWN_SUSPEND).unwrap();
    sim.guest_shutdown(d, 0).unwrap();
    assert_eq!(sim.domain_info(d).unwrap().shutdown_reason(), Some(2));
    sim.resume_domain(d).unwrap();
    sim.guest_shutdown(d, 3).unwrap();
    assert_eq!(sim.domain_info(d).unwrap().shutdown_reason(), Some(3));
}

#[test]
fn resuming_a_running_domain_changes_nothing() {
    let sim = Simulator::default();
    let d = domain(&sim, true);
    sim.unpause(d).unwrap();
    let before = sim.domain_info(d).unwrap();
    sim.resume_domain(d).unwrap();
    assert_eq!(sim.domain_info(d).unwrap(), before);
}

#[test]
fn resume_errors() {
    let sim = Simulator::default();
    let missing = sim.resume_domain(DomId(42)).unwrap_err();
    assert_eq!(missing.errno(), Some(libc::ESRCH));
    assert_eq!(
        sim.resume_domain(DomId(0)).unwrap_err().errno(),
        Some(libc::EINVAL),
        "dom0 cannot resume itself"
    );
    assert_eq!(
        sim.guest_shutdown(DomId(42), SHUTDOWN_SUSPEND)
            .unwrap_err()
            .errno(),
        Some(libc::ESRCH)
    );
    assert_eq!(
        sim.guest_shutdown(DomId(0), SHUTDOWN_SUSPEND)
            .unwrap_err()
            .errno(),
        Some(libc::EINVAL)
    );

    let d = domain(&sim, true);
    sim.guest_shutdown(d, SHUTDOWN_SUSPEND).unwrap();
    sim.inject_fault(FaultRule {
        op: "resume_domain".into(),
        // Counting the two failed calls above.
        nth: 3,
        times: 1,
        errno: libc::EPERM,
    })
    .unwrap();
    assert_eq!(sim.resume_domain(d).unwrap_err().errno(), Some(libc::EPERM));
    assert_eq!(
        sim.domain_info(d).unwrap().shutdown_reason(),
        Some(2),
        "a failed resume leaves the domain suspended"
    );
    sim.resume_domain(d).unwrap();
    assert_eq!(sim.calls("resume_domain"), 4);
}

#[test]
fn resume_is_traced() {
    let sim = Simulator::default();
    let d = domain(&sim, true);
    let sink = TraceSink::new();
    let traced = Traced::new(sim, sink.clone());
    traced.resume_domain(d).unwrap();
    traced.resume_domain(DomId(99)).unwrap_err();
    let values = sink.values();
    assert_eq!(
        values,
        [
            serde_json::json!({"seq": 0, "call": "resume_domain", "domid": d.0, "rc": 0}),
            serde_json::json!({"seq": 1, "call": "resume_domain", "domid": 99, "rc": -1, "errno": libc::ESRCH}),
        ]
    );
}
