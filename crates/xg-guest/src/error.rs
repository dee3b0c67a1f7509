//! The error type of guest setup (everything after memory population).

use crate::cpuid::FeaturesetError;
use crate::elf::ElfError;
use crate::segments::SegmentError;

/// Why guest setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A hypervisor operation of a named step failed.
    #[error("{step} failed")]
    Hypervisor {
        /// The step, e.g. `"Allocating special pages"`.
        step: &'static str,
        /// The hypercall-layer error (errno inside).
        #[source]
        source: xg_ctrl::Error,
    },
    /// Xen does not offer the guest type (`xc_dom_compat_check`).
    #[error("Guest type {guest_type} not supported by this Xen (capabilities '{capabilities}')")]
    GuestTypeUnsupported {
        /// Required type.
        guest_type: String,
        /// Xen's capabilities string.
        capabilities: String,
    },
    /// The firmware image is unusable.
    #[error("Invalid firmware image")]
    Elf(#[from] ElfError),
    /// A segment could not be placed in guest memory.
    #[error("Placing a segment in guest memory failed")]
    Segment(#[from] SegmentError),
    /// A segment would end inside the MMIO hole (libxenguest: "would be loaded above 4GB").
    #[error("{name} ends at {end:#x}, inside the MMIO hole starting at {mmio_start:#x}")]
    InMmioHole {
        /// Segment name.
        name: String,
        /// End address.
        end: u64,
        /// `mmio_start`.
        mmio_start: u64,
    },
    /// More modules than the start info can list.
    #[error("{count} modules to list, at most {max} fit the start info")]
    TooManyModules {
        /// Modules with data.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A module command line does not fit its slot.
    #[error("Module command line of {len} bytes is longer than {max}")]
    ModuleCmdlineTooLong {
        /// Length.
        len: usize,
        /// Limit.
        max: u64,
    },
    /// More vCPUs than a table or record can describe.
    #[error("{vcpus} vCPUs requested, at most {max} supported")]
    TooManyVcpus {
        /// Requested.
        vcpus: u32,
        /// Limit.
        max: u32,
    },
    /// The HVM context blob from Xen is not usable.
    #[error("Malformed HVM context: {detail}")]
    HvmContext {
        /// What was wrong.
        detail: String,
    },
    /// `platform/featureset` could not be used.
    #[error("Invalid CPUID featureset")]
    Featureset(#[from] FeaturesetError),
}

/// Result alias of guest setup.
pub type Result<T, E = SetupError> = std::result::Result<T, E>;
