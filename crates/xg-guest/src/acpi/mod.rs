//! The ACPI tables xenguest builds for a PVH guest (`xenguest_dom_load_acpi`, which
//! runs Xen's libacpi `acpi_build_tables` with `table_flags = 0`, ACPI revision 5 and the
//! PVH DSDT), written by hand: RSDP, the `acpi_info` page, and FACS, DSDT, FADT 1.0,
//! FADT 5, MADT, XSDT and RSDT in libacpi's allocation order in a 16-page arena at
//! `0xFC00_1000` (16-byte minimum alignment).
//!
//! The one deliberate difference: libacpi's PVH DSDT (compiled from `mk_dsdt
//! --dm-version none` by iasl) carries the CPU-hotplug AML (`PRSC`, `_MAT` via the MADT,
//! a GPE handler). Ours declares one `Processor` object per vCPU with `_HID`/`_UID` and a
//! constant `_STA` ([`aml`]): guests enumerate CPUs from the MADT; vCPU hotplug through
//! ACPI is not offered.
//! The `acpi_tables` crate (rust-vmm) was evaluated: it builds individual tables and AML,
//! but not libacpi's layout (two FADTs, RSDT and XSDT, the `acpi_info` page at a fixed
//! address), so a small generator with explicit offsets is simpler to check.

pub mod aml;

use serde::Serialize;

use crate::layout::AcpiModule;

/// Guest address of the RSDP (ACPI module 0): 1 MiB - 64.
pub const RSDP_ADDR: u64 = 0xF_FFC0;
/// Length of the RSDP module.
pub const RSDP_MODULE_LEN: u64 = 64;
/// Guest address of the `acpi_info` page (module 1).
pub const INFO_ADDR: u64 = 0xFC00_0000;
/// Guest address of the table arena (module 2).
pub const TABLES_ADDR: u64 = 0xFC00_1000;
/// Pages of the table arena.
pub const TABLES_PAGES: u64 = 16;
/// LAPIC base address.
pub const LAPIC_BASE: u32 = 0xFEE0_0000;
/// `HVM_MAX_VCPUS`: vCPUs the tables can describe.
pub const MAX_VCPUS: u32 = 128;

const OEM_ID: &[u8; 6] = b"Xen\0\0\0";
const OEM_TABLE_ID: &[u8; 8] = b"HVM\0\0\0\0\0";
const CREATOR_ID: &[u8; 4] = b"HVML";
const HEADER_LEN: usize = 36;
const FADT10_LEN: usize = 116;
const FADT5_LEN: usize = 268;

/// Inputs of the tables (the hvm_info fields libacpi reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiConfig {
    /// `nr_vcpus` (max vCPUs).
    pub nr_vcpus: u32,
    /// vCPUs online at boot (the first `vcpus_current` bits of `vcpu_online`).
    pub vcpus_online: u32,
    /// `apic_mode` (platform/apic).
    pub apic_mode: u8,
}

/// Why the tables cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcpiError {
    /// More vCPUs than the tables describe.
    #[error("{vcpus} vCPUs requested, the ACPI tables describe at most {max}")]
    TooManyVcpus {
        /// Requested.
        vcpus: u32,
        /// Limit.
        max: u32,
    },
    /// The tables do not fit the arena.
    #[error("ACPI tables need {needed} bytes, the arena has {available}")]
    OutOfMemory {
        /// Bytes needed.
        needed: u64,
        /// Arena size.
        available: u64,
    },
}

/// The built tables and where they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcpiTables {
    /// RSDP bytes (64: the 36-byte RSDP and zero padding).
    #[serde(skip)]
    pub rsdp: Vec<u8>,
    /// The `acpi_info` page (4096 bytes).
    #[serde(skip)]
    pub info: Vec<u8>,
    /// The arena bytes, page-rounded.
    #[serde(skip)]
    pub tables: Vec<u8>,
    /// Bytes of the arena used.
    pub used: u64,
    /// Each table's signature and guest address, in allocation order.
    pub placed: Vec<(String, u64, u64)>,
}

