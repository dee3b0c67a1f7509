//! Running `-mode resume_slow`: `xc_domain_resume(xch, domid, 0)` on the backend, then
//! xenguest's `write_status(0, 0, NULL)`, the line `result:0 0`.
//!
//! On the simulator nothing has suspended yet, so the domain is first created as an HVM
//! guest that shut down for suspend (what the toolstack and the guest did on a real host),
//! the way the build modes create their domain there; with `--sim-guest pv` it is a
//! 2-vCPU PV guest built from the test kernel that did what a PV kernel does before its
//! suspend hypercall (p2m published, ring frames turned into pfns, start info frame in
//! `rdx`) and shut down for suspend.

use xg_build::pv::{build_pv, PvBuildRequest};
use xg_build::resume::resume_slow as resume_domain;
use xg_build::resume::stand_in::{suspend_pv_guest, P2mAnchor};
use xg_build::toolstack;
use xg_ctrl::sim::Simulator;
use xg_ctrl::trace::Traced;
use xg_ctrl::{DomId, DomainConfig, DomainOps, PvOps};
use xg_store::{MemStore, Store, TxId};

use crate::args::{Args, Backend, SimGuest};
use crate::run::{chain, create_trace, flush_trace, Done};

type Lines = Vec<String>;

/// `SHUTDOWN_suspend`.
const SHUTDOWN_SUSPEND: u8 = 2;
/// Memory of the simulator's PV stand-in.
const PV_STAND_IN_MIB: u64 = 32;

fn line(s: String) -> Lines {
    vec![if s.ends_with('\n') { s } else { s + "\n" }]
}

/// Runs `-mode resume_slow` (`-domid` is required; the parser checked it is given).
pub fn resume_slow(a: &Args) -> Result<Done, Lines> {
    let domid = u16::try_from(a.domid)
        .ok()
        .filter(|d| (1..0x7FF0).contains(d))
        .map(DomId)
        .ok_or_else(|| line(format!("xenguest: invalid domid {}", a.domid)))?;
    let cannot_open = |e: &xg_ctrl::Error| {
        log::error!("{}", chain(e));
        line("xenguest: Failed to open xc interface".to_owned())
    };
    match a.backend {
        Backend::Sim => {
            let sim = match &a.host {
                Some(p) => Simulator::from_file(p),
                None => Ok(Simulator::default()),
            }
            .map_err(|e| cannot_open(&e))?;
            match a.sim_guest {
                SimGuest::Hvm => suspended_stand_in(&sim, domid)?,
                SimGuest::Pv => suspended_pv_stand_in(&sim, domid)?,
            }
            traced(sim, a, domid)
        }
        Backend::Privcmd => {
            let xc = xg_ctrl::XenCtrl::open().map_err(|e| cannot_open(&e))?;
            traced(xc, a, domid)
        }
    }
}

/// The simulator's stand-in for a domain whose suspend failed: an HVM guest, unpaused,
/// that shut down with `SHUTDOWN_suspend`.
fn suspended_stand_in(sim: &Simulator, domid: DomId) -> Result<(), Lines> {
    let fail = |what: &str, e: &xg_ctrl::Error| {
        line(format!(
            "xenguest: simulator: cannot {what} domain {domid}: {}",
            chain(e)
        ))
    };
    sim.create_domain(domid, &DomainConfig::default())
        .map_err(|e| fail("create", &e))?;
    sim.unpause(domid).map_err(|e| fail("unpause", &e))?;
    sim.guest_shutdown(domid, SHUTDOWN_SUSPEND)
        .map_err(|e| fail("suspend", &e))?;
    log::info!("Simulator: domain {domid} is an HVM guest that shut down for suspend");
    Ok(())
}

/// The simulator's stand-in for a PV guest whose suspend failed: built by `build_pv`
/// from the test kernel with 2 vCPUs, unpaused, both vCPUs up, then the kernel's
/// suspend (linear p2m list published, ring frames turned into pfns, `rdx`) and
/// `SHUTDOWN_suspend`.
fn suspended_pv_stand_in(sim: &Simulator, domid: DomId) -> Result<(), Lines> {
    let fail = |what: &str, e: &dyn std::error::Error| {
        line(format!(
            "xenguest: simulator: cannot {what} PV domain {domid}: {}",
            chain(e)
        ))
    };
    let store = MemStore::new();
    let path = store
        .get_domain_path(u32::from(domid.0))
        .map_err(|e| fail("seed the store of", &e))?;
    for (key, value) in [("vcpu/number", "2"), ("vcpu/current", "2")] {
        store
            .write(
                TxId::NONE,
                &toolstack::platform_key(&path, key),
                value.as_bytes(),
            )
            .map_err(|e| fail("seed the store of", &e))?;
    }
    toolstack::build_pre_as(sim, &store, domid, PV_STAND_IN_MIB, false)
        .map_err(|e| fail("create", &e))?;
    let req = PvBuildRequest::new(
        domid,
        PV_STAND_IN_MIB,
        PV_STAND_IN_MIB,
        xg_guest::kernel::test_kernel::test_pv_kernel(),
    );
    let built = build_pv(sim, &store, &req).map_err(|e| fail("build", &e))?;
    sim.unpause(domid).map_err(|e| fail("unpause", &e))?;
    // The kernel brought its second vCPU up.
    sim.set_vcpu_context(domid, 1, &built.image.vcpu_context)
        .map_err(|e| fail("start vCPU 1 of", &e))?;
    suspend_pv_guest(sim, &built, P2mAnchor::LinearList).map_err(|e| fail("suspend", &e))?;
    sim.guest_shutdown(domid, SHUTDOWN_SUSPEND)
        .map_err(|e| fail("suspend", &e))?;
    log::info!(
        "Simulator: domain {domid} is a PV guest that suspended itself (store mfn {:#x}, \
         console mfn {:#x} now pfns {:#x} and {:#x})",
        built.store_mfn,
        built.console_mfn,
        built.image.layout.xenstore_pfn,
        built.image.layout.console_pfn
    );
    Ok(())
}

fn traced<H: DomainOps + PvOps>(hv: H, a: &Args, domid: DomId) -> Result<Done, Lines> {
    match &a.trace {
        Some(path) => {
            let sink = create_trace(path)?;
            let r = run(&Traced::new(hv, sink.clone()), domid);
            flush_trace(&sink);
            r
        }
        None => run(&hv, domid),
    }
}

fn run<H: DomainOps + PvOps>(hv: &H, domid: DomId) -> Result<Done, Lines> {
    match resume_domain(hv, domid) {
        Ok(r) => {
            match &r.pv {
                None => log::info!("Domain {domid} resumed (HVM container)"),
                Some(pv) => log::info!(
                    "Domain {domid} resumed (PV: start info mfn {:#x}, store pfn {:#x} -> \
                     mfn {:#x}, console pfn {:#x} -> mfn {:#x}, {} secondary vCPUs reset)",
                    pv.start_info_mfn,
                    pv.store.0,
                    pv.store.1,
                    pv.console.0,
                    pv.console.1,
                    pv.vcpus_reset
                ),
            }
            // write_status(0, 0, NULL).
            Ok(Done::Built(0, 0))
        }
        Err(e) => {
            log::error!("{}", chain(&e));
            Err(line(e.wire_line()))
        }
    }
}
