//! The build's error type: which step failed, and why.
//!
//! [`BuildError::wire_lines`] renders the `error:` text xenguest would write for it, so
//! xenopsd sees the same messages from this builder as from the C one.

use std::fmt;

/// A step of the build, named after the C function whose failure xenguest reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Creating the domain (simulator convenience; xenopsd's `build_pre` does it).
    CreateDomain,
    /// `xc_domain_getinfo`.
    DomainGetInfo,
    /// Reading the platform keys (`get_flags`).
    GetFlags,
    /// `hvm_safety_check`.
    SafetyCheck,
    /// `xc_cpumap_alloc` (host cpumap size query).
    CpumapAlloc,
    /// `xc_vcpu_setaffinity`.
    VcpuSetAffinity,
    /// `xc_sched_credit_domain_set`.
    SchedCreditSet,
    /// `xc_domain_set_tsc_info`.
    SetTscInfo,
    /// `xc_dom_kernel_file`: reading the firmware loader.
    KernelFile,
    /// `xc_dom_boot_xen_init`.
    BootXenInit,
    /// `xc_dom_parse_image`.
    ParseImage,
    /// `hvm_build_setup_mem`: layout inputs and arithmetic, firmware selection.
    SetupMem,
    /// `xc_dom_boot_mem_init`: populating guest RAM.
    BootMemInit,
    /// `xc_domain_set_memory_map`.
    SetMemoryMap,
    /// `xc_dom_build_image`: loading firmware, special pages.
    BuildImage,
    /// `xc_dom_boot_image`: start info, hvm_info, vCPU context.
    BootImage,
    /// `xc_dom_gnttab_init`.
    GnttabInit,
    /// `hvm_build_params`.
    SetParams,
    /// `construct_cpuid_policy`.
    CpuidPolicy,
    /// Committing the build's Xenstore writes.
    XenstoreCommit,
    /// `xc_dom_module_file`: a PVH module or PV ramdisk.
    ModuleFile,
    /// `pvh_setup_mem`.
    PvhSetupMem,
    /// `xenguest_dom_load_acpi`.
    LoadAcpi,
    /// `pvh_setup_e820`.
    PvhSetupE820,
}

