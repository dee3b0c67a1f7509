//! Newtypes for the identities and quantities the hypercall layer deals in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Xen domain id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_SELF`: the calling domain.
    pub const SELF: DomId = DomId(0x7FF0);
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A guest frame number (for HVM/PVH guests the same as a guest PFN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Gfn(pub u64);

/// Guest PFNs and GFNs coincide for auto-translated guests.
pub type Pfn = Gfn;

impl Gfn {
    /// Guest physical address of the first byte of this frame.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame containing guest physical address `addr`.
    pub const fn containing(addr: u64) -> Gfn {
        Gfn(addr >> PAGE_SHIFT)
    }
}

impl fmt::Display for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A machine frame number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mfn(pub u64);

impl fmt::Display for Mfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// log2 of the x86 page size.
pub const PAGE_SHIFT: u32 = 12;
/// The x86 page size in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// The order of an extent: it covers `2^order` pages. Xen's x86 `MAX_ORDER` is 18.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageOrder(u8);

impl PageOrder {
    /// A 4 KiB page.
    pub const ORDER_4K: PageOrder = PageOrder(0);
    /// A 2 MiB superpage.
    pub const ORDER_2M: PageOrder = PageOrder(9);
    /// A 1 GiB superpage.
    pub const ORDER_1G: PageOrder = PageOrder(18);
    /// Xen's largest buddy order on x86.
    pub const MAX: PageOrder = PageOrder(18);

    /// An order, if it is within `0..=MAX`.
    pub const fn new(order: u8) -> Option<PageOrder> {
        if order <= Self::MAX.0 {
            Some(PageOrder(order))
        } else {
            None
        }
    }

    /// The raw order.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Pages in one extent of this order.
    pub const fn pages(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for PageOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `XENMEMF_*` flags of a memory reservation (`mem_flags` of `xen_memory_reservation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemFlags(pub u32);

impl MemFlags {
    /// `XENMEMF_populate_on_demand`.
    pub const POPULATE_ON_DEMAND: u32 = 1 << 16;
    /// `XENMEMF_exact_node_request`.
    pub const EXACT_NODE_REQUEST: u32 = 1 << 17;
    /// `XENMEMF_vnode`.
    pub const VNODE: u32 = 1 << 18;

    /// No flags.
    pub const NONE: MemFlags = MemFlags(0);

    /// `XENMEMF_node(n)`: prefer physical node `n`.
    pub const fn node(n: u32) -> MemFlags {
        MemFlags(((n + 1) & 0xFF) << 8)
    }

    /// `XENMEMF_exact_node(n)`: only physical node `n`.
    pub const fn exact_node(n: u32) -> MemFlags {
        MemFlags(Self::node(n).0 | Self::EXACT_NODE_REQUEST)
    }

    /// These flags plus `XENMEMF_populate_on_demand`.
    pub const fn with_pod(self) -> MemFlags {
        MemFlags(self.0 | Self::POPULATE_ON_DEMAND)
    }

    /// Union of two flag sets.
    pub const fn union(self, other: MemFlags) -> MemFlags {
        MemFlags(self.0 | other.0)
    }

    /// Whether populate-on-demand is requested.
    pub const fn is_pod(self) -> bool {
        self.0 & Self::POPULATE_ON_DEMAND != 0
    }

    /// Whether an exact node is requested.
    pub const fn is_exact(self) -> bool {
        self.0 & Self::EXACT_NODE_REQUEST != 0
    }

    /// The requested physical node, if any (`XENMEMF_get_node`).
    pub const fn get_node(self) -> Option<u32> {
        let n = (self.0 >> 8) & 0xFF;
        if n == 0 {
            None
        } else {
            Some(n - 1)
        }
    }

    /// `XENMEMF_address_bits`, 0 when unrestricted.
    pub const fn address_bits(self) -> u32 {
        self.0 & 0xFF
    }
}

/// An errno value as a number, kept `Copy + Eq` so tests can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno left by the last failed libc call on this thread.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The raw number.
    pub const fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = std::io::Error::from_raw_os_error(self.0);
        // io::Error renders "<text> (os error N)", which keeps the number visible.
        write!(f, "{io}")
    }
}

impl std::error::Error for Errno {}

/// Conversions between integer widths that the cast lints would otherwise flag.
pub mod conv {
    /// `u64` to `usize`; lossless on the 64-bit targets this crate builds for.
    pub const fn u64_to_usize(v: u64) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        {
            v as usize
        }
    }

    /// `usize` to `u64`; lossless on 64-bit targets.
    pub const fn usize_to_u64(v: usize) -> u64 {
        v as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memflags_match_xen_macros() {
        assert_eq!(MemFlags::exact_node(0).0, (1 << 8) | (1 << 17));
        assert_eq!(MemFlags::exact_node(1).0, (2 << 8) | (1 << 17));
        assert_eq!(MemFlags::exact_node(3).get_node(), Some(3));
        assert_eq!(MemFlags::NONE.get_node(), None);
        assert!(MemFlags::NONE.with_pod().is_pod());
    }

    #[test]
    fn page_order_bounds() {
        assert_eq!(PageOrder::new(18), Some(PageOrder::ORDER_1G));
        assert_eq!(PageOrder::new(19), None);
        assert_eq!(PageOrder::ORDER_2M.pages(), 512);
    }
}
