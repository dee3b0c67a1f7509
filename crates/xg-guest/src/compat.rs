//! `xc_dom_boot_xen_init` and `xc_dom_compat_check`: read the hypervisor's version and
//! capabilities, and require the guest type as a whole capabilities token.

use xg_ctrl::{HostOps, XenVersion};

use crate::error::SetupError;

/// The guest type of an hvmloader (or PVH) build.
pub const HVM_GUEST_TYPE: &str = "hvm-3.0-x86_32";

/// Whether `guest_type` is one of the space-separated tokens of `capabilities`.
pub fn guest_type_supported(capabilities: &str, guest_type: &str) -> bool {
    capabilities.split(' ').any(|t| t == guest_type)
}

/// Reads the version and capabilities (`xc_dom_boot_xen_init`).
pub fn xen_init<H: HostOps + ?Sized>(hv: &H) -> Result<XenVersion, SetupError> {
    let v = hv.xen_version().map_err(|source| SetupError::Hypervisor {
        step: "Reading Xen capabilities",
        source,
    })?;
    log::debug!(
        "xen {}.{}{}, caps {}",
        v.major,
        v.minor,
        v.extra,
        v.capabilities
    );
    Ok(v)
}

/// `xc_dom_compat_check` for `guest_type`.
pub fn check_compat(version: &XenVersion, guest_type: &str) -> Result<(), SetupError> {
    if guest_type_supported(&version.capabilities, guest_type) {
        Ok(())
    } else {
        Err(SetupError::GuestTypeUnsupported {
            guest_type: guest_type.to_owned(),
            capabilities: version.capabilities.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_tokens_only() {
        let caps = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64";
        assert!(guest_type_supported(caps, HVM_GUEST_TYPE));
        assert!(!guest_type_supported(
            "hvm-3.0-x86_32p hvm-3.0-x86_64",
            HVM_GUEST_TYPE
        ));
        assert!(!guest_type_supported("", HVM_GUEST_TYPE));
        assert!(!guest_type_supported("xhvm-3.0-x86_32", HVM_GUEST_TYPE));
    }
}
