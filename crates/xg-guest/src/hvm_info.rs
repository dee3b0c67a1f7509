//! The hvm_info table hvmloader reads at 0x9F800 (`xen/include/public/hvm/hvm_info_table.h`):
//! built by libxenguest's `build_hvm_info` and patched by xenguest's `hvm_build_set_params`.

use xg_ctrl::{DomId, Gfn, GuestMemory, PAGE_SHIFT};

use crate::error::SetupError;

/// `HVM_INFO_PFN`.
pub const HVM_INFO_PFN: u64 = 0x9F;
/// `HVM_INFO_OFFSET`.
pub const HVM_INFO_OFFSET: u64 = 0x800;
/// `HVM_INFO_PADDR`.
pub const HVM_INFO_PADDR: u64 = (HVM_INFO_PFN << PAGE_SHIFT) + HVM_INFO_OFFSET;
/// `HVM_MAX_VCPUS`.
pub const HVM_MAX_VCPUS: u32 = 128;
/// `sizeof(struct hvm_info_table)`.
pub const HVM_INFO_SIZE: usize = 48;
/// The signature, without NUL.
pub const SIGNATURE: &[u8; 8] = b"HVM INFO";

/// `struct hvm_info_table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvmInfoTable {
    /// `signature`.
    pub signature: [u8; 8],
    /// `length` (48).
    pub length: u32,
    /// `checksum`: makes the byte sum of the table 0.
    pub checksum: u8,
    /// `apic_mode`.
    pub apic_mode: u8,
    /// `nr_vcpus`.
    pub nr_vcpus: u32,
    /// `low_mem_pgend`.
    pub low_mem_pgend: u32,
    /// `reserved_mem_pgstart`.
    pub reserved_mem_pgstart: u32,
    /// `high_mem_pgend`.
    pub high_mem_pgend: u32,
    /// `vcpu_online` bitmap.
    pub vcpu_online: [u8; 16],
}

impl HvmInfoTable {
    /// The table as libxenguest's `build_hvm_info` writes it (defaults: APIC on, one vCPU,
    /// all online), with a valid checksum.
    pub fn libxenguest(lowmem_end: u64, highmem_end: u64) -> Self {
        let mut t = HvmInfoTable {
            signature: *SIGNATURE,
            length: 48,
            checksum: 0,
            apic_mode: 1,
            nr_vcpus: 1,
            // Frame numbers fit 32 bits for any guest below 16 TiB; libxenguest truncates.
            low_mem_pgend: truncate_u32(lowmem_end >> PAGE_SHIFT),
            reserved_mem_pgstart: truncate_u32(crate::special_pages::ioreq_server_pfn(0)),
            high_mem_pgend: truncate_u32(highmem_end >> PAGE_SHIFT),
            vcpu_online: [0xFF; 16],
        };
        t.fix_checksum();
        t
    }

    /// xenguest's patch (`hvm_init_info_table`): `apic_mode`, `nr_vcpus`, vCPUs
    /// `0..vcpus_current` online, checksum fixed.
    pub fn apply_xenguest_patch(
        &mut self,
        apic_mode: u8,
        nr_vcpus: u32,
        vcpus_current: u32,
    ) -> Result<(), SetupError> {
        if vcpus_current > HVM_MAX_VCPUS {
            return Err(SetupError::TooManyVcpus {
                vcpus: vcpus_current,
                max: HVM_MAX_VCPUS,
            });
        }
        self.apic_mode = apic_mode;
        self.nr_vcpus = nr_vcpus;
        self.vcpu_online = online_bitmap(vcpus_current);
        self.fix_checksum();
        Ok(())
    }

    /// Sets `checksum` so that the bytes sum to 0 mod 256.
    pub fn fix_checksum(&mut self) {
        self.checksum = 0;
        let sum = byte_sum(&self.to_bytes());
        self.checksum = sum.wrapping_neg();
    }

    /// Whether the bytes sum to 0.
    pub fn checksum_ok(&self) -> bool {
        byte_sum(&self.to_bytes()) == 0
    }

    /// The 48 bytes of the table.
    pub fn to_bytes(&self) -> [u8; HVM_INFO_SIZE] {
        let mut b = [0u8; HVM_INFO_SIZE];
        b[0..8].copy_from_slice(&self.signature);
        b[8..12].copy_from_slice(&self.length.to_le_bytes());
        b[12] = self.checksum;
        b[13] = self.apic_mode;
        b[16..20].copy_from_slice(&self.nr_vcpus.to_le_bytes());
        b[20..24].copy_from_slice(&self.low_mem_pgend.to_le_bytes());
        b[24..28].copy_from_slice(&self.reserved_mem_pgstart.to_le_bytes());
        b[28..32].copy_from_slice(&self.high_mem_pgend.to_le_bytes());
        b[32..48].copy_from_slice(&self.vcpu_online);
        b
    }

