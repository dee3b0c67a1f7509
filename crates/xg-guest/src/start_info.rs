//! The HVM start info handed to the firmware in `rbx` (`public/arch-x86/hvm/start_info.h`),
//! laid out as libxenguest's `bootlate_hvm` does:
//!
//! ```text
//! [hvm_start_info 56][cmdline, PVH only, rounded to 8][modlist x2][module cmdlines 2 x 1024][memmap]
//! ```

use xg_ctrl::E820Entry;

use crate::error::SetupError;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_MAGIC: u32 = 0x336e_c578;
/// `sizeof(struct hvm_start_info)`.
pub const START_INFO_SIZE: u64 = 56;
/// `sizeof(struct hvm_modlist_entry)`.
pub const MODLIST_ENTRY_SIZE: u64 = 32;
/// `sizeof(struct hvm_memmap_table_entry)`.
pub const MEMMAP_ENTRY_SIZE: u64 = 24;
/// `HVMLOADER_MODULE_MAX_COUNT`.
pub const MAX_MODULES: usize = 2;
/// `HVMLOADER_MODULE_CMDLINE_SIZE` (= `MAX_GUEST_CMDLINE`).
pub const MODULE_CMDLINE_SIZE: u64 = 1024;

/// A module as listed to the firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModule {
    /// Guest physical address.
    pub paddr: u64,
    /// Length in bytes; a zero-length module is not listed.
    pub size: u64,
    /// Module command line (its name for hvmloader, e.g. `"firmware"`, `"ipxe"`).
    pub cmdline: Option<String>,
}

/// What goes into the start info.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartInfoParams {
    /// Guest physical address of the start-info segment.
    pub paddr: u64,
    /// Guest with a device model (HVM); without one (PVH) the kernel command line and
    /// RSDP are included.
    pub device_model: bool,
    /// Kernel command line (PVH only).
    pub cmdline: Option<String>,
    /// RSDP address (PVH only, ACPI module 0).
    pub rsdp_paddr: u64,
    /// Modules in list order (HVM: system firmware first, then the builder's modules).
    pub modules: Vec<ListedModule>,
    /// `dom->e820` (empty for xenguest builds, which set the map with a hypercall).
    pub memmap: Vec<E820Entry>,
}

/// `ROUNDUP(strlen(cmdline) + 1, 3)` for a PVH guest, else 0.
pub fn cmdline_size(device_model: bool, cmdline: Option<&str>) -> u64 {
    match (device_model, cmdline) {
        (false, Some(c)) => (xg_ctrl::types::conv::usize_to_u64(c.len()) + 1).div_ceil(8) * 8,
        _ => 0,
    }
}

/// Bytes reserved for the start-info segment (`alloc_magic_pages_hvm`).
pub fn start_info_size(device_model: bool, cmdline: Option<&str>, memmap_entries: usize) -> u64 {
    START_INFO_SIZE
        + MODLIST_ENTRY_SIZE * 2
        + MODULE_CMDLINE_SIZE * 2
        + MEMMAP_ENTRY_SIZE * xg_ctrl::types::conv::usize_to_u64(memmap_entries)
        + cmdline_size(device_model, cmdline)
}

/// The built start info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    /// Where it goes.
    pub paddr: u64,
    /// Its bytes (`start_info_size` long).
    pub bytes: Vec<u8>,
    /// Modules listed.
    pub nr_modules: u32,
    /// `modlist_paddr` (0 without modules).
    pub modlist_paddr: u64,
    /// `memmap_paddr`.
    pub memmap_paddr: u64,
}

/// Builds the start info bytes (`bootlate_hvm` + `add_module_to_list`).
pub fn build_start_info(p: &StartInfoParams) -> Result<StartInfo, SetupError> {
    let cl_size = cmdline_size(p.device_model, p.cmdline.as_deref());
    let size = start_info_size(p.device_model, p.cmdline.as_deref(), p.memmap.len());
    let mut b = vec![0u8; usize_of(size)];

    let mut cmdline_paddr = 0;
    let mut rsdp_paddr = 0;
    if !p.device_model {
        if let Some(c) = &p.cmdline {
            put_bytes(&mut b, START_INFO_SIZE, c.as_bytes());
            cmdline_paddr = p.paddr + START_INFO_SIZE;
        }
        rsdp_paddr = p.rsdp_paddr;
    }

    let modlist_off = START_INFO_SIZE + cl_size;
    let mod_cmdlines_off = modlist_off + MODLIST_ENTRY_SIZE * 2;
    let listed: Vec<&ListedModule> = p.modules.iter().filter(|m| m.size != 0).collect();
    if listed.len() > MAX_MODULES {
        return Err(SetupError::TooManyModules {
            count: listed.len(),
            max: MAX_MODULES,
        });
    }
    let mut index = 0u64;
    for m in &listed {
        let entry = modlist_off + MODLIST_ENTRY_SIZE * index;
        put_u64(&mut b, entry, m.paddr);
        put_u64(&mut b, entry + 8, m.size);
        if let Some(c) = &m.cmdline {
            if xg_ctrl::types::conv::usize_to_u64(c.len()) >= MODULE_CMDLINE_SIZE {
                return Err(SetupError::ModuleCmdlineTooLong {
                    len: c.len(),
                    max: MODULE_CMDLINE_SIZE - 1,
                });
            }
            let at = mod_cmdlines_off + MODULE_CMDLINE_SIZE * index;
            put_bytes(&mut b, at, c.as_bytes());
            put_u64(&mut b, entry + 16, p.paddr + at);
        }
        index += 1;
    }
    let modlist_paddr = if index > 0 { p.paddr + modlist_off } else { 0 };

    let memmap_off = mod_cmdlines_off + MODULE_CMDLINE_SIZE * 2;
    let memmap_paddr = p.paddr + memmap_off;
    for (i, e) in (0u64..).zip(&p.memmap) {
        let at = memmap_off + MEMMAP_ENTRY_SIZE * i;
        put_u64(&mut b, at, e.addr);
        put_u64(&mut b, at + 8, e.size);
        put_u32(&mut b, at + 16, e.kind);
    }

    let nr_modules = u32::try_from(index).unwrap_or(u32::MAX);
    put_u32(&mut b, 0, START_MAGIC);
    put_u32(&mut b, 4, 1); // version
    put_u32(&mut b, 8, 0); // flags
    put_u32(&mut b, 12, nr_modules);
    put_u64(&mut b, 16, modlist_paddr);
    put_u64(&mut b, 24, cmdline_paddr);
    put_u64(&mut b, 32, rsdp_paddr);
    put_u64(&mut b, 40, memmap_paddr);
    put_u32(
        &mut b,
        48,
        u32::try_from(p.memmap.len()).unwrap_or(u32::MAX),
    );

    Ok(StartInfo {
        paddr: p.paddr,
        bytes: b,
        nr_modules,
        modlist_paddr,
        memmap_paddr,
    })
}

