//! Scenario 4: failures on a real Xen are clean errors (exit status 1, an `error:` line,
//! no `result:`), and the half-built domain can still be destroyed. Runs in dom0
//! (`cargo xtask xen-test`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use xg_ctrl::{DomId, DomainOps, XenCtrl};
use xg_realxen::build::{error_lines, hvm_build_privcmd, result_line};
use xg_realxen::domain::{create_like_xenopsd, remove_store, Guard, GuestSpec};

fn destroy_and_wait(xc: &XenCtrl, d: DomId) {
    xc.destroy(d).expect("destroy after a failed build");
    let start = Instant::now();
    while xc.domain_info(d).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "{d} not gone");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_clean_failure(out: &xg_realxen::cmd::Finished) -> Vec<String> {
    println!("stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert_eq!(out.status, Some(1), "exit status");
    assert_eq!(result_line(&out.stdout), None);
    let errs: Vec<String> = error_lines(&out.stdout)
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert!(!errs.is_empty(), "no error: line");
    assert!(!out.stderr.contains("panicked"), "xenguest panicked");
    errs
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn max_mem_below_the_request() {
    let (xc, xs) = xg_realxen::dom0_handles();
    let spec = GuestSpec::small(128, 1);
    let d = create_like_xenopsd(&xc, &xs, "xg-fail-maxmem", &spec).expect("create");
    let dom = Guard::new(&xc, d);
    // The toolstack got it wrong: max_mem is half the build's memory.
    xc.set_max_mem(d, 64 * 1024).expect("max_mem");
    let out = hvm_build_privcmd(d.0, &spec, None).expect("run xenguest");
    let errs = assert_clean_failure(&out);
    xg_realxen::report(&format!("max_mem below the request: {}", errs.join(" | ")));
    let info = xc.domain_info(d).expect("domain still there");
    assert!(
        info.tot_pages <= 64 * 256,
        "tot_pages {} over max_mem",
        info.tot_pages
    );
    destroy_and_wait(&xc, dom.domid());
    remove_store(&xs, d).expect("remove xenstore dir");
}

#[test]
#[ignore = "needs dom0 of a real Xen: run `cargo xtask xen-test`"]
fn impossible_affinity() {
    let (xc, xs) = xg_realxen::dom0_handles();
    let mut spec = GuestSpec::small(64, 1);
    // Only pCPU 7, which this 2-CPU host does not have.
    spec.platform
        .push(("vcpu/0/affinity".to_owned(), "00000001".to_owned()));
    let d = create_like_xenopsd(&xc, &xs, "xg-fail-affinity", &spec).expect("create");
    let dom = Guard::new(&xc, d);
    let out = hvm_build_privcmd(d.0, &spec, None).expect("run xenguest");
    let errs = assert_clean_failure(&out);
    xg_realxen::report(&format!("impossible affinity: {}", errs.join(" | ")));
    assert!(
        errs.iter()
            .any(|e| e.contains("xc_vcpu_setaffinity") && e.contains("[22]")),
        "expected xenguest's xc_vcpu_setaffinity EINVAL line, got {errs:?}"
    );
    assert_eq!(xc.domain_info(d).unwrap().tot_pages, 0, "nothing was built");
    destroy_and_wait(&xc, dom.domid());
    remove_store(&xs, d).expect("remove xenstore dir");
}
