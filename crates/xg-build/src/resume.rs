//! `-mode resume_slow`: what XenServer's xenguest does through libxenguest's
//! `xc_domain_resume(xch, domid, 0)` (`xc_domain_resume_any`) to let a domain run again
//! after a suspend that failed or was cancelled.
//!
//! `xc_domain_resume_any` asks Xen about the domain, then:
//!
//! * **HVM container (HVM or PVH guest)**: `XEN_DOMCTL_resumedomain` and nothing else. The
//!   guest's `SCHEDOP_shutdown(SHUTDOWN_suspend)` returns 0, so a guest with PV drivers
//!   believes it woke up in a new domain and reconnects them; a guest without drivers
//!   just continues.
//! * **PV**: the guest width, a map of the guest's p2m (found through the shared info
//!   page), vCPU 0's context for the start info frame, the start info's Xenstore and
//!   console frames rewritten from pfns back to machine frames (the guest's suspend
//!   turned them into pfns), a reset of every secondary vCPU, then
//!   `XEN_DOMCTL_resumedomain` (see [`pv`]). The guest's `SCHEDOP_shutdown` returns 0
//!   as well: it believes it resumed in a new domain.
//!
//! Xen's `domain_resume` does not require the domain to be shut down: a running or
//! toolstack-paused domain is left as it is, and the call succeeds (libxenguest checks
//! nothing either). It fails with ESRCH for a missing domain and EINVAL for dom0.
//!
//! Known difference: Xen 4.17's `getdomaininfo` answers for the next existing domain
//! when `domid` does not exist, so the C code goes on with that domain's type and fails
//! later (`[3] No such process` from the resume, or a PV step). The backends here answer
//! ESRCH for exactly `domid`, so a missing domain always fails at the first step with
//! libxenguest's `Could not get domain info` message. Where libxenguest would index
//! the p2m or its page tables outside what it mapped (a guest that published a broken
//! p2m), this fails with the step's message instead of reading past the mapping.

pub mod pv;
pub mod stand_in;

use xg_ctrl::{DomId, DomainInfo, DomainOps, PvOps};

pub use pv::{PvError, PvResumed, PvStep};

use crate::error::strerror;

/// The function xenguest names in its `error:` line for every failure of this mode.
pub const C_FUNCTION: &str = "xc_domain_resume";

/// libxenctrl's `XC_INTERNAL_ERROR`: the code `xc_get_last_error` reports after
/// libxenguest's `ERROR`/`PERROR`, which `failwith_oss_xc` prints instead of errno.
const XC_INTERNAL_ERROR: i32 = 1;

/// What a successful resume found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The domain before the resume, as `getdomaininfo` reported it.
    pub before: DomainInfo,
    /// What the PV path found and rewrote (`None` for an HVM container).
    pub pv: Option<PvResumed>,
}

impl Resumed {
    /// HVM container (HVM or PVH guest)?
    pub fn hvm(&self) -> bool {
        self.before.is_hvm()
    }

    /// The `SHUTDOWN_*` code the domain had shut down with, `None` if it was not shut
    /// down (the resume then changed nothing).
    pub fn shutdown_reason(&self) -> Option<u32> {
        self.before.shutdown_reason()
    }

    /// xenguest's control line for this mode: `write_status(0, 0, NULL)`.
    pub fn result_line(&self) -> &'static str {
        "result:0 0\n"
    }
}