impl AcpiTables {
    /// The three ACPI modules (address, length) in libxenguest's order.
    pub fn modules(&self) -> [AcpiModule; 3] {
        [
            AcpiModule {
                guest_addr: RSDP_ADDR,
                length: RSDP_MODULE_LEN,
            },
            AcpiModule {
                guest_addr: INFO_ADDR,
                length: 4096,
            },
            AcpiModule {
                guest_addr: TABLES_ADDR,
                length: xg_ctrl::types::conv::usize_to_u64(self.tables.len()),
            },
        ]
    }

    /// The modules with their bytes.
    pub fn module_data(&self) -> [(AcpiModule, &[u8]); 3] {
        let m = self.modules();
        [(m[0], &self.rsdp), (m[1], &self.info), (m[2], &self.tables)]
    }
}

/// Arena allocator of libacpi's `mem_ops.alloc` in xenguest (16-byte minimum alignment).
struct Arena {
    buf: Vec<u8>,
    used: usize,
    placed: Vec<(String, u64, u64)>,
}

impl Arena {
    fn alloc(&mut self, name: &str, size: usize, align: usize) -> Result<usize, AcpiError> {
        let align = align.max(16);
        let at = self.used.div_ceil(align) * align;
        let end = at + size;
        if end > self.buf.len() {
            return Err(AcpiError::OutOfMemory {
                needed: xg_ctrl::types::conv::usize_to_u64(end),
                available: xg_ctrl::types::conv::usize_to_u64(self.buf.len()),
            });
        }
        self.used = end;
        self.placed.push((
            name.to_owned(),
            v2p(at),
            xg_ctrl::types::conv::usize_to_u64(size),
        ));
        Ok(at)
    }

    fn put(&mut self, at: usize, data: &[u8]) {
        self.buf[at..at + data.len()].copy_from_slice(data);
    }
}

fn v2p(offset: usize) -> u64 {
    TABLES_ADDR + xg_ctrl::types::conv::usize_to_u64(offset)
}

fn addr32(offset: usize) -> u32 {
    // The arena lies below 4 GiB.
    u32::try_from(v2p(offset)).unwrap_or(u32::MAX)
}

/// Makes the byte sum of `t` zero by setting `t[at]`.
pub fn set_checksum(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    t[at] = 0u8.wrapping_sub(sum);
}

/// A standard table header (`struct acpi_header`) with length and revision.
fn header(sig: &[u8; 4], len: usize, revision: u8) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0..4].copy_from_slice(sig);
    h[4..8].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    h[8] = revision;
    h[10..16].copy_from_slice(OEM_ID);
    h[16..24].copy_from_slice(OEM_TABLE_ID);
    // oem_revision 0 at 24.
    h[28..32].copy_from_slice(CREATOR_ID);
    // creator_revision 0 at 32.
    h
}

