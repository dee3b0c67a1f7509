//! Errors of the layout arithmetic.

/// Why a memory layout cannot be built. The messages of the fatal xenguest paths are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// More than [`super::MAX_RMRR_DEVICES`] devices carry reserved memory regions.
    #[error("Hit limit of {limit} RMRR devices for domain")]
    TooManyRmrrDevices {
        /// The limit.
        limit: usize,
    },
    /// The RMRR entries fill the e820 (`E820MAX - 2` entries).
    #[error("Too many E820 reserved entries for domain")]
    TooManyE820Entries,
    /// No 16 MiB slot in the MMIO hole is free for the vGPU VRAM reservation.
    #[error("Failed to allocate VRAM reserved region")]
    VramReservedRegion,
    /// The guest has no memory.
    #[error("Guest memory size must not be zero")]
    ZeroMemory,
    /// The guest is larger than the arithmetic can express.
    #[error("Guest memory size {mib} MiB is too large")]
    TooLarge {
        /// The requested size.
        mib: u64,
    },
    /// An RMRR region lies below 1 MiB and would leave the low RAM entry negative.
    #[error("RMRR at {addr:#x} overlaps the first MiB of RAM")]
    RmrrBelowLowRam {
        /// The start address of the region.
        addr: u64,
    },
    /// A vNUMA description does not fit the guest.
    #[error("Invalid vNUMA layout: {detail}")]
    Vnuma {
        /// What is wrong.
        detail: String,
    },
}