/// Why a resume failed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// `getdomaininfo` failed (libxenguest: `PERROR("Could not get domain info")`).
    #[error("Could not get domain info")]
    DomainInfo(#[source] xg_ctrl::Error),
    /// `XEN_DOMCTL_resumedomain` failed.
    #[error("XEN_DOMCTL_resumedomain failed")]
    Resume(#[source] xg_ctrl::Error),
    /// A step of the PV path failed.
    #[error(transparent)]
    Pv(#[from] PvError),
}

impl ResumeError {
    /// The text of xenguest's `error:` line (without the prefix, with the newline).
    ///
    /// `failwith_oss_xc("xc_domain_resume")` prints libxenctrl's last error when
    /// libxenguest reported one (code 1 and its message, for the `getdomaininfo`
    /// failure), otherwise errno and its text (a failed domctl reports nothing).
    pub fn wire_line(&self) -> String {
        match self {
            ResumeError::DomainInfo(e) => {
                let errno = errno_of(e);
                format!(
                    "xenguest: {C_FUNCTION}: [{XC_INTERNAL_ERROR}] Could not get domain info \
                     ({errno} = {})\n",
                    strerror(errno)
                )
            }
            ResumeError::Resume(e) => {
                let errno = errno_of(e);
                format!("xenguest: {C_FUNCTION}: [{errno}] {}\n", strerror(errno))
            }
            // libxenguest's ERROR: the message alone; PERROR adds errno.
            ResumeError::Pv(e) => match (e.step, e.errno()) {
                (PvStep::GuestWidth, errno) => {
                    let errno = errno.unwrap_or(libc::EIO);
                    format!(
                        "xenguest: {C_FUNCTION}: [{XC_INTERNAL_ERROR}] {} ({errno} = {})\n",
                        e.step,
                        strerror(errno)
                    )
                }
                (step, _) => format!("xenguest: {C_FUNCTION}: [{XC_INTERNAL_ERROR}] {step}\n"),
            },
        }
    }
}

fn errno_of(e: &xg_ctrl::Error) -> i32 {
    e.errno().unwrap_or(libc::EIO)
}

/// `xc_domain_resume(xch, domid, 0)`: resumes `domid` after a failed or cancelled
/// suspend (see the module documentation).
pub fn resume_slow<H: DomainOps + PvOps + ?Sized>(
    hv: &H,
    domid: DomId,
) -> Result<Resumed, ResumeError> {
    let before = hv.domain_info(domid).map_err(ResumeError::DomainInfo)?;
    let state = match before.shutdown_reason() {
        Some(2) => "shut down for suspend".to_owned(),
        Some(code) => format!("shut down with code {code}"),
        None => "not shut down".to_owned(),
    };
    let pv = if before.is_hvm() {
        log::info!("Resuming HVM domain {domid} ({state})");
        None
    } else {
        log::info!("Resuming PV domain {domid} ({state})");
        Some(pv::resume_pv(hv, domid, &before)?)
    };
    hv.resume_domain(domid).map_err(ResumeError::Resume)?;
    Ok(Resumed { before, pv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_lines_are_failwith_oss_xc() {
        let info = ResumeError::DomainInfo(xg_ctrl::Error::hypercall(
            "domctl getdomaininfo",
            libc::ESRCH,
        ));
        assert_eq!(
            info.wire_line(),
            "xenguest: xc_domain_resume: [1] Could not get domain info (3 = No such process)\n"
        );
        let resume = ResumeError::Resume(xg_ctrl::Error::hypercall(
            "domctl resumedomain",
            libc::EINVAL,
        ));
        assert_eq!(
            resume.wire_line(),
            "xenguest: xc_domain_resume: [22] Invalid argument\n"
        );
        let width = ResumeError::Pv(PvError {
            step: PvStep::GuestWidth,
            cause: pv::PvCause::Hypervisor(xg_ctrl::Error::hypercall(
                "domctl get_address_size",
                libc::EOPNOTSUPP,
            )),
        });
        assert_eq!(
            width.wire_line(),
            "xenguest: xc_domain_resume: [1] Could not get domain width \
             (95 = Operation not supported)\n"
        );
        let p2m = ResumeError::Pv(PvError {
            step: PvStep::P2m,
            cause: pv::PvCause::P2mSize {
                p2m_size: 1,
                nr_pages: 2,
            },
        });
        assert_eq!(
            p2m.wire_line(),
            "xenguest: xc_domain_resume: [1] Couldn't map p2m table\n"
        );
    }
}