fn put32(t: &mut [u8], at: usize, v: u32) {
    t[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(t: &mut [u8], at: usize, v: u64) {
    t[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A generic address structure: space, bit width, bit offset, access size 0, address.
fn gas(t: &mut [u8], at: usize, space: u8, width: u8, addr: u64) {
    t[at] = space;
    t[at + 1] = width;
    t[at + 2] = 0;
    t[at + 3] = 0;
    put64(t, at + 4, addr);
}

/// libacpi's static `Fadt` (`static_tables.c`); `pm_timer` and `buttons` say whether
/// `ACPI_HAS_PMTIMER` / `ACPI_HAS_BUTTONS` were set.
fn static_fadt(pm_timer: bool, buttons: bool) -> Vec<u8> {
    const SYSTEM_IO: u8 = 1;
    const PM1A_EVT: u32 = 0xB000;
    const PM1A_CNT: u32 = 0xB004;
    const PM_TMR: u32 = 0xB008;
    const GPE0: u32 = 0xAFE0;
    let mut f = header(b"FACP", FADT5_LEN, 5);
    f[46..48].copy_from_slice(&9u16.to_le_bytes()); // sci_int
    put32(&mut f, 56, PM1A_EVT);
    put32(&mut f, 64, PM1A_CNT);
    if pm_timer {
        put32(&mut f, 76, PM_TMR);
        f[91] = 4;
    }
    put32(&mut f, 80, GPE0);
    f[88] = 4; // pm1_evt_len
    f[89] = 2; // pm1_cnt_len
    f[92] = 4; // gpe0_blk_len
    f[96..98].copy_from_slice(&0x0FFFu16.to_le_bytes()); // p_lvl2_lat
    f[98..100].copy_from_slice(&0x0FFFu16.to_le_bytes()); // p_lvl3_lat
                                                          // PROC_C1 | WBINVD | FIX_RTC | TMR_VAL_EXT | USE_PLATFORM_CLOCK.
    let mut flags: u32 = (1 << 2) | 1 | (1 << 6) | (1 << 8) | (1 << 15);
    if !buttons {
        flags |= (1 << 4) | (1 << 5);
    }
    put32(&mut f, 112, flags);
    gas(&mut f, 116, SYSTEM_IO, 8, 0xCF9); // reset_reg
    f[128] = 6; // reset_value
    gas(&mut f, 148, SYSTEM_IO, 32, u64::from(PM1A_EVT));
    gas(&mut f, 172, SYSTEM_IO, 16, u64::from(PM1A_CNT));
    if pm_timer {
        gas(&mut f, 208, SYSTEM_IO, 32, u64::from(PM_TMR));
    }
    f
}

/// Builds the PVH tables for `cfg` (libacpi `acpi_build_tables` with xenguest's config).
pub fn build_pvh_tables(cfg: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    if cfg.nr_vcpus > MAX_VCPUS {
        return Err(AcpiError::TooManyVcpus {
            vcpus: cfg.nr_vcpus,
            max: MAX_VCPUS,
        });
    }
    let online = |i: u32| i < cfg.vcpus_online;
    let mut arena = Arena {
        buf: vec![0u8; xg_ctrl::types::conv::u64_to_usize(TABLES_PAGES * 4096)],
        used: 0,
        placed: Vec::new(),
    };
    let mut info = vec![0u8; 4096];

    // FACS.
    let facs_at = arena.alloc("FACS", 64, 64)?;
    let mut facs = vec![0u8; 64];
    facs[0..4].copy_from_slice(b"FACS");
    put32(&mut facs, 4, 64);
    facs[32] = 1; // version
    arena.put(facs_at, &facs);

    // DSDT.
    let dsdt = aml::pvh_dsdt(cfg.nr_vcpus, OEM_ID, OEM_TABLE_ID, CREATOR_ID, &online);
    let dsdt_at = arena.alloc("DSDT", dsdt.len(), 16)?;
    arena.put(dsdt_at, &dsdt);

    // FADT 1.0 for the RSDT: the static FADT before the table_flags adjustments.
    let fadt10_at = arena.alloc("FACP(1.0)", FADT10_LEN, 16)?;
    let mut f10 = static_fadt(true, true);
    f10.truncate(FADT10_LEN);
    put32(&mut f10, 4, u32::try_from(FADT10_LEN).unwrap_or(0));
    f10[8] = 1;
    put32(&mut f10, 40, addr32(dsdt_at));
    put32(&mut f10, 36, addr32(facs_at));
    set_checksum(&mut f10, 9);
    arena.put(fadt10_at, &f10);

    // FADT 5: no PM timer, no buttons, no VGA, no CMOS RTC (table_flags = 0).
    let fadt_at = arena.alloc("FACP", FADT5_LEN, 16)?;
    let mut f = static_fadt(false, false);
    put32(&mut f, 40, addr32(dsdt_at));
    put64(&mut f, 140, v2p(dsdt_at));
    put32(&mut f, 36, addr32(facs_at));
    put64(&mut f, 132, v2p(facs_at));
    let boot_arch: u16 = (1 << 2) | (1 << 5); // NO_VGA | NO_CMOS_RTC
    f[109..111].copy_from_slice(&boot_arch.to_le_bytes());
    set_checksum(&mut f, 9);
    arena.put(fadt_at, &f);

    // MADT (only with more than one vCPU or an APIC).
    let mut secondary = Vec::new();
    let nr = xg_ctrl::types::conv::u64_to_usize(u64::from(cfg.nr_vcpus));
    if cfg.nr_vcpus > 1 || cfg.apic_mode != 0 {
        // libacpi sizes the allocation for 16 overrides and an IO-APIC even without one.
        let alloc = 44 + 10 * 16 + 12 + 8 * nr;
        let madt_at = arena.alloc("APIC", alloc, 16)?;
        let len = 44 + 8 * nr;
        let mut m = header(b"APIC", len, 2);
        put32(&mut m, 36, LAPIC_BASE);
        put32(&mut m, 40, 1); // PCAT_COMPAT
        for i in 0..cfg.nr_vcpus {
            let at = 44 + 8 * xg_ctrl::types::conv::u64_to_usize(u64::from(i));
            m[at] = 0; // processor local APIC
            m[at + 1] = 8;
            m[at + 2] = u8::try_from(i).unwrap_or(u8::MAX);
            m[at + 3] = u8::try_from(2 * i).unwrap_or(u8::MAX);
            put32(&mut m, at + 4, u32::from(online(i)));
        }
        set_checksum(&mut m, 9);
        arena.put(madt_at, &m);
        info[2..4].copy_from_slice(&u16::try_from(cfg.nr_vcpus).unwrap_or(0).to_le_bytes());
        put32(&mut info, 12, addr32(madt_at + 9));
        put32(&mut info, 16, addr32(madt_at + 44));
        secondary.push(v2p(madt_at));
    }

    // XSDT and RSDT.
    let n = secondary.len();
    let xsdt_at = arena.alloc("XSDT", 44 + 8 * n, 16)?;
    let mut x = header(b"XSDT", HEADER_LEN + 8 * (n + 1), 1);
    put64(&mut x, 36, v2p(fadt_at));
    for (i, t) in secondary.iter().enumerate() {
        put64(&mut x, 44 + 8 * i, *t);
    }
    set_checksum(&mut x, 9);
    arena.put(xsdt_at, &x);
    let rsdt_at = arena.alloc("RSDT", 40 + 4 * n, 16)?;
    let mut r = header(b"RSDT", HEADER_LEN + 4 * (n + 1), 1);
    put32(&mut r, 36, addr32(fadt10_at));
    for (i, t) in secondary.iter().enumerate() {
        put32(&mut r, 40 + 4 * i, u32::try_from(*t).unwrap_or(u32::MAX));
    }
    set_checksum(&mut r, 9);
    arena.put(rsdt_at, &r);

    // RSDP.
    let mut rsdp = vec![0u8; 64];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(OEM_ID);
    rsdp[15] = 2;
    put32(&mut rsdp, 16, addr32(rsdt_at));
    put32(&mut rsdp, 20, 36);
    put64(&mut rsdp, 24, v2p(xsdt_at));
    let mut first = rsdp[..20].to_vec();
    set_checksum(&mut first, 8);
    rsdp[8] = first[8];
    let mut ext = rsdp[..36].to_vec();
    set_checksum(&mut ext, 32);
    rsdp[32] = ext[32];

    let used = xg_ctrl::types::conv::usize_to_u64(arena.used);
    let mut tables = arena.buf;
    tables.truncate(xg_ctrl::types::conv::u64_to_usize(
        used.div_ceil(4096) * 4096,
    ));
    Ok(AcpiTables {
        rsdp,
        info,
        tables,
        used,
        placed: arena.placed,
    })
}
