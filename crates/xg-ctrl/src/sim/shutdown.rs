//! Shutdown and resume: what a guest's `SCHEDOP_shutdown` leaves in a domain and what
//! `XEN_DOMCTL_resumedomain` undoes.
//!
//! Xen's `domain_shutdown` keeps the first code of a domain (a second shutdown changes
//! nothing) and pauses every vCPU "for shutdown"; `getdomaininfo` then reports
//! `XEN_DOMINF_shutdown` with the code. `domain_resume` clears both and lets those vCPUs
//! run; a pause by the toolstack (`XEN_DOMINF_paused`) is a separate count and stays.
//! Deviation: Xen reports the code bits as 0xff while a domain runs
//! (`SHUTDOWN_CODE_INVALID`); the simulator reports 0 there.

use super::domain::Domain;
use super::{op_err, Simulator, State, EINVAL};
use crate::error::Result;
use crate::ops::dominf;
use crate::types::DomId;

/// The `XEN_DOMINF_shutdown` flag and code of `getdomaininfo` for `d`.
pub(super) fn info_flags(d: &Domain) -> u32 {
    d.shutdown_code.map_or(0, |code| {
        dominf::SHUTDOWN | (u32::from(code) & dominf::SHUTDOWN_MASK) << dominf::SHUTDOWN_SHIFT
    })
}

/// `XEN_DOMCTL_resumedomain`: ESRCH for a missing domain, EINVAL for the caller (dom0,
/// which Xen cannot pause for itself); otherwise the shutdown state is cleared.
pub(super) fn resume(st: &mut State, domid: DomId) -> Result<()> {
    const OP: &str = "resume_domain";
    let d = st.dom(OP, domid)?;
    if d.is_dom0 {
        return Err(op_err(OP, EINVAL));
    }
    if let Some(code) = d.shutdown_code.take() {
        log::debug!("sim: resumed domain {domid} (was shut down, code {code})");
    }
    Ok(())
}

impl Simulator {
    /// What a guest's `SCHEDOP_shutdown` with `reason` (`SHUTDOWN_suspend` is 2) does to
    /// its domain, for tests of what comes after: the domain is shut down with the first
    /// code it was given. Not a hypercall of the toolstack, so not counted or faulted.
    /// ESRCH for a missing domain; EINVAL for dom0 (Xen would take the host down).
    pub fn guest_shutdown(&self, domid: DomId, reason: u8) -> Result<()> {
        const OP: &str = "guest_shutdown";
        let mut st = self.lock();
        let d = st.dom(OP, domid)?;
        if d.is_dom0 {
            return Err(op_err(OP, EINVAL));
        }
        if d.shutdown_code.is_none() {
            d.shutdown_code = Some(reason);
            log::debug!("sim: domain {domid} shut down, code {reason}");
        }
        Ok(())
    }
}
