//! Running `-mode resume_slow`: `xc_domain_resume(xch, domid, 0)` on the backend, then
//! xenguest's `write_status(0, 0, NULL)`, the line `result:0 0`.
//!
//! On the simulator nothing has suspended yet, so the domain is first created as an HVM
//! guest that shut down for suspend (what the toolstack and the guest did on a real host),
//! the way the build modes create their domain there.

use xg_build::resume::{resume_slow as resume_domain, ResumeError};
use xg_ctrl::sim::Simulator;
use xg_ctrl::trace::Traced;
use xg_ctrl::{DomId, DomainConfig, DomainOps};

use crate::args::{Args, Backend};
use crate::run::{chain, create_trace, flush_trace, Done};

type Lines = Vec<String>;

/// `SHUTDOWN_suspend`.
const SHUTDOWN_SUSPEND: u8 = 2;

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
            suspended_stand_in(&sim, domid)?;
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

fn traced<H: DomainOps>(hv: H, a: &Args, domid: DomId) -> Result<Done, Lines> {
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

fn run<H: DomainOps>(hv: &H, domid: DomId) -> Result<Done, Lines> {
    match resume_domain(hv, domid) {
        Ok(r) => {
            log::info!(
                "Domain {domid} resumed ({})",
                if r.hvm() { "HVM container" } else { "PV" }
            );
            // write_status(0, 0, NULL).
            Ok(Done::Built(0, 0))
        }
        Err(e) => {
            if !matches!(e, ResumeError::PvUnsupported { .. }) {
                log::error!("{}", chain(&e));
            }
            Err(line(e.wire_line()))
        }
    }
}
