//! Xen ELF notes (`xen/include/public/elfnote.h`) as libelf's `elf_xen_parse_note` reads
//! them, with bounds checks on every note.

use serde::Serialize;

use super::KernelError;

/// `XEN_ELFNOTE_ENTRY`.
pub const ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`.
pub const HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE`.
pub const VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET`.
pub const PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION`.
pub const XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS`.
pub const GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION`.
pub const GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER`.
pub const LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE`.
pub const PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES`.
pub const FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB`.
pub const BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW`.
pub const HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID`.
pub const L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`.
pub const SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M`.
pub const INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN`.
pub const MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`.
pub const SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_PHYS32_ENTRY`.
pub const PHYS32_ENTRY: u32 = 18;

/// libelf's `ELF_MAX_TOTAL_NOTE_COUNT`.
pub const MAX_NOTES: usize = 1024;

/// Feature names of `elf_xen_feature_names`, indexed by `XENFEAT_*` bit.
pub const FEATURE_NAMES: [(u32, &str); 7] = [
    (0, "writable_page_tables"),
    (1, "writable_descriptor_tables"),
    (2, "auto_translated_physmap"),
    (3, "supervisor_mode_kernel"),
    (4, "pae_pgdir_above_4gb"),
    (8, "hvm_callback_vector"),
    (11, "dom0"),
];
/// `XENFEAT_dom0`.
pub const XENFEAT_DOM0: u32 = 11;

/// The Xen notes of a kernel (`struct elf_dom_parms` before address calculation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct XenNotes {
    /// Number of Xen notes found.
    pub count: usize,
    /// `ENTRY` (virtual).
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE` (virtual).
    pub hypercall_page: Option<u64>,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `HV_START_LOW`.
    pub hv_start_low: Option<u64>,
    /// `INIT_P2M`.
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN` (initrd not mapped, given by pfn).
    pub mod_start_pfn: bool,
    /// `PHYS32_ENTRY`: the PVH entry point.
    pub phys32_entry: Option<u32>,
    /// `XEN_VERSION`.
    pub xen_version: Option<String>,
    /// `GUEST_OS`.
    pub guest_os: Option<String>,
    /// `GUEST_VERSION`.
    pub guest_version: Option<String>,
    /// `LOADER`.
    pub loader: Option<String>,
    /// `PAE_MODE`.
    pub pae_mode: Option<String>,
    /// `BSD_SYMTAB` = "yes".
    pub bsd_symtab: bool,
    /// `SUSPEND_CANCEL`.
    pub suspend_cancel: Option<u64>,
    /// Supported feature bits (first submap).
    pub features_supported: u32,
    /// Required feature bits (first submap).
    pub features_required: u32,
}

/// One raw note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawNote<'a> {
    /// Name without the terminating NUL.
    pub name: &'a [u8],
    /// `n_type`.
    pub n_type: u32,
    /// Descriptor bytes.
    pub desc: &'a [u8],
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn align4(v: usize) -> Option<usize> {
    v.checked_add(3).map(|x| x & !3)
}

/// Splits a note area (`area` starting at file offset `base`) into notes; `seen` counts
/// notes over all areas against [`MAX_NOTES`].
pub fn split_notes<'a>(
    area: &'a [u8],
    base: u64,
    seen: &mut usize,
) -> Result<Vec<RawNote<'a>>, KernelError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    // A trailing fragment shorter than a note header is padding.
    while area.len().saturating_sub(at) >= 12 {
        *seen += 1;
        if *seen > MAX_NOTES {
            return Err(KernelError::TooManyNotes { max: MAX_NOTES });
        }
        let truncated = || KernelError::NoteTruncated {
            offset: base + xg_ctrl::types::conv::usize_to_u64(at),
        };
        let namesz =
            usize::try_from(le32(area, at).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let descsz =
            usize::try_from(le32(area, at + 4).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let n_type = le32(area, at + 8).ok_or_else(truncated)?;
        let name_at = at + 12;
        let desc_at =
            align4(name_at.checked_add(namesz).ok_or_else(truncated)?).ok_or_else(truncated)?;
        let next =
            align4(desc_at.checked_add(descsz).ok_or_else(truncated)?).ok_or_else(truncated)?;
        let name = area.get(name_at..name_at + namesz).ok_or_else(truncated)?;
        let desc = area.get(desc_at..desc_at + descsz).ok_or_else(truncated)?;
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        out.push(RawNote { name, n_type, desc });
        at = next.min(area.len());
    }
    Ok(out)
}

fn numeric(name: &'static str, desc: &[u8]) -> Result<u64, KernelError> {
    match desc.len() {
        1 => Ok(u64::from(desc[0])),
        2 => Ok(u64::from(u16::from_le_bytes([desc[0], desc[1]]))),
        4 => Ok(u64::from(u32::from_le_bytes([
            desc[0], desc[1], desc[2], desc[3],
        ]))),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(desc);
            Ok(u64::from_le_bytes(b))
        }
        n => Err(KernelError::NoteValueSize {
            name,
            size: xg_ctrl::types::conv::usize_to_u64(n),
        }),
    }
}

fn string(desc: &[u8]) -> String {
    let end = desc.iter().position(|b| *b == 0).unwrap_or(desc.len());
    String::from_utf8_lossy(&desc[..end]).into_owned()
}

/// `elf_xen_parse_features`: `a|b|!c`, returning (supported, required) bit masks.
pub fn parse_features(s: &str) -> Result<(u32, u32), KernelError> {
    let mut supported = 0u32;
    let mut required = 0u32;
    for item in s.split('|').filter(|f| !f.is_empty()) {
        let (req, name) = match item.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, item),
        };
        match FEATURE_NAMES.iter().find(|(_, n)| *n == name) {
            Some((bit, _)) => {
                supported |= 1 << bit;
                if req {
                    required |= 1 << bit;
                }
            }
            None if req => {
                return Err(KernelError::UnknownRequiredFeature {
                    feature: name.to_owned(),
                })
            }
            None => {}
        }
    }
    Ok((supported, required))
}

impl XenNotes {
    /// Adds the note `n` if it is named "Xen"; unknown types are ignored, as libelf does.
    pub fn add(&mut self, n: &RawNote<'_>) -> Result<(), KernelError> {
        if n.name != b"Xen" {
            return Ok(());
        }
        self.count += 1;
        match n.n_type {
            ENTRY => self.entry = Some(numeric("ENTRY", n.desc)?),
            HYPERCALL_PAGE => self.hypercall_page = Some(numeric("HYPERCALL_PAGE", n.desc)?),
            VIRT_BASE => self.virt_base = Some(numeric("VIRT_BASE", n.desc)?),
            PADDR_OFFSET => self.paddr_offset = Some(numeric("PADDR_OFFSET", n.desc)?),
            HV_START_LOW => self.hv_start_low = Some(numeric("HV_START_LOW", n.desc)?),
            INIT_P2M => self.init_p2m = Some(numeric("INIT_P2M", n.desc)?),
            MOD_START_PFN => self.mod_start_pfn = numeric("MOD_START_PFN", n.desc)? != 0,
            SUSPEND_CANCEL => self.suspend_cancel = Some(numeric("SUSPEND_CANCEL", n.desc)?),
            PHYS32_ENTRY => {
                // libelf keeps the low 32 bits of the value.
                let v = numeric("PHYS32_ENTRY", n.desc)?;
                self.phys32_entry = Some(u32::try_from(v & 0xFFFF_FFFF).unwrap_or(u32::MAX));
            }
            XEN_VERSION => self.xen_version = Some(string(n.desc)),
            GUEST_OS => self.guest_os = Some(string(n.desc)),
            GUEST_VERSION => self.guest_version = Some(string(n.desc)),
            LOADER => self.loader = Some(string(n.desc)),
            PAE_MODE => self.pae_mode = Some(string(n.desc)),
            BSD_SYMTAB => self.bsd_symtab = string(n.desc) == "yes",
            FEATURES => {
                let (s, r) = parse_features(&string(n.desc))?;
                self.features_supported |= s;
                self.features_required |= r;
            }
            SUPPORTED_FEATURES => {
                if let Some(v) = le32(n.desc, 0) {
                    self.features_supported |= v;
                }
            }
            other => log::debug!("ELF: unknown Xen note type {other:#x}"),
        }
        Ok(())
    }
}