fn usize_of(v: u64) -> usize {
    xg_ctrl::types::conv::u64_to_usize(v)
}

fn put_bytes(b: &mut [u8], at: u64, data: &[u8]) {
    let at = usize_of(at);
    b[at..at + data.len()].copy_from_slice(data);
}

fn put_u64(b: &mut [u8], at: u64, v: u64) {
    put_bytes(b, at, &v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: u64, v: u32) {
    put_bytes(b, at, &v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn hvm_with_firmware_and_ipxe() {
        let si = build_start_info(&StartInfoParams {
            paddr: 0x1000,
            device_model: true,
            cmdline: Some("ignored for HVM".into()),
            rsdp_paddr: 0xdead,
            modules: vec![
                ListedModule {
                    paddr: 0x20_0000,
                    size: 0x1000,
                    cmdline: Some("firmware".into()),
                },
                ListedModule {
                    paddr: 0x30_0000,
                    size: 0,
                    cmdline: Some("empty".into()),
                },
                ListedModule {
                    paddr: 0x40_0000,
                    size: 0x800,
                    cmdline: Some("ipxe".into()),
                },
            ],
            memmap: vec![],
        })
        .unwrap();
        let b = &si.bytes;
        assert_eq!(b.len(), 56 + 64 + 2048);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), START_MAGIC);
        assert_eq!(si.nr_modules, 2);
        assert_eq!(u64_at(b, 16), 0x1000 + 56);
        assert_eq!(u64_at(b, 24), 0, "no cmdline with a device model");
        assert_eq!(u64_at(b, 32), 0, "no RSDP with a device model");
        assert_eq!(u64_at(b, 40), 0x1000 + 56 + 64 + 2048);
        // modlist[1] is iPXE, its cmdline in the second 1 KiB slot.
        assert_eq!(u64_at(b, 56 + 32), 0x40_0000);
        assert_eq!(u64_at(b, 56 + 32 + 16), 0x1000 + 56 + 64 + 1024);
        assert_eq!(&b[56 + 64 + 1024..56 + 64 + 1028], b"ipxe");
        assert_eq!(&b[56 + 64..56 + 64 + 9], b"firmware\0");
    }

    #[test]
    fn pvh_cmdline_and_memmap() {
        let si = build_start_info(&StartInfoParams {
            paddr: 0x5000,
            device_model: false,
            cmdline: Some("console=hvc0".into()),
            rsdp_paddr: 0xFFFC0,
            modules: vec![],
            memmap: vec![E820Entry {
                addr: 0,
                size: 0xF000_0000,
                kind: 1,
            }],
        })
        .unwrap();
        let b = &si.bytes;
        // 12 chars + NUL rounded to 16.
        assert_eq!(b.len(), 56 + 16 + 64 + 2048 + 24);
        assert_eq!(u64_at(b, 24), 0x5000 + 56);
        assert_eq!(&b[56..69], b"console=hvc0\0");
        assert_eq!(u64_at(b, 16), 0, "no modules, no modlist");
        assert_eq!(u64_at(b, 32), 0xFFFC0);
        let mm = 56 + 16 + 64 + 2048;
        assert_eq!(u64_at(b, 40), 0x5000 + u64::try_from(mm).unwrap());
        assert_eq!(u64_at(b, mm + 8), 0xF000_0000);
        assert_eq!(u32::from_le_bytes(b[48..52].try_into().unwrap()), 1);
    }

    #[test]
    fn limits() {
        let m = |n: &str| ListedModule {
            paddr: 1,
            size: 1,
            cmdline: Some(n.into()),
        };
        let mut p = StartInfoParams {
            device_model: true,
            modules: vec![m("a"), m("b"), m("c")],
            ..Default::default()
        };
        assert!(matches!(
            build_start_info(&p),
            Err(SetupError::TooManyModules { count: 3, .. })
        ));
        p.modules = vec![m(&"x".repeat(1024))];
        assert!(matches!(
            build_start_info(&p),
            Err(SetupError::ModuleCmdlineTooLong { len: 1024, .. })
        ));
    }
}
