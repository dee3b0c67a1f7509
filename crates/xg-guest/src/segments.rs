//! The domain builder's segment bump allocator (`xc_dom_alloc_segment`,
//! `xc_dom_alloc_pad`, `xc_dom_chk_alloc_pages` in `xg_dom_core.c`).
//!
//! For HVM guests virtual and physical addresses coincide and RAM starts at 0, so the
//! allocator is a cursor over guest frames. A segment with an explicit start first pads the
//! cursor up to it; a segment with start 0 goes at the cursor. Padding and segments both
//! count against the guest's `total_pages`. No hypercall here: the executor clears the
//! frames of each segment when it is placed, as libxenguest's mapping does.

use std::fmt;

use xg_ctrl::{Gfn, PAGE_SHIFT, PAGE_SIZE};

/// Why a segment could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// An explicit start is not page-aligned.
    #[error("Segment boundary {boundary:#x} is not page-aligned")]
    UnalignedBoundary {
        /// The requested start.
        boundary: u64,
    },
    /// An explicit start lies below what is already allocated.
    #[error("Segment boundary {boundary:#x} is below the allocation cursor {cursor:#x}")]
    BoundaryTooLow {
        /// The requested start.
        boundary: u64,
        /// Current end of allocations.
        cursor: u64,
    },
    /// Not enough guest pages left.
    #[error("Segment {name} too large ({pages:#x} pages, {used:#x} of {total_pages:#x} used)")]
    TooLarge {
        /// Segment name.
        name: String,
        /// Pages asked for.
        pages: u64,
        /// Guest pages.
        total_pages: u64,
        /// Pages already allocated (including padding).
        used: u64,
    },
}

/// A placed segment (`struct xc_dom_seg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Name, as libxenguest logs it.
    pub name: String,
    /// First guest physical address.
    pub vstart: u64,
    /// End address (`vstart + size`, not page-rounded).
    pub vend: u64,
    /// First frame.
    pub pfn: u64,
    /// Frames covered.
    pub pages: u64,
}

impl Segment {
    /// The frames of this segment.
    pub fn gfns(&self) -> Vec<Gfn> {
        (self.pfn..self.pfn + self.pages).map(Gfn).collect()
    }

    /// Guest physical address of the first frame.
    pub fn paddr(&self) -> u64 {
        self.pfn << PAGE_SHIFT
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:#010x} -> {:#010x} (pfn {:#x} + {:#x} pages)",
            self.name, self.vstart, self.vend, self.pfn, self.pages
        )
    }
}

/// The cursor over guest frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentAllocator {
    total_pages: u64,
    pfn_alloc_end: u64,
}

impl SegmentAllocator {
    /// An allocator for a guest of `total_pages` pages with RAM from frame 0.
    pub fn new(total_pages: u64) -> Self {
        SegmentAllocator {
            total_pages,
            pfn_alloc_end: 0,
        }
    }

    /// First free frame.
    pub fn cursor_pfn(&self) -> u64 {
        self.pfn_alloc_end
    }

    fn take(&mut self, name: &str, pages: u64) -> Result<(), SegmentError> {
        // Same three tests as libxenguest; they cannot overflow.
        if pages > self.total_pages
            || self.pfn_alloc_end > self.total_pages
            || pages > self.total_pages - self.pfn_alloc_end
        {
            return Err(SegmentError::TooLarge {
                name: name.to_owned(),
                pages,
                total_pages: self.total_pages,
                used: self.pfn_alloc_end,
            });
        }
        self.pfn_alloc_end += pages;
        Ok(())
    }

    /// Places a segment of `size` bytes named `name`, at `start` if non-zero (padding up to
    /// it), else at the cursor.
    pub fn alloc(&mut self, name: &str, start: u64, size: u64) -> Result<Segment, SegmentError> {
        if start != 0 {
            if !start.is_multiple_of(PAGE_SIZE) {
                return Err(SegmentError::UnalignedBoundary { boundary: start });
            }
            let cursor = self.pfn_alloc_end << PAGE_SHIFT;
            if start < cursor {
                return Err(SegmentError::BoundaryTooLow {
                    boundary: start,
                    cursor,
                });
            }
            self.take("padding", (start - cursor) / PAGE_SIZE)?;
        }
        let pages = size.div_ceil(PAGE_SIZE);
        let pfn = self.pfn_alloc_end;
        let vstart = pfn << PAGE_SHIFT;
        self.take(name, pages)?;
        log::debug!(
            "segment {name}: {vstart:#x} -> {:#x} (pfn {pfn:#x} + {pages:#x} pages)",
            vstart + size
        );
        Ok(Segment {
            name: name.to_owned(),
            vstart,
            vend: vstart + size,
            pfn,
            pages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_start_pads_then_cursor_follows() {
        let mut a = SegmentAllocator::new(0x1000);
        let k = a.alloc("kernel", 0x10_0000, 0x2345).unwrap();
        assert_eq!(
            (k.pfn, k.pages, k.vstart, k.vend),
            (0x100, 3, 0x10_0000, 0x10_2345)
        );
        let m = a.alloc("module0", 0, 1).unwrap();
        assert_eq!((m.pfn, m.pages), (0x103, 1));
        assert_eq!(a.cursor_pfn(), 0x104);
    }

    #[test]
    fn errors() {
        let mut a = SegmentAllocator::new(0x200);
        assert_eq!(
            a.alloc("k", 0x10_0800, 1),
            Err(SegmentError::UnalignedBoundary {
                boundary: 0x10_0800
            })
        );
        a.alloc("k", 0x10_0000, 0x1000).unwrap();
        assert!(matches!(
            a.alloc("x", 0x1000, 1),
            Err(SegmentError::BoundaryTooLow { .. })
        ));
        assert!(matches!(
            a.alloc("big", 0, 0x100 * PAGE_SIZE),
            Err(SegmentError::TooLarge {
                pages: 0x100,
                used: 0x101,
                ..
            })
        ));
        // A zero-byte segment takes no page.
        assert_eq!(a.alloc("empty", 0, 0).unwrap().pages, 0);
    }
}
