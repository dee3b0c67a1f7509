//! `hvm_safety_check` (§4.2): combinations the build refuses unless `-force`.

use crate::error::{BuildError, Step};
use crate::flags::Flags;

/// Checks PoD, nested virtualisation, PCI passthrough and shadow paging against each
/// other. `pod` = `-mem_start_mib < -mem_max_mib`; `pci_given` = `-pci_passthrough` was
/// on the command line (even empty).
pub fn hvm_safety_check(
    flags: &Flags,
    pod: bool,
    pci_given: bool,
    force: bool,
) -> Result<(), BuildError> {
    if force {
        log::info!("--force in effect - skipping safety checks");
        return Ok(());
    }
    let hap = flags
        .dominfo
        .as_ref()
        .is_some_and(xg_ctrl::DomainInfo::is_hap);
    let refusal = if pod && flags.nested_virt != 0 {
        Some("Populate on Demand and Nested Virtualisation are mutually exclusive")
    } else if pod && pci_given {
        Some("Populate on Demand and PCI Passthrough are mutually exclusive")
    } else if !hap && flags.nested_virt != 0 {
        Some("Shadow Paging and Nested Virtualisation are mutually exclusive")
    } else {
        None
    };
    match refusal {
        Some(m) => {
            log::info!("Safety checks failed.  Aborting domain build");
            Err(BuildError::refused(Step::SafetyCheck, m, libc::EINVAL))
        }
        None => Ok(()),
    }
}