impl Step {
    /// The `<fn>` name of xenguest's `xenguest: <fn>: [<code>] <message>` line.
    pub fn c_name(self) -> &'static str {
        match self {
            Step::CreateDomain => "xc_domain_create",
            Step::DomainGetInfo => "xc_domain_getinfo",
            Step::GetFlags => "get_flags",
            Step::SafetyCheck => "hvm_safety_check",
            Step::CpumapAlloc => "xc_cpumap_alloc",
            Step::VcpuSetAffinity => "xc_vcpu_setaffinity",
            Step::SchedCreditSet => "xc_sched_credit_domain_set",
            Step::SetTscInfo => "xc_domain_set_tsc_info",
            Step::KernelFile => "xc_dom_kernel_file",
            Step::BootXenInit => "xc_dom_boot_xen_init",
            Step::ParseImage => "xc_dom_parse_image",
            Step::SetupMem => "hvm_build_setup_mem",
            Step::BootMemInit => "xc_dom_boot_mem_init",
            Step::SetMemoryMap => "xc_domain_set_memory_map",
            Step::BuildImage => "xc_dom_build_image",
            Step::BootImage => "xc_dom_boot_image",
            Step::GnttabInit => "xc_dom_gnttab_init",
            Step::SetParams => "hvm_build_params",
            Step::CpuidPolicy => "construct_cpuid_policy",
            Step::XenstoreCommit => "xs_transaction_end",
            Step::ModuleFile => "xc_dom_module_file",
            Step::PvhSetupMem => "pvh_setup_mem",
            Step::LoadAcpi => "xenguest_dom_load_acpi",
            Step::PvhSetupE820 => "pvh_setup_e820",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.c_name())
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// A hypercall failed.
    #[error("Hypercall failed")]
    Xen(#[source] xg_ctrl::Error),
    /// A Xenstore access failed.
    #[error("Xenstore access failed")]
    Store(#[source] xg_store::Error),
    /// The guest-setup library failed.
    #[error("Guest setup failed")]
    Guest(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The build refused its inputs; the message is xenguest's own wording.
    #[error("{message}")]
    Refused {
        /// The message, without trailing newline.
        message: String,
        /// errno the C code would leave for the `[code]` of a following failwith line.
        errno: i32,
    },
    /// A host file (sysfs, firmware) could not be read.
    #[error("{message}")]
    HostFile {
        /// The message, xenguest's wording.
        message: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A failed build: the step and the cause.
#[derive(Debug, thiserror::Error)]
#[error("Build step {step} failed")]
pub struct BuildError {
    /// The failing step.
    pub step: Step,
    /// The cause.
    #[source]
    pub kind: ErrorKind,
}

impl BuildError {
    /// A hypercall failure in `step`.
    pub fn xen(step: Step, e: xg_ctrl::Error) -> BuildError {
        BuildError {
            step,
            kind: ErrorKind::Xen(e),
        }
    }

    /// A Xenstore failure in `step`.
    pub fn store(step: Step, e: xg_store::Error) -> BuildError {
        BuildError {
            step,
            kind: ErrorKind::Store(e),
        }
    }

    /// A refusal with xenguest's message text.
    pub fn refused(step: Step, message: impl Into<String>, errno: i32) -> BuildError {
        BuildError {
            step,
            kind: ErrorKind::Refused {
                message: message.into(),
                errno,
            },
        }
    }

    /// The errno of the cause, as the `[code]` of the error line.
    pub fn errno(&self) -> i32 {
        match &self.kind {
            ErrorKind::Xen(e) => e.errno().unwrap_or(libc::EIO),
            ErrorKind::Store(e) => e.errno().unwrap_or(libc::EIO),
            ErrorKind::Guest(_) => guest_errno(&self.kind),
            ErrorKind::Refused { errno, .. } => *errno,
            ErrorKind::HostFile { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The text of the `error:` line(s) xenguest writes for this failure (each without the
    /// `error:` prefix and with its trailing newline). Refusals are written verbatim, like
    /// xenguest's `xg_fatal`; everything else in the `failwith_oss_xc` format
    /// `xenguest: <fn>: [<errno>] <strerror>`.
    pub fn wire_lines(&self) -> Vec<String> {
        match &self.kind {
            ErrorKind::Refused { message, .. } | ErrorKind::HostFile { message, .. } => {
                message.lines().map(|l| format!("{l}\n")).collect()
            }
            _ => {
                let errno = self.errno();
                let mut lines = Vec::new();
                if let ErrorKind::Guest(g) = &self.kind {
                    // xenguest logs the featureset complaint before the failwith line.
                    if let Some(xg_guest::error::SetupError::Featureset(f)) =
                        g.downcast_ref::<xg_guest::error::SetupError>()
                    {
                        lines.push(format!("{f}\n"));
                    }
                }
                lines.push(format!(
                    "xenguest: {}: [{errno}] {}\n",
                    self.step,
                    strerror(errno)
                ));
                lines
            }
        }
    }
}

fn guest_errno(kind: &ErrorKind) -> i32 {
    use xg_guest::error::SetupError;
    let ErrorKind::Guest(g) = kind else {
        return libc::EIO;
    };
    if let Some(
        SetupError::Featureset(_)
        | SetupError::Elf(_)
        | SetupError::TooManyModules { .. }
        | SetupError::ModuleCmdlineTooLong { .. }
        | SetupError::TooManyVcpus { .. }
        | SetupError::GuestTypeUnsupported { .. },
    ) = g.downcast_ref::<SetupError>()
    {
        return libc::EINVAL;
    }
    // Walk the chain for an xg_ctrl error: that is where an errno lives.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(g.as_ref());
    while let Some(e) = cur {
        if let Some(x) = e.downcast_ref::<xg_ctrl::Error>() {
            return x.errno().unwrap_or(libc::EIO);
        }
        if let Some(x) = e.downcast_ref::<xg_ctrl::Errno>() {
            return x.0;
        }
        cur = e.source();
    }
    // libxenguest reports what is left (segment placement, meminit consistency) as
    // XC_OUT_OF_MEMORY.
    libc::ENOMEM
}

/// `strerror(errno)` without Rust's ` (os error N)` suffix.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failwith_format() {
        let e = BuildError::xen(
            Step::VcpuSetAffinity,
            xg_ctrl::Error::hypercall("domctl setvcpuaffinity", libc::EINVAL),
        );
        assert_eq!(
            e.wire_lines(),
            vec!["xenguest: xc_vcpu_setaffinity: [22] Invalid argument\n".to_owned()]
        );
        assert_eq!(e.to_string(), "Build step xc_vcpu_setaffinity failed");
    }

    #[test]
    fn refusal_is_verbatim() {
        let e = BuildError::refused(
            Step::SafetyCheck,
            "Populate on Demand and PCI Passthrough are mutually exclusive",
            libc::EINVAL,
        );
        assert_eq!(
            e.wire_lines(),
            vec!["Populate on Demand and PCI Passthrough are mutually exclusive\n".to_owned()]
        );
    }
}
