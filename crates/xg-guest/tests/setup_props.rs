//! Properties of the pure guest-setup builders over random inputs.

use proptest::prelude::*;
use xg_ctrl::E820Entry;
use xg_guest::hvm_info::HvmInfoTable;
use xg_guest::segments::{SegmentAllocator, SegmentError};
use xg_guest::start_info::{build_start_info, ListedModule, StartInfoParams, START_MAGIC};

fn u64_at(b: &[u8], o: u64) -> u64 {
    let o = usize::try_from(o).unwrap();
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hvm_info_checksum_always_balances(
        low in any::<u64>(), high in any::<u64>(),
        apic in any::<u8>(), nr in any::<u32>(), current in 0u32..=128,
    ) {
        let mut t = HvmInfoTable::libxenguest(low, high);
        prop_assert!(t.checksum_ok());
        t.apply_xenguest_patch(apic, nr, current).unwrap();
        prop_assert!(t.checksum_ok());
        prop_assert_eq!(HvmInfoTable::from_bytes(&t.to_bytes()), t);
        let online: u32 = t.vcpu_online.iter().map(|b| b.count_ones()).sum();
        prop_assert_eq!(online, current);
    }

    #[test]
    fn segments_never_overlap_or_overflow(
        total in 0u64..4096,
        reqs in proptest::collection::vec((0u64..64, 0u64..200_000), 1..12),
    ) {
        let mut a = SegmentAllocator::new(total);
        let mut placed: Vec<(u64, u64)> = Vec::new();
        for (i, (start_page, size)) in reqs.into_iter().enumerate() {
            // Every other request asks for an explicit start.
            let start = if i % 2 == 0 { start_page << 12 } else { 0 };
            match a.alloc("s", start, size) {
                Ok(s) => {
                    prop_assert!(s.pfn + s.pages <= total);
                    prop_assert_eq!(s.pages, size.div_ceil(4096));
                    prop_assert!(start == 0 || s.vstart == start);
                    for (p, n) in &placed {
                        prop_assert!(s.pfn >= p + n || s.pfn + s.pages <= *p);
                    }
                    placed.push((s.pfn, s.pages));
                }
                Err(SegmentError::TooLarge { .. } | SegmentError::BoundaryTooLow { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
            prop_assert!(a.cursor_pfn() <= total);
        }
    }

    #[test]
    fn start_info_fields_point_inside_the_segment(
        paddr_page in 1u64..0x10_0000,
        dm in any::<bool>(),
        cmdline in proptest::option::of("[a-z =/]{0,100}"),
        mods in proptest::collection::vec((any::<u32>(), 0u64..1 << 20, "[a-z]{0,20}"), 0..3),
        memmap in proptest::collection::vec((any::<u64>(), any::<u64>(), 1u32..5), 0..8),
    ) {
        let paddr = paddr_page << 12;
        let p = StartInfoParams {
            paddr,
            device_model: dm,
            cmdline: cmdline.clone(),
            rsdp_paddr: 0,
            modules: mods.iter().map(|(a, s, c)| ListedModule {
                paddr: u64::from(*a),
                size: *s,
                cmdline: Some(c.clone()),
            }).collect(),
            memmap: memmap.iter().map(|(addr, size, kind)| E820Entry { addr: *addr, size: *size, kind: *kind }).collect(),
        };
        let si = build_start_info(&p).unwrap();
        let b = &si.bytes;
        let end = paddr + u64::try_from(b.len()).unwrap();
        prop_assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), START_MAGIC);
        let listed = mods.iter().filter(|m| m.1 != 0).count();
        prop_assert_eq!(si.nr_modules as usize, listed);
        for i in 0..u64::from(si.nr_modules) {
            let e = si.modlist_paddr - paddr + 32 * i;
            let cmd = u64_at(b, e + 16);
            prop_assert!(cmd >= paddr && cmd + 1024 <= end);
        }
        let cl = u64_at(b, 24);
        prop_assert_eq!(cl != 0, !dm && cmdline.is_some());
        for (i, e) in (0u64..).zip(&p.memmap) {
            let at = si.memmap_paddr - paddr + 24 * i;
            prop_assert_eq!(u64_at(b, at), e.addr);
            prop_assert_eq!(u64_at(b, at + 8), e.size);
        }
        prop_assert_eq!(si.memmap_paddr + 24 * p.memmap.len() as u64, end);
    }
}