    /// Decodes 48 bytes (no validation; see [`HvmInfoTable::checksum_ok`]).
    pub fn from_bytes(b: &[u8; HVM_INFO_SIZE]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut signature = [0u8; 8];
        signature.copy_from_slice(&b[0..8]);
        let mut vcpu_online = [0u8; 16];
        vcpu_online.copy_from_slice(&b[32..48]);
        HvmInfoTable {
            signature,
            length: u32_at(8),
            checksum: b[12],
            apic_mode: b[13],
            nr_vcpus: u32_at(16),
            low_mem_pgend: u32_at(20),
            reserved_mem_pgstart: u32_at(24),
            high_mem_pgend: u32_at(28),
            vcpu_online,
        }
    }
}

/// Bits `0..n` set, LSB first within each byte.
pub fn online_bitmap(n: u32) -> [u8; 16] {
    let mut map = [0u8; 16];
    for i in 0..n.min(HVM_MAX_VCPUS) {
        let byte = usize::try_from(i / 8).unwrap_or(0);
        map[byte] |= 1 << (i % 8);
    }
    map
}

fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

fn truncate_u32(v: u64) -> u32 {
    u32::try_from(v & 0xFFFF_FFFF).unwrap_or(u32::MAX)
}

/// Zeroes page 0x9F and writes the libxenguest table (the device-model part of
/// `bootlate_hvm`).
pub fn write_hvm_info<M: GuestMemory + ?Sized>(
    mem: &M,
    domid: DomId,
    table: &HvmInfoTable,
) -> Result<(), SetupError> {
    let step = "Writing the hvm_info table";
    mem.clear_guest_pages(domid, &[Gfn(HVM_INFO_PFN)])
        .map_err(|source| SetupError::Hypervisor { step, source })?;
    mem.write_guest(domid, HVM_INFO_PADDR, &table.to_bytes())
        .map_err(|source| SetupError::Hypervisor { step, source })
}

/// Reads the table back from guest memory.
pub fn read_hvm_info<M: GuestMemory + ?Sized>(
    mem: &M,
    domid: DomId,
) -> Result<HvmInfoTable, SetupError> {
    let mut b = [0u8; HVM_INFO_SIZE];
    mem.read_guest(domid, HVM_INFO_PADDR, &mut b)
        .map_err(|source| SetupError::Hypervisor {
            step: "Reading the hvm_info table",
            source,
        })?;
    Ok(HvmInfoTable::from_bytes(&b))
}

/// xenguest's `hvm_build_set_params` hvm_info step: read the table from guest memory,
/// patch `apic_mode`, `nr_vcpus`, `vcpu_online` and the checksum, write it back.
/// Returns the table as written.
pub fn patch_hvm_info<M: GuestMemory + ?Sized>(
    mem: &M,
    domid: DomId,
    apic_mode: u8,
    nr_vcpus: u32,
    vcpus_current: u32,
) -> Result<HvmInfoTable, SetupError> {
    let mut t = read_hvm_info(mem, domid)?;
    t.apply_xenguest_patch(apic_mode, nr_vcpus, vcpus_current)?;
    mem.write_guest(domid, HVM_INFO_PADDR, &t.to_bytes())
        .map_err(|source| SetupError::Hypervisor {
            step: "Patching the hvm_info table",
            source,
        })?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libxenguest_defaults_t3() {
        // Spec test vector T3: M=4096 -> lowmem_end 0xF0000000, highmem_end 0x110000000.
        let t = HvmInfoTable::libxenguest(0xF000_0000, 0x1_1000_0000);
        assert_eq!(t.low_mem_pgend, 0xF0000);
        assert_eq!(t.high_mem_pgend, 0x110000);
        assert_eq!(t.reserved_mem_pgstart, 0xFEFF0);
        assert_eq!((t.apic_mode, t.nr_vcpus), (1, 1));
        assert!(t.checksum_ok());
        assert_eq!(&t.to_bytes()[..8], b"HVM INFO");
        assert_eq!(t.to_bytes()[8], 48);
    }

    #[test]
    fn xenguest_patch_two_online() {
        let mut t = HvmInfoTable::libxenguest(0x4000_0000, 0x1_0000_0000);
        t.apply_xenguest_patch(1, 4, 2).unwrap();
        assert_eq!(t.vcpu_online[0], 0x03);
        assert!(t.vcpu_online[1..].iter().all(|b| *b == 0));
        assert_eq!(t.nr_vcpus, 4);
        assert!(t.checksum_ok());
        assert_eq!(HvmInfoTable::from_bytes(&t.to_bytes()), t);
    }

    #[test]
    fn bitmap_edges() {
        assert_eq!(online_bitmap(0), [0; 16]);
        assert_eq!(online_bitmap(9)[..2], [0xFF, 0x01]);
        assert_eq!(online_bitmap(128), [0xFF; 16]);
        let mut t = HvmInfoTable::libxenguest(0, 0);
        assert!(matches!(
            t.apply_xenguest_patch(0, 129, 129),
            Err(SetupError::TooManyVcpus { vcpus: 129, .. })
        ));
    }
}
