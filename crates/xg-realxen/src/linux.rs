//! Debian's Linux kernel booted to its `/init` by our builders, the way xenopsd starts a
//! guest: event channels allocated before the build, rings handed to xenstored and
//! xenconsoled after it. The images come with the fixture (`WITH_LINUX_GUEST=1`).

use std::path::Path;
use std::time::Duration;

use xg_ctrl::{DomId, DomainOps, XenCtrl};
use xg_store::{Client, Store, TxId};

use crate::build::{build_compared, Compared, KernelBuild};
use crate::console::{self, Outcome, Waited};
use crate::domain::{alloc_ports, start_like_xenopsd, GuestSpec, Ports};

/// Debian's kernel as shipped: a bzImage whose payload is xz with the x86 BCJ filter.
pub const BZIMAGE: &str = "/guest/vmlinuz";
/// The fixture's busybox initramfs; its `/init` prints [`INIT_BANNER`] and powers off.
pub const INITRD: &str = "/guest/domu-initrd.gz";
/// What the initramfs' `/init` prints first.
pub const INIT_BANNER: &str = "DOMU-UP";
/// How long a guest may take from unpause to its `/init` under TCG.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A guest that reached its `/init`.
#[derive(Debug, Clone)]
pub struct AtInit {
    /// The build, compared with the simulator's.
    pub built: Compared,
    /// The event channels it got.
    pub ports: Ports,
    /// The console wait that saw [`INIT_BANNER`].
    pub waited: Waited,
}

/// Panics unless the fixture's Linux images are in dom0.
pub fn require_images() {
    for f in [BZIMAGE, INITRD] {
        assert!(
            Path::new(f).exists(),
            "{f} missing (fixture without WITH_LINUX_GUEST=1?)"
        );
    }
}

/// Builds domain `domid` (created by [`crate::domain::create_like_xenopsd`], named
/// `name`) with `build` on Xen and on the simulator, does xenopsd's steps around the
/// build, unpauses it and waits for [`INIT_BANNER`] on its console. Checks the guest
/// wrote `control/feature-poweroff` (its xenbus reached xenstored through our ring).
///
/// # Panics
/// When any step fails or the banner does not come: this is a test helper, its message
/// (with the console's and Xen's last lines) is the test's failure.
pub fn boot_to_init(
    xc: &XenCtrl,
    xs: &Client,
    domid: DomId,
    name: &str,
    spec: &mut GuestSpec,
    build: &KernelBuild,
) -> AtInit {
    let ports = alloc_ports(xc, domid, spec).expect("allocate event channels");
    let built = build_compared(xc, domid, name, spec, build);
    start_like_xenopsd(xs, domid, ports, built.frames.0, built.frames.1)
        .expect("introduce the domain");
    xc.unpause(domid).expect("unpause");
    let waited = console::wait_for(xc, domid, name, &[INIT_BANNER], INIT_TIMEOUT);
    assert_eq!(
        waited.outcome,
        Outcome::Seen,
        "{name}: no {INIT_BANNER} on the console after {:.1} s; console: {:#?}; Xen's console: {:#?}",
        waited.elapsed.as_secs_f64(),
        waited.tail(40),
        console::xen_console_of(domid, 30)
    );
    let feature = xs
        .read_opt(
            TxId::NONE,
            &format!("/local/domain/{}/control/feature-poweroff", domid.0),
        )
        .expect("read control/feature-poweroff");
    assert_eq!(
        feature.as_deref(),
        Some(&b"1"[..]),
        "{name}: the guest wrote no control/feature-poweroff"
    );
    AtInit {
        built,
        ports,
        waited,
    }
}

/// The report line of a guest at its `/init` (`then` says what happened next).
pub fn report_line(name: &str, mode: &str, at: &AtInit, then: &str) -> String {
    format!(
        "{name}: {mode} {:.1} ms, {}; {} memory calls = simulator; ports store {} console {}; \
         /init on hvc0 (xenconsoled, xenstored) {:.2} s after unpause{then}",
        at.built.elapsed.as_secs_f64() * 1e3,
        at.built.result,
        at.built.memory_calls,
        at.ports.store,
        at.ports.console,
        at.waited.elapsed.as_secs_f64()
    )
}

/// Whether the domain has shut down, and why (`SHUTDOWN_*`).
pub fn shutdown_reason(xc: &XenCtrl, domid: DomId) -> Option<u32> {
    xc.domain_info(domid)
        .expect("getdomaininfo")
        .shutdown_reason()
}
