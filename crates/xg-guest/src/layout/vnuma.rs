//! Memory ranges per virtual NUMA node (`xen_vmemrange_t`).

use super::{LayoutError, FOUR_GIB, MIB};

/// `XC_NUMA_NO_NODE`: a vnode not bound to a physical node.
pub const NUMA_NO_NODE: u32 = u32::MAX;

/// One guest memory range of a virtual node (`xen_vmemrange_t`; byte addresses, end
/// exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmemRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Flags (always 0).
    pub flags: u32,
    /// The virtual node.
    pub nid: u32,
}

/// The ranges `meminit_hvm` uses when the caller gives none: `[0, lowmem_end)` and, when
/// there is high RAM, `[4 GiB, highmem_end)`, both on vnode 0.
pub fn default_vmemranges(lowmem_end: u64, highmem_end: u64) -> Vec<VmemRange> {
    let mut ranges = vec![VmemRange {
        start: 0,
        end: lowmem_end,
        flags: 0,
        nid: 0,
    }];
    if highmem_end > FOUR_GIB {
        ranges.push(VmemRange {
            start: FOUR_GIB,
            end: highmem_end,
            flags: 0,
            nid: 0,
        });
    }
    ranges
}

/// Splits `mem_mib` evenly over `vnodes` nodes in whole MiB; the last node takes the
/// remainder (as the oracle's `--vnodes`).
pub fn even_vnode_split_mib(mem_mib: u64, vnodes: u32) -> Vec<u64> {
    let k = u64::from(vnodes);
    if k == 0 {
        return Vec::new();
    }
    (0..k)
        .map(|i| mem_mib / k + if i == k - 1 { mem_mib % k } else { 0 })
        .collect()
}

/// Builds vmemranges like `libxl__vnuma_build_vmemrange_hvm`: the nodes' memory is laid
/// out in order from address 0, skipping the hole `[min(lowmem_end, mmio_start),
/// max(mmio_start + mmio_size, 4 GiB))`; a node that straddles the hole gets two ranges.
pub fn vnuma_vmemranges(
    node_mib: &[u64],
    lowmem_end: u64,
    mmio_start: u64,
    mmio_size: u64,
) -> Result<Vec<VmemRange>, LayoutError> {
    let hole_start = lowmem_end.min(mmio_start);
    let hole_end = mmio_start.saturating_add(mmio_size).max(FOUR_GIB);
    let mut next = 0u64;
    let mut ranges = Vec::new();
    for (nid, &mib) in node_mib.iter().enumerate() {
        let nid = u32::try_from(nid).map_err(|_| LayoutError::Vnuma {
            detail: "too many vnodes".into(),
        })?;
        let mut remaining = mib.checked_mul(MIB).ok_or(LayoutError::Vnuma {
            detail: format!("vnode {nid} is too large"),
        })?;
        while remaining > 0 {
            let mut count = remaining;
            if next >= hole_start && next < hole_end {
                next = hole_end;
            }
            if next < hole_start && next.saturating_add(remaining) >= hole_start {
                count = hole_start - next;
            }
            let end = next.checked_add(count).ok_or(LayoutError::Vnuma {
                detail: "ranges exceed the address space".into(),
            })?;
            ranges.push(VmemRange {
                start: next,
                end,
                flags: 0,
                nid,
            });
            remaining -= count;
            next = end;
        }
    }
    Ok(ranges)
}
