//! Errors of `meminit_hvm`.

/// Why guest memory could not be populated. Every variant was preceded by the claim
/// release, as in libxenguest.
#[derive(Debug, thiserror::Error)]
pub enum MeminitError {
    /// vNUMA ranges were given for a populate-on-demand guest.
    #[error("Cannot enable vNUMA and PoD at the same time")]
    VnumaWithPod,
    /// The memory ranges do not add up to the guest size.
    #[error("vNUMA memory pages mismatch: ranges hold {ranges_pages:#x} pages, guest has {total_pages:#x}")]
    PagesMismatch {
        /// Pages in the ranges.
        ranges_pages: u64,
        /// `total_pages`.
        total_pages: u64,
    },
    /// A range names a vnode that `vnode_to_pnode` does not map.
    #[error("Memory range {index} is on vnode {vnode}, but only {nr_vnodes} vnodes are mapped")]
    UnknownVnode {
        /// Index of the range.
        index: usize,
        /// Its vnode.
        vnode: u32,
        /// Entries in `vnode_to_pnode`.
        nr_vnodes: usize,
    },
    /// With a device model, gfns 0..0xa0 must lie in the memory ranges.
    #[error("Low memory below gfn 0xa0 is not covered by the memory ranges")]
    LowMemoryUncovered,
    /// `XENMEM_claim_pages` failed.
    #[error("Could not claim {pages} pages for the HVM guest")]
    Claim {
        /// Pages asked for.
        pages: u64,
        /// The hypercall error.
        #[source]
        source: xg_ctrl::Error,
    },
    /// `XENMEM_set_pod_target` failed.
    #[error("Could not set the PoD target to {pages} pages")]
    PodTarget {
        /// Target asked for.
        pages: u64,
        /// The hypercall error.
        #[source]
        source: xg_ctrl::Error,
    },
    /// Populating gfns 0..0xa0 failed.
    #[error("Could not populate low memory below gfn 0xa0")]
    LowMemory {
        /// The hypercall error (EBUSY when short).
        #[source]
        source: xg_ctrl::Error,
    },
    /// A 4 KiB populate came back short or failed.
    #[error("Could not allocate {count} pages at gfn {gfn:#x} for the HVM guest")]
    Populate {
        /// First gfn of the failing call.
        gfn: u64,
        /// Pages in the failing call.
        count: u64,
        /// The hypercall error (EBUSY when short).
        #[source]
        source: xg_ctrl::Error,
    },
}

impl MeminitError {
    /// The errno libxenguest would leave: the failing call's, or `None` for the
    /// consistency errors (errno unchanged there).
    pub fn errno(&self) -> Option<i32> {
        match self {
            MeminitError::Claim { source, .. }
            | MeminitError::PodTarget { source, .. }
            | MeminitError::LowMemory { source }
            | MeminitError::Populate { source, .. } => source.errno(),
            MeminitError::VnumaWithPod
            | MeminitError::PagesMismatch { .. }
            | MeminitError::UnknownVnode { .. }
            | MeminitError::LowMemoryUncovered => None,
        }
    }
}
