//! Grant-table seeding (`xc_dom_gnttab_seed` in `xg_dom_boot.c`): v1 entries granting the
//! console and xenstore backends access to their ring pages.

use xg_ctrl::{DomId, GuestMemory};

use crate::error::SetupError;

/// `GNTTAB_RESERVED_CONSOLE`.
pub const RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const RESERVED_XENSTORE: u32 = 1;
/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `sizeof(grant_entry_v1_t)`.
pub const ENTRY_V1_SIZE: u64 = 8;

/// One v1 grant entry to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantEntry {
    /// Index in the table.
    pub index: u32,
    /// `flags`.
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
    /// The granted frame (32 bits in a v1 entry).
    pub frame: u32,
}

impl GrantEntry {
    /// Byte offset in frame 0 of the table.
    pub fn offset(&self) -> u64 {
        u64::from(self.index) * ENTRY_V1_SIZE
    }

    /// The 8 bytes: `u16 flags, u16 domid, u32 frame`.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.flags.to_le_bytes());
        b[2..4].copy_from_slice(&self.domid.0.to_le_bytes());
        b[4..8].copy_from_slice(&self.frame.to_le_bytes());
        b
    }
}

/// The entries `xc_dom_gnttab_seed` writes: console then xenstore; an entry is skipped
/// when the backend is the guest itself or the gfn is `-1`.
pub fn seed_entries(
    guest: DomId,
    console_gfn: u64,
    console_domid: DomId,
    xenstore_gfn: u64,
    xenstore_domid: DomId,
) -> Vec<GrantEntry> {
    [
        (RESERVED_CONSOLE, console_domid, console_gfn),
        (RESERVED_XENSTORE, xenstore_domid, xenstore_gfn),
    ]
    .into_iter()
    .filter(|(_, backend, gfn)| *backend != guest && *gfn != u64::MAX)
    .map(|(index, domid, gfn)| GrantEntry {
        index,
        flags: GTF_PERMIT_ACCESS,
        domid,
        // A v1 entry holds 32 bits of frame; libxenguest truncates the same way.
        frame: u32::try_from(gfn & 0xFFFF_FFFF).unwrap_or(u32::MAX),
    })
    .collect()
}

/// Writes the entries into the guest's grant-table frame 0.
pub fn seed<M: GuestMemory + ?Sized>(
    mem: &M,
    guest: DomId,
    entries: &[GrantEntry],
) -> Result<(), SetupError> {
    for e in entries {
        log::debug!("d{guest} gnt[{}] -> d{} {:#x}", e.index, e.domid, e.frame);
        mem.write_grant_table(guest, e.offset(), &e.to_bytes())
            .map_err(|source| SetupError::Hypervisor {
                step: "Seeding the grant table",
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_bytes() {
        let e = seed_entries(DomId(5), 0xfefff, DomId(0), 0xfeffc, DomId(0));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].to_bytes(), [1, 0, 0, 0, 0xff, 0xef, 0x0f, 0]);
        assert_eq!(e[1].offset(), 8);
        assert_eq!(e[1].frame, 0xfeffc);
        // Backend == guest and gfn == -1 are skipped.
        assert!(seed_entries(DomId(5), 1, DomId(5), u64::MAX, DomId(0)).is_empty());
    }
}
